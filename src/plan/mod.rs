//! From a suite to its cases: every example file the suite's globs match is one case, its
//! workload objects recognised by a profile and everything else applied with them; every
//! scenario file (`kind: Scenario`) is one case of ordered steps.

pub mod changed;
pub mod notebook;
mod overrides;
pub mod pipeline;
pub mod scenario;

use overrides::Resolved;

pub use notebook::NotebookCase;
pub use pipeline::{PipelineCase, PipelineSource};
pub use scenario::{Scenario, Step, StepAction, Target};

use std::path::{Path, PathBuf};

use globset::{Glob, GlobMatcher};
use serde::Serialize;
use serde_json::Value;

use std::sync::Arc;

use crate::{
    suite::assertions::LogAssertion,
    suite::checks::Check,
    suite::profile::Profile,
    suite::{Expect, Suite},
    util::duration::Dur,
    util::error::{Error, Result},
    util::ids::{case_id, kfp_name},
    util::yaml::{self, Document},
};

/// The profile name of notebook cases in reports.
pub const NOTEBOOK: &str = "notebook";

/// What an example file with no object is told, by `run`, `list` and `lint`.
pub const EMPTY_FILE: &str = "this file holds no Kubernetes object (it is empty, or every document in it is); add the example or exclude the file";

#[derive(Debug, Clone)]
pub struct Workload {
    /// Index into the case's objects.
    pub object: usize,
    pub profile: Profile,
}

#[derive(Debug, Clone)]
pub struct Case {
    /// Unique, file-name safe: the example's path with separators turned into dots.
    pub id: String,
    /// The example's path relative to the suite; the JUnit test name.
    pub name: String,
    pub path: PathBuf,
    pub objects: Vec<Document>,
    pub workloads: Vec<Workload>,
    pub timeout: Dur,
    pub tier: Option<String>,
    pub expect: Expect,
    pub skip: Option<String>,
    pub logs: Vec<LogAssertion>,
    /// Metric assertions over the snapshots before and after the case: the built-in profile's
    /// (when the suite reads metrics), the profile's, then the overrides'.
    pub metrics: Vec<crate::suite::metrics::MetricAssertion>,
    /// The user's checks: the profile's, then the overrides'.
    pub checks: Vec<Check>,
    /// The steps of a scenario (`kind: Scenario`), instead of a workload to watch.
    pub scenario: Option<Arc<Scenario>>,
    /// A Kubeflow pipeline to upload and run, instead of objects to apply.
    pub pipeline: Option<Arc<PipelineCase>>,
    /// How many times the case is tried again when it fails in a class the suite retries.
    pub retries: u32,
    /// Why the case cannot run at all (reported as an error, never silently passed).
    pub problem: Option<String>,
    /// Why `--changed-since` selected it.
    pub changed: Option<String>,
    /// What becomes of it when it asks for a GPU (an extended resource) no node offers.
    pub gpu: crate::suite::gpu::GpuMode,
    /// A Jupyter notebook to execute with papermill, instead of objects to apply.
    pub notebook: Option<Arc<NotebookCase>>,
}

impl Case {
    /// The profile named in reports: the first workload's.
    pub fn profile_name(&self) -> &str {
        if self.scenario.is_some() {
            return "scenario";
        }
        if self.pipeline.is_some() {
            return crate::suite::profile::PIPELINE;
        }
        if self.notebook.is_some() {
            return NOTEBOOK;
        }
        self.workloads.first().map(|w| w.profile.name.as_str()).unwrap_or("none")
    }

    /// The files the case reads: its own, what its scenario applies, the scripts its steps and
    /// checks run.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.path.clone()];
        files.extend(self.scenario.iter().flat_map(|s| s.files()));
        files.extend(self.checks.iter().filter_map(|c| match &c.kind {
            crate::suite::checks::CheckKind::Script(script) => script.file(),
            _ => None,
        }));
        files
    }
}

