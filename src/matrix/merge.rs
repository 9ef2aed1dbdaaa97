//! `kubevet merge DIR…`: what the shards of a matrix wrote, made one run: one JUnit (a
//! `<testsuite>` per cell, every case of every shard, in name order), one `run.json`, one
//! CTRF, one summary with each shard's predicted and actual time, the history updated once
//! and the HTML report over the whole matrix. With the plan, a shard that reported nothing is
//! in the reports as its cases "not run", never silently absent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{PlanFile, read_plan};
use crate::{
    cluster::provision::Cell,
    history::{self, store::ShardRow},
    outcome::{CaseResult, CellReport, FailureClass, Outcome, RunReport},
    plan::{self, Selection},
    report::{self, RunFacts},
    suite::Suite,
    util::{
        error::{Error, Result},
        files::write_atomically,
        run_file::{RunFile, SCHEMA_VERSION},
    },
};

/// What `kubevet merge` is asked.
pub struct MergeRequest<'a> {
    pub suite: &'a Suite,
    pub dirs: &'a [PathBuf],
    pub plan: Option<&'a Path>,
    /// Where the merged run.json, JUnit and CTRF go.
    pub output: &'a Path,
    pub history: Option<PathBuf>,
    pub html: Option<PathBuf>,
    pub github: bool,
}

/// One shard's run as read back.
struct ShardRun {
    file: PathBuf,
    run: RunFile,
}

/// `kubevet merge`.
pub fn merge_command(req: MergeRequest<'_>) -> Result<i32> {
    let suite = req.suite;
    let plan = req.plan.map(read_plan).transpose()?;
    let (runs, mut notes) = read_runs(req.dirs, suite, plan.as_ref())?;
    let mut cells: BTreeMap<Option<String>, CellReport> = BTreeMap::new();
    for shard in &runs {
        let base = shard.file.parent().unwrap_or(Path::new("."));
        for cell in &shard.run.cells {
            let merged = cells
                .entry(cell.kubernetes_version.clone())
                .or_insert_with(|| empty_cell(cell.kubernetes_version.clone(), cell.image.clone()));
            merged.server_version.clone_from(&cell.kubernetes);
            merged.report.seconds += seconds_between(&shard.run.started, &shard.run.ended).unwrap_or(0.0);
            merged.report.run_id.clone_from(&cell.run);
            merged.setup_seconds = max_of(merged.setup_seconds, cell.setup_seconds);
            add_requests(merged, &cell.requests);
            for case in &cell.cases {
                let value = serde_json::to_value(case).map_err(Error::infrastructure_from)?;
                let mut result: CaseResult = serde_json::from_value(value).map_err(|e| {
                    Error::usage(format!(
                        "{}: case {} is not a result this kubevet reads: {e}",
                        shard.file.display(),
                        case.id
                    ))
                })?;
                result.artifacts = base.join(&result.artifacts);
                // Every shard installs the operators (and gets its cluster): one row each.
                if let Some(shard) = &shard.run.shard
                    && !is_case(&result.profile)
                {
                    result.name = format!("{} ({})", result.name, shard.id);
                    result.id = format!("{}.{}", result.id, shard.id);
                }
                merged.report.results.push(result);
            }
        }
    }
    let mut shard_rows = reported_shards(&runs);
    if let Some(plan) = &plan {
        let missing = missing_shards(suite, plan, &runs, &mut cells, req.output)?;
        for (row, _) in &missing {
            notes.push(format!("shard {} reported nothing: its {} cases are not run", row.shard, row.cases));
        }
        shard_rows.extend(missing.into_iter().map(|(row, _)| row));
    }
    let mut reports: Vec<CellReport> = cells.into_values().collect();
    for cell in &mut reports {
        cell.report.results.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        cell.report.interrupted = cell.report.results.iter().any(|r| r.outcome == Outcome::Interrupted);
    }
    write_reports(&req, &runs, &reports, &shard_rows, &notes)
}

/// Whether a row is an example's (not an operator install's, a cluster's or an image's).
fn is_case(profile: &str) -> bool {
    !matches!(profile, "operator" | "cluster" | "image")
}

