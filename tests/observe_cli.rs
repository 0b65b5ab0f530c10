//! Integration tests of seeing inside graphs with the `mediagraph` binary: `run --stats`,
//! `--trace` (Chrome trace events matching the statistics), Ctrl-C, `calculators --json`,
//! `graph` (DOT, SVG, HTML) and `schema` (every bundled graph validates against it).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Every YAML graph under `graphs/`.
fn bundled_graphs() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("graphs/ is readable")
            .map(|e| e.expect("a directory entry").path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo().join("graphs"), &mut out);
    assert!(out.len() >= 5, "{out:?}");
    out
}

/// Graphs that are subgraph definitions (a `type:`), which cannot be loaded on their own.
fn is_subgraph(path: &Path) -> bool {
    read(path).lines().any(|l| l.starts_with("type:"))
}

fn json_file(path: &Path) -> Value {
    serde_json::from_str(&read(path)).expect("valid JSON")
}

/// The per-node `invocations` of a `--stats-json` file.
fn invocations(stats: &Value) -> HashMap<String, u64> {
    stats["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            (
                n["name"].as_str().expect("name").to_string(),
                n["invocations"].as_u64().expect("invocations"),
            )
        })
        .collect()
}

/// Checks the shape of a Chrome trace file and returns, per node name, its number of
/// `process` spans.
fn process_spans(trace: &Value) -> HashMap<String, u64> {
    let events = trace["traceEvents"]
        .as_array()
        .expect("a traceEvents array");
    let mut tracks = HashMap::new();
    for e in events {
        let ph = e["ph"].as_str().expect("every event has a phase");
        assert!(e["pid"].is_u64(), "{e}");
        match ph {
            "M" => {
                if e["name"] == "thread_name" {
                    let label = e["args"]["name"].as_str().expect("a thread name");
                    let node = label.split(" (").next().unwrap_or_default().to_string();
                    tracks.insert(e["tid"].as_u64().expect("tid"), node);
                }
            }
            "X" => {
                assert!(e["ts"].is_number() && e["dur"].is_number(), "{e}");
                assert!(e["args"]["input_timestamp"].is_string(), "{e}");
            }
            "C" => assert!(e["args"]["depth"].is_u64(), "{e}"),
            "s" | "f" => assert!(e["id"].is_u64(), "{e}"),
            other => panic!("unexpected phase {other}: {e}"),
        }
    }
    let mut spans = HashMap::new();
    for e in events {
        if e["ph"] == "X" && e["name"] == "process" {
            let tid = e["tid"].as_u64().expect("tid");
            let node = tracks.get(&tid).expect("a named track").clone();
            *spans.entry(node).or_insert(0) += 1;
        }
    }
    spans
}

#[test]
fn run_stats_prints_a_table_with_every_node() {
    let r = mediagraph(&["run", "graphs/examples/subgraph_demo.yaml", "--stats"]);
    assert_ok(&r);
    let header = r
        .stderr
        .lines()
        .find(|l| l.starts_with("node "))
        .unwrap_or_else(|| panic!("a table header in:\n{}", r.stderr));
    assert_contains(
        header,
        &[
            "calls",
            "in",
            "out",
            "p50",
            "p99",
            "drops",
            "growths",
            "queue max",
        ],
    );
    for node in ["source", "relay__hop1", "relay__hop2", "direct", "merge"] {
        let row = r
            .stderr
            .lines()
            .find(|l| l.starts_with(&format!("{node} ")))
            .unwrap_or_else(|| panic!("a row for {node} in:\n{}", r.stderr));
        let cells: Vec<&str> = row.split_whitespace().collect();
        // calls, in and out of every relay: 100 packets.
        if node != "source" {
            assert_eq!(
                &cells[2..5],
                ["100", if node == "merge" { "200" } else { "100" }, "100"],
                "{row}"
            );
        }
    }
    // --quiet leaves out the summary, not the table.
    let r = mediagraph(&["run", "graphs/counting_demo.yaml", "--stats", "--quiet"]);
    assert_ok(&r);
    assert!(!r.stderr.contains("run finished"), "{}", r.stderr);
    assert!(r.stderr.starts_with("node "), "{}", r.stderr);
}

