//! The training-job semantics of the stand-in, kept free of I/O so that they can be unit-tested:
//! which pods a job wants, how they look, and what the job's status is given its pods.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{Pod, Service},
    jiff::Timestamp,
};
use kube::{ResourceExt, api::DynamicObject};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framework {
    PyTorch,
    TensorFlow,
}

impl Framework {
    pub fn kind(self) -> &'static str {
        match self {
            Framework::PyTorch => "PyTorchJob",
            Framework::TensorFlow => "TFJob",
        }
    }
    pub fn plural(self) -> &'static str {
        match self {
            Framework::PyTorch => "pytorchjobs",
            Framework::TensorFlow => "tfjobs",
        }
    }
    fn replica_specs_field(self) -> &'static str {
        match self {
            Framework::PyTorch => "pytorchReplicaSpecs",
            Framework::TensorFlow => "tfReplicaSpecs",
        }
    }
    fn default_container(self) -> &'static str {
        match self {
            Framework::PyTorch => "pytorch",
            Framework::TensorFlow => "tensorflow",
        }
    }
    fn port(self) -> (&'static str, i64) {
        match self {
            Framework::PyTorch => ("pytorchjob-port", 23456),
            Framework::TensorFlow => ("tfjob-port", 2222),
        }
    }
    fn operator_name(self) -> &'static str {
        match self {
            Framework::PyTorch => "pytorchjob-controller",
            Framework::TensorFlow => "tfjob-controller",
        }
    }
    /// The replica types whose index-0 pod decides success, in order of precedence.
    fn chief_types(self) -> &'static [&'static str] {
        match self {
            Framework::PyTorch => &["Master"],
            Framework::TensorFlow => &["Chief", "Master"],
        }
    }
}

#[derive(Debug, Clone)]
struct ReplicaSpec {
    rtype: String,
    replicas: i64,
    restart_policy: String,
    template: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredPod {
    pub name: String,
    rtype: String,
    index: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Created,
    Running,
    Succeeded(String),
    Failed(String),
}

pub struct JobView {
    framework: Framework,
    name: String,
    namespace: String,
    uid: String,
    replicas: Vec<ReplicaSpec>,
    status: Value,
    backoff_limit: Option<i64>,
    clean_pod_policy: String,
    all_workers_must_succeed: bool,
}

impl JobView {
    pub fn parse(obj: &DynamicObject, framework: Framework) -> Result<Self, String> {
        let spec = obj.data.get("spec").ok_or("no spec")?;
        let specs = spec
            .get(framework.replica_specs_field())
            .and_then(Value::as_object)
            .ok_or_else(|| format!("no spec.{}", framework.replica_specs_field()))?;
        let mut replicas: Vec<ReplicaSpec> = specs
            .iter()
            .map(|(rtype, rs)| ReplicaSpec {
                rtype: rtype.clone(),
                replicas: rs.get("replicas").and_then(Value::as_i64).unwrap_or(1),
                restart_policy: rs.get("restartPolicy").and_then(Value::as_str).unwrap_or("Never").to_string(),
                template: rs.get("template").cloned().unwrap_or_else(|| json!({})),
            })
            .collect();
        replicas.sort_by(|a, b| a.rtype.cmp(&b.rtype));
        let run_policy = spec.get("runPolicy");
        Ok(JobView {
            framework,
            name: obj.name_any(),
            namespace: obj.namespace().unwrap_or_default(),
            uid: obj.uid().unwrap_or_default(),
            replicas,
            status: obj.data.get("status").cloned().unwrap_or_else(|| json!({})),
            backoff_limit: run_policy.and_then(|r| r.get("backoffLimit")).and_then(Value::as_i64),
            clean_pod_policy: run_policy
                .and_then(|r| r.get("cleanPodPolicy"))
                .and_then(Value::as_str)
                .unwrap_or("None")
                .to_string(),
            all_workers_must_succeed: spec.get("successPolicy").and_then(Value::as_str) == Some("AllWorkers"),
        })
    }

