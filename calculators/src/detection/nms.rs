//! Non-maximum suppression (MediaPipe's `NonMaxSuppressionCalculator`): the plain function
//! [`non_max_suppression`] and the calculator.

use mediagraph_framework::prelude::*;
use serde::Deserialize;

use super::{Detection, RelativeBox};

/// How the overlap of two boxes is measured (MediaPipe's `OverlapType`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OverlapType {
    /// Intersection over union (the default).
    #[default]
    #[serde(alias = "UNSPECIFIED_OVERLAP_TYPE")]
    Jaccard,
    /// Intersection over the area of the candidate box.
    ModifiedJaccard,
    /// Intersection over union (same as `JACCARD`).
    IntersectionOverUnion,
}

/// Which boxes survive (MediaPipe's `NmsAlgorithm`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NmsAlgorithm {
    /// Keep the best box, drop the boxes that overlap it too much, repeat.
    #[default]
    Default,
    /// Replace the best box by the score-weighted average of it and the boxes that overlap
    /// it, drop those, repeat (smoother boxes).
    Weighted,
}

/// Options of [`NonMaxSuppressionCalculator`] (MediaPipe's
/// `NonMaxSuppressionCalculatorOptions`; `per_class` is ours).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NonMaxSuppressionCalculatorOptions {
    /// Keep at most this many detections (-1: all).
    pub max_num_detections: i32,
    /// Ignore detections scoring below this (-1: none ignored).
    pub min_score_threshold: f32,
    /// Boxes overlapping a kept box by more than this are suppressed (default 1.0: none).
    pub min_suppression_threshold: f32,
    /// How overlap is measured.
    pub overlap_type: OverlapType,
    /// `DEFAULT` or `WEIGHTED`.
    pub algorithm: NmsAlgorithm,
    /// Suppress only among detections of the same (first) class; default false: any class
    /// suppresses any other, as in MediaPipe.
    pub per_class: bool,
    /// Send an empty vector when nothing is left (default true); false sends nothing at that
    /// timestamp (MediaPipe's default).
    pub return_empty_detections: bool,
}

impl Default for NonMaxSuppressionCalculatorOptions {
    fn default() -> Self {
        NonMaxSuppressionCalculatorOptions {
            max_num_detections: -1,
            min_score_threshold: -1.0,
            min_suppression_threshold: 1.0,
            overlap_type: OverlapType::Jaccard,
            algorithm: NmsAlgorithm::Default,
            per_class: false,
            return_empty_detections: true,
        }
    }
}

/// The overlap of `candidate` with `kept`.
pub fn overlap(kind: OverlapType, kept: &RelativeBox, candidate: &RelativeBox) -> f32 {
    match kind {
        OverlapType::Jaccard | OverlapType::IntersectionOverUnion => kept.iou(candidate),
        OverlapType::ModifiedJaccard => {
            let area = candidate.area();
            if area > 0.0 {
                kept.intersection_area(candidate) / area
            } else {
                0.0
            }
        }
    }
}

/// Suppresses overlapping detections (see [`NonMaxSuppressionCalculatorOptions`]). The
/// result is sorted by score, best first; ties keep the input order.
pub fn non_max_suppression(
    detections: &[Detection],
    options: &NonMaxSuppressionCalculatorOptions,
) -> Vec<Detection> {
    let mut kept = if options.per_class {
        let mut classes: Vec<Option<i32>> = detections.iter().map(Detection::label_id).collect();
        classes.sort();
        classes.dedup();
        let mut all = Vec::new();
        for class in classes {
            let group: Vec<Detection> = detections
                .iter()
                .filter(|d| d.label_id() == class)
                .cloned()
                .collect();
            all.extend(suppress(&group, options));
        }
        all.sort_by(|a, b| b.score().total_cmp(&a.score()));
        all
    } else {
        suppress(detections, options)
    };
    if let Ok(max) = usize::try_from(options.max_num_detections) {
        kept.truncate(max);
    }
    kept
}

