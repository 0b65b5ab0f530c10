//! SSD post-processing: anchor generation (MediaPipe's `SsdAnchorsCalculator` scheme), box
//! decoding and scoring (MediaPipe's `TensorsToDetectionsCalculator`), as plain functions, and
//! the `TensorsToDetectionsCalculator` that applies them to a model's output tensors.

use mediagraph_framework::prelude::*;
use serde::Deserialize;

use super::{Detection, DetectionError, RelativeBox, Tensor};

/// One anchor (prior box), relative to the model input: center and size.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Anchor {
    /// Horizontal center.
    pub x_center: f32,
    /// Vertical center.
    pub y_center: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
}

/// How anchors are laid out (MediaPipe's `SsdAnchorsCalculatorOptions`, same field names and
/// defaults).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SsdAnchorsOptions {
    /// Model input width in pixels (for feature map sizes from strides).
    pub input_size_width: u32,
    /// Model input height in pixels.
    pub input_size_height: u32,
    /// Scale of the first layer.
    pub min_scale: f32,
    /// Scale of the last layer.
    pub max_scale: f32,
    /// Anchor center offset within a feature map cell (default 0.5).
    pub anchor_offset_x: f32,
    /// Anchor center offset within a feature map cell (default 0.5).
    pub anchor_offset_y: f32,
    /// Number of output layers.
    pub num_layers: usize,
    /// Feature map widths per layer; if empty, `ceil(input_size_width / stride)`.
    pub feature_map_width: Vec<u32>,
    /// Feature map heights per layer; if empty, `ceil(input_size_height / stride)`.
    pub feature_map_height: Vec<u32>,
    /// Stride per layer.
    pub strides: Vec<u32>,
    /// Aspect ratios (width / height) of the anchors of each cell.
    pub aspect_ratios: Vec<f32>,
    /// The first layer uses 3 anchors: scale 0.1 at aspect 1, and the layer scale at aspects 2
    /// and 0.5.
    pub reduce_boxes_in_lowest_layer: bool,
    /// Aspect ratio of one more anchor per cell at scale `sqrt(s_i * s_{i+1})` (0 or less:
    /// none; default 1).
    pub interpolated_scale_aspect_ratio: f32,
    /// All anchors get width and height 1.
    pub fixed_anchor_size: bool,
}

impl Default for SsdAnchorsOptions {
    fn default() -> Self {
        SsdAnchorsOptions {
            input_size_width: 0,
            input_size_height: 0,
            min_scale: 0.0,
            max_scale: 0.0,
            anchor_offset_x: 0.5,
            anchor_offset_y: 0.5,
            num_layers: 0,
            feature_map_width: Vec::new(),
            feature_map_height: Vec::new(),
            strides: Vec::new(),
            aspect_ratios: Vec::new(),
            reduce_boxes_in_lowest_layer: false,
            interpolated_scale_aspect_ratio: 1.0,
            fixed_anchor_size: false,
        }
    }
}

/// The scale of layer `index` of `count`: linear from `min` to `max`.
fn layer_scale(min: f32, max: f32, index: usize, count: usize) -> f32 {
    if count == 1 {
        (min + max) * 0.5
    } else {
        min + (max - min) * index as f32 / (count - 1) as f32
    }
}

