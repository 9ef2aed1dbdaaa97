//! Schemas to check objects against: custom resources against their CRD's openAPIV3Schema
//! (CRDs among the linted files, `--crds` directories, the suite's operators, a cluster's
//! `/openapi/v2`, schema locations), built-in kinds against the Kubernetes schema of the
//! version kubevet is built for (k8s-openapi's, v1.33). Both are rewritten from Kubernetes' OpenAPI dialect into strict JSON Schema:
//! unknown fields are errors, as with `kubectl --validate=strict`.

use std::{collections::HashMap, sync::Arc};

use jsonschema::{Draft, Validator, error::ValidationErrorKind};
use serde_json::{Value, json};

use super::{
    crd_rules::{RuleCounts, RuleTree},
    locations::Locations,
};

/// The Kubernetes version of the built-in schemas.
pub const BUILTIN_VERSION: &str = "1.33";

pub struct Compiled {
    validator: Validator,
    /// The schema's CEL rules (`x-kubernetes-validations`), evaluated on each object.
    pub rules: RuleTree,
    pub rule_counts: RuleCounts,
    /// Where the schema came from, for messages.
    pub origin: String,
}

/// One problem an object has against its schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub pointer: String,
    pub message: String,
}

impl Compiled {
    pub fn check(&self, object: &Value) -> Vec<Violation> {
        let object = without_nulls(object);
        let mut out = Vec::new();
        for error in self.validator.iter_errors(&object) {
            let pointer = error.instance_path().as_str().to_string();
            match error.kind() {
                ValidationErrorKind::AdditionalProperties { unexpected } => {
                    for key in unexpected {
                        out.push(Violation {
                            pointer: format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1")),
                            message: format!("unknown field \"{}\"", dotted(&pointer, key)),
                        });
                    }
                }
                _ => out.push(Violation { message: format!("{}: {error}", dotted(&pointer, "")), pointer }),
            }
        }
        out
    }
}

/// `/spec/containers/0` + `image` → `spec.containers[0].image`, as kubectl writes paths.
fn dotted(pointer: &str, last: &str) -> String {
    let mut out = String::new();
    for seg in pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .chain((!last.is_empty()).then(|| last.to_string()))
    {
        if seg.chars().all(|c| c.is_ascii_digit()) && !out.is_empty() {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg);
        }
    }
    if out.is_empty() { "(root)".into() } else { out }
}

/// Kubernetes treats an explicit null as an absent field.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), without_nulls(v))).collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// Rewrites Kubernetes' OpenAPI dialect into strict JSON Schema, in place (the CEL rules are
/// read before, into a [`RuleTree`]).
pub fn rewrite(schema: &mut Value) {
    let Some(map) = schema.as_object_mut() else { return };
    map.remove("x-kubernetes-validations");
    map.remove("description");
    let swagger_int_or_string = map.get("format").and_then(Value::as_str) == Some("int-or-string");
    if map.remove("x-kubernetes-int-or-string") == Some(Value::Bool(true)) || swagger_int_or_string {
        map.remove("format");
        map.remove("type");
        map.insert("anyOf".into(), json!([{"type": "integer"}, {"type": "string"}]));
    }
    if map.remove("nullable") == Some(Value::Bool(true))
        && let Some(Value::String(t)) = map.get("type").cloned()
    {
        map.insert("type".into(), json!([t, "null"]));
    }
    if map.remove("x-kubernetes-embedded-resource") == Some(Value::Bool(true)) {
        let props = map.entry("properties").or_insert_with(|| json!({}));
        if let Some(props) = props.as_object_mut() {
            props.entry("apiVersion").or_insert_with(|| json!({"type": "string"}));
            props.entry("kind").or_insert_with(|| json!({"type": "string"}));
            props.entry("metadata").or_insert_with(|| json!({"type": "object"}));
        }
    }
    let open = map.remove("x-kubernetes-preserve-unknown-fields") == Some(Value::Bool(true));
    if map.contains_key("properties") && !map.contains_key("additionalProperties") && !open {
        map.insert("additionalProperties".into(), Value::Bool(false));
    }
    for key in ["properties", "$defs", "definitions", "patternProperties"] {
        if let Some(Value::Object(children)) = map.get_mut(key) {
            children.values_mut().for_each(rewrite);
        }
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(child) = map.get_mut(key) {
            rewrite(child);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(children)) = map.get_mut(key) {
            children.iter_mut().for_each(rewrite);
        }
    }
}

