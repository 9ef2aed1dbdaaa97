//! Failure classes and retries through the binary on the real test cluster: an unpullable
//! image is `infrastructure` and retried, then reported failed with every attempt; a Job that
//! fails once and then passes is `flaky` with one `<flakyFailure>`; a missing PVC is
//! `example` and a log assertion `test`, neither retried; the circuit breaker stops retrying
//! when most cases fail; `--tier` picks cases. The JUnit is read by junitparser and by a
//! second consumer that reads the rerun elements from the XML itself.

mod support;

use std::{collections::BTreeMap, path::Path, process::Command};

use serde_json::Value;
use support::{case, junit, kubevet, repo, stdout};

/// The cases of a JUnit file with their rerun elements, as tests/support/junit_reruns.py reads them.
fn reruns(path: &Path) -> BTreeMap<String, Value> {
    let out = Command::new("python3")
        .arg(repo().join("tests/support/junit_reruns.py"))
        .arg(path)
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", support::stderr(&out));
    let cases: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    cases.into_iter().map(|c| (c["name"].as_str().unwrap_or("").to_string(), c)).collect()
}

fn result_json(artifacts: &Path, id: &str) -> Value {
    let text = std::fs::read_to_string(artifacts.join(id).join("result.json")).expect("result.json");
    serde_json::from_str(&text).expect("JSON")
}

#[test]
fn classes_retries_and_flaky_verdicts() {
    let dir = tempfile::tempdir().expect("tempdir");
    support::copy_dir(&repo().join("tests/fixtures/retries"), dir.path());
    // The flaky Job counts its attempts in a file named by this token, new for every run.
    let token = format!("run-{}-{}", std::process::id(), dir.path().file_name().unwrap_or_default().to_string_lossy());
    let flaky = dir.path().join("examples/flaky.yaml");
    let text = std::fs::read_to_string(&flaky).expect("read").replace("FLAKY_TOKEN", &token);
    std::fs::write(&flaky, text).expect("write");
    let artifacts = dir.path().join("artifacts");
    let out = support::run_suite(&dir.path().join("kubevet.yaml"), &artifacts);
    let printed = stdout(&out);
    eprintln!("{printed}");
    assert_eq!(out.status.code(), Some(1), "failures remain: exit 1");

    let cases = junit(&artifacts.join("junit.xml"));
    let reruns = reruns(&artifacts.join("junit.xml"));

    // An unpullable image: infrastructure, tried 3 times, failed, every attempt in the report.
    let unpullable = case(&cases, "examples/unpullable.yaml");
    assert_eq!(unpullable["result"], "failure");
    assert!(
        unpullable["message"].as_str().unwrap_or("").starts_with("infrastructure: pod unpullable-"),
        "{unpullable}"
    );
    assert_eq!(unpullable["properties"]["class"], "infrastructure");
    assert_eq!(unpullable["properties"]["attempts"], "3");
    let earlier = reruns["examples/unpullable.yaml"]["reruns"].as_array().expect("reruns").clone();
    assert_eq!(earlier.len(), 2, "{earlier:?}");
    assert!(earlier.iter().all(|r| r["kind"] == "rerunFailure" && r["type"] == "infrastructure"), "{earlier:?}");
    assert!(earlier[0]["system_out"].as_str().unwrap_or("").contains("attempt-1"), "each attempt's own evidence");
    for attempt in 1..=3 {
        assert!(artifacts.join(format!("examples.unpullable/attempt-{attempt}/result.json")).is_file());
    }
    let summed = result_json(&artifacts, "examples.unpullable");
    assert_eq!(summed["attempts"].as_array().map(Vec::len), Some(2));
    assert_eq!(summed["class"], "infrastructure");

    // Failed once, then passed: flaky, one <flakyFailure>, a pass for junitparser.
    let flaky = case(&cases, "examples/flaky.yaml");
    assert_eq!(flaky["result"], "passed", "{flaky}");
    let flakes = reruns["examples/flaky.yaml"]["reruns"].as_array().expect("reruns").clone();
    assert_eq!(flakes.len(), 1, "{flakes:?}");
    assert_eq!(flakes[0]["kind"], "flakyFailure");
    assert_eq!(flakes[0]["type"], "infrastructure", "moved there by the suite's classes: rule");
    assert!(flakes[0]["system_out"].as_str().unwrap_or("").contains("first attempt fails"), "{flakes:?}");
    assert_eq!(result_json(&artifacts, "examples.flaky")["outcome"], "flaky");

    // Not retried: the example's own mistake, and the test's own failure.
    let pvc = case(&cases, "examples/missing-pvc.yaml");
    assert_eq!(pvc["properties"]["class"], "example", "{pvc}");
    assert!(pvc["message"].as_str().unwrap_or("").contains("persistentvolumeclaim"), "{pvc}");
    assert!(
        pvc["properties"].get("attempts").is_none()
            && reruns["examples/missing-pvc.yaml"]["reruns"] == Value::Array(vec![])
    );
    let big = case(&cases, "examples/too-big.yaml");
    assert_eq!(big["properties"]["class"], "example", "more than any node has is the example's: {big}");
    assert!(big["message"].as_str().unwrap_or("").contains("asks for 1000 cpu, more than any node can give"), "{big}");
    assert!(big["properties"].get("attempts").is_none());
    let logs = case(&cases, "examples/log-assertion.yaml");
    assert_eq!(logs["properties"]["class"], "test");
    assert!(logs["message"].as_str().unwrap_or("").starts_with("test: log assertion failed"), "{logs}");
    assert!(logs["properties"].get("attempts").is_none());

    // The summary counts flaky cases apart and says the policy.
    assert!(printed.contains("0 passed, 4 failed, 0 errors, 0 skipped, 0 interrupted, 1 flaky in "), "{printed}");
    assert!(
        printed.contains("warning: 1 flaky cases failed, then passed on a retry; they pass (flaky: pass)"),
        "{printed}"
    );
    assert!(printed.contains("not passed, by class:"), "{printed}");
}

