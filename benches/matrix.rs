//! CI-matrix benchmark, through the kubevet binary.
//!
//! 1. Scale: a suite of BENCH_CASES (2,000) examples on 4 Kubernetes versions, a history of 5
//!    runs of every case on every version imported, then `kubevet plan` (into 4 × 16 shards)
//!    and `kubevet merge` of the 64 shards' run.json files timed.
//! 2. Balance (needs the test cluster): a skewed suite (4 examples of 20 s, 20 of about 2 s)
//!    run once for its history, then split into 4 shards three ways — kubevet's plan,
//!    count-based (contiguous slices of path order, as Chainsaw and Playwright do) and
//!    hash-based (a hash of the case id, as nextest's `hash:` does) — and every shard run
//!    alone, as its own job would; prints each way's shard imbalance (max / mean of the
//!    shards' actual wall times).
//!
//! Run: cargo bench --bench matrix. BENCH_CASES, BENCH_SKIP_CLUSTER=1.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::{Value, json};

const VERSIONS: [&str; 4] = ["1.34", "1.33", "1.32", "1.31"];

fn kubevet(cache: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubevet"));
    cmd.env("NO_COLOR", "1").env("KUBEVET_CACHE", cache).env_remove("GITHUB_OUTPUT").env_remove("GITHUB_ACTIONS");
    cmd
}

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("kubevet runs");
    assert!(
        out.status.success() || out.status.code() == Some(1),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn job(name: &str, command: &str) -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: main\n          image: kubevet.test/busybox:1.35\n          imagePullPolicy: IfNotPresent\n          command: [\"sh\", \"-c\", \"{command}\"]\n"
    )
}

/// One case's result as run.json holds it.
fn case(id: &str, seconds: f64) -> Value {
    let name = format!("{}.yaml", id.replacen('.', "/", 1));
    json!({
        "id": id, "name": name, "profile": "job", "outcome": "passed", "class": null, "reason": "Complete",
        "attempts": [], "timeout": "10m", "tier": null, "namespace": null, "phases": [], "steps": [],
        "seconds": seconds, "pods": [], "clusterScoped": [], "artifacts": id, "logTail": null,
        "cleanup": null, "leftBehind": [], "collectProblems": [],
    })
}

fn run_file(id: &str, started: jiff::Timestamp, cells: Vec<Value>, shard: Option<Value>) -> Value {
    let mut run = json!({
        "schemaVersion": kubevet::util::run_file::SCHEMA_VERSION, "id": id, "suite": "bench-matrix",
        "started": started.to_string(), "ended": (started + jiff::SignedDuration::from_mins(20)).to_string(),
        "cells": cells, "versions": {}, "rendered": {}, "changed": [],
    });
    if let Some(shard) = shard {
        run["shard"] = shard;
    }
    run
}

fn cell(version: &str, cases: Vec<Value>) -> Value {
    json!({"run": format!("r-{version}"), "kubernetesVersion": version, "image": null, "kubernetes": format!("v{version}.0"),
        "requests": {}, "leftBehind": [], "cases": cases, "setupSeconds": 90.0})
}

