//! What a person reads at the end of a run: what changed since the previous run, a table per
//! cell, retried requests, anything left on the cluster, where the reports are.

use std::path::Path;

use crate::{
    outcome::{CellReport, Outcome, RunReport},
    suite::FlakyPolicy,
};

/// The table printed at the end of a run.
pub fn summary(run: &RunReport) -> String {
    let name_width = run.results.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    let mut out = format!("{:<name_width$}  {:<11}  {:<14}  {:>8}  REASON\n", "CASE", "OUTCOME", "CLASS", "TIME");
    for r in &run.results {
        let reason = r.reason.as_deref().unwrap_or("").lines().next().unwrap_or("");
        let class = r.class.map(|c| c.name()).unwrap_or("-");
        let tries = if r.attempts.is_empty() { String::new() } else { format!(" ({} attempts)", r.attempts.len() + 1) };
        out.push_str(&format!(
            "{:<name_width$}  {:<11}  {class:<14}  {:>7.1}s  {reason}{tries}\n",
            r.name,
            r.outcome.label(),
            r.seconds
        ));
    }
    let count = |o: Outcome| run.results.iter().filter(|r| r.outcome == o).count();
    out.push_str(&format!(
        "{} passed, {} failed, {} errors, {} skipped{}, {} interrupted, {} flaky in {:.1}s\n",
        count(Outcome::Passed),
        count(Outcome::Failed),
        count(Outcome::Error),
        count(Outcome::Skipped),
        unoffered_note(run.results.iter()),
        count(Outcome::Interrupted),
        count(Outcome::Flaky),
        run.seconds
    ));
    let mut classes: Vec<(&str, usize)> = crate::outcome::FailureClass::ALL
        .iter()
        .map(|c| (c.name(), run.results.iter().filter(|r| r.class == Some(*c)).count()))
        .filter(|(_, n)| *n > 0)
        .collect();
    if !classes.is_empty() {
        classes.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        let parts: Vec<String> = classes.iter().map(|(c, n)| format!("{n} {c}")).collect();
        out.push_str(&format!("not passed, by class: {}\n", parts.join(", ")));
    }
    out.push_str(&usage_notes(run));
    out
}

/// How many of the least efficient cases the summary names.
const LEAST_EFFICIENT: usize = 3;

/// The cases that used least of what they requested, and every container that was OOMKilled or
/// came near its memory limit.
pub fn usage_notes(run: &RunReport) -> String {
    let mut out = String::new();
    let mut shares: Vec<(f64, String)> = Vec::new();
    for r in &run.results {
        for u in &r.usage {
            let low = if u.low_confidence { ", low confidence" } else { "" };
            if let Some(cpu) = u.cpu_efficiency {
                shares.push((
                    cpu,
                    format!("{} {} used {:.0} % of its CPU request{low}", r.name, u.container, cpu * 100.0),
                ));
            }
            if let Some(memory) = u.memory_efficiency {
                let used = memory * 100.0;
                shares.push((
                    memory,
                    format!("{} {} peaked at {used:.0} % of its memory request{low}", r.name, u.container),
                ));
            }
        }
    }
    shares.sort_by(|a, b| a.0.total_cmp(&b.0));
    if !shares.is_empty() {
        let named: Vec<&str> = shares.iter().take(LEAST_EFFICIENT).map(|(_, s)| s.as_str()).collect();
        out.push_str(&format!("least efficient: {}\n", named.join("; ")));
    }
    let mut risks = Vec::new();
    for r in &run.results {
        for u in &r.usage {
            match u.of_memory_limit() {
                _ if u.oom_killed => risks.push(format!("{} {} was OOMKilled", r.name, u.who())),
                Some(share) if share >= crate::outcome::OOM_RISK_SHARE => {
                    risks.push(format!("{} {} peaked at {:.0} % of its memory limit", r.name, u.who(), share * 100.0))
                }
                _ => {}
            }
        }
    }
    if !risks.is_empty() {
        out.push_str(&format!("OOM risk: {}\n", risks.join("; ")));
    }
    out
}

/// ` (2 need what no node offers)` after the skipped count, when any were skipped for want
/// of an extended resource; CPU smoke tests are counted too.
pub fn unoffered_note<'a>(results: impl Iterator<Item = &'a crate::outcome::CaseResult> + Clone) -> String {
    let wanting = results.clone().filter(|r| r.outcome == Outcome::Skipped && !r.unoffered.is_empty()).count();
    let smoke = results.filter(|r| !r.cpu_smoke.is_empty()).count();
    let mut parts = Vec::new();
    match wanting {
        0 => {}
        1 => parts.push("1 needs what no node offers".into()),
        n => parts.push(format!("{n} need what no node offers")),
    }
    match smoke {
        0 => {}
        1 => parts.push("1 ran as a CPU smoke test".into()),
        n => parts.push(format!("{n} ran as CPU smoke tests")),
    }
    if parts.is_empty() { String::new() } else { format!(" ({})", parts.join("; ")) }
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

/// Prints the end of a run.
/// How far KFP's run state lagged its Workflow at most, and in which case: KFP's persistence
/// agent sets how long a pipeline case waits after its run ended.
pub fn largest_lag(run: &RunReport) -> Option<String> {
    let (case, lag) = run
        .results
        .iter()
        .filter_map(|r| Some((r.name.as_str(), r.pipeline.as_ref()?.state_lag_seconds?)))
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    Some(format!("largest KFP state lag: {lag:.1}s ({case})"))
}

/// The summary on standard output.
pub fn print(reports: &[CellReport], changed: &[String], junit: &Path, artifacts: &Path, flaky: FlakyPolicy) {
    super::print(&text(reports, changed, junit, artifacts, flaky));
}

fn text(reports: &[CellReport], changed: &[String], junit: &Path, artifacts: &Path, flaky: FlakyPolicy) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if !changed.is_empty() {
        let _ = writeln!(out, "changed since the previous run: {}", changed.join(", "));
    }
    for c in reports {
        if let Some(label) = c.cell.label() {
            let _ = writeln!(out, "Kubernetes {label} ({})", c.cell.image.as_deref().unwrap_or("existing cluster"));
        }
        out.push_str(&summary(&c.report));
        if let Some(retries) = c.requests.describe_retries() {
            let _ = writeln!(out, "{retries}");
        }
        if let Some(line) = largest_lag(&c.report) {
            let _ = writeln!(out, "{line}");
        }
        let left: Vec<&str> = c.left_behind().collect();
        if !left.is_empty() {
            let _ = writeln!(out, "{}; `kubevet clean --run {}` deletes them", left_behind(&left), c.report.run_id);
        }
    }
    let flaky_cases = reports.iter().flat_map(|c| &c.report.results).filter(|r| r.outcome == Outcome::Flaky).count();
    if flaky_cases > 0 {
        let counted = match flaky {
            FlakyPolicy::Pass => "they pass (flaky: pass)",
            FlakyPolicy::Fail => "they fail the run (flaky: fail)",
        };
        let _ = writeln!(out, "warning: {flaky_cases} flaky cases failed, then passed on a retry; {counted}");
    }
    let _ = writeln!(out, "JUnit: {}  artifacts: {}", junit.display(), artifacts.display());
    out
}
