//! One tracked box and its track step: the box moves by the motion of the features inside
//! it (object motion, fitted by IRLS on camera-compensated vectors) composed with the camera
//! motion evaluated at the box.
//!
//! * [`MotionVectorFrame`]: a frame's [`TrackingData`] in the aspect-preserving domain (longer
//!   side 1), with [`MotionVectorFrame::inverted`] for forward tracking.
//! * [`MotionBoxState`]: position, size, scale, rotation, velocity, prior, kinetic energy,
//!   disparity, background discrimination, inlier / outlier features, status, confidence.
//! * [`track_step`]: one step as tracking.md section 4.3 describes it (search region,
//!   featureless / out-of-view handling, prior weights, IRLS translation and object scale,
//!   inlier scoring, disparity, reset, camera motion through the box corners, failure rules),
//!   plus the documented deviations of [`TrackStepOptions`] (boxes kept out of view, held at
//!   the edge they left through and re-acquired when their object comes back).
//! * [`MotionBox`]: the states of one box indexed by frame, tracked forward or backward.
//!
//! States are kept in per-axis normalized coordinates ([0, 1] across the frame); velocities
//! are per 33.3 ms frame. A step rescales the geometry into the aspect domain and per-frame
//! units and back; feature records (match positions) stay normalized.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use super::camera_motion::Homography;
use super::tracking_data::{
    TrackingData, FLAG_BACKGROUND_UNSTABLE, FLAG_CHUNK_BOUNDARY, FLAG_DUPLICATED,
};

/// Frame duration the velocities refer to (30 fps).
pub const NOMINAL_FRAME_MS: f32 = 100.0 / 3.0;

/// `e^x` for `x <= 0` (Cephes' `expf`: range reduction by `ln 2` and a degree-6
/// polynomial, within 2 ulp of libm; `x < -87` gives `e^-87`, NaN stays NaN), without
/// branches or calls so that loops over it are vectorized.
fn exp_nonpositive(x: f32) -> f32 {
    // 1.5 * 2^23: adding it rounds to an integer, held in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let x = if x < -87.0 { -87.0 } else { x };
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 0.166_666_65)
        * r
        + 0.5;
    let e_r = p * r * r + r + 1.0;
    // 2^n from the rounded integer's bits (n in -126..=0).
    let k = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    e_r * f32::from_bits(((k + 127) << 23) as u32)
}

/// `ramp(x, lo, hi)`: clamp((x - lo) / (hi - lo), 0, 1).
fn ramp(x: f32, lo: f32, hi: f32) -> f32 {
    if hi == lo {
        return if x >= hi { 1.0 } else { 0.0 };
    }
    ((x - lo) / (hi - lo)).clamp(0.0, 1.0)
}

fn lerp(a: f32, b: f32, t: f32) -> f32 {
    a * (1.0 - t) + b * t
}

fn norm(v: [f32; 2]) -> f32 {
    (v[0] * v[0] + v[1] * v[1]).sqrt()
}

/// One feature of a [`MotionVectorFrame`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MotionVector {
    /// Position in the from-frame (aspect domain).
    pub pos: [f32; 2],
    /// Camera motion at `pos` (from-frame -> to-frame); zero when the background is unstable.
    pub background: [f32; 2],
    /// Residual (object) motion after the camera motion is removed.
    pub object: [f32; 2],
    /// Long-track id (-1: unknown).
    pub track_id: i32,
}

impl MotionVector {
    /// Full motion (camera + object).
    pub fn motion(&self) -> [f32; 2] {
        [
            self.background[0] + self.object[0],
            self.background[1] + self.object[1],
        ]
    }
}

/// A frame's motion in the aspect domain: x in [0, `extent[0]`], y in [0, `extent[1]`],
/// the longer side being 1. Vectors are sorted by (x, y).
#[derive(Clone, Debug)]
pub struct MotionVectorFrame {
    /// The features, sorted by x then y (see [`MotionVectorFrame::vectors`]).
    vectors: Vec<MotionVector>,
    /// Lookups shared by the steps of all boxes on this frame (built by the first step).
    index: OnceLock<FrameIndex>,
    /// Camera motion from-frame -> to-frame in this domain (identity when invalid).
    pub background_model: Homography,
    /// Whether `background_model` is usable.
    pub valid_background: bool,
    /// The frame repeats the previous one.
    pub is_duplicated: bool,
    /// First frame of a chunk (track ids are not comparable across it).
    pub is_chunk_boundary: bool,
    /// Width / height of the frame (in [0.1, 10]).
    pub aspect_ratio: f32,
    /// Domain size (1, 1/aspect) or (aspect, 1).
    pub extent: [f32; 2],
    /// Duration of the step in ms.
    pub duration_ms: f32,
    /// Track ids that ended on purpose (sorted).
    pub actively_discarded: Vec<i32>,
}

/// Frames are equal when their motion is (whether their lookup tables are built yet or not).
impl PartialEq for MotionVectorFrame {
    fn eq(&self, other: &Self) -> bool {
        self.vectors == other.vectors
            && self.background_model == other.background_model
            && self.valid_background == other.valid_background
            && self.is_duplicated == other.is_duplicated
            && self.is_chunk_boundary == other.is_chunk_boundary
            && self.aspect_ratio == other.aspect_ratio
            && self.extent == other.extent
            && self.duration_ms == other.duration_ms
            && self.actively_discarded == other.actively_discarded
    }
}

/// What the boxes' steps look up in a frame, built once per frame: the positions as
/// separate arrays (the search-region scans read only these) and the vectors by track id.
#[derive(Clone, Debug)]
struct FrameIndex {
    /// Per vector: x.
    xs: Vec<f32>,
    /// Per vector: y.
    ys: Vec<f32>,
    /// The first vector of each track id.
    ids: IdTable,
    /// Per vector: the next vector with the same track id ([`NO_VECTOR`]: none).
    next_same_id: Vec<u32>,
    /// Some track id is on more than one vector.
    repeated_ids: bool,
}

/// Where the first vector of each track id (>= 0) is.
#[derive(Clone, Debug)]
enum IdTable {
    /// Ids within a range a few times the number of vectors (the motion analysis numbers
    /// its tracks consecutively): the vector index at `id - base` ([`NO_VECTOR`] if none),
    /// one read per lookup.
    Direct { base: i32, first: Vec<u32> },
    /// Other ids: open addressing (linear probing, power-of-two size, at most a third full):
    /// `(track id as u32) << 32 | index of its first vector`, [`EMPTY_SLOT`] if free.
    Hashed { slots: Vec<u64> },
}

/// A free slot of [`IdTable::Hashed`] (no vector index is `u32::MAX`).
const EMPTY_SLOT: u64 = u64::MAX;
/// No vector (end of a [`FrameIndex::next_same_id`] chain, or an id not in the frame).
const NO_VECTOR: u32 = u32::MAX;

impl IdTable {
    /// An empty table for the ids of `vectors`: direct when they span at most 8 entries
    /// per vector (plus 1024).
    fn for_ids(vectors: &[MotionVector]) -> IdTable {
        let ids = vectors.iter().map(|v| v.track_id).filter(|&id| id >= 0);
        let (lo, hi) = ids.fold((i32::MAX, -1), |(lo, hi), id| (lo.min(id), hi.max(id)));
        let span = i64::from(hi) - i64::from(lo) + 1;
        if span <= 8 * vectors.len() as i64 + 1024 {
            IdTable::direct(lo, hi)
        } else {
            IdTable::hashed(vectors.len())
        }
    }

    /// An empty direct table for ids `lo..=hi` (none if `lo > hi`).
    fn direct(lo: i32, hi: i32) -> IdTable {
        let span = (i64::from(hi) - i64::from(lo) + 1).max(0) as usize;
        IdTable::Direct {
            base: if span > 0 { lo } else { 0 },
            first: vec![NO_VECTOR; span],
        }
    }

    /// An empty hashed table for the ids of `vectors` vectors.
    fn hashed(vectors: usize) -> IdTable {
        let size = (3 * vectors).next_power_of_two().max(16);
        IdTable::Hashed {
            slots: vec![EMPTY_SLOT; size],
        }
    }

    /// Records vector `i` as the first of `id` (>= 0) unless the id has one: returns that
    /// first vector, or [`NO_VECTOR`] when `i` was recorded.
    fn insert(&mut self, id: i32, i: u32) -> u32 {
        match self {
            IdTable::Direct { base, first } => {
                let entry = &mut first[(id - *base) as usize];
                if *entry == NO_VECTOR {
                    *entry = i;
                    NO_VECTOR
                } else {
                    *entry
                }
            }
            IdTable::Hashed { slots } => {
                let mask = slots.len() - 1;
                let mut slot = home_slot(id, mask);
                loop {
                    let entry = slots[slot];
                    if entry == EMPTY_SLOT {
                        slots[slot] = (u64::from(id as u32) << 32) | u64::from(i);
                        return NO_VECTOR;
                    }
                    if (entry >> 32) as i32 == id {
                        return (entry & 0xffff_ffff) as u32;
                    }
                    slot = (slot + 1) & mask;
                }
            }
        }
    }

    /// Calls `visit` with each item and the first vector of its id (`id_of`), for the
    /// items whose id is in the frame.
    #[inline(always)]
    fn for_each_first<T>(
        &self,
        items: &[T],
        id_of: impl Fn(&T) -> i32,
        mut visit: impl FnMut(u32, &T),
    ) {
        match self {
            IdTable::Direct { base, first } => {
                for item in items {
                    // A negative id (or one below `base`) wraps past the table's end.
                    let k = id_of(item).wrapping_sub(*base) as u32 as usize;
                    if let Some(&j) = first.get(k) {
                        if j != NO_VECTOR {
                            visit(j, item);
                        }
                    }
                }
            }
            IdTable::Hashed { slots } => {
                // A negative id matches no entry: the entries hold ids >= 0, and an empty
                // slot ends the probe first.
                let mask = slots.len() - 1;
                for item in items {
                    let id = id_of(item);
                    let mut slot = home_slot(id, mask);
                    loop {
                        let entry = slots[slot];
                        if entry == EMPTY_SLOT {
                            break;
                        }
                        if (entry >> 32) as i32 == id {
                            visit((entry & 0xffff_ffff) as u32, item);
                            break;
                        }
                        slot = (slot + 1) & mask;
                    }
                }
            }
        }
    }
}

/// An id's first slot in a hashed table of `mask + 1` slots: its low bits (consecutive ids
/// spread well; other ids are still found, only more slowly).
fn home_slot(id: i32, mask: usize) -> usize {
    (id as usize) & mask
}

impl FrameIndex {
    fn new(vectors: &[MotionVector]) -> FrameIndex {
        FrameIndex::with_ids(vectors, IdTable::for_ids(vectors))
    }

    /// The index of `vectors` with their ids in `ids` (empty, and able to hold them).
    fn with_ids(vectors: &[MotionVector], ids: IdTable) -> FrameIndex {
        let mut index = FrameIndex {
            xs: vectors.iter().map(|v| v.pos[0]).collect(),
            ys: vectors.iter().map(|v| v.pos[1]).collect(),
            ids,
            next_same_id: vec![NO_VECTOR; vectors.len()],
            repeated_ids: false,
        };
        // Per repeated id (rare): its first and its last vector so far.
        let mut last_of_id: Vec<(u32, u32)> = Vec::new();
        for (i, v) in vectors.iter().enumerate() {
            if v.track_id < 0 {
                continue;
            }
            let first = index.ids.insert(v.track_id, i as u32);
            if first != NO_VECTOR {
                // A repeated id: appended to the chain of its first vector.
                let last = match last_of_id.iter_mut().find(|(f, _)| *f == first) {
                    Some((_, last)) => std::mem::replace(last, i as u32),
                    None => {
                        last_of_id.push((first, i as u32));
                        first
                    }
                };
                index.next_same_id[last as usize] = i as u32;
                index.repeated_ids = true;
            }
        }
        index
    }

    /// Index of the first vector with track id `id`, or [`NO_VECTOR`].
    fn first_with_id(&self, id: i32) -> u32 {
        let mut found = NO_VECTOR;
        self.ids.for_each_first(&[id], |&id| id, |j, _| found = j);
        found
    }

    /// Calls `visit` with the index of every vector with track id `id`.
    fn for_each_with_id(&self, id: i32, mut visit: impl FnMut(usize)) {
        let mut i = self.first_with_id(id);
        while i != NO_VECTOR {
            visit(i as usize);
            i = self.next_same_id[i as usize];
        }
    }

    /// Calls `visit` with the index of every vector whose track id is an item's (`id_of`),
    /// and the item.
    fn for_each_item_vector<T>(
        &self,
        items: &[T],
        id_of: impl Fn(&T) -> i32,
        mut visit: impl FnMut(usize, &T),
    ) {
        if self.repeated_ids {
            for item in items {
                self.for_each_with_id(id_of(item), |j| visit(j, item));
            }
            return;
        }
        // One vector per id: the first vectors alone.
        self.ids
            .for_each_first(items, id_of, |j, item| visit(j as usize, item));
    }

    /// [`FrameIndex::for_each_item_vector`] of feature records.
    fn for_each_record_vector(
        &self,
        records: &[FeatureRecord],
        visit: impl FnMut(usize, &FeatureRecord),
    ) {
        self.for_each_item_vector(records, |r| r.id, visit);
    }

    /// Index range of the vectors with x in [x0, x1] (`xs` is sorted).
    fn x_range(&self, x0: f32, x1: f32) -> std::ops::Range<usize> {
        let a = self.xs.partition_point(|&x| x < x0);
        let b = self.xs.partition_point(|&x| x <= x1);
        a..b.max(a)
    }
}

/// Sorts `items` by `order`, stably, like `sort_by`, in time linear in their number plus
/// the distance they move: an insertion sort, which takes over to `sort_by` once the items
/// have moved 16 places each on average (input far from sorted).
fn sort_nearly_sorted<T: Copy>(items: &mut [T], order: impl Fn(&T, &T) -> std::cmp::Ordering) {
    let mut budget = 16 * items.len();
    for i in 1..items.len() {
        let item = items[i];
        let mut j = i;
        while j > 0 && order(&items[j - 1], &item).is_gt() {
            items[j] = items[j - 1];
            j -= 1;
        }
        items[j] = item;
        budget = budget.saturating_sub(i - j);
        if budget == 0 {
            // The sorted prefix and the untouched rest keep their equal items in input
            // order, so the stable sort gives the same result as sorting the input.
            items.sort_by(order);
            return;
        }
    }
}

/// The inverse of a homography (h22 normalized to 1); `None` if singular.
pub fn invert_homography(h: &Homography) -> Option<Homography> {
    let m = [
        [f64::from(h.h00), f64::from(h.h01), f64::from(h.h02)],
        [f64::from(h.h10), f64::from(h.h11), f64::from(h.h12)],
        [f64::from(h.h20), f64::from(h.h21), 1.0],
    ];
    let c = |r: usize, k: usize| -> f64 {
        let (r1, r2) = ((r + 1) % 3, (r + 2) % 3);
        let (k1, k2) = ((k + 1) % 3, (k + 2) % 3);
        m[r1][k1] * m[r2][k2] - m[r1][k2] * m[r2][k1]
    };
    let det = m[0][0] * c(0, 0) + m[0][1] * c(0, 1) + m[0][2] * c(0, 2);
    if !det.is_finite() || det.abs() < 1e-12 {
        return None;
    }
    // inverse[i][j] = cofactor(j, i) / det
    let inv = |i: usize, j: usize| c(j, i) / det;
    let s = inv(2, 2);
    if !s.is_finite() || s.abs() < 1e-12 {
        return None;
    }
    let a = [
        inv(0, 0) / s,
        inv(0, 1) / s,
        inv(0, 2) / s,
        inv(1, 0) / s,
        inv(1, 1) / s,
        inv(1, 2) / s,
        inv(2, 0) / s,
        inv(2, 1) / s,
    ]
    .map(|v| v as f32);
    a.iter()
        .all(|v| v.is_finite())
        .then(|| Homography::from_array(a))
}

impl MotionVectorFrame {
    /// The aspect-domain extent for an aspect ratio (reset to 1 outside [0.1, 10]).
    pub fn extent_for_aspect(aspect: f32) -> [f32; 2] {
        let a = if aspect.is_finite() && (0.1..=10.0).contains(&aspect) {
            aspect
        } else {
            1.0
        };
        if a >= 1.0 {
            [1.0, 1.0 / a]
        } else {
            [a, 1.0]
        }
    }

