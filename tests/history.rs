//! The run history through the `kubevet` binary: real runs of a fixture suite on the test
//! cluster (an example that passes, one that fails, one that alternates) appended to an
//! SQLite history, health read back, the HTML report opened in a real headless Chromium, the
//! CTRF report checked against the CTRF schema; runs imported from other folders (twice, and
//! by two writers at once); crafted `run.json` files of a two-version matrix for a regression
//! on one version; a damaged history set aside.

mod support;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use support::{copy_dir, kubevet, repo, stderr, stdout};

/// The fixture suite in a folder of its own, its toggle file named for this test.
fn fixture(dir: &Path) -> PathBuf {
    let suite = dir.join("suite");
    copy_dir(&repo().join("tests/fixtures/history"), &suite);
    let token = format!("history-{}", std::process::id());
    let alternates = suite.join("examples/alternates.yaml");
    let text = std::fs::read_to_string(&alternates).expect("fixture").replace("HISTORY_TOKEN", &token);
    std::fs::write(&alternates, text).expect("write");
    suite.join("kubevet.yaml")
}

fn run(suite: &Path, artifacts: &Path, history: &Path, extra: &[&str]) -> std::process::Output {
    kubevet()
        .args(["run", "--suite"])
        .arg(suite)
        .arg("--kubeconfig")
        .arg(support::kubeconfig())
        .arg("--artifacts")
        .arg(artifacts)
        .arg("--history")
        .arg(history)
        .args(extra)
        .output()
        .expect("kubevet runs")
}

/// `kubevet health` as JSON, run where no kubevet.yaml is found: every suite of the history.
fn health(history: &Path, extra: &[&str]) -> Vec<Value> {
    let out = kubevet()
        .current_dir(history.parent().expect("a folder"))
        .args(["health", "--output", "json", "--history"])
        .arg(history)
        .args(extra)
        .output()
        .expect("kubevet runs");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

fn row<'a>(rows: &'a [Value], example: &str, kubernetes: Option<&str>) -> &'a Value {
    rows.iter()
        .find(|r| r["example"] == example && r["kubernetes"].as_str() == kubernetes)
        .unwrap_or_else(|| panic!("no health row for {example} {kubernetes:?}: {rows:#?}"))
}

