//! `max_in_flight` above 1: parallel calls of one node on copies of its calculator, outputs
//! in timestamp order, bounds, errors, close, and the refusals.

mod common;

use std::collections::HashMap;
use std::sync::{Mutex, Once, OnceLock};
use std::time::Duration;

use common::*;
use mediagraph_framework::prelude::*;
use mediagraph_framework::{calculator, Graph};
use serde::Deserialize;

/// Squares its input after a sleep that varies with the value (so later calls often finish
/// first); declares independent calls. Counts copies opened and closed and calls running at
/// once, per `key`.
struct TSquare {
    opts: SquareOptions,
    gauge: &'static Mutex<Gauge>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct SquareOptions {
    key: String,
    /// Each call sleeps `sleep_us * ((v * 7) % 5)` µs.
    #[serde(default)]
    sleep_us: u64,
    /// The call at this value fails.
    #[serde(default)]
    fail_at: Option<i64>,
    /// The call at this value panics.
    #[serde(default)]
    panic_at: Option<i64>,
    /// Odd values give no packet (the offset settles their timestamps).
    #[serde(default)]
    evens_only: bool,
    /// Emits at the input timestamp minus one (no offset declared).
    #[serde(default)]
    emit_earlier: bool,
}

#[derive(Default)]
struct Gauge {
    opened: usize,
    closed: usize,
    running: usize,
    most_running: usize,
}

static GAUGES: OnceLock<Mutex<HashMap<String, &'static Mutex<Gauge>>>> = OnceLock::new();

fn gauge(key: &str) -> &'static Mutex<Gauge> {
    let mut all = GAUGES.get_or_init(Default::default).lock().unwrap();
    all.entry(key.to_string())
        .or_insert_with(|| Box::leak(Box::default()))
}

fn read_gauge(key: &str) -> (usize, usize, usize) {
    let g = gauge(key).lock().unwrap();
    (g.opened, g.closed, g.most_running)
}

const SQ_IN: Input<i64> = Input::new("");
const SQ_OUT: Output<i64> = Output::new("");
const SQ_SIDE: SideOutput<i64> = SideOutput::new("SIDE").optional();

impl Calculator for TSquare {
    type Options = SquareOptions;
    fn contract(cc: &mut Contract, o: &SquareOptions) -> Result<()> {
        cc.declare(&[&SQ_IN, &SQ_OUT, &SQ_SIDE])?;
        if !o.emit_earlier {
            cc.set_timestamp_offset(0);
        }
        cc.set_independent_calls(true);
        Ok(())
    }
    fn create(o: &SquareOptions) -> Result<Self> {
        Ok(TSquare {
            opts: o.clone(),
            gauge: gauge(&o.key),
        })
    }
    fn open(&mut self, _: &mut CalculatorContext) -> Result<()> {
        self.gauge.lock().unwrap().opened += 1;
        Ok(())
    }
    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let v = *cx.input(&SQ_IN).value()?;
        {
            let mut g = self.gauge.lock().unwrap();
            g.running += 1;
            g.most_running = g.most_running.max(g.running);
        }
        std::thread::sleep(Duration::from_micros(
            self.opts.sleep_us * (v * 7).rem_euclid(5) as u64,
        ));
        self.gauge.lock().unwrap().running -= 1;
        if self.opts.fail_at == Some(v) {
            return Err(Error::msg(format!("refusing {v}")));
        }
        if self.opts.panic_at == Some(v) {
            panic!("panicking at {v}");
        }
        let ts = cx.input_timestamp();
        if self.opts.emit_earlier && v > 0 {
            cx.output(&SQ_OUT)
                .send(v * v, Timestamp::new(ts.value() - 1))?;
        } else if !self.opts.evens_only || v % 2 == 0 {
            cx.output(&SQ_OUT).send(v * v, ts)?;
        }
        Ok(Flow::Continue)
    }
    fn close(&mut self, _: &mut CalculatorContext) -> Result<()> {
        self.gauge.lock().unwrap().closed += 1;
        Ok(())
    }
}

#[derive(Default, Debug, Clone, Copy)]
struct Counts {
    open_ok: usize,
    open_calls: usize,
    closed: usize,
    running: usize,
    most_running: usize,
}

