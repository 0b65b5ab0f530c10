//! `DetectionsToTimedBoxListCalculator`: detections as start boxes for the box tracker.

use mediagraph_framework::prelude::*;

use crate::detection::Detection;
use crate::tracking::box_tracker::{TimedBox, TimedBoxList};

/// The tracker box of detection `d` seen at `time_us`: its relative bounding box (left = xmin,
/// right = xmin + width, top = ymin, bottom = ymin + height), its id (-1 without one), its best
/// label, no rotation. `None` if the box is not finite or is empty.
pub fn detection_to_timed_box(d: &Detection, time_us: i64) -> Option<TimedBox> {
    let b = d.bbox();
    if !b.is_valid() {
        return None;
    }
    Some(TimedBox {
        left: b.xmin,
        top: b.ymin,
        right: b.xmax(),
        bottom: b.ymax(),
        rotation: 0.0,
        id: d.id.and_then(|id| i64::try_from(id).ok()).unwrap_or(-1),
        label: d.label().map(str::to_string),
        confidence: 1.0,
        time_us,
        reacquisition: false,
    })
}

/// Turns detections into a [`TimedBoxList`] of start boxes for `BoxTrackerCalculator`
/// (MediaPipe's `DetectionsToTimedBoxListCalculator`).
///
/// * Input streams: `DETECTIONS` (`Vec<`[`Detection`]`>`) and/or `DETECTION`
///   ([`Detection`]).
/// * Output streams: `BOXES` ([`TimedBoxList`]) at the input timestamp. Every box is stamped
///   with the packet's timestamp (`time_us`), so the tracker starts it on the frame the
///   detection was made on and catches it up to its newest frame.
///
/// Each box carries the detection's id (give detections ids first, with
/// `DetectionUniqueIdCalculator`; a detection without one gets -1) and its best label. A
/// detection whose box is not finite or has no area is left out (counted as dropped in the
/// run's stats).
///
/// ```yaml
/// - calculator: DetectionsToTimedBoxListCalculator
///   input_stream: ["DETECTIONS:detections_with_id"]
///   output_stream: ["BOXES:start_pos"]
/// ```
pub struct DetectionsToTimedBoxListCalculator {
    /// Packets with detections left out.
    left_out: RepeatedWarning,
}

const DETECTIONS: Input<Vec<Detection>> = Input::new("DETECTIONS").optional();
const DETECTION: Input<Detection> = Input::new("DETECTION").optional();
const BOXES: Output<TimedBoxList> = Output::new("BOXES");

impl Calculator for DetectionsToTimedBoxListCalculator {
    type Options = NoOptions;

    fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
        cc.declare(&[&DETECTIONS, &DETECTION, &BOXES])?;
        let inputs = cc.inputs();
        if inputs.id("DETECTIONS", 0).is_none() && inputs.id("DETECTION", 0).is_none() {
            return Err(cc.error(
                "DetectionsToTimedBoxListCalculator needs a DETECTIONS or DETECTION input stream",
            ));
        }
        cc.set_timestamp_offset(0);
        Ok(())
    }

    fn create(_: &NoOptions) -> Result<Self> {
        Ok(DetectionsToTimedBoxListCalculator {
            left_out: RepeatedWarning::default(),
        })
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let ts = cx.input_timestamp();
        let mut detections: Vec<&Detection> = Vec::new();
        if cx.has_input(&DETECTIONS) {
            if let Some(list) = cx.input(&DETECTIONS).get()? {
                detections.extend(list.iter());
            }
        }
        if cx.has_input(&DETECTION) {
            if let Some(d) = cx.input(&DETECTION).get()? {
                detections.push(d);
            }
        }
        let total = detections.len();
        let boxes: Vec<TimedBox> = detections
            .into_iter()
            .filter_map(|d| detection_to_timed_box(d, ts.micros()))
            .collect();
        if boxes.len() < total {
            let dropped = (total - boxes.len()) as u64;
            if let Some(occurrences) = self.left_out.occurred() {
                tracing::warn!(
                    node = cx.node_name(),
                    dropped,
                    occurrences,
                    "detections with a non-finite or empty box were left out ({}; all are \
                     counted as dropped)",
                    RepeatedWarning::NOTE
                );
            }
            cx.record_dropped(dropped);
        }
        cx.output(&BOXES).send(TimedBoxList(boxes), ts)?;
        Ok(Flow::Continue)
    }
}

mediagraph_framework::register_calculator!(
    DetectionsToTimedBoxListCalculator,
    "DetectionsToTimedBoxListCalculator"
);
