//! Compiled Kubeflow Pipelines (IR YAML, what `kfp.compiler` writes): the checks the KFP API
//! server would make on upload, offline.

use serde_json::Value;

use super::finding::{Finding, Severity};
pub use crate::plan::pipeline::{is_pipeline, is_platform_spec};

fn finding(pointer: &str, message: String) -> Finding {
    Finding::new("kfp-pipeline", Severity::Error, pointer, message)
}

/// The suite's run parameters for this pipeline against what it declares (rule
/// `pipeline-parameters`): each problem at the declaration it concerns, naming where the suite
/// sets it.
pub fn check_parameters(doc: &Value, given: &serde_json::Map<String, Value>, at: &str) -> Vec<Finding> {
    let Err(problems) = crate::plan::pipeline::typed_parameters(doc, given) else { return Vec::new() };
    problems
        .into_iter()
        .map(|p| {
            let declared = format!("/root/inputDefinitions/parameters/{}", p.name);
            let pointer = if doc.pointer(&declared).is_some() { declared } else { "/root".to_string() };
            Finding::new("pipeline-parameters", Severity::Error, &pointer, format!("{} (set in {at})", p.message))
        })
        .collect()
}

pub fn check(doc: &Value) -> Vec<Finding> {
    let mut out = Vec::new();
    match doc.get("schemaVersion").and_then(Value::as_str) {
        Some("2.1.0") => {}
        Some(other) => out.push(finding(
            "/schemaVersion",
            format!("schemaVersion {other:?} is not supported: compiled pipelines use 2.1.0"),
        )),
        None => out.push(finding("", "compiled pipeline without schemaVersion".into())),
    }
    match doc.pointer("/pipelineInfo/name").and_then(Value::as_str) {
        None | Some("") => out.push(finding(
            "/pipelineInfo/name",
            "pipelineInfo.name is empty: the KFP API server rejects a pipeline without a name".into(),
        )),
        // KFP checks the name when a version is created (`common/utils.go`).
        Some(name) if !crate::util::ids::is_kfp_name(name) => out.push(Finding::new(
            "kfp-pipeline-name",
            Severity::Error,
            "/pipelineInfo/name",
            format!(
                "pipelineInfo.name {name:?} is not a name KFP takes: it must match ^[a-z0-9][a-z0-9-]{{0,127}}$ (lowercase letters, digits and '-', at most 128); write {:?}",
                crate::util::ids::kfp_name(name)
            ),
        )),
        Some(_) => {}
    }
    if doc.get("root").is_none() {
        out.push(finding("", "compiled pipeline without root".into()));
    }
    let components = doc.get("components").and_then(Value::as_object);
    let executors = doc.pointer("/deploymentSpec/executors").and_then(Value::as_object);
    // Every DAG: the root's and each component's.
    let mut dags: Vec<(String, &Value)> = Vec::new();
    if let Some(dag) = doc.pointer("/root/dag") {
        dags.push(("/root/dag".into(), dag));
    }
    for (name, component) in components.into_iter().flatten() {
        if let Some(dag) = component.get("dag") {
            dags.push((format!("/components/{name}/dag"), dag));
        }
        if let Some(label) = component.get("executorLabel").and_then(Value::as_str)
            && !executors.is_some_and(|e| e.contains_key(label))
        {
            out.push(finding(
                &format!("/components/{name}/executorLabel"),
                format!("component {name} names executor {label:?}, which deploymentSpec.executors does not define"),
            ));
        }
    }
    for (at, dag) in dags {
        for (task, spec) in dag.get("tasks").and_then(Value::as_object).into_iter().flatten() {
            if let Some(component) = spec.pointer("/componentRef/name").and_then(Value::as_str)
                && !components.is_some_and(|c| c.contains_key(component))
            {
                out.push(finding(
                    &format!("{at}/tasks/{task}/componentRef/name"),
                    format!("task {task} refers to component {component:?}, which components does not define"),
                ));
            }
        }
    }
    out.extend(concat_placeholders(executors));
    out
}

/// Container arguments KFP's driver hands on as written (rule `kfp-placeholder`): 2.17.0's
/// `resolveContainerArgs` expands `IfPresent` and input parameters, but a `Concat` (the SDK's
/// `ConcatPlaceholder`) reaches the container as its JSON text.
fn concat_placeholders(executors: Option<&serde_json::Map<String, Value>>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (name, executor) in executors.into_iter().flatten() {
        for field in ["command", "args"] {
            let items = executor.pointer(&format!("/container/{field}")).and_then(Value::as_array);
            for (i, item) in items.into_iter().flatten().enumerate() {
                if item.as_str().is_some_and(|a| a.trim_start().starts_with(r#"{"Concat":"#)) {
                    out.push(Finding::new(
                        "kfp-placeholder",
                        Severity::Warning,
                        &format!("/deploymentSpec/executors/{name}/container/{field}/{i}"),
                        format!(
                            "executor {name}: KFP 2.17.0 does not join a Concat placeholder: the container gets its JSON text; build the value in the component instead (an f-string in Python)"
                        ),
                    ));
                }
            }
        }
    }
    out
}
