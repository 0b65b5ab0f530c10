//! `DetectionUniqueIdCalculator`: gives every detection a fresh id from a process-wide counter.

use std::sync::atomic::{AtomicU64, Ordering};

use mediagraph_framework::prelude::*;

use crate::detection::Detection;

/// The next id handed out; ids start at 1 and only increase, across every node and run of the
/// process.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Reserves `n` consecutive ids and returns the first.
pub fn reserve_ids(n: u64) -> u64 {
    NEXT_ID.fetch_add(n, Ordering::Relaxed)
}

/// Overwrites the `id` of every detection with a new unique id (MediaPipe's
/// `DetectionUniqueIdCalculator`): a process-wide counter that starts at 1 and only increases,
/// so ids never repeat within a process, even across graphs.
///
/// * Input streams: `DETECTIONS` (`Vec<`[`Detection`]`>`) and/or `DETECTION` ([`Detection`]).
/// * Output streams: the same tags, with the ids set, at the input timestamp.
///
/// Ids are assigned in the order of the detections in the packet.
///
/// ```yaml
/// - calculator: DetectionUniqueIdCalculator
///   input_stream: ["DETECTIONS:detections"]
///   output_stream: ["DETECTIONS:detections_with_id"]
/// ```
pub struct DetectionUniqueIdCalculator;

const DETECTIONS_IN: Input<Vec<Detection>> = Input::new("DETECTIONS").optional();
const DETECTION_IN: Input<Detection> = Input::new("DETECTION").optional();
const DETECTIONS_OUT: Output<Vec<Detection>> = Output::new("DETECTIONS").optional();
const DETECTION_OUT: Output<Detection> = Output::new("DETECTION").optional();

impl Calculator for DetectionUniqueIdCalculator {
    type Options = NoOptions;

    fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
        cc.declare(&[
            &DETECTIONS_IN,
            &DETECTION_IN,
            &DETECTIONS_OUT,
            &DETECTION_OUT,
        ])?;
        let (inputs, outputs) = (cc.inputs(), cc.outputs());
        for tag in ["DETECTIONS", "DETECTION"] {
            let has_in = inputs.id(tag, 0).is_some();
            let has_out = outputs.id(tag, 0).is_some();
            if has_in != has_out {
                return Err(cc.error(format!(
                    "DetectionUniqueIdCalculator: {tag} must be both an input and an output, or neither"
                )));
            }
        }
        if inputs.id("DETECTIONS", 0).is_none() && inputs.id("DETECTION", 0).is_none() {
            return Err(cc.error(
                "DetectionUniqueIdCalculator needs a DETECTIONS or DETECTION input stream",
            ));
        }
        cc.set_timestamp_offset(0);
        Ok(())
    }

    fn create(_: &NoOptions) -> Result<Self> {
        Ok(DetectionUniqueIdCalculator)
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let ts = cx.input_timestamp();
        if cx.has_input(&DETECTIONS_IN) {
            if let Some(list) = cx.input(&DETECTIONS_IN).get()? {
                let first = reserve_ids(list.len() as u64);
                let out: Vec<Detection> = list
                    .iter()
                    .zip(first..)
                    .map(|(d, id)| Detection {
                        id: Some(id),
                        ..d.clone()
                    })
                    .collect();
                cx.output(&DETECTIONS_OUT).send(out, ts)?;
            }
        }
        if cx.has_input(&DETECTION_IN) {
            if let Some(d) = cx.input(&DETECTION_IN).get()? {
                let out = Detection {
                    id: Some(reserve_ids(1)),
                    ..d.clone()
                };
                cx.output(&DETECTION_OUT).send(out, ts)?;
            }
        }
        Ok(Flow::Continue)
    }
}

mediagraph_framework::register_calculator!(
    DetectionUniqueIdCalculator,
    "DetectionUniqueIdCalculator"
);
