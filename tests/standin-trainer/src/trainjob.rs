//! The TrainJob semantics of the stand-in (Kubeflow Trainer master 8c0f505: `pkg/runtime/core`,
//! the `jobset` and `torch` plugins, `pkg/controller/trainjob_controller.go`), free of I/O: the
//! JobSet a TrainJob and its runtime make, and the TrainJob's status read from that JobSet.

use serde_json::{Value, json};

use crate::jobset::{conditions, set_condition};

const ANCESTOR_LABEL: &str = "trainer.kubeflow.org/trainjob-ancestor-step";
const NODE: &str = "node";
const TRAINER_PORT: i64 = 29500;

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// Replaces the entry of the same `name` in place, else appends (Trainer's `apply.UpsertEnvVars`).
fn upsert(list: &mut Value, entries: impl IntoIterator<Item = Value>, key: &str) {
    if !list.is_array() {
        *list = json!([]);
    }
    let Some(items) = list.as_array_mut() else { return };
    for entry in entries {
        match items.iter_mut().find(|e| e[key] == entry[key]) {
            Some(existing) => *existing = entry,
            None => items.push(entry),
        }
    }
}

/// A CPU quantity's whole cores, rounded up as Kubernetes' `Quantity.Value()` does.
fn whole_cpus(quantity: &str) -> i64 {
    match quantity.strip_suffix('m') {
        Some(milli) => milli.parse::<i64>().map_or(0, |m| m.saturating_add(999) / 1000),
        None => quantity.parse::<f64>().map_or(0, |c| c.ceil() as i64),
    }
}

/// The extended resources that count as GPUs to Trainer (`runtime.GetNumGPUPerNode`).
fn gpus(resources: &Value) -> i64 {
    ["limits", "requests"]
        .iter()
        .filter_map(|k| resources.get(*k).and_then(Value::as_object))
        .flat_map(|m| m.iter())
        .filter(|(name, _)| name.ends_with("/gpu"))
        .filter_map(|(_, v)| v.as_str().and_then(|s| s.parse::<i64>().ok()).or_else(|| v.as_i64()))
        .max()
        .unwrap_or(0)
}

/// `MergeResourceRequirements`: the TrainJob's `resourcesPerNode` over the runtime's.
fn merge_resources(base: &Value, over: &Value) -> Value {
    let mut merged = if base.is_object() { base.clone() } else { json!({}) };
    for key in ["limits", "requests"] {
        if let Some(values) = over.get(key).and_then(Value::as_object) {
            if !merged[key].is_object() {
                merged[key] = json!({});
            }
            for (name, value) in values {
                merged[key][name] = value.clone();
            }
        }
    }
    merged
}

/// The list fields of a JobSet spec that a strategic merge patch merges by a key (the
/// `patchMergeKey`s of JobSet's and Kubernetes' types); any other list is replaced.
const MERGE_KEYS: &[(&str, &str)] = &[
    ("replicatedJobs", "name"),
    ("containers", "name"),
    ("initContainers", "name"),
    ("env", "name"),
    ("volumes", "name"),
    ("volumeMounts", "mountPath"),
    ("ports", "containerPort"),
];

/// A strategic merge patch as Kubernetes applies one to these types: maps merge, lists with a
/// merge key merge item by item, other lists and values are replaced.
fn strategic_merge(base: &mut Value, patch: &Value, field: &str) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                match base.get_mut(key) {
                    Some(existing) if !value.is_null() => strategic_merge(existing, value, key),
                    _ => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (Value::Array(base), Value::Array(patch)) if MERGE_KEYS.iter().any(|(f, _)| *f == field) => {
            let key = MERGE_KEYS.iter().find(|(f, _)| *f == field).map_or("name", |(_, k)| *k);
            for item in patch {
                match base.iter_mut().find(|b| b[key] == item[key]) {
                    Some(existing) => strategic_merge(existing, item, ""),
                    None => base.push(item.clone()),
                }
            }
        }
        (base, patch) => *base = patch.clone(),
    }
}

/// `mergeRuntimePatches` and the propagated labels and annotations: each of the TrainJob's
/// `runtimePatches`, in order, over the runtime's template.
fn patched_template(trainjob: &Value, runtime_spec: &Value) -> Value {
    let mut template = runtime_spec.get("template").cloned().unwrap_or_else(|| json!({}));
    let patches = trainjob.pointer("/spec/runtimePatches").and_then(Value::as_array).cloned().unwrap_or_default();
    for patch in patches {
        if let Some(metadata) = patch.pointer("/trainingRuntimeSpec/template/metadata") {
            strategic_merge(&mut template["metadata"], metadata, "metadata");
        }
        if let Some(spec) = patch.pointer("/trainingRuntimeSpec/template/spec") {
            strategic_merge(&mut template["spec"], spec, "spec");
        }
    }
    template
}

