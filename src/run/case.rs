//! One case: create its namespace, apply its objects, wait for its workloads, collect the
//! evidence, judge. Cleaning up is handed back to the runner so that it holds no slot.

use std::{
    borrow::Cow,
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    time::Duration,
};

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;
use tokio::{sync::watch, time::Instant};

use super::{
    checks, classify, extended, metrics,
    steps::{Scope, Verdict},
    usage::{self, UsageSampler},
};
use crate::{
    cluster::{
        ApiError, Applied, Cluster, LABEL_CASE, LABEL_RUN,
        collect::{Collect, Evidence},
        label_value,
        wait::{Ending, Wait, Waited},
    },
    outcome::{CaseResult, Outcome, Phase, Progress},
    plan::Case,
    suite::{
        ClassRule, Defaults, Expect, FailureClass, assertions::LogSource, gpu::GpuMode, gpu::GpuSettings,
        metrics::MetricAssertion, profile::Profile,
    },
    util::{ids::random_hex, yaml::Document},
};

/// How long an interrupted case may spend collecting before it is cleaned up.
pub(super) const INTERRUPT_COLLECT_GRACE: Duration = Duration::from_secs(10);

/// What a case leaves for the runner to delete.
#[derive(Debug)]
pub struct Cleanup {
    pub namespace: String,
    /// Workloads that had not finished: deleted before their namespace.
    pub unfinished: Vec<Applied>,
    pub cluster_scoped: Vec<Applied>,
}

pub struct CaseRun<'a> {
    pub cluster: &'a Cluster,
    pub case: &'a Case,
    pub run_id: &'a str,
    /// Where this attempt's evidence goes.
    pub dir: PathBuf,
    pub defaults: &'a Defaults,
    /// The suite's own failure-class rules.
    pub rules: &'a [ClassRule],
    pub progress: &'a dyn Progress,
    pub cancel: watch::Receiver<bool>,
    /// Where KFP is, for pipeline cases, and the experiment's default name (the suite's).
    pub pipelines: &'a crate::suite::pipelines::PipelineSettings,
    pub suite_name: &'a str,
    pub keep_on_failure: bool,
    /// What a case asking for a GPU no node offers does (the suite's `gpu:`).
    pub gpu: &'a GpuSettings,
    /// The suite's profiles: what a notebook's workloads are recognised by.
    pub profiles: &'a [Profile],
    /// Where the suite's metrics sources are.
    pub metric_settings: &'a crate::suite::metrics::MetricsSettings,
    /// The run's kubelet sampler: what the case's pods used.
    pub usage: &'a UsageSampler,
    /// When each case of the run read its metrics: who overlapped whom.
    pub windows: &'a super::metrics::CaseWindows,
}

/// How a case ended: outcome, class, reason.
pub(super) type Stop = (Outcome, Option<FailureClass>, String);

/// The objects a case applied, and for each object of its file its index among them.
struct Made {
    applied: Vec<Applied>,
    index: Vec<Option<usize>>,
}

/// `kv-<short case name>-<random>`: a valid namespace name of at most 63 characters.
pub fn namespace_name(case: &Case) -> String {
    let stem = case.path.file_stem().map(|s| s.to_string_lossy().to_lowercase()).unwrap_or_default();
    let short: String = stem.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).take(40).collect();
    let short = short.trim_matches('-');
    let short = if short.is_empty() { "case" } else { short };
    format!("kv-{short}-{}", random_hex(5))
}

