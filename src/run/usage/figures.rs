//! A container's figures from its samples and its pod: CPU seconds with the gap to its end,
//! peak memory and where it comes from, coverage, efficiency against its requests, and what to
//! request instead.

use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod};

use super::{Samples, Series};
use crate::{outcome::ContainerUsage, run::extended::is_extended, util::cel::parse_quantity};

/// Fewer samples than this, less coverage, or a shorter life makes a suggestion low-confidence.
const CONFIDENT_SAMPLES: u32 = 3;
const CONFIDENT_COVERAGE: f64 = 0.8;
const CONFIDENT_RUNTIME_S: f64 = 10.0;
/// The margin on peak memory of a suggested request (the VPA recommender's).
const MEMORY_MARGIN: f64 = 1.15;
/// What the VPA recommender adds after an OOM kill: the larger of 100 MiB and 20 %.
const OOM_BUMP_BYTES: f64 = 100.0 * 1_048_576.0;
const OOM_BUMP_FACTOR: f64 = 1.2;

/// Every container of `pods` (the case's pods as last seen) that ran, with what the samples
/// say it used; `now_ms` ends a container still running.
pub fn usage_of(samples: &Samples, pods: &[Pod], now_ms: i64) -> Vec<ContainerUsage> {
    let mut usage = Vec::new();
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        // Samples before the pod was made are another pod's of the same name; a second of
        // leeway for the kubelet's clock against the API server's.
        let born_ms =
            pod.metadata.creation_timestamp.as_ref().map_or(i64::MIN, |t| t.0.as_millisecond().saturating_sub(1_000));
        let status = pod.status.as_ref();
        let spec = pod.spec.as_ref();
        let statuses = status.and_then(|s| s.container_statuses.as_deref()).unwrap_or_default();
        let init_statuses = status.and_then(|s| s.init_container_statuses.as_deref()).unwrap_or_default();
        let containers = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
        let init_containers = spec.and_then(|s| s.init_containers.as_deref()).unwrap_or_default();
        // Init containers first, as they ran; the kubelet reports them like any other.
        let all = init_containers
            .iter()
            .map(|c| (c, init_statuses, true))
            .chain(containers.iter().map(|c| (c, statuses, false)));
        for (container, statuses, init) in all {
            let Some(status) = statuses.iter().find(|s| s.name == container.name) else { continue };
            let Some((start_ms, end_ms)) = life(status, now_ms) else { continue };
            let series = samples.series.get(&name).and_then(|p| p.get(&container.name)).map(|s| s.since(born_ms));
            let mut figures = figures(series.as_ref(), start_ms, end_ms);
            figures.pod.clone_from(&name);
            figures.pod_uid = pod.metadata.uid.clone().unwrap_or_default();
            figures.container.clone_from(&container.name);
            figures.init = init;
            figures.restarts = u32::try_from(status.restart_count).unwrap_or(0);
            figures.oom_killed = oom_killed(status);
            against_resources(&mut figures, container);
            oom_peak(&mut figures);
            usage.push(figures);
        }
    }
    usage
}

/// When the container's current run started, and when it ended (`now_ms` if it still runs).
fn life(status: &ContainerStatus, now_ms: i64) -> Option<(i64, i64)> {
    let state = status.state.as_ref()?;
    if let Some(t) = &state.terminated {
        let start = t.started_at.as_ref()?.0.as_millisecond();
        let end = t.finished_at.as_ref().map_or(now_ms, |f| f.0.as_millisecond());
        return Some((start, end.max(start)));
    }
    let start = state.running.as_ref()?.started_at.as_ref()?.0.as_millisecond();
    Some((start, now_ms.max(start)))
}

fn oom_killed(status: &ContainerStatus) -> bool {
    let terminated = |s: Option<&k8s_openapi::api::core::v1::ContainerState>| {
        s.and_then(|s| s.terminated.as_ref()).is_some_and(|t| t.reason.as_deref() == Some("OOMKilled"))
    };
    terminated(status.state.as_ref()) || terminated(status.last_state.as_ref())
}

