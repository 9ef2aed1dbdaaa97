//! The HTML report: one self-contained file (styles, script and charts inline, no network)
//! with the latest run's Kubernetes-version × example matrix in TestGrid's colours, each
//! case's reason, class, phases as a bar, log tail and links to its evidence (relative to the
//! report, so the artifacts folder can be opened anywhere), the history grid, duration trends
//! as inline SVG, health, and filters (also read from the URL: `report.html#outcome=failed`).
//! Templated with minijinja, which escapes everything the runs wrote.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Component, Path, PathBuf},
};

use serde::Serialize;

use super::{
    Loaded,
    assertions::{self, MetricView},
    health::{self, Health},
    store::{CaseRow, RunRow},
    usage,
};
use crate::util::{
    error::{Error, Result},
    files::write_atomically,
};

const TEMPLATE: &str = include_str!("report.html.j2");

#[derive(Serialize)]
struct Filter {
    key: &'static str,
    label: &'static str,
    values: BTreeSet<String>,
}

#[derive(Serialize)]
struct MatrixCell {
    version: String,
    outcome: String,
    class: String,
    tier: String,
    profile: String,
    css: String,
    label: String,
    title: String,
    href: Option<String>,
}

#[derive(Serialize)]
struct MatrixRow {
    id: String,
    example: String,
    state: &'static str,
    score: u8,
    cells: Vec<MatrixCell>,
}

#[derive(Serialize)]
struct PhaseView {
    name: String,
    css: String,
    seconds: String,
    pct: String,
}

#[derive(Serialize)]
struct Link {
    label: &'static str,
    href: String,
}

#[derive(Serialize)]
struct CaseView {
    id: String,
    example: String,
    version: String,
    outcome: String,
    css: String,
    class: String,
    tier: String,
    profile: String,
    seconds: String,
    attempts: u32,
    phases: Vec<PhaseView>,
    phases_title: String,
    reason: String,
    log_tail: Option<String>,
    links: Vec<Link>,
    /// `cpu 4.04 s · peak 101.3 MiB`, when the case's containers were measured.
    usage: String,
    bars: Vec<usage::UsageBar>,
}

/// The page's header: the latest run's cases by outcome and by class, and the pass rate of
/// each run of the window (oldest first) as a line.
#[derive(Serialize)]
struct Summary {
    outcomes: Vec<(String, usize)>,
    classes: Vec<(String, usize)>,
    pass_rate: String,
    trend_svg: String,
}

#[derive(Serialize)]
struct RunHead {
    short: String,
    changed: bool,
    title: String,
}

#[derive(Serialize)]
struct Dot {
    css: String,
    title: String,
}

#[derive(Serialize)]
struct HistoryRow {
    id: String,
    example: String,
    version: String,
    dots: Vec<Dot>,
    svg: String,
    /// The example's core-seconds and peak memory over the runs it was measured in.
    cpu_svg: String,
    memory_svg: String,
}

#[derive(Serialize)]
struct HealthView {
    id: String,
    example: String,
    version: String,
    state: &'static str,
    score: u8,
    pass_rate: String,
    flakiness: String,
    judged: usize,
    median: String,
    p95: String,
    note: String,
}

/// The CSS class of an outcome: TestGrid's colours, timeouts and infrastructure apart.
fn css(case: &CaseRow) -> String {
    match (case.outcome.as_str(), case.class.as_deref()) {
        ("failed", Some("timeout")) => "timeout".into(),
        ("failed" | "error", Some("infrastructure")) => "infrastructure".into(),
        (outcome, _) => outcome.into(),
    }
}

/// `to` as a link from the folder `from`: relative when both are absolute, `/`-separated.
fn relative(from: &Path, to: &Path) -> String {
    let (from, to) = (std::path::absolute(from).unwrap_or_default(), std::path::absolute(to).unwrap_or_default());
    let (a, b): (Vec<Component>, Vec<Component>) = (from.components().collect(), to.components().collect());
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<String> = std::iter::repeat_n("..".to_string(), a.len() - common).collect();
    parts.extend(b[common..].iter().map(|c| c.as_os_str().to_string_lossy().into_owned()));
    if parts.is_empty() { ".".into() } else { parts.join("/") }
}

/// The case's evidence folder: as recorded, under the folder its run.json was in.
fn evidence(run: &RunRow, case: &CaseRow) -> Option<PathBuf> {
    let artifacts = PathBuf::from(case.artifacts.as_ref()?);
    let dir = match (&run.root, artifacts.is_absolute()) {
        (_, true) | (None, _) => artifacts,
        (Some(root), false) => Path::new(root).join(artifacts),
    };
    Some(dir)
}

