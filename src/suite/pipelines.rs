//! The suite's `pipelines:` section: where the Kubeflow Pipelines API is (by default the
//! `ml-pipeline` service in namespace `kubeflow`, through the Kubernetes API server's service
//! proxy; or an `endpoint` URL with a bearer token from an environment variable), which
//! Python pipeline files are compiled into cases, and which pipelines already living in KFP
//! are cases at a floating (`latest`) or pinned version.

use std::{collections::BTreeMap, path::Path};

use globset::GlobMatcher;
use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::Spanned;

use super::Expect;
use crate::util::{
    duration::Dur,
    error::{Error, Result},
};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct PipelinesFile {
    endpoint: Option<Spanned<String>>,
    token_env: Option<String>,
    token_file: Option<Spanned<String>>,
    namespace: Option<String>,
    service_namespace: Option<String>,
    service: Option<String>,
    experiment: Option<String>,
    user: Option<String>,
    user_header: Option<String>,
    caching: Option<Caching>,
    state_lag: Option<Dur>,
    #[serde(default)]
    compile: Vec<Spanned<String>>,
    #[serde(default)]
    existing: Vec<Spanned<ExistingFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ExistingFile {
    name: String,
    version: Option<String>,
    #[serde(default)]
    parameters: BTreeMap<String, Value>,
    timeout: Option<Dur>,
    expect: Option<Expect>,
    tier: Option<String>,
}

/// `caching: true` (every pipeline) or a list of globs (the pipelines it matches).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Caching {
    All(bool),
    Some(Vec<Spanned<String>>),
}

/// Where KFP's API is reached.
#[derive(Debug, Clone, PartialEq)]
pub enum KfpAccess {
    /// `/api/v1/namespaces/{namespace}/services/{service}/proxy` on the cell's cluster.
    ServiceProxy { service: String },
    /// A URL of its own; the bearer token, when given, is read from this environment variable
    /// or file (KFP checks it by TokenReview, audience `pipelines.kubeflow.org`).
    Endpoint { url: String, token: Option<TokenSource> },
}

/// Where a bearer token for KFP comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenSource {
    Env(String),
    File(std::path::PathBuf),
}

/// Who kubevet is to a multi-user KFP: the header (`kubeflow-userid` by default) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub header: String,
    pub user: String,
}

/// A pipeline that already lives in KFP, run as a case.
#[derive(Debug, Clone)]
pub struct ExistingPipeline {
    pub name: String,
    /// `latest` (the newest version, resolved at every run) or a version name, used as written.
    pub version: String,
    pub parameters: BTreeMap<String, Value>,
    pub timeout: Option<Dur>,
    pub expect: Option<Expect>,
    pub tier: Option<String>,
    /// Where the suite lists it.
    pub line: u64,
}

#[derive(Debug, Clone)]
pub struct PipelineSettings {
    pub access: KfpAccess,
    /// Where runs live: their experiments, Workflows and task pods (`kubeflow` standalone, the
    /// user's profile namespace in multi-user mode). Defaults to `service_namespace`.
    pub namespace: String,
    /// Where the `ml-pipeline` service is (`kubeflow`), for the service proxy.
    pub service_namespace: String,
    /// Sent with every request when given (multi-user KFP).
    pub identity: Option<Identity>,
    /// Pipelines run with KFP's cache on as compiled (else every task's cache is turned off
    /// before upload, so each case really executes).
    pub caching: Vec<GlobMatcher>,
    pub caching_all: bool,
    /// How long KFP's run state may lag the Workflow's end before the Workflow decides.
    pub state_lag: Dur,
    /// The experiment runs are made in; by default named after the suite.
    pub experiment: Option<String>,
    /// Python pipeline files compiled into cases with the KFP SDK.
    pub compile: Vec<GlobMatcher>,
    pub existing: Vec<ExistingPipeline>,
}

/// KFP's persistence agent resyncs every 30 s with 2 workers and backs off up to 360 s: 3 min
/// covers a loaded agent's usual lag without making a lost report wait forever.
pub const DEFAULT_STATE_LAG: std::time::Duration = std::time::Duration::from_secs(180);

