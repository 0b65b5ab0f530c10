//! Many boxes over a cache of per-frame [`TrackingData`]:
//!
//! * [`TimedBox`] / [`TimedBoxList`]: a box at a time (normalized top/left/bottom/right,
//!   rotation, id, label, confidence, time in µs), the tracker's input and output.
//! * [`BoxTracker`]: the streaming tracker. It keeps the last `cache_size` frames
//!   ([`BoxTrackerOptions::cache_size`], 100), moves every box one frame forward per new
//!   frame, and starts boxes stamped at a past cached frame by tracking them forward to the
//!   newest frame within the same call (catch-up), replacing a box with the same id. A start
//!   box older than the cache is rejected and counted. Boxes can be cancelled by id, and any
//!   box can be tracked forward or backward between two cached timestamps (random access).
//! * [`timed_box_at_time`]: path interpolation (exact match, linear blend between
//!   neighbours, snap within 67 ms at either end).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::motion_box::{
    initialize_inliers, prefetch_lines, MotionBox, MotionBoxState, MotionVectorFrame, TrackStatus,
    TrackStepOptions, NOMINAL_FRAME_MS,
};
use super::tracking_data::TrackingData;

/// A box at a time, in coordinates normalized to the frame (0..1 on each axis).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimedBox {
    /// Top edge.
    pub top: f32,
    /// Left edge.
    pub left: f32,
    /// Bottom edge.
    pub bottom: f32,
    /// Right edge.
    pub right: f32,
    /// Rotation about the center (rad).
    #[serde(default)]
    pub rotation: f32,
    /// Box id (-1: none).
    #[serde(default = "minus_one")]
    pub id: i64,
    /// Optional label carried along.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Tracking confidence, 0..1 (about 0.5 is a sensible threshold).
    #[serde(default = "one")]
    pub confidence: f32,
    /// Time in microseconds.
    #[serde(default)]
    pub time_us: i64,
    /// The box came from a reacquisition (RESTART_POS).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reacquisition: bool,
}

fn minus_one() -> i64 {
    -1
}

fn one() -> f32 {
    1.0
}

/// A list of boxes (one frame's boxes, or start boxes).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TimedBoxList(pub Vec<TimedBox>);

mediagraph_framework::register_packet_type!(TimedBoxList, "TimedBoxList");

impl TimedBox {
    /// A box from the state (scaled about its center), at `time_us`.
    pub fn from_state(s: &MotionBoxState, time_us: i64) -> TimedBox {
        let r = s.rect();
        TimedBox {
            top: r[1],
            left: r[0],
            bottom: r[3],
            right: r[2],
            rotation: s.rotation,
            id: -1,
            label: None,
            confidence: s.tracking_confidence,
            time_us,
            reacquisition: false,
        }
    }

    /// The box as an initial tracking state (inliers not yet set).
    pub fn to_state(&self) -> MotionBoxState {
        MotionBoxState::from_rect(self.left, self.top, self.right, self.bottom, self.rotation)
    }

    /// Whether the edges are finite and ordered, and the box not larger than 10 frames.
    pub fn is_valid(&self) -> bool {
        let v = [self.top, self.left, self.bottom, self.right, self.rotation];
        v.iter().all(|x| x.is_finite())
            && self.right > self.left
            && self.bottom > self.top
            && self.right - self.left < 10.0
            && self.bottom - self.top < 10.0
    }

    /// Linear blend of two boxes at `time_us` (geometry and confidence; id and label of `a`).
    pub fn blend(a: &TimedBox, b: &TimedBox, time_us: i64) -> TimedBox {
        let span = (b.time_us - a.time_us) as f64;
        let t = if span != 0.0 {
            ((time_us - a.time_us) as f64 / span).clamp(0.0, 1.0) as f32
        } else {
            0.0
        };
        let l = |x: f32, y: f32| x * (1.0 - t) + y * t;
        TimedBox {
            top: l(a.top, b.top),
            left: l(a.left, b.left),
            bottom: l(a.bottom, b.bottom),
            right: l(a.right, b.right),
            rotation: l(a.rotation, b.rotation),
            confidence: l(a.confidence, b.confidence),
            time_us,
            ..a.clone()
        }
    }

    /// Intersection over union of the axis-aligned boxes.
    pub fn iou(&self, other: &TimedBox) -> f32 {
        let iw = (self.right.min(other.right) - self.left.max(other.left)).max(0.0);
        let ih = (self.bottom.min(other.bottom) - self.top.max(other.top)).max(0.0);
        let inter = iw * ih;
        let area = |b: &TimedBox| (b.right - b.left).max(0.0) * (b.bottom - b.top).max(0.0);
        let union = area(self) + area(other) - inter;
        if union > 0.0 {
            inter / union
        } else {
            0.0
        }
    }
}

