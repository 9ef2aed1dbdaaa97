//! What became of each case, operator install and cell: the results the runner and the
//! installer produce and the reports read. Below both, so neither points up at the other.

use std::{borrow::Cow, path::PathBuf, time::SystemTime};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::warn;

pub use crate::suite::FailureClass;
use crate::{
    cluster::{provision::Cell, retry::RequestCounts},
    plan::Case,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Passed,
    Failed,
    /// The case could not be judged: no workload, or kubevet could not watch it.
    Error,
    Skipped,
    Interrupted,
    /// Failed, then passed on a retry: a verdict of its own, never a plain pass.
    Flaky,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Passed => "PASS",
            Outcome::Failed => "FAIL",
            Outcome::Error => "ERROR",
            Outcome::Skipped => "SKIP",
            Outcome::Interrupted => "INTERRUPTED",
            Outcome::Flaky => "FLAKY",
        }
    }

    /// Whether the case did not pass (flaky cases passed in the end).
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Failed | Outcome::Error | Outcome::Interrupted)
    }
}

/// One earlier attempt of a case that was retried.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub outcome: Outcome,
    pub class: Option<FailureClass>,
    pub reason: Option<String>,
    pub seconds: f64,
    pub namespace: Option<String>,
    pub artifacts: PathBuf,
    pub log_tail: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Phase {
    pub name: Cow<'static, str>,
    pub seconds: f64,
}

impl Phase {
    pub(crate) fn since(name: &'static str, start: Instant) -> Phase {
        Phase { name: name.into(), seconds: start.elapsed().as_secs_f64() }
    }
}

/// How one scenario step or one check of a case went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepOutcome {
    Passed,
    Failed,
    /// It could not be judged: the cluster failed, or the expression could not be evaluated.
    Error,
    /// Not run: an earlier step failed.
    Skipped,
}

/// One scenario step (in `steps`, `catch` or `finally`) or one user check (`checks`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepReport {
    pub section: Cow<'static, str>,
    pub name: String,
    /// apply, assert, error, wait, script, exec, logs, delete, or the check's kind.
    pub action: Cow<'static, str>,
    pub outcome: StepOutcome,
    pub seconds: f64,
    /// What it saw: on failure why, and for a script or exec its output's tail.
    pub detail: Option<String>,
}

impl StepReport {
    /// `steps "job running" (assert): failed in 3.1s: …`, for `<system-out>`.
    pub fn line(&self) -> String {
        let outcome = match self.outcome {
            StepOutcome::Passed => "passed",
            StepOutcome::Failed => "failed",
            StepOutcome::Error => "error",
            StepOutcome::Skipped => "skipped",
        };
        let mut line = format!("{} {:?} ({}): {outcome} in {:.1}s", self.section, self.name, self.action, self.seconds);
        if let Some(detail) = &self.detail {
            line.push_str(": ");
            line.push_str(detail);
        }
        line
    }
}

/// One task of a pipeline run (or its driver), as its Workflow's nodes and pods tell it: the
/// DAG task's name with Argo's retry suffixes `(N)` removed, several attempts in one row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskRow {
    pub task: String,
    /// `task` for the user's own task, `driver` for the KFP driver that prepares it (the
    /// root DAG's driver is task `root`).
    pub role: Cow<'static, str>,
    /// Argo's node phase of the last attempt: Pending, Running, Succeeded, Failed, Error,
    /// Skipped, Omitted.
    pub state: String,
    /// How many times Argo ran it (its retry strategy's attempts); 0 when it never ran.
    pub attempts: u32,
    /// Not run because KFP's cache held its outputs (its driver's `cached-decision`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cached: bool,
    pub started: Option<String>,
    pub ended: Option<String>,
    pub pod: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What a pipeline case ran in Kubeflow Pipelines.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineRun {
    pub pipeline: String,
    /// The version's name (a content hash for uploaded files) and id.
    pub version: String,
    pub version_id: String,
    /// For a pipeline that already lived in KFP: what the suite asked for (`latest` or a name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asked: Option<String>,
    /// Whether this case uploaded the version (otherwise an identical one was already there).
    pub uploaded: bool,
    /// For a Python pipeline: `cache hit` or `compiled now` (by the KFP SDK, before the run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compiled: Option<Cow<'static, str>>,
    pub run_id: Option<String>,
    /// KFP's final state of the run.
    pub state: Option<String>,
    /// When kubevet saw the run's Workflow end (RFC 3339, milliseconds).
    pub seen_ended_at: Option<String>,
    /// Whether the run was followed by watching its Workflow (else by polling KFP's API).
    pub watched: bool,
    /// KFP API requests the case made.
    pub requests: u64,
    /// Seconds from the Workflow's end until KFP reported the run's final state (its
    /// persistence agent's lag); at least `pipelines.stateLag` when KFP never did in time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_lag_seconds: Option<f64>,
    /// What gave the verdict: `kfp` (its run state) or `workflow` (KFP lagged past
    /// `pipelines.stateLag`, so the Workflow's phase decided).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict_from: Option<Cow<'static, str>>,
    /// Tasks whose KFP cache kubevet turned off before the upload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caching_turned_off: Option<usize>,
}

