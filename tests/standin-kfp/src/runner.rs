//! Executes a run as KFP's Argo backend leaves it in the cluster: a `Workflow` labelled
//! `pipeline/runid` (its `status.phase` and `status.nodes` kept as Argo keeps them: a node per
//! task and one per executor pod, named `<wf>.root.<task>.executor`), and one pod per
//! container task in dependency order, with the task's inputs (pipeline parameters, constants,
//! other tasks' output parameters) put into the executor's placeholders. A task's pod runs its
//! command in container `main` through the launcher, which hands output parameters back as
//! the container's termination message. A failed task stops new tasks from starting (Argo's
//! fail-fast DAG); a terminated run's pods are deleted and the Workflow ends Failed.

use std::collections::BTreeMap;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client,
    api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams},
    core::{ApiResource, GroupVersionKind},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::{Map, Value, json};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::{
    launcher::OUTPUTS_DIR,
    store::{NEVER, State, now},
};

pub struct Runner {
    client: Client,
    namespace: String,
    /// This server's own image: each task's `kfp-launcher` init container copies the launcher from it.
    launcher_image: String,
    workflows: ApiResource,
}

/// The image this pod runs (read from its own spec, so a retagged image still works).
pub async fn own_image(client: &Client, namespace: &str) -> String {
    let fallback = "kubevet.test/standin-kfp:dev".to_string();
    let Ok(name) = std::env::var("POD_NAME") else { return fallback };
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match pods.get(&name).await {
        Ok(pod) => pod.spec.and_then(|s| s.containers.first().and_then(|c| c.image.clone())).unwrap_or(fallback),
        Err(e) => {
            warn!(error = %e, "cannot read this pod's image; using {fallback}");
            fallback
        }
    }
}

/// A container task of the root DAG.
struct Task {
    name: String,
    depends: Vec<String>,
    /// Input name → where its value comes from.
    inputs: Map<String, Value>,
    container: Value,
    outputs: Vec<String>,
}

/// Argo's node id hash (FNV-1a, 32 bits) of a node's name.
fn fnv(text: &str) -> u32 {
    text.bytes().fold(0x811c9dc5u32, |h, b| (h ^ b as u32).wrapping_mul(0x01000193))
}