fn seconds(s: f64) -> String {
    if s >= 60.0 { format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64) } else { format!("{s:.1}s") }
}

/// A sparkline of a case's durations over the runs (passes only), with the last value.
fn sparkline(points: &[(usize, f64)], runs: usize) -> String {
    trend(points, runs, "duration over runs", seconds)
}

/// A sparkline of `points` (run index, value) over `runs`, with the last value as `shown` says.
fn trend(points: &[(usize, f64)], runs: usize, label: &str, shown: fn(f64) -> String) -> String {
    if points.is_empty() {
        return String::new();
    }
    let (w, h) = (120.0, 24.0);
    let max = points.iter().map(|p| p.1).fold(0.0f64, f64::max).max(0.001);
    let x = |i: usize| if runs <= 1 { w / 2.0 } else { 2.0 + (w - 4.0) * i as f64 / (runs - 1) as f64 };
    let y = |v: f64| h - 2.0 - (h - 4.0) * v / max;
    let line: Vec<String> = points.iter().map(|(i, v)| format!("{:.1},{:.1}", x(*i), y(*v))).collect();
    let last = points.last().map(|p| p.1).unwrap_or(0.0);
    format!(
        "<svg class=\"trend\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{label}\"><polyline fill=\"none\" stroke=\"#1e88e5\" stroke-width=\"1.5\" points=\"{}\"/></svg> {}",
        line.join(" "),
        shown(last)
    )
}

/// Renders the report into `output`; the number of bytes written.
pub fn write(loaded: &Loaded, output: &Path) -> Result<usize> {
    let html = render(loaded, output.parent().unwrap_or(Path::new(".")))?;
    write_atomically(output, html.as_bytes())
        .map_err(|e| Error::infrastructure_because(output.display().to_string(), e))?;
    Ok(html.len())
}

fn render(loaded: &Loaded, report_dir: &Path) -> Result<String> {
    let runs = &loaded.window;
    let latest = runs.last().ok_or_else(|| Error::usage("no run to report"))?;
    let healths = health::health(runs, &loaded.earlier, &loaded.all);
    let versions: Vec<String> = latest.cells.iter().map(|c| c.kubernetes.clone()).collect();
    let Latest { filters, matrix, mut cases } = latest_run(latest, &healths, &versions, report_dir);
    let mut bars = usage::bars(&loaded.latest_usage);
    // Cases come cell by cell, in each cell's order: the same order gives each its cell.
    let mut index = 0;
    for (cell_index, cell) in latest.cells.iter().enumerate() {
        for case in &cell.cases {
            let key = (i64::try_from(cell_index).unwrap_or(i64::MAX), case.id.clone());
            if let (Some(view), Some(found)) = (cases.get_mut(index), bars.remove(&key)) {
                view.bars = found;
            }
            index += 1;
        }
    }
    let names: BTreeMap<&str, &str> =
        latest.cells.iter().flat_map(|c| &c.cases).map(|c| (c.id.as_str(), c.name.as_str())).collect();
    let unused: Vec<(String, usage::Unused)> = usage::unused(&loaded.latest_usage)
        .into_iter()
        .map(|u| (names.get(u.case_id.as_str()).map_or_else(|| u.case_id.clone(), |n| n.to_string()), u))
        .collect();
    let mut env = minijinja::Environment::new();
    env.add_template("report.html", TEMPLATE).map_err(|e| Error::infrastructure_because("report template", e))?;
    let template = env.get_template("report.html").map_err(Error::infrastructure_from)?;
    let ended = latest.ended;
    let page = Page {
        suite: &latest.suite,
        run_id: &latest.id,
        started: latest.started.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        ended: ended.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        duration: seconds(ended.duration_since(latest.started).as_secs_f64()),
        generated: jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        changed: &latest.changed,
        regressions: regressions(&healths),
        summary: summary(latest, runs),
        unused,
        metrics: metric_views(latest, &loaded.latest_metrics),
        versions,
        filters,
        matrix,
        cases,
        history_runs: runs.iter().map(run_head).collect(),
        history: history_rows(runs, &healths),
        health: healths.iter().map(health_view).collect(),
    };
    template
        .render(minijinja::value::Serde(&page))
        .map_err(|e| Error::infrastructure_because("rendering the report", e))
}