/// The anchors, in MediaPipe's order: layer, then row (y), then column (x), then anchor.
/// Consecutive layers with the same stride share one feature map.
pub fn generate_anchors(o: &SsdAnchorsOptions) -> std::result::Result<Vec<Anchor>, String> {
    if o.num_layers == 0 {
        return Err("anchors: num_layers must be positive".into());
    }
    if o.strides.len() != o.num_layers {
        return Err(format!(
            "anchors: strides has {} entries, num_layers is {}",
            o.strides.len(),
            o.num_layers
        ));
    }
    let explicit_maps = !o.feature_map_height.is_empty() || !o.feature_map_width.is_empty();
    if explicit_maps
        && (o.feature_map_height.len() != o.num_layers || o.feature_map_width.len() != o.num_layers)
    {
        return Err(format!(
            "anchors: feature_map_width and feature_map_height need {} entries each (got {} and {})",
            o.num_layers,
            o.feature_map_width.len(),
            o.feature_map_height.len()
        ));
    }
    if !explicit_maps && (o.input_size_width == 0 || o.input_size_height == 0) {
        return Err(
            "anchors: input_size_width/height are needed when feature map sizes are not given"
                .into(),
        );
    }
    if o.strides.contains(&0) {
        return Err("anchors: strides must be positive".into());
    }
    let scales_ok = [o.min_scale, o.max_scale].iter().all(|s| s.is_finite())
        && o.min_scale > 0.0
        && o.max_scale > 0.0;
    if !scales_ok {
        return Err(format!(
            "anchors: min_scale and max_scale must be positive (got {} and {})",
            o.min_scale, o.max_scale
        ));
    }
    if o.aspect_ratios.iter().any(|a| !(a.is_finite() && *a > 0.0)) {
        return Err(format!(
            "anchors: aspect_ratios must be positive (got {:?})",
            o.aspect_ratios
        ));
    }
    let n = o.strides.len();
    let mut anchors = Vec::new();
    let mut layer = 0;
    while layer < o.num_layers {
        let mut sizes: Vec<(f32, f32)> = Vec::new(); // (scale, aspect ratio)
        let mut last = layer;
        while last < n && o.strides[last] == o.strides[layer] {
            let scale = layer_scale(o.min_scale, o.max_scale, last, n);
            if last == 0 && o.reduce_boxes_in_lowest_layer {
                sizes.extend([(0.1, 1.0), (scale, 2.0), (scale, 0.5)]);
            } else {
                sizes.extend(o.aspect_ratios.iter().map(|&a| (scale, a)));
                if o.interpolated_scale_aspect_ratio > 0.0 {
                    let next = if last == n - 1 {
                        1.0
                    } else {
                        layer_scale(o.min_scale, o.max_scale, last + 1, n)
                    };
                    sizes.push(((scale * next).sqrt(), o.interpolated_scale_aspect_ratio));
                }
            }
            last += 1;
        }
        let (fm_h, fm_w) = if explicit_maps {
            (o.feature_map_height[layer], o.feature_map_width[layer])
        } else {
            let s = o.strides[layer];
            (
                o.input_size_height.div_ceil(s),
                o.input_size_width.div_ceil(s),
            )
        };
        if fm_h == 0 || fm_w == 0 {
            return Err(format!("anchors: layer {layer} has an empty feature map"));
        }
        for y in 0..fm_h {
            for x in 0..fm_w {
                for &(scale, aspect) in &sizes {
                    let r = aspect.sqrt();
                    let (w, h) = if o.fixed_anchor_size {
                        (1.0, 1.0)
                    } else {
                        (scale * r, scale / r)
                    };
                    anchors.push(Anchor {
                        x_center: (x as f32 + o.anchor_offset_x) / fm_w as f32,
                        y_center: (y as f32 + o.anchor_offset_y) / fm_h as f32,
                        w,
                        h,
                    });
                }
            }
        }
        layer = last;
    }
    Ok(anchors)
}

/// How raw box encodings become boxes (the decoding fields of MediaPipe's
/// `TensorsToDetectionsCalculatorOptions`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BoxCoding {
    /// Values per box in the box tensor.
    pub num_coords: usize,
    /// Index of the first box value within a box's values.
    pub box_coord_offset: usize,
    /// Divisor of the x center offset.
    pub x_scale: f32,
    /// Divisor of the y center offset.
    pub y_scale: f32,
    /// Divisor of the width term.
    pub w_scale: f32,
    /// Divisor of the height term.
    pub h_scale: f32,
    /// Sizes are `exp(t / scale) * anchor` (else `t / scale * anchor`).
    pub apply_exponential_on_box_size: bool,
    /// Values are `x, y, w, h` (else `y, x, h, w`).
    pub reverse_output_order: bool,
}

