//! History benchmark: 1,000 generated runs of 200 cases (two Kubernetes versions × 100
//! examples; some fail, some flake, one regresses on one version) imported into a fresh
//! SQLite history, health computed over the default window and over all 1,000 runs, and the
//! HTML report rendered and loaded in headless Chromium (Debian's `chromium`, when present).
//!
//! Run: cargo bench --bench history. Environment: BENCH_RUNS (1000), BENCH_EXAMPLES (100).

use std::{path::Path, process::Command, time::Instant};

use kubevet::history::{self, Window, health};
use serde_json::{Value, json};

fn run_json(run: usize, examples: usize) -> Value {
    let cells: Vec<Value> = ["1.33", "1.34"]
        .iter()
        .map(|v| {
            let cases: Vec<Value> = (0..examples)
                .map(|e| {
                    // Every 10th example fails now and then, every 25th flakes, example 7 fails on
                    // 1.33 from run 500 on.
                    let fails = (e.is_multiple_of(10) && (run + e).is_multiple_of(7)) || (e == 7 && *v == "1.33" && run >= 500);
                    let flaky = e % 25 == 3 && run.is_multiple_of(5);
                    let outcome = if fails { "failed" } else if flaky { "flaky" } else { "passed" };
                    json!({
                        "id": format!("examples.e{e:03}"), "name": format!("examples/e{e:03}.yaml"), "profile": "job",
                        "tier": if e % 2 == 0 { "fast" } else { "e2e" },
                        "outcome": outcome, "class": if fails { json!("test") } else { json!(null) },
                        "reason": if fails { "Failed: BackoffLimitExceeded" } else { "Complete" },
                        "attempts": if flaky { json!([{"outcome": "failed", "class": "timeout", "reason": "timed out", "seconds": 30.0}]) } else { json!([]) },
                        "phases": [{"name": "apply", "seconds": 0.05}, {"name": "scheduling", "seconds": 0.4}, {"name": "running", "seconds": 3.0 + (e % 13) as f64}, {"name": "collecting", "seconds": 0.05}],
                        "seconds": 3.5 + (e % 13) as f64 + (run % 9) as f64 * 0.1,
                        "artifacts": format!("{v}/examples.e{e:03}"),
                        "logTail": if fails { json!("Traceback (most recent call last):\n  RuntimeError: simulated") } else { json!(null) },
                    })
                })
                .collect();
            json!({"run": format!("c{run}-{v}"), "kubernetesVersion": v, "kubernetes": format!("v{v}.1"), "image": format!("kindest/node:v{v}.1"), "requests": {}, "leftBehind": [], "cases": cases})
        })
        .collect();
    let started = jiff::Timestamp::now() - jiff::SignedDuration::from_mins((1000 - run as i64) * 10);
    json!({
        "schemaVersion": kubevet::util::run_file::SCHEMA_VERSION, "rendered": {},
        "id": format!("{}-bench{run:04}", started.strftime("%Y%m%dT%H%M%SZ")), "suite": "bench",
        "started": started.to_string(), "ended": (started + jiff::SignedDuration::from_mins(5)).to_string(),
        "cells": cells, "versions": {"training-operator": if run < 500 { "v1.8.0" } else { "v1.9.0" }},
        "changed": if run == 500 { json!(["training-operator v1.8.0 → v1.9.0"]) } else { json!([]) },
    })
}

fn chromium_load(report: &Path) -> Option<(f64, String)> {
    let start = Instant::now();
    let out = Command::new("chromium")
        .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!("file://{}", report.display()))
        .output()
        .ok()?;
    let wall = start.elapsed().as_secs_f64();
    let dom = String::from_utf8_lossy(&out.stdout);
    let rendered = dom.split("data-rendered-ms=\"").nth(1)?.split('"').next()?.to_string();
    Some((wall, rendered))
}

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let examples: usize = std::env::var("BENCH_EXAMPLES").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let dir = tempfile::tempdir().expect("tempdir");
    for run in 0..runs {
        let folder = dir.path().join(format!("runs/{run:04}"));
        std::fs::create_dir_all(&folder).expect("mkdir");
        std::fs::write(folder.join("run.json"), run_json(run, examples).to_string()).expect("write");
    }
    let path = dir.path().join("history.sqlite");
    let mut store = history::open(&path).expect("history");
    let start = Instant::now();
    for run in 0..runs {
        history::append(&mut store, &dir.path().join(format!("runs/{run:04}/run.json"))).expect("append");
    }
    let import_s = start.elapsed().as_secs_f64();
    let size_mb = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
    drop(store);
    // Opening checks the file (SQLite's quick_check) before anything is read or written.
    let start = Instant::now();
    let store = history::open(&path).expect("history");
    let open_s = start.elapsed().as_secs_f64();
    println!(
        "history: runs={runs} cases_per_run={} import_s={import_s:.2} runs_per_s={:.0} db_mb={size_mb:.1} open_s={open_s:.2}",
        2 * examples,
        runs as f64 / import_s
    );

    // Chromium's own start, on a page with nothing in it: the baseline the loads compare with.
    let blank = dir.path().join("blank.html");
    std::fs::write(&blank, "<!DOCTYPE html><html><body data-rendered-ms=\"0\"></body></html>").expect("write");
    if let Some((wall, _)) = chromium_load(&blank) {
        println!("chromium: blank_page_load_s={wall:.2}");
    }
    for window in [Window { runs: 20, days: 3650 }, Window { runs, days: 3650 }] {
        let start = Instant::now();
        let loaded = history::load(&store, Some("bench"), window).expect("load");
        let load_s = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let rows = health::health(&loaded.window, &loaded.earlier, &loaded.all);
        let health_s = start.elapsed().as_secs_f64();
        let regressions = rows.iter().filter(|r| r.kubernetes.is_none() && r.regression.is_some()).count();
        println!(
            "health: window_runs={} load_s={load_s:.2} compute_s={health_s:.3} rows={} regressions={regressions}",
            loaded.window.len(),
            rows.len()
        );
        let report = dir.path().join(format!("report-{}.html", loaded.window.len()));
        let start = Instant::now();
        let bytes = history::html::write(&loaded, &report).expect("report");
        let render_s = start.elapsed().as_secs_f64();
        match chromium_load(&report) {
            Some((wall, script_ms)) => println!(
                "report: window_runs={} bytes={bytes} render_s={render_s:.2} chromium_load_s={wall:.2} script_ms={script_ms}",
                loaded.window.len()
            ),
            None => println!(
                "report: window_runs={} bytes={bytes} render_s={render_s:.2} (chromium not run)",
                loaded.window.len()
            ),
        }
    }
}