/// The latest run's metric assertions, each with its case's example and Kubernetes version.
fn metric_views(latest: &RunRow, metrics: &[super::store::CaseMetrics]) -> Vec<(String, String, MetricView)> {
    assertions::views(metrics)
        .into_iter()
        .map(|view| {
            let cell = usize::try_from(view.cell).ok().and_then(|i| latest.cells.get(i));
            let example = cell
                .and_then(|c| c.cases.iter().find(|k| k.id == view.case_id))
                .map_or_else(|| view.case_id.clone(), |k| k.name.clone());
            (example, cell.map(|c| c.kubernetes.clone()).unwrap_or_default(), view)
        })
        .collect()
}

/// What the report shows of the latest run: its filters' values, the matrix (a row per
/// example, a cell per version), and a card per case.
struct Latest {
    filters: [Filter; 5],
    matrix: Vec<MatrixRow>,
    cases: Vec<CaseView>,
}

fn latest_run(latest: &RunRow, healths: &[Health], versions: &[String], report_dir: &Path) -> Latest {
    let mut filters = [
        Filter { key: "outcome", label: "outcome", values: BTreeSet::new() },
        Filter { key: "class", label: "class", values: BTreeSet::new() },
        Filter { key: "tier", label: "tier", values: BTreeSet::new() },
        Filter { key: "profile", label: "profile", values: BTreeSet::new() },
        Filter { key: "version", label: "Kubernetes", values: BTreeSet::new() },
    ];
    let mut matrix: BTreeMap<String, MatrixRow> = BTreeMap::new();
    let mut cases = Vec::new();
    for cell in &latest.cells {
        for case in &cell.cases {
            let view = case_view(latest, case, &cell.kubernetes, report_dir);
            for (filter, value) in filters.iter_mut().zip([&view.outcome, &view.class, &view.tier, &view.profile]) {
                if !value.is_empty() {
                    filter.values.insert(value.clone());
                }
            }
            if !cell.kubernetes.is_empty() {
                filters[4].values.insert(cell.kubernetes.clone());
            }
            let overall = healths.iter().find(|h| h.id == case.id && h.kubernetes.is_none());
            let row = matrix.entry(case.name.clone()).or_insert_with(|| MatrixRow {
                id: case.id.clone(),
                example: case.name.clone(),
                state: overall.map(|h| h.state.name()).unwrap_or("NEW"),
                score: overall.map(|h| h.score).unwrap_or(0),
                cells: Vec::new(),
            });
            let result = evidence(latest, case).map(|d| relative(report_dir, &d.join("result.json")));
            row.cells.push(matrix_cell(case, &view, &cell.kubernetes, result));
            cases.push(view);
        }
    }
    let mut matrix: Vec<MatrixRow> = matrix.into_values().collect();
    for row in &mut matrix {
        fill_missing_cells(row, versions);
    }
    Latest { filters, matrix, cases }
}

/// An example's cell of one version: its outcome (with its attempts), linked to its result.
fn matrix_cell(case: &CaseRow, view: &CaseView, version: &str, href: Option<String>) -> MatrixCell {
    let label = match (case.outcome.as_str(), case.attempts) {
        ("flaky", n) => format!("FLAKY {n}×"),
        (outcome, n) if n > 1 => format!("{} {n}×", outcome.to_uppercase()),
        (outcome, _) => outcome.to_uppercase(),
    };
    MatrixCell {
        version: version.to_string(),
        outcome: case.outcome.clone(),
        class: view.class.clone(),
        tier: view.tier.clone(),
        profile: view.profile.clone(),
        css: view.css.clone(),
        label,
        title: format!("{} on {version}: {}", case.name, view.reason),
        href,
    }
}

/// Cells of versions where an example did not run, so every row has a cell per column.
fn fill_missing_cells(row: &mut MatrixRow, versions: &[String]) {
    for v in versions {
        if !row.cells.iter().any(|c| &c.version == v) {
            row.cells.push(MatrixCell {
                version: v.clone(),
                outcome: "none".into(),
                class: String::new(),
                tier: String::new(),
                profile: String::new(),
                css: "none".into(),
                label: "—".into(),
                title: format!("not run on {v}"),
                href: None,
            });
        }
    }
    row.cells.sort_by_key(|c| versions.iter().position(|v| v == &c.version));
}

