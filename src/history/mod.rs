//! Memory across runs: every run goes into an SQLite history (`store.rs`); health per example
//! is computed from it (`health.rs`); the HTML report shows the latest run, the history and
//! the health (`html.rs`). `kubevet history import`, `kubevet health` and `kubevet report`.
//! A stage after `report`: it reads what runs wrote.

mod assertions;
pub mod health;
pub mod html;
pub mod junit;
pub mod store;
mod usage;

use std::path::{Path, PathBuf};

use crate::util::{
    error::{Error, Result},
    files::cache_dir,
    run_file::RunFile,
};
pub use health::Window;
pub use junit::JunitDefaults;
use store::{RunRow, Store, StoreError};

/// `<cache>/history.sqlite`, unless `--history PATH`.
pub fn default_path() -> PathBuf {
    cache_dir().join("history.sqlite")
}

/// A failure of the history database at `path`, as the command's error.
pub fn failed(path: &Path) -> impl Fn(StoreError) -> Error + '_ {
    move |e| Error::History { path: path.to_path_buf(), source: Box::new(e) }
}

pub fn open(path: &Path) -> Result<Store> {
    let store = Store::open(path).map_err(failed(path))?;
    if let Some(aside) = &store.set_aside {
        eprintln!(
            "kubevet: the history {} was damaged; it was moved to {} and a new one started",
            path.display(),
            aside.display()
        );
    }
    Ok(store)
}

/// Adds one run's `run.json` (written by `kubevet run`) to the history; false when it is
/// there already.
pub fn append(store: &mut Store, run_json: &Path) -> Result<bool> {
    let text =
        std::fs::read_to_string(run_json).map_err(|e| Error::usage_because(run_json.display().to_string(), e))?;
    let run = RunFile::parse(&text).map_err(|e| Error::usage_because(run_json.display().to_string(), e))?;
    let root = run_json.parent().map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()));
    let path = store.path.clone();
    store.append(&run, root.as_deref()).map_err(failed(&path))
}

/// Every `run.json` under the paths given (files, or folders searched through).
pub fn run_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    files_under(paths, is_run_json)
}

fn is_run_json(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == "run.json")
}

/// The files given, and in each folder given the files `keep` takes, in path order.
fn files_under(paths: &[PathBuf], keep: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for path in paths {
        if path.is_file() {
            found.push(path.clone());
        } else if path.is_dir() {
            let mut here: Vec<PathBuf> = ignore::WalkBuilder::new(path)
                .standard_filters(false)
                .build()
                .filter_map(|e| e.ok())
                .map(|e| e.into_path())
                .filter(|p| p.is_file() && keep(p))
                .collect();
            here.sort();
            found.extend(here);
        } else {
            return Err(Error::usage(format!("{}: no such file or folder", path.display())));
        }
    }
    Ok(found)
}

/// `kubevet history import PATH…`: runs made elsewhere (each CI job's artifacts: `run.json`
/// files, or JUnit files where no `run.json` was kept) into the history; the same run
/// imported twice, or from both its files, is stored once.
pub fn import(history: &Path, paths: &[PathBuf], junit: &JunitDefaults) -> Result<i32> {
    let files = import_files(paths)?;
    if files.is_empty() {
        return Err(Error::usage("no run.json or JUnit file under the paths given"));
    }
    let mut store = open(history)?;
    let (mut added, mut known) = (0, 0);
    for file in &files {
        let is_new = match file {
            Source::RunJson(path) => append(&mut store, path)?,
            Source::Junit(path) => {
                let imported = junit::run_of_junit(path, junit)?;
                for note in &imported.notes {
                    eprintln!("kubevet: {note}");
                }
                let path = store.path.clone();
                store.append(&imported.run, None).map_err(failed(&path))?
            }
        };
        if is_new {
            added += 1;
        } else {
            known += 1;
        }
    }
    let (total, _) = store.summary().map_err(failed(history))?;
    println!("imported {added} runs ({known} already in the history); {} holds {total} runs", history.display());
    Ok(0)
}

/// A file `history import` reads.
enum Source {
    RunJson(PathBuf),
    Junit(PathBuf),
}

/// The files to import: each file given (`.xml` as JUnit, else a `run.json`); in folders,
/// every `run.json`, and every XML file whose root is `<testsuites>` or `<testsuite>` in a
/// folder without a `run.json` (beside one, it is the same run's JUnit).
fn import_files(paths: &[PathBuf]) -> Result<Vec<Source>> {
    let beside_no_run_json = |p: &Path| p.parent().is_none_or(|d| !d.join("run.json").is_file());
    let files = files_under(paths, |p| is_run_json(p) || (is_junit(p) && beside_no_run_json(p)))?;
    Ok(files
        .into_iter()
        .map(|f| {
            if f.extension().is_some_and(|e| e.eq_ignore_ascii_case("xml")) {
                Source::Junit(f)
            } else {
                Source::RunJson(f)
            }
        })
        .collect())
}

/// An XML file whose root element is JUnit's (read from its first 4 KiB).
fn is_junit(path: &Path) -> bool {
    use std::io::Read;
    if !path.extension().is_some_and(|e| e.eq_ignore_ascii_case("xml")) {
        return false;
    }
    let mut head = [0u8; 4096];
    let read = std::fs::File::open(path).and_then(|mut f| f.read(&mut head)).unwrap_or(0);
    let text = String::from_utf8_lossy(&head[..read]);
    // The first element that is not the declaration, a comment or a processing instruction.
    text.split('<').skip(1).find(|t| !t.starts_with('?') && !t.starts_with('!')).is_some_and(|root| {
        root.starts_with("testsuites") || root.starts_with("testsuite ") || root.starts_with("testsuite>")
    })
}