    /// Converts `data` (motion of frame f to f-1, positions in f: the backward direction).
    /// `duration_ms` is the time between the two frames.
    pub fn from_tracking_data(data: &TrackingData, duration_ms: f32) -> MotionVectorFrame {
        let extent = Self::extent_for_aspect(data.frame_aspect);
        let aspect = extent[0] / extent[1];
        let (dw, dh) = (
            data.domain_width.max(1) as f32,
            data.domain_height.max(1) as f32,
        );
        let (kx, ky) = (extent[0] / dw, extent[1] / dh);
        let valid = data.frame_flags & FLAG_BACKGROUND_UNSTABLE == 0
            && data
                .background_model
                .is_some_and(|h| h.to_array().iter().all(|v| v.is_finite()));
        let domain_model = data.background_model.unwrap_or(Homography::IDENTITY);
        let mut vectors = Vec::with_capacity(data.motion_data.num_elements.max(0) as usize);
        let ncols = data.motion_data.col_starts.len().saturating_sub(1);
        for c in 0..ncols {
            for (r, vx, vy, id) in data.column(c) {
                if !(vx.is_finite() && vy.is_finite()) {
                    continue;
                }
                let (cx, ry) = (c as f32, r as f32);
                let background = if valid {
                    let (mx, my) = domain_model.map(cx, ry);
                    [(mx - cx) * kx, (my - ry) * ky]
                } else {
                    [0.0, 0.0]
                };
                vectors.push(MotionVector {
                    pos: [cx * kx, ry * ky],
                    background,
                    object: [vx * kx, vy * ky],
                    track_id: id.unwrap_or(-1),
                });
            }
        }
        let mut actively_discarded = data.motion_data.actively_discarded_tracked_ids.clone();
        actively_discarded.sort_unstable();
        MotionVectorFrame {
            index: OnceLock::new(),
            vectors,
            background_model: if valid {
                domain_model.scaled(kx, ky)
            } else {
                Homography::IDENTITY
            },
            valid_background: valid,
            is_duplicated: data.frame_flags & FLAG_DUPLICATED != 0,
            is_chunk_boundary: data.frame_flags & FLAG_CHUNK_BOUNDARY != 0,
            aspect_ratio: aspect,
            extent,
            duration_ms: if duration_ms.is_finite() && duration_ms > 0.0 {
                duration_ms
            } else {
                NOMINAL_FRAME_MS
            },
            actively_discarded,
        }
    }

    /// The same motion in the other direction (for forward tracking f-1 -> f): each vector
    /// moves to its match, both motions are negated, vectors leaving the domain are dropped
    /// and the camera model is inverted.
    pub fn inverted(&self) -> MotionVectorFrame {
        let mut vectors = Vec::with_capacity(self.vectors.len());
        vectors.extend(self.vectors.iter().filter_map(|v| {
            let m = v.motion();
            let pos = [v.pos[0] + m[0], v.pos[1] + m[1]];
            let inside = (0.0..=self.extent[0]).contains(&pos[0])
                && (0.0..=self.extent[1]).contains(&pos[1]);
            inside.then_some(MotionVector {
                pos,
                background: [-v.background[0], -v.background[1]],
                object: [-v.object[0], -v.object[1]],
                track_id: v.track_id,
            })
        }));
        // Moved by their motion, the vectors are still nearly in (x, y) order.
        sort_nearly_sorted(&mut vectors, |a, b| {
            a.pos[0]
                .total_cmp(&b.pos[0])
                .then(a.pos[1].total_cmp(&b.pos[1]))
        });
        let inverse = if self.valid_background {
            invert_homography(&self.background_model)
        } else {
            None
        };
        MotionVectorFrame {
            index: OnceLock::new(),
            vectors,
            background_model: inverse.unwrap_or(Homography::IDENTITY),
            valid_background: inverse.is_some(),
            ..self.clone_header()
        }
    }

    fn clone_header(&self) -> MotionVectorFrame {
        MotionVectorFrame {
            vectors: Vec::new(),
            index: OnceLock::new(),
            background_model: self.background_model,
            valid_background: self.valid_background,
            is_duplicated: self.is_duplicated,
            is_chunk_boundary: self.is_chunk_boundary,
            aspect_ratio: self.aspect_ratio,
            extent: self.extent,
            duration_ms: self.duration_ms,
            actively_discarded: self.actively_discarded.clone(),
        }
    }

    /// The features, sorted by x then y.
    pub fn vectors(&self) -> &[MotionVector] {
        &self.vectors
    }

    /// Frees the lookup tables the steps built on this frame (a later step rebuilds them).
    pub(crate) fn drop_index(&mut self) {
        self.index.take();
    }

    /// Whether the lookup tables are built.
    #[cfg(test)]
    pub(crate) fn has_index(&self) -> bool {
        self.index.get().is_some()
    }

    /// The frame's [`FrameIndex`].
    fn index(&self) -> &FrameIndex {
        self.index.get_or_init(|| FrameIndex::new(&self.vectors))
    }

    /// Index range of the vectors with x in [x0, x1].
    fn x_range(&self, x0: f32, x1: f32) -> std::ops::Range<usize> {
        self.index().x_range(x0, x1)
    }
}

/// Result of a track step.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TrackStatus {
    /// Not tracked (failed, or leaving the frame).
    #[default]
    Untracked = 0,
    /// The box became too small.
    Empty = 1,
    /// No features while moving (or without a background model).
    NoFeatures = 2,
    /// Tracked.
    Tracked = 3,
    /// Copied from a duplicated frame.
    Duplicated = 4,
    /// Out of view or featureless, moved by camera motion only.
    TrackedOutOfBound = 5,
}

/// Degrees of freedom of the object motion.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TrackingDegrees {
    /// Translation only.
    #[default]
    TrackingDegreeTranslation,
    /// Translation and scale (the box-tracking graph's choice).
    TrackingDegreeObjectScale,
    /// Translation and in-plane rotation.
    TrackingDegreeObjectRotation,
    /// Translation, rotation and scale.
    TrackingDegreeObjectRotationScale,
}

impl TrackingDegrees {
    fn scale(self) -> bool {
        matches!(
            self,
            Self::TrackingDegreeObjectScale | Self::TrackingDegreeObjectRotationScale
        )
    }
    fn rotation(self) -> bool {
        matches!(
            self,
            Self::TrackingDegreeObjectRotation | Self::TrackingDegreeObjectRotationScale
        )
    }
}

/// Options of the track step (defaults: tracking.md section 7, except the options marked as a
/// deviation from the reference; the box-tracking graph overrides five of them, see
/// [`TrackStepOptions::box_tracking_graph`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackStepOptions {
    /// Degrees of freedom of the object motion.
    pub tracking_degrees: TrackingDegrees,
    /// Apply the camera motion through the box corners (scale / rotation of the camera
    /// reach the box) rather than as a translation at the center.
    pub track_object_and_camera: bool,
    /// IRLS iterations of the object fit.
    pub irls_iterations: u32,
    /// **Deviation from the reference** (default 1e-4; 0 reproduces it). The object fit
    /// (translation, and similarity) stops re-weighting once an iteration moves every
    /// parameter by at most this much (translation in aspect-domain units, i.e. frame
    /// widths for a landscape frame, per frame; similarity coefficients unitless): the next
    /// pass is then the last one, which sets the weights used for inlier scoring. The
    /// reference always runs `irls_iterations`.
    pub irls_convergence: f32,
    /// Minimum spatial sigma (fraction of the box size).
    pub spatial_sigma: f32,
    /// Minimum sigma of the motion prior.
    pub min_motion_sigma: f32,
    /// Motion prior sigma relative to the previous speed.
    pub relative_motion_sigma: f32,
    /// Disparity ramp start.
    pub motion_disparity_low_level: f32,
    /// Disparity ramp end.
    pub motion_disparity_high_level: f32,
    /// Decay of the disparity per step.
    pub disparity_decay: f32,
    /// Minimum blend of the motion prior.
    pub motion_prior_weight: f32,
    /// Background discrimination ramp start.
    pub background_discrimination_low_level: f32,
    /// Background discrimination ramp end.
    pub background_discrimination_high_level: f32,
    /// IRLS weight at which inlierness starts.
    pub inlier_low_weight: f32,
    /// IRLS weight of full inlierness.
    pub inlier_high_weight: f32,
    /// Dead zone of the spring, relative to the box size.
    pub inlier_center_relative_distance: f32,
    /// Spring force toward the inlier center (0 disables).
    pub inlier_spring_force: f32,
    /// Weight of the previous velocity in the velocity update.
    pub velocity_update_weight: f32,
    /// Failing steps (high disparity) tolerated in the last `max + 1`.
    pub max_track_failures: u32,
    /// Minimum expansion of the search region.
    pub expansion_size: f32,
    /// Kinetic energy decay per step.
    pub kinetic_energy_decay: f32,
    /// Kinetic energy ramp start (per 30 fps frame).
    pub low_kinetic_energy: f32,
    /// Kinetic energy ramp end (per 30 fps frame).
    pub high_kinetic_energy: f32,
    /// Prior change per step.
    pub prior_weight_increase: f32,
    /// Speed below which a box counts as static (per 30 fps frame).
    pub static_motion_temporal_ratio: f32,
    /// Continued inliers needed before the object similarity is fitted.
    pub object_similarity_min_contd_inliers: u32,
    /// Largest accepted object scale change per step.
    pub box_similarity_max_scale: f32,
    /// Largest accepted object rotation per step (rad).
    pub box_similarity_max_rotation: f32,
    /// **Deviation from the reference** (default `true`; `false` reproduces it). The object
    /// similarity (scale, rotation) is fitted on the vectors inside the box only. The
    /// reference fits it on the whole search region, whose margin around the box holds
    /// mostly background: the IRLS favours its consistent zero object motion over the
    /// noisier motion of a deforming object, which pulls the fitted scale toward 1, so a box
    /// grows and shrinks more slowly than its object. The translation is still fitted on the
    /// whole region. Fitted on the object's own vectors, the similarity is also trusted from
    /// fewer continued inliers: the box-tracking graph lowers
    /// `object_similarity_min_contd_inliers` from the reference's 30 to 20 (with the region
    /// fit, 20 let through fits that shrank a growing box). Box-tracking evaluation, success
    /// AUC: 0.761 (region fit, 30) -> 0.767 (inside the box) -> 0.780 (and 20); the "walker"
    /// objects 0.69 / 0.71 -> 0.82 / 0.73, the "shrinker" objects 0.89 / 0.88 -> 0.93 / 0.89;
    /// `--close-up` (an object approaching the camera until it fills the frame) 0.81 -> 0.83
    /// -> 0.90.
    pub object_similarity_inside_box: bool,
    /// **Deviation from the reference** (default `true`; `false` reproduces it). Without a
    /// usable background model the reference keeps the previous velocity unchanged (velocity
    /// update weight 1), so a box started on a frame without a camera model keeps velocity 0
    /// however fast its object moves. Once its prior has decayed (-0.2 per frame without a
    /// background) and fewer than 3 vectors are "good", the static fallback then freezes it
    /// while the object moves on (bikes.mp4: the boxes on the vehicle roof). With `true`
    /// the velocity is updated from the measured motion as for a valid background with an
    /// imperfect fit (weight `velocity_update_weight` x prior), and the prior grows as with a
    /// background instead of decaying (the reference decays it because the velocity is not
    /// maintained); without a background model that motion is the raw image motion, which is
    /// also what moves the box.
    pub update_velocity_without_background: bool,
    /// **Deviation from the reference** (default `true`; `false` reproduces it). The
    /// reference marks a box that leaves the frame faster than the static threshold
    /// UNTRACKED, and a moving box without features NO_FEATURES, so both are removed and an
    /// object that comes back is lost. With `true` a box is not failed for leaving: while it
    /// is at least partly outside the frame and has no features in its search region (or
    /// lies entirely outside), it is kept as TRACKED_OUT_OF_BOUND, moved by the camera motion
    /// only, with velocity 0 and confidence 0 (it stays where the object left the view, in
    /// scene coordinates), and it is tracked normally again once features are inside it.
    pub keep_out_of_view_boxes: bool,
    /// **Deviation from the reference** (used with `keep_out_of_view_boxes`; default 0.25).
    /// A box kept out of view is held at the frame edge it left through, with at least this
    /// fraction of its width / height inside the frame, so an object that comes back
    /// through that edge enters the box and is picked up again. 0: the box goes wherever the
    /// camera motion takes it.
    pub out_of_view_min_visible: f32,
    /// **Deviation from the reference** (used with `keep_out_of_view_boxes`; default
    /// `true`). A box kept out of view (TRACKED_OUT_OF_BOUND) stays so, with confidence 0,
    /// while it sticks out of the frame (its position still follows the normal step), and
    /// is re-acquired when at least `reacquire_min_features` features near it (its part in
    /// view widened by the search margin, and by its own size on the inward side) move
    /// coherently into the frame faster than `background_discrimination_high_level`
    /// relative to the camera. The features are taken to outline the returning object's
    /// part in view: the box moves by their mean motion, its inward edge is put at the
    /// inward-most of them and across the entry direction it is centred on them; it
    /// restarts with them as inliers, their motion as velocity (prior 1) and the other
    /// features as outliers. `false`: a held box is tracked like any other box as soon as
    /// features are in its search region.
    pub reacquire_out_of_view_boxes: bool,
    /// Coherent inward-moving features needed to re-acquire a held box (at least 2).
    pub reacquire_min_features: u32,
}

impl Default for TrackStepOptions {
    fn default() -> Self {
        TrackStepOptions {
            tracking_degrees: TrackingDegrees::TrackingDegreeTranslation,
            track_object_and_camera: false,
            irls_iterations: 5,
            irls_convergence: 1e-4,
            spatial_sigma: 0.15,
            min_motion_sigma: 0.002,
            relative_motion_sigma: 0.3,
            motion_disparity_low_level: 8e-3,
            motion_disparity_high_level: 1.6e-2,
            disparity_decay: 0.8,
            motion_prior_weight: 0.2,
            background_discrimination_low_level: 4e-3,
            background_discrimination_high_level: 8e-3,
            inlier_low_weight: 250.0,
            inlier_high_weight: 500.0,
            inlier_center_relative_distance: 0.1,
            inlier_spring_force: 0.3,
            velocity_update_weight: 0.7,
            max_track_failures: 10,
            expansion_size: 0.05,
            kinetic_energy_decay: 0.98,
            low_kinetic_energy: 1e-3,
            high_kinetic_energy: 4e-3,
            prior_weight_increase: 0.2,
            static_motion_temporal_ratio: 3e-3,
            object_similarity_min_contd_inliers: 30,
            box_similarity_max_scale: 1.05,
            box_similarity_max_rotation: 0.2,
            object_similarity_inside_box: true,
            update_velocity_without_background: true,
            keep_out_of_view_boxes: true,
            out_of_view_min_visible: 0.25,
            reacquire_out_of_view_boxes: true,
            reacquire_min_features: 3,
        }
    }
}

impl TrackStepOptions {
    /// The live box-tracking graph's settings: object scale, object and camera, no spring,
    /// static ratio 3e-2, and the object similarity from 20 continued inliers (see
    /// [`TrackStepOptions::object_similarity_inside_box`]).
    pub fn box_tracking_graph() -> TrackStepOptions {
        TrackStepOptions {
            tracking_degrees: TrackingDegrees::TrackingDegreeObjectScale,
            track_object_and_camera: true,
            inlier_spring_force: 0.0,
            static_motion_temporal_ratio: 3e-2,
            object_similarity_min_contd_inliers: 20,
            ..TrackStepOptions::default()
        }
    }
}

/// A remembered feature: id, consecutive frames observed, match position (normalized).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureRecord {
    /// Track id.
    pub id: i32,
    /// Consecutive frames it was an inlier (0 for outliers).
    pub length: i32,
    /// Where it matched in the frame the state refers to.
    pub match_pos: [f32; 2],
}

/// State of one box at one frame (normalized coordinates, velocities per 30 fps frame).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MotionBoxState {
    /// Left of the unscaled box.
    pub pos_x: f32,
    /// Top of the unscaled box.
    pub pos_y: f32,
    /// Base width (never changes).
    pub width: f32,
    /// Base height (never changes).
    pub height: f32,
    /// Scale about the center.
    pub scale: f32,
    /// Rotation about the center (rad).
    pub rotation: f32,
    /// Object velocity x (camera motion removed).
    pub dx: f32,
    /// Object velocity y.
    pub dy: f32,
    /// Inlier-weighted average object speed (aspect units per frame).
    pub kinetic_energy: f32,
    /// Confidence in the prior, [0, 1].
    pub prior_weight: f32,
    /// Signed disparity between measured and expected motion, [-1, 1].
    pub motion_disparity: f32,
    /// How distinct the object motion is from the background, [0, 1].
    pub background_discrimination: f32,
    /// Inlier center x.
    pub inlier_center_x: f32,
    /// Inlier center y.
    pub inlier_center_y: f32,
    /// Inlier extent x (0: unset).
    pub inlier_width: f32,
    /// Inlier extent y (0: unset).
    pub inlier_height: f32,
    /// Sum of inlierness.
    pub inlier_sum: f32,
    /// inlier_sum relative to the best of the recent history.
    pub inlier_ratio: f32,
    /// Inlier features (each track id at most once).
    pub inliers: Vec<FeatureRecord>,
    /// Outlier features (each track id at most once).
    pub outliers: Vec<FeatureRecord>,
    /// Status of the step that produced the state.
    pub track_status: TrackStatus,
    /// Confidence, [0, 1].
    pub tracking_confidence: f32,
}

impl Default for MotionBoxState {
    fn default() -> Self {
        MotionBoxState {
            pos_x: 0.0,
            pos_y: 0.0,
            width: 0.0,
            height: 0.0,
            scale: 1.0,
            rotation: 0.0,
            dx: 0.0,
            dy: 0.0,
            kinetic_energy: 0.0,
            prior_weight: 0.0,
            motion_disparity: 0.0,
            background_discrimination: 0.0,
            inlier_center_x: 0.0,
            inlier_center_y: 0.0,
            inlier_width: 0.0,
            inlier_height: 0.0,
            inlier_sum: 0.0,
            inlier_ratio: 0.0,
            inliers: Vec::new(),
            outliers: Vec::new(),
            track_status: TrackStatus::Untracked,
            tracking_confidence: 0.0,
        }
    }
}

impl MotionBoxState {
    /// A state for an axis-aligned box (normalized left, top, right, bottom).
    pub fn from_rect(left: f32, top: f32, right: f32, bottom: f32, rotation: f32) -> Self {
        let (w, h) = ((right - left).max(0.0), (bottom - top).max(0.0));
        MotionBoxState {
            pos_x: left,
            pos_y: top,
            width: w,
            height: h,
            rotation: if rotation.is_finite() { rotation } else { 0.0 },
            inlier_center_x: left + w / 2.0,
            inlier_center_y: top + h / 2.0,
            ..Default::default()
        }
    }

