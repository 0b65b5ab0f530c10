//! `PacketPresenceCalculator`: whether a stream has a packet at each timestamp.

use mediagraph_framework::prelude::*;

/// Outputs `true` at each packet of the `PACKET` stream, and `false` when its timestamp bound
/// moves on without a packet, at the last timestamp that move settled (one `false` per bound
/// change, not one per timestamp skipped; MediaPipe's `PacketPresenceCalculator`): e.g. to
/// drive a `GateCalculator` from whether a detector found anything.
///
/// * Input stream: `PACKET` (any type).
/// * Output stream: `PRESENCE` (bool).
/// * Options: none.
///
/// It is called on timestamp bound changes too (MediaPipe's `SetProcessTimestampBounds`), so
/// a timestamp without a packet gives `false` as soon as it is settled.
///
/// ```yaml
/// - calculator: PacketPresenceCalculator
///   input_stream: ["PACKET:detections"]
///   output_stream: ["PRESENCE:found_any"]
/// ```
pub struct PacketPresenceCalculator;

const PACKET: Input<AnyPacket> = Input::any("PACKET");
const PRESENCE: Output<bool> = Output::new("PRESENCE");

impl Calculator for PacketPresenceCalculator {
    type Options = NoOptions;

    fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
        cc.declare(&[&PACKET, &PRESENCE])?;
        cc.set_process_timestamp_bounds(true);
        Ok(())
    }

    fn create(_: &NoOptions) -> Result<Self> {
        Ok(PacketPresenceCalculator)
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let ts = cx.input_timestamp();
        if ts.is_allowed_in_stream() {
            let present = !cx.input(&PACKET).is_empty();
            cx.output(&PRESENCE).send(present, ts)?;
        }
        Ok(Flow::Continue)
    }
}

mediagraph_framework::register_calculator!(PacketPresenceCalculator, "PacketPresenceCalculator");

#[cfg(test)]
mod tests {
    use crate::test_util::*;

    #[test]
    fn true_for_packets_false_for_settled_gaps() {
        let mut g = graph(
            "input_stream: [in]\nnode:\n  - {calculator: PacketPresenceCalculator, input_stream: [\"PACKET:in\"], output_stream: [\"PRESENCE:p\"]}\n",
        );
        let p = g.add_output_stream_poller("p").unwrap();
        let next = || {
            let packet = p.next().expect("a presence packet");
            (packet.timestamp(), *packet.get::<bool>().unwrap())
        };
        g.start_run(Default::default()).unwrap();
        g.add_packet("in", at(1i64, 10)).unwrap();
        assert_eq!(next(), (ts(10), true));
        // Nothing can come before 20 any more: 19 is settled, without a packet.
        g.set_input_stream_timestamp_bound("in", ts(20)).unwrap();
        assert_eq!(next(), (ts(19), false));
        g.add_packet("in", at(2i64, 30)).unwrap();
        assert_eq!(next(), (ts(30), true));
        g.finish().unwrap();
    }
}
