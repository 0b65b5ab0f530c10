//! Graph-level tests of the association calculators.

use crate::detection::{Detection, RelativeBox};
use crate::test_util::*;
use crate::tracking::box_tracker::{TimedBox, TimedBoxList};

fn det(label_id: i32, label: &str, score: f32, l: f32, t: f32, r: f32, b: f32) -> Detection {
    Detection {
        labels: vec![label.to_string()],
        ..Detection::new(label_id, score, RelativeBox::from_corners(l, t, r, b))
    }
}

fn with_id(mut d: Detection, id: u64) -> Detection {
    d.id = Some(id);
    d
}

fn tbox(id: i64, l: f32, t: f32, r: f32, b: f32, time_us: i64) -> TimedBox {
    TimedBox {
        left: l,
        top: t,
        right: r,
        bottom: b,
        id,
        time_us,
        ..Default::default()
    }
}

#[test]
fn unique_ids_are_consecutive_and_overwrite_existing_ones() {
    let mut g = graph(
        r#"
input_stream: [dets, one]
node:
  - calculator: DetectionUniqueIdCalculator
    input_stream: ["DETECTIONS:dets", "DETECTION:one"]
    output_stream: ["DETECTIONS:dets_id", "DETECTION:one_id"]
"#,
    );
    let out = record(&mut g, "dets_id");
    let one = record(&mut g, "one_id");
    g.start_run(Default::default()).unwrap();
    let a = det(4, "Person", 0.5, 0.1, 0.1, 0.2, 0.3);
    let b = with_id(det(23, "Car", 0.6, 0.5, 0.5, 0.9, 0.7), 77);
    g.add_packet("dets", at(vec![a.clone(), b.clone()], 1000))
        .unwrap();
    g.add_packet("dets", at(Vec::<Detection>::new(), 2000))
        .unwrap();
    g.add_packet("dets", at(vec![a.clone()], 3000)).unwrap();
    g.add_packet("one", at(b.clone(), 3000)).unwrap();
    g.finish().unwrap();
    let got = out.values::<Vec<Detection>>();
    assert_eq!(
        got.iter().map(|(t, _)| t.micros()).collect::<Vec<_>>(),
        [1000, 2000, 3000]
    );
    let first = got[0].1[0].id.expect("an id");
    assert!(first >= 1);
    // Everything but the id is unchanged; the existing id 77 is overwritten.
    assert_eq!(got[0].1[0], with_id(a.clone(), first));
    assert_eq!(got[0].1[1], with_id(b.clone(), first + 1));
    assert!(got[1].1.is_empty());
    let third = got[2].1[0].id.expect("an id");
    assert!(third >= first + 2, "ids only increase");
    let single = one.values::<Detection>();
    assert_eq!(single.len(), 1);
    assert_eq!(single[0].0.micros(), 3000);
    let single_id = single[0].1.id.expect("an id");
    assert!(single_id >= first + 2 && single_id != third);
}

#[test]
fn unique_id_ports_are_checked() {
    let err = config_error(
        r#"
input_stream: [dets]
node:
  - calculator: DetectionUniqueIdCalculator
    input_stream: ["DETECTIONS:dets"]
    output_stream: ["DETECTION:x"]
"#,
    );
    assert!(err.contains("DETECTIONS"), "{err}");
}

#[test]
fn detections_become_timed_boxes_at_the_packet_time() {
    let mut g = graph(
        r#"
input_stream: [dets]
node:
  - calculator: DetectionsToTimedBoxListCalculator
    input_stream: ["DETECTIONS:dets"]
    output_stream: ["BOXES:boxes"]
"#,
    );
    let out = record(&mut g, "boxes");
    g.start_run(Default::default()).unwrap();
    let a = with_id(det(4, "Person", 0.5, 0.25, 0.125, 0.5, 0.75), 3);
    let no_id = Detection::new(1, 0.4, RelativeBox::from_corners(0.5, 0.5, 0.75, 1.0));
    let bad = with_id(
        Detection::new(1, 0.4, RelativeBox::from_corners(0.5, 0.5, 0.5, 0.6)),
        9,
    );
    g.add_packet("dets", at(vec![a, no_id, bad], 333_333))
        .unwrap();
    g.finish().unwrap();
    let got = out.values::<TimedBoxList>();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0.micros(), 333_333);
    assert_eq!(
        got[0].1 .0,
        vec![
            TimedBox {
                left: 0.25,
                top: 0.125,
                right: 0.5,
                bottom: 0.75,
                rotation: 0.0,
                id: 3,
                label: Some("Person".into()),
                confidence: 1.0,
                time_us: 333_333,
                reacquisition: false,
            },
            TimedBox {
                left: 0.5,
                top: 0.5,
                right: 0.75,
                bottom: 1.0,
                rotation: 0.0,
                id: -1,
                label: None,
                confidence: 1.0,
                time_us: 333_333,
                reacquisition: false,
            },
        ],
        "the empty box is left out"
    );
    let dropped: u64 = g.stats().iter().map(|s| s.dropped).sum();
    assert_eq!(dropped, 1);
}

