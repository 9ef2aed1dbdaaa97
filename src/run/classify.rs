//! Why a case did not pass, as a class CI can act on: the workload's own failure (`test`),
//! its timeout, the cluster's fault (`infrastructure`: a registry, an eviction, a node, the
//! cluster's capacity, API errors beyond their retries, a quota) or the example's own mistake
//! (`example`: rejected by validation, an unknown kind, an object it needs that is missing).
//! The suite's rules (`classes:`) come first; kubevet's own read pod status and events.

use k8s_openapi::api::core::v1::Pod;

use crate::{
    cluster::{ApiError, wait::Stuck},
    suite::{ClassRule, FailureClass, classes::by_rules},
    util::cel::parse_quantity,
};

/// Reasons of events that say the node or the cluster took the pod away.
const NODE_EVENTS: &[&str] = &[
    "Evicted",
    "NodeNotReady",
    "NodeHasDiskPressure",
    "NodeHasMemoryPressure",
    "NodeHasPIDPressure",
    "TaintManagerEviction",
    "Preempted",
    "Preempting",
    "DeletingNode",
    "RemovingNode",
    "NodeShutdown",
    "Shutdown",
    "OutOfcpu",
    "OutOfmemory",
];

/// Image pull failures that say the image itself does not exist: the example names it wrong.
const IMAGE_NOT_THERE: &[&str] =
    &["manifest unknown", "not found", "repository does not exist", "no such image", "name unknown"];

/// A workload that ran and failed: the test's failure, unless a pod was taken away by its
/// node or the cluster (eviction, node pressure or loss, preemption).
pub fn failed(pods: &[Pod], events: &[String]) -> FailureClass {
    let evicted = pods.iter().filter_map(|p| p.status.as_ref()).any(|s| {
        matches!(s.reason.as_deref(), Some("Evicted" | "NodeLost" | "Shutdown" | "Terminated"))
            || s.conditions.iter().flatten().any(|c| c.type_ == "DisruptionTarget" && c.status == "True")
    });
    let node_trouble = events.iter().any(|line| NODE_EVENTS.iter().any(|reason| has_reason(line, reason)));
    if evicted || node_trouble { FailureClass::Infrastructure } else { FailureClass::Test }
}

/// The container whose failure failed the workload, in the user's terms: the first (by when it
/// ended) that exited non-zero, as `pod P container C exited with code N`.
pub fn failing_container(pods: &[Pod]) -> Option<String> {
    let mut ended: Vec<(String, String, String, i32)> = pods
        .iter()
        .flat_map(|pod| {
            let spec = pod.spec.iter().flat_map(|s| s.init_containers.iter().flatten().chain(s.containers.iter()));
            spec.filter_map(move |c| {
                let (code, at) = crate::cluster::collect::failed_run(pod, &c.name)?;
                Some((at, pod.metadata.name.clone().unwrap_or_default(), c.name.clone(), code))
            })
        })
        .collect();
    ended.sort();
    ended.first().map(|(_, pod, container, code)| format!("pod {pod} container {container} exited with code {code}"))
}

/// An event line (`<time> <type> <reason> <object>: <message>`) with this reason.
fn has_reason(line: &str, reason: &str) -> bool {
    line.split_whitespace().nth(2) == Some(reason)
}

/// A pod stuck beyond the grace period, by its reason and Kubernetes' message (phrases of
/// several words: no name a user gives can hold one).
pub fn stuck(stuck: &Stuck) -> FailureClass {
    let message = stuck.message.to_lowercase();
    match stuck.reason.as_str() {
        "ImagePullBackOff" | "ErrImagePull" if IMAGE_NOT_THERE.iter().any(|m| message.contains(m)) => {
            FailureClass::Example
        }
        // A registry that is down, slow, rate-limiting or unreachable.
        "ImagePullBackOff" | "ErrImagePull" => FailureClass::Infrastructure,
        // A missing ConfigMap, Secret or key, a bad image name, a bad command.
        "InvalidImageName" | "CreateContainerConfigError" | "CreateContainerError" => FailureClass::Example,
        "Unschedulable" if message.contains("persistentvolumeclaim \"") && message.contains("\" not found") => {
            FailureClass::Example
        }
        "Unschedulable" if message.contains("unbound immediate persistentvolumeclaims") => FailureClass::Example,
        // Not enough CPU, memory or nodes of the kind asked for: the cluster's capacity.
        _ => FailureClass::Infrastructure,
    }
}

/// When a pod asks for more CPU or memory than even the largest node can give, what it asks:
/// then the example is wrong, not the cluster short of room.
pub fn beyond_every_node(pods: &[Pod], nodes: &[std::collections::BTreeMap<String, String>]) -> Option<String> {
    for resource in ["cpu", "memory"] {
        let most = nodes.iter().filter_map(|n| n.get(resource).and_then(|q| parse_quantity(q))).fold(0.0, f64::max);
        for pod in pods {
            let spec = pod.spec.as_ref()?;
            let asked: f64 = spec
                .containers
                .iter()
                .filter_map(|c| {
                    c.resources.as_ref()?.requests.as_ref()?.get(resource).and_then(|q| parse_quantity(&q.0))
                })
                .sum();
            if !nodes.is_empty() && asked > most {
                return Some(format!("asks for {asked} {resource}, more than any node can give ({most})"));
            }
        }
    }
    None
}

