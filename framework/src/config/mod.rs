//! Graph configs: the YAML model, located errors, subgraph expansion and validation.
//!
//! A graph config is a YAML mirror of MediaPipe's `CalculatorGraphConfig`:
//!
//! ```yaml
//! input_stream: in
//! output_stream: out
//! node:
//!   - calculator: PassThroughCalculator
//!     input_stream: in
//!     output_stream: out
//! ```
//!
//! [`load_file`] / [`load_str`] turn such a config into a validated [`GraphSpec`]: subgraph
//! nodes are expanded, every calculator is looked up and asked for its contract, every stream
//! and side packet is connected to exactly one producer, nodes are sorted topologically (back
//! edges excepted) and port types are resolved. Every problem found is reported with the file,
//! line and column where it is written; when there are several, all of them are returned in
//! one [`Error::ConfigErrors`].
//!
//! Subgraphs are configs with a `type:`. A graph lists the files defining the subgraphs it
//! uses under `subgraphs:` (paths relative to the listing file), or an application registers
//! them with [`register_subgraph_yaml`]; a node whose `calculator` names a subgraph type is
//! replaced by the subgraph's nodes, with inner names prefixed by the node's name.

mod expand;
mod model;
mod positions;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;

pub use model::{
    ExecutorConfig, GraphConfig, HandlerSpec, InputStreamInfo, NodeConfig, ProfilerConfig,
};

use crate::error::{Error, Location, Result};
use crate::spec::GraphSpec;
use positions::{Pos, PosIndex};

/// Reads, parses, expands and validates the graph config in `path`.
pub fn load_file(path: &Path) -> Result<GraphSpec> {
    load_file_with(path, &[])
}

/// [`load_file`] with node options changed by `overrides` before the graph is expanded
/// and validated.
pub fn load_file_with(path: &Path, overrides: &[OptionOverride]) -> Result<GraphSpec> {
    let text = read_file(path)?;
    load_str_with(&text, Some(path), overrides)
}

/// Parses, expands and validates a graph config given as text. `file` names it in error
/// locations and is the base of relative `subgraphs:` and `trace_path` paths (`None`: the
/// current directory).
pub fn load_str(yaml: &str, file: Option<&Path>) -> Result<GraphSpec> {
    load_str_with(yaml, file, &[])
}

/// [`load_str`] with node options changed by `overrides` before the graph is expanded and
/// validated.
///
/// An override names a node of the graph (its nodes are listed when it does not):
///
/// ```
/// use mediagraph_framework::config::{load_str_with, OptionOverride};
///
/// let yaml = "node:\n  - calculator: SomeSource\n    name: camera\n    output_stream: frames\n";
/// let set: OptionOverride = "camra.fps=15".parse()?;
/// let err = load_str_with(yaml, None, &[set]).err().unwrap().to_string();
/// assert!(err.contains("no node \"camra\" (its nodes: camera)"), "{err}");
/// # Ok::<(), mediagraph_framework::Error>(())
/// ```
pub fn load_str_with(
    yaml: &str,
    file: Option<&Path>,
    overrides: &[OptionOverride],
) -> Result<GraphSpec> {
    let (mut config, src) = parse_source(yaml, file)?;
    for o in overrides {
        o.apply(&mut config).map_err(|message| {
            Error::config(
                src.file_location(),
                format!("option override {o}: {message}"),
            )
        })?;
    }
    let mut errors = Vec::new();
    let mut seen = HashSet::new();
    if let Some(f) = file {
        seen.insert(std::fs::canonicalize(f).unwrap_or_else(|_| f.to_path_buf()));
    }
    let mut local = HashMap::new();
    load_subgraph_files(&config, &src, &mut local, &mut seen, &mut errors);
    let registry = Registry {
        local,
        global: global_subgraphs().read().clone(),
    };
    let flat = expand::expand_graph(&config, &src, &registry, &mut errors);
    let types = registry.names().map(str::to_string).collect();
    validate::build(&config, &src, flat, errors, types)
        .map_err(|e| with_override_notes(e, overrides))
}

