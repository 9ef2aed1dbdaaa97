//! All of kubevet's access to Kubernetes lives here: connecting, discovery, applying,
//! watching, reading logs and events, deleting. Every request goes through one layer
//! ([`super::retry`]) that retries transient faults and counts requests and retries, so the
//! cost of a run can be measured and a flaky control plane never changes a verdict.

use std::{
    collections::{BTreeMap, HashSet},
    fmt,
    path::Path,
    sync::Arc,
    time::Duration,
};

use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Event, Namespace, Pod};
use kube::{
    Api, Client, Config,
    api::{DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams, PostParams, PropagationPolicy},
    client::ClientBuilder,
    config::{KubeConfigOptions, Kubeconfig},
    core::{ApiResource, GroupVersionKind},
    discovery::{Discovery, Scope},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::{Value, json};
use tokio::sync::{RwLock, watch};
use tracing::{debug, warn};

use super::retry::{self, RequestCounts, RequestStats, RetryLayer, RetryPolicy};
use crate::util::{
    error::{Error, Result},
    ids::random_hex,
};

pub const FIELD_MANAGER: &str = "kubevet";
pub const LABEL_RUN: &str = "kubevet.dev/run";
pub const LABEL_CASE: &str = "kubevet.dev/case";
/// Put on an object created from `generateName`, so that a create whose answer was lost can
/// be found again instead of creating a second object.
pub const LABEL_CREATE: &str = "kubevet.dev/create";

/// A request that failed: what, whether the cluster failed (a transient fault that outlasted
/// its retries) rather than the request itself (rejected, not found, invalid), and the API
/// server's own facts about it — its HTTP status, its `reason` and `details` — on which the
/// failure classes are decided (never on the message, which holds the user's names).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub message: String,
    pub infrastructure: bool,
    /// The HTTP status the API server answered with; none when no answer came.
    pub code: Option<u16>,
    /// The Status object's `reason` (`Invalid`, `Forbidden`, `AlreadyExists`…), when given.
    pub reason: Option<String>,
    pub details: Option<kube::core::response::StatusDetails>,
}

impl ApiError {
    pub fn new(context: &str, e: &kube::Error) -> ApiError {
        let infrastructure = retry::transient(e).is_some();
        let message = if context.is_empty() { describe(e) } else { format!("{context}: {}", describe(e)) };
        let message = if infrastructure {
            format!("{message} (the API server kept failing; retried to its budget)")
        } else {
            message
        };
        let (code, reason, details) = match e {
            kube::Error::Api(status) => (
                Some(status.code).filter(|c| *c != 0),
                Some(status.reason.clone()).filter(|r| !r.is_empty()),
                status.details.clone(),
            ),
            _ => (None, None, None),
        };
        ApiError { message, infrastructure, code, reason, details }
    }

    /// A failure of the request itself, found by kubevet before or after the server answered
    /// (no kind of that name, a body that does not read as an object).
    pub fn rejected(message: impl Into<String>) -> ApiError {
        ApiError { message: message.into(), infrastructure: false, code: None, reason: None, details: None }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<ApiError> for String {
    fn from(e: ApiError) -> String {
        e.message
    }
}

/// A kind the cluster serves, and whether its objects live in a namespace.
#[derive(Debug, Clone)]
pub struct Kind {
    pub resource: ApiResource,
    pub namespaced: bool,
}

/// What applying an object did: its identity and the server's copy of it.
#[derive(Debug, Clone)]
pub struct Applied {
    pub kind: Kind,
    pub namespace: Option<String>,
    pub name: String,
}

/// Which of a run's namespaces are gone, from one watch for the whole run (instead of one
/// per namespace). A name counts as gone once a delete was seen, or once a re-list no longer
/// has it.
#[derive(Clone)]
pub struct NamespaceTracker {
    gone: watch::Receiver<HashSet<String>>,
}

impl NamespaceTracker {
    async fn wait_gone(&mut self, name: &str) -> bool {
        self.gone.wait_for(|gone| gone.contains(name)).await.is_ok()
    }
}

pub struct Cluster {
    pub(super) client: Client,
    discovery: RwLock<Discovery>,
    pub server_version: String,
    /// The kubeconfig and context it was reached with, for users' scripts (`KUBECONFIG`);
    /// none when found the default way.
    pub kubeconfig: Option<std::path::PathBuf>,
    pub context: Option<String>,
    pub(super) policy: RetryPolicy,
    pub(super) stats: Arc<RequestStats>,
}

fn infrastructure(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Infrastructure(format!("{what}: {e}"))
}

/// A short text for a failed request: the API server's own message where there is one.
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => other.to_string(),
    }
}

