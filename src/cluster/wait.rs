//! Waiting for a case's workloads to end, by watching them and their pods (never by polling):
//! success when every workload's success rule holds, failure as soon as one's failure rule
//! holds, or as soon as a pod has been stuck in a state that cannot heal by itself for longer
//! than the grace period, or timeout, or interrupt.

use std::{
    collections::{BTreeMap, HashMap},
    pin::Pin,
    time::Duration,
};

use futures::{Stream, StreamExt, stream::select_all};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use serde_json::Value;
use tokio::{sync::watch, time::Instant};

use crate::{
    cluster::{Applied, Cluster},
    suite::profile::Profile,
    util::duration::Dur,
};

/// Container states that do not heal by themselves within a test's time.
const STUCK_REASONS: &[&str] =
    &["ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError"];

#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    Succeeded(String),
    Failed(String),
    /// A pod stuck (image pull, config, scheduling) beyond the grace period.
    Stuck(Stuck),
    TimedOut(String),
    Interrupted,
    /// kubevet could not watch (the API server failed it).
    Broken(String),
}

/// The phase a case is in while it waits, named in timeouts and timed in results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitPhase {
    Scheduling,
    Running,
}

pub struct Waited {
    pub ending: Ending,
    /// When the first pod started running, if one did.
    pub running_since: Option<Instant>,
    /// The last state seen of each workload (None if never seen), so that collecting needs
    /// no second read.
    pub workloads: Vec<Option<Value>>,
    /// The last state seen of every pod of the namespace.
    pub pods: Vec<Pod>,
}

enum Change {
    Workload(usize, Option<Value>),
    Pod(Box<Pod>),
    Failed(crate::cluster::ApiError),
}

type Changes = Pin<Box<dyn Stream<Item = Change> + Send>>;

pub struct Wait<'a> {
    pub cluster: &'a Cluster,
    pub namespace: &'a str,
    pub workloads: Vec<(&'a Applied, &'a Profile)>,
    pub timeout: Duration,
    pub grace: Duration,
    pub cancel: watch::Receiver<bool>,
    /// Told once, when the first pod runs.
    pub on_running: Option<&'a (dyn Fn() + Sync)>,
}

impl Wait<'_> {
    pub async fn run(mut self) -> Waited {
        let started = Instant::now();
        let mut streams: Vec<Changes> = Vec::new();
        for (i, (applied, _)) in self.workloads.iter().enumerate() {
            let s =
                self.cluster.watch_object(&applied.kind, applied.namespace.as_deref(), &applied.name).map(move |r| {
                    match r {
                        Ok(obj) => Change::Workload(i, obj.and_then(|o| serde_json::to_value(o).ok())),
                        Err(e) => Change::Failed(e),
                    }
                });
            streams.push(Box::pin(s));
        }
        streams.push(Box::pin(self.cluster.watch_pods(self.namespace).map(|r| match r {
            Ok(pod) => Change::Pod(Box::new(pod)),
            Err(e) => Change::Failed(e),
        })));
        let mut changes = select_all(streams);
        let mut state = State { last_seen: vec![None; self.workloads.len()], ..Default::default() };
        let deadline = started + self.timeout;
        let ending = loop {
            let stuck_deadline = state.earliest_stuck().map(|(since, _)| since + self.grace).unwrap_or(deadline);
            tokio::select! {
                change = changes.next() => match change {
                    Some(Change::Workload(i, obj)) => {
                        if let Some(ending) = state.workload_changed(i, obj, &self.workloads) {
                            break ending;
                        }
                    }
                    Some(Change::Pod(pod)) => {
                        let was_running = state.running_since.is_some();
                        state.pod_changed(&pod);
                        if !was_running && state.running_since.is_some() && let Some(told) = self.on_running {
                            told();
                        }
                    }
                    Some(Change::Failed(e)) => {
                        // The watcher retries by itself; a lasting failure ends at the timeout.
                        tracing::debug!(error = %e, "watch error");
                    }
                    None => break Ending::Broken("the watch streams ended".into()),
                },
                _ = tokio::time::sleep_until(stuck_deadline), if stuck_deadline < deadline => {
                    if let Some((_, why)) = state.earliest_stuck() {
                        break Ending::Stuck(why);
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    let phase = match state.phase() { WaitPhase::Scheduling => "Scheduling", WaitPhase::Running => "Running" };
                    break Ending::TimedOut(format!("timed out after {} while {phase}", Dur(self.timeout)));
                }
                _ = self.cancel.changed() => break Ending::Interrupted,
            }
        };
        Waited {
            ending,
            running_since: state.running_since,
            workloads: state.last_seen,
            pods: state.pods.into_values().collect(),
        }
    }
}

