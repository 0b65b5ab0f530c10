//! The `mediagraph` command line: run, validate and inspect graphs.
//!
//! Exit codes: 0 success, 1 failure (the first line on stderr is `error: <cause>`), 2 usage
//! error, 130 run cancelled with Ctrl-C (stats and trace are still written).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use mediagraph::config::{load_file_with, OptionOverride};
use mediagraph::framework::spec::{GraphSpec, SideProducer};
use mediagraph::render::GraphView;
use mediagraph::types::packet_from_json;
use mediagraph::{inspect, jsonl, Graph, NodeStats, Packet, PacketType};

/// Exit code of a run cancelled with Ctrl-C (128 + SIGINT, as shells report it).
const EXIT_CANCELLED: u8 = 130;

/// Run, validate and inspect mediagraph dataflow graphs.
#[derive(Parser)]
#[command(name = "mediagraph", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a graph: feed graph input streams from JSONL files, dump streams to JSONL files,
    /// show progress, print statistics, record a trace. Ctrl-C cancels cleanly.
    Run(RunArgs),
    /// Load and validate a graph; print every error with its file:line:column.
    Validate {
        /// The graph config (YAML).
        graph: PathBuf,
        #[command(flatten)]
        set: SetArgs,
    },
    /// List every registered calculator with its ports, types and options type.
    Calculators {
        /// Print JSON (an array of calculators) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Draw the expanded graph (subgraphs as clusters, stream names and types on edges).
    Graph(GraphArgs),
    /// Print the JSON schema of graph config files (for editor autocompletion and checks).
    Schema {
        /// Write to FILE instead of stdout.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

/// Node options changed on the command line.
#[derive(clap::Args)]
struct SetArgs {
    /// Change a node option on top of the config: NODE.KEY[.KEY..]=VALUE, VALUE in YAML
    /// (e.g. `pipeline.detection_rate.period=200000`; for a subgraph node the first KEY is the
    /// inner node). Repeatable.
    #[arg(long = "set", value_name = "NODE.KEY=VALUE")]
    overrides: Vec<OptionOverride>,
}

#[derive(clap::Args)]
struct RunArgs {
    /// The graph config (YAML).
    graph: PathBuf,
    #[command(flatten)]
    set: SetArgs,
    /// A side packet: NAME=VALUE, VALUE parsed as JSON, else taken as a plain string.
    #[arg(long = "side", value_name = "NAME=VALUE")]
    side: Vec<String>,
    /// Feed graph input stream STREAM from a JSONL file ({"ts": .., "value": ..} per line).
    #[arg(long = "feed", value_name = "STREAM=FILE.jsonl")]
    feed: Vec<String>,
    /// Write every packet of STREAM to a JSONL file.
    #[arg(long = "dump", value_name = "STREAM=FILE.jsonl")]
    dump: Vec<String>,
    /// Worker threads of the default executor (overrides the config's num_threads, and
    /// replaces an ApplicationThreadExecutor; named executors keep their own).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// At the end (also after a failure or Ctrl-C), print a table per node: calls, packets
    /// in/out, process time p50/p99/total, drops, queue growths, largest input queue.
    #[arg(long)]
    stats: bool,
    /// Also write the per-node statistics as JSON to FILE.
    #[arg(long, value_name = "FILE.json")]
    stats_json: Option<PathBuf>,
    /// Record a Chrome trace-event file of the run (open it in ui.perfetto.dev or
    /// chrome://tracing); written also after a failure or Ctrl-C.
    #[arg(long, value_name = "FILE.json")]
    trace: Option<PathBuf>,
    /// Warn when no calculator call has finished for this many seconds (0: never).
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    stall_warning: u64,
    /// No progress bar and no run summary (errors and --stats are still printed).
    #[arg(long, short)]
    quiet: bool,
}

/// Output formats of `mediagraph graph`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Graphviz DOT text.
    Dot,
    /// A standalone SVG picture.
    Svg,
    /// An HTML page: the picture, a legend, tables of nodes and streams.
    Html,
}

/// Who lays out the picture of `mediagraph graph`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Layout {
    /// mediagraph's own layered layout (no Graphviz needed).
    Builtin,
    /// Graphviz `dot` (must be on PATH).
    Graphviz,
}

