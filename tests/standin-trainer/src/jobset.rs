//! The JobSet semantics of the stand-in (JobSet v0.12.0's `pkg/controllers`), free of I/O so
//! that they can be unit-tested: which Jobs a JobSet wants, their labels and annotations, the
//! replicated jobs' status, the success policy and the failure policy with its restarts.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use serde_json::{Map, Value, json};

pub const NAME_KEY: &str = "jobset.sigs.k8s.io/jobset-name";
const UID_KEY: &str = "jobset.sigs.k8s.io/jobset-uid";
const RJOB_KEY: &str = "jobset.sigs.k8s.io/replicatedjob-name";
const RJOB_REPLICAS_KEY: &str = "jobset.sigs.k8s.io/replicatedjob-replicas";
const GLOBAL_REPLICAS_KEY: &str = "jobset.sigs.k8s.io/global-replicas";
const JOB_INDEX_KEY: &str = "jobset.sigs.k8s.io/job-index";
const JOB_GLOBAL_INDEX_KEY: &str = "jobset.sigs.k8s.io/job-global-index";
const JOB_KEY: &str = "jobset.sigs.k8s.io/job-key";
const GROUP_NAME_KEY: &str = "jobset.sigs.k8s.io/group-name";
const GROUP_REPLICAS_KEY: &str = "jobset.sigs.k8s.io/group-replicas";
const JOB_GROUP_INDEX_KEY: &str = "jobset.sigs.k8s.io/job-group-index";
const RESTARTS_KEY: &str = "jobset.sigs.k8s.io/restart-attempt";

/// What the real JobSet webhook's `Default` sets: success policy All, Indexed Jobs whose pods
/// restart on failure, DNS hostnames and not-ready addresses published.
pub fn default_spec(spec: &mut Value) {
    let Some(spec) = spec.as_object_mut() else { return };
    spec.entry("successPolicy").or_insert_with(|| json!({"operator": "All"}));
    let network = spec.entry("network").or_insert_with(|| json!({}));
    if let Some(network) = network.as_object_mut() {
        network.entry("enableDNSHostnames").or_insert(json!(true));
        network.entry("publishNotReadyAddresses").or_insert(json!(true));
    }
    for rjob in spec.get_mut("replicatedJobs").and_then(Value::as_array_mut).into_iter().flatten() {
        if let Some(rjob) = rjob.as_object_mut() {
            rjob.entry("replicas").or_insert(json!(1));
            rjob.entry("groupName").or_insert(json!("default"));
        }
        if let Some(job_spec) = rjob.pointer_mut("/template/spec").and_then(Value::as_object_mut) {
            job_spec.entry("completionMode").or_insert(json!("Indexed"));
        }
        if let Some(pod_spec) = rjob.pointer_mut("/template/spec/template/spec").and_then(Value::as_object_mut) {
            let policy = pod_spec.entry("restartPolicy").or_insert(json!(""));
            if policy.as_str() == Some("") {
                *policy = json!("OnFailure");
            }
        }
    }
}

/// One JobSet as the reconciler reads it.
pub struct JobSetView {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub spec: Value,
    pub status: Value,
}

/// The JobSet's Jobs, sorted as the real controller sorts them.
#[derive(Default)]
pub struct Children {
    pub active: Vec<Job>,
    pub successful: Vec<Job>,
    pub failed: Vec<Job>,
    /// Jobs of an earlier restart attempt, to delete.
    pub previous: Vec<Job>,
}

/// What one reconcile wants done.
#[derive(Default)]
pub struct Plan {
    pub status: Value,
    pub create: Vec<Value>,
    /// Jobs to delete (foreground, as the real controller does).
    pub delete: Vec<String>,
    pub service: Option<Value>,
    /// Warning events `(reason, message)` to record on the JobSet.
    pub events: Vec<(String, String)>,
}

fn int(v: &Value, pointer: &str, default: i64) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(default)
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn finished_as(job: &Job) -> Option<&str> {
    job.status.as_ref()?.conditions.as_ref()?.iter().find_map(|c| {
        (c.status == "True" && (c.type_ == "Complete" || c.type_ == "Failed")).then_some(c.type_.as_str())
    })
}

