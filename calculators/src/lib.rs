#![warn(missing_docs)]
//! # mediagraph-calculators
//!
//! The calculators that ship with mediagraph. Each one matches the MediaPipe calculator of the
//! same name (ports, tags, option field names and semantics), so a MediaPipe `.pbtxt` graph
//! translates line for line to a mediagraph YAML graph.
//!
//! * [`core`]: the framework-level building blocks (`PassThroughCalculator`, `GateCalculator`,
//!   `PreviousLoopbackCalculator`, `MergeCalculator`, `RoundRobinDemuxCalculator` and
//!   `MuxCalculator`, `PacketPresenceCalculator`, side packets from the config, a stream or a
//!   default (`ConstantSidePacketCalculator`, `StreamToSidePacketCalculator`,
//!   `DefaultSidePacketCalculator`, `SidePacketToStreamCalculator`), vector splitting and
//!   concatenation, `CountingSourceCalculator`, ...).
//! * [`image`]: the `ImageFrame` packet type, `ImageTransformationCalculator`,
//!   `AnnotationOverlayCalculator` and the render-agnostic `Annotations` they draw (OpenCV).
//! * [`detection`]: object detection on ONNX Runtime (`ImageToTensorCalculator`,
//!   `InferenceCalculator`, `TensorsToDetectionsCalculator`, `NonMaxSuppressionCalculator`,
//!   `DetectionLabelIdToTextCalculator`, `DetectionsToAnnotationsCalculator`) and the
//!   `Detection` type.
//! * [`association`]: detections and tracked boxes merged into tracked detections with
//!   persistent ids (`DetectionUniqueIdCalculator`, `DetectionsToTimedBoxListCalculator`,
//!   `TrackedDetectionManagerCalculator`).
//! * [`video`]: `OpenCvVideoDecoderCalculator`, `OpenCvVideoEncoderCalculator`,
//!   `CameraSourceCalculator`, `DisplaySinkCalculator` (OpenCV).
//!
//! Every calculator registers itself at link time; linking this crate is enough for YAML
//! graphs to name them.

pub mod association;
pub mod core;
pub mod detection;
pub mod image;
pub mod sample_data;
pub mod tracking;
pub mod tracking_calculators;
pub mod video;
pub mod video_header;

pub use video_header::VideoHeader;

/// Errors raised by this crate's calculators. They convert into
/// [`mediagraph_framework::Error`], which the runtime wraps with the failing node's name,
/// phase and input timestamp.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The node's ports or options do not fit the calculator.
    #[error("{calculator}: {message}")]
    Config {
        /// The calculator's registered name.
        calculator: &'static str,
        /// What is wrong.
        message: String,
    },

    /// An input side packet holds a value the calculator cannot use.
    #[error("input side packet {tag}: {message}")]
    SidePacket {
        /// The side packet's tag.
        tag: &'static str,
        /// What is wrong.
        message: String,
    },

    /// An error a test calculator was asked to produce (e.g. `CountingSourceCalculator`'s
    /// `ERROR_ON_OPEN` / `error_count`).
    #[error("expected error ({0})")]
    Injected(String),

    /// An OpenCV call failed; `what` says which operation.
    #[error("{what}: OpenCV error: {source}")]
    OpenCv {
        /// The operation that failed.
        what: String,
        /// OpenCV's error.
        #[source]
        source: opencv::Error,
    },

    /// A video file or device could not be opened, read or written.
    #[error("{path}: {message}")]
    Video {
        /// The file path or device (e.g. `camera 0`).
        path: String,
        /// What went wrong.
        message: String,
    },

    /// An image has a size or format an operation cannot handle.
    #[error("image: {0}")]
    Image(String),

    /// An input packet holds a value the calculator cannot use.
    #[error("{calculator}: input {port}: {message}")]
    BadInput {
        /// The calculator's registered name.
        calculator: &'static str,
        /// The input's tag.
        port: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl From<Error> for mediagraph_framework::Error {
    fn from(e: Error) -> Self {
        mediagraph_framework::Error::other(e)
    }
}

/// The crate's result type (errors are framework errors, so `?` works on both kinds).
pub type Result<T, E = mediagraph_framework::Error> = std::result::Result<T, E>;

#[cfg(test)]
pub(crate) mod test_util;
