//! Jupyter notebooks as cases (`tests/fixtures/notebooks`): run by the real papermill with a
//! real ipykernel against the test cluster, each in its namespace. Read through junitparser,
//! `result.json` and the executed notebooks kubevet keeps.

mod support;

use serde_json::Value;
use support::{case, junit, repo, result_json, run_suite, stdout};

struct NotebookRun {
    code: Option<i32>,
    stdout: String,
    cases: Vec<Value>,
    artifacts: std::path::PathBuf,
    cache: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// The suite runs once; every check runs, and the test lists each one that failed.
#[test]
fn the_notebooks_suite() {
    let run = notebooks();
    let checks: &[support::Check<NotebookRun>] = &[
        ("exit code and every case", exit_code_is_1_and_every_notebook_is_a_case),
        ("a notebook that makes a Job", a_notebook_that_makes_a_job_in_its_namespace_passes),
        ("a cell that raises", a_cell_that_raises_fails_the_case_with_its_number_source_and_exception),
        ("parameters", parameters_reach_the_notebook_typed_as_the_suite_writes_them),
        ("timeout", a_notebook_past_its_timeout_is_stopped_with_its_kernel),
        ("local notebook", a_notebook_that_never_touches_the_cluster_is_judged_by_its_run),
        ("a workload left running", a_workload_left_running_is_waited_for),
        ("TrainJobs by the kubeflow SDK", trainjobs_the_sdk_made_are_judged_waited_for_or_not),
        ("a workload that fails", a_workload_that_fails_after_the_notebook_ends_fails_the_case),
        ("gpu: cpu", a_cpu_smoke_test_gives_the_notebook_the_suites_gpu_parameters),
        ("cleanup", no_namespace_and_no_kubeconfig_is_left_behind),
    ];
    support::all_checks(&run, checks);
}

fn notebooks() -> NotebookRun {
    let dir = tempfile::tempdir().expect("tempdir");
    let artifacts = dir.path().join("artifacts");
    let out = run_suite(&repo().join("tests/fixtures/notebooks/kubevet.yaml"), &artifacts);
    let cases = junit(&artifacts.join("junit.xml"));
    let cache = std::env::temp_dir().join(format!("kubevet-test-cache-{}", std::process::id()));
    NotebookRun { code: out.status.code(), stdout: stdout(&out), cases, artifacts, cache, _dir: dir }
}

fn reason(run: &NotebookRun, id: &str) -> String {
    result_json(&run.artifacts, id)["reason"].as_str().unwrap_or_default().to_string()
}

fn exit_code_is_1_and_every_notebook_is_a_case(run: &NotebookRun) {
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    let names: Vec<&str> = run.cases.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names.len(), 9, "{names:?}");
    assert!(run.cases.iter().all(|c| c["classname"] == "notebook"), "{:#?}", run.cases);
}

fn a_notebook_that_makes_a_job_in_its_namespace_passes(run: &NotebookRun) {
    let c = case(&run.cases, "examples/creates-job.ipynb");
    assert_eq!(c["result"], "passed", "{c:#}");
    // The notebook asserted that kubectl's namespace (its kubeconfig's context) is the case's.
    assert_eq!(reason(run, "examples.creates-job"), "the notebook ran to its end; Job trained: Complete");
    let dir = run.artifacts.join("examples.creates-job");
    let executed: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("notebook.ipynb")).expect("the executed notebook"))
            .expect("JSON");
    let printed = executed.to_string();
    assert!(printed.contains("case examples/creates-job.ipynb in kv-creates-job-"), "outputs are kept: {printed}");
    let text = std::fs::read_to_string(dir.join("notebook.txt")).expect("the text rendering");
    assert!(text.contains("── cell 4 · code In [3] (completed)"), "{text}");
    // The Job it made is collected like any workload, with its pod's log.
    assert!(dir.join("objects/job.trained.yaml").is_file(), "the Job's state is collected");
    let logs = std::fs::read_dir(dir.join("pods")).expect("pods").flatten().count();
    assert!(logs > 0, "the Job's pod is collected");
}

fn a_cell_that_raises_fails_the_case_with_its_number_source_and_exception(run: &NotebookRun) {
    let c = case(&run.cases, "examples/raises-in-cell-3.ipynb");
    assert_eq!(c["result"], "failure", "{c:#}");
    assert_eq!(
        c["message"], "test: cell 3 (`if losses[-1] > losses[-2]:`) raised ValueError: the loss went up: 0.8 -> 0.85",
        "{c:#}"
    );
    let out = c["system_out"].as_str().unwrap_or("");
    assert!(
        out.contains("Traceback (most recent call last)") && !out.contains('\u{1b}'),
        "the traceback, plain: {out}"
    );
    let result = result_json(&run.artifacts, "examples.raises-in-cell-3");
    assert_eq!((result["notebook"]["failedCell"].as_u64(), result["notebook"]["ran"].as_u64()), (Some(3), Some(3)));
}