    /// (left, top, right, bottom) of the scaled box, before rotation.
    pub fn rect(&self) -> [f32; 4] {
        let (hw, hh) = (
            self.width * self.scale / 2.0,
            self.height * self.scale / 2.0,
        );
        let (cx, cy) = self.center();
        [cx - hw, cy - hh, cx + hw, cy + hh]
    }

    /// Box center.
    pub fn center(&self) -> (f32, f32) {
        (
            self.pos_x + self.width / 2.0,
            self.pos_y + self.height / 2.0,
        )
    }

    /// Corners of the scaled, rotated box (TL, BL, BR, TR).
    pub fn corners(&self) -> [[f32; 2]; 4] {
        let (cx, cy) = self.center();
        let (hw, hh) = (
            self.width * self.scale / 2.0,
            self.height * self.scale / 2.0,
        );
        let (s, c) = self.rotation.sin_cos();
        [(-hw, -hh), (-hw, hh), (hw, hh), (hw, -hh)]
            .map(|(x, y)| [cx + c * x - s * y, cy + s * x + c * y])
    }

    /// Whether the numbers are usable (finite, non-negative size).
    pub fn is_valid(&self) -> bool {
        [
            self.pos_x,
            self.pos_y,
            self.width,
            self.height,
            self.scale,
            self.rotation,
            self.dx,
            self.dy,
        ]
        .iter()
        .all(|v| v.is_finite())
            && self.width >= 0.0
            && self.height >= 0.0
            && self.scale > 0.0
    }

    /// The state with x quantities multiplied by `sx`, y quantities by `sy`, and
    /// velocities additionally by `vt`. Feature records stay in normalized coordinates.
    fn rescaled(mut self, sx: f32, sy: f32, vt: f32) -> MotionBoxState {
        self.pos_x *= sx;
        self.pos_y *= sy;
        self.width *= sx;
        self.height *= sy;
        self.dx *= sx * vt;
        self.dy *= sy * vt;
        self.inlier_center_x *= sx;
        self.inlier_center_y *= sy;
        self.inlier_width *= sx;
        self.inlier_height *= sy;
        self
    }

    /// A copy without the feature records (no allocation).
    fn without_records(&self) -> MotionBoxState {
        MotionBoxState {
            inliers: Vec::new(),
            outliers: Vec::new(),
            ..*self
        }
    }
}

/// Initializes `state` on the frame it starts at: vectors inside the box become inliers
/// (length 1), the others outliers; prior 1 if any inlier; inlier center and extent from
/// the inliers' bounding box. `frame` is the frame's own data (positions in that frame).
pub fn initialize_inliers(state: &mut MotionBoxState, frame: &MotionVectorFrame) {
    let [ex, ey] = frame.extent;
    let corners = state.clone().rescaled(ex, ey, 1.0).corners();
    let inside = |p: [f32; 2]| {
        (0..4).all(|i| {
            let a = corners[i];
            let b = corners[(i + 1) % 4];
            // Corners run counter-clockwise in image coordinates (y down): TL, BL, BR, TR.
            (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]) <= 0.0
        })
    };
    let (mut inliers, mut outliers) = (Vec::new(), Vec::new());
    let mut bb = [f32::MAX, f32::MAX, f32::MIN, f32::MIN];
    for v in &frame.vectors {
        let rec = FeatureRecord {
            id: v.track_id,
            length: 1,
            match_pos: [v.pos[0] / ex, v.pos[1] / ey],
        };
        if inside(v.pos) {
            bb = [
                bb[0].min(rec.match_pos[0]),
                bb[1].min(rec.match_pos[1]),
                bb[2].max(rec.match_pos[0]),
                bb[3].max(rec.match_pos[1]),
            ];
            inliers.push(rec);
        } else {
            outliers.push(FeatureRecord { length: 0, ..rec });
        }
    }
    inliers.retain(|r| r.id >= 0);
    outliers.retain(|r| r.id >= 0);
    inliers.sort_by_key(|r| r.id);
    inliers.dedup_by_key(|r| r.id);
    outliers.sort_by_key(|r| r.id);
    outliers.dedup_by_key(|r| r.id);
    state.prior_weight = if inliers.is_empty() { 0.0 } else { 1.0 };
    if !inliers.is_empty() {
        state.inlier_center_x = (bb[0] + bb[2]) / 2.0;
        state.inlier_center_y = (bb[1] + bb[3]) / 2.0;
        state.inlier_width = bb[2] - bb[0];
        state.inlier_height = bb[3] - bb[1];
    }
    state.inliers = inliers;
    state.outliers = outliers;
}

/// Weighted linear similarity fit of `obj = (a-1, b) applied to p + t`, p relative to the
/// center of the similarity: returns (alpha = a - 1, b, tx, ty).
/// `samples` are ([p.x, p.y, obj.x, obj.y], weight).
fn fit_similarity(samples: impl IntoIterator<Item = ([f64; 4], f32)>) -> Option<[f64; 4]> {
    // Rows [x, -y, 1, 0] -> mx and [y, x, 0, 1] -> my: the normal equations only need
    // these weighted sums.
    let (mut sw, mut sx, mut sy, mut sr) = (0f64, 0f64, 0f64, 0f64);
    let mut atb = [0f64; 4];
    for ([x, y, mx, my], w) in samples {
        let w = f64::from(w);
        sw += w;
        sx += w * x;
        sy += w * y;
        sr += w * (x * x + y * y);
        atb[0] += w * (x * mx + y * my);
        atb[1] += w * (x * my - y * mx);
        atb[2] += w * mx;
        atb[3] += w * my;
    }
    // The normal equations [[sr, 0, sx, sy], [0, sr, -sy, sx], [sx, -sy, sw, 0],
    // [sy, sx, 0, sw]] (a, b, tx, ty) = atb are, with z = a + ib, t = tx + ity and
    // s = sx + isy: sr z + conj(s) t = atb0 + i atb1 and s z + sw t = atb2 + i atb3, solved
    // in closed form.
    let det = sr * sw - (sx * sx + sy * sy);
    if !det.is_finite() || det <= 1e-12 * sr * sw {
        return None;
    }
    let (p0, p1, q0, q1) = (atb[0], atb[1], atb[2], atb[3]);
    // z = (sw p - conj(s) q) / det, t = (sr q - s p) / det.
    let x = [
        (sw * p0 - (sx * q0 + sy * q1)) / det,
        (sw * p1 - (sx * q1 - sy * q0)) / det,
        (sr * q0 - (sx * p0 - sy * p1)) / det,
        (sr * q1 - (sx * p1 + sy * p0)) / det,
    ];
    x.iter().all(|v| v.is_finite()).then_some(x)
}

/// Anisotropic error of a residual `d` w.r.t. the direction `dir`.
fn aniso_error(d: [f32; 2], dir: [f32; 2], scale: [f32; 2]) -> f32 {
    let par = (d[0] * dir[0] + d[1] * dir[1]) * scale[0];
    let orth = (d[1] * dir[0] - d[0] * dir[1]) * scale[1];
    (par * par + orth * orth).sqrt()
}

/// Moves the box by the camera motion `h` (from-frame -> to-frame), through the corners
/// (similarity fit) or as a translation at the center.
fn apply_camera_motion(s: &mut MotionBoxState, h: &Homography, opts: &TrackStepOptions) {
    let (cx, cy) = s.center();
    let through_corners = opts.track_object_and_camera
        && opts.tracking_degrees != TrackingDegrees::TrackingDegreeTranslation;
    if !through_corners {
        let (mx, my) = h.map(cx, cy);
        s.pos_x += mx - cx;
        s.pos_y += my - cy;
        return;
    }
    let corners = s.corners();
    let samples = corners.map(|p| {
        let (mx, my) = h.map(p[0], p[1]);
        (
            [p[0] - cx, p[1] - cy, mx - p[0], my - p[1]].map(f64::from),
            1.0,
        )
    });
    match fit_similarity(samples) {
        Some([alpha, b, tx, ty]) if (tx.is_finite() && ty.is_finite()) => {
            s.pos_x += tx as f32;
            s.pos_y += ty as f32;
            let sc = ((1.0 + alpha).powi(2) + b * b).sqrt() as f32;
            if opts.tracking_degrees.scale() && sc.is_finite() && sc > 0.0 {
                s.scale *= sc;
            }
            if opts.tracking_degrees.rotation() {
                s.rotation += b.atan2(1.0 + alpha) as f32;
            }
        }
        _ => {
            let (mx, my) = h.map(cx, cy);
            s.pos_x += mx - cx;
            s.pos_y += my - cy;
        }
    }
}

/// Looks a feature up among stored records: by id, or (at chunk boundaries, where ids are
/// not comparable; `by_position` is then the frame's extent) by match position within 2e-3.
fn lookup<'a>(
    records: &'a [FeatureRecord],
    v: &MotionVector,
    by_position: Option<[f32; 2]>,
) -> Option<&'a FeatureRecord> {
    if let Some([ex, ey]) = by_position {
        records.iter().find(|r| {
            (r.match_pos[0] * ex - v.pos[0]).abs() < 2e-3
                && (r.match_pos[1] * ey - v.pos[1]).abs() < 2e-3
        })
    } else if v.track_id >= 0 {
        records
            .binary_search_by_key(&v.track_id, |r| r.id)
            .ok()
            .map(|i| &records[i])
    } else {
        None
    }
}

/// [`StepScratch::was_inlier`] of a vector that was not an inlier.
const NOT_INLIER: i32 = -1;

/// One track step of `prev` through `frame` (from-frame -> to-frame). `history` holds the
/// earlier states in tracking order (oldest first, `prev` excluded; up to 10 are used);
/// `first_step` is true on the step right after the box was started. Returns the new state;
/// its `track_status` tells whether the step succeeded (see [`is_failure`]).
pub fn track_step(
    prev: &MotionBoxState,
    history: &[&MotionBoxState],
    frame: &MotionVectorFrame,
    first_step: bool,
    opts: &TrackStepOptions,
) -> MotionBoxState {
    step_with_history(
        prev,
        StepHistory::from_states(prev, history),
        frame,
        first_step,
        opts,
    )
}

/// What a step reads of the states before it.
#[derive(Clone, Copy)]
struct StepHistory<'a> {
    /// The earlier states in tracking order (oldest first, at most 10).
    states: &'a [&'a MotionBoxState],
    /// The outlier ids of `prev` and of `states`, when the box keeps them in one list (see
    /// [`RecentStates`]); otherwise they are read from the states' records.
    outlier_ids: Option<&'a [i32]>,
    /// The largest inlier sum of `prev` and `states` (0 at least).
    max_inlier_sum: f32,
}

impl<'a> StepHistory<'a> {
    /// The history of a step from `prev` read from the states before it (tracking order,
    /// the newest 10 used).
    fn from_states(prev: &MotionBoxState, history: &'a [&'a MotionBoxState]) -> Self {
        let states = &history[history.len().saturating_sub(10)..];
        StepHistory {
            states,
            outlier_ids: None,
            max_inlier_sum: states
                .iter()
                .map(|h| h.inlier_sum)
                .fold(prev.inlier_sum.max(0.0), f32::max),
        }
    }
}

/// [`track_step`] with the history prepared.
fn step_with_history(
    prev: &MotionBoxState,
    history: StepHistory,
    frame: &MotionVectorFrame,
    first_step: bool,
    opts: &TrackStepOptions,
) -> MotionBoxState {
    if !prev.is_valid() {
        return MotionBoxState {
            track_status: TrackStatus::Untracked,
            tracking_confidence: 0.0,
            ..prev.clone()
        };
    }
    if frame.is_duplicated {
        return MotionBoxState {
            track_status: TrackStatus::Duplicated,
            ..prev.clone()
        };
    }
    let [ex, ey] = frame.extent;
    let ts = frame.duration_ms / NOMINAL_FRAME_MS;
    // The records stay with `prev` (normalized, read in place): the rescaled copy has none.
    let p = prev.without_records().rescaled(ex, ey, ts);
    // Only feature ids and inlier sums of the history are used: it needs no rescaling.
    // A box held out of view (option) is re-acquired by features entering the frame, or
    // stays held (out of bound, confidence 0) while it sticks out of the frame.
    let held = opts.keep_out_of_view_boxes
        && opts.reacquire_out_of_view_boxes
        && p.track_status == TrackStatus::TrackedOutOfBound;
    let inward = |s: &MotionBoxState| {
        let (x0, y0, x1, y1) = corner_bounds(s);
        [
            f32::from(u8::from(x0 < 0.0)) - f32::from(u8::from(x1 > ex)),
            f32::from(u8::from(y0 < 0.0)) - f32::from(u8::from(y1 > ey)),
        ]
    };
    let reacquired = if held && inward(&p) != [0.0, 0.0] {
        reacquire(&p, frame, inward(&p), opts, ts)
    } else {
        None
    };
    let mut out = match reacquired {
        Some(s) => s,
        None => {
            let mut out = SCRATCH.with_borrow_mut(|scratch| {
                let input = StepInput {
                    prev: &p,
                    records: prev,
                    history,
                    frame,
                    first_step,
                    opts,
                };
                step_denormalized(scratch, input)
            });
            if held && out.track_status == TrackStatus::Tracked && inward(&out) != [0.0, 0.0] {
                out.track_status = TrackStatus::TrackedOutOfBound;
                out.tracking_confidence = 0.0;
            }
            out
        }
    };
    // Leaving the frame while moving: untracked.
    let static_motion = opts.static_motion_temporal_ratio * ts;
    let v = [out.dx, out.dy];
    if norm(v) > static_motion
        && out.track_status >= TrackStatus::Tracked
        && !opts.keep_out_of_view_boxes
    {
        let (w, h) = (out.width * out.scale, out.height * out.scale);
        let r = out.rect();
        let leaving = |lo: f32, size: f32, ext: f32, vel: f32| {
            (lo < -0.3 * size && vel < -static_motion / 2.0)
                || (lo > ext - 0.7 * size && vel > static_motion / 2.0)
        };
        if leaving(r[0], w, ex, v[0]) || leaving(r[1], h, ey, v[1]) {
            out.track_status = TrackStatus::Untracked;
        }
    }
    if out.track_status < TrackStatus::Tracked {
        out.tracking_confidence = 0.0;
    }
    out.rescaled(1.0 / ex, 1.0 / ey, 1.0 / ts)
}

/// True if `states` (tracking order, newest last) mean a failed track: the newest status is
/// below TRACKED, or at least `max_track_failures` of the last `max + 1` (out-of-bound ones
/// excluded) have |disparity| x prior > 0.8.
pub fn is_failure(states: &[&MotionBoxState], opts: &TrackStepOptions) -> bool {
    failure_in(states.iter().rev().copied(), opts)
}

/// [`is_failure`] of the states given newest first.
fn failure_in<'a>(
    mut newest_first: impl Iterator<Item = &'a MotionBoxState>,
    opts: &TrackStepOptions,
) -> bool {
    let Some(last) = newest_first.next() else {
        return true;
    };
    if last.track_status < TrackStatus::Tracked {
        return true;
    }
    let window = opts.max_track_failures as usize + 1;
    let bad = std::iter::once(last)
        .chain(newest_first)
        .take(window)
        .filter(|s| s.track_status != TrackStatus::TrackedOutOfBound)
        .filter(|s| s.motion_disparity.abs() * s.prior_weight > 0.8)
        .count();
    opts.max_track_failures > 0 && bad >= opts.max_track_failures as usize
}

/// Bounds (x0, y0, x1, y1) of the scaled, rotated box.
fn corner_bounds(s: &MotionBoxState) -> (f32, f32, f32, f32) {
    s.corners().iter().fold(
        (f32::MAX, f32::MAX, f32::MIN, f32::MIN),
        |(x0, y0, x1, y1), c| (x0.min(c[0]), y0.min(c[1]), x1.max(c[0]), y1.max(c[1])),
    )
}

/// For each 8-bit mask: the positions of its set bits, lowest first (the rest 0), and
/// their number.
const SET_BITS: [([u8; 8], u8); 256] = {
    let mut table = [([0u8; 8], 0u8); 256];
    let mut mask = 0;
    while mask < 256 {
        let (mut bit, mut n) = (0, 0);
        while bit < 8 {
            if mask & (1 << bit) != 0 {
                table[mask].0[n] = bit as u8;
                n += 1;
            }
            bit += 1;
        }
        table[mask].1 = n as u8;
        mask += 1;
    }
    table
};

/// Writes `offset` + the indices of the `items` for which `keep` holds to `out`, in order,
/// without a branch that depends on `keep`: the tests of 8 items go to 8 lane masks (a pass
/// the compiler vectorizes), packed into a bit mask ([`lane_mask`]), whose set-bit
/// positions ([`SET_BITS`]) are written as 8 indices; the length advances by the number set.
/// Inlined so that it is compiled for the caller's instruction set (the AVX2 step's).
#[inline(always)]
fn compact_indices<T>(items: &[T], offset: usize, out: &mut Vec<u32>, keep: impl Fn(&T) -> bool) {
    out.clear();
    out.reserve(items.len() + 8);
    let mut len = 0;
    let spare = &mut out.spare_capacity_mut()[..items.len() + 8];
    let mut push_chunk = |c: usize, mask: usize| {
        let (bits, count) = &SET_BITS[mask];
        let base = (offset + c * 8) as u32;
        for (o, &bit) in spare[len..len + 8].iter_mut().zip(bits) {
            o.write(base + u32::from(bit));
        }
        len += usize::from(*count);
    };
    let mask_of = |chunk: &[T]| {
        let mut lanes = [0i32; 8];
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            *lane = -i32::from(keep(v));
        }
        lane_mask(lanes)
    };
    // Whole chunks apart: their length is known to be 8.
    let chunks = items.chunks_exact(8);
    let (rest, full) = (chunks.remainder(), chunks.len());
    for (c, chunk) in chunks.enumerate() {
        push_chunk(c, mask_of(chunk));
    }
    if !rest.is_empty() {
        push_chunk(full, mask_of(rest));
    }
    // SAFETY: the first `len` entries were written: each chunk writes the 8 from the length
    // before it, and the length grows by at most 8 per chunk.
    unsafe { out.set_len(len) };
}

