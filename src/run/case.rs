//! One case: create its namespace, apply its objects, wait for its workloads, collect the
//! evidence, judge. Cleaning up is handed back to the runner so that it holds no slot.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;
use tokio::{sync::watch, time::Instant};

use super::{
    CaseResult, Cleanup, Outcome, Phase,
    collect::{Collect, Evidence},
    wait::{Ending, Wait},
};
use crate::{
    assertions::LogSource,
    kubernetes::{Applied, Cluster, LABEL_CASE, LABEL_RUN, label_value},
    plan::Case,
    suite::{Defaults, Expect},
};

/// How long an interrupted case may spend collecting before it is cleaned up.
const INTERRUPT_COLLECT_GRACE: Duration = Duration::from_secs(10);

pub struct CaseRun<'a> {
    pub cluster: &'a Cluster,
    pub case: &'a Case,
    pub run_id: &'a str,
    pub artifacts: PathBuf,
    pub defaults: &'a Defaults,
    pub cancel: watch::Receiver<bool>,
}

/// `len` random lowercase hex digits (at most 16), for namespace suffixes and run ids.
pub fn random_hex(len: usize) -> String {
    let mut bytes = [0u8; 8];
    // A clock-derived fallback is unique enough for a name suffix.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        bytes = (nanos as u64).to_le_bytes();
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    hex[..len.min(16)].to_string()
}

/// `kv-<short case name>-<random>`: a valid namespace name of at most 63 characters.
pub fn namespace_name(case: &Case) -> String {
    let stem = case.path.file_stem().map(|s| s.to_string_lossy().to_lowercase()).unwrap_or_default();
    let short: String = stem.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).take(40).collect();
    let short = short.trim_matches('-');
    let short = if short.is_empty() { "case" } else { short };
    format!("kv-{short}-{}", random_hex(5))
}

