//! Reports of a run, written from the results of every cell: the JUnit file CI systems read
//! ([`junit`]), `run.json` (what the run used and what it cost), the summary people read
//! ([`summary`]), and the exit code.
//!
//! May use: `outcome`, `operators` (what each version resolved to) and `util`.

pub mod ctrf;
pub mod github;
pub mod junit;
pub mod summary;
pub mod terminal;

use std::path::Path;

use serde_json::{Value, json};

use crate::{
    operators::{render::Rendered, versions::Ledger},
    outcome::{CaseResult, CellReport, Outcome},
    suite::FlakyPolicy,
    util::{
        error::{EXIT_CASE_FAILED, EXIT_INFRASTRUCTURE, EXIT_INTERRUPTED, EXIT_LEFT_BEHIND, Error},
        files::write_atomically,
        run_file::{CaseFile, CellFile, RunFile, SCHEMA_VERSION},
    },
};

/// What a run was, beyond its cells: for `run.json` and the history.
pub struct RunFacts<'a> {
    /// Unique and sortable by time: `20261201T021500Z-3f9a1c`.
    pub id: &'a str,
    pub suite: &'a str,
    pub started: jiff::Timestamp,
    pub ended: jiff::Timestamp,
    /// The artifacts folder: case folders are named relative to it.
    pub artifacts: &'a Path,
    /// The shard of a plan this run is.
    pub shard: Option<&'a crate::util::run_file::ShardRef>,
}

/// Text for standard output. A closed one (`kubevet run | head`) loses the text, never the
/// run: everything a reader could miss is in the files already written.
pub fn print(text: &str) {
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes());
}

/// `run.json`: the run (id, suite, start, end), per cell its run id, Kubernetes version and
/// image, API requests and retries, what was left behind and every case's result (its
/// evidence folder relative to the artifacts folder); what each floating version resolved
/// to, how each operator was rendered, and what changed since the previous run. Whole
/// enough for `kubevet history import` to take a run made elsewhere.
pub fn run_file(
    facts: &RunFacts<'_>,
    reports: &[CellReport],
    ledger: &Ledger,
    rendered: &[&Rendered],
    changed: &[String],
) -> Result<RunFile, Error> {
    Ok(RunFile {
        schema_version: SCHEMA_VERSION,
        id: facts.id.to_string(),
        suite: facts.suite.to_string(),
        started: facts.started.to_string(),
        ended: facts.ended.to_string(),
        cells: cell_files(facts, reports)?,
        versions: ledger.clone(),
        rendered: rendered
            .iter()
            .map(|r| {
                let v = json!({
                    "version": r.version, "floating": r.floating, "cache": r.cache_label(),
                    "listingCached": r.listing_cached, "file": r.file,
                });
                (r.operator.clone(), v)
            })
            .collect(),
        changed: changed.to_vec(),
        shard: facts.shard.cloned(),
    })
}

/// `run.json`'s cells: per cell its cases' results, each through the file's own type.
pub fn cell_files(facts: &RunFacts<'_>, reports: &[CellReport]) -> Result<Vec<CellFile>, Error> {
    let relative = |mut case: Value| {
        let shorten = |v: &mut Value| {
            if let Some(p) = v.as_str().map(std::path::PathBuf::from)
                && let Ok(rel) = p.strip_prefix(facts.artifacts)
            {
                *v = json!(rel.to_string_lossy());
            }
        };
        shorten(&mut case["artifacts"]);
        for attempt in case["attempts"].as_array_mut().into_iter().flatten() {
            shorten(&mut attempt["artifacts"]);
        }
        case
    };
    // Each result through the file's own type: a field the history needs that a result
    // lost fails the write, not a later import.
    let case_file = |r: &CaseResult| {
        let value =
            serde_json::to_value(r).map_err(|e| Error::infrastructure_because(format!("case {}", r.name), e))?;
        serde_json::from_value::<CaseFile>(relative(value))
            .map_err(|e| Error::infrastructure_because(format!("case {} does not fit run.json", r.name), e))
    };
    let mut cells = Vec::new();
    for c in reports {
        cells.push(CellFile {
            run: c.report.run_id.clone(),
            kubernetes_version: c.cell.version.clone(),
            image: c.cell.image.clone(),
            kubernetes: c.server_version.clone(),
            requests: serde_json::to_value(&c.requests).unwrap_or(Value::Null),
            left_behind: c.left_behind().map(str::to_string).collect(),
            cases: c.report.results.iter().map(case_file).collect::<Result<_, _>>()?,
            setup_seconds: c.setup_seconds,
        });
    }
    Ok(cells)
}

