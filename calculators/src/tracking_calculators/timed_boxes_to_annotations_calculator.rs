//! `TimedBoxesToAnnotationsCalculator`: tracked boxes as boxes to draw.
//!
//! Ports: input `BOXES` ([`TimedBoxList`]) -> output `ANNOTATIONS` ([`Annotations`]) at the
//! same timestamp: one normalized rectangle per box with its id (which picks the color),
//! label and confidence.
//!
//! Options: `min_confidence` (0: draw every box; boxes below it are left out),
//! `show_confidence` (true), `thickness` (none: the overlay's).

use mediagraph_framework::prelude::*;
use serde::{Deserialize, Serialize};

use crate::image::{Annotations, RectAnnotation};
use crate::tracking::box_tracker::TimedBoxList;

/// Options of [`TimedBoxesToAnnotationsCalculator`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimedBoxesToAnnotationsCalculatorOptions {
    /// Boxes with a lower confidence are not drawn.
    pub min_confidence: f32,
    /// Show the confidence after the label.
    pub show_confidence: bool,
    /// Line thickness in pixels.
    pub thickness: Option<f32>,
}

impl Default for TimedBoxesToAnnotationsCalculatorOptions {
    fn default() -> Self {
        TimedBoxesToAnnotationsCalculatorOptions {
            min_confidence: 0.0,
            show_confidence: true,
            thickness: None,
        }
    }
}

/// See the module docs.
pub struct TimedBoxesToAnnotationsCalculator {
    options: TimedBoxesToAnnotationsCalculatorOptions,
}

const BOXES: Input<TimedBoxList> = Input::new("BOXES");
const ANNOTATIONS: Output<Annotations> = Output::new("ANNOTATIONS");

/// The annotation of each box of `boxes` with at least `min_confidence`.
pub fn boxes_to_annotations(
    boxes: &TimedBoxList,
    options: &TimedBoxesToAnnotationsCalculatorOptions,
) -> Annotations {
    let mut out = Annotations::new();
    for b in boxes
        .0
        .iter()
        .filter(|b| b.confidence >= options.min_confidence)
    {
        out.push(RectAnnotation {
            left: b.left,
            top: b.top,
            right: b.right,
            bottom: b.bottom,
            normalized: true,
            label: b.label.clone(),
            score: options.show_confidence.then_some(b.confidence),
            id: (b.id >= 0).then_some(b.id),
            thickness: options.thickness,
            ..RectAnnotation::default()
        });
    }
    out
}

impl Calculator for TimedBoxesToAnnotationsCalculator {
    type Options = TimedBoxesToAnnotationsCalculatorOptions;

    fn contract(cc: &mut Contract, _options: &Self::Options) -> Result<()> {
        cc.declare(&[&BOXES, &ANNOTATIONS])?;
        cc.set_timestamp_offset(0);
        Ok(())
    }

    fn create(options: &Self::Options) -> Result<Self> {
        Ok(TimedBoxesToAnnotationsCalculator {
            options: options.clone(),
        })
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        if let Some(boxes) = cx.input(&BOXES).get()? {
            let ts = cx.input_timestamp();
            let a = boxes_to_annotations(boxes, &self.options);
            cx.output(&ANNOTATIONS).send(a, ts)?;
        }
        Ok(Flow::Continue)
    }
}

mediagraph_framework::register_calculator!(
    TimedBoxesToAnnotationsCalculator,
    "TimedBoxesToAnnotationsCalculator"
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::RenderAnnotation;
    use crate::tracking::box_tracker::TimedBox;

    #[test]
    fn converts_and_filters() {
        let list = TimedBoxList(vec![
            TimedBox {
                left: 0.1,
                top: 0.2,
                right: 0.3,
                bottom: 0.4,
                id: 7,
                label: Some("car".into()),
                confidence: 0.9,
                ..Default::default()
            },
            TimedBox {
                left: 0.5,
                top: 0.5,
                right: 0.6,
                bottom: 0.6,
                confidence: 0.1,
                ..Default::default()
            },
        ]);
        let opts = TimedBoxesToAnnotationsCalculatorOptions {
            min_confidence: 0.5,
            ..Default::default()
        };
        let a = boxes_to_annotations(&list, &opts);
        assert_eq!(a.len(), 1);
        let RenderAnnotation::Rectangle(r) = &a.0[0] else {
            panic!("not a rectangle")
        };
        assert!(r.normalized && r.id == Some(7) && r.label.as_deref() == Some("car"));
        assert_eq!(r.score, Some(0.9));
        assert_eq!(boxes_to_annotations(&list, &Default::default()).len(), 2);
    }
}