impl CaseRun<'_> {
    pub async fn run(self) -> (CaseResult, Option<Cleanup>) {
        let case = self.case;
        let dir = self.artifacts.join(&case.id);
        let mut result = CaseResult::new(case, dir.clone());
        let namespace = namespace_name(case);
        result.namespace = Some(namespace.clone());
        let mut clock = Instant::now();
        let labels = BTreeMap::from([
            (LABEL_RUN.to_string(), self.run_id.to_string()),
            (LABEL_CASE.to_string(), label_value(&case.id)),
        ]);
        if let Err(e) = self.cluster.create_namespace(&namespace, labels).await {
            result.finish(Outcome::Error, Some(e));
            result.namespace = None;
            return (result, None);
        }
        let mut cleanup = Cleanup { namespace: namespace.clone(), unfinished: Vec::new(), cluster_scoped: Vec::new() };

        // Cluster-scoped objects first: namespaced ones often refer to them.
        let mut applied: Vec<Applied> = Vec::new();
        // For each object of the file, its index in `applied`.
        let mut applied_index: Vec<Option<usize>> = vec![None; case.objects.len()];
        let mut order: Vec<(bool, usize)> = Vec::new();
        for (i, object) in case.objects.iter().enumerate() {
            let doc = &object.value;
            match self.cluster.kind(doc["apiVersion"].as_str().unwrap_or(""), doc["kind"].as_str().unwrap_or("")).await
            {
                Ok(k) => order.push((k.namespaced, i)),
                Err(e) => {
                    result.phases.push(Phase::since("apply", clock));
                    result.finish(Outcome::Failed, Some(format!("apply: {e}")));
                    return (result, Some(cleanup));
                }
            }
        }
        // false sorts first: cluster-scoped, then namespaced, each in file order.
        order.sort();
        for (_, i) in order {
            match self.cluster.apply(&case.objects[i].value, Some(&namespace)).await {
                Ok(a) => {
                    if a.namespace.is_none() {
                        result.cluster_scoped.push(format!("{}/{}", a.kind.resource.kind, a.name));
                        cleanup.cluster_scoped.push(a.clone());
                    }
                    if case.workloads.iter().any(|w| w.object == i) {
                        cleanup.unfinished.push(a.clone());
                    }
                    applied_index[i] = Some(applied.len());
                    applied.push(a);
                }
                Err(e) => {
                    result.phases.push(Phase::since("apply", clock));
                    let line = case.objects[i].line;
                    result.finish(Outcome::Failed, Some(format!("apply ({}:{line}): {e}", case.name)));
                    self.collect_into(&mut result, &namespace, &applied, (vec![], None), false).await;
                    return (result, Some(cleanup));
                }
            }
        }
        result.phases.push(Phase::since("apply", clock));
        clock = Instant::now();

        let watched: Vec<(usize, &crate::profile::Profile)> =
            case.workloads.iter().filter_map(|w| applied_index[w.object].map(|a| (a, &w.profile))).collect();
        let workloads = watched.iter().map(|(a, profile)| (&applied[*a], *profile)).collect();
        let waited = Wait {
            cluster: self.cluster,
            namespace: &namespace,
            workloads,
            timeout: case.timeout.0,
            grace: self.defaults.failure_grace.0,
            cancel: self.cancel.clone(),
        }
        .run()
        .await;
        match waited.running_since {
            Some(running) if running > clock => {
                result.phases.push(Phase { name: "scheduling", seconds: (running - clock).as_secs_f64() });
                result.phases.push(Phase::since("running", running));
            }
            Some(_) => result.phases.push(Phase::since("running", clock)),
            None => result.phases.push(Phase::since("scheduling", clock)),
        }
        result.ended = Some(std::time::SystemTime::now());
        let interrupted = waited.ending == Ending::Interrupted;
        if matches!(waited.ending, Ending::Succeeded(_) | Ending::Failed(_)) {
            cleanup.unfinished.clear();
        }
        let mut seen = vec![None; applied.len()];
        for ((a, _), state) in watched.iter().zip(waited.workloads) {
            seen[*a] = state;
        }
        let evidence =
            self.collect_into(&mut result, &namespace, &applied, (seen, Some(waited.pods)), interrupted).await;

        let (outcome, reason) = match (waited.ending, case.expect) {
            (Ending::Succeeded(why), Expect::Success) => match self.check_logs(&evidence) {
                Ok(()) => (Outcome::Passed, Some(why)),
                Err(e) => (Outcome::Failed, Some(e)),
            },
            (Ending::Succeeded(why), Expect::Failure) => {
                (Outcome::Failed, Some(format!("expected a failure, but it succeeded: {why}")))
            }
            (Ending::Failed(why), Expect::Failure) => (Outcome::Passed, Some(format!("failed as expected: {why}"))),
            (Ending::Failed(why) | Ending::Stuck(why) | Ending::TimedOut(why), _) => (Outcome::Failed, Some(why)),
            (Ending::Interrupted, _) => (Outcome::Interrupted, Some("interrupted while it ran".into())),
            (Ending::Broken(why), _) => (Outcome::Error, Some(why)),
        };
        if outcome != Outcome::Passed {
            result.log_tail = evidence.failing_tail(30);
        }
        result.finish(outcome, reason);
        (result, Some(cleanup))
    }

    /// `seen`: what the watches already know (object states by index into `applied`, pods).
    async fn collect_into(
        &self,
        result: &mut CaseResult,
        namespace: &str,
        applied: &[Applied],
        seen: (Vec<Option<Value>>, Option<Vec<Pod>>),
        hurry: bool,
    ) -> Evidence {
        let clock = Instant::now();
        let collect = Collect {
            cluster: self.cluster,
            dir: result.artifacts.clone(),
            namespace,
            applied,
            seen: seen.0,
            pods: seen.1,
            replica_label: self.case.workloads.first().and_then(|w| w.profile.replica_label.as_deref()),
            log_limit: self.defaults.log_limit_bytes,
        }
        .run();
        let evidence = if hurry {
            tokio::time::timeout(INTERRUPT_COLLECT_GRACE, collect).await.unwrap_or_default()
        } else {
            collect.await
        };
        result.pods = evidence.pods.clone();
        result.collect_problems = evidence.problems.clone();
        result.phases.push(Phase::since("collecting", clock));
        evidence
    }

    fn check_logs(&self, evidence: &Evidence) -> Result<(), String> {
        let sources: Vec<LogSource<'_>> = evidence
            .logs
            .iter()
            .map(|l| LogSource { pod: &l.pod, container: &l.container, replica: l.replica.as_deref(), text: &l.text })
            .collect();
        self.case.logs.iter().try_for_each(|a| a.evaluate(&sources))
    }
}
