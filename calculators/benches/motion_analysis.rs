//! MotionAnalysis + FlowPackager on the sample videos at 320x240, one thread: per-frame
//! time (median, p90) with the per-stage breakdown, clip statistics, and a rendered video
//! with the feature tracks drawn.
//!
//! ```text
//! cargo bench -p mediagraph-calculators --bench motion_analysis
//! ```
//!
//! Videos come from `MEDIAGRAPH_DATA_DIR`, else `<workspace>/data` (`scripts/setup videos`).
//! Frames are decoded and resized to 320x240 (INTER_AREA) before timing; the timed part is
//! RGB -> gray, `MotionAnalysis::process` and `FlowPackager::pack`. OpenCV is set to one
//! thread. Writes `out/tracking_stats_<clip>.json`, `out/tracks_<clip>.mp4` (640x480,
//! green = background tracks, red = independently moving) and a still of frame 100
//! (`out/tracks_<clip>_frame100.png`), and prints Markdown tables.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use mediagraph_calculators::tracking::visualize::TrackHistory;
use mediagraph_calculators::tracking::{
    CameraMotionType, FlowPackager, FlowPackagerOptions, GrayImage, MotionAnalysis,
    MotionAnalysisOptions, StageTimes,
};
use opencv::core::{Mat, Size};
use opencv::prelude::*;
use opencv::{imgproc, videoio};

const MAX_FRAMES: usize = 1000;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

use mediagraph_calculators::sample_data::data_dir;

/// Decoded frames resized to 320x240, as RGB bytes.
fn load(path: &Path) -> Result<(Vec<Vec<u8>>, f64), String> {
    let p = path.to_str().ok_or("path is not UTF-8")?;
    let mut cap =
        videoio::VideoCapture::from_file(p, videoio::CAP_ANY).map_err(|e| e.to_string())?;
    if !cap.is_opened().map_err(|e| e.to_string())? {
        return Err(format!("cannot open {p}"));
    }
    let fps = cap.get(videoio::CAP_PROP_FPS).unwrap_or(30.0);
    let mut frames = Vec::new();
    let mut frame = Mat::default();
    while frames.len() < MAX_FRAMES && cap.read(&mut frame).map_err(|e| e.to_string())? {
        if frame.empty() {
            break;
        }
        let mut small = Mat::default();
        imgproc::resize(
            &frame,
            &mut small,
            Size::new(320, 240),
            0.0,
            0.0,
            imgproc::INTER_AREA,
        )
        .map_err(|e| e.to_string())?;
        let mut rgb = Mat::default();
        imgproc::cvt_color(&small, &mut rgb, imgproc::COLOR_BGR2RGB, 0)
            .map_err(|e| e.to_string())?;
        frames.push(rgb.data_bytes().map_err(|e| e.to_string())?.to_vec());
    }
    Ok((frames, if fps > 0.0 { fps } else { 30.0 }))
}

fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() - 1) as f64 * p).round() as usize]
}

struct ClipResult {
    name: String,
    frames: usize,
    total: Vec<f64>,
    stages: Vec<StageTimes>,
    gray: Vec<f64>,
    pack: Vec<f64>,
    stats: serde_json::Value,
}