fn scale(cases: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::create_dir_all(root.join("examples")).expect("mkdir");
    for i in 0..cases {
        std::fs::write(root.join(format!("examples/e{i:05}.yaml")), job(&format!("e{i}"), "true")).expect("write");
    }
    let versions: Vec<String> = VERSIONS.iter().map(|v| format!("\"{v}\"")).collect();
    let suite = root.join("kubevet.yaml");
    std::fs::write(
        &suite,
        format!("apiVersion: kubevet.dev/v1alpha1\nkind: Suite\nmetadata:\n  name: bench-matrix\ndefaults:\n  concurrency: 8\ncluster:\n  provider: kind\n  kubernetesVersions: [{}]\n", versions.join(", ")),
    )
    .expect("write suite");
    let history = root.join("history.sqlite");
    let runs = root.join("runs");
    for r in 0..5 {
        let cells = VERSIONS
            .iter()
            .map(|v| {
                cell(
                    v,
                    (0..cases).map(|i| case(&format!("examples.e{i:05}"), 5.0 + (i % 97) as f64 + r as f64)).collect(),
                )
            })
            .collect();
        let started = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(10 - r);
        std::fs::create_dir_all(runs.join(format!("{r}"))).expect("mkdir");
        let text =
            run_file(&format!("{}-bench{r}", started.strftime("%Y%m%dT%H%M%SZ")), started, cells, None).to_string();
        std::fs::write(runs.join(format!("{r}/run.json")), text).expect("write");
    }
    let cache = root.join("cache");
    let start = Instant::now();
    ok(kubevet(&cache).args(["history", "import", "--history"]).arg(&history).arg(&runs));
    let import_s = start.elapsed().as_secs_f64();
    let plan = root.join("plan.json");
    let start = Instant::now();
    ok(kubevet(&cache)
        .args(["plan", "--suite"])
        .arg(&suite)
        .arg("--history")
        .arg(&history)
        .arg("--output")
        .arg(&plan)
        .args(["--max-shards", "16"]));
    let plan_s = start.elapsed().as_secs_f64();
    let planned: Value = serde_json::from_str(&std::fs::read_to_string(&plan).expect("plan")).expect("JSON");
    // Each shard's run.json, as its job would write it.
    let shards_dir = root.join("shards");
    let mut shards = 0;
    let mut loads = Vec::new();
    for c in planned["cells"].as_array().into_iter().flatten() {
        let version = c["kubernetes"].as_str().unwrap_or("");
        for s in c["shards"].as_array().into_iter().flatten() {
            let id = s["id"].as_str().unwrap_or("");
            let ids: Vec<&str> = s["cases"].as_array().into_iter().flatten().filter_map(|c| c["id"].as_str()).collect();
            loads.push(
                s["cases"].as_array().into_iter().flatten().filter_map(|c| c["predictedSeconds"].as_f64()).sum::<f64>(),
            );
            let results = ids.iter().map(|i| case(i, 7.0)).collect();
            let shard =
                json!({"plan": planned["digest"], "id": id, "attempt": 1, "predictedSeconds": s["predictedSeconds"]});
            let started = jiff::Timestamp::now();
            let run = run_file(
                &format!("{}-s{shards}", started.strftime("%Y%m%dT%H%M%SZ")),
                started,
                vec![cell(version, results)],
                Some(shard),
            );
            std::fs::create_dir_all(shards_dir.join(id)).expect("mkdir");
            std::fs::write(shards_dir.join(format!("{id}/run.json")), run.to_string()).expect("write");
            shards += 1;
        }
    }
    let start = Instant::now();
    ok(kubevet(&cache)
        .args(["merge", "--suite"])
        .arg(&suite)
        .arg("--plan")
        .arg(&plan)
        .arg("--history")
        .arg(&history)
        .arg("--output")
        .arg(root.join("merged"))
        .arg(&shards_dir));
    let merge_s = start.elapsed().as_secs_f64();
    let mean = loads.iter().sum::<f64>() / loads.len() as f64;
    let max = loads.iter().copied().fold(0.0, f64::max);
    println!(
        "scale: cases={cases} versions={} history_case_rows={} import_s={import_s:.2} plan_s={plan_s:.2} shards={shards} predicted_imbalance={:.3} merge_s={merge_s:.2}",
        VERSIONS.len(),
        cases * VERSIONS.len() * 5,
        max / mean
    );
}

/// Runs `ids` of the suite alone, as one job would; its wall seconds.
fn run_alone(suite: &Path, cache: &Path, kubeconfig: &Path, ids: &[String], artifacts: &Path) -> f64 {
    let mut cmd = kubevet(cache);
    cmd.args(["run", "--suite"])
        .arg(suite)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--no-history")
        .arg("--artifacts")
        .arg(artifacts);
    for id in ids {
        cmd.args(["--select", id]);
    }
    let start = Instant::now();
    ok(&mut cmd);
    start.elapsed().as_secs_f64()
}

