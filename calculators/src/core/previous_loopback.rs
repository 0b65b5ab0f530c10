//! `PreviousLoopbackCalculator`: feeds a node its own output of the previous timestamp.

use std::collections::VecDeque;

use mediagraph_framework::contract::{HandlerConfig, TypeDecl};
use mediagraph_framework::prelude::*;
use mediagraph_framework::PortKind;

/// At each `MAIN` timestamp, emits the `LOOP` packet that was produced at the previous
/// non-empty `MAIN` timestamp, re-stamped to the current one. Used to close a loop in a graph
/// (a tracker that needs its previous result, a running sum, ...).
///
/// * Input streams: `MAIN` (any type; only its timestamps matter) and `LOOP` (any type; the
///   loop's closing edge, to be marked `back_edge: true` in `input_stream_info`).
/// * Output stream: `PREV_LOOP` (the type of `LOOP`).
/// * Options: none.
///
/// Rules:
/// * the first `MAIN` packet only advances the `PREV_LOOP` bound (there is no previous
///   output yet), so downstream nodes do not wait;
/// * each later non-empty `MAIN` packet at `T` yields the `LOOP` packet at the previous
///   non-empty `MAIN` timestamp `P`, stamped `T`; if `LOOP` has no packet at `P` (only a
///   bound), `PREV_LOOP` gets a bound past `T` instead;
/// * a `MAIN` bound advance (no packet) advances the `PREV_LOOP` bound;
/// * `PREV_LOOP` is closed once `MAIN` is done and every `MAIN` timestamp was answered.
///
/// Runs with the immediate input stream handler and is called on timestamp bound changes
/// too, as `LOOP` lags behind `MAIN` by design.
///
/// ```yaml
/// - calculator: PreviousLoopbackCalculator
///   input_stream: ["MAIN:frames", "LOOP:track"]
///   input_stream_info: [{tag_index: LOOP, back_edge: true}]
///   output_stream: ["PREV_LOOP:prev_track"]
/// ```
pub struct PreviousLoopbackCalculator {
    /// `MAIN` timestamps not answered yet, with the `LOOP` timestamp each one wants.
    main_specs: VecDeque<MainSpec>,
    prev_main_ts: Timestamp,
    prev_non_empty_main_ts: Timestamp,
    /// `LOOP` packets (or settled empty packets) not matched yet, in timestamp order.
    loop_packets: VecDeque<Packet>,
    prev_loop_ts: Timestamp,
    closed: bool,
}

struct MainSpec {
    timestamp: Timestamp,
    /// The `LOOP` timestamp whose packet answers this `MAIN` timestamp (`Unset` for a bound
    /// advance, which matches nothing).
    loop_timestamp: Timestamp,
}

const MAIN: Input<AnyPacket> = Input::any("MAIN");
const LOOP: Input<AnyPacket> = Input::any("LOOP");
const PREV_LOOP: Output<AnyPacket> = Output::any("PREV_LOOP");

/// The bound that promises nothing more at `ts`.
fn past(ts: Timestamp) -> Timestamp {
    if ts.is_range() && ts < Timestamp::MAX {
        ts + TimestampDiff::new(1)
    } else {
        ts.next_allowed_in_stream()
    }
}

impl Calculator for PreviousLoopbackCalculator {
    type Options = NoOptions;

    fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
        cc.declare(&[&MAIN, &LOOP, &PREV_LOOP])?;
        if let (Some(loop_id), Some(prev_id)) =
            (cc.inputs().id("LOOP", 0), cc.outputs().id("PREV_LOOP", 0))
        {
            cc.set_type(
                PortKind::Output,
                prev_id,
                TypeDecl::SameAs(PortKind::Input, loop_id),
            );
        }
        cc.set_input_stream_handler(HandlerConfig::named("ImmediateInputStreamHandler"));
        cc.set_process_timestamp_bounds(true);
        Ok(())
    }

    fn create(_: &NoOptions) -> Result<Self> {
        Ok(PreviousLoopbackCalculator {
            main_specs: VecDeque::new(),
            prev_main_ts: Timestamp::UNSTARTED,
            prev_non_empty_main_ts: Timestamp::UNSTARTED,
            loop_packets: VecDeque::new(),
            // Unset (not Unstarted) so that the very first, settled-empty LOOP packet at
            // Unstarted is kept: it answers the first MAIN packet with a bound.
            prev_loop_ts: Timestamp::UNSET,
            closed: false,
        })
    }

    fn open(&mut self, cx: &mut CalculatorContext) -> Result<()> {
        if let Some(loop_id) = cx.inputs().id("LOOP", 0) {
            let header = cx.input_header(loop_id);
            if !header.is_empty() {
                let header = header.clone();
                cx.output(&PREV_LOOP).set_header(header)?;
            }
        }
        Ok(())
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let main = cx.input(&MAIN).packet();
        if self.prev_main_ts < main.timestamp() {
            let loop_timestamp = if main.is_empty() {
                Timestamp::UNSET
            } else {
                let previous = self.prev_non_empty_main_ts;
                self.prev_non_empty_main_ts = main.timestamp();
                previous
            };
            self.main_specs.push_back(MainSpec {
                timestamp: main.timestamp(),
                loop_timestamp,
            });
            self.prev_main_ts = main.timestamp();
        }
        // An empty MAIN input at Max means MAIN is done: nothing can follow.
        let main_done = main.is_empty() && main.timestamp() >= Timestamp::MAX;

        let looped = cx.input(&LOOP).packet();
        if self.prev_loop_ts < looped.timestamp() {
            self.prev_loop_ts = looped.timestamp();
            self.loop_packets.push_back(looped.clone());
        }

        if self.closed {
            self.main_specs.clear();
            self.loop_packets.clear();
            return Ok(Flow::Continue);
        }
        let mut out = cx.output(&PREV_LOOP);
        while let (Some(spec), Some(candidate)) =
            (self.main_specs.front(), self.loop_packets.front())
        {
            if spec.loop_timestamp < candidate.timestamp() {
                // No LOOP packet can answer this MAIN timestamp any more.
                out.set_next_timestamp_bound(past(spec.timestamp))?;
                self.main_specs.pop_front();
            } else if spec.loop_timestamp > candidate.timestamp() {
                // No MAIN timestamp wants this LOOP packet.
                self.loop_packets.pop_front();
            } else {
                if candidate.is_empty() {
                    out.set_next_timestamp_bound(past(spec.timestamp))?;
                } else {
                    out.send_packet(candidate.at(spec.timestamp))?;
                }
                self.loop_packets.pop_front();
                self.main_specs.pop_front();
            }
        }
        if self.main_specs.is_empty() && main_done {
            out.close();
            self.closed = true;
        }
        Ok(Flow::Continue)
    }
}

mediagraph_framework::register_calculator!(
    PreviousLoopbackCalculator,
    "PreviousLoopbackCalculator"
);

#[cfg(test)]
mod tests {
    use crate::test_util::*;
    use mediagraph_framework::prelude::*;
    use mediagraph_framework::Graph;

    /// Test node: `SUM = VALUE + PREV` (PREV empty counts as 0); negative values produce no
    /// output at all (only a bound, through the timestamp offset).
    struct LoopTestAccumulator;
    const VALUE: Input<i64> = Input::new("VALUE");
    const PREV: Input<i64> = Input::new("PREV");
    const SUM: Output<i64> = Output::new("SUM");

    impl Calculator for LoopTestAccumulator {
        type Options = NoOptions;
        fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
            cc.declare(&[&VALUE, &PREV, &SUM])?;
            cc.set_timestamp_offset(0);
            Ok(())
        }
        fn create(_: &NoOptions) -> Result<Self> {
            Ok(LoopTestAccumulator)
        }
        fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
            let ts = cx.input_timestamp();
            let prev = cx.input(&PREV).get()?.copied().unwrap_or(0);
            if let Some(&v) = cx.input(&VALUE).get()? {
                if v >= 0 {
                    cx.output(&SUM).send(v + prev, ts)?;
                }
            }
            Ok(Flow::Continue)
        }
    }
    mediagraph_framework::register_calculator!(LoopTestAccumulator, "LoopTestAccumulator");

    const LOOP_GRAPH: &str = r#"
input_stream: [in]
output_stream: [sum]
node:
  - calculator: PreviousLoopbackCalculator
    input_stream: ["MAIN:in", "LOOP:sum"]
    input_stream_info: [{tag_index: LOOP, back_edge: true}]
    output_stream: ["PREV_LOOP:prev_sum"]
  - calculator: LoopTestAccumulator
    input_stream: ["VALUE:in", "PREV:prev_sum"]
    output_stream: ["SUM:sum"]
