//! Box-tracking evaluation on synthetic sequences with exact ground truth, against OpenCV's
//! KCF, CSRT and MedianFlow trackers on the same frames and start boxes.
//!
//! ```text
//! cargo run --release -p mediagraph-calculators --example box_tracking_eval
//! ```
//!
//! `-- --ours-only`: accuracy of our tracker only (no OpenCV, no timing); `-- --timing-only`:
//! our accuracy and timing, without OpenCV; `-- --dump-object NAME`: one object's truth and
//! our box per frame; `-- --tracker-only`: the tracker alone (see `tracker_only`);
//! `-- --close-up`: instead of the two sequences, one object approaching the camera until it
//! fills the frame (see `render_close_up`; combines with `--ours-only`).
//! `-- --ids`: identity persistence of detection + tracking on the two sequences, with
//! detections made from the truth (see `identity_eval`). `-- --tracker-thread` (with the
//! graph runs): the box tracker node on an executor (thread) of its own, the rest of the
//! subgraph on the graph's one thread.
//!
//! Sequences (640x480, 30 fps) are rendered here from real photos: the background is a frame
//! of `vtest.avi`, the objects are patches of `bikes.mp4` frames (data dir:
//! `MEDIAGRAPH_DATA_DIR`, else `<workspace>/data`). The camera pans, zooms and rolls; five
//! textured objects move and change scale on their own, one object is nearly uniform (low
//! texture), one object passes in front of another (partial occlusion), one leaves the frame
//! and comes back; every frame gets Gaussian noise and a slow brightness drift.
//!
//! Scores per tracker: OTB success AUC (mean over IoU thresholds 0, 0.05, .., 1 of the
//! fraction of frames with IoU above the threshold) and precision at 20 px (center error),
//! over the frames where at least 30% of the object is in view; a lost track scores IoU 0.
//! Timing: per-frame wall time of the whole box-tracking subgraph (graph run, one thread,
//! resize + motion analysis + packing + tracking) with 1, 10 and 20 boxes, and the process
//! time of its nodes other than motion analysis and of the box tracker node (the framework's
//! per-node counters; best of 3 rounds that alternate the box counts, or
//! `MEDIAGRAPH_TIMING_ROUNDS`); the tracker alone
//! (`BoxTracker::push_frame`, on recorded tracking data) with 1 and 20 boxes; OpenCV
//! trackers' update time per frame for 10 boxes. OpenCV runs single-threaded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use mediagraph_calculators::detection::{Detection, RelativeBox};
use mediagraph_calculators::image::{ImageFormat, ImageFrame};
use mediagraph_calculators::tracking::box_tracker::{
    BoxTracker, BoxTrackerOptions, TimedBox, TimedBoxList,
};
use mediagraph_calculators::tracking::{
    FlowPackager, FlowPackagerOptions, GrayImage, MotionAnalysis, MotionAnalysisOptions,
    TrackingData,
};
use mediagraph_framework::spec::ExecutorSpec;
use mediagraph_framework::{Graph, Packet, Timestamp};
use opencv::core::{self, Mat, Rect, Scalar, Size, Vec3b};
use opencv::prelude::*;
use opencv::{imgproc, tracking, videoio};

