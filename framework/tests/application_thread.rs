//! The ApplicationThreadExecutor: the default executor has no threads; its tasks run on the
//! application thread inside the Graph calls that wait.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use common::*;
use mediagraph_framework::{AddMode, Error, Graph, Packet, Timestamp};

/// Runs `f` on a thread called `app`, with a time limit.
fn on_app_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    with_timeout(30, move || {
        std::thread::Builder::new()
            .name("app".into())
            .spawn(f)
            .unwrap()
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn names(poller: &mediagraph_framework::OutputStreamPoller) -> Vec<String> {
    std::iter::from_fn(|| poller.next())
        .map(|p| p.get::<String>().unwrap().clone())
        .collect()
}

const APP: &str = "executor: [{type: ApplicationThreadExecutor}]\n";

#[test]
fn every_call_runs_on_the_thread_that_waits_for_the_run() {
    let (on, source_progress) = on_app_thread(|| {
        let mut g = graph(&format!(
            "{APP}output_stream: [names]\nnode:\n  - {{calculator: TSource, name: src, output_stream: [n], options: {{count: 40}}}}\n  - {{calculator: TThreadName, input_stream: [n], output_stream: [names]}}\n"
        ));
        let poller = g.add_output_stream_poller("names").unwrap();
        g.start_run(HashMap::new()).unwrap();
        // No worker thread: nothing has run before the application waits.
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            poller.queue_len(),
            0,
            "a call ran without the application waiting"
        );
        g.wait_until_done().unwrap();
        let progress = g.stats().iter().find(|s| s.name == "src").unwrap().progress;
        (names(&poller), progress)
    });
    assert_eq!(on, vec!["app".to_string(); 40]);
    assert_eq!(source_progress, Some((40, Some(40))));
}

#[test]
fn a_poller_drives_the_run_until_a_packet_comes() {
    let got = on_app_thread(|| {
        let mut g = graph(&format!(
            "{APP}input_stream: [in]\noutput_stream: [out]\nnode:\n  - {{calculator: TPass, input_stream: [in], output_stream: [a]}}\n  - {{calculator: TPass, input_stream: [a], output_stream: [out]}}\n"
        ));
        let poller = g.add_output_stream_poller("out").unwrap();
        g.start_run(HashMap::new()).unwrap();
        let mut got = Vec::new();
        for t in 0..20 {
            g.add_packet("in", Packet::new(t).at(Timestamp::new(t)))
                .unwrap();
            // Each packet comes out while the input is still open.
            let p = poller
                .next_timeout(Duration::from_secs(5))
                .unwrap()
                .expect("a packet");
            got.push(*p.get::<i64>().unwrap());
        }
        // A poller with nothing coming gives up at its deadline.
        assert!(poller.next_timeout(Duration::from_millis(20)).is_err());
        g.finish().unwrap();
        assert!(poller.next().is_none(), "done after the run");
        got
    });
    assert_eq!(got, (0..20).collect::<Vec<_>>());
}

#[test]
fn wait_until_idle_runs_the_pending_calls() {
    let queued = on_app_thread(|| {
        let mut g = graph(&format!(
            "{APP}input_stream: [in]\noutput_stream: [out]\nnode:\n  - {{calculator: TPass, input_stream: [in], output_stream: [out]}}\n"
        ));
        let poller = g.add_output_stream_poller("out").unwrap();
        g.start_run(HashMap::new()).unwrap();
        for t in 0..10 {
            g.add_packet("in", Packet::new(t).at(Timestamp::new(t)))
                .unwrap();
        }
        assert_eq!(poller.queue_len(), 0);
        g.wait_until_idle().unwrap();
        let queued = poller.queue_len();
        g.finish().unwrap();
        queued
    });
    assert_eq!(queued, 10);
}

#[test]
fn a_throttled_add_packet_runs_the_nodes_that_drain_the_queue() {
    let out = on_app_thread(|| {
        let mut g = graph(&format!(
            "{APP}max_queue_size: 2\ninput_stream: [in]\noutput_stream: [out]\nnode:\n  - {{calculator: TPass, input_stream: [in], output_stream: [a]}}\n  - {{calculator: TPass, input_stream: [a], output_stream: [out]}}\n"
        ));
        g.set_add_mode(AddMode::WaitTillNotFull);
        let poller = g.add_output_stream_poller("out").unwrap();
        g.start_run(HashMap::new()).unwrap();
        for t in 0..200 {
            g.add_packet("in", Packet::new(t).at(Timestamp::new(t)))
                .unwrap();
        }
        g.finish().unwrap();
        ints(&poller)
    });
    assert_eq!(out.len(), 200);
    assert!(out.iter().enumerate().all(|(i, &(t, _))| t == i as i64));
}

#[test]
fn nodes_on_a_named_executor_keep_their_threads() {
    let (app, pool) = on_app_thread(|| {
        let mut g = graph(
            "executor: [{type: ApplicationThreadExecutor}, {name: io, options: {num_threads: 1, thread_name_prefix: io}}]\ninput_stream: [in]\nnode:\n  - {calculator: TThreadName, input_stream: [in], output_stream: [a]}\n  - {calculator: TThreadName, input_stream: [in], output_stream: [b], executor: io}\n",
        );
        let a = g.add_output_stream_poller("a").unwrap();
        let b = g.add_output_stream_poller("b").unwrap();
        g.start_run(HashMap::new()).unwrap();
        for t in 0..30 {
            g.add_packet("in", Packet::new(t).at(Timestamp::new(t)))
                .unwrap();
        }
        g.finish().unwrap();
        (names(&a), names(&b))
    });
    assert_eq!(app, vec!["app".to_string(); 30]);
    assert_eq!(pool, vec!["io-0".to_string(); 30]);
}

#[test]
fn a_cancel_from_another_thread_ends_a_driven_run() {
    let err = on_app_thread(|| {
        let mut g = graph(&format!(
            "{APP}node:\n  - {{calculator: TSource, output_stream: [n], options: {{count: 0, endless: true}}}}\n  - {{calculator: TPass, input_stream: [n], output_stream: [m]}}\n"
        ));
        g.start_run(HashMap::new()).unwrap();
        let cancel = g.cancel_handle();
        let canceller = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            cancel.cancel();
        });
        let result = g.wait_until_done();
        canceller.join().unwrap();
        result.unwrap_err()
    });
    assert!(matches!(err, Error::Cancelled), "{err}");
}

