//! Vision I/O on real video: decoding both sample videos end to end, writing and re-reading
//! mp4 and avi, resizing and drawing on real frames, truncated and bad files, a missing
//! camera, and the `graphs/video_annotate.yaml` graph.
//!
//! The sample videos come from `scripts/setup videos` (`MEDIAGRAPH_DATA_DIR`, else
//! `<workspace>/data`); a missing video fails the test. Every graph run is bounded by a
//! timeout, so a hang fails instead of blocking the suite.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mediagraph_calculators::image::ImageFrame;
use mediagraph_calculators::video::{probe, DecodeReport};
use mediagraph_calculators::VideoHeader;
use mediagraph_framework::{Graph, Packet, Timestamp};

/// Generous: a debug build decodes vtest.avi in a few seconds.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

use mediagraph_calculators::sample_data::data_dir;

/// The path of a sample video; fails the test if it is missing.
fn sample(name: &str) -> String {
    let p = data_dir().join(name);
    assert!(
        p.is_file(),
        "sample video {} is missing: run `scripts/setup videos` (CI does)",
        p.display()
    );
    p.to_string_lossy().into_owned()
}

fn side(pairs: &[(&str, &str)]) -> HashMap<String, Packet> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Packet::new(v.to_string())))
        .collect()
}

/// Runs `graph` to completion on another thread; panics if it takes longer than `RUN_TIMEOUT`.
fn run_bounded(
    mut graph: Graph,
    side_packets: HashMap<String, Packet>,
) -> (Graph, Result<(), String>) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let result = graph.run(side_packets).map_err(|e| e.to_string());
        let _ = tx.send((graph, result));
    });
    match rx.recv_timeout(RUN_TIMEOUT) {
        Ok(r) => r,
        Err(_) => panic!("graph run did not finish within {RUN_TIMEOUT:?} (hang?)"),
    }
}

/// What a test keeps of each frame: its timestamp and size (not its pixels: hundreds of
/// full frames would take gigabytes).
#[derive(Clone, Copy, Debug)]
struct FrameInfo {
    ts: Timestamp,
    width: u32,
    height: u32,
}

#[derive(Clone, Default)]
struct Frames(Arc<Mutex<Vec<FrameInfo>>>);

impl Frames {
    fn attach(graph: &mut Graph, stream: &str) -> Frames {
        let frames = Frames::default();
        let sink = frames.0.clone();
        graph
            .observe_output_stream(stream, move |p| {
                let f = p.get::<ImageFrame>()?;
                sink.lock().expect("lock").push(FrameInfo {
                    ts: p.timestamp(),
                    width: f.width(),
                    height: f.height(),
                });
                Ok(())
            })
            .expect("observe");
        frames
    }

    fn get(&self) -> Vec<FrameInfo> {
        self.0.lock().expect("lock").clone()
    }
}

/// Keeps the first `n` frames of a stream, with their pixels.
fn keep_first(
    graph: &mut Graph,
    stream: &str,
    n: usize,
) -> Arc<Mutex<Vec<(Timestamp, ImageFrame)>>> {
    let kept = Arc::new(Mutex::new(Vec::new()));
    let sink = kept.clone();
    graph
        .observe_output_stream(stream, move |p| {
            let mut v = sink.lock().expect("lock");
            if v.len() < n {
                v.push((p.timestamp(), p.get::<ImageFrame>()?.clone()));
            }
            Ok(())
        })
        .expect("observe");
    kept
}

const DECODE_GRAPH: &str = r#"
input_side_packet: [input_video]
output_stream: [frames, header]
node:
  - calculator: OpenCvVideoDecoderCalculator
    input_side_packet: ["INPUT_FILE_PATH:input_video"]
    output_stream: ["VIDEO:frames", "VIDEO_PRESTREAM:header"]
    output_side_packet: ["DECODE_REPORT:report"]
"#;

struct Decoded {
    frames: Vec<FrameInfo>,
    header: Option<VideoHeader>,
    report: Option<DecodeReport>,
    result: Result<(), String>,
}

