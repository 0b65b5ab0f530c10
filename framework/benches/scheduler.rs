//! Scheduler benchmark (issue 3): the framework's cost per packet per node, measured on the same
//! graph shapes as `scripts/bench/mediapipe_chain.py` measures MediaPipe's framework.
//!
//! - chain: N pass-through nodes (N = 1, 10, 50), M = 20,000 i64 packets fed from the host
//!   thread with `add_packet`; the per-packet-hop cost is the least-squares slope of the median
//!   wall time against N, divided by M (the host feeding cost drops out of the slope);
//! - fan: 1 -> 8 parallel pass-through branches -> a merge (default handler), M packets;
//! - heavy: two independent branches busy-spinning ~1 ms per packet, 200 packets, with
//!   `num_threads: 1` and `2` (the wall-time ratio should be close to 2);
//! - memory: a bounded graph (source -> 2 pass-throughs -> observer, `max_queue_size: 8`) in a
//!   child process; peak RSS (VmHWM) after 1M packets and after 10M packets of the same run
//!   (after a tenth and after all of `MEDIAGRAPH_BENCH_MEMORY_PACKETS`, default 10M;
//!   30-60 s on the 2-core VM).
//!
//! Run with `cargo bench -p mediagraph-framework --bench scheduler`. Environment knobs:
//! `MEDIAGRAPH_BENCH_REPS` (default 5), `MEDIAGRAPH_BENCH_M` (default 20000),
//! `MEDIAGRAPH_BENCH_SKIP_MEMORY=1`, `MEDIAGRAPH_BENCH_MEMORY_PACKETS` (default 10,000,000),
//! `MEDIAGRAPH_BENCH_ONLY=chain,chain1,fan,heavy,memory` (a comma list of the parts to run, e.g.
//! to profile one of them; default all).
//! The lines starting with `RESULT ` are read by `scripts/bench-scheduler`.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mediagraph_framework::prelude::*;
use mediagraph_framework::Graph;
use serde::Deserialize;

// ---------------------------------------------------------------------------------------------
// Calculators

/// Forwards its input packet unchanged (offset 0), like MediaPipe's PassThroughCalculator with
/// one stream.
struct BenchPassThrough;
const PASS_IN: Input<AnyPacket> = Input::any("");
const PASS_OUT: Output<AnyPacket> = Output::any("");

impl Calculator for BenchPassThrough {
    type Options = NoOptions;
    fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
        cc.declare(&[&PASS_IN, &PASS_OUT])?;
        cc.set_timestamp_offset(0);
        Ok(())
    }
    fn create(_: &NoOptions) -> Result<Self> {
        Ok(BenchPassThrough)
    }
    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let p = cx.input(&PASS_IN).packet().clone();
        cx.output(&PASS_OUT).send_packet(p)?;
        Ok(Flow::Continue)
    }
}
mediagraph_framework::register_calculator!(BenchPassThrough, "BenchPassThrough");

/// Emits the first non-empty of its inputs at each timestamp (like MediaPipe's MergeCalculator),
/// on the default handler: one invocation per timestamp once every input has settled.
struct BenchMerge;
const MERGE_IN: Input<AnyPacket> = Input::any("").multiple();
const MERGE_OUT: Output<AnyPacket> = Output::any("");

impl Calculator for BenchMerge {
    type Options = NoOptions;
    fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
        cc.declare(&[&MERGE_IN, &MERGE_OUT])?;
        if cc.inputs().is_empty() {
            return Err(cc.error("needs at least one input"));
        }
        cc.set_timestamp_offset(0);
        Ok(())
    }
    fn create(_: &NoOptions) -> Result<Self> {
        Ok(BenchMerge)
    }
    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        for i in 0..cx.input_count(&MERGE_IN) {
            let input = cx.input_index(&MERGE_IN, i);
            if !input.is_empty() {
                let p = input.packet().clone();
                cx.output(&MERGE_OUT).send_packet(p)?;
                break;
            }
        }
        Ok(Flow::Continue)
    }
}
mediagraph_framework::register_calculator!(BenchMerge, "BenchMerge");