/// The bit mask of 8 lane masks (each 0 or -1; lane `k` -> bit `k`): the sign bits, as the
/// CPU's move-mask instruction gathers them.
#[inline(always)]
fn lane_mask(lanes: [i32; 8]) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_castsi128_ps, _mm_loadu_si128, _mm_movemask_ps};
        // SAFETY: SSE2 is part of the x86-64 baseline; the two unaligned 16-byte loads read
        // the first and the second half of `lanes`.
        let (low, high) = unsafe {
            let half = |k: usize| {
                _mm_movemask_ps(_mm_castsi128_ps(_mm_loadu_si128(
                    lanes[k..].as_ptr().cast(),
                )))
            };
            (half(0), half(4))
        };
        (low | (high << 4)) as usize
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        lanes
            .iter()
            .enumerate()
            .fold(0, |mask, (k, &lane)| mask | (usize::from(lane < 0) << k))
    }
}

/// Working buffers of [`step_denormalized`], reused by the steps of all boxes of a thread:
/// once they have grown, a step allocates only the records of its new state.
#[derive(Default)]
struct StepScratch {
    /// The vectors of the search region, in frame (x) order.
    region: Vec<MotionVector>,
    /// Per region vector: its index in the frame.
    region_index: Vec<u32>,
    /// Per accepted inlier: its density grid cell and offsets in it.
    grid_cells: Vec<(usize, usize, f32, f32)>,
    /// Per frame vector: `stamp` if the box's previous state has it as an inlier.
    inlier_mark: Vec<u32>,
    /// Per frame vector marked in `inlier_mark`: the length of its inlier record.
    inlier_length: Vec<i32>,
    /// Per frame vector: `stamp` if it was an outlier in one of the box's recent states.
    outlier_mark: Vec<u32>,
    /// The step's mark in `inlier_mark` and `outlier_mark` (a new one per step: the marks
    /// of earlier steps never need clearing).
    stamp: u32,
    /// Per region vector: length of its previous inlier record ([`NOT_INLIER`]: not an
    /// inlier; a plain integer so that the prior-weight pass vectorizes).
    was_inlier: Vec<i32>,
    /// Per region vector: an outlier in one of the recent states.
    was_outlier: Vec<bool>,
    /// Per region vector: x offset from the prior center, in box widths (box axes).
    rel_x: Vec<f32>,
    /// Per region vector: y offset from the prior center, in box heights (box axes).
    rel_y: Vec<f32>,
    /// Per region vector: magnitude of the object motion.
    speed: Vec<f32>,
    /// Per region vector: normalized prior weight.
    prior_w: Vec<f32>,
    /// Per region vector: IRLS weight.
    weights: Vec<f32>,
    /// Per region vector: object motion x.
    object_x: Vec<f32>,
    /// Per region vector: object motion y.
    object_y: Vec<f32>,
    /// Per object similarity fit sample: offset from the box center and object motion.
    sim_samples: Vec<[f64; 4]>,
    /// [`StepScratch::sim_samples`] in f32 (for the IRLS weights).
    sim_offsets: Vec<[f32; 4]>,
    /// Per fit sample: IRLS weight (after the last iteration: per region vector).
    sim_weights: Vec<f32>,
    /// Per fit sample: prior weight.
    sim_prior: Vec<f32>,
    /// Per region vector: inlierness (0 unless accepted).
    inlierness: Vec<f32>,
    /// Region indices of the new outliers, ascending.
    new_outliers: Vec<u32>,
    /// Region indices of the accepted inliers, ascending.
    accepted: Vec<u32>,
    /// Per accepted inlier: density factor.
    density: Vec<f32>,
    /// Per accepted inlier: weight in the inlier center.
    center_w: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<StepScratch> = RefCell::new(StepScratch::default());
}

/// What one step reads (in the aspect domain, velocities per actual frame).
struct StepInput<'a> {
    /// The state stepped from, rescaled and without feature records.
    prev: &'a MotionBoxState,
    /// The state `prev` came from: its inliers and outliers are used and carried over by
    /// the steps that keep them.
    records: &'a MotionBoxState,
    /// The states before `prev`.
    history: StepHistory<'a>,
    /// The motion of the step.
    frame: &'a MotionVectorFrame,
    /// The box's first step since its start.
    first_step: bool,
    /// The step's options.
    opts: &'a TrackStepOptions,
}

/// The step. Runs the AVX2 build of the step where the CPU has it.
fn step_denormalized(scratch: &mut StepScratch, input: StepInput) -> MotionBoxState {
    #[cfg(target_arch = "x86_64")]
    if wide_vectors_available() {
        // SAFETY: the CPU has AVX2 and FMA (checked).
        return unsafe { step_denormalized_avx2(scratch, input) };
    }
    step_denormalized_body(scratch, input)
}

