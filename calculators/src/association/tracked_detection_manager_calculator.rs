//! `TrackedDetectionManagerCalculator`: merges new detections with tracked boxes so that each
//! object keeps one id, over [`TrackedDetectionManager`].

use std::collections::{BTreeSet, HashMap, VecDeque};

use mediagraph_framework::prelude::*;
use mediagraph_framework::HandlerConfig;
use serde::{Deserialize, Serialize};

use crate::detection::{Detection, RelativeBox};
use crate::tracking::box_tracker::{TimedBox, TimedBoxList};
use crate::tracking::tracked_detection_manager::{
    ManagerConfig, NormRect, ReportedDetection, TrackedBox, TrackedDetection,
    TrackedDetectionManager,
};

const NAME: &str = "TrackedDetectionManagerCalculator";

/// Options of [`TrackedDetectionManagerCalculator`] (MediaPipe's
/// `TrackedDetectionManagerConfig` plus the timeout and our smoothing options).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackedDetectionManagerCalculatorOptions {
    /// How fast a re-detected object's reported box moves to its new track: the share of the
    /// remaining distance covered per frame, in `(0, 1]`. `1` jumps at once, as MediaPipe
    /// does; the default 0.35 eases over a few frames. Only the offset between the old and
    /// the new track is eased; between re-detections the box follows the tracker (through
    /// the α-β filter of `motion_alpha` and `motion_beta`).
    pub smoothing: f32,
    /// Ours: the largest offset `smoothing` eases out, per edge, as a share of the box's
    /// width (left, right) or height (top, bottom); a re-detection that moves the box farther
    /// (its track had drifted off the object) jumps the excess at once. Default 0.2.
    pub max_eased_offset: f32,
    /// A tracked detection not updated for this long is dropped (ms; default 5000).
    pub timeout_ms: i64,
    /// Boxes whose areas differ by more than this factor are never the same object
    /// (default 3, at least 1).
    pub max_area_ratio: f32,
    /// Two boxes are the same object when their intersection covers more than this share of
    /// either box (default 0.5, in `[0, 1)`).
    pub min_overlap_ratio: f32,
    /// Ours: two boxes with no label in common are the same object only if, besides the
    /// overlap rule, their IoU is at least this (in `[0, 1]`; 0, the default: MediaPipe's
    /// rule, overlap alone, labels merged; 1: only a shared label merges). With 0.7 a box
    /// detected again under another label still merges, while a cyclist's Person and
    /// Bicycle boxes (IoU ~0.4) are tracked as two objects, not one box with both labels.
    pub cross_label_min_iou: f32,
    /// Ours: a track that no new detection has confirmed for this long is dropped, and the
    /// tracker told to stop it (ms; 0, the default, never: MediaPipe's behaviour, where a
    /// track lives as long as the tracker keeps its box). It clears boxes the tracker left
    /// on the background when their object walked away, and one-off false detections.
    /// While such a track is still known, a new detection at its place keeps its id.
    pub max_unconfirmed_ms: i64,
    /// Ours: an α-β filter on each object's box, with the tracker's box as the measurement:
    /// every frame the box moves by its velocity and then by this share of the distance left
    /// to the tracker's box (per edge). 1, the default, shows the tracker's box as is; lower
    /// values smooth the tracker's uneven steps (the velocity keeps the box from lagging).
    /// In `(0, 1]`.
    pub motion_alpha: f32,
    /// Ours: the share of that distance (per frame) added to the box's velocity, in
    /// `[0, motion_alpha]`; 0, the default, keeps no velocity. At a re-detection the filter
    /// restarts on the new track's box and keeps the velocity, so the object's motion goes on
    /// through the correction (eased by `smoothing`).
    pub motion_beta: f32,
    /// Ours: how long (ms) each frame's output may be held back to be corrected by the next
    /// detection (0, the default: no delay, as MediaPipe). For recorded video, where latency
    /// does not matter: a frame's output waits until the next detection has been applied
    /// (or this much stream time has passed); a re-detected object's correction is then
    /// spread over the frames since its previous detection instead of being eased out after
    /// it, and an object first detected there is also shown, where it was detected, on the
    /// held frames before it (back to the previous detection). `smoothing` and
    /// `max_eased_offset` then have no effect.
    pub lookahead_ms: i64,
    /// Ours: handle a frame's boxes only once the detections of that frame are known (one
    /// sync set for both inputs), as the box tracker does with `wait_for_start_pos`. Every
    /// detection then meets the boxes of its own frame whatever the threads' timing, so the
    /// output is deterministic. False, the default: each input is handled as soon as it
    /// arrives (MediaPipe).
    pub wait_for_detections: bool,
}