fn decode(path: &str, options: &str) -> Decoded {
    let yaml = format!("{DECODE_GRAPH}    options: {{{options}}}\n");
    let mut graph = Graph::from_yaml_str(&yaml).expect("graph");
    let frames = Frames::attach(&mut graph, "frames");
    let headers = Arc::new(Mutex::new(Vec::new()));
    let sink = headers.clone();
    graph
        .observe_output_stream("header", move |p| {
            assert_eq!(p.timestamp(), Timestamp::PRE_STREAM);
            sink.lock()
                .expect("lock")
                .push(p.get::<VideoHeader>()?.clone());
            Ok(())
        })
        .expect("observe");
    let (graph, result) = run_bounded(graph, side(&[("input_video", path)]));
    let report = graph
        .output_side_packet("report")
        .ok()
        .and_then(|p| p.get::<DecodeReport>().ok().cloned());
    let header = headers.lock().expect("lock").first().cloned();
    Decoded {
        frames: frames.get(),
        header,
        report,
        result,
    }
}

fn assert_strictly_increasing(frames: &[FrameInfo]) {
    for w in frames.windows(2) {
        assert!(
            w[1].ts > w[0].ts,
            "timestamps not strictly increasing: {:?} then {:?}",
            w[0].ts,
            w[1].ts
        );
    }
}

fn check_full_decode(name: &str, count: usize, (w, h): (u32, u32), fps: f64) -> Decoded {
    let path = sample(name);
    let d = decode(&path, "");
    d.result.as_ref().expect("decode succeeds");
    assert_eq!(d.frames.len(), count, "{name}: frame count");
    assert!(d.frames.iter().all(|f| (f.width, f.height) == (w, h)));
    assert_strictly_increasing(&d.frames);
    assert_eq!(d.frames[0].ts, Timestamp::new(0));
    let header = d.header.clone().expect("VIDEO_PRESTREAM header");
    assert_eq!((header.width, header.height), (w, h));
    assert_eq!(header.frame_count, Some(count as u64));
    assert!((header.frame_rate - fps).abs() < 1e-6, "{header:?}");
    // Presentation times: frame i at i / fps.
    let last = d.frames[count - 1].ts.seconds();
    let expected_last = (count - 1) as f64 / fps;
    assert!(
        (last - expected_last).abs() < 0.5 / fps,
        "last frame at {last} s, expected {expected_last}"
    );
    let report = d.report.clone().expect("DECODE_REPORT");
    assert_eq!(report.frames_decoded, count as u64);
    assert_eq!(report.frames_skipped, 0);
    assert_eq!(probe(&path).expect("probe"), header);
    d
}

#[test]
fn decodes_vtest_avi_end_to_end() {
    check_full_decode("vtest.avi", 795, (768, 576), 10.0);
}

#[test]
fn decodes_bikes_mp4_end_to_end() {
    let d = check_full_decode("bikes.mp4", 250, (640, 272), 25.0);
    // OpenCV 4.6 reports position 0 for the last frames of this file; those timestamps are
    // derived from the frame index instead, which keeps them on the 40 ms grid.
    for (i, f) in d.frames.iter().enumerate() {
        assert_eq!(f.ts, Timestamp::new(i as i64 * 40_000), "frame {i}");
    }
}

const TRANSCODE_GRAPH: &str = r#"
input_side_packet: [input_video, output_video]
node:
  - calculator: OpenCvVideoDecoderCalculator
    input_side_packet: ["INPUT_FILE_PATH:input_video"]
    output_stream: ["VIDEO:frames"]
  - calculator: OpenCvVideoEncoderCalculator
    input_stream: ["VIDEO:frames"]
    input_side_packet: ["OUTPUT_FILE_PATH:output_video"]
"#;

fn transcode(input: &str, output: &str, options: &str) -> Result<(), String> {
    let yaml = format!("{TRANSCODE_GRAPH}    options: {{{options}}}\n");
    let graph = Graph::from_yaml_str(&yaml).expect("graph");
    run_bounded(
        graph,
        side(&[("input_video", input), ("output_video", output)]),
    )
    .1
}

