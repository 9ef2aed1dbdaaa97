//! What a pipeline case keeps and what it deletes: the run as KFP reports it, the Workflow's
//! final state, every pod's logs and their events, the task table; then the run and what the
//! case uploaded, unless a failed case is kept.

use serde_json::Value;

use super::{API, Made};
use crate::{
    cluster::{
        collect::{Collect, Evidence},
        kfp::Kfp,
    },
    outcome::CaseResult,
    run::case::CaseRun,
};

impl CaseRun<'_> {
    /// The run as KFP reports it, the Workflow's final state, every pod's logs (task and
    /// driver pods alike) and their events; the task table into the result.
    pub(super) async fn pipeline_evidence(
        &self,
        kfp: &Kfp,
        run_id: &str,
        run: &Value,
        workflow: &Value,
        result: &mut CaseResult,
    ) -> Evidence {
        let dir = result.artifacts.clone();
        let write = |name: &str, value: &Value| {
            let text = serde_json::to_string_pretty(value).unwrap_or_default();
            if let Err(e) = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(dir.join(name), text)) {
                tracing::warn!(file = name, error = %e, "cannot write pipeline evidence");
            }
        };
        write("kfp-run.json", run);
        let selector = format!("pipeline/runid={run_id}");
        // The Workflow as it is now (after a terminate, its final state), else as last seen.
        let workflow = match self.cluster.kind("argoproj.io/v1alpha1", "Workflow").await {
            Ok(kind) => match self.cluster.list_matching(&kind, &kfp.namespace, None, Some(&selector)).await {
                Ok(list) => list.into_iter().next().unwrap_or_else(|| workflow.clone()),
                Err(e) => {
                    result
                        .collect_problems
                        .push(format!("reading the run's Workflow again (kept the last one seen): {e}"));
                    workflow.clone()
                }
            },
            // A cluster that serves no Workflow kind: the run was polled, there is none to read.
            Err(_) => workflow.clone(),
        };
        write("workflow.json", &workflow);
        let pods = self.cluster.list_pods(&kfp.namespace, Some(&selector)).await.unwrap_or_else(|e| {
            result.collect_problems.push(format!("listing the run's pods: {e}"));
            Vec::new()
        });
        let names: Vec<String> = pods.iter().filter_map(|p| p.metadata.name.clone()).collect();
        result.tasks = match super::tasks::nodes(&workflow) {
            Ok(nodes) => super::tasks::table(&nodes, &pods),
            Err(e) => {
                result.collect_problems.push(e.to_string());
                Vec::new()
            }
        };
        let evidence = Collect {
            cluster: self.cluster,
            dir,
            namespace: &kfp.namespace,
            applied: &[],
            seen: Vec::new(),
            pods: Some(pods),
            replica_label: None,
            log_limit: self.defaults.log_limit_bytes,
            events_of: Some(&names),
        }
        .run()
        .await;
        result.pods = evidence.pods.clone();
        result.collect_problems.extend(evidence.problems.clone());
        evidence
    }
    /// Deletes the run and what this case uploaded, unless a failed case is kept.
    pub(super) async fn pipeline_cleanup(&self, kfp: &Kfp, made: &Made, failed: bool, result: &mut CaseResult) {
        let mut what = Vec::new();
        if let Some(id) = &made.run_id {
            what.push((format!("{API}/runs/{id}"), format!("KFP run {id}")));
        }
        // A pipeline this case created goes with its versions; else only the version it uploaded.
        match (&made.pipeline_id, &made.version_id) {
            (Some(pid), _) => what.push((format!("{API}/pipelines/{pid}?cascade=true"), format!("KFP pipeline {pid}"))),
            (None, Some(vid)) => what.push((
                format!("{API}/pipelines/{}/versions/{vid}", made.used_pipeline),
                format!("KFP pipeline version {vid}"),
            )),
            (None, None) => {}
        }
        if what.is_empty() {
            return;
        }
        if failed && self.keep_on_failure {
            let kept: Vec<String> = what.into_iter().map(|(_, name)| name).collect();
            result.cleanup = Some(format!("kept {} (--keep-on-failure)", kept.join(", ")));
            return;
        }
        let mut deleted = Vec::new();
        for (path, name) in what {
            match kfp.delete(&path).await {
                Ok(_) => deleted.push(name),
                Err(e) if e.status == Some(404) => deleted.push(name),
                Err(e) => result.left_behind.push(format!("{name} ({e})")),
            }
        }
        result.cleanup = Some(format!("deleted {}", deleted.join(", ")));
    }
}
