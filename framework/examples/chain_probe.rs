//! Quick per-hop cost probe: a chain of pass-through nodes fed from the host thread.
//! `cargo run --release -p mediagraph-framework --example chain_probe [M] [THREADS]`
use std::collections::HashMap;
use std::time::Instant;

use mediagraph_framework::{graph::doc_support, Graph, Packet, Timestamp};

fn main() {
    doc_support::register_pass_through();
    let args: Vec<String> = std::env::args().collect();
    let m: i64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let threads: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(0);
    let mut times = Vec::new();
    let ns: Vec<usize> = std::env::var("PROBE_N")
        .map(|v| v.split(",").filter_map(|x| x.parse().ok()).collect())
        .unwrap_or(vec![1, 10, 50]);
    for n in ns {
        let mut yaml = format!("num_threads: {threads}\ninput_stream: [s0]\nnode:\n");
        for i in 0..n {
            yaml += &format!(
                "  - {{calculator: DocPassThrough, input_stream: [s{i}], output_stream: [s{}]}}\n",
                i + 1
            );
        }
        let mut g = Graph::from_yaml_str(&yaml).expect("valid graph");
        let poller = g
            .add_output_stream_poller(&format!("s{n}"))
            .expect("stream");
        g.start_run(HashMap::new()).expect("start");
        let t0 = Instant::now();
        let reader = std::thread::spawn(move || std::iter::from_fn(|| poller.next()).count());
        for t in 0..m {
            g.add_packet("s0", Packet::new(t).at(Timestamp::new(t)))
                .expect("add");
        }
        g.finish().expect("run");
        let got = reader.join().expect("reader");
        assert_eq!(got as i64, m);
        let el = t0.elapsed().as_secs_f64();
        times.push((n as f64, el));
        println!("N={n:>2} M={m} {:.1} ms", el * 1e3);
    }
    if times.len() < 3 {
        return;
    }
    let (n0, t0) = times[1];
    let (n1, t1) = times[2];
    println!(
        "slope N=10..50: {:.3} us per packet-hop",
        (t1 - t0) / (n1 - n0) / m as f64 * 1e6
    );
}
