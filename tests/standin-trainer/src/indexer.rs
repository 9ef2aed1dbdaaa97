//! The stand-in's mutating admission webhook: what newer Kubernetes and JobSet's own webhook
//! give the real stack, on Kubernetes 1.20.
//!
//! - **Indexed Jobs** (Kubernetes 1.21+) do not exist on 1.20: its Job controller makes
//!   interchangeable pods. As each pod of a JobSet's Job is created, this webhook gives it the
//!   lowest completion index that no running or succeeded pod of that Job holds, as the
//!   `batch.kubernetes.io/job-completion-index` annotation and label (what Trainer's
//!   `PET_NODE_RANK` and the kubeflow SDK read), the stable hostname `<job>-<index>` and the
//!   name prefix `<job>-<index>-` that the Indexed Job controller sets. A replacement for a
//!   failed pod takes the failed pod's index, as in Indexed mode.
//! - **JobSet defaulting**: JobSets are stored with the defaults JobSet's webhook sets.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::State,
    routing::{get, post},
};
use base64::Engine;
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client, ResourceExt, api::ListParams};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::jobset::{NAME_KEY, default_spec};

pub const INDEX_KEY: &str = "batch.kubernetes.io/job-completion-index";
/// How long an index given to a pod not yet seen in a list stays taken.
const RESERVATION: Duration = Duration::from_secs(30);

pub struct Indexer {
    client: Client,
    /// Per Job uid: indexes given out, with when.
    given: Mutex<HashMap<String, Vec<(i64, Instant)>>>,
}

pub fn router(client: Client) -> Router {
    let indexer = Arc::new(Indexer { client, given: Mutex::new(HashMap::new()) });
    Router::new().route("/mutate", post(review)).route("/healthz", get(|| async { "ok" })).with_state(indexer)
}

async fn review(State(indexer): State<Arc<Indexer>>, Json(review): Json<Value>) -> Json<Value> {
    let request = &review["request"];
    let patch = match request.pointer("/kind/kind").and_then(Value::as_str) {
        Some("Pod") => indexer.index_pod(request).await,
        Some("JobSet") => Ok(default_jobset(request)),
        _ => Ok(Vec::new()),
    };
    let mut response = json!({"uid": request["uid"], "allowed": true});
    match patch {
        Ok(ops) if ops.is_empty() => {}
        Ok(ops) => {
            response["patchType"] = json!("JSONPatch");
            response["patch"] = json!(base64::engine::general_purpose::STANDARD.encode(Value::Array(ops).to_string()));
        }
        Err(e) => {
            // Refused: the Job controller tries again, as after any failed create.
            warn!(error = %e, "cannot index a pod");
            response["allowed"] = json!(false);
            response["status"] = json!({"code": 500, "message": format!("TEST STAND-IN indexer: {e}")});
        }
    }
    Json(json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}))
}

fn default_jobset(request: &Value) -> Vec<Value> {
    let mut spec = request.pointer("/object/spec").cloned().unwrap_or_else(|| json!({}));
    default_spec(&mut spec);
    vec![json!({"op": "replace", "path": "/spec", "value": spec})]
}

/// A JSON pointer's escaping of one key.
fn escaped(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

impl Indexer {
    async fn index_pod(&self, request: &Value) -> Result<Vec<Value>, kube::Error> {
        let pod = &request["object"];
        let owner = pod
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .and_then(|owners| owners.iter().find(|o| o["kind"] == "Job" && o["controller"] == true));
        let (Some(owner), Some(_)) = (owner, pod.pointer(&format!("/metadata/labels/{}", escaped(NAME_KEY)))) else {
            return Ok(Vec::new());
        };
        let job = owner["name"].as_str().unwrap_or_default();
        let job_uid = owner["uid"].as_str().unwrap_or_default().to_string();
        let namespace = request["namespace"].as_str().unwrap_or_default();
        let mut given = self.given.lock().await;
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let listed = pods.list(&ListParams::default().labels(&format!("controller-uid={job_uid}"))).await?;
        let index = {
            let reservations = given.entry(job_uid).or_default();
            let index = lowest_free(&listed.items, reservations);
            reservations.push((index, Instant::now()));
            index
        };
        given.retain(|_, r| !r.is_empty());
        info!(job, index, "indexed a pod");
        let mut ops = Vec::new();
        for field in ["annotations", "labels"] {
            if pod.pointer(&format!("/metadata/{field}")).is_none() {
                ops.push(json!({"op": "add", "path": format!("/metadata/{field}"), "value": {}}));
            }
            let path = format!("/metadata/{field}/{}", escaped(INDEX_KEY));
            ops.push(json!({"op": "add", "path": path, "value": index.to_string()}));
        }
        ops.push(json!({"op": "add", "path": "/spec/hostname", "value": format!("{job}-{index}")}));
        ops.push(json!({"op": "add", "path": "/metadata/generateName", "value": format!("{job}-{index}-")}));
        Ok(ops)
    }
}

/// The lowest index no running or succeeded pod holds and none given out lately does.
/// Reservations whose pod a list shows, or older than [`RESERVATION`], are dropped.
fn lowest_free(pods: &[Pod], reservations: &mut Vec<(i64, Instant)>) -> i64 {
    let index_of = |p: &Pod| p.annotations().get(INDEX_KEY).and_then(|i| i.parse::<i64>().ok());
    let phase = |p: &Pod| p.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
    let seen: Vec<i64> = pods.iter().filter_map(index_of).collect();
    reservations.retain(|(index, at)| !seen.contains(index) && at.elapsed() < RESERVATION);
    let held: Vec<i64> = pods
        .iter()
        .filter(|p| phase(p) != "Failed")
        .filter_map(index_of)
        .chain(reservations.iter().map(|(i, _)| *i))
        .collect();
    (0..).find(|i| !held.contains(i)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(index: i64, phase: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": format!("p{index}"), "annotations": {INDEX_KEY: index.to_string()}},
            "status": {"phase": phase},
        }))
        .expect("pod")
    }

    #[test]
    fn a_replacement_takes_the_failed_pods_index_and_reservations_count() {
        let mut reservations = Vec::new();
        assert_eq!(lowest_free(&[], &mut reservations), 0);
        reservations.push((0, Instant::now()));
        assert_eq!(lowest_free(&[], &mut reservations), 1, "an index given out but not yet listed is taken");
        let pods = [pod(0, "Running"), pod(1, "Failed"), pod(2, "Succeeded")];
        assert_eq!(lowest_free(&pods, &mut reservations), 1);
        assert!(reservations.is_empty(), "a listed pod ends its reservation");
    }

    #[test]
    fn jobsets_get_the_real_webhooks_defaults() {
        let request = json!({"object": {"spec": {"replicatedJobs": [{"name": "node", "template": {"spec": {"template": {"spec": {}}}}}]}}});
        let ops = default_jobset(&request);
        let spec = &ops[0]["value"];
        assert_eq!(spec["successPolicy"]["operator"], "All");
        assert_eq!(spec["network"]["enableDNSHostnames"], true);
        assert_eq!(spec["replicatedJobs"][0]["template"]["spec"]["completionMode"], "Indexed");
        assert_eq!(spec["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]["restartPolicy"], "OnFailure");
    }
}
