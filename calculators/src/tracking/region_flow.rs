//! Region flow: the per-frame feature list (positions in the current frame, flow back to the
//! previous frame) and the block-based outlier rejection that runs before camera motion
//! estimation (translational RANSAC per bin over 18 overlapping multi-scale grids).
//!
//! Everything here is in the nominal frame domain (the analysis size times the downsample
//! factor, 640x480 for a 320x240 input).

use serde::{Deserialize, Serialize};

use super::SplitMix64;

/// The feature's track id changed in this frame (a new track started at an old point).
pub const FLAG_BROKEN_TRACK: u32 = 1;

/// One tracked feature of a [`RegionFlowFeatureList`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RegionFlowFeature {
    /// Position in the current frame (nominal px).
    pub x: f32,
    /// Position in the current frame (nominal px).
    pub y: f32,
    /// Flow to the matching point in the previous frame (nominal px).
    pub dx: f32,
    /// Flow to the matching point in the previous frame (nominal px).
    pub dy: f32,
    /// Long-track id, stable across frames while the point is tracked.
    pub track_id: i32,
    /// The tracker's matching error (mean absolute patch difference).
    pub tracking_error: f32,
    /// Corner strength at extraction, `min(1, response * 1500)`.
    pub corner_response: f32,
    /// Inverse registration error against the camera model (about 1 = 1 px); after
    /// estimation this is the refined weight: high = background, low = moving on its own.
    pub irls_weight: f32,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// Index of the feature in this list when it was built.
    pub feature_id: i32,
}

/// The flow of one frame: features in the current frame with their flow to the previous one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RegionFlowFeatureList {
    /// The features.
    pub features: Vec<RegionFlowFeature>,
    /// Nominal frame width.
    pub frame_width: i32,
    /// Nominal frame height.
    pub frame_height: i32,
    /// Track ids are persistent (always true here).
    pub long_tracks: bool,
    /// Too few features or too little coverage for anything beyond a translation.
    pub unstable: bool,
    /// The frame barely moved (RMS flow below 0.25 px).
    pub is_duplicated: bool,
    /// The frame's timestamp.
    pub timestamp_usec: i64,
    /// The frame the flow points to, relative to this one (-1: the previous frame).
    pub match_frame: i32,
    /// Track ids that were ended on purpose in this frame (aged out or crowded).
    pub actively_discarded_tracked_ids: Vec<i32>,
}

mediagraph_framework::register_packet_type!(RegionFlowFeatureList, "RegionFlowFeatureList");

/// Options of the outlier rejection and the frame flags (reference defaults under the
/// CAMERA_MOBILE policy and the box-tracking graph).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegionFlowOptions {
    /// Flows longer than this fraction of the frame diagonal are rejected.
    pub max_magnitude_threshold_ratio: f32,
    /// Base block size as a fraction of the frame.
    pub fast_estimation_block_size: f32,
    /// Smallest block side (nominal px); sets the number of levels.
    pub fast_estimation_min_block_size: f32,
    /// Shifted copies per axis of each grid (3 -> 9 grids per level).
    pub fast_estimation_overlap_grids: u32,
    /// RANSAC rounds per bin.
    pub ransac_rounds_per_region: u32,
    /// Inlier threshold floor in nominal px.
    pub absolute_inlier_error_threshold: f32,
    /// Inlier threshold as a fraction of the frame diagonal.
    pub frac_inlier_error_threshold: f32,
    /// Inlier threshold as a fraction of the hypothesis' magnitude.
    pub relative_inlier_error_threshold: f32,
    /// Minimum features in a bin and in its inlier set.
    pub min_feature_inliers: u32,
    /// A bin needs at least this fraction of the average features per bin.
    pub min_bin_fraction: f32,
    /// Features closer than this to the border (processing px) at either end are dropped.
    pub distance_from_border: f32,
    /// Fewer features than this flags the frame unstable.
    pub min_features: u32,
    /// Coverage of an 8x8 grid at or below this flags the frame unstable.
    pub min_coverage: f32,
    /// RMS flow below this (nominal px) flags the frame duplicated.
    pub duplicate_rms: f32,
    /// Seed of the per-frame RANSAC generator.
    pub seed: u64,
}

