//! A validated, fully expanded graph: what the runtime executes. Built from a YAML config by
//! [`crate::config`]; every name is resolved to an index and every port has its final type.

use std::sync::Arc;

use crate::calculator::{CalculatorRegistration, SharedOptions};
use crate::contract::{Contract, HandlerConfig};
use crate::error::Location;
use crate::types::PacketType;

/// Index of a node in [`GraphSpec::nodes`] (topologically sorted: this is the node id the
/// scheduler's priorities use).
pub type NodeId = usize;
/// Index of a stream in [`GraphSpec::streams`].
pub type StreamId = usize;
/// Index of a side packet in [`GraphSpec::side_packets`].
pub type SidePacketId = usize;

/// Where a stream's packets come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Producer {
    /// Output port `port` of node `node`.
    Node {
        /// The producing node.
        node: NodeId,
        /// Its output port id.
        port: usize,
    },
    /// A graph input stream, fed by the application.
    GraphInput,
}

/// One input port reading a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Consumer {
    /// The consuming node.
    pub node: NodeId,
    /// Its input port id.
    pub port: usize,
}

/// A named stream: one producer, any number of consumers.
#[derive(Clone, Debug)]
pub struct StreamSpec {
    /// The stream name.
    pub name: String,
    /// Who produces it.
    pub producer: Producer,
    /// Who reads it.
    pub consumers: Vec<Consumer>,
    /// The resolved type (`Any` when both ends take any type).
    pub packet_type: PacketType,
}

/// Where a side packet comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SideProducer {
    /// Output side packet port `port` of node `node`.
    Node {
        /// The producing node.
        node: NodeId,
        /// Its output side packet port id.
        port: usize,
    },
    /// Given by the application at `start_run` (or at graph creation).
    External,
}

/// A named side packet.
#[derive(Clone, Debug)]
pub struct SidePacketSpec {
    /// The side packet name.
    pub name: String,
    /// Who provides it.
    pub producer: SideProducer,
    /// Nodes that read it (node, side input port id).
    pub consumers: Vec<Consumer>,
    /// The resolved type.
    pub packet_type: PacketType,
    /// True if every consumer port is optional (the run may start without it).
    pub optional: bool,
}

/// A node, with its contract filled in and every port resolved.
#[derive(Clone)]
pub struct NodeSpec {
    /// Canonical name (config name, or calculator name suffixed `_1`, `_2`, ... when repeated).
    pub name: String,
    /// The calculator's registered name.
    pub calculator: String,
    /// How to build it.
    pub registration: Arc<CalculatorRegistration>,
    /// The contract (ports, declared types, offset, handler preference).
    pub contract: Contract,
    /// The parsed options.
    pub options: SharedOptions,
    /// For each input port id, the stream it reads.
    pub input_streams: Vec<StreamId>,
    /// For each output port id, the stream it writes.
    pub output_streams: Vec<StreamId>,
    /// For each side input port id, the side packet it reads.
    pub side_inputs: Vec<SidePacketId>,
    /// For each side output port id, the side packet it writes.
    pub side_outputs: Vec<SidePacketId>,
    /// For each input port id, whether it is a declared back edge.
    pub back_edges: Vec<bool>,
    /// The resolved input stream handler (node config, else contract, else graph default,
    /// else `DefaultInputStreamHandler`).
    pub handler: HandlerConfig,
    /// Concurrent `process` calls allowed (config 0 means 1).
    pub max_in_flight: usize,
    /// Source layer (lower layers start first).
    pub source_layer: i32,
    /// Raises the queue limit of this node's inputs to at least this.
    pub buffer_size_hint: usize,
    /// Executor name, if not the default.
    pub executor: Option<String>,
    /// Where the node is written in the config (for messages).
    pub location: Location,
}

impl NodeSpec {
    /// A source node has no input streams and at least one output stream.
    pub fn is_source(&self) -> bool {
        self.input_streams.is_empty() && !self.output_streams.is_empty()
    }
}