/// A row of `kubevet list`.
#[derive(Debug, Serialize)]
pub struct PlanRow<'a> {
    pub id: &'a str,
    pub file: &'a str,
    pub profile: &'a str,
    pub timeout: String,
    pub tier: Option<&'a str>,
    pub skip: Option<&'a str>,
    pub problem: Option<&'a str>,
    /// Why `--changed-since` selected it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed: Option<&'a str>,
}

impl<'a> From<&'a Case> for PlanRow<'a> {
    fn from(c: &'a Case) -> Self {
        PlanRow {
            id: &c.id,
            file: &c.name,
            profile: c.profile_name(),
            timeout: c.timeout.to_string(),
            tier: c.tier.as_deref(),
            skip: c.skip.as_deref(),
            problem: c.problem.as_deref(),
            changed: c.changed.as_deref(),
        }
    }
}

/// A file a suite's globs pick.
pub struct Picked {
    pub path: PathBuf,
    /// Relative to the suite, `/`-separated.
    pub rel: String,
    /// Picked by the examples' globs; otherwise only by the scenarios' (where a file that is
    /// not a scenario is one of the manifests scenarios apply, not a case).
    pub example: bool,
}

/// Example and scenario files under the suite's root, `.gitignore` respected, in path order.
pub fn example_files(suite: &Suite) -> Vec<Picked> {
    let mut files: Vec<Picked> = ignore::WalkBuilder::new(&suite.root)
        .require_git(false)
        .build()
        .filter_map(|entry| entry.ok())
        .filter(|e| e.file_type().is_some_and(|t| t.is_file()))
        .filter_map(|e| {
            let rel = e.path().strip_prefix(&suite.root).ok()?.to_string_lossy().replace('\\', "/");
            let picked = |include: &[GlobMatcher], exclude: &[GlobMatcher]| {
                include.iter().any(|g| g.is_match(&rel)) && !exclude.iter().any(|g| g.is_match(&rel))
            };
            let example = picked(&suite.include, &suite.exclude) || picked(&suite.pipelines.compile, &[]);
            (example || picked(&suite.scenarios_include, &suite.scenarios_exclude)).then(|| Picked {
                path: e.path().to_path_buf(),
                rel,
                example,
            })
        })
        .collect();
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    files
}

fn check_object(path: &Path, doc: &Document) -> Result<()> {
    let at = |msg: &str| Error::input(path, doc.line, doc.column, msg.to_string());
    if !doc.value.is_object() {
        return Err(at("this document is not a Kubernetes object (a mapping with apiVersion, kind and metadata.name)"));
    }
    let text = |pointer: &str| doc.value.pointer(pointer).and_then(Value::as_str).filter(|s| !s.is_empty());
    for (pointer, what) in [("/apiVersion", "apiVersion"), ("/kind", "kind")] {
        if text(pointer).is_none() {
            return Err(at(&format!("object without {what}"))
                .with_hint("every document of an example must be a complete Kubernetes object"));
        }
    }
    // generateName (as Argo's examples use): the server names the object, kubevet follows it.
    if text("/metadata/name").is_none() && text("/metadata/generateName").is_none() {
        return Err(at("object without metadata.name (or metadata.generateName)")
            .with_hint("every document of an example must be a complete Kubernetes object"));
    }
    Ok(())
}

/// Which cases of the suite a command takes: globs over paths or ids (`--select`), and tiers
/// (`--tier`), empty meaning all; then, of those, the ones a change touches
/// (`--changed-since`) and only the ids given (a shard of a plan, the failed ones).
#[derive(Debug, Clone, Copy, Default)]
pub struct Selection<'a> {
    pub globs: &'a [String],
    pub tiers: &'a [String],
    pub changed: Option<&'a changed::ChangedSince>,
    pub only: Option<&'a std::collections::BTreeSet<String>>,
}

