//! Motion analysis (and, in one test, the whole box-tracking path) on synthetic sequences
//! with known camera motion, rendered from a real photo (the first frame of the sample video `vtest.avi`; a seeded procedural texture if
//! the sample videos are not installed) by bilinear warping.
//!
//! Frames are rendered at the analysis size 320x240; models are compared in the nominal
//! 640x480 domain, where the pipeline reports them.

use mediagraph_calculators::tracking::camera_motion::CameraMotionType;
use mediagraph_calculators::tracking::{
    CameraMotion, GrayImage, Homography, MotionAnalysis, MotionAnalysisOptions,
    RegionFlowFeatureList, SplitMix64,
};
use nalgebra::Matrix3;
use opencv::prelude::*;
use opencv::{imgproc, videoio};

use mediagraph_calculators::sample_data::data_dir;

/// The first frame of `name` in gray, if the video is there.
fn video_frame(name: &str, index: usize) -> Option<GrayImage> {
    let path = data_dir().join(name);
    let mut cap = videoio::VideoCapture::from_file(path.to_str()?, videoio::CAP_ANY).ok()?;
    let mut frame = Mat::default();
    for _ in 0..=index {
        if !cap.read(&mut frame).ok()? {
            return None;
        }
    }
    let mut gray = Mat::default();
    imgproc::cvt_color(&frame, &mut gray, imgproc::COLOR_BGR2GRAY, 0).ok()?;
    GrayImage::new(
        gray.cols() as usize,
        gray.rows() as usize,
        gray.data_bytes().ok()?.to_vec(),
    )
    .ok()
}

/// Smooth seeded noise (sum of random blobs), used when no photo is available.
fn procedural(w: usize, h: usize, seed: u64) -> GrayImage {
    let mut rng = SplitMix64::new(seed);
    let blobs: Vec<(f32, f32, f32, f32)> = (0..2500)
        .map(|_| {
            (
                rng.unit() * w as f32,
                rng.unit() * h as f32,
                2.0 + rng.unit() * 10.0,
                rng.unit() * 2.0 - 1.0,
            )
        })
        .collect();
    let mut acc = vec![128.0f32; w * h];
    for &(bx, by, r, a) in &blobs {
        let (x0, x1) = (
            (bx - 3.0 * r).max(0.0) as usize,
            ((bx + 3.0 * r) as usize).min(w),
        );
        let (y0, y1) = (
            (by - 3.0 * r).max(0.0) as usize,
            ((by + 3.0 * r) as usize).min(h),
        );
        for y in y0..y1 {
            for x in x0..x1 {
                let d2 = ((x as f32 - bx).powi(2) + (y as f32 - by).powi(2)) / (r * r);
                acc[y * w + x] += 60.0 * a * (-d2).exp();
            }
        }
    }
    GrayImage::new(
        w,
        h,
        acc.iter().map(|v| v.clamp(0.0, 255.0) as u8).collect(),
    )
    .unwrap()
}

fn texture() -> GrayImage {
    video_frame("vtest.avi", 0).unwrap_or_else(|| procedural(768, 576, 5))
}

/// The object's texture: the building at the top of the same photo, mirrored.
fn object_texture() -> GrayImage {
    let tex = texture();
    let (w, h) = (tex.width(), tex.height());
    tex.remap(w, h, |x, y| (w as f32 - 1.0 - x, y)).unwrap()
}

fn apply(m: &Matrix3<f64>, x: f64, y: f64) -> (f64, f64) {
    let v = m * nalgebra::Vector3::new(x, y, 1.0);
    (v[0] / v[2], v[1] / v[2])
}

/// Renders the 320x240 analysis frame whose nominal point X shows `tex` at `a * X`
/// (2x2 supersampled around each pixel's nominal position 2x, 2y).
fn render(tex: &GrayImage, a: &Matrix3<f64>) -> GrayImage {
    let sample = |x: f64, y: f64| {
        let (u, v) = apply(a, x, y);
        tex.sample(u as f32, v as f32)
    };
    let mut data = Vec::with_capacity(320 * 240);
    for y in 0..240 {
        for x in 0..320 {
            let (nx, ny) = (2.0 * x as f64, 2.0 * y as f64);
            let s = sample(nx - 0.5, ny - 0.5)
                + sample(nx + 0.5, ny - 0.5)
                + sample(nx - 0.5, ny + 0.5)
                + sample(nx + 0.5, ny + 0.5);
            data.push((s / 4.0).round().clamp(0.0, 255.0) as u8);
        }
    }
    GrayImage::new(320, 240, data).unwrap()
}

