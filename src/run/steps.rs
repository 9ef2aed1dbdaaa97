//! What a scenario step or a user's check does, one function per action: apply (or expect a
//! rejection), assert and error (judged on every change a watch brings, never by polling),
//! wait, script, exec, logs, delete. Each gives a [`Verdict`]: passed, failed (with what it
//! saw), or an error when the cluster, not the example, kept it from being judged.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::watch;
use tracing::debug;

use super::classify;
use crate::{
    cluster::{Applied, Cluster, Kind, LABEL_CASE, LABEL_RUN, label_value},
    outcome::{StepOutcome, StepReport},
    plan::{Target, scenario::WaitFor},
    suite::{
        FailureClass,
        assertions::{LogAssertion, LogSource},
        checks::{Exec, Script},
    },
    util::{
        cel::{EvalError, Expression, brief},
        command,
        duration::Dur,
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
        StepReport { section, name: name.to_string(), action, outcome, seconds, detail }
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

    async fn kind_of(&self, target: &Target) -> Result<Kind, Verdict> {
        self.cluster.kind(&target.api_version, &target.kind).await.map_err(|e| {
            if e.infrastructure { Verdict::Error(e.message) } else { Verdict::Failed(e.message, FailureClass::Example) }
        })
    }

    fn describe(&self, target: &Target) -> String {
        let mut what = target.kind.clone();
        if let Some(name) = &target.name {
            what.push_str(&format!(" {}", self.substitute(name)));
        }
        if let Some(selector) = &target.selector {
            what.push_str(&format!(" ({})", self.substitute(selector)));
        }
        what
    }

    fn judge(&self, target: &Target, objects: &[Value]) -> Judged {
        let what = self.describe(target);
        if objects.is_empty() {
            return Judged::NotYet(format!("no {what}"));
        }
        if let Some(expected) = &target.matches {
            let expected = self.substitute_value(expected);
            let mismatches: Vec<String> = objects
                .iter()
                .filter_map(|o| partial_match(o, &expected, "").err().map(|m| format!("{}: {m}", name_of(o))))
                .collect();
            if mismatches.len() == objects.len() {
                return Judged::NotYet(format!("{what} does not match: {}", mismatches.join("; ")));
            }
        }
        if let Some(expression) = &target.cel {
            let names = self.names();
            let list = Value::Array(objects.to_vec());
            let mut variables: Vec<(&str, &Value)> = names.iter().map(|(k, v)| (*k, v)).collect();
            variables.push(("objects", &list));
            if target.name.is_some() {
                variables.push(("object", &objects[0]));
            }
            return match expression.holds(&variables) {
                Ok(true) => Judged::Holds(format!("exists and `{}` holds", expression.source)),
                Ok(false) => {
                    Judged::NotYet(format!("`{}` is false; saw {}", expression.source, expression.observed(&variables)))
                }
                Err(e @ EvalError::Unsupported(_)) => Judged::Broken(format!("`{}` {e}", expression.source)),
                Err(e) => Judged::NotYet(format!("`{}`: {e}", expression.source)),
            };
        }
        Judged::Holds(if target.matches.is_some() { "exists and matches".into() } else { "exists".into() })
    }

    /// Watches the target until `until` says it is done, or the timeout. Each snapshot of the
    /// watch is judged as it comes.
    async fn watch(
        &self,
        target: &Target,
        timeout: Duration,
        mut until: impl FnMut(&[Value]) -> Option<Verdict>,
        at_timeout: impl FnOnce() -> Verdict,
    ) -> Verdict {
        let kind = match self.kind_of(target).await {
            Ok(kind) => kind,
            Err(verdict) => return verdict,
        };
        let name = target.name.as_ref().map(|n| self.substitute(n));
        let selector = target.selector.as_ref().map(|s| self.substitute(s));
        let mut snapshots =
            self.cluster.watch_matching(&kind, self.namespace, name.as_deref(), selector.as_deref()).boxed();
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut cancel = self.cancel.clone();
        loop {
            tokio::select! {
                snapshot = snapshots.next() => match snapshot {
                    Some(Ok(objects)) => if let Some(verdict) = until(&objects) { return verdict },
                    Some(Err(e)) => debug!(error = %e, "a step's watch failed; it starts again"),
                    None => return Verdict::Error(format!("the watch of {} ended", self.describe(target))),
                },
                _ = &mut deadline => return at_timeout(),
                _ = cancel.wait_for(|c| *c) => return Verdict::Error("interrupted".into()),
            }
        }
    }

    /// Until the target is as it must be, or the timeout (then: what it saw last).
    pub async fn assert(&self, target: &Target, timeout: Duration) -> Verdict {
        let last = std::sync::Mutex::new(String::from("the watch gave nothing"));
        self.watch(
            target,
            timeout,
            |objects| match self.judge(target, objects) {
                Judged::Holds(why) => Some(Verdict::Passed(Some(format!("{} {why}", self.describe(target))))),
                Judged::Broken(why) => Some(Verdict::Error(why)),
                Judged::NotYet(why) => {
                    *last.lock().unwrap_or_else(|e| e.into_inner()) = why;
                    None
                }
            },
            || failed(format!("not true within {}: {}", Dur(timeout), last.lock().unwrap_or_else(|e| e.into_inner()))),
        )
        .await
    }

    /// The target must not exist or not match: at once, or for as long as `hold`.
    pub async fn error(&self, target: &Target, hold: Duration) -> Verdict {
        let once = hold.is_zero();
        // Checked once: the first snapshot (the watch's initial listing) decides.
        let limit = if once { Duration::from_secs(30) } else { hold };
        self.watch(
            target,
            limit,
            |objects| match self.judge(target, objects) {
                Judged::Holds(why) => Some(failed(format!("{} {why}", self.describe(target)))),
                Judged::Broken(why) => Some(Verdict::Error(why)),
                Judged::NotYet(_) if once => Some(Verdict::Passed(None)),
                Judged::NotYet(_) => None,
            },
            || match once {
                true => Verdict::Error(format!("no answer from the watch of {} in 30s", self.describe(target))),
                false => Verdict::Passed(Some(format!("held for {}", Dur(hold)))),
            },
        )
        .await
    }

    /// Until every object of the target is gone, or has a condition True.
    pub async fn wait(&self, target: &Target, until: &WaitFor, timeout: Duration) -> Verdict {
        let last = std::sync::Mutex::new(String::from("the watch gave nothing"));
        let what = self.describe(target);
        self.watch(
            target,
            timeout,
            |objects| {
                let done = match until {
                    WaitFor::Deleted => objects.is_empty(),
                    WaitFor::Condition(c) => !objects.is_empty() && objects.iter().all(|o| condition_true(o, c)),
                };
                *last.lock().unwrap_or_else(|e| e.into_inner()) = match until {
                    WaitFor::Deleted => format!("still there: {}", names(objects)),
                    WaitFor::Condition(c) if objects.is_empty() => format!("no {what} (waiting for {c})"),
                    WaitFor::Condition(c) => format!("{c} is not True on {}", names(objects)),
                };
                done.then_some(Verdict::Passed(None))
            },
            || failed(format!("not within {}: {}", Dur(timeout), last.lock().unwrap_or_else(|e| e.into_inner()))),
        )
        .await
    }

    /// Deletes every object of the target (background propagation); a later `wait` can wait
    /// for them to go.
    pub async fn delete(&self, target: &Target) -> Verdict {
        let kind = match self.kind_of(target).await {
            Ok(kind) => kind,
            Err(verdict) => return verdict,
        };
        let name = target.name.as_ref().map(|n| self.substitute(n));
        let selector = target.selector.as_ref().map(|s| self.substitute(s));
        let objects =
            match self.cluster.list_matching(&kind, self.namespace, name.as_deref(), selector.as_deref()).await {
                Ok(objects) => objects,
                Err(e) => return Verdict::Error(e.message),
            };
        if objects.is_empty() {
            return failed(format!("nothing to delete: no {}", self.describe(target)));
        }
        for object in &objects {
            let applied = Applied {
                kind: kind.clone(),
                namespace: kind.namespaced.then(|| self.namespace.to_string()),
                name: name_of(object).to_string(),
            };
            if let Err(e) = self.cluster.delete(&applied).await {
                return Verdict::Error(e.message);
            }
        }
        Verdict::Passed(Some(format!("deleted {}", names(&objects))))
    }

    /// A program on the host, with the case's cluster and namespace in its environment; exit 0
    /// passes. Its output is kept in `evidence`.
    pub async fn script(&self, script: &Script, timeout: Duration, evidence: &Path) -> Verdict {
        let mut env = vec![
            ("KUBEVET_NAMESPACE", self.namespace.to_string()),
            ("KUBEVET_CASE", self.case.to_string()),
            ("KUBEVET_RUN", self.run_id.to_string()),
            ("KUBEVET_ARTIFACTS", absolute(self.artifacts).display().to_string()),
        ];
        if let Some(kubeconfig) = &self.cluster.kubeconfig {
            env.push(("KUBECONFIG", absolute(kubeconfig).display().to_string()));
        }
        if let Some(context) = &self.cluster.context {
            env.push(("KUBEVET_CONTEXT", context.clone()));
        }
        let argv: Vec<String> = script.argv.iter().map(|a| self.substitute(a)).collect();
        match command::script(&argv, &env, &script.dir, timeout).await {
            Err(e) => failed(e),
            Ok(done) => {
                keep(evidence, &done.output);
                let tail = tail(&done.output);
                match (done.timed_out, done.code) {
                    (true, _) => failed(format!("still running after {}; stopped", Dur(timeout))),
                    (false, Some(0)) => Verdict::Passed(tail),
                    (false, Some(code)) => failed(format!(
                        "exit code {code}{}",
                        tail.map(|t| format!("; output: {t}")).unwrap_or_default()
                    )),
                    (false, None) => failed("killed by a signal"),
                }
            }
        }
    }

    /// A command in a running container, through the API server; exit 0 passes.
    pub async fn exec(&self, exec: &Exec, timeout: Duration, evidence: &Path) -> Verdict {
        let pod = match self.pod_for(exec, timeout).await {
            Ok(pod) => pod,
            Err(verdict) => return verdict,
        };
        let command: Vec<String> = exec.command.iter().map(|a| self.substitute(a)).collect();
        let ran =
            tokio::time::timeout(timeout, self.cluster.exec(self.namespace, &pod, exec.container.as_deref(), &command));
        match ran.await {
            Err(_) => failed(format!("still running in pod {pod} after {}", Dur(timeout))),
            Ok(Err(e)) if e.infrastructure => Verdict::Error(e.message),
            Ok(Err(e)) => failed(e.message),
            Ok(Ok((code, output))) => {
                keep(evidence, &output);
                let tail = tail(&output);
                match code {
                    Some(0) => Verdict::Passed(tail.map(|t| format!("in pod {pod}: {t}"))),
                    Some(code) => failed(format!(
                        "exit code {code} in pod {pod}{}",
                        tail.map(|t| format!("; output: {t}")).unwrap_or_default()
                    )),
                    None => Verdict::Error(format!("the API server gave no exit status for the command in pod {pod}")),
                }
            }
        }
    }

    /// The running pod an exec names (by name, label selector, or replica; or the first),
    /// waited for by watching while the candidates are still starting; at once a failure when
    /// every candidate has finished (a container that ended cannot run a command).
    async fn pod_for(&self, exec: &Exec, timeout: Duration) -> Result<String, Verdict> {
        let target = Target {
            api_version: "v1".into(),
            kind: "Pod".into(),
            name: exec.pod.clone(),
            selector: exec.selector.clone(),
            matches: None,
            cel: None,
        };
        let chosen = std::sync::Mutex::new(None);
        let seen = std::sync::Mutex::new(String::from("none"));
        let phase = |p: &Value| p.pointer("/status/phase").and_then(Value::as_str).unwrap_or("?").to_string();
        let verdict = self
            .watch(
                &target,
                timeout,
                |pods| {
                    let wanted: Vec<&Value> = pods.iter().filter(|p| self.is_replica(p, exec.replica.as_deref())).collect();
                    if let Some(running) = wanted.iter().find(|p| phase(p) == "Running") {
                        *chosen.lock().unwrap_or_else(|e| e.into_inner()) = Some(name_of(running).to_string());
                        return Some(Verdict::Passed(None));
                    }
                    let listed: Vec<String> = wanted.iter().map(|p| format!("{} ({})", name_of(p), phase(p))).collect();
                    if !listed.is_empty() {
                        *seen.lock().unwrap_or_else(|e| e.into_inner()) = listed.join(", ");
                    }
                    let finished = !wanted.is_empty() && wanted.iter().all(|p| matches!(phase(p).as_str(), "Succeeded" | "Failed"));
                    finished.then(|| failed(format!(
                        "no running pod to exec in (found: {}); exec needs a running container: use it on a workload that keeps running (a Deployment), or as a scenario step while the job runs",
                        listed.join(", ")
                    )))
                },
                || failed(format!("no running pod to exec in within {} (found: {})", Dur(timeout), seen.lock().unwrap_or_else(|e| e.into_inner()))),
            )
            .await;
        match chosen.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(pod) => Ok(pod),
            None => Err(verdict),
        }
    }

    /// Whether a pod is of the replica named (by the profile's replica label or a well-known
    /// one, case-insensitively); any pod when none is named.
    fn is_replica(&self, pod: &Value, replica: Option<&str>) -> bool {
        let Some(replica) = replica else { return true };
        self.replica_label.into_iter().chain(REPLICA_LABELS.iter().copied()).any(|key| {
            pod.pointer("/metadata/labels")
                .and_then(|l| l.get(key))
                .and_then(Value::as_str)
                .is_some_and(|v| v.eq_ignore_ascii_case(replica))
        })
    }

    /// Log assertions over the containers of the namespace's pods (those of a selector).
    pub async fn logs(&self, selector: Option<&str>, assertions: &[LogAssertion]) -> Verdict {
        let pods = match self.cluster.list_pods(self.namespace).await {
            Ok(pods) => pods,
            Err(e) => return Verdict::Error(e),
        };
        let selector = selector.map(|s| self.substitute(s));
        let mut logs: Vec<(String, String, Option<String>, String)> = Vec::new();
        for pod in
            pods.iter().filter(|p| selector.as_deref().is_none_or(|s| labels_match(p.metadata.labels.as_ref(), s)))
        {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let labels = pod.metadata.labels.clone().unwrap_or_default();
            let replica = self
                .replica_label
                .into_iter()
                .chain(REPLICA_LABELS.iter().copied())
                .find_map(|k| labels.get(k).cloned());
            for container in pod.spec.iter().flat_map(|s| s.containers.iter()) {
                match self.cluster.logs(self.namespace, &name, &container.name, false).await {
                    Ok(text) => logs.push((name.clone(), container.name.clone(), replica.clone(), text)),
                    Err(e) => return Verdict::Error(format!("log of {name}/{}: {}", container.name, e.message)),
                }
            }
        }
        let sources: Vec<LogSource<'_>> = logs
            .iter()
            .map(|(pod, container, replica, text)| LogSource { pod, container, replica: replica.as_deref(), text })
            .collect();
        match assertions.iter().try_for_each(|a| a.evaluate(&sources)) {
            Ok(()) => Verdict::Passed(Some(format!("{} logs read", sources.len()))),
            Err(why) => failed(why),
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

/// Every field written in `expected` is in `actual` with that value; a list written must have
/// each of its items matched by some item of the actual list.
pub fn partial_match(actual: &Value, expected: &Value, path: &str) -> Result<(), String> {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => e.iter().try_for_each(|(key, want)| match a.get(key) {
            Some(got) => partial_match(got, want, &format!("{path}.{key}")),
            None if want.is_null() => Ok(()),
            None => Err(format!("{}: absent, want {}", path_or_root(&format!("{path}.{key}")), brief(want))),
        }),
        (Value::Array(a), Value::Array(e)) => e.iter().enumerate().try_for_each(|(i, want)| {
            if a.iter().any(|got| partial_match(got, want, "").is_ok()) {
                Ok(())
            } else {
                Err(format!(
                    "{}: no item matches {} (saw {})",
                    path_or_root(&format!("{path}[{i}]")),
                    brief(want),
                    brief(actual)
                ))
            }
        }),
        (Value::Number(a), Value::Number(e)) if a.as_f64() == e.as_f64() => Ok(()),
        (a, e) if a == e => Ok(()),
        (Value::String(a), Value::Number(e)) | (Value::Number(e), Value::String(a)) if *a == e.to_string() => Ok(()),
        (a, e) => Err(format!("{}: {} , want {}", path_or_root(path), brief(a), brief(e)).replace(" ,", ",")),
    }
}

fn path_or_root(path: &str) -> &str {
    let path = path.trim_start_matches('.');
    if path.is_empty() { "(root)" } else { path }
}

fn condition_true(object: &Value, condition: &str) -> bool {
    object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case(condition)) && c["status"] == "True")
}

