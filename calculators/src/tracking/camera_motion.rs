//! Global camera motion: models, the `CameraMotion` packet type and the IRLS estimation
//! cascade (translation -> linear similarity -> homography) with RANSAC initialisation,
//! stability checks and fallback to the lower-DOF model.
//!
//! All models map a point of the **current** frame to its match in the **previous** frame,
//! in nominal pixels (the direction of the region flow).

use nalgebra::{SMatrix, SVector, Vector4};
use serde::{Deserialize, Serialize};

use super::region_flow::RegionFlowFeature;
use super::SplitMix64;

/// Translation `x' = x + (dx, dy)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TranslationModel {
    /// x shift.
    pub dx: f32,
    /// y shift.
    pub dy: f32,
}

/// Linear similarity `x' = [a -b; b a] x + (dx, dy)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearSimilarityModel {
    /// x shift.
    pub dx: f32,
    /// y shift.
    pub dy: f32,
    /// scale * cos(angle).
    pub a: f32,
    /// scale * sin(angle).
    pub b: f32,
}

impl Default for LinearSimilarityModel {
    fn default() -> Self {
        LinearSimilarityModel {
            dx: 0.0,
            dy: 0.0,
            a: 1.0,
            b: 0.0,
        }
    }
}

impl From<TranslationModel> for LinearSimilarityModel {
    fn from(t: TranslationModel) -> Self {
        LinearSimilarityModel {
            dx: t.dx,
            dy: t.dy,
            a: 1.0,
            b: 0.0,
        }
    }
}

/// Homography with `h22 = 1`: `x' = (h00 x + h01 y + h02) / (h20 x + h21 y + 1)`, ...
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Homography {
    pub h00: f32,
    pub h01: f32,
    pub h02: f32,
    pub h10: f32,
    pub h11: f32,
    pub h12: f32,
    pub h20: f32,
    pub h21: f32,
}

impl Default for Homography {
    fn default() -> Self {
        Homography::IDENTITY
    }
}

impl From<LinearSimilarityModel> for Homography {
    fn from(s: LinearSimilarityModel) -> Self {
        Homography {
            h00: s.a,
            h01: -s.b,
            h02: s.dx,
            h10: s.b,
            h11: s.a,
            h12: s.dy,
            h20: 0.0,
            h21: 0.0,
        }
    }
}

impl From<TranslationModel> for Homography {
    fn from(t: TranslationModel) -> Self {
        Homography::from(LinearSimilarityModel::from(t))
    }
}

impl Homography {
    /// The identity.
    pub const IDENTITY: Homography = Homography {
        h00: 1.0,
        h01: 0.0,
        h02: 0.0,
        h10: 0.0,
        h11: 1.0,
        h12: 0.0,
        h20: 0.0,
        h21: 0.0,
    };

    /// The 8 free entries, row major (h00 ... h21).
    pub fn to_array(&self) -> [f32; 8] {
        [
            self.h00, self.h01, self.h02, self.h10, self.h11, self.h12, self.h20, self.h21,
        ]
    }

    /// From the 8 free entries, row major.
    pub fn from_array(h: [f32; 8]) -> Homography {
        Homography {
            h00: h[0],
            h01: h[1],
            h02: h[2],
            h10: h[3],
            h11: h[4],
            h12: h[5],
            h20: h[6],
            h21: h[7],
        }
    }

    /// Maps a point (returns the input if the point maps to infinity).
    pub fn map(&self, x: f32, y: f32) -> (f32, f32) {
        let (x64, y64) = (f64::from(x), f64::from(y));
        let h = self.to_array().map(f64::from);
        let w = h[6] * x64 + h[7] * y64 + 1.0;
        if w.abs() < 1e-12 {
            return (x, y);
        }
        (
            ((h[0] * x64 + h[1] * y64 + h[2]) / w) as f32,
            ((h[3] * x64 + h[4] * y64 + h[5]) / w) as f32,
        )
    }

    /// `S H S^-1` with `S = diag(sx, sy, 1)`: the same motion in coordinates scaled by
    /// (sx, sy).
    pub fn scaled(&self, sx: f32, sy: f32) -> Homography {
        Homography {
            h00: self.h00,
            h01: self.h01 * sx / sy,
            h02: self.h02 * sx,
            h10: self.h10 * sy / sx,
            h11: self.h11,
            h12: self.h12 * sy,
            h20: self.h20 / sx,
            h21: self.h21 / sy,
        }
    }
}

/// Quality of a frame's camera motion, best first. The models of a fallback type hold the
/// best stable lower-DOF model in all higher fields.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CameraMotionType {
    /// All estimated models are stable.
    #[default]
    Valid,
    /// Mixture homographies unstable (not produced: mixtures are off).
    UnstableHomog,
    /// The homography failed; the similarity is used.
    UnstableSim,
    /// The similarity failed; the translation is used.
    Unstable,
    /// Even the translation failed; identity.
    Invalid,
}

impl CameraMotionType {
    /// All types, best first.
    pub const ALL: [CameraMotionType; 5] = [
        CameraMotionType::Valid,
        CameraMotionType::UnstableHomog,
        CameraMotionType::UnstableSim,
        CameraMotionType::Unstable,
        CameraMotionType::Invalid,
    ];

