//! Executes a run as KFP 2.17.0's Argo backend leaves it in the cluster: a `Workflow`
//! labelled `pipeline/runid` (its `status.phase` and `status.nodes` kept as Argo keeps them),
//! and per container task, in dependency order, a driver pod (`<task>-driver`) and then an
//! executor pod with the task's inputs (pipeline parameters, constants, other tasks' output
//! parameters) put into the executor's placeholders. A task's pod runs its command in
//! container `main` through the launcher, which hands output parameters back as the
//! container's termination message. A failed task stops new tasks from starting (Argo's
//! fail-fast DAG); a terminated run's pods are deleted and the Workflow ends Failed.
//!
//! As on 2.17.0 (its manifests give Argo `templateDefaults.retryStrategy`), every step sits
//! under a `Retry` node and its attempt is named `<name>(0)`: `<wf>.root.train(0).executor(0)`.
//! Caching is on as KFP's is: a task compiled with `cachingOptions.enableCache` whose
//! fingerprint (pipeline name, container, inputs) an earlier run still kept is not run: its
//! driver says `cached-decision: true` and its DAG task becomes a `Skipped` node with no pod.
//! KFP's run state is set, and the Workflow labelled `pipeline/persistedFinalState`, only
//! after the persistence lag. Each part is switchable ([`Modes`]).

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
    placeholders::{MINIO_MOUNT, NODE_STORE, PIPELINE_ROOT, TaskValues, local_path},
    store::{NEVER, State, now},
};

pub struct Runner {
    client: Client,
    /// KFP's own namespace: where runs live unless multi-user mode puts them in a profile's.
    pub namespace: String,
    /// This server's own image: each task's `kfp-launcher` init container copies the launcher from it.
    launcher_image: String,
    workflows: ApiResource,
    pub modes: Modes,
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
    /// The component's input parameters (their defaults and optionality).
    input_specs: Map<String, Value>,
    /// Input artifact name → where it comes from.
    input_artifacts: Map<String, Value>,
    container: Value,
    outputs: Vec<String>,
    output_artifacts: Vec<String>,
    /// `cachingOptions.enableCache`, as the driver reads it (absent is off).
    cache: bool,
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
        let keys = |pointer: &str| -> Vec<String> {
            component
                .pointer(pointer)
                .and_then(Value::as_object)
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default()
        };
        let object =
            |v: &Value, pointer: &str| v.pointer(pointer).and_then(Value::as_object).cloned().unwrap_or_default();
        out.push(Task {
            name: name.clone(),
            depends: task["dependentTasks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d.as_str().map(str::to_string))
                .collect(),
            inputs: object(task, "/inputs/parameters"),
            input_specs: object(component, "/inputDefinitions/parameters"),
            input_artifacts: object(task, "/inputs/artifacts"),
            cache: task.pointer("/cachingOptions/enableCache") == Some(&Value::Bool(true)),
            container,
            outputs: keys("/outputDefinitions/parameters"),
            output_artifacts: keys("/outputDefinitions/artifacts"),
        });
    }
    Ok(out)
}

