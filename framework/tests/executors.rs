//! Named executors: nodes that name one run on its own threads, so a slow or blocked node
//! there does not hold up the rest of the graph.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, Once};

use common::*;
use mediagraph_framework::prelude::*;
use mediagraph_framework::{calculator, Error, Graph, HandlerConfig, Phase};

/// A gate the test opens: `TGated` calls wait for it.
static GATE: (Mutex<bool>, Condvar) = (Mutex::new(false), Condvar::new());

/// Passes its input through, but each call first waits until [`GATE`] is open.
struct TGated;
const GATED_IN: Input<i64> = Input::new("");
const GATED_OUT: Output<i64> = Output::new("");

impl Calculator for TGated {
    type Options = NoOptions;
    fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
        cc.declare(&[&GATED_IN, &GATED_OUT])
    }
    fn create(_: &NoOptions) -> Result<Self> {
        Ok(TGated)
    }
    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let (open, cv) = &GATE;
        let mut guard = open.lock().expect("gate");
        while !*guard {
            guard = cv.wait(guard).expect("gate");
        }
        drop(guard);
        let p = cx.input_packet(0).clone();
        cx.output_at(0).add(p)?;
        Ok(Flow::Continue)
    }
}

/// The threads `TLoopHead::close` ran on.
static CLOSE_THREADS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Passes input 0 to its output (Immediate handler, so it can head a loop); records the
/// thread its `close` runs on.
struct TLoopHead;
const HEAD_IN: Input<AnyPacket> = Input::any("").multiple();
const HEAD_OUT: Output<AnyPacket> = Output::any("");

impl Calculator for TLoopHead {
    type Options = NoOptions;
    fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
        cc.declare(&[&HEAD_IN, &HEAD_OUT])?;
        cc.set_input_stream_handler(HandlerConfig::named("ImmediateInputStreamHandler"));
        Ok(())
    }
    fn create(_: &NoOptions) -> Result<Self> {
        Ok(TLoopHead)
    }
    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let p = cx.input_packet(0).clone();
        if !p.is_empty() {
            cx.output_at(0).add(p)?;
        }
        Ok(Flow::Continue)
    }
    fn close(&mut self, _: &mut CalculatorContext) -> Result<()> {
        let name = std::thread::current().name().unwrap_or("?").to_string();
        CLOSE_THREADS.lock().expect("lock").push(name);
        Ok(())
    }
}

fn executor_graph(yaml: &str) -> Graph {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        calculator::register::<TGated>("TGated");
        calculator::register::<TLoopHead>("TLoopHead");
    });
    graph(yaml)
}

fn strings(poller: &mediagraph_framework::OutputStreamPoller) -> Vec<String> {
    std::iter::from_fn(|| poller.next())
        .map(|p| p.get::<String>().expect("a string").clone())
        .collect()
}

#[test]
fn nodes_run_on_the_threads_of_the_executor_they_name() {
    let (on_io, on_default) = with_timeout(20, || {
        let mut g = executor_graph(
            r#"
input_stream: [in]
num_threads: 1
executor:
  - {name: io, options: {num_threads: 2, thread_name_prefix: reader}}
node:
  - {calculator: TThreadName, input_stream: [in], output_stream: [a], executor: io}
  - {calculator: TThreadName, input_stream: [in], output_stream: [b]}
"#,
        );
        let a = g.add_output_stream_poller("a").unwrap();
        let b = g.add_output_stream_poller("b").unwrap();
        g.start_run(HashMap::new()).unwrap();
        for t in 0..50 {
            g.add_packet("in", Packet::new(t).at(Timestamp::new(t)))
                .unwrap();
        }
        g.finish().unwrap();
        (strings(&a), strings(&b))
    });
    assert_eq!(on_io.len(), 50);
    assert!(
        on_io.iter().all(|n| n == "reader-0" || n == "reader-1"),
        "{on_io:?}"
    );
    assert_eq!(on_default, vec!["mediagraph-0".to_string(); 50]);
}

#[test]
fn a_blocked_node_on_its_own_executor_does_not_stall_the_others() {
    // One default thread: if the gated node ran there, the pass-through could not run until
    // the gate opens, and the test would time out.
    let (passed, gated) = with_timeout(20, || {
        let mut g = executor_graph(
            r#"
input_stream: [in]
num_threads: 1
executor: [{name: slow, options: {num_threads: 1}}]
node:
  - {calculator: TGated, input_stream: [in], output_stream: [gated], executor: slow}
  - {calculator: TPass, input_stream: [in], output_stream: [passed]}
"#,
        );
        let passed = g.add_output_stream_poller("passed").unwrap();
        let gated = g.add_output_stream_poller("gated").unwrap();
        g.start_run(HashMap::new()).unwrap();
        for t in 0..5 {
            g.add_packet("in", Packet::new(t).at(Timestamp::new(t)))
                .unwrap();
        }
        // Every packet gets through while the gated node is stuck in its first call.
        let through: Vec<i64> = (0..5)
            .map(|_| *passed.next().expect("a packet").get::<i64>().unwrap())
            .collect();
        let (open, cv) = &GATE;
        *open.lock().unwrap() = true;
        cv.notify_all();
        g.finish().unwrap();
        (through, ints(&gated))
    });
    assert_eq!(passed, vec![0, 1, 2, 3, 4]);
    assert_eq!(gated, (0..5).map(|t| (t, t)).collect::<Vec<_>>());
}