impl Default for RegionFlowOptions {
    fn default() -> Self {
        RegionFlowOptions {
            max_magnitude_threshold_ratio: 0.2,
            fast_estimation_block_size: 0.25,
            fast_estimation_min_block_size: 100.0,
            fast_estimation_overlap_grids: 3,
            ransac_rounds_per_region: 10,
            absolute_inlier_error_threshold: 2.0,
            frac_inlier_error_threshold: 3e-3,
            relative_inlier_error_threshold: 0.1,
            min_feature_inliers: 3,
            min_bin_fraction: 0.2,
            distance_from_border: 3.0,
            min_features: 20,
            min_coverage: 0.15,
            duplicate_rms: 0.25,
            seed: 900913,
        }
    }
}

/// Per-feature outcome of [`determine_inliers`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InlierVotes {
    /// Grids in which the feature was in its bin's dominant motion.
    pub inlier_grids: u16,
    /// Grids in which the feature's bin was eligible.
    pub eligible_grids: u16,
}

impl InlierVotes {
    /// The feature survives when it was an inlier somewhere.
    pub fn survives(&self) -> bool {
        self.inlier_grids > 0
    }

    /// The initial consistency weight `2 (1 + inliers) / eligible`.
    pub fn consistency_weight(&self) -> f32 {
        if self.eligible_grids == 0 {
            0.0
        } else {
            2.0 * (1.0 + f32::from(self.inlier_grids)) / f32::from(self.eligible_grids)
        }
    }
}