/// Default tolerance for snapping to a path's ends (67 ms).
pub const PATH_SNAP_TOLERANCE_US: i64 = 67_000;

/// The box of a time-sorted `path` at `time_us`: the exact match, else a linear blend of the
/// neighbours; before the first or after the last box, that box if within `snap_us`.
pub fn timed_box_at_time(
    path: &VecDeque<TimedBox>,
    time_us: i64,
    snap_us: i64,
) -> Option<TimedBox> {
    let i = path.partition_point(|b| b.time_us < time_us);
    if let Some(b) = path.get(i).filter(|b| b.time_us == time_us) {
        return Some(b.clone());
    }
    match (i.checked_sub(1).and_then(|j| path.get(j)), path.get(i)) {
        (Some(a), Some(b)) => Some(TimedBox::blend(a, b, time_us)),
        (Some(a), None) if time_us - a.time_us <= snap_us => Some(TimedBox {
            time_us,
            ..a.clone()
        }),
        (None, Some(b)) if b.time_us - time_us <= snap_us => Some(TimedBox {
            time_us,
            ..b.clone()
        }),
        _ => None,
    }
}

/// Options of [`BoxTracker`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BoxTrackerOptions {
    /// Frames of tracking data kept for catch-up and random access (at least 2).
    pub cache_size: usize,
    /// The track step's options.
    pub track_step: TrackStepOptions,
    /// Path end snap tolerance in µs.
    pub path_snap_tolerance_us: i64,
}

impl Default for BoxTrackerOptions {
    fn default() -> Self {
        BoxTrackerOptions {
            cache_size: 100,
            track_step: TrackStepOptions::box_tracking_graph(),
            path_snap_tolerance_us: PATH_SNAP_TOLERANCE_US,
        }
    }
}

/// What happened to a start box.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartOutcome {
    /// Tracked from its frame to the newest one; it is now live.
    Started,
    /// Its time is after the newest frame: it starts when that frame arrives.
    Pending,
    /// Its time is before the oldest cached frame (frames were already dropped): rejected.
    TooOld,
    /// The box is malformed, or its track failed during catch-up.
    Failed,
}

/// One cached frame.
struct CachedFrame {
    time_us: i64,
    /// The frame's data as is (positions in this frame, motion to the previous one).
    backward: MotionVectorFrame,
    /// The motion previous -> this frame (positions in the previous frame).
    forward: MotionVectorFrame,
}

/// One live box.
struct Track {
    motion_box: MotionBox,
    label: Option<String>,
    reacquisition: bool,
    path: VecDeque<TimedBox>,
}

/// The streaming multi-box tracker (see the module docs).
pub struct BoxTracker {
    options: BoxTrackerOptions,
    /// `options.track_step`, shared by the boxes.
    step_options: Arc<TrackStepOptions>,
    frames: VecDeque<Arc<CachedFrame>>,
    /// Global index of `frames[0]`.
    base_index: i64,
    tracks: BTreeMap<i64, Track>,
    pending: Vec<TimedBox>,
    too_old: u64,
}

/// What a new frame did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FrameReport {
    /// Ids whose track failed (removed).
    pub failed: Vec<i64>,
    /// Pending boxes started on this frame.
    pub started: Vec<i64>,
}

impl BoxTracker {
    /// An empty tracker.
    pub fn new(mut options: BoxTrackerOptions) -> BoxTracker {
        options.cache_size = options.cache_size.max(2);
        BoxTracker {
            step_options: Arc::new(options.track_step.clone()),
            options,
            frames: VecDeque::new(),
            base_index: 0,
            tracks: BTreeMap::new(),
            pending: Vec::new(),
            too_old: 0,
        }
    }

    /// The options.
    pub fn options(&self) -> &BoxTrackerOptions {
        &self.options
    }

    /// Start boxes rejected because they were older than the cache.
    pub fn too_old_count(&self) -> u64 {
        self.too_old
    }

    /// Time of the newest frame.
    pub fn head_time(&self) -> Option<i64> {
        self.frames.back().map(|f| f.time_us)
    }

    /// Times of the oldest and newest cached frames.
    pub fn cached_range(&self) -> Option<(i64, i64)> {
        Some((self.frames.front()?.time_us, self.frames.back()?.time_us))
    }

    /// Ids of the live boxes.
    pub fn ids(&self) -> Vec<i64> {
        self.tracks.keys().copied().collect()
    }

