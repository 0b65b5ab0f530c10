//! `GateCalculator`: lets data streams through only while allowed.

use mediagraph_framework::contract::TypeDecl;
use mediagraph_framework::prelude::*;
use mediagraph_framework::PortKind;
use serde::Deserialize;

/// Passes its data streams through only while the gate is open.
///
/// * Input streams: one or more untagged data streams (any types), plus at most one control
///   stream: `ALLOW` (bool; `true` opens the gate) or `DISALLOW` (bool; `true` closes it).
/// * Input side packets: instead of a control stream, `ALLOW` or `DISALLOW` (bool) fixes the
///   decision for the whole run. Control by stream and by side packet together is an error,
///   as is giving both `ALLOW` and `DISALLOW`.
/// * Output streams: one untagged output per untagged input (same type, same index), and an
///   optional `STATE_CHANGE` (bool).
/// * Options ([`GateCalculatorOptions`]): `allow` (decision when no control is connected,
///   default false), `empty_packets_as_allow` (decision at a timestamp where the control
///   stream has no packet, default false), `initial_gate_state` (the state assumed before the
///   first timestamp, for `STATE_CHANGE`).
///
/// Uses the default input stream handler, so the control packet at timestamp `T` is matched
/// with the data packets at `T`. Disallowed timestamps still advance the outputs' timestamp
/// bounds (timestamp offset 0), so downstream nodes never wait on a closed gate. When a side
/// packet disallows, the data outputs are closed at the first timestamp. `STATE_CHANGE`
/// carries the new decision at the timestamp where it differs from the previous one (never at
/// the first timestamp, unless `initial_gate_state` names a state).
///
/// ```yaml
/// - calculator: GateCalculator
///   input_stream: [frames, "ALLOW:enabled"]
///   output_stream: [gated_frames, "STATE_CHANGE:changed"]
///   options: {empty_packets_as_allow: true}
/// ```
pub struct GateCalculator {
    control: Control,
    empty_packets_as_allow: bool,
    last_state: Option<bool>,
    data_outputs_closed: bool,
}

/// Options of [`GateCalculator`] (MediaPipe's `GateCalculatorOptions`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GateCalculatorOptions {
    /// At a timestamp where the `ALLOW`/`DISALLOW` stream has no packet: `false` (default)
    /// disallows, `true` allows.
    pub empty_packets_as_allow: bool,
    /// The decision when no `ALLOW`/`DISALLOW` stream or side packet is connected (default
    /// false).
    pub allow: bool,
    /// The gate state assumed before the first timestamp; a first decision that differs from
    /// it is reported on `STATE_CHANGE`. Default `GATE_UNINITIALIZED` (never reported).
    pub initial_gate_state: GateState,
}

/// A gate state, as written in `initial_gate_state`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GateState {
    /// Not set; treated like `GATE_UNINITIALIZED`.
    Unspecified,
    /// No state yet: the first decision is not a change.
    #[default]
    GateUninitialized,
    /// Open.
    GateAllow,
    /// Closed.
    GateDisallow,
}

impl GateState {
    fn as_decision(self) -> Option<bool> {
        match self {
            GateState::Unspecified | GateState::GateUninitialized => None,
            GateState::GateAllow => Some(true),
            GateState::GateDisallow => Some(false),
        }
    }
}

/// Where the decision comes from.
enum Control {
    /// Fixed for the run (options or side packet); `by_side_packet` closes outputs when false.
    Fixed { allow: bool, by_side_packet: bool },
    /// Per timestamp, from the `ALLOW` / `DISALLOW` stream.
    Stream,
}

const DATA_IN: Input<AnyPacket> = Input::any("").multiple();
const ALLOW_IN: Input<bool> = Input::new("ALLOW").optional();
const DISALLOW_IN: Input<bool> = Input::new("DISALLOW").optional();
const ALLOW_SIDE: SideInput<bool> = SideInput::new("ALLOW").optional();
const DISALLOW_SIDE: SideInput<bool> = SideInput::new("DISALLOW").optional();
const DATA_OUT: Output<AnyPacket> = Output::any("").multiple();
const STATE_CHANGE: Output<bool> = Output::new("STATE_CHANGE").optional();