#[derive(clap::Args)]
struct GraphArgs {
    /// The graph config (YAML).
    graph: PathBuf,
    #[command(flatten)]
    set: SetArgs,
    /// What to write.
    #[arg(long, short, value_enum, default_value_t = Format::Dot)]
    format: Format,
    /// How to lay out svg and html: the built-in layered layout, or Graphviz's `dot`.
    #[arg(long, value_enum, default_value_t = Layout::Builtin)]
    layout: Layout,
    /// Write to FILE instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// How a command ended, beyond success.
enum Failure {
    /// An error, to be printed as `error: <cause>`; exit code 1.
    Error(anyhow::Error),
    /// Already reported on stderr (e.g. before a run's statistics); exit with this code.
    Exit(u8),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        Failure::Error(e)
    }
}

impl From<mediagraph::Error> for Failure {
    fn from(e: mediagraph::Error) -> Failure {
        Failure::Error(e.into())
    }
}

fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    let result: Result<(), Failure> = match cli.command {
        Command::Run(args) => run(args),
        Command::Validate { graph, set } => validate(&graph, &set).map_err(Failure::from),
        Command::Calculators { json } => list_calculators(json).map_err(Failure::from),
        Command::Graph(args) => draw_graph(&args).map_err(Failure::from),
        Command::Schema { output } => {
            let text = serde_json::to_string_pretty(&mediagraph::schema::graph_config_schema())
                .map_err(|e| anyhow!(e));
            text.and_then(|t| emit(output.as_deref(), &(t + "\n")))
                .map_err(Failure::from)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Error(e)) => {
            report(&e);
            ExitCode::FAILURE
        }
        Err(Failure::Exit(code)) => ExitCode::from(code),
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

fn validate(path: &Path, set: &SetArgs) -> anyhow::Result<()> {
    let spec = load_file_with(path, &set.overrides)?;
    let threads = spec.executor_threads();
    let executors: String = spec
        .executors
        .iter()
        .zip(&threads[1..])
        .map(|(e, n)| format!(", executor {} ({n} thread{})", e.name, plural(*n)))
        .collect();
    let (nodes, streams) = (spec.nodes.len(), spec.streams.len());
    let default = if spec.application_thread {
        "default executor on the application thread".to_string()
    } else {
        format!(
            "default executor {} thread{}",
            threads[0],
            plural(threads[0])
        )
    };
    println!(
        "ok: {nodes} node{}, {streams} stream{}, {default}{executors}",
        plural(nodes),
        plural(streams),
    );
    for note in spec.parallel_call_notes() {
        println!("note: {note}");
    }
    Ok(())
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn list_calculators(json: bool) -> anyhow::Result<()> {
    // A contract that panics when described is reported in the listing, not as a crash.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let all = inspect::calculators();
    std::panic::set_hook(hook);
    let text = if json {
        serde_json::to_string_pretty(&all)? + "\n"
    } else {
        inspect::calculators_text(&all)
    };
    emit(None, &text)
}

/// Writes `text` to `path`, or to stdout (a closed pipe, as with `| head`, is not an error).
fn emit(path: Option<&Path>, text: &str) -> anyhow::Result<()> {
    match path {
        Some(p) => std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display())),
        None => {
            let mut out = std::io::stdout().lock();
            match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err(anyhow!(e).context("cannot write to stdout"))
                }
                _ => Ok(()),
            }
        }
    }
}

