//! Tests of config loading: parsing, located errors, subgraphs, validation.

use std::path::{Path, PathBuf};
use std::sync::Once;

use proptest::prelude::*;

use super::*;
use crate::calculator::{register, Calculator, CalculatorContext, Flow, NoOptions};
use crate::contract::{
    AnyPacket, Contract, Input, Output, PortKind, SideInput, SideOutput, TypeDecl,
};
use crate::spec::{Producer, SideProducer};
use crate::types::PacketType;

// ---------------------------------------------------------------------------------------------
// Test calculators

/// Emits integers; options `{count}`.
struct Source;
#[derive(Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceOptions {
    #[allow(dead_code)]
    count: i64,
}
const S_OUT: Output<i64> = Output::new("OUT");
impl Calculator for Source {
    type Options = SourceOptions;
    fn contract(cc: &mut Contract, _: &SourceOptions) -> crate::Result<()> {
        cc.declare(&[&S_OUT])
    }
    fn create(_: &SourceOptions) -> crate::Result<Self> {
        Ok(Source)
    }
    fn process(&mut self, _: &mut CalculatorContext) -> crate::Result<Flow> {
        Ok(Flow::Stop)
    }
}

/// Untagged any-type pass-through: output i has the type of input i.
struct Pass;
const P_IN: Input<AnyPacket> = Input::any("").multiple();
const P_OUT: Output<AnyPacket> = Output::any("").multiple();
impl Calculator for Pass {
    type Options = NoOptions;
    fn contract(cc: &mut Contract, _: &NoOptions) -> crate::Result<()> {
        cc.declare(&[&P_IN, &P_OUT])?;
        for id in 0..cc.outputs().len() {
            if id < cc.inputs().len() {
                cc.set_type(PortKind::Output, id, TypeDecl::SameAs(PortKind::Input, id));
            }
        }
        Ok(())
    }
    fn create(_: &NoOptions) -> crate::Result<Self> {
        Ok(Pass)
    }
    fn process(&mut self, _: &mut CalculatorContext) -> crate::Result<Flow> {
        Ok(Flow::Continue)
    }
}

/// Reads strings on `IN`.
struct StrSink;
const STR_IN: Input<String> = Input::new("IN");
impl Calculator for StrSink {
    type Options = NoOptions;
    fn contract(cc: &mut Contract, _: &NoOptions) -> crate::Result<()> {
        cc.declare(&[&STR_IN])
    }
    fn create(_: &NoOptions) -> crate::Result<Self> {
        Ok(StrSink)
    }
    fn process(&mut self, _: &mut CalculatorContext) -> crate::Result<Flow> {
        Ok(Flow::Continue)
    }
}

/// `A` (+ optional `LOOP`) integers to `OUT`, optional side packets `SCALE` in and `TOTAL`
/// out, required side packet `SEED` if `need_seed`.
struct Add;
#[derive(Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AddOptions {
    #[serde(default)]
    need_seed: bool,
}
const A_IN: Input<i64> = Input::new("A");
const A_LOOP: Input<i64> = Input::new("LOOP").optional();
const A_OUT: Output<i64> = Output::new("OUT");
const A_SCALE: SideInput<i64> = SideInput::new("SCALE").optional();
const A_SEED: SideInput<i64> = SideInput::new("SEED");
const A_TOTAL: SideOutput<i64> = SideOutput::new("TOTAL").optional();
impl Calculator for Add {
    type Options = AddOptions;
    fn contract(cc: &mut Contract, o: &AddOptions) -> crate::Result<()> {
        cc.declare(&[&A_IN, &A_LOOP, &A_OUT, &A_SCALE, &A_TOTAL])?;
        if o.need_seed {
            cc.declare(&[&A_SEED])?;
        }
        cc.set_input_stream_handler(crate::contract::HandlerConfig::named("Immediate"));
        Ok(())
    }
    fn create(_: &AddOptions) -> crate::Result<Self> {
        Ok(Add)
    }
    fn process(&mut self, _: &mut CalculatorContext) -> crate::Result<Flow> {
        Ok(Flow::Continue)
    }
}

fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        register::<Source>("CfgTestSource");
        register::<Pass>("CfgTestPass");
        register::<StrSink>("CfgTestStrSink");
        register::<Add>("CfgTestAdd");
    });
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn load(yaml: &str) -> crate::Result<GraphSpec> {
    setup();
    load_str(yaml, Some(Path::new("g.yaml")))
}

/// The error of a load that must fail.
fn fail(r: crate::Result<GraphSpec>) -> Error {
    match r {
        Ok(_) => panic!("expected the load to fail"),
        Err(e) => e,
    }
}

/// Every error message, flattened.
fn errors(yaml: &str) -> Vec<String> {
    match load(yaml) {
        Ok(_) => panic!("expected an error for:\n{yaml}"),
        Err(e) => e.flatten().iter().map(|e| e.to_string()).collect(),
    }
}

/// The only error's message.
fn error(yaml: &str) -> String {
    let all = errors(yaml);
    assert_eq!(all.len(), 1, "expected one error, got {all:#?}");
    all.into_iter().next().unwrap_or_default()
}

fn assert_has(all: &[String], needle: &str) {
    assert!(
        all.iter().any(|e| e.contains(needle)),
        "no error contains {needle:?}: {all:#?}"
    );
}

/// A fresh directory for subgraph files.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "mediagraph-config-test-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

fn write(dir: &Path, file: &str, text: &str) -> PathBuf {
    let p = dir.join(file);
    std::fs::write(&p, text).expect("write temp file");
    p
}

// ---------------------------------------------------------------------------------------------
// Loading valid graphs

#[test]
fn loads_a_simple_graph() {
    let g = load(
        "input_stream: in\noutput_stream: out\nnodes:\n  - calculator: CfgTestPass\n    input_stream: in\n    output_stream: out\n",
    )
    .unwrap();
    assert_eq!(g.nodes.len(), 1);
    assert_eq!(g.nodes[0].name, "CfgTestPass");
    assert_eq!(g.nodes[0].calculator, "CfgTestPass");
    assert_eq!(
        g.nodes[0].handler.input_stream_handler,
        "DefaultInputStreamHandler"
    );
    assert_eq!(g.nodes[0].max_in_flight, 1);
    assert_eq!(g.max_queue_size, Some(100));
    assert_eq!(g.streams.len(), 2);
    let in_id = g.stream_id("in").unwrap();
    assert_eq!(g.streams[in_id].producer, Producer::GraphInput);
    assert_eq!(g.input_streams, vec![in_id]);
    assert_eq!(g.output_streams, vec![g.stream_id("out").unwrap()]);
    assert_eq!(g.nodes[0].location.line, 4);
    assert_eq!(g.nodes[0].location.column, 5);
    assert_eq!(g.streams[in_id].packet_type, PacketType::Any);
}

