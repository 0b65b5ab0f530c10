//! Tracing a run into Chrome trace-event JSON, which Perfetto (ui.perfetto.dev) and
//! chrome://tracing open: one track per node with a span per `open` / `process` / `close` call
//! labelled with its input timestamp, a counter per input queue with its depth, and flow arrows
//! from the call that produced a packet to the call that consumed it.
//!
//! Recording costs nothing measurable when off (one branch per call). When on, each node keeps
//! its own event buffer (no shared lock), capped so a long run cannot exhaust memory; events
//! past the cap are counted and the count is written into the trace.

use std::io::Write;
use std::path::Path;

use serde_json::json;

use crate::error::{Error, Phase, Result};
use crate::timestamp::Timestamp;

/// Events kept per node before further events are only counted.
pub const DEFAULT_EVENTS_PER_NODE: usize = 200_000;

/// One recorded event.
#[derive(Clone, Debug)]
pub(crate) enum TraceEvent {
    /// A calculator call.
    Call {
        phase: Phase,
        input_ts: Timestamp,
        start_ns: u64,
        dur_ns: u64,
        thread: u64,
    },
    /// An input queue's depth after a change.
    Queue {
        port: usize,
        at_ns: u64,
        depth: usize,
    },
    /// A packet left this node (flow start, at the end of the producing call).
    FlowOut { id: u64, at_ns: u64 },
    /// A packet entered a call of this node (flow end).
    FlowIn { id: u64, at_ns: u64 },
}

/// A node's trace buffer.
#[derive(Debug, Default)]
pub(crate) struct NodeTrace {
    pub(crate) events: Vec<TraceEvent>,
    pub(crate) dropped: u64,
    pub(crate) cap: usize,
}

impl NodeTrace {
    pub(crate) fn new(cap: usize) -> NodeTrace {
        NodeTrace {
            events: Vec::new(),
            dropped: 0,
            cap,
        }
    }

    pub(crate) fn push(&mut self, e: TraceEvent) {
        if self.events.len() < self.cap {
            self.events.push(e);
        } else {
            self.dropped += 1;
        }
    }
}

/// The id of the flow arrow of the packet at `ts` on stream `stream`.
pub(crate) fn flow_id(stream: usize, ts: Timestamp) -> u64 {
    (stream as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (ts.value() as u64)
}

/// A small stable number for the current thread (for the `tid` of flow events).
pub(crate) fn thread_number() -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::thread::current().id().hash(&mut h);
    h.finish() % 10_000
}

/// Nanoseconds since the run's epoch.
pub(crate) fn since(epoch: quanta::Instant) -> u64 {
    quanta::Instant::now()
        .duration_since(epoch)
        .as_nanos()
        .min(u64::MAX as u128) as u64
}

/// What the writer needs to know about one node.
pub(crate) struct NodeTraceInfo<'a> {
    pub(crate) name: &'a str,
    pub(crate) calculator: &'a str,
    /// Its named executor (`None`: the default one).
    pub(crate) executor: Option<&'a str>,
    pub(crate) input_streams: Vec<&'a str>,
    pub(crate) trace: &'a NodeTrace,
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// First track id of the extra lanes of nodes with overlapping calls (above any node's own).
const EXTRA_LANE_TIDS: u64 = 1 << 32;

/// A lane per call event (in event order): 0 unless calls overlap (a node with
/// `max_in_flight` above 1), then the first lane free at the call's start, so that no two
/// spans of one track overlap.
fn call_lanes(events: &[TraceEvent]) -> Vec<usize> {
    let calls: Vec<(u64, u64)> = events
        .iter()
        .filter_map(|e| match e {
            TraceEvent::Call {
                start_ns, dur_ns, ..
            } => Some((*start_ns, start_ns + dur_ns)),
            _ => None,
        })
        .collect();
    let mut order: Vec<usize> = (0..calls.len()).collect();
    order.sort_by_key(|&i| calls[i].0);
    let mut lane_free_at: Vec<u64> = Vec::new();
    let mut lanes = vec![0; calls.len()];
    for i in order {
        let (start, end) = calls[i];
        let lane = match lane_free_at.iter().position(|&free| free <= start) {
            Some(lane) => lane,
            None => {
                lane_free_at.push(0);
                lane_free_at.len() - 1
            }
        };
        lane_free_at[lane] = end;
        lanes[i] = lane;
    }
    lanes
}