fn config_error(cc: &Contract, message: impl Into<String>) -> Error {
    cc.error(crate::Error::Config {
        calculator: "GateCalculator",
        message: message.into(),
    })
}

/// The output bound a timestamp offset of 0 implies after processing input timestamp `ts`.
fn bound_after(ts: Timestamp) -> Timestamp {
    if ts == Timestamp::PRE_STREAM {
        Timestamp::MIN
    } else if ts == Timestamp::MAX {
        Timestamp::POST_STREAM
    } else {
        ts.next_allowed_in_stream()
    }
}

impl Calculator for GateCalculator {
    type Options = GateCalculatorOptions;

    fn contract(cc: &mut Contract, _: &GateCalculatorOptions) -> Result<()> {
        let via_side = cc.side_inputs().has_tag("ALLOW") || cc.side_inputs().has_tag("DISALLOW");
        let via_stream = cc.inputs().has_tag("ALLOW") || cc.inputs().has_tag("DISALLOW");
        if via_side && via_stream {
            return Err(config_error(
                cc,
                "ALLOW/DISALLOW may be given as an input stream or as an input side packet, not both",
            ));
        }
        if cc.side_inputs().has_tag("ALLOW") && cc.side_inputs().has_tag("DISALLOW") {
            return Err(config_error(
                cc,
                "give either the ALLOW or the DISALLOW side packet, not both",
            ));
        }
        if cc.inputs().has_tag("ALLOW") && cc.inputs().has_tag("DISALLOW") {
            return Err(config_error(
                cc,
                "give either the ALLOW or the DISALLOW stream, not both",
            ));
        }
        let n_in = cc.inputs().count("");
        let n_out = cc.outputs().count("");
        if n_in != n_out {
            return Err(config_error(
                cc,
                format!(
                    "the number of data output streams ({n_out}) must match the number of data input streams ({n_in})"
                ),
            ));
        }
        cc.declare(&[
            &DATA_IN,
            &ALLOW_IN,
            &DISALLOW_IN,
            &ALLOW_SIDE,
            &DISALLOW_SIDE,
            &DATA_OUT,
            &STATE_CHANGE,
        ])?;
        for i in 0..n_in {
            if let (Some(input), Some(output)) = (cc.inputs().id("", i), cc.outputs().id("", i)) {
                cc.set_type(
                    PortKind::Output,
                    output,
                    TypeDecl::SameAs(PortKind::Input, input),
                );
            }
        }
        cc.set_timestamp_offset(0);
        Ok(())
    }

    fn create(options: &GateCalculatorOptions) -> Result<Self> {
        Ok(GateCalculator {
            control: Control::Fixed {
                allow: options.allow,
                by_side_packet: false,
            },
            empty_packets_as_allow: options.empty_packets_as_allow,
            last_state: options.initial_gate_state.as_decision(),
            data_outputs_closed: false,
        })
    }

    fn open(&mut self, cx: &mut CalculatorContext) -> Result<()> {
        let side = |tag: &'static str, port: &SideInput<bool>| -> Result<Option<bool>> {
            if !cx.side_inputs().has_tag(tag) {
                return Ok(None);
            }
            match cx.side_input_opt(port) {
                Ok(Some(v)) => Ok(Some(*v)),
                Ok(None) | Err(Error::EmptyPacket { .. }) => Err(crate::Error::SidePacket {
                    tag,
                    message: "connected but not provided".into(),
                }
                .into()),
                Err(e) => Err(e),
            }
        };
        if let Some(allow) = side("ALLOW", &ALLOW_SIDE)? {
            self.control = Control::Fixed {
                allow,
                by_side_packet: true,
            };
        } else if let Some(disallow) = side("DISALLOW", &DISALLOW_SIDE)? {
            self.control = Control::Fixed {
                allow: !disallow,
                by_side_packet: true,
            };
        } else if cx.has_input(&ALLOW_IN) || cx.has_input(&DISALLOW_IN) {
            self.control = Control::Stream;
        }
        for i in 0..cx.inputs().count("") {
            if let (Some(input), Some(output)) = (cx.inputs().id("", i), cx.outputs().id("", i)) {
                let header = cx.input_header(input);
                if !header.is_empty() {
                    let header = header.clone();
                    cx.output_at(output).set_header(header)?;
                }
            }
        }
        Ok(())
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let ts = cx.input_timestamp();
        let (allow, by_side_packet) = match self.control {
            Control::Fixed {
                allow,
                by_side_packet,
            } => (allow, by_side_packet),
            Control::Stream => {
                let mut allow = self.empty_packets_as_allow;
                if let Some(v) = cx.input(&ALLOW_IN).get()? {
                    allow = *v;
                }
                if let Some(v) = cx.input(&DISALLOW_IN).get()? {
                    allow = !*v;
                }
                (allow, false)
            }
        };

