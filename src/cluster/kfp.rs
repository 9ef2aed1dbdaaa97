//! The Kubeflow Pipelines API (v2beta1), reached through the cell's Kubernetes API server's
//! service proxy (the default: no port-forward, works on kind) or at an endpoint of its own.
//! Either way every request passes kubevet's retry and counting layer, and is counted here
//! too: a pipeline case's cost in KFP requests is part of what a run reports.

use std::sync::atomic::{AtomicU64, Ordering};

use http::{Method, Request, header};
use serde_json::Value;

use super::{Cluster, describe, retry::RetryLayer};
use crate::suite::pipelines::{Identity, KfpAccess, PipelineSettings, TokenSource};

/// A failed KFP request: the HTTP status when KFP (or the proxy) answered, and its message.
/// None when no answer came, or KFP could not be reached the way the suite says.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}{message}", status.map(|s| format!("HTTP {s}: ")).unwrap_or_default())]
pub struct KfpError {
    pub status: Option<u16>,
    pub message: String,
}

impl KfpError {
    /// KFP cannot be reached as the suite's `pipelines:` says.
    fn settings(message: String) -> KfpError {
        KfpError { status: None, message }
    }
}

pub struct Kfp {
    client: kube::Client,
    /// Path prefix of every request (the service proxy's), empty for an endpoint.
    base: String,
    token: Option<String>,
    /// The user a multi-user KFP is told kubevet acts for.
    pub identity: Option<Identity>,
    /// What was tried, in the user's terms, for errors.
    pub shown: String,
    /// KFP's namespace (its Workflows and task pods are there).
    pub namespace: String,
    requests: AtomicU64,
}

/// Percent-encodes a query value (everything but RFC 3986's unreserved characters).
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// KFP's list filter for `key == value`, encoded for a query string. KFP's server decodes a
/// filter twice (the HTTP layer, then its own `url.QueryUnescape`), so it is encoded twice:
/// a `+`, `%` or space in a name then reaches the filter as written.
pub fn filter_equals(key: &str, value: &str) -> String {
    let filter = serde_json::json!({"predicates": [{"key": key, "operation": "EQUALS", "string_value": value}]});
    encode(&encode(&filter.to_string()))
}

impl Cluster {
    /// The KFP API as the suite's `pipelines:` says to reach it.
    pub fn kfp(&self, settings: &PipelineSettings) -> Result<Kfp, KfpError> {
        let (client, base, token, shown) = match &settings.access {
            KfpAccess::ServiceProxy { service } => (
                self.client.clone(),
                format!("/api/v1/namespaces/{}/services/{service}/proxy", settings.service_namespace),
                None,
                format!(
                    "service {service} in namespace {} through the Kubernetes API server's service proxy",
                    settings.service_namespace
                ),
            ),
            KfpAccess::Endpoint { url, token } => {
                let uri: http::Uri =
                    url.parse().map_err(|e| KfpError::settings(format!("KFP endpoint {url:?}: {e}")))?;
                let mut config = kube::Config::new(uri);
                config.default_retry = false;
                let client = kube::client::ClientBuilder::try_from(config)
                    .map_err(|e| KfpError::settings(format!("KFP endpoint {url}: {e}")))?
                    .with_layer(&RetryLayer { policy: self.policy, stats: self.stats.clone() })
                    .build();
                let token = token.as_ref().map(read_token).transpose()?;
                (client, String::new(), token, format!("endpoint {url}"))
            }
        };
        Ok(Kfp {
            client,
            base,
            token,
            identity: settings.identity.clone(),
            shown,
            namespace: settings.namespace.clone(),
            requests: AtomicU64::new(0),
        })
    }
}

