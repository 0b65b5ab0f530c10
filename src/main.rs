//! The `mediagraph` command line: run, validate and inspect graphs.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{anyhow, bail, Context};
use clap::{Parser, Subcommand};
use mediagraph::framework::spec::{GraphSpec, SideProducer};
use mediagraph::types::packet_from_json;
use mediagraph::{jsonl, Graph, Packet, PacketType};

/// Run, validate and inspect mediagraph dataflow graphs.
#[derive(Parser)]
#[command(name = "mediagraph", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a graph: feed graph input streams from JSONL files, dump streams to JSONL files.
    Run(RunArgs),
    /// Load and validate a graph; print every error with its file:line:column.
    Validate {
        /// The graph config (YAML).
        graph: PathBuf,
    },
    /// List every registered calculator with its Rust type and options type.
    Calculators,
}

#[derive(clap::Args)]
struct RunArgs {
    /// The graph config (YAML).
    graph: PathBuf,
    /// A side packet: NAME=VALUE, VALUE parsed as JSON, else taken as a plain string.
    #[arg(long = "side", value_name = "NAME=VALUE")]
    side: Vec<String>,
    /// Feed graph input stream STREAM from a JSONL file ({"ts": .., "value": ..} per line).
    #[arg(long = "feed", value_name = "STREAM=FILE.jsonl")]
    feed: Vec<String>,
    /// Write every packet of STREAM to a JSONL file.
    #[arg(long = "dump", value_name = "STREAM=FILE.jsonl")]
    dump: Vec<String>,
    /// Worker threads (overrides the config's num_threads).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Print no run summary.
    #[arg(long, short)]
    quiet: bool,
}

fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Validate { graph } => validate(&graph),
        Command::Calculators => {
            list_calculators();
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default: warnings). Without `RUST_LOG`, the
/// runtime's own log line for a failed run is left out: the run's error is reported anyway.
fn init_tracing() {
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::{filter, fmt, EnvFilter};

    let from_env = EnvFilter::try_from_default_env().ok();
    let quiet_run_errors = from_env.is_none();
    let fmt_layer = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(from_env.unwrap_or_else(|| EnvFilter::new("warn")))
        .with_filter(filter::filter_fn(move |meta| {
            !(quiet_run_errors
                && *meta.level() == tracing::Level::ERROR
                && meta.target() == "mediagraph_framework::runtime")
        }));
    tracing_subscriber::registry().with(fmt_layer).init();
}

/// Prints an error to stderr: a one-line headline (the first cause), then, if the error
/// spans several lines, the full error with every location.
fn report(e: &anyhow::Error) {
    let full = full_message(e);
    if !full.contains('\n') {
        eprintln!("error: {full}");
        return;
    }
    eprintln!("error: {}", headline(e, &full));
    for line in full.lines() {
        eprintln!("  {line}");
    }
}

/// The error's chain joined with ": ", leaving out causes already spelt out by the message
/// that wraps them.
fn full_message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// The most specific one-line description of a multi-line error: the first framework error
/// inside it (the first of several config errors), else the first line.
fn headline(e: &anyhow::Error, full: &str) -> String {
    let first = e
        .chain()
        .find_map(|c| c.downcast_ref::<mediagraph::Error>())
        .and_then(|fe| fe.flatten().first().map(|f| f.to_string()))
        .unwrap_or_else(|| full.to_string());
    first.lines().next().unwrap_or_default().to_string()
}

fn validate(path: &Path) -> anyhow::Result<()> {
    let spec = mediagraph::config::load_file(path)?;
    println!(
        "ok: {} nodes, {} streams",
        spec.nodes.len(),
        spec.streams.len()
    );
    Ok(())
}

fn list_calculators() {
    let all = mediagraph::calculator::registered();
    let width = all.iter().map(|r| r.name.len()).max().unwrap_or(0);
    let type_width = all.iter().map(|r| (r.type_name)().len()).max().unwrap_or(0);
    for reg in all {
        println!(
            "{:width$}  {:type_width$}  options: {}",
            reg.name,
            (reg.type_name)(),
            (reg.options_type)()
        );
    }
}

/// Splits `NAME=VALUE` of option `--flag`.
fn split_assignment<'a>(
    flag: &str,
    form: &str,
    arg: &'a str,
) -> anyhow::Result<(&'a str, &'a str)> {
    match arg.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name, value)),
        _ => bail!("--{flag} {arg:?}: expected {form}"),
    }
}

