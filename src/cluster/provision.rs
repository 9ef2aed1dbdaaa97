//! Clusters for a run: an existing one (a kubeconfig and context, never created or deleted
//! by kubevet), one KinD cluster per Kubernetes version of the matrix with its node image
//! pinned by digest (through the `kind` CLI), or a control plane in a container per version
//! (through testcontainers' K3s and KWOK modules), its kubeconfig pointed at the mapped port.

use std::path::{Path, PathBuf};

use tokio::sync::watch;

pub use super::container::{Container, ContainerError};

use crate::{
    suite::{ClusterSettings, ContainerModule, KustomizeTarget, Operator, Provider, Source},
    util::{
        command::{self, CommandError},
        files::FileError,
    },
};

/// The image testcontainers' KWOK module runs, per Kubernetes version (the module's own
/// default is `v0.5.2-k8s.v1.29.2`).
const KWOK_IMAGE: &str = "registry.k8s.io/kwok/cluster";
const KWOK_RELEASE: &str = "v0.5.2";
const K3S_IMAGE: &str = "rancher/k3s";

/// kindest/node images by Kubernetes version, from kind's release notes (the release that
/// built each is named): a node image is only supported with the kind release that built it,
/// so the digest is what is pinned. A suite's `nodeImages` overrides an entry or adds one.
pub const NODE_IMAGES: &[(&str, &str, &str)] = &[
    (
        "1.35.0",
        "kindest/node:v1.35.0@sha256:452d707d4862f52530247495d180205e029056831160e22870e37e3f6c1ac31f",
        "v0.31.0",
    ),
    (
        "1.34.0",
        "kindest/node:v1.34.0@sha256:7416a61b42b1662ca6ca89f02028ac133a309a2a30ba309614e8ec94d976dc5a",
        "v0.30.0",
    ),
    (
        "1.33.4",
        "kindest/node:v1.33.4@sha256:25a6018e48dfcaee478f4a59af81157a437f15e6e140bf103f85a2e7cd0cbbf2",
        "v0.30.0",
    ),
    (
        "1.32.8",
        "kindest/node:v1.32.8@sha256:abd489f042d2b644e2d033f5c2d900bc707798d075e8186cb65e3f1367a9d5a1",
        "v0.30.0",
    ),
    (
        "1.31.12",
        "kindest/node:v1.31.12@sha256:0f5cc49c5e73c0c2bb6e2df56e7df189240d83cf94edfa30946482eb08ec57d2",
        "v0.30.0",
    ),
    (
        "1.33.1",
        "kindest/node:v1.33.1@sha256:050072256b9a903bd914c0b2866828150cb229cea0efe5892e2b644d5dd3b34f",
        "v0.29.0",
    ),
    (
        "1.32.5",
        "kindest/node:v1.32.5@sha256:e3b2327e3a5ab8c76f5ece68936e4cafaa82edf58486b769727ab0b3b97a5b0d",
        "v0.29.0",
    ),
    (
        "1.31.9",
        "kindest/node:v1.31.9@sha256:b94a3a6c06198d17f59cca8c6f486236fa05e2fb359cbd75dabbfc348a10b211",
        "v0.29.0",
    ),
    (
        "1.30.13",
        "kindest/node:v1.30.13@sha256:397209b3d947d154f6641f2d0ce8d473732bd91c87d9575ade99049aa33cd648",
        "v0.29.0",
    ),
];

/// The node image for `version` ("1.33", "v1.33.4"): the suite's override, else the table's
/// exact entry, else its highest patch of that minor.
pub fn node_image(version: &str, settings: &ClusterSettings) -> Result<String, ProvisionError> {
    if let Some(image) = settings.node_images.get(version) {
        return Ok(image.clone());
    }
    let wanted = version.strip_prefix('v').unwrap_or(version);
    let patch = |v: &str| v.rsplit('.').next().and_then(|p| p.parse::<u32>().ok()).unwrap_or(0);
    NODE_IMAGES
        .iter()
        .filter(|(v, _, _)| *v == wanted || v.strip_prefix(wanted).is_some_and(|rest| rest.starts_with('.')))
        .max_by_key(|(v, _, _)| patch(v))
        .map(|(_, image, _)| image.to_string())
        .ok_or_else(|| {
            let known: Vec<&str> = NODE_IMAGES.iter().map(|(v, _, _)| *v).collect();
            ProvisionError::Settings(format!(
                "no kindest/node image for Kubernetes {version} in kubevet's table ({}); give one under cluster.nodeImages",
                known.join(", ")
            ))
        })
}