    /// The reference's name.
    pub fn name(self) -> &'static str {
        match self {
            CameraMotionType::Valid => "VALID",
            CameraMotionType::UnstableHomog => "UNSTABLE_HOMOG",
            CameraMotionType::UnstableSim => "UNSTABLE_SIM",
            CameraMotionType::Unstable => "UNSTABLE",
            CameraMotionType::Invalid => "INVALID",
        }
    }
}

/// `CameraMotion.flags`: the frame is a duplicate of the previous one.
pub const CAMERA_FLAG_DUPLICATED: u32 = 4;

/// The camera motion of one frame (current -> previous, nominal px).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CameraMotion {
    /// Translation model.
    pub translation: TranslationModel,
    /// Linear similarity model (the translation if the similarity was unstable).
    pub linear_similarity: LinearSimilarityModel,
    /// Homography (the best stable model).
    pub homography: Homography,
    /// Which models are stable.
    #[serde(rename = "type")]
    pub motion_type: CameraMotionType,
    /// Mean flow magnitude between the 10th and 90th percentile (nominal px).
    pub average_magnitude: f32,
    /// Weighted variance of the flow around the translation (in units of the diagonal).
    pub translation_variance: f32,
    /// Share of features within 2 px of the similarity.
    pub similarity_inlier_ratio: f32,
    /// Share of features within 0.5 px of the similarity.
    pub similarity_strict_inlier_ratio: f32,
    /// Mean error (px) of the homography over its inliers.
    pub average_homography_error: f32,
    /// Share of the frame covered by homography inliers.
    pub homography_inlier_coverage: f32,
    /// Nominal frame width.
    pub frame_width: i32,
    /// Nominal frame height.
    pub frame_height: i32,
    /// The frame's timestamp.
    pub timestamp_usec: i64,
    /// The frame the models point to (-1: previous).
    pub match_frame: i32,
    /// `CAMERA_FLAG_*` bits.
    pub flags: u32,
}

mediagraph_framework::register_packet_type!(CameraMotion, "CameraMotion");

/// Options of the estimation (reference defaults under the CAMERA_MOBILE policy).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CameraMotionOptions {
    /// IRLS iterations per model.
    pub irls_rounds: u32,
    /// Residual of this fraction of the average motion keeps weight about 1.
    pub irls_motion_magnitude_fraction: f32,
    /// Minimum normalized error in the residual scale.
    pub irls_min_error: f32,
    /// Prior blending goes from 1 down to this over the iterations.
    pub irls_prior_scale: f32,
    /// Residuals are measured in a domain capped at 640x360 (landscape).
    pub domain_limited_irls_scaling: bool,
    /// RANSAC rounds initialising the translation and similarity weights (0: off).
    pub ransac_rounds: u32,
    /// RANSAC inlier cutoff (normalized units, divided by the residual scale).
    pub ransac_cutoff: f32,
    /// Weight features by 1/sqrt(local density).
    pub feature_density_normalization: bool,
    /// Estimate the similarity.
    pub estimate_similarity: bool,
    /// Estimate the homography.
    pub estimate_homography: bool,
    /// Translation stdev limit (fraction of the diagonal).
    pub max_translation_stdev: f32,
    /// Above this translation (fraction of the diagonal) ...
    pub large_translation: f32,
    /// ... the stdev must be below this.
    pub large_translation_max_stdev: f32,
    /// Similarity scale lower bound.
    pub min_scale: f32,
    /// Similarity scale upper bound.
    pub max_scale: f32,
    /// Similarity / homography rotation bound.
    pub max_rotation: f32,
    /// Minimum similarity inliers.
    pub min_similarity_inliers: u32,
    /// Minimum similarity inlier fraction.
    pub min_similarity_inlier_fraction: f32,
    /// Inlier residual threshold (px): weight >= 1 / threshold.
    pub inlier_threshold: f32,
    /// Homography perspective bound (pixel units).
    pub max_perspective: f32,
    /// Homography fails if the mean error exceeds this (px) ...
    pub max_homography_error: f32,
    /// ... and the coverage is at most this.
    pub min_homography_coverage: f32,
    /// Features must agree with the similarity within this fraction of the diagonal to
    /// take part in the homography.
    pub lin_sim_inlier_threshold: f32,
    /// Frames without features are VALID identities.
    pub label_empty_frames_as_valid: bool,
    /// RANSAC seed (re-seeded every frame).
    pub seed: u64,
}

impl Default for CameraMotionOptions {
    fn default() -> Self {
        CameraMotionOptions {
            irls_rounds: 10,
            irls_motion_magnitude_fraction: 0.08,
            irls_min_error: 1.25e-3,
            irls_prior_scale: 0.2,
            domain_limited_irls_scaling: true,
            ransac_rounds: 50,
            ransac_cutoff: 0.003,
            feature_density_normalization: true,
            estimate_similarity: true,
            estimate_homography: true,
            max_translation_stdev: 0.065,
            large_translation: 0.15,
            large_translation_max_stdev: 0.01,
            min_scale: 0.8,
            max_scale: 1.25,
            max_rotation: 0.25,
            min_similarity_inliers: 30,
            min_similarity_inlier_fraction: 0.15,
            inlier_threshold: 2.0,
            max_perspective: 4e-4,
            max_homography_error: 0.1,
            min_homography_coverage: 0.3,
            lin_sim_inlier_threshold: 0.003,
            label_empty_frames_as_valid: true,
            seed: 900913,
        }
    }
}