fn parameters_reach_the_notebook_typed_as_the_suite_writes_them(run: &NotebookRun) {
    let c = case(&run.cases, "examples/parameters.ipynb");
    assert_eq!(c["result"], "passed", "the notebook's own asserts held: {c:#}");
    let text = std::fs::read_to_string(run.artifacts.join("examples.parameters/notebook.txt")).expect("text");
    assert!(text.contains("training tuned for 3 epochs, seed 007"), "{text}");
}

fn a_notebook_past_its_timeout_is_stopped_with_its_kernel(run: &NotebookRun) {
    let c = case(&run.cases, "examples/times-out.ipynb");
    assert_eq!(c["result"], "failure", "{c:#}");
    assert_eq!(
        c["message"],
        "timeout: the notebook was still running after 25s, in cell 1 (`import subprocess, time`); stopped with its kernel",
        "{c:#}"
    );
    // The kernel ran in a session of its own; its child must be gone with it.
    let left = std::process::Command::new("pgrep").args(["-f", "^sleep 987$"]).output().expect("pgrep runs");
    assert_eq!(left.status.code(), Some(1), "a process of the kernel outlived the case: {}", stdout(&left));
}

fn a_notebook_that_never_touches_the_cluster_is_judged_by_its_run(run: &NotebookRun) {
    assert_eq!(case(&run.cases, "examples/local-only.ipynb")["result"], "passed");
    assert_eq!(reason(run, "examples.local-only"), "the notebook ran to its end; it made no workload");
}

fn a_workload_left_running_is_waited_for(run: &NotebookRun) {
    let c = case(&run.cases, "examples/leaves-job-running.ipynb");
    assert_eq!(c["result"], "passed", "{c:#}");
    assert_eq!(reason(run, "examples.leaves-job-running"), "the notebook ran to its end; Job background: Complete");
    let result = result_json(&run.artifacts, "examples.leaves-job-running");
    // The Job sleeps 6 s after the notebook returns: kubevet's verdict came after it.
    let after = result["notebook"]["verdictAfterSeconds"].as_f64().unwrap_or(0.0);
    assert!(after >= 4.0, "the verdict waited for the Job: {after}");
    assert_eq!(result["notebook"]["workloads"], serde_json::json!(["Job/background"]));
    // The Job's pod is measured as an example's is: it ran 6 s, so it was sampled.
    let usage = result["usage"].as_array().cloned().unwrap_or_default();
    let pod = usage.iter().find(|u| u["pod"].as_str().is_some_and(|p| p.starts_with("background-")));
    assert!(pod.is_some_and(|u| u["coverage"].as_f64().is_some_and(|c| c > 0.0)), "{usage:#?}");
}

/// On the TEST STAND-IN Trainer v2: one TrainJob the notebook waited for with the SDK, one it
/// left running, which kubevet waits for.
fn trainjobs_the_sdk_made_are_judged_waited_for_or_not(run: &NotebookRun) {
    let c = case(&run.cases, "examples/sdk-trainjobs.ipynb");
    assert_eq!(c["result"], "passed", "{c:#}");
    let result = result_json(&run.artifacts, "examples.sdk-trainjobs");
    let workloads = result["notebook"]["workloads"].as_array().cloned().unwrap_or_default();
    assert_eq!(workloads.len(), 2, "{result:#}");
    assert!(workloads.iter().all(|w| w.as_str().is_some_and(|w| w.starts_with("TrainJob/"))), "{result:#}");
    let why = reason(run, "examples.sdk-trainjobs");
    assert!(
        why.matches("TrainJob ").count() == 2
            && why.ends_with(": Complete: AllJobsCompleted: jobset completed successfully"),
        "{why}"
    );
    let after = result["notebook"]["verdictAfterSeconds"].as_f64().unwrap_or(0.0);
    assert!(after >= 3.0, "the verdict waited for the TrainJob left running: {after}");
}

fn a_workload_that_fails_after_the_notebook_ends_fails_the_case(run: &NotebookRun) {
    let c = case(&run.cases, "examples/workload-fails.ipynb");
    assert_eq!(c["result"], "failure", "{c:#}");
    let message = c["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with("test: the notebook ran to its end; Job diverges: Failed: BackoffLimitExceeded"),
        "{message}"
    );
}

fn a_cpu_smoke_test_gives_the_notebook_the_suites_gpu_parameters(run: &NotebookRun) {
    let c = case(&run.cases, "examples/gpu-parameters.ipynb");
    assert_eq!(c["result"], "passed", "the notebook saw num_gpu == 0: {c:#}");
    assert_eq!(c["properties"]["gpu.cpuSmokeTest"], "num_gpu=0", "{c:#}");
    let said = reason(run, "examples.gpu-parameters");
    assert_eq!(said, "CPU smoke test (with num_gpu=0): the notebook ran to its end; it made no workload");
}

fn no_namespace_and_no_kubeconfig_is_left_behind(run: &NotebookRun) {
    support::no_namespace_left(&run.cases);
    // The kubeconfigs given to the notebooks hold credentials: none stays in the cache.
    let kept = std::fs::read_dir(run.cache.join("notebook-kubeconfigs")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(kept, 0, "kubeconfigs left in {}", run.cache.display());
}