/// Paints an object over a 320x240 analysis frame: `at(nx, ny)` gives, for a pixel's
/// nominal position, the point of `tex` shown there, or `None` outside the object.
fn paint(img: &mut GrayImage, tex: &GrayImage, at: impl Fn(f64, f64) -> Option<(f64, f64)>) {
    for y in 0..240 {
        for x in 0..320 {
            if let Some((u, v)) = at(2.0 * x as f64, 2.0 * y as f64) {
                img.data_mut()[y * 320 + x] = tex.sample(u as f32, v as f32).round() as u8;
            }
        }
    }
}

fn to_matrix(h: &Homography) -> Matrix3<f64> {
    let a = h.to_array().map(f64::from);
    Matrix3::new(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], 1.0)
}

/// Similarity about the nominal frame centre: scale s, rotation r (rad), then shift t.
fn similarity(s: f64, r: f64, tx: f64, ty: f64) -> Matrix3<f64> {
    let (c, si) = (s * r.cos(), s * r.sin());
    let (cx, cy) = (320.0, 240.0);
    let to_c = Matrix3::new(1.0, 0.0, -cx, 0.0, 1.0, -cy, 0.0, 0.0, 1.0);
    let from_c = Matrix3::new(1.0, 0.0, cx + tx, 0.0, 1.0, cy + ty, 0.0, 0.0, 1.0);
    from_c * Matrix3::new(c, -si, 0.0, si, c, 0.0, 0.0, 0.0, 1.0) * to_c
}

struct Run {
    results: Vec<(CameraMotion, RegionFlowFeatureList)>,
}

/// Runs `frames` frames where frame k shows the texture through `a0 * g^k`, i.e. the true
/// camera motion (current -> previous, nominal px) is `g` on every frame.
fn run_sequence(g: &Matrix3<f64>, frames: usize) -> Run {
    let tex = texture();
    let a0 = Matrix3::new(1.0, 0.0, 64.0, 0.0, 1.0, 48.0, 0.0, 0.0, 1.0);
    let mut ma = MotionAnalysis::new(MotionAnalysisOptions::default());
    let mut a = a0;
    let mut results = Vec::new();
    for k in 0..frames {
        let img = render(&tex, &a);
        results.push(ma.process(&img, k as i64 * 33_333).unwrap());
        a *= g;
    }
    Run { results }
}

/// RMS distance (nominal px) between the estimated and true models over a grid of points,
/// over all frames after the first.
fn model_rms(run: &Run, g: &Matrix3<f64>) -> f64 {
    let (mut sq, mut n) = (0.0, 0usize);
    for (cam, _) in &run.results[1..] {
        let est = to_matrix(&cam.homography);
        for gy in 0..12 {
            for gx in 0..16 {
                let (x, y) = (20.0 + 40.0 * gx as f64, 20.0 + 40.0 * gy as f64);
                let (a, b) = apply(&est, x, y);
                let (c, d) = apply(g, x, y);
                sq += (a - c).powi(2) + (b - d).powi(2);
                n += 1;
            }
        }
    }
    (sq / n as f64).sqrt()
}

fn check_common(run: &Run, name: &str) {
    let (first, flow) = &run.results[0];
    assert_eq!(first.motion_type, CameraMotionType::Valid);
    assert!(flow.features.is_empty());
    for (k, (cam, flow)) in run.results.iter().enumerate().skip(1) {
        assert!(
            flow.features.len() > 200,
            "{name} frame {k}: {} features",
            flow.features.len()
        );
        assert_eq!(cam.frame_width, 640);
        assert_eq!(flow.frame_height, 480);
        assert_eq!(
            cam.motion_type,
            CameraMotionType::Valid,
            "{name} frame {k}: {cam:?}"
        );
    }
}

