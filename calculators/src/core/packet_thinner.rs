//! `PacketThinnerCalculator`: keeps at most one packet per period.

use mediagraph_framework::contract::TypeDecl;
use mediagraph_framework::prelude::*;
use mediagraph_framework::PortKind;
use serde::{Deserialize, Serialize};

use crate::VideoHeader;

const NAME: &str = "PacketThinnerCalculator";

/// Thins a stream to at most one packet per `period` µs (MediaPipe's
/// `PacketThinnerCalculator`).
///
/// * Input stream: one untagged stream (any type). Output stream: one untagged stream (same
///   type).
/// * Input side packets: optional `OPTIONS` (JSON object of option fields merged over the
///   node's options) and `PERIOD` (i64, overrides `period`).
/// * Options ([`PacketThinnerCalculatorOptions`]): `thinner_type` (`ASYNC` default, or
///   `SYNC`), `period` (µs, default 1, must be > 0), `start_time` (default `Min` for ASYNC,
///   0 for SYNC), `end_time` (default `Max`; must be after `start_time`),
///   `sync_output_timestamps` (default true), `update_frame_rate` (default false).
///
/// ASYNC: a packet is emitted if it is at least `period` after the last emitted one
/// (timestamp offset 0). SYNC: periods are centred on `start_time + k * period`; the packet
/// nearest the centre (the later one on ties) is emitted, at the centre with
/// `sync_output_timestamps` or else at its own timestamp, as soon as it is known to be the
/// nearest: once the input has settled far enough past the centre that no later packet can
/// be nearer (a later packet or a timestamp bound tells), or at close. (MediaPipe waits for
/// a packet of the next period; the packets and timestamps are the same, sent up to a period
/// earlier, which matters when a node downstream waits for this stream's timestamp bound.)
/// Packets before `start_time` are dropped; the first packet at or after `end_time` sends the
/// saved packet and closes the output. With
/// `update_frame_rate` a `VideoHeader` stream header gets the thinned frame rate.
///
/// ```yaml
/// - calculator: PacketThinnerCalculator
///   input_stream: [frames]
///   output_stream: [thinned]
///   options: {thinner_type: SYNC, period: 100000}
/// ```
pub struct PacketThinnerCalculator {
    options: PacketThinnerCalculatorOptions,
    sync: bool,
    period: i64,
    start: i64,
    end: i64,
    next_valid: i64,
    saved: Packet,
    /// SYNC: the centre of the period whose packet was sent before the period ended.
    emitted: Option<Timestamp>,
    closed: bool,
}

/// Thinner algorithm.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum ThinnerType {
    /// Refractory period after each emitted packet.
    #[default]
    #[serde(rename = "ASYNC")]
    Async,
    /// One packet per period centred on a fixed grid.
    #[serde(rename = "SYNC")]
    Sync,
}

/// Options of [`PacketThinnerCalculator`] (MediaPipe's `PacketThinnerCalculatorOptions`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PacketThinnerCalculatorOptions {
    /// `ASYNC` (default) or `SYNC`.
    pub thinner_type: ThinnerType,
    /// The period in µs (default 1).
    pub period: i64,
    /// Drop packets before this timestamp.
    pub start_time: Option<i64>,
    /// Close the output at the first packet at or after this timestamp.
    pub end_time: Option<i64>,
    /// SYNC: emit at the period centre (default true) instead of the packet's own timestamp.
    pub sync_output_timestamps: bool,
    /// Update the frame rate of a `VideoHeader` stream header.
    pub update_frame_rate: bool,
}

impl Default for PacketThinnerCalculatorOptions {
    fn default() -> Self {
        PacketThinnerCalculatorOptions {
            thinner_type: ThinnerType::Async,
            period: 1,
            start_time: None,
            end_time: None,
            sync_output_timestamps: true,
            update_frame_rate: false,
        }
    }
}

const IN: Input<AnyPacket> = Input::any("");
const OUT: Output<AnyPacket> = Output::any("");
const OPTIONS_SIDE: SideInput<serde_json::Value> = SideInput::new("OPTIONS").optional();
const PERIOD_SIDE: SideInput<i64> = SideInput::new("PERIOD").optional();