/// Busy-spins `micros` per packet, then forwards it.
struct BenchBusy {
    spin: Duration,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BusyOptions {
    micros: u64,
}

impl Calculator for BenchBusy {
    type Options = BusyOptions;
    fn contract(cc: &mut Contract, _: &BusyOptions) -> Result<()> {
        cc.declare(&[&PASS_IN, &PASS_OUT])?;
        cc.set_timestamp_offset(0);
        Ok(())
    }
    fn create(o: &BusyOptions) -> Result<Self> {
        Ok(BenchBusy {
            spin: Duration::from_micros(o.micros),
        })
    }
    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed() < self.spin {
            for _ in 0..64 {
                x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        black_box(x);
        let p = cx.input(&PASS_IN).packet().clone();
        cx.output(&PASS_OUT).send_packet(p)?;
        Ok(Flow::Continue)
    }
}
mediagraph_framework::register_calculator!(BenchBusy, "BenchBusy");

/// Emits `count` i64 packets at timestamps 0, 1, 2, ... then stops.
struct BenchSource {
    count: u64,
    next: u64,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SourceOptions {
    count: u64,
}

const SRC_OUT: Output<i64> = Output::new("");

impl Calculator for BenchSource {
    type Options = SourceOptions;
    fn contract(cc: &mut Contract, _: &SourceOptions) -> Result<()> {
        cc.declare(&[&SRC_OUT])
    }
    fn create(o: &SourceOptions) -> Result<Self> {
        Ok(BenchSource {
            count: o.count,
            next: 0,
        })
    }
    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        if self.next >= self.count {
            return Ok(Flow::Stop);
        }
        let t = self.next as i64;
        cx.output(&SRC_OUT).send(t, Timestamp::new(t))?;
        self.next += 1;
        Ok(Flow::Continue)
    }
}
mediagraph_framework::register_calculator!(BenchSource, "BenchSource");

// ---------------------------------------------------------------------------------------------
// Graph configs

fn chain_yaml(n: usize, num_threads: usize) -> String {
    let mut y = String::from("input_stream: [in]\noutput_stream: [out]\n");
    if num_threads > 0 {
        y += &format!("num_threads: {num_threads}\n");
    }
    y += "node:\n";
    for i in 0..n {
        let src = if i == 0 {
            "in".to_string()
        } else {
            format!("s{i}")
        };
        let dst = if i + 1 == n {
            "out".to_string()
        } else {
            format!("s{}", i + 1)
        };
        y += &format!(
            "  - {{calculator: BenchPassThrough, input_stream: [{src}], output_stream: [{dst}]}}\n"
        );
    }
    y
}

fn fan_yaml(branches: usize) -> String {
    let mut y = String::from("input_stream: [in]\noutput_stream: [out]\nnode:\n");
    let mut merged = Vec::new();
    for b in 0..branches {
        y += &format!(
            "  - {{calculator: BenchPassThrough, input_stream: [in], output_stream: [b{b}]}}\n"
        );
        merged.push(format!("b{b}"));
    }
    y += &format!(
        "  - {{calculator: BenchMerge, input_stream: [{}], output_stream: [out]}}\n",
        merged.join(", ")
    );
    y
}

fn heavy_yaml(num_threads: usize, micros: u64) -> String {
    format!(
        "input_stream: [in]\noutput_stream: [a, b]\nnum_threads: {num_threads}\nnode:\n\
         \x20 - {{calculator: BenchBusy, input_stream: [in], output_stream: [a], options: {{micros: {micros}}}}}\n\
         \x20 - {{calculator: BenchBusy, input_stream: [in], output_stream: [b], options: {{micros: {micros}}}}}\n"
    )
}

fn memory_yaml(count: u64, max_queue_size: usize) -> String {
    format!(
        "output_stream: [out]\nmax_queue_size: {max_queue_size}\nnode:\n\
         \x20 - {{calculator: BenchSource, output_stream: [s0], options: {{count: {count}}}}}\n\
         \x20 - {{calculator: BenchPassThrough, input_stream: [s0], output_stream: [s1]}}\n\
         \x20 - {{calculator: BenchPassThrough, input_stream: [s1], output_stream: [out]}}\n"
    )
}

// ---------------------------------------------------------------------------------------------
// Runs

/// Packets that a run failed to deliver (summed over every run); a correct runtime loses none.
static LOST: AtomicU64 = AtomicU64::new(0);

/// Longest a single run may take before the benchmark reports a hang and exits.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// Exits the process if the returned guard is not dropped within [`RUN_TIMEOUT`].
fn watchdog(what: String) -> std::sync::mpsc::Sender<()> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(RUN_TIMEOUT) {
            println!("HANG: {what} did not finish within {RUN_TIMEOUT:?}");
            println!("RESULT hang=1");
            std::process::exit(2);
        }
    });
    tx
}