#[test]
fn real_runs_build_a_history_health_an_html_report_and_ctrf() {
    let dir = tempfile::tempdir().expect("tempdir");
    let suite = fixture(dir.path());
    let history = dir.path().join("history.sqlite");
    let mut artifacts = Vec::new();
    for n in 1..=3 {
        let folder = dir.path().join(format!("run-{n}"));
        let html = folder.join("report.html");
        let ctrf = folder.join("ctrf.json");
        let extra = ["--html", html.to_str().expect("utf-8"), "--ctrf", ctrf.to_str().expect("utf-8")];
        let out = run(&suite, &folder, &history, &extra);
        assert_eq!(out.status.code(), Some(1), "a case fails in every run\n{}", stderr(&out));
        artifacts.push(folder);
    }

    // Health from three real runs: P P P, X X X, and P X P.
    let rows = health(&history, &["--suite", suite.to_str().expect("utf-8")]);
    let state = |example: &str| row(&rows, example, None)["state"].as_str().unwrap_or("").to_string();
    assert_eq!(state("examples/passes.yaml"), "PASSING");
    assert_eq!(state("examples/fails.yaml"), "BROKEN");
    assert_eq!(state("examples/alternates.yaml"), "FLAKY");
    let passes = row(&rows, "examples/passes.yaml", None);
    assert_eq!((passes["score"].as_u64(), passes["judged"].as_u64()), (Some(100), Some(3)));
    assert!(passes["medianSeconds"].as_f64().is_some_and(|m| m > 0.0), "all versions' median: {passes}");
    assert!(passes["p95Seconds"].as_f64().is_some(), "{passes}");
    let alternates = rows
        .iter()
        .find(|r| r["example"] == "examples/alternates.yaml" && r["kubernetes"].is_string())
        .expect("per version");
    assert_eq!(alternates["timeline"], "PXP");
    assert!((alternates["flakiness"].as_f64().unwrap_or(0.0) - 200.0 / 3.0).abs() < 0.1, "{alternates}");
    assert_eq!(row(&rows, "examples/fails.yaml", None)["score"], 0);

    // CTRF, read by the jsonschema package against the schema of the ctrf package.
    let schema = std::env::var("KUBEVET_TEST_CTRF_SCHEMA")
        .expect("KUBEVET_TEST_CTRF_SCHEMA: tests/run fetches the CTRF schema from the ctrf package on npm");
    let ctrf = artifacts[2].join("ctrf.json");
    let check = std::process::Command::new("python3")
        .arg(repo().join("tests/support/ctrf_validate.py"))
        .arg(&schema)
        .arg(&ctrf)
        .output()
        .expect("python3 runs");
    assert!(check.status.success(), "CTRF does not match its schema:\n{}{}", stdout(&check), stderr(&check));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&ctrf).expect("ctrf")).expect("JSON");
    assert_eq!(report["results"]["summary"]["tests"], 3);
    assert_eq!(report["results"]["summary"]["failed"], 1, "only `fails`: `alternates` passes on its third run");

    // The HTML report of the last run, in a real headless Chromium.
    let html = artifacts[2].join("report.html");
    let url = format!("file://{}", html.display());
    let dom = support::chromium_dom(&url);
    assert!(dom.contains("data-ready=\"true\""), "the report's script ran");
    for (example, outcome) in [("passes", "passed"), ("fails", "failed"), ("alternates", "passed")] {
        let cell = format!("data-example=\"examples.{example}\"");
        let start = dom.find(&format!("<tr class=\"mrow\" {cell}")).unwrap_or_else(|| panic!("matrix row {example}"));
        let row_html = &dom[start..start + dom[start..].find("</tr>").unwrap_or(0)];
        assert!(row_html.contains(&format!("data-outcome=\"{outcome}\"")), "{example}: {row_html}");
    }
    assert!(dom.contains("data-shown-cases=\"3\""), "no filter: every case shown");
    // The header: the latest run's counts and the pass rate of each run (P X P, P X X, P X P).
    assert!(dom.contains("data-outcome=\"passed\">2 passed</span>"), "counts by outcome");
    assert!(dom.contains("data-outcome=\"failed\">1 failed</span>"), "counts by outcome");
    assert!(dom.contains("<b id=\"pass-rate\">67%</b>"), "the latest run's pass rate");
    let trend = dom.find("id=\"pass-trend\"").map(|i| &dom[i..i + dom[i..].find("</svg>").unwrap_or(0)]).unwrap_or("");
    assert!(trend.contains("points=\"2,8.7 14,15.3 26,8.7\""), "a point per run, 2/3, 1/3, 2/3: {trend}");
    assert!(dom.contains("id=\"phase-legend\"") && dom.contains("swatch ph-running"), "the phase bars' legend");
    let failed_only = support::chromium_dom(&format!("{url}#outcome=failed"));
    assert!(failed_only.contains("data-shown-cases=\"1\""), "the outcome filter from the URL");
    // Every evidence link resolves to a file or folder of the run's artifacts.
    let links: Vec<&str> = dom
        .match_indices("class=\"evidence\" href=\"")
        .map(|(i, m)| {
            let rest = &dom[i + m.len()..];
            &rest[..rest.find('"').expect("a closing quote")]
        })
        .collect();
    assert!(links.len() >= 9, "result, events and objects for each case: {links:?}");
    for link in &links {
        // An empty link would "resolve" to the report's own folder.
        assert!(!link.is_empty() && !link.starts_with('/'), "links are relative and not empty: {link:?}");
        assert!(html.parent().expect("folder").join(link).exists(), "{link} does not resolve");
    }
    let history_cells = dom.matches("class=\"dot ").count();
    assert_eq!(history_cells, 9, "three examples × three runs in the history grid");
    let shot = support::test_artifacts().join("history-report.png");
    support::chromium_screenshot(&url, &shot);

    // The same runs imported from elsewhere (copied artifacts): once, and not again.
    let elsewhere = dir.path().join("elsewhere.sqlite");
    let import = |paths: &[&Path]| {
        let mut command = kubevet();
        command.args(["history", "import", "--history"]).arg(&elsewhere);
        for p in paths {
            command.arg(p);
        }
        command.output().expect("kubevet runs")
    };
    let copied = dir.path().join("ci-artifacts");
    for (n, folder) in artifacts.iter().enumerate() {
        copy_dir(folder, &copied.join(format!("job-{n}")));
    }
    let out = import(&[&copied]);
    assert!(stdout(&out).starts_with("imported 3 runs (0 already in the history)"), "{}{}", stdout(&out), stderr(&out));
    let out = import(&[&copied.join("job-1/run.json")]);
    assert!(stdout(&out).starts_with("imported 0 runs (1 already in the history)"), "{}", stdout(&out));
    assert_eq!(health(&elsewhere, &[]).len(), rows.len(), "the same health from the imported copy");
}

