//! Framework profiles: how kubevet recognises a workload, reads its success and failure, finds
//! its pods and how long it may take. Built in for the common frameworks; a suite can override
//! any field of a built-in profile or add new profiles, without code.

use serde_json::Value;

use crate::{suite::assertions::LogAssertion, util::duration::Dur};

#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// Holds when a `status.conditions[]` entry of one of these types has this status.
    Conditions { types: Vec<String>, status: String },
    /// Holds when the value at this dotted path is one of these.
    Field { path: String, values: Vec<String> },
}

impl Rule {
    fn conditions(types: &[&str]) -> Rule {
        Rule::Conditions { types: types.iter().map(|t| t.to_string()).collect(), status: "True".into() }
    }

    /// When the rule holds, a description of why: the condition's type, reason and message, or
    /// the field's value.
    pub fn holds(&self, obj: &Value) -> Option<String> {
        match self {
            Rule::Conditions { types, status } => {
                let conditions = obj.pointer("/status/conditions")?.as_array()?;
                conditions
                    .iter()
                    .find(|c| {
                        c["status"].as_str() == Some(status.as_str())
                            && types.iter().any(|t| c["type"].as_str() == Some(t))
                    })
                    .map(|c| {
                        let mut text = c["type"].as_str().unwrap_or_default().to_string();
                        for key in ["reason", "message"] {
                            if let Some(v) = c[key].as_str().filter(|v| !v.is_empty()) {
                                text.push_str(": ");
                                text.push_str(v);
                            }
                        }
                        text
                    })
            }
            Rule::Field { path, values } => {
                let pointer = format!("/{}", path.replace('.', "/"));
                let value = obj.pointer(&pointer)?.as_str()?;
                values.iter().any(|v| v == value).then(|| {
                    let message = obj.pointer("/status/message").and_then(Value::as_str).unwrap_or("");
                    if message.is_empty() { format!("{path}={value}") } else { format!("{path}={value}: {message}") }
                })
            }
        }
    }
}

/// The built-in profile of pipeline cases.
pub const PIPELINE: &str = "pipeline";

#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    /// API group (empty for core); any version of it matches.
    pub group: String,
    pub kind: String,
    pub success: Rule,
    pub failure: Rule,
    /// Label selector of the workload's pods; `{name}` is the workload's name and
    /// `{selector}` its `spec.selector.matchLabels`.
    pub pods: String,
    /// The pod label whose value names a replica (master, worker…), for log assertions.
    pub replica_label: Option<String>,
    /// Set by the suite; beats `defaults.timeout`.
    pub timeout: Option<Dur>,
    /// The framework's own default, used when neither the suite nor the example sets one.
    pub default_timeout: Dur,
    pub logs: Vec<LogAssertion>,
    /// Retries for every example of this profile (over `defaults.retries`).
    pub retries: Option<u32>,
    /// The user's own checks, run once the workload has its verdict.
    pub checks: Vec<crate::suite::checks::Check>,
    /// Metric assertions every case of the profile carries (the suite's own; the built-in
    /// Kubeflow profiles' defaults are added in the plan when the suite reads metrics).
    pub metrics: Vec<crate::suite::metrics::MetricAssertion>,
    /// What an example of this profile does when it asks for a GPU no node offers.
    pub gpu: Option<crate::suite::gpu::GpuMode>,
}

impl Profile {
    pub fn matches(&self, api_version: &str, kind: &str) -> bool {
        // `pipeline` names no kind: compiled pipelines are recognised by their shape.
        if self.kind.is_empty() {
            return false;
        }
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        group == self.group && kind == self.kind
    }

    pub fn pod_selector(&self, workload: &Value) -> String {
        let name = workload.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        let selector = workload
            .pointer("/spec/selector/matchLabels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect::<Vec<_>>().join(",")
            })
            .unwrap_or_default();
        self.pods.replace("{name}", name).replace("{selector}", &selector)
    }
}

/// `(group, kind)` and `(pod selector, replica label)` travel in pairs, as a reader thinks of them.
fn builtin(
    name: &str,
    kind: (&str, &str),
    success: Rule,
    failure: Rule,
    pods: (&str, Option<&str>),
    minutes: u64,
) -> Profile {
    Profile {
        name: name.into(),
        group: kind.0.into(),
        kind: kind.1.into(),
        success,
        failure,
        pods: pods.0.into(),
        replica_label: pods.1.map(Into::into),
        timeout: None,
        default_timeout: Dur(std::time::Duration::from_secs(minutes * 60)),
        logs: Vec::new(),
        retries: None,
        checks: Vec::new(),
        metrics: Vec::new(),
        gpu: None,
    }
}

