//! `FlowLimiterCalculator`: lets a bounded number of frames into the expensive part of a graph
//! and drops (or queues) the rest, so a slow pipeline sees the newest frames instead of an
//! ever-growing backlog.

use std::collections::VecDeque;

use mediagraph_framework::contract::TypeDecl;
use mediagraph_framework::prelude::*;
use mediagraph_framework::{HandlerConfig, PortKind};
use serde::Deserialize;

/// Limits how many timestamps are in flight between this node and its `FINISHED` input.
///
/// * Input streams: untagged streams (the first is the main stream, the others auxiliary
///   streams that follow its decisions), and `FINISHED` (any type; usually a back edge from the
///   end of the limited pipeline: a packet *or* a bound past timestamp `T` means `T` is done).
/// * Output streams: one untagged output per untagged input (same type), and an optional
///   `ALLOW` (bool): `true` at each admitted main timestamp, `false` at each dropped one.
/// * Input side packet: optional `MAX_IN_FLIGHT` (i64) overriding the option.
/// * Options: `max_in_flight` (default 1), `max_in_queue` (main packets that may wait for a
///   free slot, default 0), `in_flight_timeout` (µs of packet time; an in-flight timestamp
///   older than the newest main timestamp by more than this is given up; 0 = never).
///
/// Uses the Immediate input stream handler with bound-only calls, as MediaPipe's does. Dropped
/// packets are counted in the node's statistics (`dropped`).
///
/// ```yaml
/// - calculator: FlowLimiterCalculator
///   input_stream: [frames, "FINISHED:detections"]
///   input_stream_info: [{tag_index: FINISHED, back_edge: true}]
///   output_stream: [throttled_frames, "ALLOW:allowed"]
///   options: {max_in_flight: 1, max_in_queue: 1}
/// ```
pub struct FlowLimiterCalculator {
    max_in_flight: usize,
    max_in_queue: usize,
    timeout: i64,
    in_flight: VecDeque<Timestamp>,
    /// Main packets waiting for a slot.
    queue: VecDeque<Packet>,
    /// Per auxiliary stream: packets waiting for the main decision at their timestamp.
    aux_queues: Vec<VecDeque<Packet>>,
    /// Admission decisions by timestamp, oldest first.
    decisions: VecDeque<(Timestamp, bool)>,
}

/// Options of [`FlowLimiterCalculator`] (MediaPipe's `FlowLimiterCalculatorOptions`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowLimiterOptions {
    /// Timestamps allowed in flight at once.
    pub max_in_flight: i64,
    /// Main packets that may wait for a free slot; older ones are dropped first.
    pub max_in_queue: i64,
    /// Give up on an in-flight timestamp this many µs older than the newest main timestamp
    /// (0 = never).
    pub in_flight_timeout: i64,
}

impl Default for FlowLimiterOptions {
    fn default() -> Self {
        FlowLimiterOptions {
            max_in_flight: 1,
            max_in_queue: 0,
            in_flight_timeout: 0,
        }
    }
}

const DATA_IN: Input<AnyPacket> = Input::any("").multiple();
const FINISHED: Input<AnyPacket> = Input::any("FINISHED");
const DATA_OUT: Output<AnyPacket> = Output::any("").multiple();
const ALLOW: Output<bool> = Output::new("ALLOW").optional();
const MAX_IN_FLIGHT: SideInput<i64> = SideInput::new("MAX_IN_FLIGHT").optional();

impl Calculator for FlowLimiterCalculator {
    type Options = FlowLimiterOptions;

