//! CTRF, the Common Test Report Format (JSON): one test per case and cell, for the tools that
//! read it. Written to the schema of the `ctrf` package (`ctrf-schema-0.0.json`): no field
//! of kubevet's own outside `extra`.

use serde_json::{Value, json};

use super::RunFacts;
use crate::outcome::{CellReport, Outcome};

fn millis(t: jiff::Timestamp) -> i64 {
    t.as_millisecond()
}

pub fn ctrf(facts: &RunFacts<'_>, reports: &[CellReport]) -> Value {
    let mut tests = Vec::new();
    for cell in reports {
        let kubernetes = cell.cell.version.clone().unwrap_or_else(|| cell.server_version.clone());
        for r in &cell.report.results {
            let status = match r.outcome {
                Outcome::Passed | Outcome::Flaky => "passed",
                Outcome::Failed | Outcome::Error => "failed",
                Outcome::Skipped => "skipped",
                Outcome::Interrupted => "other",
            };
            let mut test = json!({
                "name": r.name,
                "status": status,
                "rawStatus": format!("{:?}", r.outcome).to_lowercase(),
                "duration": (r.seconds * 1000.0).round() as i64,
                "suite": [facts.suite, kubernetes.as_str()],
                "type": "e2e",
                "retries": r.attempts.len(),
                "flaky": r.outcome == Outcome::Flaky,
                "extra": {
                    "kubernetes": kubernetes,
                    "profile": r.profile,
                    "tier": r.tier,
                    "class": r.class.map(|c| c.name()),
                    "namespace": r.namespace,
                    "artifacts": r.artifacts,
                },
            });
            if !r.usage.is_empty() {
                test["extra"]["usage"] = json!(r.usage);
            }
            if let Some((file, line)) = &r.source {
                test["filePath"] = json!(file);
                test["line"] = json!(line);
            }
            if status != "passed" && r.reason.is_some() {
                test["message"] = json!(r.classed_reason());
            }
            if let Some(tail) = &r.log_tail {
                test["trace"] = json!(tail);
            }
            if !r.attempts.is_empty() {
                test["retryAttempts"] = r
                    .attempts
                    .iter()
                    .enumerate()
                    .map(|(i, a)| {
                        json!({
                            "attempt": i + 1,
                            "status": if a.outcome.is_failure() { "failed" } else { "passed" },
                            "duration": (a.seconds * 1000.0).round() as i64,
                            "message": a.reason.clone().unwrap_or_default(),
                        })
                    })
                    .collect();
            }
            tests.push(test);
        }
    }
    let count = |status: &str| tests.iter().filter(|t| t["status"] == status).count();
    let flaky = tests.iter().filter(|t| t["flaky"] == true).count();
    json!({
        "reportFormat": "CTRF",
        "specVersion": "0.0.0",
        "runId": facts.id,
        "timestamp": facts.ended.to_string(),
        "generatedBy": "kubevet",
        "results": {
            "tool": {"name": "kubevet", "version": env!("CARGO_PKG_VERSION")},
            "summary": {
                "tests": tests.len(),
                "passed": count("passed"),
                "failed": count("failed"),
                "skipped": count("skipped"),
                "pending": count("pending"),
                "other": count("other"),
                "flaky": flaky,
                "start": millis(facts.started),
                "stop": millis(facts.ended),
            },
            "tests": tests,
        },
    })
}
