//! Object detection with the bundled SSD MobileNetV2 OIDv4 model on ONNX Runtime: anchors
//! against an independent computation, model errors (missing, corrupt, wrong input shape),
//! detections on a real `vtest.avi` frame, and `graphs/object_detection.yaml` on a short clip.
//!
//! The model, label map and ONNX Runtime come from `scripts/setup` (found through
//! `MEDIAGRAPH_MODELS_DIR`, else `<workspace>/models`); the videos from `scripts/setup videos`.
//! Anything missing fails the test with a message saying to run `scripts/setup` (CI does).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mediagraph_calculators::detection::resources::{models_dir, ort_library_path};
use mediagraph_calculators::detection::ssd::oidv4_ssd_anchors;
use mediagraph_calculators::detection::{
    generate_anchors, Detection, ObjectDetector, ObjectDetectorOptions, OnnxModel, Tensor,
    DEFAULT_LABEL_MAP, DEFAULT_MODEL,
};
use mediagraph_calculators::image::ImageFrame;
use mediagraph_framework::{Graph, Packet};
use opencv::core::{Mat, Size};
use opencv::prelude::*;
use opencv::videoio::{VideoCapture, VideoWriter, CAP_ANY, CAP_PROP_FRAME_COUNT};

/// Generous bound on a graph run (a debug build detects 30 frames in a few seconds).
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Fails the test unless the model, label map and ONNX Runtime are in place.
fn require_model() {
    let dir = models_dir().unwrap_or_else(|| {
        panic!("no models directory: run `scripts/setup model onnxruntime` (CI does)")
    });
    for f in [DEFAULT_MODEL, DEFAULT_LABEL_MAP] {
        assert!(
            dir.join(f).is_file(),
            "{} is missing: run `scripts/setup model` (CI does)",
            dir.join(f).display()
        );
    }
    if let Err(e) = ort_library_path() {
        panic!("{e} (run `scripts/setup onnxruntime`; CI does)");
    }
}

fn sample(name: &str) -> String {
    let dir = std::env::var_os("MEDIAGRAPH_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("data"));
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "sample video {} is missing: run `scripts/setup videos` (CI does)",
        p.display()
    );
    p.to_string_lossy().into_owned()
}

/// Frame `index` of a video, as an SRGB frame.
fn read_frame(path: &str, index: usize) -> ImageFrame {
    let mut cap = VideoCapture::from_file(path, CAP_ANY).expect("open video");
    assert!(cap.is_opened().unwrap_or(false), "cannot open {path}");
    let mut mat = Mat::default();
    for _ in 0..=index {
        assert!(
            cap.read(&mut mat).expect("read frame"),
            "{path} is too short"
        );
    }
    ImageFrame::from_bgr_mat(&mat).expect("convert frame")
}

/// The anchors of the bundled model computed from the published scheme, independently of the
/// library: per layer `i` (feature map `fm`), scale `s_i = 0.2 + 0.75 i / 5`; layer 0 has
/// `(0.1, a=1), (s0, a=2), (s0, a=0.5)`; the others `(s_i, a)` for a in 1, 2, 0.5, 3, 1/3, then
/// `(sqrt(s_i s_{i+1}), 1)` with `s_6 = 1`; `h = s / sqrt(a)`, `w = s * sqrt(a)`; centers
/// `((x + 0.5) / fm, (y + 0.5) / fm)`; order layer, y, x, anchor.
/// Returns `(x_center, y_center, w, h)` per anchor.
fn reference_anchors() -> Vec<[f64; 4]> {
    let maps = [19usize, 10, 5, 3, 2, 1];
    let scale = |i: usize| {
        if i >= 6 {
            1.0
        } else {
            0.2 + 0.75 * i as f64 / 5.0
        }
    };
    let mut out = Vec::new();
    for (i, &fm) in maps.iter().enumerate() {
        let sizes: Vec<(f64, f64)> = if i == 0 {
            vec![(0.1, 1.0), (scale(0), 2.0), (scale(0), 0.5)]
        } else {
            let mut v: Vec<(f64, f64)> = [1.0, 2.0, 0.5, 3.0, 1.0 / 3.0]
                .iter()
                .map(|&a| (scale(i), a))
                .collect();
            v.push(((scale(i) * scale(i + 1)).sqrt(), 1.0));
            v
        };
        for y in 0..fm {
            for x in 0..fm {
                for &(s, a) in &sizes {
                    out.push([
                        (x as f64 + 0.5) / fm as f64,
                        (y as f64 + 0.5) / fm as f64,
                        s * a.sqrt(),
                        s / a.sqrt(),
                    ]);
                }
            }
        }
    }
    out
}

