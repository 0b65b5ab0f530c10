//! `DetectionsToAnnotationsCalculator`: detections as boxes to draw (the role of MediaPipe's
//! `DetectionsToRenderDataCalculator`, producing our render-agnostic [`Annotations`]).

use mediagraph_framework::prelude::*;
use serde::Deserialize;

use super::Detection;
use crate::image::{Annotations, Color, RectAnnotation};

/// Options of [`DetectionsToAnnotationsCalculator`].
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectionsToAnnotationsCalculatorOptions {
    /// One color for every box. Default: by id when the detection has one (so a tracked
    /// object keeps its color), else by class.
    pub color: Option<Color>,
    /// Line thickness in pixels (default: the overlay's).
    pub thickness: Option<f32>,
    /// Show the class name (or id when there is no name). Default true.
    pub show_label: bool,
    /// Show the score. Default true.
    pub show_score: bool,
    /// Show the detection id, if any. Default true.
    pub show_id: bool,
}

impl Default for DetectionsToAnnotationsCalculatorOptions {
    fn default() -> Self {
        DetectionsToAnnotationsCalculatorOptions {
            color: None,
            thickness: None,
            show_label: true,
            show_score: true,
            show_id: true,
        }
    }
}

/// The box to draw for `d`.
pub fn detection_annotation(
    d: &Detection,
    options: &DetectionsToAnnotationsCalculatorOptions,
) -> RectAnnotation {
    let b = d.bbox();
    let id = d.id.and_then(|id| i64::try_from(id).ok());
    let label = match (d.label(), d.label_id()) {
        (Some(l), _) => Some(l.to_string()),
        (None, Some(i)) => Some(format!("class {i}")),
        (None, None) => None,
    };
    let color = options.color.or_else(|| match id {
        Some(_) => None, // the overlay colors by id
        None => d.label_id().map(|c| Color::for_id(i64::from(c))),
    });
    RectAnnotation {
        left: b.xmin,
        top: b.ymin,
        right: b.xmax(),
        bottom: b.ymax(),
        normalized: true,
        label: label.filter(|_| options.show_label),
        score: d.scores.first().copied().filter(|_| options.show_score),
        id: id.filter(|_| options.show_id),
        color,
        thickness: options.thickness,
        filled: false,
    }
}

/// Turns detections into boxes for [`crate::image::AnnotationOverlayCalculator`].
///
/// * Input streams: `DETECTIONS` (`Vec<`[`Detection`]`>`).
/// * Output streams: `ANNOTATIONS` ([`Annotations`]: one normalized rectangle per detection,
///   labelled with class name, score and id).
/// * Options ([`DetectionsToAnnotationsCalculatorOptions`]): `color`, `thickness`,
///   `show_label`, `show_score`, `show_id`.
///
/// ```yaml
/// - calculator: DetectionsToAnnotationsCalculator
///   input_stream: ["DETECTIONS:detections"]
///   output_stream: ["ANNOTATIONS:detection_boxes"]
/// ```
pub struct DetectionsToAnnotationsCalculator {
    options: DetectionsToAnnotationsCalculatorOptions,
}

const DETECTIONS: Input<Vec<Detection>> = Input::new("DETECTIONS");
const ANNOTATIONS: Output<Annotations> = Output::new("ANNOTATIONS");

impl Calculator for DetectionsToAnnotationsCalculator {
    type Options = DetectionsToAnnotationsCalculatorOptions;

    fn contract(cc: &mut Contract, options: &Self::Options) -> Result<()> {
        if options
            .thickness
            .is_some_and(|t| !(t.is_finite() && t > 0.0))
        {
            return Err(cc.error(crate::Error::Config {
                calculator: "DetectionsToAnnotationsCalculator",
                message: "thickness must be positive".into(),
            }));
        }
        cc.declare(&[&DETECTIONS, &ANNOTATIONS])?;
        cc.set_timestamp_offset(0);
        cc.set_independent_calls(true);
        Ok(())
    }

    fn create(options: &Self::Options) -> Result<Self> {
        Ok(DetectionsToAnnotationsCalculator {
            options: options.clone(),
        })
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let Some(detections) = cx.input(&DETECTIONS).get()? else {
            return Ok(Flow::Continue);
        };
        let annotations: Annotations = detections
            .iter()
            .map(|d| detection_annotation(d, &self.options).into())
            .collect();
        let ts = cx.input_timestamp();
        cx.output(&ANNOTATIONS).send(annotations, ts)?;
        Ok(Flow::Continue)
    }
}

mediagraph_framework::register_calculator!(
    DetectionsToAnnotationsCalculator,
    "DetectionsToAnnotationsCalculator"
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detection::RelativeBox;

    #[test]
    fn boxes_carry_label_score_and_id() {
        let mut d = Detection::new(4, 0.5, RelativeBox::from_corners(0.1, 0.2, 0.3, 0.6));
        let o = DetectionsToAnnotationsCalculatorOptions::default();
        let a = detection_annotation(&d, &o);
        assert_eq!((a.left, a.top, a.right, a.bottom), (0.1, 0.2, 0.3, 0.6));
        assert!(a.normalized);
        assert_eq!(a.label.as_deref(), Some("class 4"));
        assert_eq!(a.color, Some(Color::for_id(4)));
        d.labels = vec!["Person".into()];
        d.id = Some(9);
        let a = detection_annotation(&d, &o);
        assert_eq!(a.label.as_deref(), Some("Person"));
        assert_eq!((a.score, a.id, a.color), (Some(0.5), Some(9), None));
        let o = DetectionsToAnnotationsCalculatorOptions {
            show_score: false,
            color: Some(Color::RED),
            ..Default::default()
        };
        let a = detection_annotation(&d, &o);
        assert_eq!((a.score, a.color), (None, Some(Color::RED)));
    }
}