/// Adds to each error about the options of a node (or of a node inside it) that `overrides`
/// changed which overrides did: the location points at the file, the value may come from
/// the command line.
fn with_override_notes(error: Error, overrides: &[OptionOverride]) -> Error {
    match error {
        Error::ConfigErrors(all) => Error::ConfigErrors(
            all.into_iter()
                .map(|e| with_override_notes(e, overrides))
                .collect(),
        ),
        Error::Config { location, message } => {
            let about = |o: &&OptionOverride| {
                message.contains("options")
                    && (message.contains(&format!("node \"{}\"", o.node))
                        || message.contains(&format!("node \"{}__", o.node)))
            };
            let notes: Vec<String> = overrides
                .iter()
                .filter(about)
                .map(|o| o.to_string())
                .collect();
            let message = if notes.is_empty() {
                message
            } else {
                format!("{message} (options changed by {})", notes.join(", "))
            };
            Error::Config { location, message }
        }
        other => other,
    }
}

/// Parses a graph config into the serde model without expanding or validating it (for tools).
/// Syntax errors, wrong value types and unknown fields are reported with their location.
pub fn parse_str(yaml: &str, file: Option<&Path>) -> Result<GraphConfig> {
    parse_source(yaml, file).map(|(config, _)| config)
}

/// Registers a subgraph config (which must have a `type:`) so that nodes of any graph loaded
/// later can use it by that type. The subgraph files it lists under `subgraphs:` are registered
/// too. A later registration of the same type replaces the earlier one.
pub fn register_subgraph_yaml(yaml: &str, file: Option<&Path>) -> Result<()> {
    let (config, src) = parse_source(yaml, file)?;
    let mut errors = Vec::new();
    let Some(type_name) = config.graph_type.clone() else {
        return Err(Error::config(
            src.loc(""),
            "a subgraph config needs a `type:` (the name nodes use in `calculator:`)",
        ));
    };
    if let Err(message) = check_type_name(&type_name) {
        return Err(Error::config(src.loc("type"), message));
    }
    check_subgraph_settings(&config, &src, &mut errors);
    let mut seen = HashSet::new();
    if let Some(f) = file {
        seen.insert(std::fs::canonicalize(f).unwrap_or_else(|_| f.to_path_buf()));
    }
    let mut local = HashMap::new();
    load_subgraph_files(&config, &src, &mut local, &mut seen, &mut errors);
    if !errors.is_empty() {
        return Err(combine(errors));
    }
    let mut global = global_subgraphs().write();
    for (name, def) in local {
        global.insert(name, def);
    }
    global.insert(
        type_name.clone(),
        Arc::new(SubgraphDef {
            type_name,
            config,
            src,
        }),
    );
    Ok(())
}

/// A change to one option of a top-level node, made on top of its config file (the CLI's
/// `--set`): `NODE.KEY[.KEY..]=VALUE`, e.g. `pipeline.detection_rate.period=200000`. NODE is
/// a node's `name` (or its calculator, when no other node uses it); the keys lead into its
/// `options` (for a subgraph node, the first key names the inner node, as in the config).
/// VALUE is YAML: `5`, `0.5`, `true`, `SYNC`, `{a: 1}`, `[1, 2]`.
#[derive(Clone, Debug, PartialEq)]
pub struct OptionOverride {
    /// The node's name.
    pub node: String,
    /// Keys from the node's `options` down to the option set.
    pub path: Vec<String>,
    /// The new value.
    pub value: serde_json::Value,
}

impl std::str::FromStr for OptionOverride {
    type Err = Error;

    fn from_str(text: &str) -> Result<OptionOverride> {
        let bad = |why: &str| {
            Error::Message(format!(
                "option override \"{text}\": {why}; expected NODE.KEY[.KEY..]=VALUE, e.g. pipeline.detection_rate.period=200000"
            ))
        };
        let (target, raw) = text.split_once('=').ok_or_else(|| bad("no `=`"))?;
        let mut keys = target.trim().split('.').map(str::to_string);
        let node = keys.next().unwrap_or_default();
        let path: Vec<String> = keys.collect();
        if node.is_empty() || path.is_empty() || path.iter().any(String::is_empty) {
            return Err(bad(
                "NODE and at least one KEY are needed, none of them empty",
            ));
        }
        let value = yaml_serde::from_str::<serde_json::Value>(raw)
            .map_err(|e| bad(&format!("VALUE is not valid YAML ({e})")))?;
        Ok(OptionOverride { node, path, value })
    }
}

