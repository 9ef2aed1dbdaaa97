//! What every container of a case used, from the kubelet's samples through the API server's
//! node proxy (`tests/fixtures/usage`): a CPU burner and a memory hog whose own kernel counts
//! (printed in their logs) are the truth, a BestEffort pod, and an OOMKilled one. Read through
//! `result.json`, junitparser and the summary.

mod support;

use std::path::Path;

use serde_json::Value;
use support::{case, junit, repo, result_json, run_suite, stdout};

/// The figure a workload printed as `key=value` in its log.
fn printed(artifacts: &Path, id: &str, key: &str) -> f64 {
    let pods = artifacts.join(id).join("attempt-1/pods");
    let pods = if pods.exists() { pods } else { artifacts.join(id).join("pods") };
    for entry in walk(&pods) {
        let text = std::fs::read_to_string(&entry).unwrap_or_default();
        if let Some(value) = text.lines().find_map(|l| l.strip_prefix(&format!("{key}="))) {
            return value.trim().parse().expect("a number");
        }
    }
    panic!("{id} printed no {key}= under {}", pods.display());
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() { files.extend(walk(&path)) } else { files.push(path) }
    }
    files
}

fn only_container(result: &Value) -> &Value {
    let usage = result["usage"].as_array().expect("usage in result.json");
    assert_eq!(usage.len(), 1, "{usage:#?}");
    &usage[0]
}

#[test]
fn each_containers_cpu_and_memory_are_measured_within_bounds_of_what_its_kernel_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let artifacts = dir.path().join("artifacts");
    let out = run_suite(&repo().join("tests/fixtures/usage/kubevet.yaml"), &artifacts);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", support::stderr(&out));

    // The burner: half a core for 8 s, then idle. Its own CPU time is the truth.
    let burner = result_json(&artifacts, "examples.cpu-burner");
    let burner = only_container(&burner);
    let truth = printed(&artifacts, "examples.cpu-burner", "cpu_seconds");
    let measured = burner["cpuSeconds"].as_f64().expect("cpuSeconds");
    let error = (measured - truth).abs() / truth;
    eprintln!("accuracy: cpu_seconds truth={truth:.3} measured={measured:.3} error={:.1}%", error * 100.0);
    assert!(error < 0.05, "CPU seconds {measured} against the kernel's {truth}: {burner:#}");
    assert_eq!(burner["cpuRequestCores"], 0.5, "{burner:#}");
    let efficiency = burner["cpuEfficiency"].as_f64().expect("cpuEfficiency");
    assert!((0.3..=1.05).contains(&efficiency), "about 8 busy seconds of 14 at the whole request: {burner:#}");
    assert!(burner["p90Cores"].as_f64().is_some_and(|c| (0.35..=0.6).contains(&c)), "busy at the limit: {burner:#}");
    assert!(burner["coverage"].as_f64().is_some_and(|c| c >= 0.6), "{burner:#}");
    assert!(burner["cpuGapSeconds"].as_f64().is_some_and(|g| g < 6.0), "sampled after the burn: {burner:#}");

    // The hog: 96 MiB written and held. Its own peak resident set is the truth.
    let hog = result_json(&artifacts, "examples.memory-hog");
    let hog = only_container(&hog);
    let truth = printed(&artifacts, "examples.memory-hog", "max_rss_bytes");
    let peak = hog["peakMemoryBytes"].as_f64().expect("peakMemoryBytes");
    let error = (peak - truth).abs() / truth;
    eprintln!("accuracy: peak_memory truth={truth:.0} measured={peak:.0} error={:.1}%", error * 100.0);
    assert!(error < 0.10, "peak {peak} against the kernel's {truth}: {hog:#}");
    assert!(peak >= 96.0 * 1_048_576.0, "at least what it wrote: {hog:#}");
    assert_eq!(hog["peakMemorySource"], "kernel peak", "cgroup v1 reports max_usage_in_bytes: {hog:#}");
    let share = hog["memoryEfficiency"].as_f64().expect("memoryEfficiency");
    assert!((share - peak / (256.0 * 1_048_576.0)).abs() < 1e-9, "peak over the 256Mi request: {hog:#}");

    // No request: efficiency is not a number, never 100 %; the reports say BestEffort.
    let best_effort = result_json(&artifacts, "examples.best-effort");
    let best_effort = only_container(&best_effort);
    assert!(best_effort["cpuEfficiency"].is_null() && best_effort["memoryEfficiency"].is_null(), "{best_effort:#}");
    assert!(best_effort["cpuSeconds"].is_number(), "measured all the same: {best_effort:#}");

    // Killed for memory: said, and its peak is its limit whatever the samples caught.
    let killed = result_json(&artifacts, "examples.oom-killed");
    let killed = only_container(&killed);
    assert_eq!(killed["oomKilled"], true, "{killed:#}");
    assert_eq!(killed["peakMemoryBytes"], 48.0 * 1_048_576.0, "{killed:#}");

    let cases = junit(&artifacts.join("junit.xml"));
    let burner_case = case(&cases, "examples/cpu-burner.yaml");
    let junit_cpu: f64 =
        burner_case["properties"]["usage.cpuSeconds"].as_str().and_then(|s| s.parse().ok()).expect("usage.cpuSeconds");
    assert!((junit_cpu - measured).abs() < 0.001, "{burner_case:#}");
    let best_effort_case = case(&cases, "examples/best-effort.yaml");
    let out_text = best_effort_case["system_out"].as_str().unwrap_or("");
    assert!(out_text.contains("n/a (BestEffort) of its CPU request"), "{best_effort_case:#}");
    assert_eq!(
        case(&cases, "examples/oom-killed.yaml")["properties"]["usage.oomKilled"].as_str().map(|s| s.ends_with("/hog")),
        Some(true)
    );
    assert!(text.contains("OOM risk: examples/oom-killed.yaml oom-killed-"), "{text}");
    assert!(text.contains("least efficient: "), "{text}");
    support::no_namespace_left(&cases);
}
