//! `kubevet cluster up|down|status`: the suite's kind clusters created and kept for local
//! loops, deleted, or looked at; an existing cluster is only looked at.

use super::{
    client::Cluster,
    provision::{self, Cell},
};
use crate::{
    suite::{ClusterSettings, Provider},
    util::{
        command,
        error::{Error, Result},
        interrupt::interrupt_signal,
    },
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Up,
    Down,
    Status,
}

pub async fn manage(action: Action, settings: &ClusterSettings, only: Option<&str>) -> Result<i32> {
    if settings.provider == Provider::Container {
        return Err(Error::usage("a container cluster lives for one run; for local loops use the kind provider"));
    }
    let cells = provision::cells(settings, only)?;
    if settings.provider == Provider::Kind {
        command::require(&["kind", "docker"])?;
    }
    // `up` finds existing clusters itself; down and status ask kind once for all cells.
    let existing = match (settings.provider, action) {
        (Provider::Kind, Action::Down | Action::Status) => provision::kind_clusters().await.map_err(Error::from)?,
        _ => Vec::new(),
    };
    for cell in &cells {
        match &cell.kind_cluster {
            Some(name) => kind_cell(action, settings, cell, name, existing.contains(name)).await?,
            None => {
                if matches!(action, Action::Up | Action::Down) {
                    println!("existing cluster: kubevet neither creates nor deletes it");
                }
                let cluster = Cluster::connect(settings.kubeconfig.as_deref(), settings.context.as_deref()).await?;
                println!("existing cluster reachable, Kubernetes {}", cluster.server_version);
            }
        }
    }
    Ok(0)
}

async fn kind_cell(action: Action, settings: &ClusterSettings, cell: &Cell, name: &str, exists: bool) -> Result<()> {
    let image = cell.image.as_deref().unwrap_or_default();
    match action {
        Action::Up => {
            let p = provision::up(settings, cell, true, interrupt_signal()).await.map_err(Error::from)?;
            let kubeconfig = p.kubeconfig.map(|k| k.display().to_string()).unwrap_or_default();
            println!("{name}\tup\t{image}\t{kubeconfig}");
        }
        Action::Down if exists => {
            provision::delete_kind(name).await.map_err(Error::from)?;
            println!("{name}\tdeleted");
        }
        Action::Down => println!("{name}\tnot found"),
        Action::Status if exists => {
            let kubeconfig = provision::kind_kubeconfig(name);
            let reachable = Cluster::connect(Some(&kubeconfig), Some(&format!("kind-{name}"))).await;
            let state = reachable
                .map(|c| format!("Kubernetes {}", c.server_version))
                .unwrap_or_else(|e| format!("unreachable: {e}"));
            println!("{name}\tup\t{image}\t{state}");
        }
        Action::Status => println!("{name}\tabsent\t{image}"),
    }
    Ok(())
}
