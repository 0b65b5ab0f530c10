//! Runs the logic of the examples, so that they are checked by `cargo test` (each example
//! file is compiled into this test as a module).

#[allow(dead_code)]
#[path = "../examples/embed.rs"]
mod embed;

#[allow(dead_code)]
#[path = "../examples/custom_calculator.rs"]
mod custom_calculator;

#[test]
fn embed_example_passes_words_through() {
    let got = embed::run(&["hello", "from", "mediagraph"]).expect("the example graph runs");
    assert_eq!(
        got,
        [
            (0, "hello".to_string()),
            (1000, "from".to_string()),
            (2000, "mediagraph".to_string()),
        ]
    );
}

#[test]
fn custom_calculator_example_scales() {
    let got = custom_calculator::run(5, 3).expect("the example graph runs");
    assert_eq!(got, [0, 3, 6, 9, 12]);
}

#[test]
fn custom_calculator_is_short() {
    // The calculator and its registration: everything before `pub fn run`'s body starts,
    // without comments and blank lines, plus the `register` line.
    let text = include_str!("../examples/custom_calculator.rs");
    let body = &text[..text.find("pub fn run").expect("run is defined")];
    let code = body
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .count()
        + 1;
    assert!(code < 40, "{code} lines");
}

#[test]
fn embed_example_reads_stats() {
    let table = embed::stats().expect("the example graph runs");
    let first = table
        .lines()
        .find(|l| l.starts_with("first "))
        .expect("a row for node first");
    assert!(first.contains("PassThroughCalculator"), "{table}");
    assert!(first.split_whitespace().any(|w| w == "100"), "{table}");
}

#[allow(dead_code)]
#[path = "../examples/camera_demo.rs"]
mod camera_demo;

#[allow(dead_code)]
#[path = "object_detection_tracking.rs"]
mod object_detection_tracking;

#[test]
fn camera_demo_plays_a_file_headless() {
    object_detection_tracking::require_setup();
    let dir = tempfile::tempdir().expect("temp dir");
    let clip = object_detection_tracking::make_clip(dir.path());
    let out = dir.path().join("demo.mp4");
    let args = camera_demo::parse_args(&[
        "--input".into(),
        clip.display().to_string(),
        "--headless".into(),
        "--output".into(),
        out.display().to_string(),
    ])
    .expect("arguments");
    let summary = camera_demo::run(&args).expect("the demo runs");
    assert_eq!(
        summary.frames,
        object_detection_tracking::CLIP_FRAMES as u64
    );
    object_detection_tracking::check_tracks(&summary.tracked);
    assert!(summary.distinct_ids() >= 2);
    assert_eq!(
        object_detection_tracking::count_frames(&out),
        object_detection_tracking::CLIP_FRAMES
    );
}

#[test]
fn camera_demo_reports_a_missing_camera_or_file() {
    let args = camera_demo::parse_args(&["--device".into(), "97".into(), "--headless".into()])
        .expect("arguments");
    let err = camera_demo::run(&args).expect_err("no camera 97");
    assert!(
        err.contains("no camera") || err.contains("could not be opened"),
        "{err}"
    );
    let args = camera_demo::parse_args(&["--input".into(), "/no/such/file.mp4".into()])
        .expect("arguments");
    let err = camera_demo::run(&args).expect_err("no file");
    assert!(err.contains("/no/such/file.mp4"), "{err}");
    assert!(camera_demo::parse_args(&["--bogus".into()]).is_err());
    // Every variant of the graph (camera + window, camera + file, file + window) loads.
    for argv in [
        vec![],
        vec!["--headless".to_string()],
        vec!["--input".to_string(), "x.avi".to_string()],
    ] {
        let args = camera_demo::parse_args(&argv).expect("arguments");
        if let Err(e) = camera_demo::build_graph(&args, 10) {
            panic!("{argv:?}: {e}");
        }
    }
    assert!(camera_demo::parse_args(&["--detection-fps".into(), "0".into()]).is_err());
    // Node options can be changed; a wrong one is named.
    let set = |value: &str| {
        let args = camera_demo::parse_args(&["--set".into(), value.into()]).expect("arguments");
        camera_demo::build_graph(&args, 10).map(|_| ())
    };
    assert_eq!(set("pipeline.detection_rate.period=100000"), Ok(()));
    let err = set("pipeline.detection_rate.perod=100000").expect_err("unknown option");
    assert!(err.contains("unknown field `perod`"), "{err}");
    let err = set("pipline.x=1").expect_err("unknown node");
    assert!(err.contains("no node \"pipline\""), "{err}");
    assert!(camera_demo::parse_args(&["--set".into(), "pipeline".into()]).is_err());
}

#[allow(dead_code)]
#[path = "../examples/soak.rs"]
mod soak;

#[test]
fn soak_example_feeds_a_looping_video_through_the_pipeline() {
    let video = mediagraph::calculators::sample_data::sample_video("vtest.avi")
        .unwrap_or_else(|e| panic!("{e}"));
    // A pass over the whole video takes about a minute in a debug build; 40 frames check the
    // feeding, the outputs and the report (the loop is exercised by the soak run itself).
    let summary = soak::run(40, &video.display().to_string()).expect("the soak runs");
    assert_eq!(summary.frames, 40);
    assert_eq!(
        summary.outputs, 40,
        "one tracked-detections packet per frame"
    );
    assert_eq!(summary.queue_growths, 0);
    assert!(summary.peak_mib.0 > 0.0 && summary.peak_mib.1 >= summary.peak_mib.0);
}