    /// Boxes waiting for a future frame.
    pub fn pending(&self) -> &[TimedBox] {
        &self.pending
    }

    fn head_index(&self) -> i64 {
        self.base_index + self.frames.len() as i64 - 1
    }

    fn frame(&self, index: i64) -> Option<&Arc<CachedFrame>> {
        let i = index.checked_sub(self.base_index)?;
        usize::try_from(i).ok().and_then(|i| self.frames.get(i))
    }

    /// Adds the newest frame (`data` describes its motion to the previous frame), moves
    /// every live box onto it and starts the pending boxes that are due. Frames must come in
    /// increasing time; an older or equal time is ignored (reported as no change).
    pub fn push_frame(&mut self, time_us: i64, data: &TrackingData) -> FrameReport {
        let mut report = FrameReport::default();
        if self.head_time().is_some_and(|t| time_us <= t) {
            return report;
        }
        let duration_ms = self
            .head_time()
            .map_or(NOMINAL_FRAME_MS, |t| (time_us - t) as f32 / 1000.0);
        let backward = MotionVectorFrame::from_tracking_data(data, duration_ms);
        let forward = backward.inverted();
        self.frames.push_back(Arc::new(CachedFrame {
            time_us,
            backward,
            forward,
        }));
        while self.frames.len() > self.options.cache_size {
            self.frames.pop_front();
            self.base_index += 1;
        }
        let head = self.head_index();
        let frame = Arc::clone(self.frames.back().expect("just pushed"));
        let max_states = self.options.cache_size;
        self.prefetch_tracks();
        for (&id, track) in self.tracks.iter_mut() {
            if track.motion_box.state_at(head - 1).is_none() {
                continue;
            }
            let ok = step_track(track, head - 1, &frame.forward, true);
            // Only the states the next steps read are kept (the path keeps the boxes).
            let needed = track.motion_box.states_needed();
            track.motion_box.trim(needed);
            if ok {
                push_path(track, head, id, time_us, max_states);
            } else {
                report.failed.push(id);
            }
        }
        for id in &report.failed {
            self.tracks.remove(id);
        }
        // The frame's lookup tables served the live steps; only catch-up and random access
        // step on it again (they rebuild them), so the cache does not keep them.
        drop(frame);
        if let Some(f) = self.frames.back_mut().and_then(Arc::get_mut) {
            f.forward.drop_index();
        }
        let due: Vec<TimedBox> = {
            let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
                .into_iter()
                .partition(|b| b.time_us <= time_us);
            self.pending = later;
            due
        };
        for b in due {
            let id = b.id;
            if self.start_at(&b, head) == StartOutcome::Started {
                report.started.push(id);
            }
        }
        report
    }

    /// Starts loading what the live steps of a frame read, for all boxes at once, in three
    /// passes (each reads what the previous one loaded): the tracks, their states and path
    /// ends, the states' record lists. After a frame's decoding and motion analysis the
    /// boxes' memory is mostly out of the caches; loaded together, their misses overlap
    /// (measured: ~0.7 µs less per box in `graphs/box_tracking.yaml` on vtest.avi, see
    /// BENCHMARKS.md "Box tracking", session 10).
    fn prefetch_tracks(&self) {
        for track in self.tracks.values() {
            prefetch_lines(std::slice::from_ref(track));
        }
        for track in self.tracks.values() {
            track.motion_box.prefetch_states();
            for end in [track.path.front(), track.path.back()]
                .into_iter()
                .flatten()
            {
                prefetch_lines(std::slice::from_ref(end));
            }
        }
        for track in self.tracks.values() {
            track.motion_box.prefetch_records();
        }
    }

    /// Starts `start` (catch-up, see the module docs), replacing a live box with the same
    /// id.
    pub fn start_box(&mut self, start: &TimedBox) -> StartOutcome {
        if !start.is_valid() {
            return StartOutcome::Failed;
        }
        let Some((oldest, newest)) = self.cached_range() else {
            self.pending.push(start.clone());
            return StartOutcome::Pending;
        };
        if start.time_us > newest {
            self.pending.retain(|b| b.id != start.id || start.id < 0);
            self.pending.push(start.clone());
            return StartOutcome::Pending;
        }
        if start.time_us < oldest && self.base_index > 0 {
            self.too_old += 1;
            return StartOutcome::TooOld;
        }
        let index = self.index_at_or_after(start.time_us);
        self.start_at(start, index)
    }