pub fn plan(suite: &Suite, selection: Selection<'_>) -> Result<Vec<Case>> {
    let select = selection.globs;
    let selectors: Vec<GlobMatcher> = select
        .iter()
        .map(|s| {
            Glob::new(s)
                .map(|g| g.compile_matcher())
                .map_err(|e| Error::usage_because(format!("--select {s:?}: invalid glob"), e))
        })
        .collect::<Result<_>>()?;
    let mut cases = Vec::new();
    for Picked { path, rel, example } in example_files(suite) {
        let id = case_id(&rel);
        if !selectors.is_empty() && !selectors.iter().any(|s| s.is_match(&rel) || s.is_match(&id)) {
            continue;
        }
        if rel.ends_with(".py") {
            if example {
                cases.push(pipeline_case(
                    suite,
                    path.clone(),
                    rel,
                    id.clone(),
                    kfp_name(&id),
                    PipelineSource::Python(path),
                ));
            }
            continue;
        }
        if rel.ends_with(".ipynb") {
            if example {
                cases.push(notebook_case(suite, path, rel, id)?);
            }
            continue;
        }
        let text = yaml::read(&path)?;
        if scenario::is_scenario(&text) {
            cases.push(scenario_case(suite, path, rel, id, &text)?);
            continue;
        }
        if !example {
            continue;
        }
        let objects = yaml::documents(&path, &text)?;
        if let Some(source) = pipeline::compiled(&objects) {
            cases.push(pipeline_case(suite, path, rel, id.clone(), kfp_name(&id), source));
            continue;
        }
        for doc in &objects {
            check_object(&path, doc)?;
        }
        cases.push(example_case(suite, path, rel, id, objects));
    }
    for existing in &suite.pipelines.existing {
        let id = format!("pipelines.{}", case_id(&existing.name));
        let name = format!("pipelines/{}", existing.name);
        if !selectors.is_empty() && !selectors.iter().any(|s| s.is_match(&name) || s.is_match(&id)) {
            continue;
        }
        let source = PipelineSource::Existing { version: existing.version.clone() };
        let mut case = pipeline_case(suite, suite.path.clone(), name, id, existing.name.clone(), source);
        // The entry's own parameters over any an override gives `pipelines/<name>`.
        if let Some(p) = case.pipeline.as_mut().and_then(Arc::get_mut) {
            p.parameters.extend(existing.parameters.clone());
        }
        case.timeout = existing.timeout.unwrap_or(case.timeout);
        case.expect = existing.expect.unwrap_or(case.expect);
        case.tier = existing.tier.clone().or(case.tier);
        cases.push(case);
    }
    // A tier picks cases by the label overrides give; a case with none is in no tier.
    if !selection.tiers.is_empty() {
        cases.retain(|c| c.tier.as_ref().is_some_and(|t| selection.tiers.contains(t)));
    }
    Ok(cases)
}

/// An example file's case: its workloads (the objects a profile recognises, or the profile an
/// override forces), with the first profile's timeout, retries, log assertions and checks,
/// then the overrides'.
fn example_case(suite: &Suite, path: PathBuf, rel: String, id: String, objects: Vec<Document>) -> Case {
    let resolved = Resolved::of(suite, &rel);
    let workloads = workloads(suite, &objects, resolved.profile.as_deref());
    let first_profile = workloads.first().map(|w| &w.profile);
    let mut case = resolved.case(id, rel, path, resolved.timeout_and_retries(suite, first_profile));
    case.gpu = resolved.gpu(suite, first_profile);
    case.problem = if objects.is_empty() {
        Some(EMPTY_FILE.to_string())
    } else if workloads.is_empty() {
        Some(no_workload(&objects))
    } else {
        None
    };
    case.logs = first_profile.map(|p| p.logs.clone()).unwrap_or_default();
    case.logs.extend(resolved.logs);
    case.checks = first_profile.map(|p| p.checks.clone()).unwrap_or_default();
    case.checks.extend(resolved.checks);
    if suite.metrics.enabled && suite.metrics.defaults {
        case.metrics = first_profile.map(|p| crate::suite::metrics::builtin_assertions(&p.name)).unwrap_or_default();
    }
    case.metrics.extend(first_profile.map(|p| p.metrics.clone()).unwrap_or_default());
    case.metrics.extend(resolved.metrics);
    case.objects = objects;
    case.workloads = workloads;
    case
}