/// What a notebook case ran.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotebookRun {
    /// The kernel papermill was told (`-k`); none: the notebook's own.
    pub kernel: Option<String>,
    /// The notebook's own cells (papermill's additions not counted), and how many ran.
    pub cells: usize,
    pub ran: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_cell: Option<usize>,
    /// The workloads it made (`TrainJob/mnist`), judged unless `judge: notebook`.
    pub workloads: Vec<String>,
    /// Seconds from the notebook's end to kubevet's verdict (waiting for its workloads,
    /// collecting).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict_after_seconds: Option<f64>,
}

/// What one container of a case used, from the kubelet's samples taken while it ran (a
/// finished container's stats are gone from the kubelet, so the last sample is the total).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ContainerUsage {
    pub pod: String,
    pub pod_uid: String,
    pub container: String,
    /// An init container (it ran to completion before the others started).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub init: bool,
    /// Times the container restarted (its counters start again at each restart; summed).
    pub restarts: u32,
    /// CPU time in core-seconds up to the last sample: none when no sample was taken.
    pub cpu_seconds: Option<f64>,
    /// Seconds between the last sample and the container's end (or the case's end while it
    /// ran): CPU used then is not counted, the uncertainty of `cpuSeconds`.
    pub cpu_gap_seconds: Option<f64>,
    /// `cpuSeconds` over the time it covers.
    pub average_cores: Option<f64>,
    /// The 90th percentile of the cores used between samples.
    pub p90_cores: Option<f64>,
    /// The highest memory seen, in bytes, and where it comes from: `kernel peak` (the cgroup's
    /// own high-water mark, page cache included) where the kubelet reports one, else
    /// `sampled working set` (the highest of the samples: a peak between them is missed).
    pub peak_memory_bytes: Option<f64>,
    pub peak_memory_source: Option<String>,
    /// The highest working set sampled (what the kubelet evicts and the OOM killer weigh).
    pub peak_working_set_bytes: Option<f64>,
    /// The highest resident set the kubelet's summary showed (every third round, so a short
    /// peak may be missed): the memory that no reclaim of page cache frees.
    pub peak_rss_bytes: Option<f64>,
    pub samples: u32,
    /// How much of the container's life the samples cover (0 to 1): from its start to the last
    /// sample, over its start to its end.
    pub coverage: f64,
    pub runtime_seconds: f64,
    pub cpu_request_cores: Option<f64>,
    pub cpu_limit_cores: Option<f64>,
    pub memory_request_bytes: Option<f64>,
    pub memory_limit_bytes: Option<f64>,
    /// Average cores over the CPU request; none without a request (BestEffort for CPU).
    pub cpu_efficiency: Option<f64>,
    /// Peak memory over the memory request; none without a request.
    pub memory_efficiency: Option<f64>,
    pub oom_killed: bool,
    /// What to request instead: the p90 of cores, the peak memory plus 15 % (as the VPA
    /// recommender does); `lowConfidence` when the samples are too few or cover too little.
    pub suggested_cpu_cores: Option<f64>,
    pub suggested_memory_bytes: Option<f64>,
    pub low_confidence: bool,
    /// The container asks for an accelerator (`nvidia.com/gpu`…): its use is not measured here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accelerators: Vec<String>,
}

/// A metric assertion of a case, as it was judged.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricCheck {
    pub name: String,
    pub source: String,
    /// The expression with `$NAMESPACE` and `$CASE` substituted.
    pub expect: String,
    /// `passed`, `failed`, `inconclusive` (a namespace-less assertion while other cases ran),
    /// or `not judged` (its `when` did not match how the workload ended).
    pub verdict: String,
    /// What the expression returned: series and values.
    pub result: Vec<(String, f64)>,
    /// The samples it reads, before and after the case (at most 20 of each).
    pub before: Vec<(String, f64)>,
    pub after: Vec<(String, f64)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The cases that ran at the same time, when that made it inconclusive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overlapping: Vec<String>,
}

/// A share as a whole percentage (`39 %`), or the reason there is none.
fn percent(share: Option<f64>, none: &str) -> String {
    share.map_or_else(|| none.to_string(), |s| format!("{:.0} %", s * 100.0))
}

impl ContainerUsage {
    /// `pod/container`.
    pub fn who(&self) -> String {
        format!("{}/{}", self.pod, self.container)
    }

