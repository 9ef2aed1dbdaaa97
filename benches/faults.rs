//! Fault benchmark: the 18-case flaky-api fixture run on the test cluster twice, one after
//! the other: straight, then through the TEST HELPER fault proxy (5xx bursts, 429 with
//! Retry-After, resets, lost answers, latency, cut watches at BENCH_FAULT_RATE). Prints
//! whether every verdict is the same, the namespaces left, the requests sent and retried
//! (by reason), the faults injected, and the wall time of the faulted run over the clean one.
//!
//! Needs the test cluster (tests/cluster/up) and the helper (cargo build -p fault-proxy).
//! Run: cargo bench --bench faults. Environment: BENCH_FAULT_RATE (0.05), BENCH_SEED (11).

#[path = "../tests/support/mod.rs"]
mod support;

use std::{collections::BTreeMap, path::Path, time::Instant};

use serde_json::Value;
use support::{faults, junit, kubevet, repo};

struct Measured {
    seconds: f64,
    verdicts: BTreeMap<String, String>,
    cell: Value,
}

fn measure(kubeconfig: &Path, artifacts: &Path) -> Measured {
    let started = Instant::now();
    let out = kubevet()
        .args(["run", "--suite"])
        .arg(repo().join("tests/fixtures/flaky-api/kubevet.yaml"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--artifacts")
        .arg(artifacts)
        .output()
        .expect("kubevet runs");
    let seconds = started.elapsed().as_secs_f64();
    assert!(out.status.code().is_some_and(|c| c <= 1), "kubevet: {}", support::stderr(&out));
    let verdicts = junit(&artifacts.join("junit.xml"))
        .into_iter()
        .map(|c| (c["name"].as_str().unwrap_or("").to_string(), c["result"].as_str().unwrap_or("").to_string()))
        .collect();
    let run: Value =
        serde_json::from_str(&std::fs::read_to_string(artifacts.join("run.json")).expect("run.json")).expect("JSON");
    Measured { seconds, verdicts, cell: run["cells"][0].clone() }
}

fn main() {
    let rate = std::env::var("BENCH_FAULT_RATE").unwrap_or_else(|_| "0.05".into());
    let seed = std::env::var("BENCH_SEED").unwrap_or_else(|_| "11".into());
    let dir = tempfile::tempdir().expect("tempdir");
    let clean = measure(&support::kubeconfig(), &dir.path().join("clean"));
    let faulty = faults::faulty(dir.path(), &["--seed", &seed, "--rate", &rate]);
    let flaky = measure(&faulty.kubeconfig, &dir.path().join("flaky"));
    let injected = faults::injected(&faulty.log);
    let left: usize =
        [&clean, &flaky].iter().map(|m| support::namespaces_of_run(m.cell["run"].as_str().unwrap_or("")).len()).sum();
    let differing: Vec<&String> =
        clean.verdicts.iter().filter(|(name, v)| flaky.verdicts.get(*name) != Some(v)).map(|(n, _)| n).collect();
    let retried = &flaky.cell["requests"]["retried"];
    let retries: u64 = retried.as_object().map(|m| m.values().filter_map(Value::as_u64).sum()).unwrap_or(0);
    println!("faults injected: {injected:?}");
    println!("retried by reason: {retried}");
    println!(
        "faults: cases={} rate={rate} seed={seed} verdicts_identical={} differing={differing:?} namespaces_left={left} \
         requests_clean={} requests_faulted={} retried={retries} exhausted={} faults_injected={} wall_clean_s={:.1} \
         wall_faulted_s={:.1} faulted_over_clean={:.2}",
        clean.verdicts.len(),
        differing.is_empty(),
        clean.cell["requests"]["sent"],
        flaky.cell["requests"]["sent"],
        flaky.cell["requests"]["exhausted"],
        injected.values().sum::<usize>(),
        clean.seconds,
        flaky.seconds,
        flaky.seconds / clean.seconds
    );
}