    pub fn finished(&self) -> bool {
        self.condition_true("Succeeded") || self.condition_true("Failed")
    }

    fn condition_true(&self, ctype: &str) -> bool {
        self.conditions().iter().any(|c| c["type"] == ctype && c["status"] == "True")
    }

    fn conditions(&self) -> Vec<Value> {
        self.status["conditions"].as_array().cloned().unwrap_or_default()
    }

    pub fn desired_pods(&self) -> Vec<DesiredPod> {
        self.replicas
            .iter()
            .flat_map(|r| {
                (0..r.replicas).map(move |index| DesiredPod {
                    name: format!("{}-{}-{}", self.name, r.rtype.to_lowercase(), index),
                    rtype: r.rtype.clone(),
                    index,
                })
            })
            .collect()
    }

    fn spec_of(&self, rtype: &str) -> Option<&ReplicaSpec> {
        self.replicas.iter().find(|r| r.rtype == rtype)
    }

    fn labels(&self, rtype: &str, index: Option<i64>) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([
            ("training.kubeflow.org/job-name".to_string(), self.name.clone()),
            ("training.kubeflow.org/operator-name".to_string(), self.framework.operator_name().to_string()),
            ("training.kubeflow.org/replica-type".to_string(), rtype.to_lowercase()),
        ]);
        if let Some(i) = index {
            labels.insert("training.kubeflow.org/replica-index".to_string(), i.to_string());
            if i == 0 && self.framework.chief_types().contains(&rtype) {
                labels.insert("training.kubeflow.org/job-role".to_string(), "master".to_string());
            }
        }
        labels
    }

    fn owner_reference(&self) -> Value {
        json!([{
            "apiVersion": "kubeflow.org/v1", "kind": self.framework.kind(), "name": self.name,
            "uid": self.uid, "controller": true, "blockOwnerDeletion": true,
        }])
    }

    fn env_for(&self, pod: &DesiredPod) -> Vec<Value> {
        let (_, port) = self.framework.port();
        match self.framework {
            Framework::PyTorch => {
                let has_master = self.spec_of("Master").is_some();
                let world: i64 = self.replicas.iter().map(|r| r.replicas).sum();
                let rank = if pod.rtype == "Master" || !has_master { pod.index } else { pod.index + 1 };
                let master = if has_master { "master" } else { "worker" };
                vec![
                    json!({"name": "MASTER_PORT", "value": port.to_string()}),
                    json!({"name": "MASTER_ADDR", "value": format!("{}-{}-0", self.name, master)}),
                    json!({"name": "WORLD_SIZE", "value": world.to_string()}),
                    json!({"name": "RANK", "value": rank.to_string()}),
                    json!({"name": "PYTHONUNBUFFERED", "value": "1"}),
                ]
            }
            Framework::TensorFlow => {
                let cluster: BTreeMap<String, Vec<String>> = self
                    .replicas
                    .iter()
                    .map(|r| {
                        let rt = r.rtype.to_lowercase();
                        let hosts = (0..r.replicas)
                            .map(|i| format!("{}-{rt}-{i}.{}.svc:{port}", self.name, self.namespace))
                            .collect();
                        (rt, hosts)
                    })
                    .collect();
                let tf_config = json!({
                    "cluster": cluster,
                    "task": {"type": pod.rtype.to_lowercase(), "index": pod.index},
                    "environment": "cloud",
                });
                vec![json!({"name": "TF_CONFIG", "value": tf_config.to_string()})]
            }
        }
    }