/// Decodes one box encoding against its anchor into `(xmin, ymin, xmax, ymax)`:
/// `yc = ty / y_scale * ha + ya`, `xc = tx / x_scale * wa + xa`,
/// `h = exp(th / h_scale) * ha`, `w = exp(tw / w_scale) * wa` (linear without
/// `apply_exponential_on_box_size`).
pub fn decode_box(raw: &[f32], anchor: &Anchor, c: &BoxCoding) -> [f32; 4] {
    let o = c.box_coord_offset;
    let (mut yc, mut xc, mut h, mut w) = (raw[o], raw[o + 1], raw[o + 2], raw[o + 3]);
    if c.reverse_output_order {
        (xc, yc, w, h) = (raw[o], raw[o + 1], raw[o + 2], raw[o + 3]);
    }
    xc = xc / c.x_scale * anchor.w + anchor.x_center;
    yc = yc / c.y_scale * anchor.h + anchor.y_center;
    if c.apply_exponential_on_box_size {
        h = (h / c.h_scale).exp() * anchor.h;
        w = (w / c.w_scale).exp() * anchor.w;
    } else {
        h = h / c.h_scale * anchor.h;
        w = w / c.w_scale * anchor.w;
    }
    [xc - w / 2.0, yc - h / 2.0, xc + w / 2.0, yc + h / 2.0]
}

/// Logistic function.
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Options of [`TensorsToDetectionsCalculator`] (MediaPipe's
/// `TensorsToDetectionsCalculatorOptions`; `anchors` holds what MediaPipe's
/// `SsdAnchorsCalculator` takes, and `clip_boxes` is ours).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TensorsToDetectionsCalculatorOptions {
    /// Classes per box in the score tensor (including the background class).
    pub num_classes: usize,
    /// Boxes (= anchors).
    pub num_boxes: usize,
    /// Values per box in the box tensor (default 4).
    pub num_coords: usize,
    /// Index of the first box value within a box's values (default 0).
    pub box_coord_offset: usize,
    /// Box decoding divisors (required, positive; 10, 10, 5, 5 for the SSD models).
    pub x_scale: f32,
    /// See `x_scale`.
    pub y_scale: f32,
    /// See `x_scale`.
    pub w_scale: f32,
    /// See `x_scale`.
    pub h_scale: f32,
    /// Sizes are exponential in the encoding (SSD: true).
    pub apply_exponential_on_box_size: bool,
    /// Box values are `x, y, w, h` instead of `y, x, h, w`.
    pub reverse_output_order: bool,
    /// Apply the logistic function to the raw scores (for logits).
    pub sigmoid_score: bool,
    /// Clamp raw scores to `-t..t` before the sigmoid.
    pub score_clipping_thresh: Option<f32>,
    /// Keep boxes whose best score is at least this.
    pub min_score_thresh: Option<f32>,
    /// Classes never reported (e.g. `[0]`, the background).
    pub ignore_classes: Vec<i32>,
    /// If not empty, the only classes reported.
    pub allow_classes: Vec<i32>,
    /// Keep at most this many detections, best first (-1: all).
    pub max_results: i32,
    /// Clip boxes to the frame (default true; MediaPipe does not).
    pub clip_boxes: bool,
    /// The anchor layout.
    pub anchors: SsdAnchorsOptions,
}

impl Default for TensorsToDetectionsCalculatorOptions {
    fn default() -> Self {
        TensorsToDetectionsCalculatorOptions {
            num_classes: 0,
            num_boxes: 0,
            num_coords: 4,
            box_coord_offset: 0,
            x_scale: 0.0,
            y_scale: 0.0,
            w_scale: 0.0,
            h_scale: 0.0,
            apply_exponential_on_box_size: false,
            reverse_output_order: false,
            sigmoid_score: false,
            score_clipping_thresh: None,
            min_score_thresh: None,
            ignore_classes: Vec::new(),
            allow_classes: Vec::new(),
            max_results: -1,
            clip_boxes: true,
            anchors: SsdAnchorsOptions::default(),
        }
    }
}

/// Turns a model's raw box and score tensors into detections, given the anchors; the plain
/// form of [`TensorsToDetectionsCalculator`].
#[derive(Clone, Debug)]
pub struct SsdDecoder {
    options: TensorsToDetectionsCalculatorOptions,
    anchors: Vec<Anchor>,
    /// `class_allowed[c]`: class `c` may be reported.
    class_allowed: Vec<bool>,
}

