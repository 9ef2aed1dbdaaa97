//! Scenario files (`kind: Scenario`): one case of ordered steps in a namespace of its own:
//! apply (or expect a rejection), assert and error (waited for by watching), wait, script,
//! exec, logs, delete, metrics; `catch` steps when a step fails, `finally` steps always. Read strictly:
//! an unknown key, bad CEL or a bad regular expression is an error at file:line:col.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::Spanned;

use crate::{
    suite::{
        Expect, LogAssertionFile,
        assertions::LogAssertion,
        checks::{self, Exec, ExecFile, Script, Words},
        log_assertion,
        metrics::{self, MetricAssertion, MetricAssertionFile, MetricsSettings, When},
    },
    util::{
        cel::Expression,
        duration::Dur,
        error::{Error, Result},
        yaml,
    },
};

/// How long an assert, error hold or wait may take unless the step says.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Scenario {
    pub steps: Vec<Step>,
    pub catch: Vec<Step>,
    pub finally: Vec<Step>,
}

impl Scenario {
    /// The files its steps apply and the scripts they run.
    pub fn files(&self) -> impl Iterator<Item = PathBuf> + '_ {
        self.steps.iter().chain(&self.catch).chain(&self.finally).filter_map(|step| match &step.action {
            StepAction::Apply { file, .. } => file.clone(),
            StepAction::Script(script) => script.file(),
            _ => None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub action: StepAction,
    pub timeout: Duration,
    /// Where the step is written, for reports.
    pub line: u64,
}

/// Which objects a step looks at: a kind, and a name or a label selector (or every object of
/// the kind in the case's namespace), and what they must look like.
#[derive(Debug, Clone)]
pub struct Target {
    pub api_version: String,
    pub kind: String,
    pub name: Option<String>,
    pub selector: Option<String>,
    /// A partial object: every field written must be there with this value (lists: each item
    /// written must match some item).
    pub matches: Option<Value>,
    /// Over `object` (with a name) or `objects` (every object of the target), `namespace`,
    /// `case` and `run`.
    pub cel: Option<Arc<Expression>>,
}

#[derive(Debug, Clone)]
pub enum WaitFor {
    Deleted,
    /// A `status.conditions[]` entry of this type with status True.
    Condition(String),
}

#[derive(Debug, Clone)]
pub enum StepAction {
    Apply {
        objects: Vec<Value>,
        source: String,
        /// The file applied, when the step names one (`--changed-since` follows it).
        file: Option<PathBuf>,
        expect_error: Option<Regex>,
    },
    Assert(Target),
    /// The target must not exist or not match, for as long as `hold`.
    Error {
        target: Target,
        hold: Duration,
    },
    Wait {
        target: Target,
        until: WaitFor,
    },
    Script(Script),
    Exec(Exec),
    Logs {
        selector: Option<String>,
        assertions: Vec<LogAssertion>,
    },
    Delete(Target),
    /// Metric assertions over the operators' metrics before the scenario's first step and now.
    Metrics(Vec<MetricAssertion>),
}

impl StepAction {
    pub fn verb(&self) -> &'static str {
        match self {
            StepAction::Apply { .. } => "apply",
            StepAction::Assert(_) => "assert",
            StepAction::Error { .. } => "error",
            StepAction::Wait { .. } => "wait",
            StepAction::Script(_) => "script",
            StepAction::Exec(_) => "exec",
            StepAction::Logs { .. } => "logs",
            StepAction::Delete(_) => "delete",
            StepAction::Metrics(_) => "metrics",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ScenarioFile {
    api_version: Spanned<String>,
    kind: Spanned<String>,
    #[serde(default)]
    metadata: Option<MetadataFile>,
    spec: SpecFile,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetadataFile {
    #[allow(dead_code)] // Read so that it is allowed; the case is named by its file.
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SpecFile {
    timeout: Option<Dur>,
    tier: Option<String>,
    expect: Option<Expect>,
    skip: Option<String>,
    steps: Vec<Spanned<StepFile>>,
    #[serde(default)]
    catch: Vec<Spanned<StepFile>>,
    #[serde(default)]
    finally: Vec<Spanned<StepFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct StepFile {
    name: Option<String>,
    timeout: Option<Dur>,
    apply: Option<Spanned<ApplyFile>>,
    expect_error: Option<Spanned<String>>,
    assert: Option<TargetFile>,
    error: Option<TargetFile>,
    #[serde(rename = "for")]
    hold: Option<Dur>,
    wait: Option<WaitFile>,
    script: Option<Spanned<Words>>,
    #[serde(default)]
    shell: bool,
    exec: Option<ExecFile>,
    logs: Option<LogsFile>,
    delete: Option<TargetFile>,
    metrics: Option<Vec<MetricAssertionFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ApplyFile {
    File(String),
    Inline(ApplyInline),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplyInline {
    file: Option<String>,
    object: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TargetFile {
    api_version: String,
    kind: String,
    name: Option<String>,
    selector: Option<String>,
    #[serde(rename = "match")]
    matches: Option<Value>,
    cel: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WaitFile {
    api_version: String,
    kind: String,
    name: Option<String>,
    selector: Option<String>,
    #[serde(default)]
    deleted: bool,
    condition: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LogsFile {
    selector: Option<String>,
    assertions: Vec<Spanned<LogAssertionFile>>,
}

/// Whether a file's first document says `kind: Scenario` (of kubevet's API).
pub fn is_scenario(text: &str) -> bool {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Head {
        api_version: Option<String>,
        kind: Option<String>,
    }
    let first = text.split("\n---").next().unwrap_or(text);
    serde_saphyr::from_str::<Head>(first).ok().is_some_and(|h| {
        h.kind.as_deref() == Some("Scenario") && h.api_version.as_deref() == Some(crate::suite::API_VERSION)
    })
}

/// What a scenario file sets for its case.
pub struct Read {
    pub scenario: Scenario,
    pub timeout: Option<Dur>,
    pub tier: Option<String>,
    pub expect: Option<Expect>,
    pub skip: Option<String>,
}

/// Reads a scenario file; its metrics steps name sources of `metric_settings` (the suite's).
pub fn read(path: &Path, text: &str, metric_settings: &MetricsSettings) -> Result<Read> {
    let file: ScenarioFile = yaml::typed(path, text)?;
    let at =
        |s: &Spanned<String>, message: String| Error::input(path, s.referenced.line(), s.referenced.column(), message);
    if file.api_version.value != crate::suite::API_VERSION {
        return Err(at(&file.api_version, format!("apiVersion must be {}", crate::suite::API_VERSION)));
    }
    if file.kind.value != "Scenario" {
        return Err(at(&file.kind, format!("kind must be Scenario, not {:?}", file.kind.value)));
    }
    let _ = file.metadata;
    let spec = file.spec;
    let steps = |list: &[Spanned<StepFile>]| {
        list.iter().enumerate().map(|(i, s)| step((path, text), s, i, metric_settings)).collect::<Result<Vec<_>>>()
    };
    let scenario = Scenario { steps: steps(&spec.steps)?, catch: steps(&spec.catch)?, finally: steps(&spec.finally)? };
    if scenario.steps.is_empty() {
        return Err(Error::input(path, 1, 1, "a scenario without steps").with_hint("add spec.steps: apply, assert, …"));
    }
    Ok(Read { scenario, timeout: spec.timeout, tier: spec.tier, expect: spec.expect, skip: spec.skip })
}

fn target(path: &Path, text: &str, t: &TargetFile) -> Result<Target> {
    Ok(Target {
        api_version: t.api_version.clone(),
        kind: t.kind.clone(),
        name: t.name.clone(),
        selector: t.selector.clone(),
        matches: t.matches.clone(),
        cel: t.cel.as_ref().map(|c| checks::cel_at(path, text, c)).transpose()?,
    })
}

/// A metrics step's assertions: on the operators' sources (a workload's is read while an
/// example's pods run, not at a step), always judged (a scenario has no workload's ending).
fn metric_step(
    (path, text): (&Path, &str),
    list: &[MetricAssertionFile],
    settings: &MetricsSettings,
    here: impl Fn(&str) -> Error,
) -> Result<Vec<MetricAssertion>> {
    if list.is_empty() {
        return Err(here("a metrics step with no assertion"));
    }
    let assertions =
        list.iter().map(|m| metrics::assertion(path, text, m, None, settings)).collect::<Result<Vec<_>>>()?;
    if assertions.iter().any(|a| settings.source(&a.source).is_some_and(metrics::MetricSource::is_workload)) {
        return Err(here(
            "a metrics step reads an operator's source: a workload's own source is read while an example's pods run",
        ));
    }
    if assertions.iter().any(|a| a.when != When::Always) {
        return Err(here("`when` is for an example's assertions: a scenario's step is judged when it runs")
            .with_hint("remove `when:`; put the step where the scenario has what it asserts"));
    }
    Ok(assertions)
}

fn step(
    (path, text): (&Path, &str),
    file: &Spanned<StepFile>,
    index: usize,
    settings: &MetricsSettings,
) -> Result<Step> {
    let s = &file.value;
    let (line, column) = (file.referenced.line(), file.referenced.column());
    let here = |message: &str| Error::input(path, line, column, message.to_string());
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let given = [
        s.apply.is_some(),
        s.assert.is_some(),
        s.error.is_some(),
        s.wait.is_some(),
        s.script.is_some(),
        s.exec.is_some(),
        s.logs.is_some(),
        s.delete.is_some(),
        s.metrics.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(here("a step has exactly one of apply, assert, error, wait, script, exec, logs, delete, metrics")
            .with_hint("split it into two steps, in the order they should run"));
    }
    if s.expect_error.is_some() && s.apply.is_none() {
        return Err(here("expectError is for an apply step"));
    }
    if s.hold.is_some() && s.error.is_none() {
        return Err(here("`for` (how long it must hold) is for an error step"));
    }
    if s.shell && s.script.is_none() {
        return Err(here("shell: true is for a script step"));
    }
    let action = if let Some(apply) = &s.apply {
        let (file_name, object) = match &apply.value {
            ApplyFile::File(f) => (Some(f.clone()), None),
            ApplyFile::Inline(ApplyInline { file, object }) => (file.clone(), object.clone()),
        };
        let (objects, source, file) = match (file_name, object) {
            (Some(f), None) => {
                let applied = dir.join(&f);
                if !applied.is_file() {
                    let (l, c) = (apply.referenced.line(), apply.referenced.column());
                    return Err(Error::input(path, l, c, format!("apply: {} does not exist", applied.display())));
                }
                let docs = yaml::documents(&applied, &yaml::read(&applied)?)?;
                for doc in &docs {
                    super::check_object(&applied, doc)?;
                }
                (docs.into_iter().map(|d| d.value).collect(), f, Some(applied))
            }
            (None, Some(object)) => {
                let doc =
                    yaml::Document { value: object, line: apply.referenced.line(), column: apply.referenced.column() };
                super::check_object(path, &doc)?;
                (vec![doc.value], format!("the object at line {}", apply.referenced.line()), None)
            }
            _ => {
                return Err(here(
                    "apply takes a file (`apply: job.yaml`) or an inline object (`apply: {object: {…}}`)",
                ));
            }
        };
        let expect_error = s
            .expect_error
            .as_ref()
            .map(|r| {
                Regex::new(&r.value).map_err(|e| {
                    Error::input(
                        path,
                        r.referenced.line(),
                        r.referenced.column(),
                        format!("invalid regular expression: {e}"),
                    )
                })
            })
            .transpose()?;
        StepAction::Apply { objects, source, file, expect_error }
    } else if let Some(t) = &s.assert {
        let target = target(path, text, t)?;
        if target.matches.is_none() && target.cel.is_none() && target.name.is_none() {
            return Err(here("an assert needs a name, a match or a cel expression: what must be true?"));
        }
        StepAction::Assert(target)
    } else if let Some(t) = &s.error {
        StepAction::Error { target: target(path, text, t)?, hold: s.hold.map(|d| d.0).unwrap_or(Duration::ZERO) }
    } else if let Some(w) = &s.wait {
        let until = match (w.deleted, &w.condition) {
            (true, None) => WaitFor::Deleted,
            (false, Some(c)) => WaitFor::Condition(c.clone()),
            _ => return Err(here("a wait has exactly one of `deleted: true` or `condition: TYPE`")),
        };
        let target = Target {
            api_version: w.api_version.clone(),
            kind: w.kind.clone(),
            name: w.name.clone(),
            selector: w.selector.clone(),
            matches: None,
            cel: None,
        };
        StepAction::Wait { target, until }
    } else if let Some(script) = &s.script {
        StepAction::Script(Script { argv: checks::words(path, script, s.shell)?, dir: dir.to_path_buf() })
    } else if let Some(e) = &s.exec {
        StepAction::Exec(checks::exec(path, e)?)
    } else if let Some(l) = &s.logs {
        let assertions = l.assertions.iter().map(|a| log_assertion(path, a)).collect::<Result<Vec<_>>>()?;
        StepAction::Logs { selector: l.selector.clone(), assertions }
    } else if let Some(t) = &s.delete {
        StepAction::Delete(target(path, text, t)?)
    } else if let Some(list) = &s.metrics {
        StepAction::Metrics(metric_step((path, text), list, settings, here)?)
    } else {
        return Err(here("a step with nothing to do"));
    };
    let name = s.name.clone().unwrap_or_else(|| format!("{} {}", action.verb(), index + 1));
    Ok(Step { name, action, timeout: s.timeout.map(|d| d.0).unwrap_or(DEFAULT_STEP_TIMEOUT), line })
}
