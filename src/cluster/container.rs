//! A control plane in a container per Kubernetes version, through testcontainers' K3s and
//! KWOK modules (cargo feature `container`, on by default). Without the feature the provider
//! is still read from suites, and asking for it says how to get a kubevet that has it.

/// Why the control plane container could not be had (or removed).
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// testcontainers could not start it, or remove it.
    #[error("{what}: {source}")]
    Docker {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    File(#[from] crate::util::files::FileError),
    #[error(
        "this kubevet was built without the container provider: install it with its default features (cargo install kubevet), or use provider kind or existing"
    )]
    NotBuiltIn,
}

#[cfg(feature = "container")]
mod enabled {
    use testcontainers_modules::{
        k3s::{K3s, KUBE_SECURE_PORT},
        kwok::{KWOK_CLUSTER_PORT, KwokCluster},
        testcontainers::{
            ContainerAsync, ContainerRequest, Image, ImageExt,
            bollard::{Docker, query_parameters::RemoveContainerOptionsBuilder},
            runners::AsyncRunner,
        },
    };

    use super::ContainerError;
    use crate::{suite::ContainerModule, util::files::FileError};

    /// A control plane container; removed when the cell ends.
    pub enum Container {
        Kwok(ContainerAsync<KwokCluster>),
        K3s(ContainerAsync<K3s>),
    }

    impl Container {
        pub async fn remove(self) -> Result<(), ContainerError> {
            match self {
                Container::Kwok(c) => c.rm().await,
                Container::K3s(c) => c.rm().await,
            }
            .map_err(|e| ContainerError::Docker { what: "removing the cluster container".into(), source: e.into() })
        }
    }

    /// Starts the cell's control plane container and writes a kubeconfig for its mapped port.
    /// testcontainers waits for the module's ready line; the container goes when the cell ends.
    pub async fn up(module: ContainerModule, image: &str) -> Result<(Container, std::path::PathBuf), ContainerError> {
        let (name, tag) = match image.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name, tag),
            _ => (image, "latest"),
        };
        let failed = |e: testcontainers_modules::testcontainers::TestcontainersError| ContainerError::Docker {
            what: format!("starting {image}"),
            source: e.into(),
        };
        let dir = crate::util::files::cache_dir().join("container");
        std::fs::create_dir_all(&dir).map_err(|e| FileError::write(&dir, e))?;
        let startup = std::time::Duration::from_secs(300);
        tracing::info!(image = %image, "starting a control plane container");
        let (container, kubeconfig_text, id) = match module {
            ContainerModule::Kwok => {
                let c =
                    start(KwokCluster::default().with_name(name).with_tag(tag).with_startup_timeout(startup), image)
                        .await?;
                let port = c.get_host_port_ipv4(KWOK_CLUSTER_PORT).await.map_err(failed)?;
                let config = format!(
                    "apiVersion: v1\nkind: Config\nclusters: [{{name: kwok, cluster: {{server: \"http://127.0.0.1:{port}\"}}}}]\nusers: [{{name: kwok, user: {{}}}}]\ncontexts: [{{name: kwok, context: {{cluster: kwok, user: kwok}}}}]\ncurrent-context: kwok\n"
                );
                let id = c.id().to_string();
                (Container::Kwok(c), config, id)
            }
            ContainerModule::K3s => {
                let conf = dir.join(format!("k3s-{}", crate::util::ids::random_hex(8)));
                std::fs::create_dir_all(&conf).map_err(|e| FileError::write(&conf, e))?;
                let k3s = K3s::default().with_conf_mount(&conf);
                let c = k3s.with_name(name).with_tag(tag).with_privileged(true).with_userns_mode("host");
                let c = start(c.with_startup_timeout(startup), image).await?;
                let port = c.get_host_port_ipv4(KUBE_SECURE_PORT).await.map_err(failed)?;
                let file = conf.join("k3s.yaml");
                let config = std::fs::read_to_string(&file).map_err(|e| FileError::read(&file, e))?;
                let id = c.id().to_string();
                (Container::K3s(c), config.replace("https://127.0.0.1:6443", &format!("https://127.0.0.1:{port}")), id)
            }
        };
        let kubeconfig = dir.join(format!("{}.kubeconfig", &id[..12.min(id.len())]));
        crate::util::files::write_atomically(&kubeconfig, kubeconfig_text.as_bytes())
            .map_err(|e| FileError::write(&kubeconfig, e))?;
        Ok((container, kubeconfig))
    }

    /// Starts a container under a name of kubevet's: one that was created but did not start is not
    /// testcontainers' to remove, so kubevet removes it by that name.
    async fn start<I: Image>(request: ContainerRequest<I>, image: &str) -> Result<ContainerAsync<I>, ContainerError> {
        let name = format!("kubevet-{}", crate::util::ids::random_hex(8));
        match request.with_container_name(&name).start().await {
            Ok(container) => Ok(container),
            Err(e) => {
                if let Ok(docker) = Docker::connect_with_defaults() {
                    let force = RemoveContainerOptionsBuilder::new().force(true).build();
                    let _ = docker.remove_container(&name, Some(force)).await;
                }
                Err(ContainerError::Docker { what: format!("starting {image}"), source: e.into() })
            }
        }
    }
}

#[cfg(feature = "container")]
pub use enabled::{Container, up};

#[cfg(not(feature = "container"))]
mod disabled {
    use super::ContainerError;
    use crate::suite::ContainerModule;

    /// No container can exist without the feature.
    pub enum Container {}

    impl Container {
        pub async fn remove(self) -> Result<(), ContainerError> {
            match self {}
        }
    }

    pub async fn up(_module: ContainerModule, _image: &str) -> Result<(Container, std::path::PathBuf), ContainerError> {
        Err(ContainerError::NotBuiltIn)
    }
}

#[cfg(not(feature = "container"))]
pub use disabled::{Container, up};
