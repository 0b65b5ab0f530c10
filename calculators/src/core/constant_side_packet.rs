//! `ConstantSidePacketCalculator`: side packets written in the config.

use mediagraph_framework::contract::TypeDecl;
use mediagraph_framework::prelude::*;
use mediagraph_framework::{PacketType, PortKind};
use serde::Deserialize;

/// Outputs the side packets given in its options, one per `PACKET:i` output side packet
/// (MediaPipe's `ConstantSidePacketCalculator`): a graph can set a flag, a path or a
/// threshold for its other nodes without the application passing it in.
///
/// * Output side packets: `PACKET:0..n`, typed by the value given for each.
/// * Options ([`ConstantSidePacketCalculatorOptions`]): `packet`, one entry per output, each
///   exactly one of `int_value` (i32), `int64_value` (i64), `uint64_value` (u64),
///   `float_value` (f32), `double_value` (f64), `bool_value`, `string_value` (String).
///
/// The side packets are set in `open`; the node has no streams and closes right after.
///
/// ```yaml
/// - calculator: ConstantSidePacketCalculator
///   output_side_packet: ["PACKET:0:max_count", "PACKET:1:label"]
///   options: {packet: [{int64_value: 10}, {string_value: "Person"}]}
/// ```
pub struct ConstantSidePacketCalculator {
    values: Vec<ConstantValue>,
}

/// One constant: exactly one of the fields is set.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConstantSidePacket {
    /// An i32.
    pub int_value: Option<i32>,
    /// An i64.
    pub int64_value: Option<i64>,
    /// A u64.
    pub uint64_value: Option<u64>,
    /// An f32.
    pub float_value: Option<f32>,
    /// An f64.
    pub double_value: Option<f64>,
    /// A bool.
    pub bool_value: Option<bool>,
    /// A String.
    pub string_value: Option<String>,
}

/// Options of [`ConstantSidePacketCalculator`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConstantSidePacketCalculatorOptions {
    /// The constants, in `PACKET` index order.
    pub packet: Vec<ConstantSidePacket>,
}

/// A checked constant.
#[derive(Clone, Debug, PartialEq)]
enum ConstantValue {
    I32(i32),
    I64(i64),
    U64(u64),
    F32(f32),
    F64(f64),
    Bool(bool),
    Text(String),
}

impl ConstantValue {
    /// The one value `p` sets, or what is wrong with it (`i` is its index).
    fn from_entry(i: usize, p: &ConstantSidePacket) -> Result<ConstantValue, crate::Error> {
        let set: Vec<ConstantValue> = [
            p.int_value.map(ConstantValue::I32),
            p.int64_value.map(ConstantValue::I64),
            p.uint64_value.map(ConstantValue::U64),
            p.float_value.map(ConstantValue::F32),
            p.double_value.map(ConstantValue::F64),
            p.bool_value.map(ConstantValue::Bool),
            p.string_value.clone().map(ConstantValue::Text),
        ]
        .into_iter()
        .flatten()
        .collect();
        match <[ConstantValue; 1]>::try_from(set) {
            Ok([value]) => Ok(value),
            Err(set) => Err(crate::Error::Config {
                calculator: "ConstantSidePacketCalculator",
                message: format!(
                    "option packet[{i}] must set exactly one of int_value, int64_value, uint64_value, float_value, double_value, bool_value, string_value ({} set)",
                    set.len()
                ),
            }),
        }
    }

    fn packet_type(&self) -> PacketType {
        match self {
            ConstantValue::I32(_) => PacketType::of::<i32>(),
            ConstantValue::I64(_) => PacketType::of::<i64>(),
            ConstantValue::U64(_) => PacketType::of::<u64>(),
            ConstantValue::F32(_) => PacketType::of::<f32>(),
            ConstantValue::F64(_) => PacketType::of::<f64>(),
            ConstantValue::Bool(_) => PacketType::of::<bool>(),
            ConstantValue::Text(_) => PacketType::of::<String>(),
        }
    }

    fn packet(&self) -> Packet {
        match self {
            ConstantValue::I32(v) => Packet::new(*v),
            ConstantValue::I64(v) => Packet::new(*v),
            ConstantValue::U64(v) => Packet::new(*v),
            ConstantValue::F32(v) => Packet::new(*v),
            ConstantValue::F64(v) => Packet::new(*v),
            ConstantValue::Bool(v) => Packet::new(*v),
            ConstantValue::Text(v) => Packet::new(v.clone()),
        }
    }
}

