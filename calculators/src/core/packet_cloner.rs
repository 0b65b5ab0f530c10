//! `PacketClonerCalculator`: re-emits the latest packet of each stream at every tick.

use mediagraph_framework::contract::TypeDecl;
use mediagraph_framework::prelude::*;
use mediagraph_framework::PortKind;
use serde::Deserialize;

/// At every packet of the tick stream, emits the most recent packet of each other input,
/// re-stamped at the tick's timestamp (MediaPipe's `PacketClonerCalculator`).
///
/// * Input streams: untagged streams to clone (any types) and the tick: the `TICK` stream if
///   present, else the last untagged stream.
/// * Output streams: one untagged stream per cloned input (same type, same order).
/// * Options ([`PacketClonerCalculatorOptions`]): `output_only_when_all_inputs_received`
///   (emit nothing until every input has had a packet), and
///   `output_packets_only_when_all_inputs_received` (the same, but advancing the outputs'
///   bounds at such ticks).
///
/// Inputs without a packet yet get a timestamp bound instead. Stream headers are copied.
///
/// ```yaml
/// - calculator: PacketClonerCalculator
///   input_stream: [detections, "TICK:frames"]
///   output_stream: [detections_per_frame]
/// ```
pub struct PacketClonerCalculator {
    only_when_all: bool,
    empty_before_all: bool,
    ids: Ids,
    current: Vec<Packet>,
}

/// Options of [`PacketClonerCalculator`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PacketClonerCalculatorOptions {
    /// Emit nothing at a tick until every input has had a packet.
    pub output_only_when_all_inputs_received: bool,
    /// Like the above, but advance the outputs' bounds at such ticks.
    pub output_packets_only_when_all_inputs_received: bool,
}

#[derive(Default)]
struct Ids {
    tick: usize,
    pairs: Vec<(usize, usize)>,
}

fn ids(
    inputs: &mediagraph_framework::port::PortSet,
    outputs: &mediagraph_framework::port::PortSet,
) -> Option<Ids> {
    let mut n = inputs.count("");
    let tick = if inputs.has_tag("TICK") {
        inputs.id("TICK", 0)?
    } else {
        n = n.checked_sub(1)?;
        inputs.id("", n)?
    };
    let pairs = (0..n)
        .map(|i| Some((inputs.id("", i)?, outputs.id("", i)?)))
        .collect::<Option<Vec<_>>>()?;
    Some(Ids { tick, pairs })
}

impl Calculator for PacketClonerCalculator {
    type Options = PacketClonerCalculatorOptions;

    fn contract(cc: &mut Contract, _: &PacketClonerCalculatorOptions) -> Result<()> {
        cc.declare(&[
            &Input::any("").multiple(),
            &Input::any("TICK").optional(),
            &Output::any("").multiple(),
        ])?;
        let Some(n_clone) = cc
            .inputs()
            .count("")
            .checked_sub(usize::from(!cc.inputs().has_tag("TICK")))
        else {
            return Err(cc.error(
                "PacketClonerCalculator needs a TICK input, or untagged inputs whose last one ticks",
            ));
        };
        let Some(ids) =
            ids(cc.inputs(), cc.outputs()).filter(|_| cc.outputs().count("") == n_clone)
        else {
            return Err(cc.error(crate::Error::Config {
                calculator: "PacketClonerCalculator",
                message: "needs a tick (TICK or the last untagged input) and one untagged output per other input".into(),
            }));
        };
        for (i, o) in ids.pairs {
            cc.set_type(PortKind::Output, o, TypeDecl::SameAs(PortKind::Input, i));
        }
        Ok(())
    }

    fn create(o: &PacketClonerCalculatorOptions) -> Result<Self> {
        Ok(PacketClonerCalculator {
            only_when_all: o.output_only_when_all_inputs_received
                || o.output_packets_only_when_all_inputs_received,
            empty_before_all: o.output_packets_only_when_all_inputs_received,
            ids: Ids::default(),
            current: Vec::new(),
        })
    }

    fn open(&mut self, cx: &mut CalculatorContext) -> Result<()> {
        self.ids = ids(cx.inputs(), cx.outputs()).unwrap_or_default();
        self.current = vec![Packet::empty(); self.ids.pairs.len()];
        for &(i, o) in &self.ids.pairs {
            let h = cx.input_header(i).clone();
            if !h.is_empty() {
                cx.output_at(o).set_header(h)?;
            }
        }
        Ok(())
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        for (k, &(i, _)) in self.ids.pairs.iter().enumerate() {
            let p = cx.input_packet(i);
            if !p.is_empty() {
                self.current[k] = p.clone();
            }
        }
        if cx.input_packet(self.ids.tick).is_empty() {
            return Ok(Flow::Continue);
        }
        let ts = cx.input_timestamp();
        if self.only_when_all && self.current.iter().any(|p| p.is_empty()) {
            if self.empty_before_all {
                for &(_, o) in &self.ids.pairs {
                    cx.output_at(o)
                        .set_next_timestamp_bound(ts.next_allowed_in_stream())?;
                }
            }
            return Ok(Flow::Continue);
        }
        for (k, &(_, o)) in self.ids.pairs.iter().enumerate() {
            if self.current[k].is_empty() {
                cx.output_at(o)
                    .set_next_timestamp_bound(ts.next_allowed_in_stream())?;
            } else {
                let p = self.current[k].at(ts);
                cx.output_at(o).add(p)?;
            }
        }
        Ok(Flow::Continue)
    }
}

mediagraph_framework::register_calculator!(PacketClonerCalculator, "PacketClonerCalculator");

#[cfg(test)]
mod tests {
    use crate::test_util::*;

    fn run(inputs: &str, opts: &str) -> Vec<(i64, i64)> {
        let mut g = graph(&format!(
            "input_stream: [a, tick]\nnode:\n  - calculator: PacketClonerCalculator\n    input_stream: {inputs}\n    output_stream: [out]\n    options: {opts}\n"
        ));
        let out = record(&mut g, "out");
        g.start_run(Default::default()).unwrap();
        g.add_packet("tick", at(0i64, 5)).unwrap();
        g.add_packet("a", at(100i64, 10)).unwrap();
        g.add_packet("tick", at(0i64, 10)).unwrap();
        g.add_packet("tick", at(0i64, 20)).unwrap();
        g.add_packet("a", at(200i64, 25)).unwrap();
        g.add_packet("tick", at(0i64, 30)).unwrap();
        g.finish().unwrap();
        out.values::<i64>()
            .into_iter()
            .map(|(t, v)| (t.value(), v))
            .collect()
    }

    #[test]
    fn clones_the_latest_packet_at_each_tick() {
        let expected = vec![(10, 100), (20, 100), (30, 200)];
        assert_eq!(run("[a, tick]", "{}"), expected);
        assert_eq!(run("[\"TICK:tick\", a]", "{}"), expected);
        assert_eq!(
            run(
                "[a, tick]",
                "{output_packets_only_when_all_inputs_received: true}"
            ),
            expected
        );
    }
}
