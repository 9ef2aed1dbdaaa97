//! `--changed-since REF`: only the cases a change touches. The change is what differs between
//! the merge-base of REF and HEAD and the working tree (as `ct list-changed` takes it, plus
//! files not yet committed); a case is touched when one of its own files changed, a file it
//! applies or runs, an image context it builds from, a CRD of a kind it uses, or an operator
//! that serves such a kind. The suite file (and what it extends) and the files the suite says
//! affect everything select every case; so does any doubt: no base found, no git.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::Case;
use crate::{
    suite::{KustomizeTarget, Operator, Source, Suite, images::repository},
    util::{command, yaml},
};

/// What `--changed-since` found.
#[derive(Debug, Clone)]
pub enum ChangedSince {
    Files(Changes),
    /// Every case runs, and this is why (the base cannot be found, the suite itself changed…).
    Everything(String),
}

#[derive(Debug, Clone)]
pub struct Changes {
    /// The commit the working tree is compared with: the merge-base of REF and HEAD.
    pub base: String,
    /// The changed files, absolute.
    files: Vec<PathBuf>,
    /// The kinds (group, kind) whose CRD is in a changed file.
    changed_kinds: BTreeSet<(String, String)>,
    /// Per operator with changed local files: the kinds its CRDs define (empty: none found).
    operators: Vec<(String, BTreeSet<(String, String)>)>,
}

/// The change since `reference`, read with git in the suite's folder.
pub async fn changed_since(suite: &Suite, reference: &str) -> ChangedSince {
    match changed_files(&suite.root, reference).await {
        Ok((base, files)) => of_files(suite, base, files),
        Err(why) => ChangedSince::Everything(format!("every case: {why}")),
    }
}

/// The merge-base and the files changed since it (committed, staged, unstaged or untracked).
async fn changed_files(root: &Path, reference: &str) -> Result<(String, Vec<PathBuf>), String> {
    let git = |args: &'static [&'static str]| async move { command::output("git", args, Some(root)).await };
    let top = git(&["rev-parse", "--show-toplevel"])
        .await
        .map_err(|e| format!("{} is not in a git repository ({e})", root.display()))?;
    let base = command::output("git", &["merge-base", reference, "HEAD"], Some(root)).await.map_err(|e| {
        format!("no merge-base of {reference} and HEAD ({e}); fetch it (actions/checkout with fetch-depth: 0)")
    })?;
    let base = base.trim().to_string();
    let diff = command::output("git", &["diff", "--name-only", "--no-renames", "-z", &base], Some(root))
        .await
        .map_err(|e| format!("git diff against {base} failed ({e})"))?;
    let untracked = git(&["ls-files", "--others", "--exclude-standard", "-z", "--full-name"])
        .await
        .map_err(|e| format!("git ls-files failed ({e})"))?;
    let top = PathBuf::from(top.trim());
    let files = diff.split('\0').chain(untracked.split('\0')).filter(|f| !f.is_empty()).map(|f| top.join(f)).collect();
    Ok((base, files))
}

fn of_files(suite: &Suite, base: String, files: Vec<PathBuf>) -> ChangedSince {
    let files: Vec<PathBuf> = files.iter().map(|f| normal(f)).collect();
    let root = normal(&suite.root);
    for suite_file in suite.files.iter().map(|f| normal(f)) {
        if files.contains(&suite_file) {
            let shown = suite_file.strip_prefix(&root).unwrap_or(&suite_file).display().to_string();
            return ChangedSince::Everything(format!("every case: the suite file {shown} changed"));
        }
    }
    for file in &files {
        let rel = file.strip_prefix(&root).map(|r| r.to_string_lossy().replace('\\', "/"));
        if let Ok(rel) = rel
            && suite.affect_everything.iter().any(|g| g.is_match(&rel))
        {
            return ChangedSince::Everything(format!("every case: {rel} changed, and changes.everything names it"));
        }
    }
    let changed_kinds = files.iter().filter(|f| f.is_file()).flat_map(|f| crd_kinds(f)).collect();
    let mut operators = Vec::new();
    for operator in &suite.operators {
        let own = operator_files(operator);
        if own.iter().any(|dir| files.iter().any(|f| f.starts_with(dir))) {
            let kinds: BTreeSet<_> = own.iter().flat_map(|dir| yaml_files(dir)).flat_map(|f| crd_kinds(&f)).collect();
            operators.push((operator.name.clone(), kinds));
        }
    }
    if let Some((name, _)) = operators.iter().find(|(_, kinds)| kinds.is_empty()) {
        return ChangedSince::Everything(format!(
            "every case: operator {name} changed and its files define no CRD to tell which cases use it"
        ));
    }
    ChangedSince::Files(Changes { base, files, changed_kinds, operators })
}

