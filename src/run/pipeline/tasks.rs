//! The task table of a pipeline run, read from its Argo Workflow's nodes as KFP lays them
//! out: a driver pod (`<task>-driver`) then the task's executor pod (`<task>.executor`) per
//! task; on KFP 2.17.0 every step under a retry node whose attempts are named `<name>(N)`
//! (`<wf>.root.train(0).executor(0)`); a task whose outputs KFP's cache held is a `Skipped`
//! node with no pod. A Workflow over 1 MiB keeps its nodes gzipped in `compressedNodes`.

use std::{collections::BTreeMap, io::Read};

use base64::Engine;
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use crate::outcome::TaskRow;

/// A `status.compressedNodes` that does not decode: the task table is then empty, and says so.
#[derive(Debug, thiserror::Error)]
pub(super) enum NodesError {
    #[error("the Workflow's status.compressedNodes is not base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("the Workflow's status.compressedNodes is not gzip: {0}")]
    Gzip(#[from] std::io::Error),
    #[error("the Workflow's status.compressedNodes is not a node map: {0}")]
    Json(#[from] serde_json::Error),
}

/// The Workflow's nodes, from `status.nodes` or, for a large Workflow, decoded from
/// `status.compressedNodes` (base64 of gzip of the JSON map).
pub(super) fn nodes(workflow: &Value) -> Result<BTreeMap<String, Value>, NodesError> {
    if let Some(nodes) = workflow.pointer("/status/nodes").and_then(Value::as_object) {
        return Ok(nodes.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
    }
    let Some(packed) = workflow.pointer("/status/compressedNodes").and_then(Value::as_str) else {
        return Ok(BTreeMap::new());
    };
    let gzipped = base64::engine::general_purpose::STANDARD.decode(packed.trim())?;
    let mut json = String::new();
    flate2::read::GzDecoder::new(gzipped.as_slice()).read_to_string(&mut json)?;
    Ok(serde_json::from_str(&json)?)
}

/// A node's name without Argo's retry suffixes: `a.root.train(0).executor(1)` →
/// `a.root.train.executor`, and the number of the attempt it names (its last suffix).
fn without_retries(name: &str) -> (String, u32) {
    let mut plain = String::with_capacity(name.len());
    let mut attempt = 0;
    let mut rest = name;
    while let Some(open) = rest.find('(') {
        let close = rest[open..].find(')').map(|c| open + c);
        match close.and_then(|c| rest[open + 1..c].parse::<u32>().ok().map(|n| (c, n))) {
            Some((close, n)) => {
                plain.push_str(&rest[..open]);
                attempt = n;
                rest = &rest[close + 1..];
            }
            None => {
                plain.push_str(&rest[..=open]);
                rest = &rest[open + 1..];
            }
        }
    }
    plain.push_str(rest);
    (plain, attempt)
}

/// The task a node belongs to and whether it is that task's driver.
fn task_of(node: &Value) -> (String, &'static str) {
    let (name, _) = without_retries(node["name"].as_str().unwrap_or_default());
    let inner = name.strip_suffix(".executor").unwrap_or(&name);
    let last = inner.rsplit('.').next().unwrap_or(inner);
    match last.strip_suffix("-driver") {
        Some(task) => (task.to_string(), "driver"),
        None if last.is_empty() => (node["displayName"].as_str().unwrap_or_default().to_string(), "task"),
        None => (last.to_string(), "task"),
    }
}

/// Whether a driver node said the cache held its task's outputs.
fn cache_hit(driver: &Value) -> bool {
    driver
        .pointer("/outputs/parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|p| p["name"] == "cached-decision" && p["value"].as_str().is_some_and(|v| v.eq_ignore_ascii_case("true")))
}

/// The pod that ran a node, by Argo's node-id annotation.
fn pod_of<'p>(pods: &'p [Pod], node_id: &str) -> Option<&'p Pod> {
    pods.iter().find(|p| {
        p.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("workflows.argoproj.io/node-id"))
            .is_some_and(|x| x == node_id)
    })
}

/// The task table: one row per task and per driver, its last attempt's state, pod and
/// message, and how many attempts there were; a skipped task is marked `cached` when its
/// driver said so.
pub(super) fn table(nodes: &BTreeMap<String, Value>, pods: &[Pod]) -> Vec<TaskRow> {
    // (task, role) → the attempts' nodes, each with its attempt number.
    let mut runs: BTreeMap<(String, &'static str), Vec<(u32, &Value)>> = BTreeMap::new();
    let mut skipped: BTreeMap<String, &Value> = BTreeMap::new();
    let mut cached: Vec<String> = Vec::new();
    for node in nodes.values() {
        let (task, role) = task_of(node);
        match node["type"].as_str() {
            Some("Pod") => {
                let (_, attempt) = without_retries(node["name"].as_str().unwrap_or_default());
                if role == "driver" && cache_hit(node) {
                    cached.push(task.clone());
                }
                runs.entry((task, role)).or_default().push((attempt, node));
            }
            Some("Skipped") if role == "task" => {
                skipped.insert(task, node);
            }
            _ => {}
        }
    }
    let mut rows: Vec<TaskRow> = runs
        .into_iter()
        .map(|((task, role), mut attempts)| {
            attempts.sort_by_key(|(n, node)| (*n, node["startedAt"].as_str().unwrap_or_default().to_string()));
            let count = u32::try_from(attempts.len()).unwrap_or(u32::MAX);
            let last = attempts.last().map(|(_, node)| *node).unwrap_or(&Value::Null);
            let pod = pod_of(pods, last["id"].as_str().unwrap_or_default());
            TaskRow {
                cached: false,
                role: role.into(),
                attempts: count,
                state: last["phase"].as_str().unwrap_or_default().to_string(),
                started: attempts.first().and_then(|(_, n)| n["startedAt"].as_str()).map(str::to_string),
                ended: last["finishedAt"].as_str().map(str::to_string),
                pod: pod.and_then(|p| p.metadata.name.clone()),
                message: last["message"].as_str().map(str::to_string),
                task,
            }
        })
        .collect();
    for (task, node) in skipped {
        if rows.iter().any(|r| r.task == task && r.role == "task") {
            continue;
        }
        rows.push(TaskRow {
            cached: cached.contains(&task),
            role: "task".into(),
            attempts: 0,
            state: "Skipped".into(),
            started: node["startedAt"].as_str().map(str::to_string),
            ended: node["finishedAt"].as_str().map(str::to_string),
            pod: None,
            message: node["message"].as_str().map(str::to_string),
            task,
        });
    }
    rows.sort_by(|a, b| (&a.started, a.role != "driver", &a.task).cmp(&(&b.started, b.role != "driver", &b.task)));
    rows
}

/// The first node that failed and is not a user task's pod (a driver, the DAG machinery, a
/// system pod), with its message: what to blame when no user task failed.
pub(super) fn failing_system_node(nodes: &BTreeMap<String, Value>) -> Option<(String, String)> {
    let mut failed: Vec<&Value> =
        nodes.values().filter(|n| matches!(n["phase"].as_str(), Some("Failed" | "Error"))).collect();
    failed.sort_by_key(|n| n["finishedAt"].as_str().unwrap_or_default().to_string());
    failed.into_iter().find_map(|n| {
        let message = n["message"].as_str().filter(|m| !m.is_empty())?;
        let (task, role) = task_of(n);
        let shown = if role == "driver" { format!("the driver of {task}") } else { format!("node {task}") };
        Some((shown, message.to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(id: &str, name: &str, kind: &str, phase: &str, started: &str) -> (String, Value) {
        (id.into(), json!({"id": id, "name": name, "type": kind, "phase": phase, "startedAt": started}))
    }

    #[test]
    fn retry_suffixes_are_not_task_names() {
        assert_eq!(without_retries("wf.root.train(0).executor(1)"), ("wf.root.train.executor".into(), 1));
        assert_eq!(without_retries("wf.root.f(x).executor"), ("wf.root.f(x).executor".into(), 0));
        let n = json!({"name": "wf.root.train(0).executor(0)"});
        assert_eq!(task_of(&n), ("train".into(), "task"));
        assert_eq!(task_of(&json!({"name": "wf.root.train-driver(0)"})), ("train".into(), "driver"));
        assert_eq!(task_of(&json!({"name": "wf.root-driver(0)"})), ("root".into(), "driver"));
    }

    #[test]
    fn attempts_of_one_task_are_one_row_with_the_last_state() {
        let nodes: BTreeMap<String, Value> = [
            node("a", "wf.root.train-driver(0)", "Pod", "Succeeded", "2026-01-01T00:00:01Z"),
            node("b", "wf.root.train(0).executor(0)", "Pod", "Error", "2026-01-01T00:00:02Z"),
            node("c", "wf.root.train(0).executor(1)", "Pod", "Succeeded", "2026-01-01T00:00:05Z"),
            node("d", "wf.root.train(0).executor", "Retry", "Succeeded", "2026-01-01T00:00:02Z"),
        ]
        .into_iter()
        .collect();
        let rows = table(&nodes, &[]);
        let train: Vec<&TaskRow> = rows.iter().filter(|r| r.role == "task").collect();
        assert_eq!(train.len(), 1, "{rows:?}");
        assert_eq!((train[0].task.as_str(), train[0].attempts, train[0].state.as_str()), ("train", 2, "Succeeded"));
        assert_eq!(train[0].started.as_deref(), Some("2026-01-01T00:00:02Z"), "the first attempt's start");
        assert!(rows.iter().any(|r| r.role == "driver" && r.task == "train"));
    }

    #[test]
    fn a_cache_hit_is_a_cached_row_without_a_pod() {
        let (id, mut driver) = node("a", "wf.root.train-driver(0)", "Pod", "Succeeded", "2026-01-01T00:00:01Z");
        driver["outputs"] = json!({"parameters": [{"name": "cached-decision", "value": "true"}]});
        let nodes: BTreeMap<String, Value> =
            [(id, driver), node("b", "wf.root.train", "Skipped", "Skipped", "2026-01-01T00:00:03Z")]
                .into_iter()
                .collect();
        let rows = table(&nodes, &[]);
        let train = rows.iter().find(|r| r.role == "task").expect("a row for the task");
        assert!(train.cached && train.attempts == 0 && train.pod.is_none(), "{train:?}");
    }

    #[test]
    fn compressed_nodes_are_read() {
        use std::io::Write;
        let map = json!({"x": {"id": "x", "name": "wf.root.t.executor", "type": "Pod", "phase": "Succeeded"}});
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(map.to_string().as_bytes()).expect("gzip");
        let packed = base64::engine::general_purpose::STANDARD.encode(gz.finish().expect("gzip"));
        let wf = json!({"status": {"compressedNodes": packed}});
        assert_eq!(nodes(&wf).expect("decoded").len(), 1);
        assert!(nodes(&json!({"status": {"compressedNodes": "%%%"}})).is_err());
    }
}
