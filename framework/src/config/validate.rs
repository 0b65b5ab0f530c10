//! Validation of an expanded graph: calculators, contracts, connections, topological order and
//! port types, producing a [`GraphSpec`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;

use petgraph::graph::{DiGraph, NodeIndex};

use super::expand::{canonical_names, tag_indexes, FlatNode, KINDS};
use super::model::GraphConfig;
use super::{combine, suggest, Source};
use crate::calculator::{lookup, registered, CalculatorRegistration, SharedOptions};
use crate::contract::{Contract, HandlerConfig, PortKind, TypeDecl};
use crate::error::{Error, Location, Result};
use crate::handler::{normalize_handler_name, HANDLER_NAMES};
use crate::port::{parse_port, parse_tag_index, PortRef, PortSet};
use crate::spec::{
    Consumer, ExecutorSpec, GraphSpec, NodeSpec, Producer, SidePacketSpec, SideProducer, StreamSpec,
};
use crate::types::PacketType;

fn unknown_handler_message(name: &str) -> String {
    let short = HANDLER_NAMES
        .iter()
        .map(|h| h.strip_suffix("InputStreamHandler").unwrap_or(h));
    let base = name.strip_suffix("InputStreamHandler").unwrap_or(name);
    let hint = suggest(base, short)
        .map(|s| format!("did you mean \"{s}InputStreamHandler\"? "))
        .unwrap_or_default();
    format!(
        "unknown input stream handler \"{name}\"; {hint}known handlers: {}",
        HANDLER_NAMES.join(", ")
    )
}

/// Normalizes a handler's name, or explains why it is unknown.
fn check_handler(spec: &HandlerConfig) -> std::result::Result<HandlerConfig, String> {
    match normalize_handler_name(&spec.input_stream_handler) {
        Some(full) => Ok(HandlerConfig {
            input_stream_handler: full.to_string(),
            options: spec.options.clone(),
        }),
        None => Err(unknown_handler_message(&spec.input_stream_handler)),
    }
}

/// A node being validated.
struct Work {
    flat: FlatNode,
    name: String,
    /// The port sets, when every port string parsed.
    sets: Option<[PortSet; 4]>,
    /// For each kind, port id -> index into `flat.ports[k]`.
    origins: [Vec<usize>; 4],
    /// Output stream and side packet names known (even when the node is broken).
    out_names: [Vec<String>; 2],
    registration: Option<Arc<CalculatorRegistration>>,
    contract: Option<Contract>,
    options: Option<SharedOptions>,
    handler: HandlerConfig,
    back_edges: Vec<bool>,
    /// True if the node itself is valid (its connections are checked next).
    ok: bool,
}

impl Work {
    fn port_loc(&self, k: usize, id: usize) -> Location {
        let i = self.origins[k].get(id).copied().unwrap_or(0);
        self.flat.port_loc(k, i)
    }

    fn port(&self, k: usize, id: usize) -> String {
        self.sets
            .as_ref()
            .map(|s| s[k].entry(id).tag_index())
            .unwrap_or_default()
    }

    fn err(&self, location: Location, message: impl std::fmt::Display) -> Error {
        self.flat
            .error(location, format!("node \"{}\": {message}", self.name))
    }
}

/// Graph-level facts every node check needs.
struct GraphCtx {
    /// The named executors.
    executors: Vec<ExecutorSpec>,
    /// Threads of the default executor (graph `num_threads`, or an unnamed executor's).
    default_threads: usize,
    /// The default executor runs on the application's thread.
    application_thread: bool,
    /// Subgraph types visible to the graph (for suggestions).
    subgraph_types: Vec<String>,
    default_handler: Option<HandlerConfig>,
}

/// Builds the [`GraphSpec`] of an expanded graph, reporting every problem found (plus the
/// `errors` already found by parsing and expansion).
pub(crate) fn build(
    config: &GraphConfig,
    src: &Arc<Source>,
    flat: Vec<FlatNode>,
    mut errors: Vec<Error>,
    subgraph_types: Vec<String>,
) -> Result<GraphSpec> {
    let mut ctx = check_graph_settings(config, src, &mut errors);
    ctx.subgraph_types = subgraph_types;
    let graph_ports = graph_ports(config, src, &mut errors);

    let names = canonical_names(
        flat.iter()
            .map(|n| (n.cfg.name.as_deref(), n.cfg.calculator.as_str())),
    );
    let mut first_with_name: HashMap<&str, usize> = HashMap::new();
    for (i, name) in names.iter().enumerate() {
        if let Some(&j) = first_with_name.get(name.as_str()) {
            errors.push(flat[i].error(
                flat[i].loc(""),
                format!(
                    "two nodes are called \"{name}\" (the other one is at {}); rename one of them",
                    flat[j].loc("")
                ),
            ));
        } else {
            first_with_name.insert(name, i);
        }
    }
    let mut works: Vec<Work> = flat
        .into_iter()
        .zip(names)
        .map(|(f, name)| check_node(f, name, &ctx, &mut errors))
        .collect();

    let connections = connect(&mut works, &graph_ports, &mut errors);
    if !errors.is_empty() {
        return Err(finish_errors(errors, src));
    }
    let order = match sort(&works, &connections) {
        Ok(order) => order,
        Err(cycle_errors) => return Err(finish_errors(cycle_errors, src)),
    };
    assemble(config, ctx, src, works, &graph_ports, &connections, &order)
}

