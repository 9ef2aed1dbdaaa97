//! What every pod of a case used: one sampler per run reads each node's kubelet
//! (`/metrics/resource` every interval; `/metrics/cadvisor`, for the kernel's memory peak, and
//! `/stats/summary`, for resident memory, every third, on alternate rounds) while any
//! case is running, and keeps the samples of the pods cases have registered: a namespace's
//! all, or the pods a case names (a pipeline's, in KFP's namespace beside other runs'). A few
//! requests per node per interval for the whole run, whatever the number of cases: the cost
//! does not grow with concurrency. A finished container's stats are gone from the kubelet, so
//! its totals are its last samples, with the gap said (`figures`).

mod figures;
mod summary;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use serde::Serialize;
use tokio::task::JoinHandle;
use tracing::debug;

pub use figures::usage_of;

use crate::{cluster::Cluster, util::exposition};

/// How often the kubelets are read while a case runs.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(2);
/// Every how many rounds `/metrics/cadvisor` (about 100 KiB a node) and `/stats/summary` are
/// read too, each on its own round.
const DETAIL_EVERY: u32 = 3;

/// The samples of one container (a pod's container, by name), in the order taken.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Series {
    /// `(timestamp ms, cumulative core-seconds)`, each timestamp once.
    pub cpu: Vec<(i64, f64)>,
    /// `(timestamp ms, working set bytes)`.
    pub working_set: Vec<(i64, f64)>,
    /// The cgroup's own memory high-water mark (cadvisor's `container_memory_max_usage_bytes`),
    /// where the kubelet reports one above zero: `(timestamp ms, bytes)`.
    pub kernel_peak: Vec<(i64, f64)>,
    /// The resident set (anonymous memory, which no reclaim frees) the summary showed.
    pub rss: Vec<(i64, f64)>,
}

impl Series {
    /// The points taken from `from_ms` on: a pod made again under the same name (the
    /// training operator's `ExitCode` restarts do that) is not charged with its predecessor's.
    fn since(&self, from_ms: i64) -> Series {
        let keep = |points: &[(i64, f64)]| points.iter().copied().filter(|(t, _)| *t >= from_ms).collect();
        Series {
            cpu: keep(&self.cpu),
            working_set: keep(&self.working_set),
            kernel_peak: keep(&self.kernel_peak),
            rss: keep(&self.rss),
        }
    }
}

/// A point into its series, unless one of that timestamp is there already (the kubelet's stats
/// are cached between its housekeeping runs).
fn push(points: &mut Vec<(i64, f64)>, at: i64, value: f64) {
    if points.last().is_none_or(|(t, _)| *t != at) {
        points.push((at, value));
    }
}

/// What was sampled of one registration: its containers' series by `(pod, container)`, and
/// the scrapes that failed while it was registered.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Samples {
    pub series: BTreeMap<String, BTreeMap<String, Series>>,
    pub rounds: u32,
    /// The first few failures (a kubelet that keeps failing would otherwise grow this each
    /// round), and how many there were.
    pub failed_scrapes: Vec<String>,
    pub failures: u32,
}

/// How many failed scrapes a registration's samples keep the words of.
const KEPT_FAILURES: usize = 5;

/// Whose samples a registration keeps.
struct Watched {
    namespace: String,
    /// None: every pod of the namespace; else the pods named so far.
    pods: Option<BTreeSet<String>>,
    samples: Samples,
}

impl Watched {
    fn covers(&self, namespace: &str, pod: &str) -> bool {
        self.namespace == namespace && self.pods.as_ref().is_none_or(|pods| pods.contains(pod))
    }
}

#[derive(Default)]
struct Shared {
    watched: BTreeMap<u64, Watched>,
    next_id: u64,
}

impl Shared {
    /// Applies `update` to the series of `pod`'s `container` of every registration that
    /// covers it.
    fn file(&mut self, namespace: &str, pod: &str, container: &str, update: impl Fn(&mut Series)) {
        for watched in self.watched.values_mut().filter(|w| w.covers(namespace, pod)) {
            let of_pod = watched.samples.series.entry(pod.to_string()).or_default();
            update(of_pod.entry(container.to_string()).or_default());
        }
    }
}

/// The run's sampler. Cases register when their namespace is made and take their samples
/// when their workloads have ended. Dropping the last handle stops it.
#[derive(Clone)]
pub struct UsageSampler {
    shared: Arc<Mutex<Shared>>,
    /// None: sampling is off (`--no-usage`).
    task: Option<Arc<Stop>>,
}

