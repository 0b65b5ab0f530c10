//! `SidePacketToStreamCalculator`: side packets as stream packets.

use mediagraph_framework::contract::TypeDecl;
use mediagraph_framework::prelude::*;
use mediagraph_framework::{PacketType, PortKind};

/// Emits its untagged input side packets on output streams, at a timestamp chosen by the
/// output tag (exactly one of):
///
/// | Output tag | Timestamp | When |
/// |---|---|---|
/// | `AT_PRESTREAM` | `PreStream` | at the end of the run (the node is a source that stops at once) |
/// | `AT_POSTSTREAM` | `PostStream` | same |
/// | `AT_ZERO` | `0` | same |
/// | `AT_TIMESTAMP` | the `TIMESTAMP` side packet (i64 µs) | same |
/// | `AT_TICK` | each `TICK` packet's timestamp | on every `TICK` packet |
/// | `AT_FIRST_TICK` | the first `TICK` packet's timestamp | once; the outputs are then closed |
///
/// * Input stream: `TICK` (any type), required with `AT_TICK` / `AT_FIRST_TICK` and not
///   allowed otherwise.
/// * Input side packets: untagged values `:0..n` (any types), one per output index; plus
///   `TIMESTAMP` (i64) with `AT_TIMESTAMP` only.
/// * Output streams: `TAG:0..n`, output `i` carrying side packet `i` (same type).
/// * Options: none.
///
/// With `TICK`, the timestamp offset is 0, so `TICK` bounds pass through.
///
/// ```yaml
/// - calculator: SidePacketToStreamCalculator
///   input_stream: ["TICK:frames"]
///   input_side_packet: [model_name]
///   output_stream: ["AT_TICK:model_names"]
/// ```
pub struct SidePacketToStreamCalculator {
    mode: Mode,
    /// Output port ids, in index order.
    outputs: Vec<usize>,
    /// Side input port ids of the values, in index order.
    values: Vec<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    At(Timestamp),
    AtTimestampSidePacket,
    Tick,
    FirstTick,
}

const MODES: [&str; 6] = [
    "AT_PRESTREAM",
    "AT_POSTSTREAM",
    "AT_ZERO",
    "AT_TICK",
    "AT_FIRST_TICK",
    "AT_TIMESTAMP",
];

const TICK: Input<AnyPacket> = Input::any("TICK").optional();
const TIMESTAMP: SideInput<i64> = SideInput::new("TIMESTAMP").optional();

fn config_error(cc: &Contract, message: impl Into<String>) -> Error {
    cc.error(crate::Error::Config {
        calculator: "SidePacketToStreamCalculator",
        message: message.into(),
    })
}

fn output_tag(outputs: &mediagraph_framework::port::PortSet) -> Option<&str> {
    let mut tags = outputs.tags();
    match (tags.next(), tags.next()) {
        (Some(tag), None) if MODES.contains(&tag) => Some(tag),
        _ => None,
    }
}

impl Calculator for SidePacketToStreamCalculator {
    type Options = NoOptions;

    fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
        let Some(tag) = output_tag(cc.outputs()).map(str::to_string) else {
            return Err(config_error(
                cc,
                format!(
                    "exactly one output tag is required, one of {}",
                    MODES.join(", ")
                ),
            ));
        };
        let tick_output = tag == "AT_TICK" || tag == "AT_FIRST_TICK";
        if tick_output != cc.inputs().has_tag("TICK") {
            return Err(config_error(
                cc,
                "use the TICK input stream together with an AT_TICK or AT_FIRST_TICK output, or neither",
            ));
        }
        let at_timestamp = tag == "AT_TIMESTAMP";
        if at_timestamp != cc.side_inputs().has_tag("TIMESTAMP") {
            return Err(config_error(
                cc,
                "use the TIMESTAMP input side packet together with AT_TIMESTAMP outputs, or neither",
            ));
        }
        let n = cc.outputs().count(&tag);
        let values = cc.side_inputs().count("");
        if values != n {
            return Err(config_error(
                cc,
                format!(
                    "{n} {tag} output stream(s) need as many untagged input side packets, but {values} are connected"
                ),
            ));
        }
        cc.declare(&[&TICK, &TIMESTAMP])?;
        for i in 0..n {
            if let (Some(side), Some(out)) = (cc.side_inputs().id("", i), cc.outputs().id(&tag, i))
            {
                cc.set_type(PortKind::SideInput, side, TypeDecl::Type(PacketType::Any));
                cc.set_type(
                    PortKind::Output,
                    out,
                    TypeDecl::SameAs(PortKind::SideInput, side),
                );
            }
        }
        if tick_output {
            cc.set_timestamp_offset(0);
        }
        Ok(())
    }

    fn create(_: &NoOptions) -> Result<Self> {
        Ok(SidePacketToStreamCalculator {
            mode: Mode::At(Timestamp::new(0)),
            outputs: Vec::new(),
            values: Vec::new(),
        })
    }

    fn open(&mut self, cx: &mut CalculatorContext) -> Result<()> {
        let tag = output_tag(cx.outputs()).unwrap_or("AT_ZERO").to_string();
        self.mode = match tag.as_str() {
            "AT_PRESTREAM" => Mode::At(Timestamp::PRE_STREAM),
            "AT_POSTSTREAM" => Mode::At(Timestamp::POST_STREAM),
            "AT_TICK" => Mode::Tick,
            "AT_FIRST_TICK" => Mode::FirstTick,
            "AT_TIMESTAMP" => Mode::AtTimestampSidePacket,
            _ => Mode::At(Timestamp::new(0)),
        };
        self.outputs = cx.outputs().ids(&tag).collect();
        self.values = cx.side_inputs().ids("").collect();
        Ok(())
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        if !matches!(self.mode, Mode::Tick | Mode::FirstTick) {
            // No input streams: a source with nothing to do until `close`.
            return Ok(Flow::Stop);
        }
        let Some(&first) = self.outputs.first() else {
            return Ok(Flow::Continue);
        };
        if cx.output_at(first).is_closed() {
            return Ok(Flow::Continue);
        }
        let ts = cx.input_timestamp();
        self.emit(cx, ts)?;
        if self.mode == Mode::FirstTick {
            for &id in &self.outputs {
                cx.output_at(id).close();
            }
        }
        Ok(Flow::Continue)
    }

    fn close(&mut self, cx: &mut CalculatorContext) -> Result<()> {
        let ts = match self.mode {
            Mode::At(ts) => ts,
            Mode::AtTimestampSidePacket => {
                let micros = *cx.side_input(&TIMESTAMP)?;
                Timestamp::try_new(micros).map_err(|e| crate::Error::SidePacket {
                    tag: "TIMESTAMP",
                    message: e.to_string(),
                })?
            }
            Mode::Tick | Mode::FirstTick => return Ok(()),
        };
        self.emit(cx, ts)
    }
}

