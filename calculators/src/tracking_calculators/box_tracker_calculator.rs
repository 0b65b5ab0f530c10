//! `BoxTrackerCalculator`: the streaming box tracker (MediaPipe's BoxTrackerCalculator in
//! streaming mode) over [`BoxTracker`].
//!
//! Ports:
//! * input `TRACKING` ([`TrackingData`]): one packet per frame; every box moves one frame
//!   forward and `BOXES` is emitted at that timestamp;
//! * optional input `TRACK_TIME` (any type): a clock. A time that arrives without
//!   `TRACKING` is answered when the next `TRACKING` arrives, by interpolating the paths
//!   (emitted at its own timestamp, before the frame's boxes);
//! * optional input `START_POS` ([`TimedBoxList`]): boxes to start, each at its own
//!   `time_us`. A box stamped at a past cached frame is initialized there and tracked to the
//!   newest frame at once (catch-up), replacing a live box with the same id. A box older
//!   than the cache is dropped with a warning and counted (`record_dropped`); a box in the
//!   future waits for its frame;
//! * optional input `RESTART_POS` ([`TimedBoxList`]): as `START_POS`, marked as
//!   reacquisitions;
//! * optional input `CANCEL_OBJECT_ID` (`i64`): stop tracking that id (usually a back edge);
//! * optional input `RA_TRACK` ([`TimedBoxList`]): random-access requests as pairs (start
//!   box, stop box whose `time_us` is the stop time); each start box is tracked forward or
//!   backward through the cache to the stop time without touching the live boxes;
//! * output `BOXES` ([`TimedBoxList`]): the live boxes, once per `TRACKING` packet;
//! * optional output `RA_BOXES` ([`TimedBoxList`]): per request, the box at the stop time
//!   (at the `RA_TRACK` timestamp; a failed request gives a box with confidence 0);
//! * optional side input `INITIAL_POS` ([`TimedBoxList`]): boxes started like `START_POS`
//!   (a box with `time_us` 0 starts on the first frame).
//!
//! The node uses a sync-set handler: {`TRACKING`, `TRACK_TIME`} together, every other input
//! on its own, so start boxes and cancels are handled as soon as they arrive (MediaPipe's
//! rule). With `wait_for_start_pos` (ours) `START_POS` and `RESTART_POS` join the
//! {`TRACKING`, `TRACK_TIME`} set instead: a frame is tracked only once the start streams'
//! timestamp bound has passed it, so a box stamped with a frame's timestamp starts on that
//! frame, with no catch-up, and the boxes output do not depend on how late the start boxes
//! come (a detector's latency). The start streams must then advance their timestamp bounds
//! (every calculator of the detection branch does), or frames wait for the next start box.
//!
//! Options: `streaming_track_data_cache_size` (100), `track_step_options` (the live
//! graph's: object scale, object and camera, no spring, static ratio 3e-2; see
//! [`TrackStepOptions`]), `path_snap_tolerance_us` (67 ms), `wait_for_start_pos` (false).

use mediagraph_framework::prelude::*;
use mediagraph_framework::HandlerConfig;
use serde::{Deserialize, Serialize};

use crate::tracking::box_tracker::{
    BoxTracker, BoxTrackerOptions, StartOutcome, TimedBox, TimedBoxList, PATH_SNAP_TOLERANCE_US,
};
use crate::tracking::motion_box::TrackStepOptions;
use crate::tracking::TrackingData;

/// Options of [`BoxTrackerCalculator`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BoxTrackerCalculatorOptions {
    /// Frames of tracking data kept for catch-up and random access (at least 2).
    pub streaming_track_data_cache_size: usize,
    /// The track step's options.
    pub track_step_options: TrackStepOptions,
    /// Path end snap tolerance for `TRACK_TIME` requests, µs.
    pub path_snap_tolerance_us: i64,
    /// Ours: track a frame only once `START_POS` and `RESTART_POS` have no more boxes for it
    /// (their timestamp bound has passed it), so start boxes made on a frame start on that
    /// frame whatever their latency. Default false: MediaPipe handles start boxes whenever
    /// they arrive, catching late ones up through the cache.
    pub wait_for_start_pos: bool,
}

impl Default for BoxTrackerCalculatorOptions {
    fn default() -> Self {
        BoxTrackerCalculatorOptions {
            streaming_track_data_cache_size: 100,
            track_step_options: TrackStepOptions::box_tracking_graph(),
            path_snap_tolerance_us: PATH_SNAP_TOLERANCE_US,
            wait_for_start_pos: false,
        }
    }
}