impl Cluster {
    pub async fn connect(kubeconfig: Option<&Path>, context: Option<&str>) -> Result<Cluster> {
        Cluster::connect_with(kubeconfig, context, RetryPolicy::default()).await
    }

    /// Connects with the suite's retry policy (`defaults.apiRetry`).
    pub async fn connect_with(
        kubeconfig: Option<&Path>,
        context: Option<&str>,
        policy: RetryPolicy,
    ) -> Result<Cluster> {
        let options = KubeConfigOptions { context: context.map(str::to_string), ..Default::default() };
        let config = match kubeconfig {
            Some(path) => {
                let file = Kubeconfig::read_from(path)
                    .map_err(|e| Error::Usage(format!("--kubeconfig {}: {e}", path.display())))?;
                Config::from_custom_kubeconfig(file, &options)
                    .await
                    .map_err(|e| Error::Usage(format!("--kubeconfig {}: {e}", path.display())))?
            }
            None if context.is_some() => {
                Config::from_kubeconfig(&options).await.map_err(|e| Error::Usage(format!("--context: {e}")))?
            }
            None => Config::infer()
                .await
                .map_err(|e| infrastructure("no cluster configured (KUBECONFIG, ~/.kube/config or in-cluster)", e))?,
        };
        let cluster_url = config.cluster_url.to_string();
        // kubevet's own policy replaces kube's default retry (which retries creates too,
        // uncounted and up to 15 times).
        let mut config = config;
        config.default_retry = false;
        let stats = Arc::new(RequestStats::default());
        let client = ClientBuilder::try_from(config)
            .map_err(|e| infrastructure("building the Kubernetes client", e))?
            .with_layer(&RetryLayer { policy, stats: stats.clone() })
            .build();
        let version = client
            .apiserver_version()
            .await
            .map_err(|e| infrastructure(&format!("cluster at {cluster_url} unreachable"), describe(&e)))?;
        // Discovery::run, not run_aggregated: against servers without aggregated discovery
        // (before 1.26) the aggregated call "succeeds" with zero groups.
        let discovery = Discovery::new(client.clone())
            .run()
            .await
            .map_err(|e| infrastructure("API discovery failed", describe(&e)))?;
        Ok(Cluster {
            client,
            discovery: RwLock::new(discovery),
            server_version: version.git_version,
            kubeconfig: kubeconfig.map(Path::to_path_buf),
            context: context.map(str::to_string),
            policy,
            stats,
        })
    }

    /// API requests sent so far (each attempt counts).
    pub fn requests(&self) -> u64 {
        self.stats.sent()
    }

    /// Requests sent, retried (by reason) and failed after their retries, so far.
    pub fn request_counts(&self) -> RequestCounts {
        self.stats.counts()
    }

