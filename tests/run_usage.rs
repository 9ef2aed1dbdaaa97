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
    let hog_result = result_json(&artifacts, "examples.memory-hog");
    let problems = &hog_result["collectProblems"];
    assert!(problems.as_array().is_some_and(Vec::is_empty), "every kubelet read was read: {problems:#}");
    let hog = only_container(&hog_result);
    let truth = printed(&artifacts, "examples.memory-hog", "max_rss_bytes");
    let peak = hog["peakMemoryBytes"].as_f64().expect("peakMemoryBytes");
    let error = (peak - truth).abs() / truth;
    eprintln!("accuracy: peak_memory truth={truth:.0} measured={peak:.0} error={:.1}%", error * 100.0);
    assert!(error < 0.10, "peak {peak} against the kernel's {truth}: {hog:#}");
    assert!(peak >= 96.0 * 1_048_576.0, "at least what it wrote: {hog:#}");
    assert_eq!(hog["peakMemorySource"], "kernel peak", "cgroup v1 reports max_usage_in_bytes: {hog:#}");
    // Its resident set, from the kubelet's summary (read every third round, 6 s, while it
    // holds for 8): what it wrote, under the kernel's own peak of its process.
    let rss = hog["peakRssBytes"].as_f64().expect("peakRssBytes");
    eprintln!(
        "accuracy: peak_rss truth={truth:.0} measured={rss:.0} error={:.1}%",
        (rss - truth).abs() / truth * 100.0
    );
    assert!((96.0 * 1_048_576.0..=truth * 1.02).contains(&rss), "rss {rss} against the kernel's {truth}: {hog:#}");
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
    // At its limit, or where the kernel's own peak says it went past it (cgroup v1 counts
    // some kernel memory too).
    let peak = killed["peakMemoryBytes"].as_f64().unwrap_or(0.0);
    assert!((48.0 * 1_048_576.0..=52.0 * 1_048_576.0).contains(&peak), "{killed:#}");

    // An init container is measured too, first, and said to be one.
    let init = result_json(&artifacts, "examples.init-container");
    let containers: Vec<(&str, bool)> = init["usage"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|u| (u["container"].as_str().unwrap_or(""), u["init"].as_bool().unwrap_or(false)))
        .collect();
    assert_eq!(containers, vec![("prepare", true), ("main", false)], "{init:#}");
    let prepare = &init["usage"][0];
    assert!(prepare["runtimeSeconds"].as_f64().is_some_and(|s| (3.5..6.0).contains(&s)), "{prepare:#}");
    assert!(prepare["coverage"].as_f64().is_some_and(|c| c > 0.0), "sampled while it ran: {prepare:#}");

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

    // The figures reach the history through run.json: three earlier green runs of the burner
    // at about 4 CPU seconds (made from this run's own file), then one at twice that.
    let run_json: Value =
        serde_json::from_str(&std::fs::read_to_string(artifacts.join("run.json")).expect("run.json")).expect("JSON");
    let runs = dir.path().join("runs");
    for (n, cpu) in [4.0, 4.2, 4.1, 8.5].iter().enumerate() {
        let mut run = run_json.clone();
        run["id"] = Value::from(format!("{}-{n}", run_json["id"].as_str().unwrap_or("run")));
        for case in run["cells"][0]["cases"].as_array_mut().expect("cases") {
            if case["name"] == "examples/cpu-burner.yaml" {
                case["usage"][0]["cpuSeconds"] = Value::from(*cpu);
                case["usage"][0]["coverage"] = Value::from(0.95);
            }
        }
        let folder = runs.join(format!("run-{n}"));
        std::fs::create_dir_all(&folder).expect("folder");
        std::fs::write(folder.join("run.json"), run.to_string()).expect("write");
    }
    let history = dir.path().join("usage-history.sqlite");
    let history_arg = history.to_string_lossy().to_string();
    let imported = support::kubevet()
        .args(["history", "import", "--history", &history_arg])
        .arg(&runs)
        .output()
        .expect("kubevet history import");
    assert!(imported.status.success(), "{}{}", stdout(&imported), support::stderr(&imported));
    let health = support::kubevet()
        .args(["health", "--history", &history_arg, "--suite"])
        .arg(repo().join("tests/fixtures/usage/kubevet.yaml"))
        .output()
        .expect("kubevet health");
    let table = stdout(&health);
    assert!(health.status.success(), "{table}{}", support::stderr(&health));
    let burner_line =
        table.lines().find(|l| l.starts_with("examples/cpu-burner.yaml") && !l.contains(" all ")).unwrap_or("");
    assert!(
        burner_line
            .contains("resource regression: CPU seconds 8.50 above the last 3 green runs' 4.00–4.20 (spread 0.21)"),
        "{table}"
    );
    // The hog used the same in each run: no regression said of it.
    assert!(
        !table.lines().any(|l| l.starts_with("examples/memory-hog.yaml") && l.contains("resource regression")),
        "{table}"
    );

    // The report of the latest run, in a real headless Chromium: a bar per container with its
    // request outlined and its limit ticked, badges, and the ranking by unused requests.
    let html = dir.path().join("usage-report.html");
    let report = support::kubevet()
        .args(["report", "--history", &history_arg, "--output"])
        .arg(&html)
        .arg("--suite")
        .arg(repo().join("tests/fixtures/usage/kubevet.yaml"))
        .output()
        .expect("kubevet report");
    assert!(report.status.success(), "{}", support::stderr(&report));
    let dom = support::chromium_dom(&format!("file://{}", html.display()));
    let bar_of = |container: &str| -> String {
        let at =
            dom.find(&format!("data-container=\"{container}\"")).unwrap_or_else(|| panic!("no bar of {container}"));
        let start = dom[..at].rfind("<div class=\"usage-bar\"").unwrap_or(at);
        dom[start..start + dom[start..].find("</div>").unwrap_or(0)].to_string()
    };
    let burner_bar = bar_of("burner");
    assert!(burner_bar.contains("class=\"request\"") && burner_bar.contains("class=\"limit\""), "{burner_bar}");
    assert!(bar_of("main").contains("data-badge=\"BestEffort\""), "{}", bar_of("main"));
    assert!(dom.contains("data-badge=\"OOMKilled\""), "the OOMKilled hog's badge");
    // The burner's core-seconds across the four runs, the last one's figure beside the line.
    let history_row = dom
        .find("class=\"hrow\" data-example=\"examples.cpu-burner\"")
        .and_then(|i| {
            dom[i..].find("class=\"cpu-trend\"").map(|j| &dom[i + j..i + j + dom[i + j..].find("</td>").unwrap_or(0)])
        })
        .unwrap_or("");
    let points = history_row.split("points=\"").nth(1).and_then(|p| p.split('"').next()).unwrap_or("");
    assert_eq!(points.split(' ').count(), 4, "the four runs imported: {history_row}");
    assert!(history_row.ends_with("8.50 s"), "{history_row}");
    let unused = dom.find("id=\"unused\"").map(|i| &dom[i..i + dom[i..].find("</table>").unwrap_or(0)]).unwrap_or("");
    assert!(unused.contains("examples/memory-hog.yaml") && unused.contains("examples/cpu-burner.yaml"), "{unused}");
    assert!(!unused.contains("examples/best-effort.yaml"), "asked for nothing, left nothing unused: {unused}");
}
