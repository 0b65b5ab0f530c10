//! Integration tests of the `mediagraph` binary: `run` (feed, dump, side packets, failures),
//! `validate` (ok and every kind of config error) and `calculators`. Statistics, traces,
//! Ctrl-C, `graph` and `schema` are tested in `tests/observe_cli.rs`.

mod common;

use common::*;

#[test]
fn run_feeds_and_dumps_jsonl_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        "in.jsonl",
        concat!(
            "{\"ts\": -3000000000, \"value\": 1.5}\n",
            "{\"ts\": 0, \"value\": 1}\n",
            "\n",
            "{\"ts\": 5, \"value\": \"five\"}\n",
            "{\"value\": {\"b\": true, \"a\": [1, 2.5, null]}, \"ts\": 10}\n",
            "  {\"ts\": 11, \"value\": null}  \n",
        ),
    );
    let output = dir.path().join("out.jsonl");
    let r = mediagraph(&[
        "run",
        "graphs/pass_through.yaml",
        "--feed",
        &format!("in={input}"),
        "--dump",
        &format!("out={}", output.display()),
        "--quiet",
    ]);
    assert_ok(&r);
    assert_eq!(r.stderr, "", "--quiet prints nothing");
    assert_eq!(
        read(&output),
        concat!(
            "{\"ts\":-3000000000,\"value\":1.5}\n",
            "{\"ts\":0,\"value\":1}\n",
            "{\"ts\":5,\"value\":\"five\"}\n",
            "{\"ts\":10,\"value\":{\"a\":[1,2.5,null],\"b\":true}}\n",
            "{\"ts\":11,\"value\":null}\n",
        )
    );
}

#[test]
fn run_dump_is_readable_as_feed() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        "pre.jsonl",
        "{\"ts\": \"PreStream\", \"value\": {\"header\": 1}}\n",
    );
    let r = mediagraph_in(
        dir.path(),
        &[
            "run",
            &repo()
                .join("graphs/pass_through.yaml")
                .display()
                .to_string(),
            "--feed",
            &format!("in={input}"),
            "--dump",
            "out=first.jsonl",
            "--quiet",
        ],
    );
    assert_ok(&r);
    let first = read(&dir.path().join("first.jsonl"));
    assert_eq!(first, "{\"ts\":\"PreStream\",\"value\":{\"header\":1}}\n");
    let r = mediagraph_in(
        dir.path(),
        &[
            "run",
            &repo()
                .join("graphs/pass_through.yaml")
                .display()
                .to_string(),
            "--feed",
            "in=first.jsonl",
            "--dump",
            "out=second.jsonl",
            "--quiet",
        ],
    );
    assert_ok(&r);
    assert_eq!(read(&dir.path().join("second.jsonl")), first);
}

#[test]
fn run_counting_demo_prints_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("counted.jsonl");
    let r = mediagraph(&[
        "run",
        "graphs/counting_demo.yaml",
        "--dump",
        &format!("counted={}", output.display()),
        "--threads",
        "1",
    ]);
    assert_ok(&r);
    let expected: String = (0..10)
        .map(|i| format!("{{\"ts\":{i},\"value\":{i}}}\n"))
        .collect();
    assert_eq!(read(&output), expected);
    assert_contains(
        &r.stderr,
        &[
            "run finished in ",
            "3 nodes, 31 calls, 30 packets out",
            "dumped 10 packets of \"counted\"",
        ],
    );
}

#[test]
fn run_feeds_inputs_concurrently_under_throttling() {
    // Both inputs go through one node that waits for both at each timestamp, with tiny queues:
    // feeding one file completely before the other would block forever. Also with the node
    // on the application thread (the feeding threads run it while they wait), and with
    // `--threads` replacing that executor.
    for (executor, threads) in [
        ("", None),
        ("executor: [{type: ApplicationThreadExecutor}]\n", None),
        ("executor: [{type: ApplicationThreadExecutor}]\n", Some("2")),
    ] {
        feed_two_inputs_under_throttling(executor, threads);
    }
}