/// The profiles every suite starts with.
pub fn builtins() -> Vec<Profile> {
    let conditions = Rule::conditions;
    let phase = |values: &[&str]| Rule::Field {
        path: "status.phase".into(),
        values: values.iter().map(|v| v.to_string()).collect(),
    };
    let training = |name: &str, kind: &str| {
        let pods = ("training.kubeflow.org/job-name={name}", Some("training.kubeflow.org/replica-type"));
        builtin(name, ("kubeflow.org", kind), conditions(&["Succeeded"]), conditions(&["Failed"]), pods, 15)
    };
    let jobset_pods = ("jobset.sigs.k8s.io/jobset-name={name}", Some("jobset.sigs.k8s.io/replicatedjob-name"));
    let deployment_failed = Rule::Conditions { types: vec!["Progressing".into()], status: "False".into() };
    vec![
        builtin(
            "job",
            ("batch", "Job"),
            conditions(&["Complete"]),
            conditions(&["Failed"]),
            ("job-name={name}", None),
            10,
        ),
        training("pytorchjob", "PyTorchJob"),
        training("tfjob", "TFJob"),
        training("mpijob", "MPIJob"),
        training("xgboostjob", "XGBoostJob"),
        training("paddlejob", "PaddleJob"),
        training("jaxjob", "JAXJob"),
        builtin(
            "trainjob",
            ("trainer.kubeflow.org", "TrainJob"),
            conditions(&["Complete"]),
            conditions(&["Failed"]),
            jobset_pods,
            20,
        ),
        builtin(
            "jobset",
            ("jobset.x-k8s.io", "JobSet"),
            conditions(&["Completed"]),
            conditions(&["Failed"]),
            jobset_pods,
            20,
        ),
        builtin(
            "workflow",
            ("argoproj.io", "Workflow"),
            phase(&["Succeeded"]),
            phase(&["Failed", "Error"]),
            ("workflows.argoproj.io/workflow={name}", None),
            20,
        ),
        // Kubeflow Pipelines runs, judged by KFP's run state (see `run::pipeline`); the rules
        // here are the Workflow's, for the suite's own reading only.
        builtin(
            PIPELINE,
            ("", ""),
            phase(&["Succeeded"]),
            phase(&["Failed", "Error"]),
            ("pipeline/runid={name}", None),
            15,
        ),
        builtin(
            "deployment",
            ("apps", "Deployment"),
            conditions(&["Available"]),
            deployment_failed,
            ("{selector}", None),
            5,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn profile(name: &str) -> Profile {
        builtins().into_iter().find(|p| p.name == name).expect("builtin")
    }

    #[test]
    fn training_job_terminal_states() {
        let p = profile("pytorchjob");
        assert!(p.matches("kubeflow.org/v1", "PyTorchJob"));
        assert!(!p.matches("kubeflow.org/v1", "TFJob"));
        let failed = json!({"status": {"conditions": [
            {"type": "Running", "status": "False"},
            {"type": "Failed", "status": "True", "reason": "PyTorchJobFailed", "message": "1 Master replica(s) failed."}]}});
        assert_eq!(p.failure.holds(&failed).as_deref(), Some("Failed: PyTorchJobFailed: 1 Master replica(s) failed."));
        assert_eq!(p.success.holds(&failed), None);
        let not_yet = json!({"status": {"conditions": [{"type": "Succeeded", "status": "False"}]}});
        assert_eq!(p.success.holds(&not_yet), None);
    }

    #[test]
    fn workflow_phase_and_deployment_selector() {
        let w = profile("workflow");
        let obj = json!({"status": {"phase": "Error", "message": "boom"}});
        assert_eq!(w.failure.holds(&obj).as_deref(), Some("status.phase=Error: boom"));
        let d = profile("deployment");
        let dep =
            json!({"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "web", "tier": "x"}}}});
        assert_eq!(d.pod_selector(&dep), "app=web,tier=x");
        assert_eq!(profile("job").pod_selector(&dep), "job-name=web");
    }
}