impl Changes {
    /// Why the change touches `case`, or none when it does not.
    pub fn touches(&self, suite: &Suite, case: &Case) -> Option<String> {
        let root = normal(&suite.root);
        let shown = |p: &Path| p.strip_prefix(&root).unwrap_or(p).display().to_string();
        for (i, file) in case.files().iter().map(|f| normal(f)).enumerate() {
            if self.files.contains(&file) {
                let what = if i == 0 { "changed" } else { "uses changed" };
                return Some(format!("{what} {}", shown(&file)));
            }
        }
        let objects = case_objects(case);
        let images: BTreeSet<&str> = objects.iter().flat_map(|o| images_of(o)).map(repository).collect();
        for image in suite.images.iter().filter(|i| images.contains(i.name.as_str())) {
            let context = normal(&image.context);
            if let Some(f) = self.files.iter().find(|f| f.starts_with(&context)) {
                return Some(format!("image {} is built from changed {}", image.name, shown(f)));
            }
        }
        let kinds: BTreeSet<(String, String)> = objects.iter().filter_map(|o| kind_of(o)).collect();
        if let Some((group, kind)) = kinds.iter().find(|k| self.changed_kinds.contains(k)) {
            return Some(format!("the CRD of {kind}.{group} changed"));
        }
        self.operators
            .iter()
            .find(|(_, served)| served.iter().any(|k| kinds.contains(k)))
            .map(|(name, _)| format!("operator {name} changed"))
    }
}

/// An existing path made canonical; a deleted one absolute, so both compare.
fn normal(path: &Path) -> PathBuf {
    path.canonicalize().or_else(|_| std::path::absolute(path)).unwrap_or_else(|_| path.to_path_buf())
}

/// An operator's own local files (none for one that comes from git or a chart repository).
fn operator_files(operator: &Operator) -> Vec<PathBuf> {
    if operator.git.is_some() {
        return Vec::new();
    }
    match &operator.source {
        Source::Kustomize { target: KustomizeTarget::Dir(dir), .. } => vec![normal(dir)],
        Source::Kustomize { target: KustomizeTarget::Remote(_), .. } => Vec::new(),
        Source::Helm(chart) => {
            let mut files: Vec<PathBuf> = chart.values.iter().map(|v| normal(v)).collect();
            if chart.is_local() {
                files.push(normal(Path::new(&chart.chart)));
            }
            files
        }
    }
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    ignore::WalkBuilder::new(dir)
        .require_git(false)
        .build()
        .filter_map(|e| e.ok())
        .map(|e| e.into_path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml") && p.is_file())
        .collect()
}

/// The kinds the CRDs in a YAML file define; a file that is not plain YAML (a Helm
/// template) defines none.
fn crd_kinds(file: &Path) -> Vec<(String, String)> {
    let is_yaml = file.extension().is_some_and(|x| x == "yaml" || x == "yml");
    let Some(text) = is_yaml.then(|| std::fs::read_to_string(file).ok()).flatten() else { return Vec::new() };
    let Ok(docs) = yaml::documents(file, &text) else { return Vec::new() };
    docs.iter()
        .filter(|d| d.value.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition"))
        .filter_map(|d| {
            let text = |p: &str| d.value.pointer(p).and_then(Value::as_str).map(str::to_string);
            Some((text("/spec/group")?, text("/spec/names/kind")?))
        })
        .collect()
}

/// Everything the case applies: its objects, and its scenario's.
fn case_objects(case: &Case) -> Vec<&Value> {
    let mut objects: Vec<&Value> = case.objects.iter().map(|d| &d.value).collect();
    if let Some(scenario) = &case.scenario {
        for step in scenario.steps.iter().chain(&scenario.catch).chain(&scenario.finally) {
            if let super::StepAction::Apply { objects: applied, .. } = &step.action {
                objects.extend(applied);
            }
        }
    }
    objects
}

/// Every `image:` string anywhere in an object (pods, templates, pipeline executors).
fn images_of(value: &Value) -> Vec<&str> {
    match value {
        Value::Object(map) => map
            .iter()
            .flat_map(|(k, v)| match (k.as_str(), v) {
                ("image", Value::String(s)) => vec![s.as_str()],
                _ => images_of(v),
            })
            .collect(),
        Value::Array(items) => items.iter().flat_map(images_of).collect(),
        _ => Vec::new(),
    }
}

/// An object's (group, kind).
fn kind_of(object: &Value) -> Option<(String, String)> {
    let api_version = object.get("apiVersion")?.as_str()?;
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    Some((group.to_string(), object.get("kind")?.as_str()?.to_string()))
}
