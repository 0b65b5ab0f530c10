//! Fault injection: a faulty node at a random place in a random graph errors, panics, sleeps or
//! emits a timestamp out of order at a random packet, with nodes spread over the default and
//! two named executors (the default one on the application thread in some cases), and with
//! parallel calls (`max_in_flight` 1 to 3). Every run ends, a failed run names the node (and the timestamp or
//! stream at fault), and a run that succeeds delivered everything.

mod common;

use std::collections::HashMap;

use common::*;
use mediagraph_framework::{Packet, Timestamp};
use proptest::prelude::*;

#[derive(Clone, Debug)]
struct Case {
    /// Node i reads stream `inputs[i]` (an earlier stream); node `faulty` is the fault node.
    inputs: Vec<usize>,
    /// Node i runs on the default executor (0) or on `e1` (1 thread) / `e2` (2 threads).
    executors: Vec<usize>,
    /// Node i's `max_in_flight`.
    in_flight: Vec<usize>,
    faulty: usize,
    mode: &'static str,
    fault_at: usize,
    threads: usize,
    max_queue_size: i64,
    count: usize,
}

fn case() -> impl Strategy<Value = Case> {
    (
        2usize..8,
        0usize..4,
        prop::sample::select(vec![2i64, 5, -1]),
        5usize..60,
    )
        .prop_flat_map(|(n, threads, max_queue_size, count)| {
            (
                (0..n).map(|i| 0..=i).collect::<Vec<_>>(),
                prop::collection::vec(0usize..3, n),
                prop::collection::vec(1usize..4, n),
                0..n,
                prop::sample::select(vec!["error", "panic", "sleep", "backwards"]),
                0..count,
                Just(threads),
                Just(max_queue_size),
                Just(count),
            )
        })
        .prop_map(
            |(
                inputs,
                executors,
                in_flight,
                faulty,
                mode,
                fault_at,
                threads,
                max_queue_size,
                count,
            )| Case {
                inputs,
                executors,
                in_flight,
                faulty,
                mode,
                fault_at,
                threads,
                max_queue_size,
                count,
            },
        )
}

/// The timestamp of the faulty packet (never the first: going backwards needs a predecessor).
fn fault_ts(c: &Case) -> i64 {
    c.fault_at.max(1) as i64 * 3 + 3
}

fn yaml(c: &Case) -> String {
    // 0 threads: the default executor runs on the application thread.
    let (threads, application_thread) = match c.threads {
        0 => (String::new(), "{type: ApplicationThreadExecutor}, "),
        n => (format!("num_threads: {n}\n"), ""),
    };
    let mut y = format!(
        "input_stream: [s0]\n{threads}max_queue_size: {}\nexecutor: [{application_thread}{{name: e1, options: {{num_threads: 1}}}}, {{name: e2, options: {{num_threads: 2}}}}]\nnode:\n",
        c.max_queue_size
    );
    for (i, &input) in c.inputs.iter().enumerate() {
        let executor = match c.executors[i] {
            0 => String::new(),
            e => format!(", executor: e{e}"),
        } + &format!(", max_in_flight: {}", c.in_flight[i]);
        if i == c.faulty {
            // Timestamps are 3 apart, so "backwards" (5 earlier) is below the previous packet.
            y += &format!(
                "  - {{calculator: TFault, name: faulty, input_stream: [s{input}], output_stream: [s{}], options: {{at: {}, mode: {}}}{executor}}}\n",
                i + 1,
                fault_ts(c),
                c.mode
            );
        } else {
            y += &format!(
                "  - {{calculator: TPass, input_stream: [s{input}], output_stream: [s{}]{executor}}}\n",
                i + 1
            );
        }
    }
    y
}

proptest! {
    #![proptest_config(ProptestConfig { cases: stress_cases(64), .. ProptestConfig::default() })]

    #[test]
    fn faults_end_the_run_with_an_error_that_names_them(c in case()) {
        let config = yaml(&c);
        let sinks: Vec<String> = (1..=c.inputs.len())
            .filter(|s| !c.inputs.contains(s))
            .map(|s| format!("s{s}"))
            .collect();
        let count = c.count;
        let (result, delivered) = with_timeout(30, move || {
            let mut g = graph(&config);
            let pollers: Vec<_> = sinks.iter().map(|s| g.add_output_stream_poller(s).unwrap()).collect();
            g.start_run(HashMap::new()).unwrap();
            for i in 0..count as i64 {
                let t = i * 3 + 3;
                if g.add_packet("s0", Packet::new(t).at(Timestamp::new(t))).is_err() {
                    break; // The run already failed; add_packet says so.
                }
            }
            let result = g.finish();
            let delivered: Vec<usize> = pollers.iter().map(|p| std::iter::from_fn(|| p.next()).count()).collect();
            (result, delivered)
        });
        match c.mode {
            "sleep" => {
                prop_assert!(result.is_ok(), "{:?}", result);
                prop_assert!(delivered.iter().all(|&d| d == c.count), "{:?}", delivered);
            }
            mode => {
                let err = result.expect_err("a fault must fail the run").to_string();
                if mode == "backwards" {
                    prop_assert!(err.contains("minimum expected timestamp"), "{}", err);
                    prop_assert!(err.contains(&format!("stream \"s{}\"", c.faulty + 1)), "{}", err);
                } else {
                    prop_assert!(err.contains("node \"faulty\""), "{}", err);
                    prop_assert!(err.contains(&format!("timestamp {}", fault_ts(&c))), "{}", err);
                }
            }
        }
    }
}