    /// One line for people: CPU with its gap, memory with its source, against the requests.
    pub fn line(&self) -> String {
        let cpu = match (self.cpu_seconds, self.cpu_gap_seconds) {
            (Some(s), Some(gap)) => format!("cpu {s:.2} s (+ up to {gap:.1} s unsampled)"),
            _ => "cpu not sampled".to_string(),
        };
        let cores = self.average_cores.map_or(String::new(), |c| format!(", {c:.2} cores average"));
        let best_effort = "n/a (BestEffort)";
        let cpu_share =
            percent(self.cpu_efficiency, if self.cpu_request_cores.is_none() { best_effort } else { "n/a" });
        let memory = match (self.peak_memory_bytes, &self.peak_memory_source) {
            (Some(b), Some(source)) => format!("peak memory {} ({source})", crate::util::units::mib(b)),
            _ => "memory not sampled".to_string(),
        };
        let memory_share =
            percent(self.memory_efficiency, if self.memory_request_bytes.is_none() { best_effort } else { "n/a" });
        let mut line = format!(
            "usage {}: {cpu}{cores}, {cpu_share} of its CPU request; {memory}, {memory_share} of its memory request; \
             {:.0} % of its {:.0} s covered by {} samples",
            self.who(),
            self.coverage * 100.0,
            self.runtime_seconds,
            self.samples
        );
        if self.oom_killed {
            line.push_str("; OOMKilled");
        }
        if self.low_confidence {
            line.push_str("; low confidence");
        }
        line
    }

    /// Peak memory over the memory limit, when there is one.
    pub fn of_memory_limit(&self) -> Option<f64> {
        match (self.peak_memory_bytes, self.memory_limit_bytes) {
            (Some(peak), Some(limit)) if limit > 0.0 => Some(peak / limit),
            _ => None,
        }
    }
}

/// What becomes an OOM risk: a container whose peak came this close to its memory limit.
pub const OOM_RISK_SHARE: f64 = 0.9;

/// What became of one case; written as `result.json` and read by the reports (and read back
/// from each shard's `run.json` by `kubevet merge`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaseResult {
    pub id: String,
    pub name: String,
    pub profile: String,
    pub outcome: Outcome,
    /// Why it did not pass (none when it passed, was skipped or interrupted).
    pub class: Option<FailureClass>,
    pub reason: Option<String>,
    /// Earlier attempts, when the case was retried (the last attempt is this result).
    pub attempts: Vec<Attempt>,
    pub timeout: String,
    pub tier: Option<String>,
    pub namespace: Option<String>,
    pub phases: Vec<Phase>,
    /// A scenario's steps and the case's checks, in the order they ran.
    pub steps: Vec<StepReport>,
    /// A pipeline case's tasks (task, state, start, end, pod).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<PipelineRun>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notebook: Option<NotebookRun>,
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
    /// Extended resources (GPUs…) the case asks for that no node of the cluster offers: why
    /// it was skipped, or what its CPU smoke test ran without.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unoffered: Vec<String>,
    /// What a CPU smoke test (`gpu: cpu`) removed from the case's objects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpu_smoke: Vec<String>,
    /// What each container of the case's pods used (CPU, memory, against its requests).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usage: Vec<ContainerUsage>,
    /// The case's metric assertions, before, after and change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricCheck>,
    #[serde(skip, default = "Instant::now")]
    started: Instant,
    /// A retried case's own folder: `write` keeps a `result.json` with every attempt there,
    /// besides the one in this attempt's folder.
    #[serde(skip)]
    pub case_dir: Option<PathBuf>,
    /// The example file and the line of its workload, for annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<(PathBuf, u64)>,
    /// When the workload's end was recorded (the moment that matters for detection latency).
    #[serde(skip)]
    pub ended: Option<SystemTime>,
    /// When the case gave its slot back.
    #[serde(skip)]
    pub finished_at: Option<SystemTime>,
}

impl CaseResult {
    /// Core-seconds used by all the case's containers (none when nothing was sampled).
    pub fn cpu_seconds(&self) -> Option<f64> {
        self.usage.iter().filter_map(|u| u.cpu_seconds).reduce(|a, b| a + b)
    }

    /// The highest peak memory of any of the case's containers.
    pub fn peak_memory_bytes(&self) -> Option<f64> {
        self.usage.iter().filter_map(|u| u.peak_memory_bytes).reduce(f64::max)
    }

    pub(crate) fn new(case: &Case, artifacts: PathBuf) -> CaseResult {
        let mut r = CaseResult::named(&case.id, &case.name, case.profile_name(), artifacts);
        r.timeout = case.timeout.to_string();
        r.tier = case.tier.clone();
        let line = case.workloads.first().and_then(|w| case.objects.get(w.object)).or(case.objects.first());
        r.source = Some((case.path.clone(), line.map(|d| d.line).unwrap_or(1)));
        r
    }