/// Feeds `m` packets into input `in` from this thread, waits until done, returns the wall time
/// from `start_run` to the end of `wait_until_done`. Every output stream's packets are counted
/// by observers; a shortfall is reported and added to [`LOST`].
fn timed_run(graph: &mut Graph, outputs: &[&str], m: usize) -> Duration {
    let counters: Vec<Arc<AtomicU64>> = outputs
        .iter()
        .map(|_| Arc::new(AtomicU64::new(0)))
        .collect();
    for (name, counter) in outputs.iter().zip(&counters) {
        let c = counter.clone();
        graph
            .observe_output_stream(name, move |_| {
                c.fetch_add(1, Ordering::Relaxed);
                Ok(())
            })
            .expect("observe_output_stream");
    }
    let guard = watchdog(format!("a run of {m} packets"));
    let start = Instant::now();
    graph.start_run(HashMap::new()).expect("start_run");
    for i in 0..m as i64 {
        graph
            .add_packet("in", Packet::new(i).at(Timestamp::new(i)))
            .expect("add_packet");
    }
    graph.close_all_packet_sources().expect("close");
    let status = graph.wait_until_done();
    let elapsed = start.elapsed();
    drop(guard);
    if let Err(e) = status {
        println!("  ERROR: the run failed: {e}");
        println!("RESULT run_error=1");
        std::process::exit(2);
    }
    for (name, c) in outputs.iter().zip(&counters) {
        let got = c.load(Ordering::Relaxed);
        if got != m as u64 {
            println!(
                "  LOST PACKETS: stream {name} delivered {got} of {m} (the run reported success)"
            );
            LOST.fetch_add(m as u64 - got, Ordering::Relaxed);
        }
    }
    elapsed
}

/// Times `reps` runs (after one warm-up run) of a fresh graph built from `yaml` each time.
fn time_reps(yaml: &str, outputs: &[&str], m: usize, reps: usize) -> Vec<f64> {
    let mut times = Vec::with_capacity(reps);
    for rep in 0..=reps {
        let mut graph = Graph::from_yaml_str(yaml).expect("graph config");
        let t = timed_run(&mut graph, outputs, m).as_secs_f64();
        if rep > 0 {
            times.push(t);
        }
    }
    times
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Least-squares slope of `ys` against `xs`.
fn slope(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let mx = xs.iter().sum::<f64>() / n;
    let my = ys.iter().sum::<f64>() / n;
    let sxy: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    sxy / sxx
}

fn fmt_times(v: &[f64]) -> String {
    v.iter()
        .map(|t| format!("{:.1}", t * 1e3))
        .collect::<Vec<_>>()
        .join(" ")
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Whether `MEDIAGRAPH_BENCH_ONLY` (a comma list; unset = everything) selects `part`.
fn selected(part: &str) -> bool {
    std::env::var("MEDIAGRAPH_BENCH_ONLY").map_or(true, |v| v.split(',').any(|p| p.trim() == part))
}

/// Chain slopes in µs per packet-hop; prints the raw times. The shapes are interleaved (one
/// round runs N = 1, 10, 50 once each; round 0 is a warm-up) so that a slow spell of a noisy
/// machine hits every N alike instead of tilting the slope.
fn bench_chain(label: &str, num_threads: usize, m: usize, reps: usize) -> ChainSlopes {
    let ns = [1usize, 10, 50];
    let yamls: Vec<String> = ns.iter().map(|&n| chain_yaml(n, num_threads)).collect();
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); ns.len()];
    for round in 0..=reps {
        for (k, yaml) in yamls.iter().enumerate() {
            let mut graph = Graph::from_yaml_str(yaml).expect("graph config");
            let t = timed_run(&mut graph, &["out"], m).as_secs_f64();
            if round > 0 {
                times[k].push(t);
            }
        }
    }
    for (k, &n) in ns.iter().enumerate() {
        let med = median(&times[k]);
        println!(
            "  {label:<10} N={n:<3} median {:>8.1} ms  ({:>6.3} us/packet)  runs [ms]: {}",
            med * 1e3,
            med / m as f64 * 1e6,
            fmt_times(&times[k])
        );
    }
    let xs: Vec<f64> = ns.iter().map(|&n| n as f64).collect();
    let per_hop = |ys: &[f64]| slope(&xs, ys) / m as f64 * 1e6;
    let medians: Vec<f64> = times.iter().map(|t| median(t)).collect();
    let minima: Vec<f64> = times
        .iter()
        .map(|t| t.iter().copied().fold(f64::INFINITY, f64::min))
        .collect();
    let mut rounds: Vec<f64> = (0..reps)
        .map(|r| per_hop(&times.iter().map(|t| t[r]).collect::<Vec<_>>()))
        .collect();
    rounds.sort_by(|a, b| a.partial_cmp(b).unwrap());
    ChainSlopes {
        of_medians: per_hop(&medians),
        of_minima: per_hop(&minima),
        rounds,
    }
}