const W: i32 = 640;
const H: i32 = 480;
const FRAMES: usize = 150;
const DT_US: i64 = 33_333;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn data_dir() -> PathBuf {
    std::env::var_os("MEDIAGRAPH_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("data"))
}

/// Frame `index` of a video (BGR).
fn video_frame(path: &Path, index: usize) -> Res<Mat> {
    let p = path.to_str().ok_or("path is not UTF-8")?;
    let mut cap = videoio::VideoCapture::from_file(p, videoio::CAP_ANY)?;
    if !cap.is_opened()? {
        return Err(format!("cannot open {p} (run scripts/setup videos)").into());
    }
    let mut frame = Mat::default();
    for _ in 0..=index {
        if !cap.read(&mut frame)? || frame.empty() {
            return Err(format!("{p} has fewer than {} frames", index + 1).into());
        }
    }
    Ok(frame)
}

/// A 2x3 affine map as [a, b, c, d, e, f]: x' = a x + b y + c, y' = d x + e y + f.
#[derive(Clone, Copy)]
struct Affine([f64; 6]);

impl Affine {
    fn apply(&self, x: f64, y: f64) -> (f64, f64) {
        let m = self.0;
        (m[0] * x + m[1] * y + m[2], m[3] * x + m[4] * y + m[5])
    }
    fn then(&self, next: &Affine) -> Affine {
        let (a, b) = (next.0, self.0);
        Affine([
            a[0] * b[0] + a[1] * b[3],
            a[0] * b[1] + a[1] * b[4],
            a[0] * b[2] + a[1] * b[5] + a[2],
            a[3] * b[0] + a[4] * b[3],
            a[3] * b[1] + a[4] * b[4],
            a[3] * b[2] + a[4] * b[5] + a[5],
        ])
    }
    fn to_mat(self) -> Res<Mat> {
        let m = self.0;
        Ok(Mat::from_slice_2d(&[
            [m[0], m[1], m[2]],
            [m[3], m[4], m[5]],
        ])?)
    }
}

/// One object: texture, world position over time, scale over time.
struct Object {
    name: &'static str,
    texture: Mat,
    pos: Box<dyn Fn(f64) -> (f64, f64)>,
    scale: Box<dyn Fn(f64) -> f64>,
}

struct Sequence {
    name: String,
    frames_bgr: Vec<Mat>,
    /// Ground truth per object per frame: (box px [l, t, r, b], visible fraction).
    truth: Vec<Vec<([f64; 4], f64)>>,
    names: Vec<&'static str>,
}

/// Camera: world -> image at frame t.
fn camera(t: f64, strength: f64) -> Affine {
    let (cx, cy) = (
        600.0 + strength * 120.0 * (t / 45.0).sin() + strength * t * 0.6,
        450.0 + strength * 40.0 * (t / 30.0).sin(),
    );
    let s = 1.0 + strength * 0.15 * (t / 150.0 * std::f64::consts::PI).sin();
    let th = strength * 0.05 * (t / 40.0).sin();
    let (c, si) = (s * th.cos(), s * th.sin());
    // image = R S (world - c) + (W/2, H/2)
    Affine([
        c,
        -si,
        -(c * cx - si * cy) + f64::from(W) / 2.0,
        si,
        c,
        -(si * cx + c * cy) + f64::from(H) / 2.0,
    ])
}

fn crop(m: &Mat, r: Rect) -> Res<Mat> {
    Ok(Mat::roi(m, r)?.try_clone()?)
}

fn build_objects(seed: u64) -> Res<(Mat, Vec<Object>)> {
    let dir = data_dir();
    let vt = video_frame(&dir.join("vtest.avi"), 100)?;
    let mut background = Mat::default();
    imgproc::resize(
        &vt,
        &mut background,
        Size::new(1400, 1050),
        0.0,
        0.0,
        imgproc::INTER_CUBIC,
    )?;
    let bikes_a = video_frame(&dir.join("bikes.mp4"), 60 + seed as usize * 30)?;
    let bikes_b = video_frame(&dir.join("bikes.mp4"), 180)?;
    let k = seed as f64;
    let mut flat = Mat::new_rows_cols_with_default(70, 90, core::CV_8UC3, Scalar::all(0.0))?;
    for y in 0..70 {
        for x in 0..90 {
            let v = 150.0 + 0.15 * f64::from(x) + 0.1 * f64::from(y);
            *flat.at_2d_mut::<Vec3b>(y, x)? =
                Vec3b::from([(v * 0.6) as u8, (v * 0.9) as u8, v as u8]);
        }
    }
    let objects = vec![
        Object {
            name: "walker",
            texture: crop(&bikes_a, Rect::new(40, 40, 110, 120))?,
            pos: Box::new(move |t| (420.0 + 1.2 * t, 380.0 + 25.0 * (t / 20.0 + k).sin())),
            scale: Box::new(|t| 1.0 + 0.3 * (t / 150.0)),
        },
        Object {
            name: "shrinker",
            texture: crop(&bikes_b, Rect::new(300, 60, 120, 100))?,
            pos: Box::new(move |t| (760.0 - 0.8 * t, 330.0 + 0.5 * t)),
            scale: Box::new(|t| 1.2 - 0.35 * (t / 150.0)),
        },
        Object {
            name: "low_texture",
            texture: flat,
            pos: Box::new(move |t| (560.0 + 40.0 * (t / 35.0).sin(), 560.0 - 0.4 * t)),
            scale: Box::new(|_| 1.0),
        },
        Object {
            name: "occluded",
            texture: crop(&bikes_b, Rect::new(480, 120, 100, 100))?,
            pos: Box::new(move |t| (700.0 + 0.3 * t, 520.0)),
            scale: Box::new(|_| 1.0),
        },
        Object {
            // Passes in front of "occluded" around frames 60-100.
            name: "occluder",
            texture: crop(&bikes_a, Rect::new(200, 100, 90, 90))?,
            pos: Box::new(move |t| (480.0 + 3.2 * t, 470.0 + 0.2 * t)),
            scale: Box::new(|_| 1.0),
        },
        Object {
            // Leaves through the left border and comes back.
            name: "leaver",
            texture: crop(&bikes_b, Rect::new(100, 150, 100, 80))?,
            pos: Box::new(move |t| {
                (
                    430.0 - 230.0 * (t / 75.0 * std::f64::consts::PI).sin(),
                    260.0,
                )
            }),
            scale: Box::new(|_| 1.0),
        },
    ];
    Ok((background, objects))
}

fn render(seed: u64, strength: f64) -> Res<Sequence> {
    let (background, objects) = build_objects(seed)?;
    render_objects(
        format!("seq{seed} (camera x{strength})"),
        &background,
        &objects,
        seed,
        strength,
    )
}

/// `--close-up`: one textured object that approaches the camera until it fills nearly the
/// whole frame (scale 2 -> 6.5: 31% -> 100% of the frame width), moving across a panning
/// background, the situation users report box tracking breaking down in.
fn render_close_up() -> Res<Sequence> {
    let (background, _) = build_objects(0)?;
    let bikes = video_frame(&data_dir().join("bikes.mp4"), 90)?;
    let objects = vec![Object {
        name: "close_up",
        texture: crop(&bikes, Rect::new(200, 40, 100, 80))?,
        pos: Box::new(|t| (600.0 + 0.8 * t, 450.0 + 0.3 * t)),
        scale: Box::new(|t| 2.0 + 4.5 * (t / 150.0)),
    }];
    render_objects(
        "close-up (camera x0.5)".into(),
        &background,
        &objects,
        7,
        0.5,
    )
}

fn render_objects(
    name: String,
    background: &Mat,
    objects: &[Object],
    seed: u64,
    strength: f64,
) -> Res<Sequence> {
    let mut frames = Vec::with_capacity(FRAMES);
    let mut truth = vec![Vec::with_capacity(FRAMES); objects.len()];
    let mut rng = core::RNG::new(0x1234 + seed)?;
    for f in 0..FRAMES {
        let t = f as f64;
        let cam = camera(t, strength);
        let mut frame = Mat::default();
        imgproc::warp_affine(
            background,
            &mut frame,
            &cam.to_mat()?,
            Size::new(W, H),
            imgproc::INTER_LINEAR,
            core::BORDER_REFLECT,
            Scalar::all(0.0),
        )?;
        for (i, o) in objects.iter().enumerate() {
            let (px, py) = (o.pos)(t);
            let s = (o.scale)(t);
            let (tw, th) = (f64::from(o.texture.cols()), f64::from(o.texture.rows()));
            let local = Affine([s, 0.0, px - s * tw / 2.0, 0.0, s, py - s * th / 2.0]);
            let a = local.then(&cam);
            let m = a.to_mat()?;
            let mut warped = Mat::default();
            imgproc::warp_affine(
                &o.texture,
                &mut warped,
                &m,
                Size::new(W, H),
                imgproc::INTER_LINEAR,
                core::BORDER_CONSTANT,
                Scalar::all(0.0),
            )?;
            let ones = Mat::new_rows_cols_with_default(
                o.texture.rows(),
                o.texture.cols(),
                core::CV_8UC1,
                Scalar::all(255.0),
            )?;
            let mut mask = Mat::default();
            imgproc::warp_affine(
                &ones,
                &mut mask,
                &m,
                Size::new(W, H),
                imgproc::INTER_NEAREST,
                core::BORDER_CONSTANT,
                Scalar::all(0.0),
            )?;
            warped.copy_to_masked(&mut frame, &mask)?;
            let corners = [(0.0, 0.0), (tw, 0.0), (tw, th), (0.0, th)].map(|(x, y)| a.apply(x, y));
            let l = corners.iter().map(|c| c.0).fold(f64::MAX, f64::min);
            let r = corners.iter().map(|c| c.0).fold(f64::MIN, f64::max);
            let tp = corners.iter().map(|c| c.1).fold(f64::MAX, f64::min);
            let b = corners.iter().map(|c| c.1).fold(f64::MIN, f64::max);
            let area = (r - l) * (b - tp);
            let vis = (r.min(f64::from(W)) - l.max(0.0)).max(0.0)
                * (b.min(f64::from(H)) - tp.max(0.0)).max(0.0);
            truth[i].push(([l, tp, r, b], if area > 0.0 { vis / area } else { 0.0 }));
        }
        // Brightness drift and noise.
        let gain = 1.0 + 0.15 * (t / 40.0).sin();
        let mut drifted = Mat::default();
        frame.convert_to(&mut drifted, core::CV_16SC3, gain, 0.0)?;
        let mut noise = Mat::new_rows_cols_with_default(H, W, core::CV_16SC3, Scalar::all(0.0))?;
        rng.fill(
            &mut noise,
            core::RNG_NORMAL,
            &Scalar::all(0.0),
            &Scalar::all(4.0),
            false,
        )?;
        let mut noisy = Mat::default();
        core::add(&drifted, &noise, &mut noisy, &core::no_array(), -1)?;
        let mut out = Mat::default();
        noisy.convert_to(&mut out, core::CV_8UC3, 1.0, 0.0)?;
        frames.push(out);
    }
    Ok(Sequence {
        name,
        frames_bgr: frames,
        truth,
        names: objects.iter().map(|o| o.name).collect(),
    })
}

fn to_rgb_frame(bgr: &Mat) -> Res<ImageFrame> {
    let mut rgb = Mat::default();
    imgproc::cvt_color(bgr, &mut rgb, imgproc::COLOR_BGR2RGB, 0)?;
    Ok(ImageFrame::from_pixels(
        ImageFormat::Srgb,
        W as u32,
        H as u32,
        rgb.data_bytes()?.to_vec(),
    )?)
}

/// Tracker output per frame: Some(box px) or None (lost).
type Track = Vec<Option<[f64; 4]>>;

fn iou(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if u > 0.0 {
        inter / u
    } else {
        0.0
    }
}

/// Clips a box to the frame.
fn clip(b: &[f64; 4]) -> [f64; 4] {
    [
        b[0].clamp(0.0, f64::from(W)),
        b[1].clamp(0.0, f64::from(H)),
        b[2].clamp(0.0, f64::from(W)),
        b[3].clamp(0.0, f64::from(H)),
    ]
}

/// (IoUs, center errors) over the scored frames (visible >= 30%, frame 0 excluded).
fn score(track: &Track, truth: &[([f64; 4], f64)]) -> (Vec<f64>, Vec<f64>) {
    let (mut ious, mut errs) = (Vec::new(), Vec::new());
    for (f, (gt, vis)) in truth.iter().enumerate().skip(1) {
        if *vis < 0.3 {
            continue;
        }
        let g = clip(gt);
        match track.get(f).copied().flatten() {
            Some(b) => {
                let b = clip(&b);
                ious.push(iou(&b, &g));
                let (cx, cy) = ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0);
                let (gx, gy) = ((g[0] + g[2]) / 2.0, (g[1] + g[3]) / 2.0);
                errs.push((cx - gx).hypot(cy - gy));
            }
            None => {
                ious.push(0.0);
                errs.push(f64::INFINITY);
            }
        }
    }
    (ious, errs)
}