/// One suppression pass over `detections` (all of one group).
fn suppress(detections: &[Detection], o: &NonMaxSuppressionCalculatorOptions) -> Vec<Detection> {
    let mut order: Vec<usize> = (0..detections.len())
        .filter(|&i| {
            let s = detections[i].score();
            s.is_finite() && (o.min_score_threshold < 0.0 || s >= o.min_score_threshold)
        })
        .collect();
    order.sort_by(|&a, &b| detections[b].score().total_cmp(&detections[a].score()));
    let max = usize::try_from(o.max_num_detections).unwrap_or(usize::MAX);
    let mut out: Vec<Detection> = Vec::new();
    match o.algorithm {
        NmsAlgorithm::Default => {
            for i in order {
                if out.len() >= max {
                    break;
                }
                let candidate = &detections[i];
                let suppressed = out.iter().any(|k| {
                    overlap(o.overlap_type, k.bbox(), candidate.bbox())
                        > o.min_suppression_threshold
                });
                if !suppressed {
                    out.push(candidate.clone());
                }
            }
        }
        NmsAlgorithm::Weighted => {
            let mut remaining = order;
            while let Some((&top, rest)) = remaining.split_first() {
                if out.len() >= max {
                    break;
                }
                let best = &detections[top];
                let mut cluster = vec![top];
                let mut next = Vec::with_capacity(rest.len());
                for &i in rest {
                    if overlap(o.overlap_type, best.bbox(), detections[i].bbox())
                        > o.min_suppression_threshold
                    {
                        cluster.push(i);
                    } else {
                        next.push(i);
                    }
                }
                let mut merged = best.clone();
                let total: f32 = cluster.iter().map(|&i| detections[i].score()).sum();
                if cluster.len() > 1 && total > 0.0 {
                    let mut acc = [0f32; 4];
                    for &i in &cluster {
                        let (b, s) = (detections[i].bbox(), detections[i].score());
                        acc[0] += b.xmin * s;
                        acc[1] += b.ymin * s;
                        acc[2] += b.xmax() * s;
                        acc[3] += b.ymax() * s;
                    }
                    merged.relative_bounding_box = RelativeBox::from_corners(
                        acc[0] / total,
                        acc[1] / total,
                        acc[2] / total,
                        acc[3] / total,
                    );
                }
                out.push(merged);
                remaining = next;
            }
        }
    }
    out
}

/// Removes overlapping detections (MediaPipe's `NonMaxSuppressionCalculator`, one input).
///
/// * Input streams: one untagged or `DETECTIONS` stream (`Vec<`[`Detection`]`>`).
/// * Output streams: one untagged or `DETECTIONS` stream (`Vec<`[`Detection`]`>`, best first).
/// * Options ([`NonMaxSuppressionCalculatorOptions`]): `min_suppression_threshold`,
///   `overlap_type` (`JACCARD`, `MODIFIED_JACCARD`, `INTERSECTION_OVER_UNION`), `algorithm`
///   (`DEFAULT`, `WEIGHTED`), `max_num_detections`, `min_score_threshold`, `per_class`,
///   `return_empty_detections`.
///
/// ```yaml
/// - calculator: NonMaxSuppressionCalculator
///   input_stream: ["DETECTIONS:raw_detections"]
///   output_stream: ["DETECTIONS:detections"]
///   options: {min_suppression_threshold: 0.4, overlap_type: INTERSECTION_OVER_UNION,
///             algorithm: WEIGHTED, max_num_detections: 10}
/// ```
pub struct NonMaxSuppressionCalculator {
    options: NonMaxSuppressionCalculatorOptions,
}

const IN_TAGGED: Input<Vec<Detection>> = Input::new("DETECTIONS").optional();
const IN_UNTAGGED: Input<Vec<Detection>> = Input::new("").optional();
const OUT_TAGGED: Output<Vec<Detection>> = Output::new("DETECTIONS").optional();
const OUT_UNTAGGED: Output<Vec<Detection>> = Output::new("").optional();

