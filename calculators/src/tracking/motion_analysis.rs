//! The per-frame motion analysis pipeline: track the previous frame's features into the
//! current one (long tracks with persistent ids, acceleration check with forward-backward
//! verification), reject outliers per region, estimate the camera motion, then reuse the
//! surviving features or top them up with new corners.
//!
//! Input frames are analysed at their own size (320x240 in the box-tracking graph); outputs
//! are in the nominal domain, the input size times `downsample_factor` (640x480).

use std::collections::VecDeque;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::camera_motion::{estimate_camera_motion, CameraMotionOptions, CAMERA_FLAG_DUPLICATED};
use super::features::{extract_corners, FeatureOptions, OccupancyMask};
use super::klt::{levels_for_distance, track, KltParams, Pyramid};
use super::region_flow::{
    determine_inliers, inside_border, set_frame_flags, RegionFlowFeature, RegionFlowFeatureList,
    RegionFlowOptions, FLAG_BROKEN_TRACK,
};
use super::{CameraMotion, GrayImage, TrackingError};

/// Options of the pipeline; the defaults are the reference's CAMERA_MOBILE policy with the
/// box-tracking graph's overrides.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MotionAnalysisOptions {
    /// Nominal frame = input size times this.
    pub downsample_factor: f32,
    /// Feature extraction.
    pub features: FeatureOptions,
    /// KLT window radius (processing px).
    pub tracking_window_size: i32,
    /// KLT iterations per level.
    pub tracking_iterations: i32,
    /// KLT stopping threshold.
    pub tracking_epsilon: f64,
    /// Expected motion as a fraction of the frame diagonal (sets the pyramid height).
    pub fractional_tracking_distance: f32,
    /// After 3 frames, the expected motion follows the recent flow.
    pub adaptive_tracking_distance: bool,
    /// A track whose motion grows or shrinks by more than this factor is suspicious.
    pub max_long_feature_acceleration: f32,
    /// Verify suspicious tracks forward-backward (when enough of them).
    pub verify_long_feature_acceleration: bool,
    /// Verification starts when at least this share of the tracks is suspicious.
    pub verify_long_feature_trigger_ratio: f32,
    /// Forward-backward tolerance (processing px).
    pub verification_distance: f32,
    /// Reuse tracked features without extraction for at most this many frames ...
    pub reuse_features_max_frame_distance: u32,
    /// ... while more than this share of the extracted set survives.
    pub reuse_features_min_survived_frac: f32,
    /// Tracks reaching 0.8 of this age are ended at the next extraction.
    pub long_tracks_max_frames: u32,
    /// Outlier rejection and frame flags.
    pub region_flow: RegionFlowOptions,
    /// Camera motion estimation.
    pub camera: CameraMotionOptions,
}

impl Default for MotionAnalysisOptions {
    fn default() -> Self {
        MotionAnalysisOptions {
            downsample_factor: 2.0,
            features: FeatureOptions::default(),
            tracking_window_size: 8,
            tracking_iterations: 8,
            tracking_epsilon: 0.02,
            fractional_tracking_distance: 0.1,
            adaptive_tracking_distance: true,
            max_long_feature_acceleration: 5.0,
            verify_long_feature_acceleration: true,
            verify_long_feature_trigger_ratio: 0.1,
            verification_distance: 5.0,
            reuse_features_max_frame_distance: 10,
            reuse_features_min_survived_frac: 0.6,
            long_tracks_max_frames: 300,
            region_flow: RegionFlowOptions::default(),
            camera: CameraMotionOptions::default(),
        }
    }
}

/// Wall time of each stage of the last frame, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StageTimes {
    /// Pyramid construction.
    pub pyramid: f64,
    /// KLT tracking (including forward-backward verification).
    pub tracking: f64,
    /// Region-flow outlier rejection and flags.
    pub outliers: f64,
    /// Camera motion cascade.
    pub camera: f64,
    /// Feature extraction (when it ran).
    pub extraction: f64,
}

impl StageTimes {
    /// Sum of the stages.
    pub fn total(&self) -> f64 {
        self.pyramid + self.tracking + self.outliers + self.camera + self.extraction
    }
}

/// A live track in the previous frame.
#[derive(Clone, Copy, Debug)]
struct Track {
    x: f32,
    y: f32,
    id: i32,
    /// Frames this track has been followed.
    age: u32,
    /// Last motion (L1, nominal px), if known.
    last_motion: Option<f32>,
    response: f32,
}

/// The motion analysis state of one stream. See the module docs.
pub struct MotionAnalysis {
    options: MotionAnalysisOptions,
    klt: KltParams,
    prev: Option<Pyramid>,
    tracks: Vec<Track>,
    next_id: i32,
    frames_since_extraction: u32,
    extracted: usize,
    rms_history: VecDeque<f32>,
    frames: u64,
    times: StageTimes,
}