/// Weight given to features excluded from a model.
const OUTLIER_WEIGHT: f64 = 1e-10;

/// A feature in normalized coordinates: p in the current frame, q its match.
#[derive(Clone, Copy)]
struct Point {
    px: f64,
    py: f64,
    qx: f64,
    qy: f64,
}

impl Point {
    fn fx(&self) -> f64 {
        self.qx - self.px
    }
    fn fy(&self) -> f64 {
        self.qy - self.py
    }
}

/// The estimation's per-frame context.
struct Frame<'a> {
    pts: Vec<Point>,
    /// Density normalization (mean 1), or all ones.
    density: Vec<f64>,
    /// Residual scale s.
    scale: f64,
    /// Normalized -> residual pixel domain.
    px: f64,
    /// Diagonal (nominal px).
    diag: f64,
    width: f64,
    height: f64,
    options: &'a CameraMotionOptions,
}

impl Frame<'_> {
    /// The IRLS update: `numerator / (|r| s + 1e-4)` with |r| in the residual px domain.
    fn weight(&self, residual_n: f64, prior: f64, alpha: f64) -> f64 {
        (prior * alpha + (1.0 - alpha)) / (residual_n * self.px * self.scale + 1e-4)
    }

    /// Prior blending factor of IRLS iteration `k`.
    fn alpha(&self, k: u32, full_prior: bool) -> f64 {
        let rounds = self.options.irls_rounds.max(1);
        if k + 1 >= rounds {
            0.0
        } else if full_prior || rounds <= 2 {
            1.0
        } else {
            let t = f64::from(k) / f64::from(rounds - 2);
            1.0 + (f64::from(self.options.irls_prior_scale) - 1.0) * t
        }
    }
}

fn density_weights(pts: &[Point], width: f64, height: f64) -> Vec<f64> {
    const G: usize = 10;
    let mut grid = [0.0f64; G * G];
    let cell = |p: &Point| {
        let gx = (p.px / width * (G - 1) as f64).clamp(0.0, (G - 1) as f64);
        let gy = (p.py / height * (G - 1) as f64).clamp(0.0, (G - 1) as f64);
        // gx, gy are clamped to [0, G - 1] (or NaN): the cast truncates like floor.
        let (x0, y0) = ((gx as usize).min(G - 2), (gy as usize).min(G - 2));
        (x0, y0, gx - x0 as f64, gy - y0 as f64)
    };
    for p in pts {
        let (x0, y0, fx, fy) = cell(p);
        grid[y0 * G + x0] += (1.0 - fx) * (1.0 - fy);
        grid[y0 * G + x0 + 1] += fx * (1.0 - fy);
        grid[(y0 + 1) * G + x0] += (1.0 - fx) * fy;
        grid[(y0 + 1) * G + x0 + 1] += fx * fy;
    }
    let mut w: Vec<f64> = pts
        .iter()
        .map(|p| {
            let (x0, y0, fx, fy) = cell(p);
            let d = grid[y0 * G + x0] * (1.0 - fx) * (1.0 - fy)
                + grid[y0 * G + x0 + 1] * fx * (1.0 - fy)
                + grid[(y0 + 1) * G + x0] * (1.0 - fx) * fy
                + grid[(y0 + 1) * G + x0 + 1] * fx * fy;
            1.0 / d.max(1e-3).sqrt()
        })
        .collect();
    let mean = w.iter().sum::<f64>() / w.len().max(1) as f64;
    if mean > 0.0 {
        w.iter_mut().for_each(|v| *v /= mean);
    }
    w
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mid = values.len() / 2;
    let (_, m, _) = values.select_nth_unstable_by(mid, |a, b| a.total_cmp(b));
    *m
}

/// Turns RANSAC inliers into prior weights: outliers 1e-10, inliers at least the median
/// inlier weight.
fn prior_from_inliers(density: &[f64], inliers: &[bool]) -> Vec<f64> {
    let mut inlier_weights: Vec<f64> = density
        .iter()
        .zip(inliers)
        .filter(|(_, &i)| i)
        .map(|(&w, _)| w)
        .collect();
    let med = median(&mut inlier_weights);
    density
        .iter()
        .zip(inliers)
        .map(|(&w, &i)| if i { w.max(med) } else { OUTLIER_WEIGHT })
        .collect()
}

/// Generic RANSAC over `rounds` hypotheses; `residual_sq(h, point)` is the squared residual
/// in normalized units (RANSAC only compares it with the cutoff, so no square root).
fn ransac<H>(
    frame: &Frame,
    rng: &mut SplitMix64,
    mut hypothesis: impl FnMut(&mut SplitMix64) -> Option<H>,
    residual_sq: impl Fn(&H, &Point) -> f64,
) -> Option<Vec<bool>> {
    let cutoff = f64::from(frame.options.ransac_cutoff) / frame.scale;
    let cutoff_sq = cutoff * cutoff;
    let mut best_score = 0.0;
    let mut best: Option<H> = None;
    for _ in 0..frame.options.ransac_rounds {
        let Some(h) = hypothesis(rng) else { continue };
        // Adding 0.0 for outliers instead of branching gives the same sum: the weights are
        // positive, so the running sum is never -0.0.
        let score: f64 = frame
            .pts
            .iter()
            .zip(&frame.density)
            .map(|(p, &w)| {
                if residual_sq(&h, p) < cutoff_sq {
                    w
                } else {
                    0.0
                }
            })
            .sum();
        if score > best_score {
            best_score = score;
            best = Some(h);
        }
    }
    let h = best?;
    Some(
        frame
            .pts
            .iter()
            .map(|p| residual_sq(&h, p) < cutoff_sq)
            .collect(),
    )
}