#[test]
fn the_circuit_breaker_stops_retrying_when_most_cases_fail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let artifacts = dir.path().join("artifacts");
    let out = support::run_suite(&repo().join("tests/fixtures/retries/breaker/kubevet.yaml"), &artifacts);
    eprintln!("{}", stdout(&out));
    let cases = junit(&artifacts.join("junit.xml"));
    let attempts = |c: &Value| c["properties"]["attempts"].as_str().and_then(|a| a.parse().ok()).unwrap_or(1usize);
    // The order the cases really started in: their first attempt's Job, as the server stamped
    // it (one slot, and every attempt lasts over a second, so the stamps differ).
    let mut started: Vec<(String, &Value)> = cases
        .iter()
        .map(|c| {
            let name = c["name"].as_str().expect("name").trim_start_matches("cases/").trim_end_matches(".yaml");
            let job = artifacts.join(format!("cases.{name}/attempt-1/objects/job.{name}.yaml"));
            let text = std::fs::read_to_string(&job).unwrap_or_else(|e| panic!("{}: {e}", job.display()));
            let stamp = text.lines().find_map(|l| l.trim().strip_prefix("creationTimestamp: ")).expect("stamped");
            (stamp.to_string(), c)
        })
        .collect();
    started.sort_by(|a, b| a.0.cmp(&b.0));
    // One slot, given up between attempts, so every first attempt runs before any retry (a
    // retry queues behind them). The first two to fail (not more than half of the run's 4
    // cases) are retried; by the time their retries end, all 4 have failed and the breaker
    // stops them, as it stops the last two at once. Without it: 3 attempts each.
    let in_start_order: Vec<usize> = started.iter().map(|(_, c)| attempts(c)).collect();
    assert_eq!(in_start_order, [2, 2, 1, 1], "in the order they started: {started:?}");
    let counted: Vec<&str> = started
        .iter()
        .map(|(_, c)| {
            let message = c["message"].as_str().unwrap_or("");
            assert!(message.contains("a broken cluster is not a flake"), "{message}");
            if message.contains("not retried: 3 of the run's 4 cases failed") { "3 of 4" } else { "4 of 4" }
        })
        .collect();
    assert_eq!(counted, ["4 of 4", "4 of 4", "3 of 4", "4 of 4"], "what the breaker counted when it stopped each");
}

#[test]
fn a_tier_picks_its_cases() {
    let suite = repo().join("tests/fixtures/retries/kubevet.yaml");
    let out = kubevet().args(["list", "--tier", "fast", "--suite"]).arg(&suite).output().expect("runs");
    let listed = stdout(&out);
    let files: Vec<&str> = listed.lines().skip(1).filter_map(|l| l.split_whitespace().nth(1)).collect();
    assert_eq!(files, ["examples/flaky.yaml", "examples/missing-pvc.yaml"], "{listed}");
    assert!(listed.lines().skip(1).all(|l| l.contains("fast")), "{listed}");
    let none = kubevet().args(["run", "--tier", "nightly", "--suite"]).arg(&suite).output().expect("runs");
    assert_eq!(none.status.code(), Some(2));
    assert!(support::stderr(&none).contains("and --tier nightly"), "{}", support::stderr(&none));
}