/// Writes the Chrome trace-event JSON of a run, one event at a time (a long run's trace can
/// be large; it is never held in memory as one document).
pub(crate) fn write_chrome_trace(path: &Path, nodes: &[NodeTraceInfo<'_>]) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::create(path).map_err(io)?;
    let mut w = std::io::BufWriter::new(file);
    let mut first = true;
    let mut emit = |w: &mut std::io::BufWriter<std::fs::File>, event: serde_json::Value| {
        let sep: &[u8] = if first { b"\n" } else { b",\n" };
        first = false;
        w.write_all(sep)?;
        serde_json::to_writer(&mut *w, &event).map_err(std::io::Error::other)
    };
    w.write_all(b"{\"traceEvents\": [").map_err(io)?;
    emit(
        &mut w,
        json!({"ph": "M", "pid": 1, "name": "process_name", "args": {"name": "mediagraph"}}),
    )
    .map_err(io)?;
    let mut dropped = 0;
    for (id, node) in nodes.iter().enumerate() {
        let tid = id as u64 + 1;
        dropped += node.trace.dropped;
        let lanes = call_lanes(&node.trace.events);
        let lane_count = lanes.iter().copied().max().map_or(1, |m| m + 1);
        // Lane 0 is the node's own track; overlapping calls (`max_in_flight`) get more.
        let lane_tid = |lane: usize| match lane {
            0 => tid,
            k => EXTRA_LANE_TIDS + tid * 256 + k as u64,
        };
        for lane in 0..lane_count {
            let name = match node.executor {
                Some(e) => format!("{} ({}) on {e}", node.name, node.calculator),
                None => format!("{} ({})", node.name, node.calculator),
            };
            let name = match lane {
                0 => name,
                k => format!("{name}, parallel call {}", k + 1),
            };
            emit(
                &mut w,
                json!({"ph": "M", "pid": 1, "tid": lane_tid(lane), "name": "thread_name",
                "args": {"name": name}}),
            )
            .map_err(io)?;
            emit(
                &mut w,
                json!({"ph": "M", "pid": 1, "tid": lane_tid(lane), "name": "thread_sort_index",
                "args": {"sort_index": id * 256 + lane}}),
            )
            .map_err(io)?;
        }
        let mut lanes = lanes.into_iter();
        for e in &node.trace.events {
            let event = match e {
                TraceEvent::Call {
                    phase,
                    input_ts,
                    start_ns,
                    dur_ns,
                    thread,
                } => json!({
                    "ph": "X", "pid": 1, "tid": lane_tid(lanes.next().unwrap_or(0)), "cat": "calculator",
                    "name": phase.to_string(), "ts": us(*start_ns), "dur": us(*dur_ns),
                    "args": {"input_timestamp": input_ts.to_string(), "node": node.name, "worker": thread},
                }),
                TraceEvent::Queue { port, at_ns, depth } => json!({
                    "ph": "C", "pid": 1, "tid": tid, "ts": us(*at_ns),
                    "name": format!("queue {} ({})", node.input_streams.get(*port).copied().unwrap_or("?"), node.name),
                    "args": {"depth": depth},
                }),
                TraceEvent::FlowOut { id, at_ns } => json!({
                    "ph": "s", "pid": 1, "tid": tid, "ts": us(*at_ns), "cat": "packet",
                    "name": "packet", "id": id,
                }),
                TraceEvent::FlowIn { id, at_ns } => json!({
                    "ph": "f", "bp": "e", "pid": 1, "tid": tid, "ts": us(*at_ns), "cat": "packet",
                    "name": "packet", "id": id,
                }),
            };
            emit(&mut w, event).map_err(io)?;
        }
    }
    let tail = json!({"producer": "mediagraph", "events_not_recorded": dropped});
    write!(
        w,
        "\n], \"displayTimeUnit\": \"ms\", \"otherData\": {tail}}}\n"
    )
    .map_err(io)?;
    w.flush().map_err(io)
}
