//! The public graph API: build a graph from a config, attach observers and pollers, start a
//! run, feed graph input streams, wait, cancel, read stats.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};

use crate::clock::{Clock, RealClock};
use crate::error::{Error, Result};
use crate::packet::Packet;
use crate::runtime::{NodeStats, Observer, PollerShared, RunOptions, RunState, StreamSinks};
use crate::spec::{GraphSpec, SideProducer};
use crate::timestamp::Timestamp;

/// What `add_packet` does when the graph input's queues are full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AddMode {
    /// Block until there is room (MediaPipe's `WAIT_TILL_NOT_FULL`).
    #[default]
    WaitTillNotFull,
    /// Refuse with [`Error::Throttled`] (MediaPipe's `ADD_IF_NOT_FULL`).
    AddIfNotFull,
}

/// Side packets given to a run, by name.
pub type SidePackets = HashMap<String, Packet>;

/// A graph: a validated config plus what the application attached to it. Runs can be repeated;
/// each run creates fresh calculators.
///
/// ```
/// use mediagraph_framework::{Graph, Packet, Timestamp};
/// # mediagraph_framework::graph::doc_support::register_pass_through();
/// let mut graph = Graph::from_yaml_str(r#"
/// input_stream: [in]
/// output_stream: [out]
/// node:
///   - calculator: DocPassThrough
///     input_stream: [in]
///     output_stream: [out]
/// "#).unwrap();
/// let poller = graph.add_output_stream_poller("out").unwrap();
/// graph.start_run(Default::default()).unwrap();
/// for t in 0..3 {
///     graph.add_packet("in", Packet::new(t as i64).at(Timestamp::new(t))).unwrap();
/// }
/// graph.close_all_input_streams().unwrap();
/// graph.wait_until_done().unwrap();
/// let got: Vec<i64> = std::iter::from_fn(|| poller.next()).map(|p| *p.get::<i64>().unwrap()).collect();
/// assert_eq!(got, vec![0, 1, 2]);
/// ```
pub struct Graph {
    spec: Arc<GraphSpec>,
    sinks: Vec<StreamSinks>,
    input_queue_limits: Vec<Option<usize>>,
    input_headers: Vec<Option<Packet>>,
    add_mode: AddMode,
    clock: Arc<dyn Clock>,
    trace_path: Option<PathBuf>,
    run: Option<Arc<RunState>>,
    /// The current run, shared with [`CancelHandle`]s.
    shared_run: Arc<Mutex<Option<Arc<RunState>>>>,
    last_run: Option<Arc<RunState>>,
    workers: Vec<JoinHandle<()>>,
}

/// Reads the packets of one output stream, blocking until one is there. Never blocks forever:
/// `next` returns `None` once the stream is done or the run has ended. One exception: called
/// from inside the run (an output stream observer or a calculator) of a graph whose default
/// executor is the application thread, it waits for calls that only its own thread would
/// run; read pollers from outside the run.
pub struct OutputStreamPoller {
    shared: Arc<PollerShared>,
}

impl OutputStreamPoller {
    /// The next packet, or `None` when the stream is done or the run ended.
    pub fn next(&self) -> Option<Packet> {
        let mut s = self.shared.state.lock();
        loop {
            if let Some(p) = self.shared.pop(&mut s) {
                return Some(p);
            }
            if s.done {
                return None;
            }
            // Nothing queued: an application-thread run is run here until something is (and
            // again when another reader took it first).
            if !MutexGuard::unlocked(&mut s, || self.shared.drive(None)) {
                self.shared.ready.wait(&mut s);
            }
        }
    }

    /// Like [`OutputStreamPoller::next`], but gives up after `timeout` (returns `Ok(None)` when
    /// the stream is done, `Err(())` on timeout).
    #[allow(clippy::result_unit_err)]
    pub fn next_timeout(&self, timeout: Duration) -> std::result::Result<Option<Packet>, ()> {
        let deadline = std::time::Instant::now() + timeout;
        let mut s = self.shared.state.lock();
        loop {
            if let Some(p) = self.shared.pop(&mut s) {
                return Ok(Some(p));
            }
            if s.done {
                return Ok(None);
            }
            if std::time::Instant::now() >= deadline {
                return Err(());
            }
            if !MutexGuard::unlocked(&mut s, || self.shared.drive(Some(deadline)))
                && self.shared.ready.wait_until(&mut s, deadline).timed_out()
            {
                return Err(());
            }
        }
    }

