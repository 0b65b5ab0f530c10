//! Pyramidal Lucas-Kanade tracking. OpenCV's `calcOpticalFlowPyrLK` does the work, behind
//! these functions; pyramids (with derivatives) are built once per frame and reused as the
//! "previous" pyramid of the next frame.

use opencv::core::{
    Mat, Point2f, Size, TermCriteria, TermCriteria_Type, Vector, BORDER_CONSTANT,
    BORDER_REFLECT_101,
};
use opencv::video;

use super::{CvResult, GrayImage, TrackingError};

/// Window and stopping parameters of the tracker.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KltParams {
    /// Window radius (the window is 2r + 1 square).
    pub window_radius: i32,
    /// Iterations per level.
    pub iterations: i32,
    /// Stop when the update is below this (px).
    pub epsilon: f64,
    /// Minimum eigenvalue of the window's gradient matrix (OpenCV's threshold).
    pub min_eig_threshold: f64,
}

impl Default for KltParams {
    fn default() -> Self {
        KltParams {
            window_radius: 8,
            iterations: 8,
            epsilon: 0.02,
            min_eig_threshold: 1e-4,
        }
    }
}

/// An image pyramid with derivatives, ready for tracking.
pub struct Pyramid {
    levels: Vector<Mat>,
    max_level: i32,
    width: usize,
    height: usize,
}

impl Pyramid {
    /// Builds the pyramid of `img` with up to `max_level` levels above the base.
    pub fn build(
        img: &GrayImage,
        params: &KltParams,
        max_level: i32,
    ) -> Result<Pyramid, TrackingError> {
        let src = Mat::new_rows_cols_with_data(img.height() as i32, img.width() as i32, img.data())
            .cv("wrap image")?;
        let win = 2 * params.window_radius + 1;
        let mut levels = Vector::<Mat>::new();
        let built = video::build_optical_flow_pyramid(
            &src,
            &mut levels,
            Size::new(win, win),
            max_level.max(0),
            true,
            BORDER_REFLECT_101,
            BORDER_CONSTANT,
            false,
        )
        .cv("buildOpticalFlowPyramid")?;
        Ok(Pyramid {
            levels,
            max_level: built,
            width: img.width(),
            height: img.height(),
        })
    }

    /// Levels above the base.
    pub fn max_level(&self) -> i32 {
        self.max_level
    }

    /// Base image size.
    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }
}

/// One tracked point: its new position and OpenCV's matching error, or `None` when lost.
pub type TrackResult = Option<(f32, f32, f32)>;

/// Tracks `points` from `from` into `to` using at most `max_level` pyramid levels.
pub fn track(
    from: &Pyramid,
    to: &Pyramid,
    points: &[(f32, f32)],
    params: &KltParams,
    max_level: i32,
) -> Result<Vec<TrackResult>, TrackingError> {
    if points.is_empty() {
        return Ok(Vec::new());
    }
    if from.size() != to.size() {
        return Err(TrackingError::Image(format!(
            "cannot track between frames of different sizes {:?} and {:?}",
            from.size(),
            to.size()
        )));
    }
    // Whole-slice copies in and out: element-wise `push` / `get` are FFI calls each.
    let prev_pts: Vec<Point2f> = points.iter().map(|&(x, y)| Point2f::new(x, y)).collect();
    let prev = Vector::<Point2f>::from_slice(&prev_pts);
    let mut next = Vector::<Point2f>::new();
    let mut status = Vector::<u8>::new();
    let mut err = Vector::<f32>::new();
    let win = 2 * params.window_radius + 1;
    let level = max_level.clamp(0, from.max_level.min(to.max_level));
    video::calc_optical_flow_pyr_lk(
        &from.levels,
        &to.levels,
        &prev,
        &mut next,
        &mut status,
        &mut err,
        Size::new(win, win),
        level,
        TermCriteria::new(
            TermCriteria_Type::COUNT as i32 + TermCriteria_Type::EPS as i32,
            params.iterations,
            params.epsilon,
        )
        .cv("criteria")?,
        0,
        params.min_eig_threshold,
    )
    .cv("calcOpticalFlowPyrLK")?;
    let (status, next, err) = (status.as_slice(), next.as_slice(), err.as_slice());
    Ok((0..points.len())
        .map(|i| {
            let ok = *status.get(i)? != 0;
            let p = *next.get(i)?;
            let e = err.get(i).copied().unwrap_or(0.0);
            (ok && p.x.is_finite() && p.y.is_finite()).then_some((p.x, p.y, e))
        })
        .collect())
}

/// Pyramid levels (above the base) needed to follow motions up to `distance` px with a
/// window of radius `radius`: the smallest L with 2^L r / 2 >= distance, within
/// [2, log2(min side) - 1], returned as the top level index L - 1.
pub fn levels_for_distance(distance: f32, radius: i32, width: usize, height: usize) -> i32 {
    let max_l = ((width.min(height).max(2) as f32).log2().floor() as i32 - 1).max(2);
    let mut l = 2;
    while l < max_l && ((1u32 << l) as f32) * radius as f32 / 2.0 < distance {
        l += 1;
    }
    l - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_a_shifted_texture() {
        let (w, h) = (160usize, 120usize);
        let tex = |x: f32, y: f32| {
            128.0 + 60.0 * (x * 0.21).sin() * (y * 0.17).cos() + 40.0 * ((x + y) * 0.09).sin()
        };
        let mk = |sx: f32, sy: f32| {
            let data = (0..w * h)
                .map(|i| tex((i % w) as f32 - sx, (i / w) as f32 - sy).round() as u8)
                .collect();
            GrayImage::new(w, h, data).unwrap()
        };
        let p = KltParams::default();
        let a = Pyramid::build(&mk(0.0, 0.0), &p, 3).unwrap();
        let b = Pyramid::build(&mk(6.5, -3.25), &p, 3).unwrap();
        let pts = [(40.0, 40.0), (80.0, 60.0), (120.0, 80.0)];
        let out = track(&a, &b, &pts, &p, 3).unwrap();
        for (r, (x, y)) in out.iter().zip(pts) {
            let (nx, ny, _) = r.unwrap();
            assert!(
                (nx - x - 6.5).abs() < 0.05 && (ny - y + 3.25).abs() < 0.05,
                "{nx} {ny}"
            );
        }
        assert!(track(&a, &b, &[], &p, 3).unwrap().is_empty());
    }

    #[test]
    fn level_choice() {
        assert_eq!(levels_for_distance(40.0, 8, 320, 240), 3);
        assert_eq!(levels_for_distance(1.0, 8, 320, 240), 1);
        assert_eq!(levels_for_distance(1e9, 8, 320, 240), 5);
    }
}