fn feed_two_inputs_under_throttling(executor: &str, threads: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let graph = write(
        dir.path(),
        "two.yaml",
        &format!(
            "{executor}input_stream: [a, b]\noutput_stream: [a_out, b_out]\nmax_queue_size: 2\nnode:\n  - calculator: PassThroughCalculator\n    input_stream: [a, b]\n    output_stream: [a_out, b_out]\n"
        ),
    );
    let lines: String = (0..200)
        .map(|i| format!("{{\"ts\": {i}, \"value\": {i}}}\n"))
        .collect();
    let a = write(dir.path(), "a.jsonl", &lines);
    let b = write(dir.path(), "b.jsonl", &lines);
    let out = dir.path().join("b_out.jsonl");
    let (feed_a, feed_b, dump) = (
        format!("a={a}"),
        format!("b={b}"),
        format!("b_out={}", out.display()),
    );
    let mut args = vec![
        "run", &graph, "--feed", &feed_a, "--feed", &feed_b, "--dump", &dump, "--quiet",
    ];
    if let Some(n) = threads {
        args.extend(["--threads", n]);
    }
    let r = mediagraph(&args);
    assert_ok(&r);
    let expected: String = (0..200)
        .map(|i| format!("{{\"ts\":{i},\"value\":{i}}}\n"))
        .collect();
    assert_eq!(read(&out), expected);
}

#[test]
fn run_bad_jsonl_line_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "{\"ts\": 1, \"value\": 1}\n{\"ts\": 2, \"valu\": 2}\n",
            2,
            "valu",
        ),
        (
            "{\"ts\": 1, \"value\": 1}\n\n{\"ts\": 2, \"value\": \n",
            3,
            "invalid JSON",
        ),
        ("{\"ts\": \"Done\", \"value\": 1}\n", 1, "PreStream"),
        (
            "{\"ts\": 5, \"value\": 1}\n{\"ts\": 5, \"value\": 2}\n",
            2,
            "timestamp",
        ),
    ];
    for (i, (text, line, what)) in cases.into_iter().enumerate() {
        let input = write(dir.path(), &format!("bad{i}.jsonl"), text);
        let r = mediagraph(&[
            "run",
            "graphs/pass_through.yaml",
            "--feed",
            &format!("in={input}"),
        ]);
        let err = assert_failed(&r);
        assert_contains(err, &[&format!("{input}:{line}: "), what, "--feed in"]);
    }
}

#[test]
fn run_feed_value_of_the_wrong_type_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let graph = write(
        dir.path(),
        "gate.yaml",
        concat!(
            "input_stream: [in, allow]\n",
            "output_stream: out\n",
            "node:\n",
            "  - calculator: GateCalculator\n",
            "    input_stream: [in, \"ALLOW:allow\"]\n",
            "    output_stream: out\n",
        ),
    );
    let allow = write(
        dir.path(),
        "allow.jsonl",
        "{\"ts\": 0, \"value\": true}\n{\"ts\": 1, \"value\": \"yes\"}\n",
    );
    let r = mediagraph(&["run", &graph, "--feed", &format!("allow={allow}")]);
    let err = assert_failed(&r);
    assert_contains(err, &[&format!("{allow}:2: "), "bool"]);
}