/// See the module docs.
pub struct BoxTrackerCalculator {
    tracker: BoxTracker,
    queued_times: Vec<Timestamp>,
    last_boxes_ts: Option<Timestamp>,
    /// Start boxes dropped as older than the cache.
    too_old: RepeatedWarning,
    /// Start boxes dropped as malformed or lost during catch-up.
    failed: RepeatedWarning,
    /// `RA_TRACK` lists with an odd number of boxes.
    odd_random_access: RepeatedWarning,
    /// `RA_TRACK` requests that could not be tracked.
    random_access_failed: RepeatedWarning,
}

const TRACKING: Input<TrackingData> = Input::new("TRACKING");
const TRACK_TIME: Input<AnyPacket> = Input::any("TRACK_TIME").optional();
const START_POS: Input<TimedBoxList> = Input::new("START_POS").optional();
const RESTART_POS: Input<TimedBoxList> = Input::new("RESTART_POS").optional();
const CANCEL_OBJECT_ID: Input<i64> = Input::new("CANCEL_OBJECT_ID").optional();
const RA_TRACK: Input<TimedBoxList> = Input::new("RA_TRACK").optional();
const BOXES: Output<TimedBoxList> = Output::new("BOXES");
const RA_BOXES: Output<TimedBoxList> = Output::new("RA_BOXES").optional();
const INITIAL_POS: SideInput<TimedBoxList> = SideInput::new("INITIAL_POS").optional();

impl Calculator for BoxTrackerCalculator {
    type Options = BoxTrackerCalculatorOptions;

    fn contract(cc: &mut Contract, options: &Self::Options) -> Result<()> {
        cc.declare(&[
            &TRACKING,
            &TRACK_TIME,
            &START_POS,
            &RESTART_POS,
            &CANCEL_OBJECT_ID,
            &RA_TRACK,
            &BOXES,
            &RA_BOXES,
            &INITIAL_POS,
        ])?;
        let inputs = cc.inputs();
        let connected = |tag: &str| inputs.id(tag, 0).is_some();
        let mut frame_set = vec!["TRACKING:0".to_string()];
        let mut own_sets = Vec::new();
        for tag in [
            "TRACK_TIME",
            "START_POS",
            "RESTART_POS",
            "CANCEL_OBJECT_ID",
            "RA_TRACK",
        ] {
            if !connected(tag) {
                continue;
            }
            let with_frames = tag == "TRACK_TIME"
                || (options.wait_for_start_pos && matches!(tag, "START_POS" | "RESTART_POS"));
            if with_frames {
                frame_set.push(format!("{tag}:0"));
            } else {
                own_sets.push(serde_json::json!({ "tag_index": [format!("{tag}:0")] }));
            }
        }
        let mut sets = vec![serde_json::json!({ "tag_index": frame_set })];
        sets.extend(own_sets);
        if inputs.id("TRACKING", 0).is_some() {
            cc.set_input_stream_handler(HandlerConfig {
                input_stream_handler: "SyncSetInputStreamHandler".into(),
                options: serde_json::json!({ "sync_set": sets }),
            });
        }
        Ok(())
    }

    fn create(options: &Self::Options) -> Result<Self> {
        Ok(BoxTrackerCalculator {
            tracker: BoxTracker::new(BoxTrackerOptions {
                cache_size: options.streaming_track_data_cache_size.max(2),
                track_step: options.track_step_options.clone(),
                path_snap_tolerance_us: options.path_snap_tolerance_us.max(0),
            }),
            queued_times: Vec::new(),
            last_boxes_ts: None,
            too_old: RepeatedWarning::default(),
            failed: RepeatedWarning::default(),
            odd_random_access: RepeatedWarning::default(),
            random_access_failed: RepeatedWarning::default(),
        })
    }