static COUNTS: OnceLock<Mutex<HashMap<String, Counts>>> = OnceLock::new();

fn with_counts<R>(key: &str, f: impl FnOnce(&mut Counts) -> R) -> R {
    let mut all = COUNTS.get_or_init(Default::default).lock().unwrap();
    f(all.entry(key.to_string()).or_default())
}

fn counts(key: &str) -> Counts {
    with_counts(key, |c| *c)
}

/// Independent calls; passes its input on (offset 0) after `sleep_us`; misbehaves as its
/// options say (found by review).
struct TCopy {
    o: CopyOptions,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct CopyOptions {
    key: String,
    #[serde(default)]
    sleep_us: u64,
    /// The open of the n-th copy (1-based, counted per key) fails.
    #[serde(default)]
    fail_open_nth: usize,
    /// `open` emits a packet (value -1) at timestamp 0.
    #[serde(default)]
    emit_in_open: bool,
    /// `close` emits a packet (value -2) at timestamp 1_000_000.
    #[serde(default)]
    emit_in_close: bool,
    /// At this input value, emit at PostStream instead of the input timestamp.
    #[serde(default)]
    post_stream_at: Option<i64>,
    /// Only the call at this value sleeps.
    #[serde(default)]
    slow_at: Option<i64>,
}

const C_IN: Input<i64> = Input::new("");
const C_OUT: Output<i64> = Output::new("");

impl Calculator for TCopy {
    type Options = CopyOptions;
    fn contract(cc: &mut Contract, o: &CopyOptions) -> Result<()> {
        cc.declare(&[&C_IN, &C_OUT])?;
        if o.post_stream_at.is_none() {
            cc.set_timestamp_offset(0);
        }
        cc.set_independent_calls(true);
        Ok(())
    }
    fn create(o: &CopyOptions) -> Result<Self> {
        Ok(TCopy { o: o.clone() })
    }
    fn open(&mut self, cx: &mut CalculatorContext) -> Result<()> {
        let nth = with_counts(&self.o.key, |c| {
            c.open_calls += 1;
            c.open_calls
        });
        if nth == self.o.fail_open_nth {
            bail!("open of copy {nth} refused");
        }
        with_counts(&self.o.key, |c| c.open_ok += 1);
        if self.o.emit_in_open {
            cx.output(&C_OUT).send(-1, Timestamp::new(0))?;
        }
        Ok(())
    }
    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        with_counts(&self.o.key, |c| {
            c.running += 1;
            c.most_running = c.most_running.max(c.running);
        });
        let v = *cx.input(&C_IN).value()?;
        if self.o.slow_at.is_none_or(|s| s == v) {
            std::thread::sleep(Duration::from_micros(self.o.sleep_us));
        }
        with_counts(&self.o.key, |c| c.running -= 1);
        let ts = if self.o.post_stream_at == Some(v) {
            Timestamp::POST_STREAM
        } else {
            cx.input_timestamp()
        };
        cx.output(&C_OUT).send(v, ts)?;
        Ok(Flow::Continue)
    }
    fn close(&mut self, cx: &mut CalculatorContext) -> Result<()> {
        with_counts(&self.o.key, |c| c.closed += 1);
        if self.o.emit_in_close {
            cx.output(&C_OUT).send(-2, Timestamp::new(1_000_000))?;
        }
        Ok(())
    }
}

fn setup_copy() {
    static ONCE: Once = Once::new();
    setup();
    ONCE.call_once(|| calculator::register::<TCopy>("TCopy"));
}

fn copy_graph(options: &str, max_in_flight: usize, threads: usize) -> Graph {
    setup_copy();
    let yaml = format!(
        "input_stream: [in]\noutput_stream: [out]\nnum_threads: {threads}\nnode:\n  - {{calculator: TCopy, name: c, input_stream: [in], output_stream: [out], max_in_flight: {max_in_flight}, options: {{{options}}}}}\n"
    );
    Graph::from_yaml_str(&yaml).unwrap_or_else(|e| panic!("config error: {e}"))
}

fn setup_square() {
    static ONCE: Once = Once::new();
    setup();
    ONCE.call_once(|| calculator::register::<TSquare>("TSquare"));
}