/// Removes repeated errors (e.g. a subgraph's default handler used by several nodes) and
/// orders them as written: the main file first, then by file, line and column.
fn finish_errors(errors: Vec<Error>, main: &Source) -> Error {
    let mut seen = HashSet::new();
    let mut unique: Vec<Error> = errors
        .into_iter()
        .filter(|e| seen.insert(e.to_string()))
        .collect();
    unique.sort_by_cached_key(|e| match e {
        Error::Config { location, .. } => (
            location.file != main.file,
            location.file.clone(),
            location.line,
            location.column,
        ),
        _ => (true, None, 0, 0),
    });
    combine(unique)
}

/// Checks the graph's `executor:` list: returns the named executors, the threads of the
/// default executor (an entry without a name configures it, as in MediaPipe) and whether it
/// is an ApplicationThreadExecutor.
fn check_executors(
    config: &GraphConfig,
    src: &Source,
    errors: &mut Vec<Error>,
) -> (Vec<ExecutorSpec>, usize, bool) {
    let mut executors: Vec<ExecutorSpec> = Vec::new();
    let mut default_threads = config.num_threads;
    let mut default_declared = false;
    let mut application_thread = false;
    for (i, e) in config.executor.iter().enumerate() {
        let at = src.loc(&format!("executor[{i}].name"));
        let entry = src.loc(&format!("executor[{i}]"));
        let type_at = || src.loc(&format!("executor[{i}].type"));
        match e.executor_type.as_deref() {
            None | Some("") | Some("ThreadPoolExecutor") => {}
            Some("ApplicationThreadExecutor") if !e.name.is_empty() => errors.push(Error::config(
                type_at(),
                "only the default executor (an entry without `name`) can be an ApplicationThreadExecutor; named executors are thread pools",
            )),
            Some("ApplicationThreadExecutor") if !e.options.is_null() => errors.push(Error::config(
                src.loc(&format!("executor[{i}].options")),
                "an ApplicationThreadExecutor takes no options (it runs on the thread that waits for the run)",
            )),
            Some("ApplicationThreadExecutor") => application_thread = true,
            Some(other) => errors.push(Error::config(
                type_at(),
                format!(
                    "unknown executor type \"{other}\"; the executor types are ThreadPoolExecutor and ApplicationThreadExecutor"
                ),
            )),
        }
        let options = executor_options(&e.options, i, src, errors);
        if e.name.is_empty() {
            // The default executor's settings.
            if default_declared {
                errors.push(Error::config(
                    entry,
                    "the default executor (an entry without `name`) is configured twice",
                ));
            } else if config.num_threads != 0 {
                errors.push(Error::config(
                    entry,
                    format!(
                        "the graph sets num_threads: {} and configures the default executor (an executor entry without `name`); set the thread count in one place",
                        config.num_threads
                    ),
                ));
            } else if options.stack_size.is_some() || options.thread_name_prefix.is_some() {
                errors.push(Error::config(
                    entry,
                    "the default executor takes only `num_threads`; give the executor a `name` for the other options",
                ));
            }
            default_declared = true;
            default_threads = options.num_threads;
        } else if e.name.chars().any(char::is_control) {
            errors.push(Error::config(
                at,
                format!(
                    "executor name {:?} has a control character; names its threads carry must be printable",
                    e.name
                ),
            ));
            // Still declared, so nodes naming it get no second error.
            executors.push(ExecutorSpec {
                name: e.name.clone(),
                ..options
            });
        } else if e.name == "default" || e.name == "gpu" || e.name.starts_with("__") {
            errors.push(Error::config(
                at,
                format!(
                    "executor name \"{}\" is reserved (\"default\", \"gpu\" and names starting with \"__\" are)",
                    e.name
                ),
            ));
        } else if executors.iter().any(|x| x.name == e.name) {
            errors.push(Error::config(
                at,
                format!("executor \"{}\" is declared twice", e.name),
            ));
        } else {
            executors.push(ExecutorSpec {
                name: e.name.clone(),
                ..options
            });
        }
    }
    (executors, default_threads, application_thread)
}

/// The largest `stack_size` an executor may ask for (1 GiB).
const MAX_STACK_SIZE: u64 = 1 << 30;

/// The `options:` of executor entry `i` (`num_threads`, `stack_size`,
/// `thread_name_prefix`); what is wrong with them is reported (and left at its default, so
/// that the executor's name still counts as declared).
fn executor_options(
    options: &serde_json::Value,
    i: usize,
    src: &Source,
    errors: &mut Vec<Error>,
) -> ExecutorSpec {
    let mut spec = ExecutorSpec {
        name: String::new(),
        num_threads: 0,
        stack_size: None,
        thread_name_prefix: None,
    };
    if options.is_null() {
        return spec;
    }
    let Some(map) = options.as_object() else {
        errors.push(Error::config(
            src.loc(&format!("executor[{i}].options")),
            "executor options must be a mapping",
        ));
        return spec;
    };
    for (key, value) in map {
        let at = src.loc(&format!("executor[{i}].options.{key}"));
        match key.as_str() {
            // 0 and -1: let the runtime choose (as in MediaPipe).
            "num_threads" => match value.as_i64() {
                Some(n @ -1..) => spec.num_threads = usize::try_from(n.max(0)).unwrap_or(0),
                _ => errors.push(Error::config(
                    at,
                    format!("num_threads must be a whole number of threads (0 or -1: let the runtime choose), not {value}"),
                )),
            },
            "stack_size" => match value.as_u64().filter(|&n| (1..=MAX_STACK_SIZE).contains(&n)) {
                Some(n) => spec.stack_size = Some(usize::try_from(n).unwrap_or(usize::MAX)),
                None => errors.push(Error::config(
                    at,
                    format!("stack_size must be a number of bytes from 1 to 1 GiB ({MAX_STACK_SIZE}), not {value}"),
                )),
            },
            "thread_name_prefix" => match value.as_str() {
                Some(p) if !p.is_empty() && !p.chars().any(char::is_control) => {
                    spec.thread_name_prefix = Some(p.to_string())
                }
                _ => errors.push(Error::config(
                    at,
                    format!("thread_name_prefix must be a non-empty printable string, not {value}"),
                )),
            },
            other => {
                let known = ["num_threads", "stack_size", "thread_name_prefix"];
                let hint = suggest(other, known.iter().copied())
                    .map(|s| format!("; did you mean \"{s}\"?"))
                    .unwrap_or_default();
                errors.push(Error::config(
                    src.key_loc(&format!("executor[{i}].options.{other}")),
                    format!(
                        "unknown executor option \"{other}\" (known: {}){hint}",
                        known.join(", ")
                    ),
                ));
            }
        }
    }
    spec
}

