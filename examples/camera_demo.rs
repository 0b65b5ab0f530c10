//! Object detection + tracking live on a camera, in a window: the pipeline of
//! `graphs/object_detection_tracking.yaml` (SSD detector at 3 fps, box tracker on every frame,
//! one persistent id per object) with boxes, labels, scores, ids and the frame rate drawn on
//! every frame. Unlike that recorded-video graph it does not look ahead: each frame is shown
//! as soon as it is tracked (the subgraph's `lookahead_ms: 0`), and a re-detected box eases
//! to its new place.
//!
//! ```text
//! cargo run --release --example camera_demo                    # camera 0, in a window
//! cargo run --release --example camera_demo -- --device 2      # another camera
//! cargo run --release --example camera_demo -- --input data/vtest.avi
//! cargo run --release --example camera_demo -- --input data/vtest.avi --headless \
//!     --output out/camera_demo.mp4
//! ```
//!
//! Options:
//! * `--input FILE`: play a video file instead of the camera (every frame is processed);
//! * `--device N`: camera index (default 0);
//! * `--headless`: write the annotated frames to a video file (`--output`, default
//!   `out/camera_demo.mp4`) instead of opening a window;
//! * `--max-frames N`: stop after N frames (default: the whole file, or until `q`/Esc in the
//!   window; a headless camera run stops after 300 frames);
//! * `--detection-fps R`: detector rate (default 3);
//! * `--set NODE.KEY=VALUE`: change a node option of the graph, as with `mediagraph run`
//!   (e.g. `--set pipeline.tracking.tracked_detection_manager.cross_label_min_iou=0`).
//!
//! Live, a flow limiter in front of the pipeline drops camera frames while the previous ones
//! are still being processed, so the picture stays current on a slow machine. Without a camera
//! (or without a display for the window) the demo stops with a message saying what is missing.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use mediagraph::calculators::detection::Detection;
use mediagraph::calculators::image::{Annotations, ImageFrame, TextAnnotation};
use mediagraph::config::{load_str_with, OptionOverride};
use mediagraph::prelude::*;
use mediagraph::{Graph, SidePackets};

/// What the demo does.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Args {
    /// A video file to play instead of the camera.
    pub input: Option<PathBuf>,
    /// Camera index.
    pub device: i32,
    /// Write a video file instead of opening a window.
    pub headless: bool,
    /// The video file written in headless mode.
    pub output: Option<PathBuf>,
    /// Stop after this many frames.
    pub max_frames: Option<u64>,
    /// Detector rate (frames per second).
    pub detection_fps: Option<f64>,
    /// Node options changed on top of the graph (`--set`).
    pub overrides: Vec<OptionOverride>,
}

/// Parses the command line (without the program name).
pub fn parse_args(args: &[String]) -> std::result::Result<Args, String> {
    let mut a = Args::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--input" => a.input = Some(PathBuf::from(value()?)),
            "--device" => a.device = value()?.parse().map_err(|e| format!("--device: {e}"))?,
            "--headless" => a.headless = true,
            "--output" => a.output = Some(PathBuf::from(value()?)),
            "--max-frames" => {
                a.max_frames = Some(value()?.parse().map_err(|e| format!("--max-frames: {e}"))?)
            }
            "--detection-fps" => {
                let r: f64 = value()?
                    .parse()
                    .map_err(|e| format!("--detection-fps: {e}"))?;
                if !(r > 0.0 && r <= 1000.0) {
                    return Err("--detection-fps must be in (0, 1000]".into());
                }
                a.detection_fps = Some(r);
            }
            "--set" => a
                .overrides
                .push(value()?.parse().map_err(|e| format!("--set: {e}"))?),
            other => {
                return Err(format!(
                    "unknown argument {other} (see the top of examples/camera_demo.rs)"
                ))
            }
        }
    }
    Ok(a)
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Frames shown or written.
    pub frames: u64,
    /// Seconds from start to end of the run.
    pub seconds: f64,
    /// Tracked detections of every frame, in order.
    pub tracked: Vec<Vec<Detection>>,
    /// Where the annotated video was written (headless).
    pub output: Option<PathBuf>,
}