fn compile(mut schema: Value, origin: String) -> Result<Compiled, String> {
    let (rules, rule_counts) = RuleTree::of(&schema);
    rewrite(&mut schema);
    let validator = jsonschema::options()
        .with_draft(Draft::Draft202012)
        .should_validate_formats(false)
        .build(&schema)
        .map_err(|e| format!("schema from {origin} does not compile: {e}"))?;
    Ok(Compiled { validator, rules, rule_counts, origin })
}

/// The openAPIV3Schema of one version of a CRD object, with apiVersion, kind and metadata
/// allowed at the root as the API server does.
fn crd_version_schema(crd: &Value, version: &str) -> Option<Value> {
    let versions = crd.pointer("/spec/versions")?.as_array()?;
    let v = versions.iter().find(|v| v["name"] == version)?;
    let mut schema = v
        .pointer("/schema/openAPIV3Schema")
        .cloned()
        .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert("apiVersion".into(), json!({"type": "string"}));
        props.insert("kind".into(), json!({"type": "string"}));
        props.insert("metadata".into(), json!({"type": "object"}));
    }
    Some(schema)
}

/// The schema of one version of a CRD, or the versions it does serve.
fn version_of(crd: &Value, version: &str, origin: &str) -> Result<(Value, String), Vec<String>> {
    match crd_version_schema(crd, version) {
        Some(schema) => Ok((schema, origin.to_string())),
        None => {
            let served = crd.pointer("/spec/versions").and_then(Value::as_array).into_iter().flatten();
            Err(served.filter_map(|v| v["name"].as_str().map(str::to_string)).collect())
        }
    }
}

macro_rules! builtin_kinds {
    ($api_version:expr, $kind:expr; $( $av:literal $k:literal => $t:ty ),* $(,)?) => {
        match ($api_version, $kind) {
            $( ($av, $k) => serde_json::to_value(schemars::schema_for!($t)).ok(), )*
            _ => None,
        }
    };
}

/// The built-in schema of a kind, if kubevet knows it.
fn builtin_schema(api_version: &str, kind: &str) -> Option<Value> {
    use k8s_openapi::api::{apps, batch, core, networking, policy, rbac};
    builtin_kinds!(api_version, kind;
        "v1" "Pod" => core::v1::Pod,
        "v1" "ConfigMap" => core::v1::ConfigMap,
        "v1" "Secret" => core::v1::Secret,
        "v1" "Service" => core::v1::Service,
        "v1" "ServiceAccount" => core::v1::ServiceAccount,
        "v1" "PersistentVolumeClaim" => core::v1::PersistentVolumeClaim,
        "v1" "Namespace" => core::v1::Namespace,
        "apps/v1" "Deployment" => apps::v1::Deployment,
        "apps/v1" "StatefulSet" => apps::v1::StatefulSet,
        "apps/v1" "DaemonSet" => apps::v1::DaemonSet,
        "batch/v1" "Job" => batch::v1::Job,
        "batch/v1" "CronJob" => batch::v1::CronJob,
        "networking.k8s.io/v1" "Ingress" => networking::v1::Ingress,
        "policy/v1" "PodDisruptionBudget" => policy::v1::PodDisruptionBudget,
        "rbac.authorization.k8s.io/v1" "Role" => rbac::v1::Role,
        "rbac.authorization.k8s.io/v1" "RoleBinding" => rbac::v1::RoleBinding,
        "rbac.authorization.k8s.io/v1" "ClusterRole" => rbac::v1::ClusterRole,
        "rbac.authorization.k8s.io/v1" "ClusterRoleBinding" => rbac::v1::ClusterRoleBinding,
    )
}

pub enum Lookup {
    Found(Arc<Compiled>),
    /// A CRD is known for the group and kind, but not this version.
    UnknownVersion(Vec<String>),
    /// kubevet has no schema for this kind: the sources it tried, and why each gave none.
    Unknown(Vec<String>),
    Broken(String),
}

/// A cluster's OpenAPI v2 definitions, indexed by apiVersion and kind.
struct ClusterSchemas {
    definitions: Value,
    by_kind: HashMap<(String, String), String>,
    version: String,
}

/// CRDs and compiled schemas, compiled once per apiVersion and kind.
#[derive(Default)]
pub struct SchemaStore {
    /// When set, the cluster's schemas come before the embedded and built-in ones.
    cluster: Option<ClusterSchemas>,
    /// CRDs given explicitly (`--crds`, the linted files): they come first of all.
    explicit: std::collections::HashSet<(String, String)>,
    /// (group, kind) → the CRD object and where it came from.
    crds: HashMap<(String, String), (Value, String)>,
    compiled: HashMap<(String, String), Result<Arc<Compiled>, String>>,
    /// Schema locations, asked for a kind nothing else describes.
    pub locations: Option<Locations>,
    /// The sources of schemas this lint has, named in `not-checked` notes.
    pub sources: Vec<String>,
}