        if self.last_state.is_some_and(|last| last != allow) {
            tracing::trace!(node = cx.node_name(), %ts, allow, "gate state change");
            cx.output(&STATE_CHANGE).send(allow, ts)?;
        }
        self.last_state = Some(allow);

        let data_outputs: Vec<usize> = cx.outputs().ids("").collect();
        if !allow {
            if by_side_packet {
                // The gate stays closed for the whole run: close the outputs so downstream
                // nodes do not buffer waiting for them.
                if !self.data_outputs_closed {
                    for &id in &data_outputs {
                        cx.output_at(id).close();
                    }
                    self.data_outputs_closed = true;
                }
            } else {
                let bound = bound_after(ts);
                for &id in &data_outputs {
                    let out = cx.output_at(id);
                    if !out.is_closed() && out.next_timestamp_bound() < bound {
                        out.set_next_timestamp_bound(bound)?;
                    }
                }
            }
            return Ok(Flow::Continue);
        }

        for (i, &output) in data_outputs.iter().enumerate() {
            let Some(input) = cx.inputs().id("", i) else {
                continue;
            };
            let packet = cx.input_packet(input);
            if !packet.is_empty() {
                let packet = packet.clone();
                cx.output_at(output).add(packet)?;
            }
        }
        Ok(Flow::Continue)
    }
}

mediagraph_framework::register_calculator!(GateCalculator, "GateCalculator");

#[cfg(test)]
mod tests {
    use crate::test_util::*;
    use mediagraph_framework::{Packet, SidePackets, Timestamp};

    const STREAM_GATE: &str = r#"
input_stream: [data, allow]
node:
  - calculator: GateCalculator
    input_stream: [data, "ALLOW:allow"]
    output_stream: [out, "STATE_CHANGE:change"]
"#;

    type Recorded = (Vec<(Timestamp, i64)>, Vec<(Timestamp, bool)>);

    /// Runs a graph with `data` (i64 `100 t` at `t` = 1..=6) and `control` on stream `ctl`;
    /// returns what `out` and `change` carried.
    fn run_stream_gate(yaml: &str, ctl: &str, control: &[(i64, bool)]) -> Recorded {
        let mut g = graph(yaml);
        let (out, change) = (record(&mut g, "out"), record(&mut g, "change"));
        g.start_run(Default::default()).unwrap();
        for t in 1..=6 {
            g.add_packet("data", at(t * 100, t)).unwrap();
        }
        for &(t, v) in control {
            g.add_packet(ctl, at(v, t)).unwrap();
        }
        g.finish().unwrap();
        (out.values::<i64>(), change.values::<bool>())
    }

    #[test]
    fn allow_stream_controls_each_timestamp() {
        let control = [(1, true), (2, true), (3, false), (4, false), (5, true)];
        let (out, change) = run_stream_gate(STREAM_GATE, "allow", &control);
        // Timestamp 6 has no control packet: empty means disallow by default.
        assert_eq!(out, vec![(ts(1), 100), (ts(2), 200), (ts(5), 500)]);
        assert_eq!(change, vec![(ts(3), false), (ts(5), true), (ts(6), false)]);
    }