#[test]
fn graph_settings() {
    let g = load(
        "max_queue_size: -1\nnum_threads: 3\nreport_deadlock: true\nprofiler_config: {trace_path: t.json}\nexecutor: [{name: io, options: {num_threads: 2}}]\ninput_stream_handler: Immediate\nnode:\n  - calculator: CfgTestSource\n    output_stream: OUT:x\n    executor: io\n    source_layer: 2\n    buffer_size_hint: 7\n    max_in_flight: 1\n",
    )
    .unwrap();
    assert_eq!(g.max_queue_size, None);
    assert_eq!(g.num_threads, 3);
    assert!(g.report_deadlock);
    assert_eq!(g.trace_path, Some(PathBuf::from("t.json")));
    let n = &g.nodes[0];
    assert_eq!(n.executor.as_deref(), Some("io"));
    assert_eq!(
        (n.source_layer, n.buffer_size_hint, n.max_in_flight),
        (2, 7, 1)
    );
    assert_eq!(
        n.handler.input_stream_handler,
        "ImmediateInputStreamHandler"
    );
    assert!(n.is_source());

    let g =
        load("max_queue_size: 5\nnode: [{calculator: CfgTestSource, output_stream: 'OUT:x'}]\n")
            .unwrap();
    assert_eq!(g.max_queue_size, Some(5));
    let g = load_str(
        "trace: {trace_path: t.json}\nnode: [{calculator: CfgTestSource, output_stream: 'OUT:x'}]\n",
        Some(Path::new("dir/g.yaml")),
    )
    .unwrap();
    assert_eq!(g.trace_path, Some(PathBuf::from("dir/t.json")));
}

#[test]
fn handler_resolution_order() {
    // Contract's handler (Immediate) beats the graph default; the node's config beats both.
    let g = load(
        "input_stream_handler: {input_stream_handler: FixedSizeInputStreamHandler, options: {trigger_queue_size: 3}}\ninput_stream: [a, b]\nnode:\n  - {calculator: CfgTestAdd, input_stream: 'A:a', output_stream: 'OUT:x'}\n  - {calculator: CfgTestAdd, input_stream: 'A:b', output_stream: 'OUT:y', input_stream_handler: SyncSet}\n  - {calculator: CfgTestPass, input_stream: a, output_stream: z}\n",
    )
    .unwrap();
    let h = |name: &str| g.nodes[g.node_id(name).unwrap()].handler.clone();
    assert_eq!(
        h("CfgTestAdd_1").input_stream_handler,
        "ImmediateInputStreamHandler"
    );
    assert_eq!(
        h("CfgTestAdd_2").input_stream_handler,
        "SyncSetInputStreamHandler"
    );
    let pass = h("CfgTestPass");
    assert_eq!(pass.input_stream_handler, "FixedSizeInputStreamHandler");
    assert_eq!(pass.options["trigger_queue_size"], 3);

    let e = error("node:\n  - calculator: CfgTestSource\n    output_stream: OUT:x\n    input_stream_handler: Immediat\n");
    assert!(e.starts_with("g.yaml:4:27: node \"CfgTestSource\": unknown input stream handler \"Immediat\"; did you mean \"ImmediateInputStreamHandler\"?"), "{e}");
}

#[test]
fn parse_str_gives_the_model_and_serializes() {
    let c = parse_str(
        "node:\n  - calculator: X\n    input_stream: a\n    options: {k: [1, 2]}\n    input_stream_handler: Immediate\n",
        None,
    )
    .unwrap();
    assert_eq!(c.node[0].input_stream, vec!["a".to_string()]);
    assert_eq!(c.node[0].options["k"][1], 2);
    assert_eq!(
        c.node[0].input_stream_handler,
        Some(HandlerSpec::Name("Immediate".into()))
    );
    let text = yaml_serde::to_string(&c).unwrap();
    assert_eq!(parse_str(&text, None).unwrap(), c);
}

// ---------------------------------------------------------------------------------------------
// Name syntax (reference 8.1) and canonical names

#[test]
fn canonical_names_follow_mediapipe() {
    let g = load(
        "node:\n  - {calculator: CfgTestSource, output_stream: 'OUT:a'}\n  - {calculator: CfgTestSource, output_stream: 'OUT:b'}\n  - {calculator: CfgTestSource, name: src, output_stream: 'OUT:c'}\n  - {calculator: CfgTestPass, input_stream: a, output_stream: d}\n",
    )
    .unwrap();
    let names: Vec<&str> = g.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["CfgTestSource_1", "CfgTestSource_2", "src", "CfgTestPass"]
    );
    // Explicit names that repeat are suffixed too.
    let g = load(
        "node:\n  - {calculator: CfgTestSource, name: s, output_stream: 'OUT:a'}\n  - {calculator: CfgTestSource, name: s, output_stream: 'OUT:b'}\n",
    )
    .unwrap();
    assert_eq!(g.nodes[1].name, "s_2");
    // A suffixed name colliding with an explicit one is an error.
    let e = error("node:\n  - {calculator: CfgTestSource, output_stream: 'OUT:a'}\n  - {calculator: CfgTestSource, output_stream: 'OUT:b'}\n  - {calculator: CfgTestSource, name: CfgTestSource_1, output_stream: 'OUT:c'}\n");
    assert!(
        e.starts_with(
            "g.yaml:4:5: two nodes are called \"CfgTestSource_1\" (the other one is at g.yaml:2:5)"
        ),
        "{e}"
    );
}