impl Summary {
    /// Distinct object ids seen.
    pub fn distinct_ids(&self) -> usize {
        let mut ids: Vec<u64> = self.tracked.iter().flatten().filter_map(|d| d.id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    }
}

/// Draws the measured frame rate (over the last second of wall time) in the bottom left corner;
/// stops the graph after `max_frames` frames.
struct FpsCalculator {
    times: std::collections::VecDeque<Instant>,
    frames: u64,
    max_frames: u64,
}

/// Options of [`FpsCalculator`].
#[derive(Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FpsOptions {
    /// Stop after this many frames (0: never).
    max_frames: u64,
}

const FPS_IMAGE: Input<ImageFrame> = Input::new("IMAGE");
const FPS_TEXT: Output<Annotations> = Output::new("ANNOTATIONS");

impl Calculator for FpsCalculator {
    type Options = FpsOptions;
    fn contract(cc: &mut Contract, _: &FpsOptions) -> Result<()> {
        cc.declare(&[&FPS_IMAGE, &FPS_TEXT])
    }
    fn create(options: &FpsOptions) -> Result<Self> {
        Ok(FpsCalculator {
            times: Default::default(),
            frames: 0,
            max_frames: options.max_frames,
        })
    }
    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        if cx.input(&FPS_IMAGE).is_empty() {
            return Ok(Flow::Continue);
        }
        let now = Instant::now();
        self.times.push_back(now);
        while self
            .times
            .front()
            .is_some_and(|t| now.duration_since(*t).as_secs_f64() > 1.0)
        {
            self.times.pop_front();
        }
        let span = self
            .times
            .front()
            .map_or(0.0, |t| now.duration_since(*t).as_secs_f64());
        let fps = if span > 0.0 {
            (self.times.len() - 1) as f64 / span
        } else {
            0.0
        };
        let text = TextAnnotation {
            display_text: format!("{fps:.1} fps"),
            left: 0.01,
            baseline: 0.97,
            normalized: true,
            font_height: None,
            color: None,
        };
        let ts = cx.input_timestamp();
        cx.output(&FPS_TEXT)
            .send(Annotations(vec![text.into()]), ts)?;
        self.frames += 1;
        if self.max_frames > 0 && self.frames >= self.max_frames {
            return Ok(Flow::Stop);
        }
        Ok(Flow::Continue)
    }
}

fn subgraph(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("graphs/subgraphs")
        .join(name)
        .display()
        .to_string()
}

/// The graph for `args` (YAML text).
pub fn graph_yaml(args: &Args, max_frames: u64) -> String {
    let live = args.input.is_none();
    let source = match &args.input {
        Some(_) => "  - calculator: OpenCvVideoDecoderCalculator\n    name: decoder\n    input_side_packet: [\"INPUT_FILE_PATH:input_video\"]\n    output_stream: [\"VIDEO:source_frames\", \"VIDEO_PRESTREAM:input_header\"]\n".to_string(),
        None => format!("  - calculator: CameraSourceCalculator\n    name: camera\n    output_stream: [\"VIDEO:source_frames\", \"VIDEO_PRESTREAM:input_header\"]\n    options: {{device: {}}}\n", args.device),
    };
    // Live: admit a new frame only when an earlier one has been drawn. Two in flight, so that
    // the next frame's tracking overlaps the current one's drawing (one works too: the
    // detection branch's PacketThinner decides on timestamp bounds, not only on the next frame).
    let limiter = if live {
        "  - calculator: FlowLimiterCalculator\n    name: flow_limiter\n    input_stream: [source_frames, \"FINISHED:annotated_frames\"]\n    input_stream_info: [{tag_index: FINISHED, back_edge: true}]\n    output_stream: [input_frames]\n    options: {max_in_flight: 2}\n"
    } else {
        "  - calculator: PassThroughCalculator\n    name: all_frames\n    input_stream: [source_frames]\n    output_stream: [input_frames]\n"
    };
    let sink = if args.headless {
        "  - calculator: OpenCvVideoEncoderCalculator\n    name: encoder\n    input_stream: [\"VIDEO:annotated_frames\", \"VIDEO_PRESTREAM:input_header\"]\n    input_side_packet: [\"OUTPUT_FILE_PATH:output_video\"]\n"
    } else {
        "  - calculator: DisplaySinkCalculator\n    name: display\n    input_stream: [\"IMAGE:annotated_frames\"]\n    options: {window_name: \"mediagraph: object detection + tracking (q to quit)\"}\n"
    };
    format!(
        r#"subgraphs: ["{pipeline}"]
input_side_packet: [input_video, output_video]
max_queue_size: 8
node:
{source}{limiter}  - calculator: DetectionTrackingSubgraph
    name: pipeline
    input_stream: ["VIDEO:input_frames"]
    output_stream: ["DETECTIONS:tracked_detections", "ANNOTATIONS:tracked_annotations"]
    options: {{detection_rate: {{period: {period}}}}}
  - calculator: CameraDemoFpsCalculator
    name: fps
    input_stream: ["IMAGE:input_frames"]
    output_stream: ["ANNOTATIONS:fps_text"]
    options: {{max_frames: {max_frames}}}
  - calculator: AnnotationOverlayCalculator
    name: overlay
    input_stream: ["IMAGE:input_frames", tracked_annotations, fps_text]
    output_stream: ["IMAGE:annotated_frames"]
    options: {{draw_frame_info: true}}
{sink}"#,
        pipeline = subgraph("detection_tracking.yaml"),
        period = (1e6 / args.detection_fps.unwrap_or(3.0)).round() as i64,
    )
}

