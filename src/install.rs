//! Installing the operators under test before any case: render (kustomize), apply (CRDs first),
//! then wait, by watching, until every CRD is Established and every Deployment Available. An
//! operator pod stuck in ImagePullBackOff and the like fails the install as fast as a case.

use std::{path::Path, time::Duration};

use serde_json::Value;
use tokio::{sync::watch, time::Instant};

use crate::{
    command,
    images::{self, Built},
    kubernetes::{Applied, Cluster},
    profile::{self, Profile, Rule},
    run::{
        CaseResult, Outcome, Phase,
        collect::{Collect, Evidence},
        wait::{Ending, Wait},
    },
    suite::Operator,
    versions, yaml,
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
        default_timeout: crate::duration::Dur(Duration::from_secs(60)),
        logs: Vec::new(),
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
    /// Images built for this run: the manifests' references to them are rewritten.
    pub images: &'a [Built],
    pub artifacts: &'a Path,
    pub grace: Duration,
    pub log_limit: usize,
    pub cancel: watch::Receiver<bool>,
}

impl Install<'_> {
    /// The install as a result in the report, what it applied, and the version it resolved.
    pub async fn run(self) -> (CaseResult, Vec<Applied>, Option<String>) {
        let op = self.operator;
        let dir = self.artifacts.join("operators").join(&op.name);
        let mut result =
            CaseResult::named(&format!("operator.{}", op.name), &format!("operator {}", op.name), "operator", dir);
        result.timeout = crate::duration::Dur(op.timeout).to_string();
        let clock = Instant::now();
        let mut applied = Vec::new();
        let mut version = None;
        let outcome = self.install(&mut applied, &mut version).await;
        result.phases.push(Phase { name: "install", seconds: clock.elapsed().as_secs_f64() });
        let evidence = collect_logs(self.cluster, &applied, &result.artifacts, self.log_limit).await;
        match outcome {
            Ok(summary) => result.finish(Outcome::Passed, Some(summary)),
            Err(why) => {
                result.log_tail = evidence.failing_tail(30);
                result.finish(if *self.cancel.borrow() { Outcome::Interrupted } else { Outcome::Failed }, Some(why));
            }
        }
        result.pods = evidence.pods;
        result.write();
        (result, applied, version)
    }

    async fn install(&self, applied: &mut Vec<Applied>, version: &mut Option<String>) -> Result<String, String> {
        let op = self.operator;
        let (rendered, resolved) = render(op).await?;
        *version = resolved;
        let mut docs = yaml::documents(&op.kustomize, &rendered).map_err(|e| format!("kustomize output: {e}"))?;
        docs.sort_by_key(|d| rank(&d.value));
        for doc in &mut docs {
            images::rewrite(&mut doc.value, self.images);
        }
        for doc in &docs {
            let namespace = doc.value.pointer("/metadata/namespace").and_then(Value::as_str);
            applied.push(self.cluster.apply(&doc.value, namespace).await?);
        }
        let crd = crd_profile();
        let deployment = deployment_profile().ok_or("no deployment profile")?;
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
            return Ok(format!("{} objects applied; nothing to wait for", applied.len()));
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
        }
        .run()
        .await;
        match waited.ending {
            Ending::Succeeded(_) => Ok(format!(
                "{} objects applied; {crds} CRDs Established, {deployments} Deployments Available",
                applied.len()
            )),
            Ending::Failed(why) | Ending::Stuck(why) | Ending::Broken(why) => Err(format!("install failed: {why}")),
            Ending::TimedOut(why) => Err(format!("install {why}: CRDs not Established or Deployments not Available")),
            Ending::Interrupted => Err("interrupted while installing".into()),
        }
    }
}

/// The operator's kustomize directory and, for a git source, the version it resolved to
/// (resolved at every call; each version is checked out once).
pub async fn source(operator: &Operator) -> Result<(std::path::PathBuf, Option<String>), String> {
    let Some(git) = &operator.git else { return Ok((operator.kustomize.clone(), None)) };
    let tags = versions::remote_tags(&git.url).await?;
    let (reference, _floating) = versions::pick(&tags, &git.version, git.prereleases)?;
    let checkout = versions::checkout(&git.url, &reference).await?;
    Ok((checkout.join(&operator.kustomize), Some(reference)))
}

/// The operator's manifests, as `kubectl kustomize` renders them, and its resolved version.
pub async fn render(operator: &Operator) -> Result<(String, Option<String>), String> {
    let (dir, version) = source(operator).await?;
    let path = dir.to_string_lossy().to_string();
    let mut args: Vec<&str> = vec!["kustomize"];
    args.extend(operator.kustomize_args.iter().map(String::as_str));
    args.push(&path);
    Ok((command::output("kubectl", &args, None).await?, version))
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
    }
    .run()
    .await
}
