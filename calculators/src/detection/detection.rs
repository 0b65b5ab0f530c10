//! `Detection`: one detected object (MediaPipe's `Detection` proto, with a relative bounding
//! box as its only location).
//!
//! In `--dump` output a detection is
//!
//! ```json
//! {"label_ids": [4], "labels": ["Person"], "scores": [0.57],
//!  "relative_bounding_box": {"xmin": 0.41, "ymin": 0.22, "width": 0.08, "height": 0.31},
//!  "id": 12}
//! ```
//!
//! (`labels` is empty until a label map is applied; `id` is absent until something assigns
//! one, e.g. a detection-id or tracking calculator). A stream of detections carries
//! `Vec<Detection>` packets, one per frame (empty when nothing was found).

use serde::{Deserialize, Serialize, Serializer};

/// A box in relative coordinates: fractions of the frame's width and height, so `0..1` covers
/// the frame (MediaPipe's `LocationData.RelativeBoundingBox`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelativeBox {
    /// Left edge.
    #[serde(serialize_with = "short_f32")]
    pub xmin: f32,
    /// Top edge.
    #[serde(serialize_with = "short_f32")]
    pub ymin: f32,
    /// Width.
    #[serde(serialize_with = "short_f32")]
    pub width: f32,
    /// Height.
    #[serde(serialize_with = "short_f32")]
    pub height: f32,
}

/// The f64 whose shortest decimal form is `v`'s (so `0.15741408_f32` is written as
/// `0.15741408`, not `0.15741407871246338`, when JSON goes through `serde_json::Value`, as
/// `--dump` does); reading it back as f32 gives `v` again.
fn shortest_f64(v: f32) -> f64 {
    if v.is_finite() {
        v.to_string().parse().unwrap_or(f64::from(v))
    } else {
        f64::from(v)
    }
}

fn short_f32<S: Serializer>(v: &f32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(shortest_f64(*v))
}

fn short_f32_vec<S: Serializer>(v: &[f32], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|&x| shortest_f64(x)))
}

impl RelativeBox {
    /// The box with corners `(xmin, ymin)` and `(xmax, ymax)`.
    pub fn from_corners(xmin: f32, ymin: f32, xmax: f32, ymax: f32) -> RelativeBox {
        RelativeBox {
            xmin,
            ymin,
            width: xmax - xmin,
            height: ymax - ymin,
        }
    }

    /// Right edge.
    pub fn xmax(&self) -> f32 {
        self.xmin + self.width
    }

    /// Bottom edge.
    pub fn ymax(&self) -> f32 {
        self.ymin + self.height
    }

    /// Center `(x, y)`.
    pub fn center(&self) -> (f32, f32) {
        (self.xmin + self.width / 2.0, self.ymin + self.height / 2.0)
    }

    /// Area (0 for an empty or inverted box).
    pub fn area(&self) -> f32 {
        self.width.max(0.0) * self.height.max(0.0)
    }

    /// True if all four numbers are finite and the width and height are positive.
    pub fn is_valid(&self) -> bool {
        [self.xmin, self.ymin, self.width, self.height]
            .iter()
            .all(|v| v.is_finite())
            && self.width > 0.0
            && self.height > 0.0
    }

    /// The area both boxes cover.
    pub fn intersection_area(&self, other: &RelativeBox) -> f32 {
        let w = self.xmax().min(other.xmax()) - self.xmin.max(other.xmin);
        let h = self.ymax().min(other.ymax()) - self.ymin.max(other.ymin);
        w.max(0.0) * h.max(0.0)
    }

    /// Intersection over union, 0..1 (0 when the union is empty).
    pub fn iou(&self, other: &RelativeBox) -> f32 {
        let inter = self.intersection_area(other);
        let union = self.area() + other.area() - inter;
        if union > 0.0 {
            inter / union
        } else {
            0.0
        }
    }

    /// The part of the box inside the frame (`0..1` on both axes); may be empty.
    pub fn clipped(&self) -> RelativeBox {
        let xmin = self.xmin.clamp(0.0, 1.0);
        let ymin = self.ymin.clamp(0.0, 1.0);
        let xmax = self.xmax().clamp(0.0, 1.0);
        let ymax = self.ymax().clamp(0.0, 1.0);
        RelativeBox::from_corners(xmin, ymin, xmax, ymax)
    }
}

/// One detected object. `label_ids`, `labels` and `scores` run in parallel, best first (a
/// detector gives one entry; merging detections of one object may add more); `labels` is
/// empty until a label map is applied.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Detection {
    /// Class ids (indexes into the model's label map).
    #[serde(default)]
    pub label_ids: Vec<i32>,
    /// Class names, one per label id (filled by `DetectionLabelIdToTextCalculator`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// Confidences (0..1), one per label id.
    #[serde(default, serialize_with = "short_f32_vec")]
    pub scores: Vec<f32>,
    /// Where the object is, relative to the frame.
    pub relative_bounding_box: RelativeBox,
    /// Identity of the object across frames (MediaPipe's `detection_id`), assigned by
    /// tracking or id calculators; `None` straight out of a detector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
}

