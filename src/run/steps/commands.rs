//! The steps that run something: a script on the host, a command in a container (exec), and
//! log assertions over the pods' logs.

use std::{path::Path, time::Duration};

use serde_json::Value;

use super::{REPLICA_LABELS, Scope, Verdict, failed, keep, name_of};
use crate::{
    plan::Target,
    suite::{
        assertions::{LogAssertion, LogSource},
        checks::{Exec, Script},
    },
    util::{
        command::{self, tail},
        duration::Dur,
        files::absolute,
    },
};

impl Scope<'_> {
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
            Err(e) => failed(e.to_string()),
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

    /// Log assertions over the containers of the namespace's pods (those of a label selector,
    /// chosen by the API server). No pod is a failure: a `notMatches` must not hold on nothing.
    pub async fn logs(&self, selector: Option<&str>, assertions: &[LogAssertion]) -> Verdict {
        let selector = selector.map(|s| self.substitute(s));
        let pods = match self.cluster.list_pods(self.namespace, selector.as_deref()).await {
            Ok(pods) => pods,
            Err(e) => return Verdict::Error(e.to_string()),
        };
        if pods.is_empty() {
            return failed(format!(
                "no pod{} to read logs from",
                selector.map(|s| format!(" matches {s}")).unwrap_or_default()
            ));
        }
        let mut logs: Vec<(String, String, Option<String>, String)> = Vec::new();
        for pod in &pods {
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