#[test]
fn anchors_match_the_published_scheme() {
    let anchors = generate_anchors(&oidv4_ssd_anchors()).expect("anchor options");
    assert_eq!(anchors.len(), 1917);
    let reference = reference_anchors();
    assert_eq!(reference.len(), 1917);
    // First anchor: layer 0, cell (0, 0), scale 0.1 at aspect 1.
    let a = anchors[0];
    let c = 0.5 / 19.0;
    assert!(
        (a.x_center - c).abs() < 1e-6 && (a.y_center - c).abs() < 1e-6,
        "{a:?}"
    );
    assert!(
        (a.w - 0.1).abs() < 1e-6 && (a.h - 0.1).abs() < 1e-6,
        "{a:?}"
    );
    // Last anchor: layer 5 (1x1 map), the interpolated one: sqrt(0.95 * 1) at aspect 1.
    let z = anchors[1916];
    let s = 0.95f32.sqrt();
    assert!(
        (z.x_center - 0.5).abs() < 1e-6 && (z.y_center - 0.5).abs() < 1e-6,
        "{z:?}"
    );
    assert!((z.w - s).abs() < 1e-6 && (z.h - s).abs() < 1e-6, "{z:?}");
    // The one before: aspect 1/3 at 0.95: w = 0.95 / sqrt(3), h = 0.95 * sqrt(3).
    let y = anchors[1915];
    assert!((y.w - 0.95 / 3f32.sqrt()).abs() < 1e-4, "{y:?}");
    assert!((y.h - 0.95 * 3f32.sqrt()).abs() < 1e-4, "{y:?}");
    // Every anchor (the YAML's 0.33333334 vs 1/3 differs by < 1e-7).
    for (i, (a, r)) in anchors.iter().zip(&reference).enumerate() {
        let got = [a.x_center, a.y_center, a.w, a.h];
        for k in 0..4 {
            assert!(
                (f64::from(got[k]) - r[k]).abs() < 1e-5,
                "anchor {i} value {k}: {} vs reference {}",
                got[k],
                r[k]
            );
        }
    }
}

#[test]
fn missing_model_fails_with_what_to_do() {
    let err = OnnxModel::load("/nonexistent/dir/model.onnx", 1).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("model not found"), "{text}");
    assert!(text.contains("scripts/setup model"), "{text}");
}

#[test]
fn corrupt_model_is_a_clear_error() {
    require_model();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corrupt.onnx");
    std::fs::write(&path, b"this is not an ONNX model at all").unwrap();
    let err = OnnxModel::load(&path.to_string_lossy(), 1).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("not a valid ONNX model"), "{text}");
    assert!(text.contains("corrupt.onnx"), "{text}");
    // Truncated real model.
    let real = models_dir().unwrap().join(DEFAULT_MODEL);
    let bytes = std::fs::read(real).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    let err = OnnxModel::load(&path.to_string_lossy(), 1).unwrap_err();
    assert!(err.to_string().contains("not a valid ONNX model"), "{err}");
}

#[test]
fn shape_mismatch_names_both_shapes() {
    require_model();
    let mut model = OnnxModel::load(DEFAULT_MODEL, 1).expect("load the bundled model");
    assert_eq!(model.inputs().len(), 1);
    assert_eq!(model.inputs()[0].name, "normalized_input_image_tensor");
    assert_eq!(model.inputs()[0].shape, vec![1, 3, 300, 300]);
    let names: Vec<&str> = model.outputs().iter().map(|o| o.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["raw_outputs/box_encodings", "raw_outputs/class_predictions"]
    );
    // NHWC instead of NCHW.
    let nhwc = Tensor::new(vec![1, 300, 300, 3], vec![0.0; 270_000]).unwrap();
    let text = model.run(&[nhwc]).unwrap_err().to_string();
    assert!(
        text.contains("expects [1, 3, 300, 300], the tensor is [1, 300, 300, 3]"),
        "{text}"
    );
    let text = model.run(&[]).unwrap_err().to_string();
    assert!(text.contains("takes 1 input tensor(s)"), "{text}");
    // The right shape runs and gives the documented outputs.
    let ok = Tensor::new(vec![1, 3, 300, 300], vec![0.0; 270_000]).unwrap();
    let out = model.run(&[ok]).expect("inference");
    assert_eq!(out[0].shape(), &[1, 1917, 4]);
    assert_eq!(out[1].shape(), &[1, 1917, 24]);
    assert_eq!(out[0].name(), Some("raw_outputs/box_encodings"));
    assert!(out.iter().all(|t| t.data().iter().all(|v| v.is_finite())));
}