impl SidePacketToStreamCalculator {
    fn emit(&self, cx: &mut CalculatorContext, ts: Timestamp) -> Result<()> {
        for (&out, &side) in self.outputs.iter().zip(&self.values) {
            let value = cx.side_input_packet(side);
            if value.is_empty() {
                return Err(Error::msg(format!(
                    "input side packet \"{}\" has no value",
                    cx.side_inputs().entry(side).name
                )));
            }
            let packet = value.at(ts);
            cx.output_at(out).add(packet)?;
        }
        Ok(())
    }
}

mediagraph_framework::register_calculator!(
    SidePacketToStreamCalculator,
    "SidePacketToStreamCalculator"
);

#[cfg(test)]
mod tests {
    use crate::test_util::*;
    use mediagraph_framework::{Packet, SidePackets, Timestamp};

    fn side(values: &[(&str, Packet)]) -> SidePackets {
        values
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn run_source_mode(tag: &str) -> Vec<(Timestamp, String)> {
        let mut g = graph(&format!(
            r#"
input_side_packet: [text]
node:
  - calculator: SidePacketToStreamCalculator
    input_side_packet: [text]
    output_stream: ["{tag}:out"]
"#
        ));
        let out = record(&mut g, "out");
        g.run(side(&[("text", Packet::new(String::from("hello")))]))
            .unwrap();
        out.values::<String>()
    }

    #[test]
    fn fixed_timestamp_modes() {
        let hello = || "hello".to_string();
        assert_eq!(
            run_source_mode("AT_PRESTREAM"),
            vec![(Timestamp::PRE_STREAM, hello())]
        );
        assert_eq!(
            run_source_mode("AT_POSTSTREAM"),
            vec![(Timestamp::POST_STREAM, hello())]
        );
        assert_eq!(run_source_mode("AT_ZERO"), vec![(ts(0), hello())]);
    }

    #[test]
    fn at_timestamp_uses_the_timestamp_side_packet() {
        let mut g = graph(
            r#"
input_side_packet: [when, text]
node:
  - calculator: SidePacketToStreamCalculator
    input_side_packet: ["TIMESTAMP:when", text]
    output_stream: ["AT_TIMESTAMP:out"]
"#,
        );
        let out = record(&mut g, "out");
        g.run(side(&[
            ("when", Packet::new(123_456i64)),
            ("text", Packet::new(String::from("hi"))),
        ]))
        .unwrap();
        assert_eq!(
            out.values::<String>(),
            vec![(ts(123_456), "hi".to_string())]
        );

        // A reserved value is an error, not a crash.
        let err = g
            .run(side(&[
                ("when", Packet::new(i64::MAX)),
                ("text", Packet::new(String::from("hi"))),
            ]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("TIMESTAMP"), "{err}");
    }

    type TickOutputs = (Vec<(Timestamp, i64)>, Vec<(Timestamp, String)>);

    fn run_tick_mode(tag: &str) -> TickOutputs {
        let mut g = graph(&format!(
            r#"
input_stream: [tick]
input_side_packet: [a, b]
node:
  - calculator: SidePacketToStreamCalculator
    input_stream: ["TICK:tick"]
    input_side_packet: [a, b]
    output_stream: ["{tag}:0:out_a", "{tag}:1:out_b"]
"#
        ));
        let (ra, rb) = (record(&mut g, "out_a"), record(&mut g, "out_b"));
        g.start_run(side(&[
            ("a", Packet::new(7i64)),
            ("b", Packet::new(String::from("b"))),
        ]))
        .unwrap();
        for t in [5, 7, 9] {
            g.add_packet("tick", at((), t)).unwrap();
        }
        g.finish().unwrap();
        (ra.values::<i64>(), rb.values::<String>())
    }

    #[test]
    fn at_tick_emits_on_every_tick() {
        let (a, b) = run_tick_mode("AT_TICK");
        assert_eq!(a, vec![(ts(5), 7), (ts(7), 7), (ts(9), 7)]);
        let b_ts: Vec<Timestamp> = b.iter().map(|(t, _)| *t).collect();
        assert_eq!(b_ts, vec![ts(5), ts(7), ts(9)]);
        assert!(b.iter().all(|(_, v)| v == "b"));
    }

    #[test]
    fn at_first_tick_emits_once() {
        let (a, b) = run_tick_mode("AT_FIRST_TICK");
        assert_eq!(a, vec![(ts(5), 7)]);
        assert_eq!(b, vec![(ts(5), "b".to_string())]);
    }

    #[test]
    fn tick_bounds_pass_through() {
        // Merge waits on both inputs; x at 1 and 2 can only be merged once the AT_TICK output
        // announced (from the TICK bound alone) that nothing will come there.
        let mut g = graph(
            r#"
input_stream: [tick, x]
input_side_packet: [v]
node:
  - calculator: SidePacketToStreamCalculator
    input_stream: ["TICK:tick"]
    input_side_packet: [v]
    output_stream: ["AT_TICK:ticked"]
  - calculator: MergeCalculator
    input_stream: [ticked, x]
    output_stream: [merged]
"#,
        );
        let merged = record(&mut g, "merged");
        g.start_run(side(&[("v", Packet::new(0i64))])).unwrap();
        g.add_packet("x", at(1i64, 1)).unwrap();
        g.add_packet("x", at(2i64, 2)).unwrap();
        g.set_input_stream_timestamp_bound("tick", Timestamp::new(3))
            .unwrap();
        g.wait_until_idle().unwrap();
        assert_eq!(merged.values::<i64>(), vec![(ts(1), 1), (ts(2), 2)]);
        g.add_packet("tick", at((), 3)).unwrap();
        g.finish().unwrap();
        assert_eq!(
            merged.values::<i64>(),
            vec![(ts(1), 1), (ts(2), 2), (ts(3), 0)]
        );
    }

    #[test]
    fn several_indexes() {
        let mut g = graph(
            r#"
input_side_packet: [x, y]
node:
  - calculator: SidePacketToStreamCalculator
    input_side_packet: [x, y]
    output_stream: ["AT_ZERO:0:ox", "AT_ZERO:1:oy"]
"#,
        );
        let (ox, oy) = (record(&mut g, "ox"), record(&mut g, "oy"));
        g.run(side(&[("x", Packet::new(1i64)), ("y", Packet::new(2i64))]))
            .unwrap();
        assert_eq!(ox.values::<i64>(), vec![(ts(0), 1)]);
        assert_eq!(oy.values::<i64>(), vec![(ts(0), 2)]);
    }

    #[test]
    fn contract_errors() {
        let cases = [
            // Two output tags.
            (
                r#"["AT_ZERO:a", "AT_PRESTREAM:b"]"#,
                "[x, y]",
                "",
                "exactly one output tag",
            ),
            // Unknown tag.
            (r#"["AT_NOON:a"]"#, "[x]", "", "exactly one output tag"),
            // TICK without a tick output.
            (
                r#"["AT_ZERO:a"]"#,
                "[x]",
                r#"input_stream: ["TICK:t"]"#,
                "TICK",
            ),
            // Tick output without TICK.
            (r#"["AT_TICK:a"]"#, "[x]", "", "TICK"),
            // AT_TIMESTAMP without TIMESTAMP.
            (r#"["AT_TIMESTAMP:a"]"#, "[x]", "", "TIMESTAMP"),
            // Count mismatch.
            (
                r#"["AT_ZERO:0:a", "AT_ZERO:1:b"]"#,
                "[x]",
                "",
                "need as many",
            ),
        ];
        for (outputs, sides, extra, expected) in cases {
            let yaml = format!(
                r#"
input_stream: [t]
input_side_packet: [x, y]
node:
  - calculator: SidePacketToStreamCalculator
    input_side_packet: {sides}
    output_stream: {outputs}
    {extra}
"#
            );
            let err = config_error(&yaml);
            assert!(err.contains(expected), "{outputs} {extra}: {err}");
        }
    }
}