fn success_auc(ious: &[f64]) -> f64 {
    if ious.is_empty() {
        return 0.0;
    }
    let thresholds: Vec<f64> = (0..=20).map(|i| f64::from(i) * 0.05).collect();
    thresholds
        .iter()
        .map(|&t| ious.iter().filter(|&&v| v > t).count() as f64 / ious.len() as f64)
        .sum::<f64>()
        / thresholds.len() as f64
}

fn precision20(errs: &[f64]) -> f64 {
    if errs.is_empty() {
        return 0.0;
    }
    errs.iter().filter(|&&e| e <= 20.0).count() as f64 / errs.len() as f64
}

fn rect_of(b: &[f64; 4]) -> Rect {
    Rect::new(
        b[0].round() as i32,
        b[1].round() as i32,
        (b[2] - b[0]).round().max(1.0) as i32,
        (b[3] - b[1]).round().max(1.0) as i32,
    )
}

/// The start boxes (frame 0 ground truth) of a sequence, plus `extra` background boxes.
fn start_boxes(seq: &Sequence, n: usize) -> Vec<[f64; 4]> {
    let mut v: Vec<[f64; 4]> = seq.truth.iter().map(|t| clip(&t[0].0)).collect();
    let mut k = 0;
    while v.len() < n {
        let (x, y) = (
            40.0 + f64::from(k % 5) * 110.0,
            30.0 + f64::from(k / 5) * 90.0,
        );
        v.push([x, y, x + 70.0, y + 60.0]);
        k += 1;
    }
    v.truncate(n);
    v
}

