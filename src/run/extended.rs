//! Extended resources (a GPU, a TPU, any device plugin's) that a case asks for and no node of
//! the cluster offers. Kubernetes' own rule names them: a resource whose name has a domain
//! (`nvidia.com/gpu`) outside `kubernetes.io`. Such a case can never be scheduled there, and
//! no retry changes that: it is skipped, or run as a CPU smoke test when the suite says so.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::{suite::gpu::GpuSettings, util::cel::parse_quantity};

/// Keys under which Kubernetes objects (and Kubeflow's) hold `{requests, limits}`:
/// containers' `resources`, a TrainJob's `resourcesPerNode`.
const RESOURCE_KEYS: &[&str] = &["resources", "resourcesPerNode"];

/// Kubernetes' `IsExtendedResourceName`: not native (a domain, outside `kubernetes.io`) and
/// not a quota's `requests.` form.
pub fn is_extended(name: &str) -> bool {
    name.contains('/') && !name.contains("kubernetes.io/") && !name.starts_with("requests.")
}

/// Every extended resource the objects request or limit, anywhere in their trees (pod
/// templates of any workload kind, replica specs, TrainJobs' `resourcesPerNode`).
pub fn asked(objects: &[&Value]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for object in objects {
        visit_requirements(object, &mut |requirements| {
            names.extend(requirements.keys().filter(|k| is_extended(k)).cloned());
        });
    }
    names
}

/// The extended resources some node offers (a positive allocatable quantity).
pub fn offered(nodes: &[BTreeMap<String, String>]) -> BTreeSet<String> {
    nodes
        .iter()
        .flat_map(|n| n.iter())
        .filter(|(name, quantity)| is_extended(name) && parse_quantity(quantity).is_some_and(|q| q > 0.0))
        .map(|(name, _)| name.clone())
        .collect()
}

/// The accelerators a compiled pipeline's tasks ask for (`set_accelerator_type`): each
/// executor's `container.resources.accelerator`, by `resourceType` (KFP 2.x) or `type`
/// (older compilers), when its count is not zero.
pub fn pipeline_accelerators(spec: &Value) -> BTreeSet<String> {
    executors(spec)
        .filter_map(|e| e.pointer("/container/resources/accelerator"))
        .filter(|a| accelerator_count(a) != Some(0))
        .filter_map(accelerator_type)
        .filter(|t| is_extended(t))
        .map(str::to_string)
        .collect()
}

fn executors(spec: &Value) -> impl Iterator<Item = &Value> {
    spec.pointer("/deploymentSpec/executors").and_then(Value::as_object).into_iter().flat_map(|m| m.values())
}

fn accelerator_type(accelerator: &Value) -> Option<&str> {
    ["resourceType", "type"].iter().find_map(|k| accelerator[*k].as_str().filter(|t| !t.is_empty()))
}

fn accelerator_count(accelerator: &Value) -> Option<i64> {
    ["resourceCount", "count"].iter().find_map(|k| match &accelerator[*k] {
        Value::String(s) => s.parse().ok(),
        other => other.as_i64(),
    })
}

/// Removes the accelerators no node offers from the pipeline's executors (a CPU smoke test);
/// what was removed, as the case reports it.
pub fn strip_pipeline_accelerators(spec: &mut Value, names: &BTreeSet<String>) -> Vec<String> {
    let mut removed = BTreeSet::new();
    let executors = spec.pointer_mut("/deploymentSpec/executors").and_then(Value::as_object_mut);
    for (label, executor) in executors.into_iter().flat_map(|m| m.iter_mut()) {
        let Some(resources) = executor.pointer_mut("/container/resources").and_then(Value::as_object_mut) else {
            continue;
        };
        let kind = resources.get("accelerator").and_then(accelerator_type).map(str::to_string);
        if let Some(kind) = kind.filter(|k| names.contains(k)) {
            resources.remove("accelerator");
            removed.insert(format!("{kind} accelerator of {label}"));
        }
    }
    removed.into_iter().collect()
}