    /// Limits how many packets may wait in this poller: when it is full, the graph's sources
    /// upstream of the stream are throttled until it is read (MediaPipe's `SetMaxQueueSize`).
    /// A full poller is never grown to resolve a deadlock: read it.
    pub fn set_max_queue_size(&self, size: usize) {
        self.shared.state.lock().limit = Some(size.max(1));
    }

    /// Packets waiting to be read.
    pub fn queue_len(&self) -> usize {
        self.shared.state.lock().packets.len()
    }
}

impl Graph {
    /// A graph from a validated spec.
    pub fn new(spec: GraphSpec) -> Graph {
        let n_streams = spec.streams.len();
        let n_inputs = spec.input_streams.len();
        Graph {
            spec: Arc::new(spec),
            sinks: vec![StreamSinks::default(); n_streams],
            input_queue_limits: vec![None; n_inputs],
            input_headers: vec![None; n_inputs],
            add_mode: AddMode::default(),
            clock: Arc::new(RealClock::new()),
            trace_path: None,
            run: None,
            shared_run: Arc::new(Mutex::new(None)),
            last_run: None,
            workers: Vec::new(),
        }
    }

    /// Loads, expands and validates a YAML graph file.
    pub fn from_yaml_file(path: impl AsRef<Path>) -> Result<Graph> {
        Ok(Graph::new(crate::config::load_file(path.as_ref())?))
    }

    /// Loads, expands and validates a YAML graph given as a string.
    pub fn from_yaml_str(yaml: &str) -> Result<Graph> {
        Ok(Graph::new(crate::config::load_str(yaml, None)?))
    }

    /// The validated graph.
    pub fn spec(&self) -> &GraphSpec {
        &self.spec
    }

    fn stream_id(&self, name: &str) -> Result<usize> {
        self.spec
            .stream_id(name)
            .ok_or_else(|| Error::NotFound(format!("stream \"{name}\" is not in the graph")))
    }

    fn before_run(&self, what: &str) -> Result<()> {
        if self.run.is_some() {
            return Err(Error::FailedPrecondition(format!(
                "{what} must be called before start_run"
            )));
        }
        Ok(())
    }

    /// Calls `f` with every packet of stream `name`, in timestamp order, on the thread that
    /// produced it. An error from `f` fails the run. Attach before `start_run`.
    pub fn observe_output_stream(
        &mut self,
        name: &str,
        f: impl FnMut(&Packet) -> Result<()> + Send + 'static,
    ) -> Result<()> {
        self.add_observer(name, Box::new(f), false)
    }

    /// Like [`Graph::observe_output_stream`], but also calls `f` with an empty packet at the
    /// newest settled timestamp whenever the stream's bound advances without a packet (so a
    /// frame that produced nothing is still noticed, at once).
    pub fn observe_output_stream_with_bounds(
        &mut self,
        name: &str,
        f: impl FnMut(&Packet) -> Result<()> + Send + 'static,
    ) -> Result<()> {
        self.add_observer(name, Box::new(f), true)
    }

    fn add_observer(
        &mut self,
        name: &str,
        f: Box<crate::runtime::ObserverFn>,
        bounds: bool,
    ) -> Result<()> {
        self.before_run("observe_output_stream")?;
        let id = self.stream_id(name)?;
        self.sinks[id].observers.push(Arc::new(Mutex::new(Observer {
            f,
            bounds,
            last: Timestamp::UNSET,
        })));
        Ok(())
    }

    /// A poller for stream `name`. Attach before `start_run`.
    pub fn add_output_stream_poller(&mut self, name: &str) -> Result<OutputStreamPoller> {
        self.add_poller(name, false)
    }

    /// Like [`Graph::add_output_stream_poller`], but the poller also returns an empty packet
    /// at the newest settled timestamp whenever the stream's bound advances without a packet,
    /// so a frame that produced nothing does not leave `next` waiting for the following one.
    pub fn add_output_stream_poller_with_bounds(
        &mut self,
        name: &str,
    ) -> Result<OutputStreamPoller> {
        self.add_poller(name, true)
    }

    fn add_poller(&mut self, name: &str, bounds: bool) -> Result<OutputStreamPoller> {
        self.before_run("add_output_stream_poller")?;
        let id = self.stream_id(name)?;
        let shared = Arc::new(PollerShared::default());
        shared.state.lock().bounds = bounds;
        self.sinks[id].pollers.push(shared.clone());
        Ok(OutputStreamPoller { shared })
    }

