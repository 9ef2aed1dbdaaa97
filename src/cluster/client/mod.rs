//! All of kubevet's access to Kubernetes lives here: connecting, discovery, applying,
//! watching, reading logs and events, deleting. Every request goes through one layer
//! ([`super::retry`]) that retries transient faults and counts requests and retries, so the
//! cost of a run can be measured and a flaky control plane never changes a verdict.
//!
//! Split by concern: connecting and discovery here; [`apply`]ing and deleting objects;
//! [`watching`] them; [`namespaces`]; and [`exec`] and logs inside pods.

mod apply;
mod exec;
mod kubeconfig;
mod namespaces;
mod proxy;
mod watching;

pub use kubeconfig::KubeconfigError;
pub use namespaces::{NamespaceNotDeleted, NamespaceTracker};

use std::{path::Path, sync::Arc};

use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client, Config,
    api::DynamicObject,
    client::ClientBuilder,
    config::{KubeConfigOptions, Kubeconfig},
    core::{ApiResource, GroupVersionKind},
    discovery::{Discovery, Scope},
};
use serde_json::Value;
use tokio::sync::RwLock;
use tracing::debug;

use super::retry::{self, RequestCounts, RequestStats, RetryLayer, RetryPolicy};
use crate::util::error::{Error, Result};

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
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
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

impl From<&kube::runtime::watcher::Error> for ApiError {
    /// A watch that failed: the request under it when there was one, so its status decides.
    fn from(e: &kube::runtime::watcher::Error) -> ApiError {
        use kube::runtime::watcher::Error as W;
        match e {
            W::InitialListFailed(e) | W::WatchStartFailed(e) | W::WatchFailed(e) => ApiError::new("watching", e),
            W::WatchError(status) => ApiError {
                message: format!("watching: {} ({})", status.message, status.code),
                infrastructure: false,
                code: Some(status.code).filter(|c| *c != 0),
                reason: Some(status.reason.clone()).filter(|r| !r.is_empty()),
                details: None,
            },
            other => ApiError::rejected(format!("watching: {other}")),
        }
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
                    .map_err(|e| Error::usage_because(format!("--kubeconfig {}", path.display()), e))?;
                Config::from_custom_kubeconfig(file, &options)
                    .await
                    .map_err(|e| Error::usage_because(format!("--kubeconfig {}", path.display()), e))?
            }
            None if context.is_some() => {
                Config::from_kubeconfig(&options).await.map_err(|e| Error::usage_because("--context", e))?
            }
            None => Config::infer().await.map_err(|e| {
                Error::infrastructure_because("no cluster configured (KUBECONFIG, ~/.kube/config or in-cluster)", e)
            })?,
        };
        let cluster_url = config.cluster_url.to_string();
        // kubevet's own policy replaces kube's default retry (which retries creates too,
        // uncounted and up to 15 times).
        let mut config = config;
        config.default_retry = false;
        let stats = Arc::new(RequestStats::default());
        let client = ClientBuilder::try_from(config)
            .map_err(|e| Error::infrastructure_because("building the Kubernetes client", e))?
            .with_layer(&RetryLayer { policy, stats: stats.clone() })
            .build();
        let version = client.apiserver_version().await.map_err(|e| {
            Error::infrastructure_from(ApiError::new(&format!("cluster at {cluster_url} unreachable"), &e))
        })?;
        // Discovery::run, not run_aggregated: against servers without aggregated discovery
        // (before 1.26) the aggregated call "succeeds" with zero groups.
        let discovery = Discovery::new(client.clone())
            .run()
            .await
            .map_err(|e| Error::infrastructure_from(ApiError::new("API discovery failed", &e)))?;
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

    /// The kind of a group (any version: the one the server prefers), when the cluster serves
    /// it; discovery as it is, never refreshed for it.
    pub async fn served_kind(&self, group: &str, kind: &str) -> Option<Kind> {
        let discovery = self.discovery.read().await;
        let (resource, caps) = discovery.get(group)?.recommended_kind(kind)?;
        Some(Kind { resource, namespaced: caps.scope == Scope::Namespaced })
    }

    /// The cluster's OpenAPI v2 document: the schema of every kind it serves.
    pub async fn openapi_v2(&self) -> Result<Value, ApiError> {
        let request = http::Request::get("/openapi/v2")
            .body(Vec::new())
            .map_err(|e| ApiError::rejected(format!("requesting /openapi/v2: {e}")))?;
        let text = self.client.request_text(request).await.map_err(|e| ApiError::new("reading /openapi/v2", &e))?;
        serde_json::from_str(&text).map_err(|e| ApiError::rejected(format!("/openapi/v2 is not JSON: {e}")))
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
