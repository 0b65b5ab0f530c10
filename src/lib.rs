//! # mediagraph
//!
//! A MediaPipe-style dataflow graph framework: typed, immutable [`Packet`]s travel on
//! timestamped streams between [`Calculator`]s wired together by a YAML graph config.
//!
//! This crate is the embeddable facade: it re-exports the runtime
//! ([`mediagraph_framework`]) and links the bundled calculators ([`calculators`]), so that a
//! graph config can name any of them. The `mediagraph` binary (`run`, `validate`,
//! `calculators`, `graph`, `schema`) is built on the same API: [`jsonl`] is the packet file
//! format it reads and writes, [`inspect`] lists calculators and formats run statistics,
//! [`render`] draws graphs (DOT, SVG, HTML) and [`schema`] describes graph files for editors.
//!
//! ## Load a graph, feed it, poll an output
//!
//! A graph comes from a YAML string ([`Graph::from_yaml_str`]) or file
//! ([`Graph::from_yaml_file`]); either is validated completely first, and every problem is
//! reported with its line and column. Pollers and observers are attached before
//! [`Graph::start_run`]; packets go in with [`Graph::add_packet`].
//!
//! ```
//! use mediagraph::{Graph, Packet, Timestamp};
//!
//! let mut graph = Graph::from_yaml_str(
//!     r#"
//! input_stream: in
//! output_stream: out
//! node:
//!   - calculator: PassThroughCalculator
//!     input_stream: in
//!     output_stream: out
//! "#,
//! )?;
//! let poller = graph.add_output_stream_poller("out")?;
//! graph.start_run(Default::default())?;
//! for t in 0..3 {
//!     graph.add_packet("in", Packet::new(t * 10).at(Timestamp::new(t)))?;
//! }
//! graph.close_input_stream("in")?;
//! graph.wait_until_done()?;
//!
//! let mut got = Vec::new();
//! while let Some(packet) = poller.next() {
//!     got.push((packet.timestamp().value(), *packet.get::<i64>()?));
//! }
//! assert_eq!(got, [(0, 0), (1, 10), (2, 20)]);
//! # Ok::<(), mediagraph::Error>(())
//! ```
//!
//! A bad config is refused with every error located:
//!
//! ```
//! let err = mediagraph::Graph::from_yaml_str("node:\n  - calculator: NoSuchCalculator\n")
//!     .err()
//!     .unwrap();
//! assert!(err.to_string().contains("2:17"), "{err}");
//! ```
//!
//! ## Observe an output as it is produced
//!
//! [`Graph::observe_output_stream`] calls a closure with every packet, on the worker thread
//! that produced it; [`Graph::finish`] closes the graph inputs and waits.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use mediagraph::{Graph, Packet};
//!
//! let mut graph = Graph::from_yaml_file(concat!(env!("CARGO_MANIFEST_DIR"), "/graphs/counting_demo.yaml"))?;
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let sink = seen.clone();
//! graph.observe_output_stream("counted", move |p: &Packet| {
//!     sink.lock().unwrap().push(*p.get::<i64>()?);
//!     Ok(())
//! })?;
//! graph.run(Default::default())?;
//! assert_eq!(*seen.lock().unwrap(), (0..10).collect::<Vec<i64>>());
//! # Ok::<(), mediagraph::Error>(())
//! ```
//!
//! ## Add a calculator of your own
//!
//! Implement [`Calculator`] (typed ports as constants, a contract, `process`), then register
//! it: at compile time with [`register_calculator!`], or at run time with
//! [`calculator::register`] (e.g. under a name chosen by configuration). Graphs loaded
//! afterwards can name it. `examples/custom_calculator.rs` is a complete program.
//!
//! ```
//! use mediagraph::prelude::*;
//!
//! /// Doubles every integer.
//! struct Double;
//! const IN: Input<i64> = Input::new("");
//! const OUT: Output<i64> = Output::new("");
//!
//! impl Calculator for Double {
//!     type Options = NoOptions;
//!     fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
//!         cc.declare(&[&IN, &OUT])
//!     }
//!     fn create(_: &NoOptions) -> Result<Self> {
//!         Ok(Double)
//!     }
//!     fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
//!         if let Some(v) = cx.input(&IN).get()? {
//!             let ts = cx.input_timestamp();
//!             cx.output(&OUT).send(v * 2, ts)?;
//!         }
//!         Ok(Flow::Continue)
//!     }
//! }
//!
//! mediagraph::calculator::register::<Double>("DoubleCalculator");
//! let mut graph = mediagraph::Graph::from_yaml_str(
//!     "input_stream: in\noutput_stream: out\nnode:\n  - {calculator: DoubleCalculator, input_stream: in, output_stream: out}\n",
//! )?;
//! let out = graph.add_output_stream_poller("out")?;
//! graph.start_run(Default::default())?;
//! graph.add_packet("in", Packet::new(21i64).at(Timestamp::new(0)))?;
//! graph.finish()?;
//! assert_eq!(*out.next().unwrap().get::<i64>()?, 42);
//! # Ok::<(), mediagraph::Error>(())
//! ```
//!
//! ## Slow nodes: executors, and copies in parallel
//!
//! A node that names an executor (`executor:` at the graph root, `executor: NAME` on the
//! node) runs on that executor's own threads, so it does not take the threads the other
//! nodes run on (the nodes after it still wait for its output). Two copies of
//! a slow node, each on its own executor, between `RoundRobinDemuxCalculator` and
//! `MuxCalculator`, process alternate packets in parallel and give them back in order
//! (`graphs/object_detection.yaml` does this with the detector):
//!
//! ```
//! use mediagraph::{Graph, Packet, Timestamp};
//!
//! let mut graph = Graph::from_yaml_str(
//!     r#"
//! input_stream: in
//! executor: [{name: left, options: {num_threads: 1}}, {name: right, options: {num_threads: 1}}]
//! node:
//!   - calculator: RoundRobinDemuxCalculator
//!     input_stream: in
//!     output_stream: ["OUTPUT:0:to_left", "OUTPUT:1:to_right", "SELECT:which"]
//!   - {calculator: PassThroughCalculator, input_stream: to_left, output_stream: from_left, executor: left}
//!   - {calculator: PassThroughCalculator, input_stream: to_right, output_stream: from_right, executor: right}
//!   - calculator: MuxCalculator
//!     input_stream: ["INPUT:0:from_left", "INPUT:1:from_right", "SELECT:which"]
//!     output_stream: ["OUTPUT:out"]
//! "#,
//! )?;
//! let poller = graph.add_output_stream_poller("out")?;
//! graph.start_run(Default::default())?;
//! for t in 0..100 {
//!     graph.add_packet("in", Packet::new(t).at(Timestamp::new(t)))?;
//! }
//! graph.finish()?;
//! let got: Vec<i64> = std::iter::from_fn(|| poller.next())
//!     .map(|p| *p.get::<i64>().unwrap())
//!     .collect();
//! assert_eq!(got, (0..100).collect::<Vec<i64>>());
//! # Ok::<(), mediagraph::Error>(())
//! ```
//!
//! Simpler, when the calculator declares independent calls (its calls depend only on their
//! inputs; `mediagraph calculators` marks those): `max_in_flight: N` on the node runs up to N
//! calls at once on N copies of the calculator and still gives the outputs back in order.
//! `executor: [{type: ApplicationThreadExecutor}]` does the opposite: the default executor
//! gets no threads, and its nodes run on the application's thread while it waits in a
//! [`Graph`] call (`finish`, `wait_until_done`, `wait_until_idle`, a throttled `add_packet`,
//! a poller's `next`), which makes a run single-threaded and deterministic:
//!
//! ```
//! use mediagraph::{Graph, Packet, Timestamp};
//!
//! for config in [
//!     "input_stream: in\nnode:\n  - {calculator: PassThroughCalculator, input_stream: in, output_stream: out, max_in_flight: 2}\n",
//!     "input_stream: in\nexecutor: [{type: ApplicationThreadExecutor}]\nnode:\n  - {calculator: PassThroughCalculator, input_stream: in, output_stream: out}\n",
//! ] {
//!     let mut graph = Graph::from_yaml_str(config)?;
//!     let poller = graph.add_output_stream_poller("out")?;
//!     graph.start_run(Default::default())?;
//!     for t in 0..100 {
//!         graph.add_packet("in", Packet::new(t).at(Timestamp::new(t)))?;
//!     }
//!     graph.finish()?;
//!     let got: Vec<i64> = std::iter::from_fn(|| poller.next())
//!         .map(|p| *p.get::<i64>().unwrap())
//!         .collect();
//!     assert_eq!(got, (0..100).collect::<Vec<i64>>());
//! }
//! # Ok::<(), mediagraph::Error>(())
//! ```
//!
//! ## Statistics, traces, cancellation
//!
//! [`Graph::stats`] gives per-node counters at any time (during a run: so far; after: the last
//! run), [`inspect::stats_table`] formats them. [`Graph::enable_trace`] (or
//! `profiler_config: {trace_path: FILE}` in the config) writes a Chrome trace-event file when
//! the run ends, which Perfetto (ui.perfetto.dev) and chrome://tracing open.
//! [`Graph::cancel`] can be called from any thread; the run then ends with
//! [`Error::Cancelled`] and the trace is still written.
//!
//! ```
//! use mediagraph::Graph;
//!
//! let dir = std::env::temp_dir().join(format!("mediagraph-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let trace = dir.join("trace.json");
//! let mut graph = Graph::from_yaml_file(concat!(env!("CARGO_MANIFEST_DIR"), "/graphs/counting_demo.yaml"))?;
//! graph.enable_trace(&trace)?;
//! graph.run(Default::default())?;
//!
//! let stats = graph.stats();
//! let source = stats.iter().find(|s| s.name == "source").unwrap();
//! assert_eq!(source.packets_out, 10);
//! let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
//! assert!(json["traceEvents"].as_array().unwrap().iter().any(|e| e["ph"] == "X"));
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), mediagraph::Error>(())
//! ```

#![warn(missing_docs)]

pub mod inspect;
pub mod jsonl;
pub mod render;
pub mod schema;

pub use mediagraph_framework::{
    bail, calculator, config, contract, error, graph, packet, port, prelude, register_calculator,
    register_packet_type, spec, timestamp, types, AddMode, AnyPacket, Calculator,
    CalculatorContext, Contract, Error, Flow, Graph, Input, Location, NoOptions, NodeStats, Output,
    OutputStreamPoller, Packet, PacketType, Result, SideInput, SideOutput, SidePackets, Timestamp,
    TimestampDiff,
};

/// The runtime crate, for everything not re-exported here.
pub use mediagraph_framework as framework;

/// The bundled calculators (pass-through, gate, merge, counting source, ...).
pub use mediagraph_calculators as calculators;