/// CPU, memory and coverage of one container's series over its life.
fn figures(series: Option<&Series>, start_ms: i64, end_ms: i64) -> ContainerUsage {
    let runtime_seconds = seconds(end_ms.saturating_sub(start_ms));
    let mut usage = ContainerUsage { runtime_seconds, ..ContainerUsage::default() };
    let Some(series) = series else { return usage };
    usage.samples = u32::try_from(series.cpu.len().max(series.working_set.len())).unwrap_or(u32::MAX);
    if let Some(&(last_ms, _)) = series.cpu.last() {
        let covered_ms = last_ms.saturating_sub(start_ms).max(0);
        let cpu = cumulative(&series.cpu);
        usage.cpu_seconds = Some(cpu);
        usage.cpu_gap_seconds = Some(seconds(end_ms.saturating_sub(last_ms).max(0)));
        usage.average_cores = (covered_ms > 0).then(|| cpu / seconds(covered_ms));
        usage.p90_cores = p90(&rates(&series.cpu));
        usage.coverage = match end_ms.saturating_sub(start_ms) {
            0 => 1.0,
            life => (covered_ms as f64 / life as f64).clamp(0.0, 1.0),
        };
    }
    let highest = |points: &[(i64, f64)]| points.iter().map(|(_, v)| *v).reduce(f64::max);
    usage.peak_working_set_bytes = highest(&series.working_set);
    (usage.peak_memory_bytes, usage.peak_memory_source) =
        match (highest(&series.kernel_peak), usage.peak_working_set_bytes) {
            (Some(peak), _) => (Some(peak), Some("kernel peak".to_string())),
            (None, Some(seen)) => (Some(seen), Some("sampled working set".to_string())),
            (None, None) => (None, None),
        };
    usage.peak_rss_bytes = highest(&series.rss);
    usage
}

/// Core-seconds used across restarts: a counter that falls started again, so each run's last
/// value counts.
fn cumulative(points: &[(i64, f64)]) -> f64 {
    let mut total = 0.0;
    let mut last = 0.0;
    for &(_, value) in points {
        if value < last {
            total += last;
        }
        last = value;
    }
    total + last
}

/// Cores used between consecutive samples (a counter reset starts a new pair).
fn rates(points: &[(i64, f64)]) -> Vec<f64> {
    points
        .windows(2)
        .filter(|w| w[1].1 >= w[0].1 && w[1].0 > w[0].0)
        .map(|w| (w[1].1 - w[0].1) / seconds(w[1].0 - w[0].0))
        .collect()
}

fn p90(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let last = sorted.len().checked_sub(1)?;
    let rank = (last as f64 * 0.9).ceil() as usize;
    sorted.get(rank.min(last)).copied()
}

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// Requests, limits and efficiency; the suggestion, and how sure it is.
fn against_resources(usage: &mut ContainerUsage, container: &Container) {
    let resources = container.resources.as_ref();
    let quantity =
        |map: Option<&std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
         name: &str| map.and_then(|m| m.get(name)).and_then(|q| parse_quantity(&q.0));
    let requests = resources.and_then(|r| r.requests.as_ref());
    let limits = resources.and_then(|r| r.limits.as_ref());
    // A limit without a request is a request of the same size (Kubernetes defaults it so).
    usage.cpu_request_cores = quantity(requests, "cpu").or_else(|| quantity(limits, "cpu"));
    usage.memory_request_bytes = quantity(requests, "memory").or_else(|| quantity(limits, "memory"));
    usage.cpu_limit_cores = quantity(limits, "cpu");
    usage.memory_limit_bytes = quantity(limits, "memory");
    usage.cpu_efficiency = ratio(usage.average_cores, usage.cpu_request_cores);
    usage.memory_efficiency = ratio(usage.peak_memory_bytes, usage.memory_request_bytes);
    usage.accelerators =
        requests.into_iter().chain(limits).flat_map(|m| m.keys()).filter(|k| is_extended(k)).cloned().collect();
    usage.accelerators.sort();
    usage.accelerators.dedup();
    usage.suggested_cpu_cores = usage.p90_cores.or(usage.average_cores);
    usage.suggested_memory_bytes = usage.peak_memory_bytes.map(|p| p * MEMORY_MARGIN);
    usage.low_confidence = usage.samples < CONFIDENT_SAMPLES
        || usage.coverage < CONFIDENT_COVERAGE
        || usage.runtime_seconds < CONFIDENT_RUNTIME_S;
}

/// A container the kernel killed for memory reached its limit, whatever the samples caught
/// before the spike: its peak is its limit, and said so.
fn oom_peak(usage: &mut ContainerUsage) {
    let Some(limit) = usage.memory_limit_bytes.filter(|_| usage.oom_killed) else { return };
    if usage.peak_memory_bytes.is_none_or(|p| p < limit) {
        usage.peak_memory_bytes = Some(limit);
        usage.peak_memory_source = Some("its limit (OOMKilled)".to_string());
        usage.memory_efficiency = ratio(usage.peak_memory_bytes, usage.memory_request_bytes);
    }
    // The VPA recommender's bump after an OOM kill.
    usage.suggested_memory_bytes = Some((limit + OOM_BUMP_BYTES).max(limit * OOM_BUMP_FACTOR));
}

