//! Health per example, per Kubernetes version and overall, over a window of the history (by
//! default the last 20 runs within 14 days): pass rate, flakiness as TestGrid counts it, the
//! duration trend against the previous window, a state and a score. Matrix-aware: an example
//! that fails every run on one version and passes on the others is a regression on that
//! version (with the run it started in and what changed there), not a flake.

use std::collections::BTreeMap;

use serde::Serialize;

use super::store::RunRow;

/// Which runs health looks at.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub runs: usize,
    pub days: i64,
}

impl Default for Window {
    fn default() -> Self {
        Window { runs: 20, days: 14 }
    }
}

/// A result as health counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Pass,
    /// Failed, then passed on a retry in the same run: a pass, and a flip.
    Flaky,
    Fail,
    /// Not the example's doing (class infrastructure): not counted.
    Infra,
    /// Skipped or interrupted: not counted.
    None,
}

impl Seen {
    fn of(outcome: &str, class: Option<&str>) -> Seen {
        match (outcome, class) {
            ("passed", _) => Seen::Pass,
            ("flaky", _) => Seen::Flaky,
            (_, Some("infrastructure")) => Seen::Infra,
            ("failed" | "error", _) => Seen::Fail,
            _ => Seen::None,
        }
    }

    fn judged(self) -> bool {
        matches!(self, Seen::Pass | Seen::Flaky | Seen::Fail)
    }

    fn letter(self) -> char {
        match self {
            Seen::Pass => 'P',
            Seen::Flaky => 'F',
            Seen::Fail => 'X',
            Seen::Infra => 'I',
            Seen::None => '-',
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum State {
    /// Fewer than 3 judged runs.
    New,
    Passing,
    Flaky,
    /// The last 3 or more judged runs failed.
    Failing,
    /// Every judged run of the window failed (3 or more).
    Broken,
    /// Not run in the suite's last 3 runs.
    Stale,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::New => "NEW",
            State::Passing => "PASSING",
            State::Flaky => "FLAKY",
            State::Failing => "FAILING",
            State::Broken => "BROKEN",
            State::Stale => "STALE",
        }
    }
}

/// One run's result, in a timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub run: String,
    pub outcome: String,
    pub seconds: f64,
}

/// Where an example started to fail on one Kubernetes version only.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Regression {
    pub kubernetes: String,
    pub first_failing_run: String,
    pub started: String,
    /// What differed from the run before it on that version: operator versions, the server's
    /// version, the node image.
    pub changed: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    pub example: String,
    pub id: String,
    /// None: over every version.
    pub kubernetes: Option<String>,
    pub state: State,
    /// 0–100: see [`score`].
    pub score: u8,
    /// Passed ÷ judged (infrastructure errors and skips excluded); none without a judged run.
    pub pass_rate: Option<f64>,
    /// 100 × flips ÷ runs, TestGrid's way.
    pub flakiness: f64,
    pub judged: usize,
    /// Oldest first: P pass, F flaky, X fail, I infrastructure, - not run.
    pub timeline: String,
    pub median_seconds: Option<f64>,
    pub p95_seconds: Option<f64>,
    pub previous_median_seconds: Option<f64>,
    pub previous_p95_seconds: Option<f64>,
    pub regression: Option<Regression>,
    /// The latest green run used more CPU or memory than its earlier green runs ever did, by
    /// more than their spread (see [`resource_regressions`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resource_regressions: Vec<String>,
    pub points: Vec<Point>,
}

/// The score: `100 × pass rate × (1 − flakiness/100)`, rounded; at most 25 while FAILING; 0
/// when BROKEN.
pub fn score(state: State, pass_rate: Option<f64>, flakiness: f64) -> u8 {
    let base = (100.0 * pass_rate.unwrap_or(0.0) * (1.0 - flakiness / 100.0)).round().clamp(0.0, 100.0) as u8;
    match state {
        State::Broken => 0,
        State::Failing => base.min(25),
        _ => base,
    }
}

/// A cell of a run where nearly every case failed (at least 5 cases, 90 % of them): a broken
/// run, left out of flakiness as TestGrid leaves out runs where everything failed.
fn nearly_all_failed(results: &[Seen]) -> bool {
    let judged: Vec<&Seen> = results.iter().filter(|r| r.judged()).collect();
    judged.len() >= 5 && judged.iter().filter(|r| ***r == Seen::Fail).count() * 10 >= judged.len() * 9
}