#[test]
fn a_source_on_a_named_executor_runs_to_the_end() {
    let got = with_timeout(20, || {
        let mut g = executor_graph(
            r#"
executor: [{name: sources}, {name: sinks, options: {num_threads: 1}}]
node:
  - {calculator: TSource, output_stream: [a], options: {count: 500}, executor: sources}
  - {calculator: TPass, input_stream: [a], output_stream: [b], executor: sinks}
  - {calculator: TPass, input_stream: [b], output_stream: [c]}
"#,
        );
        let c = g.add_output_stream_poller("c").unwrap();
        g.run(HashMap::new()).unwrap();
        ints(&c)
    });
    assert_eq!(got, (0..500).map(|t| (t, t)).collect::<Vec<_>>());
}

#[test]
fn a_failing_node_on_a_named_executor_fails_the_run_naming_it() {
    let err = with_timeout(20, || {
        let mut g = executor_graph(
            r#"
executor: [{name: work}]
node:
  - {calculator: TSource, output_stream: [a], options: {count: 100}}
  - {calculator: TFault, name: faulty, input_stream: [a], output_stream: [b], options: {at: 42, mode: panic}, executor: work}
"#,
        );
        g.run(HashMap::new()).unwrap_err()
    });
    match &err {
        Error::Node { node, phase, .. } => {
            assert_eq!(node, "faulty");
            assert_eq!(*phase, Phase::Process);
        }
        other => panic!("unexpected error {other:?}"),
    }
}

#[test]
fn a_run_that_names_executors_can_be_cancelled_and_rerun() {
    let counts = with_timeout(20, || {
        let mut g = executor_graph(
            r#"
executor: [{name: gen}]
max_queue_size: 4
node:
  - {calculator: TSource, output_stream: [a], options: {count: 0, endless: true}, executor: gen}
  - {calculator: TPass, input_stream: [a], output_stream: [b]}
"#,
        );
        let seen = Arc::new(Mutex::new(0usize));
        let counter = seen.clone();
        g.observe_output_stream("b", move |_| {
            *counter.lock().unwrap() += 1;
            Ok(())
        })
        .unwrap();
        let mut counts = Vec::new();
        for _ in 0..2 {
            *seen.lock().unwrap() = 0;
            g.start_run(HashMap::new()).unwrap();
            while *seen.lock().unwrap() < 100 {
                std::thread::yield_now();
            }
            g.cancel();
            let _ = g.wait_until_done();
            counts.push(*seen.lock().unwrap());
        }
        counts
    });
    assert!(counts.iter().all(|&c| c >= 100), "{counts:?}");
}

#[test]
fn the_trace_names_each_nodes_executor() {
    let path = std::env::temp_dir().join(format!(
        "mediagraph-executor-trace-{}.json",
        std::process::id()
    ));
    let trace = path.clone();
    with_timeout(20, move || {
        let mut g = executor_graph(
            r#"
executor: [{name: io}]
node:
  - {calculator: TSource, name: src, output_stream: [a], options: {count: 10}, executor: io}
  - {calculator: TPass, name: pass, input_stream: [a], output_stream: [b]}
"#,
        );
        g.enable_trace(&trace).unwrap();
        g.run(HashMap::new()).unwrap();
    });
    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(text.contains("src (TSource) on io"), "{text}");
    assert!(text.contains("\"pass (TPass)\""), "{text}");
}

#[test]
fn a_loop_node_closed_at_the_end_of_the_run_closes_on_its_own_executor() {
    // The end-of-run close of a loop's node is decided by the idle handler, which runs on
    // whichever thread saw the graph go idle; the close itself must run on the node's
    // executor (a thread-affine calculator depends on it).
    for _ in 0..10 {
        with_timeout(20, || {
            let mut g = executor_graph(
                r#"
input_stream: [in]
executor: [{name: loopx, options: {num_threads: 1}}]
node:
  - calculator: TLoopHead
    input_stream: [in, echo]
    input_stream_info: [{tag_index: ":1", back_edge: true}]
    output_stream: [out]
    executor: loopx
  - {calculator: TPass, input_stream: [out], output_stream: [echo]}
  - {calculator: TFault, input_stream: [in], output_stream: [slow], options: {at: 2, mode: sleep}}
"#,
            );
            g.start_run(HashMap::new()).unwrap();
            for t in 0..3 {
                g.add_packet("in", Packet::new(t).at(Timestamp::new(t)))
                    .unwrap();
            }
            g.finish().unwrap();
        });
    }
    let threads = CLOSE_THREADS.lock().unwrap().clone();
    assert_eq!(threads.len(), 10);
    assert!(threads.iter().all(|t| t == "loopx-0"), "{threads:?}");
}
