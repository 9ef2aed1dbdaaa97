//! The report's view of the latest run's metric assertions: each one's verdict and expression,
//! and every series it read with its value before the case, after it, and the change.

use std::collections::BTreeMap;

use serde::Serialize;

use super::store::CaseMetrics;
use crate::util::run_file::MetricFile;

#[derive(Debug, Serialize)]
pub struct SeriesRow {
    pub series: String,
    pub before: String,
    pub after: String,
    pub change: String,
}

#[derive(Debug, Serialize)]
pub struct MetricView {
    pub case_id: String,
    pub cell: i64,
    pub name: String,
    pub verdict: String,
    /// `passed`, `failed`, or `inconclusive` for the rest (not judged, error…).
    pub css: &'static str,
    pub expect: String,
    pub series: Vec<SeriesRow>,
    pub notes: String,
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{v:.0}") } else { format!("{v:.4}") }
}

/// Each series read after the case beside its value before (`—`: not there yet, a counter
/// that counts from zero), then those only there before (`gone`).
fn series_rows(check: &MetricFile) -> Vec<SeriesRow> {
    let before: BTreeMap<&str, f64> = check.before.iter().map(|(s, v)| (s.as_str(), *v)).collect();
    let mut rows: Vec<SeriesRow> = check
        .after
        .iter()
        .map(|(series, now)| {
            let was = before.get(series.as_str()).copied();
            SeriesRow {
                series: series.clone(),
                before: was.map_or_else(|| "—".into(), number),
                after: number(*now),
                change: format!("{:+}", now - was.unwrap_or(0.0)),
            }
        })
        .collect();
    rows.extend(check.before.iter().filter(|(s, _)| !check.after.iter().any(|(a, _)| a == s)).map(|(series, was)| {
        SeriesRow { series: series.clone(), before: number(*was), after: "gone".into(), change: String::new() }
    }));
    rows
}

pub fn views(cases: &[CaseMetrics]) -> Vec<MetricView> {
    cases
        .iter()
        .flat_map(|c| {
            c.checks.iter().map(|check| MetricView {
                case_id: c.case_id.clone(),
                cell: c.cell,
                name: check.name.clone(),
                verdict: check.verdict.clone(),
                css: match check.verdict.as_str() {
                    "passed" => "passed",
                    "failed" => "failed",
                    _ => "inconclusive",
                },
                expect: check.expect.clone(),
                series: series_rows(check),
                notes: check.notes.join("; "),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_series_shows_before_after_and_the_change() {
        let check = MetricFile {
            after: vec![("a{x=\"1\"}".into(), 5.0), ("b".into(), 0.5)],
            before: vec![("a{x=\"1\"}".into(), 3.0), ("c".into(), 1.0)],
            ..MetricFile::default()
        };
        let rows: Vec<(String, String, String, String)> =
            series_rows(&check).into_iter().map(|r| (r.series, r.before, r.after, r.change)).collect();
        assert_eq!(
            rows,
            vec![
                ("a{x=\"1\"}".into(), "3".into(), "5".into(), "+2".into()),
                ("b".into(), "—".into(), "0.5000".into(), "+0.5".into()),
                ("c".into(), "1".into(), "gone".into(), String::new()),
            ]
        );
    }
}
