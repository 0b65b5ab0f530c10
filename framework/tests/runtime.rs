//! Whole-graph behaviour of the runtime: delivery, handlers, bounds, errors, side packets,
//! throttling, back edges, cancellation.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use common::*;
use mediagraph_framework::{AddMode, Error, Packet, Phase, Timestamp};

fn pkt(v: i64) -> Packet {
    Packet::new(v).at(Timestamp::new(v))
}

#[test]
fn chain_delivers_every_packet_in_order() {
    let got = with_timeout(20, || {
        let mut g = graph(
            r#"
output_stream: [out]
node:
  - {calculator: TSource, output_stream: [a], options: {count: 2000}}
  - {calculator: TPass, input_stream: [a], output_stream: [b]}
  - {calculator: TPass, input_stream: [b], output_stream: [c]}
  - {calculator: TPass, input_stream: [c], output_stream: [out]}
"#,
        );
        let poller = g.add_output_stream_poller("out").unwrap();
        g.run(HashMap::new()).unwrap();
        ints(&poller)
    });
    assert_eq!(got.len(), 2000);
    assert!(got
        .iter()
        .enumerate()
        .all(|(i, &(t, v))| t == i as i64 && v == i as i64));
}

#[test]
fn graph_inputs_feed_and_close() {
    let got = with_timeout(20, || {
        let mut g = graph(
            "input_stream: [in]\noutput_stream: [out]\nnode:\n  - {calculator: TPass, input_stream: [in], output_stream: [out]}\n",
        );
        let poller = g.add_output_stream_poller("out").unwrap();
        g.start_run(HashMap::new()).unwrap();
        for t in [3, 5, 9] {
            g.add_packet("in", pkt(t)).unwrap();
        }
        g.finish().unwrap();
        ints(&poller)
    });
    assert_eq!(got, vec![(3, 3), (5, 5), (9, 9)]);
}

#[test]
fn default_handler_joins_on_timestamps_with_offset_bounds() {
    // b only carries even values; TEvens has offset 0 so odd timestamps settle by bound.
    let got = with_timeout(20, || {
        let mut g = graph(
            r#"
input_stream: [in]
output_stream: [sum]
node:
  - {calculator: TEvens, input_stream: [in], output_stream: [evens]}
  - {calculator: TAdd, input_stream: ["A:in", "B:evens"], output_stream: ["SUM:sum"]}
"#,
        );
        let poller = g.add_output_stream_poller("sum").unwrap();
        g.start_run(HashMap::new()).unwrap();
        for t in 1..=4 {
            g.add_packet("in", pkt(t)).unwrap();
        }
        // Every sum is produced before the input closes: bounds alone settle odd timestamps.
        for expect in [(1, 1), (2, 4), (3, 3), (4, 8)] {
            let p = poller
                .next_timeout(std::time::Duration::from_secs(5))
                .unwrap()
                .unwrap();
            assert_eq!((p.timestamp().value(), *p.get::<i64>().unwrap()), expect);
        }
        g.finish().unwrap();
        ints(&poller)
    });
    assert!(got.is_empty());
}

#[test]
fn explicit_bounds_settle_timestamps_too() {
    let got = with_timeout(20, || {
        let mut g = graph(
            r#"
input_stream: [in]
output_stream: [sum]
node:
  - {calculator: TEvensBound, input_stream: [in], output_stream: [evens]}
  - {calculator: TAdd, input_stream: ["A:in", "B:evens"], output_stream: ["SUM:sum"]}
"#,
        );
        let poller = g.add_output_stream_poller("sum").unwrap();
        g.start_run(HashMap::new()).unwrap();
        for t in 1..=3 {
            g.add_packet("in", pkt(t)).unwrap();
        }
        let first = poller
            .next_timeout(std::time::Duration::from_secs(5))
            .unwrap()
            .unwrap();
        assert_eq!(first.timestamp(), Timestamp::new(1));
        g.finish().unwrap();
        ints(&poller)
    });
    assert_eq!(got, vec![(2, 4), (3, 3)]);
}

#[test]
fn empty_inputs_show_settled_timestamps() {
    let log = with_timeout(20, || {
        let mut g = graph(
            r#"
input_stream: [a, b]
node:
  - {calculator: TRecorder, input_stream: [a, b], options: {key: settled}}
"#,
        );
        g.start_run(HashMap::new()).unwrap();
        g.add_packet("a", pkt(10)).unwrap();
        g.add_packet("b", pkt(20)).unwrap();
        g.finish().unwrap();
        take_log("settled")
    });
    // At 10, b has a packet queued at 20, so its empty input says 19 is settled.
    assert_eq!(log, vec!["@10 10 _19", "@20 _Max 20", "close"]);
}

#[test]
fn immediate_handler_processes_each_stream_alone() {
    let log = with_timeout(20, || {
        let mut g = graph(
            r#"
input_stream: [a, b]
node:
  - {calculator: TRecorder, input_stream: [a, b], options: {key: imm, immediate: true}}
"#,
        );
        g.start_run(HashMap::new()).unwrap();
        g.add_packet("b", pkt(5)).unwrap();
        g.wait_until_idle().unwrap();
        g.add_packet("a", pkt(3)).unwrap();
        g.wait_until_idle().unwrap();
        g.close_input_stream("a").unwrap();
        g.wait_until_idle().unwrap();
        g.finish().unwrap();
        take_log("imm")
    });
    // Closing `a` earns one call of its own at b's bound (MediaPipe's legacy Immediate rule).
    assert_eq!(
        log,
        vec!["@5 _Unstarted 5", "@3 3 _5", "@6 _Max _5", "close"]
    );
}