"#;

    #[test]
    fn running_sum_through_a_back_edge() {
        let mut g = graph(LOOP_GRAPH);
        let (sum, prev) = (record(&mut g, "sum"), record(&mut g, "prev_sum"));
        g.start_run(Default::default()).unwrap();
        for (t, v) in [(1, 1i64), (2, 2), (3, -1), (4, 4), (5, 5)] {
            g.add_packet("in", at(v, t)).unwrap();
        }
        g.finish().unwrap();
        // At 3 the accumulator emitted nothing, so the MAIN packet at 4 gets only a bound.
        assert_eq!(
            prev.values::<i64>(),
            vec![(ts(2), 1), (ts(3), 3), (ts(5), 4)]
        );
        assert_eq!(
            sum.values::<i64>(),
            vec![(ts(1), 1), (ts(2), 3), (ts(4), 4), (ts(5), 9)]
        );
    }

    #[test]
    fn loop_runs_packet_by_packet_with_waits() {
        // Feeding one packet at a time and waiting for the loop to settle gives the same
        // answer as feeding everything at once.
        let mut g = graph(LOOP_GRAPH);
        let sum = record(&mut g, "sum");
        g.start_run(Default::default()).unwrap();
        for t in 0..50i64 {
            g.add_packet("in", at(t, t * 10)).unwrap();
            g.wait_until_idle().unwrap();
        }
        g.finish().unwrap();
        let got = sum.values::<i64>();
        assert_eq!(got.len(), 50);
        for (i, (t, v)) in got.iter().enumerate() {
            let i = i as i64;
            assert_eq!((*t, *v), (ts(i * 10), i * (i + 1) / 2));
        }
    }

    fn direct_graph() -> Graph {
        graph(
            r#"
input_stream: [main, loop]
node:
  - calculator: PreviousLoopbackCalculator
    input_stream: ["MAIN:main", "LOOP:loop"]
    output_stream: ["PREV_LOOP:prev"]
"#,
        )
    }

    #[test]
    fn answers_with_the_loop_packet_of_the_previous_non_empty_main() {
        let mut g = direct_graph();
        let prev = record(&mut g, "prev");
        g.start_run(Default::default()).unwrap();
        g.add_packet("main", at("m1", 1)).unwrap();
        g.add_packet("loop", at(10i64, 1)).unwrap();
        g.add_packet("main", at("m2", 2)).unwrap();
        g.add_packet("loop", at(20i64, 2)).unwrap();
        // MAIN advances to 5 without packets: a bound, no LOOP packet wanted.
        g.set_input_stream_timestamp_bound("main", Timestamp::new(5))
            .unwrap();
        g.add_packet("loop", at(40i64, 4)).unwrap();
        // The previous non-empty MAIN is at 2: its LOOP packet (20) answers 6.
        g.add_packet("main", at("m6", 6)).unwrap();
        g.add_packet("loop", at(60i64, 6)).unwrap();
        g.add_packet("main", at("m7", 7)).unwrap();
        g.finish().unwrap();
        assert_eq!(
            prev.values::<i64>(),
            vec![(ts(2), 10), (ts(6), 20), (ts(7), 60)]
        );
    }

    #[test]
    fn missing_loop_packet_gives_only_a_bound() {
        let mut g = direct_graph();
        let prev = record(&mut g, "prev");
        g.start_run(Default::default()).unwrap();
        g.add_packet("main", at(1i64, 1)).unwrap();
        // LOOP skips 1 (bound only), then has a packet at 2.
        g.set_input_stream_timestamp_bound("loop", Timestamp::new(2))
            .unwrap();
        g.add_packet("main", at(2i64, 2)).unwrap();
        g.add_packet("loop", at(20i64, 2)).unwrap();
        g.add_packet("main", at(3i64, 3)).unwrap();
        g.finish().unwrap();
        assert_eq!(prev.values::<i64>(), vec![(ts(3), 20)]);
    }

    #[test]
    fn main_and_loop_are_required() {
        for inputs in [r#"["MAIN:main"]"#, r#"["LOOP:main"]"#] {
            let err = config_error(&format!(
                r#"
input_stream: [main]
node:
  - calculator: PreviousLoopbackCalculator
    input_stream: {inputs}
    output_stream: ["PREV_LOOP:prev"]
"#
            ));
            assert!(err.contains("required"), "{err}");
        }
    }
}