#[test]
fn port_name_syntax() {
    // Tagged and untagged entries mix; TAG:name is index 0; explicit indexes in any order.
    let g = load(
        "input_stream: [a, b, c]\nnode:\n  - calculator: CfgTestPass\n    input_stream: [a, ':1:b']\n    output_stream: [x, y]\n",
    );
    // ":1:b" has an empty tag: invalid.
    assert!(g.is_err());
    let e = error("input_stream: a\nnode:\n  - calculator: CfgTestPass\n    input_stream: [a, Bad:x]\n    output_stream: y\n");
    assert_eq!(e, "g.yaml:4:23: node \"CfgTestPass\": input_stream: \"Bad:x\": tag \"Bad\" must match [A-Z_][A-Z0-9_]*");
    let e = error("input_stream: a\nnode:\n  - calculator: CfgTestPass\n    input_stream: a\n    output_stream: Y-1\n");
    assert_eq!(e, "g.yaml:5:20: node \"CfgTestPass\": output_stream: \"Y-1\": name \"Y-1\" must match [a-z_][a-z0-9_]*");
    let e = error("input_stream: [a, b]\nnode:\n  - calculator: CfgTestAdd\n    input_stream: ['A:a', 'A:b']\n    output_stream: OUT:x\n");
    assert_eq!(e, "g.yaml:4:19: node \"CfgTestAdd\": input_stream: port A already had a name (\"a\") when \"b\" was given");
    let e = error("input_stream: [a]\nnode:\n  - calculator: CfgTestAdd\n    input_stream: ['A:1:a']\n    output_stream: OUT:x\n");
    assert!(
        e.contains("not all indexes of tag \"A\" were assigned names (index 0 is missing)"),
        "{e}"
    );
    let e = error("input_stream: [a]\nnode:\n  - calculator: CfgTestAdd\n    input_stream: ['A:01:a']\n    output_stream: OUT:x\n");
    assert!(e.contains("index \"01\" is not a number"), "{e}");
    // Indexes given out of order, mixed with untagged entries.
    let g = load("input_stream: [a, b, c]\nnode:\n  - calculator: CfgTestPass\n    input_stream: [c, a]\n    output_stream: [x, y]\n").unwrap();
    let n = &g.nodes[0];
    assert_eq!(g.streams[n.input_streams[0]].name, "c");
    assert_eq!(g.streams[n.input_streams[1]].name, "a");
    // Graph-level port syntax is checked too.
    let e = error("input_stream: 'IN:0:'\nnode: []\n");
    assert!(e.starts_with("g.yaml:1:15: graph input_stream:"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Errors, with exact locations

#[test]
fn unknown_calculator_with_suggestion() {
    let e = error("node:\n  - calculator: CfgTestSourse\n    output_stream: OUT:x\n");
    assert_eq!(
        e,
        "g.yaml:2:17: node \"CfgTestSourse\": unknown calculator \"CfgTestSourse\"; did you mean \"CfgTestSource\"?"
    );
    let all = errors("node:\n  - calculator: Zzzzzzzzzzzzzzzzzz\n");
    assert_has(&all, "is it registered");
}

#[test]
fn missing_producer() {
    let e = error("node:\n  - calculator: CfgTestPass\n    input_stream: [nothing_here]\n    output_stream: y\n");
    assert_eq!(
        e,
        "g.yaml:3:20: stream \"nothing_here\" consumed by node \"CfgTestPass\" (input_stream :0) has no producer; no node outputs it and it is not a graph input_stream"
    );
    let e = error("input_stream: frames\nnode:\n  - calculator: CfgTestPass\n    input_stream: frame\n    output_stream: y\n");
    assert!(
        e.ends_with("has no producer; did you mean \"frames\"?"),
        "{e}"
    );
    let e = error("input_stream: a\noutput_stream: [a, zz]\nnode: []\n");
    assert_eq!(
        e,
        "g.yaml:2:20: graph output stream \"zz\" is not produced by any node"
    );
}

#[test]
fn duplicate_output() {
    let all = errors("input_stream: x\nnode:\n  - calculator: CfgTestSource\n    output_stream: OUT:y\n  - calculator: CfgTestSource\n    output_stream: OUT:y\n  - calculator: CfgTestPass\n    input_stream: y\n    output_stream: x\n");
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_eq!(
        all[0],
        "g.yaml:6:20: node \"CfgTestSource_2\": output stream \"y\" is defined twice: node \"CfgTestSource_1\" (g.yaml:4:20) already produces it"
    );
    assert_eq!(
        all[1],
        "g.yaml:9:20: node \"CfgTestPass\": output stream \"x\" is defined twice: the graph input_stream (g.yaml:1:15) already produces it"
    );
}

#[test]
fn type_mismatch() {
    let e = error("node:\n  - calculator: CfgTestSource\n    output_stream: OUT:n\n  - calculator: CfgTestStrSink\n    input_stream: IN:n\n");
    assert_eq!(
        e,
        "g.yaml:5:19: node \"CfgTestStrSink\": type mismatch on stream \"n\": node \"CfgTestSource\" output OUT carries i64 but node \"CfgTestStrSink\" input IN expects String"
    );
    // Through two any-type pass-through nodes.
    let e = error("node:\n  - calculator: CfgTestSource\n    output_stream: OUT:n\n  - {calculator: CfgTestPass, input_stream: n, output_stream: m}\n  - {calculator: CfgTestPass, input_stream: m, output_stream: k}\n  - calculator: CfgTestStrSink\n    input_stream: IN:k\n");
    assert!(e.starts_with("g.yaml:7:19: node \"CfgTestStrSink\": type mismatch on stream \"k\": node \"CfgTestSource\" output OUT carries i64 but"), "{e}");
    // Types propagate through pass-through nodes into graph input streams.
    let g = load("input_stream: in\nnode:\n  - {calculator: CfgTestPass, input_stream: in, output_stream: m}\n  - {calculator: CfgTestStrSink, input_stream: 'IN:m'}\n").unwrap();
    assert_eq!(
        g.streams[g.stream_id("in").unwrap()].packet_type,
        PacketType::of::<String>()
    );
    assert_eq!(
        g.streams[g.stream_id("m").unwrap()].packet_type,
        PacketType::of::<String>()
    );
    // Two consumers of a graph input disagree.
    let e = error("input_stream: in\nnode:\n  - {calculator: CfgTestAdd, input_stream: 'A:in', output_stream: 'OUT:o'}\n  - {calculator: CfgTestStrSink, input_stream: 'IN:in'}\n");
    assert!(e.contains("type mismatch on stream \"in\": node \"CfgTestAdd\" input A expects i64 but node \"CfgTestStrSink\" input IN expects String"), "{e}");
}

#[test]
fn cycles() {
    let cyclic = "node:\n  - calculator: CfgTestAdd\n    name: adder\n    input_stream: ['A:back']\n    output_stream: OUT:sum\n  - calculator: CfgTestPass\n    input_stream: sum\n    output_stream: back\n";
    let e = error(cyclic);
    assert_eq!(
        e,
        "g.yaml:2:5: node \"adder\": cycle in the graph not cut by a back edge: \"adder\" -> \"CfgTestPass\" -> \"adder\" (through \"sum\", \"back\"); if the loop is intended, mark its closing input on node \"adder\" with input_stream_info: [{tag_index: \"A\", back_edge: true}]"
    );
    // Marking the back edge makes it valid, and the loop's first node comes first.
    let ok = cyclic.replace(
        "    input_stream: ['A:back']\n",
        "    input_stream: ['A:back']\n    input_stream_info: [{tag_index: A, back_edge: true}]\n",
    );
    let g = load(&ok).unwrap();
    assert_eq!(g.nodes[0].name, "adder");
    assert_eq!(g.nodes[0].back_edges, vec![true]);
    assert_eq!(g.nodes[1].back_edges, vec![false]);
    // A self loop.
    let e = error("node:\n  - {calculator: CfgTestPass, input_stream: a, output_stream: a}\n");
    assert!(
        e.contains("\"CfgTestPass\" -> \"CfgTestPass\" (through \"a\")"),
        "{e}"
    );
}

#[test]
fn topological_order_takes_smallest_index_first() {
    let g = load("input_stream: in\nnode:\n  - {calculator: CfgTestPass, name: c, input_stream: b, output_stream: c}\n  - {calculator: CfgTestPass, name: b, input_stream: a, output_stream: b}\n  - {calculator: CfgTestPass, name: a, input_stream: in, output_stream: a}\n  - {calculator: CfgTestPass, name: d, input_stream: in, output_stream: d}\n").unwrap();
    let names: Vec<&str> = g.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, vec!["a", "b", "c", "d"]);
    // Ids in streams refer to the sorted order.
    let b = g.stream_id("b").unwrap();
    assert_eq!(g.streams[b].producer, Producer::Node { node: 1, port: 0 });
    assert_eq!(g.streams[b].consumers[0].node, 2);
    assert_eq!(g.nodes[2].input_streams, vec![b]);
}

#[test]
fn malformed_yaml() {
    let e = error("node:\n  - calculator: A\n    input_stream: [a, b\n");
    assert!(e.starts_with("g.yaml:4:1: invalid graph config: "), "{e}");
    let e = error("node:\n  - calculator: A\n   bad indent: 1\n");
    assert!(e.starts_with("g.yaml:3:"), "{e}");
    let e = error("");
    assert_eq!(
        e,
        "g.yaml:1:1: the graph config is empty; expected a mapping with a `node:` list"
    );
    let e = error("- just\n- a list\n");
    assert!(
        e.starts_with("g.yaml:1:1: invalid graph config: invalid type: sequence"),
        "{e}"
    );
    let e = error("num_threads: 99999999999999999999999\n");
    assert!(
        e.starts_with("g.yaml:1:14: invalid graph config: num_threads: invalid type: integer"),
        "{e}"
    );
}

#[test]
fn unknown_node_field() {
    let e = error("node:\n  - calculator: CfgTestSource\n    output_streams: OUT:x\n");
    assert!(
        e.starts_with("g.yaml:3:5: invalid graph config: node[0]: unknown field `output_streams`, expected one of"),
        "{e}"
    );
    let e = error("nodes:\n  - calculator: CfgTestSource\n    input_stream_info: [{tag_index: A, backedge: true}]\n");
    assert!(e.starts_with("g.yaml:3:40: invalid graph config: nodes[0].input_stream_info[0]: unknown field `backedge`"), "{e}");
}

#[test]
fn unknown_option_field() {
    let e = error("node:\n  - calculator: CfgTestSource\n    output_stream: OUT:x\n    options:\n      count: 3\n      cuont: 4\n");
    assert_eq!(
        e,
        "g.yaml:6:7: node \"CfgTestSource\": invalid options for CfgTestSource: unknown field `cuont`, expected `count`"
    );
    let e = error("node:\n  - calculator: CfgTestSource\n    output_stream: OUT:x\n    options: {count: many}\n");
    assert!(e.starts_with("g.yaml:4:14: node \"CfgTestSource\": invalid options for CfgTestSource: invalid type: string \"many\""), "{e}");
}

#[test]
fn contract_errors_are_located_at_the_node() {
    let e = error("input_stream: a\nnode:\n  - calculator: CfgTestSource\n    input_stream: EXTRA:a\n    output_stream: OUT:x\n");
    assert_eq!(
        e,
        "g.yaml:3:5: node \"CfgTestSource\": CfgTestSource: input_stream EXTRA (\"a\") is not a port of this calculator"
    );
    let e = error("node:\n  - calculator: CfgTestAdd\n    output_stream: OUT:x\n");
    assert!(
        e.contains("input stream A is required by this calculator but not connected"),
        "{e}"
    );
}

#[test]
fn bad_tag_index() {
    let all = errors("input_stream: [a, b]\nnode:\n  - calculator: CfgTestAdd\n    input_stream: ['A:a', 'LOOP:b']\n    output_stream: OUT:x\n    input_stream_info:\n      - {tag_index: LOOP, back_edge: true}\n      - {tag_index: 'LOOP:0', back_edge: true}\n      - {tag_index: NOPE, back_edge: true}\n      - {tag_index: 'bad', back_edge: true}\n");
    assert_eq!(all.len(), 3, "{all:#?}");
    assert_eq!(all[0], "g.yaml:8:21: node \"CfgTestAdd\": input_stream_info tag_index \"LOOP:0\" appears more than once");
    assert_eq!(all[1], "g.yaml:9:21: node \"CfgTestAdd\": input_stream_info tag_index \"NOPE\" names no input stream of this node (its inputs: A, LOOP)");
    assert!(
        all[2].starts_with(
            "g.yaml:10:21: node \"CfgTestAdd\": input_stream_info tag_index \"bad\" is not TAG"
        ),
        "{all:#?}"
    );
}

#[test]
fn executors_are_checked() {
    let all = errors("executor:\n  - {name: default}\n  - {name: io, type: GpuExecutor}\n  - {name: io}\nnode:\n  - {calculator: CfgTestSource, output_stream: 'OUT:x', executor: oi}\n");
    assert_eq!(all.len(), 4, "{all:#?}");
    assert!(
        all[0].starts_with("g.yaml:2:12: executor name \"default\" is reserved"),
        "{all:#?}"
    );
    assert!(
        all[1].starts_with("g.yaml:3:22: unknown executor type \"GpuExecutor\""),
        "{all:#?}"
    );
    assert_eq!(all[2], "g.yaml:4:12: executor \"io\" is declared twice");
    assert_eq!(all[3], "g.yaml:6:67: node \"CfgTestSource\": executor \"oi\" is not declared in the graph's `executor:` list; did you mean \"io\"?");
}

#[test]
fn executor_options_are_checked() {
    let all = errors("executor:\n  - {name: io, options: {num_threads: -2}}\n  - {name: cpu, options: {num_thread: 2, stack_size: 0}}\n  - {options: {num_threads: 2}}\n  - {options: {num_threads: 3}}\nnum_threads: 4\nnode:\n  - {calculator: CfgTestSource, output_stream: 'OUT:x'}\n");
    assert_eq!(all.len(), 5, "{all:#?}");
    assert!(
        all[0].starts_with("g.yaml:2:39: num_threads must be a whole number of threads"),
        "{all:#?}"
    );
    assert_eq!(all[1], "g.yaml:3:27: unknown executor option \"num_thread\" (known: num_threads, stack_size, thread_name_prefix); did you mean \"num_threads\"?");
    assert!(
        all[2].starts_with("g.yaml:3:54: stack_size must be a number of bytes from 1 to 1 GiB"),
        "{all:#?}"
    );
    assert!(
        all[3].starts_with(
            "g.yaml:4:5: the graph sets num_threads: 4 and configures the default executor"
        ),
        "{all:#?}"
    );
    assert!(
        all[4].starts_with(
            "g.yaml:5:5: the default executor (an entry without `name`) is configured twice"
        ),
        "{all:#?}"
    );
}

#[test]
fn executor_names_and_thread_prefixes_must_be_printable() {
    let all = errors("executor:\n  - {name: \"a\\u0000b\"}\n  - {name: io, options: {thread_name_prefix: \"x\\ty\"}}\nnode:\n  - {calculator: CfgTestSource, output_stream: 'OUT:x'}\n");
    assert_eq!(all.len(), 2, "{all:#?}");
    assert!(all[0].contains("has a control character"), "{all:#?}");
    assert!(
        all[1].contains("thread_name_prefix must be a non-empty printable string"),
        "{all:#?}"
    );
}

#[test]
fn executors_become_the_spec_with_their_thread_counts() {
    let g = load("executor:\n  - {options: {num_threads: 3}}\n  - {name: io, options: {num_threads: 2, thread_name_prefix: reader, stack_size: 1048576}}\n  - {name: infer}\n  - {name: unused, options: {num_threads: -1}}\nnode:\n  - {calculator: CfgTestSource, output_stream: 'OUT:x', executor: io}\n  - {calculator: CfgTestPass, input_stream: x, output_stream: y, executor: infer}\n  - {calculator: CfgTestPass, input_stream: y, output_stream: z}\n").unwrap();
    assert_eq!(g.num_threads, 3);
    let names: Vec<&str> = g.executors.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["io", "infer", "unused"]);
    assert_eq!(g.executors[0].thread_name_prefix.as_deref(), Some("reader"));
    assert_eq!(g.executors[0].stack_size, Some(1 << 20));
    assert_eq!(g.executor_indices(), [1, 2, 0]);
    // Configured counts as given; unset ones: the cores, at most one per node, at least 1.
    assert_eq!(g.executor_threads(), [3, 2, 1, 1]);
}

#[test]
fn a_subgraph_cannot_set_what_belongs_to_the_whole_run() {
    let dir = temp_dir("run-settings");
    write(
        &dir,
        "sub.yaml",
        "type: CfgTestRunSettingsSub\ninput_stream: A:a\noutput_stream: OUT:o\nnum_threads: 3\nreport_deadlock: true\nexecutor: [{name: pool}]\nnode:\n  - {calculator: CfgTestPass, input_stream: a, output_stream: o}\n",
    );
    let main = write(
        &dir,
        "main.yaml",
        "subgraphs: sub.yaml\ninput_stream: x\nnode:\n  - {calculator: CfgTestRunSettingsSub, input_stream: 'A:x', output_stream: 'OUT:y'}\n",
    );
    let err = match load_file(&main) {
        Ok(_) => panic!("a subgraph with run settings was accepted"),
        Err(e) => e.to_string(),
    };
    for expected in [
        "sub.yaml:4:1: `num_threads` is a setting of the whole graph run; a subgraph cannot set it",
        "sub.yaml:5:1: `report_deadlock` is a setting of the whole graph run",
        "sub.yaml:6:1: a subgraph cannot declare executors; declare [\"pool\"] in the graph that uses the subgraph",
    ] {
        assert!(err.contains(expected), "{expected:?} not in {err}");
    }
}

#[test]
fn side_packets() {
    let g = load("node:\n  - calculator: CfgTestAdd\n    input_stream: A:a\n    output_stream: OUT:a2\n    input_side_packet: SCALE:scale\n    output_side_packet: TOTAL:total\n  - calculator: CfgTestSource\n    output_stream: OUT:a\n  - calculator: CfgTestAdd\n    input_stream: A:a2\n    output_stream: OUT:a3\n    input_side_packet: [SCALE:total, SEED:seed]\n    options: {need_seed: true}\n").unwrap();
    let names: Vec<&str> = g.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, vec!["CfgTestSource", "CfgTestAdd_1", "CfgTestAdd_2"]);
    let scale = &g.side_packets[g.side_packet_id("scale").unwrap()];
    assert_eq!(scale.producer, SideProducer::External);
    assert!(scale.optional);
    let seed = &g.side_packets[g.side_packet_id("seed").unwrap()];
    assert!(!seed.optional);
    assert_eq!(seed.packet_type, PacketType::of::<i64>());
    let total = &g.side_packets[g.side_packet_id("total").unwrap()];
    assert_eq!(total.producer, SideProducer::Node { node: 1, port: 0 });
    assert_eq!(total.consumers[0].node, 2);
    let e = error("input_side_packet: s\nnode:\n  - {calculator: CfgTestAdd, input_stream: 'A:a', output_stream: 'OUT:a', output_side_packet: 'TOTAL:s', input_stream_info: [{tag_index: A, back_edge: true}]}\n");
    assert!(e.contains("output side packet \"s\" is defined twice: the graph input_side_packet (g.yaml:1:20) already produces it"), "{e}");
}

