//! Per-frame latency of the object detector (SSD MobileNetV2 OIDv4 on ONNX Runtime), stage by
//! stage, and end-to-end frames per second of `graphs/object_detection.yaml`.
//!
//! ```text
//! cargo bench -p mediagraph-calculators --bench detection
//! ```
//!
//! Needs `scripts/setup` (model, ONNX Runtime, sample videos). For each sample video:
//! 1. every frame is decoded first (not timed), then [`ObjectDetector::detect`] runs on each
//!    with one ONNX Runtime thread; preprocess (resize + normalize), inference and
//!    postprocess (decode + NMS + labels) are timed separately: mean, p50, p99 in ms;
//! 2. the whole graph (decode -> detection subgraph -> annotation overlay -> .mp4 encoder)
//!    runs on the video, best of `RUNS`, in frames per second.
//!
//! Prints Markdown tables and the load average before and after (the machine is shared).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mediagraph_calculators::detection::{ObjectDetector, ObjectDetectorOptions, StageTimes};
use mediagraph_calculators::image::ImageFrame;
use mediagraph_framework::{Graph, Packet};
use opencv::core::Mat;
use opencv::prelude::*;
use opencv::videoio;

const RUNS: usize = 3;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

use mediagraph_calculators::sample_data::data_dir;

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn frames_of(path: &str) -> Result<Vec<ImageFrame>, String> {
    let mut cap =
        videoio::VideoCapture::from_file(path, videoio::CAP_ANY).map_err(|e| e.to_string())?;
    let mut mat = Mat::default();
    let mut frames = Vec::new();
    while cap.read(&mut mat).map_err(|e| e.to_string())? && !mat.empty() {
        frames.push(ImageFrame::from_bgr_mat(&mat).map_err(|e| e.to_string())?);
    }
    Ok(frames)
}

/// `(mean, p50, p99)` in milliseconds.
fn summary(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mean = v.iter().map(|&d| ms(d)).sum::<f64>() / v.len().max(1) as f64;
    let at = |q: f64| ms(v[((v.len() - 1) as f64 * q).round() as usize]);
    (mean, at(0.5), at(0.99))
}

/// How one stage's time is read from a [`StageTimes`].
type Stage = fn(&StageTimes) -> Duration;

fn latency(detector: &mut ObjectDetector, frames: &[ImageFrame]) -> Result<Vec<String>, String> {
    let mut times: Vec<StageTimes> = Vec::with_capacity(frames.len());
    // Warm-up (first inference allocates).
    detector.detect(&frames[0]).map_err(|e| e.to_string())?;
    for f in frames {
        times.push(detector.detect(f).map_err(|e| e.to_string())?.1);
    }
    let stages: [(&str, Stage); 4] = [
        ("preprocess", |t| t.preprocess),
        ("inference", |t| t.inference),
        ("postprocess", |t| t.postprocess),
        ("total", |t| t.preprocess + t.inference + t.postprocess),
    ];
    Ok(stages
        .iter()
        .map(|(name, f)| {
            let (mean, p50, p99) = summary(times.iter().map(f).collect());
            format!("{name} {mean:.2} / {p50:.2} / {p99:.2}")
        })
        .collect())
}

fn graph_fps(video: &str, out: &Path) -> Result<(u64, f64), String> {
    let mut best = 0.0f64;
    let mut frames = 0;
    for _ in 0..RUNS {
        let mut graph = Graph::from_yaml_file(workspace().join("graphs/object_detection.yaml"))
            .map_err(|e| e.to_string())?;
        let count = Arc::new(AtomicU64::new(0));
        let c = count.clone();
        graph
            .observe_output_stream("detections", move |_| {
                c.fetch_add(1, Ordering::Relaxed);
                Ok(())
            })
            .map_err(|e| e.to_string())?;
        let side = HashMap::from([
            ("input_video".to_string(), Packet::new(video.to_string())),
            (
                "output_video".to_string(),
                Packet::new(out.to_string_lossy().into_owned()),
            ),
        ]);
        let t = Instant::now();
        graph.run(side).map_err(|e| e.to_string())?;
        frames = count.load(Ordering::Relaxed);
        best = best.max(frames as f64 / t.elapsed().as_secs_f64());
    }
    Ok((frames, best))
}

fn main() -> Result<(), String> {
    // `cargo bench` passes `--bench`; nothing to parse.
    let out_dir =
        std::env::temp_dir().join(format!("mediagraph-detection-bench-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;
    println!("load average before: {}", load_average());
    let mut detector = ObjectDetector::new(ObjectDetectorOptions::oidv4(0.4))
        .map_err(|e| format!("{e} (run scripts/setup)"))?;
    println!();
    println!("| video | frames | stage: mean / p50 / p99 ms (1 ORT thread) | graph fps (best of {RUNS}) |");
    println!("|---|---|---|---|");
    for name in ["vtest.avi", "bikes.mp4"] {
        let path = data_dir().join(name).to_string_lossy().into_owned();
        let frames =
            frames_of(&path).map_err(|e| format!("{path}: {e} (run scripts/setup videos)"))?;
        if frames.is_empty() {
            return Err(format!("{path}: no frames"));
        }
        let stages = latency(&mut detector, &frames)?;
        drop(frames);
        let (n, fps) = graph_fps(&path, &out_dir.join("det.mp4"))?;
        println!("| {name} | {n} | {} | {fps:.1} |", stages.join("<br>"));
    }
    println!();
    println!("load average after: {}", load_average());
    let _ = std::fs::remove_dir_all(&out_dir);
    Ok(())
}
