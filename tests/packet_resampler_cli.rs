//! The PacketResamplerCalculator cases of the unit tests, run through the `mediagraph`
//! binary: a one-node YAML graph fed with `--feed` and dumped with `--dump` must give the
//! same outputs (timestamps and which input each output carries).

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Writes a one-node resampler graph with `options` (and a SEED side packet when `seed`).
fn write_graph(dir: &Path, options: &str, seed: bool) -> PathBuf {
    let (side, node_side) = if seed {
        (
            "input_side_packet: [seed]\n",
            "    input_side_packet: [\"SEED:seed\"]\n",
        )
    } else {
        ("", "")
    };
    let path = dir.join("resampler.yaml");
    std::fs::write(
        &path,
        format!(
            "input_stream: [in]\noutput_stream: [out]\n{side}node:\n  - calculator: PacketResamplerCalculator\n    input_stream: [\"DATA:in\"]\n    output_stream: [\"DATA:out\"]\n{node_side}    options: {options}\n"
        ),
    )
    .expect("write graph");
    path
}

/// Runs `graph` over input packets whose value is their own timestamp; returns the dumped
/// `(ts, value)` pairs, or stderr on failure.
fn run_graph(
    dir: &Path,
    graph: &Path,
    inputs: &[i64],
    seed: Option<&str>,
) -> Result<Vec<(i64, i64)>, String> {
    let feed = dir.join("in.jsonl");
    let lines: String = inputs
        .iter()
        .map(|t| format!("{{\"ts\": {t}, \"value\": {t}}}\n"))
        .collect();
    std::fs::write(&feed, lines).expect("write feed");
    let dump = dir.join("out.jsonl");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mediagraph"));
    cmd.current_dir(repo())
        .arg("run")
        .arg(graph)
        .arg("--feed")
        .arg(format!("in={}", feed.display()))
        .arg("--dump")
        .arg(format!("out={}", dump.display()))
        .env_remove("RUST_LOG");
    if let Some(s) = seed {
        cmd.arg("--side").arg(format!("seed={s}"));
    }
    let out = cmd.output().expect("mediagraph runs");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = std::fs::read_to_string(&dump).expect("read dump");
    Ok(text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("JSON line");
            (
                v["ts"].as_i64().expect("numeric ts"),
                v["value"].as_i64().expect("numeric value"),
            )
        })
        .collect())
}

fn run(options: &str, inputs: &[i64], seed: Option<&str>) -> Result<Vec<(i64, i64)>, String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let graph = write_graph(dir.path(), options, seed.is_some());
    run_graph(dir.path(), &graph, inputs, seed)
}

fn steps(start: i64, step: i64, n: i64) -> Vec<i64> {
    (0..n).map(|i| start + i * step).collect()
}

#[test]
fn bundled_example_graph_resamples_to_10_fps() {
    let dir = tempfile::tempdir().expect("temp dir");
    let graph = repo().join("graphs/examples/packet_resampler.yaml");
    assert_eq!(
        run_graph(dir.path(), &graph, &steps(0, 33_333, 10), None).unwrap(),
        vec![
            (0, 0),
            (100_000, 99_999),
            (200_000, 199_998),
            (300_000, 299_997)
        ]
    );
}

#[test]
fn dividing_rate_with_and_without_flush() {
    let inputs = steps(0, 50_000, 10);
    let expected = vec![
        (0, 0),
        (100_000, 100_000),
        (200_000, 200_000),
        (300_000, 300_000),
        (400_000, 400_000),
        (500_000, 450_000),
    ];
    assert_eq!(run("{frame_rate: 10}", &inputs, None).unwrap(), expected);
    assert_eq!(
        run("{frame_rate: 10, flush_last_packet: false}", &inputs, None).unwrap(),
        expected[..5].to_vec()
    );
}

#[test]
fn non_dividing_rate_and_gaps() {
    assert_eq!(
        run("{frame_rate: 3}", &steps(0, 100_000, 11), None).unwrap(),
        vec![
            (0, 0),
            (333_333, 300_000),
            (666_667, 700_000),
            (1_000_000, 1_000_000)
        ]
    );
    assert_eq!(
        run("{frame_rate: 10}", &[0, 100_000, 450_000, 500_000], None).unwrap(),
        vec![
            (0, 0),
            (100_000, 100_000),
            (200_000, 100_000),
            (300_000, 100_000),
            (400_000, 100_000),
            (500_000, 500_000),
        ]
    );
}

#[test]
fn base_timestamp_and_limits() {
    assert_eq!(
        run(
            "{frame_rate: 10, base_timestamp: 30000}",
            &steps(0, 50_000, 6),
            None
        )
        .unwrap(),
        vec![(30_000, 50_000), (130_000, 150_000), (230_000, 250_000)]
    );
    let inputs = steps(0, 100_000, 10);
    assert_eq!(
        run(
            "{frame_rate: 10, start_time: 250000, end_time: 650000}",
            &inputs,
            None
        )
        .unwrap(),
        vec![
            (300_000, 300_000),
            (400_000, 400_000),
            (500_000, 500_000),
            (600_000, 600_000)
        ]
    );
    assert_eq!(
        run(
            "{frame_rate: 10, start_time: 250000, end_time: 650000, round_limits: true}",
            &inputs,
            None
        )
        .unwrap(),
        vec![
            (200_000, 200_000),
            (300_000, 300_000),
            (400_000, 400_000),
            (500_000, 500_000),
            (600_000, 600_000)
        ]
    );
}

#[test]
fn jitter_with_a_seed_matches_the_library_and_is_reproducible() {
    // The same pinned output as the library's unit test (seed "mediagraph").
    let inputs = steps(0, 10_000, 60);
    let opts = "{frame_rate: 10, jitter: 0.5, jitter_with_reflection: true}";
    let a = run(opts, &inputs, Some("mediagraph")).unwrap();
    assert_eq!(
        a,
        vec![
            (2_122, 0),
            (108_235, 110_000),
            (221_471, 220_000),
            (345_235, 350_000),
            (422_544, 420_000),
            (528_482, 530_000),
        ]
    );
    assert_eq!(a, run(opts, &inputs, Some("mediagraph")).unwrap());
}

#[test]
fn invalid_options_name_the_option() {
    let err = run("{frame_rate: 0}", &[0], None).unwrap_err();
    assert!(err.contains("frame_rate"), "{err}");
    let err = run("{frame_rate: 10, jitter: 0.5}", &[0], None).unwrap_err();
    assert!(err.contains("SEED"), "{err}");
}