#[cfg(test)]
thread_local! {
    /// Tests set it to run the baseline step on a CPU that has AVX2 and FMA.
    static BASELINE_STEP_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// True if the CPU runs [`step_denormalized_avx2`] (checked once by std, then cached).
#[cfg(target_arch = "x86_64")]
fn wide_vectors_available() -> bool {
    #[cfg(test)]
    if BASELINE_STEP_ONLY.get() {
        return false;
    }
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

/// The step compiled for AVX2 and FMA: the per-feature passes run 8 lanes wide instead of
/// 4. The same results to the bit (Rust never fuses a multiply and an add by itself, and
/// the sums keep their order; unit test), ~10% less time per box on a Zen 3 (BENCHMARKS.md,
/// "Box tracking", session 10).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn step_denormalized_avx2(scratch: &mut StepScratch, input: StepInput) -> MotionBoxState {
    step_denormalized_body(scratch, input)
}

/// The step itself, inlined into the baseline and the AVX2 entry points.
#[inline(always)]
fn step_denormalized_body(scratch: &mut StepScratch, input: StepInput) -> MotionBoxState {
    let StepInput {
        prev,
        records,
        history,
        frame,
        first_step,
        opts,
    } = input;
    let hist = history.states;
    let StepScratch {
        region,
        region_index,
        grid_cells,
        inlier_mark,
        inlier_length,
        outlier_mark,
        stamp,
        was_inlier,
        was_outlier,
        rel_x,
        rel_y,
        speed,
        prior_w,
        weights,
        object_x,
        object_y,
        sim_samples,
        sim_offsets,
        sim_weights,
        sim_prior,
        inlierness,
        new_outliers,
        accepted,
        density,
        center_w,
    } = scratch;
    let [ex, ey] = frame.extent;
    let index = frame.index();
    let ts = frame.duration_ms / NOMINAL_FRAME_MS;
    let static_motion = opts.static_motion_temporal_ratio * ts;
    let v_prev = [prev.dx, prev.dy];
    let speed_prev = norm(v_prev);
    let prior = prev.prior_weight.clamp(0.0, 1.0);
    let bg_valid = frame.valid_background;
    let (bw, bh) = (prev.width * prev.scale, prev.height * prev.scale);
    let (cx, cy) = prev.center();

    // 1. Search region.
    let (x0, y0, x1, y1) = corner_bounds(prev);
    let e = opts
        .expansion_size
        .max((0.25 * bw.hypot(bh)).min(2.0 * speed_prev));
    let (sx0, sy0, sx1, sy1) = (x0 - e, y0 - e, x1 + e, y1 + e);
    let rotated = prev.rotation.abs() > 0.01;
    let (sin, cos) = prev.rotation.sin_cos();
    // Non-short-circuit `&`: which vectors pass is unpredictable, so no branches.
    // Negated comparisons: a NaN position counts as inside (not rejected by either).
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    let in_y = |y: f32| !(y < sy0) & !(y > sy1);
    let in_rotated = |v: &MotionVector| {
        let (ox, oy) = (v.pos[0] - cx, v.pos[1] - cy);
        let (lx, ly) = (cos * ox + sin * oy, -sin * ox + cos * oy);
        in_y(v.pos[1]) & (lx.abs() <= bw / 2.0 + e) & (ly.abs() <= bh / 2.0 + e)
    };
    // The frame indices of the x slab's vectors in the region (without a branch on which
    // pass: unpredictable), then only those vectors are copied.
    let slab = index.x_range(sx0, sx1);
    if rotated {
        compact_indices(
            &frame.vectors[slab.clone()],
            slab.start,
            region_index,
            in_rotated,
        );
    } else {
        compact_indices(&index.ys[slab.clone()], slab.start, region_index, |&y| {
            in_y(y)
        });
    }
    region.clear();
    region.extend(region_index.iter().map(|&j| frame.vectors[j as usize]));
    let region: &[MotionVector] = region;

    // `prev` with its records, for the outcomes that keep them.
    let base = || MotionBoxState {
        inliers: records.inliers.clone(),
        outliers: records.outliers.clone(),
        ..prev.without_records()
    };
    let camera_only = |status: TrackStatus| {
        let mut s = base();
        if bg_valid {
            apply_camera_motion(&mut s, &frame.background_model, opts);
        }
        s.track_status = status;
        s
    };

    // Kept out of view (option): camera motion only, no velocity, confidence 0.
    let out_of_view = || {
        let mut s = camera_only(TrackStatus::TrackedOutOfBound);
        let m = opts.out_of_view_min_visible.clamp(0.0, 1.0);
        if m > 0.0 {
            let r = s.rect();
            let (w, h) = (r[2] - r[0], r[3] - r[1]);
            s.pos_x += (m * w - r[2]).max(0.0) - (r[0] - (ex - m * w)).max(0.0);
            s.pos_y += (m * h - r[3]).max(0.0) - (r[1] - (ey - m * h)).max(0.0);
        }
        s.dx = 0.0;
        s.dy = 0.0;
        s.tracking_confidence = 0.0;
        s
    };

    let partly_outside = x0 < 0.0 || y0 < 0.0 || x1 > ex || y1 > ey;

    // 2. Featureless or out of view.
    let outside = sx1 < 0.0 || sy1 < 0.0 || sx0 > ex || sy0 > ey;
    if region.is_empty() || outside {
        if opts.keep_out_of_view_boxes && (outside || partly_outside) {
            return out_of_view();
        }
        if speed_prev > static_motion || (!bg_valid && !first_step) {
            return MotionBoxState {
                track_status: TrackStatus::NoFeatures,
                ..base()
            };
        }
        return camera_only(TrackStatus::TrackedOutOfBound);
    }
    // 3. Validity.
    let (cx0, cy0, cx1, cy1) = (x0.max(0.0), y0.max(0.0), x1.min(ex), y1.min(ey));
    if cx1 - cx0 < 1e-3 || cy1 - cy0 < 1e-3 {
        if opts.keep_out_of_view_boxes && bw >= 1e-3 && bh >= 1e-3 {
            // Outside the frame (only its search margin sees features): out of view.
            return out_of_view();
        }
        return MotionBoxState {
            track_status: TrackStatus::Empty,
            ..base()
        };
    }
    if bw > 1e4 || bh > 1e4 {
        return MotionBoxState {
            track_status: TrackStatus::Untracked,
            ..base()
        };
    }

    // 4. Prior weights.
    let by_position = frame.is_chunk_boundary.then_some(frame.extent);
    // Outliers accumulate over the history.
    let histories = || std::iter::once(records).chain(hist.iter().copied());
    let n = region.len();
    was_inlier.clear();
    was_outlier.clear();
    if by_position.is_some() {
        for v in region {
            was_inlier
                .push(lookup(&records.inliers, v, by_position).map_or(NOT_INLIER, |r| r.length));
            was_outlier.push(histories().any(|h| lookup(&h.outliers, v, by_position).is_some()));
        }
    } else {
        // The records' vectors in this frame are marked (found by id in the frame's table),
        // then the region reads its marks.
        let vectors = frame.vectors.len();
        if inlier_mark.len() < vectors {
            inlier_mark.resize(vectors, 0);
            inlier_length.resize(vectors, 0);
            outlier_mark.resize(vectors, 0);
        }
        *stamp = stamp.wrapping_add(1);
        if *stamp == 0 {
            inlier_mark.fill(0);
            outlier_mark.fill(0);
            *stamp = 1;
        }
        let mark = *stamp;
        index.for_each_record_vector(&records.inliers, |j, r| {
            inlier_mark[j] = mark;
            inlier_length[j] = r.length;
        });
        match history.outlier_ids {
            Some(ids) => index.for_each_item_vector(ids, |&id| id, |j, _| outlier_mark[j] = mark),
            None => {
                for h in histories() {
                    index.for_each_record_vector(&h.outliers, |j, _| outlier_mark[j] = mark);
                }
            }
        }
        was_inlier.extend(region_index.iter().map(|&j| {
            let j = j as usize;
            if inlier_mark[j] == mark {
                inlier_length[j]
            } else {
                NOT_INLIER
            }
        }));
        was_outlier.extend(
            region_index
                .iter()
                .map(|&j| outlier_mark[j as usize] == mark),
        );
    }
    let continued = was_inlier.iter().filter(|&&r| r != NOT_INLIER).count();
    let center = [
        lerp(cx, prev.inlier_center_x, prior.min(0.5)),
        lerp(cy, prev.inlier_center_y, prior.min(0.5)),
    ];
    let sig = |extent: f32, size: f32| {
        let rel = if size > 0.0 && extent > 0.0 {
            extent / size
        } else {
            0.0
        };
        opts.spatial_sigma.max(rel * 0.5 * prior / 1.65)
    };
    let (sigx, sigy) = (sig(prev.inlier_width, bw), sig(prev.inlier_height, bh));
    let sigma_m = opts
        .min_motion_sigma
        .max(opts.relative_motion_sigma * speed_prev);
    let lambda = opts.motion_prior_weight.max(prev.motion_disparity.abs()) * prior;
    let k = ramp(
        prev.kinetic_energy,
        opts.low_kinetic_energy * ts,
        opts.high_kinetic_energy * ts,
    );
    let contd_score = ramp(continued as f32, 10.0, 30.0);
    // Structure of arrays: the region's positions (relative to the center, in box units)
    // and motion magnitudes in separate arrays, so that the passes below (two exponentials
    // per vector: `exp_nonpositive`, not libm's `expf`) are vectorized.
    let (bw_safe, bh_safe) = (bw.max(1e-6), bh.max(1e-6));
    let in_box_axes = |v: &MotionVector| {
        let (ox, oy) = (v.pos[0] - center[0], v.pos[1] - center[1]);
        if rotated {
            (cos * ox + sin * oy, -sin * ox + cos * oy)
        } else {
            (ox, oy)
        }
    };
    rel_x.clear();
    rel_x.extend(region.iter().map(|v| in_box_axes(v).0 / bw_safe));
    rel_y.clear();
    rel_y.extend(region.iter().map(|v| in_box_axes(v).1 / bh_safe));
    speed.clear();
    speed.extend(region.iter().map(|v| norm(v.object)));
    let (sxx, syy, smm) = (sigx * sigx, sigy * sigy, sigma_m * sigma_m);
    prior_w.clear();
    prior_w.extend(
        rel_x
            .iter()
            .zip(rel_y.iter())
            .map(|(&ox, &oy)| exp_nonpositive(-0.5 * (ox * ox / sxx + oy * oy / syy))),
    );
    if bg_valid {
        for (w, &obj) in prior_w.iter_mut().zip(speed.iter()) {
            let dm = obj - speed_prev;
            *w = lerp(*w, exp_nonpositive(-0.5 * dm * dm / smm), lambda);
        }
    }
    // Previous inliers up, previous outliers and slow vectors down, fast ones up (as
    // selects: the pass has no branches).
    let up = lerp(5.0, 20.0, contd_score.max((1.0 - 2.0 * k).max(0.0))).min(100.0);
    let slow_down = if k >= prior {
        2.0 * lerp(1.0, 10.0, prior)
    } else {
        1.0
    };
    let fast_up = if k >= 0.8 * prior {
        (5.0 * lerp(1.0, 10.0, prior)).min(100.0)
    } else {
        1.0
    };
    let (slow, fast) = (opts.low_kinetic_energy * ts, opts.high_kinetic_energy * ts);
    for (((w, &obj), &inl), &outl) in prior_w
        .iter_mut()
        .zip(speed.iter())
        .zip(was_inlier.iter())
        .zip(was_outlier.iter())
    {
        let down = if outl { 20.0 } else { 1.0 } * if obj < slow { slow_down } else { 1.0 };
        let v = if inl != NOT_INLIER {
            *w * up
        } else {
            *w / down.min(100.0)
        };
        let v = v * if obj > fast && !outl { fast_up } else { 1.0 };
        *w = if v.is_finite() { v } else { 0.0 };
    }
    let good = prior_w.iter().filter(|&&w| w >= 0.1).count();
    let wsum: f32 = prior_w.iter().sum();
    if wsum > 0.0 {
        prior_w.iter_mut().for_each(|w| *w /= wsum);
    }

    // 5. Static fallback.
    if good < 3 && speed_prev <= static_motion {
        return camera_only(TrackStatus::Tracked);
    }

    // 6. Object motion by IRLS.
    let mut rough = [0f32; 2];
    for (v, &w) in region.iter().zip(prior_w.iter()) {
        let m = v.motion();
        rough[0] += w * m[0];
        rough[1] += w * m[1];
    }
    let mag = norm(rough).max(speed_prev * prior);
    let irls_scale = [
        if mag > 0.0 {
            (1.25e-3 / (0.1 * mag)).min(1.0)
        } else {
            1.0
        },
        if mag > 0.0 {
            (1.25e-3 / (0.25 * mag)).min(1.0)
        } else {
            1.0
        },
    ];
    let dir = if norm(rough) > 0.0 {
        [rough[0] / norm(rough), rough[1] / norm(rough)]
    } else {
        [1.0, 0.0]
    };
    let iters = opts.irls_iterations.max(1);
    let mut t = v_prev;
    let no_good = good == 0 || wsum <= 0.0;
    // Object similarity (scale / rotation), fitted first: when it is accepted, its
    // translation and weights are used and the translation-only fit is not needed.
    let mut similarity: Option<(f32, f32, [f32; 2])> = None; // (scale, rotation, t at center)
    let want_sim = opts.tracking_degrees != TrackingDegrees::TrackingDegreeTranslation;
    if want_sim
        && !no_good
        && continued >= opts.object_similarity_min_contd_inliers as usize
        && region.len() >= 4
    {
        // The fit's samples: the vectors with a prior weight in it (inside the box, option),
        // as f64 offsets from the center and motions. The others would have weight 0 in
        // every fit (prior weight x IRLS factor), so the iterations skip them; only the last
        // weight pass covers the whole region.
        let inside = |v: &MotionVector| {
            let (ox, oy) = (v.pos[0] - cx, v.pos[1] - cy);
            let (lx, ly) = (cos * ox + sin * oy, -sin * ox + cos * oy);
            lx.abs() <= bw / 2.0 && ly.abs() <= bh / 2.0
        };
        sim_samples.clear();
        sim_offsets.clear();
        sim_prior.clear();
        for (v, &w) in region.iter().zip(prior_w.iter()) {
            if w != 0.0 && (!opts.object_similarity_inside_box || inside(v)) {
                let sample = [v.pos[0] - cx, v.pos[1] - cy, v.object[0], v.object[1]];
                sim_samples.push(sample.map(f64::from));
                sim_offsets.push(sample);
                sim_prior.push(w);
            }
        }
        sim_weights.clear();
        sim_weights.extend_from_slice(sim_prior);
        let mut model = None;
        for it in 0..iters {
            let samples = sim_samples.iter().copied().zip(sim_weights.iter().copied());
            let Some(m) = fit_similarity(samples) else {
                model = None;
                break;
            };
            // Converged (option): this is the last iteration.
            let last = it + 1 == iters
                || model.is_some_and(|old: [f64; 4]| {
                    old.iter()
                        .zip(m)
                        .all(|(a, b)| (a - b).abs() <= f64::from(opts.irls_convergence))
                });
            model = Some(m);
            let [al, b, tx, ty] = m.map(|x| x as f32);
            let error = |[x, y, ox, oy]: [f32; 4]| {
                let pred = [al * x - b * y + tx, b * x + al * y + ty];
                aniso_error([ox - pred[0], oy - pred[1]], dir, irls_scale)
            };
            if last {
                sim_weights.clear();
                sim_weights.extend(region.iter().map(|v| {
                    let sample = [v.pos[0] - cx, v.pos[1] - cy, v.object[0], v.object[1]];
                    1.0 / (error(sample) + 1e-8)
                }));
                break;
            }
            for ((&sample, w), &pw) in sim_offsets
                .iter()
                .zip(sim_weights.iter_mut())
                .zip(sim_prior.iter())
            {
                *w = pw / (error(sample) + 1e-8);
            }
        }
        if let Some([al, b, tx, ty]) = model {
            let scale = ((1.0 + al).powi(2) + b * b).sqrt() as f32;
            let rot = b.atan2(1.0 + al) as f32;
            let ms = opts.box_similarity_max_scale.max(1.0);
            if (1.0 / ms..=ms).contains(&scale) && rot.abs() <= opts.box_similarity_max_rotation {
                similarity = Some((scale, rot, [tx as f32, ty as f32]));
                t = [tx as f32, ty as f32];
                std::mem::swap(weights, sim_weights);
            }
        }
    }

    // Translation only (also when the similarity is not fitted or not accepted).
    if similarity.is_none() {
        weights.clear();
        weights.extend_from_slice(prior_w);
        if !no_good {
            // The object motion in separate x and y arrays: the weight pass is then
            // vectorized (lane-wise the same operations, so the same values); the sums stay
            // sequential, in the same order.
            object_x.clear();
            object_x.extend(region.iter().map(|v| v.object[0]));
            object_y.clear();
            object_y.extend(region.iter().map(|v| v.object[1]));
            let (object_x, object_y) = (&object_x[..], &object_y[..]);
            for it in 0..iters {
                let (mut sw, mut tx, mut ty) = (0f32, 0f32, 0f32);
                for ((&w, &x), &y) in weights.iter().zip(object_x).zip(object_y) {
                    sw += w;
                    tx += w * x;
                    ty += w * y;
                }
                if sw <= 0.0 {
                    break;
                }
                let t_new = [tx / sw, ty / sw];
                // Converged (option): the next iteration is the last one.
                let last = it + 1 == iters
                    || (it > 0
                        && (t_new[0] - t[0]).abs().max((t_new[1] - t[1]).abs())
                            <= opts.irls_convergence);
                t = t_new;
                let weight = |x: f32, y: f32, num: f32| {
                    let err = aniso_error([x - t[0], y - t[1]], dir, irls_scale);
                    num / (err + 1e-8)
                };
                let pass = weights.iter_mut().zip(object_x).zip(object_y);
                if last {
                    pass.for_each(|((w, &x), &y)| *w = weight(x, y, 1.0));
                    break;
                }
                pass.zip(prior_w.iter())
                    .for_each(|(((w, &x), &y), &pw)| *w = weight(x, y, pw));
            }
        }
    }

    // 7. Inlier scoring.
    let t_mag = norm(t);
    let discrimination = if bg_valid {
        ramp(
            t_mag,
            opts.background_discrimination_low_level,
            opts.background_discrimination_high_level,
        )
    } else {
        prev.background_discrimination
    };
    let half_extent = [
        0.55 * if prev.inlier_width > 0.0 {
            prev.inlier_width
        } else {
            bw
        },
        0.55 * if prev.inlier_height > 0.0 {
            prev.inlier_height
        } else {
            bh
        },
    ];
    inlierness.clear();
    new_outliers.clear();
    accepted.clear();
    if no_good {
        inlierness.resize(n, 0.0);
    } else {
        // Branch-free passes (which vectors pass is unpredictable), then the accepted ones
        // and the new outliers are listed.
        let (low, high) = (opts.inlier_low_weight, opts.inlier_high_weight);
        let near_only = discrimination < 0.5;
        let (icx, icy) = (prev.inlier_center_x, prev.inlier_center_y);
        inlierness.extend(region.iter().zip(weights.iter()).map(|(v, &w)| {
            let s = ramp(w, low, high);
            let far = ((v.pos[0] - icx).abs() > half_extent[0])
                | ((v.pos[1] - icy).abs() > half_extent[1]);
            if (s > 0.5) & !(near_only & far) {
                s
            } else {
                0.0
            }
        }));
        compact_indices(inlierness, 0, accepted, |&s| s > 0.0);
        compact_indices(weights, 0, new_outliers, |&w| ramp(w, low, high) < 0.1);
    }
    // 10x10 density grid over the search region.
    let (gw, gh) = ((sx1 - sx0).max(1e-6), (sy1 - sy0).max(1e-6));
    // The cells through `i32` (a float to `usize` conversion takes more instructions).
    let grid_pos = |p: [f32; 2]| {
        let gx = ((p[0] - sx0) / gw * 9.0).clamp(0.0, 9.0);
        let gy = ((p[1] - sy0) / gh * 9.0).clamp(0.0, 9.0);
        let (ix, iy) = ((gx as i32).min(8), (gy as i32).min(8));
        (ix as usize, iy as usize, gx - ix as f32, gy - iy as f32)
    };
    let mut grid = [[0f32; 10]; 10];
    grid_cells.clear();
    grid_cells.extend(accepted.iter().map(|&i| grid_pos(region[i as usize].pos)));
    for &(ix, iy, fx, fy) in grid_cells.iter() {
        grid[iy][ix] += (1.0 - fx) * (1.0 - fy);
        grid[iy][ix + 1] += fx * (1.0 - fy);
        grid[iy + 1][ix] += (1.0 - fx) * fy;
        grid[iy + 1][ix + 1] += fx * fy;
    }
    density.clear();
    let (mut kin_sum, mut kin_w, mut motion_inliers) = (0f32, 0f32, 0f32);
    let (mut contd_inliers, mut swapped) = (0usize, 0usize);
    let inlier_sigma = opts
        .min_motion_sigma
        .max(opts.relative_motion_sigma * speed_prev);
    for (&i, &(ix, iy, fx, fy)) in accepted.iter().zip(grid_cells.iter()) {
        let i = i as usize;
        if was_inlier[i] != NOT_INLIER {
            contd_inliers += 1;
        }
        if was_outlier[i] {
            swapped += 1;
        }
        let local = grid[iy][ix] * (1.0 - fx) * (1.0 - fy)
            + grid[iy][ix + 1] * fx * (1.0 - fy)
            + grid[iy + 1][ix] * (1.0 - fx) * fy
            + grid[iy + 1][ix + 1] * fx * fy;
        density.push(2.0 * if local > 1.0 { 1.0 / local } else { 1.0 });
        let obj = speed[i];
        kin_sum += obj * prior_w[i];
        kin_w += prior_w[i];
        if (obj - speed_prev).abs() * prior < inlier_sigma.max(2e-3) {
            motion_inliers += prior_w[i];
        }
    }
    let kinetic_avg = if kin_w > 0.0 { kin_sum / kin_w } else { 0.0 };

    // 8. Disparity.
    let mut disparity = if no_good {
        1.0
    } else {
        let measured = ramp(
            (t_mag - speed_prev).abs() * irls_scale[0],
            opts.motion_disparity_low_level,
            opts.motion_disparity_high_level,
        );
        // The reference caps with 1 - (continued inlier count): an integer, so any
        // continued inlier disables the measured term.
        let capped = measured.min(1.0 - contd_inliers as f32);
        let d = (opts.disparity_decay * prev.motion_disparity.abs()).max(capped) * prior;
        let d = d.min(1.0 - ramp(accepted.len() as f32, 20.0, 40.0));
        if t_mag < speed_prev {
            -d
        } else {
            d
        }
    };

    // 9. Reset rule.
    let prev_inlier_count = records.inliers.len();
    let discarded = records
        .inliers
        .iter()
        .filter(|r| frame.actively_discarded.binary_search(&r.id).is_ok())
        .count();
    let denom = prev_inlier_count.saturating_sub(discarded);
    let continuity = if denom > 0 {
        contd_inliers as f32 / denom as f32
    } else {
        1.0
    };
    let swap_ratio = if prev_inlier_count > 0 {
        swapped as f32 / prev_inlier_count as f32
    } else {
        0.0
    };
    let reset =
        continuity.max(motion_inliers) < 0.15 || disparity.abs() >= 1.0 || swap_ratio >= 2.5;
    // Where a feature matched (aspect domain).
    let matched = |v: &MotionVector| {
        let m = v.motion();
        [v.pos[0] + m[0], v.pos[1] + m[1]]
    };
    // The new records (normalized) of the vectors with an id, in region order, the first
    // of a repeated id kept.
    let (mut new_inliers, mut outliers) = (Vec::new(), Vec::new());
    if !reset {
        let add = |list: &mut Vec<FeatureRecord>, i: u32, length: i32| {
            let v = &region[i as usize];
            let id = v.track_id;
            if id < 0 || (index.repeated_ids && list.iter().any(|r| r.id == id)) {
                return;
            }
            let m = matched(v);
            list.push(FeatureRecord {
                id,
                length,
                match_pos: [m[0] / ex, m[1] / ey],
            });
        };
        new_inliers.reserve(accepted.len());
        for &i in accepted.iter() {
            add(&mut new_inliers, i, was_inlier[i as usize].max(0) + 1);
        }
        outliers.reserve(new_outliers.len());
        for &i in new_outliers.iter() {
            add(&mut outliers, i, 0);
        }
    }
    let mut discrimination = discrimination;
    if reset {
        density.clear();
        accepted.clear();
        inlierness.iter_mut().for_each(|s| *s = 0.0);
        disparity = if disparity < 0.0 { -1.0 } else { 1.0 };
        t = v_prev;
        similarity = None;
        discrimination = prev.background_discrimination;
    }

    // 10. Statistics and velocity blend.
    let inlier_sum: f32 = accepted.iter().map(|&i| inlierness[i as usize]).sum();
    let confidence = if hist.is_empty() && first_step {
        1.0
    } else {
        ramp(accepted.len() as f32, 10.0, 30.0)
    };
    let kinetic_energy = (opts.kinetic_energy_decay * prev.kinetic_energy)
        .max(kinetic_avg * (1.0 - disparity.abs()));
    let inlier_ratio = inlier_sum / (history.max_inlier_sum + 1e-3);
    let perfect = inlier_ratio > 0.85 && inlier_ratio < 1.15;
    if bg_valid && !perfect {
        let a = disparity.abs().min(0.8);
        t = [lerp(t[0], v_prev[0], a), lerp(t[1], v_prev[1], a)];
    }

    // 11. Apply object motion, then camera motion.
    let mut s = prev.without_records();
    match similarity {
        Some((scale, rot, _)) if !reset => {
            s.pos_x += t[0];
            s.pos_y += t[1];
            if opts.tracking_degrees.scale() {
                s.scale *= scale;
            }
            if opts.tracking_degrees.rotation() {
                s.rotation += rot;
            }
        }
        _ => {
            s.pos_x += t[0];
            s.pos_y += t[1];
        }
    }
    if bg_valid {
        apply_camera_motion(&mut s, &frame.background_model, opts);
    }
    let (ncx, ncy) = s.center();
    let shift = [ncx - cx, ncy - cy];

    // 12. Inlier center and extent.
    let r = s.rect();
    let (mut sw, mut mx, mut my) = (0f32, 0f32, 0f32);
    center_w.clear();
    for (&i, &d) in accepted.iter().zip(density.iter()) {
        let i = i as usize;
        let mp = matched(&region[i]);
        let inside = mp[0] >= r[0] && mp[0] <= r[2] && mp[1] >= r[1] && mp[1] <= r[3];
        let w = inlierness[i] * d * if inside { 1.0 } else { 0.25 };
        center_w.push(w);
        sw += w;
        mx += w * mp[0];
        my += w * mp[1];
    }
    let prev_ic = [
        prev.inlier_center_x + shift[0],
        prev.inlier_center_y + shift[1],
    ];
    let measured_center = if inlier_sum > 2.0 && sw > 0.0 {
        [mx / sw, my / sw]
    } else {
        [lerp(ncx, prev_ic[0], 0.5), lerp(ncy, prev_ic[1], 0.5)]
    };
    let dc = norm([
        measured_center[0] - prev_ic[0],
        measured_center[1] - prev_ic[1],
    ]);
    let size_n = (bw).hypot(bh).max(1e-6);
    let f = (lerp(0.95, 0.6, discrimination).min(dc / size_n) * prior).clamp(0.0, 1.0);
    s.inlier_center_x = lerp(measured_center[0], prev_ic[0], f);
    s.inlier_center_y = lerp(measured_center[1], prev_ic[1], f);
    if sw > 30.0 {
        let (mut vx, mut vy) = (0f32, 0f32);
        let mean = [mx / sw, my / sw];
        for (&i, &w) in accepted.iter().zip(center_w.iter()) {
            let i = i as usize;
            let mp = matched(&region[i]);
            vx += w * (mp[0] - mean[0]).powi(2);
            vy += w * (mp[1] - mean[1]).powi(2);
        }
        let ext = [3.29 * (vx / sw).sqrt(), 3.29 * (vy / sw).sqrt()];
        let a = (prior * lerp(1.0, 0.85, discrimination)).clamp(0.0, 1.0);
        s.inlier_width = if prev.inlier_width > 0.0 {
            lerp(ext[0], prev.inlier_width, a)
        } else {
            ext[0]
        };
        s.inlier_height = if prev.inlier_height > 0.0 {
            lerp(ext[1], prev.inlier_height, a)
        } else {
            ext[1]
        };
    }

    // 13. Spring toward the inlier center.
    let force = (opts.inlier_spring_force * discrimination).min(1.0);
    if force > 0.0 {
        let (bcx, bcy) = s.center();
        let (sw_, sh_) = (s.width * s.scale, s.height * s.scale);
        let pull = |d: f32, size: f32| {
            let dead = opts.inlier_center_relative_distance * size;
            if d.abs() > dead {
                force * (d.abs() - dead) * d.signum()
            } else {
                0.0
            }
        };
        s.pos_x += pull(s.inlier_center_x - bcx, sw_);
        s.pos_y += pull(s.inlier_center_y - bcy, sh_);
    }

    // 14. Velocity, prior, status.
    let u = if !bg_valid && !opts.update_velocity_without_background {
        1.0
    } else if perfect {
        0.0
    } else {
        opts.velocity_update_weight * prior
    };
    s.dx = lerp(t[0], v_prev[0], u);
    s.dy = lerp(t[1], v_prev[1], u);
    s.prior_weight = if bg_valid || opts.update_velocity_without_background {
        (prior + opts.prior_weight_increase).min(1.0)
    } else {
        (prior - opts.prior_weight_increase).max(0.0)
    };
    s.kinetic_energy = kinetic_energy;
    s.motion_disparity = disparity.clamp(-1.0, 1.0);
    s.background_discrimination = discrimination;
    s.inlier_sum = inlier_sum;
    s.inlier_ratio = inlier_ratio;
    s.inliers = new_inliers;
    s.outliers = outliers;
    s.tracking_confidence = confidence;
    s.track_status = TrackStatus::Tracked;
    if !s.is_valid() {
        s.track_status = TrackStatus::Untracked;
    }
    s
}

/// Re-acquisition of a box held at a frame edge (see
/// [`TrackStepOptions::reacquire_out_of_view_boxes`]), in the aspect domain: `inward`
/// points from the edges it sticks out of into the frame. Returns the new state, or `None`
/// when too few features move coherently inward.
fn reacquire(
    prev: &MotionBoxState,
    frame: &MotionVectorFrame,
    inward: [f32; 2],
    opts: &TrackStepOptions,
    ts: f32,
) -> Option<MotionBoxState> {
    // Entering features are looked for in the box widened by the search margin, and on
    // the inward side by its size (where the object is once it has come back in; its
    // features are only seen some frames after it crossed the edge).
    let (x0, y0, x1, y1) = corner_bounds(prev);
    let e = opts.expansion_size;
    let deep = e.max((prev.width * prev.scale).max(prev.height * prev.scale));
    let margin = |dir: f32| if dir > 0.0 { deep } else { e };
    let (x0, x1) = (x0 - margin(-inward[0]), x1 + margin(inward[0]));
    let (y0, y1) = (y0 - margin(-inward[1]), y1 + margin(inward[1]));
    let region: Vec<&MotionVector> = frame.vectors[frame.x_range(x0, x1)]
        .iter()
        .filter(|v| (y0..=y1).contains(&v.pos[1]))
        .collect();
    // Moving faster than the background discrimination level, within ~70 degrees of the
    // inward direction.
    let min_speed = opts.background_discrimination_high_level * ts;
    let n_in = norm(inward);
    let moving: Vec<&MotionVector> = region
        .iter()
        .copied()
        .filter(|v| {
            let speed = norm(v.object);
            speed > min_speed
                && v.object[0] * inward[0] + v.object[1] * inward[1] > 0.3 * speed * n_in
        })
        .collect();
    let min_features = opts.reacquire_min_features.max(2) as usize;
    if moving.len() < min_features {
        return None;
    }
    let median = |k: usize| {
        let mut c: Vec<f32> = moving.iter().map(|v| v.object[k]).collect();
        c.sort_by(f32::total_cmp);
        c[c.len() / 2]
    };
    let m = [median(0), median(1)];
    let tol = (opts.relative_motion_sigma * norm(m)).max(opts.min_motion_sigma * ts);
    let coherent: Vec<&MotionVector> = moving
        .into_iter()
        .filter(|v| norm([v.object[0] - m[0], v.object[1] - m[1]]) <= tol)
        .collect();
    if coherent.len() < min_features {
        return None;
    }
    let n = coherent.len() as f32;
    let t = [
        coherent.iter().map(|v| v.object[0]).sum::<f32>() / n,
        coherent.iter().map(|v| v.object[1]).sum::<f32>() / n,
    ];
    let mut s = prev.clone();
    s.pos_x += t[0];
    s.pos_y += t[1];
    if frame.valid_background {
        apply_camera_motion(&mut s, &frame.background_model, opts);
    }
    let matched = |v: &MotionVector| {
        let m = v.motion();
        [v.pos[0] + m[0], v.pos[1] + m[1]]
    };
    // The features outline the object's part in view: it ends at the inward-most one (the
    // box's inward edge is moved there), and across the entry direction the box is centred
    // on their span, unless they reach a frame border there.
    let r = s.rect();
    for (k, lo, hi) in [(0, r[0], r[2]), (1, r[1], r[3])] {
        let (min, max) = coherent
            .iter()
            .map(|v| matched(v)[k])
            .fold((f32::MAX, f32::MIN), |(a, b), x| (a.min(x), b.max(x)));
        // Features reaching a frame border (within the search margin) across the entry
        // direction: the object also enters through that border.
        let (at_low, at_high) = (min < e, max > frame.extent[k] - e);
        let shift = if inward[k] > 0.0 || (inward[k] == 0.0 && at_low && !at_high) {
            max - hi
        } else if inward[k] < 0.0 || (inward[k] == 0.0 && at_high && !at_low) {
            min - lo
        } else {
            (min + max - lo - hi) / 2.0
        };
        if k == 0 {
            s.pos_x += shift;
        } else {
            s.pos_y += shift;
        }
    }
    let [ex, ey] = frame.extent;
    let record = |v: &MotionVector, length: i32| {
        let m = matched(v);
        FeatureRecord {
            id: v.track_id,
            length,
            match_pos: [m[0] / ex, m[1] / ey],
        }
    };
    let mut inliers: Vec<FeatureRecord> = coherent
        .iter()
        .filter(|v| v.track_id >= 0)
        .map(|v| record(v, 1))
        .collect();
    inliers.sort_by_key(|r| r.id);
    inliers.dedup_by_key(|r| r.id);
    let mut outliers: Vec<FeatureRecord> = region
        .iter()
        .filter(|v| v.track_id >= 0 && inliers.binary_search_by_key(&v.track_id, |r| r.id).is_err())
        .map(|v| record(v, 0))
        .collect();
    outliers.sort_by_key(|r| r.id);
    outliers.dedup_by_key(|r| r.id);
    let center = coherent.iter().fold([0f32; 2], |c, v| {
        let p = matched(v);
        [c[0] + p[0] / n, c[1] + p[1] / n]
    });
    let speed = norm(t);
    s.dx = t[0];
    s.dy = t[1];
    s.kinetic_energy = speed;
    s.prior_weight = 1.0;
    s.motion_disparity = 0.0;
    s.background_discrimination = ramp(
        speed,
        opts.background_discrimination_low_level,
        opts.background_discrimination_high_level,
    );
    s.inlier_center_x = center[0];
    s.inlier_center_y = center[1];
    s.inlier_width = prev.width * prev.scale;
    s.inlier_height = prev.height * prev.scale;
    s.inlier_sum = n;
    s.inlier_ratio = 1.0;
    s.tracking_confidence = ramp(inliers.len() as f32, 10.0, 30.0);
    s.inliers = inliers;
    s.outliers = outliers;
    s.track_status = TrackStatus::Tracked;
    s.is_valid().then_some(s)
}

/// Asks the CPU to start loading the cache lines of `items` without waiting for them, so
/// that the misses of many boxes overlap instead of each step waiting for its own (after a
/// frame's motion analysis, the boxes' memory is mostly out of the caches). Changes no
/// result; does nothing on targets other than x86-64.
pub(crate) fn prefetch_lines<T>(items: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let start = items.as_ptr().cast::<i8>();
        for offset in (0..std::mem::size_of_val(items)).step_by(64) {
            // SAFETY: SSE is part of the x86-64 baseline, and a prefetch reads no memory
            // (the address is inside `items` anyway).
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(offset)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = items;
}

/// States before the one a step starts from whose outliers it also avoids.
const OUTLIER_HISTORY: i64 = 10;

/// One box's states indexed by frame number, tracked forward or backward.
#[derive(Clone, Debug)]
pub struct MotionBox {
    states: VecDeque<MotionBoxState>,
    queue_start: i64,
    start_frame: i64,
    /// Shared by the boxes of a tracker (one copy in the caches for all their steps).
    options: Arc<TrackStepOptions>,
    /// What a forward step from the newest state reads of the states before it.
    recent: RecentStates,
}

/// The outlier ids and inlier sums of a box's states `newest - OUTLIER_HISTORY ..= newest`
/// (those present), oldest first: what a forward step from `newest` reads of its history,
/// in one short list instead of a record list per state (after the motion analysis of a
/// frame, every list is a cache miss of its own).
#[derive(Clone, Debug, Default)]
struct RecentStates {
    /// The frame of the newest state covered; `None`: nothing covered.
    newest: Option<i64>,
    /// Per state covered, oldest first: its number of outliers and its inlier sum.
    states: VecDeque<(usize, f32)>,
    /// The outlier ids of the states covered, oldest state first.
    outlier_ids: Vec<i32>,
}

impl RecentStates {
    /// The frame of the oldest state covered.
    fn oldest(&self) -> Option<i64> {
        self.newest.map(|n| n + 1 - self.states.len() as i64)
    }

    /// Appends the state of the frame after the newest, forgetting states older than the
    /// history a step from it reads.
    fn push(&mut self, state: &MotionBoxState) {
        self.newest = self.newest.map(|n| n + 1);
        self.states
            .push_back((state.outliers.len(), state.inlier_sum));
        self.outlier_ids.extend(state.outliers.iter().map(|r| r.id));
        while self.states.len() > OUTLIER_HISTORY as usize + 1 {
            if let Some((outliers, _)) = self.states.pop_front() {
                self.outlier_ids.drain(..outliers);
            }
        }
    }

    fn clear(&mut self) {
        *self = RecentStates::default();
    }

    /// The history of a step from the newest state (`states`: the states before it, as
    /// [`StepHistory::states`]).
    fn history<'a>(&'a self, states: &'a [&'a MotionBoxState]) -> StepHistory<'a> {
        StepHistory {
            states,
            outlier_ids: Some(&self.outlier_ids),
            max_inlier_sum: self.states.iter().fold(0f32, |m, &(_, sum)| m.max(sum)),
        }
    }
}