impl SsdDecoder {
    /// Checks the options and generates the anchors; the error says what is wrong.
    pub fn new(
        options: &TensorsToDetectionsCalculatorOptions,
    ) -> std::result::Result<Self, String> {
        let o = options;
        if o.num_classes == 0 || o.num_boxes == 0 {
            return Err(format!(
                "num_classes and num_boxes must be positive (got {} and {})",
                o.num_classes, o.num_boxes
            ));
        }
        if o.num_coords < o.box_coord_offset + 4 {
            return Err(format!(
                "num_coords ({}) must be at least box_coord_offset + 4 ({})",
                o.num_coords,
                o.box_coord_offset + 4
            ));
        }
        let scales = [o.x_scale, o.y_scale, o.w_scale, o.h_scale];
        if scales.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(format!(
                "x_scale, y_scale, w_scale and h_scale must be positive (got {scales:?})"
            ));
        }
        let anchors = generate_anchors(&o.anchors)?;
        if anchors.len() != o.num_boxes {
            return Err(format!(
                "the anchor options give {} anchors, but num_boxes is {}",
                anchors.len(),
                o.num_boxes
            ));
        }
        let class_allowed = (0..o.num_classes)
            .map(|c| {
                let c = c as i32;
                !o.ignore_classes.contains(&c)
                    && (o.allow_classes.is_empty() || o.allow_classes.contains(&c))
            })
            .collect();
        Ok(SsdDecoder {
            options: o.clone(),
            anchors,
            class_allowed,
        })
    }

    /// The anchors.
    pub fn anchors(&self) -> &[Anchor] {
        &self.anchors
    }

    fn coding(&self) -> BoxCoding {
        let o = &self.options;
        BoxCoding {
            num_coords: o.num_coords,
            box_coord_offset: o.box_coord_offset,
            x_scale: o.x_scale,
            y_scale: o.y_scale,
            w_scale: o.w_scale,
            h_scale: o.h_scale,
            apply_exponential_on_box_size: o.apply_exponential_on_box_size,
            reverse_output_order: o.reverse_output_order,
        }
    }

    /// Detections from `tensors[0]` (boxes, `num_boxes * num_coords` values) and `tensors[1]`
    /// (scores, `num_boxes * num_classes` values): per box the best allowed class, its score
    /// (sigmoid if asked), kept if at least `min_score_thresh`; sorted by score, best first.
    pub fn decode(&self, tensors: &[Tensor]) -> Result<Vec<Detection>> {
        let o = &self.options;
        let [boxes, scores] = match tensors {
            [b, s, ..] => [b, s],
            _ => {
                return Err(DetectionError::Tensor(format!(
                    "expected 2 tensors (boxes, scores), got {}",
                    tensors.len()
                ))
                .into())
            }
        };
        let need_boxes = o.num_boxes * o.num_coords;
        let need_scores = o.num_boxes * o.num_classes;
        if boxes.len() != need_boxes || scores.len() != need_scores {
            return Err(DetectionError::Tensor(format!(
                "expected a box tensor of {} x {} values and a score tensor of {} x {} values, got shapes {:?} ({}) and {:?} ({}); check num_boxes, num_coords, num_classes and the model's output order",
                o.num_boxes,
                o.num_coords,
                o.num_boxes,
                o.num_classes,
                boxes.shape(),
                boxes.name().unwrap_or("unnamed"),
                scores.shape(),
                scores.name().unwrap_or("unnamed"),
            ))
            .into());
        }
        let coding = self.coding();
        let mut out = Vec::new();
        let box_values = boxes.data().chunks_exact(o.num_coords);
        let class_values = scores.data().chunks_exact(o.num_classes);
        for ((raw_box, raw_scores), anchor) in box_values.zip(class_values).zip(&self.anchors) {
            let mut best: Option<(usize, f32)> = None;
            for (c, &s) in raw_scores.iter().enumerate() {
                if self.class_allowed[c] && s.is_finite() && best.is_none_or(|(_, b)| s > b) {
                    best = Some((c, s));
                }
            }
            let Some((class, mut score)) = best else {
                continue;
            };
            if let Some(t) = o.score_clipping_thresh {
                score = score.clamp(-t, t);
            }
            if o.sigmoid_score {
                score = sigmoid(score);
            }
            if o.min_score_thresh.is_some_and(|t| score < t) {
                continue;
            }
            let [xmin, ymin, xmax, ymax] = decode_box(raw_box, anchor, &coding);
            let mut bbox = RelativeBox::from_corners(xmin, ymin, xmax, ymax);
            if o.clip_boxes {
                bbox = bbox.clipped();
            }
            if !bbox.is_valid() {
                continue;
            }
            out.push(Detection::new(class as i32, score, bbox));
        }
        out.sort_by(|a, b| b.score().total_cmp(&a.score()));
        if let Ok(max) = usize::try_from(o.max_results) {
            out.truncate(max);
        }
        Ok(out)
    }
}

