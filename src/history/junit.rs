//! JUnit files into the history, for runs whose `run.json` was not kept (or made by another
//! tool): one run per file, one cell per `<testsuite>`, one case per `<testcase>`, with what
//! the file says and nothing guessed. kubevet's own JUnit names its `run.json`, the
//! Kubernetes version asked for and each case's id and profile; a foreign file gets what the
//! command line says (`--suite-name`, `--k8s-version`), ids from the test names, and the
//! profile `imported`.

use std::path::Path;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestRerun, TestSuite};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::util::{
    error::{Error, Result},
    ids::case_id,
    run_file::{AttemptFile, CaseFile, CellFile, JUNIT_RUN_FILE, JUNIT_STARTED, RunFile, SCHEMA_VERSION},
};

/// The profile of a case whose JUnit does not name one.
const IMPORTED_PROFILE: &str = "imported";

/// What the command line adds to a JUnit file that does not say it itself.
#[derive(Debug, Default, Clone)]
pub struct JunitDefaults {
    /// The suite its runs belong to (else the `<testsuite>` name, less ` [kubernetes …]`).
    pub suite: Option<String>,
    /// The Kubernetes version asked for (else the `kubernetes.requested` property; none: an
    /// existing cluster).
    pub kubernetes: Option<String>,
}

/// A JUnit file as a run; what was taken from outside the file is said in the notes.
pub struct Imported {
    pub run: RunFile,
    pub notes: Vec<String>,
}

/// Reads one JUnit file as a run.
pub fn run_of_junit(path: &Path, defaults: &JunitDefaults) -> Result<Imported> {
    let bad = |what: String| Error::usage(format!("{}: {what}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let report = read_report(&text).map_err(|e| bad(format!("not a JUnit XML file: {e}")))?;
    if report.test_suites.is_empty() {
        return Err(bad("no <testsuite> in this JUnit file: nothing to import".into()));
    }
    let mut notes = Vec::new();
    let suite = suite_name(&report, defaults).map_err(bad)?;
    let started = match started(&report) {
        Some(t) => t,
        None => {
            notes.push(format!("{}: no timestamp in the file; its modification time is taken", path.display()));
            modified(path).map_err(bad)?
        }
    };
    let seconds = report.test_suites.iter().filter_map(|s| s.time).map(|t| t.as_secs_f64()).sum::<f64>();
    let ended = started.checked_add(jiff::SignedDuration::from_secs_f64(seconds)).unwrap_or(started);
    let digest = format!("{:x}", Sha256::digest(text.as_bytes()));
    let id = property_of_all(&report, JUNIT_RUN_FILE)
        .unwrap_or_else(|| format!("{}-j{}", started.strftime("%Y%m%dT%H%M%SZ"), &digest[..6]));
    let cells = report
        .test_suites
        .iter()
        .enumerate()
        .map(|(n, s)| cell(s, defaults, &format!("{}{n}", &digest[..7])).map_err(&bad))
        .collect::<Result<Vec<_>>>()?;
    let run = RunFile {
        schema_version: SCHEMA_VERSION,
        id,
        suite,
        started: started.to_string(),
        ended: ended.to_string(),
        cells,
        versions: Default::default(),
        rendered: Map::new(),
        changed: Vec::new(),
        shard: None,
    };
    Ok(Imported { run, notes })
}

/// The report, also from a file whose root is one `<testsuite>` (as Maven Surefire writes)
/// or whose `<testsuites>` has no name (as pytest writes): quick-junit's reader needs one.
fn read_report(text: &str) -> std::result::Result<Report, quick_junit::DeserializeError> {
    let trimmed = text.trim_start();
    let body = match trimmed.strip_prefix("<?xml") {
        Some(rest) => rest.split_once("?>").map_or(rest, |(_, after)| after).trim_start(),
        None => trimmed,
    };
    let root_tag = body.split_once('>').map_or(body, |(tag, _)| tag);
    let named = regex::Regex::new(r"\sname\s*=").is_ok_and(|r| r.is_match(root_tag));
    if root_tag.starts_with("<testsuite ") || root_tag == "<testsuite" {
        Report::deserialize_from_str(&format!("<testsuites name=\"\">{body}</testsuites>"))
    } else if root_tag.starts_with("<testsuites") && !named {
        Report::deserialize_from_str(&format!("<testsuites name=\"\"{}", &body["<testsuites".len()..]))
    } else {
        Report::deserialize_from_str(text)
    }
}

/// The suite: `--suite-name`, else the one name every `<testsuite>` has (less kubevet's
/// ` [kubernetes …]`).
fn suite_name(report: &Report, defaults: &JunitDefaults) -> std::result::Result<String, String> {
    if let Some(name) = &defaults.suite {
        return Ok(name.clone());
    }
    let mut names: Vec<&str> = report
        .test_suites
        .iter()
        .map(|s| s.name.as_str())
        .map(|n| n.split_once(" [kubernetes ").map_or(n, |(suite, _)| suite))
        .collect();
    names.sort_unstable();
    names.dedup();
    match names.as_slice() {
        [one] if !one.is_empty() => Ok(one.to_string()),
        _ => Err(format!(
            "its <testsuite>s are named {names:?}, not after one kubevet suite: say which with --suite-name NAME"
        )),
    }
}

fn property<'a>(properties: &'a [Property], name: &str) -> Option<&'a str> {
    properties.iter().find(|p| p.name.as_str() == name).map(|p| p.value.as_str())
}