impl Detection {
    /// A detection of class `label_id` with `score` at `bbox`, without label text or id.
    pub fn new(label_id: i32, score: f32, bbox: RelativeBox) -> Detection {
        Detection {
            label_ids: vec![label_id],
            labels: Vec::new(),
            scores: vec![score],
            relative_bounding_box: bbox,
            id: None,
        }
    }

    /// The best score (the first), or 0 when there is none.
    pub fn score(&self) -> f32 {
        self.scores.first().copied().unwrap_or(0.0)
    }

    /// The best class id (the first), if any.
    pub fn label_id(&self) -> Option<i32> {
        self.label_ids.first().copied()
    }

    /// The best class name (the first), if labels were applied.
    pub fn label(&self) -> Option<&str> {
        self.labels.first().map(String::as_str)
    }

    /// The bounding box.
    pub fn bbox(&self) -> &RelativeBox {
        &self.relative_bounding_box
    }
}

mediagraph_framework::register_packet_type!(Detection, "Detection");
mediagraph_framework::register_packet_type!(Vec<Detection>, "Vec<Detection>");
// The generic core calculators on detections, under MediaPipe's names.
mediagraph_framework::register_calculator!(
    crate::core::concatenate_vector::ConcatenateVectorCalculator<Detection>,
    "ConcatenateDetectionVectorCalculator"
);
mediagraph_framework::register_calculator!(
    crate::core::split_vector::SplitVectorCalculator<Detection>,
    "SplitDetectionVectorCalculator"
);
mediagraph_framework::register_calculator!(
    crate::core::clip_vector_size::ClipVectorSizeCalculator<Detection>,
    "ClipDetectionVectorSizeCalculator"
);
mediagraph_framework::register_calculator!(
    crate::core::begin_end_loop::BeginLoopCalculator<Detection>,
    "BeginLoopDetectionCalculator"
);
mediagraph_framework::register_calculator!(
    crate::core::begin_end_loop::EndLoopCalculator<Detection>,
    "EndLoopDetectionCalculator"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_geometry() {
        let a = RelativeBox::from_corners(0.0, 0.0, 0.4, 0.4);
        let b = RelativeBox::from_corners(0.2, 0.2, 0.6, 0.6);
        assert!((a.intersection_area(&b) - 0.04).abs() < 1e-6);
        // union = 0.16 + 0.16 - 0.04
        assert!((a.iou(&b) - 0.04 / 0.28).abs() < 1e-6);
        assert_eq!(a.iou(&RelativeBox::default()), 0.0);
        let c = RelativeBox::from_corners(-0.1, 0.5, 0.3, 1.2).clipped();
        assert_eq!(c, RelativeBox::from_corners(0.0, 0.5, 0.3, 1.0));
        assert!(!RelativeBox::from_corners(0.5, 0.5, 0.4, 0.6).is_valid());
        assert!(!RelativeBox {
            xmin: f32::NAN,
            ..a
        }
        .is_valid());
        assert_eq!(a.center(), (0.2, 0.2));
    }

    #[test]
    fn json_shape() {
        let mut d = Detection::new(4, 0.5, RelativeBox::from_corners(0.25, 0.5, 0.5, 1.0));
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"label_ids": [4], "scores": [0.5],
                "relative_bounding_box": {"xmin": 0.25, "ymin": 0.5, "width": 0.25, "height": 0.5}})
        );
        d.labels = vec!["Person".into()];
        d.id = Some(7);
        let back: Detection = serde_json::from_value(serde_json::to_value(&d).unwrap()).unwrap();
        assert_eq!(back, d);
        assert_eq!(back.label(), Some("Person"));
        assert_eq!(back.label_id(), Some(4));
        assert_eq!(back.score(), 0.5);
    }

    #[test]
    fn floats_are_written_in_their_shortest_form() {
        let v = 0.157_414_08_f32;
        let d = Detection::new(1, v, RelativeBox::from_corners(v, 0.0, 1.0, 1.0));
        let text = serde_json::to_value(&d).unwrap().to_string();
        assert!(text.contains("\"xmin\":0.15741408,"), "{text}");
        assert!(text.contains("\"scores\":[0.15741408]"), "{text}");
        let back: Detection = serde_json::from_str(&text).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn core_vector_calculators_work_on_detections() {
        use crate::test_util::*;
        let mut g = graph(
            r#"
input_stream: [found]
node:
  - {calculator: ClipDetectionVectorSizeCalculator, input_stream: [found], output_stream: [best], options: {max_vec_size: 2}}
  - {calculator: SplitDetectionVectorCalculator, input_stream: [best], output_stream: [first, second], options: {ranges: [{begin: 0, end: 1}, {begin: 1, end: 2}]}}
  - {calculator: ConcatenateDetectionVectorCalculator, input_stream: [second, first], output_stream: [swapped]}
"#,
        );
        let out = record(&mut g, "swapped");
        g.start_run(Default::default()).unwrap();
        let d = |id: i32| Detection::new(id, 0.5, RelativeBox::from_corners(0.1, 0.1, 0.2, 0.2));
        g.add_packet("found", at(vec![d(1), d(2), d(3)], 0))
            .unwrap();
        g.finish().unwrap();
        let got = out.values::<Vec<Detection>>();
        assert_eq!(got, vec![(ts(0), vec![d(2), d(1)])]);
    }
}