#[test]
fn run_side_packets_parse_json_or_fall_back_to_strings() {
    let dir = tempfile::tempdir().unwrap();
    let graph = write(
        dir.path(),
        "side.yaml",
        concat!(
            "input_side_packet: [greeting]\n",
            "output_stream: [values]\n",
            "node:\n",
            "  - calculator: SidePacketToStreamCalculator\n",
            "    input_side_packet: [greeting]\n",
            "    output_stream: [\"AT_ZERO:values\"]\n",
        ),
    );
    let out = dir.path().join("values.jsonl");
    for (given, dumped) in [
        ("hello world", "\"hello world\""),
        ("42", "42"),
        ("{\"a\": [1, 2]}", "{\"a\":[1,2]}"),
        ("\"quoted\"", "\"quoted\""),
        ("not json {", "\"not json {\""),
        ("", "\"\""),
        ("a=b", "\"a=b\""),
    ] {
        let r = mediagraph(&[
            "run",
            &graph,
            "--side",
            &format!("greeting={given}"),
            "--dump",
            &format!("values={}", out.display()),
            "--quiet",
        ]);
        assert_ok(&r);
        assert_eq!(read(&out), format!("{{\"ts\":0,\"value\":{dumped}}}\n"));
    }

    // A required side packet left out, and one the graph does not have.
    let r = mediagraph(&["run", &graph]);
    assert_contains(assert_failed(&r), &["greeting", "required"]);
    let r = mediagraph(&["run", &graph, "--side", "greeting=1", "--side", "nope=2"]);
    assert_contains(assert_failed(&r), &["--side nope", "greeting"]);
    let r = mediagraph(&["run", &graph, "--side", "greeting"]);
    assert_contains(assert_failed(&r), &["NAME=VALUE"]);
}

#[test]
fn run_side_packets_convert_to_the_resolved_type() {
    let dir = tempfile::tempdir().unwrap();
    let graph = write(
        dir.path(),
        "max.yaml",
        concat!(
            "input_side_packet: [max_count]\n",
            "output_stream: [numbers]\n",
            "node:\n",
            "  - calculator: CountingSourceCalculator\n",
            "    input_side_packet: [\"MAX_COUNT:max_count\"]\n",
            "    output_stream: [numbers]\n",
        ),
    );
    let out = dir.path().join("numbers.jsonl");
    let r = mediagraph(&[
        "run",
        &graph,
        "--side",
        "max_count=3",
        "--dump",
        &format!("numbers={}", out.display()),
        "--quiet",
    ]);
    assert_ok(&r);
    assert_eq!(
        read(&out),
        "{\"ts\":0,\"value\":0}\n{\"ts\":1,\"value\":1}\n{\"ts\":2,\"value\":2}\n"
    );
    let r = mediagraph(&["run", &graph, "--side", "max_count=three"]);
    assert_contains(assert_failed(&r), &["--side max_count=three", "i64"]);
}

#[test]
fn run_failing_graph_exits_non_zero_naming_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let graph = write(
        dir.path(),
        "fail.yaml",
        concat!(
            "output_stream: [numbers]\n",
            "node:\n",
            "  - calculator: CountingSourceCalculator\n",
            "    name: doomed\n",
            "    output_stream: [numbers]\n",
            "    options: {error_count: 2}\n",
        ),
    );
    let out = dir.path().join("numbers.jsonl");
    let r = mediagraph(&[
        "run",
        &graph,
        "--dump",
        &format!("numbers={}", out.display()),
    ]);
    let err = assert_failed(&r);
    assert_contains(err, &["node \"doomed\"", "CountingSourceCalculator"]);
    assert_eq!(
        err.lines().filter(|l| l.contains("doomed")).count(),
        1,
        "the error is reported once:\n{err}"
    );
    // What was produced before the failure is still written.
    assert_eq!(
        read(&out),
        "{\"ts\":0,\"value\":0}\n{\"ts\":1,\"value\":1}\n"
    );
}

#[test]
fn run_rejects_bad_stream_arguments() {
    let r = mediagraph(&["run", "graphs/pass_through.yaml", "--feed", "out=x.jsonl"]);
    assert_contains(
        assert_failed(&r),
        &["--feed out", "not a graph input stream", "in"],
    );
    let r = mediagraph(&[
        "run",
        "graphs/pass_through.yaml",
        "--feed",
        "in=/nonexistent.jsonl",
    ]);
    assert_contains(assert_failed(&r), &["/nonexistent.jsonl"]);
    let r = mediagraph(&["run", "graphs/pass_through.yaml", "--dump", "nope=x.jsonl"]);
    assert_contains(assert_failed(&r), &["--dump nope", "no stream"]);
    let r = mediagraph(&["run", "graphs/pass_through.yaml", "--threads", "0"]);
    assert_contains(assert_failed(&r), &["--threads"]);
    let r = mediagraph(&["run", "graphs/nonexistent.yaml"]);
    assert_contains(assert_failed(&r), &["graphs/nonexistent.yaml"]);
}