/// Stops the sampling task when the run's last handle goes.
struct Stop(JoinHandle<()>);

impl Drop for Stop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl UsageSampler {
    pub fn start(cluster: Arc<Cluster>, interval: Duration) -> UsageSampler {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let task = tokio::spawn(sample(cluster, shared.clone(), interval));
        UsageSampler { shared, task: Some(Arc::new(Stop(task))) }
    }

    /// A sampler that samples nothing: no kubelet is read, and no case has usage figures.
    pub fn off() -> UsageSampler {
        UsageSampler { shared: Arc::default(), task: None }
    }

    /// Samples every pod of `namespace` from the next round on, until the registration is
    /// taken or dropped (a case that ends early, or panics, stops its sampling too); none
    /// when off.
    pub fn register(&self, namespace: &str) -> Option<Registration> {
        self.watch(namespace, None)
    }

    /// Samples the pods of `namespace` that the registration is told of
    /// (`Registration::include`), and no others.
    pub fn register_pods(&self, namespace: &str) -> Option<Registration> {
        self.watch(namespace, Some(BTreeSet::new()))
    }

    fn watch(&self, namespace: &str, pods: Option<BTreeSet<String>>) -> Option<Registration> {
        self.task.as_ref()?;
        Some(add(&self.shared, namespace, pods))
    }
}

fn add(shared: &Arc<Mutex<Shared>>, namespace: &str, pods: Option<BTreeSet<String>>) -> Registration {
    let mut locked = lock(shared);
    let id = locked.next_id;
    locked.next_id = id.wrapping_add(1);
    let watched = Watched { namespace: namespace.to_string(), pods, samples: Samples::default() };
    locked.watched.insert(id, watched);
    Registration { shared: shared.clone(), id }
}

/// A namespace, or some of its pods, being sampled.
pub struct Registration {
    shared: Arc<Mutex<Shared>>,
    id: u64,
}

impl Registration {
    /// Samples `pod` too (of a registration by pods; one of a namespace has it already).
    pub fn include(&self, pod: &str) {
        if let Some(Watched { pods: Some(pods), .. }) = lock(&self.shared).watched.get_mut(&self.id) {
            pods.insert(pod.to_string());
        }
    }

    /// What was sampled, which is sampled no more.
    pub fn take(self) -> Samples {
        lock(&self.shared).watched.remove(&self.id).map(|w| w.samples).unwrap_or_default()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.shared).watched.remove(&self.id);
    }
}

/// The sampling loop: a round at each interval while something is registered.
async fn sample(cluster: Arc<Cluster>, shared: Arc<Mutex<Shared>>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut nodes: Option<Vec<String>> = None;
    let mut round: u32 = 0;
    loop {
        ticks.tick().await;
        if lock(&shared).watched.is_empty() {
            continue;
        }
        if nodes.is_none() {
            match cluster.node_names().await {
                Ok(names) => nodes = Some(names),
                Err(e) => {
                    fail_all(&shared, &format!("listing the nodes: {e}"));
                    continue;
                }
            }
        }
        let detail = round % DETAIL_EVERY;
        round = round.wrapping_add(1);
        for node in nodes.iter().flatten() {
            scrape(&cluster, &shared, node, "metrics/resource").await;
            match detail {
                0 => scrape(&cluster, &shared, node, "metrics/cadvisor").await,
                1 => scrape(&cluster, &shared, node, "stats/summary").await,
                _ => {}
            }
        }
        for watched in lock(&shared).watched.values_mut() {
            watched.samples.rounds = watched.samples.rounds.saturating_add(1);
        }
    }
}

/// The lock guards plain data that no panic leaves half-written.
fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

fn fail_all(shared: &Mutex<Shared>, why: &str) {
    for watched in lock(shared).watched.values_mut() {
        let samples = &mut watched.samples;
        samples.failures = samples.failures.saturating_add(1);
        if samples.failed_scrapes.len() < KEPT_FAILURES {
            samples.failed_scrapes.push(why.to_string());
        }
    }
}

