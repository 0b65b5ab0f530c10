//! Looking inside: what calculators are registered and what they declare, and a run's per-node
//! statistics as a table. `mediagraph calculators` and `mediagraph run --stats` print these.
//!
//! ```
//! let all = mediagraph::inspect::calculators();
//! let gate = all.iter().find(|c| c.name == "GateCalculator").unwrap();
//! assert!(gate.ports.iter().any(|p| p.tag == "ALLOW" && p.packet_type == "bool"));
//! let pass = all.iter().find(|c| c.name == "PassThroughCalculator").unwrap();
//! assert_eq!(pass.options_type, "NoOptions");
//! ```

use std::fmt::Write as _;
use std::time::Duration;

use mediagraph_framework::contract::PortKind;
use mediagraph_framework::NodeStats;
use serde::Serialize;

/// One registered calculator, as `mediagraph calculators` lists it.
#[derive(Clone, Debug, Serialize)]
pub struct CalculatorInfo {
    /// The name graph configs use in `calculator:`.
    pub name: String,
    /// The Rust type that implements it.
    pub rust_type: String,
    /// The Rust type of its `options` (`NoOptions` when it takes none), without module path.
    pub options_type: String,
    /// The same, with its module path.
    pub options_rust_type: String,
    /// The typed ports it declares with default options.
    pub ports: Vec<PortInfo>,
    /// The timestamp offset it declares (output timestamp minus input timestamp), if any.
    pub timestamp_offset: Option<i64>,
    /// The input stream handler it asks for, if any.
    pub input_stream_handler: Option<String>,
    /// Its `process` calls depend only on their own inputs: a node may set `max_in_flight`.
    pub independent_calls: bool,
    /// Set when the calculator's contract panicked while being described (with default
    /// options and no ports connected): its ports are then unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub describe_error: Option<String>,
}

/// One declared port of a calculator.
#[derive(Clone, Debug, Serialize)]
pub struct PortInfo {
    /// `input_stream`, `output_stream`, `input_side_packet` or `output_side_packet`.
    pub kind: &'static str,
    /// The tag (`""` for an untagged port).
    pub tag: String,
    /// The packet type it carries (`Any` for any).
    pub packet_type: String,
    /// May be left unconnected.
    pub optional: bool,
    /// May be connected at several indexes (`TAG:0`, `TAG:1`, ...).
    pub multiple: bool,
}

/// Strips module paths from a Rust type name (`a::b::C<d::E>` gives `C<E>`).
pub fn short_type_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut segment = String::new();
    for ch in name.chars() {
        if ch.is_alphanumeric() || ch == '_' || ch == ':' {
            segment.push(ch);
        } else {
            out.push_str(segment.rsplit("::").next().unwrap_or_default());
            segment.clear();
            out.push(ch);
        }
    }
    out.push_str(segment.rsplit("::").next().unwrap_or_default());
    out
}

/// Every registered calculator (built in, bundled, or registered at run time), sorted by name.
///
/// A calculator whose contract panics when described is listed without ports (see
/// [`CalculatorInfo::describe_error`]); the panic is caught but the panic hook still runs.
pub fn calculators() -> Vec<CalculatorInfo> {
    mediagraph_framework::calculator::registered()
        .iter()
        .map(|reg| {
            let described =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reg.describe()));
            let (contract, describe_error) = match described {
                Ok(c) => (c, None),
                Err(panic) => {
                    let why = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".to_string());
                    (
                        mediagraph_framework::Contract::describing(&reg.name),
                        Some(format!("its contract panicked when described: {why}")),
                    )
                }
            };
            CalculatorInfo {
                name: reg.name.to_string(),
                rust_type: (reg.type_name)().to_string(),
                options_type: short_type_name((reg.options_type)()),
                options_rust_type: (reg.options_type)().to_string(),
                ports: contract
                    .described_ports()
                    .iter()
                    .map(|p| PortInfo {
                        kind: p.kind.field(),
                        tag: p.tag.to_string(),
                        packet_type: p.packet_type.to_string(),
                        optional: p.optional,
                        multiple: p.multiple,
                    })
                    .collect(),
                timestamp_offset: contract.timestamp_offset().map(|d| d.value()),
                input_stream_handler: contract
                    .input_stream_handler()
                    .map(|h| h.input_stream_handler.clone()),
                independent_calls: contract.independent_calls(),
                describe_error,
            }
        })
        .collect()
}

/// The short label of a port kind used in listings (`in`, `out`, `side in`, `side out`).
pub fn kind_label(kind: &str) -> &'static str {
    match kind {
        k if k == PortKind::Input.field() => "in",
        k if k == PortKind::Output.field() => "out",
        k if k == PortKind::SideInput.field() => "side in",
        _ => "side out",
    }
}