#[test]
fn validate_accepts_the_bundled_graphs() {
    let r = mediagraph(&["validate", "graphs/pass_through.yaml"]);
    assert_eq!(
        assert_ok(&r),
        "ok: 1 node, 2 streams, default executor 1 thread\n"
    );
    let r = mediagraph(&["validate", "graphs/counting_demo.yaml"]);
    // The default executor has one thread per node, at most one per core.
    assert!(
        assert_ok(&r).starts_with("ok: 3 nodes, 3 streams, default executor "),
        "{}",
        r.stdout
    );
    let r = mediagraph(&["validate", "graphs/object_detection.yaml"]);
    assert!(
        assert_ok(&r)
            .ends_with(", executor detector_a (1 thread), executor detector_b (1 thread)\n"),
        "{}",
        r.stdout
    );
}

#[test]
fn validate_reports_config_errors_with_locations() {
    let dir = tempfile::tempdir().unwrap();
    // (file name, config, expected "line:column", words the message must name)
    let cases: [(&str, &str, &str, &[&str]); 6] = [
        (
            "unknown_calculator.yaml",
            concat!(
                "input_stream: in\n",
                "output_stream: out\n",
                "node:\n",
                "  - calculator: NoSuchCalculator\n",
                "    name: mystery\n",
                "    input_stream: in\n",
                "    output_stream: out\n",
            ),
            "4:17",
            &["mystery", "NoSuchCalculator"],
        ),
        (
            "missing_producer.yaml",
            concat!(
                "input_stream: in\n",
                "output_stream: out\n",
                "node:\n",
                "  - calculator: PassThroughCalculator\n",
                "    name: relay\n",
                "    input_stream: nowhere\n",
                "    output_stream: out\n",
            ),
            "6:",
            &["relay", "nowhere", "producer"],
        ),
        (
            "type_mismatch.yaml",
            concat!(
                "input_stream: in\n",
                "output_stream: out\n",
                "node:\n",
                "  - calculator: CountingSourceCalculator\n",
                "    name: numbers\n",
                "    output_stream: counts\n",
                "    options: {count: 3}\n",
                "  - calculator: GateCalculator\n",
                "    name: gate\n",
                "    input_stream: [in, \"ALLOW:counts\"]\n",
                "    output_stream: out\n",
            ),
            "10:",
            &["gate", "counts", "i64", "bool"],
        ),
        (
            "cycle.yaml",
            concat!(
                "output_stream: b\n",
                "node:\n",
                "  - calculator: PassThroughCalculator\n",
                "    name: a_node\n",
                "    input_stream: b\n",
                "    output_stream: a\n",
                "  - calculator: PassThroughCalculator\n",
                "    name: b_node\n",
                "    input_stream: a\n",
                "    output_stream: b\n",
            ),
            "3:",
            &["a_node", "b_node", "cycle", "back_edge"],
        ),
        (
            "malformed.yaml",
            concat!(
                "input_stream: in\n",
                "node:\n",
                "  - calculator: PassThroughCalculator\n",
                "    input_stream: [in\n",
                "    output_stream: out\n",
            ),
            "5:",
            &["invalid graph config"],
        ),
        (
            "duplicate_output.yaml",
            concat!(
                "input_stream: in\n",
                "output_stream: out\n",
                "node:\n",
                "  - calculator: PassThroughCalculator\n",
                "    name: first\n",
                "    input_stream: in\n",
                "    output_stream: out\n",
                "  - calculator: PassThroughCalculator\n",
                "    name: second\n",
                "    input_stream: in\n",
                "    output_stream: out\n",
            ),
            "11:",
            &["second", "first", "\"out\"", "twice"],
        ),
    ];
    for (name, config, line_col, words) in cases {
        let path = write(dir.path(), name, config);
        let r = mediagraph(&["validate", &path]);
        let err = assert_failed(&r);
        assert_eq!(r.stdout, "", "{name}");
        assert_contains(err, &[&format!("{path}:{line_col}")]);
        assert_contains(err, words);
        // `run` refuses the same config the same way.
        let r = mediagraph(&["run", &path]);
        assert_contains(assert_failed(&r), &[&format!("{path}:{line_col}")]);
    }
}