fn square_graph(options: &str, max_in_flight: usize, threads: usize) -> Graph {
    setup_square();
    let yaml = format!(
        "input_stream: [in]\noutput_stream: [out]\nnum_threads: {threads}\nnode:\n  - {{calculator: TSquare, name: sq, input_stream: [in], output_stream: [out], max_in_flight: {max_in_flight}, options: {{{options}}}}}\n"
    );
    match Graph::from_yaml_str(&yaml) {
        Ok(g) => g,
        Err(e) => panic!("config error: {e}"),
    }
}

/// Feeds `0..count` at timestamps `0..count`, closes, returns the outputs and the result.
fn feed(mut g: Graph, count: i64) -> (Vec<(i64, i64)>, std::result::Result<(), String>) {
    let poller = g.add_output_stream_poller("out").unwrap();
    g.start_run(HashMap::new()).unwrap();
    for v in 0..count {
        if g.add_packet("in", Packet::new(v).at(Timestamp::new(v)))
            .is_err()
        {
            break;
        }
    }
    let result = g.finish().map_err(|e| e.to_string());
    (ints(&poller), result)
}

#[test]
fn parallel_calls_overlap_and_outputs_keep_timestamp_order() {
    let (out, result) = with_timeout(60, || {
        feed(square_graph("key: order, sleep_us: 300", 3, 3), 300)
    });
    result.unwrap();
    let want: Vec<(i64, i64)> = (0..300).map(|v| (v, v * v)).collect();
    assert_eq!(out, want);
    let (opened, closed, most_running) = read_gauge("order");
    assert_eq!((opened, closed), (3, 3), "one open and one close per copy");
    assert!(
        (2..=3).contains(&most_running),
        "calls running at once: {most_running} (max_in_flight 3)"
    );
}

#[test]
fn one_call_at_a_time_without_max_in_flight() {
    let (out, result) = with_timeout(60, || {
        feed(square_graph("key: serial, sleep_us: 100", 1, 3), 100)
    });
    result.unwrap();
    assert_eq!(out.len(), 100);
    assert_eq!(read_gauge("serial"), (1, 1, 1));
}

#[test]
fn stats_count_every_parallel_call() {
    let stats = with_timeout(60, || {
        let mut g = square_graph("key: stats, sleep_us: 50", 2, 2);
        g.start_run(HashMap::new()).unwrap();
        for v in 0..50 {
            g.add_packet("in", Packet::new(v).at(Timestamp::new(v)))
                .unwrap();
        }
        g.finish().unwrap();
        g.stats()
    });
    let sq = stats.iter().find(|s| s.name == "sq").unwrap();
    assert_eq!(
        (sq.invocations, sq.packets_in, sq.packets_out),
        (50, 50, 50)
    );
}

