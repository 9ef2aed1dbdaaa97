//! Installing the operators under test before any case: their rendered manifests (see
//! `render`) applied CRDs first, or a chart installed with `helm upgrade --install --wait`;
//! then wait, by watching, until every CRD is Established and every Deployment Available. An
//! operator pod stuck in ImagePullBackOff and the like fails the install as fast as a case.

use std::{path::Path, time::Duration};

use serde_json::Value;
use tokio::{sync::watch, time::Instant};

use crate::{
    cluster::{
        Applied, Cluster,
        collect::{Collect, Evidence},
        wait::{Ending, Wait},
    },
    images,
    operators::{
        OperatorError,
        render::{Rendered, helm_flags},
    },
    outcome::{CaseResult, FailureClass, Outcome, Phase},
    suite::{
        HelmChart, HelmInstall, Operator, Source,
        images::Retag,
        profile::{self, Profile, Rule},
    },
    util::{command, yaml},
};

fn crd_profile() -> Profile {
    Profile {
        name: "crd".into(),
        group: "apiextensions.k8s.io".into(),
        kind: "CustomResourceDefinition".into(),
        success: Rule::Conditions { types: vec!["Established".into()], status: "True".into() },
        failure: Rule::Conditions { types: vec!["NamesAccepted".into()], status: "False".into() },
        pods: String::new(),
        replica_label: None,
        timeout: None,
        default_timeout: crate::util::duration::Dur(Duration::from_secs(60)),
        logs: Vec::new(),
        retries: None,
        checks: Vec::new(),
        metrics: Vec::new(),
        gpu: None,
    }
}

fn deployment_profile() -> Option<Profile> {
    profile::builtins().into_iter().find(|p| p.name == "deployment")
}

/// Apply order: CRDs, then namespaces, then the rest, as `kubectl apply` users expect.
fn rank(doc: &Value) -> u8 {
    match doc["kind"].as_str() {
        Some("CustomResourceDefinition") => 0,
        Some("Namespace") => 1,
        _ => 2,
    }
}

pub struct Install<'a> {
    pub cluster: &'a Cluster,
    pub operator: &'a Operator,
    pub rendered: &'a Rendered,
    /// Images built for this run: the manifests' references to them are rewritten.
    pub images: &'a [Retag],
    /// For `helm upgrade --install`: the cluster's kubeconfig and context.
    pub kubeconfig: Option<&'a Path>,
    pub context: Option<&'a str>,
    pub artifacts: &'a Path,
    pub grace: Duration,
    pub log_limit: usize,
    pub cancel: watch::Receiver<bool>,
}

