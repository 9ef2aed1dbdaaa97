//! The kubelet's Summary API (`/stats/summary`, `k8s.io/kubelet/pkg/apis/stats/v1alpha1`): what
//! `/metrics/resource` does not say of a container, its resident set. Only the fields read here
//! are typed; the kubelet leaves out what its runtime does not report, so each is optional.
//! Its disk figures (`rootfs`, `logs`) are not read: with Docker the kubelet measures a writable
//! layer by a walk of it once a minute, so a container that wrote 32 MiB showed 3 MB for the
//! minute it lived on the test cluster, a figure no verdict or report should rest on.

use serde::Deserialize;

use super::{Shared, push};

// The kubelet writes an empty list as `null` (a pod whose containers it has no stats of yet).
#[derive(Deserialize)]
struct Summary {
    pods: Option<Vec<PodStats>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PodStats {
    pod_ref: PodRef,
    containers: Option<Vec<ContainerStats>>,
}

#[derive(Deserialize)]
struct PodRef {
    name: String,
    namespace: String,
}

#[derive(Deserialize)]
struct ContainerStats {
    name: String,
    memory: Option<MemoryStats>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MemoryStats {
    time: Option<jiff::Timestamp>,
    rss_bytes: Option<u64>,
}

/// The pods of a summary; a body that is not one is said in serde's words, with its line and
/// column.
pub(super) fn parse(text: &str) -> Result<Vec<PodStats>, String> {
    serde_json::from_str::<Summary>(text)
        .map(|s| s.pods.unwrap_or_default())
        .map_err(|e| format!("not a kubelet summary: {e}"))
}

/// Each registered container's resident set, at the time the kubelet took it.
pub(super) fn file(shared: &mut Shared, pods: &[PodStats]) {
    for pod in pods {
        for container in pod.containers.iter().flatten() {
            let Some(memory) = &container.memory else { continue };
            let Some(rss) = memory.rss_bytes else { continue };
            let at = memory.time.unwrap_or_else(jiff::Timestamp::now).as_millisecond();
            shared.file(&pod.pod_ref.namespace, &pod.pod_ref.name, &container.name, |series| {
                push(&mut series.rss, at, rss as f64);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::usage::{Samples, Watched};

    #[test]
    fn a_containers_resident_set_is_kept_at_the_kubelets_time() {
        let mut shared = Shared::default();
        let watched = Watched { namespace: "kv-a".into(), pods: None, samples: Samples::default() };
        shared.watched.insert(0, watched);
        let summary = |rss: u64, second: u32| {
            format!(
                r#"{{"node": {{"nodeName": "n"}}, "pods": [{{"podRef": {{"name": "p", "namespace": "kv-a", "uid": "u"}},
                "containers": [{{"name": "main", "memory": {{"time": "2026-12-07T03:08:0{second}Z", "rssBytes": {rss}, "workingSetBytes": 9}},
                "rootfs": {{"usedBytes": 7}}}},
                {{"name": "quiet"}}]}},
                {{"podRef": {{"name": "q", "namespace": "kv-other", "uid": "v"}}, "containers": [{{"name": "main"}}]}},
                {{"podRef": {{"name": "starting", "namespace": "kv-a", "uid": "w"}}, "containers": null}}]}}"#
            )
        };
        for (second, rss) in [(1, 100), (2, 300), (2, 300), (3, 200)] {
            let pods = parse(&summary(rss, second)).expect("a summary");
            file(&mut shared, &pods);
        }
        let series = &shared.watched[&0].samples.series;
        assert_eq!(series.keys().collect::<Vec<_>>(), ["p"], "the other namespace's pod is not kept");
        let main = &series["p"]["main"];
        let at = |second: i64| 1_796_612_880_000 + second * 1_000;
        assert_eq!(main.rss, vec![(at(1), 100.0), (at(2), 300.0), (at(3), 200.0)]);
        assert!(!series["p"].contains_key("quiet"), "not reported, not zero");
    }

    #[test]
    fn a_body_that_is_not_a_summary_is_said_where() {
        let e = parse("{\"pods\": [{\"podRef\": 3}]}").err().unwrap_or_default();
        assert!(e.starts_with("not a kubelet summary: ") && e.contains("column"), "{e}");
    }
}
