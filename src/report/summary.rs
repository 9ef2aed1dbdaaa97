//! What a person reads at the end of a run: what changed since the previous run, a table per
//! cell, retried requests, anything left on the cluster, where the reports are.

use std::path::Path;

use crate::outcome::{CellReport, Outcome, RunReport};

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

/// Prints the end of a run.
pub fn print(reports: &[CellReport], changed: &[String], junit: &Path, artifacts: &Path) {
    if !changed.is_empty() {
        println!("changed since the previous run: {}", changed.join(", "));
    }
    for c in reports {
        if let Some(label) = c.cell.label() {
            println!("Kubernetes {label} ({})", c.cell.image.as_deref().unwrap_or("existing cluster"));
        }
        print!("{}", summary(&c.report));
        if let Some(retries) = c.requests.describe_retries() {
            println!("{retries}");
        }
        let left: Vec<&str> = c.left_behind().collect();
        if !left.is_empty() {
            println!("{}; `kubevet clean --run {}` deletes them", left_behind(&left), c.report.run_id);
        }
    }
    println!("JUnit: {}  artifacts: {}", junit.display(), artifacts.display());
}