#[test]
fn writes_and_rereads_mp4_and_avi() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bikes = sample("bikes.mp4");
    for ext in ["mp4", "avi"] {
        let out = dir.path().join(format!("bikes.{ext}"));
        let out = out.to_string_lossy().into_owned();
        transcode(&bikes, &out, "").expect("transcode");
        let header = probe(&out).expect("probe written file");
        assert_eq!((header.width, header.height), (640, 272), "{ext}");
        assert!((header.frame_rate - 25.0).abs() < 0.01, "{ext}: {header:?}");
        let d = decode(&out, "");
        d.result.expect("re-read");
        assert_eq!(d.frames.len(), 250, "{ext}: frames re-read");
        assert_strictly_increasing(&d.frames);
    }
    // An explicit codec and fps.
    let out = dir.path().join("vtest_xvid.avi");
    let out = out.to_string_lossy().into_owned();
    transcode(&sample("vtest.avi"), &out, "codec: XVID, fps: 5").expect("transcode");
    let header = probe(&out).expect("probe");
    assert_eq!(
        (header.width, header.height, header.frame_count),
        (768, 576, Some(795))
    );
    assert!((header.frame_rate - 5.0).abs() < 0.01, "{header:?}");
}

#[test]
fn encoder_rejects_bad_paths_and_codecs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bikes = sample("bikes.mp4");
    let missing_dir = dir.path().join("no/such/dir/out.mp4");
    let missing_dir = missing_dir.to_string_lossy().into_owned();
    let err = transcode(&bikes, &missing_dir, "").unwrap_err();
    assert!(
        err.contains(&missing_dir) && err.contains("does not exist"),
        "{err}"
    );

    let unknown = dir.path().join("out.xyz").to_string_lossy().into_owned();
    let err = transcode(&bikes, &unknown, "").unwrap_err();
    assert!(
        err.contains(&unknown) && err.contains("unknown video container"),
        "{err}"
    );

    let mp4 = dir.path().join("out.mp4").to_string_lossy().into_owned();
    let err = transcode(&bikes, &mp4, "codec: h264x").unwrap_err();
    assert!(
        err.contains(&mp4) && err.contains("four-character"),
        "{err}"
    );

    let err = transcode(&bikes, &mp4, "video_format: avi").unwrap_err();
    assert!(err.contains("does not match the file extension"), "{err}");
}

const RENDER_GRAPH: &str = r#"
input_side_packet: [input_video]
output_stream: [small, annotated]
node:
  - calculator: OpenCvVideoDecoderCalculator
    input_side_packet: ["INPUT_FILE_PATH:input_video"]
    output_stream: ["VIDEO:frames"]
  - calculator: ImageTransformationCalculator
    input_stream: ["IMAGE:frames"]
    output_stream: ["IMAGE:small"]
    options: {output_width: 384, output_height: 288}
  - calculator: AnnotationOverlayCalculator
    input_stream: ["IMAGE:small"]
    output_stream: ["IMAGE:annotated"]
    options:
      thickness: 3
      annotations:
        - {type: rectangle, left: 100, top: 100, right: 200, bottom: 180, color: {r: 255, g: 0, b: 0}}
        - {type: rectangle, left: 0.75, top: 0.5, right: 0.95, bottom: 0.9, normalized: true, id: 7, label: person, score: 0.9}
"#;

