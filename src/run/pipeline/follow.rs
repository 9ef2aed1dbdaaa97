//! Following a run to its end: its Argo Workflow watched (label `pipeline/runid`), or KFP's
//! API polled with backoff when the cluster serves no Workflow kind; within the case's timeout
//! and until an interrupt.

use std::time::{Duration, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use super::API;
use crate::{
    cluster::{kfp::Kfp, wait::StuckPods},
    outcome::CaseResult,
    run::{case::CaseRun, usage::Registration},
    util::duration::Backoff,
};

/// How following the run ended.
pub(super) enum Followed {
    Ended,
    TimedOut,
    Interrupted,
    /// A pod of the run was stuck (image pull, config, scheduling) beyond the grace period.
    Stuck(crate::cluster::wait::Stuck),
    /// KFP could not be read while it was polled, beyond the retries: the cause.
    Broken(String),
}

pub(super) fn phase_of(workflow: &Value) -> &str {
    workflow.pointer("/status/phase").and_then(Value::as_str).unwrap_or("")
}

fn terminal_phase(phase: &str) -> bool {
    matches!(phase, "Succeeded" | "Failed" | "Error")
}

pub(super) fn terminal_state(state: &str) -> bool {
    matches!(state, "SUCCEEDED" | "FAILED" | "CANCELED" | "SKIPPED")
}

impl CaseRun<'_> {
    /// Follows the run to its end by watching its Workflow and its pods (by polling KFP's API
    /// only when the cluster serves no Workflow kind), within the case's timeout; a pod stuck
    /// beyond the grace period ends it too, as for jobs. Each pod seen is sampled from then
    /// on. The Workflow and the pods as last seen.
    pub(super) async fn follow(
        &self,
        kfp: &Kfp,
        run_id: &str,
        sampled: Option<&Registration>,
        result: &mut CaseResult,
    ) -> (Followed, Value, Vec<Pod>) {
        let deadline = crate::util::duration::deadline(self.case.timeout.0);
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
                let mut pods = std::pin::pin!(self.cluster.watch_pods_matching(&kfp.namespace, Some(&selector)));
                let mut stuck = StuckPods::default();
                let mut seen = std::collections::BTreeMap::new();
                let grace = self.defaults.failure_grace.0;
                let followed = loop {
                    let stuck_deadline = stuck.earliest().map(|(since, _)| since + grace).unwrap_or(deadline);
                    tokio::select! {
                        Some(Ok(pod)) = pods.next() => {
                            stuck.observe(&pod);
                            let name = pod.metadata.name.clone().unwrap_or_default();
                            sampled.inspect(|s| s.include(&name));
                            seen.insert(name, pod);
                        }
                        _ = tokio::time::sleep_until(stuck_deadline), if stuck_deadline < deadline => {
                            if let Some((_, why)) = stuck.earliest() {
                                break Followed::Stuck(why);
                            }
                        }
                        // A watch with backoff never ends: only its snapshots and errors come.
                        Some(snapshot) = snapshots.next() => match snapshot {
                            Ok(list) => {
                                let Some(wf) = list.into_iter().next() else { continue };
                                workflow = wf;
                                if terminal_phase(phase_of(&workflow)) {
                                    seen_end(result, true);
                                    break Followed::Ended;
                                }
                            }
                            Err(e) => tracing::warn!(run = %run_id, error = %e, "watching the run's Workflow (kube retries it)"),
                        },
                        _ = tokio::time::sleep_until(deadline) => break Followed::TimedOut,
                        _ = cancel.wait_for(|c| *c) => break Followed::Interrupted,
                    }
                };
                (followed, workflow, seen.into_values().collect())
            }
            Err(e) => {
                let note = format!(
                    "the cluster serves no Argo Workflow kind ({e}): the run was followed by polling KFP's API (every 1 s, backing off to 10 s), and its pods' usage was not measured"
                );
                tracing::warn!(run = %run_id, "{note}");
                result.collect_problems.push(note);
                let mut wait = Backoff::new(Duration::from_secs(1), 150, Duration::from_secs(10));
                let mut failures = 0u32;
                loop {
                    // Each read is already retried by the request layer; a few failed reads in
                    // a row end the case as the infrastructure's, never as a default state.
                    match kfp.get(&format!("{API}/runs/{run_id}")).await {
                        Ok(run) if terminal_state(run["state"].as_str().unwrap_or_default()) => {
                            seen_end(result, false);
                            return (Followed::Ended, workflow, Vec::new());
                        }
                        Ok(_) => failures = 0,
                        Err(e) if failures >= 4 => {
                            return (
                                Followed::Broken(format!("reading run {run_id} from KFP failed: {e}")),
                                workflow,
                                Vec::new(),
                            );
                        }
                        Err(e) => {
                            failures += 1;
                            tracing::warn!(run = %run_id, error = %e, "reading the run from KFP");
                        }
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(wait.next_wait()) => {}
                        _ = tokio::time::sleep_until(deadline) => return (Followed::TimedOut, workflow, Vec::new()),
                        _ = cancel.wait_for(|c| *c) => return (Followed::Interrupted, workflow, Vec::new()),
                    }
                }
            }
        }
    }
}
