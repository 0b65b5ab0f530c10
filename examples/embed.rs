//! Embedding mediagraph in a Rust program: build a graph from a YAML string, feed a graph
//! input stream, read an output stream with a poller, print what came out and the per-node
//! statistics.
//!
//! `cargo run --example embed`

use mediagraph::{Graph, Packet, Result, Timestamp};

/// The graph: `in` passes through two PassThroughCalculator nodes to `out`.
const GRAPH: &str = r#"
input_stream: in
output_stream: out
node:
  - calculator: PassThroughCalculator
    name: first
    input_stream: in
    output_stream: middle
  - calculator: PassThroughCalculator
    name: second
    input_stream: middle
    output_stream: out
"#;

/// Runs the graph on `words` (one packet per word, 1000 µs apart) and returns the
/// `(timestamp, word)` pairs read from `out`.
pub fn run(words: &[&str]) -> Result<Vec<(i64, String)>> {
    let mut graph = Graph::from_yaml_str(GRAPH)?;
    let poller = graph.add_output_stream_poller("out")?;
    graph.start_run(Default::default())?;
    for (i, word) in (0i64..).zip(words) {
        let packet = Packet::new(word.to_string()).at(Timestamp::new(i * 1000));
        graph.add_packet("in", packet)?;
    }
    graph.close_input_stream("in")?;
    graph.wait_until_done()?;

    let mut out = Vec::new();
    while let Some(packet) = poller.next() {
        out.push((packet.timestamp().value(), packet.get::<String>()?.clone()));
    }
    Ok(out)
}

/// Runs the graph once more and returns its per-node statistics as a table (calls, packets,
/// `process` time percentiles, queue high-water marks).
pub fn stats() -> Result<String> {
    let mut graph = Graph::from_yaml_str(GRAPH)?;
    graph.start_run(Default::default())?;
    for i in 0..100 {
        graph.add_packet("in", Packet::new(i.to_string()).at(Timestamp::new(i)))?;
    }
    graph.finish()?;
    Ok(mediagraph::inspect::stats_table(&graph.stats()))
}

fn main() -> std::process::ExitCode {
    match run(&["hello", "from", "mediagraph"]) {
        Ok(results) => {
            for (ts, word) in results {
                println!("{ts} {word}");
            }
            if let Ok(stats) = stats() {
                print!("{stats}");
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
