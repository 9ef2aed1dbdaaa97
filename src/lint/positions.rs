//! Where each value of a YAML stream is: a map from JSON pointer (per document) to its
//! line, column and byte span, so that a finding about `/spec/template/spec/containers/0/imagePullPolcy`
//! points at the very key. Built only for files that have findings.

use std::collections::HashMap;

use serde_saphyr::granit_parser::{Event, Parser};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
    pub offset: usize,
    pub len: usize,
}

enum Frame {
    Map { pointer: String, key: Option<String> },
    Seq { pointer: String, index: usize },
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Positions of every key and sequence item, one map per document (in stream order).
pub fn index(text: &str) -> Vec<HashMap<String, Position>> {
    let mut docs: Vec<HashMap<String, Position>> = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    for item in Parser::new_from_str(text) {
        let Ok((event, span)) = item else { break };
        let position = Position {
            line: span.start.line(),
            column: span.start.col() + 1,
            offset: span.start.byte_offset().unwrap_or(0),
            len: span.end.byte_offset().unwrap_or(0).saturating_sub(span.start.byte_offset().unwrap_or(0)).max(1),
        };
        let is_node =
            matches!(event, Event::Scalar(..) | Event::MappingStart(..) | Event::SequenceStart(..) | Event::Alias(..));
        match event {
            Event::DocumentStart(..) => {
                docs.push(HashMap::new());
                stack.clear();
                continue;
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
                if let Some(Frame::Map { key, .. }) = stack.last_mut() {
                    *key = None;
                }
                continue;
            }
            _ if !is_node => continue,
            _ => {}
        }
        let Some(doc) = docs.last_mut() else { continue };
        // Where this node sits, and whether it is a key.
        let pointer = match stack.last_mut() {
            None => {
                doc.entry(String::new()).or_insert(position);
                Some(String::new())
            }
            Some(Frame::Map { pointer, key }) => match key {
                None => {
                    if let Event::Scalar(name, ..) = &event {
                        let at = format!("{pointer}/{}", escape(name));
                        doc.entry(at).or_insert(position);
                        *key = Some(name.to_string());
                    } else {
                        *key = Some(String::new());
                    }
                    continue;
                }
                Some(k) => {
                    let at = format!("{pointer}/{}", escape(k));
                    *key = None;
                    Some(at)
                }
            },
            Some(Frame::Seq { pointer, index }) => {
                let at = format!("{pointer}/{index}");
                *index += 1;
                doc.entry(at.clone()).or_insert(position);
                Some(at)
            }
        };
        let Some(pointer) = pointer else { continue };
        match event {
            Event::MappingStart(..) => stack.push(Frame::Map { pointer, key: None }),
            Event::SequenceStart(..) => stack.push(Frame::Seq { pointer, index: 0 }),
            _ => {}
        }
        // A value completes its key's entry: the map expects a key again (handled above by
        // setting key to None); nothing more to record.
    }
    docs
}

/// The position of the pointer, or of its nearest ancestor that has one.
pub fn locate(doc: &HashMap<String, Position>, pointer: &str) -> Option<Position> {
    let mut p = pointer;
    loop {
        if let Some(pos) = doc.get(p) {
            return Some(*pos);
        }
        let (parent, _) = p.rsplit_once('/')?;
        p = parent;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_items_are_found_by_pointer() {
        let text = "a: 1\nspec:\n  containers:\n    - name: x\n      image: y\n    - {name: z, imagePullPolcy: Always}\n---\nb: {c: [1, 2]}\n";
        let docs = index(text);
        assert_eq!(docs.len(), 2);
        let p = docs[0]["/spec/containers/1/imagePullPolcy"];
        assert_eq!((p.line, p.column), (6, 17));
        assert_eq!(&text[p.offset..p.offset + p.len], "imagePullPolcy");
        assert_eq!((docs[0]["/spec/containers/0/image"].line), 5);
        assert_eq!(docs[1]["/b/c/1"].line, 8);
        assert_eq!(locate(&docs[0], "/spec/containers/0/name/deeper").map(|p| p.line), Some(4));
    }
}