/// A case's card: its outcome, phases as a bar, reason, log tail and evidence links.
fn case_view(run: &RunRow, case: &CaseRow, version: &str, report_dir: &Path) -> CaseView {
    let dir = evidence(run, case);
    let href = |file: &str| dir.as_ref().map(|d| relative(report_dir, &d.join(file)));
    let phases = phase_views(case);
    let links = [("result", "result.json"), ("events", "events.txt"), ("objects", "objects"), ("pods", "pods")]
        .into_iter()
        .filter(|(_, file)| dir.as_ref().is_none_or(|d| d.join(file).exists()))
        .filter_map(|(label, file)| href(file).map(|href| Link { label, href }))
        .collect();
    CaseView {
        id: case.id.clone(),
        example: case.name.clone(),
        version: version.to_string(),
        outcome: case.outcome.clone(),
        css: css(case),
        class: case.class.clone().unwrap_or_default(),
        tier: case.tier.clone().unwrap_or_default(),
        profile: case.profile.clone().unwrap_or_default(),
        seconds: seconds(case.seconds),
        attempts: case.attempts,
        phases_title: phases.iter().map(|p| format!("{} {}", p.name, p.seconds)).collect::<Vec<_>>().join(", "),
        phases,
        reason: case.reason.clone().unwrap_or_default(),
        log_tail: case.log_tail.clone(),
        links,
        usage: usage_text(case),
        bars: Vec::new(),
    }
}

fn usage_text(case: &CaseRow) -> String {
    let mut parts = Vec::new();
    if let Some(cpu) = case.cpu_seconds {
        parts.push(format!("cpu {cpu:.2} s"));
    }
    if let Some(peak) = case.peak_memory_bytes {
        parts.push(format!("peak {}", crate::util::units::mib(peak)));
    }
    if case.usage_coverage.is_some_and(|c| c < 0.8) {
        parts.push("low coverage".into());
    }
    parts.join(" · ")
}

/// A run's pass rate: passed (flaky included) over judged (infrastructure errors, skips and
/// interrupts not judged); none without a judged case.
fn pass_rate(run: &RunRow) -> Option<f64> {
    let judged: Vec<&CaseRow> = run
        .cells
        .iter()
        .flat_map(|c| &c.cases)
        .filter(|c| {
            !matches!(c.outcome.as_str(), "skipped" | "interrupted") && c.class.as_deref() != Some("infrastructure")
        })
        .collect();
    let passed = judged.iter().filter(|c| matches!(c.outcome.as_str(), "passed" | "flaky")).count();
    (!judged.is_empty()).then(|| passed as f64 / judged.len() as f64)
}

fn summary(latest: &RunRow, runs: &[RunRow]) -> Summary {
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut classes: BTreeMap<String, usize> = BTreeMap::new();
    for case in latest.cells.iter().flat_map(|c| &c.cases) {
        *outcomes.entry(case.outcome.clone()).or_default() += 1;
        if let Some(class) = &case.class {
            *classes.entry(class.clone()).or_default() += 1;
        }
    }
    let rates: Vec<Option<f64>> = runs.iter().map(pass_rate).collect();
    let points: Vec<String> = rates
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.map(|r| format!("{},{:.1}", i * 12 + 2, 22.0 - r * 20.0)))
        .collect();
    let width = runs.len().saturating_mul(12).max(14);
    Summary {
        outcomes: outcomes.into_iter().collect(),
        classes: classes.into_iter().collect(),
        pass_rate: pass_rate(latest).map_or_else(|| "-".into(), |r| format!("{:.0}%", r * 100.0)),
        trend_svg: format!(
            r##"<svg id="pass-trend" width="{width}" height="24" role="img" aria-label="pass rate per run"><polyline fill="none" stroke="#2e7d32" stroke-width="2" points="{}"/></svg>"##,
            points.join(" ")
        ),
    }
}

/// A case's phases with their share of its time.
fn phase_views(case: &CaseRow) -> Vec<PhaseView> {
    let phases = case.phases.as_array().map(Vec::as_slice).unwrap_or_default();
    let total: f64 = phases.iter().filter_map(|p| p["seconds"].as_f64()).sum();
    let known = ["apply", "scheduling", "running", "collecting", "checks", "steps", "cleanup"];
    phases
        .iter()
        .map(|p| {
            let name = p["name"].as_str().unwrap_or("other").to_string();
            let s = p["seconds"].as_f64().unwrap_or(0.0);
            PhaseView {
                css: if known.contains(&name.as_str()) { name.clone() } else { "other".into() },
                seconds: seconds(s),
                pct: format!("{:.1}", if total > 0.0 { 100.0 * s / total } else { 0.0 }),
                name,
            }
        })
        .collect()
}

fn run_head(r: &RunRow) -> RunHead {
    let changed = if r.changed.is_empty() { String::new() } else { format!(": {}", r.changed.join("; ")) };
    RunHead {
        short: r.started.strftime("%m-%d %H:%M").to_string(),
        changed: !r.changed.is_empty(),
        title: format!("{} {}{changed}", r.id, r.started),
    }
}

