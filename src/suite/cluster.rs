//! The suite's `cluster:`: which provider gives each cell of the Kubernetes-version matrix its
//! cluster, and that provider's settings.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use crate::util::error::{Error, Result};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct ClusterFile {
    provider: Option<Spanned<String>>,
    #[serde(default)]
    kubernetes_versions: Vec<String>,
    name: Option<String>,
    kind_config: Option<Spanned<String>>,
    #[serde(default)]
    node_images: BTreeMap<String, String>,
    kubeconfig: Option<String>,
    context: Option<String>,
    load_images: Option<Spanned<String>>,
    module: Option<Spanned<String>>,
    image: Option<String>,
}

/// Which cluster the cases run on (also `--provider` on the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Provider {
    /// One KinD cluster per Kubernetes version, created (or reused) and deleted by kubevet.
    Kind,
    /// A cluster kubevet neither creates nor deletes.
    Existing,
    /// A control plane in a container, through testcontainers (K3s or KWOK), per version.
    Container,
}

impl Provider {
    pub fn parse(text: &str) -> Option<Provider> {
        match text {
            "kind" => Some(Provider::Kind),
            "existing" => Some(Provider::Existing),
            "container" => Some(Provider::Container),
            _ => None,
        }
    }
}

/// The testcontainers module a `container` cluster comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerModule {
    /// KWOK: an API server and controllers, pods played by a fake kubelet; plain HTTP.
    Kwok,
    /// K3s: a real single-node cluster (needs a privileged container).
    K3s,
}

/// The suite's `cluster:` section; the command line may override each field.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub provider: Provider,
    /// One cell of the matrix each (kind).
    pub kubernetes_versions: Vec<String>,
    /// The kind cluster name, suffixed with the version.
    pub name: String,
    pub kind_config: Option<PathBuf>,
    /// Version → node image, over kubevet's table.
    pub node_images: BTreeMap<String, String>,
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    /// For an existing cluster: the kind cluster to load built images into.
    pub load_images_into_kind: Option<String>,
    pub container_module: ContainerModule,
    /// The container provider's image (`name:tag`), over the one derived from the version.
    pub image: Option<String>,
}

/// The `cluster:` section, resolved against the suite's folder.
pub(super) fn load(path: &Path, base: &Path, c: &ClusterFile) -> Result<ClusterSettings> {
    let at = |loc: &Location, msg: String| Error::input(path, loc.line(), loc.column(), msg);
    let provider = match &c.provider {
        None => Provider::Existing,
        Some(p) => Provider::parse(&p.value).ok_or_else(|| {
            at(&p.referenced, format!("unknown cluster provider {:?}; providers: kind, existing, container", p.value))
        })?,
    };
    let load_images_into_kind = match &c.load_images {
        None => None,
        Some(l) => Some(
            l.value
                .strip_prefix("kind:")
                .filter(|n| !n.is_empty())
                .ok_or_else(|| at(&l.referenced, format!("loadImages {:?}: expected kind:<cluster name>", l.value)))?
                .to_string(),
        ),
    };
    let container_module = match &c.module {
        None => ContainerModule::Kwok,
        Some(m) => match m.value.as_str() {
            "kwok" => ContainerModule::Kwok,
            "k3s" => ContainerModule::K3s,
            other => return Err(at(&m.referenced, format!("unknown container module {other:?}; modules: kwok, k3s"))),
        },
    };
    let kind_config = match &c.kind_config {
        None => None,
        Some(k) => {
            let file = base.join(&k.value);
            if !file.is_file() {
                return Err(at(&k.referenced, format!("kind config {} does not exist", file.display())));
            }
            Some(file)
        }
    };
    Ok(ClusterSettings {
        provider,
        kubernetes_versions: c.kubernetes_versions.clone(),
        name: c.name.clone().unwrap_or_else(|| "kubevet".into()),
        kind_config,
        node_images: c.node_images.clone(),
        kubeconfig: c.kubeconfig.as_ref().map(|k| base.join(k)),
        context: c.context.clone(),
        load_images_into_kind,
        container_module,
        image: c.image.clone(),
    })
}
