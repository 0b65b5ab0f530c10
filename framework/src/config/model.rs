//! The serde model of a graph config, mirroring MediaPipe's `CalculatorGraphConfig`.
//!
//! Every struct rejects unknown fields, so a misspelt key is reported with its location
//! instead of being silently ignored.

use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::contract::HandlerConfig;

/// A whole graph config (or a subgraph config, when `type` is set).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GraphConfig {
    /// The nodes, in config order (`nodes:` is accepted too).
    #[serde(default, alias = "nodes", skip_serializing_if = "Vec::is_empty")]
    pub node: Vec<NodeConfig>,
    /// Graph input streams (`TAG:index:name`), fed by the application; in a subgraph, the
    /// interface matched against the subgraph node's `input_stream`.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(schema_with = "one_or_many_schema")]
    pub input_stream: Vec<String>,
    /// Graph output streams; in a subgraph, the interface matched against the node's
    /// `output_stream`.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(schema_with = "one_or_many_schema")]
    pub output_stream: Vec<String>,
    /// Side packets given by the application; in a subgraph, its side packet inputs.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(schema_with = "one_or_many_schema")]
    pub input_side_packet: Vec<String>,
    /// Side packets the graph makes available; in a subgraph, its side packet outputs.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(schema_with = "one_or_many_schema")]
    pub output_side_packet: Vec<String>,
    /// Worker threads of the default executor (0 = let the runtime choose).
    #[serde(default, skip_serializing_if = "is_zero_usize")]
    pub num_threads: usize,
    /// Queue limit per node input: 0 (or absent) means 100, -1 means unlimited.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub max_queue_size: i64,
    /// Fail instead of growing a queue when throttling would deadlock the graph.
    #[serde(default, skip_serializing_if = "is_false")]
    pub report_deadlock: bool,
    /// Default input stream handler of nodes that set none (and whose calculator sets none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_stream_handler: Option<HandlerSpec>,
    /// Named executors (thread pools of their own) that nodes select with `executor:`; an
    /// entry without a name sets the default executor's `num_threads`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub executor: Vec<ExecutorConfig>,
    /// Profiling and tracing (`trace:` is accepted too).
    #[serde(default, alias = "trace", skip_serializing_if = "Option::is_none")]
    pub profiler_config: Option<ProfilerConfig>,
    /// The name under which this config is a subgraph type (used by `calculator:`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub graph_type: Option<String>,
    /// Subgraph config files (relative to this file) whose `type`s nodes may use.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(schema_with = "one_or_many_schema")]
    pub subgraphs: Vec<String>,
    /// MediaPipe's name-lookup namespace; accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
}

/// One node of a graph config.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// A registered calculator name or a subgraph type.
    pub calculator: String,
    /// The node's name (default: the calculator name, suffixed when repeated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Input streams, `TAG:index:name` each.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(schema_with = "one_or_many_schema")]
    pub input_stream: Vec<String>,
    /// Output streams, `TAG:index:name` each.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(schema_with = "one_or_many_schema")]
    pub output_stream: Vec<String>,
    /// Input side packets, `TAG:index:name` each (`external_input:` is accepted too).
    #[serde(
        default,
        alias = "external_input",
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(schema_with = "one_or_many_schema")]
    pub input_side_packet: Vec<String>,
    /// Output side packets, `TAG:index:name` each.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(schema_with = "one_or_many_schema")]
    pub output_side_packet: Vec<String>,
    /// The calculator's options (any YAML value; absent = `null`).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub options: serde_json::Value,
    /// The node's input stream handler: a name, or `{input_stream_handler, options}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_stream_handler: Option<HandlerSpec>,
    /// Per-input settings; today only `back_edge`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input_stream_info: Vec<InputStreamInfo>,
    /// The executor that runs this node (declared in the graph's `executor:` list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<String>,
    /// Concurrent `process` calls allowed (0 means 1); above 1, on that many copies of a
    /// calculator that declares independent calls.
    #[serde(default, skip_serializing_if = "is_zero_usize")]
    pub max_in_flight: usize,
    /// Source layer: sources of lower layers run first.
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub source_layer: i32,
    /// Raises the queue limit of this node's inputs to at least this.
    #[serde(default, skip_serializing_if = "is_zero_usize")]
    pub buffer_size_hint: usize,
}

