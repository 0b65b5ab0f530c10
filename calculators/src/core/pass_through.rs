//! `PassThroughCalculator`: copies inputs to outputs unchanged.

use mediagraph_framework::contract::TypeDecl;
use mediagraph_framework::port::PortSet;
use mediagraph_framework::prelude::*;
use mediagraph_framework::PortKind;

/// Copies every input stream to the output stream with the same tag and index, and every
/// input side packet to the output side packet with the same tag and index.
///
/// * Input streams: any number, any tags and indexes, any types.
/// * Output streams: exactly the same tags and index counts as the inputs; output `TAG:i`
///   carries the type of input `TAG:i`.
/// * Input / output side packets: likewise matched by tag and index; each output side packet
///   is set in `open` to the input side packet's value.
/// * Options: none.
///
/// Stream headers are copied in `open`. The timestamp offset is 0, so timestamp bounds flow
/// through the node even when it has nothing to copy. Empty inputs produce nothing.
///
/// ```yaml
/// - calculator: PassThroughCalculator
///   input_stream: ["VIDEO:frames", "audio"]
///   output_stream: ["VIDEO:frames_out", "audio_out"]
/// ```
///
/// Registered as `PassThroughCalculator` and `PassThrough`.
pub struct PassThroughCalculator;

/// Checks that two port sets have the same tags with the same number of indexes.
fn same_tag_map(a: &PortSet, b: &PortSet) -> bool {
    let shape = |s: &PortSet| -> Vec<(String, usize)> {
        s.tags().map(|t| (t.to_string(), s.count(t))).collect()
    };
    shape(a) == shape(b)
}

fn describe(s: &PortSet) -> String {
    let parts: Vec<String> = s
        .tags()
        .map(|t| {
            let tag = if t.is_empty() { "(untagged)" } else { t };
            format!("{tag} x{}", s.count(t))
        })
        .collect();
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(", ")
    }
}

impl Calculator for PassThroughCalculator {
    type Options = NoOptions;

    fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
        for (kind_in, kind_out, what) in [
            (PortKind::Input, PortKind::Output, "streams"),
            (PortKind::SideInput, PortKind::SideOutput, "side packets"),
        ] {
            let (ins, outs) = (cc.ports(kind_in), cc.ports(kind_out));
            if !same_tag_map(ins, outs) {
                return Err(cc.error(crate::Error::Config {
                    calculator: "PassThroughCalculator",
                    message: format!(
                        "input and output {what} must use matching tags and indexes (inputs: {}; outputs: {})",
                        describe(ins),
                        describe(outs)
                    ),
                }));
            }
            for id in 0..cc.ports(kind_in).len() {
                cc.set_type(
                    kind_in,
                    id,
                    TypeDecl::Type(mediagraph_framework::PacketType::Any),
                );
                cc.set_type(kind_out, id, TypeDecl::SameAs(kind_in, id));
            }
        }
        cc.set_timestamp_offset(0);
        cc.set_independent_calls(true);
        Ok(())
    }

    fn create(_: &NoOptions) -> Result<Self> {
        Ok(PassThroughCalculator)
    }

    fn open(&mut self, cx: &mut CalculatorContext) -> Result<()> {
        for id in 0..cx.inputs().len() {
            let header = cx.input_header(id);
            if !header.is_empty() {
                let header = header.clone();
                cx.output_at(id).set_header(header)?;
            }
        }
        for id in 0..cx.side_inputs().len() {
            let packet = cx.side_input_packet(id);
            if !packet.is_empty() {
                let packet = packet.clone();
                cx.set_side_output_packet(id, packet)?;
            }
        }
        Ok(())
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        if cx.inputs().is_empty() {
            return Ok(Flow::Stop);
        }
        for id in 0..cx.inputs().len() {
            let packet = cx.input_packet(id);
            if !packet.is_empty() {
                let packet = packet.clone();
                cx.output_at(id).add(packet)?;
            }
        }
        Ok(Flow::Continue)
    }
}

mediagraph_framework::register_calculator!(PassThroughCalculator, "PassThroughCalculator");
mediagraph_framework::register_calculator!(PassThroughCalculator, "PassThrough");

#[cfg(test)]
mod tests {
    use crate::test_util::*;
    use mediagraph_framework::{Packet, Timestamp};