/// A row per example and version: a dot per run, and a sparkline of its passing durations.
fn history_rows(runs: &[RunRow], healths: &[Health]) -> Vec<HistoryRow> {
    let mut history = Vec::new();
    for h in healths.iter().filter(|h| h.kubernetes.is_some()) {
        let version = h.kubernetes.clone().unwrap_or_default();
        let mut dots = Vec::new();
        let mut durations = Vec::new();
        let (mut cpu, mut memory) = (Vec::new(), Vec::new());
        for (i, run) in runs.iter().enumerate() {
            let case =
                run.cells.iter().filter(|c| c.kubernetes == version).flat_map(|c| &c.cases).find(|c| c.id == h.id);
            dots.push(match case {
                Some(c) => {
                    if matches!(c.outcome.as_str(), "passed" | "flaky") {
                        durations.push((i, c.seconds));
                    }
                    cpu.extend(c.cpu_seconds.map(|v| (i, v)));
                    memory.extend(c.peak_memory_bytes.map(|v| (i, v)));
                    Dot {
                        css: css(c),
                        title: format!("{}: {} {}", run.id, c.outcome, c.reason.clone().unwrap_or_default()),
                    }
                }
                None => Dot { css: "none".into(), title: format!("{}: not run", run.id) },
            });
        }
        history.push(HistoryRow {
            id: h.id.clone(),
            example: h.example.clone(),
            version,
            dots,
            svg: sparkline(&durations, runs.len()),
            cpu_svg: trend(&cpu, runs.len(), "core-seconds over runs", |v| format!("{v:.2} s")),
            memory_svg: trend(&memory, runs.len(), "peak memory over runs", crate::util::units::mib),
        });
    }
    history
}

/// Examples that fail every run on one version since a run, with what changed then.
fn regressions(healths: &[Health]) -> Vec<String> {
    healths
        .iter()
        .filter(|h| h.kubernetes.is_none())
        .filter_map(|h| {
            let r = h.regression.as_ref()?;
            Some(format!(
                "{} fails every run on {} since run {} ({}); what changed then: {}",
                h.example,
                r.kubernetes,
                r.first_failing_run,
                r.started,
                r.changed.join("; ")
            ))
        })
        .chain(healths.iter().filter(|h| !h.resource_regressions.is_empty()).map(|h| {
            format!(
                "{} on {}: {}",
                h.example,
                h.kubernetes.as_deref().unwrap_or("every version"),
                h.resource_regressions.join("; ")
            )
        }))
        .collect()
}

/// Everything the template shows.
#[derive(Serialize)]
struct Page<'a> {
    suite: &'a str,
    run_id: &'a str,
    started: String,
    ended: String,
    duration: String,
    generated: String,
    changed: &'a [String],
    regressions: Vec<String>,
    summary: Summary,
    /// Examples by requested and unused core-seconds and GiB-seconds, most first.
    unused: Vec<(String, usage::Unused)>,
    versions: Vec<String>,
    filters: [Filter; 5],
    matrix: Vec<MatrixRow>,
    cases: Vec<CaseView>,
    /// The latest run's metric assertions, with the example and version of their case.
    metrics: Vec<(String, String, MetricView)>,
    history_runs: Vec<RunHead>,
    history: Vec<HistoryRow>,
    health: Vec<HealthView>,
}

fn health_view(h: &Health) -> HealthView {
    let note = match &h.regression {
        Some(r) => {
            format!("regression on {} since run {}: {}", r.kubernetes, r.first_failing_run, r.changed.join("; "))
        }
        None => h.timeline.clone(),
    };
    let opt = |s: Option<f64>| s.map(seconds).unwrap_or_else(|| "-".into());
    HealthView {
        id: h.id.clone(),
        example: h.example.clone(),
        version: h.kubernetes.clone().unwrap_or_else(|| "all".into()),
        state: h.state.name(),
        score: h.score,
        pass_rate: h.pass_rate.map(|p| format!("{:.0}%", p * 100.0)).unwrap_or_else(|| "-".into()),
        flakiness: format!("{:.0}%", h.flakiness),
        judged: h.judged,
        median: match (h.median_seconds, h.previous_median_seconds) {
            (Some(now), Some(before)) => format!("{} (was {})", seconds(now), seconds(before)),
            (now, _) => opt(now),
        },
        p95: opt(h.p95_seconds),
        note,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_relative_to_the_report() {
        assert_eq!(relative(Path::new("/a/art"), Path::new("/a/art/case/result.json")), "case/result.json");
        assert_eq!(relative(Path::new("/a/out"), Path::new("/a/art/case")), "../art/case");
    }
}