impl Default for TrackedDetectionManagerCalculatorOptions {
    fn default() -> Self {
        let c = ManagerConfig::default();
        TrackedDetectionManagerCalculatorOptions {
            smoothing: 0.35,
            max_eased_offset: 0.2,
            timeout_ms: c.timeout_ms,
            max_area_ratio: c.max_area_ratio,
            min_overlap_ratio: c.min_overlap_ratio,
            cross_label_min_iou: c.cross_label_min_iou,
            max_unconfirmed_ms: 0,
            motion_alpha: 1.0,
            motion_beta: 0.0,
            lookahead_ms: 0,
            wait_for_detections: false,
        }
    }
}

impl TrackedDetectionManagerCalculatorOptions {
    /// The manager's configuration, or what is wrong with the options (the easing of
    /// re-detected boxes, `smoothing`, is the calculator's own).
    pub fn config(&self) -> std::result::Result<ManagerConfig, String> {
        if !(self.smoothing > 0.0 && self.smoothing <= 1.0) {
            return Err(format!(
                "smoothing must be in (0, 1] (1: jump to a re-detection at once), got {}",
                self.smoothing
            ));
        }
        if !(self.max_eased_offset.is_finite() && self.max_eased_offset >= 0.0) {
            return Err(format!(
                "max_eased_offset must be 0 or positive (a share of the box size), got {}",
                self.max_eased_offset
            ));
        }
        if self.timeout_ms <= 0 {
            return Err(format!(
                "timeout_ms must be positive, got {}",
                self.timeout_ms
            ));
        }
        if !(self.max_area_ratio.is_finite() && self.max_area_ratio >= 1.0) {
            return Err(format!(
                "max_area_ratio must be at least 1, got {}",
                self.max_area_ratio
            ));
        }
        if !(0.0..1.0).contains(&self.min_overlap_ratio) {
            return Err(format!(
                "min_overlap_ratio must be in [0, 1), got {}",
                self.min_overlap_ratio
            ));
        }
        if self.max_unconfirmed_ms < 0 {
            return Err(format!(
                "max_unconfirmed_ms must be 0 (off) or positive, got {}",
                self.max_unconfirmed_ms
            ));
        }
        if !(self.motion_alpha > 0.0 && self.motion_alpha <= 1.0) {
            return Err(format!(
                "motion_alpha must be in (0, 1] (1: the tracker's box as is), got {}",
                self.motion_alpha
            ));
        }
        if !(self.motion_beta >= 0.0 && self.motion_beta <= self.motion_alpha) {
            return Err(format!(
                "motion_beta must be in [0, motion_alpha] (0: no velocity), got {}",
                self.motion_beta
            ));
        }
        if !(0.0..=1.0).contains(&self.cross_label_min_iou) {
            return Err(format!(
                "cross_label_min_iou must be in [0, 1] (0: MediaPipe's rule), got {}",
                self.cross_label_min_iou
            ));
        }
        if self.lookahead_ms < 0 {
            return Err(format!(
                "lookahead_ms must be 0 (off) or positive, got {}",
                self.lookahead_ms
            ));
        }
        Ok(ManagerConfig {
            max_area_ratio: self.max_area_ratio,
            min_overlap_ratio: self.min_overlap_ratio,
            timeout_ms: self.timeout_ms,
            cross_label_min_iou: self.cross_label_min_iou,
        })
    }
}