/// Registers the demo's own calculator and loads the graph for `args`.
pub fn build_graph(args: &Args, max_frames: u64) -> std::result::Result<Graph, String> {
    mediagraph::calculator::register::<FpsCalculator>("CameraDemoFpsCalculator");
    let spec = load_str_with(&graph_yaml(args, max_frames), None, &args.overrides)
        .map_err(|e| e.to_string())?;
    Ok(Graph::new(spec))
}

/// Why the camera cannot be used, if that can be told before opening it.
fn missing_camera(device: i32) -> Option<String> {
    let path = format!("/dev/video{device}");
    (cfg!(target_os = "linux") && !Path::new(&path).exists()).then(|| {
        format!(
            "no camera: {path} does not exist (connect a camera, pick another with --device N, \
             or play a file with --input FILE)"
        )
    })
}

/// Runs the demo; returns what it did. Errors are messages for the user (no camera, no
/// display, unreadable file, missing model).
pub fn run(args: &Args) -> std::result::Result<Summary, String> {
    if args.input.is_none() {
        if let Some(message) = missing_camera(args.device) {
            return Err(message);
        }
    }
    if let Some(input) = &args.input {
        if !input.is_file() {
            return Err(format!("{}: no such file", input.display()));
        }
    }
    let max_frames = args
        .max_frames
        .unwrap_or(match (&args.input, args.headless) {
            (None, true) => 300,
            _ => 0,
        });
    let output = args.headless.then(|| {
        args.output
            .clone()
            .unwrap_or_else(|| PathBuf::from("out/camera_demo.mp4"))
    });
    if let Some(dir) = output.as_ref().and_then(|o| o.parent()) {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
    }
    let mut graph = build_graph(args, max_frames)?;
    let tracked: Arc<Mutex<Vec<Vec<Detection>>>> = Arc::default();
    let sink = tracked.clone();
    graph
        .observe_output_stream("tracked_detections", move |p: &Packet| {
            let v = p.get::<Vec<Detection>>()?.clone();
            if let Ok(mut all) = sink.lock() {
                all.push(v);
            }
            Ok(())
        })
        .map_err(|e| e.to_string())?;
    let frames = Arc::new(AtomicU64::new(0));
    let counter = frames.clone();
    graph
        .observe_output_stream("annotated_frames", move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .map_err(|e| e.to_string())?;
    let mut side = SidePackets::new();
    if let Some(input) = &args.input {
        side.insert(
            "input_video".into(),
            Packet::new(input.display().to_string()),
        );
    }
    if let Some(o) = &output {
        side.insert("output_video".into(), Packet::new(o.display().to_string()));
    }
    let start = Instant::now();
    graph.run(side).map_err(|e| {
        let message = e.to_string();
        if message.contains("no display") {
            format!("{message}; run with --headless to write a video file instead")
        } else {
            message
        }
    })?;
    let tracked = std::mem::take(&mut *tracked.lock().map_err(|_| "lock poisoned".to_string())?);
    Ok(Summary {
        frames: frames.load(Ordering::Relaxed),
        seconds: start.elapsed().as_secs_f64(),
        tracked,
        output,
    })
}

fn main() -> std::process::ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("camera_demo: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(s) => {
            println!(
                "camera_demo: {} frames in {:.1} s ({:.1} fps), {} distinct ids{}",
                s.frames,
                s.seconds,
                s.frames as f64 / s.seconds.max(1e-9),
                s.distinct_ids(),
                s.output
                    .as_ref()
                    .map(|o| format!(", wrote {}", o.display()))
                    .unwrap_or_default()
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("camera_demo: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
