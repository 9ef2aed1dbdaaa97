//! A flaky control plane never changes a verdict and never leaves a namespace behind. The
//! TEST HELPER tests/fault-proxy sits between kubevet and the real test cluster (through
//! `kubectl proxy`, which holds the credentials) and injects 5xx bursts, 429 with
//! `Retry-After`, reset connections, lost answers, latency and cut watches, per a seed.

mod support;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Child, Stdio},
};

use serde_json::Value;
use support::{
    faults::{faulty, injected},
    junit, kubeconfig, kubevet, repo, stdout,
};

/// The fixture's 18 cases and the verdict each must get, faults or not.
const EXPECTED: &[(&str, &str)] = &[
    ("examples/cluster-scoped.yaml", "passed"),
    ("examples/expected-failure.yaml", "passed"),
    ("examples/fail-1.yaml", "failure"),
    ("examples/fail-2.yaml", "failure"),
    ("examples/fail-3.yaml", "failure"),
    ("examples/generate-name-configmap.yaml", "passed"),
    ("examples/generate-name.yaml", "passed"),
    ("examples/logs-fail.yaml", "failure"),
    ("examples/logs-pass.yaml", "passed"),
    ("examples/pass-01.yaml", "passed"),
    ("examples/pass-02.yaml", "passed"),
    ("examples/pass-03.yaml", "passed"),
    ("examples/pass-04.yaml", "passed"),
    ("examples/pass-05.yaml", "passed"),
    ("examples/pass-06.yaml", "passed"),
    ("examples/pass-07.yaml", "passed"),
    ("examples/pass-08.yaml", "passed"),
    ("examples/pytorchjob.yaml", "passed"),
];

struct Run {
    code: i32,
    stdout: String,
    verdicts: BTreeMap<String, String>,
    run_json: Value,
    artifacts: PathBuf,
}

fn run(suite: &Path, kubeconfig: &Path, artifacts: &Path, extra: &[&str]) -> std::process::Child {
    kubevet()
        .args(["run", "--suite"])
        .arg(suite)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--artifacts")
        .arg(artifacts)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubevet runs")
}

fn finish(child: Child, artifacts: &Path) -> Run {
    let out = child.wait_with_output().expect("kubevet ends");
    let verdicts = junit(&artifacts.join("junit.xml"))
        .into_iter()
        .map(|c| (c["name"].as_str().unwrap_or("").to_string(), c["result"].as_str().unwrap_or("").to_string()))
        .collect();
    let run_json = serde_json::from_str(&std::fs::read_to_string(artifacts.join("run.json")).expect("run.json"))
        .expect("run.json is JSON");
    Run { code: out.status.code().unwrap_or(-1), stdout: stdout(&out), verdicts, run_json, artifacts: artifacts.into() }
}

fn run_id(run: &Run) -> String {
    run.run_json["cells"][0]["run"].as_str().expect("run id").to_string()
}

fn retries(run: &Run) -> u64 {
    run.run_json["cells"][0]["requests"]["retried"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0)
}

/// A suite over some of the flaky-api examples, copied into `dir`.
fn subset(dir: &Path, include: &[&str], defaults: &str) -> PathBuf {
    let suite = dir.join("kubevet.yaml");
    let globs: Vec<String> = include.iter().map(|g| format!("\"examples/{g}\"")).collect();
    std::fs::write(
        &suite,
        format!(
            "apiVersion: kubevet.dev/v1alpha1\nkind: Suite\nexamples: {{include: [{}]}}\ndefaults: {defaults}\n",
            globs.join(", ")
        ),
    )
    .expect("suite");
    support::copy_dir(&repo().join("tests/fixtures/flaky-api/examples"), &dir.join("examples"));
    suite
}

fn expected() -> BTreeMap<String, String> {
    EXPECTED.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
}

/// Nothing with this run's label is left: no namespace, no cluster-scoped object.
fn assert_nothing_left(run: &Run) {
    let id = run_id(run);
    let left = support::namespaces_of_run(&id);
    assert!(left.is_empty(), "namespaces {left:?} left by run {id}; its summary:\n{}", run.stdout);
    let roles = support::kubectl_ok(&["get", "clusterroles", "-l", &format!("kubevet.dev/run={id}"), "-o", "name"]);
    assert!(roles.trim().is_empty(), "cluster roles left by run {id}: {roles}");
}