/// The objects a profile recognises (only the `forced` one, when an override names one).
fn workloads(suite: &Suite, objects: &[Document], forced: Option<&str>) -> Vec<Workload> {
    let matching = |doc: &Document| {
        let api_version = doc.value["apiVersion"].as_str().unwrap_or_default();
        let kind = doc.value["kind"].as_str().unwrap_or_default();
        suite.profiles.iter().filter(|p| forced.is_none_or(|f| f == p.name)).find(|p| p.matches(api_version, kind))
    };
    let recognised = objects.iter().enumerate().filter_map(|(i, doc)| matching(doc).map(|p| (i, p)));
    recognised.map(|(object, profile)| Workload { object, profile: profile.clone() }).collect()
}

/// Why a file whose objects no profile matches is not run, naming its kinds.
fn no_workload(objects: &[Document]) -> String {
    let kind = |d: &Document| {
        format!("{} {}", d.value["apiVersion"].as_str().unwrap_or(""), d.value["kind"].as_str().unwrap_or(""))
    };
    let kinds: Vec<String> = objects.iter().map(kind).collect();
    format!(
        "no workload in this example: none of its objects ({}) matches a profile; add a profile for its kind to the suite, or exclude the file",
        kinds.join(", ")
    )
}

/// A pipeline's case (`name`: the pipeline's name in KFP): the built-in `pipeline` profile's
/// timeout unless the suite says otherwise, and the overrides' run parameters, checked now
/// when the pipeline is compiled.
fn pipeline_case(suite: &Suite, path: PathBuf, rel: String, id: String, name: String, source: PipelineSource) -> Case {
    let resolved = Resolved::of(suite, &rel);
    let profile = suite.profiles.iter().find(|p| p.name == crate::suite::profile::PIPELINE);
    let mut case = resolved.case(id, rel, path, resolved.timeout_and_retries(suite, profile));
    case.gpu = resolved.gpu(suite, profile);
    let parameters = resolved.parameters.clone();
    if let PipelineSource::Compiled { spec, .. } = &source {
        case.problem = pipeline::typed_parameters(spec, &parameters)
            .err()
            .map(|problems| format!("{}: {}", resolved.parameters_at(suite), pipeline::problems_line(&problems)));
    }
    let pipeline = PipelineCase { name, source, parameters, compiled_from_cache: None, caching_turned_off: None };
    case.pipeline = Some(Arc::new(pipeline));
    case
}

/// The run parameters the suite's overrides give a pipeline file (later overrides win), and
/// where the last of them is (`kubevet.yaml:LINE`), for errors.
pub fn pipeline_parameters(suite: &Suite, rel: &str) -> (serde_json::Map<String, Value>, String) {
    let resolved = Resolved::of(suite, rel);
    let at = resolved.parameters_at(suite);
    (resolved.parameters, at)
}

/// A notebook's case: the suite's kernel or its own, the overrides' parameters and `judge`.
fn notebook_case(suite: &Suite, path: PathBuf, rel: String, id: String) -> Result<Case> {
    let notebook = notebook::read(&path)?;
    let resolved = Resolved::of(suite, &rel);
    let mut case = resolved.case(id, rel, path, resolved.timeout_and_retries(suite, None));
    case.gpu = resolved.gpu(suite, None);
    let kernel = suite.notebooks.kernel.clone().or_else(|| notebook.kernel().map(str::to_string));
    let judge = resolved.judge.unwrap_or_default();
    let images = Default::default();
    case.notebook = Some(Arc::new(NotebookCase { kernel, parameters: resolved.parameters, judge, images }));
    Ok(case)
}