#[test]
fn trace_has_one_process_span_per_process_call() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.json");
    let stats = dir.path().join("stats.json");
    let r = mediagraph(&[
        "run",
        "graphs/examples/subgraph_demo.yaml",
        "--trace",
        &trace.display().to_string(),
        "--stats-json",
        &stats.display().to_string(),
    ]);
    assert_ok(&r);
    assert_contains(&r.stderr, &["trace written to", "ui.perfetto.dev"]);
    let trace = json_file(&trace);
    let spans = process_spans(&trace);
    let calls = invocations(&json_file(&stats));
    assert_eq!(calls.len(), 5);
    assert_eq!(spans, calls);
    let events = trace["traceEvents"].as_array().unwrap();
    for ph in ["C", "s", "f"] {
        assert!(
            events.iter().any(|e| e["ph"] == ph),
            "no {ph} event in the trace"
        );
    }
}

#[test]
fn trace_from_the_graph_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = std::fs::read_to_string(repo().join("graphs/counting_demo.yaml")).unwrap();
    write(
        dir.path(),
        "traced.yaml",
        &format!("{config}\nprofiler_config: {{trace_path: traced.json}}\n"),
    );
    let r = mediagraph_in(dir.path(), &["run", "traced.yaml", "--quiet"]);
    assert_ok(&r);
    let spans = process_spans(&json_file(&dir.path().join("traced.json")));
    assert_eq!(spans["first"], 10);
}

/// A graph that runs until it is cancelled.
const ENDLESS: &str = "\
node:
  - calculator: CountingSourceCalculator
    name: source
    output_stream: [numbers]
    options: {count: 1000000000000000}
  - calculator: PassThroughCalculator
    name: relay
    input_stream: [numbers]
    output_stream: [relayed]
";

/// Whether process `pid` has a handler for SIGINT (its `SigCgt` mask in /proc).
fn catches_sigint(pid: libc::pid_t) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let mask = status.lines().find_map(|l| l.strip_prefix("SigCgt:"))?;
            u64::from_str_radix(mask.trim(), 16).ok()
        })
        .is_some_and(|mask| mask & (1 << (libc::SIGINT - 1)) != 0)
}

#[test]
fn ctrl_c_cancels_cleanly_and_still_writes_stats_and_trace() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "endless.yaml", ENDLESS);
    let args = [
        "run",
        "endless.yaml",
        "--stats",
        "--trace",
        "trace.json",
        "--stats-json",
        "stats.json",
    ];
    let child = spawn_in(dir.path(), &args);
    let pid = child.id() as libc::pid_t;
    // Wait until it catches SIGINT (its handler is installed: on a busy machine that can
    // take longer than a fixed pause, and an early SIGINT kills it), then let it run a
    // little (a short run keeps the trace small).
    let started = Instant::now();
    while !catches_sigint(pid) && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: sending a signal to our own child process by its pid.
    let sent = unsafe { libc::kill(pid, libc::SIGINT) };
    assert_eq!(sent, 0, "kill(SIGINT) failed");
    let sent_at = Instant::now();
    let r = wait_for(child, &args, Duration::from_secs(30));
    let took = sent_at.elapsed();
    assert!(took < Duration::from_secs(15), "took {took:?} to stop");
    assert_eq!(r.code, Some(130), "stderr:\n{}", r.stderr);
    assert!(
        r.stderr.starts_with("error: run cancelled (Ctrl-C)"),
        "the cause comes first:\n{}",
        r.stderr
    );
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    assert_contains(&r.stderr, &["node ", "source ", "relay "]);
    let calls = invocations(&json_file(&dir.path().join("stats.json")));
    assert!(calls["relay"] > 0, "{calls:?}");
    let trace = json_file(&dir.path().join("trace.json"));
    let spans = process_spans(&trace);
    // Events are capped per node (the count of the rest is in otherData); below the cap
    // there is one span per call.
    let relay_spans = spans.get("relay").copied().unwrap_or(0);
    if trace["otherData"]["events_not_recorded"] == 0 {
        assert_eq!(spans, calls);
    } else {
        assert!(
            relay_spans > 0 && relay_spans <= calls["relay"],
            "{relay_spans}"
        );
    }
}