/// Why a cell's cluster could not be had (or let go).
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    File(#[from] FileError),
    /// What the suite asks for cannot be had this way: says what to write instead.
    #[error("{0}")]
    Settings(String),
    #[error(
        "a kind cluster named {name} exists already: pass --reuse to run on it, or delete it (kubevet cluster down)"
    )]
    Exists { name: String },
    #[error("interrupted while creating the cluster")]
    Interrupted,
    /// The cluster is there, but kubevet cannot reach it (its kubeconfig, its API server).
    #[error(transparent)]
    Connect(Box<crate::util::error::Error>),
    #[error(transparent)]
    Container(#[from] super::container::ContainerError),
}

impl From<ProvisionError> for crate::util::error::Error {
    /// The suite's settings are the user's to mend; everything else is the machine's.
    fn from(e: ProvisionError) -> Self {
        use crate::util::error::Error;
        match e {
            ProvisionError::Settings(_) | ProvisionError::Container(ContainerError::NotBuiltIn) => Error::usage_from(e),
            ProvisionError::Command(e) => e.into(),
            ProvisionError::Connect(e) => *e,
            other => Error::infrastructure_from(other),
        }
    }
}

/// One cell of the matrix: a Kubernetes version on its own cluster, or the one existing cluster.
#[derive(Debug, Clone)]
pub struct Cell {
    /// The version as the suite or `--k8s-version` gave it; none for an existing cluster.
    pub version: Option<String>,
    /// The kind node image or the container image the cluster runs.
    pub image: Option<String>,
    /// The kind cluster's name.
    pub kind_cluster: Option<String>,
}

impl Cell {
    /// The cell's name in reports and artifact folders.
    pub fn label(&self) -> Option<String> {
        self.version.as_ref().map(|v| format!("v{}", v.strip_prefix('v').unwrap_or(v)))
    }
}

/// The container image for `version`: the suite's `image`, else the module's image at a tag
/// made from the version, which must then be a full one (1.29.2).
fn container_image(settings: &ClusterSettings, version: &str) -> Result<String, ProvisionError> {
    let v = version.strip_prefix('v').unwrap_or(version);
    if v.split('.').count() != 3 {
        return Err(ProvisionError::Settings(format!(
            "the container provider needs full versions (like 1.29.2), not {version:?}"
        )));
    }
    Ok(match settings.container_module {
        ContainerModule::Kwok => format!("{KWOK_IMAGE}:{KWOK_RELEASE}-k8s.v{v}"),
        ContainerModule::K3s => format!("{K3S_IMAGE}:v{v}-k3s1"),
    })
}

/// The cells a run walks: every version of the suite, or only `only`.
pub fn cells(settings: &ClusterSettings, only: Option<&str>) -> Result<Vec<Cell>, ProvisionError> {
    let versions = || -> Result<Vec<String>, ProvisionError> {
        match only {
            Some(v) => Ok(vec![v.to_string()]),
            None if settings.kubernetes_versions.is_empty() => Err(ProvisionError::Settings(
                "cluster.kubernetesVersions is empty: name at least one version, or pass --k8s-version".into(),
            )),
            None => Ok(settings.kubernetes_versions.clone()),
        }
    };
    match settings.provider {
        Provider::Existing => Ok(vec![Cell { version: None, image: None, kind_cluster: None }]),
        Provider::Container if settings.image.is_some() && only.is_none() => {
            Ok(vec![Cell { version: None, image: settings.image.clone(), kind_cluster: None }])
        }
        Provider::Container => versions()?
            .into_iter()
            .map(|v| Ok(Cell { image: Some(container_image(settings, &v)?), kind_cluster: None, version: Some(v) }))
            .collect(),
        Provider::Kind => versions()?
            .into_iter()
            .map(|v| {
                let name = format!("{}-{}", settings.name, v.strip_prefix('v').unwrap_or(&v).replace('.', "-"));
                Ok(Cell { image: Some(node_image(&v, settings)?), kind_cluster: Some(name), version: Some(v) })
            })
            .collect(),
    }
}