fn draw_graph(args: &GraphArgs) -> anyhow::Result<()> {
    let spec = load_file_with(&args.graph, &args.set.overrides)?;
    let view = GraphView::new(&spec);
    let graphviz =
        |dot: &str| -> anyhow::Result<String> { run_graphviz(dot).context("--layout graphviz") };
    let text = match (args.format, args.layout) {
        (Format::Dot, _) => view.to_dot(),
        (Format::Svg, Layout::Builtin) => view.to_svg(),
        (Format::Html, Layout::Builtin) => view.to_html(None),
        (Format::Svg, Layout::Graphviz) => graphviz(&view.to_dot())?,
        (Format::Html, Layout::Graphviz) => view.to_html(Some(&graphviz(&view.to_dot())?)),
    };
    emit(args.output.as_deref(), &text)
}

/// Lays out DOT text with Graphviz (`dot -Tsvg`).
fn run_graphviz(dot: &str) -> anyhow::Result<String> {
    use std::process::{Command, Stdio};
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                anyhow!("Graphviz `dot` is not on PATH (install graphviz, or leave out --layout graphviz for the built-in layout)")
            } else {
                anyhow!(e).context("cannot start `dot`")
            }
        })?;
    let mut stdin = child.stdin.take().context("dot: no stdin")?;
    let input = dot.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().context("dot failed")?;
    let _ = writer.join();
    if !output.status.success() {
        bail!(
            "dot failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    String::from_utf8(output.stdout).context("dot wrote invalid UTF-8")
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

/// Ctrl-C presses seen so far.
static INTERRUPTS: AtomicUsize = AtomicUsize::new(0);
/// True while a run is watched: a first Ctrl-C then cancels it cleanly. Otherwise (or on a
/// second Ctrl-C) the process exits at once.
static WATCHING: AtomicBool = AtomicBool::new(false);

/// Installs the Ctrl-C handler (once per process).
fn install_ctrlc() {
    let installed = ctrlc::set_handler(|| {
        let n = INTERRUPTS.fetch_add(1, Ordering::SeqCst) + 1;
        if n >= 2 || !WATCHING.load(Ordering::SeqCst) {
            eprintln!("error: interrupted (Ctrl-C); exiting without waiting for the run");
            std::process::exit(EXIT_CANCELLED.into());
        }
    });
    if let Err(e) = installed {
        tracing::warn!("cannot install the Ctrl-C handler: {e}");
    }
}

/// A run, ready to start: the graph with its observers, what to feed, where to dump.
struct Prepared {
    graph: Graph,
    side_packets: mediagraph::SidePackets,
    feeds: Vec<Feed>,
    dumps: Vec<Dump>,
    unfed: Vec<String>,
}

/// Loads the graph and checks every argument of `run` before anything starts.
fn prepare(args: &RunArgs) -> anyhow::Result<Prepared> {
    let mut spec = load_file_with(&args.graph, &args.set.overrides)?;
    if let Some(n) = args.threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        spec.num_threads = n;
        spec.application_thread = false;
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

    if let Some(path) = &args.trace {
        graph.enable_trace(path)?;
    }
    Ok(Prepared {
        graph,
        side_packets,
        feeds,
        dumps,
        unfed,
    })
}

fn run(args: RunArgs) -> Result<(), Failure> {
    install_ctrlc();
    let Prepared {
        mut graph,
        side_packets,
        feeds,
        dumps,
        unfed,
    } = prepare(&args)?;
    let trace_path = args
        .trace
        .clone()
        .or_else(|| graph.spec().trace_path.clone());

    let started = Instant::now();
    graph.start_run(side_packets)?;
    for name in &unfed {
        tracing::info!("graph input stream \"{name}\" has no --feed; closing it");
        graph.close_input_stream(name)?;
    }

    let watch = Watch {
        progress_bar: !args.quiet && std::io::stderr().is_terminal(),
        stall_warning: (args.stall_warning > 0).then(|| Duration::from_secs(args.stall_warning)),
        stop: AtomicBool::new(false),
    };
    WATCHING.store(true, Ordering::SeqCst);
    if INTERRUPTS.load(Ordering::SeqCst) > 0 {
        graph.cancel();
    }
    // One thread per fed input, so a throttled input does not hold up the others; one
    // watcher for Ctrl-C, the progress bar and stalls. The run is over (or idle with nothing
    // left to feed) when `wait_until_idle` returns after the feeders are done.
    let aborting = AtomicBool::new(false);
    let feed_errors: Vec<anyhow::Error> = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| watch.run(&graph));
        let handles: Vec<_> = feeds
            .into_iter()
            .map(|feed| {
                let graph = &graph;
                let aborting = &aborting;
                scope.spawn(move || feed_stream(graph, feed, aborting))
            })
            .collect();
        let errors = handles
            .into_iter()
            .filter_map(|h| match h.join() {
                Ok(result) => result.err(),
                Err(_) => Some(anyhow!("a feeding thread panicked")),
            })
            .collect();
        let _ = graph.wait_until_idle();
        watch.stop.store(true, Ordering::SeqCst);
        let _ = watcher.join();
        errors
    });
    WATCHING.store(false, Ordering::SeqCst);
    let run_result = graph.wait_until_done();
    let elapsed = started.elapsed();

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

    // The outcome's one-line cause comes first on stderr, then the statistics.
    let interrupted = INTERRUPTS.load(Ordering::SeqCst) > 0;
    let outcome: Result<(), Failure> = if run_result.as_ref().is_err_and(|e| e.is_cancelled()) {
        let why = if interrupted { " (Ctrl-C)" } else { "" };
        eprintln!(
            "error: run cancelled{why} after {:.3} s",
            elapsed.as_secs_f64()
        );
        Err(Failure::Exit(EXIT_CANCELLED))
    } else if let Some(first) = feed_errors.into_iter().next() {
        Err(Failure::Error(first))
    } else if let Err(e) = run_result {
        Err(Failure::Error(match e {
            mediagraph::Error::Run(_) => anyhow!(e),
            e => anyhow!(e).context("graph run failed"),
        }))
    } else if let Some(e) = flush_error {
        Err(Failure::Error(e))
    } else {
        Ok(())
    };
    let outcome = match outcome {
        Err(Failure::Error(e)) => {
            report(&e);
            Err(Failure::Exit(1))
        }
        other => other,
    };

    let stats = graph.stats();
    if outcome.is_ok() && !args.quiet {
        summary(&stats, &dumps, elapsed);
    }
    if args.stats {
        eprint!("{}", inspect::stats_table(&stats));
    }
    if let Some(path) = &args.stats_json {
        let json = stats_json(&stats, elapsed);
        let written = serde_json::to_string_pretty(&json)
            .map_err(std::io::Error::other)
            .and_then(|text| std::fs::write(path, text + "\n"));
        if let Err(e) = written {
            let e = anyhow!(e).context(format!("--stats-json: cannot write {}", path.display()));
            if outcome.is_ok() {
                return Err(Failure::Error(e));
            }
            eprintln!("  also: {e:#}");
        }
    }
    if let (Some(path), false) = (&trace_path, args.quiet) {
        if path.exists() {
            eprintln!(
                "trace written to {} (open it in https://ui.perfetto.dev or chrome://tracing)",
                path.display()
            );
        }
    }
    outcome
}