    fn open(&mut self, cx: &mut CalculatorContext) -> Result<()> {
        if let Some(initial) = cx.side_input_opt(&INITIAL_POS)? {
            for b in &initial.0 {
                self.start(cx, b, false);
            }
        }
        Ok(())
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let ts = cx.input_timestamp();
        if cx.has_input(&CANCEL_OBJECT_ID) {
            if let Some(&id) = cx.input(&CANCEL_OBJECT_ID).get()? {
                self.tracker.cancel(id);
            }
        }
        for (port, reacquisition) in [(&START_POS, false), (&RESTART_POS, true)] {
            if cx.has_input(port) {
                if let Some(list) = cx.input(port).get()? {
                    for b in &list.0 {
                        self.start(cx, b, reacquisition);
                    }
                }
            }
        }
        if cx.has_input(&RA_TRACK) {
            if let Some(list) = cx.input(&RA_TRACK).get()? {
                self.random_access(cx, list, ts)?;
            }
        }
        let tracking = cx.input(&TRACKING).get()?;
        match tracking {
            Some(data) => {
                let report = self.tracker.push_frame(ts.micros(), data);
                for id in &report.failed {
                    tracing::debug!(id, "box tracking lost the box");
                }
                self.answer_queued(cx, ts)?;
                if self.last_boxes_ts.is_none_or(|last| ts > last) {
                    cx.output(&BOXES)
                        .send(TimedBoxList(self.tracker.boxes()), ts)?;
                    self.last_boxes_ts = Some(ts);
                }
            }
            None => {
                if cx.has_input(&TRACK_TIME) && !cx.input(&TRACK_TIME).is_empty() {
                    self.queued_times.push(ts);
                }
            }
        }
        Ok(Flow::Continue)
    }
}

impl BoxTrackerCalculator {
    fn start(&mut self, cx: &mut CalculatorContext, b: &TimedBox, reacquisition: bool) {
        let b = TimedBox {
            reacquisition,
            ..b.clone()
        };
        match self.tracker.start_box(&b) {
            StartOutcome::Started | StartOutcome::Pending => {}
            StartOutcome::TooOld => {
                let range = self.tracker.cached_range().unwrap_or_default();
                if let Some(occurrences) = self.too_old.occurred() {
                    tracing::warn!(
                        node = cx.node_name(),
                        id = b.id,
                        time_us = b.time_us,
                        oldest_cached_us = range.0,
                        occurrences,
                        "start box is older than the tracking-data cache \
                         (streaming_track_data_cache_size); dropped ({}; all are counted)",
                        RepeatedWarning::NOTE
                    );
                }
                cx.record_dropped(1);
            }
            StartOutcome::Failed => {
                if let Some(occurrences) = self.failed.occurred() {
                    tracing::warn!(
                        node = cx.node_name(),
                        id = b.id,
                        occurrences,
                        "start box is malformed or could not be tracked to the newest frame; \
                         dropped ({}; all are counted)",
                        RepeatedWarning::NOTE
                    );
                }
                cx.record_dropped(1);
            }
        }
    }

    fn answer_queued(&mut self, cx: &mut CalculatorContext, now: Timestamp) -> Result<()> {
        let mut times = std::mem::take(&mut self.queued_times);
        times.sort();
        for t in times {
            if t >= now || self.last_boxes_ts.is_some_and(|last| t <= last) {
                continue;
            }
            let boxes = self.tracker.boxes_at_time(t.micros());
            cx.output(&BOXES).send(TimedBoxList(boxes), t)?;
            self.last_boxes_ts = Some(t);
        }
        Ok(())
    }

    fn random_access(
        &mut self,
        cx: &mut CalculatorContext,
        list: &TimedBoxList,
        ts: Timestamp,
    ) -> Result<()> {
        if list.0.len() % 2 != 0 {
            if let Some(occurrences) = self.odd_random_access.occurred() {
                tracing::warn!(
                    node = cx.node_name(),
                    occurrences,
                    "RA_TRACK holds an odd number of boxes; the last one is ignored ({})",
                    RepeatedWarning::NOTE
                );
            }
        }
        let mut out = Vec::new();
        for pair in list.0.chunks_exact(2) {
            let (start, stop) = (&pair[0], &pair[1]);
            match self.tracker.track_random_access(start, stop.time_us) {
                Ok(path) => {
                    if let Some(b) = path.last() {
                        out.push(b.clone());
                    }
                }
                Err(e) => {
                    if let Some(occurrences) = self.random_access_failed.occurred() {
                        tracing::warn!(
                            node = cx.node_name(),
                            id = start.id,
                            occurrences,
                            "RA_TRACK: {e} ({})",
                            RepeatedWarning::NOTE
                        );
                    }
                    out.push(TimedBox {
                        confidence: 0.0,
                        time_us: stop.time_us,
                        ..start.clone()
                    });
                }
            }
        }
        if cx.output(&RA_BOXES).is_connected() {
            cx.output(&RA_BOXES).send(TimedBoxList(out), ts)?;
        }
        Ok(())
    }
}