const MANAGER: &str = r#"
input_stream: [dets, boxes]
node:
  - calculator: TrackedDetectionManagerCalculator
    input_stream: ["DETECTIONS:dets", "TRACKING_BOXES:boxes"]
    output_stream: ["DETECTIONS:tracked", "CANCEL_OBJECT_ID:cancel"]
    options: {smoothing: 1.0}
"#;

/// One input step: timestamp, detections (if any), tracker boxes (if any).
type Step = (i64, Option<Vec<Detection>>, Option<Vec<TimedBox>>);
/// Tracked detections per frame and cancels, with their timestamps.
type ManagerOutput = (Vec<(i64, Vec<Detection>)>, Vec<(i64, i64)>);

/// Runs the manager on `steps`.
fn run_manager(yaml: &str, steps: Vec<Step>) -> ManagerOutput {
    let mut g = graph(yaml);
    let tracked = record(&mut g, "tracked");
    let cancel = record(&mut g, "cancel");
    g.start_run(Default::default()).unwrap();
    for (t, dets, boxes) in steps {
        if let Some(d) = dets {
            g.add_packet("dets", at(d, t)).unwrap();
            g.wait_until_idle().unwrap();
        }
        if let Some(b) = boxes {
            g.add_packet("boxes", at(TimedBoxList(b), t)).unwrap();
            g.wait_until_idle().unwrap();
        }
    }
    g.finish().unwrap();
    (
        tracked
            .values::<Vec<Detection>>()
            .into_iter()
            .map(|(t, v)| (t.micros(), v))
            .collect(),
        cancel
            .values::<i64>()
            .into_iter()
            .map(|(t, v)| (t.micros(), v))
            .collect(),
    )
}

#[test]
fn a_detection_is_reported_once_the_tracker_has_its_box() {
    let d1 = with_id(det(4, "Person", 0.6, 0.1, 0.1, 0.3, 0.5), 101);
    let (tracked, cancel) = run_manager(
        MANAGER,
        vec![
            (0, Some(vec![d1]), Some(vec![])),
            (
                100_000,
                None,
                Some(vec![tbox(101, 0.12, 0.1, 0.32, 0.5, 100_000)]),
            ),
            (
                200_000,
                None,
                Some(vec![tbox(101, 0.14, 0.1, 0.34, 0.5, 200_000)]),
            ),
            // The tracker lost it: not reported on this frame.
            (300_000, None, Some(vec![])),
        ],
    );
    assert!(cancel.is_empty(), "{cancel:?}");
    assert_eq!(tracked.len(), 4, "one packet per TRACKING_BOXES packet");
    assert!(tracked[0].1.is_empty(), "waiting for the tracker");
    let d = &tracked[1].1[0];
    assert_eq!(d.id, Some(101));
    assert_eq!(d.labels, vec!["Person".to_string()]);
    assert_eq!(d.label_ids, vec![4]);
    assert_eq!(d.scores, vec![0.6]);
    let b = d.relative_bounding_box;
    assert!(
        (b.xmin - 0.12).abs() < 1e-6 && (b.xmax() - 0.32).abs() < 1e-6,
        "{b:?}"
    );
    assert!((tracked[2].1[0].relative_bounding_box.xmin - 0.14).abs() < 1e-6);
    assert!(tracked[3].1.is_empty());
}

