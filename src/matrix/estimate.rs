//! Predicted seconds from the history: a case's recent p50 on one Kubernetes version, and,
//! without one, the median of comparable cases — always saying which.

use std::collections::BTreeMap;

use crate::history::store::RunRow;

/// Recent runs of a case that count: the latest this many.
const SAMPLES: usize = 10;
/// What a case is given when the history knows nothing of it or its profile, on any version.
pub const NO_HISTORY_SECONDS: f64 = 60.0;
/// What a shard's setup is given when no cell of the history recorded one.
pub const NO_HISTORY_SETUP_SECONDS: f64 = 120.0;

/// Durations per (cell, case), oldest first, and setups per cell.
#[derive(Debug, Default)]
pub struct Durations {
    /// Key: the cell (its asked Kubernetes version; none for an existing cluster), the case.
    cases: BTreeMap<(Option<String>, String), Vec<f64>>,
    profiles: BTreeMap<String, String>,
    setups: BTreeMap<Option<String>, Vec<f64>>,
}

/// One prediction and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub seconds: f64,
    pub from: String,
}

impl Durations {
    /// From runs oldest first. Skipped and interrupted cases, and the cells' own rows (an
    /// operator install, a cluster or image error), say nothing of a case's duration.
    pub fn of(runs: &[RunRow]) -> Durations {
        let mut d = Durations::default();
        for run in runs {
            for cell in &run.cells {
                if let Some(setup) = cell.setup_seconds {
                    d.setups.entry(cell.asked.clone()).or_default().push(setup);
                }
                for case in &cell.cases {
                    let profile = case.profile.clone().unwrap_or_default();
                    let counts = !matches!(case.outcome.as_str(), "skipped" | "interrupted")
                        && !matches!(profile.as_str(), "operator" | "cluster" | "image");
                    if counts {
                        d.cases.entry((cell.asked.clone(), case.id.clone())).or_default().push(case.seconds);
                        d.profiles.insert(case.id.clone(), profile);
                    }
                }
            }
        }
        d
    }

    /// A case's predicted seconds on `cell`: its p50 there; else the median of its profile's
    /// cases there; else of every case there; else its p50 on other versions; else a constant.
    pub fn case(&self, cell: Option<&str>, id: &str, profile: &str) -> Estimate {
        let cell = cell.map(str::to_string);
        if let Some(samples) = self.cases.get(&(cell.clone(), id.to_string())) {
            let recent = &samples[samples.len().saturating_sub(SAMPLES)..];
            let from = match recent.len() {
                1 => "p50 of its last run".to_string(),
                n => format!("p50 of its last {n} runs"),
            };
            return Estimate { seconds: median(recent), from };
        }
        let on_cell = |same_profile: bool| -> Vec<f64> {
            self.cases
                .iter()
                .filter(|((c, case), _)| {
                    *c == cell && (!same_profile || self.profiles.get(case).map(String::as_str) == Some(profile))
                })
                .map(|(_, s)| median(&s[s.len().saturating_sub(SAMPLES)..]))
                .collect()
        };
        let here = cell.as_deref().unwrap_or("this cluster");
        let comparable = on_cell(true);
        if !comparable.is_empty() {
            let from = format!("no history on {here}: median of {} {profile} cases", comparable.len());
            return Estimate { seconds: median(&comparable), from };
        }
        let all = on_cell(false);
        if !all.is_empty() {
            let from = format!("no history on {here}, nor of a {profile} case: median of {} cases", all.len());
            return Estimate { seconds: median(&all), from };
        }
        let elsewhere: Vec<f64> =
            self.cases.iter().filter(|((_, case), _)| case == id).flat_map(|(_, s)| s.iter().copied()).collect();
        if !elsewhere.is_empty() {
            let from = format!("no history on {here}: p50 of {} runs on other versions", elsewhere.len());
            return Estimate { seconds: median(&elsewhere), from };
        }
        Estimate { seconds: NO_HISTORY_SECONDS, from: format!("no history: {NO_HISTORY_SECONDS} s assumed") }
    }