    /// Index of the first cached frame at or after `time_us` (the newest if none).
    fn index_at_or_after(&self, time_us: i64) -> i64 {
        let i = self.frames.partition_point(|f| f.time_us < time_us);
        self.base_index + i.min(self.frames.len().saturating_sub(1)) as i64
    }

    /// Initializes `start` at cached frame `index` and tracks it to the head.
    fn start_at(&mut self, start: &TimedBox, index: i64) -> StartOutcome {
        let head = self.head_index();
        let Some(frame) = self.frame(index).cloned() else {
            return StartOutcome::Failed;
        };
        let mut state = start.to_state();
        initialize_inliers(&mut state, &frame.backward);
        let mut mb = MotionBox::with_shared_options(Arc::clone(&self.step_options));
        mb.reset_at_frame(index, state);
        let mut track = Track {
            motion_box: mb,
            label: start.label.clone(),
            reacquisition: start.reacquisition,
            path: VecDeque::new(),
        };
        let max_states = self.options.cache_size;
        push_path(&mut track, index, start.id, frame.time_us, max_states);
        for i in index..head {
            let Some(next) = self.frame(i + 1).cloned() else {
                return StartOutcome::Failed;
            };
            if !step_track(&mut track, i, &next.forward, true) {
                return StartOutcome::Failed;
            }
            push_path(&mut track, i + 1, start.id, next.time_us, max_states);
        }
        let needed = track.motion_box.states_needed();
        track.motion_box.trim(needed);
        self.tracks.insert(start.id, track);
        StartOutcome::Started
    }

    /// Stops tracking `id` (also a pending start); true if there was such a box.
    pub fn cancel(&mut self, id: i64) -> bool {
        let n = self.pending.len();
        self.pending.retain(|b| b.id != id);
        self.tracks.remove(&id).is_some() || self.pending.len() != n
    }

    /// The live boxes at the newest frame.
    pub fn boxes(&self) -> Vec<TimedBox> {
        let Some(now) = self.head_time() else {
            return Vec::new();
        };
        self.tracks
            .values()
            .filter_map(|t| t.path.back().filter(|b| b.time_us == now).cloned())
            .collect()
    }

    /// Box `id` at `time_us`, interpolated along its path (see [`timed_box_at_time`]).
    pub fn box_at_time(&self, id: i64, time_us: i64) -> Option<TimedBox> {
        let track = self.tracks.get(&id)?;
        timed_box_at_time(&track.path, time_us, self.options.path_snap_tolerance_us)
    }

    /// The live boxes at `time_us` (interpolated along their paths).
    pub fn boxes_at_time(&self, time_us: i64) -> Vec<TimedBox> {
        self.tracks
            .keys()
            .filter_map(|&id| self.box_at_time(id, time_us))
            .collect()
    }

    /// Random access: tracks `start` (at its time, snapped to the first cached frame at or
    /// after it) forward or backward to the cached frame at or after `stop_us`, without
    /// touching the live boxes. Returns the box at every frame on the way (start included),
    /// ending early if the track fails.
    pub fn track_random_access(
        &self,
        start: &TimedBox,
        stop_us: i64,
    ) -> Result<Vec<TimedBox>, String> {
        let (oldest, newest) = self
            .cached_range()
            .ok_or_else(|| "no cached frames".to_string())?;
        if !start.is_valid() {
            return Err(format!("malformed start box {start:?}"));
        }
        for (what, t) in [("start", start.time_us), ("stop", stop_us)] {
            if t < oldest || t > newest {
                return Err(format!(
                    "{what} time {t} µs is outside the cached frames {oldest}..={newest} µs"
                ));
            }
        }
        let from = self.index_at_or_after(start.time_us);
        let to = self.index_at_or_after(stop_us);
        let frame = self.frame(from).ok_or("frame not cached")?;
        let mut state = start.to_state();
        initialize_inliers(&mut state, &frame.backward);
        let mut track = Track {
            motion_box: MotionBox::with_shared_options(Arc::clone(&self.step_options)),
            label: start.label.clone(),
            reacquisition: false,
            path: VecDeque::new(),
        };
        track.motion_box.reset_at_frame(from, state);
        push_path(&mut track, from, start.id, frame.time_us, usize::MAX);
        let mut out = vec![track.path[0].clone()];
        let forward = to >= from;
        let mut i = from;
        while i != to {
            let (next, data) = if forward {
                let f = self.frame(i + 1).ok_or("frame not cached")?;
                (i + 1, &f.forward)
            } else {
                let f = self.frame(i).ok_or("frame not cached")?;
                (i - 1, &f.backward)
            };
            let ok = step_track(&mut track, i, data, forward);
            let t = self.frame(next).ok_or("frame not cached")?.time_us;
            let default = MotionBoxState::default();
            let s = track.motion_box.state_at(next).unwrap_or(&default);
            let mut b = TimedBox::from_state(s, t);
            b.id = start.id;
            b.label = start.label.clone();
            out.push(b);
            if !ok {
                break;
            }
            i = next;
        }
        Ok(out)
    }
}