/// Associates detections with the box tracker's boxes (MediaPipe's
/// `TrackedDetectionManagerCalculator`), so each physical object keeps one id while the
/// detector runs on a few frames only.
///
/// * Input streams: `DETECTIONS` (`Vec<`[`Detection`]`>`, with ids, e.g. from
///   `DetectionUniqueIdCalculator`; usually a few per second) and `TRACKING_BOXES`
///   ([`TimedBoxList`], the tracker's boxes, one packet per frame). The node uses a
///   sync-set handler with the two in separate sets, so each is handled as soon as it arrives
///   (one set with `wait_for_detections`).
/// * Output streams: `DETECTIONS` (`Vec<`[`Detection`]`>`, one packet per `TRACKING_BOXES`
///   packet, at its timestamp: the objects tracked at that frame, with their persistent `id`,
///   box, and labels sorted by descending score); `CANCEL_OBJECT_ID` (optional, `i64`: ids the
///   tracker should stop tracking; one per timestamp, at t, t+1 µs, t+2 µs, ... for a frame
///   at t; connect it to the tracker's `CANCEL_OBJECT_ID` as a back edge).
/// * Options ([`TrackedDetectionManagerCalculatorOptions`]): `smoothing`,
///   `max_eased_offset`, `timeout_ms`, `max_area_ratio`, `min_overlap_ratio`,
///   `cross_label_min_iou`, `max_unconfirmed_ms`, `motion_alpha`, `motion_beta`,
///   `lookahead_ms` (output delayed until the next detection, for recorded video),
///   `wait_for_detections`.
///
/// The rules (see [`crate::tracking::tracked_detection_manager`]): a new detection waits
/// until the tracker reports a box with its id (the tracker has then caught it up to the
/// current frame); it then replaces every tracked detection it overlaps ("same object":
/// comparable areas and an intersection covering more than half of either box), taking over
/// their labels and the id of the object's first detection. Detections not updated for
/// `timeout_ms`, or whose box has left the frame, are dropped, and a detection is reported
/// only on frames where the tracker still has its box. A detection without an id cannot be
/// tracked; it is left out (counted as dropped).
///
/// ```yaml
/// - calculator: TrackedDetectionManagerCalculator
///   input_stream: ["DETECTIONS:detections_with_id", "TRACKING_BOXES:boxes"]
///   output_stream: ["DETECTIONS:tracked_detections", "CANCEL_OBJECT_ID:cancel_object_id"]
/// ```
pub struct TrackedDetectionManagerCalculator {
    manager: TrackedDetectionManager,
    /// Label key (name, or `#<id>` without a name) -> (label id, name).
    labels: HashMap<String, (i32, Option<String>)>,
    last_cancel: Option<Timestamp>,
    /// Packets with detections left out for having no id or an invalid box.
    without_id_warning: RepeatedWarning,
    max_unconfirmed_ms: i64,
    /// Unique ids of tracks dropped for lack of confirmation, while the manager still has
    /// them (until they time out; their boxes from the tracker are ignored).
    retired: BTreeSet<i64>,
    /// Share of the remaining offset removed per frame after a re-detection.
    smoothing: f32,
    /// Per reported (public) id: the easing state of its box.
    easing: HashMap<i64, Easing>,
    /// The largest eased offset, a share of the box size.
    max_eased_offset: f32,
    /// The α-β filter's gains (`motion_alpha`, `motion_beta`).
    alpha: f32,
    beta: f32,
    /// `lookahead_ms` (0: off).
    lookahead_ms: i64,
    /// Frames whose output is held back for the next detection (lookahead only).
    pending: VecDeque<PendingFrame>,
    /// The time (ms) of the latest detection packet, until a frame at or after it is done.
    detection_due_ms: Option<i64>,
}

/// A frame's output held back by the lookahead.
struct PendingFrame {
    ts: Timestamp,
    time_ms: i64,
    reports: Vec<ReportedDetection>,
}