fn failure_condition(job: &Job) -> Option<&k8s_openapi::api::batch::v1::JobCondition> {
    job.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Failed" && c.status == "True")
}

fn label<'a>(job: &'a Job, key: &str) -> &'a str {
    job.metadata.labels.as_ref().and_then(|l| l.get(key)).map(String::as_str).unwrap_or("")
}

impl JobSetView {
    fn rjobs(&self) -> impl Iterator<Item = &Value> {
        self.spec.get("replicatedJobs").and_then(Value::as_array).into_iter().flatten()
    }

    fn restarts(&self) -> i64 {
        int(&self.status, "/restarts", 0)
    }

    pub fn subdomain(&self) -> String {
        let explicit = text(&self.spec, "/network/subdomain");
        if explicit.is_empty() { self.name.clone() } else { explicit.to_string() }
    }

    fn dns_hostnames(&self) -> bool {
        self.spec.pointer("/network/enableDNSHostnames").and_then(Value::as_bool) == Some(true)
    }

    pub fn suspended(&self) -> bool {
        self.spec.get("suspend").and_then(Value::as_bool) == Some(true)
    }

    fn condition_true(&self, ctype: &str) -> bool {
        conditions(&self.status).iter().any(|c| c["type"] == ctype && c["status"] == "True")
    }

    pub fn finished(&self) -> bool {
        self.condition_true("Completed") || self.condition_true("Failed")
    }

    /// Sorts the Jobs the JobSet controls as `getChildJobs` does.
    pub fn classify(&self, jobs: Vec<Job>) -> Children {
        let mut children = Children::default();
        for job in jobs {
            let attempt: i64 = label(&job, RESTARTS_KEY).parse().unwrap_or(-1);
            if attempt < self.restarts() {
                children.previous.push(job);
                continue;
            }
            match finished_as(&job) {
                None => children.active.push(job),
                Some("Failed") => children.failed.push(job),
                Some(_) => children.successful.push(job),
            }
        }
        children
    }