/// Builds the side packet `name` from a command-line value.
fn side_packet(spec: &GraphSpec, name: &str, raw: &str) -> anyhow::Result<Packet> {
    let Some(sp) = spec.side_packets.iter().find(|s| s.name == name) else {
        let external: Vec<&str> = spec
            .side_packets
            .iter()
            .filter(|s| s.producer == SideProducer::External)
            .map(|s| s.name.as_str())
            .collect();
        bail!(
            "--side {name}: the graph has no side packet \"{name}\" (it takes: {})",
            if external.is_empty() {
                "none".to_string()
            } else {
                external.join(", ")
            }
        );
    };
    let as_string = || serde_json::Value::String(raw.to_string());
    let result = match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(value) => packet_from_json(value, &sp.packet_type)
            .or_else(|e| packet_from_json(as_string(), &sp.packet_type).map_err(|_| e)),
        Err(_) => packet_from_json(as_string(), &sp.packet_type),
    };
    result.with_context(|| format!("--side {name}={raw}: not a valid {}", sp.packet_type))
}

/// A `--dump` target: the stream's packets are written as they are observed.
struct Dump {
    stream: String,
    path: PathBuf,
    writer: Arc<Mutex<BufWriter<File>>>,
    count: Arc<AtomicU64>,
}

/// A `--feed` source.
struct Feed {
    stream: String,
    path: PathBuf,
    packet_type: PacketType,
    file: File,
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut spec = mediagraph::config::load_file(&args.graph)?;
    if let Some(n) = args.threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        spec.num_threads = n;
    }

    let mut side_packets = HashMap::new();
    for arg in &args.side {
        let (name, raw) = split_assignment("side", "NAME=VALUE", arg)?;
        let packet = side_packet(&spec, name, raw)?;
        if side_packets.insert(name.to_string(), packet).is_some() {
            bail!("--side {name} is given twice");
        }
    }

    let mut feeds = Vec::new();
    for arg in &args.feed {
        let (stream, file) = split_assignment("feed", "STREAM=FILE.jsonl", arg)?;
        let id = spec
            .stream_id(stream)
            .filter(|id| spec.input_streams.contains(id))
            .ok_or_else(|| {
                anyhow!(
                    "--feed {stream}: \"{stream}\" is not a graph input stream (inputs: {})",
                    names(&spec, &spec.input_streams)
                )
            })?;
        if feeds.iter().any(|f: &Feed| f.stream == stream) {
            bail!("--feed {stream} is given twice");
        }
        let path = PathBuf::from(file);
        let handle = File::open(&path)
            .with_context(|| format!("--feed {stream}: cannot open {}", path.display()))?;
        feeds.push(Feed {
            stream: stream.to_string(),
            path,
            packet_type: spec.streams[id].packet_type.clone(),
            file: handle,
        });
    }

    let mut dumps = Vec::new();
    for arg in &args.dump {
        let (stream, file) = split_assignment("dump", "STREAM=FILE.jsonl", arg)?;
        let id = spec.stream_id(stream).ok_or_else(|| {
            let all: Vec<usize> = (0..spec.streams.len()).collect();
            anyhow!(
                "--dump {stream}: the graph has no stream \"{stream}\" (streams: {})",
                names(&spec, &all)
            )
        })?;
        if let Some(t) = spec.streams[id].packet_type.exact() {
            if mediagraph::types::lookup(t.id()).is_none() {
                bail!(
                    "--dump {stream}: stream \"{stream}\" carries {t}, which cannot be written as JSON (the type is not registered with register_packet_type!)"
                );
            }
        }
        let path = PathBuf::from(file);
        let handle = File::create(&path)
            .with_context(|| format!("--dump {stream}: cannot create {}", path.display()))?;
        dumps.push(Dump {
            stream: stream.to_string(),
            path,
            writer: Arc::new(Mutex::new(BufWriter::new(handle))),
            count: Arc::new(AtomicU64::new(0)),
        });
    }

    let fed: Vec<String> = feeds.iter().map(|f| f.stream.clone()).collect();
    let unfed: Vec<String> = spec
        .input_streams
        .iter()
        .map(|&id| spec.streams[id].name.clone())
        .filter(|name| !fed.contains(name))
        .collect();

    let mut graph = Graph::new(spec);
    for dump in &dumps {
        let writer = dump.writer.clone();
        let count = dump.count.clone();
        let stream = dump.stream.clone();
        let path = dump.path.clone();
        graph.observe_output_stream(&dump.stream, move |packet: &Packet| {
            if packet.is_empty() {
                return Ok(());
            }
            let line = jsonl::format_packet(packet).map_err(|e| {
                mediagraph::Error::msg(format!("--dump {stream}: stream \"{stream}\": {e}"))
            })?;
            let mut w = writer
                .lock()
                .map_err(|_| mediagraph::Error::msg("--dump: writer poisoned"))?;
            writeln!(w, "{line}").map_err(|source| mediagraph::Error::Io {
                path: path.clone(),
                source,
            })?;
            count.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })?;
    }

    let started = Instant::now();
    graph.start_run(side_packets)?;
    for name in &unfed {
        tracing::info!("graph input stream \"{name}\" has no --feed; closing it");
        graph.close_input_stream(name)?;
    }

    // One thread per fed input, so a throttled input does not hold up the others.
    let aborting = AtomicBool::new(false);
    let feed_errors: Vec<anyhow::Error> = std::thread::scope(|scope| {
        let handles: Vec<_> = feeds
            .into_iter()
            .map(|feed| {
                let graph = &graph;
                let aborting = &aborting;
                scope.spawn(move || feed_stream(graph, feed, aborting))
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| match h.join() {
                Ok(result) => result.err(),
                Err(_) => Some(anyhow!("a feeding thread panicked")),
            })
            .collect()
    });
    let run_result = graph.wait_until_done();

    let mut flush_error = None;
    for dump in &dumps {
        let flushed = match dump.writer.lock() {
            Ok(mut w) => w.flush(),
            Err(_) => Ok(()),
        };
        if let Err(e) = flushed {
            flush_error.get_or_insert(anyhow!(e).context(format!(
                "--dump {}: {}",
                dump.stream,
                dump.path.display()
            )));
        }
    }

    if let Some(first) = feed_errors.into_iter().next() {
        return Err(first);
    }
    run_result.map_err(|e| match e {
        mediagraph::Error::Run(_) => anyhow!(e),
        e => anyhow!(e).context("graph run failed"),
    })?;
    if let Some(e) = flush_error {
        return Err(e);
    }

    if !args.quiet {
        summary(&graph, &dumps, started.elapsed());
    }
    Ok(())
}