    /// The kind behind an apiVersion and kind; discovery is refreshed once on a miss, since
    /// CRDs appear when an operator is installed.
    pub async fn kind(&self, api_version: &str, kind: &str) -> Result<Kind, ApiError> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let lookup = |d: &Discovery| {
            d.resolve_gvk(&gvk).map(|(resource, caps)| Kind { resource, namespaced: caps.scope == Scope::Namespaced })
        };
        if let Some(found) = lookup(&*self.discovery.read().await) {
            return Ok(found);
        }
        let mut discovery = self.discovery.write().await;
        if let Some(found) = lookup(&discovery) {
            return Ok(found);
        }
        debug!(api_version, kind, "kind not in discovery; refreshing");
        let fresh =
            Discovery::new(self.client.clone()).run().await.map_err(|e| ApiError::new("API discovery failed", &e))?;
        *discovery = fresh;
        lookup(&discovery).ok_or_else(|| {
            ApiError::rejected(format!(
                "the cluster does not serve {kind} ({api_version}): is its CRD installed, or the operator that brings it?"
            ))
        })
    }

    /// The cluster's OpenAPI v2 document: the schema of every kind it serves.
    pub async fn openapi_v2(&self) -> Result<Value, String> {
        let request = http::Request::get("/openapi/v2").body(Vec::new()).map_err(|e| e.to_string())?;
        let text =
            self.client.request_text(request).await.map_err(|e| format!("reading /openapi/v2: {}", describe(&e)))?;
        serde_json::from_str(&text).map_err(|e| format!("/openapi/v2 is not JSON: {e}"))
    }

    pub fn dynamic(&self, kind: &Kind, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(ns) if kind.namespaced => Api::namespaced_with(self.client.clone(), ns, &kind.resource),
            _ => Api::all_with(self.client.clone(), &kind.resource),
        }
    }

    pub fn pods(&self, namespace: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Applies by server-side apply. A server that rejects a field it does not know (Kubernetes
    /// before 1.2x answers 500 "field not declared in schema" for, e.g., CEL rules in a CRD)
    /// gets a create or replace instead, which drops such fields; kubevet says so.
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
            Err(kube::Error::Api(status))
                if status.code == 500 && status.message.contains("field not declared in schema") =>
            {
                warn!(
                    server = %self.server_version, object = %format!("{kind_name}/{name}"), reason = %status.message,
                    "server-side apply rejected a field this server does not know; using create/replace, which drops it"
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
                replacement.metadata.resource_version = current.metadata.resource_version;
                api.replace(name, &params, &replacement)
                    .await
                    .map(|_| ())
                    .map_err(|e| ApiError::new(&format!("replacing {name}"), &e))
            }
            Err(e) => Err(ApiError::new(&what, &e)),
        }
    }

    /// Creates a case's namespace. Its name is new (random), so an `AlreadyExists` after a
    /// retried attempt means the earlier attempt made it.
    pub async fn create_namespace(&self, name: &str, labels: BTreeMap<String, String>) -> Result<(), ApiError> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}}))
            .map_err(|e| ApiError::rejected(e.to_string()))?;
        let what = format!("creating namespace {name}");
        let created = retry::at_call_site(&self.policy, &self.stats, &what, |attempt| {
            let (api, ns) = (&api, &ns);
            async move {
                match api.create(&PostParams::default(), ns).await {
                    Err(kube::Error::Api(s)) if s.is_already_exists() && attempt > 1 => Ok(()),
                    other => other.map(|_| ()),
                }
            }
        })
        .await;
        created.map_err(|e| ApiError::new(&what, &e))
    }

    /// The object's state, as long as it exists, for as long as the stream is polled.
    pub fn watch_object(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        name: &str,
    ) -> impl Stream<Item = Result<Option<DynamicObject>, String>> + use<> {
        kube::runtime::watcher::watch_object(self.dynamic(kind, namespace), name).map_err(|e| e.to_string())
    }

    /// The objects of a kind in a namespace (by name, label selector, or all), as a full
    /// snapshot after every change: what a scenario's assert, error and wait steps judge. A
    /// failed watch is started again with backoff.
    pub fn watch_matching(
        &self,
        kind: &Kind,
        namespace: &str,
        name: Option<&str>,
        selector: Option<&str>,
    ) -> impl Stream<Item = Result<Vec<Value>, String>> + use<> {
        let mut config = watcher::Config::default();
        if let Some(name) = name {
            config = config.fields(&format!("metadata.name={name}"));
        }
        if let Some(selector) = selector {
            config = config.labels(selector);
        }
        let mut current: BTreeMap<String, Value> = BTreeMap::new();
        let mut listing: BTreeMap<String, Value> = BTreeMap::new();
        watcher(self.dynamic(kind, Some(namespace)), config).default_backoff().filter_map(move |event| {
            let snapshot = match event {
                Err(e) => Some(Err(e.to_string())),
                Ok(watcher::Event::Init) => {
                    listing.clear();
                    None
                }
                Ok(watcher::Event::InitApply(o)) => {
                    listing.insert(
                        o.metadata.name.clone().unwrap_or_default(),
                        serde_json::to_value(o).unwrap_or_default(),
                    );
                    None
                }
                Ok(watcher::Event::InitDone) => {
                    current = std::mem::take(&mut listing);
                    Some(Ok(current.values().cloned().collect()))
                }
                Ok(watcher::Event::Apply(o)) => {
                    current.insert(
                        o.metadata.name.clone().unwrap_or_default(),
                        serde_json::to_value(o).unwrap_or_default(),
                    );
                    Some(Ok(current.values().cloned().collect()))
                }
                Ok(watcher::Event::Delete(o)) => {
                    current.remove(&o.metadata.name.clone().unwrap_or_default());
                    Some(Ok(current.values().cloned().collect()))
                }
            };
            futures::future::ready(snapshot)
        })
    }

    /// The names of the objects of a kind in a namespace, by name or label selector.
    pub async fn list_matching(
        &self,
        kind: &Kind,
        namespace: &str,
        name: Option<&str>,
        selector: Option<&str>,
    ) -> Result<Vec<Value>, ApiError> {
        let mut params = ListParams::default();
        if let Some(name) = name {
            params = params.fields(&format!("metadata.name={name}"));
        }
        if let Some(selector) = selector {
            params = params.labels(selector);
        }
        let listed = self
            .dynamic(kind, Some(namespace))
            .list(&params)
            .await
            .map_err(|e| ApiError::new(&format!("listing {}", kind.resource.plural), &e))?;
        Ok(listed.items.into_iter().filter_map(|o| serde_json::to_value(o).ok()).collect())
    }

    /// Runs a command in a container of a pod through the API server: its exit code (None
    /// when the server gave no status) and its output, standard error after standard output.
    pub async fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        command: &[String],
    ) -> Result<(Option<i32>, String), ApiError> {
        use crate::util::command::drain;
        use kube::api::AttachParams;
        let mut params = AttachParams::default().stdout(true).stderr(true).stdin(false);
        if let Some(c) = container {
            params = params.container(c);
        }
        let what = format!("exec in pod {pod}");
        let mut attached =
            self.pods(namespace).exec(pod, command.to_vec(), &params).await.map_err(|e| ApiError::new(&what, &e))?;
        // Both pipes are drained side by side: each holds about 1 KiB, so reading one to its
        // end first would block a command that fills the other.
        let (mut out, err) = tokio::join!(drain(attached.stdout()), drain(attached.stderr()));
        let status = match attached.take_status() {
            Some(status) => status.await,
            None => None,
        };
        let _ = attached.join().await;
        let code = status.map(|s| match s.status.as_deref() {
            Some("Success") => 0,
            _ => s
                .details
                .and_then(|d| d.causes)
                .into_iter()
                .flatten()
                .find(|c| c.reason.as_deref() == Some("ExitCode"))
                .and_then(|c| c.message)
                .and_then(|m| m.parse().ok())
                .unwrap_or(-1),
        });
        out.push_str(&err);
        Ok((code, out))
    }

    /// Every change to a pod of the namespace; a failed watch is started again with backoff.
    pub fn watch_pods(&self, namespace: &str) -> impl Stream<Item = Result<Pod, String>> + use<> {
        self.watch_pods_matching(namespace, None)
    }

    /// Every change of the pods of a namespace a label selector picks (all, without one).
    pub fn watch_pods_matching(
        &self,
        namespace: &str,
        selector: Option<&str>,
    ) -> impl Stream<Item = Result<Pod, String>> + use<> {
        let config = match selector {
            Some(s) => watcher::Config::default().labels(s),
            None => watcher::Config::default(),
        };
        watcher(self.pods(namespace), config).default_backoff().applied_objects().map_err(|e| e.to_string())
    }

    /// What each node can give pods (`status.allocatable`).
    pub async fn node_allocatable(&self) -> Result<Vec<BTreeMap<String, String>>, ApiError> {
        let api: Api<k8s_openapi::api::core::v1::Node> = Api::all(self.client.clone());
        let nodes = api.list(&ListParams::default()).await.map_err(|e| ApiError::new("listing nodes", &e))?;
        Ok(nodes
            .items
            .into_iter()
            .map(|n| {
                let allocatable = n.status.and_then(|s| s.allocatable).unwrap_or_default();
                allocatable.into_iter().map(|(k, q)| (k, q.0)).collect()
            })
            .collect())
    }

    /// The namespace's pods, or those of a label selector (the API server's own selector
    /// syntax, set-based terms included).
    pub async fn list_pods(&self, namespace: &str, selector: Option<&str>) -> Result<Vec<Pod>, String> {
        let params = match selector {
            Some(selector) => ListParams::default().labels(selector),
            None => ListParams::default(),
        };
        self.pods(namespace).list(&params).await.map(|l| l.items).map_err(|e| describe(&e))
    }

    pub async fn get(&self, applied: &Applied) -> Result<Value, String> {
        let api = self.dynamic(&applied.kind, applied.namespace.as_deref());
        let obj = api.get(&applied.name).await.map_err(|e| describe(&e))?;
        serde_json::to_value(obj).map_err(|e| e.to_string())
    }

    pub async fn logs(&self, namespace: &str, pod: &str, container: &str, previous: bool) -> Result<String, ApiError> {
        let params = LogParams { container: Some(container.into()), previous, ..Default::default() };
        self.pods(namespace).logs(pod, &params).await.map_err(|e| ApiError::new("", &e))
    }

    pub async fn events(&self, namespace: &str) -> Result<Vec<Event>, String> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        api.list(&ListParams::default()).await.map(|l| l.items).map_err(|e| describe(&e))
    }

    pub async fn delete(&self, applied: &Applied) -> Result<(), ApiError> {
        let api = self.dynamic(&applied.kind, applied.namespace.as_deref());
        match api.delete(&applied.name, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
            Err(e) => Err(ApiError::new(&format!("deleting {}/{}", applied.kind.resource.kind, applied.name), &e)),
        }
    }

    /// Starts the run's one namespace watch (selected by the run label).
    pub fn track_namespaces(&self, run_id: &str) -> NamespaceTracker {
        self.track_namespaces_matching(&format!("{LABEL_RUN}={run_id}"))
    }

    /// One watch over the namespaces a label selector picks.
    pub fn track_namespaces_matching(&self, selector: &str) -> NamespaceTracker {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let config = watcher::Config::default().labels(selector);
        let (tx, rx) = watch::channel(HashSet::new());
        let mut events = Box::pin(watcher(api, config).default_backoff());
        tokio::spawn(async move {
            let (mut live, mut relisted) = (HashSet::new(), HashSet::new());
            while let Some(event) = events.next().await {
                let name = |ns: &Namespace| ns.metadata.name.clone().unwrap_or_default();
                match event {
                    Ok(watcher::Event::Apply(ns)) => {
                        live.insert(name(&ns));
                    }
                    Ok(watcher::Event::Delete(ns)) => {
                        let gone = name(&ns);
                        live.remove(&gone);
                        tx.send_modify(|g| {
                            g.insert(gone);
                        });
                    }
                    Ok(watcher::Event::Init) => relisted.clear(),
                    Ok(watcher::Event::InitApply(ns)) => {
                        relisted.insert(name(&ns));
                    }
                    Ok(watcher::Event::InitDone) => {
                        let vanished: Vec<String> = live.difference(&relisted).cloned().collect();
                        live = std::mem::take(&mut relisted);
                        tx.send_modify(|g| g.extend(vanished));
                    }
                    Err(e) => debug!(error = %e, "namespace watch error; it retries"),
                }
                if tx.is_closed() {
                    break;
                }
            }
        });
        NamespaceTracker { gone: rx }
    }

    /// Deletes a case's namespace and waits, on the run's namespace watch, until it is gone;
    /// on timeout, says what is left and why. When the workloads did not finish, they go
    /// first (so their controllers stop recreating pods), then their pods with no grace
    /// period, as a stuck namespace otherwise takes a minute or more.
    pub async fn delete_namespace(
        &self,
        name: &str,
        unfinished: &[Applied],
        tracker: &mut NamespaceTracker,
        timeout: Duration,
    ) -> Result<(), String> {
        for w in unfinished {
            let _ = self.delete(w).await;
        }
        self.delete_namespace_now(name, !unfinished.is_empty(), tracker, timeout).await
    }

    /// Deletes a namespace whatever runs in it (its pods first, with no grace period) and
    /// waits until it is gone: for `kubevet clean`, which knows nothing of its workloads.
    pub async fn delete_namespace_forcefully(
        &self,
        name: &str,
        tracker: &mut NamespaceTracker,
        timeout: Duration,
    ) -> Result<(), String> {
        self.delete_namespace_now(name, true, tracker, timeout).await
    }

    async fn delete_namespace_now(
        &self,
        name: &str,
        force_pods: bool,
        tracker: &mut NamespaceTracker,
        timeout: Duration,
    ) -> Result<(), String> {
        if force_pods {
            let force = DeleteParams {
                grace_period_seconds: Some(0),
                propagation_policy: Some(PropagationPolicy::Background),
                ..Default::default()
            };
            let _ = self.pods(name).delete_collection(&force, &ListParams::default()).await;
        }
        let api: Api<Namespace> = Api::all(self.client.clone());
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() => return Ok(()),
            // Already terminating: an earlier attempt whose answer was lost did delete it.
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(format!("deleting namespace {name}: {}", describe(&e))),
        }
        match tokio::time::timeout(timeout, tracker.wait_gone(name)).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(format!("lost the namespace watch while waiting for {name} to go")),
            Err(_) => Err(self.why_namespace_stays(name, timeout).await),
        }
    }

    /// What kubevet left on the cluster: namespaces and cluster-scoped objects that carry
    /// the run label (`selector`: `kubevet.dev/run` for every run, `kubevet.dev/run=ID`).
    pub async fn leftovers(&self, selector: &str) -> Result<(Vec<String>, Vec<Applied>), ApiError> {
        let params = ListParams::default().labels(selector);
        let api: Api<Namespace> = Api::all(self.client.clone());
        let namespaces = api.list(&params).await.map_err(|e| ApiError::new("listing namespaces", &e))?;
        let namespaces = namespaces.items.into_iter().filter_map(|n| n.metadata.name).collect();
        let kinds: Vec<Kind> = {
            let discovery = self.discovery.read().await;
            discovery
                .groups()
                .flat_map(|g| g.recommended_resources())
                .filter(|(r, caps)| {
                    caps.scope == Scope::Cluster
                        && caps.supports_operation(kube::discovery::verbs::LIST)
                        && caps.supports_operation(kube::discovery::verbs::DELETE)
                        && r.kind != "Namespace"
                })
                .map(|(resource, _)| Kind { resource, namespaced: false })
                .collect()
        };
        let mut objects = Vec::new();
        for kind in kinds {
            let listed = self.dynamic(&kind, None).list(&params).await;
            let listed = listed.map_err(|e| ApiError::new(&format!("listing {}", kind.resource.plural), &e))?;
            for o in listed.items {
                objects.push(Applied {
                    kind: kind.clone(),
                    namespace: None,
                    name: o.metadata.name.unwrap_or_default(),
                });
            }
        }
        Ok((namespaces, objects))
    }

    async fn why_namespace_stays(&self, name: &str, waited: Duration) -> String {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let mut why = format!("namespace {name} still there after {}", crate::util::duration::Dur(waited));
        if let Ok(ns) = api.get(name).await {
            let conditions = ns.status.and_then(|s| s.conditions).unwrap_or_default();
            for c in conditions.iter().filter(|c| c.status == "True") {
                why.push_str(&format!("; {}: {}", c.type_, c.message.as_deref().unwrap_or("")));
            }
            if let Some(finalizers) = ns.spec.and_then(|s| s.finalizers).filter(|f| !f.is_empty()) {
                why.push_str(&format!("; finalizers: {}", finalizers.join(", ")));
            }
        }
        why
    }
}

/// A label value Kubernetes accepts: at most 63 characters of [a-z0-9A-Z._-], alphanumeric at the ends.
pub fn label_value(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' })
        .take(63)
        .collect();
    cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string()
}