#[test]
fn multiple_errors_are_all_reported() {
    let err = fail(load("node:\n  - calculator: Nope\n  - calculator: CfgTestPass\n    input_stream: missing\n    output_stream: y\n  - calculator: CfgTestSource\n    output_stream: OUT:z\n    options: {bad: 1}\n"));
    let Error::ConfigErrors(all) = &err else {
        panic!("expected ConfigErrors, got {err}");
    };
    assert_eq!(all.len(), 3, "{err}");
    let lines: Vec<usize> = all
        .iter()
        .map(|e| match e {
            Error::Config { location, .. } => location.line,
            _ => 0,
        })
        .collect();
    assert_eq!(lines, vec![2, 4, 8]);
    assert!(
        err.to_string().starts_with("3 errors in graph config:\n"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Subgraphs

const ADDER_SUBGRAPH: &str = "type: CfgTestAdderSub\ninput_stream: [VALUE:v, 'EXTRA:e']\noutput_stream: [SUM:s]\nnode:\n  - calculator: CfgTestAdd\n    input_stream: ['A:v', 'LOOP:e']\n    output_stream: OUT:raw\n  - calculator: CfgTestPass\n    name: Final\n    input_stream: raw\n    output_stream: s\n";

#[test]
fn subgraph_expansion_prefixes_and_connects() {
    setup();
    let dir = temp_dir("expand");
    write(&dir, "adder.yaml", ADDER_SUBGRAPH);
    let main = write(
        &dir,
        "main.yaml",
        "subgraphs: [adder.yaml]\ninput_stream: in\noutput_stream: out\nnode:\n  - calculator: CfgTestAdderSub\n    name: My.Adder\n    input_stream: VALUE:in\n    output_stream: SUM:out\n",
    );
    let g = load_file(&main).unwrap();
    let names: Vec<&str> = g.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, vec!["my_adder__CfgTestAdd", "my_adder__Final"]);
    let mut streams: Vec<&str> = g.streams.iter().map(|s| s.name.as_str()).collect();
    streams.sort_unstable();
    assert_eq!(streams, vec!["in", "my_adder__raw", "out"]);
    // The unconnected EXTRA interface input was removed from the inner node.
    assert_eq!(g.nodes[0].contract.inputs().len(), 1);
    assert_eq!(
        g.streams[g.stream_id("out").unwrap()].packet_type,
        PacketType::of::<i64>()
    );
    // Inner nodes point at the subgraph file.
    assert_eq!(
        g.nodes[1].location.file.as_deref(),
        Some(&dir.join("adder.yaml"))
    );
    assert_eq!(g.nodes[1].location.line, 8);
}

#[test]
fn nested_subgraphs_and_errors_inside_them() {
    setup();
    let dir = temp_dir("nested");
    write(&dir, "adder.yaml", ADDER_SUBGRAPH);
    write(
        &dir,
        "outer.yaml",
        "type: CfgTestOuterSub\nsubgraphs: adder.yaml\ninput_stream: IN:x\noutput_stream: OUT:y\nnode:\n  - {calculator: CfgTestAdderSub, input_stream: 'VALUE:x', output_stream: 'SUM:y'}\n",
    );
    let main = write(
        &dir,
        "main.yaml",
        "subgraphs: [outer.yaml]\ninput_stream: a\nnode:\n  - {calculator: CfgTestOuterSub, input_stream: 'IN:a', output_stream: 'OUT:b'}\n  - {calculator: CfgTestOuterSub, input_stream: 'IN:b', output_stream: 'OUT:c'}\n",
    );
    let g = load_file(&main).unwrap();
    let names: Vec<&str> = g.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "cfgtestoutersub_1__cfgtestaddersub__CfgTestAdd",
            "cfgtestoutersub_1__cfgtestaddersub__Final",
            "cfgtestoutersub_2__cfgtestaddersub__CfgTestAdd",
            "cfgtestoutersub_2__cfgtestaddersub__Final",
        ]
    );
    assert!(g
        .stream_id("cfgtestoutersub_2__cfgtestaddersub__raw")
        .is_some());

    // An error inside a nested subgraph points at that file and names the expanding nodes.
    write(
        &dir,
        "adder.yaml",
        &ADDER_SUBGRAPH.replace("calculator: CfgTestPass", "calculator: CfgTestPas"),
    );
    let e = fail(load_file(&main));
    let all: Vec<String> = e.flatten().iter().map(|e| e.to_string()).collect();
    assert_eq!(all.len(), 2, "{all:#?}");
    let adder = dir.join("adder.yaml").display().to_string();
    let outer = dir.join("outer.yaml").display().to_string();
    let m = main.display().to_string();
    assert_eq!(
        all[0],
        format!("{adder}:8:17: node \"cfgtestoutersub_1__cfgtestaddersub__Final\": unknown calculator \"CfgTestPas\"; did you mean \"CfgTestPass\"? (in subgraph \"CfgTestAdderSub\" used by node \"cfgtestoutersub_1__CfgTestAdderSub\" at {outer}:6:5) (in subgraph \"CfgTestOuterSub\" used by node \"CfgTestOuterSub_1\" at {m}:4:5)")
    );
}