fn values(o: &ConstantSidePacketCalculatorOptions) -> Result<Vec<ConstantValue>, crate::Error> {
    o.packet
        .iter()
        .enumerate()
        .map(|(i, p)| ConstantValue::from_entry(i, p))
        .collect()
}

const PACKET: SideOutput<AnyPacket> = SideOutput::any("PACKET").multiple();

impl Calculator for ConstantSidePacketCalculator {
    type Options = ConstantSidePacketCalculatorOptions;

    fn contract(cc: &mut Contract, o: &ConstantSidePacketCalculatorOptions) -> Result<()> {
        cc.declare(&[&PACKET])?;
        let values = values(o).map_err(|e| cc.error(e))?;
        let ids: Vec<usize> = cc.side_outputs().ids("PACKET").collect();
        if ids.len() != values.len() {
            return Err(cc.error(crate::Error::Config {
                calculator: "ConstantSidePacketCalculator",
                message: format!(
                    "{} PACKET output side packets but {} values in option packet; give one value per output",
                    ids.len(),
                    values.len()
                ),
            }));
        }
        for (id, value) in ids.into_iter().zip(&values) {
            cc.set_type(
                PortKind::SideOutput,
                id,
                TypeDecl::Type(value.packet_type()),
            );
        }
        Ok(())
    }

    fn create(o: &ConstantSidePacketCalculatorOptions) -> Result<Self> {
        Ok(ConstantSidePacketCalculator { values: values(o)? })
    }

    fn open(&mut self, cx: &mut CalculatorContext) -> Result<()> {
        let ids: Vec<usize> = cx.side_outputs().ids("PACKET").collect();
        for (id, value) in ids.into_iter().zip(&self.values) {
            cx.set_side_output_packet(id, value.packet())?;
        }
        Ok(())
    }

    fn process(&mut self, _: &mut CalculatorContext) -> Result<Flow> {
        Ok(Flow::Stop)
    }
}

mediagraph_framework::register_calculator!(
    ConstantSidePacketCalculator,
    "ConstantSidePacketCalculator"
);

#[cfg(test)]
mod tests {
    use crate::test_util::*;

    #[test]
    fn constants_feed_other_nodes() {
        // The counting source reads its count from the constant.
        let mut g = graph(
            r#"
node:
  - calculator: ConstantSidePacketCalculator
    output_side_packet: ["PACKET:0:count", "PACKET:1:name", "PACKET:2:ratio"]
    options: {packet: [{int64_value: 4}, {string_value: "four"}, {double_value: 0.25}]}
  - calculator: CountingSourceCalculator
    input_side_packet: ["MAX_COUNT:count"]
    output_stream: [numbers]
"#,
        );
        let out = record(&mut g, "numbers");
        g.run(Default::default()).unwrap();
        let got: Vec<i64> = out.values::<i64>().into_iter().map(|(_, v)| v).collect();
        assert_eq!(got, vec![0, 1, 2, 3]);
    }

    #[test]
    fn each_entry_sets_exactly_one_value_and_one_per_output() {
        let err = |yaml: &str| match mediagraph_framework::Graph::from_yaml_str(yaml) {
            Ok(_) => panic!("accepted: {yaml}"),
            Err(e) => e.to_string(),
        };
        let two = err("node:\n  - {calculator: ConstantSidePacketCalculator, output_side_packet: [\"PACKET:0:a\"], options: {packet: [{int_value: 1, bool_value: true}]}}\n");
        assert!(
            two.contains("option packet[0] must set exactly one of"),
            "{two}"
        );
        assert!(two.contains("(2 set)"), "{two}");
        let count = err("node:\n  - {calculator: ConstantSidePacketCalculator, output_side_packet: [\"PACKET:0:a\", \"PACKET:1:b\"], options: {packet: [{int_value: 1}]}}\n");
        assert!(
            count.contains("2 PACKET output side packets but 1 values"),
            "{count}"
        );
    }

    #[test]
    fn a_constant_of_the_wrong_type_is_refused_at_load() {
        let e = match mediagraph_framework::Graph::from_yaml_str(
            "node:\n  - {calculator: ConstantSidePacketCalculator, output_side_packet: [\"PACKET:0:count\"], options: {packet: [{string_value: \"4\"}]}}\n  - {calculator: CountingSourceCalculator, input_side_packet: [\"MAX_COUNT:count\"], output_stream: [n]}\n",
        ) {
            Ok(_) => panic!("a String fed an int side input"),
            Err(e) => e.to_string(),
        };
        assert!(
            e.contains("carries String but") && e.contains("MAX_COUNT expects i64"),
            "{e}"
        );
    }
}
