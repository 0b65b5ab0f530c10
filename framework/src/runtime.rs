//! One run of a graph: node state machines (open -> process* -> close), packet delivery with
//! bound propagation, throttling, the idle handler (source activation, termination, deadlock
//! resolution) and error collection.
//!
//! Locking: each node has one mutex. A thread never holds two node locks at once; work that
//! affects other nodes (deliveries, waking throttled sources) is collected in [`Effects`] while
//! a lock is held and applied after it is released.

use std::any::Any;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, MutexGuard, RwLock};

use crate::calculator::{
    CalculatorContext, DynCalculator, Flow, NodeInfo, OutputShard, RepeatedWarning,
};
use crate::clock::Clock;
use crate::contract::Contract;
use crate::error::{Error, Phase, Result};
use crate::handler::{InputHandler, Readiness};
use crate::packet::Packet;
use crate::scheduler::{Finished, Next, Scheduler, Task, TaskKind};
use crate::spec::{GraphSpec, NodeId, Producer, SidePacketId, SideProducer, StreamId};
use crate::stats::LatencyHistogram;
use crate::stream::InputQueue;
use crate::timestamp::{Timestamp, TimestampDiff};
use crate::trace::{self, NodeTrace, TraceEvent, DEFAULT_EVENTS_PER_NODE};
use crate::types::PacketType;

/// Receives the packets of an observed output stream, in timestamp order.
pub type ObserverFn = dyn FnMut(&Packet) -> Result<()> + Send;

/// A callback on an output stream.
pub(crate) struct Observer {
    pub(crate) f: Box<ObserverFn>,
    /// Also report bound advances without a packet, as empty packets at the settled timestamp.
    pub(crate) bounds: bool,
    /// The last timestamp reported (packet or bound), so none is reported twice.
    pub(crate) last: Timestamp,
}

impl Observer {
    /// Calls the observer; a panic in it is an error of the run, as a calculator's is.
    fn call(&mut self, p: &Packet) -> Result<()> {
        self.last = p.timestamp();
        let f = &mut self.f;
        catch_unwind(AssertUnwindSafe(|| f(p)))
            .unwrap_or_else(|payload| Err(Error::Panic(panic_message(payload))))
    }

    /// Reports the timestamps up to `bound` as settled, if that is news.
    fn settle(&mut self, bound: Timestamp) -> Result<()> {
        match newly_settled(self.bounds, bound, self.last) {
            Some(settled) => self.call(&Packet::empty_at(settled)),
            None => Ok(()),
        }
    }
}

/// For a sink that reports bounds: the timestamp a new `bound` settles, if it is later than
/// `last` (the last timestamp reported) and is not the end of the stream.
fn newly_settled(report_bounds: bool, bound: Timestamp, last: Timestamp) -> Option<Timestamp> {
    if !report_bounds || bound == Timestamp::DONE {
        return None;
    }
    let settled = if bound == Timestamp::ONE_OVER_POST_STREAM {
        Timestamp::POST_STREAM
    } else {
        bound.previous_allowed_in_stream()
    };
    (settled > last && settled.is_allowed_in_stream()).then_some(settled)
}

/// The queue behind an [`crate::graph::OutputStreamPoller`].
#[derive(Default)]
pub(crate) struct PollerShared {
    pub(crate) state: Mutex<PollerState>,
    pub(crate) ready: Condvar,
}

#[derive(Default)]
pub(crate) struct PollerState {
    pub(crate) packets: VecDeque<Packet>,
    pub(crate) done: bool,
    /// Also queue an empty packet at each newly settled timestamp.
    pub(crate) bounds: bool,
    /// The last timestamp queued (packet or bound).
    pub(crate) last: Timestamp,
    /// At this many queued packets the poller throttles the stream's sources.
    pub(crate) limit: Option<usize>,
    /// The poller is full and counted in its sources' throttling.
    full: bool,
    /// The current run and the source slots upstream of the stream.
    run: std::sync::Weak<RunState>,
    slots: Vec<usize>,
}

impl PollerShared {
    /// Connects the poller to a run: a full poller throttles `slots`.
    pub(crate) fn attach(&self, run: &Arc<RunState>, slots: Vec<usize>) {
        let mut s = self.state.lock();
        s.run = Arc::downgrade(run);
        s.slots = slots;
        s.full = false;
    }

    /// Takes the next packet; a poller that drops below its limit unthrottles its sources.
    pub(crate) fn pop(&self, s: &mut MutexGuard<'_, PollerState>) -> Option<Packet> {
        let p = s.packets.pop_front()?;
        if s.full && s.limit.is_none_or(|l| s.packets.len() < l) {
            s.full = false;
            if let Some(run) = s.run.upgrade() {
                let slots = s.slots.clone();
                MutexGuard::unlocked(s, || {
                    for slot in slots {
                        if run.throttle[slot].fetch_sub(1, Ordering::SeqCst) == 1 {
                            run.wake(slot);
                        }
                    }
                });
            }
        }
        Some(p)
    }

