//! TimestampAlignInputStreamHandler edge cases (found by review): inputs that start late,
//! never start, or land outside the timestamp range once shifted. Every run ends, nothing
//! is processed twice, and every packet is delivered or counted as dropped.

mod common;

use std::collections::HashMap;

use common::*;
use mediagraph_framework::{Packet, Timestamp};

const ALIGN: &str = "TimestampAlignInputStreamHandler";

fn p(t: i64, v: i64) -> Packet {
    Packet::new(v).at(Timestamp::new(t))
}

fn dropped(g: &mediagraph_framework::Graph) -> u64 {
    g.stats().iter().map(|s| s.dropped).sum()
}

#[test]
fn the_bound_does_not_run_ahead_of_an_input_that_has_not_started() {
    let (res, got) = with_timeout(20, || {
        let mut g = sum_graph(ALIGN);
        let out = g.add_output_stream_poller("sum").unwrap();
        g.start_run(HashMap::new()).unwrap();
        g.add_packet("a", p(1, 1)).unwrap();
        g.wait_until_idle().unwrap();
        g.set_input_stream_timestamp_bound("a", Timestamp::new(1000))
            .unwrap();
        g.wait_until_idle().unwrap();
        // b starts now: offset +1, so b@0 lands on 1 (processed: dropped), b@10 on 11.
        g.add_packet("b", p(0, 10)).unwrap();
        g.add_packet("b", p(10, 20)).unwrap();
        g.close_all_input_streams().unwrap();
        let res = g.wait_until_done().map_err(|e| e.to_string());
        (res, ints(&out))
    });
    assert_eq!(res, Ok(()));
    assert_eq!(got, [(1, 1), (11, 20)]);
}

#[test]
fn an_input_that_ends_without_a_packet_does_not_keep_the_node_open() {
    let (res, held) = with_timeout(20, || {
        let mut g = graph(
            r#"
input_stream: [a, b, c]
node:
  - calculator: TPass
    input_stream: [a, b, c]
    output_stream: [x, y, z]
    input_stream_handler: TimestampAlignInputStreamHandler
  - {calculator: THold, input_stream: [x], output_stream: [held]}
"#,
        );
        let out = g.add_output_stream_poller("held").unwrap();
        g.start_run(HashMap::new()).unwrap();
        g.add_packet("a", p(1, 1)).unwrap();
        g.add_packet("a", p(2, 2)).unwrap();
        g.add_packet("b", p(5, 5)).unwrap();
        // c never sends anything.
        g.close_all_input_streams().unwrap();
        let res = g.wait_until_done().map_err(|e| e.to_string());
        (res, ints(&out))
    });
    assert_eq!(res, Ok(()));
    // THold sends in close: the node closed normally, its outputs delivered.
    assert_eq!(held, [(1, 1), (2, 2)]);
}

#[test]
fn without_a_base_packet_the_others_are_dropped_and_counted() {
    let (res, held, lost) = with_timeout(20, || {
        let mut g = graph(
            r#"
input_stream: [a, b]
node:
  - calculator: TPass
    input_stream: [a, b]
    output_stream: [x, y]
    input_stream_handler: TimestampAlignInputStreamHandler
  - {calculator: THold, input_stream: [y], output_stream: [held]}
"#,
        );
        let out = g.add_output_stream_poller("held").unwrap();
        g.start_run(HashMap::new()).unwrap();
        g.add_packet("b", p(5, 5)).unwrap();
        g.close_all_input_streams().unwrap();
        let res = g.wait_until_done().map_err(|e| e.to_string());
        let lost = dropped(&g);
        (res, ints(&out), lost)
    });
    assert_eq!(res, Ok(()));
    assert!(held.is_empty());
    assert_eq!(lost, 1);
}

#[test]
fn clocks_further_apart_than_an_i64_do_not_panic() {
    let res = with_timeout(20, || {
        let mut g = sum_graph(ALIGN);
        g.start_run(HashMap::new()).unwrap();
        g.add_packet("a", p(5_000_000_000_000_000_000, 1)).unwrap();
        g.add_packet("b", p(-5_000_000_000_000_000_000, 10))
            .unwrap();
        g.close_all_input_streams().unwrap();
        g.wait_until_done().map_err(|e| e.to_string())
    });
    assert_eq!(res, Ok(()));
}

#[test]
fn a_packet_shifted_past_the_range_is_dropped_not_processed_forever() {
    let (res, got, lost) = with_timeout(20, || {
        let mut g = sum_graph(ALIGN);
        let out = g.add_output_stream_poller("sum").unwrap();
        g.start_run(HashMap::new()).unwrap();
        g.add_packet("b", p(-10, 10)).unwrap();
        g.add_packet("a", p(0, 1)).unwrap(); // b's offset: +10
        g.add_packet("b", p(Timestamp::MAX.value() - 5, 20))
            .unwrap(); // past MAX once shifted
        g.close_all_input_streams().unwrap();
        let res = g.wait_until_done().map_err(|e| e.to_string());
        let lost = dropped(&g);
        (res, ints(&out), lost)
    });
    assert_eq!(res, Ok(()));
    assert_eq!(got, [(0, 11)]);
    assert_eq!(lost, 1);
}

#[test]
fn sources_are_not_throttled_by_packets_waiting_for_an_input_that_never_starts() {
    let res = with_timeout(20, || {
        let mut g = graph(
            r#"
input_stream: [c]
max_queue_size: 2
report_deadlock: true
node:
  - {calculator: TSource, output_stream: [a], options: {count: 20}}
  - {calculator: TSource, output_stream: [b], options: {count: 20}}
  - calculator: TPass
    input_stream: [a, b, c]
    output_stream: [x, y, z]
    input_stream_handler: TimestampAlignInputStreamHandler
"#,
        );
        g.start_run(HashMap::new()).unwrap();
        g.close_all_input_streams().unwrap();
        g.wait_until_done().map_err(|e| e.to_string())
    });
    assert_eq!(res, Ok(()));
}
