//! TEST HELPER for kubevet's orchestration benchmark; not part of kubevet.
//!
//! Registers a node that no kubelet serves and plays its kubelet, as KWOK does: a pod bound to
//! it is marked Running at once and Succeeded (exit code 0) after DURATION seconds. Each
//! completion is appended to RECORD as `namespace/pod unix_millis`, so the benchmark can
//! measure how long kubevet takes to notice.
//!
//! Usage: bench-pod-completer KUBECONFIG NODE DURATION_SECONDS RECORD

use std::{io::Write, time::Duration};

use futures::StreamExt;
use k8s_openapi::{
    api::core::v1::{Node, Pod},
    jiff::Timestamp,
};
use kube::{
    Api, Client, Config, ResourceExt,
    api::{Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::json;

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("bench-pod-completer: {what}: {e}");
    std::process::exit(1)
}

fn node_status() -> serde_json::Value {
    let now = Timestamp::now().to_string();
    json!({"status": {
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "played by bench-pod-completer",
                        "lastHeartbeatTime": now, "lastTransitionTime": now}],
        "capacity": {"cpu": "1000", "memory": "1Ti", "pods": "10000"},
        "allocatable": {"cpu": "1000", "memory": "1Ti", "pods": "10000"},
        // The API server reaches kubelets by Hostname on the test cluster: localhost answers
        // log requests (with "not found") instead of hanging.
        "addresses": [{"type": "Hostname", "address": "localhost"}],
    }})
}

async fn complete(pods: Api<Pod>, pod: Pod, after: Duration, record: std::path::PathBuf) {
    let name = pod.name_any();
    let containers: Vec<String> =
        pod.spec.as_ref().map(|s| s.containers.iter().map(|c| c.name.clone()).collect()).unwrap_or_default();
    let started = Timestamp::now().to_string();
    let statuses = |state: serde_json::Value, ready: bool| -> Vec<serde_json::Value> {
        containers.iter().map(|c| json!({"name": c, "image": "bench", "imageID": "bench", "ready": ready, "restartCount": 0, "state": state})).collect()
    };
    let running = json!({"status": {"phase": "Running", "startTime": started, "hostIP": "127.0.0.1", "podIP": "127.0.0.1",
        "conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}],
        "containerStatuses": statuses(json!({"running": {"startedAt": started}}), true)}});
    if pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&running)).await.is_err() {
        return;
    }
    tokio::time::sleep(after).await;
    let finished = Timestamp::now();
    let done = json!({"status": {"phase": "Succeeded",
        "conditions": [{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}],
        "containerStatuses": statuses(json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": finished.to_string()}}), false)}});
    if pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&done)).await.is_ok() {
        let line = format!("{}/{name} {}\n", pod.namespace().unwrap_or_default(), finished.as_millisecond());
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(&record) {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, kubeconfig, node, seconds, record] = args.as_slice() else {
        fail("usage", "bench-pod-completer KUBECONFIG NODE DURATION_SECONDS RECORD")
    };
    let after = Duration::from_secs_f64(seconds.parse().unwrap_or_else(|e| fail("DURATION_SECONDS", e)));
    let file = Kubeconfig::read_from(kubeconfig).unwrap_or_else(|e| fail("kubeconfig", e));
    let config = Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| fail("kubeconfig", e));
    let client = Client::try_from(config).unwrap_or_else(|e| fail("client", e));

    let nodes: Api<Node> = Api::all(client.clone());
    let fake: Node = serde_json::from_value(json!({"metadata": {"name": node, "labels": {"type": "kubevet-bench"}}}))
        .unwrap_or_else(|e| fail("node", e));
    if let Err(e) = nodes.create(&PostParams::default(), &fake).await
        && !matches!(&e, kube::Error::Api(s) if s.is_already_exists())
    {
        fail("creating the node", e)
    }
    // Heartbeats keep the node controller from marking the node unreachable.
    let heartbeat_nodes = nodes.clone();
    let heartbeat_name = node.clone();
    tokio::spawn(async move {
        loop {
            let _ = heartbeat_nodes
                .patch_status(&heartbeat_name, &PatchParams::default(), &Patch::Merge(&node_status()))
                .await;
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
    });

    let pods: Api<Pod> = Api::all(client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let mut seen = std::collections::HashSet::new();
    let mut stream = std::pin::pin!(watcher(pods, config).applied_objects());
    eprintln!("bench-pod-completer: playing the kubelet of node {node}");
    while let Some(event) = stream.next().await {
        let Ok(pod) = event else { continue };
        let phase = pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
        let key = format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any());
        if phase == "Pending" && pod.metadata.deletion_timestamp.is_none() && seen.insert(key) {
            let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
            tokio::spawn(complete(api, pod, after, record.into()));
        }
    }
}
