//! Reading what nodes and pods serve over HTTP, through the API server's proxy: the kubelet's
//! metrics and stats. No port-forward and no kube-proxy are needed (the API server dials the
//! node itself), and every request passes the retry layer and is counted like any other.

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::{Api, api::ListParams};

use super::{ApiError, Cluster};

/// How long one scrape may take: a kubelet that does not answer by then is skipped this round.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

impl Cluster {
    /// The names of the cluster's nodes.
    pub async fn node_names(&self) -> Result<Vec<String>, ApiError> {
        let api: Api<Node> = Api::all(self.client.clone());
        let nodes = api.list(&ListParams::default()).await.map_err(|e| ApiError::new("listing nodes", &e))?;
        Ok(nodes.items.into_iter().filter_map(|n| n.metadata.name).collect())
    }

    /// What the kubelet of `node` serves at `path` (`metrics/resource`, `metrics/cadvisor`,
    /// `stats/summary`), through the node proxy (`nodes/proxy` get).
    pub async fn kubelet_text(&self, node: &str, path: &str) -> Result<String, ApiError> {
        self.proxied_text(&format!("/api/v1/nodes/{node}/proxy/{path}")).await
    }

    /// What the API server's proxy path `uri` (a service's, a pod's or a node's) answers.
    pub async fn proxied_text(&self, uri: &str) -> Result<String, ApiError> {
        self.proxied_text_within(uri, SCRAPE_TIMEOUT).await
    }

    /// The same, given up (retries and all) after `limit`.
    pub async fn proxied_text_within(&self, uri: &str, limit: Duration) -> Result<String, ApiError> {
        let request = http::Request::get(uri)
            .body(Vec::new())
            .map_err(|e| ApiError::rejected(format!("requesting {uri}: {e}")))?;
        match tokio::time::timeout(limit, self.client.request_text(request)).await {
            Ok(answer) => answer.map_err(|e| ApiError::new(&format!("reading {uri}"), &e)),
            Err(_) => Err(ApiError::rejected(format!("reading {uri}: no answer within {limit:?}"))),
        }
    }
}
