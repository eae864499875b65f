//! Where each key path of a YAML document sits in its file.
//!
//! serde_yaml reports positions for the errors it finds itself, but the checks that come after
//! deserialization (missing stages, cycles, escaping paths) only know a key path. This module
//! walks the document once with a position-aware event parser and keeps, for every key path, the
//! line and column of its key and of its value, so that every error can point at file:line:column
//! and show the offending line. It also finds duplicate keys, which serde would silently merge
//! into maps.

use std::collections::{HashMap, HashSet};

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl From<Marker> for Pos {
    fn from(m: Marker) -> Self {
        Pos {
            line: m.line(),
            col: m.col() + 1,
        }
    }
}

/// A YAML syntax error or a duplicate key, with its position.
#[derive(Debug, Clone)]
pub struct SpanError {
    pub pos: Pos,
    pub message: String,
    pub key_path: Option<String>,
}

/// Positions of every key path of one document.
#[derive(Debug, Default)]
pub struct SpanIndex {
    keys: HashMap<Vec<String>, Pos>,
    values: HashMap<Vec<String>, Pos>,
    /// True when the document holds no node at all (empty file, only comments).
    pub empty: bool,
}

impl SpanIndex {
    /// Parses `text`; fails on the first syntax error or duplicate key.
    pub fn build(text: &str) -> Result<SpanIndex, SpanError> {
        let mut recv = Receiver::default();
        let mut parser = Parser::new_from_str(text);
        parser.load(&mut recv, true).map_err(|e| SpanError {
            pos: Pos::from(*e.marker()),
            message: e.info().to_string(),
            key_path: None,
        })?;
        if let Some(err) = recv.error {
            return Err(err);
        }
        Ok(SpanIndex {
            empty: !recv.saw_node,
            keys: recv.keys,
            values: recv.values,
        })
    }

    /// The position of the key at `path`, or of the closest ancestor that has one.
    pub fn key_pos(&self, path: &[String]) -> Option<Pos> {
        (0..=path.len())
            .rev()
            .find_map(|n| {
                self.keys
                    .get(&path[..n])
                    .or_else(|| self.values.get(&path[..n]))
            })
            .copied()
    }

    /// The position of the value at `path`, or of the closest ancestor that has one.
    pub fn value_pos(&self, path: &[String]) -> Option<Pos> {
        (0..=path.len())
            .rev()
            .find_map(|n| self.values.get(&path[..n]))
            .copied()
    }
}

enum Frame {
    Map {
        expecting_key: bool,
        key: Option<String>,
        seen: HashSet<String>,
        first_pos: HashMap<String, Pos>,
    },
    Seq {
        index: usize,
    },
    /// A mapping or sequence used as a key: positions inside it are not indexed.
    ComplexKey,
}

#[derive(Default)]
struct Receiver {
    stack: Vec<Frame>,
    path: Vec<String>,
    keys: HashMap<Vec<String>, Pos>,
    values: HashMap<Vec<String>, Pos>,
    /// For each open container: whether it is a value (so closing it pops a path segment).
    container_is_value: Vec<bool>,
    documents: usize,
    error: Option<SpanError>,
    saw_node: bool,
}

impl Receiver {
    /// Called at the start of every node; returns whether the node is a value (not a key).
    fn begin_node(&mut self, scalar_key: Option<&str>, mark: Marker) -> bool {
        self.saw_node = true;
        match self.stack.last_mut() {
            Some(Frame::Map {
                expecting_key: true,
                key,
                seen,
                first_pos,
                ..
            }) => {
                let name = scalar_key.unwrap_or("<complex key>").to_string();
                if !seen.insert(name.clone()) && self.error.is_none() {
                    let first = first_pos.get(&name).copied();
                    let mut at = self.path.clone();
                    at.push(name.clone());
                    self.error = Some(SpanError {
                        pos: mark.into(),
                        message: match first {
                            Some(p) => {
                                format!("duplicate key `{name}` (first defined at line {})", p.line)
                            }
                            None => format!("duplicate key `{name}`"),
                        },
                        key_path: Some(join_path(&at)),
                    });
                }
                first_pos.entry(name.clone()).or_insert(mark.into());
                let mut at = self.path.clone();
                at.push(name.clone());
                self.keys.insert(at, mark.into());
                *key = Some(name);
                false
            }
            Some(Frame::Map {
                expecting_key: false,
                key,
                ..
            }) => {
                let k = key.clone().unwrap_or_default();
                self.path.push(k);
                self.values.insert(self.path.clone(), mark.into());
                true
            }
            Some(Frame::Seq { index }) => {
                self.path.push(format!("[{index}]"));
                self.values.insert(self.path.clone(), mark.into());
                true
            }
            Some(Frame::ComplexKey) => false,
            None => {
                self.values.insert(Vec::new(), mark.into());
                false
            }
        }
    }

    /// Called when a node is complete (scalar read, or container closed).
    fn end_node(&mut self, was_value: bool) {
        if was_value {
            self.path.pop();
        }
        match self.stack.last_mut() {
            Some(Frame::Map { expecting_key, .. }) => *expecting_key = !*expecting_key,
            Some(Frame::Seq { index }) => *index += 1,
            _ => {}
        }
    }