#[test]
fn errors_name_the_node_and_a_rerun_works() {
    on_app_thread(|| {
        let mut g = graph(&format!(
            "{APP}input_stream: [in]\nnode:\n  - {{calculator: TFault, name: faulty, input_stream: [in], output_stream: [out], options: {{at: 3, mode: error}}}}\n"
        ));
        for _ in 0..2 {
            g.start_run(HashMap::new()).unwrap();
            for t in 0..10 {
                if g.add_packet("in", Packet::new(t).at(Timestamp::new(t)))
                    .is_err()
                {
                    break;
                }
            }
            let err = g.finish().unwrap_err().to_string();
            assert!(
                err.contains("node \"faulty\"") && err.contains("timestamp 3"),
                "{err}"
            );
        }
    });
}

#[test]
fn the_executor_type_is_checked_where_it_is_written() {
    setup();
    let refused = |yaml: &str| match Graph::from_yaml_str(yaml) {
        Ok(_) => panic!("accepted: {yaml}"),
        Err(e) => e.to_string(),
    };
    let node = "input_stream: [in]\nnode:\n  - {calculator: TPass, input_stream: [in], output_stream: [out]}\n";
    let err = refused(&format!(
        "executor: [{{name: ui, type: ApplicationThreadExecutor}}]\n{node}"
    ));
    assert!(
        err.contains("only the default executor") && err.contains(":1:"),
        "{err}"
    );
    let err = refused(&format!(
        "executor: [{{type: ApplicationThreadExecutor, options: {{num_threads: 2}}}}]\n{node}"
    ));
    assert!(err.contains("takes no options"), "{err}");
    let err = refused(&format!(
        "num_threads: 2\nexecutor: [{{type: ApplicationThreadExecutor}}]\n{node}"
    ));
    assert!(err.contains("set the thread count in one place"), "{err}");
    let err = refused(&format!("executor: [{{type: GpuExecutor}}]\n{node}"));
    assert!(
        err.contains("ThreadPoolExecutor and ApplicationThreadExecutor"),
        "{err}"
    );
    let g = graph(&format!("{APP}{node}"));
    assert!(g.spec().application_thread);
    assert_eq!(g.spec().executor_threads(), vec![0]);
}

/// Runs a one-node application-thread graph to the end (from inside another run's
/// observer in the tests below).
fn run_inner_app_thread_graph() {
    let mut inner = graph(&format!(
        "{APP}input_stream: [in]\nnode:\n  - {{calculator: TPass, input_stream: [in], output_stream: [out]}}\n"
    ));
    inner.start_run(HashMap::new()).unwrap();
    inner
        .add_packet("in", Packet::new(1i64).at(Timestamp::new(1)))
        .unwrap();
    inner.finish().unwrap();
}

