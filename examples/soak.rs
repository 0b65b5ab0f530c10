//! Soak run: the detection + tracking pipeline (`graphs/subgraphs/detection_tracking.yaml`) fed
//! a sample video over and over, for a long time, reporting throughput, memory and queue
//! high-water marks as it goes, so that a leak or a slow-down shows.
//!
//! ```sh
//! cargo run --release --example soak -- [FRAMES] [VIDEO]    # defaults: 100000 data/vtest.avi
//! ```
//!
//! Prints a line every 10,000 frames, then the verdict: peak memory after 10% of the run vs at
//! the end (goal: within 10%), the first vs the last window's frames per second, and whether
//! any queue grew past its limit. Not part of the test suite (it takes about 10 minutes).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use mediagraph::{Graph, Packet, Timestamp};

/// Peak and current resident memory of this process, in MiB.
fn memory_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// The pipeline fed by a graph input stream instead of a decoder.
fn pipeline_yaml() -> String {
    format!(
        r#"subgraphs: ["{}"]
input_stream: [input_frames]
max_queue_size: 8
node:
  - calculator: DetectionTrackingSubgraph
    name: pipeline
    input_stream: ["VIDEO:input_frames"]
    output_stream: ["DETECTIONS:tracked_detections"]
"#,
        repo()
            .join("graphs/subgraphs/detection_tracking.yaml")
            .display()
    )
}

const DECODER: &str = r#"
input_side_packet: [input_video]
output_stream: [frames]
node:
  - calculator: OpenCvVideoDecoderCalculator
    input_side_packet: ["INPUT_FILE_PATH:input_video"]
    output_stream: ["VIDEO:frames"]
"#;

/// What the feeding loop keeps between frames.
struct Feed {
    pipeline: Graph,
    total: u64,
    window: u64,
    fed: u64,
    offset: i64,
    last_ts: i64,
    window_start: Instant,
    fps_per_window: Vec<f64>,
    memory_after_first_window: f64,
    outputs: Arc<AtomicU64>,
}

impl Feed {
    /// Feeds one decoded frame (blocking while the pipeline's queues are full, which holds the
    /// decoder back) and reports every `window` frames.
    fn frame(&mut self, frame: &Packet) -> mediagraph::Result<()> {
        if self.fed >= self.total {
            return Ok(());
        }
        self.last_ts = self.offset + frame.timestamp().micros();
        self.pipeline
            .add_packet("input_frames", frame.at(Timestamp::new(self.last_ts)))?;
        self.fed += 1;
        if self.fed % self.window == 0 {
            self.report();
        }
        Ok(())
    }

    fn report(&mut self) {
        let fps = self.window as f64 / self.window_start.elapsed().as_secs_f64();
        self.window_start = Instant::now();
        self.fps_per_window.push(fps);
        let (peak, rss) = memory_mib();
        if self.fed == self.window {
            self.memory_after_first_window = peak;
        }
        let stats = self.pipeline.stats();
        let (high_water, queue) = stats
            .iter()
            .flat_map(|s| {
                s.queue_high_water
                    .iter()
                    .map(move |(stream, h)| (*h, format!("{stream} -> {}", s.name)))
            })
            .max()
            .unwrap_or_default();
        let growths: u64 = stats.iter().map(|s| s.queue_growths).sum();
        println!(
            "{:>8} frames  {fps:7.1} fps  peak {peak:7.1} MiB  rss {rss:7.1} MiB  max queue {high_water} ({queue})  queue growths {growths}  outputs {}",
            self.fed,
            self.outputs.load(Ordering::Relaxed)
        );
    }
}

/// What a soak run measured.
#[derive(Debug)]
pub struct Summary {
    /// Frames fed.
    pub frames: u64,
    /// Tracked-detection packets that came out.
    pub outputs: u64,
    /// Peak memory after the first tenth of the run and at the end (MiB).
    pub peak_mib: (f64, f64),
    /// Frames per second of the first and the last tenth.
    pub fps: (f64, f64),
    /// Queue growths (throttling deadlocks resolved) over the run.
    pub queue_growths: u64,
}

/// Feeds `total` frames of `video`, looping, through the pipeline, printing a line per tenth.
pub fn run(total: u64, video: &str) -> Result<Summary, Box<dyn std::error::Error>> {
    let window = (total / 10).max(1);
    let mut pipeline = Graph::from_yaml_str(&pipeline_yaml())?;
    let outputs = Arc::new(AtomicU64::new(0));
    let counter = outputs.clone();
    pipeline.observe_output_stream("tracked_detections", move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(())
    })?;
    pipeline.start_run(HashMap::new())?;
    let started = Instant::now();
    let feed = Arc::new(Mutex::new(Feed {
        pipeline,
        total,
        window,
        fed: 0,
        offset: 0,
        last_ts: 0,
        window_start: Instant::now(),
        fps_per_window: Vec::new(),
        memory_after_first_window: 0.0,
        outputs: outputs.clone(),
    }));
    println!("soak: {total} frames of {video}, a line every {window} frames");
    while feed.lock().map_err(|_| "lock")?.fed < total {
        let mut decoder = Graph::from_yaml_str(DECODER)?;
        let sink = feed.clone();
        decoder.observe_output_stream("frames", move |p| match sink.lock() {
            Ok(mut f) => f.frame(p),
            Err(_) => mediagraph::bail!("feed lock poisoned"),
        })?;
        decoder.run(HashMap::from([(
            "input_video".to_string(),
            Packet::new(video.to_string()),
        )]))?;
        let mut f = feed.lock().map_err(|_| "lock")?;
        f.offset = f.last_ts + 100_000;
    }
    let mut f = feed.lock().map_err(|_| "lock")?;
    f.pipeline.finish()?;
    let (peak, _) = memory_mib();
    let summary = Summary {
        frames: f.fed,
        outputs: outputs.load(Ordering::Relaxed),
        peak_mib: (f.memory_after_first_window, peak),
        fps: (
            f.fps_per_window.first().copied().unwrap_or(0.0),
            f.fps_per_window.last().copied().unwrap_or(0.0),
        ),
        queue_growths: f.pipeline.stats().iter().map(|s| s.queue_growths).sum(),
    };
    let growth = (peak / summary.peak_mib.0.max(1.0) - 1.0) * 100.0;
    println!(
        "soak done: {} frames in {:.0} s; peak memory {:.1} MiB after {window} frames, {peak:.1} MiB at the end ({growth:+.1}%); fps first tenth {:.1}, last {:.1}; queue growths {}",
        summary.frames,
        started.elapsed().as_secs_f64(),
        summary.peak_mib.0,
        summary.fps.0,
        summary.fps.1,
        summary.queue_growths,
    );
    Ok(summary)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let total: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let video = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| repo().join("data/vtest.avi").display().to_string());
    run(total, &video)?;
    Ok(())
}