/// A validated graph, ready to run.
#[derive(Clone)]
pub struct GraphSpec {
    /// Nodes in topological order (back edges excluded).
    pub nodes: Vec<NodeSpec>,
    /// Every stream.
    pub streams: Vec<StreamSpec>,
    /// Every side packet.
    pub side_packets: Vec<SidePacketSpec>,
    /// Graph input streams (ids into `streams`), as declared.
    pub input_streams: Vec<StreamId>,
    /// Graph output streams (ids into `streams`), as declared.
    pub output_streams: Vec<StreamId>,
    /// Worker threads of the default executor (0 = choose: the cores, at most one per node on
    /// it, at least 1).
    pub num_threads: usize,
    /// The default executor is an ApplicationThreadExecutor: it has no threads, and its
    /// tasks run on the application thread inside the Graph calls that wait (waiting for the
    /// run or for idle, a throttled `add_packet`, a poller's `next`).
    pub application_thread: bool,
    /// The graph's named executors, in declaration order: thread pools of their own for the
    /// nodes that name them (the others run on the default executor).
    pub executors: Vec<ExecutorSpec>,
    /// Queue limit per node input (`None` = unlimited; config 0 means 100, -1 unlimited).
    pub max_queue_size: Option<usize>,
    /// Fail instead of growing a queue when throttling would deadlock.
    pub report_deadlock: bool,
    /// Write a Chrome trace of every run to this file, if set.
    pub trace_path: Option<std::path::PathBuf>,
    /// The config file (for messages).
    pub source: Location,
}

/// A named executor: a thread pool of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutorSpec {
    /// The name nodes give in `executor:`.
    pub name: String,
    /// Worker threads (0 = choose: `min(cores, nodes on it)`).
    pub num_threads: usize,
    /// Stack size of its threads in bytes (`None`: Rust's default).
    pub stack_size: Option<usize>,
    /// Its threads are named `<prefix>-<i>` (default: the executor's name).
    pub thread_name_prefix: Option<String>,
}

impl GraphSpec {
    /// The executor index of every node: 0 for the default executor, `1 + i` for
    /// `executors[i]`.
    pub fn executor_indices(&self) -> Vec<usize> {
        self.nodes
            .iter()
            .map(|n| {
                n.executor.as_ref().map_or(0, |name| {
                    self.executors
                        .iter()
                        .position(|e| &e.name == name)
                        .map_or(0, |i| i + 1)
                })
            })
            .collect()
    }

    /// Worker threads each executor starts with (index as in
    /// [`GraphSpec::executor_indices`]): the configured counts, or for 0, the cores (at
    /// most one per call that can run on the executor at once: a node's `max_in_flight`; at
    /// least 1).
    pub fn executor_threads(&self) -> Vec<usize> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let indices = self.executor_indices();
        let nodes_on = |e: usize| {
            indices
                .iter()
                .zip(&self.nodes)
                .filter(|&(&i, _)| i == e)
                .map(|(_, node)| node.max_in_flight.max(1))
                .sum::<usize>()
        };
        std::iter::once(self.num_threads)
            .chain(self.executors.iter().map(|e| e.num_threads))
            .enumerate()
            .map(|(e, configured)| match configured {
                _ if e == 0 && self.application_thread => 0,
                0 => cores.min(nodes_on(e)).max(1),
                n => n,
            })
            .collect()
    }

    /// Nodes whose `max_in_flight` is above their executor's thread count (their calls
    /// cannot all overlap), as messages.
    pub fn parallel_call_notes(&self) -> Vec<String> {
        let threads = self.executor_threads();
        self.executor_indices()
            .into_iter()
            .zip(&self.nodes)
            .filter(|&(e, node)| node.max_in_flight > threads[e].max(1))
            .map(|(e, node)| {
                if e == 0 && self.application_thread {
                    return format!(
                        "node \"{}\": max_in_flight {} but the default executor runs on the application thread: one call at a time",
                        node.name, node.max_in_flight
                    );
                }
                format!(
                    "node \"{}\": max_in_flight {} but {} has {} thread{}: at most {} of its calls run at once",
                    node.name,
                    node.max_in_flight,
                    node.executor
                        .as_ref()
                        .map_or("the default executor".to_string(), |x| format!("executor \"{x}\"")),
                    threads[e],
                    if threads[e] == 1 { "" } else { "s" },
                    threads[e]
                )
            })
            .collect()
    }

    /// The stream called `name`.
    pub fn stream_id(&self, name: &str) -> Option<StreamId> {
        self.streams.iter().position(|s| s.name == name)
    }

    /// The side packet called `name`.
    pub fn side_packet_id(&self, name: &str) -> Option<SidePacketId> {
        self.side_packets.iter().position(|s| s.name == name)
    }

    /// The node called `name`.
    pub fn node_id(&self, name: &str) -> Option<NodeId> {
        self.nodes.iter().position(|n| n.name == name)
    }
}