fn run_clip(name: &str) -> Result<ClipResult, String> {
    let (frames, fps) = load(&data_dir().join(name))?;
    let mut ma = MotionAnalysis::new(MotionAnalysisOptions::default());
    let packager = FlowPackager::new(FlowPackagerOptions::default());
    let (mut total, mut stages, mut gray_t, mut pack_t) = (vec![], vec![], vec![], vec![]);
    let mut features = Vec::new();
    let mut types: HashMap<&'static str, usize> = HashMap::new();
    let mut track_frames: HashMap<i32, usize> = HashMap::new();
    let mut results = Vec::with_capacity(frames.len());
    for (k, rgb) in frames.iter().enumerate() {
        let t0 = Instant::now();
        let gray =
            GrayImage::from_interleaved(320, 240, 3, false, rgb).map_err(|e| e.to_string())?;
        let t1 = Instant::now();
        let (camera, flow) = ma
            .process(&gray, (k as f64 * 1e6 / fps) as i64)
            .map_err(|e| e.to_string())?;
        let t2 = Instant::now();
        let data = packager.pack(&flow, Some(&camera));
        let t3 = Instant::now();
        std::hint::black_box(&data);
        total.push((t3 - t0).as_secs_f64() * 1e3);
        gray_t.push((t1 - t0).as_secs_f64() * 1e3);
        pack_t.push((t3 - t2).as_secs_f64() * 1e3);
        stages.push(ma.stage_times());
        if k > 0 {
            features.push(flow.features.len() as f64);
            *types.entry(camera.motion_type.name()).or_default() += 1;
        }
        for f in &flow.features {
            *track_frames.entry(f.track_id).or_default() += 1;
        }
        results.push(flow);
    }

    // Rendered video with the tracks (2x upscaled for viewing).
    let out_dir = workspace().join("out");
    std::fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;
    let stem = name.split('.').next().unwrap_or(name);
    let video_path = out_dir.join(format!("tracks_{stem}.mp4"));
    let fourcc = videoio::VideoWriter::fourcc('m', 'p', '4', 'v').map_err(|e| e.to_string())?;
    let mut writer = videoio::VideoWriter::new(
        video_path.to_str().ok_or("path")?,
        fourcc,
        fps,
        Size::new(640, 480),
        true,
    )
    .map_err(|e| e.to_string())?;
    let mut history = TrackHistory::new(15);
    for (k, (rgb, flow)) in frames.iter().zip(&results).enumerate() {
        let mut up = vec![0u8; 640 * 480 * 3];
        for y in 0..480 {
            for x in 0..640 {
                let s = ((y / 2) * 320 + x / 2) * 3;
                let d = (y * 640 + x) * 3;
                up[d] = rgb[s + 2];
                up[d + 1] = rgb[s + 1];
                up[d + 2] = rgb[s];
            }
        }
        // Draw in RGB at nominal scale 1 (640x480), then the buffer is BGR for OpenCV:
        // swap the colour channels of the drawing by drawing into an RGB copy.
        let mut rgb_up: Vec<u8> = up.chunks(3).flat_map(|p| [p[2], p[1], p[0]]).collect();
        history.update(flow, 1.0);
        history.draw(flow, &mut rgb_up, 640, 480, 3);
        let bgr: Vec<u8> = rgb_up.chunks(3).flat_map(|p| [p[2], p[1], p[0]]).collect();
        let mat = Mat::new_rows_cols_with_bytes::<opencv::core::Vec3b>(480, 640, &bgr)
            .map_err(|e| e.to_string())?;
        writer.write(&mat).map_err(|e| e.to_string())?;
        if k == 100 {
            let png = out_dir.join(format!("tracks_{stem}_frame100.png"));
            opencv::imgcodecs::imwrite(
                png.to_str().ok_or("path")?,
                &mat,
                &opencv::core::Vector::new(),
            )
            .map_err(|e| e.to_string())?;
        }
    }
    writer.release().map_err(|e| e.to_string())?;

    let mut lengths: Vec<usize> = track_frames.values().copied().collect();
    lengths.sort_unstable();
    let buckets = [
        (1, 4),
        (5, 9),
        (10, 29),
        (30, 99),
        (100, 299),
        (300, usize::MAX),
    ];
    let hist: Vec<serde_json::Value> = buckets
        .iter()
        .map(|&(lo, hi)| {
            let n = lengths.iter().filter(|&&l| l >= lo && l <= hi).count();
            serde_json::json!({"frames": if hi == usize::MAX { format!("{lo}+") } else { format!("{lo}-{hi}") }, "tracks": n})
        })
        .collect();
    let n_frames = features.len().max(1) as f64;
    let type_share: serde_json::Map<String, serde_json::Value> = CameraMotionType::ALL
        .iter()
        .map(|t| {
            let n = types.get(t.name()).copied().unwrap_or(0);
            (t.name().to_string(), serde_json::json!(n as f64 / n_frames))
        })
        .collect();
    let lf: Vec<f64> = lengths.iter().map(|&l| l as f64).collect();
    let stats = serde_json::json!({
        "clip": name,
        "frames": frames.len(),
        "features_per_frame": {
            "mean": features.iter().sum::<f64>() / n_frames,
            "median": percentile(&features, 0.5),
            "min": features.iter().copied().fold(f64::INFINITY, f64::min),
            "max": features.iter().copied().fold(0.0, f64::max),
        },
        "track_length_frames": {
            "tracks": lengths.len(),
            "median": percentile(&lf, 0.5),
            "p90": percentile(&lf, 0.9),
            "max": lengths.last().copied().unwrap_or(0),
            "histogram": hist,
        },
        "camera_motion_type_share": type_share,
        "video": video_path.display().to_string(),
    });
    std::fs::write(
        out_dir.join(format!("tracking_stats_{stem}.json")),
        serde_json::to_string_pretty(&stats).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    Ok(ClipResult {
        name: name.to_string(),
        frames: frames.len(),
        total,
        stages,
        gray: gray_t,
        pack: pack_t,
        stats,
    })
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    if let Err(e) = opencv::core::set_num_threads(1) {
        eprintln!("set_num_threads: {e}");
    }
    let mut results = Vec::new();
    for clip in ["vtest.avi", "bikes.mp4"] {
        match run_clip(clip) {
            Ok(r) => results.push(r),
            Err(e) => eprintln!("{clip}: skipped ({e}); run scripts/setup videos"),
        }
    }
    println!("| clip | frames | median ms/frame | p90 | gray | pyramid | KLT | outliers | camera | extraction | packager |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &results {
        let st = |f: fn(&StageTimes) -> f64| {
            percentile(&r.stages.iter().map(f).collect::<Vec<_>>(), 0.5)
        };
        let mean = |f: fn(&StageTimes) -> f64| {
            r.stages.iter().map(f).sum::<f64>() / r.stages.len().max(1) as f64
        };
        println!(
            "| {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} (mean {:.3}) | {:.3} |",
            r.name,
            r.frames,
            percentile(&r.total, 0.5),
            percentile(&r.total, 0.9),
            percentile(&r.gray, 0.5),
            st(|s| s.pyramid),
            st(|s| s.tracking),
            st(|s| s.outliers),
            st(|s| s.camera),
            st(|s| s.extraction),
            mean(|s| s.extraction),
            percentile(&r.pack, 0.5),
        );
    }
    for r in &results {
        println!(
            "\n{}",
            serde_json::to_string_pretty(&r.stats).unwrap_or_default()
        );
    }
}
