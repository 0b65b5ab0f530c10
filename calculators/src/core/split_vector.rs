//! `Split*VectorCalculator`: splits a vector into ranges.

use std::marker::PhantomData;

use mediagraph_framework::contract::TypeDecl;
use mediagraph_framework::prelude::*;
use mediagraph_framework::{PacketType, PortKind};
use serde::Deserialize;

/// Splits each input vector into the element ranges `[begin, end)` of `ranges` (MediaPipe's
/// `SplitVectorCalculator<T>`).
///
/// * Input stream: one untagged `Vec<T>`.
/// * Output streams: one untagged stream per range (`Vec<T>`, or `T` with `element_only`),
///   or a single `Vec<T>` with all ranges concatenated when `combine_outputs` is set.
/// * Options ([`SplitVectorCalculatorOptions`]): `ranges` (list of `{begin, end}`),
///   `element_only`, `combine_outputs`.
///
/// Ranges must have `0 <= begin < end`; with `element_only` each has size 1; with
/// `combine_outputs` they must not overlap. An input shorter than the largest `end` is an
/// error. Registered as `SplitIntVectorCalculator` (`Vec<i64>`), `SplitFloatVectorCalculator`
/// (`Vec<f32>`), `SplitUint64tVectorCalculator` (`Vec<u64>`), `SplitStringVectorCalculator`
/// (`Vec<String>`), and `SplitDetectionVectorCalculator` in [`crate::detection`]; other crates
/// register theirs with
/// `mediagraph_framework::register_calculator!(SplitVectorCalculator<MyType>, "SplitMyTypeVectorCalculator");`
///
/// ```yaml
/// - calculator: SplitIntVectorCalculator
///   input_stream: [v]
///   output_stream: [head, tail]
///   options: {ranges: [{begin: 0, end: 1}, {begin: 1, end: 4}]}
/// ```
pub struct SplitVectorCalculator<T> {
    ranges: Vec<(usize, usize)>,
    element_only: bool,
    combine_outputs: bool,
    _t: PhantomData<fn() -> T>,
}

/// One range `[begin, end)`.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Range {
    /// First index.
    pub begin: i32,
    /// One past the last index.
    pub end: i32,
}

/// Options of [`SplitVectorCalculator`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SplitVectorCalculatorOptions {
    /// The ranges, one per output stream (or all concatenated with `combine_outputs`).
    pub ranges: Vec<Range>,
    /// Output the single element of each (size 1) range instead of a vector.
    pub element_only: bool,
    /// Output one vector with all ranges concatenated.
    pub combine_outputs: bool,
}

fn config(message: impl Into<String>) -> crate::Error {
    crate::Error::Config {
        calculator: "SplitVectorCalculator",
        message: message.into(),
    }
}

fn check(o: &SplitVectorCalculatorOptions, n_out: usize) -> Result<(), crate::Error> {
    for r in &o.ranges {
        if r.begin < 0 || r.end < 0 || r.begin >= r.end {
            return Err(config(format!(
                "option ranges: indices must be non-negative and begin < end (got [{}, {}))",
                r.begin, r.end
            )));
        }
    }
    if o.combine_outputs {
        if n_out != 1 {
            return Err(config(
                "option combine_outputs needs exactly one output stream",
            ));
        }
        for (i, a) in o.ranges.iter().enumerate() {
            for b in &o.ranges[i + 1..] {
                if a.begin < b.end && b.begin < a.end {
                    return Err(config(
                        "option ranges must not overlap when combine_outputs is set",
                    ));
                }
            }
        }
    } else {
        if n_out != o.ranges.len() {
            return Err(config(format!(
                "option ranges has {} ranges but there are {n_out} output streams",
                o.ranges.len()
            )));
        }
        if o.element_only && o.ranges.iter().any(|r| r.end - r.begin != 1) {
            return Err(config(
                "option element_only is set, so every range must have size 1",
            ));
        }
    }
    Ok(())
}