mediagraph_framework::register_calculator!(BoxTrackerCalculator, "BoxTrackerCalculator");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;
    use crate::tracking::camera_motion::{Homography, TranslationModel};

    /// Frame data with a background lattice panning by `pan` domain px per frame.
    fn pan_data(frame: i32, pan: f32) -> TrackingData {
        let mut d = TrackingData {
            background_model: Some(Homography::from(TranslationModel { dx: -pan, dy: 0.0 })),
            ..Default::default()
        };
        let mut items = Vec::new();
        for wx in (-300..600).step_by(7) {
            for wy in (0..192).step_by(7) {
                let c = (wx as f32 + pan * frame as f32).round() as i32;
                if (0..256).contains(&c) {
                    items.push((c, wy, (wx + 1000) * 1000 + wy));
                }
            }
        }
        items.sort();
        let md = &mut d.motion_data;
        md.col_starts = vec![0; 257];
        for &(c, r, id) in &items {
            md.row_indices.push(r);
            md.vector_data.extend([0.0, 0.0]);
            md.track_id.push(id);
            md.col_starts[c as usize + 1] += 1;
        }
        for c in 0..256 {
            md.col_starts[c + 1] += md.col_starts[c];
        }
        md.num_elements = items.len() as i32;
        d
    }

    fn bx(id: i64, time_us: i64) -> TimedBox {
        TimedBox {
            left: 0.4,
            right: 0.6,
            top: 0.4,
            bottom: 0.6,
            id,
            time_us,
            ..Default::default()
        }
    }

    const GRAPH: &str = r#"
input_stream: [tracking, start, cancel, ra]
node:
  - calculator: BoxTrackerCalculator
    input_stream: ["TRACKING:tracking", "START_POS:start", "CANCEL_OBJECT_ID:cancel", "RA_TRACK:ra"]
    output_stream: ["BOXES:boxes", "RA_BOXES:ra_boxes"]
    options: { streaming_track_data_cache_size: 10 }
