//! The CI matrix, planned once: `kubevet plan` takes the suite's selection (globs, tiers,
//! changed-only, the failed ones) and the history, and writes the cells (Kubernetes versions)
//! × shards, each shard's cases balanced by their predicted seconds, as a plan file and a
//! GitHub matrix. `kubevet run --plan FILE --shard ID` then runs exactly that shard's cases,
//! and refuses a plan made from other files — never "run everything".

pub mod balance;
pub mod estimate;
pub mod merge;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    cluster::provision,
    history,
    plan::{self, Case, Selection},
    suite::Suite,
    util::{
        command,
        error::{Error, Result},
        files::{hash_files, write_atomically},
        github,
        run_file::ShardRef,
    },
};
use balance::{Budget, GITHUB_MATRIX_LIMIT};
use estimate::Durations;

/// The plan file's schema: raised when a field a shard reads changes.
pub const PLAN_SCHEMA: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlanFile {
    pub schema_version: u32,
    pub suite: String,
    /// The commit the plan was made at (none outside git).
    pub commit: Option<String>,
    /// A hash of the suite file (and what it extends) and of every selected case's files: a
    /// shard refuses a plan whose files differ from its checkout's.
    pub digest: String,
    pub created: String,
    pub concurrency: usize,
    /// Why the shard count is what it is, what the estimates rest on.
    pub notes: Vec<String>,
    pub cells: Vec<CellPlan>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CellPlan {
    /// The Kubernetes version (none for an existing cluster).
    pub kubernetes: Option<String>,
    pub setup_seconds: f64,
    pub setup_from: String,
    pub shards: Vec<ShardPlan>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShardPlan {
    /// `<cell>-<n>of<count>`: unique in the matrix, safe as an artifact's name.
    pub id: String,
    pub predicted_seconds: f64,
    pub cases: Vec<CasePlan>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CasePlan {
    pub id: String,
    pub predicted_seconds: f64,
    /// What the prediction rests on: its own history, comparable cases', or nothing.
    pub from: String,
}

/// What `kubevet plan` is asked.
pub struct PlanRequest<'a> {
    pub suite: &'a Suite,
    pub selection: Selection<'a>,
    pub k8s_version: Option<&'a str>,
    pub history: Option<&'a Path>,
    /// Per cell, only these cases (`--rerun-failed`).
    pub failed: Option<&'a BTreeMap<Option<String>, BTreeSet<String>>>,
    pub max_shards: Option<usize>,
    pub target_seconds: Option<f64>,
    pub concurrency: Option<usize>,
    pub output: &'a Path,
    pub matrix: Option<&'a Path>,
}

/// The cell's name in shard ids.
fn cell_key(kubernetes: Option<&str>) -> &str {
    kubernetes.unwrap_or("cluster")
}

/// `kubevet plan`.
pub async fn plan_command(req: PlanRequest<'_>) -> Result<i32> {
    let plan = make(&req).await?;
    let text = serde_json::to_string_pretty(&plan).map_err(Error::infrastructure_from)?;
    write_atomically(req.output, text.as_bytes())
        .map_err(|e| Error::infrastructure_because(format!("writing {}", req.output.display()), e))?;
    let matrix = matrix(&plan).to_string();
    if let Some(path) = req.matrix {
        write_atomically(path, matrix.as_bytes())
            .map_err(|e| Error::infrastructure_because(format!("writing {}", path.display()), e))?;
    }
    let shards: usize = plan.cells.iter().map(|c| c.shards.len()).sum();
    for (name, value) in
        [("matrix", matrix.as_str()), ("shards", &shards.to_string()), ("plan", &req.output.display().to_string())]
    {
        github::set_output(name, value).map_err(|e| Error::infrastructure_because("writing $GITHUB_OUTPUT", e))?;
    }
    crate::report::print(&table(&plan, req.output));
    Ok(0)
}

/// The plan: per cell, the cases estimated, balanced into shards, the partition checked.
async fn make(req: &PlanRequest<'_>) -> Result<PlanFile> {
    let suite = req.suite;
    let cells = provision::cells(&suite.cluster, req.k8s_version)?;
    let runs = match req.history.filter(|p| p.exists()) {
        Some(path) => history::open(path)?.runs(Some(&suite.name), 200, None).map_err(history::failed(path))?,
        None => Vec::new(),
    };
    let durations = Durations::of(&runs);
    let cases = plan::plan_some(suite, req.selection)?;
    let concurrency = req.concurrency.unwrap_or(suite.defaults.concurrency).max(1);
    let per_cell_limit = (GITHUB_MATRIX_LIMIT / cells.len().max(1)).max(1);
    let mut notes = vec![format!("{} runs of suite {} in the history", runs.len(), suite.name)];
    let max_shards = match req.max_shards {
        Some(m) if m > per_cell_limit => {
            notes.push(format!("--max-shards {m} lowered to {per_cell_limit}: GitHub runs at most {GITHUB_MATRIX_LIMIT} jobs of a matrix, over {} cells", cells.len()));
            per_cell_limit
        }
        Some(m) => m,
        None => per_cell_limit,
    };
    let mut planned = Vec::new();
    for cell in &cells {
        let version = cell.version.as_deref();
        let wanted = req.failed.map(|f| f.get(&cell.version).cloned().unwrap_or_default());
        let here: Vec<&Case> = cases.iter().filter(|c| wanted.as_ref().is_none_or(|w| w.contains(&c.id))).collect();
        if here.is_empty() {
            notes.push(format!("{}: no case to run, no shard", cell_key(version)));
            continue;
        }
        planned.push(cell_plan(version, &here, &durations, concurrency, max_shards, req.target_seconds)?);
    }
    Ok(PlanFile {
        schema_version: PLAN_SCHEMA,
        suite: suite.name.clone(),
        commit: commit(&suite.root).await,
        digest: digest(suite, &cases)?,
        created: jiff::Timestamp::now().to_string(),
        concurrency,
        notes,
        cells: planned,
    })
}

fn cell_plan(
    version: Option<&str>,
    cases: &[&Case],
    durations: &Durations,
    concurrency: usize,
    max_shards: usize,
    target_seconds: Option<f64>,
) -> Result<CellPlan> {
    let estimates: Vec<_> = cases
        .iter()
        .map(|c| match (&c.skip, &c.problem) {
            // Neither takes time: a skip is reported at once, a problem is an error at once.
            (Some(_), _) => estimate::Estimate { seconds: 0.0, from: "skipped by the suite: does not run".into() },
            (_, Some(_)) => {
                estimate::Estimate { seconds: 0.0, from: "cannot run: reported as an error at once".into() }
            }
            _ => durations.case(version, &c.id, c.profile_name()),
        })
        .collect();
    let seconds: Vec<f64> = estimates.iter().map(|e| e.seconds).collect();
    let setup = durations.setup(version);
    let budget = Budget { max_shards, target_seconds, concurrency, setup_seconds: setup.seconds };
    let groups = balance::choose(&seconds, budget);
    // Proved before it is written: every selected case in exactly one shard, none empty.
    balance::is_partition(&groups, cases.len())
        .map_err(|e| Error::infrastructure(format!("kubevet made a wrong plan ({e}); please report it")))?;
    let count = groups.len();
    let shards = groups
        .iter()
        .enumerate()
        .map(|(i, group)| {
            let own: Vec<f64> = group.iter().map(|&c| seconds[c]).collect();
            ShardPlan {
                id: format!("{}-{}of{count}", cell_key(version), i + 1),
                predicted_seconds: balance::wall(&own, concurrency, setup.seconds),
                cases: group
                    .iter()
                    .map(|&c| CasePlan {
                        id: cases[c].id.clone(),
                        predicted_seconds: estimates[c].seconds,
                        from: estimates[c].from.clone(),
                    })
                    .collect(),
            }
        })
        .collect();
    Ok(CellPlan {
        kubernetes: version.map(str::to_string),
        setup_seconds: setup.seconds,
        setup_from: setup.from,
        shards,
    })
}

/// The GitHub matrix: one entry per shard (an empty `include` when there is nothing to run:
/// guard the job with `if: needs.<plan job>.outputs.shards != '0'`).
pub fn matrix(plan: &PlanFile) -> serde_json::Value {
    let include: Vec<serde_json::Value> = plan
        .cells
        .iter()
        .flat_map(|cell| {
            cell.shards.iter().map(|s| {
                serde_json::json!({
                    "shard": s.id,
                    "kubernetes": cell.kubernetes,
                    "cases": s.cases.len(),
                    "predictedSeconds": s.predicted_seconds.round(),
                })
            })
        })
        .collect();
    serde_json::json!({ "include": include })
}

fn table(plan: &PlanFile, path: &Path) -> String {
    let mut out = String::new();
    for cell in &plan.cells {
        out.push_str(&format!(
            "{}: {} shards, setup {:.0}s ({})\n",
            cell_key(cell.kubernetes.as_deref()),
            cell.shards.len(),
            cell.setup_seconds,
            cell.setup_from
        ));
        for s in &cell.shards {
            out.push_str(&format!(
                "  {:<16} {:>4} cases  {:>7.0}s predicted\n",
                s.id,
                s.cases.len(),
                s.predicted_seconds
            ));
        }
    }
    for note in &plan.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    out.push_str(&format!("plan written to {}\n", path.display()));
    out
}

/// The commit the suite's folder is at, if it is in git.
async fn commit(root: &Path) -> Option<String> {
    command::output("git", &["rev-parse", "HEAD"], Some(root)).await.ok().map(|s| s.trim().to_string())
}

/// A hash of the suite's files and every case's files, in a fixed order.
fn digest(suite: &Suite, cases: &[Case]) -> Result<String> {
    let mut files: BTreeSet<PathBuf> = suite.files.iter().cloned().collect();
    let mut ids: Vec<&str> = cases.iter().map(|c| c.id.as_str()).collect();
    ids.sort_unstable();
    files.extend(cases.iter().flat_map(Case::files));
    let mut hash = Sha256::new();
    for id in ids {
        hash.update(id.as_bytes());
        hash.update([0]);
    }
    hash_files(&mut hash, &suite.root, &files).map_err(Error::usage_from)?;
    Ok(format!("{:x}", hash.finalize()))
}

/// A plan file, refused whole when it is not one of this kubevet's schema.
pub fn read_plan(path: &Path) -> Result<PlanFile> {
    let bad = |why: String| Error::usage(format!("--plan {}: {why}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let version = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("schemaVersion").and_then(serde_json::Value::as_u64));
    if let Some(v) = version.filter(|v| *v != u64::from(PLAN_SCHEMA)) {
        return Err(bad(format!(
            "plan schema {v} is not this kubevet's ({PLAN_SCHEMA}): plan again with this kubevet"
        )));
    }
    serde_json::from_str(&text)
        .map_err(|e| bad(format!("not a kubevet plan of schema {PLAN_SCHEMA} ({e}); make it with kubevet plan")))
}

/// The shard a job runs, checked against the plan and this checkout.
#[derive(Debug)]
pub struct Shard {
    pub cases: BTreeSet<String>,
    pub kubernetes: Option<String>,
    pub reference: ShardRef,
}

/// `run --plan FILE --shard ID`: that shard's cases; anything that does not fit (another
/// suite, other files, an id the plan lacks) is exit 2, never a run of everything.
pub async fn shard(suite: &Suite, path: &Path, id: &str) -> Result<Shard> {
    let bad = |why: String| Error::usage(format!("--plan {}: {why}", path.display()));
    let plan = read_plan(path)?;
    if plan.suite != suite.name {
        return Err(bad(format!("made for suite {:?}, not {:?} ({})", plan.suite, suite.name, suite.path.display())));
    }
    let all: BTreeSet<String> =
        plan.cells.iter().flat_map(|c| &c.shards).flat_map(|s| &s.cases).map(|c| c.id.clone()).collect();
    let cases = plan::plan_some(suite, Selection { only: Some(&all), ..Selection::default() })?;
    let here = commit(&suite.root).await;
    let other_files = || match (&plan.commit, &here) {
        (Some(made), Some(now)) if made != now => format!(
            "the plan was made at commit {made}, this checkout is at {now}: plan again here, or check that commit out"
        ),
        _ => "the suite's or the cases' files differ from the ones the plan was made from: plan again".into(),
    };
    if let Some(missing) = all.iter().find(|id| !cases.iter().any(|c| &c.id == *id)) {
        return Err(bad(format!("case {missing} is not in this suite; {}", other_files())));
    }
    if digest(suite, &cases)? != plan.digest {
        return Err(bad(other_files()));
    }
    let Some((cell, shard)) = plan.cells.iter().find_map(|c| c.shards.iter().find(|s| s.id == id).map(|s| (c, s)))
    else {
        let ids: Vec<&str> = plan.cells.iter().flat_map(|c| &c.shards).map(|s| s.id.as_str()).collect();
        return Err(bad(format!("no shard {id:?}; its shards are {}", ids.join(", "))));
    };
    let attempt = std::env::var("GITHUB_RUN_ATTEMPT").ok().and_then(|a| a.parse().ok()).unwrap_or(1);
    Ok(Shard {
        cases: shard.cases.iter().map(|c| c.id.clone()).collect(),
        kubernetes: cell.kubernetes.clone(),
        reference: ShardRef {
            plan: plan.digest.clone(),
            id: shard.id.clone(),
            attempt,
            predicted_seconds: shard.predicted_seconds,
        },
    })
}

/// `--rerun-failed`: per cell of the suite's last recorded run, the cases that did not pass.
pub fn failed_last_run(history: &Path, suite: &Suite) -> Result<BTreeMap<Option<String>, BTreeSet<String>>> {
    let runs = if history.exists() {
        history::open(history)?.runs(Some(&suite.name), 1, None).map_err(history::failed(history))?
    } else {
        Vec::new()
    };
    let Some(last) = runs.last() else {
        return Err(Error::usage(format!(
            "--rerun-failed: the history {} holds no run of suite {:?}; run it once first",
            history.display(),
            suite.name
        )));
    };
    Ok(last
        .cells
        .iter()
        .map(|cell| {
            let failed = cell
                .cases
                .iter()
                .filter(|c| matches!(c.outcome.as_str(), "failed" | "error" | "interrupted"))
                .map(|c| c.id.clone())
                .collect();
            (cell.asked.clone(), failed)
        })
        .collect())
}