impl<T: Clone + Send + Sync + 'static> Calculator for SplitVectorCalculator<T> {
    type Options = SplitVectorCalculatorOptions;

    fn contract(cc: &mut Contract, o: &SplitVectorCalculatorOptions) -> Result<()> {
        cc.declare(&[&Input::<Vec<T>>::new(""), &Output::any("").multiple()])?;
        check(o, cc.outputs().count("")).map_err(|e| cc.error(e))?;
        let ty = if o.element_only && !o.combine_outputs {
            PacketType::of::<T>()
        } else {
            PacketType::of::<Vec<T>>()
        };
        for id in cc.outputs().ids("").collect::<Vec<_>>() {
            cc.set_type(PortKind::Output, id, TypeDecl::Type(ty.clone()));
        }
        cc.set_timestamp_offset(0);
        cc.set_independent_calls(true);
        Ok(())
    }

    fn create(o: &SplitVectorCalculatorOptions) -> Result<Self> {
        Ok(SplitVectorCalculator {
            ranges: o
                .ranges
                .iter()
                .map(|r| (r.begin.max(0) as usize, r.end.max(0) as usize))
                .collect(),
            element_only: o.element_only,
            combine_outputs: o.combine_outputs,
            _t: PhantomData,
        })
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let Some(v) = cx.input(&Input::<Vec<T>>::new("")).get()? else {
            return Ok(Flow::Continue);
        };
        let max_end = self.ranges.iter().map(|r| r.1).max().unwrap_or(0);
        if v.len() < max_end {
            return Err(config(format!(
                "input vector has {} elements, but the ranges reach {max_end}",
                v.len()
            ))
            .into());
        }
        let ts = cx.input_timestamp();
        if self.combine_outputs {
            let all: Vec<T> = self
                .ranges
                .iter()
                .flat_map(|&(b, e)| v[b..e].iter().cloned())
                .collect();
            cx.output(&Output::<Vec<T>>::new("")).send(all, ts)?;
        } else if self.element_only {
            for (i, &(b, _)) in self.ranges.iter().enumerate() {
                cx.output_index(&Output::<T>::new(""), i)
                    .send(v[b].clone(), ts)?;
            }
        } else {
            for (i, &(b, e)) in self.ranges.iter().enumerate() {
                cx.output_index(&Output::<Vec<T>>::new(""), i)
                    .send(v[b..e].to_vec(), ts)?;
            }
        }
        Ok(Flow::Continue)
    }
}

mediagraph_framework::register_calculator!(SplitVectorCalculator<i64>, "SplitIntVectorCalculator");
mediagraph_framework::register_calculator!(
    SplitVectorCalculator<f32>,
    "SplitFloatVectorCalculator"
);
mediagraph_framework::register_calculator!(
    SplitVectorCalculator<u64>,
    "SplitUint64tVectorCalculator"
);
mediagraph_framework::register_calculator!(
    SplitVectorCalculator<String>,
    "SplitStringVectorCalculator"
);

#[cfg(test)]
mod tests {
    use crate::test_util::*;

    fn node(outputs: &str, opts: &str) -> String {
        format!("input_stream: [in]\nnode:\n  - calculator: SplitIntVectorCalculator\n    input_stream: [in]\n    output_stream: {outputs}\n    options: {opts}\n")
    }

    #[test]
    fn splits_into_ranges() {
        let mut g = graph(&node(
            "[a, b]",
            "{ranges: [{begin: 0, end: 1}, {begin: 1, end: 4}]}",
        ));
        let (a, b) = (record(&mut g, "a"), record(&mut g, "b"));
        g.start_run(Default::default()).unwrap();
        g.add_packet("in", at(vec![1i64, 2, 3, 4, 5], 7)).unwrap();
        g.finish().unwrap();
        assert_eq!(a.values::<Vec<i64>>(), vec![(ts(7), vec![1])]);
        assert_eq!(b.values::<Vec<i64>>(), vec![(ts(7), vec![2, 3, 4])]);
    }

    #[test]
    fn element_only_and_combine_outputs() {
        let mut g = graph(&node(
            "[a, b]",
            "{ranges: [{begin: 2, end: 3}, {begin: 0, end: 1}], element_only: true}",
        ));
        let (a, b) = (record(&mut g, "a"), record(&mut g, "b"));
        g.start_run(Default::default()).unwrap();
        g.add_packet("in", at(vec![1i64, 2, 3], 1)).unwrap();
        g.finish().unwrap();
        assert_eq!(a.values::<i64>(), vec![(ts(1), 3)]);
        assert_eq!(b.values::<i64>(), vec![(ts(1), 1)]);

        let mut g = graph(&node(
            "[c]",
            "{ranges: [{begin: 3, end: 4}, {begin: 0, end: 2}], combine_outputs: true}",
        ));
        let c = record(&mut g, "c");
        g.start_run(Default::default()).unwrap();
        g.add_packet("in", at(vec![1i64, 2, 3, 4], 1)).unwrap();
        g.finish().unwrap();
        assert_eq!(c.values::<Vec<i64>>(), vec![(ts(1), vec![4, 1, 2])]);
    }

    #[test]
    fn invalid_ranges_and_short_inputs_are_errors() {
        for (outs, opts, needle) in [
            ("[a]", "{ranges: [{begin: 1, end: 1}]}", "begin < end"),
            (
                "[a, b]",
                "{ranges: [{begin: 0, end: 1}]}",
                "2 output streams",
            ),
            (
                "[a]",
                "{ranges: [{begin: 0, end: 2}], element_only: true}",
                "size 1",
            ),
            (
                "[a]",
                "{ranges: [{begin: 0, end: 2}, {begin: 1, end: 3}], combine_outputs: true}",
                "overlap",
            ),
        ] {
            let err = config_error(&node(outs, opts));
            assert!(err.contains(needle), "{opts}: {err}");
        }
        let mut g = graph(&node("[a]", "{ranges: [{begin: 0, end: 3}]}"));
        g.start_run(Default::default()).unwrap();
        g.add_packet("in", at(vec![1i64], 1)).unwrap();
        let err = g.finish().unwrap_err().to_string();
        assert!(err.contains("ranges reach 3"), "{err}");
    }
}