/// Squared length of (dx, dy). The residuals below run hundreds of thousands of times per
/// frame; `f64::hypot`'s overflow-safe library call costs several times `sqrt(x² + y²)`, and
/// normalized coordinates cannot overflow.
fn norm_sq(dx: f64, dy: f64) -> f64 {
    dx * dx + dy * dy
}

fn translation_residual_sq(t: &(f64, f64), p: &Point) -> f64 {
    norm_sq(p.fx() - t.0, p.fy() - t.1)
}

fn translation_residual(t: &(f64, f64), p: &Point) -> f64 {
    translation_residual_sq(t, p).sqrt()
}

/// Similarity as (dx, dy, a, b).
fn similarity_residual_sq(s: &Vector4<f64>, p: &Point) -> f64 {
    let mx = s[2] * p.px - s[3] * p.py + s[0];
    let my = s[3] * p.px + s[2] * p.py + s[1];
    norm_sq(mx - p.qx, my - p.qy)
}

fn similarity_residual(s: &Vector4<f64>, p: &Point) -> f64 {
    similarity_residual_sq(s, p).sqrt()
}

fn homography_apply(h: &SVector<f64, 8>, x: f64, y: f64) -> (f64, f64, f64) {
    (
        h[0] * x + h[1] * y + h[2],
        h[3] * x + h[4] * y + h[5],
        h[6] * x + h[7] * y + 1.0,
    )
}

/// Algebraic residual: the first two components of (H p) x (q, 1).
fn homography_algebraic_residual(h: &SVector<f64, 8>, p: &Point) -> f64 {
    let (a, b, c) = homography_apply(h, p.px, p.py);
    norm_sq(b - c * p.qy, c * p.qx - a).sqrt()
}

fn homography_geometric_residual(h: &SVector<f64, 8>, p: &Point) -> f64 {
    let (a, b, c) = homography_apply(h, p.px, p.py);
    if c.abs() < 1e-12 {
        return f64::INFINITY;
    }
    norm_sq(a / c - p.qx, b / c - p.qy).sqrt()
}

struct Translation {
    t: (f64, f64),
    weights: Vec<f64>,
    variance: f64,
}

fn estimate_translation(frame: &Frame, rng: &mut SplitMix64) -> Translation {
    let n = frame.pts.len();
    let (prior, full_prior) = if frame.options.ransac_rounds > 0 {
        let inliers = ransac(
            frame,
            rng,
            |rng| {
                let p = &frame.pts[rng.below(n)];
                Some((p.fx(), p.fy()))
            },
            translation_residual_sq,
        );
        match inliers {
            Some(inl) => (prior_from_inliers(&frame.density, &inl), true),
            None => (frame.density.clone(), false),
        }
    } else {
        (frame.density.clone(), false)
    };
    let mut w = prior.clone();
    let mut t = (0.0, 0.0);
    for k in 0..frame.options.irls_rounds.max(1) {
        let (mut sx, mut sy, mut sw) = (0.0, 0.0, 0.0);
        for (p, &wi) in frame.pts.iter().zip(&w) {
            sx += wi * p.fx();
            sy += wi * p.fy();
            sw += wi;
        }
        if sw <= 0.0 {
            break;
        }
        t = (sx / sw, sy / sw);
        let alpha = frame.alpha(k, full_prior);
        for ((p, wi), &pr) in frame.pts.iter().zip(w.iter_mut()).zip(&prior) {
            *wi = frame.weight(translation_residual(&t, p), pr, alpha);
        }
    }
    let (mut var, mut sw) = (0.0, 0.0);
    for (p, &wi) in frame.pts.iter().zip(&w) {
        let r = translation_residual(&t, p);
        var += wi * r * r;
        sw += wi;
    }
    let variance = if sw > 0.0 { var / sw } else { f64::INFINITY };
    Translation {
        t,
        weights: w,
        variance,
    }
}

/// Weighted normal equations `AᵀA x = Aᵀb` of a least-squares fit with two rows per point.
/// Accumulates entry by entry with the same operations as `ata += w (r1 r1ᵀ + r2 r2ᵀ)`,
/// `atb += w (r1 u + r2 v)` on nalgebra matrices, but only the upper triangle of the
/// symmetric `AᵀA` (the lower one would hold the same values bit for bit) and without
/// temporaries.
struct Normal<const N: usize> {
    ata: [[f64; N]; N],
    atb: [f64; N],
}

impl<const N: usize> Default for Normal<N> {
    fn default() -> Self {
        Normal {
            ata: [[0.0; N]; N],
            atb: [0.0; N],
        }
    }
}