/// The JobSet (`jobset.x-k8s.io/v1alpha2`) a TrainJob makes from its runtime's spec.
pub fn build_jobset(trainjob: &Value, runtime_spec: &Value) -> Value {
    let name = text(trainjob, "/metadata/name");
    let trainer = trainjob.pointer("/spec/trainer").cloned().unwrap_or(Value::Null);
    let initializer = trainjob.pointer("/spec/initializer").cloned().unwrap_or(Value::Null);
    let ml_policy = runtime_spec.get("mlPolicy").cloned().unwrap_or(Value::Null);
    let template = patched_template(trainjob, runtime_spec);
    let mut spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
    let rjobs = spec.get_mut("replicatedJobs").and_then(Value::as_array_mut).map(std::mem::take).unwrap_or_default();
    let rjobs: Vec<Value> = rjobs
        .into_iter()
        .map(|rjob| initializer_job(rjob, &initializer))
        .map(|rjob| trainer_job(rjob, name, &trainer, &ml_policy))
        .collect();
    spec["replicatedJobs"] = json!(rjobs);
    if let Some(suspend) = trainjob.pointer("/spec/suspend").and_then(Value::as_bool) {
        spec["suspend"] = json!(suspend);
    }
    let mut metadata = json!({
        "name": name,
        "namespace": text(trainjob, "/metadata/namespace"),
        "ownerReferences": [{
            "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "name": name,
            "uid": text(trainjob, "/metadata/uid"), "controller": true, "blockOwnerDeletion": true,
        }],
    });
    for key in ["labels", "annotations"] {
        if let Some(values) = template.pointer(&format!("/metadata/{key}")).filter(|v| v.is_object()) {
            metadata[key] = values.clone();
        }
    }
    json!({"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet", "metadata": metadata, "spec": spec})
}

/// The builder's `Initializer`: a dataset or model initializer job (by its ancestor label)
/// runs once, and its container of the same name gets the TrainJob's `STORAGE_URI`, env and
/// secret.
fn initializer_job(mut rjob: Value, initializer: &Value) -> Value {
    let ancestor = text(&rjob, &format!("/template/metadata/labels/{}", ANCESTOR_LABEL.replace('/', "~1"))).to_string();
    let source = match ancestor.as_str() {
        "dataset-initializer" => &initializer["dataset"],
        "model-initializer" => &initializer["model"],
        _ => return rjob,
    };
    rjob["replicas"] = json!(1);
    if !source.is_object() {
        return rjob;
    }
    let containers = rjob.pointer_mut("/template/spec/template/spec/containers").and_then(Value::as_array_mut);
    for container in containers.into_iter().flatten().filter(|c| c["name"] == ancestor.as_str()) {
        if let Some(uri) = source.get("storageUri").and_then(Value::as_str) {
            upsert(&mut container["env"], [json!({"name": "STORAGE_URI", "value": uri})], "name");
        }
        upsert(&mut container["env"], source.get("env").and_then(Value::as_array).cloned().unwrap_or_default(), "name");
        if let Some(secret) = source.pointer("/secretRef/name") {
            upsert(&mut container["envFrom"], [json!({"secretRef": {"name": secret}})], "secretRef");
        }
    }
    rjob
}

/// One replicated job: the trainer's (ancestor `trainer`) gets the node count, the TrainJob's
/// image, command, args, env and resources, and the torch plugin's `PET_*` env.
fn trainer_job(mut rjob: Value, trainjob: &str, trainer: &Value, ml_policy: &Value) -> Value {
    if text(&rjob, &format!("/template/metadata/labels/{}", ANCESTOR_LABEL.replace('/', "~1"))) != "trainer" {
        return rjob;
    }
    let nodes = trainer
        .get("numNodes")
        .and_then(Value::as_i64)
        .or_else(|| ml_policy.get("numNodes").and_then(Value::as_i64))
        .unwrap_or(1);
    rjob["replicas"] = json!(1);
    rjob["template"]["spec"]["parallelism"] = json!(nodes);
    rjob["template"]["spec"]["completions"] = json!(nodes);
    let Some(containers) = rjob.pointer_mut("/template/spec/template/spec/containers").and_then(Value::as_array_mut)
    else {
        return rjob;
    };
    let Some(node) = containers.iter_mut().find(|c| c["name"] == NODE) else { return rjob };
    for key in ["image", "command", "args"] {
        if let Some(value) = trainer.get(key).filter(|v| !v.is_null()) {
            node[key] = value.clone();
        }
    }
    if let Some(resources) = trainer.get("resourcesPerNode").filter(|v| v.is_object()) {
        node["resources"] = merge_resources(&node["resources"], resources);
    }
    let trainer_env = trainer.get("env").and_then(Value::as_array).cloned().unwrap_or_default();
    upsert(&mut node["env"], trainer_env, "name");
    if ml_policy.get("torch").is_some_and(Value::is_object) {
        torch_env(node, trainjob, trainer, nodes);
    }
    rjob
}