impl Calculator for NonMaxSuppressionCalculator {
    type Options = NonMaxSuppressionCalculatorOptions;

    fn contract(cc: &mut Contract, options: &Self::Options) -> Result<()> {
        cc.declare(&[&IN_TAGGED, &IN_UNTAGGED, &OUT_TAGGED, &OUT_UNTAGGED])?;
        let ins = cc.inputs().count(IN_TAGGED.tag()) + cc.inputs().count(IN_UNTAGGED.tag());
        let outs = cc.outputs().count(OUT_TAGGED.tag()) + cc.outputs().count(OUT_UNTAGGED.tag());
        if ins != 1 || outs != 1 {
            return Err(cc.error(crate::Error::Config {
                calculator: "NonMaxSuppressionCalculator",
                message: format!(
                    "needs exactly one input and one output detection stream (DETECTIONS or untagged), got {ins} and {outs}"
                ),
            }));
        }
        if !options.min_suppression_threshold.is_finite() {
            return Err(cc.error(crate::Error::Config {
                calculator: "NonMaxSuppressionCalculator",
                message: "min_suppression_threshold must be finite".into(),
            }));
        }
        cc.set_timestamp_offset(0);
        cc.set_independent_calls(true);
        Ok(())
    }

    fn create(options: &Self::Options) -> Result<Self> {
        Ok(NonMaxSuppressionCalculator {
            options: options.clone(),
        })
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let input = if cx.has_input(&IN_TAGGED) {
            cx.input(&IN_TAGGED).get()?
        } else {
            cx.input(&IN_UNTAGGED).get()?
        };
        let Some(detections) = input else {
            return Ok(Flow::Continue);
        };
        let kept = non_max_suppression(detections, &self.options);
        if kept.is_empty() && !self.options.return_empty_detections {
            return Ok(Flow::Continue);
        }
        let ts = cx.input_timestamp();
        if cx.output(&OUT_TAGGED).is_connected() {
            cx.output(&OUT_TAGGED).send(kept, ts)?;
        } else {
            cx.output(&OUT_UNTAGGED).send(kept, ts)?;
        }
        Ok(Flow::Continue)
    }
}

