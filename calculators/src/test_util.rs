//! Helpers shared by the calculators' unit tests: build a graph, record what its output streams
//! carry, read values back.

use std::sync::{Arc, Mutex};

use mediagraph_framework::{Graph, Packet, Timestamp};

/// The packets one output stream carried, in order.
#[derive(Clone, Default)]
pub(crate) struct Recorded(Arc<Mutex<Vec<Packet>>>);

impl Recorded {
    /// Every packet so far.
    pub(crate) fn packets(&self) -> Vec<Packet> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// `(timestamp, value)` of every packet so far; panics (test failure) on another type.
    pub(crate) fn values<T: Clone + 'static>(&self) -> Vec<(Timestamp, T)> {
        self.packets()
            .iter()
            .map(|p| (p.timestamp(), p.get::<T>().expect("payload type").clone()))
            .collect()
    }

    /// The raw timestamps of every packet so far.
    pub(crate) fn timestamps(&self) -> Vec<Timestamp> {
        self.packets().iter().map(|p| p.timestamp()).collect()
    }
}

/// Loads `yaml`, panicking with the error text if it is invalid.
pub(crate) fn graph(yaml: &str) -> Graph {
    match Graph::from_yaml_str(yaml) {
        Ok(g) => g,
        Err(e) => panic!("graph config rejected: {e}"),
    }
}

/// Records every packet of output stream `name` (attach before `start_run`).
pub(crate) fn record(graph: &mut Graph, name: &str) -> Recorded {
    let rec = Recorded::default();
    let sink = rec.0.clone();
    graph
        .observe_output_stream(name, move |p| {
            sink.lock().expect("recorder lock").push(p.clone());
            Ok(())
        })
        .expect("observe output stream");
    rec
}

/// `value` at timestamp `t`.
pub(crate) fn at<T: Send + Sync + 'static>(value: T, t: i64) -> Packet {
    Packet::new(value).at(Timestamp::new(t))
}

/// Shorthand for a range timestamp.
pub(crate) fn ts(t: i64) -> Timestamp {
    Timestamp::new(t)
}

/// The text of a config error (the graph must be rejected).
pub(crate) fn config_error(yaml: &str) -> String {
    match Graph::from_yaml_str(yaml) {
        Ok(_) => panic!("graph config unexpectedly accepted:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}