/// A cluster ready for a cell.
pub struct Provisioned {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    /// The kind cluster to load images into and export logs from.
    pub kind_cluster: Option<String>,
    /// Created by this run and to be deleted at its end.
    pub delete_at_end: bool,
    pub container: Option<Container>,
}

/// Where kubevet keeps the kubeconfig of each kind cluster it manages, so that the user's
/// own kubeconfig is never edited.
pub fn kind_kubeconfig(cluster: &str) -> PathBuf {
    crate::util::files::cache_dir().join("kind").join(format!("{cluster}.kubeconfig"))
}

pub async fn kind_clusters() -> Result<Vec<String>, ProvisionError> {
    Ok(command::output("kind", &["get", "clusters"], None).await?.lines().map(str::to_string).collect())
}

/// The cell's cluster: the existing one, or a kind cluster created now (or found and kept
/// with `reuse`). An interrupt while kind creates it deletes what was made.
pub async fn up(
    settings: &ClusterSettings,
    cell: &Cell,
    reuse: bool,
    mut cancel: watch::Receiver<bool>,
) -> Result<Provisioned, ProvisionError> {
    if settings.provider == Provider::Container {
        let image = cell.image.as_deref().ok_or_else(|| ProvisionError::Settings("no container image".into()))?;
        let (container, kubeconfig) = super::container::up(settings.container_module, image).await?;
        return Ok(Provisioned {
            kubeconfig: Some(kubeconfig),
            context: None,
            kind_cluster: None,
            delete_at_end: true,
            container: Some(container),
        });
    }
    let (Some(name), Some(image)) = (&cell.kind_cluster, &cell.image) else {
        return Ok(Provisioned {
            kubeconfig: settings.kubeconfig.clone(),
            context: settings.context.clone(),
            kind_cluster: settings.load_images_into_kind.clone(),
            delete_at_end: false,
            container: None,
        });
    };
    let kubeconfig = kind_kubeconfig(name);
    let parent = kubeconfig.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| FileError::write(parent, e))?;
    let path = kubeconfig.to_string_lossy().into_owned();
    let provisioned = |delete_at_end| Provisioned {
        kubeconfig: Some(kubeconfig.clone()),
        context: Some(format!("kind-{name}")),
        kind_cluster: Some(name.clone()),
        delete_at_end,
        container: None,
    };
    if kind_clusters().await?.contains(name) {
        if !reuse {
            return Err(ProvisionError::Exists { name: name.clone() });
        }
        let config = command::output("kind", &["get", "kubeconfig", "--name", name], None).await?;
        crate::util::files::write_atomically(&kubeconfig, config.as_bytes())
            .map_err(|e| FileError::write(&kubeconfig, e))?;
        tracing::info!(cluster = %name, "reusing kind cluster");
        return Ok(provisioned(false));
    }
    let mut args = vec!["create", "cluster", "--name", name, "--image", image, "--kubeconfig", &path, "--wait", "5m"];
    let config = settings.kind_config.as_ref().map(|c| c.to_string_lossy().into_owned());
    if let Some(config) = &config {
        args.extend(["--config", config]);
    }
    tracing::info!(cluster = %name, image = %image, "creating kind cluster");
    let created = tokio::select! {
        r = command::output("kind", &args, None) => r.map(|_| ()).map_err(ProvisionError::from),
        _ = cancel.wait_for(|c| *c) => Err(ProvisionError::Interrupted),
    };
    if let Err(e) = created {
        // kind removes a cluster whose creation failed, but not one whose creation was killed.
        let _ = delete_kind(name).await;
        return Err(e);
    }
    Ok(provisioned(!reuse))
}

pub async fn delete_kind(name: &str) -> Result<(), ProvisionError> {
    command::output("kind", &["delete", "cluster", "--name", name], None).await?;
    let _ = std::fs::remove_file(kind_kubeconfig(name));
    Ok(())
}

/// Puts images built on the host into the cluster's nodes.
pub async fn load_images(cluster: &str, references: &[String]) -> Result<(), ProvisionError> {
    if references.is_empty() {
        return Ok(());
    }
    let mut args = vec!["load", "docker-image"];
    args.extend(references.iter().map(String::as_str));
    args.extend(["--name", cluster]);
    command::output("kind", &args, None).await?;
    Ok(())
}

