//! The JUnit file CI systems read: one `<testsuite>` per cell, flat and deterministic, with
//! the evidence's path, phases, cleanup and log tail in each case's `<system-out>`.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestRerun, TestSuite};

use crate::outcome::{Attempt, CaseResult, CellReport, FailureClass, Outcome};

/// One `<testsuite>` per cell of the matrix, each with the cell's Kubernetes version and node
/// image and the run's properties (operator versions, images, changes).
pub fn junit(suite_name: &str, cells: &[CellReport], properties: &[(String, String)]) -> Report {
    let mut report = Report::new("kubevet");
    let mut total = 0.0;
    for cell in cells {
        let run = &cell.report;
        let name = match cell.cell.label() {
            Some(label) => format!("{suite_name} [kubernetes {label}]"),
            None => suite_name.to_string(),
        };
        let mut suite = TestSuite::new(name);
        suite.add_property(Property::new("kubernetes.version", cell.server_version.as_str()));
        if let Some(v) = &cell.cell.version {
            suite.add_property(Property::new("kubernetes.requested", v.as_str()));
        }
        if let Some(image) = &cell.cell.image {
            suite.add_property(Property::new("cluster.image", image.as_str()));
        }
        suite.add_property(Property::new("kubevet.run", run.run_id.as_str()));
        suite.add_property(Property::new("kubevet.version", env!("CARGO_PKG_VERSION")));
        for (name, value) in properties.iter().chain(&run.properties) {
            suite.add_property(Property::new(name.as_str(), value.as_str()));
        }
        if run.interrupted {
            suite.add_property(Property::new("kubevet.interrupted", "true"));
        }
        suite.set_time(Duration::from_secs_f64(run.seconds));
        for r in &run.results {
            suite.add_test_case(test_case(r, &cell.server_version, cell.cell.label().as_deref()));
        }
        total += run.seconds;
        report.add_test_suite(suite);
    }
    report.set_time(Duration::from_secs_f64(total));
    report
}

/// An earlier attempt as `<flakyFailure>` / `<rerunFailure>` (or their `Error` forms), with its
/// own message, class and log tail.
fn rerun(attempt: &Attempt) -> TestRerun {
    let kind = if attempt.outcome == Outcome::Failed { NonSuccessKind::Failure } else { NonSuccessKind::Error };
    let mut rerun = TestRerun::new(kind);
    let reason = attempt.reason.clone().unwrap_or_default();
    let message = match attempt.class {
        Some(class) => format!("{}: {reason}", class.name()),
        None => reason,
    };
    rerun.set_message(message.as_str());
    rerun.set_type(attempt.class.map(FailureClass::name).unwrap_or("failure"));
    rerun.set_time(Duration::from_secs_f64(attempt.seconds));
    let mut out = format!("artifacts: {}\n", attempt.artifacts.display());
    if let Some(tail) = &attempt.log_tail {
        out.push_str(tail);
        out.push('\n');
    }
    rerun.set_system_out(out);
    rerun
}