#[test]
fn subgraph_interface_errors() {
    setup();
    let dir = temp_dir("iface");
    write(&dir, "adder.yaml", ADDER_SUBGRAPH);
    let main = write(
        &dir,
        "main.yaml",
        "subgraphs: [adder.yaml]\ninput_stream: [in, j]\nnode:\n  - calculator: CfgTestAdderSub\n    input_stream: [VALUE:in, 'VALUE:1:j', 'WRONG:j']\n    output_stream: SUM:out\n    source_layer: 1\n",
    );
    let all: Vec<String> = fail(load_file(&main))
        .flatten()
        .iter()
        .map(|e| e.to_string())
        .collect();
    let m = main.display().to_string();
    assert_eq!(all.len(), 3, "{all:#?}");
    assert_eq!(all[0], format!("{m}:5:30: node \"CfgTestAdderSub\": subgraph \"CfgTestAdderSub\" has 1 input_stream with tag \"VALUE\", but index 1 is connected"));
    assert_eq!(all[1], format!("{m}:5:43: node \"CfgTestAdderSub\": subgraph \"CfgTestAdderSub\" has no input_stream with tag \"WRONG\" (its input_stream tags: EXTRA, VALUE)"));
    assert_eq!(all[2], format!("{m}:7:5: node \"CfgTestAdderSub\" uses subgraph \"CfgTestAdderSub\" and cannot set `source_layer` (set it on the subgraph's nodes instead)"));
}