/// 100 × flips ÷ runs over the judged results, without those of broken runs and without
/// streaks of 3 or more failures (a breakage, not a flake). A flaky result is a flip itself.
fn flakiness(results: &[(Seen, bool)]) -> f64 {
    let kept: Vec<Seen> = results.iter().filter(|(r, broken)| r.judged() && !broken).map(|(r, _)| *r).collect();
    let mut without_streaks = Vec::new();
    let mut i = 0;
    while i < kept.len() {
        let streak = kept[i..].iter().take_while(|r| **r == Seen::Fail).count();
        if streak >= 3 {
            i += streak;
            continue;
        }
        without_streaks.push(kept[i]);
        i += 1;
    }
    if without_streaks.is_empty() {
        return 0.0;
    }
    let pass = |r: &Seen| matches!(r, Seen::Pass | Seen::Flaky);
    let flips = without_streaks.windows(2).filter(|w| pass(&w[0]) != pass(&w[1])).count()
        + without_streaks.iter().filter(|r| **r == Seen::Flaky).count();
    100.0 * flips as f64 / without_streaks.len() as f64
}

fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted.get(rank).copied()
}

/// Every case's results, by (case id, Kubernetes version), in run order, each with whether
/// its cell was a broken run.
type Series = BTreeMap<(String, String), Vec<(usize, Seen, f64, bool)>>;

/// Green runs with the least coverage this good count for resource regressions.
const USAGE_COVERAGE: f64 = 0.8;
/// How many earlier green runs a resource figure is compared with, and how few are too few.
const USAGE_WINDOW: usize = 10;
const USAGE_MIN_RUNS: usize = 3;
/// The least spread allowed for: 5 % of the earlier runs' highest value, so that a flat series
/// is not flagged for noise.
const USAGE_MIN_SPREAD: f64 = 0.05;

/// One green run's CPU seconds and peak memory.
pub type Used = (Option<f64>, Option<f64>);

