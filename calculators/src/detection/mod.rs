//! Object detection: the [`Detection`] type, and the calculators of MediaPipe's SSD detection
//! subgraph (`graphs/subgraphs/object_detection.yaml`), with ONNX Runtime for inference:
//!
//! ```text
//! IMAGE -> ImageToTensorCalculator -> InferenceCalculator -> TensorsToDetectionsCalculator
//!       -> NonMaxSuppressionCalculator -> DetectionLabelIdToTextCalculator -> DETECTIONS
//! ```
//!
//! * [`Detection`] / [`RelativeBox`]: label ids, names and scores, a box relative to the
//!   frame, an optional id; `Vec<Detection>` is the payload of detection streams.
//! * [`Tensor`]: f32 tensors; `Vec<Tensor>` is the payload of `TENSORS` streams.
//! * [`image_to_tensor()`] ([`ImageToTensorCalculator`]): stretch, normalize, NHWC / NCHW.
//! * [`OnnxModel`] ([`InferenceCalculator`]): an ONNX Runtime session, shapes checked.
//! * [`ssd`] ([`TensorsToDetectionsCalculator`]): SSD anchors, box decoding, scores.
//! * [`non_max_suppression`] ([`NonMaxSuppressionCalculator`]): default and weighted NMS.
//! * [`LabelMap`] ([`DetectionLabelIdToTextCalculator`]): class names.
//! * [`DetectionsToAnnotationsCalculator`]: boxes to draw with the annotation overlay.
//! * [`ObjectDetector`]: the whole chain as one plain value (for code outside graphs and for
//!   benchmarks), timing each stage.
//! * [`resources`]: where the model files and the ONNX Runtime library are found.

#[allow(clippy::module_inception)]
mod detection;
pub mod detections_to_annotations;
pub mod detector;
pub mod image_to_tensor;
pub mod inference;
pub mod label_map;
pub mod nms;
pub mod resources;
pub mod ssd;
mod tensor;

pub use detection::{Detection, RelativeBox};
pub use detections_to_annotations::{
    DetectionsToAnnotationsCalculator, DetectionsToAnnotationsCalculatorOptions,
};
pub use detector::{ObjectDetector, ObjectDetectorOptions, StageTimes};
pub use image_to_tensor::{
    image_to_tensor, FloatRange, ImageToTensorCalculator, ImageToTensorCalculatorOptions,
    TensorLayout,
};
pub use inference::{
    init_onnx_runtime, InferenceCalculator, InferenceCalculatorOptions, OnnxModel, TensorSpec,
};
pub use label_map::{
    DetectionLabelIdToTextCalculator, DetectionLabelIdToTextCalculatorOptions, LabelMap,
};
pub use nms::{
    non_max_suppression, NmsAlgorithm, NonMaxSuppressionCalculator,
    NonMaxSuppressionCalculatorOptions, OverlapType,
};
pub use ssd::{
    generate_anchors, Anchor, SsdAnchorsOptions, SsdDecoder, TensorsToDetectionsCalculator,
    TensorsToDetectionsCalculatorOptions,
};
pub use tensor::Tensor;

/// The bundled detector model (in the models directory; `scripts/setup model`).
pub const DEFAULT_MODEL: &str = "object_detection_ssd_mobilenetv2_oidv4.onnx";
/// The bundled detector's label map (in the models directory).
pub const DEFAULT_LABEL_MAP: &str = "object_detection_oidv4_labelmap.txt";

/// Errors of the detection calculators. They convert into [`mediagraph_framework::Error`].
#[derive(Debug, thiserror::Error)]
pub enum DetectionError {
    /// A tensor has the wrong size or shape.
    #[error("tensor: {0}")]
    Tensor(String),

    /// A model or label map file is missing, unreadable or invalid.
    #[error("{path}: {message}")]
    Model {
        /// The file (as given or resolved).
        path: String,
        /// What is wrong and what to do.
        message: String,
    },

    /// ONNX Runtime could not be loaded or failed.
    #[error("ONNX Runtime: {0}")]
    Runtime(String),
}

impl From<DetectionError> for mediagraph_framework::Error {
    fn from(e: DetectionError) -> Self {
        mediagraph_framework::Error::other(e)
    }
}