/// A run.json of the `matrix` suite at day `day`: examples/train.yaml passes on 1.34 and,
/// from day 3, when the operator moved to v1.9.0, fails on 1.33.
fn crafted(day: u32) -> Value {
    let operator = if day < 3 { "v1.8.0" } else { "v1.9.0" };
    let cells: Vec<Value> = ["1.33", "1.34"]
        .iter()
        .map(|v| {
            let fails = *v == "1.33" && day >= 3;
            json!({
                "run": format!("cell-{day}-{v}"), "kubernetesVersion": v, "kubernetes": format!("v{v}.1"),
                "image": format!("kindest/node:v{v}.1"), "requests": {}, "leftBehind": [],
                "cases": [
                    {"id": "examples.train", "name": "examples/train.yaml", "profile": "pytorchjob",
                     "outcome": if fails { "failed" } else { "passed" }, "class": if fails { json!("test") } else { json!(null) },
                     "reason": if fails { "Failed: RuntimeError" } else { "Succeeded" }, "attempts": [],
                     "phases": [{"name": "running", "seconds": 40.0}], "seconds": 42.0, "artifacts": format!("{v}/examples.train")},
                    {"id": "examples.hello", "name": "examples/hello.yaml", "profile": "job", "outcome": "passed",
                     "attempts": [], "phases": [], "seconds": 3.0, "artifacts": format!("{v}/examples.hello")}
                ]
            })
        })
        .collect();
    let started = format!("2026-11-{:02}T03:00:00Z", 20 + day);
    json!({
        "schemaVersion": kubevet::util::run_file::SCHEMA_VERSION, "rendered": {},
        "id": format!("202611{:02}T030000Z-matrix", 20 + day), "suite": "matrix", "started": started,
        "ended": started.replace("03:00:00", "03:04:00"), "cells": cells,
        "versions": {"training-operator": operator},
        "changed": if day == 3 { json!(["training-operator v1.8.0 → v1.9.0"]) } else { json!([]) }
    })
}