/// The torch plugin's `EnforceMLPolicy`: `PET_NNODES`, `PET_NPROC_PER_NODE` (`auto` becomes the
/// node's CPUs when it has no GPU), `PET_NODE_RANK` from the completion index, the master's
/// address and port, and the trainer port on the container.
fn torch_env(node: &mut Value, trainjob: &str, trainer: &Value, nodes: i64) {
    let per_node = match trainer.get("numProcPerNode") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => "auto".to_string(),
    };
    let per_node = if per_node == "auto" && gpus(&node["resources"]) == 0 {
        let cpus = node.pointer("/resources/requests/cpu").or_else(|| node.pointer("/resources/limits/cpu"));
        let cpus = cpus.map_or(0, |q| whole_cpus(q.as_str().map_or_else(|| q.to_string(), String::from).as_str()));
        cpus.max(1).to_string()
    } else {
        per_node
    };
    upsert(
        &mut node["env"],
        [
            json!({"name": "PET_NNODES", "value": nodes.to_string()}),
            json!({"name": "PET_NPROC_PER_NODE", "value": per_node}),
            json!({"name": "PET_NODE_RANK", "valueFrom": {"fieldRef": {
                "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}}),
            json!({"name": "PET_MASTER_ADDR", "value": format!("{trainjob}-{NODE}-0-0.{trainjob}")}),
            json!({"name": "PET_MASTER_PORT", "value": TRAINER_PORT.to_string()}),
        ],
        "name",
    );
    upsert(&mut node["ports"], [json!({"containerPort": TRAINER_PORT})], "containerPort");
}

/// The TrainJob's next status: its JobSet's `Completed` and `Failed` conditions copied as
/// `Complete` and `Failed` (reason, message and time kept), `jobsStatus` from the replicated
/// jobs' status, and `Suspended` as `setSuspendedCondition` sets it.
pub fn next_status(trainjob: &Value, jobset: Option<&Value>, now: &str) -> Value {
    let mut status = trainjob.get("status").cloned().filter(Value::is_object).unwrap_or_else(|| json!({}));
    if let Some(jobset) = jobset {
        for (from, to) in [("Completed", "Complete"), ("Failed", "Failed")] {
            if let Some(mut c) =
                conditions(&jobset["status"]).into_iter().find(|c| c["type"] == from && c["status"] == "True")
            {
                c["type"] = json!(to);
                set_status_condition(&mut status, c);
            }
        }
        let jobs: Vec<Value> = jobset
            .pointer("/status/replicatedJobsStatus")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|s| {
                json!({"name": s["name"], "ready": s["ready"], "succeeded": s["succeeded"],
                       "failed": s["failed"], "active": s["active"], "suspended": s["suspended"]})
            })
            .collect();
        status["jobsStatus"] = json!(jobs);
    }
    let suspended = trainjob.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true);
    let was = conditions(&status).iter().any(|c| c["type"] == "Suspended" && c["status"] == "True");
    if suspended {
        set_condition(
            &mut status,
            json!({"type": "Suspended", "status": "True", "reason": "Suspended", "message": "TrainJob is suspended"}),
            now,
        );
    } else if was {
        set_condition(
            &mut status,
            json!({"type": "Suspended", "status": "False", "reason": "Resumed", "message": "TrainJob is resumed"}),
            now,
        );
    }
    status
}

/// `meta.SetStatusCondition` with the time the condition brings.
fn set_status_condition(status: &mut Value, new: Value) {
    let mut list = conditions(status);
    match list.iter_mut().find(|c| c["type"] == new["type"]) {
        Some(current) => {
            let time = if current["status"] == new["status"] {
                current["lastTransitionTime"].clone()
            } else {
                new["lastTransitionTime"].clone()
            };
            *current = new;
            current["lastTransitionTime"] = time;
        }
        None => list.push(new),
    }
    status["conditions"] = json!(list);
}

pub fn finished(trainjob: &Value) -> bool {
    conditions(&trainjob["status"])
        .iter()
        .any(|c| (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> Value {
        json!({
            "mlPolicy": {"numNodes": 1, "torch": {}},
            "template": {"metadata": {"labels": {"team": "a"}}, "spec": {"replicatedJobs": [{
                "name": "node",
                "template": {"metadata": {"labels": {ANCESTOR_LABEL: "trainer"}}, "spec": {"template": {"spec": {
                    "containers": [{"name": "node", "image": "pytorch/pytorch:2", "env": [{"name": "A", "value": "runtime"}]}]}}}},
            }]}},
        })
    }

    fn trainjob(trainer: Value) -> Value {
        json!({"metadata": {"name": "tj", "namespace": "ns", "uid": "u"}, "spec": {"trainer": trainer}})
    }

    #[test]
    fn the_trainjob_patches_the_runtime_template_as_the_torch_plugin_does() {
        let tj = trainjob(json!({
            "numNodes": 3, "image": "me/train:1", "command": ["torchrun", "x.py"],
            "env": [{"name": "A", "value": "job"}, {"name": "B", "value": "b"}],
            "resourcesPerNode": {"requests": {"cpu": "1500m"}},
        }));
        let js = build_jobset(&tj, &runtime());
        assert_eq!(js["metadata"]["ownerReferences"][0]["kind"], "TrainJob");
        assert_eq!(js["metadata"]["labels"]["team"], "a");
        let rjob = &js["spec"]["replicatedJobs"][0];
        assert_eq!((rjob["replicas"].as_i64(), rjob["template"]["spec"]["parallelism"].as_i64()), (Some(1), Some(3)));
        let node = &rjob["template"]["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(node["image"], "me/train:1");
        let env: Vec<(&str, &str)> =
            node["env"].as_array().into_iter().flatten().map(|e| (text(e, "/name"), text(e, "/value"))).collect();
        assert_eq!(
            env,
            [
                ("A", "job"),
                ("B", "b"),
                ("PET_NNODES", "3"),
                ("PET_NPROC_PER_NODE", "2"),
                ("PET_NODE_RANK", ""),
                ("PET_MASTER_ADDR", "tj-node-0-0.tj"),
                ("PET_MASTER_PORT", "29500")
            ]
        );
        assert_eq!(node["ports"][0]["containerPort"], 29500);
    }

    #[test]
    fn the_status_copies_the_jobsets_terminal_conditions() {
        let tj = trainjob(json!({}));
        let js = json!({"status": {"conditions": [
            {"type": "Restarting", "status": "False", "reason": "JobSetFailed", "message": "jobset failed"},
            {"type": "Failed", "status": "True", "reason": "FailedJobs", "lastTransitionTime": "t9",
             "message": "jobset failed due to one or more job failures (first failed job: tj-node-0)"}],
            "replicatedJobsStatus": [{"name": "node", "ready": 0, "succeeded": 0, "failed": 1, "active": 0, "suspended": 0}]}});
        let status = next_status(&tj, Some(&js), "now");
        let list = conditions(&status);
        assert_eq!(list.len(), 1, "only Complete and Failed are copied: {list:?}");
        assert_eq!(list[0]["type"], "Failed");
        assert_eq!(list[0]["lastTransitionTime"], "t9");
        assert_eq!(status["jobsStatus"][0]["failed"], 1);
        assert!(finished(&json!({"status": status})));
    }

    #[test]
    fn runtime_patches_merge_strategically_and_initializers_get_their_storage() {
        let mut rt = runtime();
        let dataset = json!({"name": "dataset-initializer", "template": {"metadata": {"labels": {ANCESTOR_LABEL: "dataset-initializer"}},
            "spec": {"template": {"spec": {"containers": [{"name": "dataset-initializer", "image": "init"}]}}}}});
        rt["template"]["spec"]["replicatedJobs"].as_array_mut().expect("rjobs").insert(0, dataset);
        let mut tj = trainjob(json!({}));
        tj["spec"]["initializer"] =
            json!({"dataset": {"storageUri": "hf://tatsu-lab/alpaca", "secretRef": {"name": "hf"}}});
        tj["spec"]["runtimePatches"] = json!([{"manager": "example.io/platform", "trainingRuntimeSpec": {"template": {
            "metadata": {"labels": {"cost-center": "research"}},
            "spec": {"replicatedJobs": [{"name": "node", "template": {"spec": {"template": {"spec": {
                "serviceAccountName": "training-sa",
                "nodeSelector": {"node-type": "training"},
                "containers": [{"name": "node", "env": [{"name": "A", "value": "patched"}]}]}}}}}]}}}}]);
        let js = build_jobset(&tj, &rt);
        assert_eq!(js["metadata"]["labels"], json!({"team": "a", "cost-center": "research"}));
        let node = &js["spec"]["replicatedJobs"][1]["template"]["spec"]["template"]["spec"];
        assert_eq!(
            (node["serviceAccountName"].as_str(), node["nodeSelector"]["node-type"].as_str()),
            (Some("training-sa"), Some("training"))
        );
        assert_eq!(
            node["containers"][0]["image"], "pytorch/pytorch:2",
            "a patched container keeps what the patch does not say"
        );
        assert_eq!(node["containers"][0]["env"][0], json!({"name": "A", "value": "patched"}));
        let init = &js["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(init["env"][0], json!({"name": "STORAGE_URI", "value": "hf://tatsu-lab/alpaca"}));
        assert_eq!(init["envFrom"][0]["secretRef"]["name"], "hf");
    }
}
