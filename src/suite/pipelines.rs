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
    namespace: Option<String>,
    service: Option<String>,
    experiment: Option<String>,
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

/// Where KFP's API is reached.
#[derive(Debug, Clone, PartialEq)]
pub enum KfpAccess {
    /// `/api/v1/namespaces/{namespace}/services/{service}/proxy` on the cell's cluster.
    ServiceProxy { service: String },
    /// A URL of its own; the token, when given, is read from this environment variable.
    Endpoint { url: String, token_env: Option<String> },
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
    /// KFP's namespace: where its Workflows and task pods are (and, in multi-user mode, the
    /// profile namespace runs and experiments belong to).
    pub namespace: String,
    /// The experiment runs are made in; by default named after the suite.
    pub experiment: Option<String>,
    /// Python pipeline files compiled into cases with the KFP SDK.
    pub compile: Vec<GlobMatcher>,
    pub existing: Vec<ExistingPipeline>,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            access: KfpAccess::ServiceProxy { service: "ml-pipeline:http".into() },
            namespace: "kubeflow".into(),
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
            KfpAccess::Endpoint { url: url.value.trim_end_matches('/').to_string(), token_env: file.token_env.clone() }
        }
        None => KfpAccess::ServiceProxy { service: file.service.clone().unwrap_or_else(|| "ml-pipeline:http".into()) },
    };
    let compile = file.compile.iter().map(glob).collect::<Result<_>>()?;
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
        namespace: file.namespace.clone().unwrap_or_else(|| "kubeflow".into()),
        experiment: file.experiment.clone(),
        compile,
        existing,
    })
}