/// Votes of every feature of `features` (nominal px, frame `width` x `height`): the local
/// translational RANSAC over the multi-scale overlapping grids. Features over the magnitude
/// limit get no votes.
pub fn determine_inliers(
    features: &[RegionFlowFeature],
    width: f32,
    height: f32,
    options: &RegionFlowOptions,
) -> Vec<InlierVotes> {
    let n = features.len();
    let mut votes = vec![InlierVotes::default(); n];
    if n == 0 || width <= 0.0 || height <= 0.0 {
        return votes;
    }
    let diag = width.hypot(height);
    let max_mag = options.max_magnitude_threshold_ratio * diag;
    let abs_thresh = options
        .absolute_inlier_error_threshold
        .max(options.frac_inlier_error_threshold * diag);
    // The candidates in a flat layout, with each one's squared inlier threshold as a
    // RANSAC hypothesis (computed once instead of once per draw).
    let mut cand = Candidates::default();
    for (i, f) in features.iter().enumerate() {
        let m = f.dx.hypot(f.dy);
        if m.is_finite() && m <= max_mag && f.x.is_finite() && f.y.is_finite() {
            let thresh = abs_thresh.max(options.relative_inlier_error_threshold * m);
            cand.index.push(i as u32);
            cand.x.push(f.x);
            cand.y.push(f.y);
            cand.dx.push(f.dx);
            cand.dy.push(f.dy);
            cand.t2.push(thresh * thresh);
        }
    }
    let nc = cand.index.len();
    if nc == 0 {
        return votes;
    }
    let base_w = (options.fast_estimation_block_size * width).max(1.0);
    let base_h = (options.fast_estimation_block_size * height).max(1.0);
    let min_block = options.fast_estimation_min_block_size.max(1.0);
    let levels = if base_w > min_block {
        (1.0 + (min_block / base_w).ln() / 0.5f32.ln())
            .floor()
            .max(2.0) as u32
    } else {
        2
    }
    .min(6);
    let shifts = options.fast_estimation_overlap_grids.clamp(1, 5);
    let min_inliers = options.min_feature_inliers as usize;
    let mut rng = SplitMix64::new(options.seed);
    // Per grid: each candidate's bin, then a stable counting sort of the candidates by bin
    // (`order`, bin b at `start[b]..start[b + 1]`), the same order as pushing into per-bin
    // lists.
    let mut bin_of: Vec<u32> = vec![0; nc];
    let mut start: Vec<u32> = Vec::new();
    let mut order: Vec<u32> = vec![0; nc];
    let mut fill: Vec<u32> = Vec::new();
    let (mut bdx, mut bdy): (Vec<f32>, Vec<f32>) = (Vec::new(), Vec::new());

    for level in 0..levels {
        let scale = (1u32 << level) as f32;
        let (bw, bh) = (base_w / scale, base_h / scale);
        let nx = (width / bw).ceil() as usize + 1;
        let ny = (height / bh).ceil() as usize + 1;
        for sy in 0..shifts {
            for sx in 0..shifts {
                let ox = bw * sx as f32 / shifts as f32;
                let oy = bh * sy as f32 / shifts as f32;
                start.clear();
                start.resize(nx * ny + 1, 0);
                for ((bin, &x), &y) in bin_of.iter_mut().zip(&cand.x).zip(&cand.y) {
                    // `v as usize` saturates (negative and NaN -> 0), so it equals
                    // `v.floor().max(0.0) as usize` without the libm call.
                    let bx = (((x + ox) / bw) as usize).min(nx - 1);
                    let by = (((y + oy) / bh) as usize).min(ny - 1);
                    let b = by * nx + bx;
                    *bin = b as u32;
                    start[b + 1] += 1;
                }
                let filled = start[1..].iter().filter(|&&c| c > 0).count().max(1);
                for b in 0..nx * ny {
                    start[b + 1] += start[b];
                }
                fill.clear();
                fill.extend_from_slice(&start[..nx * ny]);
                for (k, &b) in bin_of.iter().enumerate() {
                    order[fill[b as usize] as usize] = k as u32;
                    fill[b as usize] += 1;
                }
                let average = nc as f32 / filled as f32;
                let min_count = (options.min_feature_inliers as f32)
                    .max(options.min_bin_fraction * average)
                    .ceil() as usize;
                for b in 0..nx * ny {
                    let bin = &order[start[b] as usize..start[b + 1] as usize];
                    if bin.len() < min_count {
                        continue;
                    }
                    bdx.clear();
                    bdy.clear();
                    for &k in bin {
                        votes[cand.index[k as usize] as usize].eligible_grids += 1;
                        bdx.push(cand.dx[k as usize]);
                        bdy.push(cand.dy[k as usize]);
                    }
                    // The first hypothesis with the most inliers wins; its inlier set is
                    // recomputed once at the end instead of collected every round.
                    let (mut best_count, mut best) = (0usize, 0usize);
                    for _ in 0..options.ransac_rounds_per_region {
                        let h = rng.below(bin.len());
                        let count = count_inliers(&bdx, &bdy, h, cand.t2[bin[h] as usize]);
                        if count > best_count {
                            best_count = count;
                            best = h;
                        }
                    }
                    if best_count >= min_inliers && best_count > 0 {
                        let (hx, hy, t2) = (bdx[best], bdy[best], cand.t2[bin[best] as usize]);
                        for (m, &k) in bin.iter().enumerate() {
                            let (ex, ey) = (bdx[m] - hx, bdy[m] - hy);
                            if ex * ex + ey * ey < t2 {
                                votes[cand.index[k as usize] as usize].inlier_grids += 1;
                            }
                        }
                    }
                }
            }
        }
    }
    votes
}

/// The candidates of [`determine_inliers`] as columns: feature index, position, flow and
/// squared inlier threshold.
#[derive(Default)]
struct Candidates {
    index: Vec<u32>,
    x: Vec<f32>,
    y: Vec<f32>,
    dx: Vec<f32>,
    dy: Vec<f32>,
    t2: Vec<f32>,
}

/// Number of flows `(dx[j], dy[j])` within `sqrt(t2)` of flow `h`.
fn count_inliers(dx: &[f32], dy: &[f32], h: usize, t2: f32) -> usize {
    let (hx, hy) = (dx[h], dy[h]);
    // A branch-free sum of 0/1 (vectorizes, unlike `filter().count()`).
    dx.iter()
        .zip(dy)
        .map(|(&x, &y)| {
            let (ex, ey) = (x - hx, y - hy);
            u32::from(ex * ex + ey * ey < t2)
        })
        .sum::<u32>() as usize
}

/// Whether the feature is at least `distance` (processing px, `scale` nominal px per
/// processing px) inside the frame at both ends of its flow.
pub fn inside_border(
    f: &RegionFlowFeature,
    width: f32,
    height: f32,
    distance: f32,
    scale: f32,
) -> bool {
    let d = distance * scale;
    let ok = |x: f32, y: f32| x >= d && y >= d && x <= width - 1.0 - d && y <= height - 1.0 - d;
    ok(f.x, f.y) && ok(f.x + f.dx, f.y + f.dy)
}

