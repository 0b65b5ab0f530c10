//! `BeginLoop*Calculator` / `EndLoop*Calculator`: run part of a graph once per vector element.

use std::marker::PhantomData;

use mediagraph_framework::contract::TypeDecl;
use mediagraph_framework::prelude::*;
use mediagraph_framework::PortKind;

/// Emits each element of an `ITERABLE` vector on `ITEM` at loop-internal timestamps 0, 1, 2,
/// ... (continuing across inputs), and the input's timestamp on `BATCH_END` at the last
/// internal timestamp used (MediaPipe's `BeginLoopCalculator<std::vector<T>>`).
///
/// * Input streams: `ITERABLE` (`Vec<T>`), any number of `CLONE` streams (any types), an
///   optional `TICK` (any; deprecated, bounds are processed anyway).
/// * Output streams: `ITEM` (`T`), `BATCH_END` ([`Timestamp`]), one `CLONE` per `CLONE`
///   input (same type), re-stamped at each element's internal timestamp.
///
/// An empty or missing iterable still uses one internal timestamp: the outputs' bounds move
/// past it and `BATCH_END` is sent, so the matching [`EndLoopCalculator`] can advance.
/// `process` runs on timestamp bound advances too.
///
/// Registered as `BeginLoopIntCalculator` (`Vec<i64>`), `BeginLoopFloatCalculator`
/// (`Vec<f32>`), `BeginLoopStringCalculator` (`Vec<String>`), and `BeginLoopDetectionCalculator`
/// in [`crate::detection`] (the `EndLoop` ones likewise); other crates register theirs with
/// `mediagraph_framework::register_calculator!(BeginLoopCalculator<MyType>, "BeginLoopMyTypeCalculator");`
///
/// ```yaml
/// - calculator: BeginLoopIntCalculator
///   input_stream: ["ITERABLE:values", "CLONE:image"]
///   output_stream: ["ITEM:value", "CLONE:image_per_value", "BATCH_END:end_ts"]
/// ```
pub struct BeginLoopCalculator<T> {
    loop_ts: i64,
    _t: PhantomData<fn() -> T>,
}

impl<T: Clone + Send + Sync + 'static> Calculator for BeginLoopCalculator<T> {
    type Options = NoOptions;

    fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
        cc.declare(&[
            &Input::<Vec<T>>::new("ITERABLE"),
            &Input::any("TICK").optional(),
            &Input::any("CLONE").multiple(),
            &Output::<T>::new("ITEM"),
            &Output::<Timestamp>::new("BATCH_END"),
            &Output::any("CLONE").multiple(),
        ])?;
        if cc.inputs().count("CLONE") != cc.outputs().count("CLONE") {
            return Err(cc.error(crate::Error::Config {
                calculator: "BeginLoopCalculator",
                message: "needs as many CLONE outputs as CLONE inputs".into(),
            }));
        }
        for k in 0..cc.inputs().count("CLONE") {
            if let (Some(i), Some(o)) = (cc.inputs().id("CLONE", k), cc.outputs().id("CLONE", k)) {
                cc.set_type(PortKind::Output, o, TypeDecl::SameAs(PortKind::Input, i));
            }
        }
        cc.set_process_timestamp_bounds(true);
        Ok(())
    }

    fn create(_: &NoOptions) -> Result<Self> {
        Ok(BeginLoopCalculator {
            loop_ts: 0,
            _t: PhantomData,
        })
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let start = self.loop_ts;
        let clones: Vec<Packet> = (0..cx.input_count(&Input::<AnyPacket>::any("CLONE")))
            .map(|k| {
                cx.input_index(&Input::<AnyPacket>::any("CLONE"), k)
                    .packet()
                    .clone()
            })
            .collect();
        if let Some(items) = cx.input(&Input::<Vec<T>>::new("ITERABLE")).get()? {
            for item in items {
                let t = Timestamp::try_new(self.loop_ts)?;
                cx.output(&Output::<T>::new("ITEM")).send(item.clone(), t)?;
                for (k, c) in clones.iter().enumerate() {
                    if !c.is_empty() {
                        cx.output_index(&Output::<AnyPacket>::any("CLONE"), k)
                            .send_packet(c.at(t))?;
                    }
                }
                self.loop_ts += 1;
            }
        }
        if self.loop_ts == start {
            // Nothing was emitted: use up one internal timestamp and move the bounds past it.
            self.loop_ts += 1;
            let bound = Timestamp::try_new(self.loop_ts)?;
            let batch_end = cx.outputs().id("BATCH_END", 0);
            for id in 0..cx.outputs().len() {
                if Some(id) != batch_end {
                    cx.output_at(id).set_next_timestamp_bound(bound)?;
                }
            }
        }
        let ts = cx.input_timestamp();
        let last = Timestamp::try_new(self.loop_ts - 1)?;
        cx.output(&Output::<Timestamp>::new("BATCH_END"))
            .send(ts, last)?;
        Ok(Flow::Continue)
    }
}