/// Runs `graph` to completion on another thread; panics if it takes longer than `RUN_TIMEOUT`.
fn run_bounded(mut graph: Graph, side: HashMap<String, Packet>) -> (Graph, Result<(), String>) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let result = graph.run(side).map_err(|e| e.to_string());
        let _ = tx.send((graph, result));
    });
    match rx.recv_timeout(RUN_TIMEOUT) {
        Ok(r) => r,
        Err(_) => panic!("graph run did not finish within {RUN_TIMEOUT:?} (hang?)"),
    }
}

#[test]
fn inference_calculator_reports_model_errors_when_the_run_starts() {
    require_model();
    let yaml = |opts: &str| {
        format!(
            "input_stream: [t]\ninput_side_packet: [model]\nnode:\n  - calculator: InferenceCalculator\n    input_stream: TENSORS:t\n    output_stream: TENSORS:out\n    input_side_packet: MODEL_PATH:model\n    options: {opts}\n"
        )
    };
    // The side packet wins over the option.
    let g = Graph::from_yaml_str(&yaml(
        "{model_path: object_detection_ssd_mobilenetv2_oidv4.onnx}",
    ))
    .expect("config");
    let side = HashMap::from([(
        "model".to_string(),
        Packet::new("/no/such/model.onnx".to_string()),
    )]);
    let (_, result) = run_bounded(g, side);
    let text = result.unwrap_err();
    assert!(text.contains("/no/such/model.onnx"), "{text}");
    assert!(text.contains("scripts/setup model"), "{text}");
    // No model at all.
    let g = Graph::from_yaml_str(&yaml("{}")).expect("config");
    let (_, result) = run_bounded(g, HashMap::new());
    let text = result.unwrap_err();
    assert!(
        text.contains("set the model_path option or the MODEL_PATH side packet"),
        "{text}"
    );
}

#[test]
fn persons_found_on_a_real_vtest_frame() {
    require_model();
    let frame = read_frame(&sample("vtest.avi"), 100);
    let mut detector = ObjectDetector::new(ObjectDetectorOptions::oidv4(0.4)).expect("detector");
    let (detections, times) = detector.detect(&frame).expect("detect");
    eprintln!("vtest.avi frame 100: {times:?}");
    for d in &detections {
        eprintln!("  {:?} {:.3} {:?}", d.label(), d.score(), d.bbox());
    }
    let persons: Vec<&Detection> = detections
        .iter()
        .filter(|d| d.label() == Some("Person"))
        .collect();
    assert!(
        persons.len() >= 2,
        "expected several persons, got {detections:?}"
    );
    for p in &persons {
        let b = p.bbox();
        assert!(p.score() > 0.4, "{p:?}");
        // Pedestrians: taller than wide, boxes inside the frame, not frame-sized.
        assert!(b.height > b.width, "{p:?}");
        assert!(b.xmin >= 0.0 && b.ymin >= 0.0 && b.xmax() <= 1.0 && b.ymax() <= 1.0);
        assert!(b.height < 0.6, "{p:?}");
    }
    // Frame 100 has a group of pedestrians crossing the middle of the road (x 0.44..0.80 of
    // the width, feet at about 0.4..0.5 of the height; checked by eye on the frame).
    let in_group = persons
        .iter()
        .filter(|p| {
            let (x, y) = p.bbox().center();
            (0.4..0.85).contains(&x) && (0.25..0.5).contains(&y)
        })
        .count();
    assert!(
        in_group >= 4,
        "only {in_group} persons in the group: {persons:?}"
    );
    // NMS left no two persons overlapping by more than its threshold.
    for (i, a) in persons.iter().enumerate() {
        for b in &persons[i + 1..] {
            assert!(a.bbox().iou(b.bbox()) <= 0.4 + 1e-6, "{a:?} {b:?}");
        }
    }
}