/// Decodes an SSD model's raw outputs into detections (MediaPipe's
/// `TensorsToDetectionsCalculator`, with the anchors of `SsdAnchorsCalculator` generated from
/// the `anchors` option instead of a side packet).
///
/// * Input streams: `TENSORS` (`Vec<`[`Tensor`]`>`: box encodings, then class scores).
/// * Output streams: `DETECTIONS` (`Vec<`[`Detection`]`>`, best first; empty when nothing
///   passes the threshold).
/// * Options ([`TensorsToDetectionsCalculatorOptions`]): `num_classes`, `num_boxes`,
///   `num_coords`, `x_scale`/`y_scale`/`w_scale`/`h_scale`, `apply_exponential_on_box_size`,
///   `sigmoid_score`, `min_score_thresh`, `ignore_classes`, `allow_classes`, `max_results`,
///   `clip_boxes`, `anchors` ([`SsdAnchorsOptions`]).
///
/// Anchors are generated and checked against `num_boxes` when the graph is loaded.
///
/// ```yaml
/// - calculator: TensorsToDetectionsCalculator
///   input_stream: ["TENSORS:raw"]
///   output_stream: ["DETECTIONS:detections"]
///   options:
///     num_classes: 24
///     num_boxes: 1917
///     x_scale: 10.0
///     y_scale: 10.0
///     w_scale: 5.0
///     h_scale: 5.0
///     apply_exponential_on_box_size: true
///     sigmoid_score: true
///     min_score_thresh: 0.4
///     ignore_classes: [0]
///     anchors: {num_layers: 6, min_scale: 0.2, max_scale: 0.95, ...}
/// ```
pub struct TensorsToDetectionsCalculator {
    decoder: SsdDecoder,
}

const TENSORS: Input<Vec<Tensor>> = Input::new("TENSORS");
const DETECTIONS: Output<Vec<Detection>> = Output::new("DETECTIONS");

impl Calculator for TensorsToDetectionsCalculator {
    type Options = TensorsToDetectionsCalculatorOptions;

    fn contract(cc: &mut Contract, options: &Self::Options) -> Result<()> {
        cc.declare(&[&TENSORS, &DETECTIONS])?;
        if let Err(message) = SsdDecoder::new(options) {
            return Err(cc.error(crate::Error::Config {
                calculator: "TensorsToDetectionsCalculator",
                message,
            }));
        }
        cc.set_timestamp_offset(0);
        cc.set_independent_calls(true);
        Ok(())
    }

    fn create(options: &Self::Options) -> Result<Self> {
        let decoder = SsdDecoder::new(options).map_err(|message| crate::Error::Config {
            calculator: "TensorsToDetectionsCalculator",
            message,
        })?;
        Ok(TensorsToDetectionsCalculator { decoder })
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let Some(tensors) = cx.input(&TENSORS).get()? else {
            return Ok(Flow::Continue);
        };
        let detections = self.decoder.decode(tensors)?;
        let ts = cx.input_timestamp();
        cx.output(&DETECTIONS).send(detections, ts)?;
        Ok(Flow::Continue)
    }
}

mediagraph_framework::register_calculator!(
    TensorsToDetectionsCalculator,
    "TensorsToDetectionsCalculator"
);

