//! `MergeCalculator`: several streams into one.

use mediagraph_framework::prelude::*;

/// Merges its input streams into one output stream: at each timestamp, emits the packet of
/// the lowest-index input that has one; the others are ignored.
///
/// * Input streams: one or more untagged streams, of any (possibly different) types.
/// * Output stream: one untagged stream (any type: each packet keeps its own type).
/// * Options: none.
///
/// Uses the default input stream handler (a timestamp is merged once every input is known to
/// have or not have a packet there) and timestamp offset 0.
///
/// ```yaml
/// - calculator: MergeCalculator
///   input_stream: [shots_a, shots_b]
///   output_stream: [shots]
/// ```
pub struct MergeCalculator {
    /// Calls without any input packet.
    without_input: RepeatedWarning,
}

const IN: Input<AnyPacket> = Input::any("").multiple();
const OUT: Output<AnyPacket> = Output::any("");

impl Calculator for MergeCalculator {
    type Options = NoOptions;

    fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
        if cc.inputs().count("") == 0 {
            return Err(cc.error(crate::Error::Config {
                calculator: "MergeCalculator",
                message: "needs at least one untagged input stream".into(),
            }));
        }
        if cc.inputs().count("") == 1 {
            tracing::warn!(
                node = cc.node_name(),
                "MergeCalculator has a single input stream; it merges nothing"
            );
        }
        cc.declare(&[&IN, &OUT])?;
        cc.set_timestamp_offset(0);
        Ok(())
    }

    fn create(_: &NoOptions) -> Result<Self> {
        Ok(MergeCalculator {
            without_input: RepeatedWarning::default(),
        })
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        for i in 0..cx.input_count(&IN) {
            let packet = cx.input_index(&IN, i).packet();
            if !packet.is_empty() {
                let packet = packet.clone();
                cx.output(&OUT).send_packet(packet)?;
                return Ok(Flow::Continue);
            }
        }
        if let Some(occurrences) = self.without_input.occurred() {
            tracing::warn!(
                node = cx.node_name(),
                ts = %cx.input_timestamp(),
                occurrences,
                "MergeCalculator called without any input packet ({})",
                RepeatedWarning::NOTE
            );
        }
        Ok(Flow::Continue)
    }
}

mediagraph_framework::register_calculator!(MergeCalculator, "MergeCalculator");

#[cfg(test)]
mod tests {
    use crate::test_util::*;

    #[test]
    fn lowest_index_wins_and_gaps_are_filled_by_others() {
        let mut g = graph(
            r#"
input_stream: [a, b, c]
node:
  - calculator: MergeCalculator
    input_stream: [a, b, c]
    output_stream: [out]
"#,
        );
        let out = record(&mut g, "out");
        g.start_run(Default::default()).unwrap();
        for (t, v) in [(1, 1i64), (3, 3)] {
            g.add_packet("a", at(v, t)).unwrap();
        }
        for (t, v) in [(1, 10i64), (2, 20), (4, 40)] {
            g.add_packet("b", at(v, t)).unwrap();
        }
        for (t, v) in [(2, 200i64), (5, 500)] {
            g.add_packet("c", at(v, t)).unwrap();
        }
        g.finish().unwrap();
        assert_eq!(
            out.values::<i64>(),
            vec![
                (ts(1), 1),
                (ts(2), 20),
                (ts(3), 3),
                (ts(4), 40),
                (ts(5), 500)
            ]
        );
    }

    #[test]
    fn inputs_may_have_different_types() {
        let mut g = graph(
            r#"
input_stream: [a, b]
node:
  - calculator: MergeCalculator
    input_stream: [a, b]
    output_stream: [out]
"#,
        );
        let out = record(&mut g, "out");
        g.start_run(Default::default()).unwrap();
        g.add_packet("a", at(1i64, 1)).unwrap();
        g.add_packet("b", at(String::from("two"), 2)).unwrap();
        g.finish().unwrap();
        let got = out.packets();
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].timestamp(), *got[0].get::<i64>().unwrap()),
            (ts(1), 1)
        );
        assert_eq!(got[1].timestamp(), ts(2));
        assert_eq!(got[1].get::<String>().unwrap(), "two");
    }

    #[test]
    fn waits_for_every_input_to_settle() {
        let mut g = graph(
            r#"
input_stream: [a, b]
node:
  - calculator: MergeCalculator
    input_stream: [a, b]
    output_stream: [out]
"#,
        );
        let out = record(&mut g, "out");
        g.start_run(Default::default()).unwrap();
        g.add_packet("b", at(20i64, 2)).unwrap();
        g.wait_until_idle().unwrap();
        assert!(out.packets().is_empty(), "a may still bring a packet at 2");
        g.add_packet("a", at(1i64, 1)).unwrap();
        g.add_packet("a", at(3i64, 3)).unwrap();
        g.wait_until_idle().unwrap();
        assert_eq!(out.values::<i64>(), vec![(ts(1), 1), (ts(2), 20)]);
        g.finish().unwrap();
        assert_eq!(
            out.values::<i64>(),
            vec![(ts(1), 1), (ts(2), 20), (ts(3), 3)]
        );
    }

    #[test]
    fn needs_inputs_and_one_output() {
        let err = config_error(
            r#"
node:
  - calculator: MergeCalculator
    output_stream: [out]
"#,
        );
        assert!(err.contains("at least one"), "{err}");
        let err = config_error(
            r#"
input_stream: [a, b]
node:
  - calculator: MergeCalculator
    input_stream: [a, b]
    output_stream: [out, out2]
"#,
        );
        assert!(err.contains("connected 2 times"), "{err}");
    }
}