fn config(message: impl Into<String>) -> crate::Error {
    crate::Error::Config {
        calculator: NAME,
        message: message.into(),
    }
}

/// Period, start and end, checked.
fn limits(
    o: &PacketThinnerCalculatorOptions,
    period: i64,
) -> Result<(i64, i64, i64), crate::Error> {
    if period <= 0 {
        return Err(config(format!(
            "option period must be positive (got {period})"
        )));
    }
    let start = o.start_time.unwrap_or(match o.thinner_type {
        ThinnerType::Async => Timestamp::MIN.value(),
        ThinnerType::Sync => 0,
    });
    let end = o.end_time.unwrap_or(Timestamp::MAX.value());
    for (name, v) in [("start_time", start), ("end_time", end)] {
        if Timestamp::try_new(v).is_err() {
            return Err(config(format!(
                "option {name} must be a range timestamp (got {v})"
            )));
        }
    }
    if start >= end {
        return Err(config(format!(
            "option start_time ({start}) must be earlier than end_time ({end})"
        )));
    }
    Ok((period, start, end))
}

impl PacketThinnerCalculator {
    /// SYNC: the timestamp a packet at `t` goes out at (its period's centre with
    /// `sync_output_timestamps`, else its own).
    fn output_time(&self, t: i64) -> Timestamp {
        if self.options.sync_output_timestamps {
            self.nearest_sync(t)
        } else {
            Timestamp::new(t)
        }
    }

    /// Raises the output's timestamp bound to `b` (a lower one is ignored).
    fn advance_bound(cx: &mut CalculatorContext, b: Timestamp) -> Result<()> {
        let mut out = cx.output(&OUT);
        if b > out.next_timestamp_bound() {
            out.set_next_timestamp_bound(b)?;
        }
        Ok(())
    }

    /// SYNC: sends the saved packet (there is one) at its output time; its period is done.
    fn send_saved(&mut self, cx: &mut CalculatorContext) -> Result<()> {
        let saved = std::mem::replace(&mut self.saved, Packet::empty());
        let sync = self.nearest_sync(saved.timestamp().value());
        self.emitted = Some(sync);
        let packet = if self.options.sync_output_timestamps {
            saved.at(sync)
        } else {
            saved
        };
        cx.output(&OUT).send_packet(packet)
    }

    /// SYNC: sends the saved packet as soon as it is final, i.e. once every timestamp up to
    /// `settled` is known and no later packet could be nearer its period's centre (or as near:
    /// ties go to the later packet). A saved packet at or after the centre is final at once;
    /// one `d` before it, once the stream has settled up to `d` after it. The packets and
    /// timestamps are MediaPipe's; only the moment they go out is earlier, which also keeps a
    /// graph behind a one-in-flight FlowLimiter from waiting on a frame that cannot come.
    fn send_if_final(&mut self, cx: &mut CalculatorContext, settled: i64) -> Result<()> {
        if self.saved.is_empty() {
            return Ok(());
        }
        let saved = self.saved.timestamp().value() as i128;
        let centre = self.nearest_sync(saved as i64).value() as i128;
        let last_nearer = if saved >= centre {
            saved
        } else {
            2 * centre - saved
        };
        if (settled as i128) < last_nearer {
            return Ok(());
        }
        self.send_saved(cx)?;
        Self::advance_bound(cx, Timestamp::new(settled).next_allowed_in_stream())
    }

    fn nearest_sync(&self, now: i64) -> Timestamp {
        let (n, s, p) = (now as i128, self.start as i128, self.period as i128);
        let sync = (n - s + p / 2) / p * p + s;
        Timestamp::new(sync.clamp(
            Timestamp::MIN.value() as i128,
            Timestamp::MAX.value() as i128,
        ) as i64)
    }
}

impl Calculator for PacketThinnerCalculator {
    type Options = PacketThinnerCalculatorOptions;