impl<const N: usize> Normal<N> {
    /// Adds the rows `r1` (target `u`) and `r2` (target `v`) with weight `w`.
    fn add(&mut self, w: f64, r1: &[f64; N], r2: &[f64; N], u: f64, v: f64) {
        for i in 0..N {
            for j in i..N {
                self.ata[i][j] += w * (r1[i] * r1[j] + r2[i] * r2[j]);
            }
            self.atb[i] += w * (r1[i] * u + r2[i] * v);
        }
    }

    /// `AᵀA` (the upper triangle mirrored) and `Aᵀb`.
    fn matrices(&self) -> (SMatrix<f64, N, N>, SVector<f64, N>) {
        let ata = SMatrix::from_fn(|i, j| self.ata[i.min(j)][i.max(j)]);
        (ata, SVector::from(self.atb))
    }
}

impl Normal<8> {
    /// [`Normal::add`] for the homography rows `r1 = (x, y, 1, 0, 0, 0, -ux, -uy)` (target
    /// `u`), `r2 = (0, 0, 0, x, y, 1, -vx, -vy)` (target `v`), skipping the products with
    /// their structural zeros. With finite entries and weight this changes nothing: a
    /// skipped product is ±0, adding ±0 to a non-zero value leaves it as is, and an
    /// increment of ±0 leaves an accumulator as is (accumulators start at +0 and never
    /// become -0). Otherwise (0 · ∞ is NaN) the full update runs.
    fn add_homography_rows(&mut self, w: f64, r1: &[f64; 8], r2: &[f64; 8], u: f64, v: f64) {
        let finite = [w, r1[0], r1[1], r1[6], r1[7], r2[6], r2[7]]
            .iter()
            .fold(true, |ok, x| ok & x.is_finite());
        if !finite {
            return self.add(w, r1, r2, u, v);
        }
        let (ata, atb) = (&mut self.ata, &mut self.atb);
        for i in 0..3 {
            for j in i..3 {
                ata[i][j] += w * (r1[i] * r1[j]);
            }
            for j in 6..8 {
                ata[i][j] += w * (r1[i] * r1[j]);
            }
            atb[i] += w * (r1[i] * u);
        }
        for i in 3..6 {
            for j in i..8 {
                ata[i][j] += w * (r2[i] * r2[j]);
            }
            atb[i] += w * (r2[i] * v);
        }
        for i in 6..8 {
            for j in i..8 {
                ata[i][j] += w * (r1[i] * r1[j] + r2[i] * r2[j]);
            }
            atb[i] += w * (r1[i] * u + r2[i] * v);
        }
    }
}

fn solve_similarity(pts: &[Point], w: &[f64]) -> Option<Vector4<f64>> {
    let mut normal = Normal::<4>::default();
    for (p, &wi) in pts.iter().zip(w) {
        if wi <= 0.0 {
            continue;
        }
        let r1 = [1.0, 0.0, p.px, -p.py];
        let r2 = [0.0, 1.0, p.py, p.px];
        normal.add(wi, &r1, &r2, p.qx, p.qy);
    }
    let (ata, atb) = normal.matrices();
    let sol = ata
        .cholesky()
        .map(|c| c.solve(&atb))
        .or_else(|| ata.lu().solve(&atb))?;
    sol.iter().all(|v| v.is_finite()).then_some(sol)
}

struct Similarity {
    s: Vector4<f64>,
    weights: Vec<f64>,
}

fn estimate_similarity(frame: &Frame, rng: &mut SplitMix64) -> Option<Similarity> {
    let n = frame.pts.len();
    if n < 2 {
        return None;
    }
    let (prior, full_prior) = match (frame.options.ransac_rounds > 0)
        .then(|| {
            ransac(
                frame,
                rng,
                |rng| {
                    let (i, j) = (rng.below(n), rng.below(n));
                    let (p1, p2) = (&frame.pts[i], &frame.pts[j]);
                    // z' = c z + t with complex c = a + ib.
                    let (dpx, dpy) = (p1.px - p2.px, p1.py - p2.py);
                    let (dqx, dqy) = (p1.qx - p2.qx, p1.qy - p2.qy);
                    let den = dpx * dpx + dpy * dpy;
                    if den < 1e-8 {
                        return None;
                    }
                    let a = (dqx * dpx + dqy * dpy) / den;
                    let b = (dqy * dpx - dqx * dpy) / den;
                    let tx = p1.qx - (a * p1.px - b * p1.py);
                    let ty = p1.qy - (b * p1.px + a * p1.py);
                    Some(Vector4::new(tx, ty, a, b))
                },
                similarity_residual_sq,
            )
        })
        .flatten()
    {
        Some(inl) => (prior_from_inliers(&frame.density, &inl), true),
        None => (frame.density.clone(), false),
    };
    let mut w = prior.clone();
    let mut s = None;
    for k in 0..frame.options.irls_rounds.max(1) {
        let Some(sol) = solve_similarity(&frame.pts, &w) else {
            break;
        };
        let alpha = frame.alpha(k, full_prior);
        for ((p, wi), &pr) in frame.pts.iter().zip(w.iter_mut()).zip(&prior) {
            *wi = frame.weight(similarity_residual(&sol, p), pr, alpha);
        }
        s = Some(sol);
    }
    s.map(|s| Similarity { s, weights: w })
}

