//! Measures what tracing costs: a counting source through a chain of 8 pass-through nodes,
//! with the trace off and on. Prints packets per second through the chain while it runs
//! (until the last packet reaches the end) and the time to write the trace afterwards.
//!
//! `cargo run --release --example trace_overhead -- [PACKETS] [ROUNDS]` (default 20000, 5).
//! Figures are in BENCHMARKS.md ("Runner: trace overhead").

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mediagraph::{Graph, Packet, Result};

/// The chain graph with `packets` packets.
fn chain(packets: u64) -> String {
    let mut yaml = format!(
        "node:\n  - {{calculator: CountingSourceCalculator, name: source, output_stream: [s0], options: {{count: {packets}}}}}\n"
    );
    for i in 1..=8 {
        yaml.push_str(&format!(
            "  - {{calculator: PassThroughCalculator, name: p{i}, input_stream: [s{}], output_stream: [s{i}]}}\n",
            i - 1
        ));
    }
    yaml
}

/// One run: (time until the last packet left the chain, total time including writing the
/// trace, trace file size).
pub fn run_once(
    packets: u64,
    trace: Option<&std::path::Path>,
) -> Result<(Duration, Duration, u64)> {
    let mut graph = Graph::from_yaml_str(&chain(packets))?;
    if let Some(path) = trace {
        graph.enable_trace(path)?;
    }
    let last = Arc::new(Mutex::new(None::<Instant>));
    let seen = last.clone();
    graph.observe_output_stream("s8", move |_: &Packet| {
        if let Ok(mut l) = seen.lock() {
            *l = Some(Instant::now());
        }
        Ok(())
    })?;
    let start = Instant::now();
    graph.run(Default::default())?;
    let total = start.elapsed();
    let ran = last
        .lock()
        .ok()
        .and_then(|l| *l)
        .map_or(total, |t| t - start);
    let size = trace
        .and_then(|p| std::fs::metadata(p).ok())
        .map_or(0, |m| m.len());
    Ok((ran, total, size))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let packets: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let dir = std::env::temp_dir().join(format!("mediagraph-trace-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| mediagraph::Error::msg(e.to_string()))?;
    let path = dir.join("trace.json");
    let (mut off, mut on, mut write, mut size) = (Vec::new(), Vec::new(), Vec::new(), 0);
    // Interleave the two modes so that background load hits both alike.
    for _ in 0..rounds {
        let (ran, _, _) = run_once(packets, None)?;
        off.push(packets as f64 / ran.as_secs_f64());
        let (ran, total, bytes) = run_once(packets, Some(&path))?;
        on.push(packets as f64 / ran.as_secs_f64());
        write.push((total - ran).as_secs_f64());
        size = bytes;
    }
    let (off, on) = (median(off), median(on));
    println!("{packets} packets through 8 pass-through nodes, median of {rounds} rounds:");
    println!("  trace off: {off:>10.0} packets/s");
    println!(
        "  trace on:  {on:>10.0} packets/s ({:.0}% slower), then {:.2} s to write {:.1} MB",
        (off / on - 1.0) * 100.0,
        median(write),
        size as f64 / 1e6
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
