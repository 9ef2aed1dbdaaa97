//! What a scenario step or a user's check does: one function per action, each giving a
//! [`Verdict`]: passed, failed (with what it saw), or an error when the cluster, not the
//! example, kept it from being judged. Here: the scope they act in, `cel` and `apply`;
//! `watched.rs`: assert, error, wait and delete, judged on every snapshot a watch brings
//! (never by polling); `commands.rs`: script, exec and logs.

mod commands;
mod watched;

use std::path::Path;

use serde_json::{Value, json};
use tokio::sync::watch;
use tracing::debug;

use super::classify;
use crate::{
    cluster::{Applied, Cluster, LABEL_CASE, LABEL_RUN, label_value},
    outcome::{StepOutcome, StepReport},
    suite::FailureClass,
    util::{
        cel::{EvalError, Expression},
        files::write_atomically,
    },
};

/// How a step or check went.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Passed(Option<String>),
    /// It ran and was not what it should be; the class says whose fault (the test's, or the
    /// example's when the API server rejected it).
    Failed(String, FailureClass),
    /// It could not be judged: the cluster failed, or kubevet cannot evaluate it.
    Error(String),
}

impl Verdict {
    /// The verdict as a line of the case's report.
    pub fn report(&self, section: &'static str, name: &str, action: &'static str, seconds: f64) -> StepReport {
        let (outcome, detail) = match self {
            Verdict::Passed(detail) => (StepOutcome::Passed, detail.clone()),
            Verdict::Failed(why, _) => (StepOutcome::Failed, Some(why.clone())),
            Verdict::Error(why) => (StepOutcome::Error, Some(why.clone())),
        };
        StepReport { section: section.into(), name: name.to_string(), action: action.into(), outcome, seconds, detail }
    }
}

/// A file name for a step's or check's output: `03-model-written.log`.
pub fn evidence_name(index: usize, name: &str) -> String {
    let slug: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let slug: String = slug.split('-').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("-");
    format!("{:02}-{}.log", index + 1, slug.chars().take(40).collect::<String>())
}

fn failed(why: impl Into<String>) -> Verdict {
    Verdict::Failed(why.into(), FailureClass::Test)
}

/// Where steps and checks act: the case's namespace on its cluster, and the names that
/// `{{namespace}}`, `{{case}}` and `{{run}}` stand for.
pub struct Scope<'a> {
    pub cluster: &'a Cluster,
    pub namespace: &'a str,
    pub case: &'a str,
    pub run_id: &'a str,
    /// The attempt's artifacts folder.
    pub artifacts: &'a Path,
    /// The profile's replica label, for `exec: {replica: worker}`.
    pub replica_label: Option<&'a str>,
    pub cancel: watch::Receiver<bool>,
}

/// How a target stands against what it must be.
enum Judged {
    Holds(String),
    NotYet(String),
    /// The expression cannot be evaluated by kubevet at all.
    Broken(String),
}

/// Labels on which pods are told apart as replicas, besides the profile's own.
const REPLICA_LABELS: &[&str] = &["training.kubeflow.org/replica-type", "jobset.sigs.k8s.io/replicatedjob-name"];

impl Scope<'_> {
    pub fn substitute(&self, text: &str) -> String {
        text.replace("{{namespace}}", self.namespace).replace("{{case}}", self.case).replace("{{run}}", self.run_id)
    }

    fn substitute_value(&self, value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.substitute(s)),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.substitute_value(v)).collect()),
            Value::Object(map) => {
                Value::Object(map.iter().map(|(k, v)| (self.substitute(k), self.substitute_value(v))).collect())
            }
            other => other.clone(),
        }
    }

    /// The variables every expression sees, besides the objects.
    fn names(&self) -> [(&'static str, Value); 3] {
        [("namespace", json!(self.namespace)), ("case", json!(self.case)), ("run", json!(self.run_id))]
    }

    /// A CEL check over a workload and its pods.
    pub fn cel(&self, expression: &Expression, object: &Value, pods: &Value) -> Verdict {
        let names = self.names();
        let mut variables: Vec<(&str, &Value)> = names.iter().map(|(k, v)| (*k, v)).collect();
        variables.extend([("object", object), ("pods", pods)]);
        match expression.holds(&variables) {
            Ok(true) => Verdict::Passed(None),
            Ok(false) => failed(format!("`{}` is false; saw {}", expression.source, expression.observed(&variables))),
            Err(e @ EvalError::Unsupported(_)) => Verdict::Error(format!("`{}` {e}", expression.source)),
            Err(e) => failed(format!("`{}` could not be true: {e}", expression.source)),
        }
    }

    /// Applies a step's objects; with `expect_error`, the API server must reject one of them
    /// with a message that matches.
    pub async fn apply(
        &self,
        objects: &[Value],
        expect_error: Option<&regex::Regex>,
        applied: &mut Vec<Applied>,
    ) -> Verdict {
        let labels = [(LABEL_RUN, self.run_id.to_string()), (LABEL_CASE, label_value(self.case))];
        for object in objects {
            let mut object = self.substitute_value(object);
            let kind = match self
                .cluster
                .kind(object["apiVersion"].as_str().unwrap_or(""), object["kind"].as_str().unwrap_or(""))
                .await
            {
                Ok(kind) => kind,
                Err(e) => return rejected(e, expect_error),
            };
            // Cluster-scoped objects outlive the namespace: labelled, `kubevet clean` finds them.
            if !kind.namespaced {
                for (key, value) in &labels {
                    object["metadata"]["labels"][*key] = json!(value);
                }
            }
            match self.cluster.apply(&object, Some(self.namespace)).await {
                Ok(a) => applied.push(a),
                Err(e) => return rejected(e, expect_error),
            }
        }
        match expect_error {
            Some(regex) => failed(format!("the API server accepted it; expected a rejection matching /{regex}/")),
            None => Verdict::Passed(None),
        }
    }
}

/// An apply the server refused: what `expect_error` wanted, or a failure of the example
/// (an error when the cluster, not the object, failed).
fn rejected(e: crate::cluster::ApiError, expect_error: Option<&regex::Regex>) -> Verdict {
    if e.infrastructure {
        return Verdict::Error(e.message);
    }
    match expect_error {
        Some(regex) if regex.is_match(&e.message) => {
            Verdict::Passed(Some(format!("rejected as expected: {}", e.message)))
        }
        Some(regex) => failed(format!("rejected, but not as expected (/{regex}/): {}", e.message)),
        None => Verdict::Failed(format!("apply: {}", e.message), classify::rejected(&e)),
    }
}

fn name_of(object: &Value) -> &str {
    object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("?")
}

fn names(objects: &[Value]) -> String {
    objects.iter().map(name_of).collect::<Vec<_>>().join(", ")
}

fn keep(evidence: &Path, output: &str) {
    if let Err(e) = write_atomically(evidence, output.as_bytes()) {
        debug!(file = %evidence.display(), error = %e, "cannot keep a step's output");
    }
}