fn solve_homography(pts: &[Point], w: &[f64]) -> Option<SVector<f64, 8>> {
    let mut normal = Normal::<8>::default();
    for (p, &wi) in pts.iter().zip(w) {
        if wi <= 0.0 {
            continue;
        }
        let (x, y, u, v) = (p.px, p.py, p.qx, p.qy);
        let r1 = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y];
        let r2 = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y];
        normal.add_homography_rows(wi, &r1, &r2, u, v);
    }
    let (ata, atb) = normal.matrices();
    let sol = ata
        .cholesky()
        .map(|c| c.solve(&atb))
        .or_else(|| ata.lu().solve(&atb))?;
    sol.iter().all(|v| v.is_finite()).then_some(sol)
}

struct HomographyFit {
    h: SVector<f64, 8>,
    weights: Vec<f64>,
}

fn estimate_homography(frame: &Frame, sim: &Vector4<f64>) -> Option<HomographyFit> {
    let sim_thresh = f64::from(frame.options.lin_sim_inlier_threshold);
    let (cx, cy) = (frame.width / 2.0, frame.height / 2.0);
    let (sx, sy) = (0.3 * frame.width, 0.3 * frame.height);
    let prior: Vec<f64> = frame
        .pts
        .iter()
        .zip(&frame.density)
        .map(|(p, &d)| {
            if similarity_residual(sim, p) >= sim_thresh {
                return OUTLIER_WEIGHT;
            }
            // Points are normalized by the diagonal; the frame centre is (cx, cy) / diag.
            let ex = (p.px * frame.diag - cx) / sx;
            let ey = (p.py * frame.diag - cy) / sy;
            (1.0 - 0.5 * (-0.5 * (ex * ex + ey * ey)).exp()) * d
        })
        .collect();
    if prior.iter().filter(|&&w| w > OUTLIER_WEIGHT).count() < 9 {
        return None;
    }
    let mut w = prior.clone();
    let mut h = None;
    for k in 0..frame.options.irls_rounds.max(1) {
        let Some(sol) = solve_homography(&frame.pts, &w) else {
            break;
        };
        let alpha = frame.alpha(k, false);
        for ((p, wi), &pr) in frame.pts.iter().zip(w.iter_mut()).zip(&prior) {
            *wi = frame.weight(homography_algebraic_residual(&sol, p), pr, alpha);
        }
        h = Some(sol);
    }
    h.map(|h| HomographyFit { h, weights: w })
}

/// Share of the frame covered by inliers: 10x10 grids (3x3 shifted copies), a logistic of
/// each cell's median weight against `threshold`, Gaussian cell weights around the centre.
fn inlier_coverage(frame: &Frame, weights: &[f64], threshold: f64) -> f64 {
    const G: usize = 10;
    const SHIFTS: usize = 3;
    const CELLS: usize = (G + 1) * (G + 1);
    // Per shifted grid: each point's cell, then the weights sorted by cell (stable counting
    // sort, cell c at `start[c]..start[c + 1]`).
    let mut cell_of = vec![0usize; frame.pts.len()];
    let mut sorted = vec![0.0f64; frame.pts.len()];
    let steep = 9f64.ln() / (0.2 * threshold);
    let mut total = 0.0;
    for sy in 0..SHIFTS {
        for sx in 0..SHIFTS {
            let ox = sx as f64 / SHIFTS as f64;
            let oy = sy as f64 / SHIFTS as f64;
            let mut start = [0usize; CELLS + 1];
            for (p, c) in frame.pts.iter().zip(&mut cell_of) {
                // The saturating cast equals `floor() as usize` for every input.
                let gx = ((p.px * frame.diag / frame.width * G as f64 + ox) as usize).min(G);
                let gy = ((p.py * frame.diag / frame.height * G as f64 + oy) as usize).min(G);
                *c = gy * (G + 1) + gx;
                start[*c + 1] += 1;
            }
            for c in 0..CELLS {
                start[c + 1] += start[c];
            }
            let mut fill = start;
            for (&c, &w) in cell_of.iter().zip(weights) {
                sorted[fill[c]] = w;
                fill[c] += 1;
            }
            let (mut num, mut den) = (0.0, 0.0);
            for gy in 0..=G {
                for gx in 0..=G {
                    let ccx = (gx as f64 + 0.5 - ox) / G as f64 - 0.5;
                    let ccy = (gy as f64 + 0.5 - oy) / G as f64 - 0.5;
                    let g = (-(ccx * ccx + ccy * ccy) / (2.0 * 0.35 * 0.35)).exp();
                    let c = gy * (G + 1) + gx;
                    let cell = &mut sorted[start[c]..start[c + 1]];
                    let score = if cell.is_empty() {
                        0.0
                    } else {
                        let m = median(cell);
                        1.0 / (1.0 + (-(m - threshold) * steep).exp())
                    };
                    num += g * score;
                    den += g;
                }
            }
            total += num / den;
        }
    }
    total / (SHIFTS * SHIFTS) as f64
}