/// Collects the `ITEM`s of one loop iteration into a `Vec<T>` and emits it on `ITERABLE` at
/// the timestamp carried by `BATCH_END` (MediaPipe's `EndLoopCalculator<std::vector<T>>`).
///
/// * Input streams: `ITEM` (`T`), `BATCH_END` ([`Timestamp`]).
/// * Output stream: `ITERABLE` (`Vec<T>`).
///
/// A batch without items emits nothing but moves the output's bound past its timestamp.
/// Registered as `EndLoopIntCalculator`, `EndLoopFloatCalculator`, `EndLoopStringCalculator`.
pub struct EndLoopCalculator<T> {
    items: Option<Vec<T>>,
}

impl<T: Clone + Send + Sync + 'static> Calculator for EndLoopCalculator<T> {
    type Options = NoOptions;

    fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
        cc.declare(&[
            &Input::<T>::new("ITEM"),
            &Input::<Timestamp>::new("BATCH_END"),
            &Output::<Vec<T>>::new("ITERABLE"),
        ])
    }

    fn create(_: &NoOptions) -> Result<Self> {
        Ok(EndLoopCalculator { items: None })
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        if let Some(item) = cx.input(&Input::<T>::new("ITEM")).get()? {
            self.items.get_or_insert_with(Vec::new).push(item.clone());
        }
        if let Some(&ts) = cx.input(&Input::<Timestamp>::new("BATCH_END")).get()? {
            let mut out = cx.output(&Output::<Vec<T>>::new("ITERABLE"));
            match self.items.take() {
                Some(items) => out.send(items, ts)?,
                None => out.set_next_timestamp_bound(ts.next_allowed_in_stream())?,
            }
        }
        Ok(Flow::Continue)
    }
}

mediagraph_framework::register_calculator!(BeginLoopCalculator<i64>, "BeginLoopIntCalculator");
mediagraph_framework::register_calculator!(EndLoopCalculator<i64>, "EndLoopIntCalculator");
mediagraph_framework::register_calculator!(BeginLoopCalculator<f32>, "BeginLoopFloatCalculator");
mediagraph_framework::register_calculator!(EndLoopCalculator<f32>, "EndLoopFloatCalculator");
mediagraph_framework::register_calculator!(
    BeginLoopCalculator<String>,
    "BeginLoopStringCalculator"
);
mediagraph_framework::register_calculator!(EndLoopCalculator<String>, "EndLoopStringCalculator");

#[cfg(test)]
mod tests {
    use crate::test_util::*;
    use mediagraph_framework::prelude::*;

    /// Test loop body: adds the CLONE value to each ITEM.
    struct AddClone;
    impl Calculator for AddClone {
        type Options = NoOptions;
        fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
            cc.declare(&[
                &Input::<i64>::new("ITEM"),
                &Input::<i64>::new("CLONE"),
                &Output::<i64>::new("ITEM"),
            ])?;
            cc.set_timestamp_offset(0);
            Ok(())
        }
        fn create(_: &NoOptions) -> Result<Self> {
            Ok(AddClone)
        }
        fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
            let (Some(a), Some(b)) = (
                cx.input(&Input::<i64>::new("ITEM")).get()?,
                cx.input(&Input::<i64>::new("CLONE")).get()?,
            ) else {
                return Ok(Flow::Continue);
            };
            let ts = cx.input_timestamp();
            cx.output(&Output::<i64>::new("ITEM")).send(a + b, ts)?;
            Ok(Flow::Continue)
        }
    }
    mediagraph_framework::register_calculator!(AddClone, "LoopTestAddClone");

    #[test]
    fn runs_the_body_per_element_and_regroups_at_the_outer_timestamp() {
        let mut g = graph(
            r#"
input_stream: [v, k]
node:
  - calculator: BeginLoopIntCalculator
    input_stream: ["ITERABLE:v", "CLONE:k"]
    output_stream: ["ITEM:item", "CLONE:k_item", "BATCH_END:end"]
  - calculator: LoopTestAddClone
    input_stream: ["ITEM:item", "CLONE:k_item"]
    output_stream: ["ITEM:sum"]
  - calculator: EndLoopIntCalculator
    input_stream: ["ITEM:sum", "BATCH_END:end"]
    output_stream: ["ITERABLE:out"]
"#,
        );
        let out = record(&mut g, "out");
        let items = record(&mut g, "item");
        let end = record(&mut g, "end");
        g.start_run(Default::default()).unwrap();
        g.add_packet("v", at(vec![1i64, 2, 3], 100)).unwrap();
        g.add_packet("k", at(10i64, 100)).unwrap();
        g.add_packet("v", at(Vec::<i64>::new(), 200)).unwrap();
        g.add_packet("k", at(20i64, 200)).unwrap();
        g.add_packet("v", at(vec![5i64], 300)).unwrap();
        g.add_packet("k", at(30i64, 300)).unwrap();
        g.finish().unwrap();
        assert_eq!(
            out.values::<Vec<i64>>(),
            vec![(ts(100), vec![11, 12, 13]), (ts(300), vec![35])]
        );
        assert_eq!(items.timestamps(), vec![ts(0), ts(1), ts(2), ts(4)]);
        assert_eq!(
            end.values::<Timestamp>(),
            vec![(ts(2), ts(100)), (ts(3), ts(200)), (ts(4), ts(300))]
        );
    }
}