#[test]
fn a_redetection_keeps_the_first_id_merges_labels_and_cancels_the_old_track() {
    let first = with_id(det(4, "Person", 0.5, 0.1, 0.1, 0.3, 0.5), 1);
    let other = with_id(det(23, "Car", 0.7, 0.6, 0.6, 0.9, 0.8), 2);
    // The same person again, detected as a "Footwear" with a higher score.
    let again = with_id(det(19, "Footwear", 0.8, 0.11, 0.1, 0.31, 0.5), 3);
    let (tracked, cancel) = run_manager(
        MANAGER,
        vec![
            (0, Some(vec![first, other]), None),
            (
                33_000,
                None,
                Some(vec![
                    tbox(1, 0.1, 0.1, 0.3, 0.5, 33_000),
                    tbox(2, 0.6, 0.6, 0.9, 0.8, 33_000),
                ]),
            ),
            (66_000, Some(vec![again]), None),
            (
                99_000,
                None,
                Some(vec![
                    tbox(1, 0.12, 0.1, 0.32, 0.5, 99_000),
                    tbox(2, 0.6, 0.6, 0.9, 0.8, 99_000),
                    tbox(3, 0.12, 0.1, 0.32, 0.5, 99_000),
                ]),
            ),
            (
                132_000,
                None,
                Some(vec![
                    tbox(2, 0.6, 0.6, 0.9, 0.8, 132_000),
                    tbox(3, 0.13, 0.1, 0.33, 0.5, 132_000),
                ]),
            ),
        ],
    );
    assert_eq!(cancel, vec![(99_000, 1)], "the old track is cancelled");
    let ids = |k: usize| {
        let mut v: Vec<u64> = tracked[k].1.iter().filter_map(|d| d.id).collect();
        v.sort();
        v
    };
    assert_eq!(ids(0), [1, 2]);
    assert_eq!(ids(1), [1, 2], "the re-detected person keeps id 1");
    assert_eq!(ids(2), [1, 2]);
    let person = tracked[2].1.iter().find(|d| d.id == Some(1)).unwrap();
    assert_eq!(person.labels, ["Footwear", "Person"], "sorted by score");
    assert_eq!(person.label_ids, [19, 4]);
    assert_eq!(person.scores, [0.8, 0.5]);
    assert!((person.relative_bounding_box.xmin - 0.13).abs() < 1e-6);
}

#[test]
fn cancels_get_one_timestamp_each_and_lost_tracks_time_out() {
    let a = with_id(det(4, "Person", 0.5, 0.1, 0.1, 0.2, 0.2), 11);
    let b = with_id(det(4, "Person", 0.5, 0.5, 0.5, 0.6, 0.6), 12);
    let c = with_id(det(4, "Person", 0.5, 0.7, 0.1, 0.8, 0.2), 13);
    let yaml = MANAGER.replace("{smoothing: 1.0}", "{smoothing: 1.0, timeout_ms: 1000}");
    let (tracked, cancel) = run_manager(
        &yaml,
        vec![
            (0, Some(vec![a, b, c]), None),
            (
                10_000,
                None,
                Some(vec![
                    tbox(11, 0.1, 0.1, 0.2, 0.2, 10_000),
                    tbox(12, 0.5, 0.5, 0.6, 0.6, 10_000),
                    tbox(13, 0.7, 0.1, 0.8, 0.2, 10_000),
                ]),
            ),
            // 12 and 13 drift out of the frame together; 11 is no longer reported.
            (
                20_000,
                None,
                Some(vec![
                    tbox(12, 1.1, 0.5, 1.2, 0.6, 20_000),
                    tbox(13, 0.7, -0.3, 0.8, -0.1, 20_000),
                ]),
            ),
            (500_000, None, Some(vec![])),
            // More than timeout_ms since 11 was last updated.
            (1_100_000, None, Some(vec![])),
        ],
    );
    assert_eq!(
        cancel,
        vec![(20_000, 12), (20_001, 13), (1_100_000, 11)],
        "one cancel per timestamp"
    );
    assert_eq!(tracked.len(), 4);
    assert_eq!(tracked[0].1.len(), 3);
    assert!(tracked[1..].iter().all(|(_, v)| v.is_empty()));
}

#[test]
fn smoothing_eases_a_redetection_by_default() {
    let first = with_id(det(4, "Person", 0.5, 0.10, 0.1, 0.30, 0.5), 1);
    let again = with_id(det(4, "Person", 0.5, 0.14, 0.1, 0.34, 0.5), 2);
    let default_manager = MANAGER.replace("options: {smoothing: 1.0}", "");
    let mut steps = vec![
        (
            0,
            Some(vec![first]),
            Some(vec![tbox(1, 0.10, 0.1, 0.30, 0.5, 0)]),
        ),
        (100_000, Some(vec![again]), None),
    ];
    for k in 1..10 {
        let t = 100_000 * k;
        steps.push((t, None, Some(vec![tbox(2, 0.14, 0.1, 0.34, 0.5, t)])));
    }
    let (tracked, _) = run_manager(&default_manager, steps);
    let lefts: Vec<f32> = tracked[1..]
        .iter()
        .map(|(_, v)| {
            assert_eq!(v.len(), 1);
            assert_eq!(v[0].id, Some(1));
            v[0].relative_bounding_box.xmin
        })
        .collect();
    assert!(lefts[0] > 0.10 && lefts[0] < 0.13, "{lefts:?}");
    assert!(lefts.windows(2).all(|w| w[1] >= w[0]), "{lefts:?}");
    assert!((lefts[lefts.len() - 1] - 0.14).abs() < 0.002, "{lefts:?}");
}