#[test]
fn subgraph_defaults_and_removed_inputs() {
    setup();
    let dir = temp_dir("defaults");
    write(
        &dir,
        "sub.yaml",
        "type: CfgTestDefaultsSub\ninput_stream_handler: FixedSize\ninput_stream: [A:a, LOOP:l]\noutput_stream: OUT:o\nnode:\n  - calculator: CfgTestPass\n    input_stream: a\n    output_stream: p\n  - calculator: CfgTestAdd\n    input_stream: [A:p, LOOP:l]\n    output_stream: OUT:o\n    input_stream_info: [{tag_index: LOOP, back_edge: true}]\n",
    );
    let main = write(
        &dir,
        "main.yaml",
        "subgraphs: sub.yaml\nexecutor: [{name: pool}]\ninput_stream: x\nnode:\n  - {calculator: CfgTestDefaultsSub, name: s, input_stream: 'A:x', output_stream: 'OUT:y', executor: pool}\n",
    );
    let g = load_file(&main).unwrap();
    let pass = &g.nodes[g.node_id("s__CfgTestPass").unwrap()];
    assert_eq!(
        pass.handler.input_stream_handler,
        "FixedSizeInputStreamHandler"
    );
    assert_eq!(pass.executor.as_deref(), Some("pool"));
    // The contract's handler wins over the subgraph default.
    let add = &g.nodes[g.node_id("s__CfgTestAdd").unwrap()];
    assert_eq!(
        add.handler.input_stream_handler,
        "ImmediateInputStreamHandler"
    );
    // LOOP was not connected: the port and its input_stream_info are gone.
    assert_eq!(add.input_streams.len(), 1);
    assert_eq!(add.back_edges, vec![false]);

    // An interface output no inner node produces.
    write(
        &dir,
        "sub.yaml",
        "type: CfgTestDefaultsSub\ninput_stream: A:a\noutput_stream: [OUT:o, 'OUT:1:q']\nnode:\n  - {calculator: CfgTestPass, input_stream: a, output_stream: o}\n",
    );
    let main = write(
        &dir,
        "main.yaml",
        "subgraphs: sub.yaml\ninput_stream: x\nnode:\n  - {calculator: CfgTestDefaultsSub, input_stream: 'A:x', output_stream: ['OUT:y', 'OUT:1:z']}\n",
    );
    let e = fail(load_file(&main)).to_string();
    assert!(
        e.starts_with(&format!(
            "{}:3:24: subgraph \"CfgTestDefaultsSub\" output_stream \"q\" is not produced by any of its nodes (in subgraph",
            dir.join("sub.yaml").display()
        )),
        "{e}"
    );
    let main = write(
        &dir,
        "main.yaml",
        "subgraphs: sub.yaml\ninput_stream: x\nnode:\n  - {calculator: CfgTestDefaultsSub, input_stream: 'A:x', output_stream: 'OUT:y'}\n",
    );
    // Unconnected, the unproduced output is harmless.
    assert!(load_file(&main).is_ok());
}

