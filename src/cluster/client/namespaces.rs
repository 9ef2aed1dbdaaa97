//! Namespaces: made per case, watched once per run until gone, deleted workloads first,
//! and what a run left behind found by its label.

use std::{
    collections::{BTreeMap, HashSet},
    time::Duration,
};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api,
    api::{DeleteParams, ListParams, PostParams, PropagationPolicy},
    discovery::Scope,
    runtime::{WatchStreamExt, watcher},
};
use serde_json::json;
use tokio::sync::watch;
use tracing::debug;

use super::{ApiError, Applied, Cluster, Kind, LABEL_RUN, retry};

/// Which of a run's namespaces are gone, from one watch for the whole run (instead of one
/// per namespace). A name counts as gone once a delete was seen, or once a re-list no longer
/// has a name it had listed before.
#[derive(Clone)]
pub struct NamespaceTracker {
    seen: watch::Receiver<Seen>,
}

/// What the run's namespace watch has seen so far.
#[derive(Default)]
struct Seen {
    gone: HashSet<String>,
    /// How many (re-)lists and errors the watch had: a watch that was down may have missed the
    /// deletion of a namespace it never listed (made and deleted while it was down).
    disruptions: u64,
}

/// Why a namespace kubevet made is still there: it is then listed as left behind.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceNotDeleted {
    /// The API server refused the delete (or kept failing).
    #[error(transparent)]
    Refused(ApiError),
    #[error("lost the namespace watch while waiting for {name} to go")]
    WatchLost { name: String },
    /// Still there at the timeout: its conditions and finalizers say why.
    #[error("{why}")]
    Stays { why: String },
}

/// What waiting on the watch for a namespace to go came to.
enum Waited {
    Gone,
    /// The watch failed or re-listed: whether the namespace is still there needs a read.
    Disrupted,
    WatchLost,
}

impl NamespaceTracker {
    fn disruptions(&self) -> u64 {
        self.seen.borrow().disruptions
    }

    /// Waits until the watch saw `name` go, or was disrupted after the `since`-th disruption.
    async fn wait_gone(&mut self, name: &str, since: u64) -> Waited {
        match self.seen.wait_for(|s| s.gone.contains(name) || s.disruptions > since).await {
            Ok(seen) if seen.gone.contains(name) => Waited::Gone,
            Ok(_) => Waited::Disrupted,
            Err(_) => Waited::WatchLost,
        }
    }
}

impl Cluster {
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

    /// Starts the run's one namespace watch (selected by the run label).
    pub fn track_namespaces(&self, run_id: &str) -> NamespaceTracker {
        self.track_namespaces_matching(&format!("{LABEL_RUN}={run_id}"))
    }

    /// One watch over the namespaces a label selector picks.
    pub fn track_namespaces_matching(&self, selector: &str) -> NamespaceTracker {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let config = watcher::Config::default().labels(selector);
        let (tx, rx) = watch::channel(Seen::default());
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
                        tx.send_modify(|s| {
                            s.gone.insert(gone);
                        });
                    }
                    Ok(watcher::Event::Init) => relisted.clear(),
                    Ok(watcher::Event::InitApply(ns)) => {
                        relisted.insert(name(&ns));
                    }
                    Ok(watcher::Event::InitDone) => {
                        let vanished: Vec<String> = live.difference(&relisted).cloned().collect();
                        live = std::mem::take(&mut relisted);
                        tx.send_modify(|s| {
                            s.gone.extend(vanished);
                            s.disruptions = s.disruptions.saturating_add(1);
                        });
                    }
                    Err(e) => {
                        debug!(error = %e, "namespace watch error; it retries");
                        tx.send_modify(|s| s.disruptions = s.disruptions.saturating_add(1));
                    }
                }
                if tx.is_closed() {
                    break;
                }
            }
        });
        NamespaceTracker { seen: rx }
    }

    /// Deletes a case's namespace and (with `wait_gone`) waits, on the run's namespace watch,
    /// until it is gone; on timeout, says what is left and why. When the workloads did not
    /// finish, they go first (so their controllers stop recreating pods), then their pods with
    /// no grace period, as a stuck namespace otherwise takes a minute or more. (Deleting a
    /// finished case's pods the same way was measured: it saved nothing of the ~5 s the
    /// namespace controller takes, and cost a request per case.)
    pub async fn delete_namespace(
        &self,
        name: &str,
        unfinished: &[Applied],
        tracker: &mut NamespaceTracker,
        timeout: Duration,
        wait_gone: bool,
    ) -> Result<(), NamespaceNotDeleted> {
        for w in unfinished {
            let _ = self.delete(w).await;
        }
        let timeout = if wait_gone { Some(timeout) } else { None };
        self.delete_namespace_now(name, !unfinished.is_empty(), tracker, timeout).await
    }

    /// Deletes a namespace whatever runs in it (its pods first, with no grace period) and
    /// waits until it is gone: for `kubevet clean`, which knows nothing of its workloads.
    pub async fn delete_namespace_forcefully(
        &self,
        name: &str,
        tracker: &mut NamespaceTracker,
        timeout: Duration,
    ) -> Result<(), NamespaceNotDeleted> {
        self.delete_namespace_now(name, true, tracker, Some(timeout)).await
    }

    /// The delete, then (with a timeout) the wait until the namespace is gone.
    async fn delete_namespace_now(
        &self,
        name: &str,
        force_pods: bool,
        tracker: &mut NamespaceTracker,
        timeout: Option<Duration>,
    ) -> Result<(), NamespaceNotDeleted> {
        if force_pods {
            let force = DeleteParams {
                grace_period_seconds: Some(0),
                propagation_policy: Some(PropagationPolicy::Background),
                ..Default::default()
            };
            let _ = self.pods(name).delete_collection(&force, &ListParams::default()).await;
        }
        let api: Api<Namespace> = Api::all(self.client.clone());
        let disruptions = tracker.disruptions();
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() => return Ok(()),
            // Already terminating: an earlier attempt whose answer was lost did delete it.
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => {
                return Err(NamespaceNotDeleted::Refused(ApiError::new(&format!("deleting namespace {name}"), &e)));
            }
        }
        let Some(timeout) = timeout else { return Ok(()) };
        match tokio::time::timeout(timeout, wait_namespace_gone(&api, name, tracker, disruptions)).await {
            Ok(result) => result,
            Err(_) => match still_there(&api, name).await {
                Ok(false) => Ok(()),
                Ok(true) | Err(_) => {
                    Err(NamespaceNotDeleted::Stays { why: self.why_namespace_stays(name, timeout).await })
                }
            },
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

/// Waits on the run's watch until `name` is gone; after each error or re-list of the watch
/// (which may have missed its deletion), one read says whether it still is there.
async fn wait_namespace_gone(
    api: &Api<Namespace>,
    name: &str,
    tracker: &mut NamespaceTracker,
    mut disruptions: u64,
) -> Result<(), NamespaceNotDeleted> {
    loop {
        match tracker.wait_gone(name, disruptions).await {
            Waited::Gone => return Ok(()),
            Waited::WatchLost => return Err(NamespaceNotDeleted::WatchLost { name: name.to_string() }),
            Waited::Disrupted => {
                disruptions = tracker.disruptions();
                if let Ok(false) = still_there(api, name).await {
                    return Ok(());
                }
            }
        }
    }
}

/// One read of the namespace: `false` only on the server's 404.
async fn still_there(api: &Api<Namespace>, name: &str) -> Result<bool, kube::Error> {
    match api.get(name).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}
