//! `kubevet run` against the test cluster on the outcomes scenario: one example per behaviour,
//! checked through the exit code, the JUnit file (read by junitparser) and the artifacts.

mod support;

use serde_json::Value;
use support::{case, junit, kubevet, repo};

struct Run {
    code: i32,
    stdout: String,
    cases: Vec<Value>,
    artifacts: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// The scenario runs once (nextest gives every test its own process, so one test holds all
/// the checks); every check runs, and the test lists each one that failed.
#[test]
fn the_outcomes_scenario() {
    let run = outcomes();
    let checks: &[support::Check<Run>] = &[
        ("exit code and case order", exit_code_is_1_and_every_case_is_reported_once_in_path_order),
        ("passing job", a_passing_job_passes_with_its_properties_and_evidence),
        ("failing PyTorchJob", a_failing_pytorchjob_ends_at_once_with_the_operator_reason_and_the_failing_log),
        ("hanging TFJob", a_tfjob_that_never_finishes_times_out_naming_its_phase),
        ("missing image", a_missing_image_fails_fast_with_the_pods_reason),
        ("rejected by the server", a_rejected_object_is_the_examples_fault_whatever_its_name_says),
        ("multi-document example", a_configmap_and_a_job_in_one_file_run_together),
        ("hard-coded namespace", a_hard_coded_namespace_is_replaced_by_the_cases_own),
        ("log thresholds", log_thresholds_pass_and_fail_on_the_line_they_read),
        (
            "errors, expected failures, skips",
            an_example_without_a_workload_is_an_error_and_expected_failures_and_skips_are_honoured,
        ),
        ("cleanup", no_case_namespace_is_left_behind),
    ];
    support::all_checks(&run, checks);
}

/// The command is spelled out (not `support::run_suite`): it also checks that `--junit` puts
/// the report where asked.
fn outcomes() -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let artifacts = dir.path().join("artifacts");
    let out = kubevet()
        .args(["run", "--suite"])
        .arg(repo().join("tests/fixtures/outcomes/kubevet.yaml"))
        .arg("--kubeconfig")
        .arg(support::kubeconfig())
        .arg("--artifacts")
        .arg(&artifacts)
        .arg("--junit")
        .arg(dir.path().join("junit.xml"))
        .output()
        .expect("kubevet runs");
    let cases = junit(&dir.path().join("junit.xml"));
    Run { code: out.status.code().unwrap_or(-1), stdout: support::stdout(&out), cases, artifacts, _dir: dir }
}

fn result_json(run: &Run, id: &str) -> Value {
    let text = std::fs::read_to_string(run.artifacts.join(id).join("result.json")).expect("result.json");
    serde_json::from_str(&text).expect("result.json is JSON")
}

fn exit_code_is_1_and_every_case_is_reported_once_in_path_order(run: &Run) {
    assert_eq!(run.code, 1, "{}", run.stdout);
    let names: Vec<&str> = run.cases.iter().map(|c| c["name"].as_str().unwrap_or("")).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert_eq!(names.len(), 12);
    assert!(run.cases.iter().all(|c| c["suite"] == "outcomes" && c["suite_tests"] == 12));
    assert!(run.stdout.contains("5 passed, 5 failed, 1 errors, 1 skipped, 0 interrupted"), "{}", run.stdout);
}

fn a_passing_job_passes_with_its_properties_and_evidence(run: &Run) {
    let c = case(&run.cases, "examples/passing-job.yaml");
    assert_eq!(c["result"], "passed");
    assert_eq!(c["classname"], "job");
    assert_eq!(c["properties"]["kubernetes.version"], "v1.20.2");
    assert_eq!(c["properties"]["timeout"], "2m0s");
    assert!(c["properties"]["namespace"].as_str().is_some_and(|n| n.starts_with("kv-passing-job-")));
    let result = result_json(run, "examples.passing-job");
    let pod = result["pods"][0].as_str().expect("a pod");
    let log = std::fs::read_to_string(run.artifacts.join("examples.passing-job/pods").join(pod).join("main.log"))
        .expect("log");
    assert_eq!(log, "all good\n");
    let phases: Vec<&str> =
        result["phases"].as_array().expect("phases").iter().map(|p| p["name"].as_str().unwrap_or("")).collect();
    assert_eq!(phases, ["apply", "scheduling", "running", "collecting", "cleanup"]);
    assert!(run.artifacts.join("examples.passing-job/objects/job.passing.yaml").is_file());
    let events = std::fs::read_to_string(run.artifacts.join("examples.passing-job/events.txt")).expect("events");
    assert!(events.contains("Scheduled"), "{events}");
}