#[test]
fn calculators_json_lists_ports_and_options() {
    let r = mediagraph(&["calculators", "--json"]);
    let all: Value = serde_json::from_str(assert_ok(&r)).expect("JSON");
    let all = all.as_array().expect("an array");
    let find = |name: &str| {
        all.iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name} is listed"))
    };
    let gate = find("GateCalculator");
    let ports = gate["ports"].as_array().unwrap();
    assert!(
        ports.iter().any(|p| p["tag"] == "ALLOW"
            && p["packet_type"] == "bool"
            && p["kind"] == "input_stream"
            && p["optional"] == true),
        "{gate}"
    );
    assert!(gate["options_type"].is_string());
    let source = find("CountingSourceCalculator");
    assert!(source["ports"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["kind"] == "output_stream"));
    for c in all {
        assert!(c["rust_type"].as_str().unwrap().contains("::"), "{c}");
    }
    // The text form shows the same ports, indented under each calculator.
    let r = mediagraph(&["calculators"]);
    let text = assert_ok(&r);
    let gate_block: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("GateCalculator "))
        .take_while(|l| l.starts_with("GateCalculator ") || l.starts_with(' '))
        .collect();
    assert!(
        gate_block
            .iter()
            .any(|l| l.contains("ALLOW") && l.contains("bool")),
        "{gate_block:?}"
    );
}

#[test]
fn graph_dot_names_every_node_and_clusters_subgraphs() {
    for path in bundled_graphs() {
        if is_subgraph(&path) {
            continue;
        }
        let file = path.display().to_string();
        let r = mediagraph(&["graph", &file, "--format", "dot"]);
        let dot = assert_ok(&r);
        assert!(dot.starts_with("digraph "), "{dot}");
        assert!(dot.trim_end().ends_with('}'), "{dot}");
        let spec = mediagraph::config::load_file(&path).expect("the bundled graph loads");
        for node in &spec.nodes {
            assert!(
                dot.contains(&format!("\"{}\"", node.name)),
                "{file}: {}",
                node.name
            );
        }
        for stream in &spec.streams {
            if !stream.consumers.is_empty() {
                assert!(dot.contains(&format!("{}: {}", stream.name, stream.packet_type)));
            }
        }
    }
    let r = mediagraph(&["graph", "graphs/examples/subgraph_demo.yaml"]);
    assert_contains(
        assert_ok(&r),
        &[
            "subgraph \"cluster_relay\"",
            "\"relay__hop1\"",
            "relay__mid: i64",
        ],
    );
}

/// Every `<text>` content of an SVG or XHTML document.
fn texts(doc: &roxmltree::Document) -> Vec<String> {
    doc.descendants()
        .filter(|n| n.is_element() && matches!(n.tag_name().name(), "text" | "td" | "tspan"))
        .map(|n| {
            n.descendants()
                .filter(|d| d.is_text())
                .map(|d| d.text().unwrap_or_default())
                .collect::<String>()
        })
        .collect()
}

#[test]
fn graph_svg_and_html_are_well_formed_and_show_every_node() {
    let dir = tempfile::tempdir().unwrap();
    for path in bundled_graphs() {
        if is_subgraph(&path) {
            continue;
        }
        let file = path.display().to_string();
        let spec = mediagraph::config::load_file(&path).expect("the bundled graph loads");
        for format in ["svg", "html"] {
            let out = dir.path().join(format!("picture.{format}"));
            let r = mediagraph(&[
                "graph",
                &file,
                "--format",
                format,
                "-o",
                &out.display().to_string(),
            ]);
            assert_ok(&r);
            let text = read(&out);
            let doc = roxmltree::Document::parse_with_options(
                &text,
                roxmltree::ParsingOptions {
                    allow_dtd: true,
                    ..Default::default()
                },
            )
            .unwrap_or_else(|e| panic!("{file} as {format}: not well-formed XML: {e}"));
            let root = doc.root_element().tag_name().name();
            assert_eq!(root, if format == "svg" { "svg" } else { "html" });
            let svg = doc
                .descendants()
                .find(|n| n.tag_name().name() == "svg")
                .expect("an svg element");
            assert!(svg.attribute("viewBox").is_some());
            let shown = texts(&doc);
            for node in &spec.nodes {
                let short = node.name.rsplit("__").next().unwrap_or(&node.name);
                assert!(
                    shown.iter().any(|t| t == short || t == &node.name),
                    "{file} as {format}: node {} missing",
                    node.name
                );
                // Each node is a group with an id and a tooltip naming its calculator.
                let group = doc
                    .descendants()
                    .find(|n| n.attribute("id") == Some(&format!("node-{}", node.name)))
                    .unwrap_or_else(|| panic!("{file}: no group for {}", node.name));
                let title = group
                    .children()
                    .find(|c| c.tag_name().name() == "title")
                    .and_then(|t| t.text())
                    .unwrap_or_default();
                assert!(title.contains(&node.calculator), "{title}");
            }
            if format == "html" {
                // The node table has a row per node with its full name.
                for node in &spec.nodes {
                    assert!(shown.iter().any(|t| t == &node.name), "{}", node.name);
                }
            }
        }
    }
    // Subgraph clusters appear in the picture.
    let r = mediagraph(&[
        "graph",
        "graphs/examples/subgraph_demo.yaml",
        "--format",
        "svg",
    ]);
    assert_contains(assert_ok(&r), &["id=\"cluster-relay\""]);
}

