//! `Clip*VectorSizeCalculator`: truncates vectors to at most `max_vec_size` elements.

use std::marker::PhantomData;

use mediagraph_framework::prelude::*;
use serde::Deserialize;

/// Truncates each input vector to its first `max_vec_size` elements (MediaPipe's
/// `ClipVectorSizeCalculator<T>`).
///
/// * Input stream: one untagged `Vec<T>`. Output stream: one untagged `Vec<T>`.
/// * Input side packet: optional untagged `i32` overriding `max_vec_size`.
/// * Options ([`ClipVectorSizeCalculatorOptions`]): `max_vec_size` (default 1, must be >= 1).
///
/// Generic over the element type; each element type is registered under its own name, as in
/// MediaPipe: `ClipIntVectorSizeCalculator` (`Vec<i64>`), `ClipFloatVectorSizeCalculator`
/// (`Vec<f32>`), `ClipStringVectorSizeCalculator` (`Vec<String>`), and
/// `ClipDetectionVectorSizeCalculator` in [`crate::detection`]. Other crates register their
/// types the same way, e.g.
/// `mediagraph_framework::register_calculator!(ClipVectorSizeCalculator<MyType>, "ClipMyTypeVectorSizeCalculator");`
///
/// ```yaml
/// - calculator: ClipIntVectorSizeCalculator
///   input_stream: [ids]
///   output_stream: [first_ids]
///   options: {max_vec_size: 2}
/// ```
pub struct ClipVectorSizeCalculator<T> {
    max_vec_size: i64,
    _t: PhantomData<fn() -> T>,
}

/// Options of [`ClipVectorSizeCalculator`].
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClipVectorSizeCalculatorOptions {
    /// The largest output size (default 1).
    pub max_vec_size: i32,
}

impl Default for ClipVectorSizeCalculatorOptions {
    fn default() -> Self {
        ClipVectorSizeCalculatorOptions { max_vec_size: 1 }
    }
}

fn too_small(n: i64) -> crate::Error {
    crate::Error::Config {
        calculator: "ClipVectorSizeCalculator",
        message: format!("option max_vec_size must be >= 1 (got {n})"),
    }
}

impl<T: Clone + Send + Sync + 'static> Calculator for ClipVectorSizeCalculator<T> {
    type Options = ClipVectorSizeCalculatorOptions;

    fn contract(cc: &mut Contract, o: &ClipVectorSizeCalculatorOptions) -> Result<()> {
        cc.declare(&[
            &Input::<Vec<T>>::new(""),
            &Output::<Vec<T>>::new(""),
            &SideInput::<i32>::new("").optional(),
        ])?;
        if o.max_vec_size < 1 {
            return Err(cc.error(too_small(o.max_vec_size.into())));
        }
        cc.set_timestamp_offset(0);
        cc.set_independent_calls(true);
        Ok(())
    }

    fn create(o: &ClipVectorSizeCalculatorOptions) -> Result<Self> {
        Ok(ClipVectorSizeCalculator {
            max_vec_size: o.max_vec_size.into(),
            _t: PhantomData,
        })
    }

    fn open(&mut self, cx: &mut CalculatorContext) -> Result<()> {
        if let Some(&n) = cx.side_input_opt(&SideInput::<i32>::new(""))? {
            self.max_vec_size = n.into();
        }
        Ok(())
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        if self.max_vec_size < 1 {
            return Err(too_small(self.max_vec_size).into());
        }
        let Some(v) = cx.input(&Input::<Vec<T>>::new("")).get()? else {
            return Ok(Flow::Continue);
        };
        let n = v.len().min(self.max_vec_size as usize);
        let ts = cx.input_timestamp();
        cx.output(&Output::<Vec<T>>::new(""))
            .send(v[..n].to_vec(), ts)?;
        Ok(Flow::Continue)
    }
}

mediagraph_framework::register_calculator!(
    ClipVectorSizeCalculator<i64>,
    "ClipIntVectorSizeCalculator"
);
mediagraph_framework::register_calculator!(
    ClipVectorSizeCalculator<f32>,
    "ClipFloatVectorSizeCalculator"
);
mediagraph_framework::register_calculator!(
    ClipVectorSizeCalculator<String>,
    "ClipStringVectorSizeCalculator"
);

#[cfg(test)]
mod tests {
    use crate::test_util::*;
    use mediagraph_framework::Packet;

    #[test]
    fn clips_to_max_vec_size_and_side_packet_overrides() {
        for (side, opts, expected) in [
            (
                None,
                "{max_vec_size: 2}",
                vec![vec![1i64, 2], vec![7], vec![]],
            ),
            (None, "{}", vec![vec![1], vec![7], vec![]]),
            (
                Some(3i32),
                "{max_vec_size: 1}",
                vec![vec![1, 2, 3], vec![7], vec![]],
            ),
        ] {
            let side_decl = if side.is_some() {
                "input_side_packet: [n]\n"
            } else {
                ""
            };
            let node_side = if side.is_some() {
                "    input_side_packet: [n]\n"
            } else {
                ""
            };
            let mut g = graph(&format!(
                "input_stream: [in]\n{side_decl}node:\n  - calculator: ClipIntVectorSizeCalculator\n    input_stream: [in]\n    output_stream: [out]\n{node_side}    options: {opts}\n"
            ));
            let out = record(&mut g, "out");
            let sides = side
                .map(|n| [("n".to_string(), Packet::new(n))].into_iter().collect())
                .unwrap_or_default();
            g.start_run(sides).unwrap();
            g.add_packet("in", at(vec![1i64, 2, 3, 4], 1)).unwrap();
            g.add_packet("in", at(vec![7i64], 2)).unwrap();
            g.add_packet("in", at(Vec::<i64>::new(), 3)).unwrap();
            g.finish().unwrap();
            let got: Vec<Vec<i64>> = out.values::<Vec<i64>>().into_iter().map(|p| p.1).collect();
            assert_eq!(got, expected, "{opts}");
            assert_eq!(out.timestamps(), vec![ts(1), ts(2), ts(3)]);
        }
    }

    #[test]
    fn max_vec_size_below_one_is_an_error() {
        let err = config_error(
            "input_stream: [in]\nnode:\n  - calculator: ClipIntVectorSizeCalculator\n    input_stream: [in]\n    output_stream: [out]\n    options: {max_vec_size: 0}\n",
        );
        assert!(err.contains("max_vec_size"), "{err}");
    }
}