fn a_failing_pytorchjob_ends_at_once_with_the_operator_reason_and_the_failing_log(run: &Run) {
    let c = case(&run.cases, "examples/failing-pytorchjob.yaml");
    assert_eq!(c["result"], "failure");
    assert_eq!(c["classname"], "pytorchjob");
    let message = c["message"].as_str().unwrap_or("");
    assert!(message.starts_with("test: Failed: PyTorchJobFailed: "), "{message}");
    assert_eq!(c["properties"]["class"], "test");
    // The operator's reason, then the container that failed it.
    assert!(
        message.ends_with(
            "is failed because 1 Master replica(s) failed. (pod failing-master-0 container pytorch exited with code 3)"
        ),
        "{message}"
    );
    let seconds = c["time"].as_f64().expect("time");
    assert!(seconds < 30.0, "took {seconds}s of a 120s timeout: the failure was not detected early");
    let out = c["system_out"].as_str().unwrap_or("");
    assert!(out.contains("RuntimeError: CUDA out of memory (simulated)"), "{out}");
    assert!(out.contains("artifacts: "), "{out}");
}

fn a_tfjob_that_never_finishes_times_out_naming_its_phase(run: &Run) {
    let c = case(&run.cases, "examples/hanging-tfjob.yaml");
    assert_eq!(c["result"], "failure");
    assert_eq!(c["message"], "timeout: timed out after 30s while Running");
    assert_eq!(c["properties"]["class"], "timeout");
    assert_eq!(c["properties"]["timeout"], "30s");
}

fn a_missing_image_fails_fast_with_the_pods_reason(run: &Run) {
    let c = case(&run.cases, "examples/image-pull.yaml");
    assert_eq!(c["result"], "failure");
    let message = c["message"].as_str().unwrap_or("");
    // The registry (localhost:1) refuses the connection: the infrastructure's fault.
    assert!(message.starts_with("infrastructure: pod missing-image-"), "{message}");
    assert!(message.contains(": ErrImagePull: ") || message.contains(": ImagePullBackOff: "), "{message}");
    let seconds = c["time"].as_f64().expect("time");
    assert!(seconds < 60.0, "took {seconds}s of a 120s timeout");
}

fn a_rejected_object_is_the_examples_fault_whatever_its_name_says(run: &Run) {
    let c = case(&run.cases, "examples/forbidden-access.yaml");
    assert_eq!(c["result"], "failure", "{c:#?}");
    assert_eq!(c["properties"]["class"], "example", "a 422 is the example's, though its name says forbidden");
    let message = c["message"].as_str().unwrap_or("");
    assert!(message.starts_with("example: apply (examples/forbidden-access.yaml:"), "{message}");
    assert!(message.contains("spec.template.spec.restartPolicy") && message.ends_with("(422)"), "{message}");
}

fn a_configmap_and_a_job_in_one_file_run_together(run: &Run) {
    assert_eq!(case(&run.cases, "examples/configmap-job.yaml")["result"], "passed");
    assert!(run.artifacts.join("examples.configmap-job/objects/configmap.settings.yaml").is_file());
}

fn a_hard_coded_namespace_is_replaced_by_the_cases_own(run: &Run) {
    let c = case(&run.cases, "examples/namespace-kubeflow.yaml");
    assert_eq!(c["result"], "passed");
    let ns = c["properties"]["namespace"].as_str().expect("namespace");
    let result = result_json(run, "examples.namespace-kubeflow");
    let pod = result["pods"][0].as_str().expect("a pod");
    let log =
        std::fs::read_to_string(run.artifacts.join("examples.namespace-kubeflow/pods").join(pod).join("main.log"))
            .expect("log");
    assert_eq!(log.trim(), format!("running in {ns}"));
}

fn log_thresholds_pass_and_fail_on_the_line_they_read(run: &Run) {
    assert_eq!(case(&run.cases, "examples/log-threshold-pass.yaml")["result"], "passed");
    let c = case(&run.cases, "examples/log-threshold-fail.yaml");
    assert_eq!(c["result"], "failure");
    let message = c["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with("test: log assertion failed: workload's log: /accuracy=([0-9.]+)/ >= 0.9: read 0.42"),
        "{message}"
    );
}

fn an_example_without_a_workload_is_an_error_and_expected_failures_and_skips_are_honoured(run: &Run) {
    let c = case(&run.cases, "examples/no-workload.yaml");
    assert_eq!(c["result"], "error");
    assert!(c["message"].as_str().unwrap_or("").starts_with("example: no workload in this example"));
    let expected = case(&run.cases, "examples/expected-failure.yaml");
    assert_eq!(expected["result"], "passed");
    let skipped = case(&run.cases, "examples/skipped.yaml");
    assert_eq!(skipped["result"], "skipped");
    assert_eq!(skipped["message"], "shows that a skip reason reaches the report");
}

fn no_case_namespace_is_left_behind(run: &Run) {
    support::no_namespace_left(&run.cases);
}