#[test]
fn graph_errors_exit_non_zero() {
    let r = mediagraph(&["graph", "graphs/nonexistent.yaml"]);
    assert_contains(assert_failed(&r), &["graphs/nonexistent.yaml"]);
    let r = mediagraph(&["graph", "graphs/pass_through.yaml", "--format", "png"]);
    assert!(!r.success);
    let has_dot = std::process::Command::new("dot").arg("-V").output().is_ok();
    let r = mediagraph(&[
        "graph",
        "graphs/pass_through.yaml",
        "--format",
        "svg",
        "--layout",
        "graphviz",
    ]);
    if has_dot {
        assert!(assert_ok(&r).contains("<svg"));
    } else {
        assert_contains(assert_failed(&r), &["Graphviz", "PATH"]);
    }
}

#[test]
fn schema_accepts_every_bundled_graph_and_refuses_mistakes() {
    let r = mediagraph(&["schema"]);
    let schema: Value = serde_json::from_str(assert_ok(&r)).expect("the schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON schema");
    for path in bundled_graphs() {
        let config: Value = yaml_serde::from_str(&read(&path)).expect("YAML");
        let errors: Vec<String> = validator
            .iter_errors(&config)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        assert!(
            errors.is_empty(),
            "{} does not validate: {errors:?}",
            path.display()
        );
    }
    let bad: [(&str, Value); 5] = [
        ("unknown top-level key", serde_json::json!({"nodez": []})),
        (
            "unknown executor option",
            serde_json::json!({"executor": [{"name": "io", "options": {"num_thread": 2}}]}),
        ),
        (
            "unknown node key",
            serde_json::json!({"node": [{"calculator": "PassThroughCalculator", "inputs": "x"}]}),
        ),
        (
            "node without calculator",
            serde_json::json!({"node": [{"input_stream": "x"}]}),
        ),
        (
            "streams of the wrong type",
            serde_json::json!({"input_stream": 5}),
        ),
    ];
    for (what, config) in bad {
        assert!(!validator.is_valid(&config), "{what} was accepted");
    }
    // Calculator names are offered for completion.
    let names = &schema["$defs"]["NodeConfig"]["properties"]["calculator"]["anyOf"][0]["enum"];
    assert!(names
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n == "PacketResamplerCalculator"));
    // -o writes the same schema to a file.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("schema.json");
    let r = mediagraph(&["schema", "-o", &out.display().to_string()]);
    assert_ok(&r);
    assert_eq!(json_file(&out), schema);
}

#[test]
fn validate_accepts_every_bundled_graph() {
    for path in bundled_graphs() {
        if is_subgraph(&path) {
            continue;
        }
        let r = mediagraph(&["validate", &path.display().to_string()]);
        assert!(assert_ok(&r).starts_with("ok: "), "{}", path.display());
    }
}

#[test]
fn video_run_without_a_terminal_prints_no_progress() {
    // The decoder reports progress (frames done of the frame count); with stderr not a
    // terminal no progress bar is drawn and nothing is printed per frame.
    let video = repo().join("data/vtest.avi");
    if !video.exists() {
        eprintln!("skipped: data/vtest.avi is not there (scripts/setup fetches it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.avi");
    let stats = dir.path().join("stats.json");
    let r = mediagraph(&[
        "run",
        "graphs/video_annotate.yaml",
        "--side",
        &format!("input_video={}", video.display()),
        "--side",
        &format!("output_video={}", out.display()),
        "--stats-json",
        &stats.display().to_string(),
    ]);
    assert_ok(&r);
    assert!(r.stderr.lines().count() <= 2, "stderr:\n{}", r.stderr);
    let stats = json_file(&stats);
    let decoder = stats["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "decoder")
        .expect("decoder stats");
    let done = decoder["progress"]["done"].as_u64().expect("progress done");
    let total = decoder["progress"]["total"]
        .as_u64()
        .expect("a known total");
    assert!(done > 0 && done <= total, "{decoder}");
}