/// What a frame's easing found for the lookahead to apply to the held frames.
enum Revision {
    /// A re-detected object: its correction (new box minus where it was heading, per edge),
    /// spread over the frames after `since_ms` (its previous detection) up to `at_ms`.
    Correction {
        id: i64,
        delta: [f32; 4],
        since_ms: i64,
        at_ms: i64,
    },
    /// An object shown for the first time (or again after a gap): its report.
    Appeared(ReportedDetection),
}

/// Where an object's box was shown, and the offset still to be eased out. Boxes are
/// left, top, right, bottom.
#[derive(Clone, Copy, Debug)]
struct Easing {
    /// The manager's detection behind the public id (a re-detection changes it).
    unique_id: i64,
    /// Shown box minus filtered box.
    offset: [f32; 4],
    /// The box shown last.
    shown: [f32; 4],
    /// The α-β filter's box (the tracker's box, smoothed).
    filtered: [f32; 4],
    /// The α-β filter's velocity, per ms.
    velocity: [f32; 4],
    /// When the box was shown (ms).
    shown_ms: i64,
    /// When the detection behind it was made, or it was first shown (ms).
    since_ms: i64,
}

const DETECTIONS_IN: Input<Vec<Detection>> = Input::new("DETECTIONS").optional();
const TRACKING_BOXES: Input<TimedBoxList> = Input::new("TRACKING_BOXES");
const DETECTIONS_OUT: Output<Vec<Detection>> = Output::new("DETECTIONS");
const CANCEL_OBJECT_ID: Output<i64> = Output::new("CANCEL_OBJECT_ID").optional();

impl Calculator for TrackedDetectionManagerCalculator {
    type Options = TrackedDetectionManagerCalculatorOptions;

    fn contract(cc: &mut Contract, options: &Self::Options) -> Result<()> {
        if let Err(message) = options.config() {
            return Err(cc.error(crate::Error::Config {
                calculator: NAME,
                message,
            }));
        }
        cc.declare(&[
            &DETECTIONS_IN,
            &TRACKING_BOXES,
            &DETECTIONS_OUT,
            &CANCEL_OBJECT_ID,
        ])?;
        let has_detections = cc.inputs().id("DETECTIONS", 0).is_some();
        let sets = if has_detections && options.wait_for_detections {
            vec![serde_json::json!({"tag_index": ["TRACKING_BOXES:0", "DETECTIONS:0"]})]
        } else if has_detections {
            vec![
                serde_json::json!({"tag_index": ["TRACKING_BOXES:0"]}),
                serde_json::json!({"tag_index": ["DETECTIONS:0"]}),
            ]
        } else {
            vec![serde_json::json!({"tag_index": ["TRACKING_BOXES:0"]})]
        };
        cc.set_input_stream_handler(HandlerConfig {
            input_stream_handler: "SyncSetInputStreamHandler".into(),
            options: serde_json::json!({ "sync_set": sets }),
        });
        Ok(())
    }