mediagraph_framework::register_calculator!(
    NonMaxSuppressionCalculator,
    "NonMaxSuppressionCalculator"
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{at, graph, record};

    fn det(class: i32, score: f32, x0: f32, y0: f32, x1: f32, y1: f32) -> Detection {
        Detection::new(class, score, RelativeBox::from_corners(x0, y0, x1, y1))
    }

    fn opts(threshold: f32, algorithm: NmsAlgorithm) -> NonMaxSuppressionCalculatorOptions {
        NonMaxSuppressionCalculatorOptions {
            min_suppression_threshold: threshold,
            overlap_type: OverlapType::IntersectionOverUnion,
            algorithm,
            ..Default::default()
        }
    }

    fn boxes(ds: &[Detection]) -> Vec<[f32; 4]> {
        ds.iter()
            .map(|d| {
                let b = d.bbox();
                [b.xmin, b.ymin, b.xmax(), b.ymax()]
            })
            .collect()
    }

    /// Three boxes: A and B overlap with IoU 0.6 / 1.0 = 0.6 (B shifted by 0.25 of A's 1.0
    /// width: intersection 0.75 x 1, union 1.25 x 1 -> 0.6), C far away.
    fn three() -> Vec<Detection> {
        vec![
            det(1, 0.6, 0.0, 0.0, 1.0, 1.0),   // A
            det(1, 0.9, 0.25, 0.0, 1.25, 1.0), // B (best)
            det(2, 0.7, 5.0, 5.0, 6.0, 6.0),   // C
        ]
    }

    #[test]
    fn default_keeps_the_best_of_overlapping_boxes() {
        let kept = non_max_suppression(&three(), &opts(0.5, NmsAlgorithm::Default));
        assert_eq!(
            boxes(&kept),
            vec![[0.25, 0.0, 1.25, 1.0], [5.0, 5.0, 6.0, 6.0]]
        );
        // Threshold above the overlap: nothing suppressed, sorted by score.
        let kept = non_max_suppression(&three(), &opts(0.7, NmsAlgorithm::Default));
        let scores: Vec<f32> = kept.iter().map(Detection::score).collect();
        assert_eq!(scores, vec![0.9, 0.7, 0.6]);
        // max_num_detections and min_score_threshold.
        let mut o = opts(0.7, NmsAlgorithm::Default);
        o.max_num_detections = 2;
        assert_eq!(non_max_suppression(&three(), &o).len(), 2);
        o.max_num_detections = -1;
        o.min_score_threshold = 0.65;
        assert_eq!(non_max_suppression(&three(), &o).len(), 2);
    }

    #[test]
    fn weighted_averages_the_cluster_by_score() {
        let kept = non_max_suppression(&three(), &opts(0.5, NmsAlgorithm::Weighted));
        assert_eq!(kept.len(), 2);
        // xmin = (0.9 * 0.25 + 0.6 * 0.0) / 1.5 = 0.15; xmax = (0.9 * 1.25 + 0.6 * 1.0) / 1.5
        // = 1.15; y unchanged; the score stays the best one's.
        let b = kept[0].bbox();
        assert!((b.xmin - 0.15).abs() < 1e-6, "{b:?}");
        assert!((b.xmax() - 1.15).abs() < 1e-6, "{b:?}");
        assert!(
            b.ymin.abs() < 1e-6 && (b.ymax() - 1.0).abs() < 1e-6,
            "{b:?}"
        );
        assert_eq!(kept[0].score(), 0.9);
        assert_eq!(boxes(&kept[1..]), vec![[5.0, 5.0, 6.0, 6.0]]);
    }

    #[test]
    fn per_class_suppresses_only_within_a_class() {
        let mut ds = three();
        ds[0].label_ids = vec![3]; // A is now another class than B
        let mut o = opts(0.5, NmsAlgorithm::Default);
        assert_eq!(non_max_suppression(&ds, &o).len(), 2);
        o.per_class = true;
        let kept = non_max_suppression(&ds, &o);
        let scores: Vec<f32> = kept.iter().map(Detection::score).collect();
        assert_eq!(scores, vec![0.9, 0.7, 0.6]);
    }

    #[test]
    fn modified_jaccard_divides_by_the_candidate_area() {
        let big = RelativeBox::from_corners(0.0, 0.0, 1.0, 1.0);
        let small = RelativeBox::from_corners(0.0, 0.0, 0.5, 0.5);
        assert_eq!(overlap(OverlapType::ModifiedJaccard, &big, &small), 1.0);
        assert_eq!(overlap(OverlapType::Jaccard, &big, &small), 0.25);
    }

    #[test]
    fn calculator_in_a_graph() {
        let mut g = graph(
            "input_stream: [d]\nnode:\n  - calculator: NonMaxSuppressionCalculator\n    input_stream: d\n    output_stream: DETECTIONS:out\n    options: {min_suppression_threshold: 0.5, max_num_detections: 1}\n",
        );
        let out = record(&mut g, "out");
        g.start_run(Default::default()).unwrap();
        g.add_packet("d", at(three(), 1)).unwrap();
        g.add_packet("d", at(Vec::<Detection>::new(), 2)).unwrap();
        g.close_all_input_streams().unwrap();
        g.wait_until_done().unwrap();
        let v = out.values::<Vec<Detection>>();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].1.len(), 1);
        assert_eq!(v[0].1[0].score(), 0.9);
        assert!(v[1].1.is_empty());
    }
}