#[test]
fn recursive_subgraphs_are_an_error() {
    setup();
    let dir = temp_dir("recursive");
    write(
        &dir,
        "a.yaml",
        "type: CfgTestRecA\nsubgraphs: [b.yaml]\ninput_stream: IN:x\nnode:\n  - {calculator: CfgTestRecB, input_stream: 'IN:x'}\n",
    );
    write(
        &dir,
        "b.yaml",
        "type: CfgTestRecB\nsubgraphs: [a.yaml]\ninput_stream: IN:x\nnode:\n  - {calculator: CfgTestRecA, input_stream: 'IN:x'}\n",
    );
    let main = write(
        &dir,
        "main.yaml",
        "subgraphs: [a.yaml]\ninput_stream: s\nnode:\n  - {calculator: CfgTestRecA, input_stream: 'IN:s'}\n",
    );
    let e = fail(load_file(&main)).to_string();
    let a = dir.join("a.yaml").display().to_string();
    assert!(
        e.starts_with(&format!(
            "{}:5:18: node \"cfgtestreca__cfgtestrecb__CfgTestRecA\": ",
            dir.join("b.yaml").display()
        ))
            && e.contains("subgraph \"CfgTestRecA\" is defined recursively: CfgTestRecA -> CfgTestRecB -> CfgTestRecA")
            && e.contains(&format!("at {a}:5:5")),
        "{e}"
    );
}

