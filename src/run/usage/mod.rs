//! What every pod of a case used: one sampler per run reads each node's kubelet
//! (`/metrics/resource` every interval, `/metrics/cadvisor` for the kernel's memory peak every
//! third) while any case is running, and keeps the samples of the namespaces cases have
//! registered. One request per node per interval for the whole run, whatever the number of
//! cases: the cost does not grow with concurrency. A finished container's stats are gone from
//! the kubelet, so its totals are its last samples, with the gap said (`figures`).

mod figures;

use std::{
    collections::BTreeMap,
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
/// Every how many rounds `/metrics/cadvisor` (about 100 KiB a node) is read too.
const CADVISOR_EVERY: u32 = 3;

/// The samples of one container (a pod's container, by name), in the order taken.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Series {
    /// `(timestamp ms, cumulative core-seconds)`, each timestamp once.
    pub cpu: Vec<(i64, f64)>,
    /// `(timestamp ms, working set bytes)`.
    pub working_set: Vec<(i64, f64)>,
    /// The cgroup's own memory high-water mark (cadvisor's `container_memory_max_usage_bytes`),
    /// when the kubelet reports one above zero.
    pub kernel_peak: Option<f64>,
}

/// What was sampled of one namespace: its containers' series by `(pod, container)`, and the
/// scrapes that failed while it was registered.
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

/// How many failed scrapes a namespace's samples keep the words of.
const KEPT_FAILURES: usize = 5;

#[derive(Default)]
struct Shared {
    namespaces: BTreeMap<String, Samples>,
}

/// The run's sampler. Cases register their namespace when it is made and take its samples when
/// their workloads have ended. Dropping the last handle stops it.
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

    /// Samples `namespace`'s pods from the next round on, until the registration is taken or
    /// dropped (a case that ends early, or panics, stops its sampling too); none when off.
    pub fn register(&self, namespace: &str) -> Option<Registration> {
        self.task.as_ref()?;
        lock(&self.shared).namespaces.entry(namespace.to_string()).or_default();
        Some(Registration { shared: self.shared.clone(), namespace: namespace.to_string() })
    }
}

/// A namespace being sampled.
pub struct Registration {
    shared: Arc<Mutex<Shared>>,
    namespace: String,
}

impl Registration {
    /// What was sampled of the namespace, which is sampled no more.
    pub fn take(self) -> Samples {
        lock(&self.shared).namespaces.remove(&self.namespace).unwrap_or_default()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.shared).namespaces.remove(&self.namespace);
    }
}

/// The sampling loop: a round at each interval while some namespace is registered.
async fn sample(cluster: Arc<Cluster>, shared: Arc<Mutex<Shared>>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut nodes: Option<Vec<String>> = None;
    let mut round: u32 = 0;
    loop {
        ticks.tick().await;
        let wanted: Vec<String> = lock(&shared).namespaces.keys().cloned().collect();
        if wanted.is_empty() {
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
        let with_cadvisor = round.is_multiple_of(CADVISOR_EVERY);
        round = round.wrapping_add(1);
        for node in nodes.iter().flatten() {
            scrape(&cluster, &shared, node, "metrics/resource").await;
            if with_cadvisor {
                scrape(&cluster, &shared, node, "metrics/cadvisor").await;
            }
        }
        for samples in lock(&shared).namespaces.values_mut() {
            samples.rounds = samples.rounds.saturating_add(1);
        }
    }
}

/// The lock guards plain data that no panic leaves half-written.
fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

fn fail_all(shared: &Mutex<Shared>, why: &str) {
    for samples in lock(shared).namespaces.values_mut() {
        samples.failures = samples.failures.saturating_add(1);
        if samples.failed_scrapes.len() < KEPT_FAILURES {
            samples.failed_scrapes.push(why.to_string());
        }
    }
}

/// One kubelet endpoint read into the registered namespaces' series.
async fn scrape(cluster: &Cluster, shared: &Mutex<Shared>, node: &str, path: &str) {
    let text = match cluster.kubelet_text(node, path).await {
        Ok(text) => text,
        Err(e) => return fail_all(shared, &e.message),
    };
    let samples = match exposition::parse(&text) {
        Ok(samples) => samples,
        Err(e) => return fail_all(shared, &format!("node {node} /{path}: {e}")),
    };
    let mut shared = lock(shared);
    for sample in samples {
        let (pod, container) = (sample.label("pod"), sample.label("container"));
        // cadvisor also reports the pod's own cgroup (container "") and its sandbox ("POD").
        if pod.is_empty() || container.is_empty() || container == "POD" {
            continue;
        }
        let Some(of_namespace) = shared.namespaces.get_mut(sample.label("namespace")) else { continue };
        let series = of_namespace.series.entry(pod.to_string()).or_default().entry(container.to_string()).or_default();
        record(series, &sample);
    }
    debug!(node, path, "kubelet sampled");
}

/// A sample into its series; a timestamp already there (the kubelet's stats are cached between
/// its housekeeping runs) is not repeated.
fn record(series: &mut Series, sample: &exposition::Sample) {
    let at = sample.timestamp_ms.unwrap_or_else(|| jiff::Timestamp::now().as_millisecond());
    let push = |points: &mut Vec<(i64, f64)>| {
        if points.last().is_none_or(|(t, _)| *t != at) {
            points.push((at, sample.value));
        }
    };
    match sample.name.as_str() {
        "container_cpu_usage_seconds_total" => push(&mut series.cpu),
        "container_memory_working_set_bytes" => push(&mut series.working_set),
        "container_memory_max_usage_bytes" if sample.value > 0.0 => {
            series.kernel_peak = Some(series.kernel_peak.map_or(sample.value, |p| p.max(sample.value)));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kubelet_that_keeps_failing_is_counted_not_kept_round_after_round() {
        let shared = Mutex::new(Shared::default());
        lock(&shared).namespaces.insert("kv-a".into(), Samples::default());
        for round in 0..12 {
            fail_all(&shared, &format!("round {round}: 503"));
        }
        let samples = lock(&shared).namespaces.remove("kv-a").unwrap_or_default();
        assert_eq!((samples.failures, samples.failed_scrapes.len()), (12, KEPT_FAILURES));
        assert_eq!(samples.failed_scrapes[0], "round 0: 503");
    }

    #[test]
    fn a_sample_is_filed_once_per_timestamp_and_the_kernel_peak_only_rises() {
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
        assert_eq!(series.kernel_peak, Some(50.0));
    }
}