/// Estimates the camera motion of one frame from its (outlier-filtered) features, in nominal
/// px for a `width` x `height` frame. `unstable` is the feature list's flag (it rules out
/// the similarity). Returns the motion and each feature's refined IRLS weight.
pub fn estimate_camera_motion(
    features: &[RegionFlowFeature],
    width: f32,
    height: f32,
    unstable: bool,
    options: &CameraMotionOptions,
) -> (CameraMotion, Vec<f32>) {
    let mut motion = CameraMotion {
        frame_width: width.round() as i32,
        frame_height: height.round() as i32,
        match_frame: -1,
        ..Default::default()
    };
    let (w64, h64) = (f64::from(width.max(1.0)), f64::from(height.max(1.0)));
    let diag = w64.hypot(h64);
    let pts: Vec<Point> = features
        .iter()
        .map(|f| Point {
            px: f64::from(f.x) / diag,
            py: f64::from(f.y) / diag,
            qx: f64::from(f.x + f.dx) / diag,
            qy: f64::from(f.y + f.dy) / diag,
        })
        .collect();
    let n = pts.len();
    if n == 0 {
        motion.motion_type = if options.label_empty_frames_as_valid {
            CameraMotionType::Valid
        } else {
            CameraMotionType::Invalid
        };
        return (motion, Vec::new());
    }

    // Average magnitude between the 10th and 90th percentile.
    let mut mags: Vec<f64> = pts
        .iter()
        .map(|p| norm_sq(p.fx(), p.fy()).sqrt() * diag)
        .collect();
    // Unstable sorting gives the same sequence: values equal under `total_cmp` have the
    // same bits.
    mags.sort_unstable_by(f64::total_cmp);
    let lo = n / 10;
    let hi = ((n * 9).div_ceil(10)).max(lo + 1).min(n);
    let avg_mag = mags[lo..hi].iter().sum::<f64>() / (hi - lo) as f64;
    motion.average_magnitude = avg_mag as f32;

    let avg_n = avg_mag / diag;
    let scale = if avg_n > 0.0 {
        (f64::from(options.irls_min_error)
            / (f64::from(options.irls_motion_magnitude_fraction) * avg_n))
            .min(1.0)
    } else {
        1.0
    };
    let px = if options.domain_limited_irls_scaling {
        if w64 >= h64 {
            w64.min(640.0).hypot(h64.min(360.0))
        } else {
            w64.min(360.0).hypot(h64.min(640.0))
        }
    } else {
        diag
    };
    let density = if options.feature_density_normalization {
        density_weights(&pts, w64 / diag, h64 / diag)
    } else {
        vec![1.0; n]
    };
    let frame = Frame {
        pts,
        density,
        scale,
        px,
        diag,
        width: w64,
        height: h64,
        options,
    };
    let mut rng = SplitMix64::new(options.seed);

    // Translation.
    let tr = estimate_translation(&frame, &mut rng);
    let t_len = tr.t.0.hypot(tr.t.1);
    let stdev = tr.variance.sqrt();
    motion.translation_variance = tr.variance as f32;
    let translation_ok = n >= 3
        && stdev < f64::from(options.max_translation_stdev)
        && (t_len < f64::from(options.large_translation)
            || stdev < f64::from(options.large_translation_max_stdev));
    if !translation_ok {
        motion.motion_type = CameraMotionType::Invalid;
        return (motion, tr.weights.iter().map(|&w| w as f32).collect());
    }
    let translation = TranslationModel {
        dx: (tr.t.0 * diag) as f32,
        dy: (tr.t.1 * diag) as f32,
    };
    motion.translation = translation;
    motion.linear_similarity = translation.into();
    motion.homography = translation.into();
    motion.motion_type = CameraMotionType::Unstable;
    let mut refined = tr.weights;

    // Similarity.
    let inlier_weight = 1.0 / f64::from(options.inlier_threshold);
    let sim = if options.estimate_similarity && !unstable {
        estimate_similarity(&frame, &mut rng)
    } else {
        None
    };
    let Some(sim) = sim else {
        return (motion, refined.iter().map(|&w| w as f32).collect());
    };
    let inliers = sim.weights.iter().filter(|&&w| w >= inlier_weight).count();
    let strict = sim.weights.iter().filter(|&&w| w >= 2.0).count();
    motion.similarity_inlier_ratio = inliers as f32 / n as f32;
    motion.similarity_strict_inlier_ratio = strict as f32 / n as f32;
    let (a, b) = (sim.s[2], sim.s[3]);
    let sim_ok = a >= f64::from(options.min_scale)
        && a <= f64::from(options.max_scale)
        && b.abs() <= f64::from(options.max_rotation)
        && inliers >= options.min_similarity_inliers as usize
        && inliers as f64 >= f64::from(options.min_similarity_inlier_fraction) * n as f64;
    if !sim_ok {
        return (motion, refined.iter().map(|&w| w as f32).collect());
    }
    let similarity = LinearSimilarityModel {
        dx: (sim.s[0] * diag) as f32,
        dy: (sim.s[1] * diag) as f32,
        a: a as f32,
        b: b as f32,
    };
    motion.linear_similarity = similarity;
    motion.homography = similarity.into();
    motion.motion_type = CameraMotionType::UnstableSim;
    refined = sim.weights;

    // Homography.
    let fit = if options.estimate_homography {
        estimate_homography(&frame, &sim.s)
    } else {
        None
    };
    let Some(fit) = fit else {
        if !options.estimate_homography {
            motion.motion_type = CameraMotionType::Valid;
        }
        return (motion, refined.iter().map(|&w| w as f32).collect());
    };
    let h = &fit.h;
    // Pixel units: S H S^-1 with S = diag(d, d, 1).
    let hp = [
        h[0],
        h[1],
        h[2] * diag,
        h[3],
        h[4],
        h[5] * diag,
        h[6] / diag,
        h[7] / diag,
    ];
    let (mut err_sum, mut err_n) = (0.0, 0usize);
    for (p, &w) in frame.pts.iter().zip(&fit.weights) {
        if w >= inlier_weight {
            err_sum += homography_geometric_residual(h, p) * diag;
            err_n += 1;
        }
    }
    let mean_err = if err_n > 0 {
        err_sum / err_n as f64
    } else {
        f64::INFINITY
    };
    let coverage = inlier_coverage(&frame, &fit.weights, 1.0 / (0.002 * diag));
    motion.average_homography_error = mean_err as f32;
    motion.homography_inlier_coverage = coverage as f32;
    let range = |v: f64| v >= f64::from(options.min_scale) && v <= f64::from(options.max_scale);
    let homog_ok = range(hp[0])
        && range(hp[4])
        && hp[1].abs() <= f64::from(options.max_rotation)
        && hp[3].abs() <= f64::from(options.max_rotation)
        && hp[6].abs() <= f64::from(options.max_perspective)
        && hp[7].abs() <= f64::from(options.max_perspective)
        && hp.iter().all(|v| v.is_finite())
        && !(mean_err > f64::from(options.max_homography_error)
            && coverage <= f64::from(options.min_homography_coverage));
    if homog_ok {
        motion.homography = Homography::from_array(hp.map(|v| v as f32));
        motion.motion_type = CameraMotionType::Valid;
        refined = fit.weights;
    }
    (motion, refined.iter().map(|&w| w as f32).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synthetic(
        model: impl Fn(f32, f32) -> (f32, f32),
        n: usize,
        seed: u64,
    ) -> Vec<RegionFlowFeature> {
        let mut rng = SplitMix64::new(seed);
        (0..n)
            .map(|_| {
                let (x, y) = (rng.unit() * 640.0, rng.unit() * 480.0);
                let (qx, qy) = model(x, y);
                RegionFlowFeature {
                    x,
                    y,
                    dx: qx - x + (rng.unit() - 0.5) * 0.2,
                    dy: qy - y + (rng.unit() - 0.5) * 0.2,
                    ..Default::default()
                }
            })
            .collect()
    }

    #[test]
    fn recovers_models_from_exact_flow() {
        let o = CameraMotionOptions::default();
        let h_true = Homography {
            h00: 1.02,
            h01: 0.01,
            h02: 4.0,
            h10: -0.015,
            h11: 0.99,
            h12: -3.0,
            h20: 2e-5,
            h21: -1e-5,
        };
        let feats = synthetic(|x, y| h_true.map(x, y), 300, 7);
        let (m, w) = estimate_camera_motion(&feats, 640.0, 480.0, false, &o);
        assert_eq!(m.motion_type, CameraMotionType::Valid, "{m:?}");
        let mut sq = 0.0;
        for (x, y) in [(0.0, 0.0), (640.0, 0.0), (320.0, 240.0), (640.0, 480.0)] {
            let (a, b) = m.homography.map(x, y);
            let (c, d) = h_true.map(x, y);
            sq += (a - c).powi(2) + (b - d).powi(2);
        }
        assert!((sq / 4.0).sqrt() < 0.1, "{sq}");
        assert!(w.iter().all(|&w| w > 0.5));
    }

    #[test]
    fn empty_and_degenerate_frames() {
        let o = CameraMotionOptions::default();
        let (m, w) = estimate_camera_motion(&[], 640.0, 480.0, false, &o);
        assert_eq!(m.motion_type, CameraMotionType::Valid);
        assert!(w.is_empty());
        let same = vec![
            RegionFlowFeature {
                x: 10.0,
                y: 10.0,
                dx: 1.0,
                ..Default::default()
            };
            5
        ];
        let (m, _) = estimate_camera_motion(&same, 640.0, 480.0, false, &o);
        assert!(m.motion_type >= CameraMotionType::UnstableSim);
        assert!((m.translation.dx - 1.0).abs() < 1e-3);
        let nan = vec![
            RegionFlowFeature {
                x: f32::NAN,
                ..Default::default()
            };
            40
        ];
        let _ = estimate_camera_motion(&nan, 640.0, 480.0, false, &o);
    }

    #[test]
    fn homography_scaling_round_trip() {
        let h = Homography {
            h00: 1.1,
            h01: 0.1,
            h02: 5.0,
            h10: -0.1,
            h11: 0.9,
            h12: 2.0,
            h20: 1e-4,
            h21: 2e-4,
        };
        let s = h.scaled(0.4, 0.4);
        let (x, y) = h.map(100.0, 50.0);
        let (u, v) = s.map(40.0, 20.0);
        assert!((x * 0.4 - u).abs() < 1e-3 && (y * 0.4 - v).abs() < 1e-3);
    }
}
