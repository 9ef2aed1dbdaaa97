//! `kubevet clean`: deletes what kubevet left on a cluster (a run killed before its cleanup,
//! or a cleanup the cluster refused), found by the run label: the namespaces of cases and the
//! cluster-scoped objects they applied. Operators are never touched.

use std::time::Duration;

use super::{
    client::{Cluster, LABEL_RUN},
    provision,
};
use crate::{
    suite::{ClusterSettings, Provider},
    util::error::{EXIT_INFRASTRUCTURE, Error, Result},
};

/// Which runs' leftovers to delete.
#[derive(Debug, Clone)]
pub enum Runs {
    One(String),
    All,
}

/// Deletes the leftovers and waits for the namespaces to go; prints one line per object.
/// Exit 0 when everything is gone, 3 when something stays.
pub async fn clean(cluster: &Cluster, runs: &Runs, timeout: Duration) -> Result<i32> {
    let selector = match runs {
        Runs::One(id) => format!("{LABEL_RUN}={id}"),
        Runs::All => LABEL_RUN.to_string(),
    };
    let (namespaces, objects) = cluster.leftovers(&selector).await.map_err(Error::infrastructure_from)?;
    if namespaces.is_empty() && objects.is_empty() {
        println!("nothing left by kubevet ({selector})");
        return Ok(0);
    }
    let mut failed = false;
    for object in &objects {
        match cluster.delete(object).await {
            Ok(()) => println!("deleted {}/{}", object.kind.resource.kind, object.name),
            Err(e) => {
                failed = true;
                eprintln!("kubevet: {e}");
            }
        }
    }
    let mut tracker = cluster.track_namespaces_matching(&selector);
    for namespace in &namespaces {
        // Workloads may still run there: their pods go first, as a case's cleanup does.
        match cluster.delete_namespace_forcefully(namespace, &mut tracker, timeout).await {
            Ok(()) => println!("deleted namespace {namespace}"),
            Err(why) => {
                failed = true;
                eprintln!("kubevet: {why}");
            }
        }
    }
    Ok(if failed { EXIT_INFRASTRUCTURE } else { 0 })
}

/// `kubevet clean` on the suite's clusters: the existing one, or each kind cluster of the
/// matrix that is up.
pub async fn clean_clusters(
    settings: &ClusterSettings,
    only: Option<&str>,
    runs: &Runs,
    timeout: Duration,
) -> Result<i32> {
    let mut code = 0;
    match settings.provider {
        Provider::Container => {
            return Err(Error::usage("a container cluster is removed with its run: there is nothing to clean"));
        }
        Provider::Existing => {
            let cluster = Cluster::connect(settings.kubeconfig.as_deref(), settings.context.as_deref()).await?;
            code = clean(&cluster, runs, timeout).await?;
        }
        Provider::Kind => {
            let up = provision::kind_clusters().await.map_err(Error::from)?;
            for cell in provision::cells(settings, only)? {
                let Some(name) = cell.kind_cluster.filter(|n| up.contains(n)) else { continue };
                println!("kind cluster {name}:");
                let kubeconfig = provision::kind_kubeconfig(&name);
                let cluster = Cluster::connect(Some(&kubeconfig), Some(&format!("kind-{name}"))).await?;
                code = code.max(clean(&cluster, runs, timeout).await?);
            }
        }
    }
    Ok(code)
}
