//! Core calculators: the MediaPipe `calculators/core` building blocks.
//!
//! | Calculator | What it does |
//! |---|---|
//! | [`PassThroughCalculator`] (alias `PassThrough`) | copies every input (and side packet) to the output of the same tag and index |
//! | [`GateCalculator`] | passes data streams only while allowed by `ALLOW`/`DISALLOW` |
//! | [`PreviousLoopbackCalculator`] | emits, at each `MAIN` timestamp, the `LOOP` packet of the previous one |
//! | [`MergeCalculator`] | merges several streams into one, lowest index first |
//! | [`mux::MuxCalculator`] | takes, at each `SELECT` timestamp, the packet of the selected `INPUT` |
//! | [`SidePacketToStreamCalculator`] | emits side packets as stream packets at a chosen timestamp |
//! | [`FlowLimiterCalculator`] | admits a bounded number of timestamps in flight; drops or queues the rest |
//! | [`CountingSourceCalculator`] | test source: 0, 1, 2, ... with optional injected errors |
//! | [`constant_side_packet::ConstantSidePacketCalculator`] | side packets written in the config |
//! | [`concatenate_vector::ConcatenateVectorCalculator`] | one vector from several, in input order |
//! | [`packet_presence::PacketPresenceCalculator`] | whether a stream has a packet at each timestamp |
//! | [`stream_to_side_packet::StreamToSidePacketCalculator`], [`stream_to_side_packet::DefaultSidePacketCalculator`] | side packets from a stream's first packet, or from a default |

mod counting_source;
mod flow_limiter;
mod gate;
mod merge;
mod pass_through;
mod previous_loopback;
mod side_packet_to_stream;

pub mod begin_end_loop;
pub mod clip_vector_size;
pub mod concatenate_vector;
pub mod constant_side_packet;
pub mod immediate_mux;
pub mod make_pair;
pub mod mux;
pub mod packet_cloner;
pub mod packet_presence;
pub mod packet_resampler;
pub mod packet_thinner;
pub mod round_robin_demux;
pub mod sequence_shift;
pub mod split_vector;
pub mod stream_to_side_packet;

pub use counting_source::{CountingSourceCalculator, CountingSourceOptions};
pub use flow_limiter::{FlowLimiterCalculator, FlowLimiterOptions};
pub use gate::{GateCalculator, GateCalculatorOptions, GateState};
pub use merge::MergeCalculator;
pub use pass_through::PassThroughCalculator;
pub use previous_loopback::PreviousLoopbackCalculator;
pub use side_packet_to_stream::SidePacketToStreamCalculator;