impl std::fmt::Display for OptionOverride {
    /// As written: `NODE.KEY[.KEY..]=VALUE`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}=", self.node, self.path.join("."))?;
        match &self.value {
            serde_json::Value::String(s) => f.write_str(s),
            v => write!(f, "{v}"),
        }
    }
}

impl OptionOverride {
    /// Sets the option in `config`; the message says why it cannot.
    fn apply(&self, config: &mut GraphConfig) -> std::result::Result<(), String> {
        let named = |n: &NodeConfig| n.name.as_deref() == Some(self.node.as_str());
        let by_calculator = |n: &NodeConfig| n.name.is_none() && n.calculator == self.node;
        let index = match config.node.iter().position(named) {
            Some(i) => i,
            None => {
                let mut matches = config
                    .node
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| by_calculator(n));
                match (matches.next(), matches.next()) {
                    (Some((i, _)), None) => i,
                    (Some(_), Some(_)) => {
                        return Err(format!(
                            "several nodes run {}; give the one meant a `name:`",
                            self.node
                        ))
                    }
                    _ => {
                        let names: Vec<&str> = config
                            .node
                            .iter()
                            .map(|n| n.name.as_deref().unwrap_or(&n.calculator))
                            .collect();
                        return Err(format!(
                            "the graph has no node \"{}\" (its nodes: {})",
                            self.node,
                            names.join(", ")
                        ));
                    }
                }
            }
        };
        let mut at = &mut config.node[index].options;
        let mut walked = self.node.clone();
        for key in &self.path {
            if at.is_null() {
                *at = serde_json::Value::Object(serde_json::Map::new());
            }
            let serde_json::Value::Object(map) = at else {
                return Err(format!("{walked} is {at}, not a mapping of options"));
            };
            at = map.entry(key.clone()).or_insert(serde_json::Value::Null);
            walked = format!("{walked}.{key}");
        }
        *at = self.value.clone();
        Ok(())
    }
}

/// One config text: its file, directory and position index.
pub(crate) struct Source {
    pub(crate) file: Option<Arc<PathBuf>>,
    pub(crate) dir: PathBuf,
    index: PosIndex,
}

impl Source {
    fn new(text: &str, file: Option<&Path>) -> Source {
        // An empty directory joins as "relative to the current directory".
        let dir = file
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        Source {
            file: file.map(|f| Arc::new(f.to_path_buf())),
            dir,
            index: PosIndex::build(text),
        }
    }

    fn at(&self, pos: Pos) -> Location {
        Location {
            file: self.file.clone(),
            line: pos.line,
            column: pos.column,
        }
    }

    /// The first known position among `path` and its ancestors, looked up with `get`.
    fn find(&self, path: &str, get: impl Fn(&PosIndex, &str) -> Option<Pos>) -> Location {
        let mut p = path.to_string();
        loop {
            if let Some(pos) = get(&self.index, &p) {
                return self.at(pos);
            }
            // The graph accepts `nodes:` as well as `node:`.
            if let Some(rest) = p.strip_prefix("node[") {
                if let Some(pos) = get(&self.index, &format!("nodes[{rest}")) {
                    return self.at(pos);
                }
            }
            if p.is_empty() {
                return self.at(Pos { line: 1, column: 1 });
            }
            p = parent_path(&p).to_string();
        }
    }

    /// Where the value at `path` (e.g. `node[2].input_stream[0]`) is written, or the nearest
    /// enclosing value that is (line 1, column 1 at worst).
    pub(crate) fn loc(&self, path: &str) -> Location {
        self.find(path, PosIndex::value_pos)
    }