/// A property every `<testsuite>` has, with one value.
fn property_of_all(report: &Report, name: &str) -> Option<String> {
    let values: Vec<Option<&str>> = report.test_suites.iter().map(|s| property(&s.properties, name)).collect();
    let first = values.first().copied().flatten()?;
    values.iter().all(|v| *v == Some(first)).then(|| first.to_string())
}

/// When the run started: kubevet's property, else the earliest timestamp in the file.
fn started(report: &Report) -> Option<jiff::Timestamp> {
    if let Some(t) = property_of_all(report, JUNIT_STARTED).and_then(|t| t.parse().ok()) {
        return Some(t);
    }
    let stamps = report.timestamp.iter().chain(report.test_suites.iter().filter_map(|s| s.timestamp.as_ref()));
    stamps.filter_map(|t| t.to_rfc3339().parse::<jiff::Timestamp>().ok()).min()
}

fn modified(path: &Path) -> std::result::Result<jiff::Timestamp, String> {
    let time = std::fs::metadata(path).and_then(|m| m.modified()).map_err(|e| e.to_string())?;
    jiff::Timestamp::try_from(time).map_err(|e| e.to_string())
}

/// One `<testsuite>` as a cell. The version asked for may come from the file or the command
/// line, and two that disagree are an error rather than a choice.
fn cell(suite: &TestSuite, defaults: &JunitDefaults, run: &str) -> std::result::Result<CellFile, String> {
    let in_file = property(&suite.properties, "kubernetes.requested");
    let asked = match (in_file, &defaults.kubernetes) {
        (Some(file), Some(flag)) if file.trim_start_matches('v') != flag.trim_start_matches('v') => {
            return Err(format!(
                "testsuite {:?} ran on Kubernetes {file}, not the --k8s-version {flag} given",
                suite.name.as_str()
            ));
        }
        (Some(file), _) => Some(file.to_string()),
        (None, flag) => flag.clone(),
    };
    let server = property(&suite.properties, "kubernetes.version")
        .map(str::to_string)
        .or_else(|| asked.clone())
        .unwrap_or_else(|| "unknown (imported from JUnit)".into());
    let cases = suite.test_cases.iter().map(case).collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(CellFile {
        run: property(&suite.properties, "kubevet.run").map_or_else(|| run.to_string(), str::to_string),
        kubernetes_version: asked,
        image: property(&suite.properties, "cluster.image").map(str::to_string),
        kubernetes: server,
        requests: Value::Null,
        left_behind: Vec::new(),
        cases,
        setup_seconds: None,
    })
}

