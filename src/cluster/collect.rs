//! Evidence for every case, pass or fail, into `<artifacts>/<case-id>/`: the final state of
//! every applied object (Secret values redacted), every pod's state and the logs of all its
//! containers (init containers and previous instances too), and the namespace's events.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use futures::future::join_all;
use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod};
use kube::ResourceExt;
use serde_json::Value;

use crate::{
    cluster::{Applied, Cluster},
    util::files::{FileError, file_name},
};

/// One container's log as collected.
#[derive(Debug, Clone)]
pub struct ContainerLog {
    pub pod: String,
    pub container: String,
    pub replica: Option<String>,
    pub text: String,
    pub failed: bool,
    /// When its failing run ended (RFC 3339), when it ended.
    pub failed_at: Option<String>,
    /// Why the log could not be read because the cluster failed (after retries).
    pub unreadable: Option<String>,
}

#[derive(Debug, Default)]
pub struct Evidence {
    pub pods: Vec<String>,
    pub logs: Vec<ContainerLog>,
    pub problems: Vec<String>,
    /// The namespace's events, one line each, in time order (as in `events.txt`).
    pub events: Vec<String>,
}

impl Evidence {
    /// The end of the log that best explains a failure: the container that failed first
    /// (others are often killed because of it), else the first log.
    pub fn failing_tail(&self, lines: usize) -> Option<String> {
        let failed = self.logs.iter().filter(|l| l.failed);
        let first = failed.min_by_key(|l| (l.failed_at.is_none(), l.failed_at.clone()));
        let log = first.or_else(|| self.logs.first())?;
        Some(log.tail(lines))
    }

    /// The end of one container's log (a pipeline's failing task), else [`Self::failing_tail`].
    pub fn tail_of(&self, pod: Option<&str>, container: &str, lines: usize) -> Option<String> {
        match self.logs.iter().find(|l| Some(l.pod.as_str()) == pod && l.container == container) {
            Some(log) => Some(log.tail(lines)),
            None => self.failing_tail(lines),
        }
    }
}

impl ContainerLog {
    fn tail(&self, lines: usize) -> String {
        let all: Vec<&str> = self.text.lines().collect();
        let tail = all[all.len().saturating_sub(lines)..].join("\n");
        format!("--- last {} lines of pod {} container {} ---\n{tail}", all.len().min(lines), self.pod, self.container)
    }
}

fn write(path: &Path, content: &str) -> Result<(), FileError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| FileError::write(dir, e))?;
    }
    std::fs::File::create(path).and_then(|mut f| f.write_all(content.as_bytes())).map_err(|e| FileError::write(path, e))
}

/// Keeps the end of a log, where failures show, within `limit` bytes, and says what was cut.
pub fn cap(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let mut start = text.len() - limit;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("[kubevet: the first {start} bytes of this log were cut; the limit is {limit} bytes]\n{}", &text[start..])
}

fn redact(mut object: Value) -> Value {
    if object["kind"] == "Secret" {
        for field in ["data", "stringData"] {
            if let Some(map) = object[field].as_object_mut() {
                for v in map.values_mut() {
                    *v = Value::String("<redacted by kubevet>".into());
                }
            }
        }
        if let Some(annotations) = object.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) {
            annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
    }
    if let Some(meta) = object["metadata"].as_object_mut() {
        meta.remove("managedFields");
    }
    object
}

fn to_yaml(value: &Value) -> String {
    serde_saphyr::to_string(value).unwrap_or_else(|e| format!("# kubevet could not render this object: {e}\n"))
}

/// The status of one of the pod's containers, init containers included.
fn container_status(pod: &Pod, container: &str) -> Option<ContainerStatus> {
    let status = pod.status.as_ref()?;
    let all = status.init_container_statuses.iter().flatten().chain(status.container_statuses.iter().flatten());
    all.into_iter().find(|c| c.name == container).cloned()
}

