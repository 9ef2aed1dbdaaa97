//! The suite file, `kubevet.yaml`: where the examples are, defaults, framework profiles and
//! per-example overrides. Read strictly: an unknown key, a wrong type, a bad glob or regular
//! expression is an error at its file:line:col.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use globset::{Glob, GlobMatcher};
use regex::Regex;
use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use crate::{
    suite::assertions::{LogAssertion, LogCheck},
    suite::profile::{Profile, Rule},
    util::duration::Dur,
    util::error::{Error, Result},
    util::yaml,
};

pub mod assertions;
pub mod checks;
pub mod classes;
mod cluster;
pub mod gpu;
pub mod images;
pub mod metrics;
pub mod notebooks;
mod operators;
pub mod pipelines;
pub mod profile;

pub use classes::{ClassRule, FailureClass};
use cluster::ClusterFile;

pub use cluster::{ClusterSettings, ContainerModule, Provider};
use operators::OperatorFile;
pub use operators::{GitSource, HelmChart, HelmInstall, KustomizeTarget, Operator, Source};

pub const API_VERSION: &str = "kubevet.dev/v1alpha1";
pub const FILE_NAME: &str = "kubevet.yaml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SuiteFile {
    api_version: Spanned<String>,
    kind: Spanned<String>,
    extends: Option<Spanned<String>>,
    #[serde(default)]
    metadata: Option<Metadata>,
    examples: Option<ExamplesFile>,
    scenarios: Option<ExamplesFile>,
    #[serde(default)]
    defaults: DefaultsFile,
    #[serde(default)]
    profiles: Vec<ProfileFile>,
    #[serde(default)]
    overrides: Vec<OverrideFile>,
    lint: Option<LintFile>,
    operators: Option<Vec<OperatorFile>>,
    images: Option<Vec<ImageFile>>,
    cluster: Option<ClusterFile>,
    classes: Option<Vec<ClassRuleFile>>,
    pipelines: Option<pipelines::PipelinesFile>,
    changes: Option<ChangesFile>,
    gpu: Option<gpu::GpuFile>,
    notebooks: Option<notebooks::NotebooksFile>,
    metrics: Option<metrics::MetricsFile>,
}

/// `changes:`: what `--changed-since` needs besides the cases' own files.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ChangesFile {
    /// Files that affect every case (a shared base image's folder, a Makefile the images
    /// build with): a change to one selects everything.
    everything: Vec<Spanned<String>>,
}

