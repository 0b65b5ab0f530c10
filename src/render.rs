//! Pictures of an expanded graph: Graphviz DOT, and a self-contained SVG or HTML page drawn by
//! a simple layered layout of our own, so no Graphviz is needed to look at a graph.
//!
//! Nodes of an expanded subgraph (named `outer__inner`) are grouped in a cluster named after
//! the subgraph node. Graph input and output streams and side packets given by the
//! application appear as small pseudo-nodes; every edge is labelled with its stream (or side
//! packet) name and type. Back edges are drawn dashed, side packets dotted.
//!
//! ```
//! use mediagraph::render::GraphView;
//!
//! let spec = mediagraph::config::load_str(r#"
//! input_stream: in
//! output_stream: out
//! node:
//!   - calculator: PassThroughCalculator
//!     name: relay
//!     input_stream: in
//!     output_stream: out
//! "#, None)?;
//! let view = GraphView::new(&spec);
//! assert!(view.to_dot().contains("\"relay\""));
//! let svg = view.to_svg();
//! assert!(svg.starts_with("<svg") && svg.contains(">relay</text>"));
//! # Ok::<(), mediagraph::Error>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use mediagraph_framework::spec::{GraphSpec, Producer, SideProducer};

/// What a box of the picture stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ViewNodeKind {
    /// A calculator node.
    Node,
    /// A graph input stream, fed by the application.
    GraphInput,
    /// A graph output stream.
    GraphOutput,
    /// A side packet given by the application.
    SidePacket,
}

/// One box of the picture.
#[derive(Clone, Debug)]
pub struct ViewNode {
    /// A unique id (the node name, or `input:NAME`, `output:NAME`, `side:NAME`).
    pub id: String,
    /// The label: the node's name within its subgraph, or the stream / side packet name.
    pub label: String,
    /// The calculator (empty for pseudo-nodes).
    pub calculator: String,
    /// What it stands for.
    pub kind: ViewNodeKind,
    /// The subgraph nodes it is nested in, outermost first (from `outer__inner` names).
    pub cluster: Vec<String>,
    /// Where it is written in the config (`file:line:column`), for calculator nodes.
    pub location: String,
    /// The named executor it runs on (`None`: the default one, or a pseudo-node).
    pub executor: Option<String>,
    /// Calls it may make at once (`max_in_flight`; 1 for pseudo-nodes).
    pub max_in_flight: usize,
}

impl ViewNode {
    /// Where and how it runs, when not simply one call at a time on the default executor:
    /// "on executor X", "N calls at once", or both.
    pub fn placement(&self) -> Option<String> {
        let on = self.executor.as_ref().map(|e| format!("on executor {e}"));
        let calls =
            (self.max_in_flight > 1).then(|| format!("{} calls at once", self.max_in_flight));
        match (on, calls) {
            (Some(on), Some(calls)) => Some(format!("{on}, {calls}")),
            (on, calls) => on.or(calls),
        }
    }
}

/// One arrow of the picture: a stream (or side packet) from a producer to a consumer.
#[derive(Clone, Debug)]
pub struct ViewEdge {
    /// Index of the producing box in [`GraphView::nodes`].
    pub from: usize,
    /// Index of the consuming box.
    pub to: usize,
    /// The stream or side packet name.
    pub name: String,
    /// Its resolved packet type.
    pub packet_type: String,
    /// The producer's and consumer's ports (`TAG:index`), when they are nodes.
    pub ports: (String, String),
    /// A side packet rather than a stream.
    pub side: bool,
    /// A declared back edge (closes a loop).
    pub back_edge: bool,
}

/// The boxes and arrows of an expanded graph, ready to be written as DOT, SVG or HTML.
#[derive(Clone, Debug)]
pub struct GraphView {
    /// The graph's name (its file name, or "graph").
    pub title: String,
    /// Boxes: calculator nodes first (in topological order), then pseudo-nodes.
    pub nodes: Vec<ViewNode>,
    /// Arrows.
    pub edges: Vec<ViewEdge>,
}

/// The subgraph path of an expanded node name: `a__b__c` is inside `a`, then `a__b`.
fn cluster_of(name: &str) -> (Vec<String>, String) {
    let parts: Vec<&str> = name.split("__").collect();
    let mut clusters = Vec::new();
    for i in 1..parts.len() {
        clusters.push(parts[..i].join("__"));
    }
    (clusters, parts.last().copied().unwrap_or(name).to_string())
}