/// `--tracker-thread`: graph runs put the box tracker node on an executor of its own.
static TRACKER_THREAD: AtomicBool = AtomicBool::new(false);

/// Per-frame cost of one box-tracking subgraph run (ms).
#[derive(Clone, Copy, Default)]
struct GraphTiming {
    /// Wall time of the run per frame.
    wall: f64,
    /// Process time per frame of every node but motion analysis (downscale, flow packager,
    /// box tracker).
    without_motion_analysis: f64,
    /// Process time per frame of the box tracker node.
    box_tracker: f64,
}

/// Runs the box-tracking subgraph on the frames with `boxes` started at frame 0; returns
/// per-box tracks and the per-frame timing.
fn run_graph(
    seq: &Sequence,
    boxes: &[[f64; 4]],
    rgb: &[ImageFrame],
) -> Res<(Vec<Track>, GraphTiming)> {
    let sub = workspace().join("graphs/subgraphs/box_tracking.yaml");
    let yaml = format!(
        "num_threads: 1\ninput_stream: [video]\ninput_side_packet: [initial]\nsubgraphs: [\"{}\"]\nnode:\n  - calculator: BoxTrackingSubgraph\n    input_stream: [\"VIDEO:video\"]\n    input_side_packet: [\"INITIAL_POS:initial\"]\n    output_stream: [\"BOXES:boxes\"]\n",
        sub.display()
    );
    let mut spec = Graph::from_yaml_str(&yaml)?.spec().clone();
    if TRACKER_THREAD.load(Ordering::Relaxed) {
        // `--tracker-thread`: the box tracker node on an executor (thread) of its own.
        spec.executors.push(ExecutorSpec {
            name: "tracker".into(),
            num_threads: 1,
            stack_size: None,
            thread_name_prefix: None,
        });
        let tracker = spec
            .nodes
            .iter()
            .position(|n| n.name.ends_with("__box_tracker"))
            .ok_or("no box_tracker node in the subgraph")?;
        spec.nodes[tracker].executor = Some("tracker".into());
    }
    let mut g = Graph::new(spec);
    let out: Arc<Mutex<Vec<(i64, TimedBoxList)>>> = Arc::default();
    let sink = out.clone();
    g.observe_output_stream("boxes", move |p: &Packet| {
        if let Ok(b) = p.get::<TimedBoxList>() {
            sink.lock()
                .expect("lock")
                .push((p.timestamp().micros(), b.clone()));
        }
        Ok(())
    })?;
    let start = TimedBoxList(
        boxes
            .iter()
            .enumerate()
            .map(|(i, b)| TimedBox {
                left: (b[0] / f64::from(W)) as f32,
                top: (b[1] / f64::from(H)) as f32,
                right: (b[2] / f64::from(W)) as f32,
                bottom: (b[3] / f64::from(H)) as f32,
                id: i as i64,
                time_us: 0,
                ..Default::default()
            })
            .collect(),
    );
    let mut side = HashMap::new();
    side.insert("initial".to_string(), Packet::new(start));
    let t0 = Instant::now();
    g.start_run(side)?;
    for (f, frame) in rgb.iter().enumerate() {
        g.add_packet(
            "video",
            Packet::new(frame.clone()).at(Timestamp::new(f as i64 * DT_US)),
        )?;
    }
    g.finish()?;
    let n = rgb.len() as f64;
    let stats = g.stats();
    let node_ms = |keep: &dyn Fn(&str) -> bool| {
        stats
            .iter()
            .filter(|s| keep(&s.calculator))
            .map(|s| s.process_time.as_secs_f64() * 1000.0 / n)
            .sum::<f64>()
    };
    let timing = GraphTiming {
        wall: t0.elapsed().as_secs_f64() * 1000.0 / n,
        without_motion_analysis: node_ms(&|c| c != "MotionAnalysisCalculator"),
        box_tracker: node_ms(&|c| c == "BoxTrackerCalculator"),
    };
    let out = out.lock().expect("lock");
    let mut tracks = vec![vec![None; seq.frames_bgr.len()]; boxes.len()];
    for (ts, list) in out.iter() {
        let f = (*ts / DT_US) as usize;
        for b in &list.0 {
            if let Some(t) = tracks.get_mut(b.id as usize) {
                if f < t.len() {
                    t[f] = Some([
                        f64::from(b.left) * f64::from(W),
                        f64::from(b.top) * f64::from(H),
                        f64::from(b.right) * f64::from(W),
                        f64::from(b.bottom) * f64::from(H),
                    ]);
                }
            }
        }
    }
    Ok((tracks, timing))
}

#[derive(Clone, Copy, Debug)]
enum CvKind {
    Kcf,
    Csrt,
    MedianFlow,
}