/// The watcher of a run: cancels it on Ctrl-C, draws the progress bar of a node that reports
/// progress, and warns when no calculator call has finished for a while.
struct Watch {
    progress_bar: bool,
    stall_warning: Option<Duration>,
    stop: AtomicBool,
}

impl Watch {
    fn run(&self, graph: &Graph) {
        const TICK: Duration = Duration::from_millis(50);
        const STATS_EVERY: Duration = Duration::from_millis(200);
        let mut bar: Option<indicatif::ProgressBar> = None;
        let mut cancelled = false;
        let mut last_stats = Instant::now();
        let mut last_calls = 0u64;
        let mut last_change = Instant::now();
        let mut warned = false;
        while !self.stop.load(Ordering::SeqCst) {
            std::thread::sleep(TICK);
            if !cancelled && INTERRUPTS.load(Ordering::SeqCst) > 0 {
                cancelled = true;
                tracing::info!("Ctrl-C: cancelling the run");
                graph.cancel();
                if let Some(b) = bar.take() {
                    b.abandon();
                }
            }
            if cancelled || last_stats.elapsed() < STATS_EVERY {
                continue;
            }
            last_stats = Instant::now();
            let stats = graph.stats();
            if self.progress_bar {
                update_bar(&mut bar, &stats);
            }
            let calls: u64 = stats.iter().map(|s| s.invocations).sum();
            if calls != last_calls {
                last_calls = calls;
                last_change = Instant::now();
                warned = false;
            } else if let Some(limit) = self.stall_warning {
                if !warned && last_change.elapsed() >= limit {
                    warned = true;
                    tracing::warn!(
                        "no calculator call has finished for {} s (the graph may be stuck or a call is slow); calls per node so far: {}. Ctrl-C cancels; --stats shows queues.",
                        limit.as_secs(),
                        stats
                            .iter()
                            .map(|s| format!("{}={}", s.name, s.invocations))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
            }
        }
        if let Some(b) = bar {
            b.finish_and_clear();
        }
    }
}

/// Creates or advances the progress bar from the first node that reports progress.
fn update_bar(bar: &mut Option<indicatif::ProgressBar>, stats: &[NodeStats]) {
    let Some((node, done, total)) = stats
        .iter()
        .find_map(|s| s.progress.map(|(d, t)| (s.name.as_str(), d, t)))
    else {
        return;
    };
    let b = bar.get_or_insert_with(|| {
        let (b, template) = match total {
            Some(t) => (
                indicatif::ProgressBar::new(t),
                "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} frames, {fps}, eta {eta}",
            ),
            None => (
                indicatif::ProgressBar::new_spinner(),
                "{prefix} [{elapsed_precise}] {spinner} {pos} frames, {fps}",
            ),
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            b.set_style(style.with_key(
                "fps",
                |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.1} fps", state.per_sec());
                },
            ));
        }
        b.set_prefix(node.to_string());
        b.set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(10));
        b
    });
    if let Some(t) = total {
        if b.length() != Some(t) {
            b.set_length(t);
        }
    }
    b.set_position(done);
}

