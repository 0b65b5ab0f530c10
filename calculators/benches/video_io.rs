//! Decode and decode+encode throughput of the OpenCV video calculators on the sample videos.
//!
//! ```text
//! cargo bench -p mediagraph-calculators --bench video_io
//! ```
//!
//! For each sample video (from `MEDIAGRAPH_DATA_DIR`, else `<workspace>/data`; run
//! `scripts/setup videos` first) it measures, best of `RUNS` runs, in frames per second:
//! * OpenCV alone: `VideoCapture::read` in a loop (BGR frames, no graph) — the ceiling;
//! * decode: a graph with `OpenCvVideoDecoderCalculator` only (frames become SRGB
//!   `ImageFrame`s and go to an observer);
//! * decode + encode to .mp4 (`mp4v`) and to .avi (`MJPG`) with
//!   `OpenCvVideoEncoderCalculator`.
//!
//! Prints a Markdown table.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use mediagraph_framework::{Graph, Packet};
use opencv::core::Mat;
use opencv::prelude::*;
use opencv::videoio;

// Link the calculators so the graphs can name them.
use mediagraph_calculators as _;

const RUNS: usize = 3;

use mediagraph_calculators::sample_data::data_dir;

/// Best frames/s over `RUNS` runs of `f`, which returns the number of frames it handled.
fn best_fps(mut f: impl FnMut() -> Result<u64, String>) -> Result<(u64, f64), String> {
    let mut best = 0.0f64;
    let mut frames = 0;
    for _ in 0..RUNS {
        let t = Instant::now();
        frames = f()?;
        best = best.max(frames as f64 / t.elapsed().as_secs_f64());
    }
    Ok((frames, best))
}

fn opencv_only(path: &str) -> Result<u64, String> {
    let mut cap =
        videoio::VideoCapture::from_file(path, videoio::CAP_FFMPEG).map_err(|e| e.to_string())?;
    let mut frame = Mat::default();
    let mut n = 0;
    while cap.read(&mut frame).map_err(|e| e.to_string())? && !frame.empty() {
        n += 1;
    }
    Ok(n)
}

fn run_graph(yaml: &str, side: &[(&str, &str)], count_stream: Option<&str>) -> Result<u64, String> {
    let mut graph = Graph::from_yaml_str(yaml).map_err(|e| e.to_string())?;
    let count = Arc::new(AtomicU64::new(0));
    if let Some(stream) = count_stream {
        let c = count.clone();
        graph
            .observe_output_stream(stream, move |_| {
                c.fetch_add(1, Ordering::Relaxed);
                Ok(())
            })
            .map_err(|e| e.to_string())?;
    }
    let side: HashMap<String, Packet> = side
        .iter()
        .map(|(k, v)| (k.to_string(), Packet::new(v.to_string())))
        .collect();
    graph.run(side).map_err(|e| e.to_string())?;
    let decoded = graph
        .stats()
        .iter()
        .find(|s| s.calculator == "OpenCvVideoDecoderCalculator")
        .map_or(0, |s| s.packets_out);
    Ok(match count_stream {
        Some(_) => count.load(Ordering::Relaxed),
        None => decoded,
    })
}

const DECODE: &str = r#"
input_side_packet: [input_video]
output_stream: [frames]
node:
  - calculator: OpenCvVideoDecoderCalculator
    input_side_packet: ["INPUT_FILE_PATH:input_video"]
    output_stream: ["VIDEO:frames"]
"#;

const TRANSCODE: &str = r#"
input_side_packet: [input_video, output_video]
node:
  - calculator: OpenCvVideoDecoderCalculator
    input_side_packet: ["INPUT_FILE_PATH:input_video"]
    output_stream: ["VIDEO:frames"]
  - calculator: OpenCvVideoEncoderCalculator
    input_stream: ["VIDEO:frames"]
    input_side_packet: ["OUTPUT_FILE_PATH:output_video"]
"#;

fn main() -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    println!("| video | frames | OpenCV read only | decode (graph) | decode + encode .mp4 (mp4v) | decode + encode .avi (MJPG) |");
    println!("|---|---|---|---|---|---|");
    for name in ["vtest.avi", "bikes.mp4"] {
        let path = data_dir().join(name);
        if !path.is_file() {
            return Err(format!(
                "{} is missing: run `scripts/setup videos`",
                path.display()
            ));
        }
        let path = path.to_string_lossy().into_owned();
        let (n, raw) = best_fps(|| opencv_only(&path))?;
        let (_, dec) = best_fps(|| run_graph(DECODE, &[("input_video", &path)], Some("frames")))?;
        let mut enc = Vec::new();
        for ext in ["mp4", "avi"] {
            let out = tmp.path().join(format!("out.{ext}"));
            let out = out.to_string_lossy().into_owned();
            let (_, fps) = best_fps(|| {
                run_graph(
                    TRANSCODE,
                    &[("input_video", &path), ("output_video", &out)],
                    None,
                )
            })?;
            enc.push(fps);
        }
        println!(
            "| {name} | {n} | {raw:.0} | {dec:.0} | {:.0} | {:.0} |",
            enc[0], enc[1]
        );
    }
    Ok(())
}