    pub fn build_pod(&self, pod: &DesiredPod) -> Pod {
        let spec = self.spec_of(&pod.rtype).expect("desired pods come from replica specs");
        let mut template = spec.template.clone();
        let mut metadata = template.get("metadata").cloned().unwrap_or_else(|| json!({}));
        let mut labels: BTreeMap<String, String> =
            serde_json::from_value(metadata["labels"].clone()).unwrap_or_default();
        labels.extend(self.labels(&pod.rtype, Some(pod.index)));
        metadata["labels"] = json!(labels);
        metadata["name"] = json!(pod.name);
        metadata["namespace"] = json!(self.namespace);
        metadata["ownerReferences"] = self.owner_reference();
        let mut pod_spec = template["spec"].take();
        pod_spec["restartPolicy"] = json!(match spec.restart_policy.as_str() {
            "ExitCode" => "Never",
            other => other,
        });
        let env = self.env_for(pod);
        if let Some(containers) = pod_spec["containers"].as_array_mut() {
            for c in containers.iter_mut().filter(|c| c["name"] == self.framework.default_container()) {
                let mut all = c["env"].as_array().cloned().unwrap_or_default();
                all.extend(env.iter().cloned());
                c["env"] = json!(all);
            }
        }
        serde_json::from_value(json!({"metadata": metadata, "spec": pod_spec})).unwrap_or_else(|_| Pod::default())
    }

    pub fn build_service(&self, pod: &DesiredPod) -> Service {
        let (port_name, default_port) = self.framework.port();
        let port = self
            .spec_of(&pod.rtype)
            .and_then(|s| s.template["spec"]["containers"].as_array())
            .into_iter()
            .flatten()
            .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
            .find(|p| p["name"] == port_name)
            .and_then(|p| p["containerPort"].as_i64())
            .unwrap_or(default_port);
        let mut selector = self.labels(&pod.rtype, Some(pod.index));
        selector.remove("training.kubeflow.org/job-role");
        serde_json::from_value(json!({
            "metadata": {
                "name": pod.name, "namespace": self.namespace,
                "labels": self.labels(&pod.rtype, None), "ownerReferences": self.owner_reference(),
            },
            "spec": {"clusterIP": "None", "selector": selector,
                     "ports": [{"name": port_name, "port": port, "targetPort": port}]},
        }))
        .unwrap_or_default()
    }

    /// The real operator's rules: a pod that failed beyond its restart policy, or restarts
    /// past `runPolicy.backoffLimit`, fail the job; the chief (PyTorch Master; TF Chief or
    /// Master, else worker 0) succeeding ends it successfully.
    pub fn judge(&self, pods: &[Pod]) -> Verdict {
        let kind = self.framework.kind();
        let job = format!("{}/{}", self.namespace, self.name);
        for r in &self.replicas {
            let failed = pods_of(pods, &r.rtype).filter(|p| phase(p) == "Failed").count();
            if failed > 0 {
                return Verdict::Failed(format!(
                    "{kind} {job} is failed because {failed} {} replica(s) failed.",
                    r.rtype
                ));
            }
        }
        if let Some(limit) = self.backoff_limit {
            let restarts: i64 = pods.iter().map(restart_count).sum();
            if restarts >= limit && restarts > 0 {
                return Verdict::Failed(format!(
                    "{kind} {job} has failed because it has reached the specified backoff limit"
                ));
            }
        }
        let succeeded = |rtype: &str, index: i64| {
            pods_of(pods, rtype).any(|p| replica_index(p) == Some(index) && phase(p) == "Succeeded")
        };
        let chief = self.framework.chief_types().iter().find(|t| self.spec_of(t).is_some());
        let done = match (chief, self.spec_of("Worker")) {
            (Some(chief), _) => succeeded(chief, 0),
            (None, Some(workers)) if self.framework == Framework::PyTorch || self.all_workers_must_succeed => {
                (0..workers.replicas).all(|i| succeeded("Worker", i))
            }
            (None, Some(_)) => succeeded("Worker", 0),
            (None, None) => false,
        };
        if done {
            return Verdict::Succeeded(format!("{kind} {job} successfully completed."));
        }
        if pods.iter().any(|p| phase(p) == "Running") { Verdict::Running } else { Verdict::Created }
    }