/// A scenario file's case: its steps, and what the suite's overrides say of its path (over
/// what the scenario says of itself).
fn scenario_case(suite: &Suite, path: PathBuf, rel: String, id: String, text: &str) -> Result<Case> {
    let read = scenario::read(&path, text, &suite.metrics)?;
    let resolved = Resolved::of(suite, &rel);
    let timeout = resolved.timeout.or(read.timeout).or(suite.defaults.timeout).unwrap_or(overrides::DEFAULT_TIMEOUT);
    let retries = resolved.retries.unwrap_or(suite.defaults.retries);
    let mut case = resolved.case(id, rel, path, (timeout, retries));
    case.tier = case.tier.or(read.tier);
    case.expect = resolved.expect.or(read.expect).unwrap_or(Expect::Success);
    case.skip = case.skip.or(read.skip);
    case.gpu = resolved.gpu(suite, None);
    // A scenario's checks are its steps.
    case.scenario = Some(Arc::new(read.scenario));
    Ok(case)
}

/// The cases of a run: the globs and tiers pick at least one, since a run (or a plan) of
/// nothing is a mistake in the suite's globs or in `--select`, said the same way by `run` and
/// `list`; of those, a change or a list of ids may then leave none, which is no mistake.
pub fn plan_some(suite: &Suite, selection: Selection<'_>) -> Result<Vec<Case>> {
    let mut cases = plan_picked(suite, selection)?;
    if let Some(changed) = selection.changed {
        match changed {
            changed::ChangedSince::Everything(why) => cases.iter_mut().for_each(|c| c.changed = Some(why.clone())),
            changed::ChangedSince::Files(changes) => cases.retain_mut(|c| {
                c.changed = changes.touches(suite, c);
                c.changed.is_some()
            }),
        }
    }
    if let Some(only) = selection.only {
        cases.retain(|c| only.contains(&c.id));
    }
    Ok(cases)
}

fn plan_picked(suite: &Suite, selection: Selection<'_>) -> Result<Vec<Case>> {
    let cases = plan(suite, selection)?;
    if cases.is_empty() {
        let mut selected = String::new();
        if !selection.globs.is_empty() {
            selected.push_str(&format!(" and --select {}", selection.globs.join(", ")));
        }
        if !selection.tiers.is_empty() {
            selected.push_str(&format!(" and --tier {}", selection.tiers.join(", ")));
        }
        return Err(Error::usage(format!(
            "no example matches the suite's globs{selected} under {}; check examples.include in {}",
            suite.root.display(),
            suite.path.display()
        )));
    }
    Ok(cases)
}

/// What is said when a change or a list of ids left no case.
pub fn nothing_selected(selection: Selection<'_>) -> String {
    match selection.changed {
        Some(changed::ChangedSince::Files(changes)) => {
            format!("no case uses a file changed since {}: nothing to run", changes.base)
        }
        _ => "no case of the suite is in the list asked for: nothing to run".into(),
    }
}

/// `kubevet list`: the plan as a table or JSON.
pub fn list(suite: &Suite, selection: Selection<'_>, json: bool) -> Result<i32> {
    let cases = plan_some(suite, selection)?;
    let rows: Vec<PlanRow> = cases.iter().map(PlanRow::from).collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows).map_err(Error::usage_from)?);
        return Ok(0);
    }
    let w = |f: fn(&PlanRow) -> usize, min: usize| rows.iter().map(f).max().unwrap_or(0).max(min);
    let (wi, wf, wp) = (w(|r| r.id.len(), 2), w(|r| r.file.len(), 4), w(|r| r.profile.len(), 7));
    println!("{:<wi$}  {:<wf$}  {:<wp$}  {:>8}  TIER", "ID", "FILE", "PROFILE", "TIMEOUT");
    for r in &rows {
        let mut line =
            format!("{:<wi$}  {:<wf$}  {:<wp$}  {:>8}  {}", r.id, r.file, r.profile, r.timeout, r.tier.unwrap_or("-"));
        if let Some(skip) = r.skip {
            line.push_str(&format!("  (skipped: {skip})"));
        }
        if let Some(problem) = r.problem {
            line.push_str(&format!("  (error: {problem})"));
        }
        if let Some(changed) = r.changed {
            line.push_str(&format!("  ({changed})"));
        }
        println!("{line}");
    }
    if rows.is_empty() {
        println!("{}", nothing_selected(selection));
    }
    Ok(0)
}