/// Runs one OpenCV tracker per box; returns tracks and the update time per frame (ms, all
/// boxes).
#[allow(clippy::needless_range_loop)] // frames and track share the index
fn run_opencv(kind: CvKind, seq: &Sequence, boxes: &[[f64; 4]]) -> Res<(Vec<Track>, f64)> {
    let n = seq.frames_bgr.len();
    let mut tracks = Vec::new();
    let mut total = 0.0;
    for b in boxes {
        let mut track: Track = vec![None; n];
        track[0] = Some(*b);
        match kind {
            CvKind::Kcf | CvKind::Csrt => {
                let mut tr: core::Ptr<opencv::video::Tracker> = match kind {
                    CvKind::Kcf => {
                        tracking::TrackerKCF::create(tracking::TrackerKCF_Params::default()?)?
                            .into()
                    }
                    _ => tracking::TrackerCSRT::create(&tracking::TrackerCSRT_Params::default()?)?
                        .into(),
                };
                tr.init(&seq.frames_bgr[0], rect_of(b))?;
                let mut alive = true;
                for f in 1..n {
                    if !alive {
                        break;
                    }
                    let mut r = Rect::default();
                    let t0 = Instant::now();
                    let ok = tr.update(&seq.frames_bgr[f], &mut r)?;
                    total += t0.elapsed().as_secs_f64();
                    if ok {
                        track[f] = Some([
                            f64::from(r.x),
                            f64::from(r.y),
                            f64::from(r.x + r.width),
                            f64::from(r.y + r.height),
                        ]);
                    } else {
                        alive = matches!(kind, CvKind::Kcf | CvKind::Csrt);
                    }
                }
            }
            CvKind::MedianFlow => {
                let mut tr = tracking::Legacy_TrackerMedianFlow::create_1()?;
                let r0 = rect_of(b);
                tr.init(
                    &seq.frames_bgr[0],
                    core::Rect2d::new(
                        f64::from(r0.x),
                        f64::from(r0.y),
                        f64::from(r0.width),
                        f64::from(r0.height),
                    ),
                )?;
                for f in 1..n {
                    let mut r = core::Rect2d::default();
                    let t0 = Instant::now();
                    let ok = tr.update(&seq.frames_bgr[f], &mut r)?;
                    total += t0.elapsed().as_secs_f64();
                    if ok {
                        track[f] = Some([r.x, r.y, r.x + r.width, r.y + r.height]);
                    }
                }
            }
        }
        tracks.push(track);
    }
    Ok((tracks, total * 1000.0 / (n - 1) as f64))
}

/// The subgraph's front half (downscale, motion analysis, flow packager), run directly.
struct FrontHalf {
    analysis: MotionAnalysis,
    packer: FlowPackager,
}

impl FrontHalf {
    fn new() -> FrontHalf {
        FrontHalf {
            analysis: MotionAnalysis::new(MotionAnalysisOptions::default()),
            packer: FlowPackager::new(FlowPackagerOptions::default()),
        }
    }

    /// The tracking data of frame `f` (frames in order).
    fn next(&mut self, frame: &ImageFrame, f: usize) -> Res<TrackingData> {
        let m = Mat::from_slice(frame.pixels())?;
        let m = m.reshape(3, H)?;
        let mut small = Mat::default();
        imgproc::resize(
            &m,
            &mut small,
            Size::new(320, 240),
            0.0,
            0.0,
            imgproc::INTER_LINEAR,
        )?;
        let gray = GrayImage::from_interleaved(320, 240, 3, false, small.data_bytes()?)?;
        let (cam, flow) = self.analysis.process(&gray, f as i64 * DT_US)?;
        Ok(self.packer.pack(&flow, Some(&cam)))
    }
}

/// Tracking data of every frame.
fn tracking_data(rgb: &[ImageFrame]) -> Res<Vec<TrackingData>> {
    let mut front = FrontHalf::new();
    rgb.iter()
        .enumerate()
        .map(|(f, frame)| front.next(frame, f))
        .collect()
}

/// A tracker on the first frame's data with the `n` timing boxes started.
fn tracker_with_boxes(first: &TrackingData, seq: &Sequence, n: usize) -> BoxTracker {
    let mut t = BoxTracker::new(BoxTrackerOptions::default());
    t.push_frame(0, first);
    for (i, b) in start_boxes(seq, n).iter().enumerate() {
        t.start_box(&TimedBox {
            left: (b[0] / f64::from(W)) as f32,
            top: (b[1] / f64::from(H)) as f32,
            right: (b[2] / f64::from(W)) as f32,
            bottom: (b[3] / f64::from(H)) as f32,
            id: i as i64,
            ..Default::default()
        });
    }
    t
}

/// Mean per-frame time (ms) of `BoxTracker::push_frame` with `n` boxes, on the recorded
/// data back to back (`rgb` `None`), or with each frame's front half run (untimed) right
/// before its `push_frame`, as in the graph (the front half evicts the boxes' memory from
/// the caches).
fn tracker_only_ms(
    data: &[TrackingData],
    rgb: Option<&[ImageFrame]>,
    seq: &Sequence,
    n: usize,
) -> Res<f64> {
    let mut times = Vec::new();
    for _rep in 0..3 {
        let mut t = tracker_with_boxes(&data[0], seq, n);
        // The front half only when its frames are given (it also needs frame 0).
        let mut front = rgb.map(|rgb| (rgb, FrontHalf::new()));
        if let Some((rgb, front)) = &mut front {
            front.next(&rgb[0], 0)?;
        }
        for (f, recorded) in data.iter().enumerate().skip(1) {
            let fresh = match &mut front {
                Some((rgb, front)) => Some(front.next(&rgb[f], f)?),
                None => None,
            };
            let d = fresh.as_ref().unwrap_or(recorded);
            let t0 = Instant::now();
            t.push_frame(f as i64 * DT_US, d);
            times.push(t0.elapsed().as_secs_f64() * 1000.0);
        }
    }
    // Mean: the per-frame cost includes the occasional re-initialisation.
    Ok(times.iter().sum::<f64>() / times.len() as f64)
}

