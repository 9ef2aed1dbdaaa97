//! Applying and deleting objects: server-side apply with the 1.20 create/replace fallback,
//! `generateName` creates made safe to repeat, reads of one object.

use kube::{
    Api,
    api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use tracing::{debug, warn};

use super::{ApiError, Applied, Cluster, FIELD_MANAGER, Kind, LABEL_CREATE, retry};
use crate::util::ids::random_hex;

impl Cluster {
    /// Applies by server-side apply. A server that cannot type the patch (Kubernetes before
    /// 1.2x answers 500 "field not declared in schema" for, e.g., CEL rules in a CRD, and
    /// "failed to create typed patch object" for a Service port without `protocol`) gets a
    /// create or replace instead, which drops unknown fields and defaults the rest; kubevet says so.
    /// Where `object` lives on this cluster: its kind and, if namespaced, `namespace` or "default".
    pub async fn locate(&self, object: &Value, namespace: Option<&str>) -> Result<Applied, ApiError> {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind_name = object["kind"].as_str().unwrap_or_default();
        let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
        let kind = self.kind(api_version, kind_name).await?;
        let namespace = kind.namespaced.then(|| namespace.unwrap_or("default").to_string());
        Ok(Applied { kind, namespace, name })
    }

    pub async fn apply(&self, object: &Value, namespace: Option<&str>) -> Result<Applied, ApiError> {
        let Applied { kind, namespace, name } = self.locate(object, namespace).await?;
        if name.is_empty() && object.pointer("/metadata/generateName").and_then(Value::as_str).is_some() {
            return self.create_generated(object, kind, namespace).await;
        }
        let kind_name = &kind.resource.kind;
        let mut body = object.clone();
        match &namespace {
            Some(ns) => body["metadata"]["namespace"] = json!(ns),
            None => {
                if let Some(meta) = body["metadata"].as_object_mut() {
                    meta.remove("namespace");
                }
            }
        }
        let api = self.dynamic(&kind, namespace.as_deref());
        let params = PatchParams::apply(FIELD_MANAGER).force();
        match api.patch(&name, &params, &Patch::Apply(&body)).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 500 && retry::is_ssa_cannot_type(&status.message) => {
                warn!(
                    server = %self.server_version, object = %format!("{kind_name}/{name}"), reason = %status.message,
                    "server-side apply could not type this object on this server; using create/replace"
                );
                self.create_or_replace(&api, &name, &body).await?;
            }
            Err(e) => return Err(ApiError::new(&format!("applying {kind_name}/{name}"), &e)),
        }
        Ok(Applied { kind, namespace, name })
    }

    /// Creates an object named by the server (`metadata.generateName`) and follows the name
    /// it got. The object carries a label unique to this create, so that when an attempt's
    /// answer is lost, the object it may have made is found instead of a second one created.
    async fn create_generated(
        &self,
        object: &Value,
        kind: Kind,
        namespace: Option<String>,
    ) -> Result<Applied, ApiError> {
        let token = random_hex(12);
        let mut body = object.clone();
        body["metadata"]["labels"][LABEL_CREATE] = json!(token);
        match &namespace {
            Some(ns) => body["metadata"]["namespace"] = json!(ns),
            None => {
                if let Some(meta) = body["metadata"].as_object_mut() {
                    meta.remove("namespace");
                }
            }
        }
        let prefix = object.pointer("/metadata/generateName").and_then(Value::as_str).unwrap_or_default().to_string();
        let what = format!("creating {}/{prefix}…", kind.resource.kind);
        let created: DynamicObject =
            serde_json::from_value(body).map_err(|e| ApiError::rejected(format!("{what}: {e}")))?;
        let api = self.dynamic(&kind, namespace.as_deref());
        let params = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
        let selector = ListParams::default().labels(&format!("{LABEL_CREATE}={token}"));
        let name = retry::at_call_site(&self.policy, &self.stats, &what, |attempt| {
            let (api, created, params, selector) = (&api, &created, &params, &selector);
            async move {
                if attempt > 1
                    && let Some(found) = api.list(selector).await?.items.into_iter().next()
                {
                    return Ok(found.metadata.name.unwrap_or_default());
                }
                api.create(params, created).await.map(|o| o.metadata.name.unwrap_or_default())
            }
        })
        .await
        .map_err(|e| ApiError::new(&what, &e))?;
        debug!(object = %format!("{}/{name}", kind.resource.kind), "created from generateName");
        Ok(Applied { kind, namespace, name })
    }

    /// A create that is safe to repeat (an `AlreadyExists` turns into a replace), then a
    /// replace at the version read.
    async fn create_or_replace(&self, api: &Api<DynamicObject>, name: &str, body: &Value) -> Result<(), ApiError> {
        let object: DynamicObject =
            serde_json::from_value(body.clone()).map_err(|e| ApiError::rejected(format!("{name}: {e}")))?;
        let params = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
        let what = format!("creating {name}");
        let created = retry::at_call_site(&self.policy, &self.stats, &what, |_| api.create(&params, &object)).await;
        match created {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.is_already_exists() => {
                let current = api.get(name).await.map_err(|e| ApiError::new(&format!("reading {name}"), &e))?;
                let mut replacement = object;
                replacement.metadata.resource_version = current.metadata.resource_version.clone();
                keep_allocated(&mut replacement, &current);
                api.replace(name, &params, &replacement)
                    .await
                    .map(|_| ())
                    .map_err(|e| ApiError::new(&format!("replacing {name}"), &e))
            }
            Err(e) => Err(ApiError::new(&what, &e)),
        }
    }

    pub async fn get(&self, applied: &Applied) -> Result<Value, ApiError> {
        let api = self.dynamic(&applied.kind, applied.namespace.as_deref());
        let obj = api.get(&applied.name).await.map_err(|e| ApiError::new("", &e))?;
        serde_json::to_value(obj).map_err(|e| ApiError::rejected(e.to_string()))
    }

    pub async fn delete(&self, applied: &Applied) -> Result<(), ApiError> {
        let api = self.dynamic(&applied.kind, applied.namespace.as_deref());
        match api.delete(&applied.name, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
            Err(e) => Err(ApiError::new(&format!("deleting {}/{}", applied.kind.resource.kind, applied.name), &e)),
        }
    }
}

/// What the server allocated and a replace may not unset: a Service's cluster IPs (its node
/// ports and health-check port too), kept from the object in the cluster where the
/// replacement does not give them, as server-side apply would.
fn keep_allocated(replacement: &mut DynamicObject, current: &DynamicObject) {
    if replacement.types.as_ref().is_none_or(|t| t.kind != "Service") {
        return;
    }
    let (Some(spec), Some(now)) = (replacement.data.get_mut("spec"), current.data.get("spec")) else { return };
    let Some(spec) = spec.as_object_mut() else { return };
    for field in ["clusterIP", "clusterIPs", "healthCheckNodePort"] {
        if !spec.contains_key(field)
            && let Some(value) = now.get(field)
        {
            spec.insert(field.to_string(), value.clone());
        }
    }
    let allocated: Vec<Value> = now.get("ports").and_then(Value::as_array).cloned().unwrap_or_default();
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports.iter_mut().filter_map(Value::as_object_mut) {
            let same =
                allocated.iter().find(|p| p.get("port") == port.get("port") && p.get("name") == port.get("name"));
            if let (false, Some(node_port)) = (port.contains_key("nodePort"), same.and_then(|p| p.get("nodePort"))) {
                port.insert("nodePort".into(), node_port.clone());
            }
        }
    }
}