/// A chain's per-packet-hop cost in µs, three ways.
struct ChainSlopes {
    /// Slope of the per-N medians (the headline figure).
    of_medians: f64,
    /// Slope of the per-N minima.
    of_minima: f64,
    /// The slope of each round on its own, sorted (shows the spread).
    rounds: Vec<f64>,
}

impl ChainSlopes {
    fn describe(&self) -> String {
        format!(
            "{:.3} us (slope of minima {:.3}; per-round slopes {})",
            self.of_medians,
            self.of_minima,
            self.rounds
                .iter()
                .map(|x| format!("{x:.3}"))
                .collect::<Vec<_>>()
                .join(" ")
        )
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn read_status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)
                .and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The memory child: one run of the bounded graph with `total` packets; prints VmHWM when the
/// observer has seen `first` packets and at the end.
fn memory_child(first: u64, total: u64) {
    let mut graph = Graph::from_yaml_str(&memory_yaml(total, 8)).expect("graph config");
    let seen = Arc::new(AtomicU64::new(0));
    let at_first = Arc::new(AtomicU64::new(0));
    {
        let seen = seen.clone();
        let at_first = at_first.clone();
        graph
            .observe_output_stream("out", move |_| {
                let n = seen.fetch_add(1, Ordering::Relaxed) + 1;
                if n == first {
                    at_first.store(read_status_kb("VmHWM:"), Ordering::Relaxed);
                }
                Ok(())
            })
            .expect("observe");
    }
    let start = Instant::now();
    graph.run(HashMap::new()).expect("run");
    let secs = start.elapsed().as_secs_f64();
    let got = seen.load(Ordering::Relaxed);
    if got != total {
        println!("  LOST PACKETS: the memory graph delivered {got} of {total}");
    }
    println!(
        "MEMCHILD first={first} hwm_first_kb={} total={total} hwm_total_kb={} secs={secs:.2}",
        at_first.load(Ordering::Relaxed),
        read_status_kb("VmHWM:")
    );
}

fn bench_memory(total: u64) -> Option<(u64, u64, u64, u64, f64)> {
    let first = (total / 10).max(1);
    let exe = std::env::current_exe().ok()?;
    let out = std::process::Command::new(exe)
        .env("MEDIAGRAPH_BENCH_MEMORY_CHILD", format!("{first}:{total}"))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("MEMCHILD "))?;
    let field = |k: &str| -> Option<String> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k).map(str::to_string))
    };
    Some((
        field("first=")?.parse().ok()?,
        field("hwm_first_kb=")?.parse().ok()?,
        field("total=")?.parse().ok()?,
        field("hwm_total_kb=")?.parse().ok()?,
        field("secs=")?.parse().ok()?,
    ))
}