    fn push(&self, run: &RunState, packets: &[Packet], bound: Timestamp) {
        let mut s = self.state.lock();
        if let Some(p) = packets.last() {
            s.last = p.timestamp();
        }
        s.packets.extend(packets.iter().cloned());
        if let Some(settled) = newly_settled(s.bounds, bound, s.last) {
            s.last = settled;
            s.packets.push_back(Packet::empty_at(settled));
        }
        if let Some(limit) = s.limit {
            if !s.full && s.packets.len() >= limit {
                s.full = true;
                for &slot in &s.slots {
                    run.throttle[slot].fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        drop(s);
        self.ready.notify_all();
    }

    pub(crate) fn finish(&self) {
        self.state.lock().done = true;
        self.ready.notify_all();
    }

    /// With a run whose default executor is the application thread: runs its tasks on this
    /// thread until a packet is queued here, the stream is done, or `deadline` passes.
    /// Returns false when this thread cannot run them (another executor runs the calls, or
    /// the thread is inside the run): then only waiting helps.
    pub(crate) fn drive(&self, deadline: Option<std::time::Instant>) -> bool {
        let Some(run) = self.state.lock().run.upgrade() else {
            return false;
        };
        run.drive(|| {
            let s = self.state.lock();
            !s.packets.is_empty()
                || s.done
                || deadline.is_some_and(|d| std::time::Instant::now() >= d)
        })
    }
}

/// Observers and pollers of one stream.
#[derive(Default, Clone)]
pub(crate) struct StreamSinks {
    pub(crate) observers: Vec<Arc<Mutex<Observer>>>,
    pub(crate) pollers: Vec<Arc<PollerShared>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Pending,
    Opening,
    Open,
    OpenFailed,
    Closing,
    Closed,
}

#[derive(Clone, Copy, Debug)]
struct OutputState {
    bound: Timestamp,
    closed: bool,
    offset: Option<TimestampDiff>,
    emitted_any: bool,
}

/// Counters of one node, readable while the graph runs.
#[derive(Clone, Debug, Default)]
pub struct NodeStats {
    /// Node name.
    pub name: String,
    /// Calculator name.
    pub calculator: String,
    /// `process` calls.
    pub invocations: u64,
    /// Non-empty packets consumed.
    pub packets_in: u64,
    /// Packets emitted.
    pub packets_out: u64,
    /// Total time spent in `process`.
    pub process_time: Duration,
    /// Median time of one `process` call.
    pub process_p50: Duration,
    /// 99th percentile time of one `process` call.
    pub process_p99: Duration,
    /// Time spent in `open` and `close`.
    pub open_close_time: Duration,
    /// Packets dropped by an explicit policy (fixed-size handler, skipped timestamps).
    pub dropped: u64,
    /// Per input stream: (stream name, longest queue seen).
    pub queue_high_water: Vec<(String, usize)>,
    /// Times a full input queue of this node was grown to resolve a throttling deadlock.
    pub queue_growths: u64,
    /// Progress the calculator reported (`done`, `total` when known), e.g. a video decoder's
    /// frames decoded out of the file's frame count.
    pub progress: Option<(u64, Option<u64>)>,
}

struct NodeState {
    status: Status,
    calculator: Option<Box<dyn DynCalculator>>,
    handler: InputHandler,
    queues: Vec<InputQueue>,
    outputs: Vec<OutputState>,
    /// A task for this node is queued or running.
    busy: bool,
    open_scheduled: bool,
    /// A throttled source that waits to be rescheduled.
    source_waiting: bool,
    inputs_buf: Vec<Packet>,
    shards: Vec<OutputShard>,
    side_out: Vec<Option<Packet>>,
    stats: NodeStats,
    /// What the readiness check that scheduled the pending task found; with a handler whose
    /// readiness new input cannot undo (one sync set, no truncation), the task trusts it.
    ready: Option<Readiness>,
    process_times: LatencyHistogram,
    trace: Option<NodeTrace>,
    /// Input queues grown to resolve a throttling deadlock (the warning is thinned out).
    deadlock_growths: RepeatedWarning,
    /// The copies and calls in flight of a node with `max_in_flight` above 1 (`calculator`
    /// is then unused).
    parallel: Option<ParallelCalls>,
}

/// A calculator call's result and what it reported, before it is counted.
struct CallOutcome {
    result: Result<Flow>,
    dropped: u64,
    progress: Option<(u64, Option<u64>)>,
    started: quanta::Instant,
    elapsed: Duration,
}

/// The calls of a node with `max_in_flight` above 1: each runs on its own opened copy of the
/// calculator, with its own buffers; their outputs are delivered in the order the calls
/// took their inputs (timestamp order), whichever finishes first.
struct ParallelCalls {
    /// `max_in_flight`.
    copies: usize,
    /// Opened copies not in a call.
    idle: Vec<Box<dyn DynCalculator>>,
    /// Calls running.
    running: usize,
    /// Sequence number of the next call.
    next_call: u64,
    /// Sequence number of the next call whose outputs are delivered.
    next_delivery: u64,
    /// Finished calls waiting for an earlier one, by sequence number.
    finished: std::collections::BTreeMap<u64, FinishedCall>,
    /// Buffers of finished calls, for the next ones.
    spare: Vec<CallBuffers>,
    /// Deliveries of the calls delivered in order, not yet applied.
    outbox: Vec<Delivery>,
    /// A thread is applying the outbox (the others leave theirs to it).
    delivering: bool,
}

impl ParallelCalls {
    /// No call is running or waiting to be delivered, and every output has been applied:
    /// the node's bounds may move without a call, and it may close.
    fn settled(&self) -> bool {
        self.running == 0 && self.finished.is_empty() && !self.delivering && self.outbox.is_empty()
    }
}

/// One call's inputs and outputs.
struct CallBuffers {
    inputs: Vec<Packet>,
    shards: Vec<OutputShard>,
    side_out: Vec<Option<Packet>>,
}

/// A parallel call that returned, its outputs not delivered yet.
struct FinishedCall {
    ts: Timestamp,
    buffers: CallBuffers,
    result: Result<Flow>,
}

pub(crate) struct NodeRuntime {
    info: NodeInfo,
    /// Input stream headers, fixed when the node opens.
    headers: std::sync::OnceLock<Vec<Packet>>,
    /// Input side packets, fixed when the node opens.
    side_inputs: std::sync::OnceLock<Vec<Packet>>,
    state: Mutex<NodeState>,
    opened: AtomicBool,
    open_deps: Vec<NodeId>,
    is_source: bool,
    layer: i32,
    /// Position of the node's source layer among the graph's layers (sources only).
    layer_rank: usize,
}

/// Most `process` calls one task makes in a row (see `RunState::process_node`).
const MAX_BATCH_CALLS: u32 = 64;
/// A task makes no further call in its batch once its calls took this long, so a slow
/// calculator's outputs are not held back.
const MAX_BATCH_TIME: Duration = Duration::from_micros(50);

/// A delivery of one invocation's output (or a batch's outputs) on one stream.
struct Delivery {
    stream: StreamId,
    packets: Vec<Packet>,
    bound: Timestamp,
    header: Option<Packet>,
}

/// Cross-node work collected under a node lock and applied after it is released.
struct Effects {
    deliveries: Vec<Delivery>,
    side_packets: Vec<(SidePacketId, Packet)>,
    unthrottled: Vec<usize>,
    opened: Option<NodeId>,
}

thread_local! {
    /// A delivery buffer kept per thread, so collecting effects allocates nothing per call.
    static SPARE_DELIVERIES: std::cell::Cell<Vec<Delivery>> = const { std::cell::Cell::new(Vec::new()) };
}

impl Default for Effects {
    fn default() -> Self {
        Effects {
            deliveries: SPARE_DELIVERIES.take(),
            side_packets: Vec::new(),
            unthrottled: Vec::new(),
            opened: None,
        }
    }
}

impl Effects {
    /// Queues one call's output on `stream`; outputs of earlier calls of the same batch on the
    /// same stream are merged into one delivery (one consumer lock for all of them).
    fn add_output(
        &mut self,
        stream: StreamId,
        packets: &mut Vec<Packet>,
        bound: Timestamp,
        header: Option<Packet>,
    ) {
        // A header (set in `open` only) gets a delivery of its own, ahead of any packet.
        if header.is_none() {
            if let Some(d) = self
                .deliveries
                .iter_mut()
                .rev()
                .find(|d| d.stream == stream)
            {
                d.packets.append(packets);
                d.bound = d.bound.max(bound);
                return;
            }
        }
        self.deliveries.push(Delivery {
            stream,
            packets: std::mem::take(packets),
            bound,
            header,
        });
    }
}

impl Drop for Effects {
    fn drop(&mut self) {
        let mut spare = std::mem::take(&mut self.deliveries);
        if spare.capacity() > 0 && spare.capacity() <= 64 {
            spare.clear();
            SPARE_DELIVERIES.set(spare);
        }
    }
}

struct InputsState {
    bounds: Vec<Timestamp>,
    closed: Vec<bool>,
}

struct SourceBook {
    layers: Vec<(i32, Vec<NodeId>)>,
    next_layer: usize,
    active: usize,
}

/// The state of one run.
pub(crate) struct RunState {
    pub(crate) spec: Arc<GraphSpec>,
    nodes: Vec<NodeRuntime>,
    pub(crate) sched: Scheduler,
    side_packets: RwLock<Vec<Option<Packet>>>,
    inputs: Mutex<InputsState>,
    inputs_cv: Condvar,
    sinks: Vec<StreamSinks>,
    errors: Mutex<Vec<Error>>,
    has_error: AtomicBool,
    stopping: AtomicBool,
    terminated: Mutex<bool>,
    done_cv: Condvar,
    /// Per source slot (node sources by node id, then graph inputs): full queues downstream.
    throttle: Vec<AtomicUsize>,
    /// For each node input port: the source slots upstream of it.
    queue_sources: Vec<Vec<Vec<usize>>>,
    sources: Mutex<SourceBook>,
    /// For each stream: the source slots upstream of it.
    stream_slots: Vec<Vec<usize>>,
    pub(crate) queue_growths: AtomicU64,
    clock: Arc<dyn Clock>,
    /// The run's start, on the cheap TSC-based clock used for per-call timings.
    epoch: quanta::Instant,
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// The bound implied by a timestamp offset after processing input timestamp `ts`.
fn offset_bound(ts: Timestamp, offset: TimestampDiff) -> Option<Timestamp> {
    if ts == Timestamp::PRE_STREAM {
        Some(Timestamp::MIN)
    } else if ts == Timestamp::MAX {
        Some(if offset.value() >= 0 {
            Timestamp::POST_STREAM
        } else {
            (Timestamp::MAX + offset).next_allowed_in_stream()
        })
    } else if ts == Timestamp::POST_STREAM {
        Some(Timestamp::ONE_OVER_POST_STREAM)
    } else if ts.is_range() {
        Some(ts.next_allowed_in_stream() + offset)
    } else {
        None
    }
}

/// Why a node cannot make `max_in_flight` calls at once, if it cannot (`None` for 1).
pub(crate) fn parallel_calls_refusal(
    max_in_flight: usize,
    contract: &Contract,
    calculator: &str,
    reads_back_edge: bool,
) -> Option<String> {
    let why = if max_in_flight <= 1 {
        return None;
    } else if contract.inputs().is_empty() {
        "a source node (no input streams) makes one call at a time".to_string()
    } else if !contract.independent_calls() {
        format!(
            "{calculator} does not declare independent calls (`Contract::set_independent_calls`): its calls may depend on earlier ones, and each parallel copy would see only some of the packets; `mediagraph calculators` marks those that do, or run copies between RoundRobinDemuxCalculator and MuxCalculator"
        )
    } else if reads_back_edge {
        "a node that reads a back edge makes one call at a time".to_string()
    } else if !contract.side_outputs().is_empty() {
        "a node with output side packets makes one call at a time (each copy would set them)"
            .to_string()
    } else {
        return None;
    };
    Some(format!("max_in_flight {max_in_flight} refused: {why}"))
}

/// Options of one run, set by the graph API before `start_run`.
pub(crate) struct RunOptions {
    pub(crate) side_packets: Vec<Option<Packet>>,
    pub(crate) sinks: Vec<StreamSinks>,
    pub(crate) input_queue_limits: Vec<Option<usize>>,
    pub(crate) input_headers: Vec<Option<Packet>>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) trace: bool,
}

impl RunState {
    /// Prepares a run: node state, queues with their limits, throttling bookkeeping.
    pub(crate) fn new(spec: Arc<GraphSpec>, opts: RunOptions) -> Result<RunState> {
        let n = spec.nodes.len();
        let mut nodes = Vec::with_capacity(n);
        for node in &spec.nodes {
            let contract = &node.contract;
            if let Some(why) = parallel_calls_refusal(
                node.max_in_flight,
                contract,
                &node.calculator,
                node.back_edges.contains(&true),
            ) {
                return Err(Error::config(
                    node.location.clone(),
                    format!("node \"{}\": {why}", node.name),
                ));
            }
            let handler = InputHandler::new(
                &node.handler,
                contract.inputs(),
                contract.process_timestamp_bounds(),
            )
            .map_err(|e| Error::Node {
                node: node.name.clone(),
                calculator: node.calculator.clone(),
                phase: Phase::Open,
                timestamp: Timestamp::UNSTARTED,
                source: Box::new(e),
            })?;
            let queues = node
                .input_streams
                .iter()
                .map(|&s| {
                    let base = match spec.streams[s].producer {
                        Producer::GraphInput => {
                            let i = spec.input_streams.iter().position(|&x| x == s);
                            i.and_then(|i| opts.input_queue_limits[i])
                                .or(spec.max_queue_size)
                        }
                        Producer::Node { .. } => spec.max_queue_size,
                    };
                    let limit = base.map_or(usize::MAX, |b| {
                        b.max(node.buffer_size_hint).max(handler.batch_size())
                    });
                    let mut q = InputQueue::new(limit);
                    if let Some(i) = spec.input_streams.iter().position(|&x| x == s) {
                        if let Some(h) = &opts.input_headers[i] {
                            q.header = h.clone();
                        }
                    }
                    q
                })
                .collect();
            let output_types: Vec<PacketType> = node
                .output_streams
                .iter()
                .map(|&s| spec.streams[s].packet_type.clone())
                .collect();
            let shards = node
                .output_streams
                .iter()
                .zip(&output_types)
                .map(|(&s, t)| OutputShard::new(spec.streams[s].name.as_str().into(), t.clone()))
                .collect();
            let offset = contract.timestamp_offset();
            let stats = NodeStats {
                name: node.name.clone(),
                calculator: node.calculator.clone(),
                queue_high_water: node
                    .input_streams
                    .iter()
                    .map(|&s| (spec.streams[s].name.clone(), 0))
                    .collect(),
                ..NodeStats::default()
            };
            let mut open_deps: Vec<NodeId> = node
                .input_streams
                .iter()
                .zip(&node.back_edges)
                .filter(|(_, back)| !**back)
                .filter_map(|(&s, _)| match spec.streams[s].producer {
                    Producer::Node { node, .. } => Some(node),
                    Producer::GraphInput => None,
                })
                .collect();
            open_deps.sort_unstable();
            open_deps.dedup();
            nodes.push(NodeRuntime {
                info: NodeInfo {
                    name: node.name.clone(),
                    calculator: node.calculator.clone(),
                    contract: contract.clone(),
                    output_types,
                    options: node.options.clone(),
                },
                state: Mutex::new(NodeState {
                    status: Status::Pending,
                    calculator: None,
                    handler,
                    queues,
                    outputs: vec![
                        OutputState {
                            bound: Timestamp::PRE_STREAM,
                            closed: false,
                            offset,
                            emitted_any: false,
                        };
                        node.output_streams.len()
                    ],
                    busy: false,
                    open_scheduled: false,
                    source_waiting: false,
                    inputs_buf: Vec::new(),
                    shards,
                    side_out: vec![None; node.side_outputs.len()],
                    stats,
                    ready: None,
                    process_times: LatencyHistogram::default(),
                    trace: opts.trace.then(|| NodeTrace::new(DEFAULT_EVENTS_PER_NODE)),
                    deadlock_growths: RepeatedWarning::default(),
                    parallel: (node.max_in_flight > 1).then(|| ParallelCalls {
                        copies: node.max_in_flight,
                        idle: Vec::new(),
                        running: 0,
                        next_call: 0,
                        next_delivery: 0,
                        finished: Default::default(),
                        spare: Vec::new(),
                        outbox: Vec::new(),
                        delivering: false,
                    }),
                }),
                headers: std::sync::OnceLock::new(),
                side_inputs: std::sync::OnceLock::new(),
                opened: AtomicBool::new(false),
                open_deps,
                is_source: node.is_source(),
                layer: node.source_layer,
                layer_rank: 0,
            });
        }

        // Source slots upstream of each stream's producer.
        let n_inputs = spec.input_streams.len();
        let mut node_sources: Vec<Vec<usize>> = vec![Vec::new(); n];
        for id in 0..n {
            let mut slots = Vec::new();
            if spec.nodes[id].is_source() {
                slots.push(id);
            }
            for (port, &s) in spec.nodes[id].input_streams.iter().enumerate() {
                if spec.nodes[id].back_edges[port] {
                    continue;
                }
                slots.extend(stream_sources(&spec, s, &node_sources, n));
            }
            slots.sort_unstable();
            slots.dedup();
            node_sources[id] = slots;
        }
        let stream_slots = (0..spec.streams.len())
            .map(|s| stream_sources(&spec, s, &node_sources, n))
            .collect();
        let queue_sources = spec
            .nodes
            .iter()
            .map(|node| {
                node.input_streams
                    .iter()
                    .map(|&s| stream_sources(&spec, s, &node_sources, n))
                    .collect()
            })
            .collect();

        let mut layers: Vec<(i32, Vec<NodeId>)> = Vec::new();
        for (id, node) in nodes.iter().enumerate().filter(|(_, n)| n.is_source) {
            match layers.iter_mut().find(|(l, _)| *l == node.layer) {
                Some((_, v)) => v.push(id),
                None => layers.push((node.layer, vec![id])),
            }
        }
        layers.sort_by_key(|(l, _)| *l);
        for (rank, (_, members)) in layers.iter().enumerate() {
            for &n in members {
                nodes[n].layer_rank = rank;
            }
        }

        Ok(RunState {
            nodes,
            sched: Scheduler::new(spec.executors.len() + 1, spec.executor_indices()),
            side_packets: RwLock::new(opts.side_packets),
            inputs: Mutex::new(InputsState {
                bounds: vec![Timestamp::PRE_STREAM; n_inputs],
                closed: vec![false; n_inputs],
            }),
            inputs_cv: Condvar::new(),
            sinks: opts.sinks,
            errors: Mutex::new(Vec::new()),
            has_error: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            terminated: Mutex::new(false),
            done_cv: Condvar::new(),
            throttle: (0..n + n_inputs).map(|_| AtomicUsize::new(0)).collect(),
            queue_sources,
            sources: Mutex::new(SourceBook {
                layers,
                next_layer: 0,
                active: 0,
            }),
            stream_slots,
            queue_growths: AtomicU64::new(0),
            clock: opts.clock,
            epoch: quanta::Instant::now(),
            spec,
        })
    }

    // ----- errors -----

    pub(crate) fn record_error(&self, error: Error) {
        tracing::error!("{error}");
        self.errors.lock().push(error);
        self.has_error.store(true, Ordering::SeqCst);
        let _g = self.inputs.lock();
        self.inputs_cv.notify_all();
    }

    fn node_error(&self, n: NodeId, phase: Phase, ts: Timestamp, e: Error) -> Error {
        Error::Node {
            node: self.nodes[n].info.name.clone(),
            calculator: self.nodes[n].info.calculator.clone(),
            phase,
            timestamp: ts,
            source: Box::new(e),
        }
    }

    pub(crate) fn has_error(&self) -> bool {
        self.has_error.load(Ordering::SeqCst)
    }

    /// The run's combined status.
    pub(crate) fn status(&self) -> Result<()> {
        let mut errors = std::mem::take(&mut *self.errors.lock());
        if errors.is_empty() {
            return Ok(());
        }
        if errors.iter().all(|e| matches!(e, Error::Cancelled)) {
            return Err(Error::Cancelled);
        }
        errors.retain(|e| !matches!(e, Error::Cancelled));
        if errors.len() == 1 {
            return Err(errors.pop().expect("one error"));
        }
        Err(Error::Run(errors))
    }

    /// A copy of the errors so far (for `add_packet` refusals).
    pub(crate) fn errors_summary(&self) -> String {
        self.errors
            .lock()
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    // ----- start, workers, termination -----

    /// Schedules every node that can open.
    pub(crate) fn start(self: &Arc<Self>) {
        for n in 0..self.nodes.len() {
            self.try_open(n);
        }
        // Kick the idle handler if nothing can open (e.g. an empty graph).
        self.sched.begin_external();
        self.sched.end_external();
    }

    /// The loop of a worker thread of executor `executor` (0: the default one; see
    /// [`GraphSpec::executor_indices`]).
    pub(crate) fn worker(self: Arc<Self>, executor: usize) {
        self.sched.enter_worker(executor);
        let mut finished = None;
        loop {
            match self.sched.next(finished) {
                Next::Exit => return,
                Next::Run(task) => {
                    self.run_task(task);
                    finished = Some(Finished::Task);
                }
                Next::Idle(generation) => {
                    self.on_idle(generation);
                    finished = Some(Finished::Idle(generation));
                }
            }
        }
    }

    /// An error for a wait called on a thread that runs this run's calls (from an observer
    /// or a calculator): the wait would wait for itself.
    pub(crate) fn refuse_wait_from_inside(&self, what: &str) -> Result<()> {
        if self.sched.is_worker_thread() {
            return Err(Error::FailedPrecondition(format!(
                "{what} was called from inside the run (an output stream observer or a calculator): it would wait for itself"
            )));
        }
        Ok(())
    }

    /// With an ApplicationThreadExecutor (see [`GraphSpec::application_thread`]): runs the
    /// default executor's tasks on the calling thread until `done()` (checked between tasks,
    /// and every few milliseconds while there is nothing to do) or the run ends, and returns
    /// true. Does nothing and returns false otherwise, or on a thread that already runs tasks
    /// of this run.
    pub(crate) fn drive(&self, done: impl Fn() -> bool) -> bool {
        if !self.spec.application_thread || self.sched.is_worker_thread() {
            return false;
        }
        let mut stint = self.sched.begin_stint(0);
        loop {
            // What finished is counted before `done` looks at the run.
            stint.settle();
            if done() {
                return true;
            }
            match stint.next(Duration::from_millis(2)) {
                None => {}
                Some(Next::Exit) => return true,
                Some(Next::Run(task)) => self.run_task(task),
                Some(Next::Idle(generation)) => self.on_idle(generation),
            }
        }
    }

    /// Connects every poller of the run to its sources' throttling.
    pub(crate) fn attach_pollers(self: &Arc<Self>) {
        for (stream, sinks) in self.sinks.iter().enumerate() {
            for p in &sinks.pollers {
                p.attach(self, self.stream_slots[stream].clone());
            }
        }
    }

    pub(crate) fn is_terminated(&self) -> bool {
        *self.terminated.lock()
    }

    /// Ends the run: workers exit (also for a run that could not start).
    pub(crate) fn terminate(&self) {
        self.sched.shutdown();
        self.mark_terminated();
    }

    /// Terminates the run from the idle handler started at `generation`, unless work arrived
    /// meanwhile (then a later idle point decides again).
    fn terminate_if_quiet(&self, generation: u64) {
        if self.sched.shutdown_if_quiet(generation) {
            self.mark_terminated();
        }
    }

    fn mark_terminated(&self) {
        let mut t = self.terminated.lock();
        *t = true;
        drop(t);
        self.done_cv.notify_all();
        // No packet comes any more: a poller waiting for one returns (also after an error
        // or a cancel, before the application waits for the run).
        for sinks in &self.sinks {
            for p in &sinks.pollers {
                p.finish();
            }
        }
        let _g = self.inputs.lock();
        self.inputs_cv.notify_all();
    }

    /// Blocks until the run has terminated.
    pub(crate) fn wait_terminated(&self) {
        let mut t = self.terminated.lock();
        while !*t {
            self.done_cv.wait(&mut t);
        }
    }

    /// After the workers exited: closes every node still open (outputs discarded), ends pollers.
    pub(crate) fn cleanup(&self) {
        for n in 0..self.nodes.len() {
            let st = self.nodes[n].state.lock();
            if matches!(st.status, Status::Open) {
                let mut effects = Effects::default();
                self.close_node(n, st, &mut effects, false);
            }
        }
        for sinks in &self.sinks {
            for p in &sinks.pollers {
                p.finish();
            }
        }
        let _g = self.inputs.lock();
        self.inputs_cv.notify_all();
    }

    /// Records a cancellation; the run ends once running calls return.
    pub(crate) fn cancel(&self) {
        self.record_error(Error::Cancelled);
        self.sched.begin_external();
        self.sched.end_external();
    }

    /// Sets the stopping flag: sources are closed the next time they are scheduled.
    pub(crate) fn stop_sources(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        for n in 0..self.nodes.len() {
            if !self.nodes[n].is_source {
                continue;
            }
            let mut st = self.nodes[n].state.lock();
            if st.source_waiting {
                st.source_waiting = false;
                st.busy = true;
                self.push_source(n, &st);
            }
        }
    }

    // ----- the idle handler -----

    fn on_idle(&self, generation: u64) {
        if !self.sched.is_quiet(generation) {
            return;
        }
        if self.has_error() {
            self.terminate_if_quiet(generation);
            return;
        }
        // Wake sources whose throttling ended while nobody looked.
        for n in 0..self.nodes.len() {
            if self.nodes[n].is_source && !self.is_throttled(n) {
                let mut st = self.nodes[n].state.lock();
                if st.source_waiting {
                    st.source_waiting = false;
                    st.busy = true;
                    self.push_source(n, &st);
                    return;
                }
            }
        }
        let mut book = self.sources.lock();
        if book.active == 0 {
            while book.next_layer < book.layers.len() {
                let layer = book.layers[book.next_layer].1.clone();
                book.next_layer += 1;
                let mut started = 0;
                for n in layer {
                    let mut st = self.nodes[n].state.lock();
                    if st.status == Status::Open {
                        st.busy = true;
                        started += 1;
                        self.push_source(n, &st);
                    }
                }
                if started > 0 {
                    book.active += started;
                    return;
                }
            }
        }
        let sources_done = book.active == 0 && book.next_layer == book.layers.len();
        drop(book);
        let inputs = self.inputs.lock();
        let all_inputs_closed = inputs.closed.iter().all(|c| *c);
        let throttled_input = inputs.closed.iter().enumerate().any(|(i, closed)| {
            !closed && self.throttle[self.nodes.len() + i].load(Ordering::SeqCst) > 0
        });
        drop(inputs);
        if sources_done && all_inputs_closed {
            if !self.close_loop_node(generation) {
                self.terminate_if_quiet(generation);
            }
            return;
        }
        let throttled_source = (0..self.nodes.len()).any(|n| {
            self.nodes[n].is_source
                && self.is_throttled(n)
                && self.nodes[n].state.lock().source_waiting
        });
        if throttled_source || throttled_input {
            self.resolve_deadlock(generation);
        }
    }

    /// At the end of a run (idle, sources done, graph inputs closed): closes, with its outputs
    /// delivered, the first open node whose only open inputs are back edges, so that the nodes
    /// of a loop close in order and what one flushes in `close` reaches the nodes after it
    /// (MediaPipe closes them at the end with their outputs lost). Returns whether it closed
    /// one; the run goes on and the next idle point closes the next.
    fn close_loop_node(&self, generation: u64) -> bool {
        for n in 0..self.nodes.len() {
            let back_edges = &self.spec.nodes[n].back_edges;
            if !back_edges.contains(&true) {
                continue;
            }
            let st = self.nodes[n].state.lock();
            let waits_on_back_edges_only = st.status == Status::Open
                && !st.busy
                && st
                    .queues
                    .iter()
                    .zip(back_edges)
                    .all(|(q, &back)| back || (q.bound() == Timestamp::DONE && q.len() == 0));
            if !waits_on_back_edges_only {
                continue;
            }
            if !self.sched.is_quiet(generation) {
                // New work arrived meanwhile: the next idle point decides again.
                return true;
            }
            // Closed by a task on the node's own executor (this is the idle handler's thread).
            let mut st = st;
            st.busy = true;
            drop(st);
            self.sched.push(Task {
                kind: TaskKind::CloseLoop,
                node: n,
            });
            return true;
        }
        false
    }

    /// The task `close_loop_node` scheduled: closes the node, its outputs delivered.
    fn close_loop_task(&self, n: NodeId) {
        let mut st = self.nodes[n].state.lock();
        // After an error or a cancel the run's cleanup closes the node (outputs discarded).
        if st.status != Status::Open || self.has_error() {
            st.busy = false;
            return;
        }
        let mut effects = Effects::default();
        self.close_node(n, st, &mut effects, true);
        self.apply(&mut effects);
    }

    /// Grows (or, under `report_deadlock`, reports) every full input queue, but only while the
    /// graph is still as idle as when the idle handler started at `generation`: a queue that
    /// filled because new work just arrived is not a deadlock.
    fn resolve_deadlock(&self, generation: u64) {
        let mut effects = Effects::default();
        for n in 0..self.nodes.len() {
            let mut st = self.nodes[n].state.lock();
            if matches!(st.status, Status::Closed) {
                continue;
            }
            for port in 0..st.queues.len() {
                if !st.queues[port].full {
                    continue;
                }
                if !self.sched.is_quiet(generation) {
                    drop(st);
                    self.apply(&mut effects);
                    return;
                }
                let stream = self.spec.streams[self.spec.nodes[n].input_streams[port]]
                    .name
                    .clone();
                let size = st.queues[port].len();
                if self.spec.report_deadlock {
                    drop(st);
                    self.record_error(Error::Deadlock {
                        stream,
                        node: self.nodes[n].info.name.clone(),
                        size,
                    });
                    self.terminate();
                    return;
                }
                if let Some(occurrences) = st.deadlock_growths.occurred() {
                    tracing::warn!(
                        occurrences,
                        "throttling deadlock: growing input queue of stream \"{stream}\" of node \"{}\" to {} packets ({}; all are counted in the node's queue growths)",
                        self.nodes[n].info.name,
                        size + 1,
                        RepeatedWarning::NOTE
                    );
                }
                st.queues[port].limit = size + 1;
                st.stats.queue_growths += 1;
                self.queue_growths.fetch_add(1, Ordering::Relaxed);
                self.release_queue(n, port, &mut st, &mut effects);
            }
        }
        self.apply(&mut effects);
    }

    // ----- throttling -----

    fn is_throttled(&self, slot: usize) -> bool {
        self.throttle[slot].load(Ordering::SeqCst) > 0
    }

    /// Marks a queue full if it reached its limit.
    fn check_full(&self, n: NodeId, port: usize, st: &mut NodeState) {
        let q = &mut st.queues[port];
        if !q.full && q.len() >= q.limit {
            q.full = true;
            for &slot in &self.queue_sources[n][port] {
                self.throttle[slot].fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    /// Releases a queue that was full; sources whose count drops to zero are woken later.
    fn release_queue(&self, n: NodeId, port: usize, st: &mut NodeState, effects: &mut Effects) {
        let q = &mut st.queues[port];
        if q.full {
            q.full = false;
            for &slot in &self.queue_sources[n][port] {
                if self.throttle[slot].fetch_sub(1, Ordering::SeqCst) == 1 {
                    effects.unthrottled.push(slot);
                }
            }
        }
    }

    fn release_drained(&self, n: NodeId, st: &mut NodeState, effects: &mut Effects) {
        for port in 0..st.queues.len() {
            let q = &st.queues[port];
            if q.full && q.len() < q.limit {
                self.release_queue(n, port, st, effects);
            }
        }
    }

    fn wake(&self, slot: usize) {
        if slot < self.nodes.len() {
            let mut st = self.nodes[slot].state.lock();
            if st.source_waiting && !self.is_throttled(slot) {
                st.source_waiting = false;
                st.busy = true;
                self.push_source(slot, &st);
            }
        } else {
            let _g = self.inputs.lock();
            self.inputs_cv.notify_all();
        }
    }

    fn push_source(&self, n: NodeId, st: &NodeState) {
        let order = st
            .outputs
            .iter()
            .map(|o| o.bound)
            .min()
            .unwrap_or(Timestamp::DONE);
        self.sched.push(Task {
            kind: TaskKind::Source {
                layer: self.nodes[n].layer,
                order,
            },
            node: n,
        });
    }

    // ----- graph inputs -----

    /// Index of a graph input stream by name.
    pub(crate) fn input_index(&self, name: &str) -> Result<usize> {
        self.spec
            .input_streams
            .iter()
            .position(|&s| self.spec.streams[s].name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = self
                    .spec
                    .input_streams
                    .iter()
                    .map(|&s| self.spec.streams[s].name.as_str())
                    .collect();
                Error::NotFound(format!(
                    "graph input stream \"{name}\" (the graph's input streams are: {})",
                    known.join(", ")
                ))
            })
    }

    /// Adds a packet to graph input `i`, waiting while throttled if `wait`.
    pub(crate) fn add_input_packet(&self, i: usize, packet: Packet, wait: bool) -> Result<()> {
        let stream_id = self.spec.input_streams[i];
        let stream = &self.spec.streams[stream_id];
        let slot = self.nodes.len() + i;
        let mut inputs = self.inputs.lock();
        loop {
            if self.has_error() {
                return Err(Error::FailedPrecondition(format!(
                    "graph has errors: {}",
                    self.errors_summary()
                )));
            }
            if self.is_terminated() {
                return Err(Error::FailedPrecondition("the graph run has ended".into()));
            }
            if !self.is_throttled(slot) {
                break;
            }
            if !wait {
                return Err(Error::Throttled(stream.name.clone()));
            }
            if self.sched.is_worker_thread() {
                // The queue may drain only on this very thread: waiting could be forever.
                return Err(Error::FailedPrecondition(format!(
                    "add_packet to graph input stream \"{}\" would wait for its full queues, but was called from inside the run (an output stream observer or a calculator), whose thread may be the one that drains them; add it from outside the run, handle Throttled with AddMode::AddIfNotFull, or feed it through a back edge",
                    stream.name
                )));
            }
            if self.spec.application_thread {
                // The nodes that would drain the queue run on this thread.
                MutexGuard::unlocked(&mut inputs, || {
                    self.drive(|| {
                        !self.is_throttled(slot) || self.has_error() || self.is_terminated()
                    })
                });
                continue;
            }
            self.inputs_cv
                .wait_for(&mut inputs, Duration::from_millis(100));
        }
        let err = |message: String| Error::Stream {
            stream: stream.name.clone(),
            message,
        };
        if inputs.closed[i] {
            return Err(err("the graph input stream is closed".into()));
        }
        let ts = packet.timestamp();
        if !ts.is_allowed_in_stream() {
            return Err(err(format!(
                "timestamp not specified or set to an illegal value ({ts:?})"
            )));
        }
        if ts < inputs.bounds[i] {
            return Err(err(format!(
                "packet timestamp mismatch: the minimum expected timestamp is {} but received {}",
                inputs.bounds[i], ts
            )));
        }
        if let Some(id) = packet.type_id() {
            if !stream.packet_type.accepts(id) {
                return Err(err(format!(
                    "packet of type {} added, but the stream carries {}",
                    packet.short_type_name(),
                    stream.packet_type
                )));
            }
        }
        let bound = ts.next_allowed_in_stream();
        inputs.bounds[i] = bound;
        self.sched.begin_external();
        drop(inputs);
        let mut packets = Vec::new();
        if !packet.is_empty() {
            packets.push(packet);
        }
        self.deliver_all(Delivery {
            stream: stream_id,
            packets,
            bound,
            header: None,
        });
        self.sched.end_external();
        Ok(())
    }

    /// Raises the bound of graph input `i`.
    pub(crate) fn set_input_bound(&self, i: usize, bound: Timestamp) -> Result<()> {
        let mut inputs = self.inputs.lock();
        if inputs.closed[i] || bound <= inputs.bounds[i] {
            return Ok(());
        }
        inputs.bounds[i] = bound;
        self.sched.begin_external();
        drop(inputs);
        self.deliver_all(Delivery {
            stream: self.spec.input_streams[i],
            packets: Vec::new(),
            bound,
            header: None,
        });
        self.sched.end_external();
        Ok(())
    }

    /// Closes graph input `i` (idempotent).
    pub(crate) fn close_input(&self, i: usize) {
        let mut inputs = self.inputs.lock();
        if inputs.closed[i] {
            return;
        }
        self.sched.begin_external();
        drop(inputs);
        self.deliver_all(Delivery {
            stream: self.spec.input_streams[i],
            packets: Vec::new(),
            bound: Timestamp::DONE,
            header: None,
        });
        inputs = self.inputs.lock();
        inputs.closed[i] = true;
        inputs.bounds[i] = Timestamp::DONE;
        drop(inputs);
        self.sched.end_external();
    }

    pub(crate) fn all_inputs_closed(&self) -> bool {
        self.inputs.lock().closed.iter().all(|c| *c)
    }

    /// The value of a side packet, if set.
    pub(crate) fn side_packet(&self, id: SidePacketId) -> Option<Packet> {
        self.side_packets.read()[id].clone()
    }

    /// Writes the run's trace (if it was recorded) as Chrome trace-event JSON.
    pub(crate) fn write_trace(&self, path: &std::path::Path) -> Result<()> {
        let guards: Vec<_> = self.nodes.iter().map(|n| n.state.lock()).collect();
        let empty = NodeTrace::default();
        let infos: Vec<trace::NodeTraceInfo<'_>> = guards
            .iter()
            .enumerate()
            .map(|(i, st)| trace::NodeTraceInfo {
                name: &self.nodes[i].info.name,
                calculator: &self.nodes[i].info.calculator,
                executor: self.spec.nodes[i].executor.as_deref(),
                input_streams: self.spec.nodes[i]
                    .input_streams
                    .iter()
                    .map(|&s| self.spec.streams[s].name.as_str())
                    .collect(),
                trace: st.trace.as_ref().unwrap_or(&empty),
            })
            .collect();
        trace::write_chrome_trace(path, &infos)
    }

    /// A snapshot of every node's counters.
    pub(crate) fn stats(&self) -> Vec<NodeStats> {
        self.nodes
            .iter()
            .map(|node| {
                let st = node.state.lock();
                let mut s = st.stats.clone();
                s.process_p50 = st.process_times.percentile(0.5);
                s.process_p99 = st.process_times.percentile(0.99);
                for (i, q) in st.queues.iter().enumerate() {
                    s.queue_high_water[i].1 = q.high_water;
                }
                s
            })
            .collect()
    }

    // ----- delivery -----

    fn deliver_all(&self, first: Delivery) {
        let mut effects = Effects::default();
        effects.deliveries.push(first);
        self.apply(&mut effects);
    }

    fn apply(&self, effects: &mut Effects) {
        let mut round = Vec::new();
        loop {
            if !effects.deliveries.is_empty() {
                // In order; deliveries they cause are applied in the next round. The two
                // buffers trade places, so their capacity is reused.
                std::mem::swap(&mut round, &mut effects.deliveries);
                for d in round.drain(..) {
                    self.deliver(d, effects);
                }
                continue;
            }
            if let Some((id, packet)) = effects.side_packets.pop() {
                self.side_packets.write()[id] = Some(packet);
                for c in &self.spec.side_packets[id].consumers {
                    self.try_open(c.node);
                }
                continue;
            }
            if let Some(slot) = effects.unthrottled.pop() {
                self.wake(slot);
                continue;
            }
            if let Some(n) = effects.opened.take() {
                for &s in &self.spec.nodes[n].output_streams {
                    for c in &self.spec.streams[s].consumers {
                        self.try_open(c.node);
                    }
                }
                continue;
            }
            break;
        }
        if round.capacity() > effects.deliveries.capacity() {
            effects.deliveries = round;
        }
    }

    fn deliver(&self, d: Delivery, effects: &mut Effects) {
        let stream = &self.spec.streams[d.stream];
        let sinks = &self.sinks[d.stream];
        for observer in &sinks.observers {
            let mut o = observer.lock();
            let called = d
                .packets
                .iter()
                .try_for_each(|p| o.call(p).map_err(|e| (p.timestamp(), e)))
                .and_then(|_| o.settle(d.bound).map_err(|e| (d.bound, e)));
            if let Err((at, e)) = called {
                self.record_error(Error::Stream {
                    stream: stream.name.clone(),
                    message: format!("output stream observer failed at {at}: {e}"),
                });
            }
        }
        for poller in &sinks.pollers {
            poller.push(self, &d.packets, d.bound);
            if d.bound == Timestamp::DONE {
                poller.finish();
            }
        }
        let mut d = d;
        let last = stream.consumers.len().saturating_sub(1);
        for (k, c) in stream.consumers.iter().enumerate() {
            let mut st = self.nodes[c.node].state.lock();
            if matches!(
                st.status,
                Status::Closed | Status::Closing | Status::OpenFailed
            ) {
                continue;
            }
            let q = &mut st.queues[c.port];
            if let Some(h) = &d.header {
                q.header = h.clone();
            }
            for i in 0..d.packets.len() {
                let p = &d.packets[i];
                if let Err(message) = q.check_timestamp(p.timestamp()) {
                    let port = self.nodes[c.node]
                        .info
                        .contract
                        .inputs()
                        .entry(c.port)
                        .tag_index();
                    drop(st);
                    self.record_error(Error::Stream {
                        stream: stream.name.clone(),
                        message: format!(
                            "{message} (input {port} of node \"{}\")",
                            self.nodes[c.node].info.name
                        ),
                    });
                    return;
                }
                // The last consumer takes the packet itself; the others share it.
                q.push(if k == last {
                    std::mem::take(&mut d.packets[i])
                } else {
                    p.clone()
                });
            }
            q.raise_bound(d.bound);
            if d.bound == Timestamp::DONE {
                q.close();
            }
            let depth = st.queues[c.port].len();
            if let Some(t) = st.trace.as_mut() {
                t.push(TraceEvent::Queue {
                    port: c.port,
                    at_ns: trace::since(self.epoch),
                    depth,
                });
            }
            self.check_full(c.node, c.port, &mut st);
            self.after_input_change(c.node, &mut st, effects);
        }
    }

    /// Schedules the node if it became ready; otherwise propagates offset bounds.
    fn after_input_change(&self, n: NodeId, st: &mut NodeState, effects: &mut Effects) {
        if st.status != Status::Open || st.busy || self.nodes[n].is_source {
            return;
        }
        // Parallel calls: all copies busy; the next to finish checks again.
        if st.parallel.as_ref().is_some_and(|p| p.idle.is_empty()) {
            return;
        }
        let mut dropped = 0;
        let r = st.handler.readiness(&mut st.queues, &mut dropped);
        if dropped > 0 {
            st.stats.dropped += dropped;
            self.release_drained(n, st, effects);
        }
        match r {
            Readiness::NotReady => self.propagate_offset_bounds(n, st, effects),
            _ => {
                st.ready = Some(r);
                st.busy = true;
                let task = Task {
                    kind: TaskKind::Process,
                    node: n,
                };
                if st.parallel.is_some() {
                    // Beside the calls running, on another thread.
                    self.sched.push_shared(task);
                } else {
                    self.sched.push(task);
                }
            }
        }
    }

    fn propagate_offset_bounds(&self, n: NodeId, st: &mut NodeState, effects: &mut Effects) {
        // Not past parallel calls whose outputs are not delivered yet.
        if st.parallel.as_ref().is_some_and(|p| !p.settled()) {
            return;
        }
        let input_bound = st.handler.input_bound(&st.queues);
        if !input_bound.is_range() {
            return;
        }
        for (i, o) in st.outputs.iter_mut().enumerate() {
            let Some(offset) = o.offset else { continue };
            if o.closed {
                continue;
            }
            let b = input_bound + offset;
            if b > o.bound {
                o.bound = b;
                effects.deliveries.push(Delivery {
                    stream: self.spec.nodes[n].output_streams[i],
                    packets: Vec::new(),
                    bound: b,
                    header: None,
                });
            }
        }
    }

    // ----- node tasks -----

    fn try_open(&self, n: NodeId) {
        let node = &self.nodes[n];
        if node.opened.load(Ordering::SeqCst)
            || !node
                .open_deps
                .iter()
                .all(|&d| self.nodes[d].opened.load(Ordering::SeqCst))
        {
            return;
        }
        {
            let side = self.side_packets.read();
            for &sp in &self.spec.nodes[n].side_inputs {
                let spec = &self.spec.side_packets[sp];
                let external_optional = spec.producer == SideProducer::External && spec.optional;
                if side[sp].is_none() && !external_optional {
                    return;
                }
            }
        }
        let mut st = node.state.lock();
        if st.status == Status::Pending && !st.open_scheduled {
            st.open_scheduled = true;
            self.sched.push(Task {
                kind: TaskKind::Open,
                node: n,
            });
        }
    }

    fn run_task(&self, task: Task) {
        match task.kind {
            TaskKind::Open => self.open_node(task.node),
            TaskKind::Process => self.process_node(task.node),
            TaskKind::CloseLoop => self.close_loop_task(task.node),
            TaskKind::Source { .. } => self.run_source(task.node),
        }
    }

    fn prepare_shards(st: &mut NodeState, in_open: bool) {
        Self::reset_shards(&mut st.shards, &st.outputs, in_open);
    }

    /// Readies an invocation's shards: empty, starting from the outputs' current bounds.
    fn reset_shards(shards: &mut [OutputShard], outputs: &[OutputState], in_open: bool) {
        for (shard, o) in shards.iter_mut().zip(outputs) {
            shard.packets.clear();
            shard.bound_request = None;
            shard.close_request = false;
            shard.header = None;
            shard.offset = None;
            shard.start_bound = o.bound;
            shard.next_allowed = o.bound;
            shard.closed = o.closed;
            shard.emitted_any = o.emitted_any;
            shard.in_open = in_open;
        }
    }

    /// Turns an invocation's shards into deliveries and new output bounds.
    fn collect_outputs(&self, n: NodeId, st: &mut NodeState, ts: Timestamp, effects: &mut Effects) {
        let NodeState {
            shards,
            outputs,
            stats,
            side_out,
            trace: node_trace,
            ..
        } = st;
        for (i, (shard, o)) in shards.iter_mut().zip(outputs.iter_mut()).enumerate() {
            if shard.in_open && shard.offset.is_some() {
                o.offset = shard.offset;
            }
            if o.closed {
                continue;
            }
            let mut bound = o.bound.max(shard.next_allowed);
            if let (Some(offset), false) = (o.offset, shard.in_open) {
                if let Some(b) = offset_bound(ts, offset) {
                    bound = bound.max(b);
                }
            }
            o.emitted_any |= shard.emitted_any;
            if shard.close_request {
                o.closed = true;
                bound = Timestamp::DONE;
            }
            let changed = bound > o.bound;
            o.bound = bound;
            if !shard.packets.is_empty() || changed || shard.header.is_some() {
                stats.packets_out += shard.packets.len() as u64;
                let stream = self.spec.nodes[n].output_streams[i];
                let consumed = !self.spec.streams[stream].consumers.is_empty();
                if let Some(t) = node_trace.as_mut().filter(|_| consumed) {
                    let at_ns = trace::since(self.epoch);
                    for p in &shard.packets {
                        t.push(TraceEvent::FlowOut {
                            id: trace::flow_id(stream, p.timestamp()),
                            at_ns,
                        });
                    }
                }
                effects.add_output(stream, &mut shard.packets, bound, shard.header.take());
            }
        }
        for (port, slot) in side_out.iter_mut().enumerate() {
            if let Some(p) = slot.take() {
                effects
                    .side_packets
                    .push((self.spec.nodes[n].side_outputs[port], p));
            }
        }
    }

    /// Runs one calculator call with the lock released; returns the state lock again.
    fn invoke<'a>(
        &'a self,
        n: NodeId,
        mut st: MutexGuard<'a, NodeState>,
        phase: Phase,
        ts: Timestamp,
    ) -> (MutexGuard<'a, NodeState>, Result<Flow>) {
        let node = &self.nodes[n];
        let Some(mut calculator) = st.calculator.take() else {
            return (st, Err(Error::msg("internal: calculator missing")));
        };
        let mut inputs = std::mem::take(&mut st.inputs_buf);
        if phase != Phase::Process {
            inputs.clear();
            inputs.resize(st.queues.len(), Packet::empty());
        }
        let mut shards = std::mem::take(&mut st.shards);
        let mut side_out = std::mem::take(&mut st.side_out);
        drop(st);

        let call = self.call(
            n,
            &mut *calculator,
            phase,
            ts,
            &inputs,
            &mut shards,
            &mut side_out,
        );

        let mut st = node.state.lock();
        inputs.clear();
        st.inputs_buf = inputs;
        st.shards = shards;
        st.side_out = side_out;
        st.calculator = Some(calculator);
        let result = self.record_call(&mut st, phase, ts, call);
        (st, result)
    }

    /// One calculator call (no lock held), panics caught.
    #[allow(clippy::too_many_arguments)]
    fn call(
        &self,
        n: NodeId,
        calculator: &mut dyn DynCalculator,
        phase: Phase,
        ts: Timestamp,
        inputs: &[Packet],
        shards: &mut [OutputShard],
        side_out: &mut [Option<Packet>],
    ) -> CallOutcome {
        let node = &self.nodes[n];
        let headers = node.headers.get().map_or(&[][..], Vec::as_slice);
        let side_inputs = node.side_inputs.get().map_or(&[][..], Vec::as_slice);
        let started = quanta::Instant::now();
        let mut cx = CalculatorContext {
            info: &node.info,
            phase,
            input_timestamp: ts,
            inputs,
            input_headers: headers,
            outputs: shards,
            side_inputs,
            side_outputs: side_out,
            clock: &*self.clock,
            dropped: 0,
            progress: None,
        };
        let call = catch_unwind(AssertUnwindSafe(|| match phase {
            Phase::Open => calculator.open(&mut cx).map(|_| Flow::Continue),
            Phase::Process => calculator.process(&mut cx),
            Phase::Close => calculator.close(&mut cx).map(|_| Flow::Continue),
        }));
        let result = call.unwrap_or_else(|payload| Err(Error::Panic(panic_message(payload))));
        CallOutcome {
            result,
            dropped: cx.dropped,
            progress: cx.progress,
            started,
            elapsed: quanta::Instant::now().duration_since(started),
        }
    }

    /// Counts a finished call in the node's stats and trace; returns its result.
    fn record_call(
        &self,
        st: &mut NodeState,
        phase: Phase,
        ts: Timestamp,
        call: CallOutcome,
    ) -> Result<Flow> {
        st.stats.dropped += call.dropped;
        if call.progress.is_some() {
            st.stats.progress = call.progress;
        }
        if let Some(t) = st.trace.as_mut() {
            t.push(TraceEvent::Call {
                phase,
                input_ts: ts,
                start_ns: call.started.duration_since(self.epoch).as_nanos() as u64,
                dur_ns: call.elapsed.as_nanos() as u64,
                thread: trace::thread_number(),
            });
        }
        if phase == Phase::Process {
            st.stats.invocations += 1;
            st.stats.process_time += call.elapsed;
            st.process_times.record(call.elapsed);
        } else {
            st.stats.open_close_time += call.elapsed;
        }
        call.result
    }

    /// Creates the node's calculator (panics caught).
    fn create_calculator(&self, n: NodeId) -> Result<Box<dyn DynCalculator>> {
        let spec = &self.spec.nodes[n];
        catch_unwind(AssertUnwindSafe(|| {
            (spec.registration.create)(&spec.options)
        }))
        .unwrap_or_else(|payload| Err(Error::Panic(panic_message(payload))))
    }

    fn open_node(&self, n: NodeId) {
        let node = &self.nodes[n];
        let spec = &self.spec.nodes[n];
        let mut st = node.state.lock();
        if st.status != Status::Pending || self.has_error() {
            return;
        }
        st.status = Status::Opening;
        let _ = node
            .headers
            .set(st.queues.iter().map(|q| q.header.clone()).collect());
        {
            let side = self.side_packets.read();
            let _ = node.side_inputs.set(
                spec.side_inputs
                    .iter()
                    .map(|&sp| side[sp].clone().unwrap_or_default())
                    .collect(),
            );
        }
        // A node with `max_in_flight` above 1 opens that many copies, one after the other.
        // What the first outputs in `open` is delivered; what the others output there is
        // counted as dropped (their calls are independent: it is the same). If one fails,
        // those opened before it are closed, their outputs discarded.
        let copies = st.parallel.as_ref().map_or(1, |p| p.copies);
        // Each copy opens on the streams as they were before any opened.
        let outputs_before = st.outputs.clone();
        let mut effects = Effects::default();
        for copy in 0..copies {
            if copy > 0 && self.has_error() {
                // The run is failing: no use loading more copies.
                break;
            }
            let result = match self.create_calculator(n) {
                Ok(calculator) => {
                    st.calculator = Some(calculator);
                    let NodeState { shards, .. } = &mut *st;
                    Self::reset_shards(shards, &outputs_before, true);
                    let (again, result) = self.invoke(n, st, Phase::Open, Timestamp::UNSTARTED);
                    st = again;
                    result
                }
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                st.calculator = None;
                let error = self.node_error(n, Phase::Open, Timestamp::UNSTARTED, e);
                if st.parallel.as_ref().is_some_and(|p| !p.idle.is_empty()) {
                    self.close_node(n, st, &mut Effects::default(), false);
                    st = node.state.lock();
                }
                st.status = Status::OpenFailed;
                drop(st);
                self.record_error(error);
                return;
            }
            if copy == 0 {
                self.collect_outputs(n, &mut st, Timestamp::UNSTARTED, &mut effects);
            } else {
                Self::discard_outputs(&mut st);
            }
            let s = &mut *st;
            if let Some(p) = s.parallel.as_mut() {
                p.idle.extend(s.calculator.take());
            }
        }
        st.status = Status::Open;
        st.busy = true;
        node.opened.store(true, Ordering::SeqCst);
        effects.opened = Some(n);
        drop(st);
        self.finish_invocation(n, effects);
        if node.is_source {
            self.activate_late_source(n);
        }
    }

    /// A source that opens after its layer was activated (e.g. it waited for a side packet
    /// that a node produced while processing) starts at once.
    fn activate_late_source(&self, n: NodeId) {
        let mut book = self.sources.lock();
        if self.nodes[n].layer_rank >= book.next_layer {
            return;
        }
        let mut st = self.nodes[n].state.lock();
        if st.status == Status::Open && !st.busy {
            st.busy = true;
            book.active += 1;
            self.push_source(n, &st);
        }
    }

    /// Runs the node's ready `process` calls: one task makes up to [`MAX_BATCH_CALLS`] calls in a
    /// row (while the node stays ready and the calls so far took less than
    /// [`MAX_BATCH_TIME`]), then delivers their outputs together. Each call is exactly the call
    /// one task per timestamp would make; only the outputs of a batch reach the consumers at
    /// once, which saves a scheduling round and a consumer lock per packet when input has
    /// piled up. A node that is ready for one timestamp at a time (live video) makes one call.
    fn process_node(&self, n: NodeId) {
        let node = &self.nodes[n];
        let mut st = node.state.lock();
        if st.status != Status::Open || self.has_error() {
            st.busy = false;
            return;
        }
        if st.parallel.is_some() {
            self.process_parallel(n, st);
            return;
        }
        let mut effects = Effects::default();
        let mut calls = 0u32;
        let batch_start = st.stats.process_time;
        let mut stop = false;
        loop {
            let mut dropped = 0;
            let s = &mut *st;
            let readiness = match s.ready.take() {
                Some(r) if calls == 0 && s.handler.is_simple() => r,
                _ => s.handler.readiness(&mut s.queues, &mut dropped),
            };
            st.stats.dropped += dropped;
            let ts = match readiness {
                Readiness::Process(ts) => ts,
                // After a batch, the finish re-checks readiness and schedules what is due
                // (queues the readiness check just truncated may have room again).
                _ if calls > 0 => {
                    self.release_drained(n, &mut st, &mut effects);
                    break;
                }
                Readiness::NotReady => {
                    self.end_task_not_ready(n, st, effects);
                    return;
                }
                Readiness::Close => {
                    self.close_node(n, st, &mut effects, true);
                    self.apply(&mut effects);
                    return;
                }
            };
            let mut inputs = std::mem::take(&mut st.inputs_buf);
            self.take_input_set(n, &mut st, ts, &mut inputs, &mut effects);
            st.inputs_buf = inputs;
            Self::prepare_shards(&mut st, false);
            let (again, result) = self.invoke(n, st, Phase::Process, ts);
            st = again;
            match result {
                Ok(Flow::Continue) => {}
                Ok(Flow::Stop) => stop = true,
                Err(e) => {
                    // Outputs of the batch's earlier calls are still delivered.
                    st.busy = false;
                    drop(st);
                    self.record_error(self.node_error(n, Phase::Process, ts, e));
                    self.apply(&mut effects);
                    return;
                }
            }
            self.collect_outputs(n, &mut st, ts, &mut effects);
            calls += 1;
            if stop
                || calls >= MAX_BATCH_CALLS
                || st.stats.process_time - batch_start >= MAX_BATCH_TIME
            {
                break;
            }
        }
        drop(st);
        if stop {
            self.stop_sources();
        }
        self.finish_invocation(n, effects);
    }

    /// Ends a process task that found the node not ready: it may be scheduled again, the
    /// queue room its readiness check made is released, offset bounds move on.
    fn end_task_not_ready(
        &self,
        n: NodeId,
        mut st: MutexGuard<'_, NodeState>,
        mut effects: Effects,
    ) {
        st.busy = false;
        self.release_drained(n, &mut st, &mut effects);
        self.propagate_offset_bounds(n, &mut st, &mut effects);
        drop(st);
        self.apply(&mut effects);
    }

    /// Takes the input set at `ts` off the node's queues into `inputs` (counted, traced; the
    /// queues' room released).
    fn take_input_set(
        &self,
        n: NodeId,
        st: &mut NodeState,
        ts: Timestamp,
        inputs: &mut Vec<Packet>,
        effects: &mut Effects,
    ) {
        let NodeState {
            handler, queues, ..
        } = &mut *st;
        let skipped = handler.fill(ts, queues, inputs);
        st.stats.dropped += skipped;
        if let Some(t) = st.trace.as_mut() {
            let at_ns = trace::since(self.epoch);
            for (port, p) in inputs.iter().enumerate() {
                if !p.is_empty() {
                    let stream = self.spec.nodes[n].input_streams[port];
                    t.push(TraceEvent::FlowIn {
                        id: trace::flow_id(stream, p.timestamp()),
                        at_ns,
                    });
                }
            }
        }
        st.stats.packets_in += inputs.iter().filter(|p| !p.is_empty()).count() as u64;
        self.release_drained(n, st, effects);
    }

    /// One call of a node with `max_in_flight` above 1, on an idle copy of its calculator.
    /// The node may be scheduled again as soon as the call has taken its inputs (another copy
    /// takes the next set); the call's outputs wait until every earlier call's are delivered.
    /// The node closes once no call is running.
    fn process_parallel(&self, n: NodeId, mut st: MutexGuard<'_, NodeState>) {
        let mut effects = Effects::default();
        st.ready = None;
        let mut dropped = 0;
        let s = &mut *st;
        let readiness = s.handler.readiness(&mut s.queues, &mut dropped);
        st.stats.dropped += dropped;
        let settled = st.parallel.as_ref().is_none_or(ParallelCalls::settled);
        let copy = match readiness {
            Readiness::Process(_) => st.parallel.as_mut().and_then(|p| p.idle.pop()),
            _ => None,
        };
        let (ts, mut copy) = match (readiness, copy) {
            (Readiness::Process(ts), Some(copy)) => (ts, copy),
            (Readiness::Close, _) if settled => {
                self.close_node(n, st, &mut effects, true);
                self.apply(&mut effects);
                return;
            }
            // Not ready; or closing or no idle copy while calls run: the last call to finish
            // checks again.
            _ => {
                self.end_task_not_ready(n, st, effects);
                return;
            }
        };
        let spare = st.parallel.as_mut().and_then(|p| p.spare.pop());
        let mut buffers = spare.unwrap_or_else(|| CallBuffers {
            inputs: Vec::new(),
            shards: st
                .shards
                .iter()
                .map(|o| OutputShard::new(o.stream.clone(), o.packet_type.clone()))
                .collect(),
            side_out: vec![None; st.side_out.len()],
        });
        self.take_input_set(n, &mut st, ts, &mut buffers.inputs, &mut effects);
        Self::reset_shards(&mut buffers.shards, &st.outputs, false);
        let seq = st.parallel.as_mut().map_or(0, |p| {
            p.running += 1;
            p.next_call += 1;
            p.next_call - 1
        });
        // Another copy may take the next input set meanwhile.
        st.busy = false;
        self.after_input_change(n, &mut st, &mut effects);
        drop(st);
        self.apply(&mut effects);
        // What that made ready (the next call, a source woken by the room taken inputs left)
        // must not wait in this thread's local slot behind this call.
        self.sched.flush_local();

        let call = self.call(
            n,
            &mut *copy,
            Phase::Process,
            ts,
            &buffers.inputs,
            &mut buffers.shards,
            &mut buffers.side_out,
        );

        let mut st = self.nodes[n].state.lock();
        let result = self.record_call(&mut st, Phase::Process, ts, call);
        if let Some(p) = st.parallel.as_mut() {
            p.idle.push(copy);
            p.running -= 1;
            p.finished.insert(
                seq,
                FinishedCall {
                    ts,
                    buffers,
                    result,
                },
            );
        }
        // The finished calls that are next in order: their outputs join the node's outbox.
        let mut ordered = Effects::default();
        let (mut stop, mut error) = (false, None);
        while let Some(p) = st.parallel.as_mut() {
            let Some(mut done) = p.finished.remove(&p.next_delivery) else {
                break;
            };
            // On an error `next_delivery` stays: no later call's outputs are delivered.
            if let Err(e) = done.result {
                error = Some(self.node_error(n, Phase::Process, done.ts, e));
                break;
            }
            stop |= matches!(done.result, Ok(Flow::Stop));
            if let Some(e) = self.parallel_violation(n, &st, &done) {
                error = Some(e);
                break;
            }
            if let Some(p) = st.parallel.as_mut() {
                p.next_delivery += 1;
            }
            std::mem::swap(&mut st.shards, &mut done.buffers.shards);
            std::mem::swap(&mut st.side_out, &mut done.buffers.side_out);
            self.collect_outputs(n, &mut st, done.ts, &mut ordered);
            std::mem::swap(&mut st.shards, &mut done.buffers.shards);
            std::mem::swap(&mut st.side_out, &mut done.buffers.side_out);
            done.buffers.inputs.clear();
            if let Some(p) = st.parallel.as_mut() {
                p.spare.push(done.buffers);
            }
        }
        let draining = match st.parallel.as_mut() {
            Some(p) => {
                p.outbox.append(&mut ordered.deliveries);
                !std::mem::replace(&mut p.delivering, true)
            }
            None => false,
        };
        if draining {
            st = self.drain_outbox(n, st);
        }
        if error.is_none() {
            self.after_input_change(n, &mut st, &mut effects);
        }
        drop(st);
        self.apply(&mut ordered);
        self.apply(&mut effects);
        if let Some(e) = error {
            self.record_error(e);
        }
        if stop {
            self.stop_sources();
        }
    }

    /// Applies a parallel node's outbox until it is empty, then ends `delivering`: one thread
    /// at a time delivers the node's outputs, so they reach the consumers in order.
    fn drain_outbox<'a>(
        &'a self,
        n: NodeId,
        mut st: MutexGuard<'a, NodeState>,
    ) -> MutexGuard<'a, NodeState> {
        loop {
            let Some(p) = st.parallel.as_mut() else {
                return st;
            };
            if p.outbox.is_empty() {
                p.delivering = false;
                return st;
            }
            let mut effects = Effects::default();
            effects.deliveries = std::mem::take(&mut p.outbox);
            drop(st);
            self.apply(&mut effects);
            st = self.nodes[n].state.lock();
        }
    }

    /// What a parallel call sent that the calls before it make wrong: each call could only
    /// check its outputs against the streams as they were when it started, so the checks a
    /// call in sequence gets are made again at delivery (packet timestamps and bounds at or
    /// above the bound the earlier calls left, no packet on a stream they closed, a
    /// PostStream packet only on a stream with no other).
    fn parallel_violation(&self, n: NodeId, st: &NodeState, done: &FinishedCall) -> Option<Error> {
        let problem = done
            .buffers
            .shards
            .iter()
            .zip(&st.outputs)
            .find_map(|(shard, o)| {
                let first = shard.packets.first().map(Packet::timestamp);
                let message = if first.is_some() && o.closed {
                    "a packet was sent to a stream an earlier parallel call (max_in_flight) closed"
                        .to_string()
                } else if let Some(first) = first.filter(|&t| t < o.bound) {
                    format!(
                        "packet timestamp mismatch: the minimum expected timestamp is {} but received {first}; an earlier parallel call (max_in_flight) left the bound there",
                        o.bound
                    )
                } else if o.emitted_any
                    && shard.packets.iter().any(|p| p.timestamp() == Timestamp::POST_STREAM)
                {
                    "a PostStream packet must be the only packet of its stream (an earlier parallel call (max_in_flight) sent one)".to_string()
                } else if let Some(b) = shard.bound_request.filter(|&b| b < o.bound) {
                    format!(
                        "set_next_timestamp_bound({b}) would lower the bound {} an earlier parallel call (max_in_flight) announced",
                        o.bound
                    )
                } else {
                    return None;
                };
                Some((shard.stream.to_string(), message))
            })?;
        let (stream, message) = problem;
        Some(self.node_error(
            n,
            Phase::Process,
            done.ts,
            Error::Stream { stream, message },
        ))
    }

    /// Delivers an invocation's outputs while the node is still busy (so the next invocation
    /// cannot overtake them), then lets the node run again if it is ready.
    fn finish_invocation(&self, n: NodeId, mut effects: Effects) {
        self.apply(&mut effects);
        let mut st = self.nodes[n].state.lock();
        st.busy = false;
        self.after_input_change(n, &mut st, &mut effects);
        drop(st);
        self.apply(&mut effects);
    }

    fn run_source(&self, n: NodeId) {
        let node = &self.nodes[n];
        let mut st = node.state.lock();
        if st.status != Status::Open || self.has_error() {
            st.busy = false;
            return;
        }
        let mut effects = Effects::default();
        if self.stopping.load(Ordering::SeqCst) {
            self.close_node(n, st, &mut effects, true);
            self.apply(&mut effects);
            return;
        }
        if self.is_throttled(n) {
            st.busy = false;
            st.source_waiting = true;
            return;
        }
        Self::prepare_shards(&mut st, false);
        let ts = Timestamp::new(0);
        let (mut st, result) = self.invoke(n, st, Phase::Process, ts);
        let flow = match result {
            Ok(flow) => flow,
            Err(e) => {
                st.busy = false;
                drop(st);
                self.record_error(self.node_error(n, Phase::Process, ts, e));
                return;
            }
        };
        self.collect_outputs(n, &mut st, ts, &mut effects);
        if flow == Flow::Stop {
            self.close_node(n, st, &mut effects, true);
            self.apply(&mut effects);
            return;
        }
        drop(st);
        self.apply(&mut effects);
        let mut effects = Effects::default();
        let mut st = node.state.lock();
        if self.stopping.load(Ordering::SeqCst) {
            self.close_node(n, st, &mut effects, true);
        } else if self.is_throttled(n) {
            st.busy = false;
            st.source_waiting = true;
        } else {
            self.push_source(n, &st);
        }
        self.apply(&mut effects);
    }

    /// Calls `close`, then closes every output. `deliver` is false during cleanup after the
    /// run ended (outputs are discarded).
    fn close_node<'a>(
        &'a self,
        n: NodeId,
        mut st: MutexGuard<'a, NodeState>,
        effects: &mut Effects,
        deliver: bool,
    ) {
        st.status = Status::Closing;
        // A node with `max_in_flight` above 1 closes each copy in turn (no call is running);
        // `None`: the node's one calculator, already in place.
        let copies: Vec<Option<Box<dyn DynCalculator>>> = match st.parallel.as_mut() {
            Some(p) => std::mem::take(&mut p.idle).into_iter().map(Some).collect(),
            None => vec![None],
        };
        let mut errors = Vec::new();
        // Each copy closes on the streams as they were before any closed.
        let outputs_before = st.outputs.clone();
        for (round, copy) in copies.into_iter().enumerate() {
            if copy.is_some() {
                st.calculator = copy;
            }
            let NodeState { shards, .. } = &mut *st;
            Self::reset_shards(shards, &outputs_before, false);
            let (again, closed) = self.invoke(n, st, Phase::Close, Timestamp::DONE);
            st = again;
            st.calculator = None;
            // As in `open`: only the first copy's `close` outputs are delivered.
            if deliver && round == 0 {
                self.collect_outputs(n, &mut st, Timestamp::DONE, effects);
            } else if deliver {
                Self::discard_outputs(&mut st);
            }
            errors.extend(closed.err());
        }
        st.status = Status::Closed;
        st.busy = false;
        if deliver {
            for i in 0..st.outputs.len() {
                if !st.outputs[i].closed {
                    st.outputs[i].closed = true;
                    st.outputs[i].bound = Timestamp::DONE;
                    effects.deliveries.push(Delivery {
                        stream: self.spec.nodes[n].output_streams[i],
                        packets: Vec::new(),
                        bound: Timestamp::DONE,
                        header: None,
                    });
                }
            }
        }
        if deliver {
            // Packets still queued (a node closed early: EarlyClose handler, or `Flow::Stop`)
            // are never processed: counted as dropped.
            st.stats.dropped += st.queues.iter().map(|q| q.len() as u64).sum::<u64>();
        }
        for port in 0..st.queues.len() {
            st.queues[port].clear();
            self.release_queue(n, port, &mut st, effects);
        }
        drop(st);
        if self.nodes[n].is_source && deliver {
            let mut book = self.sources.lock();
            book.active = book.active.saturating_sub(1);
        }
        for e in errors {
            self.record_error(self.node_error(n, Phase::Close, Timestamp::DONE, e));
        }
    }

    /// Drops what a parallel node's extra copy sent in `open` or `close` (the first copy's
    /// outputs are the node's), counted as dropped.
    fn discard_outputs(st: &mut NodeState) {
        let NodeState { shards, stats, .. } = st;
        for shard in shards.iter_mut() {
            stats.dropped += shard.packets.len() as u64;
            shard.packets.clear();
        }
    }
}

/// The source slots upstream of stream `s`: a graph input's own slot, or its producer's.
fn stream_sources(
    spec: &GraphSpec,
    s: StreamId,
    node_sources: &[Vec<usize>],
    n: usize,
) -> Vec<usize> {
    match spec.streams[s].producer {
        Producer::GraphInput => spec
            .input_streams
            .iter()
            .position(|&x| x == s)
            .map(|i| vec![n + i])
            .unwrap_or_default(),
        Producer::Node { node, .. } => node_sources[node].clone(),
    }
}
