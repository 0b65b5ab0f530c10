//! A run whose worker threads cannot all be started fails with a clear error, and the
//! threads it had already started end (its own test binary: it counts the process's threads).

mod common;

use std::collections::HashMap;

use common::*;
use mediagraph_framework::Graph;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

/// The thread count once it is back to `expected` (a joined thread can stay listed in /proc
/// for a moment), or what it is after a second.
fn threads_settling_at(expected: usize) -> usize {
    let start = std::time::Instant::now();
    loop {
        let n = threads();
        if n == expected || start.elapsed() > std::time::Duration::from_secs(1) {
            return n;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn a_failed_start_leaves_no_worker_behind_and_bad_names_are_errors() {
    let spec = graph(
        "num_threads: 2\nexecutor: [{name: big, options: {num_threads: 1}}]\nnode:\n  - {calculator: TSource, output_stream: [a], options: {count: 3}, executor: big}\n  - {calculator: TPass, input_stream: [a], output_stream: [b]}\n",
    )
    .spec()
    .clone();
    // Past what validation accepts (1 GiB), as a program building its spec could ask: the
    // default executor's two threads start, the third cannot.
    let mut impossible = spec.clone();
    impossible.executors[0].stack_size = Some(1 << 50);
    let before = threads();
    for _ in 0..3 {
        let mut g = Graph::new(impossible.clone());
        let err = g.start_run(HashMap::new()).unwrap_err().to_string();
        assert!(err.contains("cannot start worker thread big-0"), "{err}");
        drop(g);
        assert_eq!(
            threads_settling_at(before),
            before,
            "workers of the failed start are still running"
        );
    }
    // The same graph with a possible stack size runs.
    let mut g = Graph::new(spec);
    g.run(HashMap::new()).unwrap();
    assert_eq!(threads_settling_at(before), before);
    // (One test: a second test running alongside would change the thread count.)
    a_thread_name_std_refuses_is_an_error_not_a_panic();
}

/// A spec built in code with a thread name std refuses: an error, not a panic.
fn a_thread_name_std_refuses_is_an_error_not_a_panic() {
    let mut spec = graph(
        "executor: [{name: io, options: {num_threads: 1}}]\nnode:\n  - {calculator: TSource, output_stream: [a], options: {count: 3}, executor: io}\n",
    )
    .spec()
    .clone();
    spec.executors[0].thread_name_prefix = Some("a\0b".into());
    let before = threads();
    let mut g = Graph::new(spec);
    let err = g.start_run(HashMap::new()).unwrap_err().to_string();
    assert!(err.contains("cannot contain a NUL character"), "{err}");
    drop(g);
    assert_eq!(threads(), before);
}