/// Accelerators a notebook's CPU smoke test is about (a notebook's code, unlike an example's
/// objects, cannot be searched for what it will ask).
const ACCELERATORS: &[&str] = &["nvidia.com/gpu", "amd.com/gpu", "intel.com/gpu", "google.com/tpu"];

/// Whether some node offers a GPU or a TPU.
pub fn offers_accelerator(nodes: &[BTreeMap<String, String>]) -> bool {
    offered(nodes).iter().any(|r| ACCELERATORS.contains(&r.as_str()))
}

/// Removes `names` from every requests and limits of the objects, and the node selectors and
/// tolerations the suite names; what was removed, as the case reports it.
pub fn strip_for_cpu(objects: &mut [Value], names: &BTreeSet<String>, settings: &GpuSettings) -> Vec<String> {
    let mut removed = BTreeSet::new();
    for object in objects.iter_mut() {
        strip(object, names, settings, &mut removed);
    }
    removed.into_iter().collect()
}

fn strip(value: &mut Value, names: &BTreeSet<String>, settings: &GpuSettings, removed: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if RESOURCE_KEYS.contains(&key.as_str()) {
                    for part in ["requests", "limits"] {
                        if let Some(requirements) = child.get_mut(part).and_then(Value::as_object_mut) {
                            for name in names {
                                if requirements.remove(name).is_some() {
                                    removed.insert(format!("{name} {part}"));
                                }
                            }
                        }
                    }
                }
                if key == "nodeSelector"
                    && let Some(selector) = child.as_object_mut()
                {
                    for key in &settings.node_selectors {
                        if selector.remove(key).is_some() {
                            removed.insert(format!("nodeSelector {key}"));
                        }
                    }
                }
                if key == "tolerations"
                    && let Some(tolerations) = child.as_array_mut()
                {
                    let before = tolerations.len();
                    tolerations
                        .retain(|t| !t["key"].as_str().is_some_and(|k| settings.tolerations.iter().any(|s| s == k)));
                    if tolerations.len() < before {
                        removed.insert("tolerations of ".to_string() + &settings.tolerations.join(", "));
                    }
                }
                strip(child, names, settings, removed);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| strip(item, names, settings, removed)),
        _ => {}
    }
}

/// Calls `found` with each `requests` and `limits` map under a resource key.
fn visit_requirements(value: &Value, found: &mut dyn FnMut(&serde_json::Map<String, Value>)) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if RESOURCE_KEYS.contains(&key.as_str()) {
                    for part in ["requests", "limits"] {
                        if let Some(requirements) = child.get(part).and_then(Value::as_object) {
                            found(requirements);
                        }
                    }
                }
                visit_requirements(child, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| visit_requirements(item, found)),
        _ => {}
    }
}

