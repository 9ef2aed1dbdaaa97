//! Watching: one object, the objects a name or selector picks (as full snapshots), pods;
//! and the lists a watch does not cover.

use std::collections::BTreeMap;

use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api,
    api::{DynamicObject, ListParams},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::Value;

use super::{ApiError, Cluster, Kind};

impl Cluster {
    /// The object's state, as long as it exists, for as long as the stream is polled.
    pub fn watch_object(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        name: &str,
    ) -> impl Stream<Item = Result<Option<DynamicObject>, ApiError>> + use<> {
        kube::runtime::watcher::watch_object(self.dynamic(kind, namespace), name).map_err(|e| ApiError::from(&e))
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
    ) -> impl Stream<Item = Result<Vec<Value>, ApiError>> + use<> {
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
                Err(e) => Some(Err(ApiError::from(&e))),
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

    /// Every change to a pod of the namespace; a failed watch is started again with backoff.
    pub fn watch_pods(&self, namespace: &str) -> impl Stream<Item = Result<Pod, ApiError>> + use<> {
        self.watch_pods_matching(namespace, None)
    }

    /// Every change of the pods of a namespace a label selector picks (all, without one).
    pub fn watch_pods_matching(
        &self,
        namespace: &str,
        selector: Option<&str>,
    ) -> impl Stream<Item = Result<Pod, ApiError>> + use<> {
        let config = match selector {
            Some(s) => watcher::Config::default().labels(s),
            None => watcher::Config::default(),
        };
        watcher(self.pods(namespace), config).default_backoff().applied_objects().map_err(|e| ApiError::from(&e))
    }

    /// The namespace's pods, or those of a label selector (the API server's own selector
    /// syntax, set-based terms included).
    pub async fn list_pods(&self, namespace: &str, selector: Option<&str>) -> Result<Vec<Pod>, ApiError> {
        let params = match selector {
            Some(selector) => ListParams::default().labels(selector),
            None => ListParams::default(),
        };
        self.pods(namespace).list(&params).await.map(|l| l.items).map_err(|e| ApiError::new("listing pods", &e))
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
}
