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

fn located(path: &Path, text: &str, err: serde_saphyr::Error) -> Error {
    let (line, column) = err.location().map(|l| (l.line(), l.column())).unwrap_or((1, 1));
    // The error's own text repeats the position and draws a snippet; keep its first line only.
    let full = err.to_string();
    let first = full.lines().next().unwrap_or("invalid YAML");
    let message = first
        .strip_prefix("error: ")
        .map(|rest| rest.split_once(": ").map(|(_, m)| m).unwrap_or(rest))
        .unwrap_or(first);
    let (message, hint) = in_user_terms(message, &token_at(text, line, column));
    let error = Error::input(path, line, column, message);
    match hint {
        Some(hint) => error.with_hint(hint),
        None => error,
    }
}

/// The value written at line:column (1-based), as far as one scalar goes, for messages.
fn token_at(text: &str, line: u64, column: u64) -> String {
    let Some(row) = text.lines().nth(line.saturating_sub(1) as usize) else { return String::new() };
    let start = row.char_indices().nth(column.saturating_sub(1) as usize).map(|(i, _)| i).unwrap_or(row.len());
    let rest = &row[start..];
    let end = rest.find([',', '}', ']', '#']).unwrap_or(rest.len());
    rest[..end].trim().chars().take(60).collect()
}

/// The parser's wording turned into the user's: what was expected, what was found, and what
/// to write instead.
fn in_user_terms(message: &str, found: &str) -> (String, Option<String>) {
    let found_text = match found.chars().next() {
        None => "nothing".to_string(),
        Some('[') => "a list".to_string(),
        Some('{') => "a mapping".to_string(),
        Some(_) => format!("`{found}`"),
    };
    let numeric = ["u8", "u16", "u32", "u64", "usize", "i8", "i16", "i32", "i64", "isize"];
    let is = |kinds: &[&str]| {
        kinds.iter().any(|k| message == format!("invalid {k}") || message.contains(&format!("expected {k}")))
    };
    if is(&numeric) {
        return (
            format!("expected a whole number, found {found_text}"),
            Some("write a number without quotes, units or a sign, like `4`".into()),
        );
    }
    if is(&["f32", "f64"]) {
        return (format!("expected a number, found {found_text}"), Some("write a number, like `0.9`".into()));
    }
    if is(&["bool", "a boolean"]) || message == "invalid boolean" {
        return (format!("expected true or false, found {found_text}"), None);
    }
    if let Some(rest) = message.strip_prefix("duplicate mapping key: ") {
        let key = rest.split(", set DuplicateKeyPolicy").next().unwrap_or(rest);
        return (
            format!("`{key}` appears more than once in this mapping"),
            Some("keep one of them: a repeated key silently replaces the first".into()),
        );
    }
    if message.contains("expected sequence start") {
        return (
            format!("expected a list, found {found_text}"),
            Some("write a list: `[a, b]`, or one `- item` per line".into()),
        );
    }
    if message.contains("expected mapping start") {
        return (
            format!("expected a mapping of keys to values, found {found_text}"),
            Some("write `key: value` pairs, indented under this key".into()),
        );
    }
    if message.contains("untagged enum Words") {
        return (
            format!("expected a command, found {found_text}"),
            Some(
                "write the command as one string, or as a list of strings in quotes, like [\"cat\", \"/tmp/done\"]"
                    .into(),
            ),
        );
    }
    if message.contains("untagged enum ApplyFile") {
        return (
            format!("expected a file name or {{file: …}} / {{object: {{…}}}}, found {found_text}"),
            Some("write `apply: job.yaml`, or `apply: {object: {apiVersion: …, kind: …, metadata: {name: …}}}`".into()),
        );
    }
    if message.contains("budget") {
        return (
            "this YAML expands beyond kubevet's limits (aliases that repeat aliases, or too deep a nesting)".into(),
            Some("write the values out instead of nesting aliases of aliases".into()),
        );
    }
    (message.to_string(), None)
}

pub fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::usage_because(format!("{}: cannot read", path.display()), e))
}

/// Every non-empty document of a stream.
pub fn documents(path: &Path, text: &str) -> Result<Vec<Document>> {
    let docs: Vec<Spanned<Value>> =
        serde_saphyr::from_multiple_with_options(text, options()).map_err(|e| located(path, text, e))?;
    Ok(docs
        .into_iter()
        .filter(|d| !d.value.is_null())
        .map(|d| Document { line: d.referenced.line(), column: d.referenced.column(), value: d.value })
        .collect())
}

/// One document into a typed value; unknown keys and wrong types are errors with a position.
pub fn typed<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    serde_saphyr::from_str_with_options(text, options()).map_err(|e| located(path, text, e))
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
        assert!(dup.to_string().starts_with("dup.yaml:2:1: `a` appears more than once in this mapping"), "{dup}");
    }
}
