//! One HTTP GET, for version listings and schema locations; `file://` URLs are read from disk,
//! so a mirror works without a server.

use std::time::Duration;

pub struct Response {
    pub status: u16,
    /// The `WWW-Authenticate` challenge, for registries that want a token.
    pub authenticate: Option<String>,
    pub body: String,
}

/// A GET that brought no answer (any status is an answer, not an error).
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("GET {url}: {source}")]
    Request {
        url: String,
        #[source]
        source: ureq::Error,
    },
}

/// A blocking GET with an optional bearer token; any status is an answer, not an error.
pub fn get(url: &str, bearer: Option<&str>) -> Result<Response, HttpError> {
    if let Some(path) = url.strip_prefix("file://") {
        return match std::fs::read_to_string(path) {
            Ok(body) => Ok(Response { status: 200, authenticate: None, body }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(Response { status: 404, authenticate: None, body: String::new() })
            }
            Err(source) => Err(HttpError::File { path: path.to_string(), source }),
        };
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut request = agent.get(url);
    if let Some(token) = bearer {
        request = request.header("Authorization", &format!("Bearer {token}"));
    }
    let failed = |source| HttpError::Request { url: url.to_string(), source };
    let mut response = request.call().map_err(failed)?;
    let authenticate = response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).map(str::to_string);
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().map_err(failed)?;
    Ok(Response { status, authenticate, body })
}