    pub fn next_status(&self, verdict: &Verdict, pods: &[Pod]) -> Value {
        let kind = self.framework.kind();
        let now = Timestamp::now().to_string();
        let mut conditions = self.conditions();
        let mut set = |ctype: &str, status: &str, reason: String, message: String| {
            if let Some(c) = conditions.iter_mut().find(|c| c["type"] == ctype) {
                if c["status"] == status {
                    return;
                }
                *c = json!({"type": ctype, "status": status, "reason": reason, "message": message,
                            "lastUpdateTime": now, "lastTransitionTime": now});
            } else {
                conditions.push(json!({"type": ctype, "status": status, "reason": reason,
                                       "message": message, "lastUpdateTime": now, "lastTransitionTime": now}));
            }
        };
        set("Created", "True", format!("{kind}Created"), format!("{kind} {} is created.", self.name));
        let job = format!("{}/{}", self.namespace, self.name);
        match verdict {
            Verdict::Created => {}
            Verdict::Running => set("Running", "True", format!("{kind}Running"), format!("{kind} {job} is running.")),
            Verdict::Succeeded(msg) => {
                set("Running", "False", format!("{kind}Running"), format!("{kind} {job} is running."));
                set("Succeeded", "True", format!("{kind}Succeeded"), msg.clone());
            }
            Verdict::Failed(msg) => {
                set("Running", "False", format!("{kind}Running"), format!("{kind} {job} is running."));
                set("Failed", "True", format!("{kind}Failed"), msg.clone());
            }
        }
        let replica_statuses: BTreeMap<String, Value> = self
            .replicas
            .iter()
            .map(|r| {
                let of_type: Vec<&Pod> = pods_of(pods, &r.rtype).collect();
                let count = |ph: &str| of_type.iter().filter(|p| phase(p) == ph).count();
                let labels = self.labels(&r.rtype, None);
                let selector = labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
                let status = json!({"active": count("Running") + count("Pending"), "succeeded": count("Succeeded"),
                                    "failed": count("Failed"), "selector": selector,
                                    "labelSelector": {"matchLabels": labels}});
                (r.rtype.clone(), status)
            })
            .collect();
        let mut status = json!({"conditions": conditions, "replicaStatuses": replica_statuses});
        status["startTime"] = self.status.get("startTime").cloned().unwrap_or_else(|| json!(now));
        if let Some(t) = self.status.get("completionTime") {
            status["completionTime"] = t.clone();
        } else if matches!(verdict, Verdict::Succeeded(_)) {
            status["completionTime"] = json!(now);
        }
        status
    }

    /// Pods that `runPolicy.cleanPodPolicy` removes once the job has finished.
    pub fn pods_to_clean(&self, pods: &[Pod]) -> Vec<String> {
        pods.iter()
            .filter(|p| match self.clean_pod_policy.as_str() {
                "All" => true,
                "Running" => matches!(phase(p), "Running" | "Pending"),
                _ => false,
            })
            .map(|p| p.name_any())
            .collect()
    }
}

fn pods_of<'a>(pods: &'a [Pod], rtype: &str) -> impl Iterator<Item = &'a Pod> {
    let wanted = rtype.to_lowercase();
    pods.iter().filter(move |p| p.labels().get("training.kubeflow.org/replica-type") == Some(&wanted))
}

fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending")
}

fn replica_index(pod: &Pod) -> Option<i64> {
    pod.labels().get("training.kubeflow.org/replica-index")?.parse().ok()
}

