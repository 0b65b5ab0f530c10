//! The JSONL packet format shared by `mediagraph run --feed/--dump` and the tests.
//!
//! One packet per line: `{"ts": <timestamp>, "value": <any JSON>}`, where the timestamp is an
//! integer count of microseconds or one of the names `"PreStream"` and `"PostStream"`. Blank
//! lines are skipped when reading. Lines are written with `ts` first and no spaces, so output
//! is byte-for-byte stable:
//!
//! ```
//! use mediagraph::jsonl;
//! use mediagraph::{Packet, Timestamp};
//!
//! let line = jsonl::format_packet(&Packet::new(7i64).at(Timestamp::new(10))).unwrap();
//! assert_eq!(line, r#"{"ts":10,"value":7}"#);
//!
//! let (ts, value) = jsonl::parse_line(r#"{"ts": "PreStream", "value": {"a": 1}}"#).unwrap();
//! assert_eq!(ts, Timestamp::PRE_STREAM);
//! assert_eq!(value, serde_json::json!({"a": 1}));
//! assert!(jsonl::parse_line(r#"{"ts": -1}"#).is_err());
//! ```

use std::io::BufRead;
use std::path::Path;

use mediagraph_framework::types::{packet_from_json, packet_to_json_text, PacketType};
use mediagraph_framework::{Error, Packet, Result, Timestamp};
use serde_json::Value;

/// The JSON form of a timestamp: an integer for range values, else the reserved value's name
/// (`"PreStream"`, `"PostStream"`, ...).
pub fn timestamp_to_json(ts: Timestamp) -> Value {
    match ts.special_name() {
        Some(name) if !ts.is_range() => Value::String(name.to_string()),
        _ => Value::from(ts.value()),
    }
}

/// Parses the JSON form of a packet timestamp: an integer range value, `"PreStream"` or
/// `"PostStream"` (any timestamp a packet may carry in a stream).
pub fn timestamp_from_json(value: &Value) -> Result<Timestamp> {
    match value {
        Value::Number(n) => {
            let micros = n.as_i64().ok_or_else(|| {
                Error::InvalidTimestamp(format!(
                    "\"ts\" must be an integer of microseconds, not {n}"
                ))
            })?;
            Timestamp::try_new(micros)
        }
        Value::String(s) => match Timestamp::from_special_name(s) {
            Some(ts) if ts.is_allowed_in_stream() => Ok(ts),
            _ => Err(Error::InvalidTimestamp(format!(
                "\"ts\" must be an integer or \"PreStream\" / \"PostStream\", not \"{s}\""
            ))),
        },
        other => Err(Error::InvalidTimestamp(format!(
            "\"ts\" must be an integer or \"PreStream\" / \"PostStream\", not {other}"
        ))),
    }
}

/// Parses one line into its timestamp and value.
pub fn parse_line(line: &str) -> Result<(Timestamp, Value)> {
    let parsed: Value =
        serde_json::from_str(line).map_err(|e| Error::msg(format!("invalid JSON: {e}")))?;
    let Value::Object(mut map) = parsed else {
        return Err(Error::msg(
            "expected an object {\"ts\": ..., \"value\": ...}",
        ));
    };
    if let Some(key) = map.keys().find(|k| *k != "ts" && *k != "value") {
        return Err(Error::msg(format!(
            "unknown key \"{key}\" (a line holds only \"ts\" and \"value\")"
        )));
    }
    let ts = map
        .get("ts")
        .ok_or_else(|| Error::msg("missing \"ts\""))
        .and_then(timestamp_from_json)?;
    let value = map
        .remove("value")
        .ok_or_else(|| Error::msg("missing \"value\""))?;
    Ok((ts, value))
}

/// Parses one line into a packet of type `packet_type` (see [`packet_from_json`]).
pub fn parse_packet(line: &str, packet_type: &PacketType) -> Result<Packet> {
    let (ts, value) = parse_line(line)?;
    Ok(packet_from_json(value, packet_type)?.into_at(ts))
}