impl MotionBox {
    /// A box with no states yet.
    pub fn new(options: TrackStepOptions) -> MotionBox {
        MotionBox::with_shared_options(Arc::new(options))
    }

    /// A box with no states yet, with options shared with other boxes.
    pub fn with_shared_options(options: Arc<TrackStepOptions>) -> MotionBox {
        MotionBox {
            states: VecDeque::new(),
            queue_start: 0,
            start_frame: 0,
            options,
            recent: RecentStates::default(),
        }
    }

    /// The step options.
    pub fn options(&self) -> &TrackStepOptions {
        &self.options
    }

    /// Starts (or restarts) the box at `frame` with `state` (marked TRACKED; the inlier
    /// extent defaults to the box size).
    pub fn reset_at_frame(&mut self, frame: i64, mut state: MotionBoxState) {
        state.track_status = TrackStatus::Tracked;
        if state.inlier_width <= 0.0 || state.inlier_height <= 0.0 {
            state.inlier_width = state.width;
            state.inlier_height = state.height;
        }
        if state.tracking_confidence <= 0.0 {
            state.tracking_confidence = 1.0;
        }
        self.states.clear();
        self.states.push_back(state);
        self.queue_start = frame;
        self.start_frame = frame;
        self.recent.clear();
    }

    /// The state at `frame`, if known.
    pub fn state_at(&self, frame: i64) -> Option<&MotionBoxState> {
        let i = frame.checked_sub(self.queue_start)?;
        usize::try_from(i).ok().and_then(|i| self.states.get(i))
    }

    /// Frame range with states: `first..=last`.
    pub fn frames(&self) -> Option<(i64, i64)> {
        (!self.states.is_empty()).then(|| {
            (
                self.queue_start,
                self.queue_start + self.states.len() as i64 - 1,
            )
        })
    }

    /// Tracks from `from_frame` one frame forward (`frame` must then be the motion
    /// from-frame -> from+1, i.e. the inverted data of frame from+1) or backward (the data of
    /// frame `from_frame` itself). Returns false when the track failed; the new state is
    /// stored either way (with confidence 0 on failure).
    pub fn track_step(
        &mut self,
        from_frame: i64,
        frame: &MotionVectorFrame,
        forward: bool,
    ) -> bool {
        let use_recent = forward && self.cover_recent(from_frame);
        let (states, queue_start) = (&self.states, self.queue_start);
        let state_at = |frame: i64| {
            let i = usize::try_from(frame.checked_sub(queue_start)?).ok()?;
            states.get(i)
        };
        let Some(prev) = state_at(from_frame) else {
            return false;
        };
        let step = if forward { -1 } else { 1 };
        let mut history = [prev; OUTLIER_HISTORY as usize];
        let mut len = 0;
        for s in (1..=OUTLIER_HISTORY)
            .rev()
            .filter_map(|k| state_at(from_frame + step * k))
        {
            history[len] = s;
            len += 1;
        }
        let history = &history[..len];
        let first_step = from_frame == self.start_frame;
        let history = if use_recent {
            self.recent.history(history)
        } else {
            StepHistory::from_states(prev, history)
        };
        let new = step_with_history(prev, history, frame, first_step, &self.options);
        let to = if forward {
            from_frame + 1
        } else {
            from_frame - 1
        };
        // Drop states on the far side of `to` (re-tracking overwrites).
        if forward {
            let keep = (to - self.queue_start).max(0) as usize;
            self.states.truncate(keep);
            if use_recent {
                self.recent.push(&new);
            } else {
                self.recent.clear();
            }
            self.states.push_back(new);
        } else {
            self.recent.clear();
            let drop = (to + 1 - self.queue_start).max(0) as usize;
            let drop = drop.min(self.states.len());
            // States before `to + 1` are replaced: remove frames < to + 1 ... we keep
            // frames > to, so remove the first `drop` elements.
            self.states.drain(..drop);
            self.states.push_front(new);
            self.queue_start = to;
        }
        let window = self.options.max_track_failures as usize + 1;
        let newest_first = (0..window as i64).filter_map(|k| self.state_at(to - step * k));
        !failure_in(newest_first, &self.options)
    }

    /// How many of the newest states the next forward step reads (its history and the
    /// failure window); [`MotionBox::trim`] to this keeps the box's results the same.
    pub fn states_needed(&self) -> usize {
        (OUTLIER_HISTORY as usize).max(self.options.max_track_failures as usize) + 1
    }

    /// Keeps at most `max` states (the newest in the forward direction).
    pub fn trim(&mut self, max: usize) {
        let max = max.max(2);
        if self.states.len() <= max {
            return;
        }
        while self.states.len() > max {
            self.states.pop_front();
            self.queue_start += 1;
        }
    }

    /// Starts loading the states and the recent-state list the next forward step reads
    /// (first stage of warming a box whose memory went cold, see [`prefetch_lines`]).
    pub(crate) fn prefetch_states(&self) {
        let (older, newer) = self.states.as_slices();
        prefetch_lines(older);
        prefetch_lines(newer);
        let (older, newer) = self.recent.states.as_slices();
        prefetch_lines(older);
        prefetch_lines(newer);
        prefetch_lines(&self.recent.outlier_ids);
    }

    /// Starts loading the record lists the next forward step reads (the newest state's)
    /// and frees (the oldest state's, trimmed after the step: the allocator hands its
    /// blocks to the next records written). Second stage, after
    /// [`MotionBox::prefetch_states`] of every box.
    pub(crate) fn prefetch_records(&self) {
        for state in [self.states.back(), self.states.front()]
            .into_iter()
            .flatten()
        {
            prefetch_lines(&state.inliers);
            prefetch_lines(&state.outliers);
        }
    }

