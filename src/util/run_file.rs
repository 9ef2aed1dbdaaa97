//! `run.json`, the one contract between the run that writes it and the history that imports
//! it (`kubevet history import`, from another machine or another version): typed, with a
//! `schemaVersion`. A file of another schema is refused with what to do, and a field the
//! history needs that is missing is an error naming it — never read as a default.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The schema this kubevet writes and reads; raised when a field the history reads changes.
pub const SCHEMA_VERSION: u32 = 1;

/// The JUnit suite property naming the run's `run.json` (its id): a history that imports
/// both files of one run stores it once.
pub const JUNIT_RUN_FILE: &str = "kubevet.runFile";
/// The JUnit suite property with the run's start (RFC 3339), as `run.json` has it.
pub const JUNIT_STARTED: &str = "kubevet.started";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunFile {
    pub schema_version: u32,
    /// Unique and sortable by time: `20261201T021500Z-3f9a1c`.
    pub id: String,
    pub suite: String,
    pub started: String,
    pub ended: String,
    pub cells: Vec<CellFile>,
    /// What each floating version resolved to.
    pub versions: BTreeMap<String, String>,
    /// How each operator was rendered.
    pub rendered: Map<String, Value>,
    /// What changed since the previous run.
    pub changed: Vec<String>,
    /// The shard of a plan this run was (`run --plan --shard`); none for a whole run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardRef>,
}

/// Which shard of which plan a run was, and which attempt of its job.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardRef {
    /// The plan's digest.
    pub plan: String,
    pub id: String,
    /// The job's attempt (`GITHUB_RUN_ATTEMPT`; 1 outside GitHub).
    pub attempt: u32,
    pub predicted_seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CellFile {
    pub run: String,
    /// The version the matrix asked for (none for an existing cluster).
    pub kubernetes_version: Option<String>,
    pub image: Option<String>,
    /// The server's own version.
    pub kubernetes: String,
    pub requests: Value,
    pub left_behind: Vec<String>,
    pub cases: Vec<CaseFile>,
    /// Seconds from the cell's start to its first case (cluster up, images loaded, operators
    /// installed): a shard's fixed cost. Not recorded by earlier kubevets, nor for a cell
    /// that got no cluster: unknown then, never zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup_seconds: Option<f64>,
}

/// A case's `result.json` as the history reads it; the rest of its fields kept as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaseFile {
    pub id: String,
    pub name: String,
    pub profile: String,
    pub tier: Option<String>,
    pub outcome: String,
    pub class: Option<String>,
    pub reason: Option<String>,
    pub seconds: f64,
    pub phases: Vec<Value>,
    /// Earlier attempts; the last attempt is the case itself.
    pub attempts: Vec<AttemptFile>,
    pub artifacts: String,
    pub log_tail: Option<String>,
    /// What each container used; absent from files written before kubevet measured it (or
    /// imported from JUnit): nothing measured, which no health figure reads as zero.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usage: Vec<UsageFile>,
    /// The case's metric assertions as judged; absent before kubevet had them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricFile>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// The figures of one container the history keeps (`result.json` has them all).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageFile {
    pub pod: String,
    pub container: String,
    pub cpu_seconds: Option<f64>,
    pub peak_memory_bytes: Option<f64>,
    pub coverage: f64,
    pub low_confidence: bool,
    pub oom_killed: bool,
    pub average_cores: Option<f64>,
    pub runtime_seconds: Option<f64>,
    pub cpu_request_cores: Option<f64>,
    pub cpu_limit_cores: Option<f64>,
    pub memory_request_bytes: Option<f64>,
    pub memory_limit_bytes: Option<f64>,
    #[serde(default)]
    pub accelerators: Vec<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// A metric assertion as the report shows it: its verdict, and the series it read before and