fn check_graph_settings(config: &GraphConfig, src: &Source, errors: &mut Vec<Error>) -> GraphCtx {
    if config.max_queue_size < -1 {
        errors.push(Error::config(
            src.loc("max_queue_size"),
            format!(
                "max_queue_size {} is invalid; use a positive limit, 0 for the default (100) or -1 for unlimited",
                config.max_queue_size
            ),
        ));
    }
    let (executors, default_threads, application_thread) = check_executors(config, src, errors);
    let default_handler = config.input_stream_handler.as_ref().and_then(|h| {
        check_handler(&h.to_config())
            .map_err(|m| {
                errors.push(Error::config(
                    src.loc("input_stream_handler"),
                    format!("graph input_stream_handler: {m}"),
                ))
            })
            .ok()
    });
    if let Some(p) = &config.profiler_config {
        if p.trace_enabled == Some(true) && p.trace_path.is_none() {
            errors.push(Error::config(
                src.key_loc("profiler_config.trace_enabled"),
                "trace_enabled needs a trace_path (the file the trace is written to)",
            ));
        }
    }
    GraphCtx {
        executors,
        default_threads,
        application_thread,
        subgraph_types: Vec::new(),
        default_handler,
    }
}

/// The graph's own port lists (input/output streams and side packets), parsed.
struct GraphPorts {
    /// Names and locations, per kind.
    lists: [Vec<(String, Location)>; 4],
}

fn graph_ports(config: &GraphConfig, src: &Source, errors: &mut Vec<Error>) -> GraphPorts {
    let lists_in = [
        &config.input_stream,
        &config.output_stream,
        &config.input_side_packet,
        &config.output_side_packet,
    ];
    let mut lists: [Vec<(String, Location)>; 4] = Default::default();
    for k in 0..4 {
        let field = KINDS[k].field();
        let mut refs: Vec<PortRef> = Vec::new();
        for (i, text) in lists_in[k].iter().enumerate() {
            let at = src.loc(&format!("{field}[{i}]"));
            match parse_port(text) {
                Ok(r) => {
                    lists[k].push((r.name.clone(), at));
                    refs.push(r);
                }
                Err(m) => errors.push(Error::config(at, format!("graph {field}: {m}"))),
            }
        }
        if let Err(m) = PortSet::from_refs(&refs) {
            errors.push(Error::config(src.loc(field), format!("graph {field}: {m}")));
        }
    }
    GraphPorts { lists }
}

