//! A kubeconfig for a program kubevet runs against the case's namespace (a notebook): only the
//! context kubevet uses, with that namespace set, since kubectl and the kubeflow SDK take their
//! namespace from the current context.

use kube::config::Kubeconfig;

use super::Cluster;

#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("reading the kubeconfig: {0}")]
    Read(#[from] kube::config::KubeconfigError),
    #[error("the kubeconfig has no context {0:?}")]
    NoSuchContext(String),
    #[error("the kubeconfig names no current context, and none was given (--context)")]
    NoContext,
    #[error("writing the kubeconfig: {0}")]
    Write(#[from] serde_json::Error),
}

impl Cluster {
    /// This cluster's context alone (its cluster and user with it), the namespace set, as JSON
    /// (which kubectl and every client read as YAML).
    pub fn kubeconfig_in(&self, namespace: &str) -> Result<String, KubeconfigError> {
        let file = match &self.kubeconfig {
            Some(path) => Kubeconfig::read_from(path)?,
            None => Kubeconfig::read()?,
        };
        let name = self.context.clone().or_else(|| file.current_context.clone()).ok_or(KubeconfigError::NoContext)?;
        let mut context = file
            .contexts
            .iter()
            .find(|c| c.name == name)
            .cloned()
            .ok_or_else(|| KubeconfigError::NoSuchContext(name.clone()))?;
        let (cluster, user) = match context.context.as_mut() {
            Some(c) => {
                c.namespace = Some(namespace.to_string());
                (c.cluster.clone(), c.user.clone())
            }
            None => return Err(KubeconfigError::NoSuchContext(name)),
        };
        let only = Kubeconfig {
            clusters: file.clusters.into_iter().filter(|c| c.name == cluster).collect(),
            auth_infos: file.auth_infos.into_iter().filter(|u| Some(&u.name) == user.as_ref()).collect(),
            contexts: vec![context],
            current_context: Some(name),
            api_version: Some("v1".into()),
            kind: Some("Config".into()),
            ..Kubeconfig::default()
        };
        Ok(serde_json::to_string_pretty(&only)?)
    }
}