#[test]
fn pure_translation() {
    let g = similarity(1.0, 0.0, 3.3, -1.7);
    let run = run_sequence(&g, 12);
    check_common(&run, "translation");
    let rms = model_rms(&run, &g);
    eprintln!("translation: model RMS {rms:.4} px");
    assert!(rms < 0.1, "RMS {rms}");
    for (cam, _) in &run.results[1..] {
        assert!((cam.translation.dx - 3.3).abs() < 0.1 && (cam.translation.dy + 1.7).abs() < 0.1);
        let s = cam.linear_similarity;
        assert!((s.a - 1.0).abs() < 1e-3 && s.b.abs() < 1e-3, "{s:?}");
        let h = cam.homography;
        assert!(h.h20.abs() < 1e-5 && h.h21.abs() < 1e-5, "{h:?}");
    }
    // Long tracks: most ids of frame 5 are still there in frame 6.
    let ids = |k: usize| -> std::collections::HashSet<i32> {
        run.results[k]
            .1
            .features
            .iter()
            .map(|f| f.track_id)
            .collect()
    };
    let (a, b) = (ids(5), ids(6));
    assert!(a.intersection(&b).count() * 10 >= a.len() * 8);
}

#[test]
fn similarity_zoom_and_roll() {
    // Zooming in by 1 % and rolling by 0.4 degree per frame, drifting by (1.5, 1).
    let g = similarity(0.99, 0.4f64.to_radians(), 1.5, 1.0);
    let run = run_sequence(&g, 12);
    check_common(&run, "similarity");
    let rms = model_rms(&run, &g);
    eprintln!("similarity: model RMS {rms:.4} px");
    assert!(rms < 0.1, "RMS {rms}");
    for (cam, _) in &run.results[1..] {
        let s = cam.linear_similarity;
        let scale = s.a.hypot(s.b);
        let angle = s.b.atan2(s.a);
        assert!((scale - 0.99).abs() < 1e-3, "{s:?}");
        assert!((angle - 0.4f32.to_radians()).abs() < 1e-3, "{s:?}");
        let h = cam.homography;
        assert!(h.h20.abs() < 2e-5 && h.h21.abs() < 2e-5, "{h:?}");
    }
}

#[test]
fn homography() {
    let mut g = similarity(0.995, 0.2f64.to_radians(), 2.0, -1.0);
    g[(2, 0)] = 6e-5;
    g[(2, 1)] = -4e-5;
    g[(0, 1)] += 0.004;
    let run = run_sequence(&g, 12);
    check_common(&run, "homography");
    let rms = model_rms(&run, &g);
    eprintln!("homography: model RMS {rms:.4} px");
    assert!(rms < 0.1, "RMS {rms}");
    // The similarity alone cannot explain this motion: its fit is clearly worse.
    let (cam, _) = &run.results[6];
    let sim = to_matrix(&Homography::from(cam.linear_similarity));
    let (a, b) = apply(&sim, 620.0, 460.0);
    let (c, d) = apply(&g, 620.0, 460.0);
    assert!((a - c).hypot(b - d) > 1.0);
}

/// A textured object moving on its own over a moving background.
#[test]
fn moving_object_gets_low_weights() {
    let tex = texture();
    let obj = object_texture();
    let g = similarity(1.0, 0.0, 3.0, -1.0);
    let a0 = Matrix3::new(1.0, 0.0, 64.0, 0.0, 1.0, 48.0, 0.0, 0.0, 1.0);
    // Object: 180x140 nominal px, moving on screen by (-9, 5) per frame.
    let (ow, oh) = (180.0f64, 140.0f64);
    let obj_pos = |k: usize| (330.0 - 9.0 * k as f64, 150.0 + 5.0 * k as f64);
    let mut ma = MotionAnalysis::new(MotionAnalysisOptions::default());
    let mut a = a0;
    let margin = 16.0; // the KLT window radius, nominal px
    let (mut obj_n, mut obj_low, mut bg_n, mut bg_high) = (0, 0, 0, 0);
    for k in 0..12 {
        let mut img = render(&tex, &a);
        let (ox, oy) = obj_pos(k);
        paint(&mut img, &obj, |nx, ny| {
            (nx >= ox && nx < ox + ow && ny >= oy && ny < oy + oh)
                .then_some((nx - ox + 200.0, ny - oy))
        });
        let (cam, flow) = ma.process(&img, k as i64 * 33_333).unwrap();
        a *= g;
        if k < 2 {
            continue;
        }
        assert_eq!(
            cam.motion_type,
            CameraMotionType::Valid,
            "frame {k}: {cam:?}"
        );
        assert!((cam.translation.dx - 3.0).abs() < 0.2, "{cam:?}");
        for f in &flow.features {
            let (x, y) = (f64::from(f.x), f64::from(f.y));
            let inside = |m: f64| x >= ox + m && x < ox + ow - m && y >= oy + m && y < oy + oh - m;
            if inside(margin) {
                obj_n += 1;
                obj_low += usize::from(f.irls_weight < 0.5);
            } else if !inside(-margin) {
                bg_n += 1;
                bg_high += usize::from(f.irls_weight > 0.5);
            }
        }
    }
    eprintln!("object: {obj_low}/{obj_n} low; background: {bg_high}/{bg_n} high");
    assert!(obj_n >= 100, "{obj_n} object features");
    assert!(obj_low * 10 >= obj_n * 9, "{obj_low}/{obj_n}");
    assert!(bg_high * 10 >= bg_n * 9, "{bg_high}/{bg_n}");
}