/// The anchor options of the bundled SSD MobileNetV2 OIDv4 detector (300x300 input, 1917
/// anchors), as in its MediaPipe graph.
pub fn oidv4_ssd_anchors() -> SsdAnchorsOptions {
    SsdAnchorsOptions {
        input_size_width: 300,
        input_size_height: 300,
        min_scale: 0.2,
        max_scale: 0.95,
        num_layers: 6,
        feature_map_width: vec![19, 10, 5, 3, 2, 1],
        feature_map_height: vec![19, 10, 5, 3, 2, 1],
        strides: vec![16, 32, 64, 128, 256, 512],
        aspect_ratios: vec![1.0, 2.0, 0.5, 3.0, 1.0 / 3.0],
        reduce_boxes_in_lowest_layer: true,
        ..SsdAnchorsOptions::default()
    }
}

/// The decoding options of the bundled SSD MobileNetV2 OIDv4 detector, with score threshold
/// `min_score`.
pub fn oidv4_ssd_options(min_score: f32) -> TensorsToDetectionsCalculatorOptions {
    TensorsToDetectionsCalculatorOptions {
        num_classes: 24,
        num_boxes: 1917,
        num_coords: 4,
        x_scale: 10.0,
        y_scale: 10.0,
        w_scale: 5.0,
        h_scale: 5.0,
        apply_exponential_on_box_size: true,
        sigmoid_score: true,
        min_score_thresh: Some(min_score),
        ignore_classes: vec![0],
        anchors: oidv4_ssd_anchors(),
        ..TensorsToDetectionsCalculatorOptions::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-5
    }

    fn single_anchor_options() -> TensorsToDetectionsCalculatorOptions {
        TensorsToDetectionsCalculatorOptions {
            num_classes: 3,
            num_boxes: 4,
            x_scale: 10.0,
            y_scale: 10.0,
            w_scale: 5.0,
            h_scale: 5.0,
            apply_exponential_on_box_size: true,
            sigmoid_score: true,
            min_score_thresh: Some(0.5),
            ignore_classes: vec![0],
            // A 2x2 feature map, one anchor per cell: centers at 0.25 / 0.75, size 0.5.
            anchors: SsdAnchorsOptions {
                num_layers: 1,
                min_scale: 0.5,
                max_scale: 0.5,
                strides: vec![2],
                feature_map_width: vec![2],
                feature_map_height: vec![2],
                aspect_ratios: vec![1.0],
                interpolated_scale_aspect_ratio: 0.0,
                ..SsdAnchorsOptions::default()
            },
            ..TensorsToDetectionsCalculatorOptions::default()
        }
    }

    #[test]
    fn anchors_of_a_tiny_layout() {
        let a = generate_anchors(&single_anchor_options().anchors).unwrap();
        assert_eq!(a.len(), 4);
        // Order: row, then column.
        let centers: Vec<(f32, f32)> = a.iter().map(|a| (a.x_center, a.y_center)).collect();
        assert_eq!(
            centers,
            vec![(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)]
        );
        assert!(a.iter().all(|a| a.w == 0.5 && a.h == 0.5));
    }

    #[test]
    fn anchor_options_errors() {
        let mut o = oidv4_ssd_anchors();
        o.strides.pop();
        assert!(generate_anchors(&o).unwrap_err().contains("strides"));
        let mut o = oidv4_ssd_anchors();
        o.feature_map_width.clear();
        o.feature_map_height.clear();
        // From strides: ceil(300 / 16) = 19, ... -> the same 1917 anchors.
        assert_eq!(generate_anchors(&o).unwrap().len(), 1917);
        o.min_scale = 0.0;
        assert!(generate_anchors(&o).unwrap_err().contains("min_scale"));
        let mut opts = oidv4_ssd_options(0.5);
        opts.num_boxes = 1000;
        assert!(SsdDecoder::new(&opts).unwrap_err().contains("1917 anchors"));
    }

    #[test]
    fn decoding_hand_made_tensors_gives_exact_boxes() {
        let d = SsdDecoder::new(&single_anchor_options()).unwrap();
        // Box 0: zero encoding -> the anchor itself. Box 1: shifted and scaled. Box 2: below
        // the threshold. Box 3: best class is the ignored background.
        let ln2x5 = 5.0 * 2f32.ln();
        #[rustfmt::skip]
        let boxes = vec![
            0.0, 0.0, 0.0, 0.0,
            1.0, -2.0, ln2x5, 0.0, // y +0.05, x -0.1, h x2, w x1
            0.0, 0.0, 0.0, 0.0,
            0.0, 0.0, 0.0, 0.0,
        ];
        #[rustfmt::skip]
        let scores = vec![
            0.0, 2.0, 1.0,  // class 1: sigmoid(2)
            0.0, -1.0, 3.0, // class 2: sigmoid(3)
            0.0, -1.0, -2.0, // best sigmoid(-1) < 0.5
            9.0, -5.0, -5.0, // background ignored; classes 1, 2 too low
        ];
        let t = [
            Tensor::new(vec![1, 4, 4], boxes).unwrap(),
            Tensor::new(vec![1, 4, 3], scores).unwrap(),
        ];
        let dets = d.decode(&t).unwrap();
        assert_eq!(dets.len(), 2, "{dets:?}");
        // Sorted by score: box 1 (sigmoid 3) first.
        assert_eq!(dets[0].label_ids, vec![2]);
        assert!(close(dets[0].score(), 1.0 / (1.0 + (-3f32).exp())));
        let b = dets[0].relative_bounding_box;
        // Anchor 1: center (0.75, 0.25), size 0.5. yc = 0.25 + 1/10*0.5 = 0.3,
        // xc = 0.75 - 2/10*0.5 = 0.65, h = 1.0, w = 0.5 -> y -0.2..0.8 clipped to 0..0.8.
        assert!(close(b.xmin, 0.4) && close(b.width, 0.5), "{b:?}");
        assert!(close(b.ymin, 0.0) && close(b.ymax(), 0.8), "{b:?}");
        assert_eq!(dets[1].label_ids, vec![1]);
        let b = dets[1].relative_bounding_box;
        assert!(close(b.xmin, 0.0) && close(b.ymin, 0.0), "{b:?}");
        assert!(close(b.width, 0.5) && close(b.height, 0.5), "{b:?}");

        // Without clipping the first box keeps its full height.
        let mut o = single_anchor_options();
        o.clip_boxes = false;
        o.max_results = 1;
        let dets = SsdDecoder::new(&o).unwrap().decode(&t).unwrap();
        assert_eq!(dets.len(), 1);
        let b = dets[0].relative_bounding_box;
        assert!(close(b.ymin, -0.2) && close(b.height, 1.0), "{b:?}");
    }

    #[test]
    fn wrong_tensor_sizes_are_errors() {
        let d = SsdDecoder::new(&single_anchor_options()).unwrap();
        let t = [
            Tensor::new(vec![1, 4, 3], vec![0.0; 12]).unwrap(),
            Tensor::new(vec![1, 4, 4], vec![0.0; 16]).unwrap(),
        ];
        let err = d.decode(&t).unwrap_err().to_string();
        assert!(err.contains("output order"), "{err}");
        let err = d.decode(&t[..1]).unwrap_err().to_string();
        assert!(err.contains("expected 2 tensors"), "{err}");
    }

    #[test]
    fn linear_box_size_and_reverse_order() {
        let anchor = Anchor {
            x_center: 0.5,
            y_center: 0.5,
            w: 0.2,
            h: 0.4,
        };
        let c = BoxCoding {
            num_coords: 4,
            box_coord_offset: 0,
            x_scale: 1.0,
            y_scale: 1.0,
            w_scale: 1.0,
            h_scale: 1.0,
            apply_exponential_on_box_size: false,
            reverse_output_order: true,
        };
        // x, y, w, h: xc = 0.5 + 0.5*0.2 = 0.6, yc = 0.5, w = 0.2, h = 0.4.
        let b = decode_box(&[0.5, 0.0, 1.0, 1.0], &anchor, &c);
        let expect = [0.5, 0.3, 0.7, 0.7];
        assert!(b.iter().zip(expect).all(|(a, e)| close(*a, e)), "{b:?}");
    }
}
