#![warn(missing_docs)]
//! # mediagraph-framework
//!
//! The runtime of mediagraph, a MediaPipe-style dataflow graph framework: immutable shared
//! [`Packet`]s on timestamped streams, [`Calculator`]s declared by a [`Contract`] of typed
//! `TAG:index` ports, input stream handlers, timestamp bounds, side packets, back edges,
//! subgraphs and flow control, configured in YAML and validated at load.
//!
//! The crate has no native dependencies, so it builds and tests fast.

pub mod calculator;
pub mod clock;
pub mod config;
pub mod contract;
pub mod error;
pub mod graph;
mod handler;
pub mod packet;
pub mod port;
mod runtime;
mod scheduler;
pub mod spec;
mod stats;
mod stream;
pub mod timestamp;
mod trace;
pub mod types;

pub use calculator::{
    register, Calculator, CalculatorContext, CalculatorRegistration, Flow, InputRef, NoOptions,
    OutputRef, OutputShard, RepeatedWarning,
};
pub use contract::{
    AnyPacket, Contract, HandlerConfig, Input, Output, PortDescription, PortKind, SideInput,
    SideOutput,
};
pub use error::{Error, Location, Phase, Result};
pub use graph::{AddMode, CancelHandle, Graph, OutputStreamPoller, SidePackets};
pub use handler::{normalize_handler_name, HANDLER_NAMES};
pub use packet::{Packet, TypeInfo};
pub use runtime::NodeStats;
pub use timestamp::{Timestamp, TimestampDiff};
pub use types::PacketType;

/// Re-exported for the registration macros.
#[doc(hidden)]
pub use inventory;

/// Everything a calculator author needs, in one import.
pub mod prelude {
    pub use crate::calculator::{Calculator, CalculatorContext, Flow, NoOptions, RepeatedWarning};
    pub use crate::contract::{AnyPacket, Contract, Input, Output, SideInput, SideOutput};
    pub use crate::error::{Error, Result};
    pub use crate::packet::Packet;
    pub use crate::timestamp::{Timestamp, TimestampDiff};
    pub use crate::{bail, register_calculator};
}