/// A frame's timestamp and detections.
type FrameDetections = (i64, Vec<Detection>);

/// Writes the first `frames` frames of `src` to `dst` (MJPG .avi).
fn write_clip(src: &str, dst: &Path, frames: usize) {
    let mut cap = VideoCapture::from_file(src, CAP_ANY).expect("open video");
    let total = cap.get(CAP_PROP_FRAME_COUNT).unwrap_or(0.0);
    assert!(total >= frames as f64, "{src} has {total} frames");
    let mut mat = Mat::default();
    assert!(cap.read(&mut mat).expect("read"));
    let fourcc = VideoWriter::fourcc('M', 'J', 'P', 'G').unwrap();
    let size = Size::new(mat.cols(), mat.rows());
    let mut w = VideoWriter::new(dst.as_os_str(), fourcc, 10.0, size, true).unwrap();
    assert!(w.is_opened().unwrap());
    w.write(&mat).unwrap();
    for _ in 1..frames {
        assert!(cap.read(&mut mat).expect("read"));
        w.write(&mat).unwrap();
    }
    w.release().unwrap();
}

/// Runs `graph` on `clip`, writing `out_video`; returns its `detections` stream.
fn detections_of(graph: Graph, clip: &Path, out_video: &Path) -> Vec<FrameDetections> {
    let mut graph = graph;
    let seen: Arc<Mutex<Vec<FrameDetections>>> = Arc::default();
    let sink = seen.clone();
    graph
        .observe_output_stream("detections", move |p| {
            let d = p.get::<Vec<Detection>>()?.clone();
            sink.lock().unwrap().push((p.timestamp().value(), d));
            Ok(())
        })
        .expect("observe");
    let side = HashMap::from([
        (
            "input_video".to_string(),
            Packet::new(clip.to_string_lossy().into_owned()),
        ),
        (
            "output_video".to_string(),
            Packet::new(out_video.to_string_lossy().into_owned()),
        ),
    ]);
    let (_, result) = run_bounded(graph, side);
    result.expect("graph run");
    let seen = seen.lock().unwrap().clone();
    seen
}

#[test]
fn object_detection_graph_on_a_short_clip() {
    require_model();
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.avi");
    write_clip(&sample("vtest.avi"), &clip, 30);
    let out_video = dir.path().join("det.avi");

    // The shipped graph runs two detector copies in parallel (demux -> 2 x detection -> mux).
    let graph =
        Graph::from_yaml_file(workspace().join("graphs/object_detection.yaml")).expect("config");
    let seen = detections_of(graph, &clip, &out_video);
    // One detector, in order: the parallel copies must give exactly its detections.
    let single = format!(
        "subgraphs: [\"{}\"]\ninput_side_packet: [input_video, output_video]\nnode:\n  - {{calculator: OpenCvVideoDecoderCalculator, input_side_packet: [\"INPUT_FILE_PATH:input_video\"], output_stream: [\"VIDEO:frames\"]}}\n  - {{calculator: ObjectDetectionSubgraph, input_stream: [\"IMAGE:frames\"], output_stream: [\"DETECTIONS:detections\"]}}\n",
        workspace().join("graphs/subgraphs/object_detection.yaml").display()
    );
    let one = detections_of(
        Graph::from_yaml_str(&single).expect("config"),
        &clip,
        &dir.path().join("unused.avi"),
    );
    assert_eq!(seen, one, "parallel detectors differ from one detector");

    assert_eq!(seen.len(), 30, "one detection packet per frame");
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));
    let with_person = seen
        .iter()
        .filter(|(_, ds)| ds.iter().any(|d| d.label() == Some("Person")))
        .count();
    assert!(
        with_person >= 25,
        "persons in only {with_person} of 30 frames"
    );
    // Detections serialize for --dump.
    let json = serde_json::to_value(&seen[0].1).unwrap();
    assert!(
        json[0]["relative_bounding_box"]["xmin"].is_number(),
        "{json}"
    );

    let cap = VideoCapture::from_file(out_video.as_os_str(), CAP_ANY).unwrap();
    assert!(cap.is_opened().unwrap());
    assert_eq!(cap.get(CAP_PROP_FRAME_COUNT).unwrap() as usize, 30);
}