#[test]
fn a_run_driven_inside_another_runs_observer_leaves_that_run_intact() {
    // The observer runs on a thread of the outer run (its default pool, or its named
    // executor): the inner run must put back what that thread was doing (found by review: a
    // task of the outer run was lost, or its thread moved to another executor).
    for outer in [
        "num_threads: 1\ninput_stream: [in]\noutput_stream: [c]\nnode:\n  - {calculator: TPass, input_stream: [in, in], output_stream: [b, a]}\n  - {calculator: TPass, input_stream: [a], output_stream: [c]}\n",
        "executor: [{name: x, options: {num_threads: 1}}]\ninput_stream: [in]\noutput_stream: [c]\nnode:\n  - {calculator: TPass, input_stream: [in], output_stream: [b], executor: x}\n  - {calculator: TPass, input_stream: [b], output_stream: [c], executor: x}\n",
    ] {
        let got = with_timeout(20, move || {
            let mut g = graph(outer);
            g.observe_output_stream("b", |_| {
                run_inner_app_thread_graph();
                Ok(())
            })
            .unwrap();
            let poller = g.add_output_stream_poller("c").unwrap();
            g.start_run(HashMap::new()).unwrap();
            for t in 0..5 {
                g.add_packet("in", Packet::new(t).at(Timestamp::new(t)))
                    .unwrap();
            }
            g.finish().unwrap();
            ints(&poller).len()
        });
        assert_eq!(got, 5, "{outer}");
    }
}

#[test]
fn wait_until_idle_returns_at_an_idle_point_under_a_steady_feed() {
    // Found by review: the driving thread checked for idle before counting the call it had
    // just finished, so it only saw idle after 2 ms without any new work.
    let waited = with_timeout(30, move || {
        let mut g = graph(&format!(
            "{APP}input_stream: [in]\nnode:\n  - {{calculator: TPass, input_stream: [in], output_stream: [out]}}\n"
        ));
        g.start_run(HashMap::new()).unwrap();
        g.wait_until_idle().unwrap();
        let waited = std::thread::scope(|s| {
            s.spawn(|| {
                for t in 0..1000i64 {
                    g.add_packet("in", Packet::new(t).at(Timestamp::new(t)))
                        .unwrap();
                    std::thread::sleep(Duration::from_millis(1));
                }
            });
            std::thread::sleep(Duration::from_millis(50));
            let start = std::time::Instant::now();
            g.wait_until_idle().unwrap();
            start.elapsed()
        });
        g.finish().unwrap();
        waited
    });
    assert!(
        waited < Duration::from_millis(500),
        "wait_until_idle took {waited:?}"
    );
}

#[test]
fn an_observer_that_panics_fails_the_run_and_the_graph_drops() {
    for executor in [APP, "num_threads: 1\n"] {
        let err = with_timeout(20, move || {
            let mut g = graph(&format!(
                "{executor}input_stream: [in]\nnode:\n  - {{calculator: TPass, input_stream: [in], output_stream: [out]}}\n"
            ));
            g.observe_output_stream("out", |_| panic!("observer panics"))
                .unwrap();
            g.start_run(HashMap::new()).unwrap();
            let _ = g.add_packet("in", Packet::new(1i64).at(Timestamp::new(1)));
            let err = g.finish().unwrap_err().to_string();
            g.start_run(HashMap::new()).unwrap();
            drop(g); // a running graph: cancelled and waited for
            err
        });
        assert!(
            err.contains("observer") && err.contains("observer panics"),
            "{executor}: {err}"
        );
    }
}

/// Runs `yaml` (graph input `in`, output `out`) on one packet with an observer of `out` that
/// holds the graph (shared) and calls `inside` on it; returns the last error `inside` gave.
fn observer_calling_its_own_graph(
    yaml: String,
    inside: impl Fn(&Graph, &Packet) -> Option<String> + Send + Sync + 'static,
) -> Option<String> {
    with_timeout(20, move || {
        let mut g = graph(&yaml);
        g.set_add_mode(AddMode::WaitTillNotFull);
        let shared: Arc<OnceLock<Weak<Graph>>> = Arc::default();
        let seen: Arc<Mutex<Option<String>>> = Arc::default();
        let (graph_of_observer, seen_by_observer) = (shared.clone(), seen.clone());
        g.observe_output_stream("out", move |p| {
            if let Some(g) = graph_of_observer.get().and_then(Weak::upgrade) {
                if let Some(e) = inside(&g, p) {
                    *seen_by_observer.lock().unwrap() = Some(e);
                }
            }
            Ok(())
        })
        .unwrap();
        g.start_run(HashMap::new()).unwrap();
        let g = Arc::new(g);
        shared.set(Arc::downgrade(&g)).unwrap();
        g.add_packet("in", Packet::new(1i64).at(Timestamp::new(1)))
            .unwrap();
        g.close_input_stream("in").unwrap();
        g.wait_until_idle().unwrap();
        g.close_all_input_streams().unwrap();
        let mut g = Arc::into_inner(g).expect("the only owner");
        g.wait_until_done().unwrap();
        let seen = seen.lock().unwrap().clone();
        seen
    })
}

