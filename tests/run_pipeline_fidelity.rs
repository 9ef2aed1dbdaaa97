//! Pipeline cases against the TEST STAND-IN KFP in its KFP 2.17.0 shape (its default): Argo's
//! retry nodes named `(N)`, a driver pod per task, caching on as KFP's is, KFP's run state
//! reported only after a persistence lag, `compressedNodes`, and a run KFP refuses with no
//! failing task. Each is read through the `kubevet` binary, in `result.json` and JUnit.

mod support;

use std::{path::Path, process::Command};

use serde_json::Value;
use support::{case, junit, kubevet, repo, stderr, stdout};

const KFP: &str = "http://127.0.0.1:8888";

fn fixture(name: &str) -> std::path::PathBuf {
    repo().join("tests/fixtures/pipelines").join(name)
}

use support::result_json as result;

fn run(suite: &Path, artifacts: &Path, select: &[&str]) -> std::process::Output {
    let mut cmd = kubevet();
    cmd.args(["run", "--no-history", "--suite"]).arg(suite);
    for s in select {
        cmd.args(["--select", s]);
    }
    cmd.arg("--kubeconfig").arg(support::kubeconfig()).arg("--artifacts").arg(artifacts).output().expect("kubevet runs")
}

/// (task, role, state, attempts, cached) of every row.
fn rows(r: &Value) -> Vec<(String, String, String, u64, bool)> {
    r["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["task"].as_str().unwrap_or_default().to_string(),
                t["role"].as_str().unwrap_or_default().to_string(),
                t["state"].as_str().unwrap_or_default().to_string(),
                t["attempts"].as_u64().unwrap_or(99),
                t["cached"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

fn user_tasks(r: &Value) -> Vec<(String, String, u64, bool)> {
    rows(r).into_iter().filter(|t| t.1 == "task").map(|(task, _, state, n, cached)| (task, state, n, cached)).collect()
}

fn executed(task: &str) -> (String, String, u64, bool) {
    (task.into(), "Succeeded".into(), 1, false)
}

#[test]
fn kfp_2_17_shapes_are_read_as_tasks_with_a_verdict_from_kfp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("a");
    let out = run(&fixture("kubevet.fidelity.yaml"), &a, &[]);
    let text = format!("{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "one case is refused by KFP: {text}");

    // Retry nodes and drivers: one row per task, named by its DAG task, and one per driver.
    let cached = result(&a, "fidelity.cached-twice");
    assert_eq!(cached["outcome"], "passed", "{cached:#}");
    assert_eq!(user_tasks(&cached), vec![executed("first"), executed("second")], "{cached:#}");
    let drivers: Vec<String> = rows(&cached).into_iter().filter(|t| t.1 == "driver").map(|t| t.0).collect();
    assert_eq!(drivers, ["first", "second"], "{cached:#}");
    assert!(rows(&cached).iter().all(|t| !t.0.contains('(') && !t.0.contains("executor")), "{cached:#}");
    assert_eq!(cached["pipeline"]["cachingTurnedOff"], 2, "both tasks' cache turned off before upload");
    let workflow: Value = serde_json::from_str(
        &std::fs::read_to_string(a.join("fidelity.cached-twice/workflow.json")).expect("workflow.json"),
    )
    .expect("JSON");
    let names: Vec<&str> =
        workflow["status"]["nodes"].as_object().expect("nodes").values().filter_map(|n| n["name"].as_str()).collect();
    assert!(names.iter().any(|n| n.ends_with(".root.second(0).executor(0)")), "2.17.0's names: {names:?}");

    // The same pipeline again: KFP's cache would answer it; with caching off every task runs.
    let b = dir.path().join("b");
    let again = run(&fixture("kubevet.fidelity.yaml"), &b, &["fidelity/cached-twice.yaml"]);
    assert_eq!(again.status.code(), Some(0), "{}\n{}", stdout(&again), stderr(&again));
    assert_eq!(user_tasks(&result(&b, "fidelity.cached-twice")), vec![executed("first"), executed("second")]);

    // KFP reports the end 35 s after the Workflow's: waited for (not the old 30 s), and measured.
    let lagging = result(&a, "fidelity.lagging_kfp");
    assert_eq!(lagging["outcome"], "passed", "{lagging:#}");
    assert_eq!(lagging["pipeline"]["verdictFrom"], "kfp");
    let lag = lagging["pipeline"]["stateLagSeconds"].as_f64().expect("the lag is recorded");
    assert!((33.0..100.0).contains(&lag), "lag {lag}");
    // An underscore in the case id: every name kubevet gives KFP is one KFP takes.
    let name = lagging["pipeline"]["pipeline"].as_str().expect("the pipeline's name");
    assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'), "{name}");
    assert!(name.starts_with("fidelity-lagging-kfp-") && name.len() <= 128, "{name}");

    // A Workflow whose nodes Argo compressed still has its task table.
    let large = result(&a, "fidelity.large-workflow");
    let large_wf: Value = serde_json::from_str(
        &std::fs::read_to_string(a.join("fidelity.large-workflow/workflow.json")).expect("workflow.json"),
    )
    .expect("JSON");
    assert!(large_wf["status"]["compressedNodes"].is_string() && large_wf["status"]["nodes"].is_null(), "{large_wf:#}");
    assert_eq!(user_tasks(&large), vec![executed("first"), executed("second")], "{large:#}");

    // KFP 2.15's shape (no retry nodes, no driver pods) reads the same.
    let legacy = result(&a, "fidelity.legacy-names");
    assert_eq!(user_tasks(&legacy), vec![executed("first"), executed("second")], "{legacy:#}");

    // KFP refused the run before any task ran: its own message, and the pipeline's fault.
    let refused = result(&a, "fidelity.refused-nested-dag");
    assert_eq!(
        (refused["outcome"].as_str(), refused["class"].as_str()),
        (Some("failed"), Some("example")),
        "{refused:#}"
    );
    let reason = refused["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("task inner: nested DAGs are not supported by this TEST STAND-IN"), "{reason}");

    // The summary names the largest lag; JUnit carries task names without retry suffixes.
    assert!(stdout(&out).contains("largest KFP state lag: "), "{}", stdout(&out));
    let cases = junit(&a.join("junit.xml"));
    let junit_case = case(&cases, "fidelity/cached-twice.yaml");
    assert_eq!(junit_case["properties"]["pipeline.tasks"], "first, second", "{junit_case:#}");
}

#[test]
fn past_the_state_lag_the_workflow_decides_and_that_is_said() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(&fixture("kubevet.lag.yaml"), dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let lagging = result(dir.path(), "fidelity.lagging_kfp");
    assert_eq!(lagging["outcome"], "passed", "{lagging:#}");
    assert_eq!(lagging["pipeline"]["verdictFrom"], "workflow");
    let reason = lagging["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("by the Workflow's phase: KFP still reported RUNNING"), "{reason}");
    let lag = lagging["pipeline"]["stateLagSeconds"].as_f64().expect("lag");
    assert!((5.0..20.0).contains(&lag), "waited the suite's 5 s stateLag, not KFP's 35 s: {lag}");
}

#[test]
fn tasks_hand_on_artifacts_and_if_present_clauses_are_filled_every_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Twice in a row: caching turned off by kubevet, so the second run executes every task too.
    for attempt in ["first", "second"] {
        let artifacts = dir.path().join(attempt);
        let out = run(&fixture("kubevet.artifacts.yaml"), &artifacts, &[]);
        assert_eq!(out.status.code(), Some(0), "{attempt}: {}\n{}", stdout(&out), stderr(&out));
        let r = result(&artifacts, "fidelity.artifacts-and-placeholders");
        assert_eq!(r["outcome"], "passed", "{attempt}: {r:#}");
        let mut tasks = user_tasks(&r);
        tasks.sort();
        assert_eq!(tasks, [executed("consume"), executed("produce")], "{attempt}: {r:#}");
        // The consumer read the producer's file and got `--absent --given=x`, not KFP's JSON.
        let consume =
            r["tasks"].as_array().into_iter().flatten().find(|t| t["task"] == "consume" && t["role"] == "task");
        let pod = consume.and_then(|t| t["pod"].as_str()).expect("the consumer's pod");
        let log = std::fs::read_to_string(
            artifacts.join("fidelity.artifacts-and-placeholders/pods").join(pod).join("main.log"),
        )
        .expect("the consumer's log is kept");
        assert!(log.contains("args: --absent --given=x") && log.contains("read: hello from the producer"), "{log}");
    }
}

#[test]
fn a_kfp_read_that_fails_is_an_error_naming_its_cause_never_a_default_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(&fixture("kubevet.unreadable-run.yaml"), dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));

    // Never read: the case is the infrastructure's error, with KFP's own answer as its cause.
    let unreadable = result(dir.path(), "faults.unreadable-run");
    assert_eq!(
        (&unreadable["outcome"], &unreadable["class"]),
        (&"error".into(), &"infrastructure".into()),
        "{unreadable:#}"
    );
    let run_id = unreadable["pipeline"]["runId"].as_str().expect("the run was created");
    let reason = unreadable["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(&format!("reading run {run_id} from KFP after the Workflow ended")), "{reason}");
    assert!(
        reason.contains("500") && reason.contains("Failed to get run") && reason.contains("connection refused"),
        "{reason}"
    );
    assert_ne!(unreadable["pipeline"]["state"], "RUNTIME_STATE_UNSPECIFIED", "no default state: {unreadable:#}");

    // Read once (still RUNNING), then not: that read is kept, the Workflow's phase decides
    // past the stateLag, and the failed reads are said with their cause.
    let later = result(dir.path(), "faults.reads-fail-later");
    assert_eq!(later["outcome"], "passed", "{later:#}");
    assert_eq!(later["pipeline"]["verdictFrom"], "workflow");
    assert_eq!(later["pipeline"]["state"], "RUNNING", "the last good read");
    let reason = later["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("by the Workflow's phase: KFP last reported RUNNING, then reading the run failed (HTTP 500: ")
            && reason.contains("Failed to get run"),
        "{reason}"
    );
}

/// Runs a compiled pipeline through the official SDK and keeps the run: its tasks' outputs
/// stay in KFP's cache. Returns the run's id.
fn seed_cache(file: &Path, pipeline_name: Option<&str>) -> String {
    let script = r#"
import sys, kfp
path, host, name = sys.argv[1], sys.argv[2], sys.argv[3]
c = kfp.Client(host=host)
if name:
    pid = c.get_pipeline_id(name) or c.upload_pipeline(path, pipeline_name=name).pipeline_id
    vid = c.list_pipeline_versions(pid).pipeline_versions[0].pipeline_version_id
    e = c.create_experiment("kubevet-cache-seed")
    run = c.run_pipeline(e.experiment_id, "seed", pipeline_id=pid, version_id=vid)
else:
    run = c.create_run_from_pipeline_package(path, arguments={}, run_name="seed")
done = c.wait_for_run_completion(run.run_id, timeout=120)
assert done.state == "SUCCEEDED", done.state
print(run.run_id)
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(file)
        .arg(KFP)
        .arg(pipeline_name.unwrap_or(""))
        .output()
        .expect("python3");
    assert!(out.status.success(), "seeding KFP's cache: {}", stderr(&out));
    stdout(&out).trim().lines().last().expect("the run's id").to_string()
}

fn delete_run(run_id: &str) {
    let script = "import sys, kfp; kfp.Client(host=sys.argv[1]).delete_run(sys.argv[2])";
    let out = Command::new("python3").args(["-c", script, KFP, run_id]).output().expect("python3");
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_run_answered_from_kfps_cache_passes_only_when_caching_was_asked_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seed = seed_cache(&fixture("fidelity/cached-twice.yaml"), None);

    // Caching asked for: KFP's cache answers both tasks; they are marked so, and it passes.
    let out = run(&fixture("kubevet.caching.yaml"), &dir.path().join("a"), &[]);
    let text = format!("{}\n{}", stdout(&out), stderr(&out));
    let taken = result(&dir.path().join("a"), "fidelity.cached-twice");
    assert_eq!(out.status.code(), Some(0), "{text}\n{taken:#}");
    let cached = |t: &str| (t.to_string(), "Skipped".to_string(), 0, true);
    assert_eq!(user_tasks(&taken), vec![cached("first"), cached("second")], "{taken:#}");
    assert!(taken["pipeline"]["cachingTurnedOff"].is_null());

    // By default kubevet turns the cache off before the upload: the same run executes.
    let out = run(&fixture("kubevet.fidelity.yaml"), &dir.path().join("b"), &["fidelity/cached-twice.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        user_tasks(&result(&dir.path().join("b"), "fidelity.cached-twice")),
        vec![executed("first"), executed("second")]
    );
    delete_run(&seed);
}

#[test]
fn a_pipeline_already_in_kfp_whose_every_task_was_cached_is_not_a_pass() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Its own pipelineInfo.name: no other test's cache entry can touch it.
    let text = std::fs::read_to_string(fixture("fidelity/cached-twice.yaml")).expect("fixture");
    let file = dir.path().join("existing-cached.yaml");
    std::fs::write(&file, text.replace("name: fidelity-cached-twice", "name: fidelity-existing-cached"))
        .expect("write");
    let seed = seed_cache(&file, Some("fidelity-existing-cached"));

    let out = run(&fixture("kubevet.existing-cached.yaml"), &dir.path().join("a"), &[]);
    let r = result(&dir.path().join("a"), "pipelines.fidelity-existing-cached");
    assert_eq!(out.status.code(), Some(1), "{}\n{r:#}", stderr(&out));
    assert_eq!((r["outcome"].as_str(), r["class"].as_str()), (Some("failed"), Some("example")), "{r:#}");
    let reason = r["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("no task executed: every task's outputs came from KFP's cache (first, second)"),
        "{reason}"
    );
    delete_run(&seed);
}

#[test]
fn a_multi_user_kfp_is_reached_with_an_identity_and_its_runs_live_in_the_profile_namespace() {
    // The user's profile namespace, as Kubeflow's profile controller would make it.
    let exists = support::kubectl_ok(&["get", "ns", "kubevet-profile-alice", "--ignore-not-found", "-o", "name"]);
    if exists.trim().is_empty() {
        support::kubectl_ok(&["create", "ns", "kubevet-profile-alice"]);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(&fixture("kubevet.multi-user.yaml"), &dir.path().join("a"), &[]);
    let r = result(&dir.path().join("a"), "fidelity.cached-twice");
    assert_eq!(out.status.code(), Some(0), "{}\n{r:#}", stderr(&out));
    assert_eq!(user_tasks(&r), vec![executed("first"), executed("second")], "{r:#}");
    let workflow: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("a/fidelity.cached-twice/workflow.json")).expect("workflow.json"),
    )
    .expect("JSON");
    assert_eq!(workflow["metadata"]["namespace"], "kubevet-profile-alice", "the run lives in the profile namespace");

    // No identity: said, with what to set, as the infrastructure's error (no retry can fix it,
    // but it is not the pipeline's fault either).
    let out = run(&fixture("kubevet.multi-user-anonymous.yaml"), &dir.path().join("b"), &[]);
    let r = result(&dir.path().join("b"), "fidelity.cached-twice");
    assert_eq!(out.status.code(), Some(1), "{}\n{r:#}", stderr(&out));
    assert_eq!((r["outcome"].as_str(), r["class"].as_str()), (Some("error"), Some("infrastructure")), "{r:#}");
    let reason = r["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("multi-user mode") && reason.contains("set pipelines.user"), "{reason}");
}
