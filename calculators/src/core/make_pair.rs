//! `MakePairCalculator`: pairs the packets of two streams at each timestamp.

use mediagraph_framework::prelude::*;

/// Combines its two inputs at each timestamp into one `(Packet, Packet)` (MediaPipe's
/// `MakePairCalculator`; either side is an empty packet when that input has nothing at the
/// timestamp).
///
/// * Input streams: exactly two untagged streams (any types).
/// * Output stream: one untagged `(Packet, Packet)`.
/// * Options: none. Timestamp offset 0.
///
/// ```yaml
/// - calculator: MakePairCalculator
///   input_stream: [image, detections]
///   output_stream: [image_and_detections]
/// ```
pub struct MakePairCalculator;

const IN: Input<AnyPacket> = Input::any("").multiple();
const OUT: Output<(Packet, Packet)> = Output::new("");

impl Calculator for MakePairCalculator {
    type Options = NoOptions;

    fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
        cc.declare(&[&IN, &OUT])?;
        if cc.inputs().count("") != 2 {
            return Err(cc.error(crate::Error::Config {
                calculator: "MakePairCalculator",
                message: format!(
                    "takes exactly two untagged input streams (got {})",
                    cc.inputs().count("")
                ),
            }));
        }
        cc.set_timestamp_offset(0);
        cc.set_independent_calls(true);
        Ok(())
    }

    fn create(_: &NoOptions) -> Result<Self> {
        Ok(MakePairCalculator)
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let a = cx.input_index(&IN, 0).packet().clone();
        let b = cx.input_index(&IN, 1).packet().clone();
        let ts = cx.input_timestamp();
        cx.output(&OUT).send((a, b), ts)?;
        Ok(Flow::Continue)
    }
}

mediagraph_framework::register_calculator!(MakePairCalculator, "MakePairCalculator");

#[cfg(test)]
mod tests {
    use crate::test_util::*;
    use mediagraph_framework::Packet;

    #[test]
    fn pairs_the_two_inputs() {
        let mut g = graph(
            "input_stream: [a, b]\nnode:\n  - calculator: MakePairCalculator\n    input_stream: [a, b]\n    output_stream: [pair]\n",
        );
        let out = record(&mut g, "pair");
        g.start_run(Default::default()).unwrap();
        g.add_packet("a", at(1i64, 10)).unwrap();
        g.add_packet("b", at(String::from("x"), 10)).unwrap();
        g.add_packet("a", at(2i64, 20)).unwrap();
        g.finish().unwrap();
        let got = out.values::<(Packet, Packet)>();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, ts(10));
        assert_eq!(*got[0].1 .0.get::<i64>().unwrap(), 1);
        assert_eq!(got[0].1 .1.get::<String>().unwrap(), "x");
        assert_eq!(got[1].0, ts(20));
        assert_eq!(*got[1].1 .0.get::<i64>().unwrap(), 2);
        assert!(got[1].1 .1.is_empty());
    }

    #[test]
    fn needs_two_inputs() {
        let err = config_error(
            "input_stream: [a]\nnode:\n  - calculator: MakePairCalculator\n    input_stream: [a]\n    output_stream: [pair]\n",
        );
        assert!(err.contains("exactly two"), "{err}");
    }
}