    /// `status.replicatedJobsStatus`, in the spec's order. `ready` counts a Job's ready pods:
    /// Kubernetes 1.20 has no `Job.status.ready`, so the stand-in counts them itself.
    fn replicated_statuses(&self, children: &Children, ready: &BTreeMap<String, i64>) -> Vec<Value> {
        self.rjobs()
            .map(|rjob| {
                let name = text(rjob, "/name");
                let of = |jobs: &'_ [Job]| jobs.iter().filter(|j| label(j, RJOB_KEY) == name).count();
                let active: Vec<&Job> = children.active.iter().filter(|j| label(j, RJOB_KEY) == name).collect();
                let ready_jobs = active
                    .iter()
                    .filter(|job| {
                        let spec = job.spec.as_ref();
                        let parallelism = spec.and_then(|s| s.parallelism).unwrap_or(1);
                        let pods = spec.and_then(|s| s.completions).map_or(parallelism, |c| c.min(parallelism));
                        let succeeded = job.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0);
                        let ready = ready.get(job.metadata.name.as_deref().unwrap_or("")).copied().unwrap_or(0);
                        i64::from(succeeded).saturating_add(ready) >= i64::from(pods)
                    })
                    .count();
                let running = active.iter().filter(|j| j.status.as_ref().and_then(|s| s.active).unwrap_or(0) > 0);
                json!({
                    "name": name,
                    "ready": ready_jobs,
                    "succeeded": of(&children.successful),
                    "failed": of(&children.failed),
                    "active": running.count(),
                    "suspended": 0,
                })
            })
            .collect()
    }

    /// One pass of the real `reconcile`, as a plan.
    pub fn reconcile(&self, children: &Children, ready: &BTreeMap<String, i64>, now: &str) -> Plan {
        let mut status = self.status.clone();
        if !status.is_object() {
            status = json!({});
        }
        let statuses = self.replicated_statuses(children, ready);
        status["replicatedJobsStatus"] = json!(statuses);
        let mut plan = Plan::default();
        if self.finished() {
            plan.delete = names(&children.active);
            plan.status = status;
            return plan;
        }
        plan.delete = names(&children.previous);
        let all_ready = self.rjobs().zip(&statuses).all(|(rjob, s)| int(s, "/ready", 0) == int(rjob, "/replicas", 1));
        if !self.suspended() && all_ready {
            set_condition(&mut status, condition("Restarting", "False", "JobsReady", "all jobs are ready"), now);
        }
        if !children.failed.is_empty() {
            self.apply_failure_policy(&children.failed, &mut status, &mut plan, now);
        } else if self.success_policy_met(&children.successful) {
            set_condition(
                &mut status,
                condition("Completed", "True", "AllJobsCompleted", "jobset completed successfully"),
                now,
            );
            set_condition(
                &mut status,
                condition("Restarting", "False", "JobSetCompleted", "jobset completed successfully"),
                now,
            );
            status["terminalState"] = json!("Completed");
        } else {
            plan.service = self.dns_hostnames().then(|| self.headless_service());
            plan.create = self.jobs_to_create(children, &statuses);
            let (kind, reason, message) = if self.suspended() {
                ("True", "SuspendedJobs", "jobset is suspended")
            } else {
                ("False", "ResumeJobs", "jobset is resumed")
            };
            if self.suspended() || self.condition_true("Suspended") {
                set_condition(&mut status, condition("Suspended", kind, reason, message), now);
            }
        }
        plan.status = status;
        plan
    }

    fn success_policy_met(&self, successful: &[Job]) -> bool {
        if successful.is_empty() {
            return false;
        }
        let targets: Vec<&str> = self
            .spec
            .pointer("/successPolicy/targetReplicatedJobs")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let targeted = |name: &str| targets.is_empty() || targets.contains(&name);
        let matching = successful.iter().filter(|j| targeted(label(j, RJOB_KEY))).count();
        let expected: i64 = match text(&self.spec, "/successPolicy/operator") {
            "Any" => 1,
            _ => self.rjobs().filter(|r| targeted(text(r, "/name"))).map(|r| int(r, "/replicas", 1)).sum(),
        };
        i64::try_from(matching).unwrap_or(i64::MAX) >= expected
    }

    /// `executeFailurePolicy`: fail at once without a policy; else the first rule that matches
    /// the earliest failed Job decides (RestartJobSet when none does), within `maxRestarts`.
    fn apply_failure_policy(&self, failed: &[Job], status: &mut Value, plan: &mut Plan, now: &str) {
        let Some(policy) = self.spec.get("failurePolicy").filter(|p| p.is_object()) else {
            let first = first_failed(failed.iter());
            let message = with_first_failed("jobset failed due to one or more job failures", first);
            fail(status, "FailedJobs", &message, now);
            return;
        };
        let rules = policy.get("rules").and_then(Value::as_array).cloned().unwrap_or_default();
        let (rule, job) = rules
            .iter()
            .find_map(|rule| {
                first_failed(failed.iter().filter(|j| rule_applies(rule, j))).map(|job| (Some(rule), Some(job)))
            })
            .unwrap_or((None, first_failed(failed.iter())));
        let action = rule.map_or("RestartJobSet", |r| text(r, "/action"));
        let rule_reason =
            rule.map_or("DefaultFailurePolicy".to_string(), |r| format!("FailurePolicy_{}", text(r, "/name")));
        match action {
            "FailJobSet" => {
                let message = with_first_failed("applying FailJobSet failure policy action", job);
                fail(status, "FailJobSetFailurePolicyAction", &message, now);
            }
            "RestartJobSet" | "RestartJobSetAndIgnoreMaxRestarts" => {
                let counts = action == "RestartJobSet";
                if counts && int(status, "/restartsCountTowardsMax", 0) >= int(policy, "/maxRestarts", 0) {
                    let message = with_first_failed("jobset failed due to reaching max number of restarts", job);
                    fail(status, "ReachedMaxRestarts", &message, now);
                    return;
                }
                let (reason, base) = if counts {
                    ("RestartJobSetFailurePolicyAction", "applying RestartJobSet failure policy action")
                } else {
                    (
                        "RestartJobSetAndIgnoreMaxRestartsFailurePolicyAction",
                        "applying RestartJobSetAndIgnoreMaxRestarts failure policy action",
                    )
                };
                let message = with_first_failed(base, job);
                status["restarts"] = json!(self.restarts().saturating_add(1));
                if counts {
                    status["restartsCountTowardsMax"] =
                        json!(int(status, "/restartsCountTowardsMax", 0).saturating_add(1));
                }
                set_condition(status, condition("Restarting", "True", &rule_reason, &message), now);
                plan.events.push((reason.to_string(), message));
            }
            other => plan.events.push((
                "FailurePolicy".into(),
                format!("the failure policy action {other} needs a feature gate this stand-in does not emulate"),
            )),
        }
    }

    fn jobs_to_create(&self, children: &Children, statuses: &[Value]) -> Vec<Value> {
        let blocking = text(&self.spec, "/failurePolicy/restartStrategy") == "BlockingRecreate";
        if blocking && !children.previous.is_empty() {
            return Vec::new();
        }
        let taken: Vec<&str> = [&children.active, &children.successful, &children.failed, &children.previous]
            .into_iter()
            .flatten()
            .filter_map(|j| j.metadata.name.as_deref())
            .collect();
        let mut jobs = Vec::new();
        for rjob in self.rjobs() {
            if !self.dependencies_reached(rjob, statuses) {
                continue;
            }
            for index in 0..int(rjob, "/replicas", 1) {
                let job = self.job(rjob, index);
                if !taken.contains(&text(&job, "/metadata/name")) {
                    jobs.push(job);
                }
            }
        }
        jobs
    }

    /// `dependsOn`: every named replicated job has all its Jobs Complete (or Ready).
    fn dependencies_reached(&self, rjob: &Value, statuses: &[Value]) -> bool {
        rjob.get("dependsOn").and_then(Value::as_array).into_iter().flatten().all(|dep| {
            let name = text(dep, "/name");
            let replicas = self.rjobs().find(|r| text(r, "/name") == name).map_or(1, |r| int(r, "/replicas", 1));
            let Some(s) = statuses.iter().find(|s| text(s, "/name") == name) else { return false };
            match text(dep, "/status") {
                "Complete" => int(s, "/succeeded", 0) == replicas,
                _ => int(s, "/failed", 0) + int(s, "/ready", 0) + int(s, "/succeeded", 0) == replicas,
            }
        })
    }

    /// `constructJob`: the replicated job's template, named `<jobset>-<rjob>-<index>`, with the
    /// JobSet's labels and annotations on the Job and its pod template, owned by the JobSet.
    pub fn job(&self, rjob: &Value, index: i64) -> Value {
        let rjob_name = text(rjob, "/name");
        let job_name = format!("{}-{rjob_name}-{index}", self.name);
        let mut template = rjob.get("template").cloned().unwrap_or_else(|| json!({}));
        let marks = self.marks(rjob, index, &job_name);
        let metadata = json!({
            "name": job_name,
            "namespace": self.namespace,
            "labels": merged(template.pointer("/metadata/labels"), &marks),
            "annotations": merged(template.pointer("/metadata/annotations"), &marks),
            "ownerReferences": [{
                "apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet", "name": self.name,
                "uid": self.uid, "controller": true, "blockOwnerDeletion": true,
            }],
        });
        let mut spec = template.get_mut("spec").map(Value::take).unwrap_or_else(|| json!({}));
        let pod_labels = merged(spec.pointer("/template/metadata/labels"), &marks);
        let pod_annotations = merged(spec.pointer("/template/metadata/annotations"), &marks);
        spec["template"]["metadata"] = json!({"labels": pod_labels, "annotations": pod_annotations});
        if self.dns_hostnames() {
            spec["template"]["spec"]["subdomain"] = json!(self.subdomain());
        }
        spec["suspend"] = json!(self.suspended());
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec})
    }

    /// `labelAndAnnotateObject`: the same keys as labels and as annotations.
    fn marks(&self, rjob: &Value, index: i64, job_name: &str) -> Map<String, Value> {
        let rjob_name = text(rjob, "/name");
        let group = text(rjob, "/groupName");
        let replicas = int(rjob, "/replicas", 1);
        let (mut global_before, mut group_before, mut global, mut in_group) = (0, 0, 0, 0);
        let mut seen = false;
        for r in self.rjobs() {
            let n = int(r, "/replicas", 1);
            if text(r, "/name") == rjob_name {
                seen = true;
            }
            if !seen {
                global_before += n;
                if text(r, "/groupName") == group {
                    group_before += n;
                }
            }
            global += n;
            if text(r, "/groupName") == group {
                in_group += n;
            }
        }
        let pairs = [
            (NAME_KEY, self.name.clone()),
            (UID_KEY, self.uid.clone()),
            (RJOB_KEY, rjob_name.to_string()),
            (RESTARTS_KEY, self.restarts().to_string()),
            (RJOB_REPLICAS_KEY, replicas.to_string()),
            (GLOBAL_REPLICAS_KEY, global.to_string()),
            (JOB_INDEX_KEY, index.to_string()),
            (JOB_KEY, job_key(&self.namespace, job_name)),
            (JOB_GLOBAL_INDEX_KEY, (global_before + index).to_string()),
            (GROUP_NAME_KEY, group.to_string()),
            (GROUP_REPLICAS_KEY, in_group.to_string()),
            (JOB_GROUP_INDEX_KEY, (group_before + index).to_string()),
        ];
        pairs.into_iter().map(|(k, v)| (k.to_string(), json!(v))).collect()
    }

    /// `createHeadlessSvcIfNecessary`: the subdomain's headless Service.
    fn headless_service(&self) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {
                "name": self.subdomain(), "namespace": self.namespace,
                "ownerReferences": [{
                    "apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet", "name": self.name,
                    "uid": self.uid, "controller": true, "blockOwnerDeletion": true,
                }],
            },
            "spec": {
                "clusterIP": "None",
                "selector": {NAME_KEY: self.name},
                "publishNotReadyAddresses": self.spec.pointer("/network/publishNotReadyAddresses").and_then(Value::as_bool).unwrap_or(true),
            },
        })
    }
}