#[test]
fn resizes_and_draws_on_real_frames() {
    use mediagraph_calculators::image::Color;
    let mut graph = Graph::from_yaml_str(RENDER_GRAPH).expect("graph");
    let small = keep_first(&mut graph, "small", 5);
    let annotated = keep_first(&mut graph, "annotated", 5);
    let all = Frames::attach(&mut graph, "annotated");
    let (_, result) = run_bounded(graph, side(&[("input_video", &sample("vtest.avi"))]));
    result.expect("run");
    assert_eq!(all.get().len(), 795);
    let small = small.lock().expect("lock").clone();
    let annotated = annotated.lock().expect("lock").clone();
    assert_eq!(small.len(), 5);
    for ((ts_a, before), (ts_b, after)) in small.iter().zip(&annotated) {
        assert_eq!(ts_a, ts_b);
        assert_eq!((before.width(), before.height()), (384, 288));
        assert_eq!((after.width(), after.height()), (384, 288));
        // On the red box's edges: red, which the street scene is not.
        for (x, y) in [(100, 140), (200, 140), (150, 100), (150, 180), (101, 150)] {
            assert_eq!(after.pixel(x, y), Some(&[255, 0, 0][..]), "edge ({x}, {y})");
            assert_ne!(before.pixel(x, y), after.pixel(x, y), "edge ({x}, {y})");
        }
        // Inside and outside the box: untouched.
        for (x, y) in [(150, 140), (110, 110), (190, 170), (50, 50), (250, 140)] {
            assert_eq!(before.pixel(x, y), after.pixel(x, y), "({x}, {y})");
        }
        // The id-7 box: its stable id color on its edge (left edge at 0.75 * 384 = 288).
        let c = Color::for_id(7);
        assert_eq!(after.pixel(288, 200), Some(&[c.r, c.g, c.b][..]));
        assert_eq!(before.pixel(320, 200), after.pixel(320, 200));
        // The overlay copied: the transformation's output is unchanged.
        assert!(!before.shares_pixels_with(after));
    }
}

#[test]
fn truncated_videos_end_cleanly_or_fail_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["vtest.avi", "bikes.mp4"] {
        let bytes = std::fs::read(sample(name)).expect("read sample");
        let cut = dir.path().join(format!("truncated_{name}"));
        std::fs::write(&cut, &bytes[..bytes.len() * 2 / 5]).expect("write truncated copy");
        let cut = cut.to_string_lossy().into_owned();
        let d = decode(&cut, "");
        match &d.result {
            Ok(()) => {
                let report = d.report.clone().expect("report");
                let expected = report.frames_expected.expect("header frame count");
                assert!(!d.frames.is_empty(), "{name}: no frames");
                assert_eq!(report.frames_decoded, d.frames.len() as u64);
                assert!(report.frames_decoded < expected, "{name}: {report:?}");
                assert_eq!(
                    report.frames_decoded + report.frames_skipped,
                    expected,
                    "{name}: missing frames are counted as skipped: {report:?}"
                );
                assert_strictly_increasing(&d.frames);
            }
            Err(e) => assert!(
                e.contains(&cut),
                "{name}: error does not name the file: {e}"
            ),
        }
        // With on_error: FAIL, a short stream is an error naming the file.
        let strict = decode(&cut, "on_error: FAIL");
        let err = strict.result.expect_err("FAIL on a truncated file");
        assert!(err.contains(&cut), "{err}");
    }
    // vtest.avi's index is at the end, its frames decode up to the cut: a clean short decode.
    let cut = dir
        .path()
        .join("truncated_vtest.avi")
        .to_string_lossy()
        .into_owned();
    let d = decode(&cut, "");
    d.result.expect("truncated avi decodes");
    assert!(
        d.frames.len() > 200 && d.frames.len() < 795,
        "{}",
        d.frames.len()
    );
    let err = decode(&cut, "on_error: FAIL").result.unwrap_err();
    assert!(err.contains("ended after"), "{err}");
}

#[test]
fn missing_and_non_video_files_name_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope.mp4").to_string_lossy().into_owned();
    let err = decode(&missing, "").result.unwrap_err();
    assert!(
        err.contains(&missing) && err.contains("no such file"),
        "{err}"
    );

    let text = dir.path().join("notes.mp4");
    std::fs::write(&text, "this is not a video\n".repeat(100)).expect("write");
    let text = text.to_string_lossy().into_owned();
    let err = decode(&text, "").result.unwrap_err();
    assert!(err.contains(&text) && err.contains("not a video"), "{err}");

    let d = dir.path().to_string_lossy().into_owned();
    let err = decode(&d, "").result.unwrap_err();
    assert!(err.contains("is a directory"), "{err}");

    let err = probe(&missing).unwrap_err().to_string();
    assert!(err.contains(&missing), "{err}");
}