fn max_of(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn empty_cell(version: Option<String>, image: Option<String>) -> CellReport {
    CellReport {
        cell: Cell { version, image, kind_cluster: None },
        server_version: String::new(),
        report: RunReport {
            run_id: String::new(),
            properties: Vec::new(),
            results: Vec::new(),
            interrupted: false,
            seconds: 0.0,
        },
        requests: Default::default(),
        infrastructure_failed: false,
        setup_seconds: None,
    }
}

fn add_requests(cell: &mut CellReport, requests: &serde_json::Value) {
    if let Ok(counts) = serde_json::from_value::<crate::cluster::retry::RequestCounts>(requests.clone()) {
        cell.requests.sent += counts.sent;
        cell.requests.exhausted += counts.exhausted;
        for (why, n) in counts.retried {
            *cell.requests.retried.entry(why).or_default() += n;
        }
    }
}

/// Every `run.json` under the folders, of this suite (and of this plan, when given); of
/// one shard's several attempts (a re-run job), the latest.
fn read_runs(dirs: &[PathBuf], suite: &Suite, plan: Option<&PlanFile>) -> Result<(Vec<ShardRun>, Vec<String>)> {
    let files = history::run_files(dirs)?;
    // With a plan, no shard at all is still a report: every case "not run".
    if files.is_empty() && plan.is_none() {
        return Err(Error::usage("no run.json under the folders given: nothing to merge"));
    }
    let mut notes = Vec::new();
    let mut by_shard: BTreeMap<String, ShardRun> = BTreeMap::new();
    for file in files {
        let bad = |why: String| Error::usage(format!("{}: {why}", file.display()));
        let text = std::fs::read_to_string(&file).map_err(|e| bad(e.to_string()))?;
        let run = RunFile::parse(&text).map_err(|e| bad(e.to_string()))?;
        if run.suite != suite.name {
            return Err(bad(format!("a run of suite {:?}, not {:?}", run.suite, suite.name)));
        }
        let key = match (&run.shard, plan) {
            (Some(shard), Some(plan)) if shard.plan != plan.digest => {
                return Err(bad(format!(
                    "shard {} of another plan (digest {}), not of this one",
                    shard.id, shard.plan
                )));
            }
            (None, Some(_)) => return Err(bad("a whole run, not a shard of the plan".into())),
            (Some(shard), _) => shard.id.clone(),
            (None, None) => run.id.clone(),
        };
        let attempt = |r: &RunFile| r.shard.as_ref().map(|s| s.attempt).unwrap_or(1);
        match by_shard.get(&key) {
            Some(kept) if attempt(&kept.run) >= attempt(&run) => {
                notes.push(format!("{key}: attempt {} set aside for attempt {}", attempt(&run), attempt(&kept.run)));
            }
            Some(kept) => {
                notes.push(format!("{key}: attempt {} set aside for attempt {}", attempt(&kept.run), attempt(&run)));
                by_shard.insert(key, ShardRun { file, run });
            }
            None => {
                by_shard.insert(key, ShardRun { file, run });
            }
        }
    }
    Ok((by_shard.into_values().collect(), notes))
}

fn seconds_between(started: &str, ended: &str) -> Option<f64> {
    let (s, e) = (started.parse::<jiff::Timestamp>().ok()?, ended.parse::<jiff::Timestamp>().ok()?);
    Some(e.duration_since(s).as_secs_f64())
}

fn reported_shards(runs: &[ShardRun]) -> Vec<ShardRow> {
    runs.iter()
        .filter_map(|r| {
            let shard = r.run.shard.as_ref()?;
            Some(ShardRow {
                shard: shard.id.clone(),
                kubernetes: r.run.cells.first().and_then(|c| c.kubernetes_version.clone()),
                attempt: shard.attempt,
                cases: r.run.cells.iter().flat_map(|c| &c.cases).filter(|c| is_case(&c.profile)).count(),
                predicted_seconds: shard.predicted_seconds,
                actual_seconds: seconds_between(&r.run.started, &r.run.ended),
            })
        })
        .collect()
}

/// The plan's shards no run reported: their cases as results "not run", an infrastructure
/// error of their cell.
fn missing_shards(
    suite: &Suite,
    plan: &PlanFile,
    runs: &[ShardRun],
    cells: &mut BTreeMap<Option<String>, CellReport>,
    output: &Path,
) -> Result<Vec<(ShardRow, usize)>> {
    let reported: Vec<&str> = runs.iter().filter_map(|r| r.run.shard.as_ref()).map(|s| s.id.as_str()).collect();
    let mut missing = Vec::new();
    for cell in &plan.cells {
        for shard in cell.shards.iter().filter(|s| !reported.contains(&s.id.as_str())) {
            let ids = shard.cases.iter().map(|c| c.id.clone()).collect();
            let cases = plan::plan_some(suite, Selection { only: Some(&ids), ..Selection::default() })?;
            let merged =
                cells.entry(cell.kubernetes.clone()).or_insert_with(|| empty_cell(cell.kubernetes.clone(), None));
            merged.infrastructure_failed = true;
            let reason = format!(
                "not run: shard {} reported nothing (its job died, or its artifacts were not uploaded)",
                shard.id
            );
            for case in &cases {
                let dir = output.join("not-run").join(&case.id);
                // A case the suite skips would have been skipped: it says so, not "not run".
                let r = match &case.skip {
                    Some(skip) => CaseResult::not_run(case, dir, Outcome::Skipped, skip.clone()),
                    None => {
                        let mut r = CaseResult::not_run(case, dir, Outcome::Error, reason.clone());
                        r.class = Some(FailureClass::Infrastructure);
                        r
                    }
                };
                merged.report.results.push(r);
            }
            let row = ShardRow {
                shard: shard.id.clone(),
                kubernetes: cell.kubernetes.clone(),
                attempt: 0,
                cases: shard.cases.len(),
                predicted_seconds: shard.predicted_seconds,
                actual_seconds: None,
            };
            missing.push((row, cases.len()));
        }
    }
    Ok(missing)
}

/// Operator and pipeline versions across shards: one value each, or the disagreement said
/// (a floating version that resolved differently in two jobs).
fn versions(runs: &[ShardRun], notes: &mut Vec<String>) -> BTreeMap<String, String> {
    let mut seen: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for r in runs {
        let who = r.run.shard.as_ref().map(|s| s.id.clone()).unwrap_or_else(|| r.run.id.clone());
        for (name, version) in &r.run.versions {
            seen.entry(name.clone()).or_default().entry(version.clone()).or_default().push(who.clone());
        }
    }
    let mut versions = BTreeMap::new();
    for (name, by_version) in seen {
        if by_version.len() > 1 {
            let said: Vec<String> = by_version.iter().map(|(v, who)| format!("{v} ({})", who.join(", "))).collect();
            notes.push(format!("the shards ran different versions of {name}: {}", said.join(" vs ")));
        }
        if let Some((version, _)) = by_version.into_iter().max_by_key(|(_, who)| who.len()) {
            versions.insert(name, version);
        }
    }
    versions
}

fn write_reports(
    req: &MergeRequest<'_>,
    runs: &[ShardRun],
    reports: &[CellReport],
    shards: &[ShardRow],
    notes: &[String],
) -> Result<i32> {
    let suite = req.suite;
    let mut notes = notes.to_vec();
    let versions = versions(runs, &mut notes);
    let started = runs.iter().filter_map(|r| r.run.started.parse::<jiff::Timestamp>().ok()).min();
    let ended = runs.iter().filter_map(|r| r.run.ended.parse::<jiff::Timestamp>().ok()).max();
    let started = started.unwrap_or_else(jiff::Timestamp::now);
    // The same shards merged twice are the same run: the history stores it once.
    let mut hash = Sha256::new();
    for r in runs {
        hash.update(r.run.id.as_bytes());
        hash.update([0]);
    }
    let id = format!("{}-m{}", started.strftime("%Y%m%dT%H%M%SZ"), &format!("{:x}", hash.finalize())[..6]);
    let facts = RunFacts {
        id: &id,
        suite: &suite.name,
        started,
        ended: ended.unwrap_or(started),
        artifacts: req.output,
        shard: None,
    };
    let mut changed: Vec<String> = runs.iter().flat_map(|r| r.run.changed.iter().cloned()).collect();
    changed.sort();
    changed.dedup();
    let run_file = RunFile {
        schema_version: SCHEMA_VERSION,
        id: id.clone(),
        suite: suite.name.clone(),
        started: facts.started.to_string(),
        ended: facts.ended.to_string(),
        cells: report::cell_files(&facts, reports)?,
        versions: versions.clone(),
        rendered: runs.first().map(|r| r.run.rendered.clone()).unwrap_or_default(),
        changed: changed.clone(),
        shard: None,
    };
    let mut properties: Vec<(String, String)> =
        versions.iter().map(|(name, v)| (format!("operator.{name}.version"), v.clone())).collect();
    properties.extend(shards.iter().map(|s| ("kubevet.shard".to_string(), shard_line(s))));
    let junit = req.output.join("junit.xml");
    report::write(req.output, &junit, &suite.name, reports, &properties, &run_file)?;
    let ctrf = report::ctrf::ctrf(&facts, reports);
    write_atomically(&req.output.join("ctrf.json"), ctrf.to_string().as_bytes())
        .map_err(|e| Error::infrastructure_because("writing ctrf.json", e))?;
    remember(req, &run_file, shards);
    let table = shard_table(shards);
    if req.github {
        report::print(&report::github::log(reports));
        report::github::append_to_step_summary(&format!(
            "{}\n{table}",
            report::github::step_summary(reports, &changed)
        ));
    }
    report::summary::print(reports, &changed, &junit, req.output, suite.defaults.flaky);
    report::print(&table);
    for note in &notes {
        report::print(&format!("note: {note}\n"));
    }
    Ok(report::exit_code(reports, false, suite.defaults.flaky))
}

fn shard_line(s: &ShardRow) -> String {
    match s.actual_seconds {
        Some(actual) => {
            format!("{}: {} cases, {:.0}s predicted, {actual:.0}s actual", s.shard, s.cases, s.predicted_seconds)
        }
        None => format!("{}: {} cases, {:.0}s predicted, reported nothing", s.shard, s.cases, s.predicted_seconds),
    }
}

/// Predicted against actual time per shard, as markdown (it reads as plain text too).
fn shard_table(shards: &[ShardRow]) -> String {
    let mut out = String::from(
        "| shard | cases | predicted | actual | actual ÷ predicted |\n| --- | ---: | ---: | ---: | ---: |\n",
    );
    for s in shards {
        let (actual, ratio) = match s.actual_seconds {
            Some(a) if s.predicted_seconds > 0.0 => (format!("{a:.0}s"), format!("{:.2}", a / s.predicted_seconds)),
            Some(a) => (format!("{a:.0}s"), "-".into()),
            None => ("reported nothing".into(), "-".into()),
        };
        out.push_str(&format!("| {} | {} | {:.0}s | {actual} | {ratio} |\n", s.shard, s.cases, s.predicted_seconds));
    }
    out
}

/// The merged run into the history once, with its shards; the HTML report from it. A
/// history that cannot be written is said and changes no verdict.
fn remember(req: &MergeRequest<'_>, run_file: &RunFile, shards: &[ShardRow]) {
    let path = match (&req.history, &req.html) {
        (Some(path), _) => path.clone(),
        (None, Some(_)) => PathBuf::from(":memory:"),
        (None, None) => return,
    };
    let stored = (|| -> Result<()> {
        let mut store = if req.history.is_some() {
            history::open(&path)?
        } else {
            history::store::Store::in_memory().map_err(history::failed(&path))?
        };
        let added =
            store.append(run_file, Some(&std::path::absolute(req.output).unwrap_or_else(|_| req.output.to_path_buf())));
        if added.map_err(history::failed(&path))? {
            store.append_shards(&run_file.id, shards).map_err(history::failed(&path))?;
        }
        if let Some(html) = &req.html {
            let loaded = history::load(&store, Some(&req.suite.name), history::Window::default())?;
            history::html::write(&loaded, html)?;
        }
        Ok(())
    })();
    if let Err(e) = stored {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "kubevet: the merged run was not added to the history: {e}");
    }
}