    fn create(options: &Self::Options) -> Result<Self> {
        let config = options.config().map_err(|message| crate::Error::Config {
            calculator: NAME,
            message,
        })?;
        Ok(TrackedDetectionManagerCalculator {
            manager: TrackedDetectionManager::new(config),
            labels: HashMap::new(),
            last_cancel: None,
            without_id_warning: RepeatedWarning::default(),
            max_unconfirmed_ms: options.max_unconfirmed_ms,
            retired: BTreeSet::new(),
            smoothing: options.smoothing,
            easing: HashMap::new(),
            max_eased_offset: options.max_eased_offset,
            alpha: options.motion_alpha,
            beta: options.motion_beta,
            lookahead_ms: options.lookahead_ms,
            pending: VecDeque::new(),
            detection_due_ms: None,
        })
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let ts = cx.input_timestamp();
        if cx.has_input(&DETECTIONS_IN) {
            if let Some(detections) = cx.input(&DETECTIONS_IN).get()? {
                self.add_detections(cx, detections, ts);
                self.detection_due_ms = Some(ts.micros().div_euclid(1000));
            }
        }
        if let Some(boxes) = cx.input(&TRACKING_BOXES).get()? {
            let now_ms = ts.micros().div_euclid(1000);
            // A retired track is frozen where it was retired: the tracker goes on reporting its
            // box until the cancel reaches it over the back edge, after a number of frames
            // that depends on thread timing, and following those boxes would make the output
            // depend on it too.
            let tracked: Vec<TrackedBox> = boxes
                .0
                .iter()
                .filter_map(tracked_box)
                .filter(|b| !self.retired.contains(&b.id))
                .collect();
            let mut cancelled = self.manager.update(&tracked, now_ms);
            let hidden = self.retire_unconfirmed(now_ms, &mut cancelled);
            for id in cancelled {
                let t = match self.last_cancel {
                    Some(last) if last >= ts => Timestamp::new(last.micros() + 1),
                    _ => ts,
                };
                cx.output(&CANCEL_OBJECT_ID).send(id, t)?;
                self.last_cancel = Some(t);
            }
            let reports: Vec<ReportedDetection> = self
                .manager
                .report(now_ms)
                .into_iter()
                .filter(|r| !hidden.contains(&r.id))
                .collect();
            let (reports, revisions) = self.ease(reports, now_ms);
            if self.lookahead_ms == 0 {
                self.send(cx, ts, reports)?;
            } else {
                self.revise_pending(&revisions);
                self.pending.push_back(PendingFrame {
                    ts,
                    time_ms: now_ms,
                    reports,
                });
                let detection_done = self.detection_due_ms.is_some_and(|due| now_ms >= due);
                let release_before = if detection_done {
                    self.detection_due_ms = None;
                    i64::MAX
                } else {
                    now_ms - self.lookahead_ms
                };
                self.release(cx, release_before)?;
            }
        }
        Ok(Flow::Continue)
    }

    fn close(&mut self, cx: &mut CalculatorContext) -> Result<()> {
        self.release(cx, i64::MAX)
    }
}

/// The manager's view of a tracker box (`None` for a box without an id or with non-finite
/// coordinates).
fn tracked_box(b: &TimedBox) -> Option<TrackedBox> {
    let finite = [b.left, b.top, b.right, b.bottom, b.rotation]
        .iter()
        .all(|v| v.is_finite());
    (b.id >= 0 && finite).then(|| TrackedBox {
        id: b.id,
        rect: NormRect::from_ltrb(b.left, b.top, b.right, b.bottom, b.rotation),
        time_ms: b.time_us.div_euclid(1000),
    })
}

/// The key of label `i` of `d` in the manager's label map: the name, else `#<label id>`.
fn label_key(d: &Detection, i: usize) -> Option<(String, i32, Option<String>)> {
    let name = d.labels.get(i).cloned();
    let id = d.label_ids.get(i).copied();
    match (name, id) {
        (Some(n), id) => Some((n.clone(), id.unwrap_or(-1), Some(n))),
        (None, Some(id)) => Some((format!("#{id}"), id, None)),
        (None, None) => None,
    }
}

impl TrackedDetectionManagerCalculator {
    fn add_detections(
        &mut self,
        cx: &mut CalculatorContext,
        detections: &[Detection],
        ts: Timestamp,
    ) {
        let time_ms = ts.micros().div_euclid(1000);
        let mut without_id = 0u64;
        for d in detections {
            let Some(id) = d.id.and_then(|id| i64::try_from(id).ok()) else {
                without_id += 1;
                continue;
            };
            let b = d.bbox();
            if !b.is_valid() {
                without_id += 1;
                continue;
            }
            let mut labels = Vec::new();
            for (i, &score) in d.scores.iter().enumerate() {
                if let Some((key, label_id, name)) = label_key(d, i) {
                    self.labels.entry(key.clone()).or_insert((label_id, name));
                    labels.push((key, score));
                }
            }
            let rect = NormRect::from_ltrb(b.xmin, b.ymin, b.xmax(), b.ymax(), 0.0);
            self.manager
                .add_detection(TrackedDetection::new(id, rect, time_ms, &labels));
        }
        if without_id > 0 {
            if let Some(occurrences) = self.without_id_warning.occurred() {
                tracing::warn!(
                    node = cx.node_name(),
                    occurrences,
                    "detections without an id or with an invalid box cannot be tracked and are \
                     left out (put DetectionUniqueIdCalculator before this node; {}; all are \
                     counted as dropped)",
                    RepeatedWarning::NOTE
                );
            }
            cx.record_dropped(without_id);
        }
    }