/// Rounds of the graph timing runs (1, 10 and 20 boxes each; the best run of each count is
/// reported): 3, or `MEDIAGRAPH_TIMING_ROUNDS` (more on a noisy machine).
fn graph_timing_rounds() -> usize {
    std::env::var("MEDIAGRAPH_TIMING_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|&r| r > 0)
        .unwrap_or(3)
}

/// `--tracker-only`: `BoxTracker::push_frame` alone on sequence 0, 1 and 20 boxes in
/// alternated rounds (5, or `MEDIAGRAPH_TRACKER_ROUNDS`): the per-box cost and the 20 / 1
/// ratio, on the recorded tracking data back to back and with each frame's front half run
/// just before (as in the graph: ~0.5 µs more per box, its memory evicted); and a fingerprint
/// of every box of every frame (equal fingerprints: the same boxes).
fn tracker_only(seq: &Sequence) -> Res<()> {
    let rgb: Vec<ImageFrame> = seq
        .frames_bgr
        .iter()
        .map(to_rgb_frame)
        .collect::<Res<_>>()?;
    let data = tracking_data(&rgb)?;
    let rounds: usize = std::env::var("MEDIAGRAPH_TRACKER_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    for (what, rgb) in [
        ("back to back", None),
        ("after the front half", Some(&rgb[..])),
    ] {
        let (mut one, mut twenty) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            one.push(tracker_only_ms(&data, rgb, seq, 1)?);
            twenty.push(tracker_only_ms(&data, rgb, seq, 20)?);
        }
        one.sort_by(f64::total_cmp);
        twenty.sort_by(f64::total_cmp);
        if rounds > 0 {
            let (a, b) = (one[rounds / 2], twenty[rounds / 2]);
            println!(
                "push_frame {what}, median of {rounds} rounds: 1 box {a:.4} ms, 20 boxes {b:.4} ms, \
                 {:.2} µs per extra box, 20 / 1 {:.2}x",
                (b - a) * 1000.0 / 19.0,
                b / a
            );
        }
    }
    for n in [1, 20] {
        println!(
            "fingerprint of the {n} boxes' frames: {:016x}",
            fingerprint(&data, seq, n)
        );
    }
    Ok(())
}

/// A hash of every box of every frame tracked with `n` boxes (its own function so that a
/// profiler can count it alone: `valgrind --tool=callgrind --toggle-collect='*fingerprint*'`
/// with `MEDIAGRAPH_TRACKER_ROUNDS=0`).
#[inline(never)]
fn fingerprint(data: &[TrackingData], seq: &Sequence, n: usize) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut t = tracker_with_boxes(&data[0], seq, n);
    let mut hash = std::collections::hash_map::DefaultHasher::new();
    for (f, d) in data.iter().enumerate().skip(1) {
        t.push_frame(f as i64 * DT_US, d);
        for b in t.boxes() {
            (
                b.id,
                [b.left, b.top, b.right, b.bottom, b.rotation, b.confidence].map(f32::to_bits),
            )
                .hash(&mut hash);
        }
    }
    hash.finish()
}

/// Detections made from the truth for `--ids`: every `DETECTION_EVERY` frames (3 per second),
/// each object at least 30% in view is detected with probability `1 - MISS`, its box jittered
/// by up to `JITTER` of its size per edge (a deterministic pseudo-random sequence).
const DETECTION_EVERY: usize = 10;
const MISS: f64 = 0.35;
const JITTER: f64 = 0.06;

/// Synthetic detections of a sequence: (frame, detections).
fn synthetic_detections(seq: &Sequence) -> Vec<(usize, Vec<Detection>)> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut unit = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut out = Vec::new();
    for f in (0..seq.frames_bgr.len()).step_by(DETECTION_EVERY) {
        let mut dets = Vec::new();
        for truth in &seq.truth {
            let (b, visible) = truth[f];
            let (miss, j) = (unit(), [unit(), unit(), unit(), unit()]);
            if visible < 0.3 || miss < MISS {
                continue;
            }
            let (w, h) = (b[2] - b[0], b[3] - b[1]);
            let edge = |v: f64, size: f64, r: f64| v + (2.0 * r - 1.0) * JITTER * size;
            let c = clip(&[
                edge(b[0], w, j[0]),
                edge(b[1], h, j[1]),
                edge(b[2], w, j[2]),
                edge(b[3], h, j[3]),
            ]);
            dets.push(Detection::new(
                0,
                0.8,
                RelativeBox::from_corners(
                    (c[0] / f64::from(W)) as f32,
                    (c[1] / f64::from(H)) as f32,
                    (c[2] / f64::from(W)) as f32,
                    (c[3] / f64::from(H)) as f32,
                ),
            ));
        }
        out.push((f, dets));
    }
    out
}

/// Tracked detections by timestamp (µs).
type TimedDetections = Vec<(i64, Vec<Detection>)>;