/// The calculators as text: one unindented line per calculator (name, options type, Rust
/// type), then one indented line per declared port.
pub fn calculators_text(all: &[CalculatorInfo]) -> String {
    let mut out = String::new();
    for c in all {
        let _ = writeln!(
            out,
            "{}  options: {}  ({})",
            c.name, c.options_type, c.rust_type
        );
        for p in &c.ports {
            let tag = if p.tag.is_empty() { "\"\"" } else { &p.tag };
            let mut flags = Vec::new();
            if p.optional {
                flags.push("optional");
            }
            if p.multiple {
                flags.push("multiple");
            }
            let _ = writeln!(
                out,
                "    {:8} {:20} {}{}",
                kind_label(p.kind),
                tag,
                p.packet_type,
                if flags.is_empty() {
                    String::new()
                } else {
                    format!("  [{}]", flags.join(", "))
                }
            );
        }
        if let Some(offset) = c.timestamp_offset {
            let _ = writeln!(out, "    timestamp offset {offset}");
        }
        if let Some(h) = &c.input_stream_handler {
            let _ = writeln!(out, "    input stream handler {h}");
        }
        if c.independent_calls {
            let _ = writeln!(out, "    independent calls (max_in_flight may be above 1)");
        }
        if let Some(e) = &c.describe_error {
            let _ = writeln!(out, "    ports unknown: {e}");
        } else if c.ports.is_empty() {
            let _ = writeln!(
                out,
                "    ports: as connected in the config (no typed ports declared)"
            );
        }
    }
    out
}

/// Formats a duration for a table: µs below a millisecond, ms below a second, else s.
pub fn format_duration(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.1}µs")
    } else if us < 1e6 {
        format!("{:.2}ms", us / 1e3)
    } else {
        format!("{:.2}s", us / 1e6)
    }
}

/// Per-node statistics as an aligned text table: calls, packets in/out, `process` time p50
/// and p99 and total, explicit drops, queue growths (throttling deadlocks resolved by growing
/// a queue) and, last, the largest input queue seen (length and stream).
///
/// ```
/// use mediagraph::{Graph, inspect};
///
/// let mut graph = Graph::from_yaml_file(concat!(env!("CARGO_MANIFEST_DIR"), "/graphs/counting_demo.yaml"))?;
/// graph.run(Default::default())?;
/// let table = inspect::stats_table(&graph.stats());
/// assert!(table.starts_with("node"));
/// assert!(table.lines().any(|l| l.starts_with("source ") && l.contains("CountingSourceCalculator")));
/// # Ok::<(), mediagraph::Error>(())
/// ```
pub fn stats_table(stats: &[NodeStats]) -> String {
    let header = [
        "node",
        "calculator",
        "calls",
        "in",
        "out",
        "p50",
        "p99",
        "total",
        "drops",
        "growths",
        "queue max",
    ];
    let rows: Vec<Vec<String>> = stats
        .iter()
        .map(|s| {
            let high = s
                .queue_high_water
                .iter()
                .max_by_key(|(_, n)| *n)
                .map(|(stream, n)| format!("{n} ({stream})"))
                .unwrap_or_else(|| "-".to_string());
            vec![
                s.name.clone(),
                s.calculator.clone(),
                s.invocations.to_string(),
                s.packets_in.to_string(),
                s.packets_out.to_string(),
                format_duration(s.process_p50),
                format_duration(s.process_p99),
                format_duration(s.process_time),
                s.dropped.to_string(),
                s.queue_growths.to_string(),
                high,
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            if i > 0 {
                text.push_str("  ");
            }
            // Text columns left-aligned, numbers right-aligned.
            if i < 2 || i == 10 {
                text.push_str(cell);
                text.extend(std::iter::repeat_n(' ', pad));
            } else {
                text.extend(std::iter::repeat_n(' ', pad));
                text.push_str(cell);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in &rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names() {
        assert_eq!(short_type_name("a::b::C"), "C");
        assert_eq!(short_type_name("alloc::vec::Vec<x::Y>"), "Vec<Y>");
        assert_eq!(short_type_name("(a::B, c::D)"), "(B, D)");
        assert_eq!(short_type_name("Plain"), "Plain");
    }

    #[test]
    fn durations() {
        assert_eq!(format_duration(Duration::from_nanos(1500)), "1.5µs");
        assert_eq!(format_duration(Duration::from_micros(2500)), "2.50ms");
        assert_eq!(format_duration(Duration::from_millis(3200)), "3.20s");
    }

    #[test]
    fn every_calculator_has_a_name_and_a_type() {
        let all = calculators();
        assert!(all.len() > 5);
        assert!(all.windows(2).all(|w| w[0].name <= w[1].name));
        let text = calculators_text(&all);
        assert!(text.contains("PassThroughCalculator  options: NoOptions"));
    }
}
