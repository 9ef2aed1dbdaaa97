//! One pipeline case, run in Kubeflow Pipelines: KFP's health first (unreachable or unhealthy
//! is the infrastructure's fault), the pipeline uploaded as a version named by its content
//! hash (an unchanged pipeline reuses its version) or, for a pipeline already in KFP, its
//! newest or pinned version resolved now; a run in the suite's experiment with the typed
//! parameters; then the run's Argo `Workflow` watched (label `pipeline/runid`) to its end —
//! KFP's API is polled, with backoff, only when the cluster does not serve Workflows — and the
//! run read once from KFP for the verdict. A timeout or an interrupt terminates the run. The
//! evidence is the run, the Workflow, every pod's logs and their events; the run and what was
//! uploaded are deleted after, unless `--keep-on-failure` keeps a failed case's.

mod evidence;
mod follow;
mod publish;
mod tasks;

use std::{borrow::Cow, time::Duration};

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{
    case::{self, CaseRun, Cleanup, INTERRUPT_COLLECT_GRACE},
    extended,
};
use crate::{
    cluster::kfp::{Kfp, KfpError},
    images,
    outcome::{CaseResult, Outcome, Phase, PipelineRun, TaskRow},
    plan::{Case, PipelineCase, PipelineSource, pipeline},
    suite::{Expect, FailureClass, images::Retag, pipelines::PipelineSettings},
    util::{
        duration::{Backoff, deadline},
        ids::kfp_name,
    },
};
use follow::{Followed, phase_of, terminal_state};

const API: &str = "/apis/v2beta1";

/// A pipeline case stopped before its verdict: outcome, class, reason.
type Stop = (Outcome, Option<FailureClass>, String);

fn infrastructure(what: &str, e: &KfpError) -> Stop {
    (Outcome::Error, Some(FailureClass::Infrastructure), format!("{what}: {e}"))
}

/// A KFP answer in the 4xx range is KFP refusing what the example gave it; anything else is
/// the infrastructure failing.
fn refused_or_infrastructure(what: &str, e: &KfpError) -> Stop {
    match e.status {
        Some(s) if (400..500).contains(&s) && s != 429 => {
            (Outcome::Failed, Some(FailureClass::Example), format!("{what}: KFP refused it: {e}"))
        }
        _ => infrastructure(what, e),
    }
}

/// A Python pipeline compiled (or found in the compile cache) and read.
async fn compile(source: &std::path::Path, sdk: &str) -> Result<(PipelineSource, bool), pipeline::CompileError> {
    let (file, hit) = pipeline::compile(source, sdk).await?;
    tracing::info!(pipeline = %source.display(), compiled = %file.display(), cache = if hit { "hit" } else { "miss" }, "pipeline compiled");
    Ok((pipeline::read_compiled(&file)?, hit))
}

/// Before the cells: Python pipelines compiled (or taken from the cache), every compiled
/// pipeline's parameters typed, and the built images swapped into executors.
pub async fn prepare(cases: &mut [Case], retags: &[Retag], settings: &PipelineSettings) {
    let python =
        cases.iter().any(|c| c.pipeline.as_ref().is_some_and(|p| matches!(p.source, PipelineSource::Python(_))));
    // One SDK check for every Python pipeline; its failure is each one's problem.
    let sdk = if python { Some(pipeline::sdk_version().await.map_err(|e| e.to_string())) } else { None };
    for case in cases.iter_mut() {
        let Some(p) = case.pipeline.as_mut() else { continue };
        let p = std::sync::Arc::make_mut(p);
        if let PipelineSource::Python(source) = &p.source {
            let compiled = match &sdk {
                Some(Ok(version)) => compile(source, version).await.map_err(|e| e.to_string()),
                Some(Err(e)) => Err(e.clone()),
                None => continue,
            };
            match compiled {
                Ok((source, hit)) => {
                    p.source = source;
                    p.compiled_from_cache = Some(hit);
                }
                Err(e) => {
                    case.problem = Some(e);
                    continue;
                }
            }
        }
        if let PipelineSource::Compiled { spec, .. } = &mut p.source {
            images::rewrite_pipeline(spec, retags);
            if !settings.caching_for(&case.name) {
                p.caching_turned_off = Some(pipeline::without_cache(spec));
            }
            // A compiled file's parameters were checked when it was planned; a Python
            // pipeline's can be only now.
            if p.compiled_from_cache.is_some()
                && let Err(problems) = pipeline::typed_parameters(spec, &p.parameters)
            {
                case.problem = Some(pipeline::problems_line(&problems));
            }
        }
    }
}

