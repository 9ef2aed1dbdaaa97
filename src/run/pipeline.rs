//! One pipeline case, run in Kubeflow Pipelines: KFP's health first (unreachable or unhealthy
//! is the infrastructure's fault), the pipeline uploaded as a version named by its content
//! hash (an unchanged pipeline reuses its version) or, for a pipeline already in KFP, its
//! newest or pinned version resolved now; a run in the suite's experiment with the typed
//! parameters; then the run's Argo `Workflow` watched (label `pipeline/runid`) to its end —
//! KFP's API is polled, with backoff, only when the cluster does not serve Workflows — and the
//! run read once from KFP for the verdict. A timeout or an interrupt terminates the run. The
//! evidence is the run, the Workflow, every pod's logs and their events; the run and what was
//! uploaded are deleted after, unless `--keep-on-failure` keeps a failed case's.

use std::time::{Duration, SystemTime};

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::case::{CaseRun, Cleanup, INTERRUPT_COLLECT_GRACE};
use crate::{
    cluster::{
        collect::{Collect, Evidence},
        kfp::{Kfp, KfpError, encode, filter_equals},
    },
    images,
    outcome::{CaseResult, Outcome, Phase, PipelineRun, TaskRow},
    plan::{Case, PipelineCase, PipelineSource, pipeline},
    suite::{Expect, FailureClass, images::Retag},
};

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
                Some(Err(e)) => Err(format!("{e}; Python pipelines are compiled with the KFP SDK: pip install kfp")),
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
            if case.problem.is_none()
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

/// How following the run ended.
enum Followed {
    Ended,
    TimedOut,
    Interrupted,
}

fn phase_of(workflow: &Value) -> &str {
    workflow.pointer("/status/phase").and_then(Value::as_str).unwrap_or("")
}

fn terminal_phase(phase: &str) -> bool {
    matches!(phase, "Succeeded" | "Failed" | "Error")
}

fn terminal_state(state: &str) -> bool {
    matches!(state, "SUCCEEDED" | "FAILED" | "CANCELED" | "SKIPPED")
}

/// A node's task: `<wf>.root.<task>.executor` (or `…<task>-driver`) names it.
fn task_of(node: &Value) -> String {
    let name = node["name"].as_str().unwrap_or_default();
    let inner = name.strip_suffix(".executor").unwrap_or(name);
    let task = inner.rsplit('.').next().unwrap_or(inner);
    if task.is_empty() { node["displayName"].as_str().unwrap_or_default().to_string() } else { task.to_string() }
}