    #[test]
    fn empty_control_packets_can_mean_allow() {
        let yaml = format!("{STREAM_GATE}    options: {{empty_packets_as_allow: true}}\n");
        let control = [(1, true), (2, false), (4, true)];
        let (out, change) = run_stream_gate(&yaml, "allow", &control);
        assert_eq!(
            out,
            vec![
                (ts(1), 100),
                (ts(3), 300),
                (ts(4), 400),
                (ts(5), 500),
                (ts(6), 600)
            ]
        );
        assert_eq!(change, vec![(ts(2), false), (ts(3), true)]);
    }

    #[test]
    fn disallow_stream_inverts_the_decision() {
        let yaml = r#"
input_stream: [data, disallow]
node:
  - calculator: GateCalculator
    input_stream: [data, "DISALLOW:disallow"]
    output_stream: [out, "STATE_CHANGE:change"]
"#;
        let control = [
            (1, true),
            (2, false),
            (3, false),
            (4, true),
            (5, false),
            (6, false),
        ];
        let (out, change) = run_stream_gate(yaml, "disallow", &control);
        assert_eq!(
            out,
            vec![(ts(2), 200), (ts(3), 300), (ts(5), 500), (ts(6), 600)]
        );
        assert_eq!(change, vec![(ts(2), true), (ts(4), false), (ts(5), true)]);
    }

    #[test]
    fn initial_gate_state_reports_a_first_change() {
        let yaml = format!("{STREAM_GATE}    options: {{initial_gate_state: GATE_ALLOW}}\n");
        let control = [
            (1, false),
            (2, false),
            (3, true),
            (4, true),
            (5, true),
            (6, true),
        ];
        let (out, change) = run_stream_gate(&yaml, "allow", &control);
        assert_eq!(
            out,
            vec![(ts(3), 300), (ts(4), 400), (ts(5), 500), (ts(6), 600)]
        );
        assert_eq!(change, vec![(ts(1), false), (ts(3), true)]);

        // Same first decision as the initial state: no change reported.
        let yaml = format!("{STREAM_GATE}    options: {{initial_gate_state: GATE_DISALLOW}}\n");
        let (_, change) = run_stream_gate(&yaml, "allow", &control);
        assert_eq!(change, vec![(ts(3), true)]);

        let err = config_error(&format!(
            "{STREAM_GATE}    options: {{initial_gate_state: OPEN}}\n"
        ));
        assert!(err.contains("OPEN"), "{err}");
    }

    #[test]
    fn several_data_streams_are_gated_together() {
        let mut g = graph(
            r#"
input_stream: [a, b, allow]
node:
  - calculator: GateCalculator
    input_stream: [a, b, "ALLOW:allow"]
    output_stream: [a_out, b_out]
"#,
        );
        let (ra, rb) = (record(&mut g, "a_out"), record(&mut g, "b_out"));
        g.start_run(Default::default()).unwrap();
        for t in 1..=3 {
            g.add_packet("a", at(t, t)).unwrap();
            g.add_packet("b", at(format!("b{t}"), t)).unwrap();
            g.add_packet("allow", at(t != 2, t)).unwrap();
        }
        g.finish().unwrap();
        assert_eq!(ra.values::<i64>(), vec![(ts(1), 1), (ts(3), 3)]);
        assert_eq!(
            rb.values::<String>(),
            vec![(ts(1), "b1".to_string()), (ts(3), "b3".to_string())]
        );
    }

    #[test]
    fn disallowed_timestamps_advance_the_output_bound() {
        // Merge waits on both of its inputs; it can only emit x at 1 and 2 if the closed
        // gate announced that nothing will come at 1 and 2.
        let mut g = graph(
            r#"
input_stream: [data, allow, x]
node:
  - calculator: GateCalculator
    input_stream: [data, "ALLOW:allow"]
    output_stream: [gated]
  - calculator: MergeCalculator
    input_stream: [gated, x]
    output_stream: [merged]
"#,
        );
        let merged = record(&mut g, "merged");
        g.start_run(Default::default()).unwrap();
        for t in 1..=2 {
            g.add_packet("data", at(t, t)).unwrap();
            g.add_packet("allow", at(false, t)).unwrap();
            g.add_packet("x", at(t * 10, t)).unwrap();
        }
        g.wait_until_idle().unwrap();
        assert_eq!(merged.values::<i64>(), vec![(ts(1), 10), (ts(2), 20)]);
        g.finish().unwrap();
    }