/// JobSet's job key: the SHA-1 of `<namespace>/<job>`, hex.
fn job_key(namespace: &str, job: &str) -> String {
    use sha1::Digest;
    sha1::Sha1::digest(format!("{namespace}/{job}").as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn merged(base: Option<&Value>, marks: &Map<String, Value>) -> Value {
    let mut out = base.and_then(Value::as_object).cloned().unwrap_or_default();
    out.extend(marks.iter().map(|(k, v)| (k.clone(), v.clone())));
    Value::Object(out)
}

fn names(jobs: &[Job]) -> Vec<String> {
    jobs.iter().filter_map(|j| j.metadata.name.clone()).collect()
}

fn rule_applies(rule: &Value, job: &Job) -> bool {
    let Some(failure) = failure_condition(job) else { return false };
    let list = |key: &str| -> Vec<String> {
        rule.get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
            .unwrap_or_default()
    };
    let reasons = list("onJobFailureReasons");
    let patterns = list("onJobFailureMessagePatterns");
    let targets = list("targetReplicatedJobs");
    let reason = failure.reason.as_deref().unwrap_or("");
    let message = failure.message.as_deref().unwrap_or("");
    (reasons.is_empty() || reasons.iter().any(|r| r == reason))
        && (patterns.is_empty() || patterns.iter().any(|p| regex::Regex::new(p).is_ok_and(|re| re.is_match(message))))
        && !label(job, RJOB_KEY).is_empty()
        && (targets.is_empty() || targets.iter().any(|t| t == label(job, RJOB_KEY)))
}

/// The Job that failed first (by its Failed condition's time).
fn first_failed<'a>(jobs: impl Iterator<Item = &'a Job>) -> Option<&'a Job> {
    jobs.filter_map(|j| failure_condition(j).map(|c| (c.last_transition_time.as_ref().map(|t| t.0), j)))
        .min_by_key(|(t, _)| *t)
        .map(|(_, j)| j)
}