#[test]
fn waiting_for_the_run_from_inside_it_is_an_error() {
    // An observer that waits for the run it is part of.
    let err = observer_calling_its_own_graph(
        format!(
            "{APP}input_stream: [in]\nnode:\n  - {{calculator: TPass, input_stream: [in], output_stream: [out]}}\n"
        ),
        |g, _| g.wait_until_idle().err().map(|e| e.to_string()),
    );
    let err = err.expect("wait_until_idle inside the run must fail");
    assert!(err.contains("from inside the run"), "{err}");
}

#[test]
fn a_cancel_ends_the_run_while_the_application_thread_is_not_waiting() {
    // The idle handler that ends it runs on a named executor's thread (found by review: only
    // the default executor's threads were woken for it, and it has none here).
    let ended = with_timeout(20, || {
        let mut g = graph(
            "executor: [{type: ApplicationThreadExecutor}, {name: x, options: {num_threads: 1}}]\ninput_stream: [in]\nnode:\n  - {calculator: TPass, input_stream: [in], output_stream: [out], executor: x}\n",
        );
        g.start_run(HashMap::new()).unwrap();
        // Until the executor's thread has opened the node and sleeps.
        std::thread::sleep(Duration::from_millis(200));
        let handle = g.cancel_handle();
        handle.cancel();
        let start = std::time::Instant::now();
        while handle.is_running() && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let ended = !handle.is_running();
        assert!(matches!(g.wait_until_done(), Err(Error::Cancelled)));
        ended
    });
    assert!(ended, "the run still ran 5 s after the cancel");
}

/// An observer that adds two packets to a throttled graph input of its own run: the second
/// add would wait for a queue that only this thread drains. Returns what the add said.
fn add_from_inside_the_run(executor: &str) -> Option<String> {
    observer_calling_its_own_graph(
        format!(
            "{executor}max_queue_size: 1\ninput_stream: [in, fed]\nnode:\n  - {{calculator: TPass, input_stream: [in], output_stream: [out]}}\n  - {{calculator: TPass, input_stream: [fed], output_stream: [fed_out]}}\n"
        ),
        |g, p| {
            let t = p.timestamp().micros() * 10;
            let mut said = None;
            for k in 0..2 {
                if let Err(e) = g.add_packet("fed", Packet::new(1i64).at(Timestamp::new(t + k))) {
                    said = Some(e.to_string());
                }
            }
            said
        },
    )
}

#[test]
fn a_throttled_add_packet_from_inside_the_run_is_refused_instead_of_waiting_for_itself() {
    // It waited forever (found in review: the thread that would drain the queue is the one
    // waiting), on the application thread and on a one-thread pool alike.
    for executor in [APP, "num_threads: 1\n"] {
        let err = add_from_inside_the_run(executor)
            .unwrap_or_else(|| panic!("{executor}: the second add must fail"));
        assert!(
            err.contains("\"fed\"") && err.contains("from inside the run"),
            "{executor}: {err}"
        );
    }
}

#[test]
fn two_readers_of_one_poller_both_get_to_the_end_while_the_application_is_busy() {
    // Reader B's drive stopped at a packet that reader A then took; B then waited for a
    // packet that only a driving thread could make, until the application (A) waited again.
    for attempt in 0..20 {
        let (read_by_b, b_was_done_in_time) = on_app_thread(move || {
            let mut g = graph(&format!(
                "{APP}input_side_packet: [count]\nnode:\n  - {{calculator: TCountSource, input_side_packet: [\"COUNT:count\"], output_stream: [out]}}\n  - {{calculator: TPass, input_stream: [out], output_stream: [out2]}}\n"
            ));
            let poller = Arc::new(g.add_output_stream_poller("out2").unwrap());
            let mut side = HashMap::new();
            side.insert("count".to_string(), Packet::new(2_000i64));
            g.start_run(side).unwrap();
            let b = {
                let poller = poller.clone();
                std::thread::spawn(move || std::iter::from_fn(|| poller.next()).count())
            };
            // A reads a few packets, then is busy elsewhere (not waiting for the run).
            let read_by_a = (0..20 + attempt)
                .filter(|_| poller.next().is_some())
                .count();
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !b.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            let in_time = b.is_finished();
            g.wait_until_done().unwrap();
            (b.join().unwrap() + read_by_a, in_time)
        });
        assert!(b_was_done_in_time, "attempt {attempt}: reader B stalled");
        assert_eq!(
            read_by_b, 2_000,
            "attempt {attempt}: every packet read once"
        );
    }
}