/// Writes `run.json` and the JUnit file, each whole or not at all.
pub fn write(
    artifacts: &Path,
    junit_path: &Path,
    suite_name: &str,
    reports: &[CellReport],
    properties: &[(String, String)],
    run_file: &RunFile,
) -> Result<(), Error> {
    let text = serde_json::to_string(run_file).map_err(|e| Error::infrastructure_because("run.json", e))?;
    write_atomically(&artifacts.join("run.json"), text.as_bytes())
        .map_err(|e| Error::infrastructure_because("writing run.json", e))?;
    // Which run.json this is the JUnit of: a history that imports both stores the run once.
    let mut properties = properties.to_vec();
    properties.push((crate::util::run_file::JUNIT_RUN_FILE.into(), run_file.id.clone()));
    properties.push((crate::util::run_file::JUNIT_STARTED.into(), run_file.started.clone()));
    let xml = junit::junit(suite_name, reports, &properties)
        .to_string()
        .map_err(|e| Error::infrastructure_because("rendering JUnit", e))?;
    write_atomically(junit_path, xml.as_bytes())
        .map_err(|e| Error::infrastructure_because(format!("writing {}", junit_path.display()), e))
}

/// The exit code of a run: interrupted, then a cell without its cluster, then a failed
/// case, then something left on the cluster.
pub fn exit_code(reports: &[CellReport], interrupted: bool, flaky: FlakyPolicy) -> i32 {
    if interrupted || reports.iter().any(|c| c.report.interrupted) {
        return EXIT_INTERRUPTED;
    }
    if reports.iter().any(|c| c.infrastructure_failed) {
        return EXIT_INFRASTRUCTURE;
    }
    let failed = reports
        .iter()
        .flat_map(|c| &c.report.results)
        .any(|r| r.outcome.is_failure() || (r.outcome == Outcome::Flaky && flaky == FlakyPolicy::Fail));
    match (failed, reports.iter().any(|c| c.left_behind().next().is_some())) {
        (true, _) => EXIT_CASE_FAILED,
        (false, true) => EXIT_LEFT_BEHIND,
        (false, false) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{cluster::provision::Cell, outcome::CaseResult};

    fn cell(outcomes: &[Outcome]) -> CellReport {
        let results = outcomes
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let mut r = CaseResult::named(&format!("c{i}"), &format!("examples/c{i}.yaml"), "job", "a".into());
                r.finish(*o, Some(format!("reason {i} | with a pipe")));
                r
            })
            .collect();
        CellReport {
            setup_seconds: None,
            cell: Cell { version: None, image: None, kind_cluster: None },
            server_version: "v1.20.2".into(),
            report: crate::outcome::RunReport {
                run_id: "r".into(),
                properties: Vec::new(),
                results,
                interrupted: false,
                seconds: 1.0,
            },
            requests: Default::default(),
            infrastructure_failed: false,
        }
    }

    #[test]
    fn a_flaky_case_fails_the_run_only_when_the_policy_says_so() {
        let reports = [cell(&[Outcome::Passed, Outcome::Flaky])];
        assert_eq!(exit_code(&reports, false, FlakyPolicy::Pass), 0);
        assert_eq!(exit_code(&reports, false, FlakyPolicy::Fail), EXIT_CASE_FAILED);
        assert_eq!(exit_code(&[cell(&[Outcome::Passed, Outcome::Failed])], false, FlakyPolicy::Pass), EXIT_CASE_FAILED);
    }

    #[test]
    fn the_exit_code_ranks_interrupts_then_infrastructure_then_failures_then_leftovers() {
        let passed = || cell(&[Outcome::Passed]);
        assert_eq!(exit_code(&[passed()], false, FlakyPolicy::Fail), 0, "nothing flaky: the policy changes nothing");
        assert_eq!(exit_code(&[passed()], true, FlakyPolicy::Pass), EXIT_INTERRUPTED);
        let mut interrupted = cell(&[Outcome::Failed]);
        interrupted.report.interrupted = true;
        assert_eq!(exit_code(&[passed(), interrupted], false, FlakyPolicy::Pass), EXIT_INTERRUPTED);
        let mut down = cell(&[Outcome::Error]);
        down.infrastructure_failed = true;
        assert_eq!(exit_code(&[cell(&[Outcome::Failed]), down], false, FlakyPolicy::Pass), EXIT_INFRASTRUCTURE);
        let mut left = passed();
        left.report.results[0].left_behind.push("namespace kv-c0".into());
        assert_eq!(exit_code(&[left], false, FlakyPolicy::Pass), EXIT_LEFT_BEHIND);
        let mut failed_and_left = cell(&[Outcome::Failed]);
        failed_and_left.report.results[0].left_behind.push("namespace kv-c0".into());
        assert_eq!(exit_code(&[failed_and_left], false, FlakyPolicy::Pass), EXIT_CASE_FAILED);
    }

    #[test]
    fn the_step_summary_stays_within_githubs_limit_failures_first() {
        let mut outcomes = vec![Outcome::Passed; 20_000];
        outcomes.push(Outcome::Failed);
        let summary = github::step_summary(&[cell(&outcomes)], &[]);
        assert!(summary.len() <= github::SUMMARY_LIMIT, "{} bytes", summary.len());
        let first_row = summary.lines().find(|l| l.starts_with("| FAIL") || l.starts_with("| PASS"));
        assert_eq!(first_row.map(|r| r.starts_with("| FAIL | examples/c20000.yaml")), Some(true));
        assert!(summary.contains("more cases not shown (GitHub's summary limit)"));
        assert!(summary.contains("reason 20000 \\| with a pipe"), "pipes escaped in table cells");
    }
}