/// What this case made in KFP, to delete after it.
#[derive(Default)]
struct Made {
    pipeline_id: Option<String>,
    version_id: Option<String>,
    run_id: Option<String>,
    /// The pipeline the case's version belongs to, made by it or not.
    used_pipeline: String,
}

impl CaseRun<'_> {
    pub(super) async fn run_pipeline(self, p: &PipelineCase) -> (CaseResult, Option<Cleanup>) {
        let case = self.case;
        let mut result = CaseResult::new(case, self.dir.clone());
        result.pipeline = Some(PipelineRun {
            pipeline: p.name.clone(),
            compiled: p.compiled_from_cache.map(|hit| if hit { "cache hit" } else { "compiled now" }.into()),
            ..Default::default()
        });
        let Some(p) = self.fit_pipeline(p, &mut result).await else { return (result, None) };
        let p = p.as_ref();
        let kfp = match self.cluster.kfp(self.pipelines) {
            Ok(k) => k,
            Err(e) => {
                result.finish_as(Outcome::Error, Some(FailureClass::Infrastructure), Some(e.to_string()));
                return (result, None);
            }
        };
        let mut made = Made::default();
        let (outcome, class, reason) = match self.pipeline_steps(&kfp, p, &mut result, &mut made).await {
            Ok(verdict) | Err(verdict) => verdict,
        };
        let reason = case::smoke_tested(&result, reason);
        let failed = outcome.is_failure();
        self.pipeline_cleanup(&kfp, &made, failed, &mut result).await;
        if let Some(run) = result.pipeline.as_mut() {
            run.requests = kfp.requests();
        }
        result.finish_as(outcome, class, Some(reason));
        (result, None)
    }

    /// A compiled pipeline as the cluster can run it: when its tasks ask for an accelerator
    /// no node offers, none (skipped before anything is uploaded) or, with `gpu: cpu`, a copy
    /// without it, a CPU smoke test. A pipeline already in KFP is run as it is.
    async fn fit_pipeline<'p>(&self, p: &'p PipelineCase, result: &mut CaseResult) -> Option<Cow<'p, PipelineCase>> {
        let PipelineSource::Compiled { spec, .. } = &p.source else { return Some(Cow::Borrowed(p)) };
        let missing = self.to_strip(extended::pipeline_accelerators(spec), result).await?;
        if missing.is_empty() {
            return Some(Cow::Borrowed(p));
        }
        let mut fitted = p.clone();
        if let PipelineSource::Compiled { spec, .. } = &mut fitted.source {
            result.cpu_smoke = extended::strip_pipeline_accelerators(spec, &missing);
        }
        Some(Cow::Owned(fitted))
    }

    /// Everything up to the verdict; an `Err` stopped early.
    async fn pipeline_steps(
        &self,
        kfp: &Kfp,
        p: &PipelineCase,
        result: &mut CaseResult,
        made: &mut Made,
    ) -> Result<Stop, Stop> {
        let clock = Instant::now();
        self.progress.phase(&self.case.name, "upload");
        let run_id = self.start_run(kfp, p, result, made).await?;
        result.phases.push(Phase::since("upload", clock));
        let clock = Instant::now();
        self.progress.phase(&self.case.name, "running");
        // The run's pods are KFP's, in its namespace beside other runs': those the watch sees.
        let sampled = self.usage.register_pods(&kfp.namespace);
        let (followed, workflow, pods) = self.follow(kfp, &run_id, sampled.as_ref(), result).await;
        if let Some(sampled) = sampled {
            self.measure(sampled, &pods, result);
        }
        result.phases.push(Phase::since("running", clock));
        let clock = Instant::now();
        self.progress.phase(&self.case.name, "collecting");
        // What was still running is what the last snapshot before `:terminate` shows: after
        // it, the stopped tasks read Failed. A task whose driver still runs is running too.
        let mut still_running: Vec<String> = tasks::nodes(&workflow)
            .map(|nodes| tasks::table(&nodes, &[]))
            .unwrap_or_default()
            .into_iter()
            .filter(|t| matches!(t.state.as_str(), "Running" | "Pending"))
            .map(|t| t.task)
            .collect();
        still_running.sort();
        still_running.dedup();
        let mut stopped_note = String::new();
        let settled = match &followed {
            Followed::Ended => Some(self.settle(kfp, &run_id, &workflow, result).await),
            Followed::Broken(_) => None,
            Followed::TimedOut | Followed::Interrupted | Followed::Stuck(_) => {
                stopped_note = match kfp.post(&format!("{API}/runs/{run_id}:terminate"), &json!({})).await {
                    Ok(_) => "; the run was terminated".into(),
                    Err(e) => format!(" (terminating the run failed: {e})"),
                };
                None
            }
        };
        let run = match &settled {
            Some(Ok(s)) => s.run.clone(),
            _ => Value::Null,
        };
        let collect = self.pipeline_evidence(kfp, &run_id, &run, &workflow, result);
        let evidence = match followed {
            // An interrupted run collects what it can in a short while.
            Followed::Interrupted => tokio::time::timeout(INTERRUPT_COLLECT_GRACE, collect).await.unwrap_or_default(),
            _ => collect.await,
        };
        result.phases.push(Phase::since("collecting", clock));
        let failing = result.tasks.iter().find(|t| t.role == "task" && matches!(t.state.as_str(), "Failed" | "Error"));
        let failing_pod = failing.and_then(|t| t.pod.clone());
        let verdict = match followed {
            Followed::Stuck(why) => {
                (Outcome::Failed, Some(super::classify::stuck(&why)), format!("{why}{stopped_note}"))
            }
            Followed::Interrupted => (Outcome::Interrupted, None, format!("interrupted while it ran{stopped_note}")),
            Followed::Broken(why) => (Outcome::Error, Some(FailureClass::Infrastructure), why),
            Followed::TimedOut => {
                let running = if still_running.is_empty() { "none".to_string() } else { still_running.join(", ") };
                let why = format!(
                    "the pipeline run did not end within {}{stopped_note}; tasks still running: {running}",
                    self.case.timeout
                );
                (Outcome::Failed, Some(FailureClass::Timeout), why)
            }
            Followed::Ended => match settled {
                Some(Ok(settled)) => self.judge_ended(&settled, &workflow, result),
                Some(Err(stop)) => stop,
                None => (Outcome::Error, Some(FailureClass::Infrastructure), "the run was not settled".into()),
            },
        };
        if verdict.0 != Outcome::Passed {
            result.log_tail = evidence.tail_of(failing_pod.as_deref(), "main", 30);
        }
        Ok(verdict)
    }

    /// KFP's health, the version to run, its typed parameters and the experiment; then the
    /// run, whose id comes back.
    async fn start_run(
        &self,
        kfp: &Kfp,
        p: &PipelineCase,
        result: &mut CaseResult,
        made: &mut Made,
    ) -> Result<String, Stop> {
        let case = self.case;
        let health = kfp.get(&format!("{API}/healthz")).await.map_err(|e| {
            infrastructure(&format!("KFP is unreachable or unhealthy (GET {API}/healthz on the {})", kfp.shown), &e)
        })?;
        let multi_user = health["multi_user"] == true;
        if multi_user && kfp.identity.is_none() && !kfp.has_token() {
            return Err((
                Outcome::Error,
                Some(FailureClass::Infrastructure),
                format!(
                    "KFP ({}) runs in multi-user mode, and kubevet was given no identity to act as: set pipelines.user (sent as header kubeflow-userid, or pipelines.userHeader), or an endpoint with pipelines.tokenEnv or tokenFile; and pipelines.namespace to the user's profile namespace",
                    kfp.shown
                ),
            ));
        }
        let (pipeline_id, version_id, spec) = self.pipeline_version(kfp, p, result, made).await?;
        made.used_pipeline = pipeline_id.clone();
        let parameters = pipeline::typed_parameters(&spec, &p.parameters)
            .map_err(|problems| (Outcome::Failed, Some(FailureClass::Example), pipeline::problems_line(&problems)))?;
        let experiment_id = self.experiment(kfp, multi_user).await?;
        let body = json!({
            "display_name": kfp_name(&format!("{}-{}", case.id, self.run_id)),
            "description": format!("kubevet case {} of run {}", case.name, self.run_id),
            "experiment_id": experiment_id,
            "pipeline_version_reference": {"pipeline_id": pipeline_id, "pipeline_version_id": version_id},
            "runtime_config": {"parameters": parameters},
        });
        let created = kfp
            .post(&format!("{API}/runs"), &body)
            .await
            .map_err(|e| refused_or_infrastructure("creating the run", &e))?;
        let Some(run_id) = created["run_id"].as_str().filter(|id| !id.is_empty()).map(str::to_string) else {
            return Err((
                Outcome::Error,
                Some(FailureClass::Infrastructure),
                format!("KFP created the run but gave no run_id: {created}"),
            ));
        };
        made.run_id = Some(run_id.clone());
        if let Some(r) = result.pipeline.as_mut() {
            r.run_id = Some(run_id.clone());
            r.caching_turned_off = p.caching_turned_off;
        }
        Ok(run_id)
    }

    /// After the Workflow ended: KFP's run state, once KFP reports it final, for up to
    /// `pipelines.stateLag`. Between reads kubevet watches the Workflow (KFP's persistence
    /// agent labels it `pipeline/persistedFinalState` when it has reported), with a slow
    /// backoff as a net. A failed read keeps the last good one; none good is an error naming
    /// the cause.
    async fn settle(
        &self,
        kfp: &Kfp,
        run_id: &str,
        workflow: &Value,
        result: &mut CaseResult,
    ) -> Result<Settled, Stop> {
        let ended = Instant::now();
        let give_up = deadline(self.pipelines.state_lag.0);
        let selector = format!("pipeline/runid={run_id}");
        let kind = self.cluster.kind("argoproj.io/v1alpha1", "Workflow").await.ok();
        let mut changes = match &kind {
            Some(kind) => self.cluster.watch_matching(kind, &kfp.namespace, None, Some(&selector)).boxed(),
            None => futures::stream::pending().boxed(),
        };
        let mut cancel = self.cancel.clone();
        let mut last_good: Option<Value> = None;
        // Every read sets it: none after a good read, the cause after a failed one.
        let mut last_error: Option<KfpError>;
        let mut wait = Backoff::new(Duration::from_secs(2), 200, Duration::from_secs(30));
        loop {
            match kfp.get(&format!("{API}/runs/{run_id}")).await {
                Ok(run) if terminal_state(run["state"].as_str().unwrap_or_default()) => {
                    let lag = ended.elapsed().as_secs_f64();
                    return Ok(Settled { run, lag, not_in_time: None });
                }
                Ok(run) => (last_good, last_error) = (Some(run), None),
                Err(e) => last_error = Some(e),
            }
            tokio::select! {
                Some(_) = changes.next() => {}
                _ = tokio::time::sleep(wait.next_wait()) => {}
                _ = tokio::time::sleep_until(give_up) => break,
                _ = cancel.wait_for(|c| *c) => break,
            }
        }
        let lag = ended.elapsed().as_secs_f64();
        if *self.cancel.borrow() {
            return Err((Outcome::Interrupted, None, "interrupted while KFP caught up with the run's end".into()));
        }
        match (last_good, last_error) {
            (Some(run), failing) => {
                let state = run["state"].as_str().unwrap_or("RUNTIME_STATE_UNSPECIFIED").to_string();
                // The last good read is kept; reads that failed after it are said, not hidden.
                let why = match failing {
                    None => format!("KFP still reported {state} {lag:.0} s after the Workflow ended"),
                    Some(e) => format!("KFP last reported {state}, then reading the run failed ({e})"),
                };
                let phase = phase_of(workflow);
                let stated =
                    format!("{why}; the Workflow ended {phase} (pipelines.stateLag {})", self.pipelines.state_lag);
                result.collect_problems.push(format!("{stated}: the Workflow's phase decided"));
                Ok(Settled { run, lag, not_in_time: Some(why) })
            }
            (None, Some(e)) => {
                Err(infrastructure(&format!("reading run {run_id} from KFP after the Workflow ended"), &e))
            }
            (None, None) => Err((Outcome::Error, Some(FailureClass::Infrastructure), "KFP was never read".into())),
        }
    }

    /// The verdict of a run whose Workflow ended: KFP's state when KFP reported in time, else
    /// the Workflow's phase; a failure names the failing task, or what failed when no user
    /// task did; a pass needs at least one task that ran, unless caching was asked for.
    fn judge_ended(&self, settled: &Settled, workflow: &Value, result: &mut CaseResult) -> Stop {
        let run_id = settled.run["run_id"].as_str().unwrap_or_default().to_string();
        let state = if settled.not_in_time.is_none() {
            settled.run["state"].as_str().unwrap_or("RUNTIME_STATE_UNSPECIFIED").to_string()
        } else {
            match phase_of(workflow) {
                "Succeeded" => "SUCCEEDED".to_string(),
                _ => "FAILED".to_string(),
            }
        };
        if let Some(r) = result.pipeline.as_mut() {
            r.state = settled.run["state"].as_str().map(str::to_string);
            r.state_lag_seconds = Some((settled.lag * 1000.0).round() / 1000.0);
            r.verdict_from = Some(if settled.not_in_time.is_none() { "kfp" } else { "workflow" }.into());
        }
        let lag_note = match &settled.not_in_time {
            None => String::new(),
            Some(why) => format!(" (by the Workflow's phase: {why})"),
        };
        let (why, class) = why_failed(&result.tasks, &settled.run, workflow);
        let ran = result.tasks.iter().filter(|t| t.role == "task" && t.attempts > 0).count();
        let cached: Vec<&str> = result.tasks.iter().filter(|t| t.cached).map(|t| t.task.as_str()).collect();
        let caching_asked = self.pipelines.caching_for(&self.case.name);
        match (state.as_str(), self.case.expect) {
            ("SUCCEEDED", Expect::Success) if ran == 0 && !cached.is_empty() && !caching_asked => (
                Outcome::Failed,
                Some(FailureClass::Example),
                format!(
                    "run {run_id} SUCCEEDED but no task executed: every task's outputs came from KFP's cache ({}); the pipeline compiles with caching on — compile it with caching off, or set pipelines.caching: true to accept cached runs",
                    cached.join(", ")
                ),
            ),
            ("SUCCEEDED", Expect::Success) => (Outcome::Passed, None, format!("run {run_id} SUCCEEDED{lag_note}")),
            ("SUCCEEDED", Expect::Failure) => (
                Outcome::Failed,
                Some(FailureClass::Test),
                format!("expected a failure, but the pipeline run SUCCEEDED{lag_note}"),
            ),
            (s, Expect::Failure) if terminal_state(s) => {
                (Outcome::Passed, None, format!("failed as expected: run {s}: {why}{lag_note}"))
            }
            (s, Expect::Success) if terminal_state(s) => {
                (Outcome::Failed, Some(class), format!("pipeline run {s}: {why}{lag_note}"))
            }
            (s, _) => (
                Outcome::Error,
                Some(FailureClass::Infrastructure),
                format!("the run's Workflow ended {} but KFP reports the run {s}", phase_of(workflow)),
            ),
        }
    }
}