/// `--ids`: identity persistence of detection + tracking (the `ObjectTrackingSubgraph` of
/// `graphs/subgraphs/object_tracking.yaml`, fed the rendered frames and synthetic detections
/// made from the truth) on both sequences. Per object, over the frames it is at least 30% in
/// view: coverage (a tracked box at IoU >= 0.5), the distinct ids of those boxes, and id
/// switches (the matched id changes from one matched frame to the next).
fn identity_eval(sequences: &[Sequence]) -> Res<()> {
    let sub = workspace().join("graphs/subgraphs/object_tracking.yaml");
    println!("# Identity persistence: detection + tracking on the synthetic sequences\n");
    println!(
        "Detections from the truth every {DETECTION_EVERY} frames, {:.0}% missed, edges jittered by up to {:.0}% of the size.\n",
        MISS * 100.0,
        JITTER * 100.0
    );
    println!("| object | frames in view | covered | distinct ids | id switches |");
    println!("|---|---|---|---|---|");
    let (mut total_ids, mut total_switches, mut covered, mut frames) = (0, 0, 0, 0);
    for (si, seq) in sequences.iter().enumerate() {
        let yaml = format!(
            "num_threads: 1\ninput_stream: [video, detections]\nsubgraphs: [\"{}\"]\nnode:\n  - calculator: ObjectTrackingSubgraph\n    input_stream: [\"VIDEO:video\", \"DETECTIONS:detections\"]\n    output_stream: [\"DETECTIONS:tracked\"]\n",
            sub.display()
        );
        let mut g = Graph::from_yaml_str(&yaml)?;
        let out: Arc<Mutex<TimedDetections>> = Arc::default();
        let sink = out.clone();
        g.observe_output_stream("tracked", move |p: &Packet| {
            if let Ok(d) = p.get::<Vec<Detection>>() {
                sink.lock()
                    .expect("lock")
                    .push((p.timestamp().micros(), d.clone()));
            }
            Ok(())
        })?;
        g.start_run(HashMap::new())?;
        let detections = synthetic_detections(seq);
        let mut next = detections.iter().peekable();
        for (f, bgr) in seq.frames_bgr.iter().enumerate() {
            let ts = Timestamp::new(f as i64 * DT_US);
            if let Some((_, dets)) = next.next_if(|(df, _)| *df == f) {
                g.add_packet("detections", Packet::new(dets.clone()).at(ts))?;
            }
            g.add_packet("video", Packet::new(to_rgb_frame(bgr)?).at(ts))?;
        }
        g.finish()?;
        let out = out.lock().expect("lock");
        let mut by_frame: HashMap<usize, &Vec<Detection>> = HashMap::new();
        for (ts, d) in out.iter() {
            by_frame.insert((*ts / DT_US) as usize, d);
        }
        for (i, truth) in seq.truth.iter().enumerate() {
            let mut ids = Vec::new();
            let (mut last, mut switches, mut n, mut hit) = (None, 0, 0, 0);
            for (f, (b, visible)) in truth.iter().enumerate() {
                if *visible < 0.3 || f == 0 {
                    continue;
                }
                n += 1;
                let best = by_frame.get(&f).and_then(|dets| {
                    dets.iter()
                        .filter_map(|d| {
                            let r = &d.relative_bounding_box;
                            let px = [
                                f64::from(r.xmin) * f64::from(W),
                                f64::from(r.ymin) * f64::from(H),
                                f64::from(r.xmax()) * f64::from(W),
                                f64::from(r.ymax()) * f64::from(H),
                            ];
                            let v = iou(&clip(&px), &clip(b));
                            (v >= 0.5).then_some((v, d.id))
                        })
                        .max_by(|a, b| a.0.total_cmp(&b.0))
                });
                if let Some((_, Some(id))) = best {
                    hit += 1;
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                    if last.is_some_and(|l| l != id) {
                        switches += 1;
                    }
                    last = Some(id);
                }
            }
            println!(
                "| {si} {} | {n} | {:.2} | {} | {switches} |",
                seq.names[i],
                hit as f64 / n.max(1) as f64,
                ids.len()
            );
            total_ids += ids.len();
            total_switches += switches;
            covered += hit;
            frames += n;
        }
    }
    println!(
        "\nAll objects: coverage {:.3}, {total_ids} distinct ids for {} objects, {total_switches} id switches",
        covered as f64 / frames.max(1) as f64,
        sequences.iter().map(|s| s.truth.len()).sum::<usize>()
    );
    Ok(())
}