    fn contract(cc: &mut Contract, o: &FlowLimiterOptions) -> Result<()> {
        cc.declare(&[&DATA_IN, &FINISHED, &DATA_OUT, &ALLOW, &MAX_IN_FLIGHT])?;
        let ins = cc.inputs().count("");
        if ins == 0 || ins != cc.outputs().count("") {
            return Err(cc.error(format!(
                "FlowLimiterCalculator needs one untagged output per untagged input (got {ins} inputs, {} outputs)",
                cc.outputs().count("")
            )));
        }
        if o.max_in_flight < 1 || o.max_in_queue < 0 || o.in_flight_timeout < 0 {
            return Err(cc.error(
                "options: max_in_flight must be >= 1, max_in_queue and in_flight_timeout >= 0",
            ));
        }
        for (o_id, i_id) in cc.outputs().ids("").zip(cc.inputs().ids("")) {
            cc.set_type(
                PortKind::Output,
                o_id,
                TypeDecl::SameAs(PortKind::Input, i_id),
            );
        }
        cc.set_input_stream_handler(HandlerConfig::named("ImmediateInputStreamHandler"));
        cc.set_process_timestamp_bounds(true);
        Ok(())
    }

    fn create(o: &FlowLimiterOptions) -> Result<Self> {
        Ok(FlowLimiterCalculator {
            max_in_flight: o.max_in_flight as usize,
            max_in_queue: o.max_in_queue as usize,
            timeout: o.in_flight_timeout,
            in_flight: VecDeque::new(),
            queue: VecDeque::new(),
            aux_queues: Vec::new(),
            decisions: VecDeque::new(),
        })
    }

    fn open(&mut self, cx: &mut CalculatorContext) -> Result<()> {
        if let Some(&n) = cx.side_input_opt(&MAX_IN_FLIGHT)? {
            if n < 1 {
                bail!("side packet MAX_IN_FLIGHT must be >= 1, got {n}");
            }
            self.max_in_flight = n as usize;
        }
        self.aux_queues = vec![VecDeque::new(); cx.input_count(&DATA_IN).saturating_sub(1)];
        Ok(())
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let now = cx.input_timestamp();

        // 1. A FINISHED packet or bound retires every in-flight timestamp it settles.
        let finished = cx.input(&FINISHED).timestamp();
        while self.in_flight.front().is_some_and(|&f| f <= finished) {
            self.in_flight.pop_front();
        }

        // 2. Queue what arrived.
        let main = cx.input_index(&DATA_IN, 0).packet();
        if !main.is_empty() {
            self.queue.push_back(main.clone());
        }
        for (i, q) in self.aux_queues.iter_mut().enumerate() {
            let p = cx.input_index(&DATA_IN, i + 1).packet();
            if !p.is_empty() {
                q.push_back(p.clone());
            }
        }

        // 3. Give up on timestamps in flight for too long (in packet time).
        let main_ts = main.timestamp();
        if self.timeout > 0 && main_ts == now && now < Timestamp::MAX && now.is_range() {
            while self
                .in_flight
                .front()
                .is_some_and(|&f| now.value().saturating_sub(f.value()) > self.timeout)
            {
                self.in_flight.pop_front();
            }
        }

        // 4. Admit queued main packets while slots are free.
        while self.in_flight.len() < self.max_in_flight {
            let Some(p) = self.queue.pop_front() else {
                break;
            };
            let t = p.timestamp();
            cx.output_index(&DATA_OUT, 0).send_packet(p)?;
            cx.output(&ALLOW).send(true, t)?;
            self.in_flight.push_back(t);
            self.decisions.push_back((t, true));
        }

        // 5. Drop the oldest main packets beyond the queue limit.
        while self.queue.len() > self.max_in_queue {
            let Some(p) = self.queue.pop_front() else {
                break;
            };
            let t = p.timestamp();
            cx.output(&ALLOW).send(false, t)?;
            cx.record_dropped(1);
            self.decisions.push_back((t, false));
        }

        // 6. Bounds of the main output and ALLOW.
        let main_bound = match self.queue.front() {
            Some(p) => p.timestamp(),
            None => main_ts.next_allowed_in_stream(),
        };
        let main_done = self.queue.is_empty() && main_ts >= Timestamp::MAX;
        if main_done {
            cx.output_index(&DATA_OUT, 0).close();
            cx.output(&ALLOW).close();
        } else {
            raise_bound(cx.output_index(&DATA_OUT, 0), main_bound)?;
            if self.queue.is_empty() {
                raise_bound(cx.output(&ALLOW), main_bound)?;
            }
        }

        // 7. Auxiliary packets follow the main decision at or before their timestamp.
        for i in 0..self.aux_queues.len() {
            while let Some(p) = self.aux_queues[i].front() {
                let t = p.timestamp();
                if !main_done && t >= main_bound {
                    break;
                }
                let p = self.aux_queues[i].pop_front().expect("front checked");
                if self.decision_at(t) {
                    cx.output_index(&DATA_OUT, i + 1).send_packet(p)?;
                } else {
                    cx.record_dropped(1);
                }
            }
            let aux_in = cx.input_index(&DATA_IN, i + 1).timestamp();
            let bound = match self.aux_queues[i].front() {
                Some(p) => p.timestamp(),
                None => aux_in.next_allowed_in_stream(),
            };
            if self.aux_queues[i].is_empty() && aux_in >= Timestamp::MAX {
                cx.output_index(&DATA_OUT, i + 1).close();
            } else {
                raise_bound(cx.output_index(&DATA_OUT, i + 1), bound)?;
            }
        }

        // Forget decisions no queued auxiliary packet can still need.
        let oldest_needed = self
            .aux_queues
            .iter()
            .filter_map(|q| q.front().map(|p| p.timestamp()))
            .min()
            .unwrap_or(main_bound);
        while self.decisions.len() > 1 && self.decisions[1].0 <= oldest_needed {
            self.decisions.pop_front();
        }
        Ok(Flow::Continue)
    }
}