#[test]
fn process_timestamp_bounds_calls_on_bound_advances() {
    let log = with_timeout(20, || {
        let mut g = graph(
            "input_stream: [a]\nnode:\n  - {calculator: TRecorder, input_stream: [a], options: {key: bnd, bounds: true}}\n",
        );
        g.start_run(HashMap::new()).unwrap();
        g.set_input_stream_timestamp_bound("a", Timestamp::new(7))
            .unwrap();
        g.wait_until_idle().unwrap();
        g.add_packet("a", pkt(9)).unwrap();
        g.finish().unwrap();
        take_log("bnd")
    });
    assert_eq!(log, vec!["@6 _6", "@9 9", "close"]);
}

#[test]
fn process_error_names_node_calculator_phase_and_timestamp() {
    let err = with_timeout(20, || {
        let mut g = graph(
            r#"
node:
  - {calculator: TSource, output_stream: [a], options: {count: 100}}
  - {calculator: TFault, name: faulty, input_stream: [a], output_stream: [b], options: {at: 42, mode: error}}
"#,
        );
        g.run(HashMap::new()).unwrap_err()
    });
    match &err {
        Error::Node {
            node,
            calculator,
            phase,
            timestamp,
            ..
        } => {
            assert_eq!(node, "faulty");
            assert_eq!(calculator, "TFault");
            assert_eq!(*phase, Phase::Process);
            assert_eq!(*timestamp, Timestamp::new(42));
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "process of node \"faulty\" (TFault) failed at input timestamp 42: refusing packet 42"
    );
}

#[test]
fn outputs_of_calls_before_a_failing_call_are_delivered() {
    // The packets pile up before the node runs, so its task makes several calls in a row;
    // the outputs of the calls before the failing one still reach the observer.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let err = with_timeout(20, move || {
        let mut g = graph(
            r#"
input_stream: [in]
node:
  - {calculator: TFault, name: faulty, input_stream: [in], output_stream: [out], options: {at: 5, mode: error}}
"#,
        );
        g.observe_output_stream("out", move |p| {
            seen2.lock().unwrap().push(*p.get::<i64>()?);
            Ok(())
        })
        .unwrap();
        g.start_run(HashMap::new()).unwrap();
        for t in 0..10 {
            if g.add_packet("in", pkt(t)).is_err() {
                break;
            }
        }
        let _ = g.close_all_packet_sources();
        g.wait_until_done().unwrap_err()
    });
    assert!(err.to_string().contains("refusing packet 5"), "{err}");
    assert_eq!(*seen.lock().unwrap(), vec![0, 1, 2, 3, 4]);
}

#[test]
fn a_slow_calculator_delivers_each_output_before_its_next_call() {
    // A task batches calls only while they are quick (under 50 µs in all): a calculator that
    // takes 300 µs per call has each output delivered before its next call begins, even with
    // its whole input queued.
    let calls = with_timeout(20, || {
        let mut g = graph(
            r#"
input_stream: [in]
node:
  - {calculator: TProbe, input_stream: [in], output_stream: [out], options: {key: slow_probe, sleep_us: 300}}
"#,
        );
        g.observe_output_stream("out", |p| {
            let seen = recorder_log().lock().unwrap()["slow_probe-seen"].clone();
            seen.lock().unwrap().push(p.timestamp().to_string());
            Ok(())
        })
        .unwrap();
        g.start_run(HashMap::new()).unwrap();
        for t in 0..20 {
            g.add_packet("in", pkt(t)).unwrap();
        }
        g.finish().unwrap();
        take_log("slow_probe")
    });
    let expected: Vec<String> = (0..20).map(|k: i32| k.to_string()).collect();
    assert_eq!(calls, expected);
}

#[test]
fn a_panicking_calculator_fails_the_run_without_hanging() {
    let err = with_timeout(20, || {
        let mut g = graph(
            r#"
input_stream: [in]
output_stream: [b]
node:
  - {calculator: TFault, name: bomb, input_stream: [in], output_stream: [b], options: {at: 3, mode: panic}}
"#,
        );
        let poller = g.add_output_stream_poller("b").unwrap();
        g.start_run(HashMap::new()).unwrap();
        for t in 0..10 {
            if g.add_packet("in", pkt(t)).is_err() {
                break;
            }
        }
        let err = g.finish().unwrap_err();
        let got = ints(&poller);
        assert_eq!(
            got,
            vec![(0, 0), (1, 1), (2, 2)],
            "packets before the fault are delivered"
        );
        err
    });
    let text = err.to_string();
    assert!(text.contains("node \"bomb\""), "{text}");
    assert!(text.contains("panicked: boom at 3"), "{text}");
    assert!(text.contains("timestamp 3"), "{text}");
}

#[test]
fn open_and_close_errors_are_reported() {
    for (mode, phase) in [
        ("open_error", Phase::Open),
        ("create_error", Phase::Open),
        ("close_error", Phase::Close),
    ] {
        let err = with_timeout(20, move || {
            let mut g = graph(&format!(
                "node:\n  - {{calculator: TSource, output_stream: [a], options: {{count: 3}}}}\n  - {{calculator: TFault, input_stream: [a], options: {{at: -1, mode: {mode}}}}}\n"
            ));
            g.run(HashMap::new()).unwrap_err()
        });
        assert!(
            matches!(&err, Error::Node { phase: p, .. } if *p == phase),
            "{mode}: {err}"
        );
    }
}