/// The runs health and reports look at: the window, the window before it (for trends), and
/// the latest 200 runs or the window if larger (where a regression started).
pub struct Loaded {
    pub window: Vec<RunRow>,
    pub earlier: Vec<RunRow>,
    pub all: Vec<RunRow>,
    /// What each container of the window's latest run used.
    pub latest_usage: Vec<store::ContainerRow>,
    /// The metric assertions of the window's latest run.
    pub latest_metrics: Vec<store::CaseMetrics>,
}

pub fn load(store: &Store, suite: Option<&str>, window: Window) -> Result<Loaded> {
    let since = jiff::Timestamp::now().checked_sub(jiff::SignedDuration::from_hours(24 * window.days)).ok();
    let all = store.runs(suite, window.runs.max(200), None).map_err(failed(&store.path))?;
    let in_days: Vec<RunRow> = all.iter().filter(|r| since.is_none_or(|s| r.started >= s)).cloned().collect();
    let window_runs: Vec<RunRow> = in_days[in_days.len().saturating_sub(window.runs)..].to_vec();
    let first = window_runs.first().map(|r| r.id.clone());
    let before: Vec<RunRow> = all.iter().take_while(|r| Some(&r.id) != first.as_ref()).cloned().collect();
    let earlier = before[before.len().saturating_sub(window.runs)..].to_vec();
    let (latest_usage, latest_metrics) = match window_runs.last() {
        Some(latest) => (
            store.container_usage(&latest.id).map_err(failed(&store.path))?,
            store.metric_checks(&latest.id).map_err(failed(&store.path))?,
        ),
        None => (Vec::new(), Vec::new()),
    };
    Ok(Loaded { window: window_runs, earlier, all, latest_usage, latest_metrics })
}

/// `kubevet health`: a table or JSON of every example's health.
pub fn health_command(history: &Path, suite: Option<&str>, window: Window, json: bool) -> Result<i32> {
    let store = open(history)?;
    let loaded = load(&store, suite, window)?;
    if loaded.window.is_empty() {
        return Err(Error::usage(format!(
            "no run{} in {} within the last {} days",
            suite.map(|s| format!(" of suite {s}")).unwrap_or_default(),
            history.display(),
            window.days
        )));
    }
    let rows = health::health(&loaded.window, &loaded.earlier, &loaded.all);
    if json {
        println!("{}", serde_json::to_string_pretty(&rows).map_err(Error::usage_from)?);
        return Ok(0);
    }
    print!("{}", table(&rows, loaded.window.len()));
    Ok(0)
}

fn seconds(s: Option<f64>) -> String {
    s.map(|s| format!("{s:.1}s")).unwrap_or_else(|| "-".into())
}

fn table(rows: &[health::Health], runs: usize) -> String {
    let width = rows.iter().map(|r| r.example.len()).max().unwrap_or(7).max(7);
    let mut out = format!(
        "{:<width$}  {:<10}  {:<8}  {:>5}  {:>5}  {:>6}  {:>4}  {:>7}  {:>7}  TIMELINE / NOTE\n",
        "EXAMPLE", "KUBERNETES", "STATE", "SCORE", "PASS", "FLAKY", "RUNS", "MEDIAN", "P95"
    );
    for r in rows {
        let trend = match (r.median_seconds, r.previous_median_seconds) {
            (Some(now), Some(before)) if before > 0.0 => {
                format!(" ({:+.0}% vs earlier)", 100.0 * (now - before) / before)
            }
            _ => String::new(),
        };
        let note = match &r.regression {
            Some(reg) if r.kubernetes.is_none() => format!(
                "regression on {} since run {} ({}): {}",
                reg.kubernetes,
                reg.first_failing_run,
                reg.started,
                reg.changed.join("; ")
            ),
            _ if !r.resource_regressions.is_empty() => {
                format!("{}{trend}; resource regression: {}", r.timeline, r.resource_regressions.join("; "))
            }
            _ => format!("{}{trend}", r.timeline),
        };
        out.push_str(&format!(
            "{:<width$}  {:<10}  {:<8}  {:>5}  {:>5}  {:>6}  {:>4}  {:>7}  {:>7}  {note}\n",
            r.example,
            r.kubernetes.as_deref().unwrap_or("all"),
            r.state.name(),
            r.score,
            r.pass_rate.map(|p| format!("{:.0}%", p * 100.0)).unwrap_or_else(|| "-".into()),
            format!("{:.0}%", r.flakiness),
            r.judged,
            seconds(r.median_seconds),
            seconds(r.p95_seconds),
        ));
    }
    out.push_str(&format!("over the last {runs} runs\n"));
    out
}

/// `kubevet report`: the HTML report of the history's latest run of a suite.
pub fn report_command(history: &Path, suite: Option<&str>, window: Window, output: &Path) -> Result<i32> {
    let store = open(history)?;
    let loaded = load(&store, suite, window)?;
    if loaded.window.is_empty() {
        return Err(Error::usage(format!("no run in {} to report", history.display())));
    }
    let bytes = html::write(&loaded, output)?;
    println!("report: {} ({bytes} bytes, {} runs)", output.display(), loaded.window.len());
    Ok(0)
}