impl FlowLimiterCalculator {
    /// The most recent decision at or before `t` (allow when there is none yet).
    fn decision_at(&self, t: Timestamp) -> bool {
        self.decisions
            .iter()
            .rev()
            .find(|(d, _)| *d <= t)
            .is_none_or(|(_, allow)| *allow)
    }
}

/// Raises an output's bound to `bound` unless it is already there (bounds never go down).
fn raise_bound<T>(mut out: mediagraph_framework::OutputRef<'_, T>, bound: Timestamp) -> Result<()> {
    if out.is_connected() && bound > out.next_timestamp_bound() {
        out.set_next_timestamp_bound(bound)?;
    }
    Ok(())
}

mediagraph_framework::register_calculator!(FlowLimiterCalculator, "FlowLimiterCalculator");

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::test_util::{at, graph, record, ts};

    /// The limiter in front of a "slow" stage whose end is fed back by the test: frames only
    /// finish when the test says so, deterministically.
    const LIMITED: &str = r#"
input_stream: [frames, done, aux]
output_stream: [out, allowed, aux_out]
node:
  - calculator: FlowLimiterCalculator
    input_stream: [frames, aux, "FINISHED:done"]
    output_stream: [out, aux_out, "ALLOW:allowed"]
    options: {max_in_flight: 1, max_in_queue: 1}