#[test]
fn timestamps_must_increase_on_outputs_and_inputs() {
    let err = with_timeout(20, || {
        let mut g = graph(
            "node:\n  - {calculator: TSource, output_stream: [a], options: {count: 20, start: 10}}\n  - {calculator: TFault, name: back, input_stream: [a], output_stream: [b], options: {at: 15, mode: backwards}}\n",
        );
        g.run(HashMap::new()).unwrap_err()
    });
    let text = err.to_string();
    assert!(text.contains("stream \"b\""), "{text}");
    assert!(
        text.contains("minimum expected timestamp is 15 but received 10"),
        "{text}"
    );

    let mut g = graph("input_stream: [in]\nnode:\n  - {calculator: TPass, input_stream: [in], output_stream: [o]}\n");
    g.start_run(HashMap::new()).unwrap();
    g.add_packet("in", pkt(5)).unwrap();
    let err = g.add_packet("in", pkt(5)).unwrap_err().to_string();
    assert!(err.contains("stream \"in\""), "{err}");
    assert!(
        err.contains("minimum expected timestamp is 6 but received 5"),
        "{err}"
    );
    let err = g
        .add_packet("in", Packet::new(1i64))
        .unwrap_err()
        .to_string();
    assert!(err.contains("illegal value"), "{err}");
    let err = g
        .add_packet("in", pkt(7).at(Timestamp::new(8)))
        .map(|_| ())
        .and_then(|_| g.add_packet("nope", pkt(9)));
    assert!(matches!(err, Err(Error::NotFound(_))));
    g.finish().unwrap();
}

