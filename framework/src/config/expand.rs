//! Subgraph expansion: replaces every node whose `calculator` is a subgraph type by the
//! subgraph's nodes, with names prefixed and the interface connected to the outer streams.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::model::{GraphConfig, HandlerSpec, InputStreamInfo, NodeConfig};
use super::{join_path, Registry, Source, SubgraphDef};
use crate::contract::PortKind;
use crate::error::{Error, Location};
use crate::port::{parse_port, parse_tag_index, PortRef, PortSet};

/// The four port kinds in config order (the index used by [`FlatNode::ports`]).
pub(crate) const KINDS: [PortKind; 4] = [
    PortKind::Input,
    PortKind::Output,
    PortKind::SideInput,
    PortKind::SideOutput,
];

/// Deepest subgraph nesting accepted.
const MAX_DEPTH: usize = 64;
/// Most nodes a graph may expand to.
const MAX_NODES: usize = 100_000;

/// One port string of a node, with its index in the list where it is written.
#[derive(Clone, Debug)]
pub(crate) struct PortText {
    pub(crate) text: String,
    pub(crate) orig: usize,
}

/// A node after expansion, remembering where it is written.
#[derive(Clone)]
pub(crate) struct FlatNode {
    /// The node's config (its port lists are in `ports`).
    pub(crate) cfg: NodeConfig,
    /// `input_stream`, `output_stream`, `input_side_packet`, `output_side_packet`.
    pub(crate) ports: [Vec<PortText>; 4],
    /// `input_stream_info` entries with their index in the written list.
    pub(crate) infos: Vec<(InputStreamInfo, usize)>,
    /// The file the node is written in.
    pub(crate) src: Arc<Source>,
    /// The node's path in that file (`node[3]`).
    pub(crate) path: String,
    /// Appended to messages: which subgraph nodes expanded this one.
    pub(crate) context: String,
    /// The input stream handler default of the innermost enclosing subgraph, with where it is
    /// written.
    pub(crate) default_handler: Option<(HandlerSpec, Arc<Source>, String)>,
    /// True if expansion failed (already reported): the node only keeps its outputs known,
    /// so that its consumers get no follow-up errors.
    pub(crate) broken: bool,
}

impl FlatNode {
    fn from_config(cfg: &NodeConfig, index: usize, src: &Arc<Source>) -> FlatNode {
        let list = |v: &[String]| {
            v.iter()
                .enumerate()
                .map(|(orig, text)| PortText {
                    text: text.clone(),
                    orig,
                })
                .collect::<Vec<_>>()
        };
        FlatNode {
            ports: [
                list(&cfg.input_stream),
                list(&cfg.output_stream),
                list(&cfg.input_side_packet),
                list(&cfg.output_side_packet),
            ],
            infos: cfg
                .input_stream_info
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, info)| (info, i))
                .collect(),
            cfg: NodeConfig {
                input_stream: Vec::new(),
                output_stream: Vec::new(),
                input_side_packet: Vec::new(),
                output_side_packet: Vec::new(),
                input_stream_info: Vec::new(),
                ..cfg.clone()
            },
            src: src.clone(),
            path: format!("node[{index}]"),
            context: String::new(),
            default_handler: None,
            broken: false,
        }
    }

    /// Where `child` of this node (e.g. `calculator`, `options.x`; `""` for the node itself)
    /// is written.
    pub(crate) fn loc(&self, child: &str) -> Location {
        self.src.loc(&join_path(&self.path, child))
    }

    /// Where the key `child` of this node is written.
    pub(crate) fn key_loc(&self, child: &str) -> Location {
        self.src.key_loc(&join_path(&self.path, child))
    }

    /// Where port string `i` of kind `k` (index into `ports[k]`) is written.
    pub(crate) fn port_loc(&self, k: usize, i: usize) -> Location {
        let orig = self.ports[k].get(i).map_or(0, |p| p.orig);
        self.loc(&format!("{}[{orig}]", KINDS[k].field()))
    }

    /// A located error about this node, with the subgraph context appended.
    pub(crate) fn error(&self, location: Location, message: impl std::fmt::Display) -> Error {
        Error::config(location, format!("{message}{}", self.context))
    }
}