fn restart_count(pod: &Pod) -> i64 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| i64::from(c.restart_count)).sum())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(framework: Framework, specs: Value) -> JobView {
        let field = framework.replica_specs_field();
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "kubeflow.org/v1", "kind": framework.kind(),
            "metadata": {"name": "j", "namespace": "ns", "uid": "u1"},
            "spec": {field: specs},
        }))
        .expect("valid object");
        JobView::parse(&obj, framework).expect("valid job")
    }

    fn pod(rtype: &str, index: i64, phase: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": format!("j-{}-{index}", rtype.to_lowercase()), "labels": {
                "training.kubeflow.org/replica-type": rtype.to_lowercase(),
                "training.kubeflow.org/replica-index": index.to_string()}},
            "status": {"phase": phase},
        }))
        .expect("valid pod")
    }

    fn template() -> Value {
        json!({"spec": {"containers": [{"name": "pytorch", "image": "busybox"}]}})
    }

    #[test]
    fn pytorch_succeeds_when_master_succeeds_even_if_worker_runs() {
        let j = job(
            Framework::PyTorch,
            json!({
            "Master": {"replicas": 1, "template": template()},
            "Worker": {"replicas": 2, "template": template()}}),
        );
        assert_eq!(j.desired_pods().len(), 3);
        let pods = [pod("Master", 0, "Succeeded"), pod("Worker", 0, "Running"), pod("Worker", 1, "Running")];
        assert_eq!(j.judge(&pods), Verdict::Succeeded("PyTorchJob ns/j successfully completed.".into()));
        let status = j.next_status(&j.judge(&pods), &pods);
        let conds = status["conditions"].as_array().expect("conditions");
        assert!(conds.iter().any(|c| c["type"] == "Succeeded" && c["reason"] == "PyTorchJobSucceeded"));
        assert_eq!(status["replicaStatuses"]["Worker"]["active"], 2);
    }

    #[test]
    fn a_failed_pod_fails_the_job_with_the_real_message() {
        let j = job(Framework::PyTorch, json!({"Master": {"replicas": 1, "template": template()}}));
        let v = j.judge(&[pod("Master", 0, "Failed")]);
        assert_eq!(v, Verdict::Failed("PyTorchJob ns/j is failed because 1 Master replica(s) failed.".into()));
    }

    #[test]
    fn tfjob_without_chief_succeeds_on_worker_zero() {
        let j = job(Framework::TensorFlow, json!({"Worker": {"replicas": 2, "template": template()}}));
        assert!(matches!(
            j.judge(&[pod("Worker", 0, "Succeeded"), pod("Worker", 1, "Running")]),
            Verdict::Succeeded(_)
        ));
        assert_eq!(j.judge(&[pod("Worker", 1, "Succeeded"), pod("Worker", 0, "Running")]), Verdict::Running);
    }

    #[test]
    fn pods_carry_the_real_labels_env_and_restart_policy() {
        let j = job(
            Framework::PyTorch,
            json!({
            "Master": {"replicas": 1, "restartPolicy": "ExitCode", "template": template()},
            "Worker": {"replicas": 1, "template": template()}}),
        );
        let desired = j.desired_pods();
        let worker = desired.iter().find(|d| d.rtype == "Worker").expect("worker");
        let p = j.build_pod(worker);
        assert_eq!(p.metadata.name.as_deref(), Some("j-worker-0"));
        assert_eq!(p.labels()["training.kubeflow.org/replica-type"], "worker");
        let env = p.spec.as_ref().expect("spec").containers[0].env.clone().expect("env");
        assert!(env.iter().any(|e| e.name == "RANK" && e.value.as_deref() == Some("1")));
        let master = j.build_pod(desired.iter().find(|d| d.rtype == "Master").expect("master"));
        assert_eq!(master.spec.expect("spec").restart_policy.as_deref(), Some("Never"));
        assert_eq!(master.metadata.labels.expect("labels")["training.kubeflow.org/job-role"], "master");
    }

    #[test]
    fn unchanged_verdict_keeps_condition_timestamps() {
        let mut j = job(Framework::PyTorch, json!({"Master": {"replicas": 1, "template": template()}}));
        let pods = [pod("Master", 0, "Running")];
        let first = j.next_status(&Verdict::Running, &pods);
        j.status = first.clone();
        assert_eq!(j.next_status(&Verdict::Running, &pods), first);
    }
}