/// Checks one node on its own: ports, calculator, options, contract, handler, back edges.
fn check_node(flat: FlatNode, name: String, ctx: &GraphCtx, errors: &mut Vec<Error>) -> Work {
    let mut w = Work {
        flat,
        name,
        sets: None,
        origins: Default::default(),
        out_names: Default::default(),
        registration: None,
        contract: None,
        options: None,
        handler: HandlerConfig::named("DefaultInputStreamHandler"),
        back_edges: Vec::new(),
        ok: false,
    };

    // Ports.
    let mut sets: Vec<PortSet> = Vec::with_capacity(4);
    let mut ports_ok = true;
    for (k, kind) in KINDS.iter().enumerate() {
        let field = kind.field();
        let mut refs = Vec::new();
        let mut all = true;
        for (i, p) in w.flat.ports[k].iter().enumerate() {
            match parse_port(&p.text) {
                Ok(r) => {
                    if k % 2 == 1 {
                        w.out_names[k / 2].push(r.name.clone());
                    }
                    refs.push(r);
                }
                Err(m) => {
                    if !w.flat.broken {
                        errors.push(w.err(w.flat.port_loc(k, i), format!("{field}: {m}")));
                    }
                    all = false;
                }
            }
        }
        if !all {
            ports_ok = false;
            continue;
        }
        match PortSet::from_refs(&refs) {
            Ok(set) => {
                let positions = tag_indexes(&refs);
                w.origins[k] = set
                    .entries()
                    .iter()
                    .map(|e| {
                        positions
                            .iter()
                            .position(|(t, i)| *t == e.tag && *i == e.index)
                            .unwrap_or(0)
                    })
                    .collect();
                sets.push(set);
            }
            Err(m) => {
                if !w.flat.broken {
                    errors.push(w.err(w.flat.loc(field), format!("{field}: {m}")));
                }
                ports_ok = false;
            }
        }
    }
    if w.flat.broken || !ports_ok {
        return w;
    }
    let sets: [PortSet; 4] = match <[PortSet; 4]>::try_from(sets) {
        Ok(s) => s,
        Err(_) => return w,
    };
    w.sets = Some(sets.clone());

    // Calculator.
    let calculator = w.flat.cfg.calculator.clone();
    let Some(registration) = lookup(&calculator) else {
        let all = registered();
        let candidates = all
            .iter()
            .map(|r| r.name.as_ref())
            .chain(ctx.subgraph_types.iter().map(String::as_str));
        let hint = suggest(&calculator, candidates)
            .map(|s| format!("; did you mean \"{s}\"?"))
            .unwrap_or_else(|| {
                "; is it registered (register_calculator!), or is its subgraph file listed under `subgraphs:`?".to_string()
            });
        errors.push(w.err(
            w.flat.loc("calculator"),
            format!("unknown calculator \"{calculator}\"{hint}"),
        ));
        return w;
    };
    w.registration = Some(registration.clone());

    // Options.
    let options = match registration.parse_options(&w.flat.cfg.options) {
        Ok(o) => o,
        Err(e) => {
            let message = e.to_string();
            let message = message.strip_prefix("options: ").unwrap_or(&message);
            let at = match unknown_field(message) {
                Some(field) => w.flat.key_loc(&format!("options.{field}")),
                None => w.flat.loc("options"),
            };
            errors.push(w.err(at, format!("invalid options for {calculator}: {message}")));
            return w;
        }
    };
    w.options = Some(options.clone());

    // Contract.
    let mut contract = Contract::new(&w.name, sets.clone());
    if let Err(e) = registration.fill_contract(&mut contract, &options) {
        let message = e.to_string();
        let prefix = format!("node \"{}\": ", w.name);
        let message = message.strip_prefix(&prefix).unwrap_or(&message);
        errors.push(w.err(w.flat.loc(""), format!("{calculator}: {message}")));
        return w;
    }

    let mut ok = true;

    // Input stream handler: node config, else contract, else subgraph/graph default.
    let chosen = if let Some(h) = &w.flat.cfg.input_stream_handler {
        check_handler(&h.to_config()).map_err(|m| (w.flat.loc("input_stream_handler"), m))
    } else if let Some(h) = contract.input_stream_handler() {
        check_handler(h).map_err(|m| (w.flat.loc(""), format!("{calculator} contract: {m}")))
    } else if let Some((h, hsrc, path)) = &w.flat.default_handler {
        check_handler(&h.to_config()).map_err(|m| {
            (
                hsrc.loc(path),
                format!("subgraph input_stream_handler: {m}"),
            )
        })
    } else {
        Ok(ctx
            .default_handler
            .clone()
            .unwrap_or_else(|| HandlerConfig::named("DefaultInputStreamHandler")))
    };
    match chosen {
        Ok(h) => w.handler = h,
        Err((at, m)) => {
            errors.push(w.err(at, m));
            ok = false;
        }
    }

    // Back edges.
    w.back_edges = vec![false; sets[0].len()];
    let mut seen: Vec<(String, usize)> = Vec::new();
    for (info, orig) in &w.flat.infos {
        let at = w.flat.loc(&format!("input_stream_info[{orig}].tag_index"));
        match parse_tag_index(&info.tag_index) {
            Err(m) => {
                errors.push(w.err(at, format!("input_stream_info tag_index {m}")));
                ok = false;
            }
            Ok(ti) => {
                if seen.contains(&ti) {
                    errors.push(w.err(
                        at,
                        format!(
                            "input_stream_info tag_index \"{}\" appears more than once",
                            info.tag_index
                        ),
                    ));
                    ok = false;
                    continue;
                }
                seen.push(ti.clone());
                match sets[0].id(&ti.0, ti.1) {
                    Some(id) => w.back_edges[id] = info.back_edge,
                    None => {
                        let inputs: Vec<String> =
                            sets[0].entries().iter().map(|e| e.tag_index()).collect();
                        errors.push(w.err(
                            at,
                            format!(
                                "input_stream_info tag_index \"{}\" names no input stream of this node (its inputs: {})",
                                info.tag_index,
                                if inputs.is_empty() { "none".to_string() } else { inputs.join(", ") }
                            ),
                        ));
                        ok = false;
                    }
                }
            }
        }
    }

    // Executor.
    if let Some(ex) = &w.flat.cfg.executor {
        if !ctx.executors.iter().any(|e| &e.name == ex) {
            let hint = suggest(ex, ctx.executors.iter().map(|e| e.name.as_str()))
                .map(|s| format!("; did you mean \"{s}\"?"))
                .unwrap_or_default();
            errors.push(w.err(
                w.flat.loc("executor"),
                format!("executor \"{ex}\" is not declared in the graph's `executor:` list{hint}"),
            ));
            ok = false;
        }
    }

    // Parallel calls of one node (MediaPipe's `max_in_flight`).
    if let Some(why) = crate::runtime::parallel_calls_refusal(
        w.flat.cfg.max_in_flight,
        &contract,
        &w.flat.cfg.calculator,
        w.back_edges.contains(&true),
    ) {
        errors.push(w.err(w.flat.loc("max_in_flight"), why));
        ok = false;
    }

    w.contract = Some(contract);
    w.ok = ok;
    w
}

/// The field named in a serde "unknown field `x`" message.
fn unknown_field(message: &str) -> Option<&str> {
    let rest = &message[message.find("unknown field `")? + "unknown field `".len()..];
    Some(&rest[..rest.find('`')?])
}