fn imbalance(walls: &[f64]) -> f64 {
    let mean = walls.iter().sum::<f64>() / walls.len() as f64;
    walls.iter().copied().fold(0.0, f64::max) / mean
}

fn balance(kubeconfig: &Path) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::create_dir_all(root.join("examples")).expect("mkdir");
    let mut ids = Vec::new();
    for i in 0..4 {
        std::fs::write(root.join(format!("examples/a-long-{i}.yaml")), job(&format!("long-{i}"), "sleep 20"))
            .expect("write");
        ids.push(format!("examples.a-long-{i}"));
    }
    for i in 0..20 {
        std::fs::write(root.join(format!("examples/b-short-{i:02}.yaml")), job(&format!("short-{i}"), "echo done"))
            .expect("write");
        ids.push(format!("examples.b-short-{i:02}"));
    }
    let suite = root.join("kubevet.yaml");
    std::fs::write(&suite, "apiVersion: kubevet.dev/v1alpha1\nkind: Suite\nmetadata:\n  name: bench-balance\ndefaults:\n  concurrency: 2\n").expect("write");
    let cache = root.join("cache");
    let history = root.join("history.sqlite");
    ok(kubevet(&cache)
        .args(["run", "--suite"])
        .arg(&suite)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--history")
        .arg(&history)
        .arg("--artifacts")
        .arg(root.join("first")));
    let plan = root.join("plan.json");
    ok(kubevet(&cache)
        .args(["plan", "--suite"])
        .arg(&suite)
        .arg("--history")
        .arg(&history)
        .arg("--output")
        .arg(&plan)
        .args(["--max-shards", "4"]));
    let planned: Value = serde_json::from_str(&std::fs::read_to_string(&plan).expect("plan")).expect("JSON");
    let by_plan: Vec<Vec<String>> = planned["cells"][0]["shards"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            s["cases"].as_array().into_iter().flatten().filter_map(|c| c["id"].as_str().map(str::to_string)).collect()
        })
        .collect();
    let shards = by_plan.len().max(1);
    let by_count: Vec<Vec<String>> = ids.chunks(ids.len().div_ceil(shards)).map(<[String]>::to_vec).collect();
    let mut by_hash: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for id in &ids {
        let digest = <sha2::Sha256 as sha2::Digest>::digest(id.as_bytes());
        let h = u64::from_le_bytes(digest[..8].try_into().unwrap_or([0; 8]));
        by_hash.entry(h % shards as u64).or_default().push(id.clone());
    }
    let by_hash: Vec<Vec<String>> = by_hash.into_values().collect();
    for (name, split) in [("kubevet", &by_plan), ("count", &by_count), ("hash", &by_hash)] {
        let walls: Vec<f64> = split
            .iter()
            .enumerate()
            .map(|(i, ids)| run_alone(&suite, &cache, kubeconfig, ids, &root.join(format!("{name}-{i}"))))
            .collect();
        let shown: Vec<String> = walls.iter().map(|w| format!("{w:.1}")).collect();
        println!(
            "balance: split={name} shards={} walls_s=[{}] imbalance={:.2}",
            split.len(),
            shown.join(", "),
            imbalance(&walls)
        );
    }
}

fn main() {
    let cases = std::env::var("BENCH_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    scale(cases);
    let kubeconfig = std::env::var_os("KUBEVET_TEST_KUBECONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/kubevet-testcluster/kubeconfig"));
    if std::env::var("BENCH_SKIP_CLUSTER").is_ok_and(|v| v == "1") || !kubeconfig.is_file() {
        println!("balance: skipped (no test cluster)");
        return;
    }
    balance(&kubeconfig);
}
