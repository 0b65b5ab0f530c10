//! `SequenceShiftCalculator`: shifts packets along a stream by a number of packets.

use std::collections::VecDeque;

use mediagraph_framework::contract::TypeDecl;
use mediagraph_framework::prelude::*;
use mediagraph_framework::PortKind;
use serde::Deserialize;

/// Emits packet `i` with the timestamp of packet `i + packet_offset` (MediaPipe's
/// `SequenceShiftCalculator`).
///
/// * Input stream: one untagged stream (any type).
/// * Output stream: one untagged stream (the input's type).
/// * Input side packet: optional `PACKET_OFFSET` (i32), which overrides the option.
/// * Options ([`SequenceShiftCalculatorOptions`]): `packet_offset` (default -1),
///   `emit_empty_packets_before_first_packet` (default false; positive offsets only).
///
/// With offset `-n` the first `n` packets are dropped (packet `i` goes out at the timestamp of
/// packet `i - n`); with `+n` the last `n` packets are never emitted. Offset 0 copies the
/// stream and sets a timestamp offset of 0. With `emit_empty_packets_before_first_packet`
/// and a positive offset, the output's bound is advanced past each timestamp that cannot
/// carry a packet yet (MediaPipe aborts with "Not supported yet" there).
///
/// ```yaml
/// - calculator: SequenceShiftCalculator
///   input_stream: [frames]
///   output_stream: [previous_frames]
///   options: {packet_offset: -1}
/// ```
pub struct SequenceShiftCalculator {
    offset: i32,
    emit_empty: bool,
    packets: VecDeque<Packet>,
    stamps: VecDeque<Timestamp>,
}

/// Options of [`SequenceShiftCalculator`].
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SequenceShiftCalculatorOptions {
    /// Packet `i` is emitted at the timestamp of packet `i + packet_offset`. Default -1.
    pub packet_offset: i32,
    /// Positive offsets: advance the output bound while the first packet is held back.
    pub emit_empty_packets_before_first_packet: bool,
}

impl Default for SequenceShiftCalculatorOptions {
    fn default() -> Self {
        SequenceShiftCalculatorOptions {
            packet_offset: -1,
            emit_empty_packets_before_first_packet: false,
        }
    }
}

const IN: Input<AnyPacket> = Input::any("");
const OUT: Output<AnyPacket> = Output::any("");
const OFFSET: SideInput<i32> = SideInput::new("PACKET_OFFSET").optional();

impl Calculator for SequenceShiftCalculator {
    type Options = SequenceShiftCalculatorOptions;

    fn contract(cc: &mut Contract, _: &SequenceShiftCalculatorOptions) -> Result<()> {
        cc.declare(&[&IN, &OUT, &OFFSET])?;
        cc.set_type(PortKind::Output, 0, TypeDecl::SameAs(PortKind::Input, 0));
        Ok(())
    }

    fn create(o: &SequenceShiftCalculatorOptions) -> Result<Self> {
        Ok(SequenceShiftCalculator {
            offset: o.packet_offset,
            emit_empty: o.emit_empty_packets_before_first_packet,
            packets: VecDeque::new(),
            stamps: VecDeque::new(),
        })
    }

    fn open(&mut self, cx: &mut CalculatorContext) -> Result<()> {
        if let Some(&o) = cx.side_input_opt(&OFFSET)? {
            self.offset = o;
        }
        if self.offset == 0 {
            cx.set_offset(0)?;
        }
        Ok(())
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let ts = cx.input_timestamp();
        let p = cx.input(&IN).packet().clone();
        let n = self.offset.unsigned_abs() as usize;
        if self.offset > 0 {
            if self.packets.len() >= n {
                if let Some(front) = self.packets.pop_front() {
                    cx.output(&OUT).send_packet(front.at(ts))?;
                }
            } else if self.emit_empty {
                cx.output(&OUT).send_packet(Packet::empty_at(ts))?;
            }
            self.packets.push_back(p);
        } else if self.offset < 0 {
            if self.stamps.len() >= n {
                if let Some(front) = self.stamps.pop_front() {
                    cx.output(&OUT).send_packet(p.at(front))?;
                }
            }
            self.stamps.push_back(ts);
        } else {
            cx.output(&OUT).send_packet(p)?;
        }
        Ok(Flow::Continue)
    }
}

mediagraph_framework::register_calculator!(SequenceShiftCalculator, "SequenceShiftCalculator");

#[cfg(test)]
mod tests {
    use crate::test_util::*;

    fn run(options: &str, n: i64) -> Vec<(i64, i64)> {
        let mut g = graph(&format!(
            "input_stream: [in]\nnode:\n  - calculator: SequenceShiftCalculator\n    input_stream: [in]\n    output_stream: [out]\n    options: {options}\n"
        ));
        let out = record(&mut g, "out");
        g.start_run(Default::default()).unwrap();
        for i in 0..n {
            g.add_packet("in", at(i, 10 * i)).unwrap();
        }
        g.finish().unwrap();
        out.values::<i64>()
            .into_iter()
            .map(|(t, v)| (t.value(), v))
            .collect()
    }

    #[test]
    fn negative_offset_drops_the_first_packets() {
        assert_eq!(run("{}", 4), vec![(0, 1), (10, 2), (20, 3)]);
        assert_eq!(run("{packet_offset: -2}", 4), vec![(0, 2), (10, 3)]);
    }

    #[test]
    fn positive_offset_drops_the_last_packets() {
        assert_eq!(
            run("{packet_offset: 1}", 4),
            vec![(10, 0), (20, 1), (30, 2)]
        );
        assert_eq!(run("{packet_offset: 3}", 4), vec![(30, 0)]);
        assert_eq!(
            run(
                "{packet_offset: 1, emit_empty_packets_before_first_packet: true}",
                3
            ),
            vec![(10, 0), (20, 1)]
        );
    }

    #[test]
    fn zero_offset_copies_and_side_packet_overrides() {
        assert_eq!(run("{packet_offset: 0}", 3), vec![(0, 0), (10, 1), (20, 2)]);
        let mut g = graph(
            "input_stream: [in]\ninput_side_packet: [k]\nnode:\n  - calculator: SequenceShiftCalculator\n    input_stream: [in]\n    output_stream: [out]\n    input_side_packet: [\"PACKET_OFFSET:k\"]\n",
        );
        let out = record(&mut g, "out");
        let side = [("k".to_string(), mediagraph_framework::Packet::new(2i32))]
            .into_iter()
            .collect();
        g.start_run(side).unwrap();
        for i in 0..3i64 {
            g.add_packet("in", at(i, 10 * i)).unwrap();
        }
        g.finish().unwrap();
        assert_eq!(out.values::<i64>(), vec![(ts(20), 0)]);
    }
}
