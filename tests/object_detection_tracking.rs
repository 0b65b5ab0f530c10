//! The object detection + tracking graph (`graphs/object_detection_tracking.yaml`) on a short
//! clip of `data/vtest.avi` (its first 60 frames, 6 s): tracked detections carry ids, ids
//! persist from frame to frame, and the annotated video has one frame per input frame.
//!
//! Needs `scripts/setup` (the sample video, the detector model and ONNX Runtime); fails with
//! that advice when they are missing.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use mediagraph::calculators::detection::Detection;
use mediagraph::{Graph, Packet, SidePackets};

/// Frames of the clip.
pub const CLIP_FRAMES: usize = 60;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Fails (with the fix) when `scripts/setup` has not been run.
pub fn require_setup() {
    let video = repo().join("data/vtest.avi");
    assert!(
        video.is_file(),
        "{} is missing: run scripts/setup",
        video.display()
    );
    assert!(
        mediagraph::calculators::detection::resources::models_dir().is_some(),
        "the detector model is missing: run scripts/setup"
    );
}

fn side(pairs: &[(&str, &Path)]) -> SidePackets {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Packet::new(v.display().to_string())))
        .collect()
}

/// Writes the first `CLIP_FRAMES` frames of `data/vtest.avi` to `dir/clip.avi`.
pub fn make_clip(dir: &Path) -> PathBuf {
    let clip = dir.join("clip.avi");
    let end_us = CLIP_FRAMES as i64 * 100_000; // vtest.avi runs at 10 fps
    let yaml = format!(
        r#"
input_side_packet: [input_video, output_video]
node:
  - calculator: OpenCvVideoDecoderCalculator
    input_side_packet: ["INPUT_FILE_PATH:input_video"]
    output_stream: ["VIDEO:frames", "VIDEO_PRESTREAM:header"]
  - calculator: PacketThinnerCalculator
    input_stream: [frames]
    output_stream: [first_frames]
    options: {{thinner_type: ASYNC, period: 1, end_time: {end_us}}}
  - calculator: OpenCvVideoEncoderCalculator
    input_stream: ["VIDEO:first_frames", "VIDEO_PRESTREAM:header"]
    input_side_packet: ["OUTPUT_FILE_PATH:output_video"]
"#
    );
    let mut g = Graph::from_yaml_str(&yaml).expect("clip graph");
    g.run(side(&[
        ("input_video", &repo().join("data/vtest.avi")),
        ("output_video", &clip),
    ]))
    .expect("clip written");
    assert_eq!(count_frames(&clip), CLIP_FRAMES, "the clip's frames");
    clip
}

/// The number of frames of a video file (decoded).
pub fn count_frames(video: &Path) -> usize {
    let mut g = Graph::from_yaml_str(
        r#"
input_side_packet: [input_video]
node:
  - calculator: OpenCvVideoDecoderCalculator
    input_side_packet: ["INPUT_FILE_PATH:input_video"]
    output_stream: ["VIDEO:frames"]
"#,
    )
    .expect("decoder graph");
    let n = Arc::new(Mutex::new(0usize));
    let sink = n.clone();
    g.observe_output_stream("frames", move |_| {
        *sink.lock().expect("lock") += 1;
        Ok(())
    })
    .expect("observe");
    g.run(side(&[("input_video", video)])).expect("decoded");
    let count = *n.lock().expect("lock");
    count
}

/// Checks tracked detections of a run on the clip: ids exist and persist.
pub fn check_tracks(frames: &[Vec<Detection>]) {
    assert_eq!(frames.len(), CLIP_FRAMES, "one packet per frame");
    let mut track_len: HashMap<u64, usize> = HashMap::new();
    for (k, dets) in frames.iter().enumerate() {
        for d in dets {
            let id =
                d.id.unwrap_or_else(|| panic!("frame {k}: a tracked detection without id"));
            assert!(
                !d.labels.is_empty() && d.labels.len() == d.scores.len(),
                "{d:?}"
            );
            assert!(d.relative_bounding_box.is_valid(), "{d:?}");
            *track_len.entry(id).or_default() += 1;
        }
        let mut ids: Vec<u64> = dets.iter().filter_map(|d| d.id).collect();
        ids.sort_unstable();
        let n = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), n, "frame {k}: an id reported twice");
    }
    let with_people = frames.iter().filter(|f| !f.is_empty()).count();
    assert!(
        with_people >= CLIP_FRAMES / 2,
        "tracked objects in only {with_people} of {CLIP_FRAMES} frames"
    );
    // Ids persist: some objects are followed for at least 2 s (20 frames, 6 detections),
    // and on most frames most objects keep the id they had on the frame before.
    let long = track_len.values().filter(|&&n| n >= 20).count();
    assert!(
        long >= 2,
        "tracks longer than 20 frames: {long} ({track_len:?})"
    );
    let (mut kept, mut total) = (0, 0);
    for w in frames.windows(2) {
        let before: Vec<u64> = w[0].iter().filter_map(|d| d.id).collect();
        for d in &w[1] {
            total += 1;
            kept += usize::from(d.id.is_some_and(|id| before.contains(&id)));
        }
    }
    assert!(
        kept * 10 >= total * 8,
        "only {kept} of {total} tracked detections kept the id of the frame before"
    );
}

#[test]
fn detection_and_tracking_graph_on_a_short_clip() {
    require_setup();
    let dir = tempfile::tempdir().expect("temp dir");
    let clip = make_clip(dir.path());
    let out = dir.path().join("tracked.mp4");
    let mut g = Graph::from_yaml_file(repo().join("graphs/object_detection_tracking.yaml"))
        .expect("graph loads");
    let seen: Arc<Mutex<BTreeMap<i64, Vec<Detection>>>> = Arc::default();
    let sink = seen.clone();
    g.observe_output_stream("tracked_detections", move |p: &Packet| {
        let v = p.get::<Vec<Detection>>()?.clone();
        sink.lock().expect("lock").insert(p.timestamp().micros(), v);
        Ok(())
    })
    .expect("observe");
    let detections = Arc::new(Mutex::new(0usize));
    let counter = detections.clone();
    g.observe_output_stream("detections", move |_| {
        *counter.lock().expect("lock") += 1;
        Ok(())
    })
    .expect("observe");
    g.run(side(&[("input_video", &clip), ("output_video", &out)]))
        .expect("the graph runs");
    // The detector ran at 3 fps on a 10 fps clip: 18 frames (plus the last one, flushed).
    let n_det = *detections.lock().expect("lock");
    assert!((18..=19).contains(&n_det), "{n_det} detection frames");
    let frames: Vec<Vec<Detection>> = std::mem::take(&mut *seen.lock().expect("lock"))
        .into_values()
        .collect();
    check_tracks(&frames);
    assert_eq!(count_frames(&out), CLIP_FRAMES, "annotated video frames");
}