impl Install<'_> {
    /// Which version was installed and whether its manifests came from the render cache.
    fn provenance(&self) -> String {
        let cache = if self.rendered.cache_hit { "render cache hit" } else { "rendered" };
        match &self.rendered.version {
            Some(v) => format!("{v}, {cache}"),
            None => cache.to_string(),
        }
    }

    fn cluster_flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        if let Some(k) = self.kubeconfig {
            flags.extend(["--kubeconfig".into(), k.to_string_lossy().into_owned()]);
        }
        if let Some(c) = self.context {
            flags.extend(["--kube-context".into(), c.to_string()]);
        }
        flags
    }

    /// The install as a result in the report, and what it applied.
    pub async fn run(self) -> (CaseResult, Vec<Applied>) {
        let op = self.operator;
        let dir = self.artifacts.join("operators").join(&op.name);
        let mut result =
            CaseResult::named(&format!("operator.{}", op.name), &format!("operator {}", op.name), "operator", dir);
        result.timeout = crate::util::duration::Dur(op.timeout).to_string();
        let clock = Instant::now();
        let mut applied = Vec::new();
        let outcome = self.install(&mut applied).await;
        result.phases.push(Phase { name: "install".into(), seconds: clock.elapsed().as_secs_f64() });
        let evidence = collect_logs(self.cluster, &applied, &result.artifacts, self.log_limit).await;
        match outcome {
            Ok(summary) => result.finish(Outcome::Passed, Some(summary)),
            Err(why) => {
                let why = why.to_string();
                result.log_tail = evidence.failing_tail(30);
                // An operator that does not install is the cluster's problem, not an example's.
                let outcome = if *self.cancel.borrow() { Outcome::Interrupted } else { Outcome::Failed };
                result.finish_as(outcome, Some(FailureClass::Infrastructure), Some(why));
            }
        }
        result.pods = evidence.pods;
        result.write();
        (result, applied)
    }

    async fn install(&self, applied: &mut Vec<Applied>) -> Result<String, OperatorError> {
        let op = self.operator;
        let mut docs = yaml::documents(&self.rendered.file, &self.rendered.text)
            .map_err(|source| OperatorError::Manifest { what: "rendered manifests", source })?;
        docs.retain(|d| d.value.is_object());
        match &op.source {
            Source::Helm(chart) if chart.install == HelmInstall::Upgrade => {
                self.helm_upgrade(chart, &docs, applied).await?
            }
            Source::Helm(chart) => self.apply(docs, Some(&chart.namespace), applied).await?,
            Source::Kustomize { .. } => self.apply(docs, None, applied).await?,
        }
        self.wait_ready(applied).await
    }

    /// Server-side apply of the rendered manifests, CRDs first, images swapped; objects
    /// without a namespace go to `default_namespace` (a chart's), created if needed.
    async fn apply(
        &self,
        mut docs: Vec<yaml::Document>,
        default_namespace: Option<&str>,
        applied: &mut Vec<Applied>,
    ) -> Result<(), OperatorError> {
        docs.sort_by_key(|d| rank(&d.value));
        let retags: Vec<Retag> = self.images.iter().chain(&self.operator.set_images).cloned().collect();
        for doc in &mut docs {
            images::rewrite(&mut doc.value, &retags);
        }
        // `helm template` does not create the release's namespace.
        if let Some(ns) = default_namespace
            && !docs.iter().any(|d| d.value["kind"] == "Namespace" && d.value["metadata"]["name"] == ns)
        {
            let namespace = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            self.cluster.apply(&namespace, None).await?;
        }
        for doc in &docs {
            let namespace = doc.value.pointer("/metadata/namespace").and_then(Value::as_str).or(default_namespace);
            applied.push(self.cluster.apply(&doc.value, namespace).await?);
        }
        Ok(())
    }

    /// `helm upgrade --install --wait` (Helm applies and runs the hooks), then what the release
    /// holds, from `helm get manifest`, plus the chart's CRDs, which the manifest leaves out.
    async fn helm_upgrade(
        &self,
        chart: &HelmChart,
        docs: &[yaml::Document],
        applied: &mut Vec<Applied>,
    ) -> Result<(), OperatorError> {
        let location = match &self.rendered.chart_dir {
            Some(dir) => dir.to_string_lossy().into_owned(),
            None => chart.chart.clone(),
        };
        let mut args = vec!["upgrade".to_string(), "--install".into(), chart.release.clone(), location];
        args.extend(helm_flags(chart, if chart.is_local() { None } else { self.rendered.version.as_deref() }));
        args.extend(["--create-namespace".into(), "--wait".into(), "--timeout".into()]);
        args.push(format!("{}s", self.operator.timeout.as_secs()));
        args.extend(self.cluster_flags());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        command::output("helm", &args, None).await?;
        let mut get = vec!["get", "manifest", &chart.release, "--namespace", &chart.namespace];
        let flags = self.cluster_flags();
        get.extend(flags.iter().map(String::as_str));
        let manifest = command::output("helm", &get, None).await?;
        let released = yaml::documents(&self.rendered.file, &manifest)
            .map_err(|source| OperatorError::Manifest { what: "helm get manifest", source })?;
        let crds = docs.iter().filter(|d| d.value["kind"] == "CustomResourceDefinition");
        for doc in released.iter().filter(|d| d.value.is_object()).chain(crds) {
            applied.push(self.cluster.locate(&doc.value, Some(&chart.namespace)).await?);
        }
        Ok(())
    }

    /// Watches until every applied CRD is Established and every Deployment Available.
    async fn wait_ready(&self, applied: &[Applied]) -> Result<String, OperatorError> {
        let op = self.operator;
        let crd = crd_profile();
        let deployment =
            deployment_profile().ok_or_else(|| OperatorError::NotReady("kubevet has no deployment profile".into()))?;
        let targets: Vec<(&Applied, &Profile)> = applied
            .iter()
            .filter_map(|a| match a.kind.resource.kind.as_str() {
                "CustomResourceDefinition" => Some((a, &crd)),
                "Deployment" => Some((a, &deployment)),
                _ => None,
            })
            .collect();
        let crds = targets.iter().filter(|(_, p)| p.name == "crd").count();
        if targets.is_empty() {
            return Ok(format!("{} objects applied ({}); nothing to wait for", applied.len(), self.provenance()));
        }
        let deployments = targets.len() - crds;
        let namespace = targets.iter().find_map(|(a, _)| a.namespace.clone()).unwrap_or_else(|| "default".into());
        let waited = Wait {
            cluster: self.cluster,
            namespace: &namespace,
            workloads: targets,
            timeout: op.timeout,
            grace: self.grace,
            cancel: self.cancel.clone(),
            on_running: None,
        }
        .run()
        .await;
        match waited.ending {
            Ending::Succeeded(_) => Ok(format!(
                "{} objects applied ({}); {crds} CRDs Established, {deployments} Deployments Available",
                applied.len(),
                self.provenance()
            )),
            Ending::Failed(why) | Ending::Broken(why) => Err(OperatorError::NotReady(format!("install failed: {why}"))),
            Ending::Stuck(stuck) => Err(OperatorError::NotReady(format!("install failed: {stuck}"))),
            Ending::TimedOut(why) => Err(OperatorError::NotReady(format!(
                "install {why}: CRDs not Established or Deployments not Available"
            ))),
            Ending::Interrupted => Err(OperatorError::NotReady("interrupted while installing".into())),
        }
    }
}

/// The operator's Deployments and their namespace's pods, with every container's log, into
/// `dir`: after the install, and again at the end of the run.
pub async fn collect_logs(cluster: &Cluster, applied: &[Applied], dir: &Path, log_limit: usize) -> Evidence {
    let deployments: Vec<Applied> = applied.iter().filter(|a| a.kind.resource.kind == "Deployment").cloned().collect();
    let Some(namespace) = deployments.first().and_then(|d| d.namespace.clone()) else { return Evidence::default() };
    Collect {
        cluster,
        dir: dir.to_path_buf(),
        namespace: &namespace,
        applied: &deployments,
        seen: Vec::new(),
        pods: None,
        replica_label: None,
        log_limit,
        events_of: None,
    }
    .run()
    .await
}
