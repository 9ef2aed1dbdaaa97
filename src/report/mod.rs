//! Reports of a run: the JUnit file CI systems read (flat, deterministic, with the evidence
//! in system-out) and the summary table people read.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use crate::outcome::{CaseResult, CellReport, Outcome, RunReport};

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
            suite.add_test_case(test_case(r, &cell.server_version));
        }
        total += run.seconds;
        report.add_test_suite(suite);
    }
    report.set_time(Duration::from_secs_f64(total));
    report
}

fn test_case(r: &CaseResult, server_version: &str) -> TestCase {
    let reason = r.reason.clone().unwrap_or_default();
    let status = match r.outcome {
        Outcome::Passed => TestCaseStatus::success(),
        Outcome::Skipped => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(reason.as_str());
            s
        }
        Outcome::Failed | Outcome::Error | Outcome::Interrupted => {
            let kind = if r.outcome == Outcome::Failed { NonSuccessKind::Failure } else { NonSuccessKind::Error };
            let mut s = TestCaseStatus::non_success(kind);
            s.set_message(reason.as_str());
            s.set_type(match r.outcome {
                Outcome::Interrupted => "interrupted",
                Outcome::Error => "error",
                _ => "failure",
            });
            s
        }
    };
    let mut case = TestCase::new(r.name.as_str(), status);
    case.set_classname(r.profile.as_str());
    case.set_time(Duration::from_secs_f64(r.seconds));
    case.add_property(Property::new("kubernetes.version", server_version));
    case.add_property(Property::new("profile", r.profile.as_str()));
    case.add_property(Property::new("timeout", r.timeout.as_str()));
    if let Some(ns) = &r.namespace {
        case.add_property(Property::new("namespace", ns.as_str()));
    }
    if let Some(tier) = &r.tier {
        case.add_property(Property::new("tier", tier.as_str()));
    }
    if r.outcome != Outcome::Skipped {
        let mut out = format!("artifacts: {}\n", r.artifacts.display());
        for p in &r.phases {
            out.push_str(&format!("phase {}: {:.2}s\n", p.name, p.seconds));
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

/// The table printed at the end of a run.
pub fn summary(run: &RunReport) -> String {
    let name_width = run.results.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    let mut out = format!("{:<name_width$}  {:<11}  {:>8}  REASON\n", "CASE", "OUTCOME", "TIME");
    for r in &run.results {
        let reason = r.reason.as_deref().unwrap_or("").lines().next().unwrap_or("");
        out.push_str(&format!("{:<name_width$}  {:<11}  {:>7.1}s  {reason}\n", r.name, r.outcome.label(), r.seconds));
    }
    let count = |o: Outcome| run.results.iter().filter(|r| r.outcome == o).count();
    out.push_str(&format!(
        "{} passed, {} failed, {} errors, {} skipped, {} interrupted in {:.1}s\n",
        count(Outcome::Passed),
        count(Outcome::Failed),
        count(Outcome::Error),
        count(Outcome::Skipped),
        count(Outcome::Interrupted),
        run.seconds
    ));
    out
}

/// `2 namespaces left behind: a, b; 1 cluster-scoped object left behind: ClusterRole/x`.
pub fn left_behind(items: &[&str]) -> String {
    let (namespaces, objects): (Vec<&str>, Vec<&str>) = items.iter().partition(|i| i.starts_with("namespace "));
    let namespaces: Vec<&str> = namespaces.iter().map(|n| n.trim_start_matches("namespace ")).collect();
    let mut parts = Vec::new();
    let plural = |n: usize, one: &str, many: &str| if n == 1 { format!("1 {one}") } else { format!("{n} {many}") };
    if !namespaces.is_empty() {
        parts.push(format!(
            "{} left behind: {}",
            plural(namespaces.len(), "namespace", "namespaces"),
            namespaces.join(", ")
        ));
    }
    if !objects.is_empty() {
        parts.push(format!(
            "{} left behind: {}",
            plural(objects.len(), "cluster-scoped object", "cluster-scoped objects"),
            objects.join(", ")
        ));
    }
    parts.join("; ")
}