/// The nodes' logs (kubelet, containerd, control plane) into `dir`.
pub async fn export_logs(cluster: &str, dir: &Path) -> Result<(), ProvisionError> {
    let dir = dir.to_string_lossy().into_owned();
    command::output("kind", &["export", "logs", &dir, "--name", cluster], None).await?;
    Ok(())
}

/// The programs a run with these settings needs, checked before anything is created.
pub fn tools(settings: &ClusterSettings, images: bool, operators: &[Operator]) -> Vec<&'static str> {
    let mut tools = Vec::new();
    if settings.provider == Provider::Kind || settings.load_images_into_kind.is_some() {
        tools.extend(["kind", "docker"]);
    }
    if images {
        tools.push("docker");
    }
    for op in operators {
        // kustomize fetches a remote target with git.
        if op.git.is_some() || matches!(op.source, Source::Kustomize { target: KustomizeTarget::Remote(_), .. }) {
            tools.push("git");
        }
        tools.push(match op.source {
            Source::Helm(_) => "helm",
            Source::Kustomize { .. } if !command::on_path("kubectl") && command::on_path("kustomize") => "kustomize",
            Source::Kustomize { .. } => "kubectl",
        });
    }
    tools.sort_unstable();
    tools.dedup();
    tools
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ClusterSettings {
        ClusterSettings {
            provider: Provider::Kind,
            kubernetes_versions: vec!["1.33".into(), "1.32.5".into()],
            name: "kv".into(),
            kind_config: None,
            node_images: [("1.30".to_string(), "example.com/node:1.30".to_string())].into(),
            kubeconfig: None,
            context: None,
            load_images_into_kind: None,
            container_module: ContainerModule::Kwok,
            image: None,
        }
    }

    #[test]
    fn node_images_are_pinned_by_digest_and_overridable() {
        let s = settings();
        assert!(node_image("1.33", &s).expect("known").starts_with("kindest/node:v1.33.4@sha256:"), "highest patch");
        assert!(node_image("v1.32.5", &s).expect("known").starts_with("kindest/node:v1.32.5@sha256:e3b2327e"));
        assert_eq!(node_image("1.30", &s).expect("override"), "example.com/node:1.30");
        assert!(node_image("1.3", &s).is_err(), "1.3 is not 1.30");
        assert!(node_image("1.29", &s).expect_err("unknown").to_string().contains("cluster.nodeImages"));
        for (version, image, _) in NODE_IMAGES {
            let (tag, digest) = image.split_once("@sha256:").expect("pinned by digest");
            assert_eq!(tag, format!("kindest/node:v{version}"));
            assert!(digest.len() == 64 && digest.chars().all(|c| c.is_ascii_hexdigit()), "{image}");
        }
    }

    #[test]
    fn cells_follow_the_matrix_or_one_version() {
        let s = settings();
        let all = cells(&s, None).expect("cells");
        assert_eq!(
            all.iter().map(|c| c.kind_cluster.clone().unwrap_or_default()).collect::<Vec<_>>(),
            ["kv-1-33", "kv-1-32-5"]
        );
        assert_eq!(all[0].label().as_deref(), Some("v1.33"));
        let one = cells(&s, Some("1.31")).expect("cells");
        assert_eq!(one.len(), 1);
        assert!(one[0].image.as_deref().unwrap_or("").starts_with("kindest/node:v1.31.12@"));
        let containers =
            ClusterSettings { provider: Provider::Container, kubernetes_versions: vec!["1.29.2".into()], ..s };
        let kwok = cells(&containers, None).expect("cells");
        assert_eq!(kwok[0].image.as_deref(), Some("registry.k8s.io/kwok/cluster:v0.5.2-k8s.v1.29.2"));
        assert!(cells(&containers, Some("1.29")).is_err(), "a tag needs a full version");
        let k3s = ClusterSettings { container_module: ContainerModule::K3s, ..containers.clone() };
        assert_eq!(cells(&k3s, None).expect("cells")[0].image.as_deref(), Some("rancher/k3s:v1.29.2-k3s1"));
        let pinned = ClusterSettings { image: Some("example.com/kwok:dev".into()), ..containers };
        let one = cells(&pinned, None).expect("cells");
        assert_eq!((one.len(), one[0].image.as_deref(), one[0].label()), (1, Some("example.com/kwok:dev"), None));
    }
}