fn name_of(object: &Value) -> &str {
    object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("?")
}

fn names(objects: &[Value]) -> String {
    objects.iter().map(name_of).collect::<Vec<_>>().join(", ")
}

/// A label selector of `key=value`, `key!=value`, `key` and `!key` terms (what scenarios
/// write), matched against a pod's labels.
fn labels_match(labels: Option<&BTreeMap<String, String>>, selector: &str) -> bool {
    let empty = BTreeMap::new();
    let labels = labels.unwrap_or(&empty);
    selector.split(',').map(str::trim).filter(|t| !t.is_empty()).all(|term| {
        if let Some((k, v)) = term.split_once("!=") {
            labels.get(k.trim()).map(String::as_str) != Some(v.trim())
        } else if let Some((k, v)) = term.split_once('=') {
            labels.get(k.trim().trim_end_matches('=')).map(String::as_str) == Some(v.trim_start_matches('=').trim())
        } else if let Some(k) = term.strip_prefix('!') {
            !labels.contains_key(k)
        } else {
            labels.contains_key(term)
        }
    })
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The last lines of a command's output, for the report.
fn tail(output: &str) -> Option<String> {
    let lines: Vec<&str> = output.trim_end().lines().collect();
    let kept = lines[lines.len().saturating_sub(5)..].join(" | ");
    (!kept.is_empty()).then(|| kept.chars().take(400).collect())
}

fn keep(evidence: &Path, output: &str) {
    if let Err(e) = write_atomically(evidence, output.as_bytes()) {
        debug!(file = %evidence.display(), error = %e, "cannot keep a step's output");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_objects_match_fields_written_and_list_items_anywhere() {
        let job = json!({"metadata": {"name": "pt", "labels": {"a": "1"}}, "status": {"conditions": [
            {"type": "Created", "status": "True"}, {"type": "Running", "status": "True"}], "replicas": 2}});
        assert_eq!(
            partial_match(&job, &json!({"status": {"conditions": [{"type": "Running", "status": "True"}]}}), ""),
            Ok(())
        );
        assert_eq!(
            partial_match(&job, &json!({"status": {"replicas": 2.0}, "metadata": {"labels": {"a": 1}}}), ""),
            Ok(())
        );
        let err =
            partial_match(&job, &json!({"status": {"conditions": [{"type": "Succeeded"}]}}), "").expect_err("no item");
        assert!(err.starts_with("status.conditions[0]: no item matches {\"type\":\"Succeeded\"}"), "{err}");
        let err = partial_match(&job, &json!({"metadata": {"name": "tf"}}), "").expect_err("differs");
        assert_eq!(err, "metadata.name: \"pt\", want \"tf\"");
        assert_eq!(
            partial_match(&job, &json!({"spec": {"x": 1}}), "").expect_err("absent"),
            "spec: absent, want {\"x\":1}"
        );
    }

    #[test]
    fn label_selectors() {
        let labels =
            BTreeMap::from([("app".to_string(), "pt".to_string()), ("role".to_string(), "worker".to_string())]);
        assert!(labels_match(Some(&labels), "app=pt,role"));
        assert!(labels_match(Some(&labels), "app==pt, role!=master, !gone"));
        assert!(!labels_match(Some(&labels), "app=tf"));
        assert!(!labels_match(None, "app"));
    }
}
