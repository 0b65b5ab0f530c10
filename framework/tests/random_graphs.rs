//! Property test: random DAGs, thread counts (or the default executor on the application
//! thread), queue limits, executors and parallel calls (`max_in_flight`). Every packet reaches
//! every sink exactly once and in timestamp order, and no run hangs.

mod common;

use std::collections::HashMap;

use common::*;
use mediagraph_framework::{Packet, Timestamp};
use proptest::prelude::*;

/// A node reads one or two earlier streams: one -> TPass (copy), two -> TAdd (sum); it runs
/// on the default executor (0) or on named executor `e1` (1 thread) or `e2` (2 threads), with
/// `max_in_flight` 1 to 3.
#[derive(Clone, Debug)]
struct Shape {
    inputs: Vec<Vec<usize>>,
    executors: Vec<usize>,
    in_flight: Vec<usize>,
    threads: usize,
    max_queue_size: i64,
    timestamps: Vec<i64>,
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        1usize..12,
        0usize..4,
        prop::sample::select(vec![1i64, 2, 3, 10, -1]),
    )
        .prop_flat_map(|(n, threads, max_queue_size)| {
            let nodes: Vec<_> = (0..n)
                .map(|i| prop::collection::vec(0..=i, 1..=2))
                .collect();
            let executors = prop::collection::vec(0usize..3, n);
            let in_flight = prop::collection::vec(1usize..4, n);
            let ts = prop::collection::btree_set(0i64..10_000, 1..200);
            (
                nodes,
                executors,
                in_flight,
                Just(threads),
                Just(max_queue_size),
                ts,
            )
        })
        .prop_map(
            |(inputs, executors, in_flight, threads, max_queue_size, ts)| Shape {
                inputs,
                executors,
                in_flight,
                threads,
                max_queue_size,
                timestamps: ts.into_iter().collect(),
            },
        )
}

fn yaml(shape: &Shape) -> (String, Vec<(String, i64)>) {
    // Stream 0 is the graph input; node i writes stream i + 1.
    let mut coef = vec![1i64];
    let mut consumed = vec![false; shape.inputs.len() + 1];
    // 0 threads: the default executor runs on the application thread.
    let (threads, application_thread) = match shape.threads {
        0 => (String::new(), "{type: ApplicationThreadExecutor}, "),
        n => (format!("num_threads: {n}\n"), ""),
    };
    let mut y = format!(
        "input_stream: [s0]\n{threads}max_queue_size: {}\nexecutor: [{application_thread}{{name: e1, options: {{num_threads: 1}}}}, {{name: e2, options: {{num_threads: 2}}}}]\nnode:\n",
        shape.max_queue_size
    );
    for (i, ins) in shape.inputs.iter().enumerate() {
        let out = i + 1;
        let executor = match shape.executors[i] {
            0 => String::new(),
            e => format!(", executor: e{e}"),
        } + &format!(", max_in_flight: {}", shape.in_flight[i]);
        if ins.len() == 1 || ins[0] == ins[1] {
            y += &format!(
                "  - {{calculator: TPass, input_stream: [s{}], output_stream: [s{out}]{executor}}}\n",
                ins[0]
            );
            coef.push(coef[ins[0]]);
            consumed[ins[0]] = true;
        } else {
            y += &format!(
                "  - {{calculator: TAdd, input_stream: [\"A:s{}\", \"B:s{}\"], output_stream: [\"SUM:s{out}\"]{executor}}}\n",
                ins[0], ins[1]
            );
            coef.push(coef[ins[0]] + coef[ins[1]]);
            consumed[ins[0]] = true;
            consumed[ins[1]] = true;
        }
    }
    let sinks = (1..coef.len())
        .filter(|&s| !consumed[s])
        .map(|s| (format!("s{s}"), coef[s]))
        .collect();
    (y, sinks)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: stress_cases(128), .. ProptestConfig::default() })]

    #[test]
    fn every_packet_reaches_every_sink_once_in_order(shape in shape()) {
        let (config, sinks) = yaml(&shape);
        let timestamps = shape.timestamps.clone();
        let results = with_timeout(30, move || {
            let mut g = graph(&config);
            let pollers: Vec<_> = sinks
                .iter()
                .map(|(name, coef)| (g.add_output_stream_poller(name).unwrap(), *coef, name.clone()))
                .collect();
            g.start_run(HashMap::new()).unwrap();
            for &t in &timestamps {
                g.add_packet("s0", Packet::new(t).at(Timestamp::new(t))).unwrap();
            }
            g.finish().unwrap();
            pollers
                .into_iter()
                .map(|(p, coef, name)| (name, coef, ints(&p)))
                .collect::<Vec<_>>()
        });
        for (name, coef, got) in results {
            let expected: Vec<(i64, i64)> = shape.timestamps.iter().map(|&t| (t, coef * t)).collect();
            prop_assert_eq!(got, expected, "sink {}", name);
        }
    }
}