fn container_failed(pod: &Pod, container: &str) -> bool {
    container_status(pod, container).is_some_and(|c| {
        let terminated = c
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .or(c.last_state.as_ref().and_then(|s| s.terminated.as_ref()));
        terminated.is_some_and(|t| t.exit_code != 0) || c.state.as_ref().is_some_and(|s| s.waiting.is_some())
    })
}

/// The container's run that exited non-zero (its last run, else the one before): its exit code
/// and when it ended (RFC 3339, empty when unknown); none when it never did.
pub fn failed_run(pod: &Pod, container: &str) -> Option<(i32, String)> {
    let c = container_status(pod, container)?;
    let states = [c.state.as_ref(), c.last_state.as_ref()];
    let t = states.into_iter().flatten().find_map(|s| s.terminated.as_ref().filter(|t| t.exit_code != 0))?;
    Some((t.exit_code, t.finished_at.as_ref().map(|f| f.0.to_string()).unwrap_or_default()))
}

fn restarted(pod: &Pod, container: &str) -> bool {
    container_status(pod, container).is_some_and(|c| c.restart_count > 0)
}

fn event_line(e: &Event) -> (String, String) {
    let time = e
        .event_time
        .as_ref()
        .map(|t| t.0.to_string())
        .or_else(|| e.last_timestamp.as_ref().map(|t| t.0.to_string()))
        .or_else(|| e.first_timestamp.as_ref().map(|t| t.0.to_string()))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0.to_string()))
        .unwrap_or_default();
    let object = format!(
        "{}/{}",
        e.involved_object.kind.as_deref().unwrap_or(""),
        e.involved_object.name.as_deref().unwrap_or("")
    );
    let line = format!(
        "{time} {} {} {object}: {}",
        e.type_.as_deref().unwrap_or(""),
        e.reason.as_deref().unwrap_or(""),
        e.message.as_deref().unwrap_or("").trim()
    );
    (time, line)
}

/// One container log as read: the previous instance's when `previous`.
struct LogRead<'p> {
    pod: &'p Pod,
    container: String,
    previous: bool,
    text: String,
    /// Why it could not be read because the cluster failed (after retries).
    unreadable: Option<String>,
}

pub struct Collect<'a> {
    pub cluster: &'a Cluster,
    pub dir: PathBuf,
    pub namespace: &'a str,
    pub applied: &'a [Applied],
    /// The last state already seen of each applied object, by index; `None` is read again.
    pub seen: Vec<Option<Value>>,
    /// The pods already seen; `None` lists them.
    pub pods: Option<Vec<Pod>>,
    pub replica_label: Option<&'a str>,
    pub log_limit: usize,
    /// Only the events of these objects (a shared namespace, like KFP's); none: all.
    pub events_of: Option<&'a [String]>,
}