    fn in_key_position(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame::Map {
                expecting_key: true,
                ..
            }) | Some(Frame::ComplexKey)
        )
    }
}

impl Receiver {
    fn fail(&mut self, mark: Marker, message: String) {
        if self.error.is_none() {
            self.error = Some(SpanError {
                pos: mark.into(),
                message,
                key_path: (!self.path.is_empty()).then(|| join_path(&self.path)),
            });
        }
    }

    /// Explicit tags (`!!binary`, `!env`) would be silently dropped by the loader: refuse them.
    fn refuse_tag(&mut self, tag: &Option<yaml_rust2::parser::Tag>, mark: Marker) {
        if let Some(t) = tag {
            let shown = match t.handle.as_str() {
                "tag:yaml.org,2002:" => format!("!!{}", t.suffix),
                h => format!("{h}{}", t.suffix),
            };
            self.fail(
                mark,
                format!("YAML tags such as `{shown}` are not supported: write the plain value"),
            );
        }
    }
}

/// Dotted key path, with sequence indices attached: `sweep.lr[2]`, `stages.prep.code[0]`.
pub fn join_path<S: AsRef<str>>(segs: &[S]) -> String {
    let mut out = String::new();
    for s in segs {
        let s = s.as_ref();
        if !out.is_empty() && !s.starts_with('[') {
            out.push('.');
        }
        out.push_str(s);
    }
    out
}

impl MarkedEventReceiver for Receiver {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if ev == Event::DocumentStart {
            self.documents += 1;
            if self.documents > 1 {
                self.fail(
                    mark,
                    "a second YAML document starts here: an experiment file holds one document"
                        .to_string(),
                );
            }
        }
        match ev {
            Event::Scalar(text, _, _, tag) => {
                let v = self.begin_node(Some(&text), mark);
                self.refuse_tag(&tag, mark);
                self.end_node(v);
            }
            Event::Alias(_) => {
                let v = self.begin_node(None, mark);
                self.end_node(v);
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_map = matches!(ev, Event::MappingStart(..));
                if self.in_key_position() {
                    self.begin_node(None, mark);
                    self.stack.push(Frame::ComplexKey);
                    return;
                }
                let was_value = self.begin_node(None, mark);
                if let Event::MappingStart(_, tag) | Event::SequenceStart(_, tag) = &ev {
                    self.refuse_tag(tag, mark);
                }
                self.container_is_value.push(was_value);
                self.stack.push(if is_map {
                    Frame::Map {
                        expecting_key: true,
                        key: None,
                        seen: HashSet::new(),
                        first_pos: HashMap::new(),
                    }
                } else {
                    Frame::Seq { index: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                if let Some(Frame::ComplexKey) = self.stack.last() {
                    self.stack.pop();
                    self.end_node(false);
                    return;
                }
                self.stack.pop();
                let was_value = self.container_is_value.pop().unwrap_or(false);
                self.end_node(was_value);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<String> {
        s.split('.').map(str::to_string).collect()
    }

    #[test]
    fn positions_of_nested_keys() {
        let text = "experiment: x\nstages:\n  prep:\n    kind: command\n    deps: {raw: a.csv}\n";
        let idx = SpanIndex::build(text).unwrap();
        assert_eq!(
            idx.key_pos(&p("stages.prep")),
            Some(Pos { line: 3, col: 3 })
        );
        assert_eq!(
            idx.value_pos(&p("stages.prep.kind")),
            Some(Pos { line: 4, col: 11 })
        );
        assert_eq!(
            idx.key_pos(&p("stages.prep.deps.raw")),
            Some(Pos { line: 5, col: 12 })
        );
        // An unknown path falls back to its closest ancestor.
        assert_eq!(
            idx.key_pos(&p("stages.prep.nope")),
            Some(Pos { line: 3, col: 3 })
        );
    }

    #[test]
    fn duplicate_keys_are_found() {
        let text = "stages:\n  a: 1\n  b: 2\n  a: 3\n";
        let err = SpanIndex::build(text).unwrap_err();
        assert_eq!(err.pos.line, 4);
        assert!(err.message.contains("duplicate key `a`"), "{}", err.message);
        assert!(err.message.contains("line 2"));
    }

    #[test]
    fn sequences_are_indexed() {
        let text = "sweep:\n  a.params.x: [1, 2]\nlist:\n  - {k: 1}\n  - {k: 2}\n";
        let idx = SpanIndex::build(text).unwrap();
        let path: Vec<String> = vec!["list".into(), "[1]".into(), "k".into()];
        assert_eq!(idx.key_pos(&path).unwrap().line, 5);
        let path: Vec<String> = vec!["sweep".into(), "a.params.x".into(), "[1]".into()];
        assert_eq!(idx.value_pos(&path).unwrap().line, 2);
    }

    #[test]
    fn empty_document() {
        assert!(SpanIndex::build("").unwrap().empty);
        assert!(SpanIndex::build("# only a comment\n").unwrap().empty);
        assert!(!SpanIndex::build("a: 1").unwrap().empty);
    }
}