    /// Overrides the queue limit of every queue fed directly by graph input `name`.
    pub fn set_input_stream_max_queue_size(&mut self, name: &str, size: usize) -> Result<()> {
        self.before_run("set_input_stream_max_queue_size")?;
        let i = self.input_index(name)?;
        self.input_queue_limits[i] = Some(size);
        Ok(())
    }

    /// Replaces the clock calculators see (e.g. with a [`crate::clock::SimulatedClock`]).
    pub fn set_clock(&mut self, clock: Arc<dyn Clock>) -> Result<()> {
        self.before_run("set_clock")?;
        self.clock = clock;
        Ok(())
    }

    /// Records a trace of every run and writes it, when the run ends, to `path` as Chrome
    /// trace-event JSON (open it in Perfetto or chrome://tracing). Overrides the config's
    /// `profiler_config.trace_path`.
    pub fn enable_trace(&mut self, path: impl Into<PathBuf>) -> Result<()> {
        self.before_run("enable_trace")?;
        self.trace_path = Some(path.into());
        Ok(())
    }

    /// Sets the header of graph input stream `name` (e.g. a `VideoHeader`), seen by its
    /// consumers from `open` on (MediaPipe's `stream_headers` of `StartRun`).
    pub fn set_input_stream_header(&mut self, name: &str, header: Packet) -> Result<()> {
        self.before_run("set_input_stream_header")?;
        let i = self.input_index(name)?;
        self.input_headers[i] = Some(header.at(Timestamp::UNSET));
        Ok(())
    }

    fn input_index(&self, name: &str) -> Result<usize> {
        let id = self.stream_id(name)?;
        self.spec
            .input_streams
            .iter()
            .position(|&s| s == id)
            .ok_or_else(|| Error::NotFound(format!("\"{name}\" is not a graph input stream")))
    }

    /// Chooses what `add_packet` does when the graph is throttled.
    pub fn set_add_mode(&mut self, mode: AddMode) {
        self.add_mode = mode;
    }

    /// Starts a run with the given side packets; returns at once.
    pub fn start_run(&mut self, side_packets: SidePackets) -> Result<()> {
        if self.run.is_some() {
            return Err(Error::FailedPrecondition(
                "a run is in progress; call wait_until_done first".into(),
            ));
        }
        let mut values: Vec<Option<Packet>> = vec![None; self.spec.side_packets.len()];
        for (name, packet) in side_packets {
            let id = self.spec.side_packet_id(&name).ok_or_else(|| {
                Error::NotFound(format!("side packet \"{name}\" is not used by the graph"))
            })?;
            let sp = &self.spec.side_packets[id];
            if sp.producer != SideProducer::External {
                return Err(Error::FailedPrecondition(format!(
                    "side packet \"{name}\" is produced by a node and cannot also be given"
                )));
            }
            if let Some(t) = packet.type_id() {
                if !sp.packet_type.accepts(t) {
                    return Err(Error::msg(format!(
                        "side packet \"{name}\" holds {} but the graph expects {}",
                        packet.short_type_name(),
                        sp.packet_type
                    )));
                }
            }
            values[id] = Some(packet.at(Timestamp::UNSET));
        }
        for (id, sp) in self.spec.side_packets.iter().enumerate() {
            if sp.producer == SideProducer::External && !sp.optional && values[id].is_none() {
                return Err(Error::msg(format!(
                    "side packet \"{}\" is required but was not provided",
                    sp.name
                )));
            }
        }
        for sinks in &self.sinks {
            for o in &sinks.observers {
                o.lock().last = Timestamp::UNSET;
            }
            for p in &sinks.pollers {
                let mut s = p.state.lock();
                s.packets.clear();
                s.done = false;
                s.last = Timestamp::UNSET;
            }
        }
        let run = Arc::new(RunState::new(
            self.spec.clone(),
            RunOptions {
                side_packets: values,
                sinks: self.sinks.clone(),
                input_queue_limits: self.input_queue_limits.clone(),
                input_headers: self.input_headers.clone(),
                clock: self.clock.clone(),
                trace: self.trace_path.is_some() || self.spec.trace_path.is_some(),
            },
        )?);
        // A spec built in code skips validation: a thread name std refuses would panic below.
        if let Some(e) = self.spec.executors.iter().find(|e| {
            e.name.contains('\0')
                || e.thread_name_prefix
                    .as_ref()
                    .is_some_and(|p| p.contains('\0'))
        }) {
            return Err(Error::msg(format!(
                "executor {:?}: thread names cannot contain a NUL character",
                e.name
            )));
        }
        for (executor, threads) in self.spec.executor_threads().into_iter().enumerate() {
            let named = executor.checked_sub(1).map(|i| &self.spec.executors[i]);
            let prefix = named.map_or("mediagraph", |e| {
                e.thread_name_prefix.as_deref().unwrap_or(&e.name)
            });
            for i in 0..threads {
                let r = run.clone();
                let mut builder = std::thread::Builder::new().name(format!("{prefix}-{i}"));
                if let Some(size) = named.and_then(|e| e.stack_size) {
                    builder = builder.stack_size(size);
                }
                match builder.spawn(move || r.worker(executor)) {
                    Ok(handle) => self.workers.push(handle),
                    Err(e) => {
                        // The workers already started wait for tasks: end them before
                        // reporting, so nothing outlives the failed start.
                        run.terminate();
                        for w in self.workers.drain(..) {
                            let _ = w.join();
                        }
                        return Err(Error::msg(format!(
                            "cannot start worker thread {prefix}-{i}: {e}"
                        )));
                    }
                }
            }
        }
        for note in self.spec.parallel_call_notes() {
            tracing::warn!("{note}");
        }
        run.attach_pollers();
        run.start();
        *self.shared_run.lock() = Some(run.clone());
        self.run = Some(run);
        Ok(())
    }