/// Formats a packet as one line (without the newline). Fails if the payload type is not
/// JSON-convertible.
pub fn format_packet(packet: &Packet) -> Result<String> {
    let value = packet_to_json_text(packet)?;
    Ok(format!(
        "{{\"ts\":{},\"value\":{}}}",
        timestamp_to_json(packet.timestamp()),
        value
    ))
}

/// Reads every packet of a JSONL file. Errors name `FILE:LINE`.
pub fn read_file(path: &Path, packet_type: &PacketType) -> Result<Vec<Packet>> {
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut packets = Vec::new();
    for item in Lines::new(std::io::BufReader::new(file), path) {
        let (line_no, line) = item?;
        packets.push(
            parse_packet(&line, packet_type)
                .map_err(|e| Error::msg(format!("{}:{line_no}: {e}", path.display())))?,
        );
    }
    Ok(packets)
}

/// The non-blank lines of a JSONL reader with their 1-based line numbers; read errors name the
/// file and line.
pub struct Lines<R> {
    reader: R,
    path: std::path::PathBuf,
    line_no: usize,
    done: bool,
}

impl<R: BufRead> Lines<R> {
    /// Lines of `reader`, which reads the file `path` (used in messages).
    pub fn new(reader: R, path: &Path) -> Lines<R> {
        Lines {
            reader,
            path: path.to_path_buf(),
            line_no: 0,
            done: false,
        }
    }
}

impl<R: BufRead> Iterator for Lines<R> {
    type Item = Result<(usize, String)>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let mut line = String::new();
            self.line_no += 1;
            match self.reader.read_line(&mut line) {
                Ok(0) => self.done = true,
                Ok(_) => {
                    let trimmed = line.trim();
                    if !trimmed.is_empty() {
                        return Some(Ok((self.line_no, trimmed.to_string())));
                    }
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(Error::msg(format!(
                        "{}:{}: {e}",
                        self.path.display(),
                        self.line_no
                    ))));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        for ts in [
            Timestamp::new(0),
            Timestamp::new(-5),
            Timestamp::MIN,
            Timestamp::MAX,
            Timestamp::PRE_STREAM,
            Timestamp::POST_STREAM,
        ] {
            assert_eq!(timestamp_from_json(&timestamp_to_json(ts)).unwrap(), ts);
        }
        assert_eq!(timestamp_to_json(Timestamp::PRE_STREAM), "PreStream");
        assert!(timestamp_from_json(&Value::from("Done")).is_err());
        assert!(timestamp_from_json(&Value::from(1.5)).is_err());
        assert!(timestamp_from_json(&Value::from(i64::MAX)).is_err());
    }

    #[test]
    fn bad_lines_are_errors() {
        for bad in [
            "",
            "[1]",
            "{\"ts\": 1}",
            "{\"value\": 1}",
            "{\"ts\": 1, \"value\": 2, \"x\": 3}",
            "{\"ts\": null, \"value\": 2}",
            "{\"ts\": 1, \"value\": 2",
        ] {
            assert!(parse_line(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn typed_packets() {
        let p = parse_packet("{\"ts\": 3, \"value\": 4}", &PacketType::of::<i64>()).unwrap();
        assert_eq!(*p.get::<i64>().unwrap(), 4);
        assert_eq!(p.timestamp(), Timestamp::new(3));
        assert_eq!(format_packet(&p).unwrap(), "{\"ts\":3,\"value\":4}");
        let err = parse_packet("{\"ts\": 3, \"value\": \"x\"}", &PacketType::of::<i64>());
        assert!(err.is_err());
        struct Opaque;
        let err = format_packet(&Packet::new(Opaque).at(Timestamp::new(1))).unwrap_err();
        assert!(err.to_string().contains("Opaque"), "{err}");
        let any = parse_packet("{\"ts\": 3, \"value\": [1, \"a\"]}", &PacketType::Any).unwrap();
        assert_eq!(
            format_packet(&any).unwrap(),
            "{\"ts\":3,\"value\":[1,\"a\"]}"
        );
    }
}