    /// A shard's fixed cost on `cell`: the median of the setups recorded there, else anywhere,
    /// else a constant.
    pub fn setup(&self, cell: Option<&str>) -> Estimate {
        let cell = cell.map(str::to_string);
        if let Some(s) = self.setups.get(&cell) {
            let recent = &s[s.len().saturating_sub(SAMPLES)..];
            let plural = if recent.len() == 1 { "" } else { "s" };
            return Estimate { seconds: median(recent), from: format!("p50 of {} setup{plural}", recent.len()) };
        }
        let all: Vec<f64> = self.setups.values().flatten().copied().collect();
        if !all.is_empty() {
            return Estimate { seconds: median(&all), from: format!("p50 of {} setups on other versions", all.len()) };
        }
        Estimate {
            seconds: NO_HISTORY_SETUP_SECONDS,
            from: format!("no setup recorded: {NO_HISTORY_SETUP_SECONDS} s assumed"),
        }
    }
}

/// The median (the mean of the middle two of an even count); 0 of nothing.
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::store::{CaseRow, CellRow};

    fn run(cell: Option<&str>, setup: Option<f64>, cases: &[(&str, &str, &str, f64)]) -> RunRow {
        RunRow {
            id: "r".into(),
            suite: "s".into(),
            started: jiff::Timestamp::UNIX_EPOCH,
            ended: jiff::Timestamp::UNIX_EPOCH,
            versions: serde_json::Value::Null,
            changed: Vec::new(),
            root: None,
            cells: vec![CellRow {
                kubernetes: cell.unwrap_or("v1.20.2").into(),
                server: None,
                image: None,
                asked: cell.map(str::to_string),
                setup_seconds: setup,
                cases: cases
                    .iter()
                    .map(|(id, profile, outcome, seconds)| CaseRow {
                        id: id.to_string(),
                        name: id.to_string(),
                        profile: Some(profile.to_string()),
                        tier: None,
                        outcome: outcome.to_string(),
                        class: None,
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
            }],
        }
    }

    #[test]
    fn a_case_gets_its_p50_on_its_version_then_its_profiles_then_everything_then_a_constant() {
        let runs = vec![
            run(Some("1.34"), Some(80.0), &[("a", "job", "passed", 10.0), ("b", "tfjob", "failed", 100.0)]),
            run(Some("1.34"), Some(90.0), &[("a", "job", "passed", 30.0), ("skip", "job", "skipped", 0.0)]),
            run(Some("1.34"), None, &[("a", "job", "passed", 20.0), ("operator.x", "operator", "passed", 99.0)]),
            run(Some("1.33"), Some(200.0), &[("c", "job", "passed", 7.0)]),
        ];
        let d = Durations::of(&runs);
        assert_eq!(d.case(Some("1.34"), "a", "job").seconds, 20.0);
        assert_eq!(
            d.case(Some("1.34"), "new", "job"),
            Estimate { seconds: 20.0, from: "no history on 1.34: median of 1 job cases".into() }
        );
        assert_eq!(d.case(Some("1.34"), "new", "mpijob").seconds, 60.0, "median of a (20) and b (100)");
        assert_eq!(d.case(Some("1.35"), "c", "job").seconds, 7.0);
        assert!(d.case(Some("1.35"), "d", "job").from.starts_with("no history"));
        assert_eq!(
            d.case(Some("1.34"), "skip", "job").from,
            "no history on 1.34: median of 1 job cases",
            "a skip is no duration"
        );
        assert_eq!(d.setup(Some("1.34")).seconds, 85.0);
        assert_eq!(d.setup(Some("1.35")).seconds, 90.0, "median of 80, 90, 200");
        assert_eq!(Durations::default().setup(None).seconds, NO_HISTORY_SETUP_SECONDS);
    }

    #[test]
    fn only_the_last_ten_runs_count() {
        let mut runs: Vec<RunRow> = (0..5).map(|_| run(None, None, &[("a", "job", "passed", 1000.0)])).collect();
        runs.extend((0..10).map(|_| run(None, None, &[("a", "job", "passed", 5.0)])));
        assert_eq!(
            Durations::of(&runs).case(None, "a", "job"),
            Estimate { seconds: 5.0, from: "p50 of its last 10 runs".into() }
        );
    }
}