/// The statistics as JSON (for `--stats-json`).
fn stats_json(stats: &[NodeStats], elapsed: Duration) -> serde_json::Value {
    let secs = |d: Duration| d.as_secs_f64();
    serde_json::json!({
        "elapsed_s": secs(elapsed),
        "nodes": stats.iter().map(|s| serde_json::json!({
            "name": s.name,
            "calculator": s.calculator,
            "invocations": s.invocations,
            "packets_in": s.packets_in,
            "packets_out": s.packets_out,
            "process_time_s": secs(s.process_time),
            "process_p50_s": secs(s.process_p50),
            "process_p99_s": secs(s.process_p99),
            "open_close_time_s": secs(s.open_close_time),
            "dropped": s.dropped,
            "queue_high_water": s.queue_high_water.iter()
                .map(|(stream, n)| serde_json::json!({"stream": stream, "max": n}))
                .collect::<Vec<_>>(),
            "queue_growths": s.queue_growths,
            "progress": s.progress.map(|(done, total)| serde_json::json!({"done": done, "total": total})),
        })).collect::<Vec<_>>(),
    })
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

/// Prints a one-line run summary and the dumped packet counts to stderr.
fn summary(stats: &[NodeStats], dumps: &[Dump], elapsed: Duration) {
    let calls: u64 = stats.iter().map(|s| s.invocations).sum();
    let packets: u64 = stats.iter().map(|s| s.packets_out).sum();
    eprintln!(
        "run finished in {:.3} s: {} nodes, {calls} calls, {packets} packets out{}",
        elapsed.as_secs_f64(),
        stats.len(),
        if stats.iter().any(|s| s.queue_growths > 0) {
            " (queues were grown to resolve a throttling deadlock: see --stats)"
        } else {
            ""
        }
    );
    for d in dumps {
        let n = d.count.load(Ordering::Relaxed);
        eprintln!(
            "  dumped {n} packets of \"{}\" to {}",
            d.stream,
            d.path.display()
        );
    }
}