    /// Retires live tracks not confirmed by a detection within `max_unconfirmed_ms` (their
    /// unique ids are added to `cancelled`); returns the public ids not to report now.
    fn retire_unconfirmed(&mut self, now_ms: i64, cancelled: &mut Vec<i64>) -> BTreeSet<i64> {
        let active: BTreeSet<i64> = self.manager.active().map(|d| d.unique_id).collect();
        self.retired.retain(|id| active.contains(id));
        if self.max_unconfirmed_ms <= 0 {
            return BTreeSet::new();
        }
        // A re-detection replaces the track with a new detection, so a track's initial time
        // is when a detection last confirmed the object.
        let stale: Vec<i64> = self
            .manager
            .active()
            .filter(|d| {
                d.last_updated_ms >= now_ms
                    && now_ms - d.initial_ms > self.max_unconfirmed_ms
                    && !self.retired.contains(&d.unique_id)
            })
            .map(|d| d.unique_id)
            .collect();
        for id in stale {
            self.retired.insert(id);
            cancelled.push(id);
        }
        cancelled.sort_unstable();
        cancelled.dedup();
        self.manager
            .active()
            .filter(|d| self.retired.contains(&d.unique_id))
            .map(|d| d.public_id())
            .collect()
    }

    /// Smooths the reported boxes: an α-β filter follows each object's tracked box, and when
    /// the detection behind a reported id changes (a re-detection), the box starts where it
    /// was shown, moved on by its velocity, and the offset to the new track shrinks by
    /// `smoothing` per frame (never more than `max_eased_offset` of the box size).
    /// With the lookahead, a re-detection is not eased but returned as a correction for the
    /// held frames, and a newly shown object as an appearance.
    fn ease(
        &mut self,
        mut reports: Vec<ReportedDetection>,
        now_ms: i64,
    ) -> (Vec<ReportedDetection>, Vec<Revision>) {
        let behind: HashMap<i64, i64> = self
            .manager
            .active()
            .filter(|d| d.last_updated_ms >= now_ms)
            .map(|d| (d.public_id(), d.unique_id))
            .collect();
        let lookahead = self.lookahead_ms > 0;
        let keep = if lookahead { 0.0 } else { 1.0 - self.smoothing };
        let (alpha, beta) = (self.alpha, self.beta);
        let mut next = HashMap::with_capacity(reports.len());
        let mut revisions = Vec::new();
        for r in &mut reports {
            let (l, t, rr, b) = r.bounds;
            let tracked = [l, t, rr, b];
            let unique_id = behind.get(&r.id).copied().unwrap_or(r.id);
            let mut since_ms = now_ms;
            let (offset, filtered, velocity) = match self.easing.get(&r.id) {
                Some(e) => {
                    let dt = (now_ms - e.shown_ms).max(1) as f32;
                    if e.unique_id != unique_id {
                        let heading: [f32; 4] =
                            std::array::from_fn(|i| e.shown[i] + e.velocity[i] * dt);
                        if lookahead {
                            revisions.push(Revision::Correction {
                                id: r.id,
                                delta: std::array::from_fn(|i| tracked[i] - heading[i]),
                                since_ms: e.since_ms,
                                at_ms: now_ms,
                            });
                        }
                        let offset = std::array::from_fn(|i| (heading[i] - tracked[i]) * keep);
                        (offset, tracked, e.velocity)
                    } else {
                        since_ms = e.since_ms;
                        let predicted: [f32; 4] =
                            std::array::from_fn(|i| e.filtered[i] + e.velocity[i] * dt);
                        let residual: [f32; 4] = std::array::from_fn(|i| tracked[i] - predicted[i]);
                        (
                            e.offset.map(|o| o * keep),
                            std::array::from_fn(|i| predicted[i] + alpha * residual[i]),
                            std::array::from_fn(|i| e.velocity[i] + beta * residual[i] / dt),
                        )
                    }
                }
                None => {
                    if lookahead {
                        revisions.push(Revision::Appeared(r.clone()));
                    }
                    ([0.0; 4], tracked, [0.0; 4])
                }
            };
            let size = [filtered[2] - filtered[0], filtered[3] - filtered[1]];
            let offset: [f32; 4] = std::array::from_fn(|i| {
                let limit = self.max_eased_offset * size[i % 2].abs();
                offset[i].clamp(-limit, limit)
            });
            let shown: [f32; 4] = std::array::from_fn(|i| filtered[i] + offset[i]);
            r.bounds = (shown[0], shown[1], shown[2], shown[3]);
            next.insert(
                r.id,
                Easing {
                    unique_id,
                    offset,
                    shown,
                    filtered,
                    velocity,
                    shown_ms: now_ms,
                    since_ms,
                },
            );
        }
        self.easing = next;
        (reports, revisions)
    }