/// A `classes:` entry: a regular expression over the reason and the events, and the class.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ClassRuleFile {
    #[serde(rename = "match")]
    pattern: Spanned<String>,
    class: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ImageFile {
    name: String,
    context: Spanned<String>,
    dockerfile: Option<String>,
    #[serde(default)]
    build_args: std::collections::BTreeMap<String, String>,
    target: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
struct LintFile {
    #[serde(default)]
    allow: Vec<Spanned<String>>,
    #[serde(default)]
    crds: Vec<String>,
    #[serde(default)]
    schema_locations: Vec<String>,
}

/// A policy rule the suite switches off, and where it says so.
#[derive(Debug, Clone)]
pub struct AllowedRule {
    pub name: String,
    pub line: u64,
    pub column: u64,
}

/// The suite's `lint:` settings.
#[derive(Debug, Clone, Default)]
pub struct LintSettings {
    /// Policy rules switched off, with where each is named (checked by `kubevet lint`, which
    /// knows the rules).
    pub allow: Vec<AllowedRule>,
    /// Directories of CRDs, relative to the suite.
    pub crds: Vec<PathBuf>,
    /// Schema locations: URL templates (kubeconform's) or URLs of CRD files.
    pub schema_locations: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExamplesFile {
    include: Vec<Spanned<String>>,
    #[serde(default)]
    exclude: Vec<Spanned<String>>,
}

impl Default for ExamplesFile {
    fn default() -> Self {
        ExamplesFile {
            include: vec![Spanned::new("examples/**/*.yaml".into(), Location::UNKNOWN, Location::UNKNOWN)],
            exclude: Vec::new(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DefaultsFile {
    timeout: Option<Dur>,
    concurrency: Option<Spanned<usize>>,
    log_limit_bytes: Option<usize>,
    failure_grace: Option<Dur>,
    cleanup_timeout: Option<Dur>,
    resolve_ttl: Option<Dur>,
    api_retry: Option<ApiRetryFile>,
    retries: Option<u32>,
    retry_on: Option<Vec<Spanned<String>>>,
    retry_backoff: Option<Dur>,
    circuit_breaker: Option<Spanned<u32>>,
    flaky: Option<FlakyPolicy>,
}

/// What a flaky case (failed, then passed on a retry) does to the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FlakyPolicy {
    /// It counts as passed, with a warning line.
    Pass,
    /// It fails the run (exit 1).
    Fail,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ApiRetryFile {
    attempts: Option<Spanned<u32>>,
    budget: Option<Dur>,
}

/// How often, and for how long, one API request is tried before kubevet gives up on the
/// cluster (`defaults.apiRetry`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ApiRetry {
    /// Attempts per request, the first included.
    pub attempts: u32,
    /// The time one request may take, its retries and their waits included.
    pub budget: Dur,
}

impl Default for ApiRetry {
    fn default() -> Self {
        ApiRetry { attempts: 6, budget: Dur(std::time::Duration::from_secs(60)) }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RuleFile {
    conditions: Option<Vec<String>>,
    status: Option<String>,
    field: Option<String>,
    #[serde(rename = "in")]
    values: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ProfileFile {
    name: Spanned<String>,
    api_version: Option<String>,
    kind: Option<String>,
    success: Option<Spanned<RuleFile>>,
    failure: Option<Spanned<RuleFile>>,
    pods: Option<String>,
    replica_label: Option<String>,
    timeout: Option<Dur>,
    #[serde(default)]
    logs: Vec<Spanned<LogAssertionFile>>,
    retries: Option<u32>,
    #[serde(default)]
    checks: Vec<Spanned<checks::CheckFile>>,
    #[serde(default)]
    metrics: Vec<metrics::MetricAssertionFile>,
    gpu: Option<gpu::GpuMode>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LogAssertionFile {
    replica: Option<String>,
    container: Option<String>,
    matches: Option<Spanned<String>>,
    not_matches: Option<Spanned<String>>,
    value: Option<Spanned<String>>,
    at_least: Option<f64>,
    at_most: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    Success,
    Failure,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct OverrideFile {
    path: Spanned<String>,
    timeout: Option<Dur>,
    expect: Option<Expect>,
    skip: Option<SkipFile>,
    tier: Option<String>,
    profile: Option<Spanned<String>>,
    #[serde(default)]
    logs: Vec<Spanned<LogAssertionFile>>,
    retries: Option<u32>,
    #[serde(default)]
    checks: Vec<Spanned<checks::CheckFile>>,
    /// A pipeline's run parameters, typed as the pipeline declares them.
    #[serde(default)]
    parameters: BTreeMap<String, serde_json::Value>,
    gpu: Option<gpu::GpuMode>,
    judge: Option<notebooks::Judge>,
    #[serde(default)]
    metrics: Vec<metrics::MetricAssertionFile>,
}

/// An override's `skip:`: the reason, or `false` to run what an earlier override (or the
/// base suite) skips.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SkipFile {
    Reason(String),
    Run(bool),
}

#[derive(Debug, Clone)]
pub struct Defaults {
    pub timeout: Option<Dur>,
    pub concurrency: usize,
    pub log_limit_bytes: usize,
    /// How long a pod may sit in ImagePullBackOff, ErrImagePull, CreateContainerConfigError or
    /// Unschedulable before its case fails.
    pub failure_grace: Dur,
    pub cleanup_timeout: Dur,
    /// How long a listing of versions (git tags, Helm index, OCI tags) is reused; by default
    /// not at all: a floating version is listed at every run.
    pub resolve_ttl: Dur,
    pub api_retry: ApiRetry,
    /// Retries of a case that did not pass (over it: a profile's, an override's, `--retries`).
    pub retries: u32,
    /// Which failure classes are retried.
    pub retry_on: Vec<FailureClass>,
    /// The wait before the first retry; it doubles for each later one.
    pub retry_backoff: Dur,
    /// Stop retrying once more than this share (%) of the run's cases have failed.
    pub circuit_breaker: u32,
    pub flaky: FlakyPolicy,
}

/// Settings for the examples whose path (relative to the suite) matches `pattern`; later
/// overrides win over earlier ones field by field.
#[derive(Debug, Clone)]
pub struct Override {
    pub pattern: GlobMatcher,
    pub timeout: Option<Dur>,
    pub expect: Option<Expect>,
    /// `Some(None)`: run it, whatever an earlier override said (`skip: false`).
    pub skip: Option<Option<String>>,
    pub tier: Option<String>,
    pub profile: Option<String>,
    pub logs: Vec<LogAssertion>,
    pub retries: Option<u32>,
    pub checks: Vec<checks::Check>,
    pub metrics: Vec<metrics::MetricAssertion>,
    /// A pipeline's run parameters, and where the override is (for errors about them).
    pub parameters: BTreeMap<String, serde_json::Value>,
    pub gpu: Option<gpu::GpuMode>,
    pub judge: Option<notebooks::Judge>,
    pub line: u64,
}

#[derive(Debug, Clone)]
pub struct Suite {
    pub path: PathBuf,
    /// The directory the suite's globs and example names are relative to.
    pub root: PathBuf,
    pub name: String,
    pub include: Vec<GlobMatcher>,
    pub exclude: Vec<GlobMatcher>,
    /// Scenario files (`kind: Scenario`), by default `scenarios/**/*.yaml`.
    pub scenarios_include: Vec<GlobMatcher>,
    pub scenarios_exclude: Vec<GlobMatcher>,
    pub defaults: Defaults,
    pub profiles: Vec<Profile>,
    pub overrides: Vec<Override>,
    pub lint: LintSettings,
    pub operators: Vec<Operator>,
    pub images: Vec<images::Image>,
    pub cluster: ClusterSettings,
    /// The suite's own failure-class rules, before kubevet's.
    pub classes: Vec<ClassRule>,
    pub pipelines: pipelines::PipelineSettings,
    /// Files whose change selects every case (`changes.everything`), relative to the root.
    pub affect_everything: Vec<GlobMatcher>,
    /// The suite file and every file it extends: a change to one selects every case.
    pub files: Vec<PathBuf>,
    pub gpu: gpu::GpuSettings,
    pub notebooks: notebooks::NotebookSettings,
    pub metrics: metrics::MetricsSettings,
}

/// The suite file given, or `kubevet.yaml` in the current directory or the nearest parent
/// up to the repository root.
pub fn locate(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = given {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(Error::usage(format!("suite file {} does not exist", path.display())))
        };
    }
    let cwd = std::env::current_dir().map_err(|e| Error::usage_because("current directory", e))?;
    for dir in cwd.ancestors() {
        let candidate = dir.join(FILE_NAME);
        if candidate.is_file() {
            return Ok(candidate);
        }
        if dir.join(".git").exists() {
            break;
        }
    }
    Err(Error::usage(format!(
        "no {FILE_NAME} in {} or its parents up to the repository root; write one (see README) or pass --suite FILE",
        cwd.display()
    )))
}

/// The suite given or found (see [`locate`]), loaded.
pub fn load_found(given: Option<&Path>) -> Result<Suite> {
    load(&locate(given)?)
}

pub fn load(path: &Path) -> Result<Suite> {
    load_extending(path, 0)
}

/// A suite, and the suite it `extends` (loaded first, with its own paths resolved against its
/// own folder): the extending file's `examples`, `lint`, `operators`, `images`, `cluster` and
/// `metadata` replace the base's, its `defaults` replace field by field, its `profiles` merge
/// by name and its `overrides` come after the base's.
fn load_extending(path: &Path, depth: usize) -> Result<Suite> {
    let text = yaml::read(path)?;
    let file: SuiteFile = yaml::typed(path, &text)?;
    let at = |loc: &Location, msg: String| Error::input(path, loc.line(), loc.column(), msg);
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let parent = base_suite(path, &file, dir, depth)?;
    let parent = parent.as_ref();
    check_header(path, &file)?;
    let glob = |g: &Spanned<String>| {
        Glob::new(&g.value)
            .map(|g| g.compile_matcher())
            .map_err(|e| at(&g.referenced, format!("invalid glob {:?}: {e}", g.value)))
    };
    let globs = |list: &[Spanned<String>]| list.iter().map(glob).collect::<Result<Vec<_>>>();
    let metrics = match (&file.metrics, parent) {
        (None, Some(p)) => p.metrics.clone(),
        (m, _) => metrics::load(path, m.as_ref())?,
    };
    let mut profiles = parent.map(|p| p.profiles.clone()).unwrap_or_else(profile::builtins);
    for p in &file.profiles {
        let base = profiles.iter().find(|b| b.name == p.name.value);
        let merged = merge_profile(path, &text, p, base, &metrics)?;
        profiles.retain(|b| b.name != merged.name);
        profiles.push(merged);
    }
    let overrides = overrides_of(path, &text, &file, parent, &profiles, &metrics, glob)?;
    let base = dir;
    let root = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir.to_path_buf() };
    let operators = inherit(
        file.operators.as_ref(),
        parent,
        |ops| ops.iter().map(|op| operators::load(path, base, op)).collect(),
        |p| p.operators.clone(),
        || Ok(Vec::new()),
    )?;
    let images = inherit(
        file.images.as_ref(),
        parent,
        |images| images.iter().map(|i| image(path, base, i)).collect(),
        |p| p.images.clone(),
        || Ok(Vec::new()),
    )?;
    let cluster = inherit(
        file.cluster.as_ref(),
        parent,
        |c| cluster::load(path, base, c),
        |p| p.cluster.clone(),
        || cluster::load(path, base, &ClusterFile::default()),
    )?;
    let examples = inherit(
        file.examples.as_ref(),
        parent,
        |e| Ok((globs(&e.include)?, globs(&e.exclude)?)),
        |p| (p.include.clone(), p.exclude.clone()),
        || Ok((globs(&ExamplesFile::default().include)?, Vec::new())),
    )?;
    let scenarios = inherit(
        file.scenarios.as_ref(),
        parent,
        |e| Ok((globs(&e.include)?, globs(&e.exclude)?)),
        |p| (p.scenarios_include.clone(), p.scenarios_exclude.clone()),
        || {
            Ok((
                vec![glob(&Spanned::new("scenarios/**/*.yaml".into(), Location::UNKNOWN, Location::UNKNOWN))?],
                Vec::new(),
            ))
        },
    )?;
    let lint = inherit(
        file.lint.as_ref(),
        parent,
        |l| Ok(lint_settings(l, &root)),
        |p| p.lint.clone(),
        || Ok(LintSettings::default()),
    )?;
    let pipelines = inherit(
        file.pipelines.as_ref(),
        parent,
        |p| pipelines::load(path, p, glob),
        |p| p.pipelines.clone(),
        || Ok(pipelines::PipelineSettings::default()),
    )?;
    let class_of = |name: &Spanned<String>| {
        FailureClass::parse(&name.value).ok_or_else(|| {
            at(&name.referenced, format!("unknown failure class {:?}", name.value))
                .with_hint("write one of test, timeout, infrastructure, example")
        })
    };
    let classes = classes_of(path, &file, parent, class_of)?;
    let defaults = defaults_of(path, &file.defaults, parent.map(|p| &p.defaults), class_of)?;
    let affect_everything = inherit(
        file.changes.as_ref(),
        parent,
        |c| globs(&c.everything),
        |p| p.affect_everything.clone(),
        || Ok(Vec::new()),
    )?;
    let gpu = inherit(file.gpu.as_ref(), parent, |g| Ok(g.into()), |p| p.gpu.clone(), || Ok(Default::default()))?;
    let notebooks =
        inherit(file.notebooks.as_ref(), parent, |n| Ok(n.into()), |p| p.notebooks.clone(), || Ok(Default::default()))?;
    let mut files = vec![path.to_path_buf()];
    files.extend(parent.iter().flat_map(|p| p.files.iter().cloned()));
    Ok(Suite {
        path: path.to_path_buf(),
        name: match (file.metadata, parent) {
            (Some(m), _) => m.name,
            (None, Some(p)) => p.name.clone(),
            (None, None) => "kubevet".into(),
        },
        include: examples.0,
        exclude: examples.1,
        scenarios_include: scenarios.0,
        scenarios_exclude: scenarios.1,
        defaults,
        classes,
        pipelines,
        lint,
        root,
        profiles,
        overrides,
        operators,
        images,
        cluster,
        affect_everything,
        files,
        gpu,
        notebooks,
        metrics,
    })
}

/// The suite `extends` names, loaded (and its own base, up to 8 deep).
fn base_suite(path: &Path, file: &SuiteFile, dir: &Path, depth: usize) -> Result<Option<Suite>> {
    let at = |loc: &Location, msg: String| Error::input(path, loc.line(), loc.column(), msg);
    match &file.extends {
        None => Ok(None),
        Some(e) if depth >= 8 => Err(at(&e.referenced, "extends goes 8 suites deep: a cycle?".into())),
        Some(e) => {
            let base = dir.join(&e.value);
            if !base.is_file() {
                return Err(at(&e.referenced, format!("extends: {} does not exist", base.display())));
            }
            load_extending(&base, depth + 1).map(Some)
        }
    }
}

/// `apiVersion` and `kind` are a suite's.
fn check_header(path: &Path, file: &SuiteFile) -> Result<()> {
    let at = |loc: &Location, msg: String| Error::input(path, loc.line(), loc.column(), msg);
    if file.api_version.value != API_VERSION {
        return Err(at(
            &file.api_version.referenced,
            format!("apiVersion must be {API_VERSION}, not {:?}", file.api_version.value),
        ));
    }
    if file.kind.value != "Suite" {
        return Err(at(&file.kind.referenced, format!("kind must be Suite, not {:?}", file.kind.value)));
    }
    Ok(())
}

/// The base suite's class rules, then this file's.
fn classes_of(
    path: &Path,
    file: &SuiteFile,
    parent: Option<&Suite>,
    class_of: impl Fn(&Spanned<String>) -> Result<FailureClass>,
) -> Result<Vec<ClassRule>> {
    let mut classes = parent.map(|p| p.classes.clone()).unwrap_or_default();
    for rule in file.classes.iter().flatten() {
        let pattern = Regex::new(&rule.pattern.value).map_err(|e| {
            let loc = &rule.pattern.referenced;
            Error::input(path, loc.line(), loc.column(), format!("invalid regular expression: {e}"))
        })?;
        classes.push(ClassRule { pattern, class: class_of(&rule.class)? });
    }
    Ok(classes)
}

/// The one rule `extends` follows for every whole section: the file's own when it has it,
/// else the base suite's, else the default.
fn inherit<F, T>(
    own: Option<&F>,
    parent: Option<&Suite>,
    read: impl FnOnce(&F) -> Result<T>,
    from_parent: impl FnOnce(&Suite) -> T,
    default: impl FnOnce() -> Result<T>,
) -> Result<T> {
    match (own, parent) {
        (Some(own), _) => read(own),
        (None, Some(parent)) => Ok(from_parent(parent)),
        (None, None) => default(),
    }
}

fn lint_settings(l: &LintFile, root: &Path) -> LintSettings {
    LintSettings {
        allow: l
            .allow
            .iter()
            .map(|r| AllowedRule { name: r.value.clone(), line: r.referenced.line(), column: r.referenced.column() })
            .collect(),
        crds: l.crds.iter().map(|c| root.join(c)).collect(),
        schema_locations: l.schema_locations.clone(),
    }
}

/// The base suite's overrides, then this file's (a profile they name must exist).
fn overrides_of(
    path: &Path,
    text: &str,
    file: &SuiteFile,
    parent: Option<&Suite>,
    profiles: &[Profile],
    metric_settings: &metrics::MetricsSettings,
    glob: impl Fn(&Spanned<String>) -> Result<globset::GlobMatcher>,
) -> Result<Vec<Override>> {
    let mut overrides = parent.map(|p| p.overrides.clone()).unwrap_or_default();
    for o in &file.overrides {
        if let Some(name) = &o.profile
            && !profiles.iter().any(|p| p.name == name.value)
        {
            let known: Vec<_> = profiles.iter().map(|p| p.name.as_str()).collect();
            let message = format!("unknown profile {:?}; known: {}", name.value, known.join(", "));
            return Err(Error::input(path, name.referenced.line(), name.referenced.column(), message));
        }
        overrides.push(Override {
            pattern: glob(&o.path)?,
            timeout: o.timeout,
            expect: o.expect,
            skip: match &o.skip {
                None => None,
                Some(SkipFile::Reason(why)) => Some(Some(why.clone())),
                Some(SkipFile::Run(false)) => Some(None),
                Some(SkipFile::Run(true)) => {
                    let at = &o.path.referenced;
                    let message =
                        "this override's skip needs a reason (the report's message), or false to run the files";
                    return Err(
                        Error::input(path, at.line(), at.column(), message).with_hint("write `skip: needs a GPU`, say")
                    );
                }
            },
            tier: o.tier.clone(),
            profile: o.profile.as_ref().map(|p| p.value.clone()),
            retries: o.retries,
            logs: o.logs.iter().map(|l| log_assertion(path, l)).collect::<Result<_>>()?,
            checks: all_checks(path, text, &o.checks)?,
            metrics: o
                .metrics
                .iter()
                .map(|m| metrics::assertion(path, text, m, None, metric_settings))
                .collect::<Result<_>>()?,
            parameters: o.parameters.clone(),
            gpu: o.gpu,
            judge: o.judge,
            line: o.path.referenced.line(),
        });
    }
    Ok(overrides)
}

/// `defaults:`, field by field over the base suite's, each checked at its position.
fn defaults_of(
    path: &Path,
    d: &DefaultsFile,
    inherited: Option<&Defaults>,
    class_of: impl Fn(&Spanned<String>) -> Result<FailureClass>,
) -> Result<Defaults> {
    let at = |loc: &Location, msg: &str| Error::input(path, loc.line(), loc.column(), msg);
    let or = |own: Option<Dur>, from: fn(&Defaults) -> Dur, default: u64| {
        own.or(inherited.map(from)).unwrap_or(Dur(std::time::Duration::from_secs(default)))
    };
    if let Some(c) = d.concurrency.as_ref().filter(|c| c.value == 0) {
        return Err(at(&c.referenced, "concurrency must be at least 1")
            .with_hint("write the number of cases to run at once, like `concurrency: 4`"));
    }
    let retry = d.api_retry.as_ref();
    if let Some(a) = retry.and_then(|r| r.attempts.as_ref()).filter(|a| a.value == 0) {
        return Err(at(&a.referenced, "attempts must be at least 1 (the first attempt counts)"));
    }
    if let Some(c) = d.circuit_breaker.as_ref().filter(|c| c.value == 0 || c.value > 100) {
        return Err(at(&c.referenced, "circuitBreaker is a share of the run's cases, from 1 to 100 (%)"));
    }
    let retry_on = match &d.retry_on {
        Some(names) => names.iter().map(class_of).collect::<Result<Vec<_>>>()?,
        None => inherited
            .map(|i| i.retry_on.clone())
            .unwrap_or_else(|| vec![FailureClass::Infrastructure, FailureClass::Timeout]),
    };
    let inherited_retry = inherited.map(|i| i.api_retry).unwrap_or_default();
    let api_retry = ApiRetry {
        attempts: retry.and_then(|r| r.attempts.as_ref()).map(|a| a.value).unwrap_or(inherited_retry.attempts),
        budget: retry.and_then(|r| r.budget).unwrap_or(inherited_retry.budget),
    };
    Ok(Defaults {
        timeout: d.timeout.or(inherited.and_then(|i| i.timeout)),
        concurrency: d.concurrency.as_ref().map(|c| c.value).or(inherited.map(|i| i.concurrency)).unwrap_or(4),
        log_limit_bytes: d.log_limit_bytes.or(inherited.map(|i| i.log_limit_bytes)).unwrap_or(1 << 20),
        failure_grace: or(d.failure_grace, |i| i.failure_grace, 10),
        cleanup_timeout: or(d.cleanup_timeout, |i| i.cleanup_timeout, 120),
        resolve_ttl: or(d.resolve_ttl, |i| i.resolve_ttl, 0),
        api_retry,
        retries: d.retries.or(inherited.map(|i| i.retries)).unwrap_or(0),
        retry_on,
        retry_backoff: or(d.retry_backoff, |i| i.retry_backoff, 5),
        circuit_breaker: d
            .circuit_breaker
            .as_ref()
            .map(|c| c.value)
            .or(inherited.map(|i| i.circuit_breaker))
            .unwrap_or(50),
        flaky: d.flaky.or(inherited.map(|i| i.flaky)).unwrap_or(FlakyPolicy::Pass),
    })
}

fn image(path: &Path, base: &Path, image: &ImageFile) -> Result<images::Image> {
    let resolved = images::Image {
        name: image.name.clone(),
        context: base.join(&image.context.value),
        dockerfile: image.dockerfile.clone().unwrap_or_else(|| "Dockerfile".into()),
        build_args: image.build_args.clone(),
        target: image.target.clone(),
    };
    if !resolved.context.is_dir() {
        let msg = format!("image build context {} does not exist", resolved.context.display());
        return Err(Error::input(path, image.context.referenced.line(), image.context.referenced.column(), msg));
    }
    Ok(resolved)
}

fn rule(path: &Path, r: &Spanned<RuleFile>) -> Result<Rule> {
    let loc = &r.referenced;
    let v = &r.value;
    match (&v.conditions, &v.field, &v.values) {
        (Some(types), None, None) => {
            Ok(Rule::Conditions { types: types.clone(), status: v.status.clone().unwrap_or_else(|| "True".into()) })
        }
        (None, Some(field), Some(values)) if v.status.is_none() => {
            Ok(Rule::Field { path: field.clone(), values: values.clone() })
        }
        _ => Err(Error::input(
            path,
            loc.line(),
            loc.column(),
            "a rule is either {conditions: [TYPE…], status: \"True\"} or {field: status.phase, in: [VALUE…]}",
        )),
    }
}

fn all_checks(path: &Path, text: &str, files: &[Spanned<checks::CheckFile>]) -> Result<Vec<checks::Check>> {
    files.iter().enumerate().map(|(i, c)| checks::check(path, text, c, i)).collect()
}

fn merge_profile(
    path: &Path,
    text: &str,
    p: &ProfileFile,
    base: Option<&Profile>,
    metric_settings: &metrics::MetricsSettings,
) -> Result<Profile> {
    let loc = &p.name.referenced;
    let missing = |what: &str| {
        Error::input(
            path,
            loc.line(),
            loc.column(),
            format!("profile {:?} is not built in, so it needs {what}", p.name.value),
        )
    };
    let api_version = p.api_version.clone();
    let group = match (&api_version, base) {
        (Some(av), _) => av.rsplit_once('/').map(|(g, _)| g.to_string()).unwrap_or_default(),
        (None, Some(b)) => b.group.clone(),
        (None, None) => return Err(missing("apiVersion")),
    };
    let logs = p.logs.iter().map(|l| log_assertion(path, l)).collect::<Result<Vec<_>>>()?;
    let checks = all_checks(path, text, &p.checks)?;
    let assertions = p
        .metrics
        .iter()
        .map(|m| metrics::assertion(path, text, m, None, metric_settings))
        .collect::<Result<Vec<_>>>()?;
    Ok(Profile {
        name: p.name.value.clone(),
        group,
        kind: p.kind.clone().or_else(|| base.map(|b| b.kind.clone())).ok_or_else(|| missing("kind"))?,
        success: match &p.success {
            Some(r) => rule(path, r)?,
            None => base.map(|b| b.success.clone()).ok_or_else(|| missing("success"))?,
        },
        failure: match &p.failure {
            Some(r) => rule(path, r)?,
            None => base.map(|b| b.failure.clone()).ok_or_else(|| missing("failure"))?,
        },
        pods: p.pods.clone().or_else(|| base.map(|b| b.pods.clone())).ok_or_else(|| missing("pods"))?,
        replica_label: p.replica_label.clone().or_else(|| base.and_then(|b| b.replica_label.clone())),
        timeout: p.timeout.or_else(|| base.and_then(|b| b.timeout)),
        default_timeout: base.map(|b| b.default_timeout).unwrap_or(Dur(std::time::Duration::from_secs(600))),
        logs: if logs.is_empty() { base.map(|b| b.logs.clone()).unwrap_or_default() } else { logs },
        retries: p.retries.or_else(|| base.and_then(|b| b.retries)),
        checks: if checks.is_empty() { base.map(|b| b.checks.clone()).unwrap_or_default() } else { checks },
        metrics: if assertions.is_empty() { base.map(|b| b.metrics.clone()).unwrap_or_default() } else { assertions },
        gpu: p.gpu.or_else(|| base.and_then(|b| b.gpu)),
    })
}

pub fn log_assertion(path: &Path, l: &Spanned<LogAssertionFile>) -> Result<LogAssertion> {
    let v = &l.value;
    let compile = |s: &Spanned<String>| {
        Regex::new(&s.value).map_err(|e| {
            Error::input(path, s.referenced.line(), s.referenced.column(), format!("invalid regular expression: {e}"))
        })
    };
    let check = match (&v.matches, &v.not_matches, &v.value) {
        (Some(r), None, None) if v.at_least.is_none() && v.at_most.is_none() => LogCheck::Matches(compile(r)?),
        (None, Some(r), None) if v.at_least.is_none() && v.at_most.is_none() => LogCheck::Absent(compile(r)?),
        (None, None, Some(r)) if v.at_least.is_some() || v.at_most.is_some() => {
            let regex = compile(r)?;
            if regex.captures_len() < 2 {
                return Err(Error::input(
                    path,
                    r.referenced.line(),
                    r.referenced.column(),
                    "a value assertion needs a capture group around the number, like 'accuracy=([0-9.]+)'",
                ));
            }
            LogCheck::Threshold { regex, at_least: v.at_least, at_most: v.at_most }
        }
        _ => {
            return Err(Error::input(
                path,
                l.referenced.line(),
                l.referenced.column(),
                "a log assertion has exactly one of matches, notMatches, or value with atLeast and/or atMost",
            ));
        }
    };
    Ok(LogAssertion { replica: v.replica.clone(), container: v.container.clone(), check })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<Suite> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, text).expect("write");
        load(&path).map_err(|e| match e {
            Error::Input { line, column, message, .. } => Error::usage(format!("{line}:{column}: {message}")),
            other => other,
        })
    }

    #[test]
    fn strict_errors_point_at_the_key() {
        let err =
            load_text("apiVersion: kubevet.dev/v1alpha1\nkind: Suite\ndefaults:\n  timeout: 10m\n  concurency: 3\n")
                .expect_err("unknown key");
        assert!(err.to_string().starts_with("5:3: unknown field `concurency`"), "{err}");
        let err = load_text("apiVersion: kubevet.dev/v1alpha1\nkind: Suite\ndefaults:\n  timeout: ten\n")
            .expect_err("bad duration");
        assert!(err.to_string().starts_with("4:12: invalid duration"), "{err}");
        let err = load_text("apiVersion: kubevet.dev/v1alpha1\nkind: Suite\noverrides:\n  - path: a.yaml\n    logs:\n      - matches: '(unclosed'\n")
            .expect_err("bad regex");
        assert!(err.to_string().starts_with("6:18: invalid regular expression"), "{err}");
        let err = load_text("apiVersion: v1\nkind: Suite\n").expect_err("wrong apiVersion");
        assert!(err.to_string().starts_with("1:13: apiVersion must be kubevet.dev/v1alpha1"), "{err}");
    }

    #[test]
    fn operator_and_cluster_mistakes_point_at_the_key() {
        let head = "apiVersion: kubevet.dev/v1alpha1\nkind: Suite\n";
        let err = |body: &str| load_text(&format!("{head}{body}")).expect_err("invalid").to_string();
        assert!(err("cluster:\n  provider: minikube\n").starts_with("4:13: unknown cluster provider \"minikube\""));
        assert!(
            err("cluster:\n  loadImages: docker\n")
                .starts_with("4:15: loadImages \"docker\": expected kind:<cluster name>")
        );
        let both = err("operators:\n  - name: op\n    kustomize: .\n    helm: {chart: c}\n");
        assert!(both.starts_with("4:11: operator \"op\" needs exactly one of kustomize and helm"), "{both}");
        let unversioned =
            err("operators:\n  - name: op\n    helm: {chart: widgets, repo: https://charts.example.com}\n");
        assert!(unversioned.starts_with("5:19: chart \"widgets\" needs a version"), "{unversioned}");
        let upgrade = err(
            "operators:\n  - name: op\n    images: [a=b:1]\n    helm: {chart: oci://r.example.com/c, version: latest, install: upgrade}\n",
        );
        assert!(upgrade.starts_with("5:14: images: cannot apply to `install: upgrade`"), "{upgrade}");
        let retag = err("operators:\n  - name: op\n    kustomize: .\n    images: [plain]\n");
        assert!(retag.starts_with("6:14: \"plain\": expected old=new:tag"), "{retag}");
        let ok =
            load_text(&format!("{head}cluster: {{provider: kind, kubernetesVersions: [\"1.33\"]}}\n")).expect("valid");
        assert_eq!((ok.cluster.provider, ok.cluster.name.as_str()), (Provider::Kind, "kubevet"));
    }

    #[test]
    fn a_suite_extends_another_key_by_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("base/deploy")).expect("mkdir");
        std::fs::write(
            dir.path().join("base/kubevet.yaml"),
            "apiVersion: kubevet.dev/v1alpha1\nkind: Suite\nmetadata: {name: shared}\ndefaults: {concurrency: 7, failureGrace: 3s}\nprofiles: [{name: job, timeout: 1m}]\noverrides: [{path: a.yaml, tier: base}]\noperators: [{name: op, kustomize: deploy}]\n",
        )
        .expect("write");
        let child = dir.path().join("kubevet.kind.yaml");
        std::fs::write(
            &child,
            "apiVersion: kubevet.dev/v1alpha1\nkind: Suite\nextends: base/kubevet.yaml\ndefaults: {failureGrace: 9s}\ncluster: {provider: kind, kubernetesVersions: [\"1.34\"]}\noverrides: [{path: a.yaml, tier: kind}]\n",
        )
        .expect("write");
        let suite = load(&child).expect("loads");
        assert_eq!(suite.name, "shared");
        assert_eq!((suite.defaults.concurrency, suite.defaults.failure_grace.0.as_secs()), (7, 9));
        assert_eq!(suite.cluster.provider, Provider::Kind);
        assert_eq!(suite.operators.len(), 1);
        assert!(
            matches!(&suite.operators[0].source, Source::Kustomize { target: KustomizeTarget::Dir(d), .. } if d.ends_with("base/deploy")),
            "the base's paths stay the base's"
        );
        let tiers: Vec<_> = suite.overrides.iter().map(|o| o.tier.clone().unwrap_or_default()).collect();
        assert_eq!(tiers, ["base", "kind"]);
        let job = suite.profiles.iter().find(|p| p.name == "job").expect("job profile");
        assert_eq!(job.timeout.map(|t| t.0.as_secs()), Some(60));
        std::fs::write(&child, "apiVersion: kubevet.dev/v1alpha1\nkind: Suite\nextends: kubevet.kind.yaml\n")
            .expect("write");
        let err = load(&child).expect_err("a cycle").to_string();
        assert!(err.contains("extends goes 8 suites deep"), "{err}");
    }

    #[test]
    fn a_later_override_runs_what_an_earlier_one_skips() {
        let head = "apiVersion: kubevet.dev/v1alpha1\nkind: Suite\noverrides:\n";
        let suite =
            load_text(&format!("{head}  - path: a.yaml\n    skip: needs a GPU\n  - path: a.yaml\n    skip: false\n"))
                .expect("valid");
        let skips: Vec<_> = suite.overrides.iter().map(|o| o.skip.clone()).collect();
        assert_eq!(skips, [Some(Some("needs a GPU".to_string())), Some(None)]);
        let err = load_text(&format!("{head}  - path: a.yaml\n    skip: true\n")).expect_err("no reason");
        assert!(err.to_string().starts_with("4:11: this override's skip needs a reason"), "{err}");
    }

    #[test]
    fn profiles_override_builtins_field_by_field_and_add_new_ones() {
        let suite = load_text(
            "apiVersion: kubevet.dev/v1alpha1\nkind: Suite\nprofiles:\n  - name: pytorchjob\n    timeout: 2m\n  - name: rayjob\n    apiVersion: ray.io/v1\n    kind: RayJob\n    success: {field: status.jobStatus, in: [SUCCEEDED]}\n    failure: {field: status.jobStatus, in: [FAILED]}\n    pods: ray.io/cluster={name}\n",
        )
        .expect("valid");
        let pt = suite.profiles.iter().find(|p| p.name == "pytorchjob").expect("pytorchjob");
        assert_eq!(pt.timeout.map(|t| t.to_string()).as_deref(), Some("2m0s"));
        assert_eq!(pt.pods, "training.kubeflow.org/job-name={name}");
        let ray = suite.profiles.iter().find(|p| p.name == "rayjob").expect("rayjob");
        assert!(ray.matches("ray.io/v1", "RayJob"));
        let err = load_text("apiVersion: kubevet.dev/v1alpha1\nkind: Suite\nprofiles:\n  - name: x\n    kind: X\n")
            .expect_err("incomplete");
        assert!(err.to_string().contains("is not built in, so it needs apiVersion"), "{err}");
    }
}