#[test]
fn faults_everywhere_change_no_verdict_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let suite = repo().join("tests/fixtures/flaky-api/kubevet.yaml");
    let faulty = faulty(dir.path(), &["--seed", "7", "--rate", "0.08"]);
    // The same suite on the same cluster, without and with faults, side by side.
    let clean = run(&suite, &kubeconfig(), &dir.path().join("clean"), &[]);
    let flaky = run(&suite, &faulty.kubeconfig, &dir.path().join("flaky"), &[]);
    let (clean, flaky) = (finish(clean, &dir.path().join("clean")), finish(flaky, &dir.path().join("flaky")));
    let faults = injected(&faulty.log);
    eprintln!("faults injected: {faults:?}\nclean run:\n{}\nfaulted run:\n{}", clean.stdout, flaky.stdout);

    assert_eq!(clean.verdicts, expected(), "the fault-free run");
    assert_eq!(flaky.verdicts, clean.verdicts, "every verdict is the same with faults");
    assert_eq!((clean.code, flaky.code), (1, 1), "failures are the examples' own: exit 1 both times");
    assert!(faults.values().sum::<usize>() >= 10, "the proxy injected faults: {faults:?}");
    assert!(retries(&flaky) > 0, "retries are counted in run.json: {}", flaky.run_json);
    assert!(flaky.stdout.contains("API requests retried ("), "the summary says how many and why:\n{}", flaky.stdout);
    assert_nothing_left(&clean);
    assert_nothing_left(&flaky);
}

#[test]
fn faults_on_discovery_and_namespace_deletion_are_retried() {
    let dir = tempfile::tempdir().expect("tempdir");
    let suite = repo().join("tests/fixtures/flaky-api/kubevet.yaml");
    let faulty = faulty(dir.path(), &["--seed", "16", "--rate", "0.2", "--only", "discovery,ns-delete,ns-create"]);
    let flaky = finish(run(&suite, &faulty.kubeconfig, &dir.path().join("a"), &[]), &dir.path().join("a"));
    let faults = injected(&faulty.log);
    eprintln!("faults injected: {faults:?}\n{}", flaky.stdout);
    assert!(faults.keys().any(|k| k.ends_with(" discovery")), "discovery was faulted: {faults:?}");
    assert!(faults.keys().any(|k| k.ends_with(" ns-delete")), "namespace deletion was faulted: {faults:?}");
    assert!(faults.contains_key("lost-answer ns-create"), "a namespace was made but its answer lost: {faults:?}");
    assert_eq!(flaky.verdicts, expected());
    assert!(retries(&flaky) > 0);
    assert_nothing_left(&flaky);
}

#[test]
fn a_namespace_watch_that_stays_down_still_sees_the_namespaces_go() {
    // Every watch of namespaces fails (their lists do not): the DELETED events that cleanup waits
    // for never come, and each namespace's going must still be seen, never reported as left.
    let dir = tempfile::tempdir().expect("tempdir");
    let suite = subset(dir.path(), &["pass-01.yaml", "fail-1.yaml"], "{cleanupTimeout: 20s}");
    let faulty = faulty(dir.path(), &["--only", "ns-watch", "--fail-all", "503"]);
    let run = finish(run(&suite, &faulty.kubeconfig, &dir.path().join("a"), &[]), &dir.path().join("a"));
    let faults = injected(&faulty.log);
    eprintln!("faults injected: {faults:?}\n{}", run.stdout);
    assert!(faults.get("http-503 ns-watch").is_some_and(|n| *n >= 1), "the namespace watch failed: {faults:?}");
    assert_eq!(run.verdicts.len(), 2);
    assert_eq!(run.code, 1, "only fail-1 fails:\n{}", run.stdout);
    for case in ["examples.pass-01", "examples.fail-1"] {
        let result: Value = serde_json::from_str(
            &std::fs::read_to_string(run.artifacts.join(case).join("result.json")).expect("result.json"),
        )
        .expect("JSON");
        assert_eq!(result["leftBehind"], serde_json::json!([]), "{case}: {result}");
        assert!(result["cleanup"].is_null(), "{case}: {result}");
    }
    assert!(!run.stdout.contains("left behind"), "{}", run.stdout);
    assert_nothing_left(&run);
}

#[test]
fn requests_whose_answers_are_lost_are_repeated_safely() {
    // Every namespace create and delete, apply and generateName create is carried out by the
    // server the first time, and the client is told it failed: the repeat must find the work
    // already done, and make nothing twice.
    let dir = tempfile::tempdir().expect("tempdir");
    let suite = subset(
        dir.path(),
        &["pass-01.yaml", "fail-1.yaml", "generate-name*.yaml", "cluster-scoped.yaml"],
        "{cleanupTimeout: 90s}",
    );
    let faulty = faulty(dir.path(), &["--only", "ns-create,ns-delete,apply,create", "--lose-first"]);
    let run = finish(run(&suite, &faulty.kubeconfig, &dir.path().join("a"), &[]), &dir.path().join("a"));
    let faults = injected(&faulty.log);
    eprintln!("faults injected: {faults:?}\n{}", run.stdout);
    for class in ["ns-create", "ns-delete", "apply", "create"] {
        assert!(faults.get(&format!("lost-answer {class}")).is_some_and(|n| *n >= 2), "{class}: {faults:?}");
    }
    let expected: BTreeMap<String, String> =
        expected().into_iter().filter(|(name, _)| run.verdicts.contains_key(name)).collect();
    assert_eq!(run.verdicts.len(), 5);
    assert_eq!(run.verdicts, expected);
    assert_eq!(run.code, 1, "only fail-1 fails:\n{}", run.stdout);
    assert_nothing_left(&run);
    // The generateName Job was followed under the name the server gave it, and only one was made.
    let objects = std::fs::read_dir(run.artifacts.join("examples.generate-name/objects")).expect("objects");
    let jobs: Vec<String> = objects.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert!(jobs[0].starts_with("job.generated-") && jobs[0] != "job.generated-.yaml", "{jobs:?}");
}

