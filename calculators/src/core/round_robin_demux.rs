//! `RoundRobinDemuxCalculator`: deals packets to its outputs in turn.

use mediagraph_framework::contract::TypeDecl;
use mediagraph_framework::prelude::*;
use mediagraph_framework::PortKind;

/// Sends the k-th input packet to `OUTPUT:(k mod n)` and, if connected, `k mod n` (i32) to
/// `SELECT` at the same timestamp (MediaPipe's `RoundRobinDemuxCalculator`).
///
/// * Input stream: one untagged stream (any type).
/// * Output streams: `OUTPUT:0..n` (the input's type, n >= 1), optional `SELECT` (i32).
/// * Options: none. Timestamp offset 0.
///
/// ```yaml
/// - calculator: RoundRobinDemuxCalculator
///   input_stream: [frames]
///   output_stream: ["OUTPUT:0:even", "OUTPUT:1:odd", "SELECT:which"]
/// ```
pub struct RoundRobinDemuxCalculator {
    next: usize,
}

const IN: Input<AnyPacket> = Input::any("");
const OUT: Output<AnyPacket> = Output::any("OUTPUT").multiple();
const SELECT: Output<i32> = Output::new("SELECT").optional();

impl Calculator for RoundRobinDemuxCalculator {
    type Options = NoOptions;

    fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
        cc.declare(&[&IN, &OUT, &SELECT])?;
        if cc.outputs().count("OUTPUT") == 0 {
            return Err(cc.error(crate::Error::Config {
                calculator: "RoundRobinDemuxCalculator",
                message: "needs at least one OUTPUT stream".into(),
            }));
        }
        for id in cc.outputs().ids("OUTPUT").collect::<Vec<_>>() {
            cc.set_type(PortKind::Output, id, TypeDecl::SameAs(PortKind::Input, 0));
        }
        cc.set_timestamp_offset(0);
        Ok(())
    }

    fn create(_: &NoOptions) -> Result<Self> {
        Ok(RoundRobinDemuxCalculator { next: 0 })
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let p = cx.input(&IN).packet().clone();
        let ts = cx.input_timestamp();
        let k = self.next;
        cx.output_index(&OUT, k).send_packet(p)?;
        cx.output(&SELECT).send(k as i32, ts)?;
        self.next = (k + 1) % cx.output_count(&OUT).max(1);
        Ok(Flow::Continue)
    }
}

mediagraph_framework::register_calculator!(RoundRobinDemuxCalculator, "RoundRobinDemuxCalculator");

#[cfg(test)]
mod tests {
    use crate::test_util::*;

    #[test]
    fn deals_packets_in_turn() {
        let mut g = graph(
            "input_stream: [in]\nnode:\n  - calculator: RoundRobinDemuxCalculator\n    input_stream: [in]\n    output_stream: [\"OUTPUT:0:o0\", \"OUTPUT:1:o1\", \"OUTPUT:2:o2\", \"SELECT:sel\"]\n",
        );
        let o: Vec<_> = ["o0", "o1", "o2"]
            .iter()
            .map(|n| record(&mut g, n))
            .collect();
        let sel = record(&mut g, "sel");
        g.start_run(Default::default()).unwrap();
        for i in 0..5i64 {
            g.add_packet("in", at(i, i)).unwrap();
        }
        g.finish().unwrap();
        assert_eq!(o[0].values::<i64>(), vec![(ts(0), 0), (ts(3), 3)]);
        assert_eq!(o[1].values::<i64>(), vec![(ts(1), 1), (ts(4), 4)]);
        assert_eq!(o[2].values::<i64>(), vec![(ts(2), 2)]);
        let s: Vec<i32> = sel.values::<i32>().into_iter().map(|p| p.1).collect();
        assert_eq!(s, vec![0, 1, 2, 0, 1]);
    }
}