fn tasks_of(ir: &Value) -> Result<Vec<Task>, String> {
    let tasks = ir.pointer("/root/dag/tasks").and_then(Value::as_object).ok_or("the pipeline has no root.dag.tasks")?;
    let mut out = Vec::new();
    for (name, task) in tasks {
        if task.pointer("/triggerPolicy/condition").is_some()
            || task.get("iteratorPolicy").is_some()
            || task.get("parameterIterator").is_some()
        {
            return Err(format!("task {name}: conditions and loops are not supported by this TEST STAND-IN"));
        }
        let component_name = task.pointer("/componentRef/name").and_then(Value::as_str).unwrap_or_default();
        let component = ir
            .pointer(&format!("/components/{component_name}"))
            .ok_or(format!("task {name}: no component {component_name:?}"))?;
        if component.get("dag").is_some() {
            return Err(format!("task {name}: nested DAGs are not supported by this TEST STAND-IN"));
        }
        let label = component["executorLabel"].as_str().unwrap_or_default();
        let container = ir
            .pointer(&format!("/deploymentSpec/executors/{label}/container"))
            .cloned()
            .ok_or(format!("task {name}: executor {label:?} is not a container (importers and resolvers are not supported by this TEST STAND-IN)"))?;
        if task.pointer("/inputs/artifacts").is_some() || component.pointer("/outputDefinitions/artifacts").is_some() {
            return Err(format!("task {name}: artifacts are not supported by this TEST STAND-IN"));
        }
        out.push(Task {
            name: name.clone(),
            depends: task["dependentTasks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d.as_str().map(str::to_string))
                .collect(),
            inputs: task.pointer("/inputs/parameters").and_then(Value::as_object).cloned().unwrap_or_default(),
            container,
            outputs: component
                .pointer("/outputDefinitions/parameters")
                .and_then(Value::as_object)
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default(),
        });
    }
    Ok(out)
}

/// A value as KFP's launcher writes it into a command line (numbers as Go's
/// `FormatFloat(v, 'f', -1)`: `3`, not `3.0`).
fn render(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => {
            n.as_i64().map(|i| i.to_string()).unwrap_or_else(|| n.as_f64().map(|f| f.to_string()).unwrap_or_default())
        }
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

fn sanitize(name: &str) -> String {
    let s: String = name.to_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    let s = s.trim_matches('-');
    s.chars().take(50).collect::<String>().trim_end_matches('-').to_string()
}

/// The run being executed, as every status update needs it.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    state: &'a State,
    run_id: &'a str,
    wf: &'a str,
    started: &'a str,
}

/// What the loop knows of one task.
#[derive(Default, Clone)]
struct Progress {
    pod: Option<String>,
    phase: &'static str,
    message: Option<String>,
    started: Option<String>,
    finished: Option<String>,
}

impl Runner {
    pub fn new(client: Client, namespace: String, launcher_image: String) -> Runner {
        let gvk = GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Workflow");
        Runner { client, namespace, launcher_image, workflows: ApiResource::from_gvk_with_plural(&gvk, "workflows") }
    }

    fn workflows(&self) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.namespace, &self.workflows)
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Deletes a run's Workflow and pods.
    pub async fn delete(&self, run_id: &str, workflow: Option<&str>) -> Result<(), String> {
        if let Some(name) = workflow {
            match self.workflows().delete(name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(format!("deleting workflow {name}: {e}")),
            }
        }
        let selector = ListParams::default().labels(&format!("pipeline/runid={run_id}"));
        self.pods()
            .delete_collection(&DeleteParams::background(), &selector)
            .await
            .map_err(|e| format!("deleting the run's pods: {e}"))?;
        Ok(())
    }

    pub async fn execute(
        self: std::sync::Arc<Self>,
        state: State,
        run_id: String,
        ir: Value,
        parameters: Map<String, Value>,
        stopped: watch::Receiver<bool>,
    ) {
        if let Err(e) = self.drive(&state, &run_id, &ir, &parameters, stopped).await {
            warn!(run = %run_id, error = %e, "run failed to execute");
            state.update_run(&run_id, |run| {
                run.json["state"] = json!("FAILED");
                run.json["finished_at"] = json!(now());
                run.json["error"] = json!({"code": 13, "message": e});
            });
        }
    }

    async fn drive(
        &self,
        state: &State,
        run_id: &str,
        ir: &Value,
        parameters: &Map<String, Value>,
        mut stopped: watch::Receiver<bool>,
    ) -> Result<(), String> {
        let pipeline = ir.pointer("/pipelineInfo/name").and_then(Value::as_str).unwrap_or("pipeline");
        let run_name = state
            .db()
            .runs
            .get(run_id)
            .and_then(|r| r.json["display_name"].as_str().map(str::to_string))
            .unwrap_or_default();
        let started = now();
        let workflow = json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {
                "generateName": format!("{}-", sanitize(pipeline)),
                "labels": {"pipeline/runid": run_id, "pipelines.kubeflow.org/v2_component": "true"},
                "annotations": {"pipelines.kubeflow.org/run_name": run_name, "kubevet.test/standin": "kfp"},
            },
            "spec": {
                "entrypoint": "entrypoint",
                "serviceAccountName": "pipeline-runner",
                "templates": [{"name": "entrypoint", "dag": {"tasks": []}}, {"name": "system-container-impl", "container": {"image": "launcher"}}],
            },
            "status": {"phase": "Running", "startedAt": started, "finishedAt": null},
        });
        let object: DynamicObject = serde_json::from_value(workflow).map_err(|e| e.to_string())?;
        let created = self
            .workflows()
            .create(&PostParams::default(), &object)
            .await
            .map_err(|e| format!("creating the Workflow: {e}"))?;
        let wf = created.metadata.name.clone().unwrap_or_default();
        let wf_uid = created.metadata.uid.clone().unwrap_or_default();
        info!(run = %run_id, workflow = %wf, "workflow created");
        state.update_run(run_id, |run| {
            run.workflow = Some(wf.clone());
            run.json["state"] = json!("RUNNING");
        });
        let ctx = Ctx { state, run_id, wf: &wf, started: &started };
        let tasks = match tasks_of(ir) {
            Ok(t) => t,
            Err(why) => {
                self.finish(&ctx, &BTreeMap::new(), "Error", Some(why)).await;
                return Ok(());
            }
        };
        let mut progress: BTreeMap<String, Progress> = BTreeMap::new();
        let mut outputs: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
        let mut failed: Option<String> = None;
        let selector = format!("pipeline/runid={run_id}");
        let mut pods = watcher(self.pods(), watcher::Config::default().labels(&selector))
            .default_backoff()
            .applied_objects()
            .boxed();
        loop {
            // Start every task whose dependencies all succeeded (none after a failure).
            if failed.is_none() {
                for task in &tasks {
                    let ready = !progress.contains_key(&task.name)
                        && task.depends.iter().all(|d| progress.get(d).is_some_and(|p| p.phase == "Succeeded"));
                    if !ready {
                        continue;
                    }
                    let mut p = Progress { phase: "Pending", started: Some(now()), ..Default::default() };
                    match self.start_task(run_id, &wf, &wf_uid, task, parameters, &outputs).await {
                        Ok(pod) => p.pod = Some(pod),
                        Err(why) => {
                            p.phase = "Failed";
                            p.message = Some(why);
                            p.finished = Some(now());
                            failed = Some(task.name.clone());
                        }
                    }
                    progress.insert(task.name.clone(), p);
                }
            }
            self.report(&ctx, &progress, "Running", None).await;
            let active = progress.values().any(|p| matches!(p.phase, "Pending" | "Running"));
            if !active {
                let (phase, message) = match &failed {
                    Some(task) => ("Failed", Some(format!("child '{}' failed", node_id(&wf, &exec_name(&wf, task))))),
                    None => ("Succeeded", None),
                };
                self.finish(&ctx, &progress, phase, message).await;
                return Ok(());
            }
            tokio::select! {
                changed = stopped.changed() => {
                    if changed.is_err() || *stopped.borrow() {
                        for p in progress.values_mut().filter(|p| matches!(p.phase, "Pending" | "Running")) {
                            if let Some(pod) = &p.pod {
                                let _ = self.pods().delete(pod, &DeleteParams::background()).await;
                            }
                            p.phase = "Failed";
                            p.message = Some("Stopped with strategy 'Terminate'".into());
                            p.finished = Some(now());
                        }
                        let message = Some("Stopped with strategy 'Terminate'".to_string());
                        self.finish(&ctx, &progress, "Failed", message).await;
                        return Ok(());
                    }
                }
                pod = pods.next() => {
                    let Some(Ok(pod)) = pod else { continue };
                    let Some(task) = pod.metadata.annotations.as_ref().and_then(|a| a.get("pipelines.kubeflow.org/task_name")).cloned() else { continue };
                    let Some(p) = progress.get_mut(&task) else { continue };
                    if matches!(p.phase, "Succeeded" | "Failed") {
                        continue;
                    }
                    let status = pod.status.clone().unwrap_or_default();
                    let main = status.container_statuses.iter().flatten().find(|c| c.name == "main").cloned();
                    let terminated = main.as_ref().and_then(|c| c.state.as_ref()).and_then(|s| s.terminated.clone());
                    match status.phase.as_deref() {
                        Some("Running") => p.phase = "Running",
                        Some("Succeeded") => {
                            let message = terminated.as_ref().and_then(|t| t.message.clone()).unwrap_or_default();
                            let values: Map<String, Value> = serde_json::from_str(&message).unwrap_or_default();
                            outputs.insert(task.clone(), values);
                            p.phase = "Succeeded";
                            p.finished = Some(now());
                        }
                        Some("Failed") => {
                            p.phase = "Failed";
                            p.message = Some(match &terminated {
                                Some(t) => format!("Error (exit code {})", t.exit_code),
                                None => status.message.clone().or(status.reason.clone()).unwrap_or_else(|| "pod failed".into()),
                            });
                            p.finished = Some(now());
                            failed.get_or_insert(task.clone());
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    /// Creates a task's pod: the launcher copied in by an init container, the executor's
    /// command run through it in container `main`, placeholders filled.
    async fn start_task(
        &self,
        run_id: &str,
        wf: &str,
        wf_uid: &str,
        task: &Task,
        parameters: &Map<String, Value>,
        outputs: &BTreeMap<String, Map<String, Value>>,
    ) -> Result<String, String> {
        let mut values: BTreeMap<String, String> = BTreeMap::new();
        for (input, source) in &task.inputs {
            let value = if let Some(c) = source.pointer("/runtimeValue/constant") {
                c.clone()
            } else if let Some(p) = source.get("componentInputParameter").and_then(Value::as_str) {
                parameters.get(p).cloned().ok_or(format!("input {input}: pipeline parameter {p:?} has no value"))?
            } else if let Some(o) = source.get("taskOutputParameter") {
                let (producer, key) = (
                    o["producerTask"].as_str().unwrap_or_default(),
                    o["outputParameterKey"].as_str().unwrap_or_default(),
                );
                outputs
                    .get(producer)
                    .and_then(|m| m.get(key))
                    .cloned()
                    .ok_or(format!("input {input}: task {producer} gave no output parameter {key:?}"))?
            } else {
                return Err(format!("input {input}: this TEST STAND-IN does not support {source}"));
            };
            values.insert(input.clone(), render(&value));
        }
        let fill = |text: &str| {
            let mut s = text.to_string();
            for (k, v) in &values {
                s = s.replace(&format!("{{{{$.inputs.parameters['{k}']}}}}"), v);
            }
            for o in &task.outputs {
                s = s.replace(
                    &format!("{{{{$.outputs.parameters['{o}'].output_file}}}}"),
                    &format!("{OUTPUTS_DIR}/{o}"),
                );
            }
            s.replace("{{$.pipeline_job_uuid}}", run_id).replace("{{$.pipeline_task_name}}", &task.name)
        };
        let words = |key: &str| -> Vec<Value> {
            task.container[key]
                .as_array()
                .into_iter()
                .flatten()
                .map(|w| json!(fill(w.as_str().unwrap_or_default())))
                .collect()
        };
        let mut command =
            vec![json!("/kfp-launcher/launch"), json!("--outputs"), json!(task.outputs.join(",")), json!("--")];
        command.extend(words("command"));
        let node_name = exec_name(wf, &task.name);
        let pod_name = format!("{wf}-system-container-impl-{}", fnv(&node_name));
        let mount = json!([{"name": "kfp-launcher", "mountPath": "/kfp-launcher"}]);
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "labels": {
                    "pipeline/runid": run_id,
                    "pipelines.kubeflow.org/v2_component": "true",
                    "workflows.argoproj.io/workflow": wf,
                    "workflows.argoproj.io/completed": "false",
                },
                "annotations": {
                    "workflows.argoproj.io/node-name": node_name,
                    "workflows.argoproj.io/node-id": node_id(wf, &node_name),
                    "pipelines.kubeflow.org/task_name": task.name,
                    "kubevet.test/standin": "kfp",
                },
                "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "name": wf, "uid": wf_uid}],
            },
            "spec": {
                "restartPolicy": "Never",
                "volumes": [{"name": "kfp-launcher", "emptyDir": {}}],
                "initContainers": [{
                    "name": "kfp-launcher",
                    "image": self.launcher_image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["/standin-kfp", "copy-launcher", "/kfp-launcher/launch"],
                    "volumeMounts": mount,
                }],
                "containers": [{
                    "name": "main",
                    "image": task.container["image"],
                    "imagePullPolicy": "IfNotPresent",
                    "command": command,
                    "args": words("args"),
                    "env": task.container.get("env").cloned().unwrap_or(json!([])),
                    "volumeMounts": mount,
                }],
            },
        });
        let pod: Pod = serde_json::from_value(pod).map_err(|e| e.to_string())?;
        self.pods().create(&PostParams::default(), &pod).await.map_err(|e| format!("creating the task's pod: {e}"))?;
        Ok(pod_name)
    }

    /// The Workflow's status and the run's task details, from what the loop knows.
    async fn report(&self, ctx: &Ctx<'_>, progress: &BTreeMap<String, Progress>, phase: &str, message: Option<String>) {
        let Ctx { state, run_id, wf, started } = *ctx;
        let finished = (phase != "Running").then(now);
        let mut nodes = Map::new();
        let mut children = Vec::new();
        for (task, p) in progress {
            let dag_name = format!("{wf}.root.{task}");
            let exec = exec_name(wf, task);
            let (dag_id, exec_id) = (node_id(wf, &dag_name), node_id(wf, &exec));
            children.push(json!(dag_id));
            let mut node = |id: &str, name: &str, display: &str, kind: &str, kids: Vec<Value>| {
                let mut n = json!({
                    "id": id, "name": name, "displayName": display, "type": kind, "phase": p.phase,
                    "templateName": if kind == "Pod" { "system-container-impl" } else { "entrypoint" },
                    "startedAt": p.started, "finishedAt": p.finished, "children": kids,
                });
                if let Some(m) = &p.message {
                    n["message"] = json!(m);
                }
                nodes.insert(id.to_string(), n);
            };
            node(&dag_id, &dag_name, task, "DAG", vec![json!(exec_id)]);
            node(&exec_id, &exec, "executor", "Pod", vec![]);
        }
        let done = progress.values().filter(|p| p.phase == "Succeeded").count();
        nodes.insert(
            wf.to_string(),
            json!({"id": wf, "name": wf, "displayName": wf, "type": "DAG", "templateName": "entrypoint", "phase": phase, "startedAt": started, "finishedAt": finished, "children": children}),
        );
        let mut status = json!({
            "phase": phase, "startedAt": started, "finishedAt": finished, "progress": format!("{done}/{}", progress.len()), "nodes": nodes,
        });
        if let Some(m) = &message {
            status["message"] = json!(m);
        }
        let mut patch = json!({"metadata": {"labels": {"workflows.argoproj.io/phase": phase, "workflows.argoproj.io/completed": (phase != "Running").to_string()}}, "status": status});
        if phase != "Running" {
            // Argo's finishedAt has one-second resolution; benchmarks of detection latency
            // need the moment the Workflow ended to the millisecond.
            let at = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
            patch["metadata"]["annotations"] = json!({"kubevet.test/finished-at": at});
        }
        if let Err(e) = self.workflows().patch(wf, &PatchParams::default(), &Patch::Merge(&patch)).await {
            warn!(workflow = %wf, error = %e, "cannot update the workflow's status");
        }
        let details: Vec<Value> = nodes
            .values()
            .map(|n| {
                let mut d = json!({
                    "run_id": run_id, "task_id": n["id"], "display_name": n["displayName"],
                    "create_time": n["startedAt"], "start_time": n["startedAt"],
                    "end_time": n["finishedAt"].as_str().unwrap_or(NEVER), "state": run_state(n["phase"].as_str().unwrap_or_default()),
                });
                if n["type"] == "Pod" {
                    d["child_tasks"] = json!([{"pod_name": n["id"]}]);
                }
                d
            })
            .collect();
        state.update_run(run_id, |run| run.json["run_details"] = json!({"task_details": details}));
    }

    async fn finish(&self, ctx: &Ctx<'_>, progress: &BTreeMap<String, Progress>, phase: &str, message: Option<String>) {
        self.report(ctx, progress, phase, message.clone()).await;
        let Ctx { state, run_id, wf, .. } = *ctx;
        info!(run = %run_id, workflow = %wf, %phase, "run ended");
        let at = now();
        state.update_run(run_id, |run| {
            run.json["state"] = json!(run_state(phase));
            run.json["finished_at"] = json!(at);
            if let Some(m) = message.filter(|_| phase != "Succeeded") {
                run.json["error"] = json!({"code": 2, "message": m});
            }
            run.terminate = None;
        });
    }
}

fn exec_name(wf: &str, task: &str) -> String {
    format!("{wf}.root.{task}.executor")
}

fn node_id(wf: &str, name: &str) -> String {
    format!("{wf}-{}", fnv(name))
}

/// KFP's run and task states for Argo's phases.
fn run_state(phase: &str) -> &'static str {
    match phase {
        "Pending" => "PENDING",
        "Running" => "RUNNING",
        "Succeeded" => "SUCCEEDED",
        "Skipped" | "Omitted" => "SKIPPED",
        _ => "FAILED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_render_as_kfp_writes_them() {
        assert_eq!(render(&json!(3)), "3");
        assert_eq!(render(&json!(3.0)), "3");
        assert_eq!(render(&json!(0.5)), "0.5");
        assert_eq!(render(&json!("x")), "x");
        assert_eq!(render(&json!([1, 2])), "[1,2]");
    }

    #[test]
    fn unsupported_tasks_are_named() {
        let ir = json!({"root": {"dag": {"tasks": {"t": {"componentRef": {"name": "c"}, "triggerPolicy": {"condition": "x"}}}}}});
        assert!(tasks_of(&ir).err().unwrap_or_default().contains("task t"));
    }
}