#[test]
fn a_cluster_that_stays_down_is_an_error_never_a_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let suite =
        subset(dir.path(), &["pass-0[12].yaml", "fail-1.yaml"], "{apiRetry: {attempts: 3, budget: 5s}, timeout: 60s}");
    // Every server-side apply answers 503: the budget runs out, the case is not judged.
    let faulty = faulty(dir.path(), &["--only", "apply", "--fail-all", "503"]);
    let down = finish(run(&suite, &faulty.kubeconfig, &dir.path().join("a"), &[]), &dir.path().join("a"));
    for (name, verdict) in &down.verdicts {
        assert_eq!(verdict, "error", "{name}: an apply the cluster never took is not the example's failure");
    }
    assert_eq!(down.verdicts.len(), 3);
    let result: Value = serde_json::from_str(
        &std::fs::read_to_string(down.artifacts.join("examples.fail-1/result.json")).expect("result.json"),
    )
    .expect("JSON");
    let reason = result["reason"].as_str().unwrap_or("");
    assert!(reason.contains("503") && reason.contains("retried to its budget"), "{reason}");
    assert_eq!(down.run_json["cells"][0]["requests"]["exhausted"].as_u64(), Some(3), "{}", down.run_json);
    assert_eq!(down.code, 1);
    assert_nothing_left(&down);
}

#[test]
fn a_namespace_that_cannot_be_deleted_is_reported_and_kubevet_clean_removes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let suite =
        subset(dir.path(), &["pass-0[12].yaml", "cluster-scoped.yaml"], "{apiRetry: {attempts: 2, budget: 3s}}");
    let faulty = faulty(dir.path(), &["--only", "ns-delete", "--fail-all", "500"]);
    let run = finish(run(&suite, &faulty.kubeconfig, &dir.path().join("a"), &[]), &dir.path().join("a"));
    let id = run_id(&run);
    assert!(run.verdicts.values().all(|v| v == "passed"), "{:?}", run.verdicts);
    assert_eq!(run.code, 4, "every case passed but something was left behind:\n{}", run.stdout);
    assert!(run.stdout.contains("3 namespaces left behind: kv-"), "{}", run.stdout);
    assert!(run.stdout.contains(&format!("kubevet clean --run {id}")), "{}", run.stdout);
    let left = support::namespaces_of_run(&id);
    assert_eq!(left.len(), 3, "{left:?}");
    let result: Value = serde_json::from_str(
        &std::fs::read_to_string(run.artifacts.join("examples.pass-01/result.json")).expect("result.json"),
    )
    .expect("JSON");
    assert!(result["leftBehind"][0].as_str().unwrap_or("").starts_with("namespace kv-pass-01-"), "{result}");
    let system_out = std::fs::read_to_string(run.artifacts.join("junit.xml")).expect("junit");
    assert!(system_out.contains("left behind: namespace kv-pass-01-"), "the case's system-out says it");

    let cleaned = kubevet()
        .args(["clean", "--run", &id, "--suite"])
        .arg(&suite)
        .arg("--kubeconfig")
        .arg(kubeconfig())
        .output()
        .expect("kubevet clean runs");
    assert_eq!(cleaned.status.code(), Some(0), "{}", stdout(&cleaned));
    assert_eq!(stdout(&cleaned).matches("deleted namespace kv-").count(), 3, "{}", stdout(&cleaned));
    assert!(support::namespaces_of_run(&id).is_empty());
    // A second clean of the same run finds nothing. (`--all` is not tried here: tests run side
    // by side on one cluster, and it would take the namespaces of the others.)
    let again = kubevet()
        .args(["clean", "--run", &id, "--suite"])
        .arg(&suite)
        .arg("--kubeconfig")
        .arg(kubeconfig())
        .output()
        .expect("kubevet clean runs");
    assert_eq!(again.status.code(), Some(0));
    assert!(stdout(&again).contains("nothing left by kubevet (kubevet.dev/run="), "{}", stdout(&again));
}
