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

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use super::case::{CaseRun, Cleanup, INTERRUPT_COLLECT_GRACE};
use crate::{
    cluster::kfp::{Kfp, KfpError},
    images,
    outcome::{CaseResult, Outcome, Phase, PipelineRun},
    plan::{Case, PipelineCase, PipelineSource, pipeline},
    suite::{Expect, FailureClass, images::Retag},
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

/// Before the cells: Python pipelines compiled (or taken from the cache), every compiled
/// pipeline's parameters typed, and the built images swapped into executors.
pub async fn prepare(cases: &mut [Case], retags: &[Retag]) {
    let python =
        cases.iter().any(|c| c.pipeline.as_ref().is_some_and(|p| matches!(p.source, PipelineSource::Python(_))));
    let sdk = if python { Some(pipeline::sdk_version().await) } else { None };
    for case in cases.iter_mut() {
        let Some(p) = case.pipeline.as_mut() else { continue };
        let p = std::sync::Arc::make_mut(p);
        if let PipelineSource::Python(source) = &p.source {
            let compiled = match &sdk {
                Some(Ok(version)) => pipeline::compile(source, version).await,
                Some(Err(e)) => Err(e.clone()),
                None => continue,
            };
            match compiled.and_then(|(file, hit)| {
                tracing::info!(pipeline = %source.display(), compiled = %file.display(), cache = if hit { "hit" } else { "miss" }, "pipeline compiled");
                pipeline::read_compiled(&file).map(|source| (source, hit))
            }) {
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
            compiled: p.compiled_from_cache.map(|hit| if hit { "cache hit" } else { "compiled now" }),
            ..Default::default()
        });
        let kfp = match self.cluster.kfp(self.pipelines) {
            Ok(k) => k,
            Err(e) => {
                result.finish_as(Outcome::Error, Some(FailureClass::Infrastructure), Some(e));
                return (result, None);
            }
        };
        let mut made = Made::default();
        let (outcome, class, reason) = match self.pipeline_steps(&kfp, p, &mut result, &mut made).await {
            Ok(verdict) | Err(verdict) => verdict,
        };
        let failed = outcome.is_failure();
        self.pipeline_cleanup(&kfp, &made, failed, &mut result).await;
        if let Some(run) = result.pipeline.as_mut() {
            run.requests = kfp.requests();
        }
        result.finish_as(outcome, class, Some(reason));
        (result, None)
    }

    /// Everything up to the verdict; an `Err` stopped early.
    async fn pipeline_steps(
        &self,
        kfp: &Kfp,
        p: &PipelineCase,
        result: &mut CaseResult,
        made: &mut Made,
    ) -> Result<Stop, Stop> {
        let case = self.case;
        let clock = Instant::now();
        self.progress.phase(&case.name, "upload");
        let health = kfp.get(&format!("{API}/healthz")).await.map_err(|e| {
            infrastructure(&format!("KFP is unreachable or unhealthy (GET {API}/healthz on the {})", kfp.shown), &e)
        })?;
        let multi_user = health["multi_user"] == true;
        let (pipeline_id, version_id, spec) = self.pipeline_version(kfp, p, result, made).await?;
        made.used_pipeline = pipeline_id.clone();
        let parameters = pipeline::typed_parameters(&spec, &p.parameters)
            .map_err(|problems| (Outcome::Failed, Some(FailureClass::Example), pipeline::problems_line(&problems)))?;
        let experiment_id = self.experiment(kfp, multi_user).await?;
        let body = json!({
            "display_name": format!("{} {}", case.id, self.run_id),
            "description": format!("kubevet case {} of run {}", case.name, self.run_id),
            "experiment_id": experiment_id,
            "pipeline_version_reference": {"pipeline_id": pipeline_id, "pipeline_version_id": version_id},
            "runtime_config": {"parameters": parameters},
        });
        let created = kfp
            .post(&format!("{API}/runs"), &body)
            .await
            .map_err(|e| refused_or_infrastructure("creating the run", &e))?;
        let run_id = created["run_id"].as_str().unwrap_or_default().to_string();
        made.run_id = Some(run_id.clone());
        if let Some(r) = result.pipeline.as_mut() {
            r.run_id = Some(run_id.clone());
        }
        result.phases.push(Phase::since("upload", clock));
        let clock = Instant::now();
        self.progress.phase(&case.name, "running");
        let (followed, workflow) = self.follow(kfp, &run_id, result).await;
        result.phases.push(Phase::since("running", clock));
        let clock = Instant::now();
        self.progress.phase(&case.name, "collecting");
        // The verdict is KFP's: its run state, read once (again, with backoff, for at most 30 s
        // while KFP's persistence agent catches up with the Workflow).
        let mut run = kfp.get(&format!("{API}/runs/{run_id}")).await.unwrap_or_default();
        let mut stopped_note = String::new();
        // What was still running is what the last snapshot before `:terminate` shows: after
        // it, the stopped tasks read Failed.
        let still_running: Vec<String> = evidence::tasks(&workflow, &[])
            .into_iter()
            .filter(|t| matches!(t.state.as_str(), "Running" | "Pending"))
            .map(|t| t.task)
            .collect();
        match followed {
            Followed::Ended => {
                let mut wait = Duration::from_millis(250);
                let give_up = Instant::now() + Duration::from_secs(30);
                while !terminal_state(run["state"].as_str().unwrap_or_default()) && Instant::now() < give_up {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                    run = kfp.get(&format!("{API}/runs/{run_id}")).await.unwrap_or_default();
                }
            }
            Followed::TimedOut | Followed::Interrupted | Followed::Stuck(_) => {
                if let Err(e) = kfp.post(&format!("{API}/runs/{run_id}:terminate"), &json!({})).await {
                    stopped_note = format!(" (terminating the run failed: {e})");
                } else {
                    stopped_note = "; the run was terminated".into();
                }
            }
        }
        let collect = self.pipeline_evidence(kfp, &run_id, &run, &workflow, result);
        let evidence = match followed {
            // An interrupted run collects what it can in a short while.
            Followed::Interrupted => tokio::time::timeout(INTERRUPT_COLLECT_GRACE, collect).await.unwrap_or_default(),
            _ => collect.await,
        };
        result.phases.push(Phase::since("collecting", clock));
        let state = run["state"].as_str().unwrap_or("RUNTIME_STATE_UNSPECIFIED").to_string();
        if let Some(r) = result.pipeline.as_mut() {
            r.state = Some(state.clone());
        }
        let failing = result.tasks.iter().find(|t| matches!(t.state.as_str(), "Failed" | "Error")).cloned();
        let verdict = match followed {
            Followed::Stuck(why) => {
                (Outcome::Failed, Some(super::classify::stuck(&why)), format!("{why}{stopped_note}"))
            }
            Followed::Interrupted => (Outcome::Interrupted, None, format!("interrupted while it ran{stopped_note}")),
            Followed::TimedOut => {
                let running = if still_running.is_empty() { "none".to_string() } else { still_running.join(", ") };
                (
                    Outcome::Failed,
                    Some(FailureClass::Timeout),
                    format!(
                        "the pipeline run did not end within {}{stopped_note}; tasks still running: {running}",
                        case.timeout
                    ),
                )
            }
            Followed::Ended => {
                let why = match &failing {
                    Some(t) => format!("task {} failed: {}", t.task, t.message.as_deref().unwrap_or("no message")),
                    None => phase_of(&workflow).to_string(),
                };
                match (state.as_str(), case.expect) {
                    ("SUCCEEDED", Expect::Success) => (Outcome::Passed, None, format!("run {run_id} SUCCEEDED")),
                    ("SUCCEEDED", Expect::Failure) => (
                        Outcome::Failed,
                        Some(FailureClass::Test),
                        "expected a failure, but the pipeline run SUCCEEDED".into(),
                    ),
                    (s, Expect::Failure) if terminal_state(s) => {
                        (Outcome::Passed, None, format!("failed as expected: run {s}: {why}"))
                    }
                    (s, Expect::Success) if terminal_state(s) => {
                        (Outcome::Failed, Some(FailureClass::Test), format!("pipeline run {s}: {why}"))
                    }
                    (s, _) => (
                        Outcome::Error,
                        Some(FailureClass::Infrastructure),
                        format!(
                            "the run's Workflow ended {} but KFP still reports the run {s} after 30 s",
                            phase_of(&workflow)
                        ),
                    ),
                }
            }
        };
        if verdict.0 != Outcome::Passed {
            result.log_tail = evidence.tail_of(failing.as_ref().and_then(|t| t.pod.as_deref()), "main", 30);
        }
        Ok(verdict)
    }
}