    /// Like [`Source::loc`], but for a mapping entry, where its key is written.
    pub(crate) fn key_loc(&self, path: &str) -> Location {
        self.find(path, PosIndex::key_pos)
    }

    /// The file as a location without line (for the graph as a whole).
    pub(crate) fn file_location(&self) -> Location {
        Location {
            file: self.file.clone(),
            line: 0,
            column: 0,
        }
    }
}

/// `a.b[2]` -> `a.b`, `a.b` -> `a`, `a` -> ``.
fn parent_path(path: &str) -> &str {
    if path.ends_with(']') {
        if let Some(i) = path.rfind('[') {
            return &path[..i];
        }
    }
    match path.rfind('.') {
        Some(i) => &path[..i],
        None => "",
    }
}

/// Joins a path and a child key (`""` child: the path itself).
pub(crate) fn join_path(path: &str, child: &str) -> String {
    match (path.is_empty(), child.is_empty()) {
        (_, true) => path.to_string(),
        (true, false) => child.to_string(),
        (false, false) => format!("{path}.{child}"),
    }
}

fn read_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses `text` into the model, with a position index for later messages.
pub(crate) fn parse_source(text: &str, file: Option<&Path>) -> Result<(GraphConfig, Arc<Source>)> {
    let src = Arc::new(Source::new(text, file));
    match yaml_serde::from_str::<GraphConfig>(text) {
        Ok(config) => {
            if config == GraphConfig::default() && is_empty_document(text) {
                return Err(Error::config(
                    src.at(Pos { line: 1, column: 1 }),
                    "the graph config is empty; expected a mapping with a `node:` list",
                ));
            }
            Ok((config, src))
        }
        Err(e) => Err(yaml_error(&e, &src)),
    }
}

fn is_empty_document(text: &str) -> bool {
    matches!(
        yaml_serde::from_str::<yaml_serde::Value>(text),
        Ok(yaml_serde::Value::Null)
    )
}

/// A `yaml_serde` error as a located config error (without the position repeated in the text).
fn yaml_error(e: &yaml_serde::Error, src: &Source) -> Error {
    let mut message = e.to_string();
    let pos = match e.location() {
        Some(l) => {
            let suffix = format!(" at line {} column {}", l.line(), l.column());
            if let Some(i) = message.find(&suffix) {
                message.replace_range(i..i + suffix.len(), "");
            }
            Pos {
                line: l.line().max(1),
                column: l.column().max(1),
            }
        }
        None => Pos { line: 1, column: 1 },
    };
    Error::config(src.at(pos), format!("invalid graph config: {message}"))
}

/// Returns the one error alone, or all of them combined.
pub(crate) fn combine(mut errors: Vec<Error>) -> Error {
    if errors.len() == 1 {
        errors.remove(0)
    } else {
        Error::ConfigErrors(errors)
    }
}

/// A subgraph definition: a config with a `type`, and where it was read from.
pub(crate) struct SubgraphDef {
    pub(crate) type_name: String,
    pub(crate) config: GraphConfig,
    pub(crate) src: Arc<Source>,
}

fn global_subgraphs() -> &'static RwLock<HashMap<String, Arc<SubgraphDef>>> {
    static REGISTRY: OnceLock<RwLock<HashMap<String, Arc<SubgraphDef>>>> = OnceLock::new();
    REGISTRY.get_or_init(|| RwLock::new(HashMap::new()))
}

/// The subgraph types visible while loading one graph: the files it (transitively) lists,
/// then the ones registered at run time.
pub(crate) struct Registry {
    local: HashMap<String, Arc<SubgraphDef>>,
    global: HashMap<String, Arc<SubgraphDef>>,
}

impl Registry {
    /// The subgraph of type `name`, if any.
    pub(crate) fn get(&self, name: &str) -> Option<&Arc<SubgraphDef>> {
        self.local.get(name).or_else(|| self.global.get(name))
    }

    /// Every subgraph type name (for suggestions).
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.local
            .keys()
            .chain(self.global.keys())
            .map(String::as_str)
    }
}