fn with_first_failed(message: &str, job: Option<&Job>) -> String {
    format!("{message} (first failed job: {})", job.and_then(|j| j.metadata.name.as_deref()).unwrap_or(""))
}

fn fail(status: &mut Value, reason: &str, message: &str, now: &str) {
    set_condition(status, condition("Failed", "True", reason, message), now);
    set_condition(status, condition("Restarting", "False", "JobSetFailed", "jobset failed"), now);
    status["terminalState"] = json!("Failed");
}

fn condition(ctype: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({"type": ctype, "status": status, "reason": reason, "message": message})
}

pub fn conditions(status: &Value) -> Vec<Value> {
    status.get("conditions").and_then(Value::as_array).cloned().unwrap_or_default()
}

/// `updateCondition`: a new type is added only when True; a changed status gets a new time; a
/// changed reason or message keeps the old time.
pub fn set_condition(status: &mut Value, mut new: Value, now: &str) {
    let mut list = conditions(status);
    new["lastTransitionTime"] = json!(now);
    match list.iter_mut().find(|c| c["type"] == new["type"]) {
        Some(current) if current["status"] != new["status"] => *current = new,
        Some(current) if current["reason"] != new["reason"] || current["message"] != new["message"] => {
            new["lastTransitionTime"] = current["lastTransitionTime"].clone();
            *current = new;
        }
        Some(_) => {}
        None if new["status"] == "True" => list.push(new),
        None => {}
    }
    status["conditions"] = json!(list);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jobset(spec: Value, status: Value) -> JobSetView {
        let mut spec = spec;
        default_spec(&mut spec);
        JobSetView { name: "js".into(), namespace: "ns".into(), uid: "u1".into(), spec, status }
    }

    fn two_rjobs() -> Value {
        json!({"replicatedJobs": [
            {"name": "init", "template": {"spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}}},
            {"name": "node", "replicas": 2, "dependsOn": [{"name": "init", "status": "Complete"}],
             "template": {"spec": {"parallelism": 2, "completions": 2, "template": {"spec": {"containers": [{"name": "node"}]}}}}},
        ]})
    }

    fn job(value: Value, finished: Option<(&str, &str)>) -> Job {
        let mut job: Job = serde_json::from_value(value).expect("job");
        if let Some((ctype, time)) = finished {
            job.status = Some(
                serde_json::from_value(json!({"conditions": [{
                "type": ctype, "status": "True", "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit", "lastTransitionTime": time}]}))
                .expect("status"),
            );
        }
        job
    }

    #[test]
    fn jobs_carry_the_real_names_labels_and_wait_for_their_dependencies() {
        let js = jobset(two_rjobs(), json!({}));
        let children = js.classify(Vec::new());
        let plan = js.reconcile(&children, &BTreeMap::new(), "t0");
        let names: Vec<&str> = plan.create.iter().map(|j| text(j, "/metadata/name")).collect();
        assert_eq!(names, ["js-init-0"], "node waits for init to complete");
        let init = &plan.create[0];
        assert_eq!(text(init, "/metadata/labels/jobset.sigs.k8s.io~1replicatedjob-name"), "init");
        assert_eq!(text(init, "/spec/template/metadata/annotations/jobset.sigs.k8s.io~1job-global-index"), "0");
        assert_eq!(text(init, "/spec/template/spec/subdomain"), "js");
        assert_eq!(text(init, "/spec/template/spec/restartPolicy"), "OnFailure");
        assert_eq!(text(init, "/metadata/labels/jobset.sigs.k8s.io~1job-key").len(), 40);
        assert_eq!(plan.service.as_ref().map(|s| text(s, "/spec/clusterIP")), Some("None"));

        let done = job(plan.create[0].clone(), Some(("Complete", "2026-01-01T00:00:00Z")));
        let children = js.classify(vec![done]);
        let plan = js.reconcile(&children, &BTreeMap::new(), "t1");
        let names: Vec<&str> = plan.create.iter().map(|j| text(j, "/metadata/name")).collect();
        assert_eq!(names, ["js-node-0", "js-node-1"]);
        assert_eq!(text(&plan.create[1], "/metadata/labels/jobset.sigs.k8s.io~1job-global-index"), "2");
    }

    #[test]
    fn a_failed_job_fails_the_jobset_naming_the_first_one() {
        let js = jobset(two_rjobs(), json!({}));
        let a = job(js.job(&js.spec["replicatedJobs"][1], 0), Some(("Failed", "2026-01-01T00:00:09Z")));
        let b = job(js.job(&js.spec["replicatedJobs"][1], 1), Some(("Failed", "2026-01-01T00:00:01Z")));
        let plan = js.reconcile(&js.classify(vec![a, b]), &BTreeMap::new(), "t");
        let failed = &conditions(&plan.status)[0];
        assert_eq!(failed["reason"], "FailedJobs");
        assert_eq!(failed["message"], "jobset failed due to one or more job failures (first failed job: js-node-1)");
        assert_eq!(plan.status["terminalState"], "Failed");
        assert!(plan.create.is_empty());
    }

    #[test]
    fn a_failure_policy_restarts_until_max_restarts() {
        let mut spec = two_rjobs();
        spec["failurePolicy"] = json!({"maxRestarts": 1});
        let js = jobset(spec.clone(), json!({}));
        let failed = job(js.job(&js.spec["replicatedJobs"][0], 0), Some(("Failed", "2026-01-01T00:00:00Z")));
        let plan = js.reconcile(&js.classify(vec![failed.clone()]), &BTreeMap::new(), "t");
        assert_eq!(plan.status["restarts"], 1);
        let restarting = conditions(&plan.status).into_iter().find(|c| c["type"] == "Restarting").expect("restarting");
        assert_eq!(restarting["reason"], "DefaultFailurePolicy");

        let js = jobset(spec, plan.status);
        let children = js.classify(vec![failed]);
        assert_eq!(children.previous.len(), 1, "the first attempt's Job is now previous");
        let plan = js.reconcile(&children, &BTreeMap::new(), "t2");
        assert_eq!(plan.delete, ["js-init-0"]);
        assert!(plan.create.is_empty(), "recreated only once the old Job is gone");
        let again = job(js.job(&js.spec["replicatedJobs"][0], 0), Some(("Failed", "2026-01-01T00:00:05Z")));
        assert_eq!(
            text(&serde_json::to_value(&again).expect("json"), "/metadata/labels/jobset.sigs.k8s.io~1restart-attempt"),
            "1"
        );
        let plan = js.reconcile(&js.classify(vec![again]), &BTreeMap::new(), "t3");
        let failed = conditions(&plan.status).into_iter().find(|c| c["type"] == "Failed").expect("failed");
        assert_eq!(failed["reason"], "ReachedMaxRestarts");
        assert_eq!(
            failed["message"],
            "jobset failed due to reaching max number of restarts (first failed job: js-init-0)"
        );
    }

    #[test]
    fn success_needs_every_targeted_job() {
        let js = jobset(two_rjobs(), json!({}));
        let init = job(js.job(&js.spec["replicatedJobs"][0], 0), Some(("Complete", "2026-01-01T00:00:00Z")));
        let node0 = job(js.job(&js.spec["replicatedJobs"][1], 0), Some(("Complete", "2026-01-01T00:00:00Z")));
        let plan = js.reconcile(&js.classify(vec![init.clone(), node0.clone()]), &BTreeMap::new(), "t");
        assert!(!js.success_policy_met(&js.classify(vec![init.clone(), node0.clone()]).successful));
        assert_eq!(plan.status["replicatedJobsStatus"][1]["succeeded"], 1);
        let node1 = job(js.job(&js.spec["replicatedJobs"][1], 1), Some(("Complete", "2026-01-01T00:00:00Z")));
        let plan = js.reconcile(&js.classify(vec![init, node0, node1]), &BTreeMap::new(), "t");
        assert_eq!(conditions(&plan.status)[0]["message"], "jobset completed successfully");
    }

    #[test]
    fn conditions_keep_their_time_when_only_the_message_changes() {
        let mut status = json!({});
        set_condition(&mut status, condition("Restarting", "False", "JobsReady", "x"), "t0");
        assert!(conditions(&status).is_empty(), "a False condition is never added");
        set_condition(&mut status, condition("Restarting", "True", "A", "x"), "t1");
        set_condition(&mut status, condition("Restarting", "True", "B", "y"), "t2");
        assert_eq!(conditions(&status)[0]["lastTransitionTime"], "t1");
        set_condition(&mut status, condition("Restarting", "False", "JobsReady", "all jobs are ready"), "t3");
        assert_eq!(conditions(&status)[0]["lastTransitionTime"], "t3");
    }
}
