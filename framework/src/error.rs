//! The framework's one error type.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::timestamp::Timestamp;

/// The result type used throughout the framework and by calculators.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A place in a graph config file: file (when known), 1-based line and column.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Location {
    /// The config file, or `None` for a config given as a string.
    pub file: Option<Arc<PathBuf>>,
    /// 1-based line; 0 when unknown.
    pub line: usize,
    /// 1-based column; 0 when unknown.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{}", file.display())?,
            None => f.write_str("<config>")?,
        }
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        Ok(())
    }
}

/// The calculator method in which a node failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// `Calculator::open`.
    Open,
    /// `Calculator::process`.
    Process,
    /// `Calculator::close`.
    Close,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Open => "open",
            Phase::Process => "process",
            Phase::Close => "close",
        })
    }
}

/// Everything that can go wrong in the framework, in a config, or in a calculator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A raw value is not a legal timestamp where one is needed.
    #[error("invalid timestamp: {0}")]
    InvalidTimestamp(String),

    /// A packet holds another type than the one asked for.
    #[error("packet type mismatch: expected {expected}, but the packet holds {actual}")]
    TypeMismatch {
        /// The type asked for.
        expected: String,
        /// The type the packet holds.
        actual: String,
    },

    /// A typed read of an empty packet.
    #[error("packet is empty (timestamp {timestamp}); expected a {expected}")]
    EmptyPacket {
        /// The type asked for.
        expected: String,
        /// The empty packet's timestamp.
        timestamp: Timestamp,
    },

    /// A config error at a known place in a file.
    #[error("{location}: {message}")]
    Config {
        /// Where in the config file.
        location: Location,
        /// What is wrong.
        message: String,
    },

    /// Several config errors, each with its location.
    #[error("{} errors in graph config:\n{}", .0.len(), join_lines(.0))]
    ConfigErrors(Vec<Error>),

    /// A rule of a stream was broken (timestamps, closed stream, ...).
    #[error("stream \"{stream}\": {message}")]
    Stream {
        /// The stream's name.
        stream: String,
        /// What is wrong.
        message: String,
    },

    /// A node failed: the error names node, calculator, phase and input timestamp.
    #[error(
        "{phase} of node \"{node}\" ({calculator}) failed at input timestamp {timestamp}: {source}"
    )]
    Node {
        /// The node's canonical name.
        node: String,
        /// The calculator's registered name.
        calculator: String,
        /// The method that failed.
        phase: Phase,
        /// The input timestamp of the failed call.
        timestamp: Timestamp,
        /// The cause.
        #[source]
        source: Box<Error>,
    },

    /// A calculator panicked; the message is the panic's.
    #[error("calculator panicked: {0}")]
    Panic(String),

    /// An error from calculator code.
    #[error(transparent)]
    Calculator(Box<dyn std::error::Error + Send + Sync>),

    /// A plain message.
    #[error("{0}")]
    Message(String),

    /// `add_packet` in refuse mode on a full input queue.
    #[error("graph input stream \"{0}\" is throttled (its queues are full)")]
    Throttled(String),

    /// The run was cancelled.
    #[error("the graph run was cancelled")]
    Cancelled,

    /// Throttling would block the graph forever and `report_deadlock` is set.
    #[error("deadlock due to input throttling: input stream \"{stream}\" of node \"{node}\" is full ({size} packets) while the graph is idle; raise max_queue_size or unset report_deadlock")]
    Deadlock {
        /// The full input stream.
        stream: String,
        /// Its consumer.
        node: String,
        /// Its queue size.
        size: usize,
    },

    /// A call at the wrong moment (e.g. `add_packet` before `start_run`).
    #[error("{0}")]
    FailedPrecondition(String),

    /// A name that does not exist in the graph.
    #[error("not found: {0}")]
    NotFound(String),

    /// The errors of a failed run, first error first.
    #[error("graph run failed: {}", join_lines(.0))]
    Run(Vec<Error>),

    /// File I/O.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn join_lines(errors: &[Error]) -> String {
    errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

impl Error {
    /// An error with just a message.
    pub fn msg(message: impl fmt::Display) -> Error {
        Error::Message(message.to_string())
    }

    /// Wraps any error from calculator code.
    pub fn other(error: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::Calculator(Box::new(error))
    }

    /// A config error at `location`.
    pub fn config(location: Location, message: impl fmt::Display) -> Error {
        Error::Config {
            location,
            message: message.to_string(),
        }
    }

    /// The errors inside a combined error, or this error alone.
    pub fn flatten(&self) -> Vec<&Error> {
        match self {
            Error::ConfigErrors(v) | Error::Run(v) => v.iter().flat_map(|e| e.flatten()).collect(),
            e => vec![e],
        }
    }

    /// True if this is (or contains only) [`Error::Cancelled`].
    pub fn is_cancelled(&self) -> bool {
        let all = self.flatten();
        !all.is_empty() && all.iter().all(|e| matches!(e, Error::Cancelled))
    }
}

/// Bails out of a calculator method with a formatted [`Error::Message`].
///
/// ```
/// use mediagraph_framework::{bail, Result};
/// fn check(n: i64) -> Result<()> {
///     if n < 0 {
///         bail!("negative input {n}");
///     }
///     Ok(())
/// }
/// assert_eq!(check(-1).unwrap_err().to_string(), "negative input -1");
/// ```
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::Error::Message(format!($($arg)*)))
    };
}
