//! A JSON schema (draft 2020-12) of graph config files, so that editors can autocomplete and
//! check them (`mediagraph schema > mediagraph.schema.json`; in VS Code with the YAML
//! extension, add `# yaml-language-server: $schema=mediagraph.schema.json` at the top of a
//! graph file).
//!
//! The schema is generated from the config model the loader itself uses
//! ([`GraphConfig`]), so it cannot drift from it:
//! unknown keys are refused (`additionalProperties: false`), fields that take one string or a
//! list accept both, and each field carries its documentation. `calculator:` suggests every
//! registered calculator but also accepts other names, since subgraph types are defined in
//! other files. Node `options` are free-form objects: their fields belong to each calculator
//! and are checked when the graph loads.
//!
//! ```
//! let schema = mediagraph::schema::graph_config_schema();
//! assert_eq!(schema["title"], "GraphConfig");
//! let node = &schema["$defs"]["NodeConfig"];
//! assert_eq!(node["additionalProperties"], false);
//! let names = node["properties"]["calculator"]["anyOf"][0]["enum"].as_array().unwrap();
//! assert!(names.iter().any(|n| n == "PassThroughCalculator"));
//! ```

use mediagraph_framework::config::GraphConfig;
use serde_json::{json, Value};

/// Keys the loader accepts as aliases of another key, per schema definition:
/// (definition, alias, key it stands for).
const ALIASES: [(&str, &str, &str); 4] = [
    ("", "nodes", "node"),
    ("", "trace", "profiler_config"),
    ("NodeConfig", "external_input", "input_side_packet"),
    ("ProfilerConfig", "trace_log_path", "trace_path"),
];

/// The JSON schema of a graph config file, with the registered calculator names as
/// suggestions for `calculator:`.
pub fn graph_config_schema() -> Value {
    let mut schema = schemars::schema_for!(GraphConfig).to_value();
    if let Some(obj) = schema.as_object_mut() {
        obj.insert(
            "$id".into(),
            json!("https://mediagraph.invalid/graph-config.schema.json"),
        );
        obj.insert(
            "description".into(),
            json!("A mediagraph graph config (YAML): nodes connected by named streams and side packets, mirroring MediaPipe's CalculatorGraphConfig."),
        );
    }
    for (def, alias, key) in ALIASES {
        let target = if def.is_empty() {
            Some(&mut schema)
        } else {
            schema.get_mut("$defs").and_then(|d| d.get_mut(def))
        };
        if let Some(props) = target
            .and_then(|t| t.get_mut("properties"))
            .and_then(Value::as_object_mut)
        {
            if let Some(original) = props.get(key).cloned() {
                let mut aliased = original;
                if let Some(o) = aliased.as_object_mut() {
                    o.insert("description".into(), json!(format!("Alias of `{key}`.")));
                }
                props.insert(alias.to_string(), aliased);
            }
        }
    }
    let names: Vec<String> = mediagraph_framework::calculator::registered()
        .iter()
        .map(|r| r.name.to_string())
        .collect();
    if let Some(calc) = schema.pointer_mut("/$defs/NodeConfig/properties/calculator") {
        let description = calc.get("description").cloned().unwrap_or(Value::Null);
        *calc = json!({
            "description": description,
            "anyOf": [
                {"enum": names},
                {"type": "string"}
            ]
        });
    }
    if let Some(opts) = schema.pointer_mut("/$defs/NodeConfig/properties/options") {
        *opts = json!({
            "description": "The calculator's options: an object whose fields the calculator defines (checked when the graph loads; see `mediagraph calculators`).",
            "type": ["object", "null"]
        });
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_are_described() {
        let s = graph_config_schema();
        assert!(s["properties"]["nodes"].is_object());
        assert!(s["properties"]["trace"].is_object());
        assert!(s["$defs"]["NodeConfig"]["properties"]["external_input"].is_object());
        assert!(s["$defs"]["ProfilerConfig"]["properties"]["trace_log_path"].is_object());
        assert_eq!(s["additionalProperties"], false);
    }
}