#[test]
fn the_motion_filter_smooths_a_track_and_carries_its_velocity_through_a_redetection() {
    let first = with_id(det(4, "Person", 0.5, 0.10, 0.1, 0.30, 0.5), 1);
    let again = with_id(det(4, "Person", 0.5, 0.16, 0.1, 0.36, 0.5), 2);
    let yaml = MANAGER.replace(
        "{smoothing: 1.0}",
        "{smoothing: 0.5, motion_alpha: 0.5, motion_beta: 0.2}",
    );
    let step = |t: i64, boxes: Vec<TimedBox>| (t, None, Some(boxes));
    let (tracked, _) = run_manager(
        &yaml,
        vec![
            (
                0,
                Some(vec![first]),
                Some(vec![tbox(1, 0.10, 0.1, 0.30, 0.5, 0)]),
            ),
            step(100_000, vec![tbox(1, 0.12, 0.1, 0.32, 0.5, 100_000)]),
            step(200_000, vec![tbox(1, 0.14, 0.1, 0.34, 0.5, 200_000)]),
            (
                300_000,
                Some(vec![again]),
                Some(vec![
                    tbox(1, 0.155, 0.1, 0.355, 0.5, 300_000),
                    tbox(2, 0.16, 0.1, 0.36, 0.5, 300_000),
                ]),
            ),
            step(400_000, vec![tbox(2, 0.18, 0.1, 0.38, 0.5, 400_000)]),
        ],
    );
    let lefts: Vec<f32> = tracked
        .iter()
        .map(|(_, v)| {
            assert_eq!(v.len(), 1);
            assert_eq!(v[0].id, Some(1));
            let b = &v[0].relative_bounding_box;
            assert!((b.width - 0.2).abs() < 1e-5, "{b:?}");
            b.xmin
        })
        .collect();
    // Frame 1: predicted 0.10, residual 0.02 -> 0.11, velocity 0.2 * 0.02 / 100 ms.
    // Frame 2: predicted 0.114, residual 0.026 -> 0.127, velocity 9.2e-5 per ms.
    // Frame 3, re-detection: the box would have gone on to 0.127 + 0.0092 = 0.1362; half the
    // offset to the new track (0.16) is kept: 0.16 - 0.0119 = 0.1481.
    // Frame 4: predicted 0.1692, residual 0.0108 -> 0.1746, minus a quarter of the offset.
    let expected = [0.10, 0.11, 0.127, 0.1481, 0.16865];
    assert_eq!(lefts.len(), expected.len());
    for (got, want) in lefts.iter().zip(expected) {
        assert!((got - want).abs() < 1e-5, "{lefts:?}");
    }
}

#[test]
fn a_large_correction_is_eased_only_up_to_max_eased_offset() {
    let first = with_id(det(4, "Person", 0.5, 0.10, 0.1, 0.50, 0.5), 1);
    let again = with_id(det(4, "Person", 0.5, 0.22, 0.1, 0.62, 0.5), 2);
    let yaml = MANAGER.replace(
        "{smoothing: 1.0}",
        "{smoothing: 0.35, max_eased_offset: 0.1}",
    );
    let (tracked, _) = run_manager(
        &yaml,
        vec![
            (
                0,
                Some(vec![first]),
                Some(vec![tbox(1, 0.10, 0.1, 0.50, 0.5, 0)]),
            ),
            (
                100_000,
                Some(vec![again]),
                Some(vec![
                    tbox(1, 0.10, 0.1, 0.50, 0.5, 100_000),
                    tbox(2, 0.22, 0.1, 0.62, 0.5, 100_000),
                ]),
            ),
            (
                200_000,
                None,
                Some(vec![tbox(2, 0.22, 0.1, 0.62, 0.5, 200_000)]),
            ),
        ],
    );
    let boxes: Vec<(f32, f32)> = tracked
        .iter()
        .map(|(_, v)| {
            let b = &v[0].relative_bounding_box;
            (b.xmin, b.xmax())
        })
        .collect();
    // The offset 0.65 * -0.12 = -0.078 is more than 0.1 of the 0.4 wide box: -0.04 is kept,
    // then it shrinks by 0.35 a frame.
    let expected = [(0.10, 0.50), (0.18, 0.58), (0.194, 0.594)];
    for (got, want) in boxes.iter().zip(expected) {
        assert!(
            (got.0 - want.0).abs() < 1e-5 && (got.1 - want.1).abs() < 1e-5,
            "{boxes:?}"
        );
    }
}