    fn current_run(&self) -> Result<&Arc<RunState>> {
        self.run
            .as_ref()
            .ok_or_else(|| Error::FailedPrecondition("start_run has not been called".into()))
    }

    /// Adds a packet to graph input stream `name` (waits or refuses when throttled, per the
    /// add mode). Called from inside the run (an output stream observer or a calculator), it
    /// never waits: a full queue is an error there, as the queue may drain only on the
    /// calling thread.
    pub fn add_packet(&self, name: &str, packet: Packet) -> Result<()> {
        let run = self.current_run()?;
        let i = run.input_index(name)?;
        run.add_input_packet(i, packet, self.add_mode == AddMode::WaitTillNotFull)
    }

    /// Promises that graph input `name` will carry nothing below `bound`.
    pub fn set_input_stream_timestamp_bound(&self, name: &str, bound: Timestamp) -> Result<()> {
        let run = self.current_run()?;
        let i = run.input_index(name)?;
        run.set_input_bound(i, bound)
    }

    /// Closes graph input stream `name` (idempotent).
    pub fn close_input_stream(&self, name: &str) -> Result<()> {
        let run = self.current_run()?;
        let i = run.input_index(name)?;
        run.close_input(i);
        Ok(())
    }

    /// Closes every graph input stream.
    pub fn close_all_input_streams(&self) -> Result<()> {
        let run = self.current_run()?;
        for i in 0..self.spec.input_streams.len() {
            run.close_input(i);
        }
        Ok(())
    }

    /// Closes every graph input stream and asks every source to stop.
    pub fn close_all_packet_sources(&self) -> Result<()> {
        self.close_all_input_streams()?;
        self.current_run()?.stop_sources();
        Ok(())
    }

    /// Blocks until no task is queued or running; returns the run's errors so far.
    pub fn wait_until_idle(&self) -> Result<()> {
        let run = self.current_run()?;
        run.refuse_wait_from_inside("wait_until_idle")?;
        if run.spec.application_thread {
            run.drive(|| run.sched.is_settled() || run.is_terminated());
        } else {
            run.sched.wait_until_idle(|| run.is_terminated());
        }
        if run.has_error() {
            return Err(Error::FailedPrecondition(format!(
                "graph has errors: {}",
                run.errors_summary()
            )));
        }
        Ok(())
    }

    /// Blocks until the run is over (all sources and graph inputs closed and nothing can run,
    /// or an error or cancellation), closes what is still open, and returns the run's status.
    /// Graph inputs left open keep the run going: close them first (or use [`Graph::finish`]).
    pub fn wait_until_done(&mut self) -> Result<()> {
        let run = self.current_run()?.clone();
        run.refuse_wait_from_inside("wait_until_done")?;
        if !run.all_inputs_closed() {
            tracing::warn!(
                "wait_until_done: graph input streams are still open, so the run ends only when another thread closes them (use finish() to close them and wait)"
            );
        }
        run.drive(|| run.is_terminated());
        run.wait_terminated();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        run.cleanup();
        *self.shared_run.lock() = None;
        self.last_run = Some(run.clone());
        self.run = None;
        let status = run.status();
        let trace_written = match self.trace_path.as_ref().or(self.spec.trace_path.as_ref()) {
            Some(path) => run.write_trace(path),
            None => Ok(()),
        };
        status.and(trace_written)
    }