impl SchemaStore {
    /// A CRD found in a file; it wins over the cluster's, embedded and built-in schemas.
    pub fn add_crd(&mut self, crd: &Value, origin: String) {
        let group = crd.pointer("/spec/group").and_then(Value::as_str).unwrap_or_default().to_string();
        let kind = crd.pointer("/spec/names/kind").and_then(Value::as_str).unwrap_or_default().to_string();
        self.compiled.retain(|(av, k), _| !(k == &kind && av.starts_with(&format!("{group}/"))));
        self.explicit.insert((group.clone(), kind.clone()));
        self.crds.insert((group, kind), (crd.clone(), origin));
    }

    /// Uses a cluster's `/openapi/v2` for every kind it serves.
    pub fn use_cluster(&mut self, openapi: Value, version: &str) {
        let mut definitions = openapi.get("definitions").cloned().unwrap_or_else(|| json!({}));
        let mut by_kind = HashMap::new();
        for (name, def) in definitions.as_object().into_iter().flatten() {
            for gvk in def.get("x-kubernetes-group-version-kind").and_then(Value::as_array).into_iter().flatten() {
                let (group, v, kind) = (
                    gvk["group"].as_str().unwrap_or(""),
                    gvk["version"].as_str().unwrap_or(""),
                    gvk["kind"].as_str().unwrap_or(""),
                );
                let api_version = if group.is_empty() { v.to_string() } else { format!("{group}/{v}") };
                by_kind.insert((api_version, kind.to_string()), name.clone());
            }
        }
        // Swagger's int-or-string and the rest, rewritten once for every kind.
        if let Some(defs) = definitions.as_object_mut() {
            defs.values_mut().for_each(rewrite);
        }
        self.compiled.clear();
        self.cluster = Some(ClusterSchemas { definitions, by_kind, version: version.to_string() });
    }

    fn cluster_schema(&self, api_version: &str, kind: &str) -> Option<(Value, String)> {
        let cluster = self.cluster.as_ref()?;
        let name = cluster.by_kind.get(&(api_version.to_string(), kind.to_string()))?;
        let schema = json!({"$ref": format!("#/definitions/{name}"), "definitions": cluster.definitions});
        Some((schema, format!("the cluster's schema (Kubernetes {})", cluster.version)))
    }

    /// A CRD from a schema location: used when no CRD of the linted files, the CRD folders or
    /// the operators describes the kind.
    pub fn add_fallback_crd(&mut self, crd: &Value, origin: String) {
        let group = crd.pointer("/spec/group").and_then(Value::as_str).unwrap_or_default().to_string();
        let kind = crd.pointer("/spec/names/kind").and_then(Value::as_str).unwrap_or_default().to_string();
        self.crds.entry((group, kind)).or_insert_with(|| (crd.clone(), origin));
    }

    fn crd(&self, group: &str, kind: &str) -> Option<&(Value, String)> {
        self.crds.get(&(group.to_string(), kind.to_string()))
    }