/// Who produces a stream or side packet.
#[derive(Clone, Debug)]
enum Prod {
    /// The graph's `input_stream` / `input_side_packet`.
    Graph,
    /// Node (index into the works) and port id.
    Node(usize, usize),
    /// A node that failed validation (its consumers are not checked further).
    Broken,
}

struct ProdInfo {
    prod: Prod,
    loc: Location,
    who: String,
}

/// Producers of every stream (`[0]`) and side packet (`[1]`).
struct Connections {
    producers: [HashMap<String, ProdInfo>; 2],
}

fn connect(works: &mut [Work], graph: &GraphPorts, errors: &mut Vec<Error>) -> Connections {
    let mut producers: [HashMap<String, ProdInfo>; 2] = Default::default();
    let what = ["stream", "side packet"];
    let graph_field = ["input_stream", "input_side_packet"];
    for family in 0..2 {
        for (name, at) in &graph.lists[family * 2] {
            if let Some(prev) = producers[family].get(name) {
                errors.push(Error::config(
                    at.clone(),
                    format!(
                        "graph {} \"{name}\" is declared twice (also at {})",
                        graph_field[family], prev.loc
                    ),
                ));
                continue;
            }
            producers[family].insert(
                name.clone(),
                ProdInfo {
                    prod: Prod::Graph,
                    loc: at.clone(),
                    who: format!("the graph {}", graph_field[family]),
                },
            );
        }
        for (wi, w) in works.iter().enumerate() {
            let k = family * 2 + 1;
            match &w.sets {
                Some(sets) if w.ok => {
                    for (id, e) in sets[k].entries().iter().enumerate() {
                        let at = w.port_loc(k, id);
                        if let Some(prev) = producers[family].get(&e.name) {
                            errors.push(w.err(
                                at,
                                format!(
                                    "output {} \"{}\" is defined twice: {} ({}) already produces it",
                                    what[family], e.name, prev.who, prev.loc
                                ),
                            ));
                            continue;
                        }
                        producers[family].insert(
                            e.name.clone(),
                            ProdInfo {
                                prod: Prod::Node(wi, id),
                                loc: at,
                                who: format!("node \"{}\"", w.name),
                            },
                        );
                    }
                }
                _ => {
                    for name in &w.out_names[family] {
                        producers[family]
                            .entry(name.clone())
                            .or_insert_with(|| ProdInfo {
                                prod: Prod::Broken,
                                loc: Location::default(),
                                who: String::new(),
                            });
                    }
                }
            }
        }
    }

    // Every input stream needs a producer.
    let mut broken_inputs = Vec::new();
    for (wi, w) in works.iter().enumerate() {
        let (Some(sets), true) = (&w.sets, w.ok) else {
            continue;
        };
        for (id, e) in sets[0].entries().iter().enumerate() {
            match producers[0].get(&e.name).map(|p| &p.prod) {
                Some(Prod::Broken) => broken_inputs.push(wi),
                Some(_) => {}
                None => {
                    let hint = suggest(&e.name, producers[0].keys().map(String::as_str))
                        .map(|s| format!("; did you mean \"{s}\"?"))
                        .unwrap_or_else(|| {
                            "; no node outputs it and it is not a graph input_stream".to_string()
                        });
                    errors.push(w.flat.error(
                        w.port_loc(0, id),
                        format!(
                            "stream \"{}\" consumed by node \"{}\" (input_stream {}) has no producer{hint}",
                            e.name,
                            w.name,
                            e.tag_index()
                        ),
                    ));
                }
            }
        }
    }
    for wi in broken_inputs {
        works[wi].ok = false;
    }

    for (name, at) in &graph.lists[1] {
        if !producers[0].contains_key(name) {
            let hint = suggest(name, producers[0].keys().map(String::as_str))
                .map(|s| format!("; did you mean \"{s}\"?"))
                .unwrap_or_default();
            errors.push(Error::config(
                at.clone(),
                format!("graph output stream \"{name}\" is not produced by any node{hint}"),
            ));
        }
    }
    for (name, at) in &graph.lists[3] {
        if !producers[1].contains_key(name) {
            errors.push(Error::config(
                at.clone(),
                format!(
                    "graph output side packet \"{name}\" is not produced by any node nor a graph input_side_packet"
                ),
            ));
        }
    }
    Connections { producers }
}

/// Edge of the dependency graph: stream (or side packet) name and consumer input port.
#[derive(Clone, Debug)]
struct Edge {
    name: String,
    port: usize,
    side: bool,
}