#[derive(Default)]
struct State {
    last_seen: Vec<Option<Value>>,
    succeeded: Vec<bool>,
    running_since: Option<Instant>,
    pods: BTreeMap<String, Pod>,
    /// (pod, reason) → since when, and the text to report.
    stuck: StuckPods,
}

impl State {
    fn phase(&self) -> WaitPhase {
        if self.running_since.is_some() { WaitPhase::Running } else { WaitPhase::Scheduling }
    }

    fn workload_changed(&mut self, i: usize, obj: Option<Value>, workloads: &[(&Applied, &Profile)]) -> Option<Ending> {
        if self.succeeded.len() != workloads.len() {
            self.succeeded = vec![false; workloads.len()];
        }
        let (applied, profile) = workloads[i];
        let Some(obj) = obj else {
            if self.last_seen[i].is_some() {
                return Some(Ending::Failed(format!(
                    "{} {} was deleted while the case ran",
                    profile.kind, applied.name
                )));
            }
            return None;
        };
        let failed = profile.failure.holds(&obj);
        let succeeded = profile.success.holds(&obj);
        self.last_seen[i] = Some(obj);
        if let Some(why) = failed {
            return Some(Ending::Failed(why));
        }
        if let Some(why) = succeeded {
            self.succeeded[i] = true;
            if self.succeeded.iter().all(|s| *s) {
                return Some(Ending::Succeeded(why));
            }
        }
        None
    }

    fn pod_changed(&mut self, pod: &Pod) {
        let status = pod.status.clone().unwrap_or_default();
        let phase = status.phase.as_deref().unwrap_or("Pending");
        if self.running_since.is_none() && matches!(phase, "Running" | "Succeeded" | "Failed") {
            self.running_since = Some(Instant::now());
        }
        self.stuck.observe(pod);
        self.pods.insert(pod.name_any(), pod.clone());
    }

    fn earliest_stuck(&self) -> Option<(Instant, Stuck)> {
        self.stuck.earliest()
    }
}

/// A pod in a state that cannot heal by itself: the container's waiting reason (or the
/// scheduler's `Unschedulable`) and Kubernetes' message, kept apart from the pod's name so
/// that a class is decided on the reason and Kubernetes' wording, never on a name.
#[derive(Debug, Clone, PartialEq)]
pub struct Stuck {
    pub pod: String,
    pub reason: String,
    pub message: String,
}

impl std::fmt::Display for Stuck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pod {}: {}: {}", self.pod, self.reason, self.message)
    }
}

/// Pods stuck in a state that cannot heal by itself (image pull, container config,
/// scheduling), each reason since the moment it was first seen: what fails a case once it
/// has lasted the grace period. Shared by the workload waiter and pipeline runs.
#[derive(Debug, Default)]
pub struct StuckPods(HashMap<(String, String), (Instant, Stuck)>);

impl StuckPods {
    /// Takes a pod's latest state: its stuck reasons start (or keep) their clocks, the others stop.
    pub fn observe(&mut self, pod: &Pod) {
        let name = pod.name_any();
        let status = pod.status.clone().unwrap_or_default();
        let mut now_stuck: Vec<Stuck> = Vec::new();
        let mut stuck = |reason: &str, message: Option<&str>| {
            now_stuck.push(Stuck {
                pod: name.clone(),
                reason: reason.to_string(),
                message: message.unwrap_or_default().to_string(),
            })
        };
        let containers =
            status.init_container_statuses.iter().flatten().chain(status.container_statuses.iter().flatten());
        for c in containers {
            if let Some(waiting) = c.state.as_ref().and_then(|s| s.waiting.as_ref())
                && let Some(reason) = waiting.reason.as_deref().filter(|r| STUCK_REASONS.contains(r))
            {
                stuck(reason, waiting.message.as_deref());
            }
        }
        for cond in status.conditions.iter().flatten() {
            if cond.type_ == "PodScheduled" && cond.status == "False" && cond.reason.as_deref() == Some("Unschedulable")
            {
                stuck("Unschedulable", cond.message.as_deref());
            }
        }
        // ErrImagePull and ImagePullBackOff alternate for the same cause: one clock for both.
        let key = |reason: &str| {
            if reason == "ErrImagePull" { "ImagePullBackOff".to_string() } else { reason.to_string() }
        };
        let keep: Vec<String> = now_stuck.iter().map(|s| key(&s.reason)).collect();
        self.0.retain(|(pod, reason), _| pod != &name || keep.contains(reason));
        for now in now_stuck {
            let entry = self.0.entry((name.clone(), key(&now.reason))).or_insert((Instant::now(), now.clone()));
            entry.1 = now;
        }
    }

    /// The reason stuck the longest: since when, and what it is.
    pub fn earliest(&self) -> Option<(Instant, Stuck)> {
        self.0.values().min_by_key(|(since, _)| *since).cloned()
    }
}