#[test]
fn validate_lists_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "two_errors.yaml",
        concat!(
            "input_stream: in\n",
            "output_stream: out\n",
            "node:\n",
            "  - calculator: NoSuchCalculator\n",
            "    input_stream: in\n",
            "    output_stream: mid\n",
            "  - calculator: PassThroughCalculator\n",
            "    input_stream: nowhere\n",
            "    output_stream: out\n",
        ),
    );
    let r = mediagraph(&["validate", &path]);
    let err = assert_failed(&r);
    let first_line = err.lines().next().unwrap_or_default();
    assert!(
        first_line.starts_with(&format!("error: {path}:4:17: ")),
        "the headline is the first error:\n{err}"
    );
    assert_contains(
        err,
        &[
            "2 errors",
            &format!("{path}:4:17"),
            &format!("{path}:8:"),
            "nowhere",
        ],
    );
}

#[test]
fn calculators_lists_registered_calculators_sorted() {
    let r = mediagraph(&["calculators"]);
    let out = assert_ok(&r);
    // One unindented line per calculator, then its ports indented.
    let names: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for expected in [
        "PassThroughCalculator",
        "GateCalculator",
        "CountingSourceCalculator",
        "SidePacketToStreamCalculator",
    ] {
        assert!(names.contains(&expected), "{expected} missing from:\n{out}");
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    let pass = out
        .lines()
        .find(|l| l.starts_with("PassThroughCalculator "))
        .unwrap_or_default();
    assert_contains(pass, &["PassThroughCalculator", "NoOptions"]);
}

#[test]
fn usage_errors_exit_non_zero() {
    let r = mediagraph(&["run"]);
    assert!(!r.success);
    assert!(!r.stderr.contains("panicked"));
    let r = mediagraph(&["frobnicate"]);
    assert!(!r.success);
}

#[test]
fn run_set_changes_node_options_and_subgraph_inner_options() {
    let dir = tempfile::tempdir().unwrap();
    // A thinner inside a subgraph, used by node `outer`: options reach it by inner name.
    write(
        dir.path(),
        "thin.yaml",
        concat!(
            "type: ThinSubgraph\n",
            "input_stream: IN:x\n",
            "output_stream: OUT:y\n",
            "node:\n",
            "  - calculator: PacketThinnerCalculator\n",
            "    name: rate\n",
            "    input_stream: x\n",
            "    output_stream: y\n",
            "    options: {thinner_type: ASYNC, period: 2}\n",
        ),
    );
    let graph = write(
        dir.path(),
        "graph.yaml",
        concat!(
            "subgraphs: [thin.yaml]\n",
            "input_stream: in\n",
            "output_stream: out\n",
            "node:\n",
            "  - calculator: ThinSubgraph\n",
            "    name: outer\n",
            "    input_stream: IN:in\n",
            "    output_stream: OUT:out\n",
        ),
    );
    let lines: String = (0..10)
        .map(|t| format!("{{\"ts\": {t}, \"value\": {t}}}\n"))
        .collect();
    let input = write(dir.path(), "in.jsonl", &lines);
    let output = dir.path().join("out.jsonl");
    let run = |extra: &[&str]| {
        let feed = format!("in={input}");
        let dump = format!("out={}", output.display());
        let mut args = vec!["run", &graph, "--feed", &feed, "--dump", &dump, "--quiet"];
        args.extend_from_slice(extra);
        let r = mediagraph(&args);
        assert_ok(&r);
        read(&output).lines().count()
    };
    assert_eq!(run(&[]), 5, "the config's period 2 keeps ts 0, 2, .., 8");
    assert_eq!(run(&["--set", "outer.rate.period=5"]), 2, "ts 0 and 5");
    assert_eq!(
        run(&[
            "--set",
            "outer.rate.period=5",
            "--set",
            "outer.rate.period=1"
        ]),
        10,
        "the last override of an option wins"
    );

    // Mistakes are named: the node, the inner node, the option, the value.
    let fails = |set: &str, words: &[&str]| {
        let r = mediagraph(&["validate", &graph, "--set", set]);
        assert_contains(assert_failed(&r), words);
    };
    fails(
        "outr.rate.period=5",
        &["no node \"outr\"", "its nodes: outer"],
    );
    fails("outer.rat.period=5", &["no node \"rat\"", "rate"]);
    fails("outer.rate.perod=5", &["unknown field `perod`", "period"]);
    fails(
        "outer.rate.period=soon",
        &[
            "invalid type",
            "\"soon\"",
            "(options changed by outer.rate.period=soon)",
        ],
    );
    fails(
        "outer.rate.period.x=1",
        &["invalid type: map, expected i64"],
    );
    let r = mediagraph(&[
        "validate",
        &graph,
        "--set",
        "outer.rate.period=5",
        "--set",
        "outer.rate.period.x=1",
    ]);
    assert_contains(
        assert_failed(&r),
        &["outer.rate.period is 5, not a mapping"],
    );
    let r = mediagraph(&["validate", &graph, "--set", "outer=1"]);
    assert!(!r.success);
    assert_contains(&r.stderr, &["NODE.KEY[.KEY..]=VALUE"]);
}

/// A warning that repeats on every packet is logged at its 1st and 10th occurrence only, and
/// every occurrence is still counted (the node's dropped packets in the stats).
#[test]
fn run_thins_out_a_warning_repeated_on_every_packet() {
    let dir = tempfile::tempdir().unwrap();
    let graph = write(
        dir.path(),
        "graph.yaml",
        concat!(
            "input_stream: dets\n",
            "output_stream: boxes\n",
            "node:\n",
            "  - calculator: DetectionsToTimedBoxListCalculator\n",
            "    name: to_boxes\n",
            "    input_stream: DETECTIONS:dets\n",
            "    output_stream: BOXES:boxes\n",
        ),
    );
    // 12 packets, each with one detection whose box is empty (left out) and one good one.
    let lines: String = (0..12)
        .map(|t| {
            format!(
                "{{\"ts\": {t}, \"value\": [\
                 {{\"relative_bounding_box\": {{\"xmin\": 0.1, \"ymin\": 0.1, \"width\": 0.0, \"height\": 0.2}}, \"id\": 1}},\
                 {{\"relative_bounding_box\": {{\"xmin\": 0.1, \"ymin\": 0.1, \"width\": 0.2, \"height\": 0.2}}, \"id\": 2}}]}}\n"
            )
        })
        .collect();
    let input = write(dir.path(), "dets.jsonl", &lines);
    let stats = dir.path().join("stats.json");
    let (feed, dump, stats_arg) = (
        format!("dets={input}"),
        format!("boxes={}", dir.path().join("boxes.jsonl").display()),
        stats.display().to_string(),
    );
    let r = mediagraph(&[
        "run",
        &graph,
        "--feed",
        &feed,
        "--dump",
        &dump,
        "--stats-json",
        &stats_arg,
        "--quiet",
    ]);
    assert_ok(&r);
    let warnings: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("were left out"))
        .collect();
    assert_eq!(warnings.len(), 2, "{}", r.stderr);
    assert!(warnings[0].contains("occurrences=1"), "{}", warnings[0]);
    assert!(warnings[1].contains("occurrences=10"), "{}", warnings[1]);
    assert!(warnings[0].contains("1st, 10th, 100th"), "{}", warnings[0]);
    let stats: serde_json::Value = serde_json::from_str(&read(&stats)).unwrap();
    let node = &stats["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "to_boxes")
        .unwrap();
    assert_eq!(node["dropped"], 12);
}