impl MotionAnalysis {
    /// A new analysis.
    pub fn new(options: MotionAnalysisOptions) -> MotionAnalysis {
        let klt = KltParams {
            window_radius: options.tracking_window_size.clamp(1, 64),
            iterations: options.tracking_iterations.clamp(1, 100),
            epsilon: options.tracking_epsilon,
            ..KltParams::default()
        };
        MotionAnalysis {
            options,
            klt,
            prev: None,
            tracks: Vec::new(),
            next_id: 0,
            frames_since_extraction: 0,
            extracted: 0,
            rms_history: VecDeque::new(),
            frames: 0,
            times: StageTimes::default(),
        }
    }

    /// The options.
    pub fn options(&self) -> &MotionAnalysisOptions {
        &self.options
    }

    /// Stage times of the last frame.
    pub fn stage_times(&self) -> StageTimes {
        self.times
    }

    /// Positions (processing px) and ids of the features that will be tracked into the next
    /// frame.
    pub fn current_features(&self) -> Vec<(f32, f32, i32)> {
        self.tracks.iter().map(|t| (t.x, t.y, t.id)).collect()
    }

    fn new_id(&mut self) -> i32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(0);
        id
    }

    /// Analyses one frame: returns its camera motion and region flow (to the previous
    /// frame; the first frame and frames after a size change get an empty, VALID result).
    pub fn process(
        &mut self,
        frame: &GrayImage,
        timestamp_usec: i64,
    ) -> Result<(CameraMotion, RegionFlowFeatureList), TrackingError> {
        let o = &self.options;
        let ds = if o.downsample_factor.is_finite() && o.downsample_factor > 0.0 {
            o.downsample_factor
        } else {
            1.0
        };
        let (w, h) = (frame.width(), frame.height());
        let (nw, nh) = (w as f32 * ds, h as f32 * ds);
        let mut times = StageTimes::default();

        let t = Instant::now();
        let default_distance = o.fractional_tracking_distance * (w as f32).hypot(h as f32);
        let build_levels = levels_for_distance(default_distance, self.klt.window_radius, w, h);
        let pyramid = Pyramid::build(frame, &self.klt, build_levels)?;
        times.pyramid = ms(t);

        let mut list = RegionFlowFeatureList {
            frame_width: nw.round() as i32,
            frame_height: nh.round() as i32,
            long_tracks: true,
            timestamp_usec,
            match_frame: -1,
            ..Default::default()
        };
        let prev = self.prev.take().filter(|p| p.size() == (w, h));
        if prev.is_none() {
            self.tracks.clear();
        }
        let mut survivors: Vec<Track> = Vec::new();

        if let (Some(prev), false) = (&prev, self.tracks.is_empty()) {
            // Tracking.
            let t = Instant::now();
            let distance = if o.adaptive_tracking_distance && self.frames >= 3 {
                let max_rms = self.rms_history.iter().copied().fold(0.0f32, f32::max);
                1.3 * max_rms
            } else {
                default_distance
            };
            let level = levels_for_distance(distance, self.klt.window_radius, w, h);
            let pts: Vec<(f32, f32)> = self.tracks.iter().map(|t| (t.x, t.y)).collect();
            let res = track(prev, &pyramid, &pts, &self.klt, level)?;
            let (wf, hf) = (w as f32, h as f32);
            // (track index, new x, new y, error, motion L1 nominal, broken)
            let mut tracked: Vec<(usize, f32, f32, f32, f32, bool)> = res
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    let (x, y, e) = (*r)?;
                    let inside = x >= 0.0 && y >= 0.0 && x <= wf - 1.0 && y <= hf - 1.0;
                    let tr = &self.tracks[i];
                    let l1 = ((x - tr.x).abs() + (y - tr.y).abs()) * ds;
                    inside.then_some((i, x, y, e, l1, false))
                })
                .collect();
            // Acceleration check.
            let accel = o.max_long_feature_acceleration;
            let flagged: Vec<usize> = tracked
                .iter()
                .enumerate()
                .filter(|(_, &(i, _, _, _, m, _))| {
                    self.tracks[i]
                        .last_motion
                        .is_some_and(|p| m > accel * p.max(1.0) || p > accel * m.max(1.0))
                })
                .map(|(k, _)| k)
                .collect();
            if !flagged.is_empty() {
                let share = flagged.len() as f32 / tracked.len().max(1) as f32;
                if !o.verify_long_feature_acceleration
                    || share < o.verify_long_feature_trigger_ratio
                {
                    for &k in &flagged {
                        tracked[k].5 = true;
                    }
                } else {
                    let back_pts: Vec<(f32, f32)> = flagged
                        .iter()
                        .map(|&k| (tracked[k].1, tracked[k].2))
                        .collect();
                    let back = track(&pyramid, prev, &back_pts, &self.klt, level)?;
                    let mut drop = vec![false; tracked.len()];
                    for (&k, r) in flagged.iter().zip(&back) {
                        let orig = &self.tracks[tracked[k].0];
                        let ok = r.is_some_and(|(bx, by, _)| {
                            (bx - orig.x).hypot(by - orig.y) <= o.verification_distance
                        });
                        drop[k] = !ok;
                    }
                    let mut k = 0;
                    tracked.retain(|_| {
                        k += 1;
                        !drop[k - 1]
                    });
                }
            }
            times.tracking = ms(t);

            // Region flow, outlier rejection, border filter.
            let t = Instant::now();
            let feats: Vec<RegionFlowFeature> = tracked
                .iter()
                .map(|&(i, x, y, e, _, broken)| {
                    let tr = &self.tracks[i];
                    RegionFlowFeature {
                        x: x * ds,
                        y: y * ds,
                        dx: (tr.x - x) * ds,
                        dy: (tr.y - y) * ds,
                        track_id: tr.id,
                        tracking_error: e,
                        corner_response: tr.response,
                        irls_weight: 1.0,
                        flags: if broken { FLAG_BROKEN_TRACK } else { 0 },
                        feature_id: 0,
                    }
                })
                .collect();
            let votes = determine_inliers(&feats, nw, nh, &o.region_flow);
            let mean_l1 = if tracked.is_empty() {
                0.0
            } else {
                tracked.iter().map(|t| t.4).sum::<f32>() / tracked.len() as f32
            };
            let duplicate = mean_l1 < 0.25;
            for ((f, v), &(i, x, y, _, m, broken)) in feats.into_iter().zip(&votes).zip(&tracked) {
                if !v.survives()
                    || !inside_border(&f, nw, nh, o.region_flow.distance_from_border, ds)
                {
                    continue;
                }
                let mut tr = self.tracks[i];
                let mut f = f;
                if broken {
                    tr.id = -1;
                    tr.age = 0;
                    tr.last_motion = None;
                }
                tr.x = x;
                tr.y = y;
                tr.age += 1;
                if !duplicate {
                    tr.last_motion = Some(m);
                }
                f.feature_id = list.features.len() as i32;
                list.features.push(f);
                survivors.push(tr);
            }
            // Broken tracks get fresh ids (in feature order, for determinism).
            for (k, tr) in survivors.iter_mut().enumerate() {
                if tr.id < 0 {
                    let id = self.next_id;
                    self.next_id = self.next_id.wrapping_add(1).max(0);
                    tr.id = id;
                    list.features[k].track_id = id;
                }
            }
            set_frame_flags(&mut list, &o.region_flow);
            if !duplicate || self.rms_history.is_empty() {
                let n = list.features.len().max(1) as f32;
                let rms = (list
                    .features
                    .iter()
                    .map(|f| f.dx * f.dx + f.dy * f.dy)
                    .sum::<f32>()
                    / n)
                    .sqrt();
                self.rms_history.push_back(rms);
                if self.rms_history.len() > 10 {
                    self.rms_history.pop_front();
                }
            }
            times.outliers = ms(t);
        } else {
            set_frame_flags(&mut list, &o.region_flow);
            list.is_duplicated = false;
        }

        // Camera motion.
        let t = Instant::now();
        let (mut camera, weights) =
            estimate_camera_motion(&list.features, nw, nh, list.unstable, &o.camera);
        for (f, w) in list.features.iter_mut().zip(weights) {
            f.irls_weight = w;
        }
        camera.timestamp_usec = timestamp_usec;
        if list.is_duplicated {
            camera.flags |= CAMERA_FLAG_DUPLICATED;
        }
        times.camera = ms(t);

        // Feature reuse or (re-)extraction.
        let t = Instant::now();
        self.frames_since_extraction += 1;
        let reuse = prev.is_some()
            && self.frames_since_extraction <= o.reuse_features_max_frame_distance
            && survivors.len() as f32 > o.reuse_features_min_survived_frac * self.extracted as f32;
        if reuse {
            self.tracks = survivors;
        } else {
            let min_distance = o.features.min_feature_distance / ds.sqrt();
            let mut mask = OccupancyMask::new(w, h, min_distance.round().max(1.0));
            let max_age = (0.8 * o.long_tracks_max_frames as f32) as u32;
            let mut kept = Vec::with_capacity(o.features.max_features);
            for tr in survivors {
                if tr.age >= max_age
                    || !mask.is_free(tr.x, tr.y)
                    || kept.len() >= o.features.max_features
                {
                    list.actively_discarded_tracked_ids.push(tr.id);
                    continue;
                }
                mask.mark(tr.x, tr.y);
                kept.push(tr);
            }
            let wanted = o.features.max_features.saturating_sub(kept.len());
            let corners = extract_corners(frame, &mut mask, wanted, &o.features)?;
            for c in corners {
                let id = self.new_id();
                kept.push(Track {
                    x: c.x,
                    y: c.y,
                    id,
                    age: 0,
                    last_motion: None,
                    response: c.response,
                });
            }
            self.extracted = kept.len();
            self.frames_since_extraction = 0;
            self.tracks = kept;
        }
        times.extraction = ms(t);

        self.prev = Some(pyramid);
        self.frames += 1;
        self.times = times;
        Ok((camera, list))
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}
