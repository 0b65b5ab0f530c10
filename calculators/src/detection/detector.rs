//! [`ObjectDetector`]: the detection subgraph's chain as one plain value (tensor conversion,
//! inference, SSD decoding, NMS, labels), timing each stage. The calculators of
//! `graphs/subgraphs/object_detection.yaml` do the same steps one node each.

use std::time::{Duration, Instant};

use super::{
    image_to_tensor, non_max_suppression, Detection, FloatRange, ImageToTensorCalculatorOptions,
    LabelMap, NmsAlgorithm, NonMaxSuppressionCalculatorOptions, OnnxModel, OverlapType, SsdDecoder,
    TensorLayout, TensorsToDetectionsCalculatorOptions,
};
use crate::image::ImageFrame;
use crate::Result;

/// What an [`ObjectDetector`] is built from: the same options its calculators take.
#[derive(Clone, Debug)]
pub struct ObjectDetectorOptions {
    /// The `.onnx` model (see [`super::resources`]).
    pub model_path: String,
    /// ONNX Runtime intra-op threads.
    pub intra_op_threads: usize,
    /// The label map file; empty: no names.
    pub label_map_path: String,
    /// Tensor conversion.
    pub tensor: ImageToTensorCalculatorOptions,
    /// Decoding.
    pub decoding: TensorsToDetectionsCalculatorOptions,
    /// Suppression.
    pub nms: NonMaxSuppressionCalculatorOptions,
}

impl ObjectDetectorOptions {
    /// The bundled SSD MobileNetV2 OIDv4 detector as the detection subgraph configures it:
    /// 300x300 NCHW input in `[-1, 1]`, score threshold `min_score`, weighted NMS at IoU 0.4,
    /// at most 10 detections, OIDv4 label map.
    pub fn oidv4(min_score: f32) -> ObjectDetectorOptions {
        ObjectDetectorOptions {
            model_path: super::DEFAULT_MODEL.into(),
            intra_op_threads: 1,
            label_map_path: super::DEFAULT_LABEL_MAP.into(),
            tensor: ImageToTensorCalculatorOptions {
                output_tensor_width: 300,
                output_tensor_height: 300,
                output_tensor_float_range: FloatRange {
                    min: -1.0,
                    max: 1.0,
                },
                tensor_layout: TensorLayout::Nchw,
            },
            decoding: super::ssd::oidv4_ssd_options(min_score),
            nms: NonMaxSuppressionCalculatorOptions {
                min_suppression_threshold: 0.4,
                overlap_type: OverlapType::IntersectionOverUnion,
                algorithm: NmsAlgorithm::Weighted,
                max_num_detections: 10,
                ..NonMaxSuppressionCalculatorOptions::default()
            },
        }
    }
}

/// Time spent in each stage of one [`ObjectDetector::detect`] call.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StageTimes {
    /// Resize and normalize.
    pub preprocess: Duration,
    /// The model.
    pub inference: Duration,
    /// Decoding, NMS and labels.
    pub postprocess: Duration,
}

/// The whole detection chain on one frame.
///
/// ```no_run
/// use mediagraph_calculators::detection::{ObjectDetector, ObjectDetectorOptions};
/// use mediagraph_calculators::image::{ImageFormat, ImageFrame};
/// let frame = ImageFrame::new(ImageFormat::Srgb, 640, 480)?;
/// let mut detector = ObjectDetector::new(ObjectDetectorOptions::oidv4(0.4))?;
/// let (detections, times) = detector.detect(&frame)?;
/// # Ok::<(), mediagraph_framework::Error>(())
/// ```
#[derive(Debug)]
pub struct ObjectDetector {
    options: ObjectDetectorOptions,
    model: OnnxModel,
    decoder: SsdDecoder,
    labels: Option<LabelMap>,
}

impl ObjectDetector {
    /// Loads the model and label map and generates the anchors.
    pub fn new(options: ObjectDetectorOptions) -> Result<ObjectDetector> {
        let decoder =
            SsdDecoder::new(&options.decoding).map_err(|message| crate::Error::Config {
                calculator: "TensorsToDetectionsCalculator",
                message,
            })?;
        let model = OnnxModel::load(&options.model_path, options.intra_op_threads)?;
        let labels = if options.label_map_path.is_empty() {
            None
        } else {
            Some(LabelMap::load(&options.label_map_path)?)
        };
        Ok(ObjectDetector {
            options,
            model,
            decoder,
            labels,
        })
    }

    /// The model.
    pub fn model(&self) -> &OnnxModel {
        &self.model
    }

    /// Detections on `frame` (best first, labelled) and the time of each stage.
    pub fn detect(&mut self, frame: &ImageFrame) -> Result<(Vec<Detection>, StageTimes)> {
        let t0 = Instant::now();
        let input = image_to_tensor(frame, &self.options.tensor)?;
        let t1 = Instant::now();
        let outputs = self.model.run(&[input])?;
        let t2 = Instant::now();
        let raw = self.decoder.decode(&outputs)?;
        let mut detections = non_max_suppression(&raw, &self.options.nms);
        if let Some(map) = &self.labels {
            for d in &mut detections {
                map.apply(d, true);
            }
        }
        let t3 = Instant::now();
        Ok((
            detections,
            StageTimes {
                preprocess: t1 - t0,
                inference: t2 - t1,
                postprocess: t3 - t2,
            },
        ))
    }
}