    #[test]
    fn copies_each_input_to_the_matching_output() {
        let mut g = graph(
            r#"
input_stream: [a, b, v]
output_stream: [a_out, b_out, v_out]
node:
  - calculator: PassThroughCalculator
    input_stream: ["VIDEO:v", a, b]
    output_stream: [a_out, b_out, "VIDEO:v_out"]
"#,
        );
        let (ra, rb, rv) = (
            record(&mut g, "a_out"),
            record(&mut g, "b_out"),
            record(&mut g, "v_out"),
        );
        g.start_run(Default::default()).unwrap();
        g.add_packet("a", at(1i64, 10)).unwrap();
        g.add_packet("b", at(String::from("x"), 10)).unwrap();
        g.add_packet("v", at(2.5f64, 20)).unwrap();
        g.add_packet("a", at(3i64, 30)).unwrap();
        g.finish().unwrap();
        assert_eq!(ra.values::<i64>(), vec![(ts(10), 1), (ts(30), 3)]);
        assert_eq!(rb.values::<String>(), vec![(ts(10), "x".to_string())]);
        assert_eq!(rv.values::<f64>(), vec![(ts(20), 2.5)]);
    }

    #[test]
    fn shares_the_payload_instead_of_copying() {
        let mut g = graph(
            r#"
input_stream: [a]
node:
  - calculator: PassThrough
    input_stream: [a]
    output_stream: [b]
"#,
        );
        let rb = record(&mut g, "b");
        g.start_run(Default::default()).unwrap();
        let p = at(vec![7u8; 64], 5);
        g.add_packet("a", p.clone()).unwrap();
        g.finish().unwrap();
        let out = rb.packets();
        assert_eq!(out.len(), 1);
        assert!(out[0].shares_payload_with(&p));
        assert_eq!(out[0].timestamp(), ts(5));
    }

    #[test]
    fn passes_side_packets_through() {
        let mut g = graph(
            r#"
input_side_packet: [s0, s1]
node:
  - calculator: PassThroughCalculator
    input_side_packet: [s0, "MODEL:s1"]
    output_side_packet: [t0, "MODEL:t1"]
"#,
        );
        let side = [
            ("s0".to_string(), Packet::new(42i64)),
            ("s1".to_string(), Packet::new(String::from("m"))),
        ]
        .into_iter()
        .collect();
        g.run(side).unwrap();
        assert_eq!(
            *g.output_side_packet("t0").unwrap().get::<i64>().unwrap(),
            42
        );
        assert_eq!(
            g.output_side_packet("t1").unwrap().get::<String>().unwrap(),
            "m"
        );
    }

    #[test]
    fn mismatched_tag_maps_are_contract_errors() {
        let err = config_error(
            r#"
input_stream: [a, b]
node:
  - calculator: PassThroughCalculator
    input_stream: [a, b]
    output_stream: [c]
"#,
        );
        assert!(err.contains("matching tags and indexes"), "{err}");
        let err = config_error(
            r#"
input_stream: [a]
node:
  - calculator: PassThroughCalculator
    input_stream: ["A:a"]
    output_stream: ["B:c"]
"#,
        );
        assert!(err.contains("matching tags and indexes"), "{err}");
        let err = config_error(
            r#"
input_side_packet: [s]
node:
  - calculator: PassThroughCalculator
    input_side_packet: [s]
"#,
        );
        assert!(err.contains("side packets must use matching"), "{err}");
    }

    #[test]
    fn offset_zero_propagates_bounds_without_packets() {
        // The default-handler sink waits on both inputs; b only gets a bound through the
        // pass-through, which must forward it for the sink to see a at 1 and 2.
        let mut g = graph(
            r#"
input_stream: [a, b]
node:
  - calculator: PassThroughCalculator
    input_stream: [b]
    output_stream: [b2]
  - calculator: MergeCalculator
    input_stream: [a, b2]
    output_stream: [out]
"#,
        );
        let out = record(&mut g, "out");
        g.start_run(Default::default()).unwrap();
        g.add_packet("a", at(1i64, 1)).unwrap();
        g.add_packet("a", at(2i64, 2)).unwrap();
        g.set_input_stream_timestamp_bound("b", Timestamp::new(3))
            .unwrap();
        g.wait_until_idle().unwrap();
        assert_eq!(out.values::<i64>(), vec![(ts(1), 1), (ts(2), 2)]);
        g.finish().unwrap();
    }

    #[test]
    fn chain_of_ten_preserves_order_of_10000_packets() {
        let mut yaml = String::from("input_stream: [s0]\nnode:\n");
        for i in 0..10 {
            yaml.push_str(&format!(
                "  - calculator: PassThroughCalculator\n    input_stream: [s{i}]\n    output_stream: [s{}]\n",
                i + 1
            ));
        }
        let mut g = graph(&yaml);
        let out = record(&mut g, "s10");
        g.start_run(Default::default()).unwrap();
        for t in 0..10_000i64 {
            g.add_packet("s0", at(t * 3, t)).unwrap();
        }
        g.finish().unwrap();
        let got = out.values::<i64>();
        assert_eq!(got.len(), 10_000);
        for (i, (t, v)) in got.iter().enumerate() {
            assert_eq!(*t, ts(i as i64));
            assert_eq!(*v, 3 * i as i64);
        }
    }
}