#[test]
fn missing_camera_is_a_clear_error() {
    let graph = Graph::from_yaml_str(
        r#"
node:
  - calculator: CameraSourceCalculator
    output_stream: ["VIDEO:frames"]
    options: {device: 99}
"#,
    )
    .expect("graph");
    let (_, result) = run_bounded(graph, HashMap::new());
    let err = result.unwrap_err();
    assert!(
        err.contains("camera 99 could not be opened (no device /dev/video99?)"),
        "{err}"
    );
}

/// A video damaged in the middle (a run of bytes overwritten with garbage): the run ends,
/// every frame is either delivered or counted as skipped, timestamps stay strictly increasing
/// (or the error names the file); never a panic or a hang.
#[test]
fn a_video_corrupt_in_the_middle_is_decoded_around_the_damage() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["vtest.avi", "bikes.mp4"] {
        let mut bytes = std::fs::read(sample(name)).expect("read sample");
        let (start, len) = (bytes.len() / 2, bytes.len() / 20);
        for (i, b) in bytes[start..start + len].iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(151).wrapping_add(7);
        }
        let damaged = dir.path().join(format!("damaged_{name}"));
        std::fs::write(&damaged, &bytes).expect("write damaged copy");
        let damaged = damaged.to_string_lossy().into_owned();
        let d = decode(&damaged, "");
        match &d.result {
            Ok(()) => {
                let report = d.report.clone().expect("report");
                assert_eq!(report.frames_decoded, d.frames.len() as u64);
                // Seen here: vtest 750 decoded + 45 skipped, bikes 120 + 130, of 795 and 250.
                let expected = report.frames_expected.expect("header frame count");
                assert_eq!(
                    report.frames_decoded + report.frames_skipped,
                    expected,
                    "{name}: every frame is delivered or counted: {report:?}"
                );
                assert!(
                    report.frames_skipped > 0,
                    "{name}: the damage is noticed: {report:?}"
                );
                assert!(
                    !d.frames.is_empty(),
                    "{name}: frames before the damage decode"
                );
                assert_strictly_increasing(&d.frames);
            }
            Err(e) => assert!(
                e.contains(&damaged),
                "{name}: error does not name the file: {e}"
            ),
        }
    }
}

/// A run cancelled while it writes a video leaves a valid, shorter video: the encoder is
/// closed during the run's clean-up, so the file is finished and plays.
#[test]
fn a_cancelled_run_leaves_a_playable_video() {
    let dir = tempfile::tempdir().expect("tempdir");
    for ext in ["mp4", "avi"] {
        let out = dir.path().join(format!("cut.{ext}"));
        let out_s = out.to_string_lossy().into_owned();
        let mut graph =
            Graph::from_yaml_str(&format!("{TRANSCODE_GRAPH}    options: {{}}\n")).expect("graph");
        graph
            .observe_output_stream("frames", move |_| {
                // Slow the run down a little, so the cancel lands mid-video.
                std::thread::sleep(std::time::Duration::from_millis(2));
                Ok(())
            })
            .expect("observe");
        let handle = graph.cancel_handle();
        graph
            .start_run(side(&[
                ("input_video", &sample("vtest.avi")),
                ("output_video", &out_s),
            ]))
            .expect("start");
        // Wait until the encoder itself has taken 100 frames (on a loaded machine it can lag
        // the decoder's output by dozens of frames).
        let encoded = |graph: &Graph| {
            graph
                .stats()
                .iter()
                .find(|s| s.calculator == "OpenCvVideoEncoderCalculator")
                .map_or(0, |s| s.invocations)
        };
        while encoded(&graph) < 100 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        handle.cancel();
        let err = graph.wait_until_done().expect_err("cancelled");
        assert!(err.is_cancelled(), "{err}");
        let got = decode(&out_s, "");
        got.result.expect("the cut-short video decodes");
        let n = got.frames.len();
        assert!(
            (50..795).contains(&n),
            "{ext}: {n} frames in the cut-short video"
        );
    }
}