/// One step of a track; a box just started without any inlier or outlier (its first frame
/// had no features, e.g. the first frame of a stream) takes its inliers from the step's own
/// vectors first (they are located in the from-frame).
fn step_track(track: &mut Track, from: i64, frame: &MotionVectorFrame, forward: bool) -> bool {
    if let Some(s) = track.motion_box.state_at(from) {
        if s.inliers.is_empty()
            && s.outliers.is_empty()
            && track.motion_box.frames() == Some((from, from))
        {
            let mut s = s.clone();
            initialize_inliers(&mut s, frame);
            track.motion_box.reset_at_frame(from, s);
        }
    }
    track.motion_box.track_step(from, frame, forward)
}

/// Appends the box's state at `frame` to its path.
fn push_path(track: &mut Track, frame: i64, id: i64, time_us: i64, max: usize) {
    let default = MotionBoxState::default();
    let state = track.motion_box.state_at(frame).unwrap_or(&default);
    let mut b = TimedBox::from_state(state, time_us);
    b.id = id;
    b.label = track.label.clone();
    b.reacquisition = track.reacquisition;
    if state.track_status < TrackStatus::Tracked {
        b.confidence = 0.0;
    }
    while track.path.back().is_some_and(|p| p.time_us >= time_us) {
        track.path.pop_back();
    }
    track.path.push_back(b);
    while track.path.len() > max.max(2) {
        track.path.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracking::camera_motion::Homography;
    use crate::tracking::tracking_data::{MotionData, FLAG_BACKGROUND_UNSTABLE};

    /// TrackingData of frame `frame` on the 256x192 domain: background features on a
    /// world lattice moving by `cam` px per frame (background model current -> previous =
    /// -cam), and a 60x60 px object starting at (80, 60) that moves by `cam + obj` (residual
    /// motion -obj); ids are persistent.
    fn data(frame: i32, obj: (f32, f32), cam: (f32, f32)) -> TrackingData {
        let mut d = TrackingData {
            background_model: Some(Homography::from(crate::tracking::TranslationModel {
                dx: -cam.0,
                dy: -cam.1,
            })),
            ..Default::default()
        };
        let (cx, cy) = (cam.0 * frame as f32, cam.1 * frame as f32);
        let (ox, oy) = (obj.0 * frame as f32 + cx, obj.1 * frame as f32 + cy);
        let mut items = Vec::new();
        // Object features at fixed object-local positions (persistent ids).
        for lx in (2..60).step_by(6) {
            for ly in (2..60).step_by(6) {
                let (x, y) = (80.0 + lx as f32 + ox, 60.0 + ly as f32 + oy);
                let (c, r) = (x.round() as i32, y.round() as i32);
                if (0..256).contains(&c) && (0..192).contains(&r) {
                    items.push((c, r, -obj.0, -obj.1, 100_000 + lx * 1000 + ly));
                }
            }
        }
        // Background features at fixed world positions, hidden behind the object.
        for wx in (-400..700).step_by(9) {
            for wy in (-300..500).step_by(9) {
                let (x, y) = (wx as f32 + cx, wy as f32 + cy);
                let (c, r) = (x.round() as i32, y.round() as i32);
                let in_obj = (80.0..140.0).contains(&(x - ox)) && (60.0..120.0).contains(&(y - oy));
                if (0..256).contains(&c) && (0..192).contains(&r) && !in_obj {
                    items.push((c, r, 0.0, 0.0, (wx + 1000) * 10_000 + wy + 1000));
                }
            }
        }
        items.sort_by_key(|&(c, r, ..)| (c, r));
        let md: &mut MotionData = &mut d.motion_data;
        md.col_starts = vec![0; 257];
        for &(c, r, vx, vy, id) in &items {
            md.row_indices.push(r);
            md.vector_data.extend([vx, vy]);
            md.track_id.push(id);
            md.col_starts[c as usize + 1] += 1;
        }
        for c in 0..256 {
            md.col_starts[c + 1] += md.col_starts[c];
        }
        md.num_elements = items.len() as i32;
        d.global_feature_count = md.num_elements;
        d
    }

    fn object_box(frame: i32, obj: (f32, f32), id: i64, time_us: i64) -> TimedBox {
        let (ox, oy) = (obj.0 * frame as f32, obj.1 * frame as f32);
        TimedBox {
            left: (80.0 + ox) / 256.0,
            right: (136.0 + ox) / 256.0,
            top: (60.0 + oy) / 192.0,
            bottom: (116.0 + oy) / 192.0,
            id,
            time_us,
            ..Default::default()
        }
    }

    const OBJ: (f32, f32) = (2.0, 1.0);
    const DT: i64 = 33_333;

    fn tracker_with(n: i32, cache: usize) -> BoxTracker {
        let mut t = BoxTracker::new(BoxTrackerOptions {
            cache_size: cache,
            ..Default::default()
        });
        for f in 0..n {
            t.push_frame(f as i64 * DT, &data(f, OBJ, (0.0, 0.0)));
        }
        t
    }

    fn close(a: &TimedBox, b: &TimedBox) -> bool {
        a.iou(b) > 0.8
    }

    #[test]
    fn catch_up_tracks_a_past_box_to_the_head_and_replaces_same_id() {
        let mut t = tracker_with(30, 100);
        // A stale box with id 7 tracked live from a wrong place.
        let wrong = TimedBox {
            left: 0.7,
            right: 0.9,
            top: 0.7,
            bottom: 0.9,
            id: 7,
            time_us: 29 * DT,
            ..Default::default()
        };
        assert_eq!(t.start_box(&wrong), StartOutcome::Started);
        // The detection made at frame 10 arrives now.
        let start = object_box(10, OBJ, 7, 10 * DT);
        assert_eq!(t.start_box(&start), StartOutcome::Started);
        let boxes = t.boxes();
        assert_eq!(boxes.len(), 1);
        let expected = object_box(29, OBJ, 7, 29 * DT);
        assert!(
            close(&boxes[0], &expected),
            "{:?} vs {expected:?}",
            boxes[0]
        );
        assert_eq!(boxes[0].time_us, 29 * DT);
        // It keeps tracking live.
        for f in 30..40 {
            t.push_frame(f as i64 * DT, &data(f, OBJ, (0.0, 0.0)));
        }
        let b = &t.boxes()[0];
        assert!(close(b, &object_box(39, OBJ, 7, 0)), "{b:?}");
    }

    #[test]
    fn start_box_older_than_cache_is_counted_and_rejected() {
        let mut t = tracker_with(30, 10);
        assert_eq!(t.cached_range(), Some((20 * DT, 29 * DT)));
        let old = object_box(5, OBJ, 3, 5 * DT);
        assert_eq!(t.start_box(&old), StartOutcome::TooOld);
        assert_eq!(t.too_old_count(), 1);
        assert!(t.boxes().is_empty());
        // A future box waits for its frame.
        let future = object_box(31, OBJ, 4, 31 * DT);
        assert_eq!(t.start_box(&future), StartOutcome::Pending);
        t.push_frame(30 * DT, &data(30, OBJ, (0.0, 0.0)));
        assert!(t.boxes().is_empty());
        let r = t.push_frame(31 * DT, &data(31, OBJ, (0.0, 0.0)));
        assert_eq!(r.started, vec![4]);
        assert_eq!(t.boxes().len(), 1);
        let bad = TimedBox {
            left: f32::NAN,
            ..object_box(30, OBJ, 5, 30 * DT)
        };
        assert_eq!(t.start_box(&bad), StartOutcome::Failed);
    }

    #[test]
    fn cancel_removes_by_id() {
        let mut t = tracker_with(5, 100);
        assert_eq!(
            t.start_box(&object_box(4, OBJ, 1, 4 * DT)),
            StartOutcome::Started
        );
        let other = TimedBox {
            id: 2,
            ..object_box(4, (0.0, 0.0), 2, 4 * DT)
        };
        assert_eq!(t.start_box(&other), StartOutcome::Started);
        assert_eq!(t.ids(), vec![1, 2]);
        assert!(t.cancel(1));
        assert!(!t.cancel(1));
        assert_eq!(t.ids(), vec![2]);
        t.push_frame(5 * DT, &data(5, OBJ, (0.0, 0.0)));
        assert_eq!(t.boxes().iter().map(|b| b.id).collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn random_access_forward_and_backward() {
        let t = tracker_with(40, 100);
        let start = object_box(10, OBJ, 9, 10 * DT);
        let fwd = t.track_random_access(&start, 30 * DT).unwrap();
        assert_eq!(fwd.len(), 21);
        let end = fwd.last().unwrap();
        assert_eq!(end.time_us, 30 * DT);
        assert!(close(end, &object_box(30, OBJ, 9, 0)), "{end:?}");
        let back_start = object_box(30, OBJ, 9, 30 * DT);
        let back = t.track_random_access(&back_start, 12 * DT).unwrap();
        assert_eq!(back.len(), 19);
        let end = back.last().unwrap();
        assert_eq!(end.time_us, 12 * DT);
        assert!(close(end, &object_box(12, OBJ, 9, 0)), "{end:?}");
        // Live state untouched; out of range is an error.
        assert!(t.boxes().is_empty());
        assert!(t.track_random_access(&start, 99 * DT).is_err());
    }

    #[test]
    fn camera_pan_moves_boxes_and_many_boxes_work() {
        // Static object, camera pans: the whole scene moves by (-3, 0) px per frame.
        let mut t = BoxTracker::new(BoxTrackerOptions::default());
        let cam = (-3.0, 0.0);
        t.push_frame(0, &data(0, (0.0, 0.0), cam));
        let mut ids = Vec::new();
        for k in 0..20 {
            let b = TimedBox {
                left: 0.3 + 0.01 * k as f32,
                right: 0.6 + 0.01 * k as f32,
                top: 0.3,
                bottom: 0.6,
                id: k,
                ..Default::default()
            };
            assert_eq!(t.start_box(&b), StartOutcome::Started);
            ids.push(k);
        }
        for f in 1..11 {
            t.push_frame(f as i64 * DT, &data(f, (0.0, 0.0), cam));
        }
        let boxes = t.boxes();
        assert_eq!(boxes.len(), 20);
        for b in &boxes {
            let expected_left = 0.3 + 0.01 * b.id as f32 - 30.0 / 256.0;
            assert!((b.left - expected_left).abs() < 0.01, "{b:?}");
        }
        // The cached frames keep no lookup tables of the steps.
        assert!(t.frames.iter().all(|f| !f.forward.has_index()));
    }

    #[test]
    fn path_interpolation() {
        let mk = |t: i64, x: f32| TimedBox {
            left: x,
            right: x + 0.1,
            top: 0.0,
            bottom: 0.1,
            confidence: 1.0 - x,
            id: 3,
            time_us: t,
            ..Default::default()
        };
        let path = VecDeque::from([mk(0, 0.0), mk(100_000, 0.2), mk(200_000, 0.4)]);
        let exact = timed_box_at_time(&path, 100_000, 67_000).unwrap();
        assert_eq!(exact, path[1]);
        let mid = timed_box_at_time(&path, 150_000, 67_000).unwrap();
        assert!((mid.left - 0.3).abs() < 1e-6 && (mid.confidence - 0.7).abs() < 1e-6);
        assert_eq!(mid.time_us, 150_000);
        let after = timed_box_at_time(&path, 260_000, 67_000).unwrap();
        assert_eq!(after.left, 0.4);
        assert!(timed_box_at_time(&path, 270_000, 67_000).is_none());
        assert!(timed_box_at_time(&path, -60_000, 67_000).is_some());
        assert!(timed_box_at_time(&path, -70_000, 67_000).is_none());
        assert!(timed_box_at_time(&VecDeque::new(), 0, 67_000).is_none());
        // Through the tracker: a time between two frames blends the neighbours.
        let mut t = tracker_with(20, 100);
        t.start_box(&object_box(5, OBJ, 1, 5 * DT));
        let a = t.box_at_time(1, 10 * DT).unwrap();
        let b = t.box_at_time(1, 11 * DT).unwrap();
        let m = t.box_at_time(1, 10 * DT + DT / 2).unwrap();
        assert!((m.left - (a.left + b.left) / 2.0).abs() < 1e-4);
    }

    /// Region flow of frame `f` (640x480 nominal, like motion analysis at 320x240 x2): a
    /// 100x120 px object starting at (270, 250) that moves by `vy` px per frame (negative: up)
    /// on a static background, with only `n_obj` features on the object, several near its
    /// edges (like the nearly uniform vehicle roof in bikes.mp4). Positions are in frame f,
    /// (dx, dy) points to frame f-1 (reference 2.5: backward).
    fn sparse_object_flow(f: i32, vy: f32) -> crate::tracking::RegionFlowFeatureList {
        use crate::tracking::RegionFlowFeature;
        let mut list = crate::tracking::RegionFlowFeatureList {
            frame_width: 640,
            frame_height: 480,
            long_tracks: true,
            match_frame: -1,
            ..Default::default()
        };
        if f == 0 {
            return list;
        }
        // In the lower half of the box, several near its edges.
        let local = [
            (6.0, 70.0),
            (94.0, 76.0),
            (30.0, 108.0),
            (70.0, 112.0),
            (8.0, 116.0),
            (92.0, 114.0),
        ];
        let oy = 250.0 + vy * f as f32;
        let feat = |x: f32, y: f32, dy: f32, id: i32| RegionFlowFeature {
            x,
            y,
            dx: 0.0,
            dy,
            track_id: id,
            tracking_error: 0.0,
            corner_response: 1.0,
            irls_weight: 1.0,
            flags: 0,
            feature_id: 0,
        };
        for (k, &(lx, ly)) in local.iter().enumerate() {
            // Tracks break now and then (a new id: not a continued inlier).
            let id = 1000 + k as i32 + 100 * ((f + k as i32) / 3);
            list.features.push(feat(270.0 + lx, oy + ly, -vy, id));
        }
        for gx in 0..8 {
            for gy in 0..6 {
                let (x, y) = (20.0 + 85.0 * gx as f32, 15.0 + 85.0 * gy as f32);
                let on_object = (250.0..390.0).contains(&x) && (oy - 20.0..oy + 140.0).contains(&y);
                if !on_object {
                    list.features.push(feat(x, y, 0.0, gx * 10 + gy));
                }
            }
        }
        list
    }

    #[test]
    fn object_moving_up_with_few_features_and_no_camera_model_moves_up() {
        // The bikes.mp4 situation reduced: few features on the object, no usable camera
        // model (translation-only / missing -> FLAG_BACKGROUND_UNSTABLE), the first frame
        // without flow. The box must follow the object's direction every frame and not
        // stall when the prior decays.
        use crate::tracking::camera_motion::{CameraMotion, CameraMotionType};
        let packer = crate::tracking::FlowPackager::default();
        for camera in [
            None,
            Some(CameraMotion {
                motion_type: CameraMotionType::Unstable,
                ..Default::default()
            }),
        ] {
            for vy in [-12.0f32, 12.0] {
                let mut t = BoxTracker::new(BoxTrackerOptions::default());
                let start = TimedBox {
                    left: 270.0 / 640.0,
                    top: 250.0 / 480.0,
                    right: 370.0 / 640.0,
                    bottom: 370.0 / 480.0,
                    id: 7,
                    ..Default::default()
                };
                assert_eq!(t.start_box(&start), StartOutcome::Pending);
                // The reference behaviour (velocity frozen and prior decaying without a
                // background model) on the same frames: the static fallback freezes the box.
                let mut reference_options = BoxTrackerOptions::default();
                reference_options
                    .track_step
                    .update_velocity_without_background = false;
                let mut reference = BoxTracker::new(reference_options);
                reference.start_box(&start);
                for f in 0..12 {
                    let data = packer.pack(&sparse_object_flow(f, vy), camera.as_ref());
                    reference.push_frame(f as i64 * 33_333, &data);
                }
                let b = &reference.boxes()[0];
                let stalled = (b.top + b.bottom) / 2.0 * 480.0 - (310.0 + vy * 11.0);
                assert!(stalled.abs() > 30.0, "reference: {stalled} px behind");
                for f in 0..12 {
                    let data = packer.pack(&sparse_object_flow(f, vy), camera.as_ref());
                    assert!(data.frame_flags & FLAG_BACKGROUND_UNSTABLE != 0);
                    let report = t.push_frame(f as i64 * 33_333, &data);
                    assert!(report.failed.is_empty(), "vy {vy}: failed at frame {f}");
                    let b = &t.boxes()[0];
                    let cy = (b.top + b.bottom) / 2.0 * 480.0;
                    let expected = 310.0 + vy * f as f32;
                    assert!(
                        (cy - expected).abs() < 4.0,
                        "vy {vy} camera {:?}: frame {f}: box center y {cy}, object {expected}",
                        camera.map(|c| c.motion_type)
                    );
                    let cx = (b.left + b.right) / 2.0 * 640.0;
                    assert!((cx - 320.0).abs() < 3.0, "frame {f}: x {cx}");
                }
            }
        }
    }

    #[test]
    fn timed_box_json() {
        let list: TimedBoxList = serde_json::from_str(
            r#"[{"left":0.1,"top":0.2,"right":0.3,"bottom":0.4,"id":5,"time_us":1000}]"#,
        )
        .unwrap();
        assert_eq!(list.0[0].id, 5);
        assert_eq!(list.0[0].confidence, 1.0);
        assert!(serde_json::from_str::<TimedBoxList>(r#"[{"left":0.1}]"#).is_err());
    }
}