/// after the case (`result.json` has the rest).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricFile {
    pub name: String,
    pub expect: String,
    pub verdict: String,
    #[serde(default)]
    pub before: Vec<(String, f64)>,
    #[serde(default)]
    pub after: Vec<(String, f64)>,
    #[serde(default)]
    pub notes: Vec<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptFile {
    pub outcome: String,
    pub class: Option<String>,
    pub reason: Option<String>,
    pub seconds: f64,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// A `run.json` the history will not read as this kubevet's: never read as defaults.
#[derive(Debug, thiserror::Error)]
pub enum RunFileError {
    #[error("not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error(
        "written by a newer kubevet (run.json schema {0}; this kubevet reads {SCHEMA_VERSION}): import it with that version"
    )]
    Newer(u64),
    #[error("run.json schema {0} is not one this kubevet reads ({SCHEMA_VERSION})")]
    Older(u64),
    #[error(
        "no schemaVersion: written by a kubevet from before run.json had one; this kubevet reads schema {SCHEMA_VERSION} (run the suite again, or import with the kubevet that wrote it)"
    )]
    Unversioned,
    #[error("not a kubevet run.json of schema {SCHEMA_VERSION}: {0}")]
    Shape(#[source] serde_json::Error),
}

impl RunFile {
    /// Reads a `run.json`'s text: its schema first (refused with what to do when it is not
    /// this kubevet's), then every field the history needs.
    pub fn parse(text: &str) -> Result<RunFile, RunFileError> {
        let value: Value = serde_json::from_str(text).map_err(RunFileError::NotJson)?;
        match value.get("schemaVersion").and_then(Value::as_u64) {
            Some(v) if v == u64::from(SCHEMA_VERSION) => {}
            Some(v) if v > u64::from(SCHEMA_VERSION) => return Err(RunFileError::Newer(v)),
            Some(v) => return Err(RunFileError::Older(v)),
            None => return Err(RunFileError::Unversioned),
        }
        serde_json::from_value(value).map_err(RunFileError::Shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn file() -> Value {
        json!({
            "schemaVersion": SCHEMA_VERSION, "id": "r1", "suite": "s", "started": "a", "ended": "b",
            "versions": {}, "rendered": {}, "changed": [],
            "cells": [{"run": "x", "kubernetesVersion": null, "image": null, "kubernetes": "v1.20.2", "requests": {},
                "leftBehind": [], "cases": [{"id": "c", "name": "c.yaml", "profile": "job", "tier": null, "outcome": "passed",
                "class": null, "reason": null, "seconds": 1.5, "phases": [], "attempts": [], "artifacts": "c",
                "logTail": null, "namespace": "kv-c"}]}],
        })
    }

    #[test]
    fn a_file_of_this_schema_reads_whole_and_keeps_the_rest() {
        let run = RunFile::parse(&file().to_string()).expect("reads");
        assert_eq!(run.cells[0].cases[0].rest["namespace"], "kv-c");
        let again = serde_json::to_value(&run).expect("writes");
        assert_eq!(again, file(), "nothing lost or added on the way through");
    }

    #[test]
    fn other_schemas_and_missing_fields_are_refused_never_defaulted() {
        let mut old = file();
        old.as_object_mut().map(|o| o.remove("schemaVersion"));
        assert!(RunFile::parse(&old.to_string()).expect_err("no schema").to_string().contains("no schemaVersion"));
        let mut newer = file();
        newer["schemaVersion"] = json!(SCHEMA_VERSION + 1);
        assert!(RunFile::parse(&newer.to_string()).expect_err("newer").to_string().contains("newer kubevet"));
        let mut older = file();
        older["schemaVersion"] = json!(SCHEMA_VERSION - 1);
        let e = RunFile::parse(&older.to_string()).expect_err("older");
        assert!(matches!(e, RunFileError::Older(v) if v == u64::from(SCHEMA_VERSION - 1)), "{e}");
        let mut renamed = file();
        let case = renamed["cells"][0]["cases"][0].as_object_mut().expect("case");
        let outcome = case.remove("outcome").expect("outcome");
        case.insert("result".into(), outcome);
        let e = RunFile::parse(&renamed.to_string()).expect_err("a renamed field");
        assert!(matches!(e, RunFileError::Shape(_)) && e.to_string().contains("missing field `outcome`"), "{e}");
    }
}