    /// Applies one frame's revisions to the held frames: a correction is spread linearly
    /// over the frames since the object's previous detection (none of it before, all of it
    /// at the re-detection); an appearance is shown as detected on the held frames just
    /// before it that do not show the object.
    fn revise_pending(&mut self, revisions: &[Revision]) {
        for revision in revisions {
            match revision {
                Revision::Correction {
                    id,
                    delta,
                    since_ms,
                    at_ms,
                } => {
                    let span = (at_ms - since_ms).max(1) as f32;
                    for frame in self.pending.iter_mut().filter(|f| f.time_ms > *since_ms) {
                        let w = ((frame.time_ms - since_ms) as f32 / span).min(1.0);
                        if let Some(r) = frame.reports.iter_mut().find(|r| r.id == *id) {
                            let (l, t, rr, b) = r.bounds;
                            r.bounds = (
                                l + w * delta[0],
                                t + w * delta[1],
                                rr + w * delta[2],
                                b + w * delta[3],
                            );
                        }
                    }
                }
                Revision::Appeared(report) => {
                    for frame in self.pending.iter_mut().rev() {
                        if frame.reports.iter().any(|r| r.id == report.id) {
                            break;
                        }
                        frame.reports.push(report.clone());
                    }
                }
            }
        }
    }

    /// Sends the held frames older than `before_ms`.
    fn release(&mut self, cx: &mut CalculatorContext, before_ms: i64) -> Result<()> {
        while self.pending.front().is_some_and(|f| f.time_ms < before_ms) {
            if let Some(frame) = self.pending.pop_front() {
                self.send(cx, frame.ts, frame.reports)?;
            }
        }
        Ok(())
    }

    fn send(
        &self,
        cx: &mut CalculatorContext,
        ts: Timestamp,
        reports: Vec<ReportedDetection>,
    ) -> Result<()> {
        let out: Vec<Detection> = reports.into_iter().map(|r| self.to_detection(r)).collect();
        cx.output(&DETECTIONS_OUT).send(out, ts)
    }

    fn to_detection(&self, r: ReportedDetection) -> Detection {
        let (l, t, rr, b) = r.bounds;
        let mut label_ids = Vec::with_capacity(r.labels.len());
        let mut names = Vec::with_capacity(r.labels.len());
        let mut scores = Vec::with_capacity(r.labels.len());
        for (key, score) in &r.labels {
            let (id, name) = self.labels.get(key).cloned().unwrap_or((-1, None));
            label_ids.push(id);
            names.push(name);
            scores.push(*score);
        }
        // Names run in parallel with the ids, so they are given only when every label has one.
        let labels = if names.iter().all(Option::is_some) {
            names.into_iter().flatten().collect()
        } else {
            Vec::new()
        };
        Detection {
            label_ids,
            labels,
            scores,
            relative_bounding_box: RelativeBox::from_corners(l, t, rr, b),
            id: u64::try_from(r.id).ok(),
        }
    }
}

mediagraph_framework::register_calculator!(
    TrackedDetectionManagerCalculator,
    "TrackedDetectionManagerCalculator"
);