impl PipelineSettings {
    /// Whether a pipeline file (relative to the suite) keeps KFP's cache on.
    pub fn caching_for(&self, rel: &str) -> bool {
        self.caching_all || self.caching.iter().any(|g| g.is_match(rel))
    }
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            access: KfpAccess::ServiceProxy { service: "ml-pipeline:http".into() },
            namespace: "kubeflow".into(),
            service_namespace: "kubeflow".into(),
            identity: None,
            caching: Vec::new(),
            caching_all: false,
            state_lag: Dur(DEFAULT_STATE_LAG),
            experiment: None,
            compile: Vec::new(),
            existing: Vec::new(),
        }
    }
}

/// The section, its globs read by the suite's own reader (`glob`).
pub(super) fn load(
    path: &Path,
    file: &PipelinesFile,
    glob: impl Fn(&Spanned<String>) -> Result<GlobMatcher>,
) -> Result<PipelineSettings> {
    let at = |s: &serde_saphyr::Location, msg: String| Error::input(path, s.line(), s.column(), msg);
    let access = match &file.endpoint {
        Some(url) => {
            if !(url.value.starts_with("http://") || url.value.starts_with("https://")) {
                return Err(at(&url.referenced, format!("endpoint {:?} is not an http(s) URL", url.value))
                    .with_hint("write the KFP API's base URL, like `endpoint: https://kfp.example.com/pipeline`"));
            }
            let token = match (&file.token_env, &file.token_file) {
                (Some(_), Some(f)) => {
                    return Err(at(
                        &f.referenced,
                        "tokenEnv and tokenFile both given: the token comes from one".into(),
                    ));
                }
                (Some(var), None) => Some(TokenSource::Env(var.clone())),
                (None, Some(f)) => Some(TokenSource::File(path.parent().unwrap_or(Path::new(".")).join(&f.value))),
                (None, None) => None,
            };
            KfpAccess::Endpoint { url: url.value.trim_end_matches('/').to_string(), token }
        }
        None => {
            if let Some(f) = &file.token_file {
                return Err(at(&f.referenced, "tokenFile needs an endpoint: through the Kubernetes API server's service proxy KFP never sees a bearer token".into())
                    .with_hint("give `endpoint:` too, or send the user's identity with `user:` (header kubeflow-userid)"));
            }
            KfpAccess::ServiceProxy { service: file.service.clone().unwrap_or_else(|| "ml-pipeline:http".into()) }
        }
    };
    let (caching_all, caching) = match &file.caching {
        None => (false, Vec::new()),
        Some(Caching::All(all)) => (*all, Vec::new()),
        Some(Caching::Some(globs)) => (false, globs.iter().map(&glob).collect::<Result<_>>()?),
    };
    let service_namespace = file.service_namespace.clone().unwrap_or_else(|| "kubeflow".into());
    let identity = file
        .user
        .clone()
        .map(|user| Identity { header: file.user_header.clone().unwrap_or_else(|| "kubeflow-userid".into()), user });
    let compile = file.compile.iter().map(&glob).collect::<Result<_>>()?;
    let mut existing = Vec::new();
    for e in &file.existing {
        if existing.iter().any(|x: &ExistingPipeline| x.name == e.value.name) {
            return Err(at(&e.referenced, format!("pipeline {:?} is listed twice", e.value.name)));
        }
        existing.push(ExistingPipeline {
            name: e.value.name.clone(),
            version: e.value.version.clone().unwrap_or_else(|| "latest".into()),
            parameters: e.value.parameters.clone(),
            timeout: e.value.timeout,
            expect: e.value.expect,
            tier: e.value.tier.clone(),
            line: e.referenced.line(),
        });
    }
    Ok(PipelineSettings {
        access,
        namespace: file.namespace.clone().unwrap_or_else(|| service_namespace.clone()),
        service_namespace,
        identity,
        caching,
        caching_all,
        state_lag: file.state_lag.unwrap_or(Dur(DEFAULT_STATE_LAG)),
        experiment: file.experiment.clone(),
        compile,
        existing,
    })
}
