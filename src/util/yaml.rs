//! Reading YAML the way Kubernetes does (YAML 1.1 octals such as `0755`, multi-document
//! streams, comments, trailing `---`), with every error pinned to file:line:col.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_saphyr::Spanned;

use crate::util::error::{Error, Result};

/// One document of a YAML stream and where it starts.
#[derive(Debug, Clone)]
pub struct Document {
    pub value: Value,
    pub line: u64,
    pub column: u64,
}

fn options() -> serde_saphyr::Options {
    serde_saphyr::options! { legacy_octal_numbers: true }
}

fn located(path: &Path, err: serde_saphyr::Error) -> Error {
    let (line, column) = err.location().map(|l| (l.line(), l.column())).unwrap_or((1, 1));
    // The error's own text repeats the position and draws a snippet; keep its first line only.
    let text = err.to_string();
    let first = text.lines().next().unwrap_or("invalid YAML");
    let message = first
        .strip_prefix("error: ")
        .map(|rest| rest.split_once(": ").map(|(_, m)| m).unwrap_or(rest))
        .unwrap_or(first);
    Error::input(path, line, column, message.to_string())
}

pub fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::Usage(format!("{}: cannot read: {e}", path.display())))
}

/// Every non-empty document of a stream.
pub fn documents(path: &Path, text: &str) -> Result<Vec<Document>> {
    let docs: Vec<Spanned<Value>> =
        serde_saphyr::from_multiple_with_options(text, options()).map_err(|e| located(path, e))?;
    Ok(docs
        .into_iter()
        .filter(|d| !d.value.is_null())
        .map(|d| Document { line: d.referenced.line(), column: d.referenced.column(), value: d.value })
        .collect())
}

/// One document into a typed value; unknown keys and wrong types are errors with a position.
pub fn typed<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    serde_saphyr::from_str_with_options(text, options()).map_err(|e| located(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_streams_keep_their_positions() {
        let text =
            "# comment\n---\n\"apiVersion\": \"v1\"\nkind: ConfigMap\ndata: {mode: 0755}\n---\n---\nkind: Job\n---\n";
        let docs = documents(Path::new("x.yaml"), text).expect("valid");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].value["apiVersion"], "v1");
        assert_eq!(docs[0].value["data"]["mode"], 493);
        assert_eq!((docs[0].line, docs[1].line), (3, 8));
    }

    #[test]
    fn errors_say_where() {
        let err = documents(Path::new("bad.yaml"), "a: 1\nb: [1, 2\nc: 3\n").expect_err("invalid");
        let text = err.to_string();
        assert!(text.starts_with("bad.yaml:3:"), "{text}");
        let dup = documents(Path::new("dup.yaml"), "a: 1\na: 2\n").expect_err("duplicate");
        assert!(dup.to_string().starts_with("dup.yaml:2:1: duplicate mapping key"), "{dup}");
    }
}