#[test]
fn offset_bounds_settle_a_join_behind_parallel_calls() {
    // Odd values give no packet from the parallel node; its offset settles those timestamps
    // for the join, but never ahead of a call still running.
    setup_square();
    let got = with_timeout(60, || {
        let mut g = graph(
            r#"
input_stream: [in]
output_stream: [sum]
num_threads: 3
node:
  - {calculator: TSquare, name: sq, input_stream: [in], output_stream: [sq], max_in_flight: 3, options: {key: join, sleep_us: 200, evens_only: true}}
  - {calculator: TAdd, input_stream: ["A:in", "B:sq"], output_stream: ["SUM:sum"]}
"#,
        );
        let poller = g.add_output_stream_poller("sum").unwrap();
        g.start_run(HashMap::new()).unwrap();
        for v in 0..100 {
            g.add_packet("in", Packet::new(v).at(Timestamp::new(v)))
                .unwrap();
        }
        // Every sum arrives while the input is still open: bounds alone settle the odd ones.
        let mut got = Vec::new();
        for _ in 0..100 {
            let p = poller
                .next_timeout(Duration::from_secs(10))
                .unwrap()
                .expect("a sum");
            got.push((p.timestamp().value(), *p.get::<i64>().unwrap()));
        }
        g.finish().unwrap();
        got
    });
    let want: Vec<(i64, i64)> = (0..100)
        .map(|v| (v, v + if v % 2 == 0 { v * v } else { 0 }))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn a_failing_call_fails_the_run_after_the_calls_before_it() {
    let (out, result) = with_timeout(60, || {
        feed(
            square_graph("key: fail, sleep_us: 200, fail_at: 13", 3, 3),
            40,
        )
    });
    let err = result.unwrap_err();
    assert!(
        err.contains("\"sq\"") && err.contains("refusing 13") && err.contains("13"),
        "{err}"
    );
    // The calls before it are delivered, in order; none after it.
    let want: Vec<(i64, i64)> = (0..13).map(|v| (v, v * v)).collect();
    assert_eq!(out, want);
    let (opened, closed, _) = read_gauge("fail");
    assert_eq!(
        (opened, closed),
        (3, 3),
        "every copy is closed after the failure"
    );
}

#[test]
fn a_panicking_call_fails_the_run_naming_the_node() {
    let (_, result) = with_timeout(60, || {
        feed(
            square_graph("key: panic, sleep_us: 100, panic_at: 7", 2, 2),
            20,
        )
    });
    let err = result.unwrap_err();
    assert!(
        err.contains("\"sq\"") && err.contains("panicking at 7"),
        "{err}"
    );
}

#[test]
fn a_packet_below_an_earlier_calls_bound_is_an_error() {
    // Each call emits at its input timestamp minus one: the second packet at a timestamp is
    // refused, whether its call started before the earlier call's outputs were delivered
    // (checked at delivery) or after (checked when sent).
    let (_, result) = with_timeout(60, || {
        feed(
            square_graph("key: early, sleep_us: 100, emit_earlier: true", 2, 2),
            20,
        )
    });
    let err = result.unwrap_err();
    assert!(err.contains("\"sq\""), "{err}");
}

#[test]
fn cancel_ends_a_run_with_parallel_calls() {
    let err = with_timeout(60, || {
        let mut g = square_graph("key: cancel, sleep_us: 2000", 2, 2);
        g.start_run(HashMap::new()).unwrap();
        for v in 0..20 {
            g.add_packet("in", Packet::new(v).at(Timestamp::new(v)))
                .unwrap();
        }
        g.cancel();
        g.wait_until_done().unwrap_err().to_string()
    });
    assert!(err.to_lowercase().contains("cancel"), "{err}");
    let (opened, closed, _) = read_gauge("cancel");
    assert_eq!(opened, closed, "every opened copy is closed");
}

#[test]
fn max_in_flight_is_refused_where_calls_cannot_be_parallel() {
    setup_square();
    let refused = |yaml: &str| match Graph::from_yaml_str(yaml) {
        Ok(_) => panic!("accepted: {yaml}"),
        Err(e) => e.to_string(),
    };
    // A calculator that does not declare independent calls, pointing at the option.
    let err = refused("input_stream: [in]\nnode:\n  - {calculator: TEvens, name: p, input_stream: [in], output_stream: [o], max_in_flight: 2}\n");
    assert!(
        err.contains("max_in_flight 2 refused: TEvens does not declare independent calls"),
        "{err}"
    );
    assert!(err.contains(":3:90"), "points at the option: {err}");
    // A source.
    let err = refused("node:\n  - {calculator: TSource, name: s, output_stream: [o], max_in_flight: 2, options: {count: 1}}\n");
    assert!(err.contains("a source node"), "{err}");
    // A node with an output side packet.
    let err = refused("input_stream: [in]\nnode:\n  - {calculator: TSquare, name: q, input_stream: [in], output_stream: [o], output_side_packet: [\"SIDE:s\"], max_in_flight: 2, options: {key: x}}\n");
    assert!(err.contains("output side packets"), "{err}");
    // A node reading a back edge.
    let err = refused(
        r#"
input_stream: [in]
node:
  - {calculator: TAdd, name: add, input_stream: ["A:in", "B:loop"], output_stream: ["SUM:sum"]}
  - {calculator: TSquare, name: q, input_stream: [back], output_stream: [loop], max_in_flight: 2, input_stream_info: [{tag_index: ":0", back_edge: true}], options: {key: y}}
  - {calculator: TPass, name: p, input_stream: [sum], output_stream: [back]}
"#,
    );
    assert!(err.contains("reads a back edge"), "{err}");
    // A spec built in code skips validation: the run refuses it when it starts.
    let mut spec = graph("input_stream: [in]\nnode:\n  - {calculator: TEvens, name: p, input_stream: [in], output_stream: [o]}\n")
        .spec()
        .clone();
    spec.nodes[0].max_in_flight = 2;
    let mut g = Graph::new(spec);
    let err = g.start_run(HashMap::new()).unwrap_err().to_string();
    assert!(
        err.contains("node \"p\": max_in_flight 2 refused: TEvens does not declare"),
        "{err}"
    );
}

#[test]
fn trace_puts_overlapping_calls_on_lanes_of_their_node() {
    let dir = std::env::temp_dir().join(format!("mg-par-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("trace.json");
    let most_running = with_timeout(60, {
        let path = path.clone();
        move || {
            let mut g = square_graph("key: trace, sleep_us: 300", 3, 3);
            g.enable_trace(&path).unwrap();
            let (out, result) = feed(g, 60);
            result.unwrap();
            assert_eq!(out.len(), 60);
            read_gauge("trace").2
        }
    });
    assert!(most_running >= 2, "calls overlapped: {most_running}");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let events = doc["traceEvents"].as_array().unwrap();
    let mut spans: HashMap<u64, Vec<(f64, f64)>> = HashMap::new();
    for e in events
        .iter()
        .filter(|e| e["ph"] == "X" && e["args"]["node"] == "sq")
    {
        let (ts, dur) = (e["ts"].as_f64().unwrap(), e["dur"].as_f64().unwrap());
        spans
            .entry(e["tid"].as_u64().unwrap())
            .or_default()
            .push((ts, ts + dur));
    }
    let calls: usize = spans.values().map(Vec::len).sum();
    assert_eq!(calls, 60 + 3 + 3, "a span per process, open and close call");
    assert!(spans.len() >= 2, "overlapping calls on more than one lane");
    for lane in spans.values_mut() {
        lane.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(
            lane.windows(2).all(|w| w[0].1 <= w[1].0),
            "spans of one lane overlap: {lane:?}"
        );
    }
    let lane_names = events
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "thread_name")
        .filter_map(|e| e["args"]["name"].as_str())
        .filter(|n| n.starts_with("sq (TSquare)"))
        .count();
    assert_eq!(lane_names, spans.len(), "each lane is named after the node");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn automatic_thread_counts_make_room_for_parallel_calls() {
    let g = graph(
        r#"
input_stream: [in]
executor: [{name: one, options: {num_threads: 1}}, {name: auto}]
node:
  - {calculator: TPass, name: a, input_stream: [in], output_stream: [a], max_in_flight: 3, executor: one}
  - {calculator: TPass, name: b, input_stream: [a], output_stream: [b], max_in_flight: 2, executor: auto}
  - {calculator: TPass, name: c, input_stream: [b], output_stream: [c]}
"#,
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Default executor: one node, one call at a time; `auto`: one node with 2 calls at once.
    assert_eq!(g.spec().executor_threads(), vec![1, 1, cores.min(2)]);
    let notes = g.spec().parallel_call_notes();
    assert_eq!(notes.len(), if cores >= 2 { 1 } else { 2 }, "{notes:?}");
    assert!(
        notes[0].contains("node \"a\": max_in_flight 3 but executor \"one\" has 1 thread"),
        "{notes:?}"
    );
}

#[test]
fn parallel_calls_take_batches_and_immediate_inputs_in_order() {
    setup_square();
    for handler in [
        "{input_stream_handler: Default, options: {batch_size: 4}}",
        "Immediate",
    ] {
        let got = with_timeout(60, move || {
            let mut g = graph(&format!(
                "input_stream: [in]\noutput_stream: [out]\nnum_threads: 3\nnode:\n  - {{calculator: TSquare, name: sq, input_stream: [in], output_stream: [out], max_in_flight: 3, input_stream_handler: {handler}, options: {{key: batch, sleep_us: 200}}}}\n"
            ));
            let poller = g.add_output_stream_poller("out").unwrap();
            g.start_run(HashMap::new()).unwrap();
            for v in 0..50 {
                g.add_packet("in", Packet::new(v).at(Timestamp::new(v)))
                    .unwrap();
            }
            g.finish().unwrap();
            ints(&poller)
        });
        let want: Vec<(i64, i64)> = (0..50).map(|v| (v, v * v)).collect();
        assert_eq!(got, want, "{handler}");
    }
}

#[test]
fn copies_opened_before_one_that_fails_are_closed() {
    let (_, result) = with_timeout(30, || {
        feed(copy_graph("key: openfail, fail_open_nth: 2", 2, 2), 5)
    });
    let err = result.unwrap_err();
    assert!(err.contains("open of copy 2 refused"), "{err}");
    let c = counts("openfail");
    assert_eq!((c.open_ok, c.closed), (1, 1), "{c:?}");
}

#[test]
fn open_and_close_outputs_come_from_one_copy() {
    for (option, expect) in [
        ("emit_in_open", (0, -1)),
        ("emit_in_close", (1_000_000, -2)),
    ] {
        for max_in_flight in [1, 3] {
            let (out, dropped) = with_timeout(30, move || {
                let mut g = copy_graph(
                    &format!("key: oc_{option}_{max_in_flight}, {option}: true"),
                    max_in_flight,
                    3,
                );
                let poller = g.add_output_stream_poller("out").unwrap();
                g.start_run(HashMap::new()).unwrap();
                for v in 10..15 {
                    g.add_packet("in", Packet::new(v).at(Timestamp::new(v)))
                        .unwrap();
                }
                g.finish().unwrap();
                let dropped = g.stats().iter().find(|s| s.name == "c").unwrap().dropped;
                (ints(&poller), dropped)
            });
            assert_eq!(out.len(), 6, "{option} {max_in_flight}: {out:?}");
            assert!(out.contains(&expect), "{option} {max_in_flight}: {out:?}");
            // The other copies' packets are counted, not silently lost.
            assert_eq!(
                dropped,
                max_in_flight as u64 - 1,
                "{option} {max_in_flight}"
            );
        }
    }
}

#[test]
fn a_post_stream_packet_after_an_earlier_calls_packet_is_refused() {
    // Value 1's call finishes first (0 sleeps), so it started before 0's packet was counted.
    for max_in_flight in [1, 2] {
        let (_, result) = with_timeout(30, move || {
            feed(
                copy_graph(
                    &format!(
                        "key: ps{max_in_flight}, post_stream_at: 1, sleep_us: 20000, slow_at: 0"
                    ),
                    max_in_flight,
                    2,
                ),
                2,
            )
        });
        let err = result.unwrap_err();
        assert!(
            err.contains("PostStream packet must be the only packet"),
            "{err}"
        );
    }
}

#[test]
fn a_source_throttled_by_a_parallel_node_does_not_wait_behind_its_call() {
    // The room a call's inputs leave wakes the source; it must not wait in the local slot of
    // the thread that then runs the (slow) call, or the calls never overlap.
    setup_copy();
    let most_running = with_timeout(60, || {
        let mut g = graph(
            "output_stream: [out]\nnum_threads: 2\nmax_queue_size: 1\nnode:\n  - {calculator: TSource, output_stream: [s], options: {count: 40}}\n  - {calculator: TCopy, name: c, input_stream: [s], output_stream: [out], max_in_flight: 2, options: {key: throttled, sleep_us: 10000}}\n",
        );
        let poller = g.add_output_stream_poller("out").unwrap();
        g.start_run(HashMap::new()).unwrap();
        g.wait_until_done().unwrap();
        assert_eq!(ints(&poller).len(), 40);
        counts("throttled").most_running
    });
    assert_eq!(most_running, 2);
}

#[test]
fn the_automatic_thread_count_lets_parallel_calls_overlap() {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        return; // One core: one thread, whatever the node asks.
    }
    setup_copy();
    let g = graph("input_stream: [in]\noutput_stream: [out]\nnode:\n  - {calculator: TCopy, name: c, input_stream: [in], output_stream: [out], max_in_flight: 3, options: {key: auto, sleep_us: 2000}}\n");
    let (out, result) = with_timeout(30, move || feed(g, 30));
    result.unwrap();
    assert_eq!(out.len(), 30);
    assert!(counts("auto").most_running >= 2, "{:?}", counts("auto"));
}