/// A figure of [`Used`]: its name, how it is picked, how it is shown.
type Figure = (&'static str, fn(&Used) -> Option<f64>, fn(f64) -> String);

/// Each example's green runs per version (oldest first), with their CPU seconds and peak
/// memory, where the usage samples covered them well enough.
fn usage_series(runs: &[RunRow]) -> BTreeMap<(String, String), Vec<Used>> {
    let mut out: BTreeMap<(String, String), Vec<Used>> = BTreeMap::new();
    for cell in runs.iter().flat_map(|r| &r.cells) {
        for case in &cell.cases {
            let green = matches!(Seen::of(&case.outcome, case.class.as_deref()), Seen::Pass | Seen::Flaky);
            if green && case.usage_coverage.is_some_and(|c| c >= USAGE_COVERAGE) {
                let key = (case.id.clone(), cell.kubernetes.clone());
                out.entry(key).or_default().push((case.cpu_seconds, case.peak_memory_bytes));
            }
        }
    }
    out
}

/// The rule: the latest green, well-covered run's CPU seconds (or peak memory) is above the
/// highest of the up to 10 green, well-covered runs before it on the same version, by more than
/// their spread (highest − lowest, at least 5 % of the highest); at least 3 such runs before it.
pub fn resource_regressions(green: &[Used]) -> Vec<String> {
    let Some((latest, before)) = green.split_last() else { return Vec::new() };
    let before = &before[before.len().saturating_sub(USAGE_WINDOW)..];
    let mut found = Vec::new();
    let figures: [Figure; 2] =
        [("CPU seconds", |p| p.0, |v| format!("{v:.2}")), ("peak memory", |p| p.1, |v| crate::util::units::mib(v))];
    for (what, pick, show) in figures {
        let Some(now) = pick(latest) else { continue };
        let earlier: Vec<f64> = before.iter().filter_map(pick).collect();
        if earlier.len() < USAGE_MIN_RUNS {
            continue;
        }
        let high = earlier.iter().copied().fold(f64::MIN, f64::max);
        let low = earlier.iter().copied().fold(f64::MAX, f64::min);
        let spread = (high - low).max(high * USAGE_MIN_SPREAD);
        if now > high + spread {
            found.push(format!(
                "{what} {} above the last {} green runs' {}–{} (spread {})",
                show(now),
                earlier.len(),
                show(low),
                show(high),
                show(spread)
            ));
        }
    }
    found
}

fn series(runs: &[RunRow]) -> (Series, BTreeMap<String, String>) {
    let mut series: Series = BTreeMap::new();
    let mut names = BTreeMap::new();
    for (index, run) in runs.iter().enumerate() {
        for cell in &run.cells {
            let results: Vec<Seen> = cell.cases.iter().map(|c| Seen::of(&c.outcome, c.class.as_deref())).collect();
            let broken = nearly_all_failed(&results);
            for (case, result) in cell.cases.iter().zip(results) {
                names.insert(case.id.clone(), case.name.clone());
                series.entry((case.id.clone(), cell.kubernetes.clone())).or_default().push((
                    index,
                    result,
                    case.seconds,
                    broken,
                ));
            }
        }
    }
    (series, names)
}

fn state_of(results: &[Seen], ran_lately: bool, flaky: f64) -> State {
    let judged: Vec<Seen> = results.iter().copied().filter(|r| r.judged()).collect();
    let trailing = judged.iter().rev().take_while(|r| **r == Seen::Fail).count();
    if !ran_lately && !judged.is_empty() {
        State::Stale
    } else if judged.len() < 3 {
        State::New
    } else if trailing == judged.len() {
        State::Broken
    } else if trailing >= 3 {
        State::Failing
    } else if flaky > 0.0 || judged.contains(&Seen::Flaky) {
        State::Flaky
    } else {
        State::Passing
    }
}

/// Health of every example of `runs` (oldest first), per version and overall; `earlier`: the
/// runs of the previous window, for the duration trend; `all`: as much history as there is,
/// for where a regression started.
pub fn health(runs: &[RunRow], earlier: &[RunRow], all: &[RunRow]) -> Vec<Health> {
    let (previous, _) = series(earlier);
    let (series, names) = series(runs);
    let usage = usage_series(all);
    let latest = runs.len().saturating_sub(3);
    let mut out = Vec::new();
    let mut by_example: BTreeMap<String, Vec<Health>> = BTreeMap::new();
    for ((id, kubernetes), points) in &series {
        let results: Vec<Seen> = points.iter().map(|p| p.1).collect();
        let flaky = flakiness(&points.iter().map(|p| (p.1, p.3)).collect::<Vec<_>>());
        let ran_lately = points.iter().any(|p| p.0 >= latest && p.1 != Seen::None);
        let state = state_of(&results, ran_lately, flaky);
        let judged = results.iter().filter(|r| r.judged()).count();
        let passed = results.iter().filter(|r| matches!(r, Seen::Pass | Seen::Flaky)).count();
        let pass_rate = (judged > 0).then(|| passed as f64 / judged as f64);
        let durations: Vec<f64> =
            points.iter().filter(|p| matches!(p.1, Seen::Pass | Seen::Flaky)).map(|p| p.2).collect();
        let before: Vec<f64> = previous
            .get(&(id.clone(), kubernetes.clone()))
            .into_iter()
            .flatten()
            .filter(|p| matches!(p.1, Seen::Pass | Seen::Flaky))
            .map(|p| p.2)
            .collect();
        let health = Health {
            example: names.get(id).cloned().unwrap_or_else(|| id.clone()),
            id: id.clone(),
            kubernetes: Some(kubernetes.clone()),
            state,
            score: score(state, pass_rate, flaky),
            pass_rate,
            flakiness: flaky,
            judged,
            timeline: results.iter().map(|r| r.letter()).collect(),
            median_seconds: percentile(&durations, 50.0),
            p95_seconds: percentile(&durations, 95.0),
            previous_median_seconds: percentile(&before, 50.0),
            previous_p95_seconds: percentile(&before, 95.0),
            regression: None,
            resource_regressions: usage
                .get(&(id.clone(), kubernetes.clone()))
                .map_or_else(Vec::new, |g| resource_regressions(g)),
            points: points
                .iter()
                .map(|p| Point { run: runs[p.0].id.clone(), outcome: p.1.letter().to_string(), seconds: p.2 })
                .collect(),
        };
        by_example.entry(id.clone()).or_default().push(health);
    }
    for (id, mut versions) in by_example {
        let regressions = regressions(&versions, all, &id);
        for v in &mut versions {
            v.regression = regressions.iter().find(|r| Some(&r.kubernetes) == v.kubernetes.as_ref()).cloned();
        }
        out.push(overall(&versions, regressions.first().cloned()));
        out.extend(versions);
    }
    out
}

/// Over every version: the worst state, the mean flakiness of the versions (a result on one
/// version and another on the next is no flip), all judged results for the pass rate.
fn overall(versions: &[Health], regression: Option<Regression>) -> Health {
    let rank = |s: State| match s {
        State::Broken => 0,
        State::Failing => 1,
        State::Flaky => 2,
        State::Stale => 3,
        State::New => 4,
        State::Passing => 5,
    };
    let state = versions.iter().map(|v| v.state).min_by_key(|s| rank(*s)).unwrap_or(State::New);
    let judged: usize = versions.iter().map(|v| v.judged).sum();
    let passed: f64 = versions.iter().map(|v| v.pass_rate.unwrap_or(0.0) * v.judged as f64).sum();
    let pass_rate = (judged > 0).then(|| passed / judged as f64);
    let flakiness = versions.iter().map(|v| v.flakiness).sum::<f64>() / versions.len().max(1) as f64;
    let first = &versions[0];
    // Durations over every version: each version's passing (and flaky) runs.
    let durations: Vec<f64> = versions
        .iter()
        .flat_map(|v| &v.points)
        .filter(|p| matches!(p.outcome.as_str(), "P" | "F"))
        .map(|p| p.seconds)
        .collect();
    Health {
        example: first.example.clone(),
        id: first.id.clone(),
        kubernetes: None,
        state,
        score: versions.iter().map(|v| v.score).min().unwrap_or(0),
        pass_rate,
        flakiness,
        judged,
        timeline: String::new(),
        median_seconds: percentile(&durations, 50.0),
        p95_seconds: percentile(&durations, 95.0),
        previous_median_seconds: None,
        previous_p95_seconds: None,
        regression,
        resource_regressions: Vec::new(),
        points: Vec::new(),
    }
}

/// Versions on which the example's latest judged runs (2 or more) all failed while, in those
/// same runs, it passed on another version: where on that version it started failing (the
/// whole history is walked back), and what changed in that run.
fn regressions(versions: &[Health], all: &[RunRow], id: &str) -> Vec<Regression> {
    let result_on = |run: &RunRow, kubernetes: &str| {
        let cell = run.cells.iter().find(|c| c.kubernetes == kubernetes)?;
        let case = cell.cases.iter().find(|c| c.id == id)?;
        Some(Seen::of(&case.outcome, case.class.as_deref()))
    };
    versions
        .iter()
        .filter_map(|v| {
            let kubernetes = v.kubernetes.clone()?;
            let on_version: Vec<(usize, Seen)> = all
                .iter()
                .enumerate()
                .filter_map(|(i, run)| result_on(run, &kubernetes).map(|r| (i, r)))
                .filter(|(_, r)| r.judged())
                .collect();
            let streak = on_version.iter().rev().take_while(|(_, r)| *r == Seen::Fail).count();
            let start = on_version.len().checked_sub(streak)?;
            if streak < 2 {
                return None;
            }
            // In the runs of the streak, the example passed elsewhere: the version is the cause.
            let failing_runs: Vec<usize> = on_version[start..].iter().map(|(i, _)| *i).collect();
            let elsewhere =
                versions.iter().filter_map(|o| o.kubernetes.as_deref()).filter(|o| *o != kubernetes).any(|other| {
                    let judged: Vec<Seen> =
                        failing_runs.iter().filter_map(|i| result_on(&all[*i], other)).filter(|r| r.judged()).collect();
                    !judged.is_empty()
                        && judged.iter().filter(|r| matches!(r, Seen::Pass | Seen::Flaky)).count() * 5
                            >= judged.len() * 4
                });
            if !elsewhere {
                return None;
            }
            let first = &all[failing_runs[0]];
            let cell_of = |run: &RunRow| run.cells.iter().find(|c| c.kubernetes == kubernetes).cloned();
            let changed = match start.checked_sub(1).map(|i| &all[on_version[i].0]) {
                None => vec!["nothing to compare with: the first run on record on this version".to_string()],
                Some(before) => match (cell_of(before), cell_of(first)) {
                    (Some(b), Some(a)) => what_changed(before, &b, first, &a),
                    _ => Vec::new(),
                },
            };
            Some(Regression {
                kubernetes,
                first_failing_run: first.id.clone(),
                started: first.started.to_string(),
                changed,
            })
        })
        .collect()
}

fn what_changed(
    before: &RunRow,
    before_cell: &super::store::CellRow,
    after: &RunRow,
    after_cell: &super::store::CellRow,
) -> Vec<String> {
    let mut changed = Vec::new();
    let versions = |run: &RunRow| -> BTreeMap<String, String> {
        run.versions
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect()
    };
    let (old, new) = (versions(before), versions(after));
    for (name, version) in &new {
        match old.get(name) {
            Some(was) if was != version => changed.push(format!("{name} {was} → {version}")),
            None => changed.push(format!("{name} {version} (new)")),
            _ => {}
        }
    }
    if before_cell.server != after_cell.server {
        changed.push(format!(
            "Kubernetes {} → {}",
            before_cell.server.as_deref().unwrap_or("?"),
            after_cell.server.as_deref().unwrap_or("?")
        ));
    }
    if before_cell.image != after_cell.image {
        changed.push(format!(
            "node image {} → {}",
            before_cell.image.as_deref().unwrap_or("?"),
            after_cell.image.as_deref().unwrap_or("?")
        ));
    }
    if changed.is_empty() {
        changed.push("no version or node image changed: look at the example's own change".into());
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resource_regression_is_a_rise_beyond_the_spread_of_earlier_green_runs() {
        let mib = 1_048_576.0;
        let runs = |cpu: &[f64], last: f64| -> Vec<Used> {
            cpu.iter().chain([last].iter()).map(|c| (Some(*c), Some(100.0 * mib))).collect()
        };
        // 4.0–4.4 before (spread 0.4): 4.8 is within it, 4.9 is beyond.
        assert!(resource_regressions(&runs(&[4.0, 4.4, 4.2], 4.8)).is_empty());
        let found = resource_regressions(&runs(&[4.0, 4.4, 4.2], 4.9));
        assert_eq!(found, vec!["CPU seconds 4.90 above the last 3 green runs' 4.00–4.40 (spread 0.40)".to_string()]);
        // Too few earlier runs: nothing said.
        assert!(resource_regressions(&runs(&[4.0, 4.0], 9.0)).is_empty());
        // A flat series allows 5 % of its highest value.
        assert!(resource_regressions(&runs(&[4.0, 4.0, 4.0], 4.19)).is_empty());
        assert_eq!(resource_regressions(&runs(&[4.0, 4.0, 4.0], 4.21)).len(), 1);
        // Only the last 10 count: an old high run no longer hides a rise.
        let mut old = vec![9.0];
        old.extend([4.0; 10]);
        assert_eq!(resource_regressions(&runs(&old, 4.5)).len(), 1);
        // Memory too, and a figure not measured is skipped, never zero.
        let memory: Vec<Used> =
            vec![(None, Some(100.0 * mib)); 3].into_iter().chain([(None, Some(200.0 * mib))]).collect();
        assert_eq!(
            resource_regressions(&memory),
            vec!["peak memory 200.0 MiB above the last 3 green runs' 100.0 MiB–100.0 MiB (spread 5.0 MiB)".to_string()]
        );
    }
    use Seen::{Fail as X, Flaky as F, Infra as I, Pass as P};

    #[test]
    fn flakiness_counts_flips_but_not_breakages_nor_infrastructure() {
        let plain = |rs: &[Seen]| flakiness(&rs.iter().map(|r| (*r, false)).collect::<Vec<_>>());
        assert_eq!(plain(&[P, P, P, P]), 0.0);
        assert_eq!(plain(&[P, X, P, X]), 75.0);
        assert_eq!(plain(&[P, X, X, X, P]), 0.0, "a streak of 3 failures is a breakage");
        assert_eq!(plain(&[P, I, P, I]), 0.0, "infrastructure failures are not counted");
        assert_eq!(plain(&[P, F, P, P]), 25.0, "a pass after a retry is a flip");
        let broken_run = flakiness(&[(P, false), (X, true), (P, false)]);
        assert_eq!(broken_run, 0.0, "a run where nearly everything failed is left out");
    }

    use crate::history::store::{CaseRow, CellRow, RunRow};

    /// A case's (id, outcome, class, seconds).
    type Case<'a> = (&'a str, &'a str, Option<&'a str>, f64);

    /// A run with one cell per (version, cases).
    fn run(id: &str, operator: &str, cells: &[(&str, &[Case])]) -> RunRow {
        RunRow {
            id: id.into(),
            suite: "s".into(),
            started: jiff::Timestamp::UNIX_EPOCH,
            ended: jiff::Timestamp::UNIX_EPOCH,
            versions: serde_json::json!({"op": operator}),
            changed: Vec::new(),
            root: None,
            cells: cells
                .iter()
                .map(|(version, cases)| CellRow {
                    kubernetes: version.to_string(),
                    server: Some(format!("v{version}.0")),
                    image: None,
                    asked: Some(version.to_string()),
                    setup_seconds: None,
                    cases: cases
                        .iter()
                        .map(|(case, outcome, class, seconds)| CaseRow {
                            id: case.to_string(),
                            name: format!("{case}.yaml"),
                            profile: Some("job".into()),
                            tier: None,
                            outcome: outcome.to_string(),
                            class: class.map(str::to_string),
                            reason: None,
                            seconds: *seconds,
                            phases: serde_json::Value::Null,
                            attempts: 1,
                            artifacts: None,
                            cpu_seconds: None,
                            peak_memory_bytes: None,
                            usage_coverage: None,
                            log_tail: None,
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    fn of<'a>(all: &'a [Health], id: &str, kubernetes: Option<&str>) -> &'a Health {
        all.iter()
            .find(|h| h.id == id && h.kubernetes.as_deref() == kubernetes)
            .unwrap_or_else(|| panic!("no health of {id} on {kubernetes:?}"))
    }

    #[test]
    fn each_outcome_counts_as_it_should_in_the_timeline_and_the_pass_rate() {
        let outcomes = [
            ("passed", None),
            ("flaky", None),
            ("failed", Some("infrastructure")),
            ("error", Some("test")),
            ("failed", Some("test")),
            ("skipped", None),
        ];
        let runs: Vec<RunRow> = outcomes
            .iter()
            .enumerate()
            .map(|(i, (o, c))| run(&format!("r{i}"), "v1", &[("1.34", &[("a", o, *c, 10.0 + i as f64)])]))
            .collect();
        let all = health(&runs, &[], &runs);
        let a = of(&all, "a", Some("1.34"));
        assert_eq!(a.timeline, "PFIXX-");
        assert_eq!((a.judged, a.pass_rate), (4, Some(0.5)), "infrastructure and skips are not judged");
        // Durations of passing runs only: 10 and 11.
        assert_eq!((a.median_seconds, a.p95_seconds), (Some(11.0), Some(11.0)));
        assert_eq!(a.points.iter().map(|p| p.outcome.as_str()).collect::<String>(), "PFIXX-");
        assert_eq!(State::Failing.name(), "FAILING");
        assert_eq!(State::Broken.name(), "BROKEN");
    }

    #[test]
    fn a_cell_where_nearly_everything_failed_is_a_broken_run() {
        assert!(!nearly_all_failed(&[X, X, X, X]), "fewer than 5 judged cases");
        assert!(nearly_all_failed(&[X, X, X, X, X]));
        assert!(!nearly_all_failed(&[X, X, X, X, P]), "80 % is not nearly all");
        assert!(nearly_all_failed(&[X, X, X, X, X, X, X, X, X, P]), "90 % is");
        assert!(!nearly_all_failed(&[X, X, X, X, I, I, I, I, I]), "infrastructure is not judged");
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let values: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), Some(6.0), "rank round(0.5 × 9) = 5");
        assert_eq!(percentile(&values, 95.0), Some(10.0));
        assert_eq!(percentile(&values, 0.0), Some(1.0));
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 50.0), Some(2.0), "sorted first");
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn a_failure_on_one_version_only_is_a_regression_there_with_what_changed() {
        let ok = |i: usize| (format!("r{i}"), "v1");
        let mut runs: Vec<RunRow> = (0..3)
            .map(|i| {
                let (id, op) = ok(i);
                run(&id, op, &[("1.33", &[("a", "passed", None, 5.0)]), ("1.34", &[("a", "passed", None, 7.0)])])
            })
            .collect();
        for i in 3..6 {
            runs.push(run(
                &format!("r{i}"),
                "v2",
                &[("1.33", &[("a", "passed", None, 5.0)]), ("1.34", &[("a", "failed", Some("test"), 9.0)])],
            ));
        }
        let all = health(&runs, &runs[..2], &runs);
        assert_eq!(all[0].kubernetes, None, "the overall row comes first");
        let overall = of(&all, "a", None);
        let (on_33, on_34) = (of(&all, "a", Some("1.33")), of(&all, "a", Some("1.34")));
        assert_eq!((on_33.state, on_34.state, overall.state), (State::Passing, State::Failing, State::Failing));
        assert_eq!(overall.judged, 12);
        assert_eq!(overall.pass_rate, Some(0.75), "9 of 12 judged results passed");
        assert_eq!(overall.score, on_34.score.min(on_33.score));
        assert_eq!(on_34.score, 25, "at most 25 while failing");
        assert_eq!(overall.flakiness, (on_33.flakiness + on_34.flakiness) / 2.0);
        let regression = on_34.regression.as_ref().expect("a regression on 1.34");
        assert_eq!(
            (regression.first_failing_run.as_str(), regression.changed.clone()),
            ("r3", vec!["op v1 → v2".to_string()])
        );
        assert!(on_33.regression.is_none());
        assert_eq!(overall.regression.as_ref().map(|r| r.kubernetes.as_str()), Some("1.34"));
        assert_eq!(on_34.previous_median_seconds, Some(7.0), "the earlier window's passing runs");
        assert_eq!(on_34.median_seconds, Some(7.0), "failures have no duration that counts");
    }

    #[test]
    fn no_regression_when_the_other_version_fails_too_or_the_streak_is_one_run() {
        let both_fail: Vec<RunRow> = (0..4)
            .map(|i| {
                let outcome = if i < 2 { "passed" } else { "failed" };
                run(
                    &format!("r{i}"),
                    "v1",
                    &[("1.33", &[("a", outcome, None, 1.0)]), ("1.34", &[("a", outcome, None, 1.0)])],
                )
            })
            .collect();
        let all = health(&both_fail, &[], &both_fail);
        assert!(all.iter().all(|h| h.regression.is_none()), "failing everywhere is the example's");
        let once: Vec<RunRow> = (0..4)
            .map(|i| {
                let outcome = if i < 3 { "passed" } else { "failed" };
                run(
                    &format!("r{i}"),
                    "v1",
                    &[("1.33", &[("a", "passed", None, 1.0)]), ("1.34", &[("a", outcome, None, 1.0)])],
                )
            })
            .collect();
        let all = health(&once, &[], &once);
        assert!(all.iter().all(|h| h.regression.is_none()), "one failed run is no regression yet");
    }

    #[test]
    fn states_and_scores() {
        assert_eq!(state_of(&[P, P], true, 0.0), State::New);
        assert_eq!(state_of(&[P, P, P], true, 0.0), State::Passing);
        assert_eq!(state_of(&[X, X, X], true, 0.0), State::Broken);
        assert_eq!(state_of(&[P, X, X, X], true, 0.0), State::Failing);
        assert_eq!(state_of(&[P, X, P, P], true, 50.0), State::Flaky);
        assert_eq!(state_of(&[P, P, P], false, 0.0), State::Stale);
        assert_eq!(score(State::Passing, Some(1.0), 0.0), 100);
        assert_eq!(score(State::Flaky, Some(0.75), 50.0), 38);
        assert_eq!(score(State::Failing, Some(0.4), 0.0), 25);
        assert_eq!(score(State::Broken, Some(0.0), 0.0), 0);
    }
}
