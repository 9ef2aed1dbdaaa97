//! Inside pods: a command run through the API server (both pipes drained side by side),
//! containers' logs, and the namespace's events.

use k8s_openapi::api::core::v1::Event;
use kube::{
    Api,
    api::{ListParams, LogParams},
};

use super::{ApiError, Cluster};

impl Cluster {
    /// Runs a command in a container of a pod through the API server: its exit code (None
    /// when the server gave no status) and its output, standard error after standard output.
    pub async fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        command: &[String],
    ) -> Result<(Option<i32>, String), ApiError> {
        use crate::util::command::drain;
        use kube::api::AttachParams;
        let mut params = AttachParams::default().stdout(true).stderr(true).stdin(false);
        if let Some(c) = container {
            params = params.container(c);
        }
        let what = format!("exec in pod {pod}");
        let mut attached =
            self.pods(namespace).exec(pod, command.to_vec(), &params).await.map_err(|e| ApiError::new(&what, &e))?;
        // Both pipes are drained side by side: each holds about 1 KiB, so reading one to its
        // end first would block a command that fills the other.
        let (mut out, err) = tokio::join!(drain(attached.stdout()), drain(attached.stderr()));
        let status = match attached.take_status() {
            Some(status) => status.await,
            None => None,
        };
        let _ = attached.join().await;
        let code = status.map(|s| match s.status.as_deref() {
            Some("Success") => 0,
            _ => s
                .details
                .and_then(|d| d.causes)
                .into_iter()
                .flatten()
                .find(|c| c.reason.as_deref() == Some("ExitCode"))
                .and_then(|c| c.message)
                .and_then(|m| m.parse().ok())
                .unwrap_or(-1),
        });
        out.push_str(&err);
        Ok((code, out))
    }

    pub async fn logs(&self, namespace: &str, pod: &str, container: &str, previous: bool) -> Result<String, ApiError> {
        let params = LogParams { container: Some(container.into()), previous, ..Default::default() };
        self.pods(namespace).logs(pod, &params).await.map_err(|e| ApiError::new("", &e))
    }

    pub async fn events(&self, namespace: &str) -> Result<Vec<Event>, ApiError> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        api.list(&ListParams::default()).await.map(|l| l.items).map_err(|e| ApiError::new("", &e))
    }
}