#[test]
fn a_failure_on_one_version_only_is_a_regression_there_and_imports_are_safe_together() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Two CI jobs' artifacts, imported by two writers at once into one history.
    let (first, second) = (dir.path().join("job-a"), dir.path().join("job-b"));
    for day in 1..=6 {
        let folder = if day % 2 == 0 { &first } else { &second }.join(format!("day-{day}"));
        std::fs::create_dir_all(&folder).expect("mkdir");
        std::fs::write(folder.join("run.json"), crafted(day).to_string()).expect("write");
    }
    let history = dir.path().join("history.sqlite");
    let writers: Vec<std::process::Child> = [&first, &second]
        .iter()
        .map(|folder| {
            kubevet()
                .args(["history", "import", "--history"])
                .arg(&history)
                .arg(folder)
                .spawn()
                .expect("kubevet starts")
        })
        .collect();
    for writer in writers {
        let out = writer.wait_with_output().expect("kubevet ends");
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let rows = health(&history, &["--days", "3650"]);
    let train = row(&rows, "examples/train.yaml", None);
    let regression = &train["regression"];
    assert_eq!(regression["kubernetes"], "1.33", "{train:#}");
    assert_eq!(regression["firstFailingRun"], "20261123T030000Z-matrix");
    assert_eq!(regression["changed"], json!(["training-operator v1.8.0 → v1.9.0"]));
    assert_eq!(train["flakiness"], 0.0, "a regression on one version is not a flake");
    assert_eq!(row(&rows, "examples/train.yaml", Some("1.34"))["state"], "PASSING");
    assert_eq!(row(&rows, "examples/train.yaml", Some("1.33"))["state"], "FAILING");
    assert_eq!(row(&rows, "examples/hello.yaml", None)["state"], "PASSING");
    let table = kubevet()
        .current_dir(dir.path())
        .args(["health", "--days", "3650", "--history"])
        .arg(&history)
        .output()
        .expect("runs");
    assert!(stdout(&table).contains("regression on 1.33 since run 20261123T030000Z-matrix"), "{}", stdout(&table));
}

#[test]
fn a_damaged_history_is_set_aside_and_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let history = dir.path().join("history.sqlite");
    let garbage = b"this is not a database, it is a log file that went astray\n".repeat(100);
    std::fs::write(&history, &garbage).expect("write");
    let folder = dir.path().join("run");
    std::fs::create_dir_all(&folder).expect("mkdir");
    std::fs::write(folder.join("run.json"), crafted(1).to_string()).expect("write");
    let out = kubevet().args(["history", "import", "--history"]).arg(&history).arg(&folder).output().expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("was damaged; it was moved to"), "{}", stderr(&out));
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("history.sqlite.damaged-"))
        .collect();
    assert_eq!(aside.len(), 1, "the damaged file is kept, not truncated");
    assert_eq!(std::fs::read(aside[0].path()).expect("read"), garbage, "kept as it was");
    assert!(stdout(&out).contains("holds 1 runs"), "{}", stdout(&out));
}

#[test]
fn a_run_json_of_another_schema_or_with_a_renamed_field_is_refused_not_defaulted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let history = dir.path().join("history.sqlite");
    let import_one = |name: &str, run: &Value| {
        let folder = dir.path().join(name);
        std::fs::create_dir_all(&folder).expect("mkdir");
        std::fs::write(folder.join("run.json"), run.to_string()).expect("write");
        kubevet().args(["history", "import", "--history"]).arg(&history).arg(&folder).output().expect("runs")
    };
    let mut old = crafted(1);
    old.as_object_mut().map(|o| o.remove("schemaVersion"));
    let out = import_one("old", &old);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no schemaVersion"), "{}", stderr(&out));

    let mut renamed = crafted(2);
    let case = renamed["cells"][0]["cases"][0].as_object_mut().expect("a case");
    let outcome = case.remove("outcome").expect("outcome");
    case.insert("verdict".into(), outcome);
    let out = import_one("renamed", &renamed);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("missing field `outcome`"), "{}", stderr(&out));
}

#[test]
fn a_history_that_cannot_be_written_is_its_own_exit_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A folder where the database file should be: SQLite cannot open it, and it is not
    // "damaged" either (nothing is moved aside).
    let history = dir.path().join("history.sqlite");
    std::fs::create_dir_all(history.join("kept")).expect("mkdir");
    let folder = dir.path().join("run");
    std::fs::create_dir_all(&folder).expect("mkdir");
    std::fs::write(folder.join("run.json"), crafted(1).to_string()).expect("write");
    let out = kubevet().args(["history", "import", "--history"]).arg(&history).arg(&folder).output().expect("runs");
    assert_eq!(out.status.code(), Some(5), "the history's own exit code, not bad input: {}", stderr(&out));
    assert!(stderr(&out).contains(&format!("history {}", history.display())), "{}", stderr(&out));
    assert!(history.join("kept").is_dir(), "the folder was left where it was");
}