/// What KFP said when the run settled, and how long after the Workflow's end.
struct Settled {
    run: Value,
    lag: f64,
    /// Why the Workflow's phase decides, when KFP reported no final state within
    /// `pipelines.stateLag`; none when KFP's state decides.
    not_in_time: Option<String>,
}

/// Why a run failed and whose fault: the user's failing task (`test`); else a driver or
/// system node, KFP's run `error` or the Workflow's `status.message` — KFP refusing the spec
/// before any node ran is the example's, its own machinery failing the infrastructure's.
fn why_failed(tasks: &[TaskRow], run: &Value, workflow: &Value) -> (String, FailureClass) {
    if let Some(t) = tasks.iter().find(|t| t.role == "task" && matches!(t.state.as_str(), "Failed" | "Error")) {
        let attempts = if t.attempts > 1 { format!(" (after {} attempts)", t.attempts) } else { String::new() };
        return (
            format!("task {} failed{attempts}: {}", t.task, t.message.as_deref().unwrap_or("no message")),
            FailureClass::Test,
        );
    }
    let nodes = tasks::nodes(workflow).unwrap_or_default();
    if let Some((node, message)) = tasks::failing_system_node(&nodes) {
        return (format!("{node} failed: {message}"), FailureClass::Infrastructure);
    }
    let run_error = run.pointer("/error/message").or_else(|| run.get("error")).and_then(Value::as_str);
    let workflow_message = workflow.pointer("/status/message").and_then(Value::as_str);
    let message = run_error.or(workflow_message).filter(|m| !m.is_empty());
    match message {
        // No task (nor its driver) ever started: KFP or Argo refused what the pipeline asks for.
        Some(m) if tasks.is_empty() => (format!("no task ran: {m}"), FailureClass::Example),
        Some(m) => (format!("no user task failed: {m}"), FailureClass::Infrastructure),
        None => (
            format!("no task failed and KFP gave no message (Workflow {})", phase_of(workflow)),
            FailureClass::Infrastructure,
        ),
    }
}