/// One kubelet endpoint read into the registered pods' series.
async fn scrape(cluster: &Cluster, shared: &Mutex<Shared>, node: &str, path: &str) {
    let text = match cluster.kubelet_text(node, path).await {
        Ok(text) => text,
        Err(e) => return fail_all(shared, &e.message),
    };
    let filed = if path == "stats/summary" {
        summary::parse(&text).map(|pods| summary::file(&mut lock(shared), &pods))
    } else {
        exposition::parse(&text).map(|samples| file_exposition(&mut lock(shared), &samples)).map_err(|e| e.to_string())
    };
    match filed {
        Ok(()) => debug!(node, path, "kubelet sampled"),
        Err(e) => fail_all(shared, &format!("node {node} /{path}: {e}")),
    }
}

fn file_exposition(shared: &mut Shared, samples: &[exposition::Sample]) {
    for sample in samples {
        let (pod, container) = (sample.label("pod"), sample.label("container"));
        // cadvisor also reports the pod's own cgroup (container "") and its sandbox ("POD").
        if pod.is_empty() || container.is_empty() || container == "POD" {
            continue;
        }
        shared.file(sample.label("namespace"), pod, container, |series| record(series, sample));
    }
}

/// A sample into its series.
fn record(series: &mut Series, sample: &exposition::Sample) {
    let at = sample.timestamp_ms.unwrap_or_else(|| jiff::Timestamp::now().as_millisecond());
    match sample.name.as_str() {
        "container_cpu_usage_seconds_total" => push(&mut series.cpu, at, sample.value),
        "container_memory_working_set_bytes" => push(&mut series.working_set, at, sample.value),
        "container_memory_max_usage_bytes" if sample.value > 0.0 => push(&mut series.kernel_peak, at, sample.value),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kubelet_that_keeps_failing_is_counted_not_kept_round_after_round() {
        let shared = Mutex::new(Shared::default());
        let watched = Watched { namespace: "kv-a".into(), pods: None, samples: Samples::default() };
        lock(&shared).watched.insert(0, watched);
        for round in 0..12 {
            fail_all(&shared, &format!("round {round}: 503"));
        }
        let samples = lock(&shared).watched.remove(&0).map(|w| w.samples).unwrap_or_default();
        assert_eq!((samples.failures, samples.failed_scrapes.len()), (12, KEPT_FAILURES));
        assert_eq!(samples.failed_scrapes[0], "round 0: 503");
    }

    #[test]
    fn a_sample_is_filed_once_per_timestamp_and_a_zero_kernel_peak_is_none() {
        let mut series = Series::default();
        let sample = |name: &str, value: f64, at: i64| exposition::Sample {
            name: name.into(),
            labels: Default::default(),
            value,
            timestamp_ms: Some(at),
        };
        record(&mut series, &sample("container_cpu_usage_seconds_total", 1.0, 1_000));
        record(&mut series, &sample("container_cpu_usage_seconds_total", 1.0, 1_000));
        record(&mut series, &sample("container_cpu_usage_seconds_total", 2.0, 2_000));
        record(&mut series, &sample("container_memory_max_usage_bytes", 50.0, 2_000));
        record(&mut series, &sample("container_memory_max_usage_bytes", 0.0, 3_000));
        record(&mut series, &sample("container_memory_max_usage_bytes", 40.0, 3_000));
        assert_eq!(series.cpu, vec![(1_000, 1.0), (2_000, 2.0)]);
        assert_eq!(series.kernel_peak, vec![(2_000, 50.0), (3_000, 40.0)]);
        assert_eq!(series.since(2_000).cpu, vec![(2_000, 2.0)]);
        assert_eq!(series.since(2_500).kernel_peak, vec![(3_000, 40.0)]);
    }

    #[test]
    fn a_registration_by_pods_keeps_only_the_pods_it_was_told_of_beside_its_namespaces_others() {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let watch = |pods| add(&shared, "kubeflow", pods);
        let (whole, ours) = (watch(None), watch(Some(BTreeSet::new())));
        ours.include("run-a-impl");
        let sample = |pod: &str| exposition::Sample {
            name: "container_cpu_usage_seconds_total".into(),
            labels: [("namespace", "kubeflow"), ("pod", pod), ("container", "main")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value: 1.0,
            timestamp_ms: Some(1_000),
        };
        file_exposition(&mut lock(&shared), &[sample("run-a-impl"), sample("run-b-impl")]);
        let pods = |samples: Samples| samples.series.keys().cloned().collect::<Vec<_>>();
        assert_eq!(pods(ours.take()), ["run-a-impl"]);
        assert_eq!(pods(whole.take()), ["run-a-impl", "run-b-impl"]);
        assert!(lock(&shared).watched.is_empty(), "taken, sampled no more");
    }
}