/// `needs nvidia.com/gpu: no node of this cluster offers it`.
pub fn skip_reason(missing: &BTreeSet<String>) -> String {
    let names: Vec<&str> = missing.iter().map(String::as_str).collect();
    let it = if names.len() == 1 { "it" } else { "them" };
    format!("needs {}: no node of this cluster offers {it}", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pytorchjob() -> Value {
        json!({"kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {"Master": {"template": {"spec": {
            "nodeSelector": {"nvidia.com/gpu.present": "true", "pool": "a"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}, {"key": "other"}],
            "containers": [{"name": "pytorch", "resources": {
                "limits": {"nvidia.com/gpu": 1, "memory": "1Gi"},
                "requests": {"cpu": "1", "ephemeral-storage": "1Gi", "hugepages-2Mi": "2Mi"}}}]}}}}}})
    }

    #[test]
    fn only_extended_resources_are_named_as_kubernetes_names_them() {
        for native in ["cpu", "memory", "hugepages-2Mi", "ephemeral-storage", "kubernetes.io/batch-cpu"] {
            assert!(!is_extended(native), "{native}");
        }
        assert!(!is_extended("requests.nvidia.com/gpu"));
        for extended in ["nvidia.com/gpu", "amd.com/gpu", "google.com/tpu", "example.com/dongle"] {
            assert!(is_extended(extended), "{extended}");
        }
        let trainjob = json!({"spec": {"trainer": {"resourcesPerNode": {"limits": {"amd.com/gpu": 2}}}}});
        let asked = asked(&[&pytorchjob(), &trainjob]);
        assert_eq!(asked.into_iter().collect::<Vec<_>>(), ["amd.com/gpu", "nvidia.com/gpu"]);
    }

    #[test]
    fn a_node_offers_only_what_it_has_more_than_none_of() {
        let nodes = vec![
            BTreeMap::from([("cpu".to_string(), "4".to_string()), ("nvidia.com/gpu".to_string(), "0".to_string())]),
            BTreeMap::from([("google.com/tpu".to_string(), "4".to_string())]),
        ];
        assert_eq!(offered(&nodes).into_iter().collect::<Vec<_>>(), ["google.com/tpu"]);
    }

    #[test]
    fn a_cpu_smoke_test_removes_the_resource_and_the_named_selectors_and_tolerations() {
        let settings = GpuSettings {
            node_selectors: vec!["nvidia.com/gpu.present".into()],
            tolerations: vec!["nvidia.com/gpu".into()],
            ..GpuSettings::default()
        };
        let mut objects = vec![pytorchjob()];
        let names = BTreeSet::from(["nvidia.com/gpu".to_string()]);
        let removed = strip_for_cpu(&mut objects, &names, &settings);
        assert_eq!(
            removed,
            ["nodeSelector nvidia.com/gpu.present", "nvidia.com/gpu limits", "tolerations of nvidia.com/gpu"]
        );
        let spec = &objects[0]["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"];
        assert_eq!(spec["containers"][0]["resources"]["limits"], json!({"memory": "1Gi"}));
        assert_eq!(spec["nodeSelector"], json!({"pool": "a"}));
        assert_eq!(spec["tolerations"], json!([{"key": "other"}]));
        assert!(asked(&[&objects[0]]).is_empty());
    }

    #[test]
    fn the_skip_reason_names_what_is_missing() {
        let one = BTreeSet::from(["nvidia.com/gpu".to_string()]);
        assert_eq!(skip_reason(&one), "needs nvidia.com/gpu: no node of this cluster offers it");
    }

    #[test]
    fn a_pipelines_accelerators_are_read_and_stripped_as_kfp_compiles_them() {
        let mut spec = json!({"deploymentSpec": {"executors": {
            "exec-train": {"container": {"resources": {"accelerator": {"resourceType": "nvidia.com/gpu", "resourceCount": "1"}, "cpuLimit": 1.0}}},
            "exec-old": {"container": {"resources": {"accelerator": {"type": "google.com/tpu", "count": "2"}}}},
            "exec-none": {"container": {"resources": {"accelerator": {"resourceType": "amd.com/gpu", "resourceCount": "0"}}}},
            "exec-cpu": {"container": {"image": "x"}},
        }}});
        let asked = pipeline_accelerators(&spec);
        assert_eq!(asked.into_iter().collect::<Vec<_>>(), ["google.com/tpu", "nvidia.com/gpu"]);
        let gpu = BTreeSet::from(["nvidia.com/gpu".to_string()]);
        assert_eq!(strip_pipeline_accelerators(&mut spec, &gpu), ["nvidia.com/gpu accelerator of exec-train"]);
        assert!(spec.pointer("/deploymentSpec/executors/exec-train/container/resources/accelerator").is_none());
        assert_eq!(
            spec.pointer("/deploymentSpec/executors/exec-train/container/resources/cpuLimit"),
            Some(&json!(1.0))
        );
        assert!(spec.pointer("/deploymentSpec/executors/exec-old/container/resources/accelerator").is_some());
    }
}