    /// A result for something that is not an example (an operator install).
    pub(crate) fn named(id: &str, name: &str, profile: &str, artifacts: PathBuf) -> CaseResult {
        CaseResult {
            id: id.to_string(),
            name: name.to_string(),
            profile: profile.to_string(),
            outcome: Outcome::Error,
            class: None,
            reason: None,
            attempts: Vec::new(),
            timeout: String::new(),
            tier: None,
            namespace: None,
            phases: Vec::new(),
            steps: Vec::new(),
            tasks: Vec::new(),
            pipeline: None,
            notebook: None,
            seconds: 0.0,
            pods: Vec::new(),
            cluster_scoped: Vec::new(),
            artifacts,
            log_tail: None,
            cleanup: None,
            left_behind: Vec::new(),
            collect_problems: Vec::new(),
            unoffered: Vec::new(),
            cpu_smoke: Vec::new(),
            usage: Vec::new(),
            metrics: Vec::new(),
            started: Instant::now(),
            source: None,
            case_dir: None,
            ended: None,
            finished_at: None,
        }
    }

    /// Ends the result. Its class, unless set with [`CaseResult::finish_as`], follows from the
    /// outcome: a failure is the test's, an error (could not be judged) the infrastructure's.
    pub(crate) fn finish(&mut self, outcome: Outcome, reason: Option<String>) {
        let class = match outcome {
            Outcome::Failed => Some(FailureClass::Test),
            Outcome::Error => Some(FailureClass::Infrastructure),
            _ => None,
        };
        self.finish_as(outcome, class, reason);
    }

    pub(crate) fn finish_as(&mut self, outcome: Outcome, class: Option<FailureClass>, reason: Option<String>) {
        self.outcome = outcome;
        self.class = if outcome.is_failure() && outcome != Outcome::Interrupted { class } else { None };
        self.reason = reason;
        self.seconds = self.started.elapsed().as_secs_f64();
        self.finished_at = Some(SystemTime::now());
    }

    /// The reason with its class in front (`infrastructure: pod x: ImagePullBackOff: …`), as
    /// JUnit messages and annotations give it.
    pub fn classed_reason(&self) -> String {
        let reason = self.reason.clone().unwrap_or_default();
        match self.class {
            Some(class) => format!("{}: {reason}", class.name()),
            None => reason,
        }
    }

    /// This result as an earlier attempt of the case.
    pub fn as_attempt(&self) -> Attempt {
        Attempt {
            outcome: self.outcome,
            class: self.class,
            reason: self.reason.clone(),
            seconds: self.seconds,
            namespace: self.namespace.clone(),
            artifacts: self.artifacts.clone(),
            log_tail: self.log_tail.clone(),
        }
    }

    pub fn not_run(case: &Case, artifacts: PathBuf, outcome: Outcome, reason: String) -> CaseResult {
        let mut r = CaseResult::new(case, artifacts);
        r.finish(outcome, Some(reason));
        r
    }

    /// `result.json` in the result's folder (and, for a retried case, in the case's).
    pub(crate) fn write(&self) {
        self.write_to(&self.artifacts);
        if let Some(dir) = &self.case_dir {
            self.write_to(dir);
        }
    }

    fn write_to(&self, dir: &std::path::Path) {
        // A case the suite skips has no folder; one skipped for what the cluster lacks says so.
        if self.outcome == Outcome::Skipped && self.unoffered.is_empty() {
            return;
        }
        let file = dir.join("result.json");
        let written = std::fs::create_dir_all(dir)
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
    /// From the cell's start to its first case: cluster up, images loaded, operators installed.
    pub setup_seconds: Option<f64>,
}

impl CellReport {
    /// Everything of the cell's cases that cleanup left on the cluster.
    pub fn left_behind(&self) -> impl Iterator<Item = &str> {
        self.report.results.iter().flat_map(|r| r.left_behind.iter().map(String::as_str))
    }
}

/// What the runner tells whoever shows a run as it goes (a terminal, or nothing): a case
/// started (or started again), its phase changed, it ended.
pub trait Progress: Send + Sync {
    fn started(&self, case: &str, attempt: u32, timeout: &str);
    fn phase(&self, case: &str, phase: &str);
    fn finished(&self, result: &CaseResult);
    /// What the run does besides its cases (deleting namespaces at the end).
    fn note(&self, text: &str);
}

/// Shows nothing (benchmarks, tests of the runner).
pub struct Quiet;

impl Progress for Quiet {
    fn started(&self, _: &str, _: u32, _: &str) {}
    fn phase(&self, _: &str, _: &str) {}
    fn finished(&self, _: &CaseResult) {}
    fn note(&self, _: &str) {}
}