/// The task table: one row per pod node of the Workflow, with the pod that ran it.
fn tasks(workflow: &Value, pods: &[k8s_openapi::api::core::v1::Pod]) -> Vec<TaskRow> {
    let mut rows: Vec<TaskRow> = workflow
        .pointer("/status/nodes")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|nodes| nodes.values())
        .filter(|n| n["type"] == "Pod")
        .map(|n| {
            let id = n["id"].as_str().unwrap_or_default();
            let pod = pods.iter().find(|p| {
                p.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("workflows.argoproj.io/node-id"))
                    .is_some_and(|x| x == id)
            });
            TaskRow {
                task: task_of(n),
                state: n["phase"].as_str().unwrap_or_default().to_string(),
                started: n["startedAt"].as_str().map(str::to_string),
                ended: n["finishedAt"].as_str().map(str::to_string),
                pod: pod.and_then(|p| p.metadata.name.clone()),
                message: n["message"].as_str().map(str::to_string),
            }
        })
        .collect();
    rows.sort_by(|a, b| (&a.started, &a.task).cmp(&(&b.started, &b.task)));
    rows
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
            Followed::TimedOut | Followed::Interrupted => {
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
            Followed::Interrupted => (Outcome::Interrupted, None, format!("interrupted while it ran{stopped_note}")),
            Followed::TimedOut => {
                let running: Vec<&str> = result
                    .tasks
                    .iter()
                    .filter(|t| matches!(t.state.as_str(), "Running" | "Pending"))
                    .map(|t| t.task.as_str())
                    .collect();
                let running = if running.is_empty() { "none".to_string() } else { running.join(", ") };
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

    /// The pipeline's id, the version to run and its spec: uploaded (or reused by content
    /// hash) for a file, resolved now for a pipeline already in KFP.
    async fn pipeline_version(
        &self,
        kfp: &Kfp,
        p: &PipelineCase,
        result: &mut CaseResult,
        made: &mut Made,
    ) -> Result<(String, String, Value), Stop> {
        let found = kfp
            .get(&format!("{API}/pipelines?filter={}", filter_equals("name", &p.name)))
            .await
            .map_err(|e| infrastructure("looking up the pipeline", &e))?;
        let existing_id = found["pipelines"][0]["pipeline_id"].as_str().map(str::to_string);
        let record = |result: &mut CaseResult, version: &Value, asked: Option<String>, uploaded: bool| {
            if let Some(r) = result.pipeline.as_mut() {
                r.version = version["name"].as_str().unwrap_or_default().to_string();
                r.version_id = version["pipeline_version_id"].as_str().unwrap_or_default().to_string();
                r.asked = asked;
                r.uploaded = uploaded;
            }
        };
        match &p.source {
            PipelineSource::Existing { version } => {
                let Some(id) = existing_id else {
                    return Err((
                        Outcome::Failed,
                        Some(FailureClass::Example),
                        format!("pipeline {:?} does not exist in KFP ({})", p.name, kfp.shown),
                    ));
                };
                let listed = kfp
                    .get(&format!("{API}/pipelines/{id}/versions?sort_by={}&page_size=200", encode("created_at desc")))
                    .await
                    .map_err(|e| infrastructure("listing the pipeline's versions", &e))?;
                let versions: Vec<Value> = listed["pipeline_versions"].as_array().cloned().unwrap_or_default();
                let key = |v: &Value| {
                    (
                        v["created_at"].as_str().unwrap_or_default().to_string(),
                        v["pipeline_version_id"].as_str().unwrap_or_default().to_string(),
                    )
                };
                // KFP's latest: the newest by created_at (one-second resolution), then by id.
                let chosen = match version.as_str() {
                    "latest" => versions.iter().max_by_key(|v| key(v)),
                    name => versions.iter().find(|v| v["name"] == name || v["display_name"] == name),
                };
                let Some(chosen) = chosen.cloned() else {
                    let names: Vec<&str> = versions.iter().filter_map(|v| v["name"].as_str()).collect();
                    return Err((
                        Outcome::Failed,
                        Some(FailureClass::Example),
                        format!("pipeline {:?} has no version {version:?} (it has: {})", p.name, names.join(", ")),
                    ));
                };
                record(result, &chosen, Some(version.clone()), false);
                let spec = chosen["pipeline_spec"].clone();
                let spec = spec.get("pipeline_spec").cloned().unwrap_or(spec);
                let vid = chosen["pipeline_version_id"].as_str().unwrap_or_default().to_string();
                Ok((id, vid, spec))
            }
            PipelineSource::Compiled { spec, .. } => {
                let (text, version_name) = p.upload().unwrap_or_default();
                let id = match existing_id {
                    Some(id) => id,
                    None => {
                        let body = json!({"name": p.name, "display_name": p.name, "description": format!("kubevet: {}", self.case.name)});
                        let created = match kfp.post(&format!("{API}/pipelines"), &body).await {
                            Ok(c) => {
                                made.pipeline_id = c["pipeline_id"].as_str().map(str::to_string);
                                c
                            }
                            // Made meanwhile by another run: use that one.
                            Err(e) if e.status == Some(409) => kfp
                                .get(&format!("{API}/pipelines?filter={}", filter_equals("name", &p.name)))
                                .await
                                .map_err(|e| infrastructure("looking up the pipeline", &e))?["pipelines"][0]
                                .clone(),
                            Err(e) => return Err(refused_or_infrastructure("creating the pipeline", &e)),
                        };
                        created["pipeline_id"].as_str().unwrap_or_default().to_string()
                    }
                };
                let versions_of =
                    format!("{API}/pipelines/{id}/versions?filter={}", filter_equals("name", &version_name));
                let listed = kfp.get(&versions_of).await.map_err(|e| infrastructure("looking up the version", &e))?;
                if let Some(v) = listed["pipeline_versions"].get(0) {
                    record(result, v, None, false);
                    return Ok((id, v["pipeline_version_id"].as_str().unwrap_or_default().to_string(), spec.clone()));
                }
                let path = format!("{API}/pipelines/upload_version?name={}&pipelineid={id}", encode(&version_name));
                let file = format!("{}.yaml", crate::util::files::file_name(&self.case.id));
                let version = match kfp.upload(&path, &file, &text).await {
                    Ok(v) => {
                        made.version_id = v["pipeline_version_id"].as_str().map(str::to_string);
                        record(result, &v, None, true);
                        v
                    }
                    Err(e) if e.status == Some(409) => {
                        let v = kfp
                            .get(&versions_of)
                            .await
                            .map_err(|e| infrastructure("looking up the version", &e))?["pipeline_versions"][0]
                            .clone();
                        record(result, &v, None, false);
                        v
                    }
                    Err(e) => return Err(refused_or_infrastructure("uploading the pipeline", &e)),
                };
                Ok((id, version["pipeline_version_id"].as_str().unwrap_or_default().to_string(), spec.clone()))
            }
            PipelineSource::Python(path) => Err((Outcome::Error, None, format!("{} was not compiled", path.display()))),
        }
    }

    /// The suite's experiment (`pipelines.experiment`, else the suite's name), made on first use.
    async fn experiment(&self, kfp: &Kfp, multi_user: bool) -> Result<String, Stop> {
        let name = self.pipelines.experiment.as_deref().unwrap_or(self.suite_name);
        let namespace = if multi_user { format!("&namespace={}", encode(&kfp.namespace)) } else { String::new() };
        let find = format!("{API}/experiments?filter={}{namespace}", filter_equals("display_name", name));
        let id_of = |v: &Value| v["experiments"][0]["experiment_id"].as_str().map(str::to_string);
        if let Some(id) = id_of(&kfp.get(&find).await.map_err(|e| infrastructure("looking up the experiment", &e))?) {
            return Ok(id);
        }
        let mut body = json!({"display_name": name, "description": "runs of kubevet's pipeline cases"});
        if multi_user {
            body["namespace"] = json!(kfp.namespace);
        }
        match kfp.post(&format!("{API}/experiments"), &body).await {
            Ok(e) => Ok(e["experiment_id"].as_str().unwrap_or_default().to_string()),
            Err(e) if e.status == Some(409) => {
                id_of(&kfp.get(&find).await.map_err(|e| infrastructure("looking up the experiment", &e))?)
                    .ok_or_else(|| infrastructure("the experiment", &e))
            }
            Err(e) => Err(infrastructure("creating the experiment", &e)),
        }
    }

    /// Follows the run to its end by watching its Workflow (by polling KFP's API only when
    /// the cluster serves no Workflow kind), within the case's timeout; the Workflow as last seen.
    async fn follow(&self, kfp: &Kfp, run_id: &str, result: &mut CaseResult) -> (Followed, Value) {
        let deadline = Instant::now() + self.case.timeout.0;
        let mut cancel = self.cancel.clone();
        let mut workflow = Value::Null;
        let seen_end = |result: &mut CaseResult, watched: bool| {
            result.ended = Some(SystemTime::now());
            if let Some(r) = result.pipeline.as_mut() {
                r.seen_ended_at = Some(jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
                r.watched = watched;
            }
        };
        let selector = format!("pipeline/runid={run_id}");
        match self.cluster.kind("argoproj.io/v1alpha1", "Workflow").await {
            Ok(kind) => {
                let mut snapshots =
                    std::pin::pin!(self.cluster.watch_matching(&kind, &kfp.namespace, None, Some(&selector)));
                loop {
                    tokio::select! {
                        snapshot = snapshots.next() => match snapshot {
                            Some(Ok(list)) => {
                                let Some(wf) = list.into_iter().next() else { continue };
                                workflow = wf;
                                if terminal_phase(phase_of(&workflow)) {
                                    seen_end(result, true);
                                    return (Followed::Ended, workflow);
                                }
                            }
                            Some(Err(e)) => tracing::warn!(run = %run_id, error = %e, "watching the run's Workflow (kube retries it)"),
                            None => return (Followed::Interrupted, workflow),
                        },
                        _ = tokio::time::sleep_until(deadline) => return (Followed::TimedOut, workflow),
                        _ = cancel.wait_for(|c| *c) => return (Followed::Interrupted, workflow),
                    }
                }
            }
            Err(e) => {
                let note = format!(
                    "the cluster serves no Argo Workflow kind ({e}): the run was followed by polling KFP's API (every 1 s, backing off to 10 s)"
                );
                tracing::warn!(run = %run_id, "{note}");
                result.collect_problems.push(note);
                let mut wait = Duration::from_secs(1);
                loop {
                    let run = kfp.get(&format!("{API}/runs/{run_id}")).await.unwrap_or_default();
                    if terminal_state(run["state"].as_str().unwrap_or_default()) {
                        seen_end(result, false);
                        return (Followed::Ended, workflow);
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => wait = (wait * 3 / 2).min(Duration::from_secs(10)),
                        _ = tokio::time::sleep_until(deadline) => return (Followed::TimedOut, workflow),
                        _ = cancel.wait_for(|c| *c) => return (Followed::Interrupted, workflow),
                    }
                }
            }
        }
    }

    /// The run as KFP reports it, the Workflow's final state, every pod's logs (task and
    /// driver pods alike) and their events; the task table into the result.
    async fn pipeline_evidence(
        &self,
        kfp: &Kfp,
        run_id: &str,
        run: &Value,
        workflow: &Value,
        result: &mut CaseResult,
    ) -> Evidence {
        let dir = result.artifacts.clone();
        let write = |name: &str, value: &Value| {
            let text = serde_json::to_string_pretty(value).unwrap_or_default();
            if let Err(e) = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(dir.join(name), text)) {
                tracing::warn!(file = name, error = %e, "cannot write pipeline evidence");
            }
        };
        write("kfp-run.json", run);
        let selector = format!("pipeline/runid={run_id}");
        // The Workflow as it is now (after a terminate, its final state), else as last seen.
        let workflow = match self.cluster.kind("argoproj.io/v1alpha1", "Workflow").await {
            Ok(kind) => match self.cluster.list_matching(&kind, &kfp.namespace, None, Some(&selector)).await {
                Ok(list) => list.into_iter().next().unwrap_or_else(|| workflow.clone()),
                Err(_) => workflow.clone(),
            },
            Err(_) => workflow.clone(),
        };
        write("workflow.json", &workflow);
        let pods = self.cluster.list_pods(&kfp.namespace, Some(&selector)).await.unwrap_or_else(|e| {
            result.collect_problems.push(format!("listing the run's pods: {e}"));
            Vec::new()
        });
        let names: Vec<String> = pods.iter().filter_map(|p| p.metadata.name.clone()).collect();
        result.tasks = tasks(&workflow, &pods);
        let evidence = Collect {
            cluster: self.cluster,
            dir,
            namespace: &kfp.namespace,
            applied: &[],
            seen: Vec::new(),
            pods: Some(pods),
            replica_label: None,
            log_limit: self.defaults.log_limit_bytes,
            events_of: Some(&names),
        }
        .run()
        .await;
        result.pods = evidence.pods.clone();
        result.collect_problems.extend(evidence.problems.clone());
        evidence
    }

    /// Deletes the run and what this case uploaded, unless a failed case is kept.
    async fn pipeline_cleanup(&self, kfp: &Kfp, made: &Made, failed: bool, result: &mut CaseResult) {
        let mut what = Vec::new();
        if let Some(id) = &made.run_id {
            what.push((format!("{API}/runs/{id}"), format!("KFP run {id}")));
        }
        // A pipeline this case created goes with its versions; else only the version it uploaded.
        match (&made.pipeline_id, &made.version_id) {
            (Some(pid), _) => what.push((format!("{API}/pipelines/{pid}?cascade=true"), format!("KFP pipeline {pid}"))),
            (None, Some(vid)) => what.push((
                format!("{API}/pipelines/{}/versions/{vid}", made.used_pipeline),
                format!("KFP pipeline version {vid}"),
            )),
            (None, None) => {}
        }
        if what.is_empty() {
            return;
        }
        if failed && self.keep_on_failure {
            let kept: Vec<String> = what.into_iter().map(|(_, name)| name).collect();
            result.cleanup = Some(format!("kept {} (--keep-on-failure)", kept.join(", ")));
            return;
        }
        let mut deleted = Vec::new();
        for (path, name) in what {
            match kfp.delete(&path).await {
                Ok(_) => deleted.push(name),
                Err(e) if e.status == Some(404) => deleted.push(name),
                Err(e) => result.left_behind.push(format!("{name} ({e})")),
            }
        }
        result.cleanup = Some(format!("deleted {}", deleted.join(", ")));
    }
}
