//! Evaluation of the object detection + tracking graph (`graphs/object_detection_tracking.yaml`)
//! against per-frame detection (`graphs/object_detection.yaml`) on the sample videos.
//!
//! ```text
//! cargo run --release -p mediagraph-calculators --example detection_tracking_eval
//! cargo run --release -p mediagraph-calculators --example detection_tracking_eval -- \
//!     [--videos a.avi,b.mp4] [--smoothing S] [--alpha A] [--beta B] [--rate FPS] \
//!     [--lookahead MS] [--set KEY=VALUE].. [--json FILE] [--dump DIR]
//! cargo run --release -p mediagraph-calculators --example detection_tracking_eval -- \
//!     --extract out/vtest_tracked.mp4 10,100,400
//! ```
//!
//! Per video (data dir: `MEDIAGRAPH_DATA_DIR`, else `<workspace>/data`):
//!
//! * **fps**: frames / wall time of a whole run of the detection + tracking graph (decode,
//!   detection at 3 fps, tracking on every frame, drawing, the annotated video written to
//!   `out/eval_<name>_tracked.mp4`), graph loading excluded, model loading included.
//! * **jitter**: mean magnitude (pixels) of the second difference of box centres, `|c(t+1) -
//!   2 c(t) + c(t-1)|`, over three consecutive frames of one object. Tracked boxes follow
//!   their ids. Per-frame detections have no ids: each is given the id of the tracked box it
//!   overlaps best (IoU >= 0.5) in its frame, so both are measured on the same objects and the
//!   same frame triples (triples where the object has a tracked box and a matched detection
//!   in all three frames).
//! * **coverage**: the share of per-frame detections that a tracked box of the same frame
//!   overlaps with IoU >= 0.5.
//!   For reference, the same share when the detector's latest output is held still until its
//!   next output (no tracking at all): what tracking adds over doing nothing; and with
//!   lookahead, the previous or the next output, whichever overlaps better (an oracle: it
//!   uses the per-frame detection to choose).
//! * **confirmed**: the share of tracked boxes that a per-frame detection of the same frame
//!   overlaps with IoU >= 0.5: coverage's counterpart, so that boxes shown where the
//!   per-frame detector sees nothing are visible too.
//! * **tracks**: distinct ids in the tracked output, and their mean length (frames in which
//!   each id is reported).
//!
//! Options: `--videos` (comma-separated paths; default both sample videos), `--smoothing S`,
//! `--unconfirmed MS`, `--alpha A` and `--beta B` (the tracked detection manager's
//! `smoothing`, `max_unconfirmed_ms`, `motion_alpha` and `motion_beta`), `--set KEY=VALUE` (any other option of
//! the manager node in `object_tracking.yaml`, e.g. `cross_label_min_iou=0`), `--lookahead
//! MS` (the manager's `lookahead_ms` in the top-level graph; 0: live behaviour), `--rate
//! FPS` (the detection rate), `--json FILE` (the results as JSON), `--dump DIR` (every frame's tracked
//! and per-frame detections and the detector's output, as JSON, for offline analysis). The
//! settings reach the graph as option overrides (as `mediagraph run --set` gives them).
//!
//! `--extract VIDEO N,N,..` writes those frames of VIDEO as PNGs (`<VIDEO>_frame<N>.png`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use mediagraph_calculators::detection::{Detection, RelativeBox};
use mediagraph_framework::config::{self, OptionOverride};
use mediagraph_framework::{Graph, Packet};
use opencv::core::{self, Mat};
use opencv::prelude::*;
use opencv::videoio;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn data_dir() -> PathBuf {
    std::env::var_os("MEDIAGRAPH_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("data"))
}

/// `--extract VIDEO N,N,..`: writes those frames as PNGs next to the video.
fn extract(video: &str, list: &str) -> Res<()> {
    let mut cap = videoio::VideoCapture::from_file(video, videoio::CAP_ANY)?;
    if !cap.is_opened()? {
        return Err(format!("{video}: cannot open").into());
    }
    let mut wanted: Vec<usize> = list
        .split(',')
        .map(|n| n.trim().parse())
        .collect::<Result<_, _>>()?;
    wanted.sort_unstable();
    let mut frame = Mat::default();
    let mut index = 0usize;
    for n in wanted {
        while index <= n {
            if !cap.read(&mut frame)? {
                return Err(format!("{video}: has no frame {n}").into());
            }
            index += 1;
        }
        let stem = video.rsplit_once('.').map_or(video, |(s, _)| s);
        let out = format!("{stem}_frame{n}.png");
        opencv::imgcodecs::imwrite(&out, &frame, &core::Vector::new())?;
        println!("wrote {out}");
    }
    Ok(())
}

/// Command-line settings.
#[derive(Clone, Debug)]
struct Settings {
    videos: Vec<PathBuf>,
    smoothing: Option<f32>,
    unconfirmed_ms: Option<i64>,
    motion_alpha: Option<f32>,
    motion_beta: Option<f32>,
    rate: Option<f64>,
    /// `--lookahead MS`: the manager's `lookahead_ms` in the top-level graph.
    lookahead_ms: Option<i64>,
    /// `--set KEY=VALUE`: other options of the tracked detection manager node.
    manager_options: Vec<(String, String)>,
    json: Option<PathBuf>,
    dump: Option<PathBuf>,
}

fn parse_args(args: &[String]) -> Res<Settings> {
    let mut s = Settings {
        videos: vec![data_dir().join("vtest.avi"), data_dir().join("bikes.mp4")],
        smoothing: None,
        unconfirmed_ms: None,
        motion_alpha: None,
        motion_beta: None,
        rate: None,
        lookahead_ms: None,
        manager_options: Vec::new(),
        json: None,
        dump: None,
    };
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--videos" => s.videos = value()?.split(',').map(PathBuf::from).collect(),
            "--smoothing" => s.smoothing = Some(value()?.parse()?),
            "--unconfirmed" => s.unconfirmed_ms = Some(value()?.parse()?),
            "--alpha" => s.motion_alpha = Some(value()?.parse()?),
            "--beta" => s.motion_beta = Some(value()?.parse()?),
            "--rate" => s.rate = Some(value()?.parse()?),
            "--lookahead" => s.lookahead_ms = Some(value()?.parse()?),
            "--set" => {
                let v = value()?;
                let (key, val) = v
                    .split_once('=')
                    .ok_or(format!("--set {v}: not KEY=VALUE"))?;
                s.manager_options.push((key.to_string(), val.to_string()));
            }
            "--json" => s.json = Some(PathBuf::from(value()?)),
            "--dump" => s.dump = Some(PathBuf::from(value()?)),
            "-h" | "--help" => {
                println!("usage: detection_tracking_eval [--videos A,B] [--smoothing S] [--unconfirmed MS] [--alpha A] [--beta B] [--rate FPS] [--lookahead MS] [--set KEY=VALUE].. [--json FILE] [--dump DIR]\n       detection_tracking_eval --extract VIDEO N,N,..");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(s)
}

/// The settings as option overrides of the detection + tracking graph (as `mediagraph run
/// --set` takes them): its `pipeline` node, and the tracked detection manager inside it.
fn overrides(s: &Settings) -> Res<Vec<OptionOverride>> {
    const MANAGER: &str = "pipeline.tracking.tracked_detection_manager";
    let mut set: Vec<(String, String)> = Vec::new();
    let mut manager = |key: &str, value: String| set.push((format!("{MANAGER}.{key}"), value));
    if let Some(v) = s.smoothing {
        manager("smoothing", v.to_string());
    }
    if let Some(v) = s.unconfirmed_ms {
        manager("max_unconfirmed_ms", v.to_string());
    }
    if let Some(v) = s.motion_alpha {
        manager("motion_alpha", v.to_string());
    }
    if let Some(v) = s.motion_beta {
        manager("motion_beta", v.to_string());
    }
    if let Some(v) = s.lookahead_ms {
        manager("lookahead_ms", v.to_string());
    }
    for (key, value) in &s.manager_options {
        manager(key, value.clone());
    }
    if let Some(v) = s.rate {
        let period = (1e6 / v).round() as i64;
        set.push(("pipeline.detection_rate.period".into(), period.to_string()));
    }
    set.into_iter()
        .map(|(path, value)| Ok(format!("{path}={value}").parse::<OptionOverride>()?))
        .collect()
}

/// What one graph run gave.
struct Run {
    /// Detections per frame, in timestamp order.
    frames: Vec<Vec<Detection>>,
    /// The frames' timestamps (µs).
    frame_times: Vec<i64>,
    /// The recorded raw stream (the detector's own output in the tracking graph).
    raw: Timeline,
    seconds: f64,
    /// (node, total process seconds), largest first.
    busiest: Vec<(String, f64)>,
}

/// Detections per timestamp (µs).
type Timeline = BTreeMap<i64, Vec<Detection>>;

/// Records `stream` of `g` into the returned timeline.
fn observe(g: &mut Graph, stream: &str) -> Res<Arc<Mutex<Timeline>>> {
    let seen: Arc<Mutex<Timeline>> = Arc::default();
    let sink = seen.clone();
    g.observe_output_stream(stream, move |p: &Packet| {
        let v = p.get::<Vec<Detection>>()?.clone();
        sink.lock()
            .map_err(|_| mediagraph_framework::Error::msg("lock"))?
            .insert(p.timestamp().micros(), v);
        Ok(())
    })?;
    Ok(seen)
}

fn take(seen: &Mutex<Timeline>) -> Res<Timeline> {
    Ok(std::mem::take(&mut *seen.lock().map_err(|_| "lock")?))
}

/// Runs `graph` (with `changes` to its options) on `video`, recording `stream` (and
/// `raw_stream`, when given).
fn run_graph(
    graph: &Path,
    changes: &[OptionOverride],
    video: &Path,
    output: &Path,
    stream: &str,
    raw_stream: Option<&str>,
) -> Res<Run> {
    let mut g = Graph::new(config::load_file_with(graph, changes)?);
    let seen = observe(&mut g, stream)?;
    let raw = raw_stream.map(|s| observe(&mut g, s)).transpose()?;
    let mut side = HashMap::new();
    side.insert(
        "input_video".to_string(),
        Packet::new(video.to_string_lossy().into_owned()),
    );
    side.insert(
        "output_video".to_string(),
        Packet::new(output.to_string_lossy().into_owned()),
    );
    let start = Instant::now();
    g.run(side)?;
    let seconds = start.elapsed().as_secs_f64();
    let mut busiest: Vec<(String, f64)> = g
        .stats()
        .iter()
        .map(|s| (s.name.clone(), s.process_time.as_secs_f64()))
        .collect();
    busiest.sort_by(|a, b| b.1.total_cmp(&a.1));
    let timeline = take(&seen)?;
    let raw = raw.map(|r| take(&r)).transpose()?.unwrap_or_default();
    Ok(Run {
        frame_times: timeline.keys().copied().collect(),
        frames: timeline.into_values().collect(),
        raw,
        seconds,
        busiest,
    })
}

/// `--dump DIR`: writes `<name>_boxes.json` with the frame times (µs), the tracked detections
/// and the per-frame detections of every frame, and the detector's own output of the tracking
/// graph by timestamp, for offline analysis.
fn dump(dir: &Path, name: &str, tracked: &Run, detected: &Run) -> Res<()> {
    std::fs::create_dir_all(dir)?;
    let value = serde_json::json!({
        "frame_times_us": tracked.frame_times,
        "tracked": tracked.frames,
        "detected": detected.frames,
        "raw": tracked.raw,
    });
    let path = dir.join(format!("{name}_boxes.json"));
    std::fs::write(&path, serde_json::to_string(&value)?)?;
    println!("wrote {}", path.display());
    Ok(())
}

/// The scores of one video.
#[derive(Debug, serde::Serialize)]
struct Scores {
    video: String,
    frames: usize,
    seconds: f64,
    fps: f64,
    per_frame_detection_fps: f64,
    tracked_jitter_px: f64,
    detected_jitter_px: f64,
    jitter_triples: usize,
    tracked_jitter_all_px: f64,
    coverage: f64,
    /// Coverage without tracking: the detector's latest output held still until the next.
    coverage_held_detections: f64,
    /// The same with lookahead: the previous or the next output of the detector, whichever
    /// overlaps better, held still.
    coverage_nearest_detections: f64,
    detections: usize,
    /// The share of tracked boxes that a per-frame detection of the same frame overlaps with
    /// IoU >= 0.5 (the rest: objects the per-frame detector misses on that frame, or boxes
    /// off their object).
    confirmed: f64,
    tracked_boxes: usize,
    distinct_ids: usize,
    mean_track_frames: f64,
    mean_tracked_per_frame: f64,
    mean_detected_per_frame: f64,
    busiest_nodes_s: Vec<(String, f64)>,
}

fn centre(b: &RelativeBox, w: f64, h: f64) -> (f64, f64) {
    let (x, y) = b.center();
    (f64::from(x) * w, f64::from(y) * h)
}

/// Mean |c(t+1) - 2 c(t) + c(t-1)| over the triples of consecutive frames in `path`
/// (frame -> centre) for which `keep` holds; (sum, count).
fn second_differences(
    path: &BTreeMap<usize, (f64, f64)>,
    keep: impl Fn(usize) -> bool,
) -> (f64, usize) {
    let (mut sum, mut n) = (0.0, 0);
    for (&k, &(x, y)) in path {
        if k == 0 || !keep(k) {
            continue;
        }
        if let (Some(&(x0, y0)), Some(&(x2, y2))) = (path.get(&(k - 1)), path.get(&(k + 1))) {
            sum += (x2 - 2.0 * x + x0).hypot(y2 - 2.0 * y + y0);
            n += 1;
        }
    }
    (sum, n)
}

fn score(video: &Path, tracked: &Run, detected: &Run) -> Res<Scores> {
    let cap = videoio::VideoCapture::from_file(&*video.to_string_lossy(), videoio::CAP_ANY)?;
    let w = cap.get(videoio::CAP_PROP_FRAME_WIDTH)?;
    let h = cap.get(videoio::CAP_PROP_FRAME_HEIGHT)?;
    let n = tracked.frames.len().min(detected.frames.len());
    let mut tracked_paths: HashMap<u64, BTreeMap<usize, (f64, f64)>> = HashMap::new();
    let mut detected_paths: HashMap<u64, BTreeMap<usize, (f64, f64)>> = HashMap::new();
    let (mut covered, mut total, mut held_covered) = (0usize, 0usize, 0usize);
    let mut nearest_covered = 0usize;
    let (mut confirmed, mut tracked_boxes) = (0usize, 0usize);
    for k in 0..n {
        // Reference: the detector's latest output on or before this frame, not moved.
        let held = tracked
            .frame_times
            .get(k)
            .and_then(|&t| tracked.raw.range(..=t).next_back().map(|(_, dets)| dets));
        let next = tracked
            .frame_times
            .get(k)
            .and_then(|&t| tracked.raw.range(t..).next().map(|(_, dets)| dets));
        let overlaps = |d: &Detection, dets: Option<&Vec<Detection>>| {
            dets.into_iter()
                .flatten()
                .any(|h| d.bbox().iou(h.bbox()) >= 0.5)
        };
        for d in &detected.frames[k] {
            let previous = overlaps(d, held);
            held_covered += usize::from(previous);
            nearest_covered += usize::from(previous || overlaps(d, next));
        }
        for t in &tracked.frames[k] {
            tracked_boxes += 1;
            if detected.frames[k]
                .iter()
                .any(|d| d.bbox().iou(t.bbox()) >= 0.5)
            {
                confirmed += 1;
            }
            if let Some(id) = t.id {
                tracked_paths
                    .entry(id)
                    .or_default()
                    .insert(k, centre(t.bbox(), w, h));
            }
        }
        // Each detection goes to the tracked box it overlaps best; per id, the best match.
        let mut best: HashMap<u64, (f32, (f64, f64))> = HashMap::new();
        for d in &detected.frames[k] {
            total += 1;
            let m = tracked.frames[k]
                .iter()
                .filter_map(|t| t.id.map(|id| (id, d.bbox().iou(t.bbox()))))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((id, iou)) = m.filter(|m| m.1 >= 0.5) {
                covered += 1;
                let c = centre(d.bbox(), w, h);
                let e = best.entry(id).or_insert((iou, c));
                if iou > e.0 {
                    *e = (iou, c);
                }
            }
        }
        for (id, (_, c)) in best {
            detected_paths.entry(id).or_default().insert(k, c);
        }
    }
    let (mut ts, mut ds, mut triples) = (0.0, 0.0, 0usize);
    let (mut all_sum, mut all_n) = (0.0, 0usize);
    for (id, path) in &tracked_paths {
        let (s, c) = second_differences(path, |_| true);
        all_sum += s;
        all_n += c;
        let Some(dpath) = detected_paths.get(id) else {
            continue;
        };
        let both =
            |k: usize| (k - 1..=k + 1).all(|j| path.contains_key(&j) && dpath.contains_key(&j));
        let (s1, c1) = second_differences(path, both);
        let (s2, c2) = second_differences(dpath, both);
        debug_assert_eq!(c1, c2);
        ts += s1;
        ds += s2;
        triples += c1;
    }
    let lengths: Vec<usize> = tracked_paths.values().map(BTreeMap::len).collect();
    let ratio = |a: f64, b: usize| if b > 0 { a / b as f64 } else { f64::NAN };
    Ok(Scores {
        video: video.to_string_lossy().into_owned(),
        frames: tracked.frames.len(),
        seconds: tracked.seconds,
        fps: ratio(tracked.frames.len() as f64, 1) / tracked.seconds,
        per_frame_detection_fps: detected.frames.len() as f64 / detected.seconds,
        tracked_jitter_px: ratio(ts, triples),
        detected_jitter_px: ratio(ds, triples),
        jitter_triples: triples,
        tracked_jitter_all_px: ratio(all_sum, all_n),
        coverage: ratio(covered as f64, total),
        coverage_held_detections: ratio(held_covered as f64, total),
        coverage_nearest_detections: ratio(nearest_covered as f64, total),
        detections: total,
        confirmed: ratio(confirmed as f64, tracked_boxes),
        tracked_boxes,
        distinct_ids: tracked_paths.len(),
        mean_track_frames: ratio(lengths.iter().sum::<usize>() as f64, lengths.len()),
        mean_tracked_per_frame: ratio(
            tracked.frames.iter().map(Vec::len).sum::<usize>() as f64,
            tracked.frames.len(),
        ),
        mean_detected_per_frame: ratio(
            detected.frames.iter().map(Vec::len).sum::<usize>() as f64,
            detected.frames.len(),
        ),
        busiest_nodes_s: tracked.busiest.iter().take(5).cloned().collect(),
    })
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 4 && args[1] == "--extract" {
        return extract(&args[2], &args[3]);
    }
    let settings = parse_args(&args)?;
    let graphs = workspace().join("graphs");
    let changes = overrides(&settings)?;
    let out = workspace().join("out");
    std::fs::create_dir_all(&out)?;
    println!(
        "# Detection + tracking evaluation\n\nsettings: {settings:?}\ncores: {}, load average before: {}\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    let mut all = Vec::new();
    for video in &settings.videos {
        let name = video
            .file_stem()
            .map_or("video".into(), |s| s.to_string_lossy().into_owned());
        let tracked = run_graph(
            &graphs.join("object_detection_tracking.yaml"),
            &changes,
            video,
            &out.join(format!("eval_{name}_tracked.mp4")),
            "tracked_detections",
            Some("detections"),
        )?;
        let load_after_tracking = load_average();
        let detected = run_graph(
            &graphs.join("object_detection.yaml"),
            &[],
            video,
            &out.join(format!("eval_{name}_detected.mp4")),
            "detections",
            None,
        )?;
        if let Some(dir) = &settings.dump {
            dump(dir, &name, &tracked, &detected)?;
        }
        let s = score(video, &tracked, &detected)?;
        println!("## {name}\n");
        println!("| measure | value |\n|---|---|");
        println!("| frames | {} |", s.frames);
        println!(
            "| detection + tracking graph, end to end | {:.1} fps ({:.2} s; load average after: {load_after_tracking}) |",
            s.fps, s.seconds
        );
        println!(
            "| per-frame detection graph, end to end | {:.1} fps |",
            s.per_frame_detection_fps
        );
        println!(
            "| jitter, tracked boxes | {:.2} px |\n| jitter, per-frame detection (same objects, same {} triples) | {:.2} px |",
            s.tracked_jitter_px, s.jitter_triples, s.detected_jitter_px
        );
        println!(
            "| smoother by | {:.1}x |",
            s.detected_jitter_px / s.tracked_jitter_px
        );
        println!(
            "| jitter, all tracked triples | {:.2} px |",
            s.tracked_jitter_all_px
        );
        println!(
            "| per-frame detections covered by a tracked box (IoU >= 0.5) | {:.3} ({} detections) |",
            s.coverage, s.detections
        );
        println!(
            "| same, without tracking: the latest detections held still (reference) | {:.3} |",
            s.coverage_held_detections
        );
        println!(
            "| same, the previous or the next detections held still, whichever overlaps (oracle reference) | {:.3} |",
            s.coverage_nearest_detections
        );
        println!(
            "| tracked boxes confirmed by a per-frame detection (IoU >= 0.5) | {:.3} ({} boxes) |",
            s.confirmed, s.tracked_boxes
        );
        println!(
            "| distinct ids / mean track length | {} / {:.1} frames |",
            s.distinct_ids, s.mean_track_frames
        );
        println!(
            "| objects per frame: tracked / per-frame detection | {:.2} / {:.2} |",
            s.mean_tracked_per_frame, s.mean_detected_per_frame
        );
        let busiest: Vec<String> = s
            .busiest_nodes_s
            .iter()
            .map(|(n, t)| format!("{n} {t:.2} s"))
            .collect();
        println!(
            "| busiest nodes (process time) | {} |\n",
            busiest.join(", ")
        );
        all.push(s);
    }
    println!("load average after: {}", load_average());
    if let Some(path) = &settings.json {
        std::fs::write(path, serde_json::to_string_pretty(&all)?)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