fn main() {
    if let Ok(spec) = std::env::var("MEDIAGRAPH_BENCH_MEMORY_CHILD") {
        let (a, b) = spec.split_once(':').expect("first:total");
        memory_child(a.parse().expect("first"), b.parse().expect("total"));
        return;
    }
    let reps = env_usize("MEDIAGRAPH_BENCH_REPS", 5).max(1);
    let m = env_usize("MEDIAGRAPH_BENCH_M", 20_000).max(1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("mediagraph scheduler benchmark: M={m} packets, median of {reps} runs (+1 warm-up), {cores} cores, load average {}", loadavg());

    // Summary rows and `RESULT` lines of the parts that ran.
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut results: Vec<String> = Vec::new();

    if selected("chain") || selected("chain1") {
        println!("\nchain of N pass-through nodes, packets fed from the host thread:");
    }
    if selected("chain") {
        let chain = bench_chain("default", 0, m, reps);
        println!("  per packet-hop, slope over N=1,10,50 of the medians:");
        println!("    default executor: {}", chain.describe());
        rows.push((
            "chain per packet-hop (default executor)".into(),
            format!("{:>9.3} us", chain.of_medians),
        ));
        results.push(format!("chain_slope_us={:.4}", chain.of_medians));
        results.push(format!("chain_slope_min_us={:.4}", chain.of_minima));
        let rounds: Vec<String> = chain.rounds.iter().map(|x| format!("{x:.3}")).collect();
        results.push(format!("chain_slope_rounds_us={}", rounds.join(",")));
    }
    if selected("chain1") {
        let chain = bench_chain("1 thread", 1, m, reps);
        println!("    num_threads=1:    {}", chain.describe());
        rows.push((
            "chain per packet-hop (num_threads=1)".into(),
            format!("{:>9.3} us", chain.of_medians),
        ));
        results.push(format!("chain_slope_1thread_us={:.4}", chain.of_medians));
    }

    if selected("fan") {
        println!("\nfan-out/fan-in 1 -> 8 pass-through branches -> merge:");
        let fan = time_reps(&fan_yaml(8), &["out"], m, reps);
        let fan_med = median(&fan);
        let fan_us = fan_med / m as f64 * 1e6;
        println!(
            "  median {:.1} ms ({fan_us:.3} us/packet)  runs [ms]: {}",
            fan_med * 1e3,
            fmt_times(&fan)
        );
        rows.push((
            "fan 1->8->merge per packet".into(),
            format!("{fan_us:>9.3} us"),
        ));
        results.push(format!("fan_us_per_packet={fan_us:.4}"));
    }

    if selected("heavy") {
        println!(
            "\nheavy graph: 2 independent branches, ~1 ms busy-spin per packet each, 200 packets:"
        );
        let heavy_n = 200;
        let h1 = time_reps(&heavy_yaml(1, 1000), &["a", "b"], heavy_n, reps);
        let h2 = time_reps(&heavy_yaml(2, 1000), &["a", "b"], heavy_n, reps);
        let (h1m, h2m) = (median(&h1), median(&h2));
        let heavy_ratio = h1m / h2m;
        println!(
            "  num_threads=1 median {:.1} ms  runs [ms]: {}",
            h1m * 1e3,
            fmt_times(&h1)
        );
        println!(
            "  num_threads=2 median {:.1} ms  runs [ms]: {}",
            h2m * 1e3,
            fmt_times(&h2)
        );
        println!("  1-thread / 2-thread wall time: {heavy_ratio:.2} (goal ~2)");
        rows.push((
            "heavy graph 1-thread/2-thread ratio".into(),
            format!("{heavy_ratio:>12.2}"),
        ));
        results.push(format!("heavy_ratio={heavy_ratio:.3}"));
    }

    if selected("memory") && !env_flag("MEDIAGRAPH_BENCH_SKIP_MEMORY") {
        let total = env_usize("MEDIAGRAPH_BENCH_MEMORY_PACKETS", 10_000_000).max(1) as u64;
        println!(
            "\nmemory: source -> 2 pass-throughs -> observer, max_queue_size 8, {total} packets, child process:"
        );
        match bench_memory(total) {
            Some((first, hwm1, total, hwm2, secs)) => {
                let growth = (hwm2 as f64 / hwm1 as f64 - 1.0) * 100.0;
                println!(
                    "  peak RSS after {first} packets: {:.1} MiB; after {total}: {:.1} MiB ({growth:+.1}%); run took {secs:.1} s",
                    hwm1 as f64 / 1024.0,
                    hwm2 as f64 / 1024.0,
                );
                rows.push((
                    format!("peak RSS after {first} packets"),
                    format!("{:>9.1} MiB", hwm1 as f64 / 1024.0),
                ));
                rows.push((
                    format!("peak RSS after {total} packets"),
                    format!("{:>9.1} MiB", hwm2 as f64 / 1024.0),
                ));
                results.push(format!("rss_kb_{first}={hwm1}"));
                results.push(format!("rss_kb_{total}={hwm2}"));
                results.push(format!("rss_growth_pct={growth:.2}"));
                results.push(format!("memory_run_secs={secs:.2}"));
            }
            None => println!("  memory child failed"),
        }
    }

    println!("\nsummary (load average now {}):", loadavg());
    println!("  {:<44} {:>12}", "measure", "value");
    for (measure, value) in &rows {
        println!("  {measure:<44} {value:>12}");
    }
    for line in &results {
        println!("RESULT {line}");
    }
    let lost = LOST.load(Ordering::Relaxed);
    if lost > 0 {
        println!("WARNING: {lost} packets were silently lost across the runs above");
    }
    println!("RESULT lost_packets={lost}");
}