/// One `<testcase>`. A case that ran but has no `time` says nothing of its duration and is
/// refused: a zero would make it look instant to the planner.
fn case(test: &TestCase) -> std::result::Result<CaseFile, String> {
    let name = test.name.as_str().to_string();
    let (outcome, reason, attempts) = match &test.status {
        TestCaseStatus::Success { flaky_runs } if flaky_runs.is_empty() => ("passed", None, Vec::new()),
        TestCaseStatus::Success { flaky_runs } => ("flaky", None, flaky_runs.iter().map(attempt).collect()),
        TestCaseStatus::NonSuccess { kind, message, reruns, .. } => {
            (outcome_of(*kind), message.as_ref().map(|m| m.to_string()), reruns.iter().map(attempt).collect())
        }
        TestCaseStatus::Skipped { message, .. } => ("skipped", message.as_ref().map(|m| m.to_string()), Vec::new()),
    };
    let seconds = match (test.time, outcome) {
        (Some(t), _) => t.as_secs_f64(),
        (None, "skipped") => 0.0,
        (None, _) => return Err(format!("testcase {name:?} has no time attribute: how long it ran is unknown")),
    };
    let property = |n: &str| property(&test.properties, n).map(str::to_string);
    Ok(CaseFile {
        id: property("id").unwrap_or_else(|| case_id(&name)),
        profile: property("profile").unwrap_or_else(|| IMPORTED_PROFILE.into()),
        tier: property("tier"),
        outcome: outcome.into(),
        class: property("class"),
        reason,
        seconds,
        phases: Vec::new(),
        attempts,
        artifacts: String::new(),
        log_tail: None,
        usage: Vec::new(),
        metrics: Vec::new(),
        rest: Map::from_iter([("importedFrom".to_string(), json!("junit"))]),
        name,
    })
}

fn outcome_of(kind: NonSuccessKind) -> &'static str {
    match kind {
        NonSuccessKind::Failure => "failed",
        NonSuccessKind::Error => "error",
    }
}