"#;

    #[test]
    fn streams_boxes_with_catch_up_cancel_and_random_access() {
        let mut g = graph(GRAPH);
        let boxes = record(&mut g, "boxes");
        let ra = record(&mut g, "ra_boxes");
        g.start_run(Default::default()).unwrap();
        let dt = 33_333;
        for f in 0..8 {
            g.add_packet("tracking", at(pan_data(f, 2.0), f as i64 * dt))
                .unwrap();
        }
        g.wait_until_idle().unwrap();
        // Box 1 stamped at frame 2 (catch-up), box 2 older than the cache? No: the cache
        // holds all 8 frames; box 3 at frame 7.
        g.add_packet(
            "start",
            at(TimedBoxList(vec![bx(1, 2 * dt), bx(3, 7 * dt)]), 7 * dt),
        )
        .unwrap();
        g.wait_until_idle().unwrap();
        for f in 8..20 {
            g.add_packet("tracking", at(pan_data(f, 2.0), f as i64 * dt))
                .unwrap();
        }
        g.wait_until_idle().unwrap();
        g.add_packet("cancel", at(3i64, 19 * dt)).unwrap();
        // Older than the cache now (frames 10..19 cached): dropped and counted.
        g.add_packet("start", at(TimedBoxList(vec![bx(5, 2 * dt)]), 19 * dt))
            .unwrap();
        g.add_packet(
            "ra",
            at(TimedBoxList(vec![bx(9, 12 * dt), bx(9, 18 * dt)]), 19 * dt),
        )
        .unwrap();
        g.wait_until_idle().unwrap();
        g.add_packet("tracking", at(pan_data(20, 2.0), 20 * dt))
            .unwrap();
        g.finish().unwrap();
        let out = boxes.values::<TimedBoxList>();
        assert_eq!(out.len(), 21);
        // Frame 19: boxes 1 (started at frame 2, 17 frames of 2 px pan) and 3 (12 frames).
        let (_, at19) = &out[19];
        let ids: Vec<i64> = at19.0.iter().map(|b| b.id).collect();
        assert_eq!(ids, vec![1, 3]);
        let shift = |frames: f32| frames * 2.0 / 256.0;
        assert!(
            (at19.0[0].left - (0.4 + shift(17.0))).abs() < 0.01,
            "{at19:?}"
        );
        assert!(
            (at19.0[1].left - (0.4 + shift(12.0))).abs() < 0.01,
            "{at19:?}"
        );
        let (_, at20) = &out[20];
        assert_eq!(at20.0.iter().map(|b| b.id).collect::<Vec<_>>(), vec![1]);
        let ra = ra.values::<TimedBoxList>();
        assert_eq!(ra.len(), 1);
        let b = &ra[0].1 .0[0];
        assert_eq!(b.time_us, 18 * dt);
        assert!((b.left - (0.4 + shift(6.0))).abs() < 0.01, "{b:?}");
        let stats = g.stats();
        let dropped: u64 = stats.iter().map(|s| s.dropped).sum();
        assert_eq!(dropped, 1);
    }

    /// Frames 0..6 pushed, then a box stamped at frame 2; returns the boxes per frame.
    fn late_start_box(wait: bool) -> Vec<Vec<TimedBox>> {
        let mut g = graph(&format!(
            r#"
input_stream: [tracking, start]
node:
  - calculator: BoxTrackerCalculator
    input_stream: ["TRACKING:tracking", "START_POS:start"]
    output_stream: ["BOXES:boxes"]
    options: {{ wait_for_start_pos: {wait} }}
"#
        ));
        let boxes = record(&mut g, "boxes");
        g.start_run(Default::default()).unwrap();
        let dt = 33_333;
        for f in 0..6 {
            g.add_packet("tracking", at(pan_data(f, 2.0), f as i64 * dt))
                .unwrap();
        }
        g.wait_until_idle().unwrap();
        let before = boxes.values::<TimedBoxList>().len();
        assert_eq!(before, if wait { 0 } else { 6 }, "frames tracked before");
        g.add_packet("start", at(TimedBoxList(vec![bx(1, 2 * dt)]), 2 * dt))
            .unwrap();
        g.close_input_stream("start").unwrap();
        g.finish().unwrap();
        boxes
            .values::<TimedBoxList>()
            .into_iter()
            .map(|(_, l)| l.0)
            .collect()
    }

    #[test]
    fn waiting_for_start_pos_starts_a_late_box_on_its_own_frame() {
        let out = late_start_box(true);
        assert_eq!(out.len(), 6);
        assert!(out[0].is_empty() && out[1].is_empty());
        // Frame 2 shows the start box itself; later frames follow the 2 px pan.
        assert_eq!(out[2].len(), 1);
        assert_eq!(out[2][0].id, 1);
        assert!((out[2][0].left - 0.4).abs() < 1e-6 && (out[2][0].right - 0.6).abs() < 1e-6);
        assert!(
            (out[5][0].left - (0.4 + 3.0 * 2.0 / 256.0)).abs() < 0.01,
            "{out:?}"
        );
        // Without waiting (MediaPipe), frames 2..5 were output before the box came: it is
        // caught up to frame 5 and shown from the next frame on, which never comes here.
        let out = late_start_box(false);
        assert_eq!(out.len(), 6);
        assert!(out.iter().all(Vec::is_empty), "{out:?}");
    }

    #[test]
    fn initial_pos_side_packet_and_bad_options() {
        let mut g = graph(
            r#"
input_stream: [tracking]
input_side_packet: [initial]
node:
  - calculator: BoxTrackerCalculator
    input_stream: ["TRACKING:tracking"]
    input_side_packet: ["INITIAL_POS:initial"]
    output_stream: ["BOXES:boxes"]
"#,
        );
        let boxes = record(&mut g, "boxes");
        let mut side = std::collections::HashMap::new();
        side.insert(
            "initial".into(),
            mediagraph_framework::Packet::new(TimedBoxList(vec![bx(4, 0)])),
        );
        g.start_run(side).unwrap();
        for f in 0..3 {
            g.add_packet("tracking", at(pan_data(f, -1.0), f as i64 * 33_333))
                .unwrap();
        }
        g.finish().unwrap();
        let out = boxes.values::<TimedBoxList>();
        assert_eq!(out.len(), 3);
        assert_eq!(out[2].1 .0.len(), 1);
        assert!((out[2].1 .0[0].left - (0.4 - 2.0 / 256.0)).abs() < 0.005);
        let err = config_error(
            r#"
input_stream: [t]
node:
  - calculator: BoxTrackerCalculator
    input_stream: ["TRACKING:t"]
    output_stream: ["BOXES:b"]
    options: { cache: 3 }
"#,
        );
        assert!(err.contains("cache"), "{err}");
    }
}