    fn contract(cc: &mut Contract, o: &PacketThinnerCalculatorOptions) -> Result<()> {
        cc.declare(&[&IN, &OUT, &OPTIONS_SIDE, &PERIOD_SIDE])?;
        cc.set_type(PortKind::Output, 0, TypeDecl::SameAs(PortKind::Input, 0));
        // SYNC decides on bound advances too (a frame dropped upstream still settles time).
        if o.thinner_type == ThinnerType::Sync || cc.side_inputs().has_tag("OPTIONS") {
            cc.set_process_timestamp_bounds(true);
        }
        if !cc.side_inputs().has_tag("OPTIONS") {
            let period = if cc.side_inputs().has_tag("PERIOD") {
                1
            } else {
                o.period
            };
            limits(o, period).map_err(|e| cc.error(e))?;
        }
        Ok(())
    }

    fn create(o: &PacketThinnerCalculatorOptions) -> Result<Self> {
        Ok(PacketThinnerCalculator {
            options: o.clone(),
            sync: false,
            period: 1,
            start: 0,
            end: 0,
            next_valid: 0,
            saved: Packet::empty(),
            emitted: None,
            closed: false,
        })
    }

    fn open(&mut self, cx: &mut CalculatorContext) -> Result<()> {
        let o = match cx.side_input_opt(&OPTIONS_SIDE)? {
            Some(serde_json::Value::Object(fields)) => {
                let mut merged = serde_json::to_value(&self.options).map_err(Error::other)?;
                if let serde_json::Value::Object(m) = &mut merged {
                    m.extend(fields.clone());
                }
                serde_json::from_value(merged).map_err(|e| crate::Error::SidePacket {
                    tag: "OPTIONS",
                    message: format!("invalid {NAME} options: {e}"),
                })?
            }
            Some(other) => {
                return Err(crate::Error::SidePacket {
                    tag: "OPTIONS",
                    message: format!("expected a JSON object of options, got {other}"),
                }
                .into())
            }
            None => self.options.clone(),
        };
        let period = cx
            .side_input_opt(&PERIOD_SIDE)?
            .copied()
            .unwrap_or(o.period);
        let (period, start, end) = limits(&o, period)?;
        self.sync = o.thinner_type == ThinnerType::Sync;
        self.period = period;
        self.start = start;
        self.end = end;
        self.next_valid = start;
        self.options = o;
        if !self.sync {
            cx.set_offset(0)?;
        }
        cx.output(&OUT)
            .set_next_timestamp_bound(Timestamp::new(start))?;
        let header = cx.input_header(0).clone();
        if !header.is_empty() {
            if self.options.update_frame_rate {
                let h = header.get::<VideoHeader>().map_err(|e| {
                    config(format!(
                        "option update_frame_rate needs a VideoHeader stream header: {e}"
                    ))
                })?;
                let p = self.options.period as f64;
                let rate = if self.sync {
                    h.frame_rate.min(1e6 / p)
                } else {
                    h.frame_rate / (h.frame_rate * p / 1e6).ceil()
                };
                let new = VideoHeader {
                    width: h.width,
                    height: h.height,
                    frame_rate: rate,
                    duration: h.duration,
                    frame_count: None,
                };
                cx.output(&OUT).set_header(Packet::new(new))?;
            } else {
                cx.output(&OUT).set_header(header)?;
            }
        }
        Ok(())
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let ts = cx.input_timestamp();
        let now = ts.value();
        if now < self.start {
            return Ok(Flow::Continue);
        }
        if now >= self.end {
            if !self.closed {
                // Every packet before `end_time` is in: the saved one is final.
                if !self.saved.is_empty() {
                    self.send_saved(cx)?;
                }
                cx.output(&OUT).close();
                self.closed = true;
            }
            return Ok(Flow::Continue);
        }
        let p = cx.input(&IN).packet().clone();
        if p.is_empty() {
            // A bound advance with no packet (SYNC): it may make the saved packet final.
            if self.sync {
                self.send_if_final(cx, now)?;
                if self.saved.is_empty() {
                    // Nothing held: no output before the next packet's output time.
                    let next = Timestamp::new(now).next_allowed_in_stream();
                    Self::advance_bound(cx, self.output_time(next.value()))?;
                }
            }
            return Ok(Flow::Continue);
        }
        if !self.sync {
            if now >= self.next_valid {
                cx.output(&OUT).send_packet(p)?;
                self.next_valid = now.saturating_add(self.period).min(Timestamp::MAX.value());
                cx.output(&OUT)
                    .set_next_timestamp_bound(Timestamp::new(self.next_valid))?;
            }
            return Ok(Flow::Continue);
        }
        let now_sync = self.nearest_sync(now);
        if self.emitted == Some(now_sync) {
            // This period's packet has gone out already: nothing before the next period.
            Self::advance_bound(cx, ts.next_allowed_in_stream())?;
            return Ok(Flow::Continue);
        }
        let keep = if self.saved.is_empty() {
            true
        } else if self.nearest_sync(self.saved.timestamp().value()) == now_sync {
            let centre = now_sync.value() as i128;
            let d_now = (now as i128 - centre).abs();
            let d_saved = (self.saved.timestamp().value() as i128 - centre).abs();
            d_now <= d_saved
        } else {
            // A packet of a later period: the saved one goes out.
            self.send_saved(cx)?;
            true
        };
        if keep {
            self.saved = p;
            // No output before the time the saved packet would go out at.
            Self::advance_bound(cx, self.output_time(now))?;
        }
        self.send_if_final(cx, now)?;
        Ok(Flow::Continue)
    }