fn attempt(rerun: &TestRerun) -> AttemptFile {
    AttemptFile {
        outcome: outcome_of(rerun.kind).into(),
        class: rerun.ty.as_ref().map(|t| t.to_string()).filter(|t| t != "failure"),
        reason: rerun.message.as_ref().map(|m| m.to_string()),
        seconds: rerun.time.map_or(0.0, |t| t.as_secs_f64()),
        rest: Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> std::path::PathBuf {
        let path = dir.join("junit.xml");
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn a_foreign_file_takes_the_command_lines_suite_and_version_and_ids_from_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(
            dir.path(),
            r#"<?xml version="1.0"?><testsuite name="pytest" timestamp="2026-11-30T10:00:00+00:00" time="42.5">
              <testcase name="examples/Train Job.yaml" time="40.25"/>
              <testcase name="examples/b.yaml" time="2.25"><failure message="boom">trace</failure></testcase>
              <testcase name="examples/c.yaml"><skipped/></testcase>
            </testsuite>"#,
        );
        let defaults = JunitDefaults { suite: Some("s".into()), kubernetes: Some("1.34".into()) };
        let Imported { run, notes } = run_of_junit(&path, &defaults).expect("imports");
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!((run.suite.as_str(), run.started.as_str()), ("s", "2026-11-30T10:00:00Z"));
        assert_eq!(run.ended, "2026-11-30T10:00:42.5Z");
        let cell = &run.cells[0];
        assert_eq!((cell.kubernetes_version.as_deref(), cell.kubernetes.as_str()), (Some("1.34"), "1.34"));
        let got: Vec<(&str, &str, f64, &str)> =
            cell.cases.iter().map(|c| (c.id.as_str(), c.outcome.as_str(), c.seconds, c.profile.as_str())).collect();
        assert_eq!(
            got,
            [
                ("examples.train.job", "passed", 40.25, "imported"),
                ("examples.b", "failed", 2.25, "imported"),
                ("examples.c", "skipped", 0.0, "imported"),
            ]
        );
        assert_eq!(cell.cases[1].reason.as_deref(), Some("boom"));
        // The same file imported again is the same run.
        assert_eq!(run_of_junit(&path, &defaults).expect("again").run.id, run.id);
    }

    #[test]
    fn what_the_file_cannot_say_is_refused_with_what_to_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let two_suites = r#"<testsuites><testsuite name="a"><testcase name="x" time="1"/></testsuite>
            <testsuite name="b"><testcase name="y" time="1"/></testsuite></testsuites>"#;
        let untimed = r#"<testsuites><testsuite name="a"><testcase name="x"/></testsuite></testsuites>"#;
        let other_version = r#"<testsuites><testsuite name="a"><properties>
            <property name="kubernetes.requested" value="1.33"/></properties><testcase name="x" time="1"/></testsuite></testsuites>"#;
        for (text, defaults, expected) in [
            (two_suites, JunitDefaults::default(), "--suite-name"),
            (untimed, JunitDefaults::default(), "testcase \"x\" has no time attribute"),
            (
                other_version,
                JunitDefaults { suite: None, kubernetes: Some("1.34".into()) },
                "ran on Kubernetes 1.33, not the --k8s-version 1.34",
            ),
            ("<testsuites><testsuite name=\"a\">", JunitDefaults::default(), "not a JUnit XML file"),
            ("<testsuites></testsuites>", JunitDefaults::default(), "no <testsuite>"),
        ] {
            let path = write(dir.path(), text);
            let message = run_of_junit(&path, &defaults).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(message.starts_with(&path.display().to_string()), "{message}");
            assert!(message.contains(expected), "{expected}: {message}");
        }
    }

    #[test]
    fn a_named_root_an_unnamed_suite_a_file_without_time_stamps_and_one_version_twice() {
        let dir = tempfile::tempdir().expect("tempdir");
        let named = r#"<testsuites name="ci"><testsuite name="s"><properties>
            <property name="kubernetes.requested" value="v1.34"/></properties><testcase name="x" time="1"/></testsuite></testsuites>"#;
        let path = write(dir.path(), named);
        let defaults = JunitDefaults { suite: None, kubernetes: Some("1.34".into()) };
        let Imported { run, notes } = run_of_junit(&path, &defaults).expect("a named root, v1.34 and 1.34 agree");
        assert_eq!((run.suite.as_str(), run.cells[0].kubernetes_version.as_deref()), ("s", Some("v1.34")));
        assert_eq!(notes.len(), 1, "no time stamp in the file: {notes:?}");
        let mtime = jiff::Timestamp::try_from(std::fs::metadata(&path).and_then(|m| m.modified()).expect("mtime"))
            .expect("time");
        assert_eq!(run.started, mtime.to_string(), "the file's modification time, said in the note");
        let unnamed = r#"<testsuites><testsuite name=""><testcase name="x" time="1"/></testsuite></testsuites>"#;
        let path = write(dir.path(), unnamed);
        let message = run_of_junit(&path, &JunitDefaults::default()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("--suite-name"), "{message}");
    }

    #[test]
    fn kubevets_own_properties_are_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(
            dir.path(),
            r#"<testsuites><testsuite name="s [kubernetes v1.34]" time="3"><properties>
              <property name="kubernetes.version" value="v1.34.1"/><property name="kubernetes.requested" value="1.34"/>
              <property name="kubevet.run" value="ab12cd34"/><property name="kubevet.runFile" value="20261130T100000Z-abcdef"/>
              <property name="kubevet.started" value="2026-11-30T10:00:00Z"/></properties>
              <testcase name="pipelines/p.py" time="3"><properties><property name="id" value="pipelines.p"/>
                <property name="profile" value="pipeline"/><property name="class" value="test"/></properties>
                <flakyFailure message="first" type="infrastructure" time="1"/></testcase></testsuite></testsuites>"#,
        );
        let run = run_of_junit(&path, &JunitDefaults::default()).expect("imports").run;
        assert_eq!((run.id.as_str(), run.suite.as_str()), ("20261130T100000Z-abcdef", "s"));
        let cell = &run.cells[0];
        assert_eq!((cell.run.as_str(), cell.kubernetes.as_str()), ("ab12cd34", "v1.34.1"));
        let case = &cell.cases[0];
        assert_eq!(
            (case.id.as_str(), case.profile.as_str(), case.outcome.as_str()),
            ("pipelines.p", "pipeline", "flaky")
        );
        assert_eq!(case.attempts[0].class.as_deref(), Some("infrastructure"));
    }
}
