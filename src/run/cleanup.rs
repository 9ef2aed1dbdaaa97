//! Deleting what a case made: its cluster-scoped objects, then its namespace (workloads that
//! had not finished first), waiting until the namespace is gone — unless the cluster itself
//! is deleted right after the run. What stays is never silent: it goes into the result's
//! `leftBehind` and `cleanup`.

use std::time::Duration;

use tokio::time::Instant;
use tracing::warn;

use super::case::Cleanup;
use crate::{
    cluster::{Cluster, NamespaceTracker},
    outcome::{CaseResult, Phase},
};

pub(super) async fn clean_up(
    cluster: &Cluster,
    cleanup: &Cleanup,
    namespaces: &mut NamespaceTracker,
    timeout: Duration,
    wait_gone: bool,
    result: &mut CaseResult,
) {
    let clock = Instant::now();
    let mut problems = Vec::new();
    for object in &cleanup.cluster_scoped {
        if let Err(e) = cluster.delete(object).await {
            warn!(object = %object.name, error = %e, "cannot delete a cluster-scoped object");
            result.left_behind.push(format!("{}/{}", object.kind.resource.kind, object.name));
            problems.push(e.message);
        }
    }
    let deleted = cluster.delete_namespace(&cleanup.namespace, &cleanup.unfinished, namespaces, timeout, wait_gone);
    if let Err(why) = deleted.await {
        warn!(namespace = %cleanup.namespace, "{why}");
        result.left_behind.push(format!("namespace {}", cleanup.namespace));
        problems.push(why.to_string());
    }
    if !problems.is_empty() {
        result.cleanup = Some(problems.join("; "));
    } else if !wait_gone {
        result.cleanup = Some("namespace deletion asked, not waited for: the cluster is deleted after the run".into());
    }
    result.phases.push(Phase::since("cleanup", clock));
}