/// `--extract VIDEO N,N,..`: writes those frames as PNGs next to the video (for looking
/// at the annotated output).
fn extract(video: &str, list: &str) -> Res<()> {
    for n in list.split(',') {
        let n: usize = n.trim().parse()?;
        let frame = video_frame(Path::new(video), n)?;
        let out = format!("{}_frame{n}.png", video.trim_end_matches(".mp4"));
        opencv::imgcodecs::imwrite(&out, &frame, &core::Vector::new())?;
        println!("wrote {out}");
    }
    Ok(())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 4 && args[1] == "--extract" {
        return extract(&args[2], &args[3]);
    }
    core::set_num_threads(1)?;
    TRACKER_THREAD.store(
        args.iter().any(|a| a == "--tracker-thread"),
        Ordering::Relaxed,
    );
    let ours_only = args.iter().any(|a| a == "--ours-only");
    let timing_only = args.iter().any(|a| a == "--timing-only");
    if args.iter().any(|a| a == "--tracker-only") {
        return tracker_only(&render(0, 1.0)?);
    }
    if args.iter().any(|a| a == "--ids") {
        return identity_eval(&[render(0, 1.0)?, render(1, 1.6)?]);
    }
    let close_up = args.iter().any(|a| a == "--close-up");
    let sequences = if close_up {
        vec![render_close_up()?]
    } else {
        vec![render(0, 1.0)?, render(1, 1.6)?]
    };
    println!("# Box tracking evaluation\n");
    println!(
        "{} sequences x {FRAMES} frames, {W}x{H}, 6 objects each; scored frames: object >= 30% in view\n",
        sequences.len()
    );
    let mut totals: HashMap<&str, (Vec<f64>, Vec<f64>)> = HashMap::new();
    let mut per_object: Vec<(String, &str, f64, f64)> = Vec::new();
    let all_names = [
        "mediagraph BoxTracker",
        "OpenCV KCF",
        "OpenCV CSRT",
        "OpenCV MedianFlow",
    ];
    let names: &[&str] = if ours_only || timing_only {
        &all_names[..1]
    } else {
        &all_names
    };
    let mut timing_10: HashMap<&str, f64> = HashMap::new();
    let mut graph_times: Vec<(usize, GraphTiming)> = Vec::new();
    let mut tracker_times: Vec<(usize, f64)> = Vec::new();
    for (si, seq) in sequences.iter().enumerate() {
        let rgb: Vec<ImageFrame> = seq
            .frames_bgr
            .iter()
            .map(to_rgb_frame)
            .collect::<Res<_>>()?;
        let objects = start_boxes(seq, seq.truth.len());
        let mut results: Vec<(&str, Vec<Track>)> = Vec::new();
        let (ours, _) = run_graph(seq, &objects, &rgb)?;
        if let Some(k) = args.iter().position(|a| a == "--dump-object") {
            let want = args.get(k + 1).map_or("", String::as_str);
            for (i, name) in seq.names.iter().enumerate() {
                if *name != want {
                    continue;
                }
                for (f, (gt, vis)) in seq.truth[i].iter().enumerate() {
                    let b = ours[i][f];
                    let v = b.map_or(-1.0, |b| iou(&clip(&b), &clip(gt)));
                    println!(
                        "seq {si} {name} frame {f}: truth {:.0?} visible {vis:.2} ours {:.0?} IoU {v:.2}",
                        gt,
                        b.unwrap_or_default()
                    );
                }
            }
        }
        results.push((names[0], ours));
        for (name, kind) in names[1..]
            .iter()
            .zip([CvKind::Kcf, CvKind::Csrt, CvKind::MedianFlow])
        {
            let (tracks, _) = run_opencv(kind, seq, &objects)?;
            results.push((name, tracks));
        }
        for (name, tracks) in &results {
            for (i, track) in tracks.iter().enumerate() {
                let (ious, errs) = score(track, &seq.truth[i]);
                per_object.push((
                    format!("{} {}", si, seq.names[i]),
                    name,
                    success_auc(&ious),
                    precision20(&errs),
                ));
                let e = totals.entry(name).or_default();
                e.0.extend(ious);
                e.1.extend(errs);
            }
        }
        if si == 0 && !ours_only && !close_up {
            // Timing on the first sequence: the box counts alternate within each round, so
            // that a change of the machine's load between rounds affects them alike.
            let counts = [1usize, 10, 20];
            let mut best = counts.map(|_| GraphTiming {
                wall: f64::MAX,
                without_motion_analysis: f64::MAX,
                box_tracker: f64::MAX,
            });
            for _ in 0..graph_timing_rounds() {
                for (&n, best) in counts.iter().zip(best.iter_mut()) {
                    let (_, t) = run_graph(seq, &start_boxes(seq, n), &rgb)?;
                    best.wall = best.wall.min(t.wall);
                    best.without_motion_analysis =
                        best.without_motion_analysis.min(t.without_motion_analysis);
                    best.box_tracker = best.box_tracker.min(t.box_tracker);
                }
            }
            graph_times.extend(counts.into_iter().zip(best));
            let data = tracking_data(&rgb)?;
            for n in [1usize, 10, 20] {
                tracker_times.push((n, tracker_only_ms(&data, None, seq, n)?));
            }
            let ten = start_boxes(seq, 10);
            for (name, kind) in
                names[1..]
                    .iter()
                    .zip([CvKind::Kcf, CvKind::Csrt, CvKind::MedianFlow])
            {
                let (_, ms) = run_opencv(kind, seq, &ten)?;
                timing_10.insert(name, ms);
            }
        }
        println!("sequence {si}: {}", seq.name);
    }
    println!("\n## Accuracy (all objects, both sequences)\n");
    println!("| tracker | success AUC | precision @ 20 px | scored frames |");
    println!("|---|---|---|---|");
    for &name in names {
        let (ious, errs) = &totals[name];
        println!(
            "| {name} | {:.3} | {:.3} | {} |",
            success_auc(ious),
            precision20(errs),
            ious.len()
        );
    }
    println!("\n## Per object (success AUC / precision @ 20 px)\n");
    print!("| object |");
    for n in names {
        print!(" {n} |");
    }
    println!();
    println!("|---|{}", "---|".repeat(names.len()));
    let objs: Vec<String> = {
        let mut v: Vec<String> = Vec::new();
        for p in &per_object {
            if !v.contains(&p.0) {
                v.push(p.0.clone());
            }
        }
        v
    };
    for o in objs {
        print!("| {o} |");
        for &n in names {
            if let Some(p) = per_object.iter().find(|p| p.0 == o && p.1 == n) {
                print!(" {:.2} / {:.2} |", p.2, p.3);
            }
        }
        println!();
    }
    if ours_only || close_up {
        return Ok(());
    }
    println!("\n## Speed (sequence 0, one thread, ms per frame)\n");
    println!("| what | 1 box | 10 boxes | 20 boxes |");
    println!("|---|---|---|---|");
    let row = |v: &[f64]| {
        v.iter()
            .map(|ms| format!("{ms:.3}"))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let graph = |f: fn(&GraphTiming) -> f64| graph_times.iter().map(|(_, t)| f(t)).collect();
    let rows: [(&str, Vec<f64>); 4] = [
        (
            "box-tracking subgraph (resize + motion analysis + packing + tracking), wall",
            graph(|t| t.wall),
        ),
        (
            "subgraph nodes but motion analysis (downscale + flow packager + box tracker), process time",
            graph(|t| t.without_motion_analysis),
        ),
        ("box tracker node, process time", graph(|t| t.box_tracker)),
        (
            "BoxTracker::push_frame alone (recorded tracking data, mean)",
            tracker_times.iter().map(|(_, ms)| *ms).collect(),
        ),
    ];
    for (what, v) in &rows {
        println!("| {what} | {} |", row(v));
    }
    for name in &names[1..] {
        println!("| {name} update, 10 boxes | | {:.3} | |", timing_10[name]);
    }
    println!("\n20 boxes / 1 box, and the cost of each box beyond the first:");
    for (what, v) in &rows {
        println!(
            "- {what}: {:.2}x, {:.2} µs per extra box",
            v[2] / v[0],
            (v[2] - v[0]) * 1000.0 / 19.0
        );
    }
    if let Some(kcf) = timing_10.get("OpenCV KCF") {
        println!(
            "\nKCF (10 boxes) / subgraph wall (10 boxes): {:.1}x",
            kcf / graph_times[1].1.wall
        );
    }
    if timing_only {
        return Ok(());
    }
    let auc = |n: &str| success_auc(&totals[n].0);
    let best_cv = names[1..].iter().map(|n| auc(n)).fold(0.0, f64::max);
    println!(
        "success AUC: ours {:.3} vs best OpenCV {:.3} -> {}",
        auc(names[0]),
        best_cv,
        if auc(names[0]) > best_cv {
            "above"
        } else {
            "NOT above"
        }
    );
    Ok(())
}