/// The whole box-tracking path (motion analysis, flow packager, box tracker) on an object
/// that approaches the camera: it grows by 1.5% per frame about its centre, which drifts
/// across a background the camera pans over. The box keeps the object's size and position.
#[test]
fn box_follows_an_object_growing_toward_the_camera() {
    use mediagraph_calculators::tracking::box_tracker::{BoxTracker, BoxTrackerOptions, TimedBox};
    use mediagraph_calculators::tracking::{FlowPackager, FlowPackagerOptions};

    let tex = texture();
    let obj = object_texture();
    let g = similarity(1.0, 0.0, 2.0, -1.0);
    let a0 = Matrix3::new(1.0, 0.0, 64.0, 0.0, 1.0, 48.0, 0.0, 0.0, 1.0);
    // Nominal (640x480) object size at frame 0, its centre and scale at frame k.
    let (ow, oh) = (160.0f64, 120.0f64);
    let centre = |k: usize| (300.0 + 2.0 * k as f64, 250.0 - 1.0 * k as f64);
    let scale = |k: usize| 1.015f64.powi(k as i32);
    let truth = |k: usize| {
        let ((cx, cy), s) = (centre(k), scale(k));
        [
            (cx - s * ow / 2.0) / 640.0,
            (cy - s * oh / 2.0) / 480.0,
            (cx + s * ow / 2.0) / 640.0,
            (cy + s * oh / 2.0) / 480.0,
        ]
    };
    let mut ma = MotionAnalysis::new(MotionAnalysisOptions::default());
    let packer = FlowPackager::new(FlowPackagerOptions::default());
    let mut tracker = BoxTracker::new(BoxTrackerOptions::default());
    let as_box = |r: [f64; 4]| TimedBox {
        left: r[0] as f32,
        top: r[1] as f32,
        right: r[2] as f32,
        bottom: r[3] as f32,
        id: 1,
        ..Default::default()
    };
    let mut a = a0;
    let mut worst_iou = 1f32;
    let frames = 30;
    for k in 0..frames {
        let mut img = render(&tex, &a);
        let ((cx, cy), s) = (centre(k), scale(k));
        paint(&mut img, &obj, |nx, ny| {
            let (u, v) = ((nx - cx) / s, (ny - cy) / s);
            (u.abs() < ow / 2.0 && v.abs() < oh / 2.0).then_some((u + 400.0, v + 150.0))
        });
        let (cam, flow) = ma.process(&img, k as i64 * 33_333).unwrap();
        tracker.push_frame(k as i64 * 33_333, &packer.pack(&flow, Some(&cam)));
        if k == 0 {
            tracker.start_box(&as_box(truth(0)));
        } else {
            worst_iou = worst_iou.min(tracker.boxes()[0].iou(&as_box(truth(k))));
        }
        a *= g;
    }
    let (b, t) = (&tracker.boxes()[0], as_box(truth(frames - 1)));
    let width_ratio = (b.right - b.left) / (t.right - t.left);
    // Measured: worst IoU 0.96, final width 0.988 of the object's (1.015^29 = 1.54x).
    assert!(worst_iou > 0.9, "worst IoU {worst_iou}");
    assert!(
        (width_ratio - 1.0).abs() < 0.04,
        "width ratio {width_ratio}: {b:?} vs {t:?}"
    );
}
