//! Property test: parallel calls (`max_in_flight` 1-3) under every input stream handler
//! (batch sizes too), with ProcessTimestampBounds and offsets on and off and bound-only
//! advances: the outputs are what must come out, in order, and no run hangs (from review).

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Once;
use std::time::Duration;

use common::*;
use mediagraph_framework::prelude::*;
use mediagraph_framework::{calculator, Graph};
use proptest::prelude::*;
use serde::Deserialize;

struct TDuo {
    o: DuoOptions,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct DuoOptions {
    #[serde(default)]
    bounds: bool,
    #[serde(default)]
    offset: bool,
    #[serde(default)]
    sleep_us: u64,
}

const DA: Input<i64> = Input::new("A");
const DB: Input<i64> = Input::new("B");
const OA: Output<i64> = Output::new("OA");
const OB: Output<i64> = Output::new("OB");

impl Calculator for TDuo {
    type Options = DuoOptions;
    fn contract(cc: &mut Contract, o: &DuoOptions) -> Result<()> {
        cc.declare(&[&DA, &DB, &OA, &OB])?;
        if o.offset {
            cc.set_timestamp_offset(0);
        }
        cc.set_process_timestamp_bounds(o.bounds);
        cc.set_independent_calls(true);
        Ok(())
    }
    fn create(o: &DuoOptions) -> Result<Self> {
        Ok(TDuo { o: o.clone() })
    }
    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let ts = cx.input_timestamp();
        if self.o.sleep_us > 0 && ts.is_range() {
            std::thread::sleep(Duration::from_micros(
                self.o.sleep_us * (ts.value().rem_euclid(4) as u64),
            ));
        }
        if let Some(a) = cx.input(&DA).get()?.copied() {
            cx.output(&OA).send(a, ts)?;
        }
        if let Some(b) = cx.input(&DB).get()?.copied() {
            cx.output(&OB).send(b, ts)?;
        }
        Ok(Flow::Continue)
    }
}

#[derive(Clone, Debug)]
struct Case {
    a: Vec<i64>,
    b: Vec<i64>,
    /// Per step: which stream gets its next packet (true: a), or a bound advance.
    order: Vec<u8>,
    handler: usize,
    bounds: bool,
    offset: bool,
    mif: usize,
    threads: usize,
    sleep_us: u64,
    queue: i64,
}

const HANDLERS: [&str; 6] = [
    "{input_stream_handler: Default}",
    "{input_stream_handler: Default, options: {batch_size: 2}}",
    "{input_stream_handler: Default, options: {batch_size: 3}}",
    "{input_stream_handler: Immediate}",
    "{input_stream_handler: SyncSet, options: {sync_set: [{tag_index: [\"A\"]}, {tag_index: [\"B\"]}]}}",
    "{input_stream_handler: FixedSize, options: {trigger_queue_size: 1000, target_queue_size: 1000}}",
];

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::btree_set(0i64..200, 0..40),
        prop::collection::btree_set(0i64..200, 0..40),
        prop::collection::vec(0u8..3, 120),
        0..HANDLERS.len(),
        any::<bool>(),
        any::<bool>(),
        1usize..4,
        1usize..4,
        prop::sample::select(vec![0u64, 50, 300]),
        prop::sample::select(vec![-1i64, 1, 2, 5]),
    )
        .prop_map(
            |(a, b, order, handler, bounds, offset, mif, threads, sleep_us, queue)| Case {
                a: a.into_iter().collect(),
                b: b.into_iter().collect(),
                order,
                handler,
                bounds,
                // Offsets with several sync sets can refuse packets legitimately.
                offset: offset && handler < 3,
                mif,
                threads,
                sleep_us,
                queue,
            },
        )
}

fn setup_duo() {
    static ONCE: Once = Once::new();
    setup();
    ONCE.call_once(|| calculator::register::<TDuo>("TDuo"));
}

/// A run's outputs `oa`, `ob` and `sum`, and its result.
type RunOutputs = (
    Vec<(i64, i64)>,
    Vec<(i64, i64)>,
    Vec<(i64, i64)>,
    std::result::Result<(), String>,
);

fn run(c: &Case) -> RunOutputs {
    setup_duo();
    let yaml = format!(
        "input_stream: [a, b]\nnum_threads: {}\nmax_queue_size: {}\nnode:\n  - {{calculator: TDuo, name: duo, input_stream: [\"A:a\", \"B:b\"], output_stream: [\"OA:oa\", \"OB:ob\"], max_in_flight: {}, input_stream_handler: {}, options: {{bounds: {}, offset: {}, sleep_us: {}}}}}\n  - {{calculator: TAdd, name: add, input_stream: [\"A:oa\", \"B:ob\"], output_stream: [\"SUM:sum\"]}}\n",
        c.threads, c.queue, c.mif, HANDLERS[c.handler], c.bounds, c.offset, c.sleep_us
    );
    let mut g = Graph::from_yaml_str(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let poa = g.add_output_stream_poller("oa").unwrap();
    let pob = g.add_output_stream_poller("ob").unwrap();
    let psum = g.add_output_stream_poller("sum").unwrap();
    g.start_run(HashMap::new()).unwrap();
    let (mut ia, mut ib) = (0, 0);
    let mut ok = true;
    for &step in &c.order {
        let r = match step {
            0 if ia < c.a.len() => {
                ia += 1;
                g.add_packet(
                    "a",
                    Packet::new(c.a[ia - 1]).at(Timestamp::new(c.a[ia - 1])),
                )
            }
            1 if ib < c.b.len() => {
                ib += 1;
                g.add_packet(
                    "b",
                    Packet::new(100_000 + c.b[ib - 1]).at(Timestamp::new(c.b[ib - 1])),
                )
            }
            2 => {
                // bound: up to the next packet of a
                let next = c.a.get(ia).copied().unwrap_or(300);
                g.set_input_stream_timestamp_bound("a", Timestamp::new(next))
            }
            _ => Ok(()),
        };
        if r.is_err() {
            ok = false;
            break;
        }
    }
    if ok {
        for &t in &c.a[ia..] {
            let _ = g.add_packet("a", Packet::new(t).at(Timestamp::new(t)));
        }
        for &t in &c.b[ib..] {
            let _ = g.add_packet("b", Packet::new(100_000 + t).at(Timestamp::new(t)));
        }
    }
    let r = g.finish().map_err(|e| e.to_string());
    (ints(&poa), ints(&pob), ints(&psum), r)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: stress_cases(200), .. ProptestConfig::default() })]

    #[test]
    fn parallel_calls_under_every_handler(c in case()) {
        let c2 = c.clone();
        let (oa, ob, sum, r) = with_timeout(30, move || run(&c2));
        prop_assert!(r.is_ok(), "{:?}: {:?}", c, r);
        let want_a: Vec<(i64, i64)> = c.a.iter().map(|&t| (t, t)).collect();
        let want_b: Vec<(i64, i64)> = c.b.iter().map(|&t| (t, 100_000 + t)).collect();
        prop_assert_eq!(&oa, &want_a, "oa {:?}", c);
        prop_assert_eq!(&ob, &want_b, "ob {:?}", c);
        let mut want: BTreeMap<i64, i64> = BTreeMap::new();
        let all: BTreeSet<i64> = c.a.iter().chain(&c.b).copied().collect();
        for t in all {
            let v = if c.a.contains(&t) { t } else { 0 } + if c.b.contains(&t) { 100_000 + t } else { 0 };
            want.insert(t, v);
        }
        let want: Vec<(i64, i64)> = want.into_iter().collect();
        prop_assert_eq!(&sum, &want, "sum {:?}", c);
    }
}