const LOOKAHEAD: &str = r#"
input_stream: [dets, boxes]
node:
  - calculator: TrackedDetectionManagerCalculator
    input_stream: ["DETECTIONS:dets", "TRACKING_BOXES:boxes"]
    output_stream: ["DETECTIONS:tracked", "CANCEL_OBJECT_ID:cancel"]
    options: {lookahead_ms: 1000}
"#;

/// The left edge of object `id` on each output frame (None: not shown).
fn left_edges(tracked: &[(i64, Vec<Detection>)], id: u64) -> Vec<Option<f32>> {
    tracked
        .iter()
        .map(|(_, v)| {
            v.iter()
                .find(|d| d.id == Some(id))
                .map(|d| d.relative_bounding_box.xmin)
        })
        .collect()
}

#[test]
fn the_lookahead_spreads_a_correction_over_the_frames_before_a_redetection() {
    let mut g = graph(LOOKAHEAD);
    let tracked = record(&mut g, "tracked");
    g.start_run(Default::default()).unwrap();
    let step = |t: i64, dets: Option<Vec<Detection>>, boxes: Vec<TimedBox>| {
        if let Some(d) = dets {
            g.add_packet("dets", at(d, t)).unwrap();
        }
        g.add_packet("boxes", at(TimedBoxList(boxes), t)).unwrap();
        g.wait_until_idle().unwrap();
        tracked.timestamps().len()
    };
    let person = |id, l: f32| with_id(det(4, "Person", 0.6, l, 0.1, l + 0.2, 0.5), id);
    // A person detected at 0; the tracker holds its box still (it drifts: the person moves).
    assert_eq!(
        step(
            0,
            Some(vec![person(1, 0.1)]),
            vec![tbox(1, 0.1, 0.1, 0.3, 0.5, 0)]
        ),
        1,
        "a detection frame is sent at once"
    );
    for t in [100_000, 200_000] {
        assert_eq!(
            step(t, None, vec![tbox(1, 0.1, 0.1, 0.3, 0.5, t)]),
            1,
            "held until the next detection"
        );
    }
    // At 300 ms the person is re-detected 0.03 further right, and a car appears.
    let car = with_id(det(23, "Car", 0.7, 0.6, 0.6, 0.9, 0.8), 3);
    let sent = step(
        300_000,
        Some(vec![person(2, 0.13), car]),
        vec![
            tbox(1, 0.1, 0.1, 0.3, 0.5, 300_000),
            tbox(2, 0.13, 0.1, 0.33, 0.5, 300_000),
            tbox(3, 0.6, 0.6, 0.9, 0.8, 300_000),
        ],
    );
    assert_eq!(sent, 4, "the held frames and the detection frame are sent");
    g.finish().unwrap();
    let out: Vec<(i64, Vec<Detection>)> = tracked
        .values::<Vec<Detection>>()
        .into_iter()
        .map(|(t, v)| (t.micros(), v))
        .collect();
    let times: Vec<i64> = out.iter().map(|(t, _)| *t).collect();
    assert_eq!(
        times,
        [0, 100_000, 200_000, 300_000],
        "in order, one per frame"
    );
    let person_left = left_edges(&out, 1);
    let expected = [0.1, 0.11, 0.12, 0.13];
    for (got, want) in person_left.iter().zip(expected) {
        let got = got.expect("the person is shown on every frame");
        assert!((got - want).abs() < 1e-5, "{person_left:?}");
    }
    assert_eq!(
        left_edges(&out, 3),
        [None, Some(0.6), Some(0.6), Some(0.6)],
        "the car is shown on the held frames before its detection, where it was detected"
    );
}