/// `used ÷ asked`, when there is a positive request.
fn ratio(used: Option<f64>, asked: Option<f64>) -> Option<f64> {
    match (used, asked) {
        (Some(used), Some(asked)) if asked > 0.0 => Some(used / asked),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(cpu: &[(i64, f64)]) -> Series {
        Series {
            cpu: cpu.to_vec(),
            working_set: vec![(1_000, 10.0), (3_000, 30.0)],
            kernel_peak: Vec::new(),
            rss: Vec::new(),
        }
    }

    #[test]
    fn cpu_seconds_add_up_across_a_restart_and_the_gap_to_the_end_is_said() {
        // 2 core-seconds, a restart (the counter falls), then 1.5 more; ended at 10 s.
        let s = series(&[(1_000, 0.5), (3_000, 2.0), (5_000, 0.5), (7_000, 1.5)]);
        let usage = figures(Some(&s), 0, 10_000);
        assert_eq!(usage.cpu_seconds, Some(3.5));
        assert_eq!(usage.cpu_gap_seconds, Some(3.0));
        assert_eq!(usage.coverage, 0.7);
        assert_eq!(usage.average_cores, Some(0.5));
        assert_eq!(usage.peak_memory_bytes, Some(30.0));
        assert_eq!(usage.peak_memory_source.as_deref(), Some("sampled working set"));
        // Rates: 0.75 then (reset skipped) 0.5 cores.
        assert_eq!(rates(&s.cpu), vec![0.75, 0.5]);
    }

    #[test]
    fn without_samples_nothing_is_claimed_and_without_requests_no_efficiency() {
        let mut usage = figures(None, 0, 4_000);
        assert_eq!((usage.cpu_seconds, usage.peak_memory_bytes, usage.coverage), (None, None, 0.0));
        against_resources(&mut usage, &Container::default());
        assert_eq!((usage.cpu_efficiency, usage.memory_efficiency), (None, None));
        assert!(usage.low_confidence);
    }

    #[test]
    fn a_pod_made_again_under_its_name_is_not_charged_with_its_predecessors_samples() {
        // The training operator deletes a worker that failed and makes it again, same name.
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "job-worker-0", "uid": "second", "creationTimestamp": "1970-01-01T00:00:20Z"},
            "spec": {"containers": [{"name": "pytorch"}]},
            "status": {"containerStatuses": [{"name": "pytorch", "image": "i", "imageID": "", "ready": false,
                "restartCount": 0, "state": {"terminated": {"exitCode": 0,
                "startedAt": "1970-01-01T00:00:22Z", "finishedAt": "1970-01-01T00:00:30Z"}}}]},
        }))
        .expect("a pod");
        let mut samples = Samples::default();
        let points = vec![(10_000, 5.0), (14_000, 7.0), (24_000, 1.0), (28_000, 3.0)];
        let both = Series { cpu: points.clone(), working_set: points.clone(), kernel_peak: points, rss: Vec::new() };
        samples.series.entry("job-worker-0".into()).or_default().insert("pytorch".into(), both);
        let usage = usage_of(&samples, &[pod], 40_000);
        assert_eq!(usage.len(), 1);
        let u = &usage[0];
        assert_eq!((u.pod_uid.as_str(), u.cpu_seconds, u.samples), ("second", Some(3.0), 2), "{u:#?}");
        assert_eq!((u.peak_memory_bytes, u.peak_working_set_bytes), (Some(3.0), Some(3.0)));
    }

    #[test]
    fn the_90th_percentile_is_a_sample_near_the_top() {
        assert_eq!(p90(&[]), None);
        assert_eq!(p90(&[0.2]), Some(0.2));
        let values: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(p90(&values), Some(10.0));
        assert_eq!(p90(&values[..9]), Some(9.0));
    }

    #[test]
    fn an_oom_killed_container_peaked_at_its_limit() {
        let mut usage = ContainerUsage {
            oom_killed: true,
            peak_memory_bytes: Some(5.0),
            memory_limit_bytes: Some(48.0),
            memory_request_bytes: Some(24.0),
            ..ContainerUsage::default()
        };
        oom_peak(&mut usage);
        assert_eq!(usage.peak_memory_bytes, Some(48.0));
        assert_eq!(usage.memory_efficiency, Some(2.0));
        assert_eq!(usage.suggested_memory_bytes, Some(48.0 + OOM_BUMP_BYTES));
    }
}