impl Collect<'_> {
    /// What the operators made of the applied TrainJobs and JobSets, which no example holds:
    /// a TrainJob's JobSet (of its name, as Trainer names it) and a JobSet's Jobs (by
    /// JobSet's label), into `objects/made/`. Problems reading them, as text.
    async fn made_objects(&self) -> Vec<String> {
        let named = |group: &'static str, kind: &'static str| {
            self.applied.iter().filter(move |a| a.kind.resource.group == group && a.kind.resource.kind == kind)
        };
        let trainjobs: Vec<&str> = named("trainer.kubeflow.org", "TrainJob").map(|a| a.name.as_str()).collect();
        let jobsets: Vec<&str> =
            named("jobset.x-k8s.io", "JobSet").map(|a| a.name.as_str()).chain(trainjobs.iter().copied()).collect();
        if jobsets.is_empty() {
            return Vec::new();
        }
        let mut problems = Vec::new();
        let mut found = Vec::new();
        if let Some(kind) = self.cluster.served_kind("jobset.x-k8s.io", "JobSet").await {
            for name in &trainjobs {
                match self.cluster.list_matching(&kind, self.namespace, Some(name), None).await {
                    Ok(listed) => found.extend(listed.into_iter().map(|o| ("jobset", o))),
                    Err(e) => problems.push(format!("the JobSet of TrainJob {name}: {e}")),
                }
            }
        }
        if let Some(kind) = self.cluster.served_kind("batch", "Job").await {
            for name in &jobsets {
                let selector = format!("jobset.sigs.k8s.io/jobset-name={name}");
                match self.cluster.list_matching(&kind, self.namespace, None, Some(&selector)).await {
                    Ok(listed) => found.extend(listed.into_iter().map(|o| ("job", o))),
                    Err(e) => problems.push(format!("the Jobs of JobSet {name}: {e}")),
                }
            }
        }
        for (kind, object) in found {
            let file =
                format!("{kind}.{}.yaml", object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or(""));
            if let Err(e) =
                write(&self.dir.join("objects").join("made").join(file_name(&file)), &to_yaml(&redact(object)))
            {
                problems.push(e.to_string());
            }
        }
        problems
    }

    /// Reads everything at once: object states, every container's log, the events.
    pub async fn run(self) -> Evidence {
        let mut evidence = Evidence::default();
        let pods = match self.pods.clone() {
            Some(pods) => pods,
            None => self.cluster.list_pods(self.namespace, None).await.unwrap_or_else(|e| {
                evidence.problems.push(format!("listing pods: {e}"));
                Vec::new()
            }),
        };
        let (objects, made, logs, events) =
            futures::join!(self.objects(), self.made_objects(), self.logs(&pods), self.cluster.events(self.namespace));
        evidence.problems.extend(made);
        evidence.problems.extend(objects.into_iter().filter_map(Result::err).map(|e| e.to_string()));
        self.write_pods(&pods, logs, &mut evidence);
        match events {
            Ok(events) => self.write_events(&events, &mut evidence),
            Err(e) => evidence.problems.push(format!("listing events: {e}")),
        }
        evidence.pods.sort();
        evidence.logs.sort_by(|a, b| (&a.pod, &a.container).cmp(&(&b.pod, &b.container)));
        evidence
    }

    /// The last state of every applied object into `objects/`, from what the watches saw
    /// when they saw it.
    async fn objects(&self) -> Vec<Result<(), FileError>> {
        join_all(self.applied.iter().enumerate().map(|(i, applied)| async move {
            let state = match self.seen.get(i).cloned().flatten() {
                Some(seen) => Ok(seen),
                None => self.cluster.get(applied).await,
            };
            let file = format!("{}.{}.yaml", applied.kind.resource.kind.to_lowercase(), applied.name);
            let text = match state {
                Ok(obj) => to_yaml(&redact(obj)),
                Err(e) => format!("# could not read {}: {e}\n", applied.name),
            };
            write(&self.dir.join("objects").join(file_name(&file)), &text)
        }))
        .await
    }

    /// Every container's log (init containers too), and the previous instance's of one that
    /// restarted.
    async fn logs<'p>(&self, pods: &'p [Pod]) -> Vec<LogRead<'p>> {
        let wanted: Vec<(&Pod, String, bool)> = pods
            .iter()
            .flat_map(|pod| {
                let spec = pod.spec.clone().unwrap_or_default();
                let names: Vec<String> = spec
                    .init_containers
                    .iter()
                    .flatten()
                    .chain(spec.containers.iter())
                    .map(|c| c.name.clone())
                    .collect();
                names.into_iter().flat_map(move |c| {
                    let previous = restarted(pod, &c);
                    std::iter::once((pod, c.clone(), false)).chain(previous.then_some((pod, c, true)))
                })
            })
            .collect();
        join_all(wanted.into_iter().map(|(pod, container, previous)| async move {
            let (text, unreadable) =
                match self.cluster.logs(self.namespace, &pod.name_any(), &container, previous).await {
                    Ok(text) => (text, None),
                    Err(e) => {
                        let unreadable =
                            e.infrastructure.then(|| format!("pod {} container {container}: {e}", pod.name_any()));
                        (format!("[kubevet: no log: {e}]\n"), unreadable)
                    }
                };
            LogRead { pod, container, previous, text, unreadable }
        }))
        .await
    }

    /// `pods/<pod>/pod.yaml` and each container's log, capped; the logs kept for the verdict.
    fn write_pods(&self, pods: &[Pod], logs: Vec<LogRead<'_>>, evidence: &mut Evidence) {
        for pod in pods {
            let state = serde_json::to_value(pod).map(|v| to_yaml(&redact(v))).unwrap_or_default();
            if let Err(e) = write(&self.dir.join("pods").join(file_name(&pod.name_any())).join("pod.yaml"), &state) {
                evidence.problems.push(e.to_string());
            }
            evidence.pods.push(pod.name_any());
        }
        for LogRead { pod, container, previous, text, unreadable } in logs {
            let pod_name = pod.name_any();
            let suffix = if previous { ".previous.log" } else { ".log" };
            let file =
                self.dir.join("pods").join(file_name(&pod_name)).join(format!("{}{suffix}", file_name(&container)));
            if let Err(e) = write(&file, &cap(&text, self.log_limit)) {
                evidence.problems.push(e.to_string());
            }
            if !previous {
                evidence.logs.push(ContainerLog {
                    replica: self.replica_label.and_then(|l| pod.labels().get(l).cloned()),
                    failed: container_failed(pod, &container),
                    failed_at: failed_run(pod, &container).map(|(_, at)| at).filter(|at| !at.is_empty()),
                    pod: pod_name,
                    container,
                    text,
                    unreadable,
                });
            }
        }
    }

    /// `events.txt`: the namespace's events (only those of `events_of` when set), by time.
    fn write_events(&self, events: &[Event], evidence: &mut Evidence) {
        let wanted = |e: &&Event| {
            self.events_of
                .is_none_or(|names| e.involved_object.name.as_ref().is_some_and(|n| names.iter().any(|x| x == n)))
        };
        let mut lines: Vec<(String, String)> = events.iter().filter(wanted).map(event_line).collect();
        lines.sort();
        evidence.events = lines.into_iter().map(|(_, l)| l).collect();
        let text: String = evidence.events.iter().map(|l| format!("{l}\n")).collect();
        if let Err(e) = write(&self.dir.join("events.txt"), &text) {
            evidence.problems.push(e.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn caps_keep_the_end_and_say_how_much_was_cut() {
        let capped = cap("0123456789", 4);
        assert_eq!(capped, "[kubevet: the first 6 bytes of this log were cut; the limit is 4 bytes]\n6789");
        assert_eq!(cap("short", 10), "short");
        assert!(cap("ééé", 3).ends_with("é"));
    }

    #[test]
    fn secrets_are_redacted() {
        let applied = r#"{"kind":"Secret","stringData":{"password":"hunter2"}}"#;
        let s = redact(json!({
            "kind": "Secret",
            "metadata": {
                "name": "s",
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": applied, "team": "ml"},
                "managedFields": [{"manager": "kubectl"}],
            },
            "data": {"token": "c2VjcmV0", "ca.crt": "Y2E="},
            "stringData": {"password": "hunter2"},
        }));
        for pointer in ["/data/token", "/data/ca.crt", "/stringData/password"] {
            assert_eq!(s.pointer(pointer), Some(&json!("<redacted by kubevet>")), "{pointer}");
        }
        let text = s.to_string();
        assert!(!text.contains("hunter2") && !text.contains("c2VjcmV0"), "no secret value anywhere: {text}");
        assert_eq!(s["metadata"]["annotations"], json!({"team": "ml"}), "the applied copy goes, the rest stays");
        assert!(s["metadata"].get("managedFields").is_none());
        // Other kinds keep their data; only the field managers' bookkeeping goes.
        let config =
            redact(json!({"kind": "ConfigMap", "metadata": {"name": "c", "managedFields": []}, "data": {"k": "v"}}));
        assert_eq!((config["data"]["k"].as_str(), config["metadata"].get("managedFields")), (Some("v"), None));
    }
}
