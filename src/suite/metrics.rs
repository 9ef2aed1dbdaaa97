//! Metric sources (`metrics.sources`: an operator's endpoint, reached through the API server's
//! service or pod proxy, or, without a namespace, the case's own workload's pods, read while
//! they run) and metric assertions (`metrics:` on a profile or an override): a
//! PromQL subset over the snapshot before a case and the one after its verdict
//! (`util::promql`). An assertion is parsed when the suite loads, so an unsupported function
//! is an input error at its position.

use std::{path::Path, sync::Arc};

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::util::{
    error::{Error, Result},
    promql::Assertion,
};

/// The name of the Kubeflow Training Operator v1's source, built in.
pub const TRAINING_OPERATOR: &str = "training-operator";
/// The name of Kubeflow Trainer v2's controller manager's source, built in.
pub const TRAINER: &str = "trainer";

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetricsFile {
    #[serde(default)]
    sources: Vec<SourceFile>,
    /// The built-in profiles' default assertions (on unless `false`).
    defaults: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SourceFile {
    name: String,
    /// None: the source is the case's workload, its pods in the case's namespace.
    namespace: Option<String>,
    service: Option<String>,
    /// A label selector of pods, the first running one of which is read.
    pods: Option<String>,
    port: Port,
    path: Option<String>,
    scheme: Option<Scheme>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Port {
    Number(u16),
    Name(String),
}

impl std::fmt::Display for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Port::Number(n) => write!(f, "{n}"),
            Port::Name(n) => f.write_str(n),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    #[default]
    Http,
    Https,
}

/// Where an endpoint is read: a service's port or a pod's, through the API server's proxy.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Service(String),
    Pods(String),
    /// The pods (this label selector) of the case's own workload, in the case's namespace:
    /// read while they run, since a finished pod serves nothing.
    Workload(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricSource {
    pub name: String,
    pub namespace: String,
    pub target: Target,
    pub port: Port,
    pub path: String,
    pub scheme: Scheme,
}

impl MetricSource {
    /// The API server path that reaches the endpoint (`pod` for a pods source: the pod read).
    pub fn route(&self, pod: Option<&str>) -> String {
        match (&self.target, pod) {
            (Target::Service(service), _) => self.route_in(&self.namespace, "services", service),
            (_, pod) => self.route_in(&self.namespace, "pods", pod.unwrap_or("")),
        }
    }

    /// The API server path to the endpoint on `name`, a service or a pod of `namespace`.
    pub fn route_in(&self, namespace: &str, kind: &str, name: &str) -> String {
        let scheme = if self.scheme == Scheme::Https { "https:" } else { "" };
        let path = self.path.trim_start_matches('/');
        format!("/api/v1/namespaces/{namespace}/{kind}/{scheme}{name}:{}/proxy/{path}", self.port)
    }

    /// The case's own workload, read while its pods run.
    pub fn is_workload(&self) -> bool {
        matches!(self.target, Target::Workload(_))
    }
}

/// The suite's metric sources and whether the built-in profiles' assertions apply. Without a
/// `metrics:` section nothing is scraped.
#[derive(Debug, Clone, Default)]
pub struct MetricsSettings {
    pub enabled: bool,
    pub sources: Vec<MetricSource>,
    pub defaults: bool,
}

impl MetricsSettings {
    pub fn source(&self, name: &str) -> Option<&MetricSource> {
        self.sources.iter().find(|s| s.name == name)
    }
}

/// The Kubeflow operators' endpoints as their manifests install them: Training Operator v1
/// (release-1.9: `--metrics-bind-address :8080`, plain HTTP, Service `training-operator`
/// port `monitoring-port`), Trainer v2 (v2.1 and later: HTTPS on `:8443`).
fn builtin_sources() -> Vec<MetricSource> {
    vec![
        MetricSource {
            name: TRAINING_OPERATOR.into(),
            namespace: "kubeflow".into(),
            target: Target::Service("training-operator".into()),
            port: Port::Number(8080),
            path: "/metrics".into(),
            scheme: Scheme::Http,
        },
        MetricSource {
            name: TRAINER.into(),
            namespace: "kubeflow-system".into(),
            target: Target::Service("kubeflow-trainer-controller-manager".into()),
            port: Port::Number(8443),
            path: "/metrics".into(),
            scheme: Scheme::Https,
        },
    ]
}

pub fn load(path: &Path, file: Option<&MetricsFile>) -> Result<MetricsSettings> {
    let Some(file) = file else { return Ok(MetricsSettings::default()) };
    let mut sources = builtin_sources();
    for s in &file.sources {
        let target = match (&s.service, &s.pods, &s.namespace) {
            (Some(service), None, Some(_)) => Target::Service(service.clone()),
            (None, Some(pods), Some(_)) => Target::Pods(pods.clone()),
            (None, Some(pods), None) => Target::Workload(pods.clone()),
            (Some(_), None, None) => {
                return Err(Error::usage(format!(
                    "{}: metrics source {:?} has no namespace: a source without one is the case's own workload, \
                     read from its pods; write `pods: <label selector>` instead of `service:`, or give the \
                     service's namespace",
                    path.display(),
                    s.name
                )));
            }
            _ => {
                return Err(Error::usage(format!(
                    "{}: metrics source {:?} names exactly one of service or pods",
                    path.display(),
                    s.name
                )));
            }
        };
        sources.retain(|b| b.name != s.name);
        sources.push(MetricSource {
            name: s.name.clone(),
            namespace: s.namespace.clone().unwrap_or_default(),
            target,
            port: s.port.clone(),
            path: s.path.clone().unwrap_or_else(|| "/metrics".into()),
            scheme: s.scheme.unwrap_or_default(),
        });
    }
    Ok(MetricsSettings { enabled: true, sources, defaults: file.defaults.unwrap_or(true) })
}

/// When an assertion is judged: always, or only when the workload ended that way.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Default)]
#[serde(rename_all = "lowercase")]
pub enum When {
    #[default]
    Always,
    Succeeded,
    Failed,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetricAssertionFile {
    name: Option<String>,
    source: Option<Spanned<String>>,
    expect: Spanned<String>,
    #[serde(default)]
    when: When,
}

#[derive(Debug, Clone)]
pub struct MetricAssertion {
    pub name: String,
    pub source: String,
    /// The expression as written (`$NAMESPACE` and `$CASE` not yet substituted), parsed.
    pub expect: Arc<Assertion>,
    /// It names the case's namespace, or reads the case's own workload, so other cases cannot
    /// move what it reads.
    pub namespaced: bool,
    pub when: When,
}

impl MetricAssertion {
    fn new(name: &str, source: &str, expect: &str, when: When) -> Result<MetricAssertion, String> {
        let parsed = Assertion::parse(expect).map_err(|e| e.message)?;
        Ok(MetricAssertion {
            name: name.to_string(),
            source: source.to_string(),
            expect: Arc::new(parsed),
            namespaced: expect.contains("$NAMESPACE"),
            when,
        })
    }
}

/// An assertion of the suite file, checked: its source known, its expression in the subset
/// (else an input error at the expression's position, the column moved to the offending part).
pub fn assertion(
    path: &Path,
    text: &str,
    file: &MetricAssertionFile,
    default_source: Option<&str>,
    settings: &MetricsSettings,
) -> Result<MetricAssertion> {
    let at = &file.expect.referenced;
    let source = match (&file.source, default_source) {
        (Some(s), _) => s.value.clone(),
        (None, Some(d)) => d.to_string(),
        (None, None) => {
            return Err(Error::input(path, at.line(), at.column(), "a metric assertion needs a source")
                .with_hint("add `source: <a name under metrics.sources>`, or training-operator / trainer"));
        }
    };
    if settings.source(&source).is_none() {
        let loc = file.source.as_ref().map_or(at, |s| &s.referenced);
        let known: Vec<&str> = settings.sources.iter().map(|s| s.name.as_str()).collect();
        let why = if settings.enabled { "no such metrics source" } else { "the suite has no metrics: section" };
        return Err(Error::input(path, loc.line(), loc.column(), format!("{why}: {source:?}"))
            .with_hint(format!("add it under metrics.sources; known: {}", known.join(", "))));
    }
    let expect = &file.expect.value;
    let parsed = Assertion::parse(expect).map_err(|e| {
        let quoted = text
            .lines()
            .nth(at.line().saturating_sub(1) as usize)
            .and_then(|l| l.chars().nth(at.column().saturating_sub(1) as usize).map(|c| c == '"' || c == '\''));
        let column = at.column().saturating_add(e.offset as u64).saturating_add(u64::from(quoted == Some(true)));
        Error::input(path, at.line(), column, format!("metric assertion: {}", e.message))
    })?;
    let workload = settings.source(&source).is_some_and(MetricSource::is_workload);
    Ok(MetricAssertion {
        name: file.name.clone().unwrap_or_else(|| expect.clone()),
        source,
        expect: Arc::new(parsed),
        namespaced: workload || expect.contains("$NAMESPACE"),
        when: file.when,
    })
}

/// The assertions every case of a built-in Kubeflow profile carries when the suite reads
/// metrics: no reconcile panics (nor, for Trainer, terminal reconcile errors) during the case,
/// and the v1 job counters of the case's namespace moved as its workload ended — by at least
/// one, since kubeflow/trainer#2408 makes the success counter inconsistent.
pub fn builtin_assertions(profile: &str) -> Vec<MetricAssertion> {
    let no_panics = "absent(increase(controller_runtime_reconcile_panics_total[1m]) > 0)";
    let made: Vec<(&str, &str, &str, When)> = match profile {
        "pytorchjob" | "tfjob" | "mpijob" | "xgboostjob" | "paddlejob" | "jaxjob" => vec![
            ("no reconcile panics", TRAINING_OPERATOR, no_panics, When::Always),
            (
                "the operator counted the job",
                TRAINING_OPERATOR,
                r#"increase(training_operator_jobs_created_total{job_namespace="$NAMESPACE"}[1m]) >= 1"#,
                When::Always,
            ),
            (
                "the operator counted its success",
                TRAINING_OPERATOR,
                r#"increase(training_operator_jobs_successful_total{job_namespace="$NAMESPACE"}[1m]) >= 1"#,
                When::Succeeded,
            ),
            (
                "the operator counted its failure",
                TRAINING_OPERATOR,
                r#"increase(training_operator_jobs_failed_total{job_namespace="$NAMESPACE"}[1m]) >= 1"#,
                When::Failed,
            ),
        ],
        "trainjob" => vec![
            ("no reconcile panics", TRAINER, no_panics, When::Always),
            (
                "no terminal reconcile errors",
                TRAINER,
                "absent(increase(controller_runtime_terminal_reconcile_errors_total[1m]) > 0)",
                When::Always,
            ),
        ],
        _ => Vec::new(),
    };
    made.into_iter()
        .filter_map(|(name, source, expect, when)| MetricAssertion::new(name, source, expect, when).ok())
        .collect()
}