/// Sets the list's `unstable` and `is_duplicated` flags from its features.
pub fn set_frame_flags(list: &mut RegionFlowFeatureList, options: &RegionFlowOptions) {
    let n = list.features.len();
    let (w, h) = (
        list.frame_width.max(1) as f32,
        list.frame_height.max(1) as f32,
    );
    let mut occupied = [false; 64];
    let mut sum_sq = 0.0f64;
    for f in &list.features {
        // The saturating cast equals `floor().max(0.0) as usize` for every input.
        let cx = ((f.x / w * 8.0) as usize).min(7);
        let cy = ((f.y / h * 8.0) as usize).min(7);
        occupied[cy * 8 + cx] = true;
        sum_sq += f64::from(f.dx * f.dx + f.dy * f.dy);
    }
    let coverage = occupied.iter().filter(|&&o| o).count() as f32 / 64.0;
    list.unstable = n < options.min_features as usize || coverage <= options.min_coverage;
    let rms = if n == 0 {
        0.0
    } else {
        (sum_sq / n as f64).sqrt()
    };
    list.is_duplicated = rms < f64::from(options.duplicate_rms);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feature(x: f32, y: f32, dx: f32, dy: f32) -> RegionFlowFeature {
        RegionFlowFeature {
            x,
            y,
            dx,
            dy,
            ..Default::default()
        }
    }

    #[test]
    fn ransac_keeps_small_objects_and_drops_mismatches() {
        let mut rng = SplitMix64::new(1);
        let mut feats = Vec::new();
        // Background moving by (3, -1) over the whole frame.
        for _ in 0..400 {
            let x = rng.unit() * 640.0;
            let y = rng.unit() * 480.0;
            feats.push(feature(x, y, 3.0 + rng.unit() * 0.5, -1.0));
        }
        // A small object (60x60) moving by (-12, 5).
        let object_start = feats.len();
        for _ in 0..25 {
            let x = 300.0 + rng.unit() * 60.0;
            let y = 200.0 + rng.unit() * 60.0;
            feats.push(feature(x, y, -12.0, 5.0));
        }
        // Scattered mismatches.
        let mismatch_start = feats.len();
        for k in 0..10 {
            let x = 30.0 + 60.0 * k as f32;
            let y = 40.0 + 40.0 * k as f32;
            feats.push(feature(
                x,
                y,
                40.0 - 9.0 * k as f32,
                30.0 * (k % 3) as f32 - 30.0,
            ));
        }
        let votes = determine_inliers(&feats, 640.0, 480.0, &RegionFlowOptions::default());
        let bg_kept = votes[..object_start]
            .iter()
            .filter(|v| v.survives())
            .count();
        let obj_kept = votes[object_start..mismatch_start]
            .iter()
            .filter(|v| v.survives())
            .count();
        let bad_kept = votes[mismatch_start..]
            .iter()
            .filter(|v| v.survives())
            .count();
        assert!(bg_kept >= 395, "{bg_kept}");
        assert!(obj_kept >= 23, "{obj_kept}");
        assert!(bad_kept <= 1, "{bad_kept}");
    }

    #[test]
    fn frame_flags() {
        let mut list = RegionFlowFeatureList {
            frame_width: 640,
            frame_height: 480,
            ..Default::default()
        };
        set_frame_flags(&mut list, &RegionFlowOptions::default());
        assert!(list.unstable && list.is_duplicated);
        for i in 0..64 {
            let (x, y) = ((i % 8) as f32 * 80.0 + 5.0, (i / 8) as f32 * 60.0 + 5.0);
            list.features.push(feature(x, y, 1.0, 0.0));
        }
        set_frame_flags(&mut list, &RegionFlowOptions::default());
        assert!(!list.unstable && !list.is_duplicated);
    }

    #[test]
    fn empty_and_nonfinite_input() {
        let o = RegionFlowOptions::default();
        assert!(determine_inliers(&[], 640.0, 480.0, &o).is_empty());
        let v = determine_inliers(&[feature(f32::NAN, 0.0, 1.0, 1.0)], 640.0, 480.0, &o);
        assert!(!v[0].survives());
    }
}