#[test]
fn the_lookahead_fills_a_gap_in_a_track_back_to_where_it_was_last_shown() {
    let person = |id, l: f32| with_id(det(4, "Person", 0.6, l, 0.1, l + 0.2, 0.5), id);
    let (tracked, _) = run_manager(
        LOOKAHEAD,
        vec![
            (
                0,
                Some(vec![person(1, 0.1)]),
                Some(vec![tbox(1, 0.1, 0.1, 0.3, 0.5, 0)]),
            ),
            (
                100_000,
                None,
                Some(vec![tbox(1, 0.1, 0.1, 0.3, 0.5, 100_000)]),
            ),
            // The tracker loses the person for two frames...
            (200_000, None, Some(vec![])),
            (300_000, None, Some(vec![])),
            // ...and a detection finds them again.
            (
                400_000,
                Some(vec![person(2, 0.12)]),
                Some(vec![tbox(2, 0.12, 0.1, 0.32, 0.5, 400_000)]),
            ),
        ],
    );
    let thousandths: Vec<Option<i32>> = left_edges(&tracked, 1)
        .iter()
        .map(|l| l.map(|l| (l * 1000.0).round() as i32))
        .collect();
    assert_eq!(
        thousandths,
        [Some(100), Some(100), Some(120), Some(120), Some(120)],
        "the gap shows the object where it was found again, under its first id"
    );
}

#[test]
fn without_detections_the_lookahead_releases_frames_after_lookahead_ms() {
    let yaml = LOOKAHEAD.replace("lookahead_ms: 1000", "lookahead_ms: 250");
    let mut g = graph(&yaml);
    let tracked = record(&mut g, "tracked");
    g.start_run(Default::default()).unwrap();
    let person = with_id(det(4, "Person", 0.6, 0.1, 0.1, 0.3, 0.5), 1);
    g.add_packet("dets", at(vec![person], 0)).unwrap();
    let mut sent = Vec::new();
    for t in (0..=500_000).step_by(100_000) {
        let b = TimedBoxList(vec![tbox(1, 0.1, 0.1, 0.3, 0.5, t)]);
        g.add_packet("boxes", at(b, t)).unwrap();
        g.wait_until_idle().unwrap();
        sent.push(tracked.timestamps().len());
    }
    // Frame 0 is a detection frame; later frames go once 250 ms of video passed them.
    assert_eq!(sent, [1, 1, 1, 1, 2, 3]);
    g.finish().unwrap();
    assert_eq!(
        tracked.timestamps().len(),
        6,
        "the rest is sent when the input ends"
    );
}

#[test]
fn with_wait_for_detections_a_detection_meets_the_boxes_of_its_frame_whatever_comes_first() {
    // The tracker's boxes of a frame reach the manager before that frame's detections.
    let run = |options: &str| {
        let mut g = graph(&MANAGER.replace("{smoothing: 1.0}", options));
        let tracked = record(&mut g, "tracked");
        g.start_run(Default::default()).unwrap();
        let person = with_id(det(4, "Person", 0.6, 0.1, 0.1, 0.3, 0.5), 7);
        for (t, dets) in [(0, vec![person]), (100_000, vec![])] {
            let b = TimedBoxList(vec![tbox(7, 0.1, 0.1, 0.3, 0.5, t)]);
            g.add_packet("boxes", at(b, t)).unwrap();
            g.wait_until_idle().unwrap();
            g.add_packet("dets", at(dets, t)).unwrap();
            g.wait_until_idle().unwrap();
        }
        g.finish().unwrap();
        let shown: Vec<usize> = tracked
            .values::<Vec<Detection>>()
            .iter()
            .map(|(_, v)| v.len())
            .collect();
        shown
    };
    assert_eq!(run("{wait_for_detections: true}"), [1, 1]);
    assert_eq!(
        run("{wait_for_detections: false}"),
        [0, 1],
        "MediaPipe's way: the boxes were handled before the detection came"
    );
}

#[test]
fn manager_options_are_checked() {
    for bad in [
        "{smoothing: 0}",
        "{smoothing: 1.5}",
        "{timeout_ms: 0}",
        "{max_area_ratio: 0.5}",
        "{min_overlap_ratio: 1.0}",
        "{max_eased_offset: -0.1}",
        "{motion_alpha: 0}",
        "{motion_alpha: 0.5, motion_beta: 0.6}",
        "{lookahead_ms: -1}",
        "{cross_label_min_iou: 1.5}",
        "{no_such_option: 1}",
    ] {
        let yaml = MANAGER.replace("{smoothing: 1.0}", bad);
        let err = config_error(&yaml);
        assert!(!err.is_empty(), "{bad}");
    }
}