/// The workflow commands of a job log, as Actions reads them (tests/support/gha_commands.py).
fn workflow_commands(log: &Path) -> Vec<Value> {
    let out =
        Command::new("python3").arg(repo().join("tests/support/gha_commands.py")).arg(log).output().expect("runs");
    assert!(out.status.success(), "{}", support::stderr(&out));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
fn github_output_annotates_the_examples_and_no_log_can_run_a_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    support::copy_dir(&repo().join("tests/fixtures/github"), dir.path());
    let token = format!("gh-{}-{}", std::process::id(), dir.path().file_name().unwrap_or_default().to_string_lossy());
    let flaky = std::fs::read_to_string(repo().join("tests/fixtures/retries/examples/flaky.yaml")).expect("read");
    std::fs::write(dir.path().join("examples/flaky.yaml"), flaky.replace("FLAKY_TOKEN", &token)).expect("write");
    let summary = dir.path().join("step-summary.md");
    let out = kubevet()
        .current_dir(dir.path())
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_WORKSPACE", dir.path())
        .env("GITHUB_STEP_SUMMARY", &summary)
        .args(["run", "--suite", "kubevet.yaml", "--kubeconfig"])
        .arg(support::kubeconfig())
        .output()
        .expect("kubevet runs");
    let log = dir.path().join("job.log");
    std::fs::write(&log, &out.stdout).expect("write");
    let commands = workflow_commands(&log);
    let names: Vec<&str> = commands.iter().filter_map(|c| c["name"].as_str()).collect();
    assert!(!names.contains(&"set-output") && !names.contains(&"add-mask"), "a log ran a command: {names:?}");
    let errors: Vec<&Value> = commands.iter().filter(|c| c["name"] == "error").collect();
    assert_eq!(errors.len(), 1, "only inject.yaml failed, and its log's ::error is not one: {commands:#?}");
    assert_eq!(errors[0]["properties"]["file"], "examples/inject.yaml");
    assert_eq!(errors[0]["properties"]["line"], "3", "the Job's line");
    assert!(
        errors[0]["properties"]["title"]
            .as_str()
            .unwrap_or("")
            .starts_with("kubevet: FAIL examples/inject.yaml (test)")
    );
    assert!(errors[0]["message"].as_str().unwrap_or("").starts_with("test: Failed: "), "{:?}", errors[0]);
    let warnings: Vec<&Value> = commands.iter().filter(|c| c["name"] == "warning").collect();
    assert_eq!(warnings.len(), 1, "{commands:#?}");
    assert_eq!(warnings[0]["properties"]["file"], "examples/flaky.yaml");
    let groups = names.iter().filter(|n| **n == "group").count();
    assert_eq!((groups, names.iter().filter(|n| **n == "endgroup").count()), (3, 3));
    // The raw log still shows the lines, as text.
    assert!(stdout(&out).contains("::set-output name=pwned::yes"));
    let markdown = std::fs::read_to_string(&summary).expect("step summary");
    let first_row =
        markdown.lines().find(|l| l.starts_with("| FAIL") || l.starts_with("| PASS") || l.starts_with("| FLAKY"));
    assert!(first_row.is_some_and(|r| r.starts_with("| FAIL | examples/inject.yaml")), "failures first:\n{markdown}");
    assert!(markdown.contains("**1 passed, 1 failed, 0 errors, 1 flaky, 0 skipped**"), "{markdown}");
}

#[test]
fn lint_findings_become_annotations() {
    let out = kubevet()
        .current_dir(repo())
        .env("GITHUB_WORKSPACE", repo())
        .args(["lint", "tests/fixtures/lint/pytorchjob-typo.yaml", "tests/fixtures/notes/widget.yaml"])
        .args(["--output", "github", "--crds"])
        .arg(repo().join("../shared/data/crds"))
        .output()
        .expect("runs");
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("lint.log");
    std::fs::write(&log, &out.stdout).expect("write");
    let commands = workflow_commands(&log);
    let schema = commands.iter().find(|c| c["properties"]["title"] == "kubevet lint: schema").expect("the typo");
    assert_eq!(schema["name"], "error");
    assert_eq!(schema["properties"]["file"], "tests/fixtures/lint/pytorchjob-typo.yaml");
    assert_eq!((schema["properties"]["line"].as_str(), schema["properties"]["col"].as_str()), (Some("20"), Some("15")));
    let notice = commands
        .iter()
        .find(|c| c["name"] == "notice")
        .unwrap_or_else(|| panic!("notes become notices: {commands:#?}"));
    assert_eq!(notice["properties"]["file"], "tests/fixtures/notes/widget.yaml");
}