"#;

    #[test]
    fn admits_one_in_flight_queues_one_and_drops_the_rest() {
        let mut g = graph(LIMITED);
        let out = record(&mut g, "out");
        let allowed = record(&mut g, "allowed");
        let aux = record(&mut g, "aux_out");
        g.start_run(HashMap::new()).unwrap();
        g.add_packet("frames", at(0i64, 0)).unwrap();
        g.add_packet("aux", at(100i64, 0)).unwrap();
        // 0 is in flight; 1 waits in the queue; 2 pushes 1 out (dropped); 3 pushes 2 out.
        for t in 1..=3 {
            g.add_packet("frames", at(t, t)).unwrap();
            g.add_packet("aux", at(100 + t, t)).unwrap();
        }
        g.wait_until_idle().unwrap();
        assert_eq!(out.values::<i64>(), vec![(ts(0), 0)]);
        // Frame 0 finishes: 3 (the queued one) is admitted.
        g.add_packet("done", at(true, 0)).unwrap();
        g.wait_until_idle().unwrap();
        assert_eq!(out.values::<i64>(), vec![(ts(0), 0), (ts(3), 3)]);
        g.close_all_input_streams().unwrap();
        g.wait_until_done().unwrap();
        assert_eq!(
            allowed.values::<bool>(),
            vec![(ts(0), true), (ts(1), false), (ts(2), false), (ts(3), true)]
        );
        // Auxiliary packets follow the decision at their timestamp.
        assert_eq!(aux.values::<i64>(), vec![(ts(0), 100), (ts(3), 103)]);
        let stats = g.stats();
        let limiter = stats
            .iter()
            .find(|s| s.calculator == "FlowLimiterCalculator")
            .unwrap();
        assert_eq!(
            limiter.dropped, 4,
            "2 main and 2 auxiliary packets, counted"
        );
    }

    #[test]
    fn a_finished_bound_counts_like_a_packet() {
        let mut g = graph(LIMITED);
        let out = record(&mut g, "out");
        g.start_run(HashMap::new()).unwrap();
        g.add_packet("frames", at(0i64, 10)).unwrap();
        g.add_packet("frames", at(1i64, 20)).unwrap();
        g.wait_until_idle().unwrap();
        assert_eq!(out.values::<i64>(), vec![(ts(10), 0)]);
        g.set_input_stream_timestamp_bound("done", ts(11)).unwrap();
        g.wait_until_idle().unwrap();
        assert_eq!(out.values::<i64>(), vec![(ts(10), 0), (ts(20), 1)]);
        g.close_all_input_streams().unwrap();
        g.wait_until_done().unwrap();
    }

    #[test]
    fn in_flight_timeout_gives_up_on_old_timestamps() {
        let mut g = graph(
            r#"
input_stream: [frames, done]
output_stream: [out]
node:
  - calculator: FlowLimiterCalculator
    input_stream: [frames, "FINISHED:done"]
    output_stream: [out]
    options: {max_in_flight: 1, in_flight_timeout: 100}
"#,
        );
        let out = record(&mut g, "out");
        g.start_run(HashMap::new()).unwrap();
        for t in [0i64, 50, 100, 101, 150] {
            g.add_packet("frames", at(t, t)).unwrap();
            g.wait_until_idle().unwrap();
        }
        g.close_all_input_streams().unwrap();
        g.wait_until_done().unwrap();
        // 0 never finishes; at 101 it is more than 100 µs old and is given up, so 101 goes in.
        assert_eq!(out.values::<i64>(), vec![(ts(0), 0), (ts(101), 101)]);
    }

    #[test]
    fn limits_a_real_loop_with_a_back_edge() {
        // frames -> limiter -> pass-through "stage" -> back to FINISHED.
        let mut g = graph(
            r#"
input_stream: [frames]
output_stream: [processed]
node:
  - calculator: FlowLimiterCalculator
    input_stream: [frames, "FINISHED:processed"]
    input_stream_info: [{tag_index: FINISHED, back_edge: true}]
    output_stream: [admitted]
  - calculator: PassThroughCalculator
    input_stream: [admitted]
    output_stream: [processed]
"#,
        );
        let processed = record(&mut g, "processed");
        g.start_run(HashMap::new()).unwrap();
        for t in 0..50i64 {
            g.add_packet("frames", at(t, t)).unwrap();
        }
        g.close_all_input_streams().unwrap();
        g.wait_until_done().unwrap();
        let got = processed.timestamps();
        assert!(!got.is_empty());
        assert!(got.windows(2).all(|w| w[0] < w[1]));
        let dropped: u64 = g.stats().iter().map(|s| s.dropped).sum();
        assert_eq!(
            got.len() as u64 + dropped,
            50,
            "each frame is processed or counted as dropped"
        );
    }

    #[test]
    fn bad_options_are_refused_at_load() {
        let err = crate::test_util::config_error(
            "input_stream: [a, f]\nnode:\n  - {calculator: FlowLimiterCalculator, input_stream: [a, \"FINISHED:f\"], output_stream: [b], options: {max_in_flight: 0}}\n",
        );
        assert!(err.contains("max_in_flight"), "{err}");
    }
}