/// Feeds one graph input stream from its JSONL file, then closes it. On an error, closes every
/// input and source so the run winds down (other feeders then stop quietly).
fn feed_stream(graph: &Graph, feed: Feed, aborting: &AtomicBool) -> anyhow::Result<()> {
    let result = feed_lines(graph, &feed, aborting);
    if result.is_err() {
        aborting.store(true, Ordering::SeqCst);
        let _ = graph.close_all_packet_sources();
    }
    // Idempotent; also ends the stream when the run is failing, so the run can finish.
    let _ = graph.close_input_stream(&feed.stream);
    result
}

fn feed_lines(graph: &Graph, feed: &Feed, aborting: &AtomicBool) -> anyhow::Result<()> {
    let Feed {
        stream,
        path,
        packet_type,
        file,
    } = feed;
    let lines = jsonl::Lines::new(BufReader::new(file), path);
    for item in lines {
        if aborting.load(Ordering::SeqCst) {
            return Ok(());
        }
        let (line_no, line) = item.with_context(|| format!("--feed {stream}"))?;
        let packet = jsonl::parse_packet(&line, packet_type).map_err(|e| {
            anyhow!(
                "{}:{line_no}: {e} (--feed {stream}, stream type {packet_type})",
                path.display()
            )
        })?;
        if let Err(e) = graph.add_packet(stream, packet) {
            if aborting.load(Ordering::SeqCst) || graph.has_error() {
                // The run is already failing; its own error is what gets reported.
                return Ok(());
            }
            bail!("{}:{line_no}: {e} (--feed {stream})", path.display());
        }
    }
    Ok(())
}

fn names(spec: &GraphSpec, ids: &[usize]) -> String {
    if ids.is_empty() {
        return "none".to_string();
    }
    ids.iter()
        .map(|&id| spec.streams[id].name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Prints per-node counters and the dumped packet counts to stderr.
fn summary(graph: &Graph, dumps: &[Dump], elapsed: std::time::Duration) {
    eprintln!("run finished in {:.3} s", elapsed.as_secs_f64());
    for s in graph.stats() {
        eprintln!(
            "  node {} ({}): {} calls, {} packets in, {} out, {} dropped, process {:.3} ms (p50 {:.3} ms, p99 {:.3} ms)",
            s.name,
            s.calculator,
            s.invocations,
            s.packets_in,
            s.packets_out,
            s.dropped,
            ms(s.process_time),
            ms(s.process_p50),
            ms(s.process_p99),
        );
    }
    for d in dumps {
        let n = d.count.load(Ordering::Relaxed);
        eprintln!(
            "  dumped {n} packets of \"{}\" to {}",
            d.stream,
            d.path.display()
        );
    }
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