#[test]
fn type_mismatch_on_a_graph_input_is_refused() {
    let mut g = graph("input_stream: [in]\nnode:\n  - {calculator: TEvens, input_stream: [in], output_stream: [o]}\n");
    g.start_run(HashMap::new()).unwrap();
    let err = g
        .add_packet("in", Packet::new("text".to_string()).at(Timestamp::new(1)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("String"), "{err}");
    assert!(err.contains("i64"), "{err}");
    g.finish().unwrap();
}

#[test]
fn side_packets_in_and_out() {
    let (got, side) = with_timeout(20, || {
        let mut g = graph(
            r#"
input_stream: [in]
output_stream: [out]
input_side_packet: [v]
node:
  - calculator: TSide
    input_stream: [in]
    output_stream: [out]
    input_side_packet: ["VALUE:v"]
    output_side_packet: ["OUT_SIDE:tenfold"]
"#,
        );
        let poller = g.add_output_stream_poller("out").unwrap();
        let err = g.start_run(HashMap::new()).unwrap_err().to_string();
        assert!(
            err.contains("side packet \"v\" is required but was not provided"),
            "{err}"
        );
        g.start_run(HashMap::from([("v".to_string(), Packet::new(100i64))]))
            .unwrap();
        g.add_packet("in", pkt(1)).unwrap();
        g.finish().unwrap();
        let side = *g
            .output_side_packet("tenfold")
            .unwrap()
            .get::<i64>()
            .unwrap();
        (ints(&poller), side)
    });
    assert_eq!(got, vec![(1, 101)]);
    assert_eq!(side, 1000);
}

#[test]
fn a_stop_from_a_non_source_closes_the_sources() {
    let got = with_timeout(20, || {
        let mut g = graph(
            r#"
output_stream: [b]
node:
  - {calculator: TSource, output_stream: [a], options: {count: 0, endless: true}}
  - {calculator: TFault, input_stream: [a], output_stream: [b], options: {at: 50, mode: stop}}
"#,
        );
        let poller = g.add_output_stream_poller("b").unwrap();
        g.run(HashMap::new()).unwrap();
        ints(&poller)
    });
    // Packets already in flight keep going after the stop; only the stop timestamp is absent.
    assert!(got.len() >= 50, "{}", got.len());
    assert!(got.iter().all(|&(t, _)| t != 50));
    assert!(got[..50]
        .iter()
        .enumerate()
        .all(|(i, &(t, _))| t == i as i64));
}

#[test]
fn cancel_ends_an_endless_run() {
    let err = with_timeout(20, || {
        let mut g = graph(
            "node:\n  - {calculator: TSource, output_stream: [a], options: {count: 0, endless: true}}\n  - {calculator: TPass, input_stream: [a], output_stream: [b]}\n",
        );
        g.start_run(HashMap::new()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        g.cancel();
        g.wait_until_done().unwrap_err()
    });
    assert!(err.is_cancelled(), "{err}");
}

#[test]
fn dropping_a_running_graph_stops_its_threads() {
    with_timeout(20, || {
        let mut g = graph(
            "node:\n  - {calculator: TSource, output_stream: [a], options: {count: 0, endless: true}}\n  - {calculator: TPass, input_stream: [a], output_stream: [b]}\n",
        );
        g.start_run(HashMap::new()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        drop(g);
    });
}

#[test]
fn observers_see_packets_in_order_and_their_errors_fail_the_run() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let err = with_timeout(20, move || {
        let mut g =
            graph("node:\n  - {calculator: TSource, output_stream: [a], options: {count: 10}}\n");
        g.observe_output_stream("a", move |p| {
            let v = *p.get::<i64>()?;
            seen2.lock().unwrap().push(v);
            if v == 5 {
                mediagraph_framework::bail!("observer saw 5");
            }
            Ok(())
        })
        .unwrap();
        g.run(HashMap::new()).unwrap_err()
    });
    assert!(err.to_string().contains("observer saw 5"), "{err}");
    assert_eq!(&seen.lock().unwrap()[..6], &[0, 1, 2, 3, 4, 5]);
}

#[test]
fn throttled_inputs_wait_or_refuse() {
    with_timeout(20, || {
        // The adder waits for B, so A's queue fills up.
        let mut g = graph(
            "input_stream: [a, b]\nmax_queue_size: 2\nnode:\n  - {calculator: TAdd, input_stream: [\"A:a\", \"B:b\"], output_stream: [\"SUM:s\"]}\n",
        );
        let poller = g.add_output_stream_poller("s").unwrap();
        g.set_add_mode(AddMode::AddIfNotFull);
        g.start_run(HashMap::new()).unwrap();
        g.add_packet("a", pkt(1)).unwrap();
        g.add_packet("a", pkt(2)).unwrap();
        let err = g.add_packet("a", pkt(3)).unwrap_err();
        assert!(matches!(err, Error::Throttled(ref s) if s == "a"), "{err}");
        g.add_packet("b", pkt(1)).unwrap();
        g.add_packet("b", pkt(2)).unwrap();
        g.wait_until_idle().unwrap();
        g.add_packet("a", pkt(3)).unwrap();
        g.add_packet("b", pkt(3)).unwrap();
        g.finish().unwrap();
        assert_eq!(ints(&poller), vec![(1, 2), (2, 4), (3, 6)]);
    });
}

#[test]
fn throttling_deadlock_grows_the_queue_and_counts_it() {
    with_timeout(20, || {
        // A source fills `a` while the adder waits for `b`, fed only at the end.
        let mut g = graph(
            "input_stream: [b]\nmax_queue_size: 3\noutput_stream: [s]\nnode:\n  - {calculator: TSource, output_stream: [a], options: {count: 10}}\n  - {calculator: TAdd, input_stream: [\"A:a\", \"B:b\"], output_stream: [\"SUM:s\"]}\n",
        );
        let poller = g.add_output_stream_poller("s").unwrap();
        g.start_run(HashMap::new()).unwrap();
        g.wait_until_idle().unwrap();
        g.finish().unwrap();
        assert_eq!(ints(&poller).len(), 10);
        let stats = g.stats();
        let adder = stats.iter().find(|s| s.calculator == "TAdd").unwrap();
        assert!(adder.queue_growths >= 7, "{}", adder.queue_growths);
    });
}

#[test]
fn report_deadlock_fails_the_run_naming_the_stream() {
    let err = with_timeout(20, || {
        let mut g = graph(
            "input_stream: [b]\nmax_queue_size: 3\nreport_deadlock: true\nnode:\n  - {calculator: TSource, output_stream: [a], options: {count: 10}}\n  - {calculator: TAdd, name: adder, input_stream: [\"A:a\", \"B:b\"], output_stream: [\"SUM:s\"]}\n",
        );
        g.start_run(HashMap::new()).unwrap();
        let _ = g.wait_until_idle();
        g.finish().unwrap_err()
    });
    let text = err.to_string();
    assert!(text.contains("deadlock"), "{text}");
    assert!(text.contains("\"a\""), "{text}");
    assert!(text.contains("\"adder\""), "{text}");
}

#[test]
fn back_edge_loop_runs() {
    // sum = in + previous sum (via the back edge, re-stamped by the adder).
    let got = with_timeout(20, || {
        let mut g = graph(
            r#"
input_stream: [in]
output_stream: [sum]
node:
  - calculator: TRecorder
    input_stream: [in, sum]
    input_stream_info: [{tag_index: ":1", back_edge: true}]
    options: {key: loop, immediate: true}
  - {calculator: TPass, input_stream: [in], output_stream: [sum]}
"#,
        );
        let poller = g.add_output_stream_poller("sum").unwrap();
        g.start_run(HashMap::new()).unwrap();
        for t in 0..3 {
            g.add_packet("in", pkt(t)).unwrap();
        }
        g.finish().unwrap();
        ints(&poller)
    });
    assert_eq!(got.len(), 3);
    assert!(!take_log("loop").is_empty());
}

#[test]
fn a_node_inside_a_loop_flushes_in_close_at_the_end_of_the_run() {
    // x -> hold -> echo -> x (back edge): at the end x still waits on its back edge, and
    // hold sends what it held only in close. x is closed first (its only open input is a
    // back edge), so hold closes normally and its packets reach the graph output.
    let got = with_timeout(20, || {
        let mut g = graph(
            r#"
input_stream: [in]
output_stream: [out]
node:
  - calculator: TPass
    name: x
    input_stream: [in, echo]
    input_stream_info: [{tag_index: ":1", back_edge: true}]
    output_stream: [a, unused]
    input_stream_handler: {input_stream_handler: Immediate}
  - {calculator: THold, name: hold, input_stream: [a], output_stream: [out]}
  - {calculator: TPass, name: echo, input_stream: [out], output_stream: [echo]}
"#,
        );
        let poller = g.add_output_stream_poller("out").unwrap();
        g.start_run(HashMap::new()).unwrap();
        for t in 0..3 {
            g.add_packet("in", pkt(t)).unwrap();
        }
        g.finish().unwrap();
        ints(&poller)
    });
    assert_eq!(got.iter().map(|(t, _)| *t).collect::<Vec<_>>(), [0, 1, 2]);
}

#[test]
fn a_graph_can_run_twice() {
    let mut g =
        graph("node:\n  - {calculator: TSource, output_stream: [a], options: {count: 5}}\n");
    let poller = g.add_output_stream_poller("a").unwrap();
    for _ in 0..2 {
        g.run(HashMap::new()).unwrap();
        assert_eq!(ints(&poller).len(), 5);
    }
}

#[test]
fn fixed_size_handler_drops_and_counts() {
    with_timeout(20, || {
        let mut g = graph(
            r#"
input_stream: [in]
output_stream: [out]
node:
  - calculator: TFault
    input_stream: [in]
    output_stream: [out]
    input_stream_handler: {input_stream_handler: FixedSizeInputStreamHandler, options: {trigger_queue_size: 2, target_queue_size: 1}}
    options: {at: 0, mode: sleep}
"#,
        );
        let poller = g.add_output_stream_poller("out").unwrap();
        g.start_run(HashMap::new()).unwrap();
        for t in 0..20 {
            g.add_packet("in", pkt(t)).unwrap();
        }
        g.finish().unwrap();
        let got = ints(&poller);
        let dropped: u64 = g.stats().iter().map(|s| s.dropped).sum();
        assert_eq!(
            got.len() as u64 + dropped,
            20,
            "every packet is delivered or counted"
        );
        assert!(dropped > 0);
        assert_eq!(got.last().unwrap().0, 19, "the newest packet survives");
    });
}

#[test]
fn early_close_handler_closes_when_any_input_is_done_and_counts_the_rest() {
    let (got, dropped) = with_timeout(20, || {
        let mut g = sum_graph("{input_stream_handler: EarlyClose}");
        let poller = g.add_output_stream_poller("sum").unwrap();
        g.start_run(HashMap::new()).unwrap();
        for t in 0..7 {
            g.add_packet("a", pkt(t)).unwrap();
        }
        for t in 0..3 {
            g.add_packet("b", pkt(t)).unwrap();
        }
        // b ends: the node closes with a's packets 3..7 still queued.
        g.close_input_stream("b").unwrap();
        g.close_all_input_streams().unwrap();
        g.wait_until_done().unwrap();
        let dropped: u64 = g.stats().iter().map(|s| s.dropped).sum();
        (ints(&poller), dropped)
    });
    assert_eq!(got, vec![(0, 0), (1, 2), (2, 4)]);
    assert_eq!(dropped, 4, "a's packets 3..7, never processed, are counted");
}

#[test]
fn mux_handler_without_its_ports_is_refused_naming_the_node() {
    let mut g = graph(
        "input_stream: [a]\nnode:\n  - {calculator: TPass, name: notamux, input_stream: [a], output_stream: [b], input_stream_handler: {input_stream_handler: Mux}}\n",
    );
    let err = g.start_run(HashMap::new()).unwrap_err().to_string();
    assert!(
        err.contains("notamux")
            && err.contains("MuxInputStreamHandler needs a control input SELECT"),
        "{err}"
    );
}

#[test]
fn default_handler_batch_size_waits_for_a_full_batch_and_flushes_the_rest_at_the_end() {
    with_timeout(20, || {
        let mut g = graph(
            r#"
input_stream: [in]
node:
  - calculator: TPass
    input_stream: [in]
    output_stream: [out]
    input_stream_handler: {input_stream_handler: Default, options: {batch_size: 3}}
"#,
        );
        let out = g.add_output_stream_poller("out").unwrap();
        g.start_run(HashMap::new()).unwrap();
        let mut outputs_after = Vec::new();
        for t in 0..7 {
            g.add_packet("in", pkt(t)).unwrap();
            g.wait_until_idle().unwrap();
            outputs_after.push(out.queue_len());
        }
        // Calls come three at a time: after the 3rd and the 6th packet.
        assert_eq!(outputs_after, [0, 0, 3, 3, 3, 6, 6]);
        g.close_all_input_streams().unwrap();
        g.wait_until_done().unwrap();
        // The last, shorter batch runs when no more input can come.
        assert_eq!(ints(&out), (0..7).map(|t| (t, t)).collect::<Vec<_>>());
    });
}

#[test]
fn a_batch_larger_than_the_queue_limit_still_fills() {
    // The node's queues hold at least a batch, so its source is not throttled before the
    // batch is complete (that would be a throttling deadlock).
    let (result, got) = with_timeout(20, || {
        let mut g = graph(
            r#"
max_queue_size: 2
report_deadlock: true
node:
  - {calculator: TSource, output_stream: [a], options: {count: 20}}
  - calculator: TPass
    input_stream: [a]
    output_stream: [b]
    input_stream_handler: {input_stream_handler: Default, options: {batch_size: 5}}
"#,
        );
        let out = g.add_output_stream_poller("b").unwrap();
        let result = g.run(HashMap::new()).map_err(|e| e.to_string());
        (result, ints(&out).len())
    });
    assert_eq!(result, Ok(()));
    assert_eq!(got, 20);
}

#[test]
fn a_batch_counts_only_timestamps_every_input_has_settled() {
    with_timeout(20, || {
        let mut g = sum_graph("{input_stream_handler: Default, options: {batch_size: 2}}");
        let out = g.add_output_stream_poller("sum").unwrap();
        g.start_run(HashMap::new()).unwrap();
        g.add_packet("a", pkt(0)).unwrap();
        g.add_packet("a", pkt(1)).unwrap();
        g.add_packet("b", pkt(0)).unwrap();
        g.wait_until_idle().unwrap();
        // Timestamp 1 is not settled on b yet: one ready timestamp, no batch.
        assert_eq!(out.queue_len(), 0);
        g.add_packet("b", pkt(1)).unwrap();
        g.wait_until_idle().unwrap();
        assert_eq!(out.queue_len(), 2);
        g.close_all_input_streams().unwrap();
        g.wait_until_done().unwrap();
        assert_eq!(ints(&out), [(0, 0), (1, 2)]);
    });
}

#[test]
fn timestamp_align_shifts_each_input_onto_the_base_clock() {
    let got = with_timeout(20, || {
        let mut g = sum_graph(
            "{input_stream_handler: TimestampAlign, options: {timestamp_base_tag_index: \"A\"}}",
        );
        let out = g.add_output_stream_poller("sum").unwrap();
        g.start_run(HashMap::new()).unwrap();
        // b runs on a clock 995 µs behind a's.
        for (t, v) in [(5, 10), (15, 20), (25, 30)] {
            g.add_packet("b", Packet::new(v as i64).at(Timestamp::new(t)))
                .unwrap();
        }
        for (t, v) in [(1000, 1), (1010, 2), (1020, 3)] {
            g.add_packet("a", Packet::new(v as i64).at(Timestamp::new(t)))
                .unwrap();
        }
        g.close_all_input_streams().unwrap();
        g.wait_until_done().unwrap();
        ints(&out)
    });
    assert_eq!(got, [(1000, 11), (1010, 22), (1020, 33)]);
}

#[test]
fn timestamp_align_passes_the_base_alone_until_every_input_has_started() {
    let (got, dropped) = with_timeout(20, || {
        let mut g = sum_graph("TimestampAlignInputStreamHandler");
        let out = g.add_output_stream_poller("sum").unwrap();
        g.start_run(HashMap::new()).unwrap();
        g.add_packet("a", Packet::new(1i64).at(Timestamp::new(1000)))
            .unwrap();
        g.wait_until_idle().unwrap();
        // b starts late, on a clock 995 µs behind: its first packet lands on base time 1000,
        // which was already processed (dropped, counted); the next ones line up with a's.
        for (t, v) in [(5, 10), (15, 20), (25, 30)] {
            g.add_packet("b", Packet::new(v as i64).at(Timestamp::new(t)))
                .unwrap();
        }
        for (t, v) in [(1010, 2), (1020, 3)] {
            g.add_packet("a", Packet::new(v as i64).at(Timestamp::new(t)))
                .unwrap();
        }
        g.close_all_input_streams().unwrap();
        g.wait_until_done().unwrap();
        let dropped: u64 = g.stats().iter().map(|s| s.dropped).sum();
        (ints(&out), dropped)
    });
    assert_eq!(got, [(1000, 1), (1010, 22), (1020, 33)]);
    assert_eq!(
        dropped, 1,
        "b's first packet, at an already processed base time"
    );
}

#[test]
fn timestamp_align_with_an_unknown_base_is_refused_naming_it() {
    let mut g = sum_graph(
        "{input_stream_handler: TimestampAlign, options: {timestamp_base_tag_index: \"C\"}}",
    );
    let err = g.start_run(HashMap::new()).unwrap_err().to_string();
    assert!(
        err.contains("timestamp_base_tag_index names input \"C\", which the node does not have"),
        "{err}"
    );
}

#[test]
fn barrier_handler_pairs_packets_whatever_their_timestamps() {
    let got = with_timeout(20, || {
        let mut g = sum_graph("BarrierInputStreamHandler");
        let out = g.add_output_stream_poller("sum").unwrap();
        g.start_run(HashMap::new()).unwrap();
        for (t, v) in [(1, 1), (2, 2), (3, 3)] {
            g.add_packet("a", Packet::new(v as i64).at(Timestamp::new(t)))
                .unwrap();
        }
        for (t, v) in [(10, 10), (20, 20)] {
            g.add_packet("b", Packet::new(v as i64).at(Timestamp::new(t)))
                .unwrap();
        }
        // b ends: the node closes; a's third packet has no partner.
        g.close_input_stream("b").unwrap();
        g.close_all_input_streams().unwrap();
        g.wait_until_done().unwrap();
        ints(&out)
    });
    // One packet of each input per call, at the smaller timestamp.
    assert_eq!(got, [(1, 11), (2, 22)]);
}

#[test]
fn statistics_count_calls_packets_and_times() {
    let stats = with_timeout(20, || {
        let mut g = graph(
            r#"
node:
  - {calculator: TSource, name: src, output_stream: [a], options: {count: 100}}
  - {calculator: TPass, name: pass, input_stream: [a], output_stream: [b]}
  - {calculator: TEvens, name: evens, input_stream: [b], output_stream: [c]}
"#,
        );
        g.run(HashMap::new()).unwrap();
        g.stats()
    });
    let by = |name: &str| stats.iter().find(|s| s.name == name).unwrap().clone();
    let (src, pass, evens) = (by("src"), by("pass"), by("evens"));
    assert_eq!(
        src.invocations, 101,
        "100 packets, then the call that returns Stop"
    );
    assert_eq!(src.packets_out, 100);
    assert_eq!(
        (pass.invocations, pass.packets_in, pass.packets_out),
        (100, 100, 100)
    );
    assert_eq!((evens.packets_in, evens.packets_out), (100, 50));
    assert!(pass.process_p50 <= pass.process_p99);
    assert!(pass.process_time >= pass.process_p50);
    assert_eq!(pass.queue_high_water.len(), 1);
    assert_eq!(pass.queue_high_water[0].0, "a");
    assert!(pass.queue_high_water[0].1 >= 1);
    assert_eq!(pass.dropped, 0);
}

#[test]
fn calculators_can_use_an_injected_simulated_clock() {
    use mediagraph_framework::clock::SimulatedClock;
    use std::time::Duration;
    let clock = SimulatedClock::new();
    let mut g = graph(
        "input_stream: [in]\noutput_stream: [o]\nnode:\n  - {calculator: TClock, input_stream: [in], output_stream: [o]}\n",
    );
    g.set_clock(clock.clone()).unwrap();
    let poller = g.add_output_stream_poller("o").unwrap();
    g.start_run(HashMap::new()).unwrap();
    let err = g.set_clock(clock.clone()).unwrap_err();
    assert!(err.to_string().contains("before start_run"), "{err}");
    for t in 0..3 {
        clock.advance(Duration::from_millis(250));
        g.add_packet("in", pkt(t)).unwrap();
        g.wait_until_idle().unwrap();
    }
    g.finish().unwrap();
    assert_eq!(
        ints(&poller),
        vec![(0, 250_000), (1, 500_000), (2, 750_000)]
    );
}

#[test]
fn trace_has_a_span_per_call_queue_counters_and_flows() {
    let dir = std::env::temp_dir().join(format!("mg-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("trace.json");
    let stats = with_timeout(20, {
        let path = path.clone();
        move || {
            let mut g = graph(
                "node:\n  - {calculator: TSource, name: src, output_stream: [a], options: {count: 30}}\n  - {calculator: TPass, name: pass, input_stream: [a], output_stream: [b]}\n",
            );
            g.enable_trace(&path).unwrap();
            g.run(HashMap::new()).unwrap();
            g.stats()
        }
    });
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let events = doc["traceEvents"].as_array().unwrap();
    let spans = |node: &str, phase: &str| {
        events
            .iter()
            .filter(|e| e["ph"] == "X" && e["name"] == phase && e["args"]["node"] == node)
            .count() as u64
    };
    let pass = stats.iter().find(|s| s.name == "pass").unwrap();
    assert_eq!(spans("pass", "process"), pass.invocations);
    assert_eq!(spans("pass", "open"), 1);
    assert_eq!(spans("pass", "close"), 1);
    assert_eq!(spans("src", "process"), 31);
    let first = events
        .iter()
        .find(|e| e["ph"] == "X" && e["name"] == "process" && e["args"]["node"] == "pass")
        .unwrap();
    assert_eq!(first["args"]["input_timestamp"], "0");
    let count = |ph: &str| events.iter().filter(|e| e["ph"] == ph).count();
    assert_eq!(
        count("s"),
        30,
        "30 packets leave src for pass; pass's output has no consumer, so no arrows start"
    );
    assert_eq!(count("f"), 30, "30 packets enter pass: every arrow ends");
    assert!(count("C") >= 30, "queue depth counters");
    assert!(events
        .iter()
        .any(|e| e["ph"] == "M" && e["args"]["name"] == "pass (TPass)"));
    let src = stats.iter().find(|s| s.name == "src").unwrap();
    assert_eq!(src.progress, Some((30, Some(30))));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn observers_can_see_timestamps_that_produced_nothing() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    with_timeout(20, move || {
        let mut g = graph(
            "input_stream: [in]\nnode:\n  - {calculator: TEvens, input_stream: [in], output_stream: [evens]}\n",
        );
        g.observe_output_stream_with_bounds("evens", move |p| {
            let v = p.get::<i64>().ok().copied();
            seen2.lock().unwrap().push((p.timestamp().value(), v));
            Ok(())
        })
        .unwrap();
        for _run in 0..2 {
            g.start_run(HashMap::new()).unwrap();
            for t in 1..=4 {
                g.add_packet("in", pkt(t)).unwrap();
                g.wait_until_idle().unwrap();
            }
            g.finish().unwrap();
        }
    });
    let once = [(1, None), (2, Some(2)), (3, None), (4, Some(4))];
    let twice: Vec<_> = once.iter().chain(once.iter()).cloned().collect();
    assert_eq!(*seen.lock().unwrap(), twice);
}

#[test]
fn stream_headers_reach_consumers_before_open_and_pass_on() {
    let got = with_timeout(20, || {
        let mut g = graph(
            "input_stream: [in]\noutput_stream: [c]\nnode:\n  - {calculator: THeader, input_stream: [in], output_stream: [b]}\n  - {calculator: THeader, input_stream: [b], output_stream: [c]}\n",
        );
        g.set_input_stream_header("in", Packet::new(77i64)).unwrap();
        let poller = g.add_output_stream_poller("c").unwrap();
        g.start_run(HashMap::new()).unwrap();
        g.add_packet("in", pkt(1)).unwrap();
        g.finish().unwrap();
        ints(&poller)
    });
    assert_eq!(
        got,
        vec![(1, 77)],
        "the second node saw the header the first one set"
    );
}

#[test]
fn a_busy_linear_graph_is_never_reported_as_deadlocked() {
    with_timeout(60, || {
        let mut g = graph(
            "input_stream: [in]\noutput_stream: [out]\nmax_queue_size: 2\nreport_deadlock: true\nnode:\n  - {calculator: TPass, input_stream: [in], output_stream: [out]}\n",
        );
        let count = Arc::new(Mutex::new(0usize));
        let c2 = count.clone();
        g.observe_output_stream("out", move |_| {
            *c2.lock().unwrap() += 1;
            Ok(())
        })
        .unwrap();
        g.start_run(HashMap::new()).unwrap();
        for t in 0..20_000 {
            g.add_packet("in", pkt(t)).unwrap();
        }
        g.finish().unwrap();
        assert_eq!(*count.lock().unwrap(), 20_000);
        assert_eq!(g.stats()[0].queue_growths, 0);
    });
}

#[test]
fn options_on_a_subgraph_node_reach_its_inner_nodes() {
    setup();
    mediagraph_framework::config::register_subgraph_yaml(
        "type: CountingPair\noutput_stream: [\"OUT:out\"]\nnode:\n  - {calculator: TSource, name: src, output_stream: [a], options: {count: 10, start: 100}}\n  - {calculator: TPass, input_stream: [a], output_stream: [out]}\n",
        None,
    )
    .unwrap();
    let got = with_timeout(20, || {
        let mut g = graph(
            "output_stream: [x]\nnode:\n  - {calculator: CountingPair, output_stream: [\"OUT:x\"], options: {src: {count: 3}}}\n",
        );
        let poller = g.add_output_stream_poller("x").unwrap();
        g.run(HashMap::new()).unwrap();
        ints(&poller)
    });
    assert_eq!(
        got,
        vec![(100, 100), (101, 101), (102, 102)],
        "count overridden, start kept"
    );
    let err = mediagraph_framework::Graph::from_yaml_str(
        "node:\n  - {calculator: CountingPair, output_stream: [\"OUT:x\"], options: {nope: {count: 3}}}\n",
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("has no node \"nope\" to pass options to (its nodes: src, TPass)"),
        "{err}"
    );
}

#[test]
fn a_source_that_opens_late_still_runs() {
    // The source needs a side packet that another node only sets while processing, so it
    // opens after the graph's first idle point (when source layers are activated).
    let got = with_timeout(20, || {
        let mut g = graph(
            "input_stream: [in]\noutput_stream: [out]\nnode:\n  - {calculator: TSideLater, input_stream: [in], output_side_packet: [\"COUNT:count\"]}\n  - {calculator: TCountSource, input_side_packet: [\"COUNT:count\"], output_stream: [out]}\n",
        );
        let poller = g.add_output_stream_poller("out").unwrap();
        g.start_run(HashMap::new()).unwrap();
        g.wait_until_idle().unwrap();
        g.add_packet("in", pkt(3)).unwrap();
        g.finish().unwrap();
        ints(&poller)
    });
    assert_eq!(got, vec![(0, 0), (1, 1), (2, 2)]);
}

#[test]
fn a_bounds_poller_does_not_wait_for_the_next_packet_when_a_frame_produced_nothing() {
    with_timeout(20, || {
        let mut g = graph(
            "input_stream: [in]\nnode:\n  - {calculator: TEvens, input_stream: [in], output_stream: [evens]}\n",
        );
        let poller = g.add_output_stream_poller_with_bounds("evens").unwrap();
        g.start_run(HashMap::new()).unwrap();
        g.add_packet("in", pkt(2)).unwrap();
        g.add_packet("in", pkt(3)).unwrap();
        let first = poller.next().unwrap();
        assert_eq!((first.timestamp().value(), first.is_empty()), (2, false));
        // 3 is odd: no packet, but the poller learns at once that 3 is settled.
        let second = poller
            .next_timeout(std::time::Duration::from_secs(5))
            .expect("no wait for a later packet")
            .unwrap();
        assert_eq!((second.timestamp().value(), second.is_empty()), (3, true));
        g.finish().unwrap();
        assert!(poller.next().is_none());
    });
}

#[test]
fn a_full_poller_throttles_its_sources() {
    with_timeout(30, || {
        let mut g =
            graph("node:\n  - {calculator: TSource, output_stream: [a], options: {count: 300}}\n");
        let poller = g.add_output_stream_poller("a").unwrap();
        poller.set_max_queue_size(5);
        g.start_run(HashMap::new()).unwrap();
        let mut got = Vec::new();
        let mut longest = 0;
        loop {
            std::thread::sleep(std::time::Duration::from_micros(200));
            longest = longest.max(poller.queue_len());
            match poller.next() {
                Some(p) => got.push(p.timestamp().value()),
                None => break,
            }
        }
        g.wait_until_done().unwrap();
        assert_eq!(got, (0..300).collect::<Vec<i64>>());
        assert!(
            longest <= 6,
            "the source ran ahead of the poller: {longest} queued"
        );
    });
}

#[test]
fn a_poller_ends_when_a_failed_run_ends_before_anyone_waits_for_it() {
    let (got, err) = with_timeout(20, || {
        let mut g = graph(
            "input_stream: [in]\noutput_stream: [out]\nnode:\n  - {calculator: TFault, name: faulty, input_stream: [in], output_stream: [out], options: {at: 3, mode: error}}\n",
        );
        let poller = g.add_output_stream_poller("out").unwrap();
        g.start_run(HashMap::new()).unwrap();
        for t in 0..10 {
            if g.add_packet("in", pkt(t)).is_err() {
                break;
            }
        }
        // The input stays open: the run ends only by its error, and the poller with it.
        let got = ints(&poller);
        (got, g.finish().unwrap_err().to_string())
    });
    assert_eq!(got, vec![(0, 0), (1, 1), (2, 2)]);
    assert!(err.contains("node \"faulty\""), "{err}");
}