    pub fn lookup(&mut self, api_version: &str, kind: &str) -> Lookup {
        let key = (api_version.to_string(), kind.to_string());
        if let Some(found) = self.compiled.get(&key) {
            return match found {
                Ok(c) => Lookup::Found(c.clone()),
                Err(e) => Lookup::Broken(e.clone()),
            };
        }
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let explicit = self.explicit.contains(&(group.to_string(), kind.to_string()));
        let from_cluster = if explicit { None } else { self.cluster_schema(api_version, kind) };
        if let Some((schema, origin)) = from_cluster {
            let compiled = compile(schema, origin).map(Arc::new);
            self.compiled.insert(key, compiled.clone());
            return match compiled {
                Ok(c) => Lookup::Found(c),
                Err(e) => Lookup::Broken(e),
            };
        }
        let mut source = match self.crd(group, kind) {
            Some((crd, origin)) => Some(version_of(crd, version, origin)),
            None => {
                builtin_schema(api_version, kind).map(|s| Ok((s, format!("the Kubernetes {BUILTIN_VERSION} schema"))))
            }
        };
        let mut misses = Vec::new();
        if source.is_none()
            && let Some(locations) = self.locations.as_mut()
        {
            match locations.for_kind(group, version, kind) {
                Ok((found, origin)) if found["kind"] == "CustomResourceDefinition" => {
                    source = Some(version_of(&found, version, &origin));
                }
                Ok(schema) => source = Some(Ok(schema)),
                Err(why) => misses = why,
            }
        }
        let (schema, origin) = match source {
            Some(Ok(found)) => found,
            Some(Err(served)) => return Lookup::UnknownVersion(served),
            None => {
                let mut tried = self.sources.clone();
                tried.extend(misses);
                tried.push(format!("kubevet's built-in Kubernetes {BUILTIN_VERSION} schemas"));
                return Lookup::Unknown(tried);
            }
        };
        let compiled = compile(schema, origin).map(Arc::new);
        self.compiled.insert(key, compiled.clone());
        match compiled {
            Ok(c) => Lookup::Found(c),
            Err(e) => Lookup::Broken(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store with the upstream Kubeflow CRDs kept in ../shared/data (beside the repository).
    fn store_with_kubeflow_crds() -> SchemaStore {
        let mut store = SchemaStore::default();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/crds");
        for file in ["kubeflow.org/pytorchjobs.yaml", "trainer.kubeflow.org/trainjobs.yaml"] {
            let text = std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file} in shared/data: {e}"));
            let crd: Value = serde_saphyr::from_str(&text).expect("a CRD");
            store.add_crd(&crd, file.into());
        }
        store
    }

    fn check(store: &mut SchemaStore, doc: Value) -> Vec<Violation> {
        let av = doc["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        match store.lookup(&av, &kind) {
            Lookup::Found(c) => c.check(&doc),
            _ => panic!("no schema for {av} {kind}"),
        }
    }

    #[test]
    fn unknown_fields_deep_in_a_pytorchjob_are_found() {
        let mut store = store_with_kubeflow_crds();
        let doc = json!({"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "x"},
            "spec": {"pytorchReplicaSpecs": {"Master": {"replicas": 1, "template": {"spec": {"containers": [
                {"name": "pytorch", "image": "i:1", "imagePullPolcy": "Always", "resources": {"limits": {"cpu": 1}}}]}}}}}});
        let v = check(&mut store, doc);
        assert_eq!(
            v,
            vec![Violation {
                pointer: "/spec/pytorchReplicaSpecs/Master/template/spec/containers/0/imagePullPolcy".into(),
                message: "unknown field \"spec.pytorchReplicaSpecs.Master.template.spec.containers[0].imagePullPolcy\""
                    .into(),
            }]
        );
    }

    #[test]
    fn builtin_kinds_are_strict_and_typed() {
        let mut store = SchemaStore::default();
        let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "creationTimestamp": null},
            "spec": {"backoffLimit": "two", "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i:1", "args": ["a"], "ports": [{"containerPort": "http"}]}]}}}});
        let v = check(&mut store, job);
        let pointers: Vec<&str> = v.iter().map(|v| v.pointer.as_str()).collect();
        assert_eq!(pointers, ["/spec/backoffLimit", "/spec/template/spec/containers/0/ports/0/containerPort"], "{v:?}");
        let ok = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}});
        assert!(check(&mut store, ok).is_empty());
    }

    #[test]
    fn cel_rules_are_read_from_the_crd() {
        let mut store = store_with_kubeflow_crds();
        let Lookup::Found(c) = store.lookup("trainer.kubeflow.org/v1alpha1", "TrainJob") else {
            panic!("TrainJob schema")
        };
        assert!(c.rule_counts.evaluated > 0 && c.rule_counts.transition > 0, "{:?}", c.rule_counts);
        assert!(matches!(store.lookup("kubeflow.org/v2", "PyTorchJob"), Lookup::UnknownVersion(v) if v == ["v1"]));
        assert!(matches!(store.lookup("example.com/v1", "Widget"), Lookup::Unknown(_)));
    }

    /// Every CRD rule in ../shared/data/crds: those that apply at create are all evaluated.
    #[test]
    fn every_create_time_rule_of_the_kubeflow_crds_is_evaluated() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/crds");
        let mut all = RuleCounts::default();
        for entry in ignore::Walk::new(&dir).flatten().filter(|e| e.path().extension().is_some_and(|x| x == "yaml")) {
            let text = std::fs::read_to_string(entry.path()).expect("a CRD file");
            let crd: Value = serde_saphyr::from_str(&text).expect("a CRD");
            all.add(crate::lint::crd_rules::count_in_crd(&crd));
        }
        assert_eq!(all, RuleCounts { total: 50, evaluated: 19, transition: 31, unsupported: 0 });
    }
}