/// Refuses the settings of a whole graph run in a subgraph file (they would be ignored: the
/// graph that uses the subgraph decides them).
fn check_subgraph_settings(config: &GraphConfig, src: &Source, errors: &mut Vec<Error>) {
    let set = [
        ("num_threads", config.num_threads != 0),
        ("max_queue_size", config.max_queue_size != 0),
        ("report_deadlock", config.report_deadlock),
        ("profiler_config", config.profiler_config.is_some()),
    ];
    for (key, _) in set.iter().filter(|(_, is_set)| *is_set) {
        errors.push(Error::config(
            src.key_loc(key),
            format!(
                "`{key}` is a setting of the whole graph run; a subgraph cannot set it (set it in the graph that uses the subgraph)"
            ),
        ));
    }
    if !config.executor.is_empty() {
        let names: Vec<&str> = config.executor.iter().map(|e| e.name.as_str()).collect();
        errors.push(Error::config(
            src.key_loc("executor"),
            format!(
                "a subgraph cannot declare executors; declare {names:?} in the graph that uses the subgraph (the subgraph's nodes can still name them)"
            ),
        ));
    }
}

fn check_type_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("the subgraph `type` is empty".into());
    }
    if crate::calculator::lookup(name).is_some() {
        tracing::warn!("subgraph type \"{name}\" hides the calculator of the same name");
    }
    Ok(())
}

/// Loads the files listed under `subgraphs:` (and, recursively, the ones they list) into `out`.
fn load_subgraph_files(
    config: &GraphConfig,
    src: &Source,
    out: &mut HashMap<String, Arc<SubgraphDef>>,
    seen: &mut HashSet<PathBuf>,
    errors: &mut Vec<Error>,
) {
    for (i, rel) in config.subgraphs.iter().enumerate() {
        let at = src.loc(&format!("subgraphs[{i}]"));
        let path = src.dir.join(rel);
        let canonical = match std::fs::canonicalize(&path) {
            Ok(c) => c,
            Err(e) => {
                errors.push(Error::config(
                    at,
                    format!("cannot read subgraph file \"{}\": {e}", path.display()),
                ));
                continue;
            }
        };
        if !seen.insert(canonical) {
            continue;
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(Error::config(
                    at,
                    format!("cannot read subgraph file \"{}\": {e}", path.display()),
                ));
                continue;
            }
        };
        let (sub, sub_src) = match parse_source(&text, Some(&path)) {
            Ok(parsed) => parsed,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let Some(type_name) = sub.graph_type.clone() else {
            errors.push(Error::config(
                sub_src.loc(""),
                format!(
                    "subgraph file (listed at {at}) has no `type:`; add the name nodes use in `calculator:`"
                ),
            ));
            continue;
        };
        if let Err(message) = check_type_name(&type_name) {
            errors.push(Error::config(sub_src.loc("type"), message));
            continue;
        }
        check_subgraph_settings(&sub, &sub_src, errors);
        if let Some(other) = out.get(&type_name) {
            errors.push(Error::config(
                sub_src.loc("type"),
                format!(
                    "subgraph type \"{type_name}\" is also defined in {}",
                    other.src.file_location()
                ),
            ));
            continue;
        }
        load_subgraph_files(&sub, &sub_src, out, seen, errors);
        out.insert(
            type_name.clone(),
            Arc::new(SubgraphDef {
                type_name,
                config: sub,
                src: sub_src,
            }),
        );
    }
}

/// Edit distance counting a swap of adjacent characters as one edit (optimal string
/// alignment), for "did you mean" suggestions.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = v;
        }
    }
    d[a.len() * width + b.len()]
}

/// The closest of `candidates` to `word`, if close enough to be a likely typo.
pub(crate) fn suggest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    let lower = word.to_lowercase();
    candidates
        .filter(|c| *c != word)
        .map(|c| {
            let d = edit_distance(&lower, &c.to_lowercase());
            (d, c)
        })
        .filter(|(d, c)| *d <= (c.chars().count() / 3).max(1) && *d < c.chars().count())
        .min_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(b.1)))
        .map(|(_, c)| c.to_string())
}