    /// Makes [`MotionBox::recent`] cover the states a forward step from `from_frame` reads
    /// (rebuilt from the states unless it already does); false if there are none.
    fn cover_recent(&mut self, from_frame: i64) -> bool {
        let oldest = self.queue_start.max(from_frame - OUTLIER_HISTORY);
        if self.recent.newest == Some(from_frame) && self.recent.oldest() == Some(oldest) {
            return true;
        }
        self.recent.clear();
        let first = usize::try_from(oldest - self.queue_start).ok();
        let last = usize::try_from(from_frame - self.queue_start).ok();
        let (Some(first), Some(last)) = (first, last) else {
            return false;
        };
        if first > last || last >= self.states.len() {
            return false;
        }
        self.recent.newest = Some(oldest - 1);
        for state in self.states.range(first..=last) {
            self.recent.push(state);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame of vectors on a grid: `motion(x, y) -> (background, object)`.
    fn grid_frame(
        valid: bool,
        h: Homography,
        f: impl Fn(f32, f32) -> Option<([f32; 2], i32)>,
    ) -> MotionVectorFrame {
        let mut vectors = Vec::new();
        for i in 0..64 {
            for j in 0..48 {
                let (x, y) = (i as f32 / 64.0 + 0.005, j as f32 / 64.0 + 0.005);
                if let Some((obj, id)) = f(x, y) {
                    let (mx, my) = h.map(x, y);
                    vectors.push(MotionVector {
                        pos: [x, y],
                        background: if valid { [mx - x, my - y] } else { [0.0, 0.0] },
                        object: obj,
                        track_id: id,
                    });
                }
            }
        }
        MotionVectorFrame {
            index: OnceLock::new(),
            vectors,
            background_model: h,
            valid_background: valid,
            is_duplicated: false,
            is_chunk_boundary: false,
            aspect_ratio: 4.0 / 3.0,
            extent: [1.0, 0.75],
            duration_ms: NOMINAL_FRAME_MS,
            actively_discarded: Vec::new(),
        }
    }

    /// The insertion sort with its fallback orders like the standard stable sort, equal keys
    /// in input order, from sorted input to random.
    #[test]
    fn sort_nearly_sorted_matches_the_stable_sort() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        // (key, input position): equal keys must keep their input order.
        for len in [0, 1, 2, 9, 100, 700] {
            for spread in [0u64, 1, 3, 20, 1_000_000] {
                let items: Vec<(u64, usize)> = (0..len)
                    .map(|i| ((i as u64 / 2) * 4 + next() % (spread + 1), i))
                    .collect();
                let mut expected = items.clone();
                expected.sort_by_key(|a| a.0);
                let mut sorted = items;
                sort_nearly_sorted(&mut sorted, |a, b| a.0.cmp(&b.0));
                assert_eq!(sorted, expected, "length {len}, spread {spread}");
            }
        }
    }

    /// Every pattern of 8 flags packs to its own bit mask (no carries between flags).
    #[test]
    fn lane_mask_gives_every_mask() {
        for mask in 0..256usize {
            let lanes: [i32; 8] = std::array::from_fn(|k| -(((mask >> k) & 1) as i32));
            assert_eq!(lane_mask(lanes), mask, "{lanes:?}");
        }
    }

    /// The table-driven compaction lists exactly the kept indices, in order, for every
    /// length around the 8-item chunks and varied patterns (none, all, alternating, random).
    #[test]
    fn compact_indices_lists_the_kept_items_in_order() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut out = Vec::new();
        for len in 0..=41 {
            for pattern in 0..6 {
                let items: Vec<u32> = (0..len)
                    .map(|i| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        match pattern {
                            0 => 0,
                            1 => 1,
                            2 => i % 2,
                            3 => u32::from(i % 8 == 7),
                            _ => (state % 3 == 0) as u32,
                        }
                    })
                    .collect();
                compact_indices(&items, 100, &mut out, |&k| k == 1);
                let expected: Vec<u32> = (0..len)
                    .filter(|&i| items[i as usize] == 1)
                    .map(|i| 100 + i)
                    .collect();
                assert_eq!(out, expected, "length {len}, pattern {pattern}");
            }
        }
    }

    #[test]
    fn exp_nonpositive_is_within_2_ulp_of_libm() {
        let ulps = |a: f32, b: f32| (a.to_bits() as i64 - b.to_bits() as i64).abs();
        let mut worst = 0;
        for i in 0..=200_000 {
            let x = -87.0 * i as f32 / 200_000.0;
            worst = worst.max(ulps(exp_nonpositive(x), x.exp()));
        }
        for x in [0.0, -0.0, -1e-30, -1e-8, -0.5, -0.346_573_6, -1.0, -86.999] {
            worst = worst.max(ulps(exp_nonpositive(x), x.exp()));
        }
        assert!(worst <= 2, "{worst} ulp");
        assert_eq!(exp_nonpositive(-1e3), (-87f32).exp());
        assert_eq!(exp_nonpositive(f32::NEG_INFINITY), (-87f32).exp());
        assert!(exp_nonpositive(f32::NAN).is_nan());
    }

    #[test]
    fn frame_index_finds_every_vector_of_an_id() {
        let ids = [7, 3, -1, 7, 0, i32::MAX, 3, 7, 12];
        let vectors: Vec<MotionVector> = ids
            .iter()
            .enumerate()
            .map(|(i, &track_id)| MotionVector {
                pos: [i as f32, 0.0],
                background: [0.0; 2],
                object: [0.0; 2],
                track_id,
            })
            .collect();
        let found_in = |index: &FrameIndex, id| {
            let mut v = Vec::new();
            index.for_each_with_id(id, |j| v.push(j));
            v
        };
        // Ids up to i32::MAX: the hashed table.
        let index = FrameIndex::new(&vectors);
        assert!(index.repeated_ids && matches!(index.ids, IdTable::Hashed { .. }));
        let found = |id| found_in(&index, id);
        assert_eq!(found(7), [0, 3, 7]);
        assert_eq!(found(3), [1, 6]);
        assert_eq!(found(0), [4]);
        assert_eq!(found(i32::MAX), [5]);
        assert_eq!(found(12), [8]);
        assert!(found(-1).is_empty() && found(5).is_empty() && found(1 << 20).is_empty());
        // The same without i32::MAX: the direct table, the same answers.
        let dense: Vec<MotionVector> = vectors
            .iter()
            .filter(|v| v.track_id != i32::MAX)
            .copied()
            .collect();
        let index = FrameIndex::new(&dense);
        assert!(index.repeated_ids && matches!(index.ids, IdTable::Direct { .. }));
        let found = |id| found_in(&index, id);
        assert_eq!(found(7), [0, 3, 6]);
        assert_eq!(found(3), [1, 5]);
        assert_eq!(found(0), [4]);
        assert_eq!(found(12), [7]);
        for absent in [-1, 5, 13, 1 << 20, i32::MIN, i32::MAX] {
            assert!(found(absent).is_empty(), "{absent}");
        }
        assert!(!FrameIndex::new(&vectors[4..7]).repeated_ids);
        // Many ids: each found at its vector, absent ones not found.
        let many: Vec<MotionVector> = (0..5000)
            .map(|i| MotionVector {
                track_id: i * 3,
                ..vectors[0]
            })
            .collect();
        let index = FrameIndex::new(&many);
        assert!(matches!(index.ids, IdTable::Direct { .. }));
        assert_eq!(index.x_range(-1.0, 0.0), 0..5000);
        for i in 0..5000 {
            assert_eq!(index.first_with_id(i * 3), i as u32);
            assert_eq!(index.first_with_id(i * 3 + 1), NO_VECTOR);
        }
        // Ids sharing their low bits (all in one probe run) are still found.
        let strided: Vec<MotionVector> = (0..300)
            .map(|i| MotionVector {
                track_id: i << 16,
                ..vectors[0]
            })
            .collect();
        let index = FrameIndex::new(&strided);
        assert!(matches!(index.ids, IdTable::Hashed { .. }));
        for i in 0..300 {
            assert_eq!(index.first_with_id(i << 16), i as u32);
        }
        assert_eq!(index.first_with_id(7 << 16 | 1), NO_VECTOR);
        assert_eq!(FrameIndex::new(&vectors).x_range(2.5, 6.0), 3..7);
    }

    /// The direct and the hashed id tables find the same vectors for every id, on frames
    /// whose ids span a narrow and a wide range.
    #[test]
    fn direct_and_hashed_id_tables_agree() {
        for (f, stride) in [(2, 6_400), (7, 6_400), (7, 100_000), (12, 100_000)] {
            let frame = jittered_frame_with_epochs(f, stride);
            let vectors = frame.vectors();
            let ids: Vec<i32> = vectors.iter().map(|v| v.track_id).collect();
            let (lo, hi) = (*ids.iter().min().unwrap(), *ids.iter().max().unwrap());
            let direct = FrameIndex::with_ids(vectors, IdTable::direct(lo, hi));
            let hashed = FrameIndex::with_ids(vectors, IdTable::hashed(vectors.len()));
            let probes: Vec<i32> = (lo - 3..lo + 600)
                .chain(hi - 600..=hi + 3)
                .chain([-1, i32::MIN, i32::MAX])
                .collect();
            let visits = |index: &FrameIndex| {
                let mut v = Vec::new();
                index.for_each_item_vector(&probes, |&id| id, |j, &id| v.push((j, id)));
                v
            };
            let found = visits(&direct);
            assert_eq!(found, visits(&hashed), "frame {f}, stride {stride}");
            assert!(found.iter().all(|&(j, id)| vectors[j].track_id == id));
            assert!(found.len() > 100, "frame {f}: {} found", found.len());
        }
    }

    /// Features with jittered motion (some become outliers) and ids that change every few
    /// frames for part of them; an object moving right in [0.3, 0.6] x [0.2, 0.5].
    fn jittered_frame(f: i64) -> MotionVectorFrame {
        jittered_frame_with_epochs(f, 100_000)
    }

    /// [`jittered_frame`] with the restarted tracks' ids `epoch_stride` apart per epoch.
    fn jittered_frame_with_epochs(f: i64, epoch_stride: i32) -> MotionVectorFrame {
        grid_frame(true, Homography::IDENTITY, |x, y| {
            let k = id_of(x, y);
            let jitter = ((k as i64 * 7919 + f * 104_729) % 13) as f32 * 4e-4;
            let inside = (0.3..0.6).contains(&x) && (0.2..0.5).contains(&y);
            let obj = if inside {
                [4e-3 + jitter, 0.0]
            } else {
                [jitter, 0.0]
            };
            let epoch = if k % 3 == 0 {
                (f / 3) as i32 * epoch_stride
            } else {
                0
            };
            Some((obj, k + epoch))
        })
    }

    /// Steps `b` from `from` and checks the new state against the free step given the
    /// history read from `b`'s states.
    fn step_and_check(b: &mut MotionBox, from: i64, data: &MotionVectorFrame, forward: bool) {
        let step = if forward { 1 } else { -1 };
        let prev = b.state_at(from).cloned().expect("state");
        let history: Vec<MotionBoxState> = (1..=10)
            .rev()
            .filter_map(|j| b.state_at(from - step * j).cloned())
            .collect();
        let refs: Vec<&MotionBoxState> = history.iter().collect();
        let expected = track_step(&prev, &refs, data, from == b.start_frame, &b.options);
        let ok = b.track_step(from, data, forward);
        assert_eq!(b.state_at(from + step), Some(&expected), "step from {from}");
        let window = b.options.max_track_failures as i64 + 1;
        let newest_last: Vec<&MotionBoxState> = (0..window)
            .rev()
            .filter_map(|k| b.state_at(from + step - step * k))
            .collect();
        assert_eq!(
            ok,
            !is_failure(&newest_last, &b.options),
            "step from {from}"
        );
    }

    /// A box started on the moving object of `frame(0)` (upright or rotated) and tracked
    /// forward `steps` frames: its states, frame 0 first.
    fn track_moving_object(
        frame: impl Fn(i64) -> MotionVectorFrame,
        rotation: f32,
        steps: i64,
    ) -> Vec<Option<MotionBoxState>> {
        let mut s = MotionBoxState::from_rect(0.3, 0.2, 0.6, 0.5, rotation);
        initialize_inliers(&mut s, &frame(0));
        let mut b = MotionBox::new(TrackStepOptions::box_tracking_graph());
        b.reset_at_frame(0, s);
        for f in 0..steps {
            b.track_step(f, &frame(f + 1), true);
        }
        (0..=steps).map(|f| b.state_at(f).cloned()).collect()
    }

    /// The AVX2 build of the step gives the baseline build's states to the bit, on a box
    /// following a moving object, upright and rotated (the rotated search region has its
    /// own test); on a CPU without AVX2 both runs take the baseline step.
    #[test]
    fn wide_vector_step_matches_the_baseline_step() {
        let track = |baseline_only: bool, rotation: f32| {
            BASELINE_STEP_ONLY.set(baseline_only);
            let states = track_moving_object(jittered_frame, rotation, 20);
            BASELINE_STEP_ONLY.set(false);
            states
        };
        for rotation in [0.0, 0.1] {
            let wide = track(false, rotation);
            assert_eq!(wide, track(true, rotation), "rotation {rotation}");
            let (first, last) = (wide[0].as_ref().unwrap(), wide[20].as_ref().unwrap());
            assert!(
                last.pos_x - first.pos_x > 0.05,
                "the box follows its object"
            );
            assert!(!last.inliers.is_empty());
        }
    }

    /// Track ids only identify features: the same tracks numbered over a wide range of ids
    /// and over a narrow one (other slots of the frame's id table) give the same states.
    #[test]
    fn states_do_not_depend_on_the_values_of_track_ids() {
        let track = |epoch_stride: i32, rotation: f32| {
            let frame = |f| jittered_frame_with_epochs(f, epoch_stride);
            track_moving_object(frame, rotation, 14)
                .into_iter()
                .map(|s| s.expect("state"))
                .collect::<Vec<_>>()
        };
        for rotation in [0.0, 0.1] {
            let (wide, narrow) = (track(100_000, rotation), track(6_400, rotation));
            assert_eq!(wide.len(), narrow.len());
            for (f, (a, b)) in wide.iter().zip(&narrow).enumerate() {
                let strip = |s: &MotionBoxState| MotionBoxState {
                    inliers: Vec::new(),
                    outliers: Vec::new(),
                    ..s.clone()
                };
                assert_eq!(strip(a), strip(b), "frame {f}, rotation {rotation}");
                assert_eq!(a.inliers.len(), b.inliers.len(), "frame {f}");
                assert_eq!(a.outliers.len(), b.outliers.len(), "frame {f}");
            }
            assert!(wide[14].outliers.len() + wide[13].outliers.len() > 0);
        }
    }

    /// A box's steps give the states that the free step computes from the same history,
    /// forward with the box trimmed to the states it needs, and backward.
    #[test]
    fn box_steps_match_the_free_step_with_its_history() {
        let frame = jittered_frame;
        // A box trimmed to the states it needs tracks like one that keeps them all.
        let mut all = start([0.3, 0.2, 0.6, 0.5], &frame(0));
        let mut trimmed = all.clone();
        for f in 0..30 {
            let (a, b) = (
                all.track_step(f, &frame(f + 1), true),
                trimmed.track_step(f, &frame(f + 1), true),
            );
            assert_eq!(a, b);
            assert_eq!(all.state_at(f + 1), trimmed.state_at(f + 1), "frame {f}");
            trimmed.trim(trimmed.states_needed());
        }
        for (keep, forward) in [(4usize, true), (100, true), (100, false)] {
            let f0 = if forward { 0 } else { 30 };
            let mut b = start([0.3, 0.2, 0.6, 0.5], &frame(f0));
            b.reset_at_frame(f0, b.state_at(0).cloned().expect("started"));
            let step = if forward { 1 } else { -1 };
            for k in 0..30 {
                let from = f0 + step * k;
                step_and_check(&mut b, from, &frame(from + step), forward);
                b.trim(keep);
            }
            let newest = b.state_at(f0 + 30 * step).expect("tracked");
            assert!(newest.outliers.len() > 5, "{:?}", newest.outliers);
        }
    }

    #[test]
    fn steps_after_re_tracking_and_backward_steps_read_their_own_history() {
        // A forward step from the newest state reads the box's kept list of recent outliers;
        // re-tracking from an earlier frame and backward steps replace states under it.
        let mut b = start([0.3, 0.2, 0.6, 0.5], &jittered_frame(0));
        for f in 0..20 {
            b.track_step(f, &jittered_frame(f + 1), true);
        }
        // Re-tracked from frame 12 on other data (frames 13.. are replaced), then on.
        for from in 12..16 {
            step_and_check(&mut b, from, &jittered_frame(from + 40), true);
        }
        // A backward step to frame 6, the oldest a step from the newest (16) reads: that
        // state is replaced (and those before it go), then forward from the newest.
        step_and_check(&mut b, 7, &jittered_frame(7), false);
        assert_eq!(b.frames(), Some((6, 16)));
        for from in 16..20 {
            step_and_check(&mut b, from, &jittered_frame(from + 1), true);
        }
        // Trimmed below the history a step reads: the step reads what is left.
        b.trim(3);
        for from in 20..24 {
            step_and_check(&mut b, from, &jittered_frame(from + 1), true);
        }
    }

    fn id_of(x: f32, y: f32) -> i32 {
        ((x * 64.0) as i32) * 100 + (y * 64.0) as i32
    }

    fn start(rect: [f32; 4], frame: &MotionVectorFrame) -> MotionBox {
        let mut s = MotionBoxState::from_rect(rect[0], rect[1], rect[2], rect[3], 0.0);
        initialize_inliers(&mut s, frame);
        let mut b = MotionBox::new(TrackStepOptions::box_tracking_graph());
        b.reset_at_frame(0, s);
        b
    }

    fn center(s: &MotionBoxState) -> (f32, f32) {
        s.center()
    }

    #[test]
    fn pure_camera_motion_moves_box_with_background() {
        // Camera pans by 0.01 (aspect units) per frame to the right, with a slight zoom.
        let h = Homography::from(crate::tracking::LinearSimilarityModel {
            dx: 0.01,
            dy: -0.004,
            a: 1.0,
            b: 0.0,
        });
        let frame = grid_frame(true, h, |x, y| Some(([0.0, 0.0], id_of(x, y))));
        let mut b = start([0.3, 0.3, 0.5, 0.6], &frame);
        for f in 0..10 {
            assert!(b.track_step(f, &frame, true), "step {f}");
        }
        let s = b.state_at(10).unwrap();
        let (cx, cy) = center(s);
        // Normalized: x moves 0.01 / 1.0, y moves -0.004 / 0.75 per frame.
        assert!((cx - (0.4 + 0.1)).abs() < 2e-3, "cx {cx}");
        assert!((cy - (0.45 - 0.04 / 0.75)).abs() < 2e-3, "cy {cy}");
        assert!((s.scale - 1.0).abs() < 1e-3);
        assert!(s.dx.abs() < 1e-3 && s.dy.abs() < 1e-3);
        assert!(s.tracking_confidence > 0.9);
    }

    #[test]
    fn object_motion_on_static_background() {
        // Object in [0.3, 0.5] x [0.2, 0.4] (aspect units) moving by (+0.006, +0.003) per
        // frame; background static. Ids follow the object.
        let mut rect = [0.3f32, 0.2, 0.5, 0.4];
        let mut b: Option<MotionBox> = None;
        for f in 0..15 {
            let off = [0.006 * f as f32, 0.003 * f as f32];
            let frame = grid_frame(true, Homography::IDENTITY, |x, y| {
                let (ox, oy) = (x - off[0], y - off[1]);
                if (0.3..0.5).contains(&ox) && (0.2..0.4).contains(&oy) {
                    Some(([0.006, 0.003], 10_000 + id_of(ox, oy)))
                } else {
                    Some(([0.0, 0.0], id_of(x, y)))
                }
            });
            if b.is_none() {
                // Normalized box: y divided by 0.75.
                b = Some(start(
                    [rect[0], rect[1] / 0.75, rect[2], rect[3] / 0.75],
                    &frame,
                ));
            }
            assert!(b.as_mut().unwrap().track_step(f, &frame, true), "step {f}");
            rect = [
                rect[0] + 0.006,
                rect[1] + 0.003,
                rect[2] + 0.006,
                rect[3] + 0.003,
            ];
        }
        let s = b.unwrap().state_at(15).unwrap().clone();
        let (cx, cy) = s.center();
        let (ex, ey) = ((rect[0] + rect[2]) / 2.0, (rect[1] + rect[3]) / 2.0 / 0.75);
        assert!((cx - ex).abs() < 0.01, "cx {cx} vs {ex}");
        assert!((cy - ey).abs() < 0.01, "cy {cy} vs {ey}");
        // Velocity per 30 fps frame, normalized.
        assert!((s.dx - 0.006).abs() < 1.5e-3, "dx {}", s.dx);
        assert!((s.dy - 0.004).abs() < 1.5e-3, "dy {}", s.dy);
        assert!(s.tracking_confidence > 0.9);
    }

    /// Box scale, and the true one, after tracking an object that grows by 1% per frame
    /// about its center on a static background (features everywhere, also in the search
    /// margin; the object's noisier than the background's).
    fn scale_of_growing_object(inside_box: bool) -> (f32, f32) {
        const GROWTH: f32 = 1.01;
        // Measurement noise (aspect units): the background's, and the object's relative to
        // it (features on a deforming object match less well).
        const NOISE: f32 = 5e-4;
        const OBJECT_NOISE: f32 = 4.0;
        let c = [0.5f32, 0.375];
        let mut opts = TrackStepOptions::box_tracking_graph();
        opts.object_similarity_inside_box = inside_box;
        let mut b: Option<MotionBox> = None;
        let frames = 25;
        for f in 0..frames {
            let half = 0.1 * GROWTH.powi(f as i32);
            let frame = grid_frame(true, Homography::IDENTITY, |x, y| {
                let (dx, dy) = (x - c[0], y - c[1]);
                // Measurement noise: +-NOISE per axis, fixed per feature and frame.
                let k = i64::from(id_of(x, y)) * 7919 + f * 104_729;
                let noise = |salt: i64| ((k * 31 + salt) % 201 - 100) as f32 / 100.0 * NOISE;
                let n = [noise(0), noise(17)];
                if dx.abs() <= half && dy.abs() <= half {
                    let n = [OBJECT_NOISE * n[0], OBJECT_NOISE * n[1]];
                    let m = [(GROWTH - 1.0) * dx + n[0], (GROWTH - 1.0) * dy + n[1]];
                    Some((m, 10_000 + id_of(x, y)))
                } else {
                    Some((n, id_of(x, y)))
                }
            });
            let b = b.get_or_insert_with(|| {
                let mut s = MotionBoxState::from_rect(0.4, 0.275 / 0.75, 0.6, 0.475 / 0.75, 0.0);
                initialize_inliers(&mut s, &frame);
                let mut b = MotionBox::new(opts.clone());
                b.reset_at_frame(0, s);
                b
            });
            assert!(b.track_step(f, &frame, true), "step {f}");
        }
        let s = b
            .expect("tracked")
            .state_at(frames)
            .cloned()
            .expect("state");
        (s.scale, GROWTH.powi(frames as i32))
    }

    #[test]
    fn object_scale_is_fitted_inside_the_box() {
        let (inside, truth) = scale_of_growing_object(true);
        let (region, _) = scale_of_growing_object(false);
        // 1.265 and 1.243 for 1.282: the reference's fit over the whole search region is
        // drawn toward the consistent background's zero motion, i.e. scale 1.
        assert!(
            (inside - truth).abs() < 0.02 * truth,
            "inside {inside} vs {truth}"
        );
        assert!(region < truth * 0.975, "region {region} vs {truth}");
        assert!(region < inside - 0.01, "region {region} vs inside {inside}");
    }

    #[test]
    fn featureless_box_follows_camera_pan() {
        // No features inside or near the box; camera pans left by 0.008 per frame.
        let h = Homography::from(crate::tracking::TranslationModel {
            dx: -0.008,
            dy: 0.0,
        });
        let frame = grid_frame(true, h, |x, y| {
            let near = (0.25..0.65).contains(&x) && (0.2..0.6).contains(&y);
            (!near).then(|| ([0.0, 0.0], id_of(x, y)))
        });
        let mut b = start([0.35, 0.35, 0.55, 0.65], &frame);
        for f in 0..5 {
            assert!(b.track_step(f, &frame, true), "step {f}");
            let s = b.state_at(f + 1).unwrap();
            assert_eq!(s.track_status, TrackStatus::TrackedOutOfBound);
        }
        let (cx, _) = b.state_at(5).unwrap().center();
        assert!((cx - (0.45 - 0.04)).abs() < 1e-4, "cx {cx}");
    }

    /// An object in [0.5, 0.7] x [0.3, 0.5] (aspect units) at frame 0 moving right by
    /// `speed` per frame on a static background.
    fn moving_right_frame(f: i64, speed: f32) -> MotionVectorFrame {
        let off = speed * f as f32;
        grid_frame(true, Homography::IDENTITY, |x, y| {
            let ox = x - off;
            if (0.5..0.7).contains(&ox) && (0.3..0.5).contains(&y) {
                Some(([speed, 0.0], 10_000 + id_of(ox, y)))
            } else {
                Some(([0.0, 0.0], id_of(x, y)))
            }
        })
    }

    #[test]
    fn box_leaving_the_frame_fails_with_reference_rules() {
        // An object moving right by 0.04 per frame (faster than the static threshold)
        // toward the right border.
        let mut b: Option<MotionBox> = None;
        let mut failed_at = None;
        for f in 0..30 {
            let off = 0.04 * f as f32;
            let frame = grid_frame(true, Homography::IDENTITY, |x, y| {
                let ox = x - off;
                if (0.5..0.7).contains(&ox) && (0.3..0.5).contains(&y) {
                    Some(([0.04, 0.0], 10_000 + id_of(ox, y)))
                } else {
                    Some(([0.0, 0.0], id_of(x, y)))
                }
            });
            if b.is_none() {
                let mut mb = start([0.5, 0.3 / 0.75, 0.7, 0.5 / 0.75], &frame);
                Arc::make_mut(&mut mb.options).keep_out_of_view_boxes = false;
                b = Some(mb);
            }
            if !b.as_mut().unwrap().track_step(f, &frame, true) {
                failed_at = Some(f);
                break;
            }
        }
        let f = failed_at.expect("the box must fail when it leaves");
        // Leaving is detected once the right part sticks out (pos > 1 - 0.7 size).
        assert!((5..=9).contains(&f), "failed at {f}");
        let b = b.unwrap();
        let s = b.state_at(f + 1).unwrap();
        assert_eq!(s.track_status, TrackStatus::Untracked);
        assert_eq!(s.tracking_confidence, 0.0);
    }

    #[test]
    fn box_leaving_the_frame_is_kept_out_of_view_and_moved_by_the_camera() {
        // The same object leaves through the right border; with keep_out_of_view_boxes
        // (the default) the box is not failed: it follows the object while it has features,
        // then stays out of bound (confidence 0, velocity 0) and moves with a camera pan.
        let mut b = start(
            [0.5, 0.3 / 0.75, 0.7, 0.5 / 0.75],
            &moving_right_frame(0, 0.04),
        );
        assert!(b.options().keep_out_of_view_boxes);
        for f in 0..20 {
            assert!(
                b.track_step(f, &moving_right_frame(f, 0.04), true),
                "step {f}"
            );
        }
        // Once its features were gone it was kept out of bound (confidence 0, velocity 0),
        // held at the right edge with a quarter of its width in view (where only background
        // features are, so it stays there).
        let kept = (1..=20)
            .filter(|&f| b.state_at(f).unwrap().track_status == TrackStatus::TrackedOutOfBound)
            .collect::<Vec<_>>();
        assert!(!kept.is_empty());
        let o = b.state_at(kept[0]).unwrap();
        assert_eq!(o.tracking_confidence, 0.0);
        assert_eq!((o.dx, o.dy), (0.0, 0.0));
        let s = b.state_at(20).unwrap().clone();
        let r = s.rect();
        assert!(r[0] > 0.75 && r[0] <= 0.95 + 1e-3, "box left {}", r[0]);
        assert!(s.dx.abs() < 0.01, "dx {}", s.dx);
        // The camera pans left by 0.01 per frame: the out-of-view box moves with it.
        let h = Homography::from(crate::tracking::TranslationModel { dx: -0.01, dy: 0.0 });
        let pan = grid_frame(true, h, |x, y| Some(([0.0, 0.0], id_of(x, y))));
        let before = s.center().0;
        for f in 20..25 {
            assert!(b.track_step(f, &pan, true), "pan step {f}");
        }
        let after = b.state_at(25).unwrap().center().0;
        assert!(
            (after - (before - 0.05)).abs() < 1e-3,
            "{before} -> {after}"
        );
    }

    /// Offset of an object that moves right by 0.04 per frame for 15 frames (leaving the
    /// frame through the right border) and then comes back at the same speed.
    fn out_and_back(f: i64) -> f32 {
        0.04 * if f <= 15 { f } else { 30 - f } as f32
    }

    /// Top of the `out_and_back` object (aspect units): `tops.0` until it is out of view,
    /// `tops.1` once it comes back.
    fn out_and_back_top(f: i64, tops: (f32, f32)) -> f32 {
        if f <= 15 {
            tops.0
        } else {
            tops.1
        }
    }

    /// Forward data f -> f+1 of the 0.2 x 0.2 object (aspect units) at x = 0.5 + `out_and_back`
    /// on a static background.
    fn out_and_back_frame(f: i64, tops: (f32, f32)) -> MotionVectorFrame {
        let (off, step) = (out_and_back(f), out_and_back(f + 1) - out_and_back(f));
        let (top, dy) = (
            out_and_back_top(f, tops),
            out_and_back_top(f + 1, tops) - out_and_back_top(f, tops),
        );
        grid_frame(true, Homography::IDENTITY, |x, y| {
            let (ox, oy) = (x - off, y - top);
            if (0.5..0.7).contains(&ox) && (0.0..0.2).contains(&oy) {
                Some(([step, dy], 10_000 + id_of(ox, oy)))
            } else {
                Some(([0.0, 0.0], id_of(x, y)))
            }
        })
    }

    /// Tracks the `out_and_back` object for 30 frames; returns the box.
    fn track_out_and_back(reacquire: bool, tops: (f32, f32)) -> MotionBox {
        let start_box = [0.5, tops.0 / 0.75, 0.7, (tops.0 + 0.2) / 0.75];
        let mut b = start(start_box, &out_and_back_frame(0, tops));
        Arc::make_mut(&mut b.options).reacquire_out_of_view_boxes = reacquire;
        for f in 0..30 {
            assert!(
                b.track_step(f, &out_and_back_frame(f, tops), true),
                "step {f}"
            );
        }
        b
    }

    /// IoU of the box at frame `f` with the `out_and_back` object (normalized coordinates).
    fn out_and_back_iou(b: &MotionBox, f: i64, tops: (f32, f32)) -> f32 {
        let r = b.state_at(f).unwrap().rect();
        let (off, top) = (out_and_back(f), out_and_back_top(f, tops));
        let t = [0.5 + off, top / 0.75, 0.7 + off, (top + 0.2) / 0.75];
        let iw = (r[2].min(t[2]) - r[0].max(t[0])).max(0.0);
        let ih = (r[3].min(t[3]) - r[1].max(t[1])).max(0.0);
        let area = |q: [f32; 4]| (q[2] - q[0]) * (q[3] - q[1]);
        iw * ih / (area(r) + area(t) - iw * ih)
    }

    #[test]
    fn box_held_at_the_edge_is_reacquired_when_its_object_comes_back() {
        let tops = (0.3, 0.3);
        let b = track_out_and_back(true, tops);
        // Out of view and held at the right edge while the object is away.
        let held = b.state_at(16).unwrap();
        assert_eq!(held.track_status, TrackStatus::TrackedOutOfBound);
        assert!(held.rect()[0] > 0.75, "held box left {}", held.rect()[0]);
        // Re-acquired as the object enters again, and on it once it is back in view.
        for f in 24..=30 {
            let s = b.state_at(f).unwrap();
            assert_eq!(s.track_status, TrackStatus::Tracked, "frame {f}");
            let iou = out_and_back_iou(&b, f, tops);
            assert!(iou > 0.85, "frame {f}: IoU {iou}");
        }
        let s = b.state_at(30).unwrap();
        assert!((s.dx + 0.04).abs() < 0.01, "dx {}", s.dx);
        // Without re-acquisition the returning features drag the box along from where it
        // was held, which is off the object's entry position.
        let dragged = track_out_and_back(false, tops);
        let iou = out_and_back_iou(&dragged, 30, tops);
        assert!(iou < 0.8, "IoU without re-acquisition {iou}");
    }

    #[test]
    fn box_is_reacquired_on_an_object_coming_back_through_a_corner() {
        // The object leaves along the top edge and comes back 0.08 higher, partly above
        // the frame: the box's bottom is aligned with the features, not centred on them.
        let tops = (0.0, -0.08);
        let b = track_out_and_back(true, tops);
        for f in 24..=30 {
            let iou = out_and_back_iou(&b, f, tops);
            assert!(iou > 0.85, "frame {f}: IoU {iou}");
        }
    }

    #[test]
    fn box_held_at_the_edge_ignores_features_moving_out_of_the_frame() {
        // A second object crosses the held box's part in view moving out of the frame: the
        // box stays held (out of bound, confidence 0).
        let mut b = start(
            [0.5, 0.3 / 0.75, 0.7, 0.5 / 0.75],
            &moving_right_frame(0, 0.04),
        );
        for f in 0..20 {
            assert!(b.track_step(f, &moving_right_frame(f, 0.04), true));
        }
        let before = b.state_at(20).unwrap().clone();
        assert_eq!(before.track_status, TrackStatus::TrackedOutOfBound);
        for f in 20..26 {
            // The second object: [0.7, 0.9] x [0.3, 0.5] at frame 20, moving right.
            let off = 0.03 * (f - 20) as f32;
            let frame = grid_frame(true, Homography::IDENTITY, |x, y| {
                let ox = x - off;
                if (0.7..0.9).contains(&ox) && (0.3..0.5).contains(&y) {
                    Some(([0.03, 0.0], 50_000 + id_of(ox, y)))
                } else {
                    Some(([0.0, 0.0], id_of(x, y)))
                }
            });
            assert!(b.track_step(f, &frame, true), "step {f}");
            let s = b.state_at(f + 1).unwrap();
            assert_eq!(s.track_status, TrackStatus::TrackedOutOfBound, "frame {f}");
            assert_eq!(s.tracking_confidence, 0.0);
            assert!(
                (s.pos_x - before.pos_x).abs() < 1e-3,
                "frame {f}: {}",
                s.pos_x
            );
        }
    }

    #[test]
    fn backward_tracking_uses_data_as_is_and_forward_inverts() {
        // Camera motion in the data of frame f: f -> f-1 translation (-0.01, 0).
        let h = Homography::from(crate::tracking::TranslationModel { dx: -0.01, dy: 0.0 });
        let data = grid_frame(true, h, |x, y| Some(([0.0, 0.0], id_of(x, y))));
        let fwd = data.inverted();
        assert!((fwd.background_model.h02 - 0.01).abs() < 1e-6);
        assert!(fwd
            .vectors
            .iter()
            .all(|v| (v.background[0] - 0.01).abs() < 1e-6));
        let mut b = start([0.4, 0.4, 0.6, 0.6], &data);
        b.reset_at_frame(5, b.state_at(0).unwrap().clone());
        assert!(b.track_step(5, &data, false));
        assert!(b.track_step(4, &data, false));
        assert_eq!(b.frames(), Some((3, 5)));
        let (cx, _) = b.state_at(3).unwrap().center();
        assert!((cx - 0.48).abs() < 1e-3, "cx {cx}");
    }

    #[test]
    fn homography_inverse() {
        let h = Homography {
            h00: 1.1,
            h01: 0.05,
            h02: 3.0,
            h10: -0.02,
            h11: 0.95,
            h12: -2.0,
            h20: 1e-4,
            h21: -2e-4,
        };
        let inv = invert_homography(&h).unwrap();
        let (x, y) = h.map(10.0, 20.0);
        let (bx, by) = inv.map(x, y);
        assert!((bx - 10.0).abs() < 1e-3 && (by - 20.0).abs() < 1e-3);
        let zero = Homography::from_array([0.0; 8]);
        assert!(invert_homography(&zero).is_none());
    }

    #[test]
    fn bad_states_do_not_panic() {
        let frame = grid_frame(true, Homography::IDENTITY, |x, y| {
            Some(([0.0, 0.0], id_of(x, y)))
        });
        let mut s = MotionBoxState::from_rect(f32::NAN, 0.1, 0.2, 0.3, 0.0);
        initialize_inliers(&mut s, &frame);
        let out = track_step(&s, &[], &frame, true, &TrackStepOptions::default());
        assert_eq!(out.track_status, TrackStatus::Untracked);
        let mut b = MotionBox::new(TrackStepOptions::default());
        assert!(!b.track_step(3, &frame, true));
        b.reset_at_frame(0, MotionBoxState::from_rect(0.0, 0.0, 0.0, 0.0, 0.0));
        assert!(!b.track_step(0, &frame, true));
    }
}