    fn close(&mut self, cx: &mut CalculatorContext) -> Result<()> {
        // Reaching `end_time` sent the saved packet before closing the output (MediaPipe adds
        // it after closing, which fails the run), so one held here is still due.
        if !self.saved.is_empty() {
            self.send_saved(cx)?;
        }
        Ok(())
    }
}

mediagraph_framework::register_calculator!(PacketThinnerCalculator, "PacketThinnerCalculator");

#[cfg(test)]
mod tests {
    use crate::test_util::*;

    fn run(opts: &str, inputs: &[i64]) -> Vec<(i64, i64)> {
        let mut g = graph(&format!(
            "input_stream: [in]\nnode:\n  - calculator: PacketThinnerCalculator\n    input_stream: [in]\n    output_stream: [out]\n    options: {opts}\n"
        ));
        let out = record(&mut g, "out");
        g.start_run(Default::default()).unwrap();
        for &t in inputs {
            g.add_packet("in", at(t, t)).unwrap();
        }
        g.finish().unwrap();
        out.values::<i64>()
            .into_iter()
            .map(|(t, v)| (t.value(), v))
            .collect()
    }

    #[test]
    fn async_keeps_a_refractory_period() {
        let inputs = [0, 3, 5, 9, 10, 16, 25];
        assert_eq!(
            run("{period: 5}", &inputs),
            vec![(0, 0), (5, 5), (10, 10), (16, 16), (25, 25)]
        );
        assert_eq!(
            run("{period: 5, start_time: 4, end_time: 20}", &inputs),
            vec![(5, 5), (10, 10), (16, 16)]
        );
    }

    #[test]
    fn sync_keeps_the_packet_nearest_each_centre() {
        // Centres 0, 10, 20, 30 (start_time 0); periods [c-5, c+5).
        let inputs = [1, 4, 8, 11, 15, 19, 22, 33];
        assert_eq!(
            run("{thinner_type: SYNC, period: 10}", &inputs),
            vec![(0, 1), (10, 11), (20, 19), (30, 33)]
        );
        assert_eq!(
            run(
                "{thinner_type: SYNC, period: 10, sync_output_timestamps: false}",
                &inputs
            ),
            vec![(1, 1), (11, 11), (19, 19), (33, 33)]
        );
        // Ties go to the later packet: 8 and 12 are both 2 from 10.
        assert_eq!(
            run("{thinner_type: SYNC, period: 10}", &[8, 12]),
            vec![(10, 12)]
        );
    }