/// The bearer token, from the environment or a file (a projected service-account token is
/// refreshed in place, so it is read when the cell starts).
fn read_token(source: &TokenSource) -> Result<String, KfpError> {
    match source {
        TokenSource::Env(var) => std::env::var(var).map_err(|_| {
            KfpError::settings(format!("the KFP token's environment variable {var} is not set (pipelines.tokenEnv)"))
        }),
        TokenSource::File(path) => std::fs::read_to_string(path).map(|t| t.trim().to_string()).map_err(|e| {
            KfpError::settings(format!(
                "the KFP token file {} cannot be read (pipelines.tokenFile): {e}",
                path.display()
            ))
        }),
    }
}

impl Kfp {
    /// Whether requests carry a bearer token.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// KFP requests sent so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<String>,
        body: Vec<u8>,
    ) -> Result<Value, KfpError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut request = Request::builder().method(method.clone()).uri(format!("{}{path}", self.base));
        if let Some(ct) = content_type {
            request = request.header(header::CONTENT_TYPE, ct);
        }
        if let Some(token) = &self.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(identity) = &self.identity {
            request = request.header(identity.header.as_str(), identity.user.as_str());
        }
        let request = request.body(body).map_err(|e| KfpError { status: None, message: e.to_string() })?;
        // The raw answer, not kube's error parsing: KFP's error bodies carry a gRPC `code`
        // that kube would take for the HTTP status.
        let response = self
            .client
            .send(request.map(kube::client::Body::from))
            .await
            .map_err(|e| KfpError { status: None, message: describe(&e) })?;
        let status = response.status().as_u16();
        let bytes = http_body_util::BodyExt::collect(response.into_body())
            .await
            .map_err(|e| KfpError { status: Some(status), message: format!("reading the answer: {e}") })?
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes);
        if !(200..300).contains(&status) {
            return Err(KfpError { status: Some(status), message: kfp_message(&text) });
        }
        if text.trim().is_empty() {
            return Ok(Value::Object(Default::default()));
        }
        serde_json::from_str(&text).map_err(|e| KfpError {
            status: None,
            message: format!(
                "{method} {path}: the answer is not JSON ({e}): {}",
                text.chars().take(200).collect::<String>()
            ),
        })
    }

    pub async fn get(&self, path: &str) -> Result<Value, KfpError> {
        self.send(Method::GET, path, None, Vec::new()).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, KfpError> {
        self.send(Method::POST, path, Some("application/json".into()), body.to_string().into_bytes()).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, KfpError> {
        self.send(Method::DELETE, path, None, Vec::new()).await
    }

    /// A multipart upload of a compiled pipeline as field `uploadfile` (KFP's upload endpoints).
    pub async fn upload(&self, path: &str, file_name: &str, content: &str) -> Result<Value, KfpError> {
        let boundary = format!("kubevet-{}", crate::util::ids::random_hex(12));
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"uploadfile\"; filename=\"{file_name}\"\r\nContent-Type: application/x-yaml\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(content.as_bytes());
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        self.send(Method::POST, path, Some(format!("multipart/form-data; boundary={boundary}")), body).await
    }
}

/// The message of a KFP error body (`{code, message}` from its gateway, `{error_message}` from
/// its upload handlers), or the text as it came.
fn kfp_message(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("message").or_else(|| v.get("error_message")).and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| text.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_encoded_for_a_query() {
        assert_eq!(encode("a b+c/é"), "a%20b%2Bc%2F%C3%A9");
        let f = filter_equals("name", "a+b%c d");
        assert!(f.starts_with("%257B%2522predicates%2522"), "encoded twice: {f}");
        assert!(f.contains("a%252Bb%2525c%2520d"), "{f}");
    }

    #[test]
    fn messages_come_from_either_error_shape() {
        assert_eq!(kfp_message(r#"{"code":5,"message":"not found","details":[]}"#), "not found");
        assert_eq!(kfp_message(r#"{"error_message":"exists","error_details":"exists"}"#), "exists");
        assert_eq!(kfp_message("no endpoints available\n"), "no endpoints available");
    }
}