#[test]
fn runtime_registered_subgraph_and_missing_files() {
    setup();
    register_subgraph_yaml(
        "type: CfgTestRuntimeSub\ninput_stream: X:x\noutput_stream: Y:y\nnode:\n  - {calculator: CfgTestPass, input_stream: x, output_stream: y}\n",
        None,
    )
    .unwrap();
    let g = load("input_stream: a\nnode:\n  - {calculator: CfgTestRuntimeSub, name: r, input_stream: 'X:a', output_stream: 'Y:b'}\n").unwrap();
    assert_eq!(g.nodes[0].name, "r__CfgTestPass");
    assert!(g.stream_id("b").is_some());
    let e = register_subgraph_yaml("node: []\n", None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("needs a `type:`"), "{e}");
    let e = error("subgraphs: [does_not_exist.yaml]\nnode: []\n");
    assert!(
        e.starts_with("g.yaml:1:13: cannot read subgraph file \"does_not_exist.yaml\""),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------------
// Robustness

const SEED_GRAPH: &str = "input_stream: in\noutput_stream: out\nmax_queue_size: 4\nnode:\n  - calculator: CfgTestAdd\n    name: adder\n    input_stream: ['A:in', 'LOOP:back']\n    output_stream: OUT:sum\n    input_side_packet: SCALE:scale\n    input_stream_info: [{tag_index: LOOP, back_edge: true}]\n    options: {need_seed: false}\n  - calculator: CfgTestPass\n    input_stream: [sum]\n    output_stream: [out]\n  - calculator: CfgTestPass\n    input_stream: out\n    output_stream: back\n    input_stream_handler: {input_stream_handler: Immediate}\n";

#[test]
fn seed_graph_is_valid() {
    let g = load(SEED_GRAPH).unwrap();
    assert_eq!(g.nodes.len(), 3);
}

fn check_no_panic_and_located(text: &str) {
    setup();
    if let Err(e) = load_str(text, Some(Path::new("p.yaml"))) {
        for err in e.flatten() {
            match err {
                Error::Config { location, .. } => {
                    assert!(location.line > 0, "unlocated error {err} for {text:?}");
                    assert!(location.column > 0, "unlocated error {err} for {text:?}");
                }
                other => panic!("unexpected error kind {other:?} for {text:?}"),
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_text_never_panics(text in "\\PC{0,200}") {
        check_no_panic_and_located(&text);
    }

    #[test]
    fn yamlish_text_never_panics(text in "[a-zA-Z_:\\[\\]{}, \\n\\-'\"#&*!|>0-9.]{0,160}") {
        check_no_panic_and_located(&text);
    }

    #[test]
    fn mutated_graphs_never_panic(
        edits in proptest::collection::vec((0usize..2000, 0usize..4, "[a-zA-Z_:\\[\\]{}, \\n\\-'0-9]{0,6}"), 1..4)
    ) {
        let mut text = SEED_GRAPH.to_string();
        for (at, len, insert) in edits {
            let mut start = at % (text.len() + 1);
            while !text.is_char_boundary(start) { start -= 1; }
            let mut end = (start + len).min(text.len());
            while !text.is_char_boundary(end) { end -= 1; }
            text.replace_range(start..end, &insert);
        }
        check_no_panic_and_located(&text);
    }
}

/// A random graph over the test calculators and a small pool of names: each node is valid
/// on its own, so whether the graph is depends on its connections, types and cycles.
fn random_graph() -> impl Strategy<Value = String> {
    let name = || prop_oneof![Just("a"), Just("b"), Just("c"), Just("d"), Just("e")];
    let node = (0..6usize, name(), name(), name(), any::<bool>()).prop_map(
        |(kind, x, y, z, flag)| match kind {
            0 => format!("  - {{calculator: CfgTestSource, output_stream: 'OUT:{x}'}}\n"),
            1 => format!("  - {{calculator: CfgTestPass, input_stream: [{x}], output_stream: [{y}]}}\n"),
            2 => {
                let back = if flag {
                    ", input_stream_info: [{tag_index: LOOP, back_edge: true}]"
                } else {
                    ""
                };
                format!("  - {{calculator: CfgTestAdd, input_stream: ['A:{x}', 'LOOP:{z}'], output_stream: 'OUT:{y}'{back}}}\n")
            }
            3 => format!("  - {{calculator: CfgTestStrSink, input_stream: 'IN:{x}'}}\n"),
            4 => format!(
                "  - {{calculator: CfgTestAdd, input_stream: 'A:{x}', output_stream: 'OUT:{y}', input_side_packet: 'SCALE:s_{z}', output_side_packet: 'TOTAL:s_{x}'}}\n"
            ),
            _ => format!("  - {{calculator: CfgTestPass, input_stream: [{x}, {z}], output_stream: [{y}]}}\n"),
        },
    );
    (
        proptest::collection::vec(node, 0..7),
        proptest::collection::vec(name(), 0..3),
    )
        .prop_map(|(nodes, inputs)| {
            format!(
                "input_stream: [{}]\nnode:\n{}",
                inputs.join(", "),
                nodes.concat()
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Random graphs either fail with located errors or give a consistent spec.
    #[test]
    fn random_graphs_validate_consistently(text in random_graph()) {
        check_no_panic_and_located(&text);
        if let Ok(g) = load(&text) {
            for (v, n) in g.nodes.iter().enumerate() {
                for (port, &s) in n.input_streams.iter().enumerate() {
                    let st = &g.streams[s];
                    let me = crate::spec::Consumer { node: v, port };
                    prop_assert!(st.consumers.contains(&me), "consumer missing in {}", text);
                    if let Producer::Node { node: u, .. } = st.producer {
                        prop_assert!(u < v || n.back_edges[port], "order broken in {}", text);
                    }
                }
                for (port, &s) in n.output_streams.iter().enumerate() {
                    prop_assert_eq!(&g.streams[s].producer, &Producer::Node { node: v, port });
                }
            }
            let mut names: Vec<&str> = g.streams.iter().map(|s| s.name.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            prop_assert_eq!(names.len(), g.streams.len());
        }
    }
}

#[test]
fn deep_nesting_and_big_numbers_do_not_panic() {
    let deep = format!(
        "node:\n  - calculator: CfgTestSource\n    output_stream: OUT:x\n    options: {}{}\n",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    check_no_panic_and_located(&deep);
    check_no_panic_and_located("max_queue_size: -99999999999999999999\n");
    check_no_panic_and_located("max_queue_size: -2\nnode: []\n");
    check_no_panic_and_located(
        "node:\n  - calculator: CfgTestSource\n    source_layer: 99999999999\n",
    );
    check_no_panic_and_located("a: &a [*a]\n");
    check_no_panic_and_located(
        "node: &n\n  - calculator: CfgTestSource\n    output_stream: OUT:x\nnodes: *n\n",
    );
    check_no_panic_and_located("\u{feff}node: []\n");
    check_no_panic_and_located("---\nnode: []\n---\nnode: []\n");
}

#[test]
fn option_overrides_parse_yaml_values_and_find_nodes() {
    let o: OptionOverride = "pipeline.rate.mode=SYNC".parse().unwrap();
    assert_eq!(o.node, "pipeline");
    assert_eq!(o.path, ["rate", "mode"]);
    assert_eq!(o.value, serde_json::json!("SYNC"));
    let value = |text: &str| text.parse::<OptionOverride>().unwrap().value;
    assert_eq!(value("n.k=5"), serde_json::json!(5));
    assert_eq!(value("n.k=0.5"), serde_json::json!(0.5));
    assert_eq!(value("n.k=true"), serde_json::json!(true));
    assert_eq!(value("n.k={a: [1, 2]}"), serde_json::json!({"a": [1, 2]}));
    assert_eq!(
        value("n.k=a=b"),
        serde_json::json!("a=b"),
        "only the first = splits"
    );
    for bad in ["n.k", "n=1", ".k=1", "n..k=1", "n.k={a: 1"] {
        let e = bad.parse::<OptionOverride>().unwrap_err().to_string();
        assert!(e.contains(bad) && e.contains("NODE.KEY"), "{bad}: {e}");
    }

    // By name; by calculator when no other node runs it; options created as needed.
    let mut config = parse_str(
        "node:\n  - {calculator: A, name: first}\n  - {calculator: B, options: {keep: 1}}\n  - {calculator: C}\n  - {calculator: C}\n",
        None,
    )
    .unwrap();
    let set = |config: &mut GraphConfig, text: &str| {
        text.parse::<OptionOverride>().unwrap().apply(config)
    };
    set(&mut config, "first.x.y=2").unwrap();
    assert_eq!(config.node[0].options, serde_json::json!({"x": {"y": 2}}));
    set(&mut config, "B.z=3").unwrap();
    assert_eq!(
        config.node[1].options,
        serde_json::json!({"keep": 1, "z": 3})
    );
    let e = set(&mut config, "C.z=3").unwrap_err();
    assert!(e.contains("several nodes run C"), "{e}");
    let e = set(&mut config, "A.z=3").unwrap_err();
    assert!(
        e.contains("no node \"A\" (its nodes: first, B, C, C)"),
        "{e}"
    );
    let e = set(&mut config, "B.keep.deeper=3").unwrap_err();
    assert!(e.contains("B.keep is 1, not a mapping"), "{e}");
}