    #[test]
    fn sync_sends_the_nearest_packet_once_a_later_one_is_farther() {
        let mut g = graph(
            "input_stream: [in]\nnode:\n  - calculator: PacketThinnerCalculator\n    input_stream: [in]\n    output_stream: [out]\n    options: {thinner_type: SYNC, period: 10, sync_output_timestamps: false}\n",
        );
        let out = record(&mut g, "out");
        g.start_run(Default::default()).unwrap();
        let sent = |g: &mut mediagraph_framework::Graph, t: i64| {
            g.add_packet("in", at(t, t)).unwrap();
            g.wait_until_idle().unwrap();
            out.values::<i64>()
                .into_iter()
                .map(|(t, _)| t.value())
                .collect::<Vec<_>>()
        };
        // Centre 10: 8 is saved (a packet up to 12 could still be nearer); 11 is nearer and
        // after the centre, so no later packet can beat it: it goes out at once.
        assert_eq!(sent(&mut g, 8), Vec::<i64>::new());
        assert_eq!(sent(&mut g, 11), vec![11]);
        assert_eq!(sent(&mut g, 13), vec![11]);
        // The rest of that period is dropped; 16 opens the next one and is sent at close.
        assert_eq!(sent(&mut g, 14), vec![11]);
        assert_eq!(sent(&mut g, 16), vec![11]);
        g.finish().unwrap();
        let all: Vec<i64> = out.values::<i64>().into_iter().map(|(_, v)| v).collect();
        assert_eq!(all, vec![11, 16]);
    }

    #[test]
    fn sync_decides_on_bound_advances_without_later_packets() {
        // Centre 10, packet 7: only a packet before 13 could be nearer. Upstream drops the
        // frames after 7 (a FlowLimiter would) and only advances the bound: once time has
        // settled to 13, 7 is final and goes out, with no later packet.
        let mut g = graph(
            "input_stream: [in]\nnode:\n  - calculator: PacketThinnerCalculator\n    input_stream: [in]\n    output_stream: [out]\n    options: {thinner_type: SYNC, period: 10, sync_output_timestamps: false}\n",
        );
        let out = record(&mut g, "out");
        g.start_run(Default::default()).unwrap();
        let sent = |g: &mut mediagraph_framework::Graph| {
            g.wait_until_idle().unwrap();
            out.values::<i64>()
                .into_iter()
                .map(|(t, _)| t.value())
                .collect::<Vec<_>>()
        };
        g.add_packet("in", at(7i64, 7)).unwrap();
        assert_eq!(sent(&mut g), Vec::<i64>::new());
        // Settled up to 12: a packet at 13 would tie (and win, ties go to the later one).
        g.set_input_stream_timestamp_bound("in", ts(13)).unwrap();
        assert_eq!(sent(&mut g), Vec::<i64>::new());
        g.set_input_stream_timestamp_bound("in", ts(14)).unwrap();
        assert_eq!(sent(&mut g), vec![7]);
        g.finish().unwrap();
    }

    #[test]
    fn sync_sends_the_saved_packet_when_end_time_is_reached() {
        // 8 is saved for centre 10 (a packet up to 12 could still beat it); 25 is past
        // end_time 20: 8 is final and goes out before the output closes.
        assert_eq!(
            run("{thinner_type: SYNC, period: 10, end_time: 20}", &[8, 25]),
            vec![(10, 8)]
        );
    }

    #[test]
    fn invalid_options_are_errors() {
        for (opts, needle) in [
            ("{period: 0}", "period"),
            ("{start_time: 10, end_time: 10}", "start_time"),
            ("{thinner_type: FAST}", "unknown variant"),
        ] {
            let err = config_error(&format!(
                "input_stream: [in]\nnode:\n  - calculator: PacketThinnerCalculator\n    input_stream: [in]\n    output_stream: [out]\n    options: {opts}\n"
            ));
            assert!(err.contains(needle), "{opts}: {err}");
        }
    }
}
