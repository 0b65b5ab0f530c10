//! Cancellation and shutdown under load: cancel at random moments, drop a running graph, close
//! inputs early, fail mid-run. Every run ends, and no thread or file handle outlives its graph.
//! (A file of its own, so no other test's threads run in this process.)

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use mediagraph_framework::{Packet, Timestamp};

/// The number of entries of `dir` once it stops changing: a joined thread can still be
/// listed in /proc for a moment while the kernel finishes its exit, so one read may count
/// it (seen in CI: 3 threads before the rounds, 2 after).
fn count_entries(dir: &str) -> usize {
    let read = || std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    let mut last = read();
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(20));
        let now = read();
        if now == last {
            break;
        }
        last = now;
    }
    last
}

/// A small deterministic generator (the test must not depend on a clock for its choices).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

// Some nodes run on named executors, so their threads are checked too.
const ENDLESS: &str = "num_threads: 2\nmax_queue_size: 4\nexecutor: [{name: side, options: {num_threads: 1}}]\nnode:\n  - {calculator: TSource, output_stream: [a], options: {count: 0, endless: true}}\n  - {calculator: TPass, input_stream: [a], output_stream: [b], executor: side}\n  - {calculator: TEvens, input_stream: [b], output_stream: [c]}\n";
const FED: &str = "input_stream: [in]\nnum_threads: 2\nmax_queue_size: 3\nexecutor: [{name: slow, options: {num_threads: 2}}]\nnode:\n  - {calculator: TPass, input_stream: [in], output_stream: [b]}\n  - {calculator: TFault, input_stream: [b], output_stream: [c], options: {at: -1, mode: sleep}, executor: slow}\n";

#[test]
fn no_thread_or_handle_outlives_a_graph() {
    setup();
    // Warm up once so lazily created process-wide state is not counted as a leak.
    with_timeout(20, || {
        let mut g = graph(ENDLESS);
        g.start_run(HashMap::new()).unwrap();
        g.cancel();
        let _ = g.wait_until_done();
    });
    let threads_before = count_entries("/proc/self/task");
    let fds_before = count_entries("/proc/self/fd");
    let mut rng = Lcg(42);
    for round in 0..40 {
        let choice = rng.next(4);
        let wait_us = rng.next(3000);
        with_timeout(30, move || match choice {
            0 => {
                let mut g = graph(ENDLESS);
                g.start_run(HashMap::new()).unwrap();
                std::thread::sleep(Duration::from_micros(wait_us));
                g.cancel();
                let err = g.wait_until_done().unwrap_err();
                assert!(err.is_cancelled(), "round {round}: {err}");
            }
            1 => {
                let mut g = graph(ENDLESS);
                g.start_run(HashMap::new()).unwrap();
                std::thread::sleep(Duration::from_micros(wait_us));
                drop(g);
            }
            2 => {
                let mut g = graph(FED);
                let out = g.add_output_stream_poller("c").unwrap();
                g.start_run(HashMap::new()).unwrap();
                let n = wait_us % 50;
                for t in 0..n as i64 {
                    g.add_packet("in", Packet::new(t).at(Timestamp::new(t)))
                        .unwrap();
                }
                g.close_all_input_streams().unwrap();
                g.wait_until_done().unwrap();
                assert_eq!(
                    std::iter::from_fn(|| out.next()).count() as u64,
                    n,
                    "round {round}"
                );
            }
            _ => {
                let mut g = graph(
                    &FED.replace("mode: sleep", "mode: error")
                        .replace("at: -1", "at: 7"),
                );
                g.start_run(HashMap::new()).unwrap();
                for t in 0..20i64 {
                    if g.add_packet("in", Packet::new(t).at(Timestamp::new(t)))
                        .is_err()
                    {
                        break;
                    }
                }
                let err = g.finish().unwrap_err().to_string();
                assert!(err.contains("timestamp 7"), "round {round}: {err}");
            }
        });
    }
    assert_eq!(
        count_entries("/proc/self/task"),
        threads_before,
        "threads leaked"
    );
    assert_eq!(
        count_entries("/proc/self/fd"),
        fds_before,
        "file handles leaked"
    );
}
