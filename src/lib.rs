//! # mediagraph
//!
//! A MediaPipe-style dataflow graph framework: typed, immutable [`Packet`]s travel on
//! timestamped streams between [`Calculator`]s wired together by a YAML graph config.
//!
//! This crate is the embeddable facade: it re-exports the runtime
//! ([`mediagraph_framework`]) and links the bundled calculators ([`calculators`]), so that a
//! graph config can name any of them. The `mediagraph` binary (`mediagraph run`, `validate`,
//! `calculators`) is built on the same API; [`jsonl`] is the packet file format it reads and
//! writes.
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

pub mod jsonl;

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