    /// Closes every graph input stream, then waits until the run is done.
    pub fn finish(&mut self) -> Result<()> {
        self.close_all_input_streams()?;
        self.wait_until_done()
    }

    /// `start_run` followed by `finish`.
    pub fn run(&mut self, side_packets: SidePackets) -> Result<()> {
        self.start_run(side_packets)?;
        self.finish()
    }

    /// Cancels the run: it ends as soon as running calls return; `wait_until_done` then
    /// returns [`Error::Cancelled`].
    pub fn cancel(&self) {
        if let Some(run) = &self.run {
            run.cancel();
        }
    }

    /// A handle that cancels this graph's current run from another thread, e.g. a Ctrl-C
    /// handler while this thread waits in [`Graph::wait_until_done`].
    ///
    /// ```
    /// # mediagraph_framework::graph::doc_support::register_pass_through();
    /// let mut graph = mediagraph_framework::Graph::from_yaml_str(
    ///     "input_stream: [in]\nnode:\n  - {calculator: DocPassThrough, input_stream: [in], output_stream: [out]}\n",
    /// ).unwrap();
    /// let handle = graph.cancel_handle();
    /// graph.start_run(Default::default()).unwrap();
    /// assert!(handle.is_running());
    /// std::thread::spawn(move || handle.cancel());
    /// assert!(graph.wait_until_done().unwrap_err().is_cancelled());
    /// ```
    pub fn cancel_handle(&self) -> CancelHandle {
        CancelHandle {
            run: self.shared_run.clone(),
        }
    }

    /// True if the current run has recorded an error.
    pub fn has_error(&self) -> bool {
        self.run.as_ref().is_some_and(|r| r.has_error())
    }

    /// A side packet's value (given at start, or set by a node) in the current or last run.
    pub fn output_side_packet(&self, name: &str) -> Result<Packet> {
        let id = self.spec.side_packet_id(name).ok_or_else(|| {
            Error::NotFound(format!("side packet \"{name}\" is not in the graph"))
        })?;
        let run = self.current_run().or_else(|_| {
            self.last_run
                .as_ref()
                .ok_or_else(|| Error::FailedPrecondition("the graph has not run".into()))
        })?;
        run.side_packet(id)
            .ok_or_else(|| Error::NotFound(format!("side packet \"{name}\" has not been set")))
    }

    /// Per-node counters of the current run, or of the last run once it is done.
    pub fn stats(&self) -> Vec<NodeStats> {
        match &self.run {
            Some(run) => run.stats(),
            None => self
                .last_run
                .as_ref()
                .map(|r| r.stats())
                .unwrap_or_default(),
        }
    }
}

impl Drop for Graph {
    fn drop(&mut self) {
        if let Some(run) = &self.run {
            run.cancel();
            let _ = self.wait_until_done();
        }
    }
}

/// Cancels a graph's run from any thread; see [`Graph::cancel_handle`].
#[derive(Clone)]
pub struct CancelHandle {
    run: Arc<Mutex<Option<Arc<RunState>>>>,
}

impl CancelHandle {
    /// Cancels the current run, if any (the run ends as soon as running calls return).
    pub fn cancel(&self) {
        if let Some(run) = self.run.lock().as_ref() {
            run.cancel();
        }
    }

    /// True while a run has started and not yet been waited for.
    pub fn is_running(&self) -> bool {
        self.run.lock().as_ref().is_some_and(|r| !r.is_terminated())
    }
}

/// Calculators used by this crate's documentation examples.
#[doc(hidden)]
pub mod doc_support {
    use crate::prelude::*;

    struct DocPassThrough;
    const IN: Input<AnyPacket> = Input::any("");
    const OUT: Output<AnyPacket> = Output::any("");

    impl Calculator for DocPassThrough {
        type Options = NoOptions;
        fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
            cc.declare(&[&IN, &OUT])?;
            cc.set_timestamp_offset(0);
            Ok(())
        }
        fn create(_: &NoOptions) -> Result<Self> {
            Ok(DocPassThrough)
        }
        fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
            let p = cx.input(&IN).packet().clone();
            cx.output(&OUT).send_packet(p)?;
            Ok(Flow::Continue)
        }
    }

    /// Registers `DocPassThrough`.
    pub fn register_pass_through() {
        crate::calculator::register::<DocPassThrough>("DocPassThrough");
    }
}
