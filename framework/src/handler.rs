//! Input stream handlers: decide when a node is ready to `process` (and at which input
//! timestamp) or to `close`, and fill the input set. Four handlers are partitions of the
//! inputs into sync sets plus a few flags:
//!
//! * `DefaultInputStreamHandler`: one sync set with every input (optionally in batches of
//!   `batch_size` ready timestamps).
//! * `ImmediateInputStreamHandler`: every input is its own set.
//! * `SyncSetInputStreamHandler`: the sets listed in its options, plus one set with the rest.
//! * `FixedSizeInputStreamHandler`: the default set, with queues truncated to the newest
//!   packets (every drop is counted).
//!
//! The others have rules of their own ([`Special`]): `MuxInputStreamHandler` (readiness
//! follows a control input), `EarlyCloseInputStreamHandler` (the default rule, closing as
//! soon as any input is done), `TimestampAlignInputStreamHandler` (inputs on other clocks
//! shifted onto a base input's) and `BarrierInputStreamHandler` (one packet of every input
//! per call, timestamps not compared).

use serde::Deserialize;

use crate::contract::HandlerConfig;
use crate::error::{Error, Result};
use crate::packet::Packet;
use crate::port::{parse_tag_index, PortSet};
use crate::stream::InputQueue;
use crate::timestamp::{Timestamp, TimestampDiff};

/// The known handler names (full form).
pub const HANDLER_NAMES: [&str; 8] = [
    "DefaultInputStreamHandler",
    "ImmediateInputStreamHandler",
    "SyncSetInputStreamHandler",
    "FixedSizeInputStreamHandler",
    "MuxInputStreamHandler",
    "EarlyCloseInputStreamHandler",
    "TimestampAlignInputStreamHandler",
    "BarrierInputStreamHandler",
];

/// The full name of a handler given by its full or short name (`Immediate`), if known.
pub fn normalize_handler_name(name: &str) -> Option<&'static str> {
    HANDLER_NAMES
        .iter()
        .copied()
        .find(|full| *full == name || full.strip_suffix("InputStreamHandler") == Some(name))
}

