//! `StreamToSidePacketCalculator` and `DefaultSidePacketCalculator`: side packets made from a
//! stream, or from a default.

use mediagraph_framework::contract::TypeDecl;
use mediagraph_framework::prelude::*;
use mediagraph_framework::PortKind;

/// Turns the first packet of its input stream into its output side packet (MediaPipe's
/// `StreamToSidePacketCalculator`): e.g. a value computed from the first frame, for nodes
/// that take it as a side packet (they open once it is set).
///
/// * Input stream: one untagged stream (any type).
/// * Output side packet: one untagged side packet (the stream's type).
/// * Options: none.
///
/// A side packet is set once per run: a second input packet fails the run, naming its
/// timestamp (as in MediaPipe), rather than being ignored.
///
/// ```yaml
/// - calculator: StreamToSidePacketCalculator
///   input_stream: [first_frame_size]
///   output_side_packet: [frame_size]
/// ```
pub struct StreamToSidePacketCalculator {
    set_at: Option<Timestamp>,
}

const STREAM: Input<AnyPacket> = Input::any("");
const SIDE: SideOutput<AnyPacket> = SideOutput::any("");

impl Calculator for StreamToSidePacketCalculator {
    type Options = NoOptions;

    fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
        cc.declare(&[&STREAM, &SIDE])?;
        cc.set_type(
            PortKind::SideOutput,
            0,
            TypeDecl::SameAs(PortKind::Input, 0),
        );
        Ok(())
    }

    fn create(_: &NoOptions) -> Result<Self> {
        Ok(StreamToSidePacketCalculator { set_at: None })
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let ts = cx.input_timestamp();
        if let Some(first) = self.set_at {
            return Err(crate::Error::BadInput {
                calculator: "StreamToSidePacketCalculator",
                port: "(untagged)",
                message: format!(
                    "a second packet; the side packet was already made from the packet at {first}"
                ),
            }
            .into());
        }
        let packet = cx.input(&STREAM).packet().clone();
        cx.set_side_output_packet(0, packet)?;
        self.set_at = Some(ts);
        Ok(Flow::Continue)
    }
}

mediagraph_framework::register_calculator!(
    StreamToSidePacketCalculator,
    "StreamToSidePacketCalculator"
);

/// Outputs `OPTIONAL_VALUE` as `VALUE` when the run has it, else `DEFAULT_VALUE` (MediaPipe's
/// `DefaultSidePacketCalculator`): a graph can let the application override a setting.
///
/// * Input side packets: `OPTIONAL_VALUE` (optional), `DEFAULT_VALUE` (same type).
/// * Output side packet: `VALUE` (same type).
/// * Options: none.
///
/// ```yaml
/// - calculator: ConstantSidePacketCalculator
///   output_side_packet: ["PACKET:0:default_threshold"]
///   options: {packet: [{float_value: 0.5}]}
/// - calculator: DefaultSidePacketCalculator
///   input_side_packet: ["OPTIONAL_VALUE:threshold", "DEFAULT_VALUE:default_threshold"]
///   output_side_packet: ["VALUE:used_threshold"]
/// ```
pub struct DefaultSidePacketCalculator;

const OPTIONAL_VALUE: SideInput<AnyPacket> = SideInput::any("OPTIONAL_VALUE").optional();
const DEFAULT_VALUE: SideInput<AnyPacket> = SideInput::any("DEFAULT_VALUE");
const VALUE: SideOutput<AnyPacket> = SideOutput::any("VALUE");

impl Calculator for DefaultSidePacketCalculator {
    type Options = NoOptions;

    fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
        cc.declare(&[&OPTIONAL_VALUE, &DEFAULT_VALUE, &VALUE])?;
        let default = cc.side_inputs().id("DEFAULT_VALUE", 0).unwrap_or(0);
        if let Some(optional) = cc.side_inputs().id("OPTIONAL_VALUE", 0) {
            cc.set_type(
                PortKind::SideInput,
                optional,
                TypeDecl::SameAs(PortKind::SideInput, default),
            );
        }
        cc.set_type(
            PortKind::SideOutput,
            0,
            TypeDecl::SameAs(PortKind::SideInput, default),
        );
        Ok(())
    }

    fn create(_: &NoOptions) -> Result<Self> {
        Ok(DefaultSidePacketCalculator)
    }

    fn open(&mut self, cx: &mut CalculatorContext) -> Result<()> {
        let given = cx
            .side_inputs()
            .id("OPTIONAL_VALUE", 0)
            .map(|id| cx.side_input_packet(id))
            .filter(|p| !p.is_empty());
        let packet = match given {
            Some(p) => p.clone(),
            None => {
                let id = cx.side_inputs().id("DEFAULT_VALUE", 0).unwrap_or(0);
                cx.side_input_packet(id).clone()
            }
        };
        cx.set_side_output_packet(0, packet)
    }

    fn process(&mut self, _: &mut CalculatorContext) -> Result<Flow> {
        Ok(Flow::Stop)
    }
}

mediagraph_framework::register_calculator!(
    DefaultSidePacketCalculator,
    "DefaultSidePacketCalculator"
);

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::test_util::*;
    use mediagraph_framework::Packet;

    #[test]
    fn the_first_packet_becomes_the_side_packet_other_nodes_open_with() {
        let mut g = graph(
            r#"
input_stream: [sizes]
node:
  - {calculator: StreamToSidePacketCalculator, input_stream: [sizes], output_side_packet: [count]}
  - {calculator: CountingSourceCalculator, input_side_packet: ["MAX_COUNT:count"], output_stream: [numbers]}
"#,
        );
        let out = record(&mut g, "numbers");
        g.start_run(Default::default()).unwrap();
        g.add_packet("sizes", at(3i64, 5)).unwrap();
        g.finish().unwrap();
        assert_eq!(out.values::<i64>().len(), 3);
        assert_eq!(
            *g.output_side_packet("count").unwrap().get::<i64>().unwrap(),
            3
        );
    }

    #[test]
    fn a_second_packet_fails_the_run_naming_both_timestamps() {
        let mut g = graph(
            "input_stream: [s]\nnode:\n  - {calculator: StreamToSidePacketCalculator, input_stream: [s], output_side_packet: [v]}\n",
        );
        g.start_run(Default::default()).unwrap();
        g.add_packet("s", at(1i64, 5)).unwrap();
        let _ = g.add_packet("s", at(2i64, 9));
        let err = g.finish().unwrap_err().to_string();
        assert!(
            err.contains("at input timestamp 9") && err.contains("from the packet at 5"),
            "{err}"
        );
    }

    fn used_threshold(given: Option<f32>) -> f32 {
        let mut g = graph(
            r#"
input_side_packet: [threshold]
node:
  - {calculator: ConstantSidePacketCalculator, output_side_packet: ["PACKET:0:default_threshold"], options: {packet: [{float_value: 0.5}]}}
  - {calculator: DefaultSidePacketCalculator, input_side_packet: ["OPTIONAL_VALUE:threshold", "DEFAULT_VALUE:default_threshold"], output_side_packet: ["VALUE:used"]}
"#,
        );
        let mut side = HashMap::new();
        if let Some(t) = given {
            side.insert("threshold".to_string(), Packet::new(t));
        }
        g.run(side).unwrap();
        *g.output_side_packet("used").unwrap().get::<f32>().unwrap()
    }

    #[test]
    fn the_default_applies_unless_the_run_gives_the_value() {
        assert_eq!(used_threshold(None), 0.5);
        assert_eq!(used_threshold(Some(0.8)), 0.8);
    }
}