/// A camera that stops delivering frames mid-run (simulated: a "camera" reading a video file,
/// which runs out after its last frame) fails the run naming it, or, with `on_lost: STOP`,
/// ends its stream so that the rest of the graph finishes; never a hang.
#[test]
fn a_camera_that_disappears_mid_run_fails_or_stops_as_configured() {
    let video = sample("vtest.avi");
    for (on_lost, expect_ok) in [("FAIL", false), ("STOP", true)] {
        let mut graph = Graph::from_yaml_str(&format!(
            r#"
node:
  - calculator: CameraSourceCalculator
    name: cam
    output_stream: ["VIDEO:frames"]
    options: {{path: "{video}", on_lost: {on_lost}}}
"#
        ))
        .expect("graph");
        let frames = Arc::new(Mutex::new(0usize));
        let counter = frames.clone();
        graph
            .observe_output_stream("frames", move |_| {
                *counter.lock().expect("lock") += 1;
                Ok(())
            })
            .expect("observe");
        let (_, result) = run_bounded(graph, HashMap::new());
        assert_eq!(
            *frames.lock().expect("lock"),
            795,
            "{on_lost}: every frame before it went away"
        );
        if expect_ok {
            assert!(result.is_ok(), "{on_lost}: {result:?}");
        } else {
            let err = result.unwrap_err();
            assert!(err.contains("node \"cam\""), "{err}");
            assert!(err.contains("stopped delivering frames"), "{err}");
        }
    }
}

#[test]
fn display_without_a_desktop_is_a_clear_error() {
    if std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some() {
        eprintln!("a display is available; the no-display error cannot be checked here");
        return;
    }
    let graph = Graph::from_yaml_str(
        r#"
input_side_packet: [input_video]
node:
  - calculator: OpenCvVideoDecoderCalculator
    input_side_packet: ["INPUT_FILE_PATH:input_video"]
    output_stream: ["VIDEO:frames"]
  - calculator: DisplaySinkCalculator
    input_stream: ["IMAGE:frames"]
"#,
    )
    .expect("graph");
    let (_, result) = run_bounded(graph, side(&[("input_video", &sample("bikes.mp4"))]));
    let err = result.unwrap_err();
    assert!(err.contains("no display"), "{err}");
}

#[test]
fn video_annotate_graph_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = Path::new(env!("CARGO_MANIFEST_DIR")).join("../graphs/video_annotate.yaml");
    let graph = Graph::from_yaml_file(&yaml).expect("graphs/video_annotate.yaml loads");
    let out = dir
        .path()
        .join("annotated.mp4")
        .to_string_lossy()
        .into_owned();
    let (_, result) = run_bounded(
        graph,
        side(&[
            ("input_video", &sample("bikes.mp4")),
            ("output_video", &out),
        ]),
    );
    result.expect("run");
    let header = probe(&out).expect("probe output");
    assert_eq!(header.frame_count, Some(250));
    // 480 wide, height by aspect ratio (640x272 -> 480x204); the frame rate from the
    // decoder's VIDEO_PRESTREAM header.
    assert_eq!((header.width, header.height), (480, 204));
    assert!((header.frame_rate - 25.0).abs() < 0.01, "{header:?}");
}

/// The encoder with `VIDEO_PRESTREAM` connected next to `VIDEO`, as in MediaPipe's graphs:
/// the header packet at `PreStream` must not hold back or reject the frames that follow.
#[test]
fn encoder_takes_the_prestream_header() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("bikes.avi").to_string_lossy().into_owned();
    let graph = Graph::from_yaml_str(
        r#"
input_side_packet: [input_video, output_video]
node:
  - calculator: OpenCvVideoDecoderCalculator
    input_side_packet: ["INPUT_FILE_PATH:input_video"]
    output_stream: ["VIDEO:frames", "VIDEO_PRESTREAM:header"]
  - calculator: OpenCvVideoEncoderCalculator
    input_stream: ["VIDEO:frames", "VIDEO_PRESTREAM:header"]
    input_side_packet: ["OUTPUT_FILE_PATH:output_video"]
"#,
    )
    .expect("graph");
    let (_, result) = run_bounded(
        graph,
        side(&[
            ("input_video", &sample("bikes.mp4")),
            ("output_video", &out),
        ]),
    );
    result.expect("run");
    assert_eq!(probe(&out).expect("probe").frame_count, Some(250));
}