    fn run_side_gate(tag: &str, value: bool) -> (Vec<(Timestamp, i64)>, Vec<Timestamp>) {
        let mut g = graph(&format!(
            r#"
input_stream: [data]
input_side_packet: [flag]
node:
  - calculator: GateCalculator
    input_stream: [data]
    input_side_packet: ["{tag}:flag"]
    output_stream: [out]
  - calculator: PassThroughCalculator
    input_stream: [out]
    output_stream: [after]
"#
        ));
        let out = record(&mut g, "out");
        let after = record(&mut g, "after");
        let side: SidePackets = [("flag".to_string(), Packet::new(value))]
            .into_iter()
            .collect();
        g.start_run(side).unwrap();
        for t in 1..=3 {
            g.add_packet("data", at(t, t)).unwrap();
        }
        g.finish().unwrap();
        (out.values::<i64>(), after.timestamps())
    }

    #[test]
    fn side_packet_control() {
        let all = vec![(ts(1), 1), (ts(2), 2), (ts(3), 3)];
        assert_eq!(run_side_gate("ALLOW", true).0, all);
        assert_eq!(run_side_gate("ALLOW", false).0, vec![]);
        assert_eq!(run_side_gate("DISALLOW", false).0, all);
        let (out, after) = run_side_gate("DISALLOW", true);
        assert!(out.is_empty() && after.is_empty());
    }

    #[test]
    fn missing_side_packet_is_an_open_error() {
        let mut g = graph(
            r#"
input_stream: [data]
input_side_packet: [flag]
node:
  - calculator: GateCalculator
    name: gate
    input_stream: [data]
    input_side_packet: ["ALLOW:flag"]
    output_stream: [out]
"#,
        );
        let err = match g.start_run(Default::default()) {
            Err(e) => e.to_string(),
            Ok(()) => g.finish().unwrap_err().to_string(),
        };
        assert!(
            err.contains("ALLOW") && err.contains("not provided"),
            "{err}"
        );
        assert!(err.contains("node \"gate\""), "{err}");
    }

    #[test]
    fn options_decide_without_control() {
        for (options, expected) in [
            ("{}", vec![]),
            ("{allow: true}", vec![(ts(1), 1), (ts(2), 2)]),
        ] {
            let mut g = graph(&format!(
                r#"
input_stream: [data]
node:
  - calculator: GateCalculator
    input_stream: [data]
    output_stream: [out]
    options: {options}
"#
            ));
            let out = record(&mut g, "out");
            g.start_run(Default::default()).unwrap();
            g.add_packet("data", at(1i64, 1)).unwrap();
            g.add_packet("data", at(2i64, 2)).unwrap();
            g.finish().unwrap();
            assert_eq!(out.values::<i64>(), expected, "options {options}");
        }
    }

    #[test]
    fn contract_errors() {
        let both = config_error(
            r#"
input_stream: [data, allow]
input_side_packet: [flag]
node:
  - calculator: GateCalculator
    input_stream: [data, "ALLOW:allow"]
    input_side_packet: ["DISALLOW:flag"]
    output_stream: [out]
"#,
        );
        assert!(both.contains("not both"), "{both}");
        let two_streams = config_error(
            r#"
input_stream: [data, allow, disallow]
node:
  - calculator: GateCalculator
    input_stream: [data, "ALLOW:allow", "DISALLOW:disallow"]
    output_stream: [out]
"#,
        );
        assert!(two_streams.contains("not both"), "{two_streams}");
        let counts = config_error(
            r#"
input_stream: [a, b]
node:
  - calculator: GateCalculator
    input_stream: [a, b]
    output_stream: [out]
"#,
        );
        assert!(counts.contains("must match"), "{counts}");
        let unknown = config_error(
            r#"
input_stream: [a]
node:
  - calculator: GateCalculator
    input_stream: [a]
    output_stream: [out]
    options: {alow: true}
"#,
        );
        assert!(unknown.contains("alow"), "{unknown}");
    }
}