/// The task's input values as its command line gets them: constants, pipeline parameters and
/// other tasks' output parameters.
fn input_values(
    task: &Task,
    parameters: &Map<String, Value>,
    outputs: &BTreeMap<String, Map<String, Value>>,
) -> Result<BTreeMap<String, String>, String> {
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    for (input, source) in &task.inputs {
        let value = if let Some(c) = source.pointer("/runtimeValue/constant") {
            c.clone()
        } else if let Some(p) = source.get("componentInputParameter").and_then(Value::as_str) {
            parameters.get(p).cloned().ok_or(format!("input {input}: pipeline parameter {p:?} has no value"))?
        } else if let Some(o) = source.get("taskOutputParameter") {
            let (producer, key) =
                (o["producerTask"].as_str().unwrap_or_default(), o["outputParameterKey"].as_str().unwrap_or_default());
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
    Ok(values)
}

/// Where a task's output artifacts are kept in `outputs`, beside its output parameters (a
/// parameter's name cannot hold a `:`), so that a cached task hands on the artifacts of the
/// run that made them, as KFP's cache does.
fn artifact_key(name: &str) -> String {
    format!("artifact:{name}")
}

/// The URI the driver gives a task's output artifact in this run.
fn artifact_uri(ctx: &Ctx<'_>, task: &str, name: &str) -> String {
    let salt = fnv(&format!("{}/{task}", ctx.run_id));
    format!("{PIPELINE_ROOT}/{}/{}/{task}/{salt:08x}/{name}", ctx.pipeline, ctx.run_id)
}

/// The task's input artifacts, by name: the URIs their producers' outputs have.
fn input_artifacts(
    task: &Task,
    outputs: &BTreeMap<String, Map<String, Value>>,
) -> Result<BTreeMap<String, String>, String> {
    let mut uris = BTreeMap::new();
    for (input, source) in &task.input_artifacts {
        let Some(o) = source.get("taskOutputArtifact") else {
            return Err(format!("input artifact {input}: this TEST STAND-IN does not support {source}"));
        };
        let (producer, key) =
            (o["producerTask"].as_str().unwrap_or_default(), o["outputArtifactKey"].as_str().unwrap_or_default());
        let uri = outputs.get(producer).and_then(|m| m.get(&artifact_key(key))).and_then(Value::as_str);
        let uri = uri.ok_or(format!("input artifact {input}: task {producer} gave no output artifact {key:?}"))?;
        uris.insert(input.clone(), uri.to_string());
    }
    Ok(uris)
}

/// What the task's placeholders stand for in this run: its inputs (the component's defaults
/// for optional ones not given, null when there is none), artifacts and output files.
fn task_values(
    ctx: &Ctx<'_>,
    task: &Task,
    parameters: &Map<String, Value>,
    outputs: &BTreeMap<String, Map<String, Value>>,
) -> Result<TaskValues, String> {
    let mut values = TaskValues { run_id: ctx.run_id.to_string(), task: task.name.clone(), ..Default::default() };
    for (name, value) in input_values(task, parameters, outputs)? {
        values.present.insert(name.clone());
        values.parameters.insert(name, value);
    }
    for (name, spec) in task.input_specs.iter().filter(|(n, _)| !task.inputs.contains_key(*n)) {
        match spec.get("defaultValue").filter(|d| !d.is_null()) {
            Some(default) => {
                values.present.insert(name.clone());
                values.parameters.insert(name.clone(), render(default));
            }
            None if spec["isOptional"] == Value::Bool(true) => {
                values.parameters.insert(name.clone(), String::new());
            }
            None => {
                return Err(format!("neither value nor default value provided for non-optional parameter {name:?}"));
            }
        }
    }
    values.input_artifacts = input_artifacts(task, outputs)?;
    values.output_artifacts =
        task.output_artifacts.iter().map(|a| (a.clone(), artifact_uri(ctx, &task.name, a))).collect();
    values.output_files = task.outputs.iter().map(|o| (o.clone(), format!("{OUTPUTS_DIR}/{o}"))).collect();
    Ok(values)
}

/// KFP's cache key of a task: its fingerprint (container and inputs) scoped by the pipeline's
/// name — not by version or run. None when the task does not ask for the cache.
fn cache_key(
    ctx: &Ctx<'_>,
    task: &Task,
    parameters: &Map<String, Value>,
    outputs: &BTreeMap<String, Map<String, Value>>,
) -> Option<String> {
    if !ctx.modes.caching || !task.cache {
        return None;
    }
    let values = input_values(task, parameters, outputs).ok()?;
    let artifacts = input_artifacts(task, outputs).ok()?;
    let fingerprint = json!({
        "container": task.container,
        "inputs": values,
        "artifacts": artifacts,
        "outputs": [task.outputs, task.output_artifacts],
    })
    .to_string();
    Some(format!("pipeline/{}/{:016x}", ctx.pipeline, fnv64(&fingerprint)))
}

fn fnv64(text: &str) -> u64 {
    text.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

/// Marks a task failed; the first failure stops new tasks.
fn fail(p: &mut Progress, why: String, failed: &mut Option<String>, task: &str) {
    p.phase = "Failed";
    p.message = Some(why);
    p.finished = Some(now());
    failed.get_or_insert(task.to_string());
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
    namespace: &'a str,
    wf: &'a str,
    wf_uid: &'a str,
    started: &'a str,
    modes: &'a Modes,
    /// `pipelineInfo.name`: KFP scopes its cache by it.
    pipeline: &'a str,
}

/// How this TEST STAND-IN plays KFP: 2.17.0's shape unless told otherwise, by the server's
/// environment (`STANDIN_KFP_RETRY_NODES`, `_DRIVER_PODS`, `_CACHING`: `true`/`false`;
/// `_PERSISTENCE_LAG_SECONDS`; `_COMPRESS_NODES_OVER`: bytes) or, for one pipeline, by a line
/// `standin: key=value …` in its `pipelineInfo.description` (keys `retry-nodes`,
/// `driver-pods`, `caching`, `persistence-lag-seconds`, `compress-nodes-over`).
#[derive(Debug, Clone)]
pub struct Modes {
    pub retry_nodes: bool,
    pub driver_pods: bool,
    pub caching: bool,
    pub persistence_lag: std::time::Duration,
    pub compress_nodes_over: Option<usize>,
    /// Fault injection, not a KFP behaviour: after this many reads of a run, every further
    /// `GET /runs/{id}` answers 500, as KFP does when its database is gone.
    pub fail_run_reads_after: Option<u32>,
}

impl Modes {
    pub fn from_env() -> Modes {
        let mut modes = Modes {
            retry_nodes: true,
            driver_pods: true,
            caching: true,
            persistence_lag: Default::default(),
            compress_nodes_over: None,
            fail_run_reads_after: None,
        };
        for (key, var) in [
            ("retry-nodes", "STANDIN_KFP_RETRY_NODES"),
            ("driver-pods", "STANDIN_KFP_DRIVER_PODS"),
            ("caching", "STANDIN_KFP_CACHING"),
            ("persistence-lag-seconds", "STANDIN_KFP_PERSISTENCE_LAG_SECONDS"),
            ("compress-nodes-over", "STANDIN_KFP_COMPRESS_NODES_OVER"),
        ] {
            if let Ok(value) = std::env::var(var) {
                modes.set(key, &value);
            }
        }
        modes
    }

    /// These modes with a pipeline's own `standin:` line applied.
    pub fn for_pipeline(&self, ir: &Value) -> Modes {
        let mut modes = self.clone();
        let description = ir.pointer("/pipelineInfo/description").and_then(Value::as_str).unwrap_or_default();
        for line in description.lines() {
            let Some(settings) = line.trim().strip_prefix("standin:") else { continue };
            for pair in settings.split_whitespace() {
                if let Some((key, value)) = pair.split_once('=') {
                    modes.set(key, value);
                }
            }
        }
        modes
    }

    fn set(&mut self, key: &str, value: &str) {
        match key {
            "retry-nodes" => self.retry_nodes = value == "true",
            "driver-pods" => self.driver_pods = value == "true",
            "caching" => self.caching = value == "true",
            "persistence-lag-seconds" => {
                self.persistence_lag =
                    std::time::Duration::from_secs_f64(value.parse::<f64>().unwrap_or(0.0).clamp(0.0, 3600.0))
            }
            "compress-nodes-over" => self.compress_nodes_over = value.parse().ok(),
            "fail-run-reads-after" => self.fail_run_reads_after = value.parse().ok(),
            other => warn!(key = %other, "unknown TEST STAND-IN mode"),
        }
    }
}

/// What the loop knows of one task: its driver, then its executor.
#[derive(Default, Clone)]
struct Progress {
    driver_pod: Option<String>,
    /// "" until the driver started; then Pending, Running, Succeeded or Failed.
    driver_phase: &'static str,
    driver_finished: Option<String>,
    /// The driver found the task's outputs in the cache: the executor is Skipped.
    cached: bool,
    pod: Option<String>,
    /// Driving (the driver has not decided yet), Pending, Running, Succeeded, Failed, Skipped.
    phase: &'static str,
    message: Option<String>,
    started: Option<String>,
    executor_started: Option<String>,
    finished: Option<String>,
}

impl Runner {
    pub fn new(client: Client, namespace: String, launcher_image: String, modes: Modes) -> Runner {
        let gvk = GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Workflow");
        let workflows = ApiResource::from_gvk_with_plural(&gvk, "workflows");
        Runner { client, namespace, launcher_image, workflows, modes }
    }

    fn workflows(&self, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, &self.workflows)
    }

    fn pods(&self, namespace: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Deletes a run's Workflow and pods.
    pub async fn delete(&self, namespace: &str, run_id: &str, workflow: Option<&str>) -> Result<(), String> {
        if let Some(name) = workflow {
            match self.workflows(namespace).delete(name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(format!("deleting workflow {name}: {e}")),
            }
        }
        let selector = ListParams::default().labels(&format!("pipeline/runid={run_id}"));
        self.pods(namespace)
            .delete_collection(&DeleteParams::background(), &selector)
            .await
            .map_err(|e| format!("deleting the run's pods: {e}"))?;
        Ok(())
    }

    pub async fn execute(
        self: std::sync::Arc<Self>,
        state: State,
        run_id: String,
        namespace: String,
        ir: Value,
        parameters: Map<String, Value>,
        stopped: watch::Receiver<bool>,
    ) {
        if let Err(e) = self.drive(&state, &run_id, &namespace, &ir, &parameters, stopped).await {
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
        namespace: &str,
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
            .workflows(namespace)
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
        let modes = self.modes.for_pipeline(ir);
        let ctx =
            Ctx { state, run_id, namespace, wf: &wf, wf_uid: &wf_uid, started: &started, modes: &modes, pipeline };
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
        let mut pods = watcher(self.pods(namespace), watcher::Config::default().labels(&selector))
            .default_backoff()
            .applied_objects()
            .boxed();
        loop {
            // Start every task whose dependencies all succeeded or were cached (none after a
            // failure): its driver first, or its executor at once without driver pods.
            if failed.is_none() {
                for task in &tasks {
                    let ready = !progress.contains_key(&task.name)
                        && task
                            .depends
                            .iter()
                            .all(|d| progress.get(d).is_some_and(|p| matches!(p.phase, "Succeeded" | "Skipped")));
                    if !ready {
                        continue;
                    }
                    let mut p = Progress { phase: "Driving", started: Some(now()), ..Default::default() };
                    if modes.driver_pods {
                        match self.start_driver(&ctx, task).await {
                            Ok(pod) => (p.driver_pod, p.driver_phase) = (Some(pod), "Pending"),
                            Err(why) => fail(&mut p, why, &mut failed, &task.name),
                        }
                    } else {
                        p.driver_phase = "Succeeded";
                        self.begin_executor(&ctx, task, parameters, &mut outputs, &mut p, &mut failed).await;
                    }
                    progress.insert(task.name.clone(), p);
                }
            }
            self.report(&ctx, &progress, "Running", None).await;
            let active = progress.values().any(|p| matches!(p.phase, "Driving" | "Pending" | "Running"));
            if !active {
                let (phase, message) = match &failed {
                    Some(task) => (
                        "Failed",
                        Some(format!("child '{}' failed", node_id(&wf, &executor_pod_node(&wf, task, &modes)))),
                    ),
                    None => ("Succeeded", None),
                };
                self.finish(&ctx, &progress, phase, message).await;
                return Ok(());
            }
            tokio::select! {
                changed = stopped.changed() => {
                    if changed.is_err() || *stopped.borrow() {
                        for p in progress.values_mut().filter(|p| matches!(p.phase, "Driving" | "Pending" | "Running")) {
                            for pod in [&p.driver_pod, &p.pod].into_iter().flatten() {
                                let _ = self.pods(namespace).delete(pod, &DeleteParams::background()).await;
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
                    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
                    if let Some(task) = annotations.get("kubevet.test/driver-of") {
                        let Some(t) = tasks.iter().find(|t| &t.name == task) else { continue };
                        let Some(p) = progress.get_mut(task) else { continue };
                        if p.phase != "Driving" {
                            continue;
                        }
                        match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
                            Some("Running") => p.driver_phase = "Running",
                            Some("Succeeded") => {
                                p.driver_phase = "Succeeded";
                                p.driver_finished = Some(now());
                                self.begin_executor(&ctx, t, parameters, &mut outputs, p, &mut failed).await;
                            }
                            Some("Failed") => {
                                p.driver_phase = "Failed";
                                p.driver_finished = Some(now());
                                fail(p, "the driver failed".into(), &mut failed, task);
                            }
                            _ => {}
                        }
                        continue;
                    }
                    let Some(task) = annotations.get("pipelines.kubeflow.org/task_name").cloned() else { continue };
                    let Some(p) = progress.get_mut(&task) else { continue };
                    if !matches!(p.phase, "Pending" | "Running") {
                        continue;
                    }
                    let status = pod.status.clone().unwrap_or_default();
                    let main = status.container_statuses.iter().flatten().find(|c| c.name == "main").cloned();
                    let terminated = main.as_ref().and_then(|c| c.state.as_ref()).and_then(|s| s.terminated.clone());
                    match status.phase.as_deref() {
                        Some("Running") => p.phase = "Running",
                        Some("Succeeded") => {
                            let message = terminated.as_ref().and_then(|t| t.message.clone()).unwrap_or_default();
                            let mut values: Map<String, Value> = serde_json::from_str(&message).unwrap_or_default();
                            let t = tasks.iter().find(|t| t.name == task);
                            for name in t.map(|t| t.output_artifacts.as_slice()).unwrap_or_default() {
                                values.insert(artifact_key(name), json!(artifact_uri(&ctx, &task, name)));
                            }
                            if let Some(t) = t
                                && let Some(key) = cache_key(&ctx, t, parameters, &outputs)
                            {
                                state.db().cache.insert(key, (values.clone(), run_id.to_string()));
                            }
                            outputs.insert(task.clone(), values);
                            p.phase = "Succeeded";
                            p.finished = Some(now());
                        }
                        Some("Failed") => {
                            let why = match &terminated {
                                Some(t) => format!("Error (exit code {})", t.exit_code),
                                None => status.message.clone().or(status.reason.clone()).unwrap_or_else(|| "pod failed".into()),
                            };
                            fail(p, why, &mut failed, &task);
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    /// Once a task's driver decided: its outputs from the cache (the executor Skipped, no
    /// pod), or its executor pod started.
    async fn begin_executor(
        &self,
        ctx: &Ctx<'_>,
        task: &Task,
        parameters: &Map<String, Value>,
        outputs: &mut BTreeMap<String, Map<String, Value>>,
        p: &mut Progress,
        failed: &mut Option<String>,
    ) {
        let hit = cache_key(ctx, task, parameters, outputs).and_then(|key| ctx.state.db().cache.get(&key).cloned());
        if let Some((values, from)) = hit {
            info!(run = %ctx.run_id, task = %task.name, cached_from = %from, "task outputs taken from the cache");
            outputs.insert(task.name.clone(), values);
            (p.phase, p.cached, p.finished) = ("Skipped", true, Some(now()));
            return;
        }
        p.phase = "Pending";
        p.executor_started = Some(now());
        match self.start_task(ctx, task, parameters, outputs).await {
            Ok(pod) => p.pod = Some(pod),
            Err(why) => fail(p, why, failed, &task.name),
        }
    }

    /// A task's driver pod: it runs this image's `driver` (the decision is the server's).
    async fn start_driver(&self, ctx: &Ctx<'_>, task: &Task) -> Result<String, String> {
        let node_name = driver_pod_node(ctx.wf, &task.name, ctx.modes);
        let pod_name = format!("{}-system-container-driver-{}", ctx.wf, fnv(&node_name));
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": pod_metadata(ctx, &pod_name, &node_name, ("kubevet.test/driver-of", &task.name)),
            "spec": {
                "restartPolicy": "Never",
                "containers": [{
                    "name": "main",
                    "image": self.launcher_image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["/standin-kfp", "driver", &task.name],
                }],
            },
        });
        let pod: Pod = serde_json::from_value(pod).map_err(|e| e.to_string())?;
        self.pods(ctx.namespace)
            .create(&PostParams::default(), &pod)
            .await
            .map_err(|e| format!("creating the task's driver pod: {e}"))?;
        Ok(pod_name)
    }

    /// Creates a task's pod: the launcher copied in by an init container, the executor's
    /// command run through it in container `main`, placeholders filled.
    async fn start_task(
        &self,
        ctx: &Ctx<'_>,
        task: &Task,
        parameters: &Map<String, Value>,
        outputs: &BTreeMap<String, Map<String, Value>>,
    ) -> Result<String, String> {
        let wf = ctx.wf;
        let values = task_values(ctx, task, parameters, outputs)?;
        let words = |key: &str| -> Result<Vec<Value>, String> {
            let mut out = Vec::new();
            for word in task.container[key].as_array().into_iter().flatten() {
                out.extend(values.expand(word.as_str().unwrap_or_default())?.into_iter().map(Value::String));
            }
            Ok(out)
        };
        let artifact_paths: Vec<String> = values.output_artifacts.values().filter_map(|u| local_path(u)).collect();
        let mut command = vec![
            json!("/kfp-launcher/launch"),
            json!("--outputs"),
            json!(task.outputs.join(",")),
            json!("--artifacts"),
            json!(artifact_paths.join(",")),
            json!("--"),
        ];
        command.extend(words("command")?);
        let args = words("args")?;
        let node_name = executor_pod_node(wf, &task.name, ctx.modes);
        let pod_name = format!("{wf}-system-container-impl-{}", fnv(&node_name));
        let mount = json!([{"name": "kfp-launcher", "mountPath": "/kfp-launcher"}]);
        let main_mounts = json!([
            {"name": "kfp-launcher", "mountPath": "/kfp-launcher"},
            {"name": "standin-object-store", "mountPath": MINIO_MOUNT},
        ]);
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": pod_metadata(ctx, &pod_name, &node_name, ("pipelines.kubeflow.org/task_name", &task.name)),
            "spec": {
                "restartPolicy": "Never",
                "volumes": [
                    {"name": "kfp-launcher", "emptyDir": {}},
                    {"name": "standin-object-store", "hostPath": {"path": NODE_STORE, "type": "DirectoryOrCreate"}},
                ],
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
                    "args": args,
                    "env": task.container.get("env").cloned().unwrap_or(json!([])),
                    "resources": resources(&task.container["resources"], &values)?,
                    "volumeMounts": main_mounts,
                }],
            },
        });
        let pod: Pod = serde_json::from_value(pod).map_err(|e| e.to_string())?;
        self.pods(ctx.namespace)
            .create(&PostParams::default(), &pod)
            .await
            .map_err(|e| format!("creating the task's pod: {e}"))?;
        Ok(pod_name)
    }

    /// The Workflow's status and the run's task details, from what the loop knows.
    async fn report(&self, ctx: &Ctx<'_>, progress: &BTreeMap<String, Progress>, phase: &str, message: Option<String>) {
        let Ctx { state, run_id, wf, started, modes, .. } = *ctx;
        let finished = (phase != "Running").then(now);
        let mut nodes = Map::new();
        let mut children = Vec::new();
        for (task, p) in progress {
            children.extend(task_nodes(wf, task, p, modes, &mut nodes));
        }
        let done = progress.values().filter(|p| matches!(p.phase, "Succeeded" | "Skipped")).count();
        nodes.insert(
            wf.to_string(),
            json!({"id": wf, "name": wf, "displayName": wf, "type": "DAG", "templateName": "entrypoint", "phase": phase, "startedAt": started, "finishedAt": finished, "children": children}),
        );
        let nodes = Value::Object(nodes);
        let mut status = json!({
            "phase": phase, "startedAt": started, "finishedAt": finished, "progress": format!("{done}/{}", progress.len()),
        });
        // Argo's packer: a Workflow too large for etcd keeps its nodes gzipped and base64'd.
        match modes.compress_nodes_over.filter(|limit| nodes.to_string().len() > *limit) {
            Some(_) => {
                status["compressedNodes"] = json!(compress(&nodes));
                status["nodes"] = Value::Null;
            }
            None => status["nodes"] = nodes.clone(),
        }
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
        if let Err(e) = self.workflows(ctx.namespace).patch(wf, &PatchParams::default(), &Patch::Merge(&patch)).await {
            warn!(workflow = %wf, error = %e, "cannot update the workflow's status");
        }
        let details: Vec<Value> = nodes
            .as_object()
            .into_iter()
            .flat_map(|n| n.values())
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

    /// The Workflow's end at once; KFP's run state (and the Workflow's
    /// `pipeline/persistedFinalState` label, as the persistence agent sets it) after the lag.
    async fn finish(&self, ctx: &Ctx<'_>, progress: &BTreeMap<String, Progress>, phase: &str, message: Option<String>) {
        self.report(ctx, progress, phase, message.clone()).await;
        let Ctx { state, run_id, wf, modes, .. } = *ctx;
        info!(run = %run_id, workflow = %wf, %phase, lag_s = modes.persistence_lag.as_secs_f64(), "run ended");
        let (state, run_id, wf, phase) = (state.clone(), run_id.to_string(), wf.to_string(), phase.to_string());
        let (lag, workflows) = (modes.persistence_lag, self.workflows(ctx.namespace));
        let persist = async move {
            tokio::time::sleep(lag).await;
            let at = now();
            state.update_run(&run_id, |run| {
                run.json["state"] = json!(run_state(&phase));
                run.json["finished_at"] = json!(at);
                if let Some(m) = message.filter(|_| phase != "Succeeded") {
                    run.json["error"] = json!({"code": 2, "message": m});
                }
                run.terminate = None;
            });
            let label = json!({"metadata": {"labels": {"pipeline/persistedFinalState": "true"}}});
            if let Err(e) = workflows.patch(&wf, &PatchParams::default(), &Patch::Merge(&label)).await {
                warn!(workflow = %wf, error = %e, "cannot label the workflow persisted");
            }
        };
        if lag.is_zero() { persist.await } else { drop(tokio::spawn(persist)) }
    }
}

/// The nodes Argo keeps for one task, as KFP 2.17.0 lays them out (a `Retry` node over each
/// step and its attempt `(0)`), or as 2.15/2.16 do without retry nodes; the ids of the
/// task's top nodes, the root DAG's children.
fn task_nodes(wf: &str, task: &str, p: &Progress, modes: &Modes, nodes: &mut Map<String, Value>) -> Vec<Value> {
    let make = |name: &str,
                display: &str,
                kind: &str,
                phase: &str,
                started: &Option<String>,
                finished: &Option<String>,
                kids: Vec<String>| {
        let id = node_id(wf, name);
        let template = match kind {
            "Pod" if name.contains("-driver") => "system-container-driver",
            "Pod" => "system-container-impl",
            _ => "system-container-executor",
        };
        let mut n = json!({
            "id": id, "name": name, "displayName": display, "type": kind, "phase": phase, "templateName": template,
            "startedAt": started, "finishedAt": finished, "children": kids,
        });
        if let Some(m) = p.message.as_ref().filter(|_| !name.contains("-driver")) {
            n["message"] = json!(m);
        }
        (id, n)
    };
    let mut add = |(id, n): (String, Value)| {
        nodes.insert(id.clone(), n);
        id
    };
    let mut top = Vec::new();
    // The driver: a pod node (under a retry node on 2.17.0) whose outputs carry its decision.
    if !p.driver_phase.is_empty() {
        let display = format!("{task}-driver");
        let (pod_id, mut pod) = make(
            &driver_pod_node(wf, task, modes),
            &display,
            "Pod",
            p.driver_phase,
            &p.started,
            &p.driver_finished,
            vec![],
        );
        if p.driver_phase == "Succeeded" {
            pod["outputs"] = json!({"parameters": [
                {"name": "pod-spec-patch", "value": ""},
                {"name": "cached-decision", "value": p.cached.to_string()},
                {"name": "condition", "value": "true"},
            ]});
        }
        let pod_id = add((pod_id, pod));
        top.push(if modes.retry_nodes {
            let name = format!("{wf}.root.{task}-driver");
            add(make(&name, &display, "Retry", p.driver_phase, &p.started, &p.driver_finished, vec![pod_id]))
        } else {
            pod_id
        });
    }
    let dag_name = format!("{wf}.root.{task}");
    match p.phase {
        "Driving" => {}
        // A cache hit: the executor's DAG task is skipped by its `when`, and has no pod.
        "Skipped" => top.push(add(make(&dag_name, task, "Skipped", "Skipped", &p.finished, &p.finished, vec![]))),
        phase => {
            let started = &p.executor_started;
            let pod =
                add(make(&executor_pod_node(wf, task, modes), "executor", "Pod", phase, started, &p.finished, vec![]));
            top.push(if modes.retry_nodes {
                let retry = add(make(
                    &format!("{dag_name}(0).executor"),
                    "executor",
                    "Retry",
                    phase,
                    started,
                    &p.finished,
                    vec![pod],
                ));
                let dag = add(make(
                    &format!("{dag_name}(0)"),
                    &format!("{task}(0)"),
                    "DAG",
                    phase,
                    started,
                    &p.finished,
                    vec![retry],
                ));
                add(make(&dag_name, task, "Retry", phase, started, &p.finished, vec![dag]))
            } else {
                add(make(&dag_name, task, "DAG", phase, started, &p.finished, vec![pod]))
            });
        }
    }
    top.into_iter().map(Value::String).collect()
}

/// The executor pod's node: `<wf>.root.<task>(0).executor(0)` on 2.17.0, else
/// `<wf>.root.<task>.executor`.
/// The executor's resources as KFP's driver puts them on container `main` (`initPodSpecPatch`
/// in `backend/src/v2/driver`): each `resource…` field (a string, placeholders filled) where
/// set, else its older number (`%v` cores, `%vG` memory), else nothing; the accelerator a limit.
fn resources(spec: &Value, values: &TaskValues) -> Result<Value, String> {
    let mut out = json!({"limits": {}, "requests": {}});
    let fields = [
        ("resourceMemoryLimit", "memoryLimit", "G", "limits", "memory"),
        ("resourceMemoryRequest", "memoryRequest", "G", "requests", "memory"),
        ("resourceCpuLimit", "cpuLimit", "", "limits", "cpu"),
        ("resourceCpuRequest", "cpuRequest", "", "requests", "cpu"),
    ];
    for (new, old, unit, kind, resource) in fields {
        let quantity = match (spec[new].as_str().filter(|s| !s.is_empty()), spec[old].as_f64().filter(|v| *v != 0.0)) {
            (Some(text), _) => values.substitute(text)?,
            (None, Some(number)) => format!("{number}{unit}"),
            (None, None) => continue,
        };
        out[kind][resource] = json!(quantity);
    }
    let accelerator = &spec["accelerator"];
    let kind = match accelerator["resourceType"].as_str().filter(|s| !s.is_empty()) {
        Some(text) => values.substitute(text)?,
        None => accelerator["type"].as_str().unwrap_or_default().to_string(),
    };
    // proto3 JSON writes an int64 as a string.
    let count = match accelerator["resourceCount"].as_str().filter(|s| !s.is_empty()) {
        Some(text) => values.substitute(text)?,
        None => match &accelerator["count"] {
            Value::String(n) if n.parse::<i64>().is_ok_and(|n| n > 0) => n.clone(),
            Value::Number(n) if n.as_i64().is_some_and(|n| n > 0) => n.to_string(),
            _ => String::new(),
        },
    };
    if !kind.is_empty() && !count.is_empty() {
        out["limits"][kind] = json!(count);
    }
    Ok(out)
}

fn executor_pod_node(wf: &str, task: &str, modes: &Modes) -> String {
    if modes.retry_nodes { format!("{wf}.root.{task}(0).executor(0)") } else { format!("{wf}.root.{task}.executor") }
}

fn driver_pod_node(wf: &str, task: &str, modes: &Modes) -> String {
    if modes.retry_nodes { format!("{wf}.root.{task}-driver(0)") } else { format!("{wf}.root.{task}-driver") }
}

/// A run's pod's metadata as Argo and KFP write it: KFP's labels, Argo's node annotations, an
/// owner reference to the Workflow, and what the pod is for (`marker`).
fn pod_metadata(ctx: &Ctx<'_>, pod_name: &str, node_name: &str, marker: (&str, &str)) -> Value {
    let mut annotations = json!({
        "workflows.argoproj.io/node-name": node_name,
        "workflows.argoproj.io/node-id": node_id(ctx.wf, node_name),
        "kubevet.test/standin": "kfp",
    });
    annotations[marker.0] = json!(marker.1);
    json!({
        "name": pod_name,
        "labels": {
            "pipeline/runid": ctx.run_id,
            "pipelines.kubeflow.org/v2_component": "true",
            "workflows.argoproj.io/workflow": ctx.wf,
            "workflows.argoproj.io/completed": "false",
        },
        "annotations": annotations,
        "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "name": ctx.wf, "uid": ctx.wf_uid}],
    })
}

/// Argo's `compressedNodes`: the node map's JSON, gzipped, in base64.
fn compress(nodes: &Value) -> String {
    use base64::Engine;
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = gz.write_all(nodes.to_string().as_bytes());
    base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap_or_default())
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
    fn resources_are_set_as_kfps_driver_sets_them() {
        let mut values = TaskValues::default();
        values.parameters.insert("cores".into(), "2".into());
        let spec = json!({
            "cpuLimit": 1.0, "resourceCpuLimit": "{{$.inputs.parameters['cores']}}", "cpuRequest": 0.5,
            "memoryRequest": 0.067108864, "resourceMemoryLimit": "",
            "accelerator": {"type": "nvidia.com/gpu", "count": "1"},
        });
        let set = resources(&spec, &values).expect("resources");
        assert_eq!(
            set,
            json!({"limits": {"cpu": "2", "nvidia.com/gpu": "1"}, "requests": {"cpu": "0.5", "memory": "0.067108864G"}})
        );
        assert_eq!(resources(&Value::Null, &values), Ok(json!({"limits": {}, "requests": {}})));
    }

    #[test]
    fn unsupported_tasks_are_named() {
        let ir = json!({"root": {"dag": {"tasks": {"t": {"componentRef": {"name": "c"}, "triggerPolicy": {"condition": "x"}}}}}});
        assert!(tasks_of(&ir).err().unwrap_or_default().contains("task t"));
    }
}