impl GraphView {
    /// The view of a validated, expanded graph.
    pub fn new(spec: &GraphSpec) -> GraphView {
        let title = spec
            .source
            .file
            .as_ref()
            .and_then(|f| f.file_name())
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| "graph".to_string());
        let mut nodes: Vec<ViewNode> = spec
            .nodes
            .iter()
            .map(|n| {
                let (cluster, label) = cluster_of(&n.name);
                ViewNode {
                    id: n.name.clone(),
                    label,
                    calculator: n.calculator.clone(),
                    kind: ViewNodeKind::Node,
                    cluster,
                    location: n.location.to_string(),
                    executor: n.executor.clone(),
                    max_in_flight: n.max_in_flight,
                }
            })
            .collect();
        let pseudo = |nodes: &mut Vec<ViewNode>, kind: ViewNodeKind, prefix: &str, name: &str| {
            nodes.push(ViewNode {
                id: format!("{prefix}:{name}"),
                label: name.to_string(),
                calculator: String::new(),
                kind,
                cluster: Vec::new(),
                location: String::new(),
                executor: None,
                max_in_flight: 1,
            });
            nodes.len() - 1
        };
        let port_name = |node: usize, kind: usize, port: usize| -> String {
            let c = &spec.nodes[node].contract;
            let set = match kind {
                0 => c.inputs(),
                1 => c.outputs(),
                2 => c.side_inputs(),
                _ => c.side_outputs(),
            };
            if port < set.len() {
                set.entry(port).tag_index()
            } else {
                String::new()
            }
        };
        let mut edges = Vec::new();
        for (sid, s) in spec.streams.iter().enumerate() {
            let (from, from_port) = match s.producer {
                Producer::GraphInput => (
                    pseudo(&mut nodes, ViewNodeKind::GraphInput, "input", &s.name),
                    String::new(),
                ),
                Producer::Node { node, port } => (node, port_name(node, 1, port)),
            };
            let packet_type = s.packet_type.to_string();
            for c in &s.consumers {
                edges.push(ViewEdge {
                    from,
                    to: c.node,
                    name: s.name.clone(),
                    packet_type: packet_type.clone(),
                    ports: (from_port.clone(), port_name(c.node, 0, c.port)),
                    side: false,
                    back_edge: spec.nodes[c.node]
                        .back_edges
                        .get(c.port)
                        .copied()
                        .unwrap_or(false),
                });
            }
            if spec.output_streams.contains(&sid) {
                let to = pseudo(&mut nodes, ViewNodeKind::GraphOutput, "output", &s.name);
                edges.push(ViewEdge {
                    from,
                    to,
                    name: s.name.clone(),
                    packet_type: packet_type.clone(),
                    ports: (from_port.clone(), String::new()),
                    side: false,
                    back_edge: false,
                });
            }
        }
        for sp in &spec.side_packets {
            if sp.consumers.is_empty() {
                continue;
            }
            let (from, from_port) = match sp.producer {
                SideProducer::External => (
                    pseudo(&mut nodes, ViewNodeKind::SidePacket, "side", &sp.name),
                    String::new(),
                ),
                SideProducer::Node { node, port } => (node, port_name(node, 3, port)),
            };
            for c in &sp.consumers {
                edges.push(ViewEdge {
                    from,
                    to: c.node,
                    name: sp.name.clone(),
                    packet_type: sp.packet_type.to_string(),
                    ports: (from_port.clone(), port_name(c.node, 2, c.port)),
                    side: true,
                    back_edge: false,
                });
            }
        }
        GraphView {
            title,
            nodes,
            edges,
        }
    }

    /// The graph in Graphviz DOT: subgraphs as nested `cluster_` subgraphs, edges labelled
    /// `name: Type`. Render with `dot -Tsvg`.
    pub fn to_dot(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "digraph {} {{", dot_quote(&self.title));
        out.push_str("  rankdir=TB;\n  node [fontname=\"Helvetica\", fontsize=11];\n  edge [fontname=\"Helvetica\", fontsize=9];\n");
        // Group boxes by cluster path; write clusters as a tree.
        let mut tree: BTreeMap<Vec<String>, Vec<usize>> = BTreeMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            tree.entry(n.cluster.clone()).or_default().push(i);
        }
        let mut all_clusters: Vec<Vec<String>> = Vec::new();
        for path in tree.keys() {
            for depth in 1..=path.len() {
                let p = path[..depth].to_vec();
                if !all_clusters.contains(&p) {
                    all_clusters.push(p);
                }
            }
        }
        all_clusters.sort();
        self.dot_cluster(&mut out, &[], &tree, &all_clusters, 1);
        for e in &self.edges {
            let mut attrs = vec![format!(
                "label={}",
                dot_quote(&format!("{}: {}", e.name, e.packet_type))
            )];
            if e.back_edge {
                attrs.push("style=dashed".into());
                attrs.push("constraint=false".into());
            } else if e.side {
                attrs.push("style=dotted".into());
            }
            let _ = writeln!(
                out,
                "  {} -> {} [{}];",
                dot_quote(&self.nodes[e.from].id),
                dot_quote(&self.nodes[e.to].id),
                attrs.join(", ")
            );
        }
        out.push_str("}\n");
        out
    }

    fn dot_cluster(
        &self,
        out: &mut String,
        path: &[String],
        tree: &BTreeMap<Vec<String>, Vec<usize>>,
        all: &[Vec<String>],
        depth: usize,
    ) {
        let pad = "  ".repeat(depth);
        for &i in tree.get(path).map(Vec::as_slice).unwrap_or(&[]) {
            let n = &self.nodes[i];
            let attrs = match n.kind {
                ViewNodeKind::Node => {
                    let on = n.placement().map(|p| format!("\n{p}")).unwrap_or_default();
                    format!(
                        "shape=box, style=rounded, label={}",
                        dot_quote(&format!("{}\n{}{on}", n.label, n.calculator))
                    )
                }
                ViewNodeKind::GraphInput => {
                    format!("shape=invhouse, label={}", dot_quote(&n.label))
                }
                ViewNodeKind::GraphOutput => format!("shape=house, label={}", dot_quote(&n.label)),
                ViewNodeKind::SidePacket => {
                    format!("shape=ellipse, style=dashed, label={}", dot_quote(&n.label))
                }
            };
            let _ = writeln!(out, "{pad}{} [{attrs}];", dot_quote(&n.id));
        }
        for child in all
            .iter()
            .filter(|c| c.len() == path.len() + 1 && c.starts_with(path))
        {
            let name = child.last().cloned().unwrap_or_default();
            let _ = writeln!(
                out,
                "{pad}subgraph {} {{",
                dot_quote(&format!("cluster_{name}"))
            );
            let (_, short) = cluster_of(&name);
            let _ = writeln!(
                out,
                "{pad}  label={}; style=\"rounded,filled\"; fillcolor=\"#f2f5fb\";",
                dot_quote(&short)
            );
            self.dot_cluster(out, child, tree, all, depth + 1);
            let _ = writeln!(out, "{pad}}}");
        }
    }

    /// The graph as a standalone SVG document, laid out in layers from sources (top) to sinks
    /// (bottom).
    pub fn to_svg(&self) -> String {
        svg::draw(self, &Layout::compute(self))
    }

    /// A standalone HTML page: the SVG picture, a legend, and tables of nodes and streams.
    /// `svg` replaces the built-in picture (e.g. one made by Graphviz).
    pub fn to_html(&self, svg: Option<&str>) -> String {
        let picture = match svg {
            Some(s) => strip_xml_prolog(s).to_string(),
            None => self.to_svg(),
        };
        let mut out = String::new();
        let title = xml_escape(&self.title);
        let _ = write!(
            out,
            r#"<!DOCTYPE html>
<html xmlns="http://www.w3.org/1999/xhtml" lang="en">
<head>
<meta charset="utf-8"/>
<title>{title}</title>
<style>
body {{ font-family: Helvetica, Arial, sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 2em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; font-size: 0.9em; }}
th {{ background: #eef; }}
code {{ font-size: 0.95em; }}
.legend span {{ display: inline-block; margin-right: 1.5em; }}
.picture {{ overflow: auto; border: 1px solid #ddd; padding: 0.5em; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p class="legend"><span>&#9645; calculator node</span><span>&#9651; graph input stream</span><span>&#9661; graph output stream</span><span>&#9711; side packet given by the application</span><span>solid arrow: stream</span><span>dotted arrow: side packet</span><span>dashed arrow: back edge</span><span>shaded box: subgraph</span></p>
<div class="picture">
{picture}
</div>
"#
        );
        out.push_str("<h2>Nodes</h2>\n<table>\n<tr><th>node</th><th>calculator</th><th>subgraph</th><th>executor</th><th>inputs</th><th>outputs</th><th>defined at</th></tr>\n");
        for (i, n) in self.nodes.iter().enumerate() {
            if n.kind != ViewNodeKind::Node {
                continue;
            }
            let list = |incoming: bool| {
                self.edges
                    .iter()
                    .filter(|e| if incoming { e.to == i } else { e.from == i })
                    .map(|e| {
                        let port = if incoming { &e.ports.1 } else { &e.ports.0 };
                        format!(
                            "<code>{}</code> {}: {}",
                            xml_escape(port),
                            xml_escape(&e.name),
                            xml_escape(&e.packet_type)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("<br/>")
            };
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                xml_escape(&n.id),
                xml_escape(&n.calculator),
                xml_escape(&n.cluster.join(" / ")),
                xml_escape(&match n.max_in_flight {
                    1 => n.executor.clone().unwrap_or_else(|| "default".into()),
                    k => format!("{} ({k} calls at once)", n.executor.as_deref().unwrap_or("default")),
                }),
                list(true),
                list(false),
                xml_escape(&n.location)
            );
        }
        out.push_str("</table>\n<h2>Streams and side packets</h2>\n<table>\n<tr><th>name</th><th>type</th><th>kind</th><th>from</th><th>to</th></tr>\n");
        for e in &self.edges {
            let kind = if e.side {
                "side packet"
            } else if e.back_edge {
                "stream (back edge)"
            } else {
                "stream"
            };
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                xml_escape(&e.name),
                xml_escape(&e.packet_type),
                kind,
                xml_escape(&self.nodes[e.from].id),
                xml_escape(&self.nodes[e.to].id)
            );
        }
        out.push_str("</table>\n</body>\n</html>\n");
        out
    }
}

/// Removes an `<?xml ...?>` declaration and a DOCTYPE, so an SVG document can be inlined.
fn strip_xml_prolog(svg: &str) -> &str {
    svg.find("<svg").map_or(svg, |i| &svg[i..])
}

/// Quotes a DOT identifier.
fn dot_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Escapes text for XML content and attribute values.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

// ----- layout -----

/// Width of one character of the monospace font used in the SVG, in pixels.
const CHAR_W: f64 = 7.2;
const NODE_H: f64 = 40.0;
const PSEUDO_H: f64 = 26.0;
const LAYER_GAP: f64 = 70.0;
const NODE_GAP: f64 = 36.0;
const MARGIN: f64 = 30.0;
/// Width reserved for an edge passing through a layer.
const DUMMY_W: f64 = 14.0;

/// Positions of the boxes and the routes of the edges.
struct Layout {
    /// Centre x, top y, width and height of each box.
    boxes: Vec<(f64, f64, f64, f64)>,
    /// For each edge, the points it passes through (from the source's bottom to the target's
    /// top; back edges go around).
    routes: Vec<Vec<(f64, f64)>>,
    width: f64,
    height: f64,
}

fn box_size(n: &ViewNode) -> (f64, f64) {
    match n.kind {
        ViewNodeKind::Node => {
            let chars = n.label.chars().count().max(n.calculator.chars().count()) as f64;
            (chars * CHAR_W + 24.0, NODE_H)
        }
        _ => (n.label.chars().count() as f64 * CHAR_W + 30.0, PSEUDO_H),
    }
}

impl Layout {
    fn compute(view: &GraphView) -> Layout {
        let n = view.nodes.len();
        // Layers: longest path from the sources over forward edges (Kahn's order).
        let forward: Vec<&ViewEdge> = view.edges.iter().filter(|e| !e.back_edge).collect();
        let mut indegree = vec![0usize; n];
        for e in &forward {
            indegree[e.to] += 1;
        }
        let mut layer = vec![0usize; n];
        let mut ready: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
        ready.reverse();
        let mut done = vec![false; n];
        while let Some(v) = ready.pop() {
            done[v] = true;
            for e in forward.iter().filter(|e| e.from == v) {
                layer[e.to] = layer[e.to].max(layer[v] + 1);
                indegree[e.to] -= 1;
                if indegree[e.to] == 0 {
                    ready.push(e.to);
                }
            }
        }
        // A cycle without a declared back edge cannot pass validation; be safe anyway.
        let max_done = layer.iter().copied().max().unwrap_or(0);
        for v in 0..n {
            if !done[v] {
                layer[v] = max_done + 1;
            }
        }
        // Graph outputs sit on the last layer; sources of side packets just above their
        // first consumer.
        let last = layer.iter().copied().max().unwrap_or(0);
        for (v, node) in view.nodes.iter().enumerate() {
            if node.kind == ViewNodeKind::GraphOutput {
                layer[v] = layer[v].max(last);
            }
            if node.kind == ViewNodeKind::SidePacket {
                if let Some(min) = view
                    .edges
                    .iter()
                    .filter(|e| e.from == v)
                    .map(|e| layer[e.to])
                    .min()
                {
                    layer[v] = min.saturating_sub(1);
                }
            }
        }

        // Chains of dummy vertices for edges spanning several layers.
        let mut vlayer: Vec<usize> = layer.clone();
        let mut vwidth: Vec<f64> = view.nodes.iter().map(|n| box_size(n).0).collect();
        let mut vcluster: Vec<Vec<String>> = view.nodes.iter().map(|n| n.cluster.clone()).collect();
        // For each edge: the vertex chain from source to target.
        let mut chains: Vec<Vec<usize>> = Vec::new();
        for e in &view.edges {
            let mut chain = vec![e.from];
            if !e.back_edge && layer[e.to] > layer[e.from] + 1 {
                for l in layer[e.from] + 1..layer[e.to] {
                    vlayer.push(l);
                    vwidth.push(DUMMY_W);
                    vcluster.push(Vec::new());
                    chain.push(vlayer.len() - 1);
                }
            }
            chain.push(e.to);
            chains.push(chain);
        }
        let nv = vlayer.len();
        let layers_n = vlayer.iter().copied().max().map_or(0, |m| m + 1);
        let mut rows: Vec<Vec<usize>> = vec![Vec::new(); layers_n];
        for v in 0..nv {
            rows[vlayer[v]].push(v);
        }
        let mut up: Vec<Vec<usize>> = vec![Vec::new(); nv];
        let mut down: Vec<Vec<usize>> = vec![Vec::new(); nv];
        for (chain, e) in chains.iter().zip(&view.edges) {
            if e.back_edge {
                continue;
            }
            for w in chain.windows(2) {
                if vlayer[w[1]] == vlayer[w[0]] + 1 {
                    down[w[0]].push(w[1]);
                    up[w[1]].push(w[0]);
                }
            }
        }

        // Ordering within layers: barycenter sweeps, keeping each cluster's members together.
        let mut pos = vec![0.0f64; nv];
        let set_pos = |rows: &Vec<Vec<usize>>, pos: &mut Vec<f64>| {
            for row in rows {
                for (i, &v) in row.iter().enumerate() {
                    pos[v] = i as f64;
                }
            }
        };
        set_pos(&rows, &mut pos);
        for sweep in 0..8 {
            let downward = sweep % 2 == 0;
            let order: Vec<usize> = if downward {
                (1..layers_n).collect()
            } else {
                (0..layers_n.saturating_sub(1)).rev().collect()
            };
            for l in order {
                let neighbours = if downward { &up } else { &down };
                let bary: HashMap<usize, f64> = rows[l]
                    .iter()
                    .map(|&v| {
                        let ns = &neighbours[v];
                        let b = if ns.is_empty() {
                            pos[v]
                        } else {
                            ns.iter().map(|&u| pos[u]).sum::<f64>() / ns.len() as f64
                        };
                        (v, b)
                    })
                    .collect();
                let mut cluster_bary: HashMap<&Vec<String>, (f64, usize)> = HashMap::new();
                for &v in &rows[l] {
                    let entry = cluster_bary.entry(&vcluster[v]).or_insert((0.0, 0));
                    entry.0 += bary[&v];
                    entry.1 += 1;
                }
                let key = |v: usize| {
                    let c = &vcluster[v];
                    let group = if c.is_empty() {
                        bary[&v]
                    } else {
                        let (s, k) = cluster_bary[c];
                        s / k as f64
                    };
                    (group, bary[&v])
                };
                let mut row = rows[l].clone();
                row.sort_by(|&a, &b| {
                    key(a)
                        .partial_cmp(&key(b))
                        .unwrap_or(std::cmp::Ordering::Equal)
                });
                rows[l] = row;
                set_pos(&rows, &mut pos);
            }
        }

        // Coordinates: pack each layer, then pull vertices toward their neighbours.
        let mut x = vec![0.0f64; nv];
        for row in &rows {
            let mut cursor = 0.0;
            for &v in row {
                x[v] = cursor + vwidth[v] / 2.0;
                cursor += vwidth[v] + NODE_GAP;
            }
        }
        for sweep in 0..12 {
            let downward = sweep % 2 == 0;
            for row in &rows {
                let mut want: Vec<f64> = row
                    .iter()
                    .map(|&v| {
                        let ns: Vec<usize> = if downward {
                            up[v].clone()
                        } else {
                            up[v].iter().chain(&down[v]).copied().collect()
                        };
                        if ns.is_empty() {
                            x[v]
                        } else {
                            ns.iter().map(|&u| x[u]).sum::<f64>() / ns.len() as f64
                        }
                    })
                    .collect();
                // Keep the order and the gaps: push right, then pull back left, then average.
                let gap = |a: usize, b: usize| (vwidth[row[a]] + vwidth[row[b]]) / 2.0 + NODE_GAP;
                let mut right = want.clone();
                for i in 1..row.len() {
                    right[i] = right[i].max(right[i - 1] + gap(i - 1, i));
                }
                let mut left = want.clone();
                for i in (0..row.len().saturating_sub(1)).rev() {
                    left[i] = left[i].min(left[i + 1] - gap(i, i + 1));
                }
                for i in 0..row.len() {
                    want[i] = (right[i] + left[i]) / 2.0;
                }
                for i in 1..row.len() {
                    want[i] = want[i].max(want[i - 1] + gap(i - 1, i));
                }
                for (i, &v) in row.iter().enumerate() {
                    x[v] = want[i];
                }
            }
        }
        let min_x = (0..nv)
            .map(|v| x[v] - vwidth[v] / 2.0)
            .fold(f64::INFINITY, f64::min);
        let shift = if min_x.is_finite() {
            MARGIN - min_x
        } else {
            MARGIN
        };
        for xv in &mut x {
            *xv += shift;
        }
        // Room above each layer for the cluster labels.
        let layer_top = |l: usize| MARGIN + 14.0 + l as f64 * (NODE_H + LAYER_GAP);
        let boxes: Vec<(f64, f64, f64, f64)> = view
            .nodes
            .iter()
            .enumerate()
            .map(|(v, node)| {
                let (w, h) = box_size(node);
                (x[v], layer_top(vlayer[v]) + (NODE_H - h) / 2.0, w, h)
            })
            .collect();
        let mut width = (0..nv).map(|v| x[v] + vwidth[v] / 2.0).fold(0.0, f64::max) + MARGIN;
        let height = layer_top(layers_n.max(1)) - LAYER_GAP + MARGIN;
        // Where each edge leaves its source and enters its target: spread along the box
        // edge, ordered by the other end's x, so that parallel arrows and labels stay apart.
        let next_x = |k: usize, outgoing: bool| -> f64 {
            let chain = &chains[k];
            let v = if outgoing {
                chain[1]
            } else {
                chain[chain.len() - 2]
            };
            x[v]
        };
        let mut attach_out = vec![0.0f64; view.edges.len()];
        let mut attach_in = vec![0.0f64; view.edges.len()];
        for (b, &(cx, _, bw, _)) in boxes.iter().enumerate() {
            for outgoing in [true, false] {
                let mut ks: Vec<usize> = (0..view.edges.len())
                    .filter(|&k| {
                        let e = &view.edges[k];
                        !e.back_edge && if outgoing { e.from == b } else { e.to == b }
                    })
                    .collect();
                ks.sort_by(|&a, &c| {
                    next_x(a, outgoing)
                        .partial_cmp(&next_x(c, outgoing))
                        .unwrap_or(std::cmp::Ordering::Equal)
                });
                let n = ks.len() as f64;
                let step = (bw * 0.8 / n.max(1.0)).min(60.0);
                for (i, &k) in ks.iter().enumerate() {
                    let ax = cx + (i as f64 - (n - 1.0) / 2.0) * step;
                    if outgoing {
                        attach_out[k] = ax;
                    } else {
                        attach_in[k] = ax;
                    }
                }
            }
        }
        let mut routes = Vec::new();
        let mut back_lane = width;
        for (k, (chain, e)) in chains.iter().zip(&view.edges).enumerate() {
            let (sx, sy, _, sh) = boxes[e.from];
            let (tx, ty, _, _) = boxes[e.to];
            if e.back_edge {
                // Around the right-hand side: out of the source's bottom, up, into the
                // target's top.
                back_lane += 18.0;
                routes.push(vec![
                    (sx, sy + sh),
                    (sx, sy + sh + 16.0),
                    (back_lane, sy + sh + 16.0),
                    (back_lane, ty - 16.0),
                    (tx, ty - 16.0),
                    (tx, ty),
                ]);
                continue;
            }
            let mut points = vec![(attach_out[k], sy + sh)];
            for &d in &chain[1..chain.len() - 1] {
                let top = layer_top(vlayer[d]);
                points.push((x[d], top));
                points.push((x[d], top + NODE_H));
            }
            points.push((attach_in[k], ty));
            routes.push(points);
        }
        width = width.max(back_lane + MARGIN);
        Layout {
            boxes,
            routes,
            width,
            height,
        }
    }
}

mod svg {
    //! Writing a laid-out view as SVG.

    use std::fmt::Write as _;

    use super::{xml_escape, GraphView, Layout, ViewNodeKind};

    /// A smooth path through `points`: vertical cubic segments between successive points.
    fn path(points: &[(f64, f64)], back_edge: bool) -> String {
        let mut d = String::new();
        let Some(&(x0, y0)) = points.first() else {
            return d;
        };
        let _ = write!(d, "M{x0:.1},{y0:.1}");
        if back_edge {
            for &(x, y) in &points[1..] {
                let _ = write!(d, " L{x:.1},{y:.1}");
            }
            return d;
        }
        for w in points.windows(2) {
            let ((ax, ay), (bx, by)) = (w[0], w[1]);
            let my = (ay + by) / 2.0;
            let _ = write!(d, " C{ax:.1},{my:.1} {bx:.1},{my:.1} {bx:.1},{by:.1}");
        }
        d
    }

    pub(super) fn draw(view: &GraphView, layout: &Layout) -> String {
        let mut out = String::new();
        let (w, h) = (layout.width.ceil(), layout.height.ceil());
        let _ = writeln!(
            out,
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="12">
<title>{}</title>
<defs>
<marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker>
</defs>
<rect x="0" y="0" width="{w}" height="{h}" fill="#ffffff"/>"##,
            xml_escape(&view.title)
        );

        // Clusters: the bounding box of their members, outermost first.
        let mut clusters: Vec<Vec<String>> = Vec::new();
        for n in &view.nodes {
            for depth in 1..=n.cluster.len() {
                let c = n.cluster[..depth].to_vec();
                if !clusters.contains(&c) {
                    clusters.push(c);
                }
            }
        }
        clusters.sort_by_key(|c| c.len());
        for c in &clusters {
            let members: Vec<usize> = (0..view.nodes.len())
                .filter(|&i| view.nodes[i].cluster.starts_with(c))
                .collect();
            let pad = 12.0 - 4.0 * (c.len() as f64 - 1.0).min(2.0);
            let (mut x0, mut y0, mut x1, mut y1) = (
                f64::INFINITY,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::NEG_INFINITY,
            );
            for &i in &members {
                let (cx, top, bw, bh) = layout.boxes[i];
                x0 = x0.min(cx - bw / 2.0);
                x1 = x1.max(cx + bw / 2.0);
                y0 = y0.min(top);
                y1 = y1.max(top + bh);
            }
            let name = c.last().cloned().unwrap_or_default();
            let label = name.rsplit("__").next().unwrap_or(&name).to_string();
            let _ = writeln!(
                out,
                r##"<g class="cluster" id="{}"><title>subgraph node {}</title><rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" rx="8" fill="#e8eef9" fill-opacity="0.6" stroke="#9aaed6"/><text x="{:.1}" y="{:.1}" fill="#4a5f8c" font-size="11">{}</text></g>"##,
                xml_escape(&format!("cluster-{name}")),
                xml_escape(&name),
                x0 - pad,
                y0 - pad - 10.0,
                x1 - x0 + 2.0 * pad,
                y1 - y0 + 2.0 * pad + 10.0,
                x0 - pad + 6.0,
                y0 - pad + 1.0,
                xml_escape(&label)
            );
        }

        // Edges under the boxes.
        let mut placed: Vec<(f64, f64, f64, f64)> = Vec::new();
        for (e, route) in view.edges.iter().zip(&layout.routes) {
            let dash = if e.back_edge {
                r#" stroke-dasharray="6,4""#
            } else if e.side {
                r#" stroke-dasharray="2,3""#
            } else {
                ""
            };
            let color = if e.side { "#8a6d3b" } else { "#555" };
            let _ = write!(
                out,
                r#"<g class="edge"><title>{} ({}) {} {} -&gt; {} {}</title><path d="{}" fill="none" stroke="{color}" stroke-width="1.3"{dash} marker-end="url(#arrow)"/>"#,
                xml_escape(&e.name),
                xml_escape(&e.packet_type),
                xml_escape(&view.nodes[e.from].id),
                xml_escape(&e.ports.0),
                xml_escape(&view.nodes[e.to].id),
                xml_escape(&e.ports.1),
                path(route, e.back_edge)
            );
            // The label beside the first segment, on the side the arrow bends away from.
            if let (Some(&(ax, ay)), Some(&(bx, by))) = (route.first(), route.get(1)) {
                let label_w =
                    (e.name.chars().count() + e.packet_type.chars().count() + 2) as f64 * 6.0;
                let (lx, mut ly, anchor) = if e.back_edge {
                    (route[2].0 + 4.0, (route[2].1 + route[3].1) / 2.0, "start")
                } else if bx < ax - 4.0 && (ax + bx) / 2.0 - 5.0 - label_w > 2.0 {
                    ((ax + bx) / 2.0 - 5.0, (ay + by) / 2.0 + 4.0, "end")
                } else {
                    ((ax + bx) / 2.0 + 5.0, (ay + by) / 2.0 + 4.0, "start")
                };
                // Move the label up or down until it overlaps no earlier label.
                let w = label_w;
                let x0 = if anchor == "end" { lx - w } else { lx };
                for dy in [0.0, -12.0, 12.0, -24.0, 24.0, -36.0, 36.0] {
                    let r = (x0, ly + dy - 10.0, x0 + w, ly + dy + 2.0);
                    let free = placed.iter().all(|p: &(f64, f64, f64, f64)| {
                        r.2 < p.0 || r.0 > p.2 || r.3 < p.1 || r.1 > p.3
                    });
                    if free {
                        ly += dy;
                        placed.push(r);
                        break;
                    }
                }
                let _ = write!(
                    out,
                    r##"<text x="{lx:.1}" y="{ly:.1}" text-anchor="{anchor}" font-size="10" fill="#333"><tspan>{}</tspan><tspan fill="#2a6f97">: {}</tspan></text>"##,
                    xml_escape(&e.name),
                    xml_escape(&e.packet_type)
                );
            }
            out.push_str("</g>\n");
        }

        // Boxes.
        for (n, &(cx, top, bw, bh)) in view.nodes.iter().zip(&layout.boxes) {
            let x = cx - bw / 2.0;
            let tooltip = match n.kind {
                ViewNodeKind::Node => format!(
                    "{} ({}) at {}{}",
                    n.id,
                    n.calculator,
                    n.location,
                    n.placement().map(|p| format!(", {p}")).unwrap_or_default()
                ),
                ViewNodeKind::GraphInput => format!("graph input stream {}", n.label),
                ViewNodeKind::GraphOutput => format!("graph output stream {}", n.label),
                ViewNodeKind::SidePacket => format!("side packet {}", n.label),
            };
            let _ = write!(
                out,
                r#"<g class="node" id="{}"><title>{}</title>"#,
                xml_escape(&format!("node-{}", n.id)),
                xml_escape(&tooltip)
            );
            match n.kind {
                ViewNodeKind::Node => {
                    let _ = write!(
                        out,
                        r##"<rect x="{x:.1}" y="{top:.1}" width="{bw:.1}" height="{bh:.1}" rx="6" fill="#fdfdfd" stroke="#333" stroke-width="1.2"/><text x="{cx:.1}" y="{:.1}" text-anchor="middle" font-weight="bold">{}</text><text x="{cx:.1}" y="{:.1}" text-anchor="middle" fill="#666" font-size="11">{}</text>"##,
                        top + 16.0,
                        xml_escape(&n.label),
                        top + 31.0,
                        xml_escape(&n.calculator)
                    );
                }
                ViewNodeKind::GraphInput | ViewNodeKind::GraphOutput => {
                    let fill = if n.kind == ViewNodeKind::GraphInput {
                        "#e3f4e1"
                    } else {
                        "#fbe9e0"
                    };
                    let _ = write!(
                        out,
                        r##"<rect x="{x:.1}" y="{top:.1}" width="{bw:.1}" height="{bh:.1}" rx="13" fill="{fill}" stroke="#777"/><text x="{cx:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                        top + 17.0,
                        xml_escape(&n.label)
                    );
                }
                ViewNodeKind::SidePacket => {
                    let _ = write!(
                        out,
                        r##"<ellipse cx="{cx:.1}" cy="{:.1}" rx="{:.1}" ry="{:.1}" fill="#fff8e6" stroke="#8a6d3b" stroke-dasharray="3,2"/><text x="{cx:.1}" y="{:.1}" text-anchor="middle" fill="#6b5428">{}</text>"##,
                        top + bh / 2.0,
                        bw / 2.0,
                        bh / 2.0,
                        top + 17.0,
                        xml_escape(&n.label)
                    );
                }
            }
            out.push_str("</g>\n");
        }
        out.push_str("</svg>\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clusters_from_names() {
        assert_eq!(cluster_of("plain"), (vec![], "plain".to_string()));
        assert_eq!(
            cluster_of("a__b__c"),
            (vec!["a".to_string(), "a__b".to_string()], "c".to_string())
        );
    }

    #[test]
    fn escaping() {
        assert_eq!(xml_escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&apos;");
        assert_eq!(dot_quote("x\"y\n"), "\"x\\\"y\\n\"");
    }

    #[test]
    fn back_edges_and_side_packets_are_drawn() {
        let spec = mediagraph_framework::config::load_str(
            r#"
input_stream: [in]
output_stream: [out]
node:
  - calculator: PassThroughCalculator
    name: a
    input_stream: [in]
    output_stream: [mid]
  - calculator: PassThroughCalculator
    name: b
    input_stream: [mid]
    output_stream: [out]
"#,
            None,
        )
        .unwrap();
        let view = GraphView::new(&spec);
        assert_eq!(view.nodes.len(), 4); // a, b, in, out
        let svg = view.to_svg();
        assert!(svg.contains("id=\"node-a\"") && svg.contains("id=\"node-b\""));
        assert!(view.to_dot().contains("\"a\" -> \"b\" [label=\"mid: "));
    }

    #[test]
    fn executors_are_shown() {
        let spec = mediagraph_framework::config::load_str(
            "input_stream: [in]\nexecutor: [{name: slow}]\nnode:\n  - {calculator: PassThroughCalculator, name: a, input_stream: [in], output_stream: [mid], executor: slow}\n  - {calculator: PassThroughCalculator, name: b, input_stream: [mid], output_stream: [out]}\n",
            None,
        )
        .unwrap();
        let view = GraphView::new(&spec);
        assert!(view
            .to_dot()
            .contains("label=\"a\\nPassThroughCalculator\\non executor slow\""));
        assert!(view
            .to_dot()
            .contains("label=\"b\\nPassThroughCalculator\""));
        let html = view.to_html(None);
        assert!(html.contains("<td>slow</td>") && html.contains("<td>default</td>"));
        assert!(view.to_svg().contains("on executor slow"));
    }

    #[test]
    fn parallel_calls_are_shown() {
        let spec = mediagraph_framework::config::load_str(
            "input_stream: [in]\nexecutor: [{name: slow}]\nnode:\n  - {calculator: PassThroughCalculator, name: a, input_stream: [in], output_stream: [mid], executor: slow, max_in_flight: 2}\n  - {calculator: PassThroughCalculator, name: b, input_stream: [mid], output_stream: [out], max_in_flight: 3}\n",
            None,
        )
        .unwrap();
        let view = GraphView::new(&spec);
        let dot = view.to_dot();
        assert!(
            dot.contains("label=\"a\\nPassThroughCalculator\\non executor slow, 2 calls at once\""),
            "{dot}"
        );
        assert!(
            dot.contains("label=\"b\\nPassThroughCalculator\\n3 calls at once\""),
            "{dot}"
        );
        let html = view.to_html(None);
        assert!(
            html.contains("<td>default (3 calls at once)</td>"),
            "{html}"
        );
        assert!(view.to_svg().contains("3 calls at once"));
    }
}