/// Topological order (indexes into `works`), smallest config index first among ready nodes.
fn sort(works: &[Work], conn: &Connections) -> std::result::Result<Vec<usize>, Vec<Error>> {
    let n = works.len();
    let mut g: DiGraph<usize, Edge> = DiGraph::with_capacity(n, n);
    let ids: Vec<NodeIndex> = (0..n).map(|i| g.add_node(i)).collect();
    let mut back: Vec<(usize, usize, usize)> = Vec::new();
    for (v, w) in works.iter().enumerate() {
        let Some(sets) = &w.sets else { continue };
        for (k, side) in [(0usize, false), (2usize, true)] {
            for (id, e) in sets[k].entries().iter().enumerate() {
                let family = usize::from(side);
                if let Some(ProdInfo {
                    prod: Prod::Node(u, _),
                    ..
                }) = conn.producers[family].get(&e.name)
                {
                    if !side && w.back_edges.get(id).copied().unwrap_or(false) {
                        back.push((*u, v, id));
                        continue;
                    }
                    g.add_edge(
                        ids[*u],
                        ids[v],
                        Edge {
                            name: e.name.clone(),
                            port: id,
                            side,
                        },
                    );
                }
            }
        }
    }
    let mut indegree: Vec<usize> = vec![0; n];
    for e in g.edge_indices() {
        if let Some((_, b)) = g.edge_endpoints(e) {
            indegree[g[b]] += 1;
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| indegree[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(u)) = ready.pop() {
        order.push(u);
        for nb in g.neighbors_directed(ids[u], petgraph::Direction::Outgoing) {
            // `neighbors` repeats a neighbour once per parallel edge.
            let v = g[nb];
            indegree[v] -= 1;
            if indegree[v] == 0 {
                ready.push(Reverse(v));
            }
        }
    }
    for (u, v, id) in back {
        if !petgraph::algo::has_path_connecting(&g, ids[v], ids[u], None) {
            tracing::warn!(
                "node \"{}\": input_stream {} is marked as a back edge but closes no loop",
                works[v].name,
                works[v].port(0, id)
            );
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    let mut errors = Vec::new();
    for scc in petgraph::algo::tarjan_scc(&g) {
        let members: HashSet<usize> = scc.iter().map(|&x| g[x]).collect();
        let self_loop = scc.len() == 1 && g.contains_edge(scc[0], scc[0]);
        if scc.len() < 2 && !self_loop {
            continue;
        }
        let Some(&start) = members.iter().min() else {
            continue;
        };
        errors.push(cycle_error(works, &g, &ids, start, &members));
    }
    if errors.is_empty() {
        errors.push(Error::config(
            Location::default(),
            "the graph has a cycle not cut by a back edge",
        ));
    }
    Err(errors)
}

/// Describes one cycle through `start` inside the strongly connected `members`.
fn cycle_error(
    works: &[Work],
    g: &DiGraph<usize, Edge>,
    ids: &[NodeIndex],
    start: usize,
    members: &HashSet<usize>,
) -> Error {
    use petgraph::visit::EdgeRef;
    // Breadth-first search from `start` back to `start`.
    let mut parent: HashMap<usize, (usize, Edge)> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    let mut closing: Option<(usize, Edge)> = None;
    'search: while let Some(u) = queue.pop_front() {
        let mut out: Vec<_> = g.edges(ids[u]).collect();
        out.sort_by_key(|e| g[e.target()]);
        for e in out {
            let v = g[e.target()];
            if !members.contains(&v) {
                continue;
            }
            if v == start {
                closing = Some((u, e.weight().clone()));
                break 'search;
            }
            if let std::collections::hash_map::Entry::Vacant(slot) = parent.entry(v) {
                slot.insert((u, e.weight().clone()));
                queue.push_back(v);
            }
        }
    }
    let mut path = vec![start];
    let mut via = Vec::new();
    let mut closing_port = None;
    if let Some((last, edge)) = closing {
        // Walk back from `last` to `start` along the search tree.
        let mut nodes = vec![last];
        let mut edges_in = Vec::new();
        let mut cur = last;
        while cur != start {
            let Some((p, e)) = parent.get(&cur) else {
                break;
            };
            edges_in.push(e.name.clone());
            nodes.push(*p);
            cur = *p;
        }
        nodes.reverse();
        edges_in.reverse();
        path = nodes;
        path.push(start);
        via = edges_in;
        via.push(edge.name.clone());
        closing_port = Some(edge);
    }
    let names: Vec<String> = path
        .iter()
        .map(|&i| format!("\"{}\"", works[i].name))
        .collect();
    let w = &works[start];
    let mut message = format!(
        "cycle in the graph not cut by a back edge: {} (through {})",
        names.join(" -> "),
        via.iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(edge) = closing_port {
        if edge.side {
            message.push_str("; side packets cannot form a loop");
        } else {
            message.push_str(&format!(
                "; if the loop is intended, mark its closing input on node \"{}\" with input_stream_info: [{{tag_index: \"{}\", back_edge: true}}]",
                w.name,
                w.port(0, edge.port)
            ));
        }
    }
    w.err(w.flat.loc(""), message)
}

/// One union-find variable per port (and per graph input / external side packet).
#[derive(Clone, Debug)]
enum Var {
    Port { node: usize, k: usize, id: usize },
    Outside,
}

struct Types {
    parent: Vec<usize>,
    ty: Vec<PacketType>,
    origin: Vec<Option<usize>>,
    vars: Vec<Var>,
}

impl Types {
    fn add(&mut self, var: Var, ty: PacketType) -> usize {
        let i = self.parent.len();
        self.parent.push(i);
        self.origin
            .push((!matches!(ty, PacketType::Any)).then_some(i));
        self.ty.push(ty);
        self.vars.push(var);
        i
    }

    fn find(&mut self, mut a: usize) -> usize {
        while self.parent[a] != a {
            self.parent[a] = self.parent[self.parent[a]];
            a = self.parent[a];
        }
        a
    }

    /// Merges two classes; on conflict returns both classes' types and origins.
    #[allow(clippy::type_complexity)]
    fn union(
        &mut self,
        a: usize,
        b: usize,
    ) -> std::result::Result<(), (PacketType, Option<usize>, PacketType, Option<usize>)> {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return Ok(());
        }
        match self.ty[ra].intersect(&self.ty[rb]) {
            Some(t) => {
                self.parent[rb] = ra;
                self.ty[ra] = t;
                self.origin[ra] = self.origin[ra].or(self.origin[rb]);
                Ok(())
            }
            None => Err((
                self.ty[ra].clone(),
                self.origin[ra],
                self.ty[rb].clone(),
                self.origin[rb],
            )),
        }
    }
}

fn kind_words(k: usize) -> (&'static str, &'static str) {
    match k {
        0 => ("input", "expects"),
        1 => ("output", "carries"),
        2 => ("input side packet", "expects"),
        _ => ("output side packet", "carries"),
    }
}

/// Builds the final spec from valid, sorted nodes.
fn assemble(
    config: &GraphConfig,
    ctx: GraphCtx,
    src: &Arc<Source>,
    works: Vec<Work>,
    graph: &GraphPorts,
    conn: &Connections,
    order: &[usize],
) -> Result<GraphSpec> {
    let mut new_id = vec![0usize; works.len()];
    for (pos, &wi) in order.iter().enumerate() {
        new_id[wi] = pos;
    }
    let sorted: Vec<usize> = order.to_vec();

    // Streams: graph inputs first, then outputs in node order.
    let mut streams: Vec<StreamSpec> = Vec::new();
    let mut stream_ids: HashMap<String, usize> = HashMap::new();
    for (name, _) in &graph.lists[0] {
        stream_ids.insert(name.clone(), streams.len());
        streams.push(StreamSpec {
            name: name.clone(),
            producer: Producer::GraphInput,
            consumers: Vec::new(),
            packet_type: PacketType::Any,
        });
    }
    for (pos, &wi) in sorted.iter().enumerate() {
        let Some(sets) = &works[wi].sets else {
            continue;
        };
        for (id, e) in sets[1].entries().iter().enumerate() {
            stream_ids.insert(e.name.clone(), streams.len());
            streams.push(StreamSpec {
                name: e.name.clone(),
                producer: Producer::Node {
                    node: pos,
                    port: id,
                },
                consumers: Vec::new(),
                packet_type: PacketType::Any,
            });
        }
    }
    // Side packets: graph inputs, then in node order as first met.
    let mut sides: Vec<SidePacketSpec> = Vec::new();
    let mut side_ids: HashMap<String, usize> = HashMap::new();
    let mut side_id = |name: &str, sides: &mut Vec<SidePacketSpec>| -> usize {
        if let Some(&i) = side_ids.get(name) {
            return i;
        }
        let producer = match conn.producers[1].get(name).map(|p| &p.prod) {
            Some(Prod::Node(u, port)) => SideProducer::Node {
                node: new_id[*u],
                port: *port,
            },
            _ => SideProducer::External,
        };
        side_ids.insert(name.to_string(), sides.len());
        sides.push(SidePacketSpec {
            name: name.to_string(),
            producer,
            consumers: Vec::new(),
            packet_type: PacketType::Any,
            optional: true,
        });
        sides.len() - 1
    };
    for (name, _) in &graph.lists[2] {
        side_id(name, &mut sides);
    }
    let mut port_ids: Vec<[Vec<usize>; 4]> = Vec::with_capacity(sorted.len());
    for (pos, &wi) in sorted.iter().enumerate() {
        let w = &works[wi];
        let Some(sets) = &w.sets else {
            port_ids.push(Default::default());
            continue;
        };
        let contract = w.contract.as_ref();
        let mut ids: [Vec<usize>; 4] = Default::default();
        for (id, e) in sets[0].entries().iter().enumerate() {
            let s = stream_ids.get(&e.name).copied().unwrap_or(0);
            if let Some(st) = streams.get_mut(s) {
                st.consumers.push(Consumer {
                    node: pos,
                    port: id,
                });
            }
            ids[0].push(s);
        }
        for e in sets[1].entries() {
            ids[1].push(stream_ids.get(&e.name).copied().unwrap_or(0));
        }
        for (id, e) in sets[2].entries().iter().enumerate() {
            let s = side_id(&e.name, &mut sides);
            sides[s].consumers.push(Consumer {
                node: pos,
                port: id,
            });
            if !contract.is_some_and(|c| c.is_optional(PortKind::SideInput, id)) {
                sides[s].optional = false;
            }
            ids[2].push(s);
        }
        for e in sets[3].entries() {
            let s = side_id(&e.name, &mut sides);
            sides[s].optional = false;
            ids[3].push(s);
        }
        port_ids.push(ids);
    }

    // Types.
    let mut errors = Vec::new();
    let mut types = Types {
        parent: Vec::new(),
        ty: Vec::new(),
        origin: Vec::new(),
        vars: Vec::new(),
    };
    let mut port_var: Vec<[Vec<usize>; 4]> = Vec::with_capacity(sorted.len());
    for (pos, &wi) in sorted.iter().enumerate() {
        let w = &works[wi];
        let mut vars: [Vec<usize>; 4] = Default::default();
        if let (Some(sets), Some(c)) = (&w.sets, &w.contract) {
            for k in 0..4 {
                for id in 0..sets[k].len() {
                    let ty = match c.declared(KINDS[k], id) {
                        Some(TypeDecl::Type(t)) => t.clone(),
                        _ => PacketType::Any,
                    };
                    vars[k].push(types.add(Var::Port { node: pos, k, id }, ty));
                }
            }
        }
        port_var.push(vars);
    }
    let describe = |types: &Types, var: Option<usize>, works: &[Work]| -> String {
        match var.map(|v| &types.vars[v]) {
            Some(Var::Port { node, k, id }) => {
                let w = &works[sorted[*node]];
                let (dir, verb) = kind_words(*k);
                format!("node \"{}\" {dir} {} {verb}", w.name, w.port(*k, *id))
            }
            _ => "it carries".to_string(),
        }
    };
    // SameAs declarations.
    for (pos, &wi) in sorted.iter().enumerate() {
        let w = &works[wi];
        let (Some(sets), Some(c)) = (&w.sets, &w.contract) else {
            continue;
        };
        for k in 0..4 {
            for id in 0..sets[k].len() {
                let Some(TypeDecl::SameAs(kind, other)) = c.declared(KINDS[k], id) else {
                    continue;
                };
                let k2 = KINDS.iter().position(|x| x == kind).unwrap_or(0);
                // A SameAs to an unconnected (optional) port leaves the port untyped.
                let Some(&b) = port_var[pos][k2].get(*other) else {
                    continue;
                };
                let a = port_var[pos][k][id];
                if let Err((ta, _, tb, _)) = types.union(b, a) {
                    errors.push(w.err(
                        w.flat.loc(""),
                        format!(
                            "{} {} is declared to have the type of {} {}, but they are {ta} and {tb}",
                            KINDS[k].field(),
                            w.port(k, id),
                            KINDS[k2].field(),
                            w.port(k2, *other)
                        ),
                    ));
                }
            }
        }
    }
    let mut stream_var = Vec::with_capacity(streams.len());
    for st in &streams {
        let v = match st.producer {
            Producer::Node { node, port } => port_var[node][1][port],
            Producer::GraphInput => types.add(Var::Outside, PacketType::Any),
        };
        stream_var.push(v);
    }
    let mut side_var = Vec::with_capacity(sides.len());
    for sp in &sides {
        let v = match sp.producer {
            SideProducer::Node { node, port } => port_var[node][3][port],
            SideProducer::External => types.add(Var::Outside, PacketType::Any),
        };
        side_var.push(v);
    }
    let families: [(&Vec<usize>, usize, &str); 2] =
        [(&stream_var, 0, "stream"), (&side_var, 2, "side packet")];
    for (vars, k, what) in families {
        let consumer_lists: Vec<(String, Vec<Consumer>)> = if k == 0 {
            streams
                .iter()
                .map(|s| (s.name.clone(), s.consumers.clone()))
                .collect()
        } else {
            sides
                .iter()
                .map(|s| (s.name.clone(), s.consumers.clone()))
                .collect()
        };
        for (si, (name, consumers)) in consumer_lists.iter().enumerate() {
            for c in consumers {
                let cv = port_var[c.node][k][c.port];
                if let Err((ta, oa, tb, _)) = types.union(vars[si], cv) {
                    let w = &works[sorted[c.node]];
                    let (dir, _) = kind_words(k);
                    errors.push(w.err(
                        w.port_loc(k, c.port),
                        format!(
                            "type mismatch on {what} \"{name}\": {} {ta} but node \"{}\" {dir} {} expects {tb}",
                            describe(&types, oa, &works),
                            w.name,
                            w.port(k, c.port)
                        ),
                    ));
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(finish_errors(errors, src));
    }
    for (si, st) in streams.iter_mut().enumerate() {
        let r = types.find(stream_var[si]);
        st.packet_type = types.ty[r].clone();
    }
    for (si, sp) in sides.iter_mut().enumerate() {
        let r = types.find(side_var[si]);
        sp.packet_type = types.ty[r].clone();
    }

    // Nodes.
    let mut slots: Vec<Option<Work>> = works.into_iter().map(Some).collect();
    let mut nodes = Vec::with_capacity(sorted.len());
    for (pos, &wi) in sorted.iter().enumerate() {
        let Some(w) = slots.get_mut(wi).and_then(Option::take) else {
            continue;
        };
        let (Some(registration), Some(contract), Some(options)) =
            (w.registration, w.contract, w.options)
        else {
            return Err(Error::config(
                w.flat.loc(""),
                format!("node \"{}\" is incomplete (internal error)", w.name),
            ));
        };
        let [inputs, outputs, side_inputs, side_outputs] = std::mem::take(&mut port_ids[pos]);
        let location = w.flat.loc("");
        nodes.push(NodeSpec {
            name: w.name,
            calculator: registration.name.to_string(),
            registration,
            contract,
            options,
            input_streams: inputs,
            output_streams: outputs,
            side_inputs,
            side_outputs,
            back_edges: w.back_edges,
            handler: w.handler,
            max_in_flight: w.flat.cfg.max_in_flight.max(1),
            source_layer: w.flat.cfg.source_layer,
            buffer_size_hint: w.flat.cfg.buffer_size_hint,
            executor: w.flat.cfg.executor,
            location,
        });
    }

    let input_streams = graph.lists[0]
        .iter()
        .filter_map(|(n, _)| stream_ids.get(n).copied())
        .collect();
    let output_streams = graph.lists[1]
        .iter()
        .filter_map(|(n, _)| stream_ids.get(n).copied())
        .collect();
    let trace_path = config.profiler_config.as_ref().and_then(|p| {
        if p.trace_enabled == Some(false) {
            return None;
        }
        p.trace_path.as_ref().map(|t| src.dir.join(t))
    });
    Ok(GraphSpec {
        nodes,
        streams,
        side_packets: sides,
        input_streams,
        output_streams,
        num_threads: ctx.default_threads,
        application_thread: ctx.application_thread,
        executors: ctx.executors,
        max_queue_size: match config.max_queue_size {
            0 => Some(100),
            n if n < 0 => None,
            n => Some(usize::try_from(n).unwrap_or(usize::MAX)),
        },
        report_deadlock: config.report_deadlock,
        trace_path,
        source: src.file_location(),
    })
}