/// What a node can do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Readiness {
    /// Wait for more input.
    NotReady,
    /// Call `process` at this input timestamp.
    Process(Timestamp),
    /// Every input is done: call `close`.
    Close,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SetState {
    Done,
    Ready(Timestamp),
    NotReady,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultOptions {
    #[serde(default = "one")]
    batch_size: usize,
}

impl Default for DefaultOptions {
    fn default() -> Self {
        DefaultOptions { batch_size: 1 }
    }
}

fn one() -> usize {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncSetEntry {
    tag_index: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SyncSetOptions {
    #[serde(default)]
    sync_set: Vec<SyncSetEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FixedSizeOptions {
    #[serde(default = "two")]
    trigger_queue_size: usize,
    #[serde(default = "one")]
    target_queue_size: usize,
    #[serde(default)]
    fixed_min_size: bool,
}

fn two() -> usize {
    2
}

impl Default for FixedSizeOptions {
    fn default() -> Self {
        FixedSizeOptions {
            trigger_queue_size: 2,
            target_queue_size: 1,
            fixed_min_size: false,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Truncation {
    trigger: usize,
    target: usize,
    fixed_min_size: bool,
}

fn parse_options<T: serde::de::DeserializeOwned + Default>(cfg: &HandlerConfig) -> Result<T> {
    if cfg.options.is_null() {
        return Ok(T::default());
    }
    serde_json::from_value(cfg.options.clone())
        .map_err(|e| Error::msg(format!("options of {}: {e}", cfg.input_stream_handler)))
}

/// The handlers that do not (only) follow the sync-set rule.
#[derive(Debug)]
enum Special {
    /// Default, Immediate, SyncSet, FixedSize: the sync-set rule.
    None,
    /// `MuxInputStreamHandler`: readiness follows the control stream.
    Mux(MuxPorts),
    /// `EarlyCloseInputStreamHandler`: the default rule, but close as soon as any input is
    /// done.
    EarlyClose,
    /// `TimestampAlignInputStreamHandler`: inputs shifted onto the base input's timestamps.
    Align(Align),
    /// `BarrierInputStreamHandler`: one packet from every input per call, whatever their
    /// timestamps.
    Barrier,
}

/// The ports of a node under `MuxInputStreamHandler`.
#[derive(Debug)]
struct MuxPorts {
    /// The control input (`SELECT`, i32: which `INPUT` to take at its timestamp).
    select: usize,
    /// `data[k]`: the input id of `INPUT:k`.
    data: Vec<usize>,
}

/// A node's input stream handler.
#[derive(Debug)]
pub(crate) struct InputHandler {
    sets: Vec<Vec<usize>>,
    last_processed: Vec<Timestamp>,
    process_bounds: bool,
    process_at_max_before_close: bool,
    /// Immediate handler without bound calls: a set that becomes done gets one `process`
    /// call of its own (MediaPipe's legacy behaviour); true once that call was made.
    done_call_made: Vec<bool>,
    truncation: Option<Truncation>,
    /// The set states computed by the last `readiness` call, reused by the `fill` that follows
    /// it under the same lock.
    states: Vec<SetState>,
    states_valid: bool,
    /// One sync set with every input, no bound calls, no truncation: the common case, with
    /// a shorter path.
    simple: bool,
    /// The handlers whose readiness is not the sync-set rule's alone.
    special: Special,
    /// `DefaultInputStreamHandler`'s `batch_size`: the node waits until this many input
    /// timestamps are ready (or its inputs are done), then makes that many calls.
    batch_size: usize,
    /// Calls left in the batch under way.
    batch_left: usize,
}

impl InputHandler {
    /// Builds the handler named in `cfg` for a node with `inputs`.
    pub(crate) fn new(
        cfg: &HandlerConfig,
        inputs: &PortSet,
        process_bounds: bool,
    ) -> Result<InputHandler> {
        let name = normalize_handler_name(&cfg.input_stream_handler).ok_or_else(|| {
            Error::msg(format!(
                "unknown input stream handler \"{}\"; known: {}",
                cfg.input_stream_handler,
                HANDLER_NAMES.join(", ")
            ))
        })?;
        let all: Vec<usize> = (0..inputs.len()).collect();
        let mut truncation = None;
        let mut special = Special::None;
        let mut batch_size = 1;
        let sets = match name {
            "MuxInputStreamHandler" => {
                parse_options::<NoHandlerOptions>(cfg)?;
                special = Special::Mux(mux_ports(inputs, process_bounds)?);
                vec![all]
            }
            "EarlyCloseInputStreamHandler" => {
                parse_options::<NoHandlerOptions>(cfg)?;
                special = Special::EarlyClose;
                vec![all]
            }
            "TimestampAlignInputStreamHandler" => {
                special = Special::Align(Align::new(cfg, inputs, process_bounds)?);
                vec![all]
            }
            "BarrierInputStreamHandler" => {
                parse_options::<NoHandlerOptions>(cfg)?;
                if process_bounds {
                    return Err(Error::msg(
                        "BarrierInputStreamHandler does not support timestamp-bound calls (ProcessTimestampBounds)",
                    ));
                }
                special = Special::Barrier;
                vec![all]
            }
            "DefaultInputStreamHandler" => {
                let opts: DefaultOptions = parse_options(cfg)?;
                if opts.batch_size == 0 {
                    return Err(Error::msg(
                        "DefaultInputStreamHandler batch_size must be at least 1",
                    ));
                }
                batch_size = opts.batch_size;
                vec![all]
            }
            "ImmediateInputStreamHandler" => all.into_iter().map(|i| vec![i]).collect(),
            "SyncSetInputStreamHandler" => {
                let opts: SyncSetOptions = parse_options(cfg)?;
                let mut assigned = vec![false; inputs.len()];
                let mut sets = Vec::new();
                for entry in &opts.sync_set {
                    let mut set = Vec::new();
                    for ti in &entry.tag_index {
                        let (tag, index) = parse_tag_index(ti).map_err(Error::msg)?;
                        let id = inputs.id(&tag, index).ok_or_else(|| {
                            Error::msg(format!(
                                "sync_set names input \"{ti}\", which the node does not have"
                            ))
                        })?;
                        if assigned[id] {
                            return Err(Error::msg(format!(
                                "input \"{ti}\" is in more than one sync_set"
                            )));
                        }
                        assigned[id] = true;
                        set.push(id);
                    }
                    if !set.is_empty() {
                        sets.push(set);
                    }
                }
                let rest: Vec<usize> = (0..inputs.len()).filter(|&i| !assigned[i]).collect();
                if !rest.is_empty() {
                    sets.push(rest);
                }
                sets
            }
            _ => {
                let opts: FixedSizeOptions = parse_options(cfg)?;
                if opts.target_queue_size == 0 || opts.trigger_queue_size < opts.target_queue_size {
                    return Err(Error::msg(format!(
                        "FixedSizeInputStreamHandler needs 1 <= target_queue_size ({}) <= trigger_queue_size ({})",
                        opts.target_queue_size, opts.trigger_queue_size
                    )));
                }
                truncation = Some(Truncation {
                    trigger: opts.trigger_queue_size,
                    target: opts.target_queue_size,
                    fixed_min_size: opts.fixed_min_size,
                });
                vec![all]
            }
        };
        let n = sets.len();
        Ok(InputHandler {
            sets,
            last_processed: vec![Timestamp::UNSTARTED; n],
            process_bounds,
            process_at_max_before_close: name == "ImmediateInputStreamHandler",
            done_call_made: vec![name != "ImmediateInputStreamHandler" || process_bounds; n],
            truncation,
            states: Vec::with_capacity(n),
            states_valid: false,
            simple: n == 1
                && !process_bounds
                && truncation.is_none()
                && matches!(special, Special::None)
                && batch_size == 1,
            batch_size,
            batch_left: 0,
            special,
        })
    }

    fn set_state(&self, set: usize, queues: &[InputQueue]) -> SetState {
        let mut min_packet: Option<Timestamp> = None;
        let mut min_bound = Timestamp::DONE;
        for &i in &self.sets[set] {
            match queues[i].head_timestamp() {
                Some(t) => min_packet = Some(min_packet.map_or(t, |m| m.min(t))),
                None => min_bound = min_bound.min(queues[i].bound()),
            }
        }
        let lowest = min_packet.map_or(min_bound, |p| p.min(min_bound));
        if !self.process_bounds {
            if lowest >= Timestamp::ONE_OVER_POST_STREAM {
                return SetState::Done;
            }
            return match min_packet {
                Some(p) if min_bound > p => SetState::Ready(p),
                _ => SetState::NotReady,
            };
        }
        let all_done = lowest >= Timestamp::ONE_OVER_POST_STREAM;
        if all_done && !self.process_at_max_before_close {
            return SetState::Done;
        }
        let settled =
            if min_packet == Some(Timestamp::POST_STREAM) && min_bound > Timestamp::POST_STREAM {
                Timestamp::POST_STREAM
            } else {
                min_bound.previous_allowed_in_stream()
            };
        let candidate = min_packet.map_or(settled, |p| p.min(settled));
        if candidate > self.last_processed[set] && candidate > Timestamp::UNSTARTED {
            SetState::Ready(candidate)
        } else if all_done {
            SetState::Done
        } else {
            SetState::NotReady
        }
    }

    /// Applies the fixed-size policy; returns how many packets were dropped.
    fn truncate(&self, queues: &mut [InputQueue]) -> u64 {
        let Some(t) = self.truncation else { return 0 };
        let lens = queues.iter().map(|q| q.len());
        let size = if t.fixed_min_size {
            lens.min()
        } else {
            lens.max()
        };
        if size.unwrap_or(0) < t.trigger {
            return 0;
        }
        let cutoff = queues
            .iter()
            .filter(|q| q.len() > t.target)
            .filter_map(|q| q.timestamp_at(q.len() - t.target))
            .max();
        match cutoff {
            Some(c) => queues.iter_mut().map(|q| q.drop_below(c) as u64).sum(),
            None => 0,
        }
    }

    /// How many input timestamps a call waits for (`batch_size`; 1 without batching): the
    /// node's input queues must hold at least that many packets, or a batch could never
    /// fill (its source would be throttled first).
    pub(crate) fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// True for one sync set with every input, no bound calls and no truncation: a readiness
    /// found once stays true until the node runs (new input cannot undo it).
    pub(crate) fn is_simple(&self) -> bool {
        self.simple
    }

    /// Decides what the node can do next; may drop packets (fixed-size policy), counted in
    /// `dropped`.
    pub(crate) fn readiness(&mut self, queues: &mut [InputQueue], dropped: &mut u64) -> Readiness {
        if self.simple {
            return simple_readiness(queues);
        }
        match &mut self.special {
            Special::Mux(mux) => return mux.readiness(queues),
            Special::Align(align) => return align.readiness(queues, dropped),
            Special::Barrier => return barrier_readiness(queues),
            Special::EarlyClose if queues.iter().any(InputQueue::is_done) => {
                return Readiness::Close
            }
            Special::EarlyClose | Special::None => {}
        }
        if self.truncation.is_some() {
            *dropped += self.truncate(queues);
        }
        if self.sets.is_empty() {
            return Readiness::Close;
        }
        let mut best: Option<Timestamp> = None;
        let mut all_done = true;
        self.states.clear();
        for s in 0..self.sets.len() {
            let state = self.set_state(s, queues);
            self.states.push(state);
            match state {
                SetState::Done => {}
                SetState::Ready(t) => {
                    all_done = false;
                    best = Some(best.map_or(t, |b| b.min(t)));
                }
                SetState::NotReady => all_done = false,
            }
        }
        if !self.done_call_made.iter().all(|d| *d) {
            if let (Some(t), false) = (self.done_call_timestamp(queues), all_done) {
                best = Some(best.map_or(t, |b| b.min(t)));
            }
        }
        self.states_valid = true;
        match best {
            Some(_) if !self.batch_ready(queues) => {
                self.states_valid = false;
                Readiness::NotReady
            }
            Some(t) => Readiness::Process(t),
            None if all_done => Readiness::Close,
            None => Readiness::NotReady,
        }
    }

    /// With `batch_size` > 1: true while a batch is under way, or once `batch_size` input
    /// timestamps are ready (every input has its packet there or is known to have none), or
    /// when no more input can come (the last, shorter batch).
    fn batch_ready(&mut self, queues: &[InputQueue]) -> bool {
        if self.batch_size <= 1 || self.batch_left > 0 {
            return true;
        }
        let settled = queues
            .iter()
            .map(InputQueue::bound)
            .min()
            .unwrap_or(Timestamp::DONE);
        let mut ready: Vec<Timestamp> = queues
            .iter()
            .flat_map(|q| q.timestamps_below(settled))
            .collect();
        ready.sort_unstable();
        ready.dedup();
        if ready.len() >= self.batch_size || settled >= Timestamp::ONE_OVER_POST_STREAM {
            self.batch_left = self.batch_size;
            true
        } else {
            false
        }
    }

    /// For the legacy Immediate rule: the input timestamp of the call owed to a set that just
    /// became done (the smallest bound of the streams still open), if one is owed.
    fn done_call_timestamp(&self, queues: &[InputQueue]) -> Option<Timestamp> {
        let owed = (0..self.sets.len())
            .any(|s| !self.done_call_made[s] && self.set_state(s, queues) == SetState::Done);
        if !owed {
            return None;
        }
        queues
            .iter()
            .map(|q| q.bound())
            .filter(|b| *b < Timestamp::DONE)
            .min()
    }

    /// Fills `inputs` for a `process` call at `ts`: sets ready at `ts` give up their packets,
    /// the others show settled empty packets. Returns how many packets were dropped (packets
    /// below `ts` that a ready set skipped).
    pub(crate) fn fill(
        &mut self,
        ts: Timestamp,
        queues: &mut [InputQueue],
        inputs: &mut Vec<Packet>,
    ) -> u64 {
        if self.simple {
            inputs.clear();
            inputs.extend(queues.iter_mut().map(|q| {
                if q.head_timestamp() == Some(ts) {
                    q.pop_front()
                } else {
                    q.settled_empty()
                }
            }));
            return 0;
        }
        inputs.clear();
        inputs.resize(queues.len(), Packet::empty());
        match &mut self.special {
            Special::Mux(mux) => return mux.fill(ts, queues, inputs),
            Special::Align(align) => return align.fill(ts, queues, inputs),
            Special::Barrier => {
                for (input, q) in inputs.iter_mut().zip(queues.iter_mut()) {
                    *input = q.pop_front();
                }
                return 0;
            }
            Special::EarlyClose | Special::None => {}
        }
        let mut dropped = 0;
        if !self.states_valid {
            self.states.clear();
            for s in 0..self.sets.len() {
                let state = self.set_state(s, queues);
                self.states.push(state);
            }
        }
        self.states_valid = false;
        self.batch_left = self.batch_left.saturating_sub(1);
        if !self.done_call_made.iter().all(|d| *d) && self.done_call_timestamp(queues) == Some(ts) {
            for s in 0..self.sets.len() {
                if self.states[s] == SetState::Done {
                    self.done_call_made[s] = true;
                }
            }
        }
        for s in 0..self.sets.len() {
            if self.states[s] == SetState::Ready(ts) {
                for &i in &self.sets[s] {
                    let (packet, d) = queues[i].take_at(ts);
                    inputs[i] = packet;
                    dropped += d as u64;
                }
                self.last_processed[s] = ts;
            } else {
                for &i in &self.sets[s] {
                    inputs[i] = queues[i].settled_empty();
                }
            }
        }
        dropped
    }

    /// The smallest timestamp any input may still deliver (for automatic bound propagation).
    pub(crate) fn input_bound(&self, queues: &[InputQueue]) -> Timestamp {
        if let Special::Align(align) = &self.special {
            return align.input_bound(queues);
        }
        queues
            .iter()
            .map(|q| q.min_timestamp_or_bound())
            .min()
            .unwrap_or(Timestamp::DONE)
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TimestampAlignOptions {
    /// The input whose timestamps the others are shifted onto (default: the first input).
    #[serde(default)]
    timestamp_base_tag_index: Option<String>,
}

/// `TimestampAlignInputStreamHandler`: inputs on different clocks, each shifted onto the base
/// input's timestamps by the difference of their first packets.
#[derive(Debug)]
struct Align {
    base: usize,
    /// The first packet timestamp seen on each input.
    first: Vec<Option<Timestamp>>,
    /// What each input's timestamps are shifted by, once every input has had a packet.
    offsets: Option<Vec<TimestampDiff>>,
    /// The last input timestamp processed (base time).
    last: Option<Timestamp>,
}

/// `t` shifted by `offset` (clamped to the range; special timestamps stay as they are): for
/// bounds.
fn shifted(t: Timestamp, offset: TimestampDiff) -> Timestamp {
    t.checked_add(offset).unwrap_or(t)
}

/// A packet timestamp shifted by `offset`, or `None` when the result falls outside the range
/// (the packet cannot be placed in base time). Special timestamps stay as they are.
fn shifted_exactly(t: Timestamp, offset: TimestampDiff) -> Option<Timestamp> {
    if !t.is_range() {
        return Some(t);
    }
    let v = i128::from(t.value()) + i128::from(offset.value());
    let in_range = i128::from(Timestamp::MIN.value())..=i128::from(Timestamp::MAX.value());
    in_range.contains(&v).then(|| Timestamp::new(v as i64))
}

impl Align {
    fn new(cfg: &HandlerConfig, inputs: &PortSet, process_bounds: bool) -> Result<Align> {
        if process_bounds {
            return Err(Error::msg(
                "TimestampAlignInputStreamHandler does not support timestamp-bound calls (ProcessTimestampBounds)",
            ));
        }
        let opts: TimestampAlignOptions = parse_options(cfg)?;
        let base = match &opts.timestamp_base_tag_index {
            None => 0,
            Some(ti) => {
                let (tag, index) = parse_tag_index(ti).map_err(Error::msg)?;
                inputs.id(&tag, index).ok_or_else(|| {
                    Error::msg(format!(
                        "timestamp_base_tag_index names input \"{ti}\", which the node does not have"
                    ))
                })?
            }
        };
        if inputs.is_empty() {
            return Err(Error::msg(
                "TimestampAlignInputStreamHandler needs at least one input stream",
            ));
        }
        Ok(Align {
            base,
            first: vec![None; inputs.len()],
            offsets: None,
            last: None,
        })
    }

    /// Fixes the offsets once every input has had a first packet or ended without one (an
    /// input that never sent anything keeps offset 0; it has nothing to shift).
    fn try_align(&mut self, queues: &[InputQueue]) {
        let settled = self
            .first
            .iter()
            .zip(queues)
            .all(|(first, q)| first.is_some() || q.is_done());
        if self.offsets.is_some() || !settled {
            return;
        }
        let Some(base) = self.first[self.base].filter(|t| t.is_range()) else {
            // The base never sent a range packet: nothing can be placed in its time.
            self.offsets = Some(vec![TimestampDiff::new(0); queues.len()]);
            return;
        };
        self.offsets = Some(
            self.first
                .iter()
                .map(|f| {
                    let d = f.filter(|t| t.is_range()).map_or(0, |f| {
                        (i128::from(base.value()) - i128::from(f.value()))
                            .clamp(i128::from(i64::MIN), i128::from(i64::MAX))
                            as i64
                    });
                    TimestampDiff::new(d)
                })
                .collect(),
        );
    }

    /// Until every input has had a packet (or ended), the base input's packets are processed
    /// alone; then the default rule, on shifted timestamps. Packets that land at or before a
    /// timestamp already processed, or outside the timestamp range, once shifted are dropped
    /// (counted in `dropped`); if the base never sent a packet, all the others' are.
    fn readiness(&mut self, queues: &mut [InputQueue], dropped: &mut u64) -> Readiness {
        for (first, q) in self.first.iter_mut().zip(queues.iter()) {
            if first.is_none() {
                *first = q.head_timestamp();
            }
        }
        self.try_align(queues);
        let Some(offsets) = &self.offsets else {
            return match queues[self.base].head_timestamp() {
                Some(t) => Readiness::Process(t),
                None => Readiness::NotReady,
            };
        };
        let base_started = self.first[self.base].is_some();
        for (q, &off) in queues.iter_mut().zip(offsets) {
            while let Some(head) = q.head_timestamp() {
                let stale = match shifted_exactly(head, off) {
                    None => true,
                    Some(t) => !base_started || self.last.is_some_and(|last| t <= last),
                };
                if !stale {
                    break;
                }
                q.pop_front();
                *dropped += 1;
            }
        }
        let mut min_packet: Option<Timestamp> = None;
        let mut min_bound = Timestamp::DONE;
        for (q, &off) in queues.iter().zip(offsets) {
            match q.head_timestamp().and_then(|t| shifted_exactly(t, off)) {
                Some(t) => min_packet = Some(min_packet.map_or(t, |m| m.min(t))),
                None => min_bound = min_bound.min(shifted(q.bound(), off)),
            }
        }
        let lowest = min_packet.map_or(min_bound, |p| p.min(min_bound));
        if lowest >= Timestamp::ONE_OVER_POST_STREAM {
            return Readiness::Close;
        }
        match min_packet {
            Some(p) if min_bound > p => Readiness::Process(p),
            _ => Readiness::NotReady,
        }
    }

    /// The packets at `ts` (base time), re-stamped to it; returns how many were dropped
    /// (packets that fell below `ts` once shifted).
    fn fill(&mut self, ts: Timestamp, queues: &mut [InputQueue], inputs: &mut [Packet]) -> u64 {
        self.last = Some(ts);
        let Some(offsets) = &self.offsets else {
            let (packet, dropped) = queues[self.base].take_at(ts);
            inputs[self.base] = packet;
            for (i, input) in inputs.iter_mut().enumerate() {
                if i != self.base {
                    *input = Packet::empty_at(ts);
                }
            }
            return dropped as u64;
        };
        let mut dropped = 0;
        for (i, (q, &off)) in queues.iter_mut().zip(offsets).enumerate() {
            let own = shifted(ts, TimestampDiff::new(off.value().saturating_neg()));
            let (packet, d) = q.take_at(own);
            dropped += d;
            inputs[i] = if packet.is_empty() {
                Packet::empty_at(ts)
            } else {
                packet.at(ts)
            };
        }
        dropped as u64
    }

    /// The smallest base-time timestamp any input may still deliver. Before the offsets are
    /// known, an input that has not started may still land anywhere after the last timestamp
    /// processed.
    fn input_bound(&self, queues: &[InputQueue]) -> Timestamp {
        match &self.offsets {
            None => {
                let base = queues[self.base].min_timestamp_or_bound();
                self.last
                    .map_or(base, |last| base.min(last.next_allowed_in_stream()))
            }
            Some(offsets) => queues
                .iter()
                .zip(offsets)
                .map(|(q, &off)| shifted(q.min_timestamp_or_bound(), off))
                .min()
                .unwrap_or(Timestamp::DONE),
        }
    }
}

/// `BarrierInputStreamHandler`: ready once every input has a packet (timestamps are not
/// compared: the call's input timestamp is the smallest head); close as soon as any input is
/// done.
fn barrier_readiness(queues: &[InputQueue]) -> Readiness {
    let mut smallest = Timestamp::DONE;
    let mut all_have_one = true;
    for q in queues {
        match q.head_timestamp() {
            Some(t) => smallest = smallest.min(t),
            None if q.is_done() => return Readiness::Close,
            None => all_have_one = false,
        }
    }
    if all_have_one && !queues.is_empty() {
        Readiness::Process(smallest)
    } else if queues.is_empty() {
        Readiness::Close
    } else {
        Readiness::NotReady
    }
}

/// A handler that takes no options.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NoHandlerOptions {}

/// The control and data inputs of a `MuxInputStreamHandler` node: `SELECT` and `INPUT:0..n`.
fn mux_ports(inputs: &PortSet, process_bounds: bool) -> Result<MuxPorts> {
    if process_bounds {
        return Err(Error::msg(
            "MuxInputStreamHandler does not support timestamp-bound calls (ProcessTimestampBounds)",
        ));
    }
    let select = inputs.id("SELECT", 0).ok_or_else(|| {
        Error::msg("MuxInputStreamHandler needs a control input SELECT (which INPUT to take)")
    })?;
    let data: Vec<usize> = (0..inputs.len())
        .map_while(|k| inputs.id("INPUT", k))
        .collect();
    if data.is_empty() || data.len() + 1 != inputs.len() {
        return Err(Error::msg(
            "MuxInputStreamHandler needs inputs INPUT:0..n and SELECT, and no others",
        ));
    }
    Ok(MuxPorts { select, data })
}

impl MuxPorts {
    /// The data input the control packet at the head of `control` selects (`None` when its
    /// value is not an i32 naming an `INPUT`: the node's call reports that).
    fn selected(&self, control: &InputQueue) -> Option<usize> {
        let value = *control.head()?.get::<i32>().ok()?;
        usize::try_from(value)
            .ok()
            .and_then(|k| self.data.get(k))
            .copied()
    }

    /// Ready at the control stream's next timestamp `T` once the selected input has its
    /// packet at `T` or is known to have none; close when the control stream is done.
    fn readiness(&self, queues: &[InputQueue]) -> Readiness {
        let control = &queues[self.select];
        let Some(t) = control.head_timestamp() else {
            return if control.is_done() {
                Readiness::Close
            } else {
                Readiness::NotReady
            };
        };
        let Some(data) = self.selected(control) else {
            return Readiness::Process(t);
        };
        let q = &queues[data];
        // Packets below `T` on the selected input were never selected: `fill` drops them.
        if q.has_packet_at_or_after(t) || q.bound() > t {
            Readiness::Process(t)
        } else {
            Readiness::NotReady
        }
    }

    /// The control packet at `ts`, the selected input's packet at `ts` (or an empty one),
    /// and settled empty packets for the others. Data packets at or below `ts` that were not
    /// selected can never be, so they are dropped (the count is returned).
    fn fill(&self, ts: Timestamp, queues: &mut [InputQueue], inputs: &mut [Packet]) -> u64 {
        let selected = self.selected(&queues[self.select]);
        let (control, mut dropped) = queues[self.select].take_at(ts);
        inputs[self.select] = control;
        for &i in &self.data {
            if Some(i) == selected {
                let (packet, d) = queues[i].take_at(ts);
                inputs[i] = packet;
                dropped += d;
            } else {
                // No bound is raised here: this input's producer may still be behind.
                dropped += queues[i].drop_through(ts);
                inputs[i] = queues[i].settled_empty();
            }
        }
        dropped as u64
    }
}

/// Readiness of one sync set holding every input (default handler rules).
fn simple_readiness(queues: &[InputQueue]) -> Readiness {
    let mut min_packet = Timestamp::DONE;
    let mut min_bound = Timestamp::DONE;
    for q in queues {
        match q.head_timestamp() {
            Some(t) => min_packet = min_packet.min(t),
            None => min_bound = min_bound.min(q.bound()),
        }
    }
    if min_packet.min(min_bound) >= Timestamp::ONE_OVER_POST_STREAM {
        Readiness::Close
    } else if min_packet < min_bound {
        Readiness::Process(min_packet)
    } else {
        Readiness::NotReady
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::{parse_port, PortRef};

    fn ports(n: usize) -> PortSet {
        let refs: Vec<PortRef> = (0..n)
            .map(|i| parse_port(&format!("IN:{i}:s{i}")).unwrap())
            .collect();
        PortSet::from_refs(&refs).unwrap()
    }

    fn queues(n: usize) -> Vec<InputQueue> {
        (0..n).map(|_| InputQueue::new(usize::MAX)).collect()
    }

    fn push(q: &mut InputQueue, ts: i64) {
        q.push(Packet::new(ts).at(Timestamp::new(ts)));
    }

    fn handler(name: &str, n: usize, bounds: bool) -> InputHandler {
        InputHandler::new(&HandlerConfig::named(name), &ports(n), bounds).unwrap()
    }

    #[test]
    fn default_waits_until_every_stream_is_settled() {
        let mut h = handler("DefaultInputStreamHandler", 2, false);
        let mut q = queues(2);
        let mut d = 0;
        push(&mut q[0], 10);
        assert_eq!(h.readiness(&mut q, &mut d), Readiness::NotReady);
        q[1].raise_bound(Timestamp::new(10));
        assert_eq!(
            h.readiness(&mut q, &mut d),
            Readiness::NotReady,
            "bound 10 does not settle 10"
        );
        q[1].raise_bound(Timestamp::new(11));
        assert_eq!(
            h.readiness(&mut q, &mut d),
            Readiness::Process(Timestamp::new(10))
        );
        push(&mut q[1], 11);
        push(&mut q[0], 11);
        q[0].close();
        q[1].close();
        let mut inputs = Vec::new();
        h.fill(Timestamp::new(10), &mut q, &mut inputs);
        assert_eq!(inputs[0].timestamp(), Timestamp::new(10));
        assert!(inputs[1].is_empty());
        assert_eq!(inputs[1].timestamp(), Timestamp::new(10), "prev of head 11");
        assert_eq!(
            h.readiness(&mut q, &mut d),
            Readiness::Process(Timestamp::new(11))
        );
        h.fill(Timestamp::new(11), &mut q, &mut inputs);
        assert!(!inputs[0].is_empty() && !inputs[1].is_empty());
        assert_eq!(h.readiness(&mut q, &mut d), Readiness::Close);
    }

    #[test]
    fn immediate_processes_each_stream_alone() {
        let mut h = handler("Immediate", 2, false);
        let mut q = queues(2);
        let mut d = 0;
        push(&mut q[1], 5);
        assert_eq!(
            h.readiness(&mut q, &mut d),
            Readiness::Process(Timestamp::new(5))
        );
        let mut inputs = Vec::new();
        h.fill(Timestamp::new(5), &mut q, &mut inputs);
        assert!(inputs[0].is_empty());
        assert_eq!(inputs[0].timestamp(), Timestamp::UNSTARTED);
        assert_eq!(inputs[1].timestamp(), Timestamp::new(5));
        push(&mut q[0], 3);
        assert_eq!(
            h.readiness(&mut q, &mut d),
            Readiness::Process(Timestamp::new(3)),
            "timestamps may decrease across sets"
        );
    }

    #[test]
    fn immediate_makes_one_call_when_a_stream_becomes_done() {
        let mut h = handler("Immediate", 2, false);
        let mut q = queues(2);
        let mut d = 0;
        let mut inputs = Vec::new();
        push(&mut q[0], 1);
        assert_eq!(
            h.readiness(&mut q, &mut d),
            Readiness::Process(Timestamp::new(1))
        );
        h.fill(Timestamp::new(1), &mut q, &mut inputs);
        q[1].raise_bound(Timestamp::new(4));
        q[0].close();
        // Stream 0 is done: one call, all inputs empty, at the smallest open bound (4).
        assert_eq!(
            h.readiness(&mut q, &mut d),
            Readiness::Process(Timestamp::new(4))
        );
        h.fill(Timestamp::new(4), &mut q, &mut inputs);
        assert!(inputs.iter().all(|p| p.is_empty()));
        assert_eq!(h.readiness(&mut q, &mut d), Readiness::NotReady);
        q[1].close();
        assert_eq!(
            h.readiness(&mut q, &mut d),
            Readiness::Close,
            "no call when all are done"
        );
    }

    #[test]
    fn process_timestamp_bounds_reports_settled_bounds() {
        let mut h = handler("Default", 1, true);
        let mut q = queues(1);
        let mut d = 0;
        assert_eq!(h.readiness(&mut q, &mut d), Readiness::NotReady);
        q[0].raise_bound(Timestamp::new(20));
        assert_eq!(
            h.readiness(&mut q, &mut d),
            Readiness::Process(Timestamp::new(19))
        );
        let mut inputs = Vec::new();
        h.fill(Timestamp::new(19), &mut q, &mut inputs);
        assert!(inputs[0].is_empty());
        assert_eq!(h.readiness(&mut q, &mut d), Readiness::NotReady);
        q[0].close();
        assert_eq!(
            h.readiness(&mut q, &mut d),
            Readiness::Close,
            "default goes straight to close"
        );

        let mut h = handler("Immediate", 1, true);
        let mut q = queues(1);
        q[0].close();
        assert_eq!(
            h.readiness(&mut q, &mut d),
            Readiness::Process(Timestamp::MAX)
        );
        h.fill(Timestamp::MAX, &mut q, &mut inputs);
        assert_eq!(inputs[0].timestamp(), Timestamp::MAX);
        assert_eq!(h.readiness(&mut q, &mut d), Readiness::Close);
    }

    #[test]
    fn sync_sets_are_independent() {
        let cfg = HandlerConfig {
            input_stream_handler: "SyncSetInputStreamHandler".into(),
            options: serde_json::json!({"sync_set": [{"tag_index": ["IN:0", "IN:1"]}]}),
        };
        let mut h = InputHandler::new(&cfg, &ports(3), false).unwrap();
        let mut q = queues(3);
        let mut d = 0;
        push(&mut q[2], 7);
        push(&mut q[0], 4);
        assert_eq!(
            h.readiness(&mut q, &mut d),
            Readiness::Process(Timestamp::new(7))
        );
        q[1].raise_bound(Timestamp::new(5));
        assert_eq!(
            h.readiness(&mut q, &mut d),
            Readiness::Process(Timestamp::new(4))
        );
        let mut inputs = Vec::new();
        h.fill(Timestamp::new(4), &mut q, &mut inputs);
        assert!(!inputs[0].is_empty() && inputs[2].is_empty());

        let bad = HandlerConfig {
            input_stream_handler: "SyncSetInputStreamHandler".into(),
            options: serde_json::json!({"sync_set": [{"tag_index": ["IN:0"]}, {"tag_index": ["IN:0"]}]}),
        };
        let err = InputHandler::new(&bad, &ports(2), false).unwrap_err();
        assert!(err.to_string().contains("more than one sync_set"), "{err}");
    }

    #[test]
    fn fixed_size_keeps_the_newest_and_counts_drops() {
        let cfg = HandlerConfig {
            input_stream_handler: "FixedSizeInputStreamHandler".into(),
            options: serde_json::json!({"trigger_queue_size": 3, "target_queue_size": 1}),
        };
        let mut h = InputHandler::new(&cfg, &ports(2), false).unwrap();
        let mut q = queues(2);
        for t in 1..=3 {
            push(&mut q[0], t);
        }
        push(&mut q[1], 1);
        push(&mut q[1], 2);
        let mut dropped = 0;
        assert_eq!(h.readiness(&mut q, &mut dropped), Readiness::NotReady);
        assert_eq!(dropped, 4, "1 and 2 dropped on both streams");
        assert_eq!(q[0].head_timestamp(), Some(Timestamp::new(3)));
        assert_eq!(q[1].len(), 0);
    }

    #[test]
    fn unknown_handler_is_an_error() {
        let err = InputHandler::new(&HandlerConfig::named("Fancy"), &ports(1), false).unwrap_err();
        assert!(err
            .to_string()
            .contains("unknown input stream handler \"Fancy\""));
    }
}