/// The canonical node names of a node list: the name (or calculator), suffixed `_1`, `_2`, ...
/// in order when several nodes share it.
pub(crate) fn canonical_names<'a>(
    nodes: impl Iterator<Item = (Option<&'a str>, &'a str)> + Clone,
) -> Vec<String> {
    let base: Vec<&str> = nodes.map(|(name, calc)| name.unwrap_or(calc)).collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for b in &base {
        *counts.entry(b).or_default() += 1;
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    base.iter()
        .map(|b| {
            if counts.get(b).copied().unwrap_or(0) <= 1 {
                b.to_string()
            } else {
                let k = seen.entry(b).or_default();
                *k += 1;
                format!("{b}_{k}")
            }
        })
        .collect()
}

/// Expands every subgraph node of `config` (recursively) into a flat node list.
pub(crate) fn expand_graph(
    config: &GraphConfig,
    src: &Arc<Source>,
    registry: &Registry,
    errors: &mut Vec<Error>,
) -> Vec<FlatNode> {
    let nodes: Vec<FlatNode> = config
        .node
        .iter()
        .enumerate()
        .map(|(i, n)| FlatNode::from_config(n, i, src))
        .collect();
    let mut count = nodes.len();
    let mut stack = Vec::new();
    expand_list(nodes, registry, &mut stack, &mut count, errors)
}

fn expand_list(
    nodes: Vec<FlatNode>,
    registry: &Registry,
    stack: &mut Vec<String>,
    count: &mut usize,
    errors: &mut Vec<Error>,
) -> Vec<FlatNode> {
    let names = canonical_names(
        nodes
            .iter()
            .map(|n| (n.cfg.name.as_deref(), n.cfg.calculator.as_str())),
    );
    let mut out = Vec::with_capacity(nodes.len());
    for (mut node, canonical) in nodes.into_iter().zip(names) {
        let Some(def) = registry.get(&node.cfg.calculator) else {
            out.push(node);
            continue;
        };
        if let Some(i) = stack.iter().position(|t| *t == def.type_name) {
            let mut chain = stack[i..].to_vec();
            chain.push(def.type_name.clone());
            errors.push(node.error(
                node.loc("calculator"),
                format!(
                    "node \"{canonical}\": subgraph \"{}\" is defined recursively: {}",
                    def.type_name,
                    chain.join(" -> ")
                ),
            ));
            node.broken = true;
            out.push(node);
            continue;
        }
        if stack.len() >= MAX_DEPTH || *count > MAX_NODES {
            errors.push(node.error(
                node.loc("calculator"),
                format!(
                    "node \"{canonical}\": subgraphs nested too deeply or expanding to too many nodes (limits: depth {MAX_DEPTH}, {MAX_NODES} nodes)"
                ),
            ));
            node.broken = true;
            out.push(node);
            continue;
        }
        match instantiate(&node, &canonical, def, errors) {
            Some(inner) => {
                *count += inner.len();
                stack.push(def.type_name.clone());
                let inner = expand_list(inner, registry, stack, count, errors);
                stack.pop();
                out.extend(inner);
            }
            None => {
                node.broken = true;
                out.push(node);
            }
        }
    }
    out
}

/// Parses a port list; errors are reported with `loc(i)`.
fn parse_list(
    list: &[PortText],
    loc: impl Fn(usize) -> Location,
    errors: &mut Vec<Error>,
    context: &str,
) -> Option<Vec<PortRef>> {
    let mut ok = true;
    let mut refs = Vec::with_capacity(list.len());
    for (i, p) in list.iter().enumerate() {
        match parse_port(&p.text) {
            Ok(r) => refs.push(r),
            Err(m) => {
                errors.push(Error::config(loc(i), format!("{m}{context}")));
                ok = false;
            }
        }
    }
    ok.then_some(refs)
}

/// The (tag, index) of each ref, untagged ones numbered in order as [`PortSet`] does.
pub(crate) fn tag_indexes(refs: &[PortRef]) -> Vec<(String, usize)> {
    let mut next = 0;
    refs.iter()
        .map(|r| {
            let i = r.index.unwrap_or_else(|| {
                next += 1;
                next - 1
            });
            (r.tag.clone(), i)
        })
        .collect()
}

/// Replaces the name part (after the last `:`) of a port string.
fn rename(text: &str, name: &str) -> String {
    match text.rfind(':') {
        Some(i) => format!("{}{name}", &text[..=i]),
        None => name.to_string(),
    }
}

fn describe_tag(tag: &str) -> String {
    if tag.is_empty() {
        "untagged entries".to_string()
    } else {
        format!("tag \"{tag}\"")
    }
}

/// The subgraph's nodes for subgraph node `node`, renamed and connected; `None` on error
/// (reported).
fn instantiate(
    node: &FlatNode,
    canonical: &str,
    def: &SubgraphDef,
    errors: &mut Vec<Error>,
) -> Option<Vec<FlatNode>> {
    let before = errors.len();
    let t = &def.type_name;
    let forbidden: [(&str, bool); 5] = [
        ("source_layer", node.cfg.source_layer != 0),
        ("buffer_size_hint", node.cfg.buffer_size_hint != 0),
        ("input_stream_info", !node.infos.is_empty()),
        (
            "input_stream_handler",
            node.cfg.input_stream_handler.is_some(),
        ),
        ("max_in_flight", node.cfg.max_in_flight != 0),
    ];
    for (field, set) in forbidden {
        if set {
            errors.push(node.error(
                node.key_loc(field),
                format!(
                    "node \"{canonical}\" uses subgraph \"{t}\" and cannot set `{field}` (set it on the subgraph's nodes instead)"
                ),
            ));
        }
    }

    let prefix = format!(
        "{}__",
        canonical.to_lowercase().replace(['.', ' ', ':'], "_")
    );
    let here = node.loc("");
    let inner_context = format!(
        " (in subgraph \"{t}\" used by node \"{canonical}\" at {here}){}",
        node.context
    );

    // name maps for streams (0) and side packets (1): inner interface name -> outer name
    let mut renames: [HashMap<String, String>; 2] = [HashMap::new(), HashMap::new()];
    // inner names of interface inputs the node leaves unconnected
    let mut removed: [HashSet<String>; 2] = [HashSet::new(), HashSet::new()];
    let interface = [
        &def.config.input_stream,
        &def.config.output_stream,
        &def.config.input_side_packet,
        &def.config.output_side_packet,
    ];
    // names the subgraph's own nodes produce (streams, side packets)
    let mut produced: [HashSet<String>; 2] = [HashSet::new(), HashSet::new()];
    for n in &def.config.node {
        for (family, list) in [(0, &n.output_stream), (1, &n.output_side_packet)] {
            for text in list {
                if let Ok(r) = parse_port(text) {
                    produced[family].insert(r.name);
                }
            }
        }
    }
    for k in 0..4 {
        let field = KINDS[k].field();
        let family = k / 2;
        let iface_list: Vec<PortText> = interface[k]
            .iter()
            .enumerate()
            .map(|(orig, text)| PortText {
                text: text.clone(),
                orig,
            })
            .collect();
        let Some(iface_refs) = parse_list(
            &iface_list,
            |i| def.src.loc(&format!("{field}[{i}]")),
            errors,
            &inner_context,
        ) else {
            continue;
        };
        let iface = match PortSet::from_refs(&iface_refs) {
            Ok(s) => s,
            Err(m) => {
                errors.push(Error::config(
                    def.src.loc(field),
                    format!("subgraph \"{t}\" {field}: {m}{inner_context}"),
                ));
                continue;
            }
        };
        let Some(refs) = parse_list(
            &node.ports[k],
            |i| node.port_loc(k, i),
            errors,
            &node.context,
        ) else {
            continue;
        };
        if let Err(m) = PortSet::from_refs(&refs) {
            errors.push(node.error(
                node.loc(field),
                format!("node \"{canonical}\" {field}: {m}"),
            ));
            continue;
        }
        let mut connected = HashSet::new();
        for (i, ((tag, index), r)) in tag_indexes(&refs).into_iter().zip(&refs).enumerate() {
            let Some(id) = iface.id(&tag, index) else {
                let tags: Vec<String> = iface
                    .tags()
                    .map(|t| {
                        if t.is_empty() {
                            "(untagged)".to_string()
                        } else {
                            t.to_string()
                        }
                    })
                    .collect();
                let message = if iface.has_tag(&tag) {
                    format!(
                        "node \"{canonical}\": subgraph \"{t}\" has {} {field} with {}, but index {index} is connected",
                        iface.count(&tag),
                        describe_tag(&tag)
                    )
                } else {
                    format!(
                        "node \"{canonical}\": subgraph \"{t}\" has no {field} with {} (its {field} tags: {})",
                        describe_tag(&tag),
                        if tags.is_empty() { "none".to_string() } else { tags.join(", ") }
                    )
                };
                errors.push(node.error(node.port_loc(k, i), message));
                continue;
            };
            connected.insert(id);
            let inner = iface.entry(id).name.clone();
            if k % 2 == 1 && !produced[family].contains(&inner) {
                let orig = tag_indexes(&iface_refs)
                    .iter()
                    .position(|ti| *ti == (tag.clone(), index))
                    .unwrap_or(0);
                errors.push(Error::config(
                    def.src.loc(&format!("{field}[{orig}]")),
                    format!(
                        "subgraph \"{t}\" {field} \"{inner}\" is not produced by any of its nodes{inner_context}"
                    ),
                ));
            }
            match renames[family].get(&inner) {
                Some(outer) if *outer != r.name => {
                    errors.push(node.error(
                        node.port_loc(k, i),
                        format!(
                            "node \"{canonical}\": subgraph \"{t}\" uses \"{inner}\" in its interface twice, so it cannot be connected to both \"{outer}\" and \"{}\"",
                            r.name
                        ),
                    ));
                }
                _ => {
                    renames[family].insert(inner, r.name.clone());
                }
            }
        }
        if matches!(KINDS[k], PortKind::Input | PortKind::SideInput) {
            for (id, e) in iface.entries().iter().enumerate() {
                if !connected.contains(&id) {
                    removed[family].insert(e.name.clone());
                }
            }
        }
    }
    for family in 0..2 {
        let r = &mut removed[family];
        r.retain(|name| !renames[family].contains_key(name));
    }
    if errors.len() > before {
        return None;
    }

    let inner_names = canonical_names(
        def.config
            .node
            .iter()
            .map(|n| (n.name.as_deref(), n.calculator.as_str())),
    );
    // Options on a subgraph node go to its inner nodes: `{inner_node_name: {field: value}}`.
    let forwarded = match &node.cfg.options {
        serde_json::Value::Null => serde_json::Map::new(),
        serde_json::Value::Object(map) => map.clone(),
        _ => {
            errors.push(node.error(
                node.loc("options"),
                format!(
                    "node \"{canonical}\" uses subgraph \"{t}\": its `options` must map inner node names to their options, e.g. {{detector: {{min_score_thresh: 0.5}}}}"
                ),
            ));
            return None;
        }
    };
    for (key, value) in &forwarded {
        if !inner_names.iter().any(|n| n == key) {
            errors.push(node.error(
                node.key_loc(&format!("options.{key}")),
                format!(
                    "node \"{canonical}\": subgraph \"{t}\" has no node \"{key}\" to pass options to (its nodes: {})",
                    inner_names.join(", ")
                ),
            ));
        } else if !value.is_object() {
            errors.push(node.error(
                node.loc(&format!("options.{key}")),
                format!("node \"{canonical}\": options for inner node \"{key}\" must be a mapping"),
            ));
        }
    }
    if errors.len() > before {
        return None;
    }
    let default_handler = match &def.config.input_stream_handler {
        Some(h) => Some((
            h.clone(),
            def.src.clone(),
            "input_stream_handler".to_string(),
        )),
        None => node.default_handler.clone(),
    };
    let mut out = Vec::with_capacity(def.config.node.len());
    for (j, (inner_cfg, inner_name)) in def.config.node.iter().zip(inner_names).enumerate() {
        let mut flat = FlatNode::from_config(inner_cfg, j, &def.src);
        if let Some(extra) = forwarded.get(&inner_name) {
            merge_options(&mut flat.cfg.options, extra);
        }
        flat.cfg.name = Some(format!("{prefix}{inner_name}"));
        if flat.cfg.executor.is_none() {
            flat.cfg.executor.clone_from(&node.cfg.executor);
        }
        flat.context.clone_from(&inner_context);
        flat.default_handler.clone_from(&default_handler);
        let mut dropped_inputs: Vec<(String, usize)> = Vec::new();
        for (k, list) in flat.ports.iter_mut().enumerate() {
            let family = k / 2;
            let is_input = matches!(KINDS[k], PortKind::Input | PortKind::SideInput);
            let parsed: Vec<Option<PortRef>> =
                list.iter().map(|p| parse_port(&p.text).ok()).collect();
            let all: Option<Vec<PortRef>> = parsed.iter().cloned().collect();
            let positions = all.as_deref().map(tag_indexes);
            let mut kept = Vec::with_capacity(list.len());
            for (i, (p, r)) in list.drain(..).zip(parsed).enumerate() {
                let Some(r) = r else {
                    // Reported with its location when the node is validated.
                    kept.push(p);
                    continue;
                };
                if is_input && removed[family].contains(&r.name) {
                    if k == 0 {
                        if let Some(pos) = &positions {
                            dropped_inputs.push(pos[i].clone());
                        }
                    }
                    continue;
                }
                let new_name = renames[family]
                    .get(&r.name)
                    .cloned()
                    .unwrap_or_else(|| format!("{prefix}{}", r.name));
                kept.push(PortText {
                    text: rename(&p.text, &new_name),
                    orig: p.orig,
                });
            }
            *list = kept;
        }
        if !dropped_inputs.is_empty() {
            flat.infos
                .retain(|(info, _)| match parse_tag_index(&info.tag_index) {
                    Ok(ti) => !dropped_inputs.contains(&ti),
                    Err(_) => true,
                });
        }
        out.push(flat);
    }
    Some(out)
}

/// Merges `extra` over `base`: mappings key by key (recursively), anything else replaced.
fn merge_options(base: &mut serde_json::Value, extra: &serde_json::Value) {
    match (base, extra) {
        (serde_json::Value::Object(b), serde_json::Value::Object(e)) => {
            for (k, v) in e {
                merge_options(b.entry(k.clone()).or_insert(serde_json::Value::Null), v);
            }
        }
        (b, e) => *b = e.clone(),
    }
}