/// An object the API server would not take, by the server's status code: 403 (RBAC, a
/// quota, a policy of the cluster's) and any 429 or 5xx that was not the object's fault are
/// the cluster's; 400, 404, 409 and 422 (invalid, an unknown kind, a conflict with what the
/// example itself declares) are the example's. A rejection kubevet found itself (no code) is
/// the example's.
pub fn rejected(error: &ApiError) -> FailureClass {
    match error.code {
        _ if error.infrastructure => FailureClass::Infrastructure,
        Some(403 | 429) | Some(500..=599) => FailureClass::Infrastructure,
        _ => FailureClass::Example,
    }
}

/// The suite's rules first (over the reason and the events), then kubevet's class.
pub fn with_rules(rules: &[ClassRule], reason: &str, events: &[String], builtin: FailureClass) -> FailureClass {
    let texts: Vec<&str> = std::iter::once(reason).chain(events.iter().map(String::as_str)).collect();
    by_rules(rules, &texts).unwrap_or(builtin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stuck_pods_are_told_apart() {
        let c = |pod: &str, reason: &str, message: &str| {
            stuck(&Stuck { pod: pod.into(), reason: reason.into(), message: message.into() })
        };
        let refused = "rpc error: dial tcp 127.0.0.1:1: connect: connection refused";
        assert_eq!(c("p", "ErrImagePull", refused), FailureClass::Infrastructure);
        assert_eq!(c("p", "ImagePullBackOff", "manifest unknown: manifest unknown"), FailureClass::Example);
        assert_eq!(c("p", "CreateContainerConfigError", "configmap \"x\" not found"), FailureClass::Example);
        assert_eq!(c("p", "Unschedulable", "persistentvolumeclaim \"data\" not found"), FailureClass::Example);
        let unbound = "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims.";
        assert_eq!(c("p", "Unschedulable", unbound), FailureClass::Example);
        let room = "0/1 nodes are available: 1 Insufficient cpu.";
        assert_eq!(c("p", "Unschedulable", room), FailureClass::Infrastructure);
        // A node that went away, though "not found": no claim is missing.
        assert_eq!(
            c("p", "Unschedulable", "0/1 nodes are available: node \"w1\" not found"),
            FailureClass::Infrastructure
        );
        // The pod's name is not read: one named for a claim that is short of room is the cluster's.
        assert_eq!(c("persistentvolumeclaim-not-found", "Unschedulable", room), FailureClass::Infrastructure);
    }

    #[test]
    fn a_pod_asking_beyond_every_node_is_named_with_kubernetes_quantities() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"memory": "2Pi"}}}]},
        }))
        .expect("pod");
        let nodes = vec![std::collections::BTreeMap::from([("memory".to_string(), "64Gi".to_string())])];
        let said = beyond_every_node(&[pod], &nodes).expect("beyond the node");
        assert!(said.starts_with("asks for 2251799813685248 memory"), "{said}");
    }

    #[test]
    fn a_failure_after_an_eviction_is_the_clusters() {
        let evicted = "2026-11-30T10:00:00Z Warning Evicted Pod/p: The node was low on resource: memory.".to_string();
        assert_eq!(failed(&[], &[evicted]), FailureClass::Infrastructure);
        let backoff =
            "2026-11-30T10:00:00Z Warning BackoffLimitExceeded Job/j: Job has reached the specified backoff limit"
                .to_string();
        assert_eq!(failed(&[], std::slice::from_ref(&backoff)), FailureClass::Test);
        // A pod the cluster marked for disruption (preemption, a drain, the taint manager).
        let pod = |status: &str| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "p"},
                "status": {"phase": "Failed", "conditions": [{"type": "DisruptionTarget", "status": status}]},
            }))
            .expect("pod")
        };
        assert_eq!(failed(&[pod("True")], std::slice::from_ref(&backoff)), FailureClass::Infrastructure);
        assert_eq!(failed(&[pod("False")], &[backoff]), FailureClass::Test);
    }

    #[test]
    fn rejections_are_classed_by_status_not_by_names() {
        let api = |code: u16, reason: &str, message: &str| ApiError {
            message: message.into(),
            infrastructure: false,
            code: Some(code),
            reason: Some(reason.into()),
            details: None,
        };
        let invalid = api(422, "Invalid", "Job.batch \"forbidden-access\" is invalid: spec.template: Required value");
        assert_eq!(rejected(&invalid), FailureClass::Example);
        let quota = api(403, "Forbidden", "pods \"p\" is forbidden: exceeded quota: compute");
        assert_eq!(rejected(&quota), FailureClass::Infrastructure);
        assert_eq!(rejected(&api(404, "NotFound", "the server could not find")), FailureClass::Example);
        assert_eq!(rejected(&api(500, "InternalError", "webhook failed")), FailureClass::Infrastructure);
        assert_eq!(rejected(&ApiError::rejected("no kind Forbidden served")), FailureClass::Example);
        // No answer at all after the retries (a reset, a timeout): the cluster's, with no code.
        let unanswered = ApiError { infrastructure: true, ..ApiError::rejected("creating Job forbidden-access") };
        assert_eq!(rejected(&unanswered), FailureClass::Infrastructure);
    }

    #[test]
    fn the_suites_rules_come_first() {
        let rules = vec![ClassRule {
            pattern: regex::Regex::new("CUDA out of memory").expect("regex"),
            class: FailureClass::Infrastructure,
        }];
        let events = vec!["… Warning BackOff Pod/p: RuntimeError: CUDA out of memory".to_string()];
        assert_eq!(with_rules(&rules, "Failed: JobFailed", &events, FailureClass::Test), FailureClass::Infrastructure);
        assert_eq!(with_rules(&rules, "Failed: JobFailed", &[], FailureClass::Test), FailureClass::Test);
    }
}
