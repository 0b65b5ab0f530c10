//! `Concatenate*VectorCalculator`: several vectors into one.

use std::marker::PhantomData;

use mediagraph_framework::prelude::*;
use serde::Deserialize;

/// At each timestamp, concatenates the input vectors that have a packet, in input order, into
/// one output vector (MediaPipe's `ConcatenateVectorCalculator<T>`): e.g. the detections of
/// two detectors as one list.
///
/// * Input streams: one or more untagged `Vec<T>`.
/// * Output stream: one untagged `Vec<T>`.
/// * Options ([`ConcatenateVectorCalculatorOptions`]): `only_emit_if_all_present` (default
///   false: inputs without a packet add nothing; true: a timestamp where any input has no
///   packet gives no output).
///
/// Timestamp offset 0. Registered as `ConcatenateIntVectorCalculator` (`Vec<i64>`),
/// `ConcatenateFloatVectorCalculator` (`Vec<f32>`), `ConcatenateStringVectorCalculator`
/// (`Vec<String>`) and, in [`crate::detection`], `ConcatenateDetectionVectorCalculator`; other
/// crates register theirs with
/// `mediagraph_framework::register_calculator!(ConcatenateVectorCalculator<MyType>, "ConcatenateMyTypeVectorCalculator");`
///
/// ```yaml
/// - calculator: ConcatenateDetectionVectorCalculator
///   input_stream: [people, vehicles]
///   output_stream: [everything]
/// ```
pub struct ConcatenateVectorCalculator<T> {
    only_emit_if_all_present: bool,
    _t: PhantomData<fn() -> T>,
}

/// Options of [`ConcatenateVectorCalculator`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConcatenateVectorCalculatorOptions {
    /// Output only at timestamps where every input has a packet.
    pub only_emit_if_all_present: bool,
}

impl<T: Clone + Send + Sync + 'static> Calculator for ConcatenateVectorCalculator<T> {
    type Options = ConcatenateVectorCalculatorOptions;

    fn contract(cc: &mut Contract, _: &ConcatenateVectorCalculatorOptions) -> Result<()> {
        cc.declare(&[
            &Input::<Vec<T>>::new("").multiple(),
            &Output::<Vec<T>>::new(""),
        ])?;
        if cc.inputs().count("") == 0 {
            return Err(cc.error(crate::Error::Config {
                calculator: "ConcatenateVectorCalculator",
                message: "needs at least one untagged input stream".into(),
            }));
        }
        cc.set_timestamp_offset(0);
        cc.set_independent_calls(true);
        Ok(())
    }

    fn create(o: &ConcatenateVectorCalculatorOptions) -> Result<Self> {
        Ok(ConcatenateVectorCalculator {
            only_emit_if_all_present: o.only_emit_if_all_present,
            _t: PhantomData,
        })
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let input = Input::<Vec<T>>::new("").multiple();
        let mut all = Vec::new();
        for i in 0..cx.input_count(&input) {
            match cx.input_index(&input, i).get()? {
                Some(v) => all.extend(v.iter().cloned()),
                None if self.only_emit_if_all_present => return Ok(Flow::Continue),
                None => {}
            }
        }
        let ts = cx.input_timestamp();
        cx.output(&Output::<Vec<T>>::new("")).send(all, ts)?;
        Ok(Flow::Continue)
    }
}

mediagraph_framework::register_calculator!(
    ConcatenateVectorCalculator<i64>,
    "ConcatenateIntVectorCalculator"
);
mediagraph_framework::register_calculator!(
    ConcatenateVectorCalculator<f32>,
    "ConcatenateFloatVectorCalculator"
);
mediagraph_framework::register_calculator!(
    ConcatenateVectorCalculator<String>,
    "ConcatenateStringVectorCalculator"
);

#[cfg(test)]
mod tests {
    use crate::test_util::*;

    fn run(only_all: bool) -> Vec<(mediagraph_framework::Timestamp, Vec<i64>)> {
        let mut g = graph(&format!(
            "input_stream: [a, b]\nnode:\n  - calculator: ConcatenateIntVectorCalculator\n    input_stream: [a, b]\n    output_stream: [out]\n    options: {{only_emit_if_all_present: {only_all}}}\n"
        ));
        let out = record(&mut g, "out");
        g.start_run(Default::default()).unwrap();
        g.add_packet("a", at(vec![1i64, 2], 1)).unwrap();
        g.add_packet("b", at(vec![3i64], 1)).unwrap();
        g.add_packet("b", at(vec![4i64, 5], 2)).unwrap();
        g.add_packet("a", at(Vec::<i64>::new(), 3)).unwrap();
        g.finish().unwrap();
        out.values::<Vec<i64>>()
    }

    #[test]
    fn concatenates_in_input_order() {
        assert_eq!(
            run(false),
            vec![(ts(1), vec![1, 2, 3]), (ts(2), vec![4, 5]), (ts(3), vec![])]
        );
    }

    #[test]
    fn only_emit_if_all_present_skips_partial_timestamps() {
        assert_eq!(run(true), vec![(ts(1), vec![1, 2, 3])]);
    }
}
