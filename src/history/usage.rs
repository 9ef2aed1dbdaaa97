//! What the HTML report shows of the latest run's resource use: a bar per container (its
//! request as an outline, its limit as a tick, its peak or average filled), badges, and the
//! examples ranked by what they requested and did not use.

use std::collections::BTreeMap;

use serde::Serialize;

use super::store::ContainerRow;
use crate::util::run_file::UsageFile;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
const BAR_WIDTH: f64 = 160.0;

/// One container's bars and badges.
#[derive(Debug, Serialize)]
pub struct UsageBar {
    pub who: String,
    pub svg: String,
    pub badges: Vec<&'static str>,
    pub title: String,
}

/// An example's unused requests in the latest run.
#[derive(Debug, Serialize)]
pub struct Unused {
    pub case_id: String,
    pub core_seconds: String,
    pub gib_seconds: String,
    core_seconds_value: f64,
    gib_seconds_value: f64,
}

/// The bars of each case of the latest run, by `(cell, case id)`.
pub fn bars(rows: &[ContainerRow]) -> BTreeMap<(i64, String), Vec<UsageBar>> {
    let mut out: BTreeMap<(i64, String), Vec<UsageBar>> = BTreeMap::new();
    for row in rows {
        out.entry((row.cell, row.case_id.clone())).or_default().push(bar(&row.usage));
    }
    out
}

fn bar(row: &UsageFile) -> UsageBar {
    let mut badges = Vec::new();
    if row.oom_killed {
        badges.push("OOMKilled");
    }
    if row.cpu_request_cores.is_none() && row.memory_request_bytes.is_none() {
        badges.push("BestEffort");
    }
    if row.low_confidence {
        badges.push("low coverage");
    }
    if !row.accelerators.is_empty() {
        badges.push("GPU requested");
    }
    let cpu = line(0.0, row.average_cores, row.cpu_request_cores, row.cpu_limit_cores, "#64b5f6");
    let memory = line(12.0, row.peak_memory_bytes, row.memory_request_bytes, row.memory_limit_bytes, "#ffb74d");
    let fmt = |v: Option<f64>, unit: &dyn Fn(f64) -> String| v.map_or_else(|| "none".to_string(), unit);
    let cores = |c: f64| format!("{c:.2} cores");
    let mib = |b: f64| crate::util::units::mib(b);
    let title = format!(
        "cpu: average {} of request {}, limit {}; memory: peak {} of request {}, limit {}",
        fmt(row.average_cores, &cores),
        fmt(row.cpu_request_cores, &cores),
        fmt(row.cpu_limit_cores, &cores),
        fmt(row.peak_memory_bytes, &mib),
        fmt(row.memory_request_bytes, &mib),
        fmt(row.memory_limit_bytes, &mib),
    );
    UsageBar {
        who: format!("{}/{}", row.pod, row.container),
        svg: format!(
            r#"<svg class="usage-bars" width="{BAR_WIDTH}" height="22" data-container="{}">{cpu}{memory}</svg>"#,
            row.container
        ),
        badges,
        title,
    }
}

/// One row at `y`: the used share filled, the request outlined, the limit a tick, all scaled to
/// the largest of the three.
fn line(y: f64, used: Option<f64>, request: Option<f64>, limit: Option<f64>, colour: &str) -> String {
    let top = [used, request, limit].into_iter().flatten().fold(0.0_f64, f64::max);
    if top <= 0.0 {
        return String::new();
    }
    let x = |v: f64| (v / top * (BAR_WIDTH - 2.0)).max(1.0);
    let mut out = format!(r##"<rect x="0" y="{y}" width="{BAR_WIDTH}" height="9" fill="#f1f1f1"/>"##);
    if let Some(used) = used {
        out.push_str(&format!(
            r##"<rect class="used" x="0" y="{y}" width="{:.1}" height="9" fill="{colour}"/>"##,
            x(used)
        ));
    }
    if let Some(request) = request {
        out.push_str(&format!(
            r##"<rect class="request" x="0" y="{y}" width="{:.1}" height="9" fill="none" stroke="#37474f"/>"##,
            x(request)
        ));
    }
    if let Some(limit) = limit {
        let at = x(limit);
        out.push_str(&format!(
            r##"<line class="limit" x1="{at:.1}" x2="{at:.1}" y1="{y}" y2="{}" stroke="#c62828" stroke-width="2"/>"##,
            y + 9.0
        ));
    }
    out
}

/// Examples by what they requested and did not use: core-seconds `(request − average) × life`
/// and GiB-seconds `(request − peak) × life`, most first; containers without a request or a
/// figure add nothing.
pub fn unused(rows: &[ContainerRow]) -> Vec<Unused> {
    let mut by_case: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for ContainerRow { case_id, usage: row, .. } in rows {
        let life = row.runtime_seconds.unwrap_or(0.0);
        let idle = |asked: Option<f64>, used: Option<f64>| match (asked, used) {
            (Some(asked), Some(used)) => (asked - used).max(0.0) * life,
            _ => 0.0,
        };
        let entry = by_case.entry(case_id.clone()).or_default();
        entry.0 += idle(row.cpu_request_cores, row.average_cores);
        entry.1 += idle(row.memory_request_bytes, row.peak_memory_bytes) / GIB;
    }
    let mut out: Vec<Unused> = by_case
        .into_iter()
        .filter(|(_, (cores, gib))| *cores > 0.0 || *gib > 0.0)
        .map(|(case_id, (cores, gib))| Unused {
            case_id,
            core_seconds: format!("{cores:.1}"),
            gib_seconds: format!("{gib:.2}"),
            core_seconds_value: cores,
            gib_seconds_value: gib,
        })
        .collect();
    out.sort_by(|a, b| {
        b.core_seconds_value.total_cmp(&a.core_seconds_value).then(b.gib_seconds_value.total_cmp(&a.gib_seconds_value))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unused_requests_rank_the_examples_and_a_best_effort_container_adds_nothing() {
        let row = |case: &str, request: Option<f64>, average: f64, memory: Option<f64>, peak: f64| ContainerRow {
            case_id: case.into(),
            usage: UsageFile {
                runtime_seconds: Some(10.0),
                cpu_request_cores: request,
                average_cores: Some(average),
                memory_request_bytes: memory,
                peak_memory_bytes: Some(peak),
                ..UsageFile::default()
            },
            ..ContainerRow::default()
        };
        let rows = [
            row("a", Some(1.0), 0.25, Some(GIB), GIB / 2.0),
            row("b", Some(2.0), 0.5, None, 1.0),
            row("c", None, 0.5, None, 1.0),
        ];
        let ranked = unused(&rows);
        let names: Vec<(&str, &str, &str)> =
            ranked.iter().map(|u| (u.case_id.as_str(), u.core_seconds.as_str(), u.gib_seconds.as_str())).collect();
        assert_eq!(names, vec![("b", "15.0", "0.00"), ("a", "7.5", "5.00")]);
        let best_effort = bar(&rows[2].usage);
        assert_eq!(best_effort.badges, vec!["BestEffort"]);
        assert!(!best_effort.svg.contains("class=\"request\""), "no request, no outline: {}", best_effort.svg);
        assert!(bar(&rows[0].usage).svg.contains("class=\"request\""));
    }
}