/// A node's `input_stream_info` entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InputStreamInfo {
    /// The input port: `TAG`, `TAG:i`, `:i` or `""`.
    pub tag_index: String,
    /// True if this input closes a loop (ignored by the topological sort).
    #[serde(default, skip_serializing_if = "is_false")]
    pub back_edge: bool,
}

/// A declared executor: a thread pool of its own (or, without a name, the settings of the
/// default executor).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecutorConfig {
    /// The name nodes use in `executor:`; empty: this entry configures the default executor.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The executor type: `ThreadPoolExecutor` (the default), or `ApplicationThreadExecutor`
    /// for the default executor (an entry without a name): its nodes run on the application
    /// thread while it waits in Graph calls.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub executor_type: Option<String>,
    /// The executor's options: `num_threads` (0 or -1: the cores, at most one per node on
    /// it), `stack_size` (bytes), `thread_name_prefix` (default: the name).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    #[schemars(schema_with = "executor_options_schema")]
    pub options: serde_json::Value,
}

/// Profiling and tracing settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfilerConfig {
    /// Write a Chrome trace of every run to this file (relative to the config file's
    /// directory; `trace_log_path:` is accepted too).
    #[serde(
        default,
        alias = "trace_log_path",
        skip_serializing_if = "Option::is_none"
    )]
    pub trace_path: Option<String>,
    /// Set to `false` to keep `trace_path` but not trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_enabled: Option<bool>,
}

/// A node's (or the graph's default) input stream handler: a bare name or a full config.
#[derive(Clone, Debug, PartialEq)]
pub enum HandlerSpec {
    /// Just the handler's name, e.g. `ImmediateInputStreamHandler`.
    Name(String),
    /// `{input_stream_handler: NAME, options: {...}}`.
    Config(HandlerConfig),
}

impl HandlerSpec {
    /// The handler config this stands for.
    pub fn to_config(&self) -> HandlerConfig {
        match self {
            HandlerSpec::Name(n) => HandlerConfig::named(n),
            HandlerSpec::Config(c) => c.clone(),
        }
    }
}

impl Serialize for HandlerSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            HandlerSpec::Name(n) => s.serialize_str(n),
            HandlerSpec::Config(c) => c.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for HandlerSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = HandlerSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a handler name or {input_stream_handler: NAME, options: {...}}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HandlerSpec, E> {
                Ok(HandlerSpec::Name(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<HandlerSpec, A::Error> {
                HandlerConfig::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(HandlerSpec::Config)
            }
        }
        d.deserialize_any(V)
    }
}

impl schemars::JsonSchema for HandlerSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "HandlerSpec".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "An input stream handler: a name, or {input_stream_handler: NAME, options: {...}}.",
            "oneOf": [
                {"type": "string"},
                {
                    "type": "object",
                    "properties": {
                        "input_stream_handler": {"type": "string"},
                        "options": true
                    },
                    "required": ["input_stream_handler"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

/// The schema of an executor's `options` (checked, with located errors, by the validator).
fn executor_options_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": ["object", "null"],
        "additionalProperties": false,
        "properties": {
            "num_threads": {
                "type": "integer", "minimum": -1,
                "description": "Worker threads (0 or -1: the cores, at most one per node on the executor)"
            },
            "stack_size": {
                "type": "integer", "minimum": 1, "maximum": 1073741824,
                "description": "Stack size of its threads, in bytes"
            },
            "thread_name_prefix": {
                "type": "string", "minLength": 1,
                "description": "Its threads are named <prefix>-<i> (default: the executor's name)"
            }
        }
    })
}

/// The schema of a [`one_or_many`] field: a string, a list of strings, or null.
fn one_or_many_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "anyOf": [
            {"type": "string"},
            {"type": "array", "items": {"type": "string"}},
            {"type": "null"}
        ]
    })
}

/// Deserializes a list of strings, also accepting a single string (and `null` as empty).
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string or a list of strings")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<String>, E> {
            Ok(vec![v.to_string()])
        }
        fn visit_unit<E: de::Error>(self) -> Result<Vec<String>, E> {
            Ok(Vec::new())
        }
        fn visit_none<E: de::Error>(self) -> Result<Vec<String>, E> {
            Ok(Vec::new())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut out = Vec::new();
            while let Some(s) = seq.next_element::<String>()? {
                out.push(s);
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}

fn is_zero_usize(v: &usize) -> bool {
    *v == 0
}

fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}

fn is_zero_i32(v: &i32) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}
