//! `ImmediateMuxCalculator`: forwards packets from any input as soon as they arrive.

use mediagraph_framework::contract::{HandlerConfig, TypeDecl};
use mediagraph_framework::prelude::*;
use mediagraph_framework::{PacketType, PortKind};

/// Multiplexes its inputs into one output, immediately (MediaPipe's `ImmediateMuxCalculator`).
///
/// * Input streams: any number of untagged streams, all of the output's type.
/// * Output streams: untagged index 0 (the data), and optionally index 1 (`bool`: one `true`
///   per input packet, a "finished" indicator).
/// * Options: none. Uses the `ImmediateInputStreamHandler`; timestamp offset 0.
///
/// A packet is forwarded if its timestamp is at or past the output's bound, otherwise it is
/// dropped (so of two packets with the same timestamp the lower input index wins). The
/// indicator is sent at `max(input timestamp, indicator bound)`.
///
/// ```yaml
/// - calculator: ImmediateMuxCalculator
///   input_stream: [a, b]
///   output_stream: [merged]
/// ```
pub struct ImmediateMuxCalculator;

impl Calculator for ImmediateMuxCalculator {
    type Options = NoOptions;

    fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
        let n_out = cc.outputs().count("");
        if !(1..=2).contains(&n_out) || cc.outputs().len() != n_out {
            return Err(cc.error(crate::Error::Config {
                calculator: "ImmediateMuxCalculator",
                message: format!(
                    "takes one or two untagged output streams (got {})",
                    cc.outputs().len()
                ),
            }));
        }
        cc.declare(&[&Input::any("").multiple(), &Output::any("").multiple()])?;
        if n_out == 2 {
            if let Some(id) = cc.outputs().id("", 1) {
                cc.set_type(
                    PortKind::Output,
                    id,
                    TypeDecl::Type(PacketType::of::<bool>()),
                );
            }
        }
        let out0 = cc.outputs().id("", 0).unwrap_or(0);
        for id in cc.inputs().ids("") {
            cc.set_type(
                PortKind::Input,
                id,
                TypeDecl::SameAs(PortKind::Output, out0),
            );
        }
        cc.set_input_stream_handler(HandlerConfig::named("ImmediateInputStreamHandler"));
        cc.set_timestamp_offset(0);
        Ok(())
    }

    fn create(_: &NoOptions) -> Result<Self> {
        Ok(ImmediateMuxCalculator)
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let data = Output::<AnyPacket>::any("");
        let done = Output::<bool>::new("");
        let ts = cx.input_timestamp();
        let n_out = cx.outputs().count("");
        for id in cx.inputs().ids("").collect::<Vec<_>>() {
            let p = cx.input_packet(id).clone();
            if p.is_empty() {
                continue;
            }
            let mut out = cx.output(&data);
            if p.timestamp() >= out.next_timestamp_bound() {
                out.send_packet(p)?;
            } else {
                tracing::debug!(
                    "ImmediateMuxCalculator: dropping a packet at {}",
                    p.timestamp()
                );
            }
            if n_out >= 2 {
                let mut ind = cx.output_index(&done, 1);
                let t = ts.max(ind.next_timestamp_bound());
                ind.send(true, t)?;
            }
        }
        Ok(Flow::Continue)
    }
}

mediagraph_framework::register_calculator!(ImmediateMuxCalculator, "ImmediateMuxCalculator");

#[cfg(test)]
mod tests {
    use crate::test_util::*;

    #[test]
    fn forwards_in_arrival_order_and_drops_late_packets() {
        let mut g = graph(
            "input_stream: [a, b]\nnode:\n  - calculator: ImmediateMuxCalculator\n    input_stream: [a, b]\n    output_stream: [out, done]\n",
        );
        let out = record(&mut g, "out");
        let done = record(&mut g, "done");
        g.start_run(Default::default()).unwrap();
        g.add_packet("a", at(1i64, 10)).unwrap();
        g.wait_until_idle().unwrap();
        g.add_packet("b", at(2i64, 20)).unwrap();
        g.wait_until_idle().unwrap();
        g.add_packet("a", at(3i64, 15)).unwrap(); // older than the output bound: dropped
        g.wait_until_idle().unwrap();
        g.add_packet("a", at(4i64, 30)).unwrap();
        g.finish().unwrap();
        assert_eq!(
            out.values::<i64>(),
            vec![(ts(10), 1), (ts(20), 2), (ts(30), 4)]
        );
        // One indicator per input packet, never going back in time.
        assert_eq!(done.timestamps(), vec![ts(10), ts(20), ts(21), ts(30)]);
    }
}
