//! Line/column of every value in a YAML document, keyed by path (`node[3].input_stream[1]`),
//! built from the event stream of `saphyr-parser`.
//!
//! The serde model does not keep positions, so semantic errors found after parsing ask this
//! index where the offending value was written.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, Span};

/// A 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pos {
    pub(crate) line: usize,
    pub(crate) column: usize,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    key: Option<Pos>,
    value: Pos,
}

/// Positions of the values of the first document of a YAML text.
#[derive(Clone, Debug, Default)]
pub(crate) struct PosIndex {
    map: HashMap<String, Entry>,
}

enum Frame {
    Seq {
        path: String,
        next: usize,
    },
    Map {
        path: String,
        /// The key read and waiting for its value.
        key: Option<(String, Pos)>,
    },
    /// A mapping or sequence used as a mapping key: its contents are not indexed.
    ComplexKey {
        depth: usize,
        pos: Pos,
    },
}

fn pos_of(span: &Span) -> Pos {
    Pos {
        line: span.start.line().max(1),
        column: span.start.col() + 1,
    }
}

fn child(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Cap on the number of indexed values (protects against alias/size blow-ups).
const MAX_ENTRIES: usize = 1_000_000;

impl PosIndex {
    /// Indexes `text`. Never fails: a YAML error just ends the index where it happened.
    pub(crate) fn build(text: &str) -> PosIndex {
        let mut index = PosIndex::default();
        let mut stack: Vec<Frame> = Vec::new();
        let mut documents = 0;
        for item in Parser::new_from_str(text) {
            let Ok((event, span)) = item else { break };
            if index.map.len() >= MAX_ENTRIES {
                break;
            }
            let pos = pos_of(&span);
            match event {
                Event::DocumentStart(_) => {
                    documents += 1;
                    if documents > 1 {
                        break;
                    }
                }
                Event::Scalar(value, ..) => {
                    index.value(&mut stack, pos, Some(value.as_ref()), None)
                }
                Event::Alias(_) => index.value(&mut stack, pos, None, None),
                Event::SequenceStart(..) => index.value(&mut stack, pos, None, Some(false)),
                Event::MappingStart(..) => index.value(&mut stack, pos, None, Some(true)),
                Event::SequenceEnd | Event::MappingEnd => match stack.last_mut() {
                    Some(Frame::ComplexKey { depth, pos }) => {
                        if *depth > 1 {
                            *depth -= 1;
                        } else {
                            let pos = *pos;
                            stack.pop();
                            if let Some(Frame::Map { key, .. }) = stack.last_mut() {
                                *key = Some(("?".to_string(), pos));
                            }
                        }
                    }
                    Some(_) => {
                        stack.pop();
                    }
                    None => {}
                },
                // Only the first document is indexed.
                Event::DocumentEnd | Event::StreamEnd => break,
                Event::StreamStart | Event::Nothing => {}
            }
        }
        index
    }

    /// Records a value event at `pos`; `container` is `Some(is_mapping)` for sequence and
    /// mapping starts, which push a frame.
    fn value(
        &mut self,
        stack: &mut Vec<Frame>,
        pos: Pos,
        scalar: Option<&str>,
        container: Option<bool>,
    ) {
        let frame = |path: String| match container {
            Some(false) => Frame::Seq { path, next: 0 },
            _ => Frame::Map { path, key: None },
        };
        let path = match stack.last_mut() {
            Some(Frame::ComplexKey { depth, .. }) => {
                if container.is_some() {
                    *depth += 1;
                }
                return;
            }
            None => String::new(),
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                p
            }
            Some(Frame::Map { path, key }) => match key.take() {
                None => {
                    // This event is a key.
                    match (scalar, container) {
                        (_, Some(_)) => stack.push(Frame::ComplexKey { depth: 1, pos }),
                        (Some(s), None) => *key = Some((s.to_string(), pos)),
                        (None, None) => *key = Some(("*".to_string(), pos)),
                    }
                    return;
                }
                Some((k, key_pos)) => {
                    let p = child(path, &k);
                    self.map.entry(p.clone()).or_insert(Entry {
                        key: Some(key_pos),
                        value: pos,
                    });
                    if container.is_some() {
                        stack.push(frame(p));
                    }
                    return;
                }
            },
        };
        self.map.entry(path.clone()).or_insert(Entry {
            key: None,
            value: pos,
        });
        if container.is_some() {
            stack.push(frame(path));
        }
    }

    /// Where the value at `path` starts.
    pub(crate) fn value_pos(&self, path: &str) -> Option<Pos> {
        self.map.get(path).map(|e| e.value)
    }

    /// Where the key of the mapping entry at `path` starts (the value's position for sequence
    /// items and the root).
    pub(crate) fn key_pos(&self, path: &str) -> Option<Pos> {
        self.map.get(path).map(|e| e.key.unwrap_or(e.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_nested_paths() {
        let text = "node:\n  - calculator: A\n    input_stream: [\"x\", 'IN:y']\n    options:\n      k: {a: 1}\n  - calculator: B\n    output_stream: z\n";
        let ix = PosIndex::build(text);
        let p = |path: &str| ix.value_pos(path).map(|p| (p.line, p.column));
        assert_eq!(p("node"), Some((2, 3)));
        assert_eq!(p("node[0]"), Some((2, 5)));
        assert_eq!(p("node[0].calculator"), Some((2, 17)));
        assert_eq!(p("node[0].input_stream[0]"), Some((3, 20)));
        assert_eq!(p("node[0].input_stream[1]"), Some((3, 25)));
        assert_eq!(p("node[0].options.k.a"), Some((5, 14)));
        assert_eq!(p("node[1].output_stream"), Some((7, 20)));
        let k = ix.key_pos("node[1].output_stream").unwrap();
        assert_eq!((k.line, k.column), (7, 5));
    }

    #[test]
    fn complex_keys_and_garbage_do_not_confuse_it() {
        let ix = PosIndex::build("? [a, b]\n: 1\nc: [1, {d: 2}]\n");
        assert!(ix.value_pos("c[1].d").is_some());
        let _ = PosIndex::build("a: [\n");
        let _ = PosIndex::build("\u{0}\t:- ]]");
        let _ = PosIndex::build("");
    }
}