impl CaseRun<'_> {
    /// The case's namespace, labelled with the run and the case; none (and the result ended)
    /// when the cluster would not make it.
    pub(super) async fn open_namespace(&self, result: &mut CaseResult) -> Option<String> {
        let namespace = namespace_name(self.case);
        result.namespace = Some(namespace.clone());
        self.progress.phase(&self.case.name, "apply");
        if let Err(e) = self.cluster.create_namespace(&namespace, self.labels()).await {
            result.finish(Outcome::Error, Some(e.message));
            result.namespace = None;
            return None;
        }
        Some(namespace)
    }

    fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_RUN.to_string(), self.run_id.to_string()),
            (LABEL_CASE.to_string(), label_value(&self.case.id)),
        ])
    }

    pub async fn run(self) -> (CaseResult, Option<Cleanup>) {
        let case = self.case;
        if let Some(scenario) = &case.scenario {
            return self.run_scenario(scenario).await;
        }
        if let Some(pipeline) = &case.pipeline {
            return self.run_pipeline(pipeline).await;
        }
        if let Some(notebook) = &case.notebook {
            return self.run_notebook(notebook).await;
        }
        let mut result = CaseResult::new(case, self.dir.clone());
        let clock = Instant::now();
        let Some(objects) = self.fit_to_cluster(&mut result).await else { return (result, None) };
        let Some(namespace) = self.open_namespace(&mut result).await else { return (result, None) };
        let sampled = self.usage.register(&namespace);
        let mut cleanup = Cleanup { namespace: namespace.clone(), unfinished: Vec::new(), cluster_scoped: Vec::new() };
        let Some(before) = self.metrics_before(&case.metrics, &mut result).await else {
            return (result, Some(cleanup));
        };
        let made = self.apply_objects(&objects, &namespace, &mut result, &mut cleanup).await;
        result.phases.push(Phase::since("apply", clock));
        let Some(made) = made else { return (result, Some(cleanup)) };
        // Tests of the runner's panic safety inject a panic here, with the namespace made.
        #[cfg(debug_assertions)]
        if std::env::var_os("KUBEVET_TEST_PANIC_IN_CASE").is_some_and(|name| name == case.name.as_str()) {
            panic!("injected by KUBEVET_TEST_PANIC_IN_CASE");
        }
        let watched: Vec<(usize, &Profile)> =
            case.workloads.iter().filter_map(|w| made.index[w.object].map(|a| (a, &w.profile))).collect();
        let mut workload = metrics::WorkloadReader::new(&case.metrics, self.metric_settings, &namespace, &self.dir);
        let waiting = self.wait_for(&namespace, &made.applied, &watched, case.timeout.0, &mut result);
        let (waited, pods) = workload.while_running(self.cluster, waiting).await;
        if matches!(waited.ending, Ending::Succeeded(_) | Ending::Failed(_)) {
            cleanup.unfinished.clear();
        }
        let interrupted = waited.ending == Ending::Interrupted;
        let mut seen = vec![None; made.applied.len()];
        for ((a, _), state) in watched.iter().zip(waited.workloads) {
            seen[*a] = state;
        }
        let pod_states = pods.clone();
        if let Some(sampled) = sampled {
            self.measure(sampled, &pod_states, &mut result);
        }
        let evidence = self.collect_into(&mut result, &namespace, &made.applied, (seen, Some(pods)), interrupted).await;
        let ended = metrics::Ended::of(&waited.ending);
        let (mut outcome, mut class, mut reason) =
            self.judge(waited.ending, &pod_states, &evidence, &mut result.unoffered).await;
        if outcome == Outcome::Passed && !case.checks.is_empty() {
            let workload = watched.first().map(|(a, _)| &made.applied[*a]);
            if let Some((o, c, r)) = self.run_checks(&namespace, workload, &pod_states, &mut result).await {
                (outcome, class, reason) = (o, c, r);
            }
        }
        if let Some(stop) = self.metrics_after((before, workload), &namespace, ended, outcome, &mut result).await {
            (outcome, class, reason) = stop;
        }
        let class = class.map(|c| classify::with_rules(self.rules, &reason, &evidence.events, c));
        if outcome != Outcome::Passed {
            result.log_tail = evidence.failing_tail(30);
        }
        let reason = smoke_tested(&result, reason);
        result.finish_as(outcome, class, Some(reason));
        (result, Some(cleanup))
    }

    /// The snapshot of the metrics `assertions` read, before anything is applied, and the
    /// case's window among the run's; none to read (`Some(None)`), or the case ended as an
    /// error naming the route that could not be read (`None`).
    pub(super) async fn metrics_before(
        &self,
        assertions: &[MetricAssertion],
        result: &mut CaseResult,
    ) -> Option<Option<(usize, metrics::Snapshot)>> {
        if assertions.is_empty() {
            return Some(None);
        }
        let window = self.windows.open(&self.case.name);
        match metrics::before(self.cluster, assertions, self.metric_settings).await {
            Ok(snapshot) => {
                if let Err(e) = metrics::keep(&self.dir, "before", &snapshot) {
                    result.collect_problems.push(format!("metrics evidence: {e}"));
                }
                Some(Some((window, snapshot)))
            }
            Err(e) => {
                self.windows.close(window);
                result.finish_as(Outcome::Error, Some(FailureClass::Infrastructure), Some(e.to_string()));
                None
            }
        }
    }

    /// The snapshot after the verdict (the operators' read now, the workload's as it last
    /// answered) and the assertions judged; a new stop when one failed (the case passed
    /// otherwise) or the metrics could not be read.
    async fn metrics_after(
        &self,
        (before, workload): (Option<(usize, metrics::Snapshot)>, metrics::WorkloadReader<'_>),
        namespace: &str,
        ended: metrics::Ended,
        outcome: Outcome,
        result: &mut CaseResult,
    ) -> Option<Stop> {
        let (window, mut before) = before?;
        let read = metrics::after(self.cluster, &self.case.metrics, self.metric_settings).await;
        let overlapping = self.windows.close(window);
        let infrastructure =
            |e: metrics::MetricsError| Some((Outcome::Error, Some(FailureClass::Infrastructure), e.to_string()));
        let (mut after, notes) = match read {
            Ok(read) => read,
            Err(e) => return infrastructure(e),
        };
        if let Err(e) = metrics::keep(&self.dir, "after", &after) {
            result.collect_problems.push(format!("metrics evidence: {e}"));
        }
        result.collect_problems.extend(notes);
        match workload.finish() {
            Ok((workload_before, workload_after, notes)) => {
                before.extend(workload_before);
                after.extend(workload_after);
                result.collect_problems.extend(notes);
            }
            Err(e) => return infrastructure(e),
        }
        let checks =
            metrics::judge(&self.case.metrics, (&before, &after), (namespace, &self.case.id), ended, &overlapping);
        result.steps.extend(checks.iter().map(metrics::step));
        let failed = checks.iter().find(|c| c.verdict == "failed" || c.verdict == "error").cloned();
        result.metrics = checks;
        let failed = failed.filter(|_| outcome == Outcome::Passed)?;
        let why = format!(
            "metric assertion {:?} did not hold: {}",
            failed.name,
            metrics::step(&failed).detail.unwrap_or_default()
        );
        let class = if failed.verdict == "error" { FailureClass::Infrastructure } else { FailureClass::Test };
        Some((if failed.verdict == "error" { Outcome::Error } else { Outcome::Failed }, Some(class), why))
    }

    /// What a case that knows its pods only by its namespace (a scenario, a notebook) used:
    /// the pods there now (those its steps deleted no more measured), as `measure`.
    pub(super) async fn measure_namespace(
        &self,
        sampled: Option<usage::Registration>,
        namespace: &str,
        result: &mut CaseResult,
    ) {
        let Some(sampled) = sampled else { return };
        match self.cluster.list_pods(namespace, None).await {
            Ok(pods) => self.measure(sampled, &pods, result),
            Err(e) => result.collect_problems.push(format!("usage: {}", e.message)),
        }
    }

    /// What `pods`' containers used, from the samples of the case's registration (kept as
    /// evidence, `usage-samples.json`); sampling stops here, with the workloads ended.
    pub(super) fn measure(&self, sampled: usage::Registration, pods: &[Pod], result: &mut CaseResult) {
        let samples = sampled.take();
        result.usage = usage::usage_of(&samples, pods, jiff::Timestamp::now().as_millisecond());
        if let Some(first) = samples.failed_scrapes.first() {
            let failures = samples.failures;
            result.collect_problems.push(format!("usage sampling: {failures} failed reads, the first: {first}"));
        }
        let kept = serde_json::to_vec_pretty(&samples).map_err(std::io::Error::other).and_then(|json| {
            std::fs::create_dir_all(&self.dir)?;
            std::fs::write(self.dir.join("usage-samples.json"), json)
        });
        if let Err(e) = kept {
            result.collect_problems.push(format!("usage-samples.json: {e}"));
        }
    }

    /// The case's objects as the cluster can take them. When they ask for an extended
    /// resource no node offers, none (the case skipped, never retried: no retry gives the
    /// cluster a GPU), or with `gpu: cpu` a copy without it, the case a CPU smoke test.
    async fn fit_to_cluster(&self, result: &mut CaseResult) -> Option<Cow<'_, [Document]>> {
        let objects = &self.case.objects;
        let asked = extended::asked(&objects.iter().map(|d| &d.value).collect::<Vec<_>>());
        let missing = self.to_strip(asked, result).await?;
        if missing.is_empty() {
            return Some(Cow::Borrowed(objects));
        }
        let mut values: Vec<Value> = objects.iter().map(|d| d.value.clone()).collect();
        result.cpu_smoke = extended::strip_for_cpu(&mut values, &missing, self.gpu);
        let fitted = objects.iter().zip(values).map(|(d, value)| Document { value, ..d.clone() }).collect();
        Some(Cow::Owned(fitted))
    }

    /// Of the extended resources a case asks for, those no node offers, which a CPU smoke test
    /// is to remove (none: run as written). `None` when the case ended here: skipped (never
    /// retried: no retry gives the cluster a GPU), or an error when the nodes could not be read.
    pub(super) async fn to_strip(&self, asked: BTreeSet<String>, result: &mut CaseResult) -> Option<BTreeSet<String>> {
        let missing = match self.unoffered(asked).await {
            Ok(missing) if missing.is_empty() => return Some(missing),
            Ok(missing) => missing,
            Err(e) => {
                result.finish(Outcome::Error, Some(format!("could not see what the nodes offer: {e}")));
                return None;
            }
        };
        result.unoffered = missing.iter().cloned().collect();
        if self.case.gpu == GpuMode::Skip {
            result.finish(Outcome::Skipped, Some(extended::skip_reason(&missing)));
            return None;
        }
        Some(missing)
    }

    /// Of these extended resources, those no node offers (nodes listed only when there are some).
    pub(super) async fn unoffered(&self, asked: BTreeSet<String>) -> Result<BTreeSet<String>, ApiError> {
        if asked.is_empty() {
            return Ok(asked);
        }
        let offered = extended::offered(&self.cluster.node_allocatable().await?);
        Ok(asked.difference(&offered).cloned().collect())
    }

    /// Applies the case's objects, cluster-scoped ones first (namespaced ones often refer to
    /// them); none, with the result finished, when the cluster would not take one.
    async fn apply_objects(
        &self,
        objects: &[Document],
        namespace: &str,
        result: &mut CaseResult,
        cleanup: &mut Cleanup,
    ) -> Option<Made> {
        let case = self.case;
        let mut made = Made { applied: Vec::new(), index: vec![None; objects.len()] };
        let mut order: Vec<(bool, usize)> = Vec::new();
        for (i, object) in objects.iter().enumerate() {
            let doc = &object.value;
            match self.cluster.kind(doc["apiVersion"].as_str().unwrap_or(""), doc["kind"].as_str().unwrap_or("")).await
            {
                Ok(k) => order.push((k.namespaced, i)),
                Err(e) => {
                    let reason = format!("apply: {e}");
                    let class = classify::with_rules(self.rules, &reason, &[], classify::rejected(&e));
                    result.finish_as(outcome_of(class), Some(class), Some(reason));
                    return None;
                }
            }
        }
        // false sorts first: cluster-scoped, then namespaced, each in file order.
        order.sort();
        for (namespaced, i) in order {
            // Cluster-scoped objects outlive the namespace: labelled, `kubevet clean` finds them.
            let mut object = objects[i].value.clone();
            if !namespaced {
                for (key, value) in &self.labels() {
                    object["metadata"]["labels"][key] = serde_json::json!(value);
                }
            }
            match self.cluster.apply(&object, Some(namespace)).await {
                Ok(a) => {
                    if a.namespace.is_none() {
                        result.cluster_scoped.push(format!("{}/{}", a.kind.resource.kind, a.name));
                        cleanup.cluster_scoped.push(a.clone());
                    }
                    if case.workloads.iter().any(|w| w.object == i) {
                        cleanup.unfinished.push(a.clone());
                    }
                    made.index[i] = Some(made.applied.len());
                    made.applied.push(a);
                }
                Err(e) => {
                    let line = objects[i].line;
                    let reason = format!("apply ({}:{line}): {e}", case.name);
                    let evidence = self.collect_into(result, namespace, &made.applied, (vec![], None), false).await;
                    let class = classify::with_rules(self.rules, &reason, &evidence.events, classify::rejected(&e));
                    result.finish_as(outcome_of(class), Some(class), Some(reason));
                    return None;
                }
            }
        }
        Some(made)
    }

    /// Watches the workloads to their verdict and times the scheduling and running phases;
    /// the pods as last seen.
    pub(super) async fn wait_for(
        &self,
        namespace: &str,
        applied: &[Applied],
        watched: &[(usize, &Profile)],
        timeout: Duration,
        result: &mut CaseResult,
    ) -> (Waited, Vec<Pod>) {
        let case = self.case;
        let clock = Instant::now();
        self.progress.phase(&case.name, "scheduling");
        let on_running = || self.progress.phase(&case.name, "running");
        let mut waited = Wait {
            cluster: self.cluster,
            namespace,
            workloads: watched.iter().map(|(a, profile)| (&applied[*a], *profile)).collect(),
            timeout,
            grace: self.defaults.failure_grace.0,
            cancel: self.cancel.clone(),
            on_running: Some(&on_running),
        }
        .run()
        .await;
        let ended = matches!(waited.ending, Ending::Succeeded(_) | Ending::Failed(_));
        let mut pods = std::mem::take(&mut waited.pods);
        let mut running_since = waited.running_since;
        let stale = pods
            .iter()
            .any(|p| !matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed")));
        if ended && (running_since.is_none() || stale) {
            // The workload's watch and the pod watch are separate streams: a workload can be seen
            // to end before any event of its pods, or before their last (an OOM kill's reason).
            // They are then listed once, so that no log goes missing and the verdict, class and
            // figures read the pods as they ended; the running phase, when no pod was seen to
            // run, is timed by the containers' own start and finish.
            match self.cluster.list_pods(namespace, None).await {
                Ok(listed) => pods = listed,
                // With no pod seen at all, nothing could be judged by its pods or logs.
                Err(e) if pods.is_empty() => {
                    waited.ending = Ending::Broken(format!("the workload ended, but its pods could not be listed: {e}"))
                }
                Err(e) => {
                    result.collect_problems.push(format!("listing the pods after the end (kept the watch's): {e}"))
                }
            }
            if running_since.is_none() {
                running_since =
                    container_run_time(&pods).and_then(|ran| Instant::now().checked_sub(ran)).map(|s| s.max(clock));
            }
        }
        match running_since {
            Some(running) if running > clock => {
                result.phases.push(Phase { name: "scheduling".into(), seconds: (running - clock).as_secs_f64() });
                result.phases.push(Phase::since("running", running));
            }
            Some(_) => result.phases.push(Phase::since("running", clock)),
            None => result.phases.push(Phase::since("scheduling", clock)),
        }
        result.ended = Some(std::time::SystemTime::now());
        (waited, pods)
    }

    /// The verdict from how the wait ended, the pods and the evidence (log assertions);
    /// `unoffered` gets what a pod that could not be scheduled asks for and no node offers.
    pub(super) async fn judge(
        &self,
        ending: Ending,
        pods: &[Pod],
        evidence: &Evidence,
        unoffered: &mut Vec<String>,
    ) -> Stop {
        use FailureClass::{Infrastructure, Test, Timeout};
        match (ending, self.case.expect) {
            (Ending::Succeeded(why), Expect::Success) => match self.check_logs(evidence) {
                Ok(()) => (Outcome::Passed, None, why),
                Err((Outcome::Error, e)) => (Outcome::Error, Some(Infrastructure), e),
                Err((outcome, e)) => (outcome, Some(Test), e),
            },
            (Ending::Succeeded(why), Expect::Failure) => {
                (Outcome::Failed, Some(Test), format!("expected a failure, but it succeeded: {why}"))
            }
            (Ending::Failed(why), Expect::Failure) => (Outcome::Passed, None, format!("failed as expected: {why}")),
            (Ending::Failed(why), _) => {
                // The workload's own reason names what failed in its terms (a JobSet's Job);
                // the container that failed it is added when the reason does not name its pod.
                let why = match classify::failing_container(pods) {
                    Some(failing)
                        if !pods.iter().any(|p| p.metadata.name.as_deref().is_some_and(|n| why.contains(n))) =>
                    {
                        format!("{why} ({failing})")
                    }
                    _ => why,
                };
                (Outcome::Failed, Some(classify::failed(pods, &evidence.events)), why)
            }
            (Ending::Stuck(stuck), _) => {
                // A pod an operator made from a template the example does not hold (a
                // runtime's) can ask for a GPU too: skipped then, as if the example had.
                if stuck.reason == "Unschedulable"
                    && let Ok(values) = pods
                        .iter()
                        .filter(|p| p.metadata.name.as_deref() == Some(stuck.pod.as_str()))
                        .map(serde_json::to_value)
                        .collect::<Result<Vec<_>, _>>()
                    && let Ok(missing) = self.unoffered(extended::asked(&values.iter().collect::<Vec<_>>())).await
                    && !missing.is_empty()
                {
                    *unoffered = missing.iter().cloned().collect();
                    let mut why = extended::skip_reason(&missing);
                    if self.case.gpu == GpuMode::Cpu {
                        why.push_str(
                            " (a CPU smoke test cannot remove it: the cluster gave it to the pod, not the example)",
                        );
                    }
                    return (Outcome::Skipped, None, why);
                }
                let mut class = classify::stuck(&stuck);
                let mut why = stuck.to_string();
                // Not enough room: the cluster's, unless the pod asks for more than any node has.
                if stuck.reason == "Unschedulable"
                    && stuck.message.contains("Insufficient")
                    && let Ok(nodes) = self.cluster.node_allocatable().await
                    && let Some(beyond) = classify::beyond_every_node(pods, &nodes)
                {
                    class = FailureClass::Example;
                    why = format!("{why} ({beyond})");
                }
                (Outcome::Failed, Some(class), why)
            }
            (Ending::TimedOut(why), _) => (Outcome::Failed, Some(Timeout), why),
            (Ending::Interrupted, _) => (Outcome::Interrupted, None, "interrupted while it ran".into()),
            (Ending::Broken(why), _) => (Outcome::Error, Some(Infrastructure), why),
        }
    }

    /// The case's checks, once its workload passed: the first one that did not pass decides
    /// (none when all passed). The workload is read once more for them: a failed read is an
    /// error of the case, never checks judged against nothing.
    async fn run_checks(
        &self,
        namespace: &str,
        workload: Option<&Applied>,
        pods: &[Pod],
        result: &mut CaseResult,
    ) -> Option<Stop> {
        let case = self.case;
        self.progress.phase(&case.name, "checks");
        let object = match workload {
            Some(w) => match self.cluster.get(w).await {
                Ok(object) => object,
                Err(e) => {
                    let why = format!("checks not run: reading {} {} failed: {e}", w.kind.resource.kind, w.name);
                    return Some((Outcome::Error, Some(FailureClass::Infrastructure), why));
                }
            },
            None => Value::Null,
        };
        let pods = serde_json::to_value(pods).unwrap_or(Value::Null);
        let scope = Scope {
            cluster: self.cluster,
            namespace,
            case: &case.name,
            run_id: self.run_id,
            artifacts: &result.artifacts,
            replica_label: case.workloads.first().and_then(|w| w.profile.replica_label.as_deref()),
            cancel: self.cancel.clone(),
        };
        let clock = Instant::now();
        let (reports, first_bad) = checks::run(&scope, &case.checks, &object, &pods).await;
        result.phases.push(Phase::since("checks", clock));
        result.steps = reports;
        match first_bad {
            Some((name, Verdict::Failed(why, failed_class))) => {
                Some((Outcome::Failed, Some(failed_class), format!("check {name:?} failed: {why}")))
            }
            Some((name, Verdict::Error(why))) => Some((
                Outcome::Error,
                Some(FailureClass::Infrastructure),
                format!("check {name:?} could not be judged: {why}"),
            )),
            _ => None,
        }
    }

    /// `seen`: what the watches already know (object states by index into `applied`, pods).
    pub(super) async fn collect_into(
        &self,
        result: &mut CaseResult,
        namespace: &str,
        applied: &[Applied],
        seen: (Vec<Option<Value>>, Option<Vec<Pod>>),
        hurry: bool,
    ) -> Evidence {
        let clock = Instant::now();
        self.progress.phase(&self.case.name, "collecting");
        let collect = Collect {
            cluster: self.cluster,
            dir: result.artifacts.clone(),
            namespace,
            applied,
            seen: seen.0,
            pods: seen.1,
            replica_label: self.case.workloads.first().and_then(|w| w.profile.replica_label.as_deref()),
            log_limit: self.defaults.log_limit_bytes,
            events_of: None,
        }
        .run();
        let evidence = if hurry {
            tokio::time::timeout(INTERRUPT_COLLECT_GRACE, collect).await.unwrap_or_default()
        } else {
            collect.await
        };
        result.pods = evidence.pods.clone();
        result.collect_problems = evidence.problems.clone();
        result.phases.push(Phase::since("collecting", clock));
        evidence
    }

    fn check_logs(&self, evidence: &Evidence) -> Result<(), (Outcome, String)> {
        // A log the cluster would not give cannot be judged: neither a pass (a `notMatches`
        // would hold on nothing) nor a failure of the example.
        if !self.case.logs.is_empty()
            && let Some(unread) = evidence.logs.iter().find_map(|l| l.unreadable.as_ref())
        {
            return Err((Outcome::Error, format!("log assertions not checked: {unread}")));
        }
        let sources: Vec<LogSource<'_>> = evidence
            .logs
            .iter()
            .map(|l| LogSource { pod: &l.pod, container: &l.container, replica: l.replica.as_deref(), text: &l.text })
            .collect();
        self.case.logs.iter().try_for_each(|a| a.evaluate(&sources)).map_err(|e| (Outcome::Failed, e))
    }
}

