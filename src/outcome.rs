//! What became of each case, operator install and cell: the results the runner and the
//! installer produce and the reports read. Below both, so neither points up at the other.

use std::{path::PathBuf, time::SystemTime};

use serde::Serialize;
use tokio::time::Instant;
use tracing::warn;

use crate::{
    cluster::{provision::Cell, retry::RequestCounts},
    plan::Case,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Passed,
    Failed,
    /// The case could not be judged: no workload, or kubevet could not watch it.
    Error,
    Skipped,
    Interrupted,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Passed => "PASS",
            Outcome::Failed => "FAIL",
            Outcome::Error => "ERROR",
            Outcome::Skipped => "SKIP",
            Outcome::Interrupted => "INTERRUPTED",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub name: &'static str,
    pub seconds: f64,
}

impl Phase {
    pub(crate) fn since(name: &'static str, start: Instant) -> Phase {
        Phase { name, seconds: start.elapsed().as_secs_f64() }
    }
}

/// What became of one case; written as `result.json` and read by the reports.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CaseResult {
    pub id: String,
    pub name: String,
    pub profile: String,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub timeout: String,
    pub tier: Option<String>,
    pub namespace: Option<String>,
    pub phases: Vec<Phase>,
    pub seconds: f64,
    pub pods: Vec<String>,
    pub cluster_scoped: Vec<String>,
    pub artifacts: PathBuf,
    pub log_tail: Option<String>,
    pub cleanup: Option<String>,
    /// What could not be deleted after the case (`namespace kv-…`, `ClusterRole/x`):
    /// `kubevet clean` removes it.
    pub left_behind: Vec<String>,
    pub collect_problems: Vec<String>,
    #[serde(skip)]
    started: Instant,
    /// When the workload's end was recorded (the moment that matters for detection latency).
    #[serde(skip)]
    pub ended: Option<SystemTime>,
    /// When the case gave its slot back.
    #[serde(skip)]
    pub finished_at: Option<SystemTime>,
}

impl CaseResult {
    pub(crate) fn new(case: &Case, artifacts: PathBuf) -> CaseResult {
        let mut r = CaseResult::named(&case.id, &case.name, case.profile_name(), artifacts);
        r.timeout = case.timeout.to_string();
        r.tier = case.tier.clone();
        r
    }

    /// A result for something that is not an example (an operator install).
    pub(crate) fn named(id: &str, name: &str, profile: &str, artifacts: PathBuf) -> CaseResult {
        CaseResult {
            id: id.to_string(),
            name: name.to_string(),
            profile: profile.to_string(),
            outcome: Outcome::Error,
            reason: None,
            timeout: String::new(),
            tier: None,
            namespace: None,
            phases: Vec::new(),
            seconds: 0.0,
            pods: Vec::new(),
            cluster_scoped: Vec::new(),
            artifacts,
            log_tail: None,
            cleanup: None,
            left_behind: Vec::new(),
            collect_problems: Vec::new(),
            started: Instant::now(),
            ended: None,
            finished_at: None,
        }
    }

    pub(crate) fn finish(&mut self, outcome: Outcome, reason: Option<String>) {
        self.outcome = outcome;
        self.reason = reason;
        self.seconds = self.started.elapsed().as_secs_f64();
        self.finished_at = Some(SystemTime::now());
    }

    pub fn not_run(case: &Case, artifacts: PathBuf, outcome: Outcome, reason: String) -> CaseResult {
        let mut r = CaseResult::new(case, artifacts);
        r.finish(outcome, Some(reason));
        r
    }

    pub(crate) fn write(&self) {
        if self.outcome == Outcome::Skipped {
            return;
        }
        let file = self.artifacts.join("result.json");
        let written = std::fs::create_dir_all(&self.artifacts)
            .and_then(|_| serde_json::to_vec_pretty(self).map_err(std::io::Error::other))
            .and_then(|bytes| std::fs::write(&file, bytes));
        if let Err(e) = written {
            warn!(file = %file.display(), error = %e, "cannot write result.json");
        }
    }
}

pub struct RunReport {
    pub run_id: String,
    /// Extra facts about the run for the report (built images and whether they were cached).
    pub properties: Vec<(String, String)>,
    pub results: Vec<CaseResult>,
    pub interrupted: bool,
    pub seconds: f64,
}

/// One cell's report.
pub struct CellReport {
    pub cell: Cell,
    pub server_version: String,
    pub report: RunReport,
    /// API requests of the cell: sent, retried and why, given up.
    pub requests: RequestCounts,
    /// The cell got no cluster (or could not reach it), or an image did not build: not the
    /// examples' fault.
    pub infrastructure_failed: bool,
}

impl CellReport {
    /// Everything of the cell's cases that cleanup left on the cluster.
    pub fn left_behind(&self) -> impl Iterator<Item = &str> {
        self.report.results.iter().flat_map(|r| r.left_behind.iter().map(String::as_str))
    }
}