/// A case's `<testcase>`. In a matrix its classname carries the cell's version, so consumers
/// that take repeated `name|classname|file` for retries (mikepenz/action-junit-report) keep
/// one case on two versions apart.
fn test_case(r: &CaseResult, server_version: &str, cell: Option<&str>) -> TestCase {
    let reason = r.reason.clone().unwrap_or_default();
    let status = match r.outcome {
        Outcome::Passed => TestCaseStatus::success(),
        // One <testcase>, its failed attempts inside it: GitLab keeps only the first of
        // several <testcase>s of one name.
        Outcome::Flaky => {
            let mut s = TestCaseStatus::success();
            s.add_reruns(r.attempts.iter().map(rerun));
            s
        }
        Outcome::Skipped => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(reason.as_str());
            s
        }
        Outcome::Failed | Outcome::Error | Outcome::Interrupted => {
            let kind = if r.outcome == Outcome::Failed { NonSuccessKind::Failure } else { NonSuccessKind::Error };
            let mut s = TestCaseStatus::non_success(kind);
            s.set_message(r.classed_reason().as_str());
            s.set_type(match (r.outcome, r.class) {
                (Outcome::Interrupted, _) => "interrupted",
                (_, Some(class)) => class.name(),
                (Outcome::Error, None) => "error",
                _ => "failure",
            });
            s.add_reruns(r.attempts.iter().map(rerun));
            s
        }
    };
    let mut case = TestCase::new(r.name.as_str(), status);
    match cell {
        Some(cell) => case.set_classname(format!("{} [kubernetes {cell}]", r.profile)),
        None => case.set_classname(r.profile.as_str()),
    };
    case.set_time(Duration::from_secs_f64(r.seconds));
    case.add_property(Property::new("id", r.id.as_str()));
    case.add_property(Property::new("kubernetes.version", server_version));
    case.add_property(Property::new("profile", r.profile.as_str()));
    case.add_property(Property::new("timeout", r.timeout.as_str()));
    if let Some(ns) = &r.namespace {
        case.add_property(Property::new("namespace", ns.as_str()));
    }
    if let Some(tier) = &r.tier {
        case.add_property(Property::new("tier", tier.as_str()));
    }
    if let Some(class) = r.class {
        case.add_property(Property::new("class", class.name()));
    }
    if !r.attempts.is_empty() {
        case.add_property(Property::new("attempts", (r.attempts.len() + 1).to_string()));
    }
    // A pipeline's own tasks (not their drivers), by their DAG names.
    let tasks: Vec<&str> = r.tasks.iter().filter(|t| t.role == "task").map(|t| t.task.as_str()).collect();
    if !tasks.is_empty() {
        case.add_property(Property::new("pipeline.tasks", tasks.join(", ")));
    }
    if let Some(lag) = r.pipeline.as_ref().and_then(|p| p.state_lag_seconds) {
        case.add_property(Property::new("pipeline.stateLagSeconds", format!("{lag:.1}")));
    }
    if !r.unoffered.is_empty() {
        case.add_property(Property::new("resources.unoffered", r.unoffered.join(", ")));
    }
    if !r.cpu_smoke.is_empty() {
        case.add_property(Property::new("gpu.cpuSmokeTest", r.cpu_smoke.join(", ")));
    }
    usage_properties(&mut case, r);
    if r.outcome != Outcome::Skipped {
        let mut out = format!("artifacts: {}\n", r.artifacts.display());
        for usage in &r.usage {
            out.push_str(&usage.line());
            out.push('\n');
        }
        for p in &r.phases {
            out.push_str(&format!("phase {}: {:.2}s\n", p.name, p.seconds));
        }
        for step in &r.steps {
            out.push_str(&format!("step {}\n", step.line()));
        }
        if let Some(cleanup) = &r.cleanup {
            out.push_str(&format!("cleanup: {cleanup}\n"));
        }
        if !r.left_behind.is_empty() {
            out.push_str(&format!("left behind: {}\n", r.left_behind.join(", ")));
        }
        if let Some(tail) = &r.log_tail {
            out.push_str(tail);
            out.push('\n');
        }
        case.set_system_out(out);
    }
    case
}

/// The case's resource use: totals, the least covered container, and what was OOMKilled.
fn usage_properties(case: &mut TestCase, r: &CaseResult) {
    if let Some(cpu) = r.cpu_seconds() {
        case.add_property(Property::new("usage.cpuSeconds", format!("{cpu:.3}")));
    }
    if let Some(peak) = r.peak_memory_bytes() {
        case.add_property(Property::new("usage.peakMemoryBytes", format!("{peak:.0}")));
    }
    if let Some(coverage) = r.usage.iter().map(|u| u.coverage).reduce(f64::min) {
        case.add_property(Property::new("usage.coverage", format!("{coverage:.2}")));
    }
    let killed: Vec<String> = r.usage.iter().filter(|u| u.oom_killed).map(|u| u.who()).collect();
    if !killed.is_empty() {
        case.add_property(Property::new("usage.oomKilled", killed.join(", ")));
    }
}