/// An apply the cluster did not take: the case is unjudged when the cluster failed (after
/// its retries, or a quota), a failure of the example when the server rejected it.
/// A verdict's reason, saying first when the case ran as a CPU smoke test and without what.
pub(super) fn smoke_tested(result: &CaseResult, reason: String) -> String {
    if result.cpu_smoke.is_empty() {
        reason
    } else {
        format!("CPU smoke test (without {}): {reason}", result.cpu_smoke.join(", "))
    }
}

fn outcome_of(class: FailureClass) -> Outcome {
    if class == FailureClass::Infrastructure { Outcome::Error } else { Outcome::Failed }
}

/// From the first container start to the last container finish among the pods, by the
/// kubelet's own clock.
fn container_run_time(pods: &[Pod]) -> Option<Duration> {
    let states = pods
        .iter()
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| s.init_container_statuses.iter().flatten().chain(s.container_statuses.iter().flatten()))
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref());
    let (mut first, mut last) = (None, None);
    for t in states {
        if let (Some(start), Some(end)) = (&t.started_at, &t.finished_at) {
            first = Some(first.map_or(start.0, |f: jiff::Timestamp| f.min(start.0)));
            last = Some(last.map_or(end.0, |l: jiff::Timestamp| l.max(end.0)));
        }
    }
    let ran = last?.duration_since(first?);
    Duration::try_from(ran).ok()
}
