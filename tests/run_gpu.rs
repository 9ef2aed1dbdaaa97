//! Examples that ask for a GPU, a TPU or a device plugin's resource on the test cluster, which
//! offers none: skipped at once and never retried (`tests/fixtures/gpu/kubevet.yaml`, whose
//! infrastructure errors are retried twice), or run as CPU smoke tests where the suite says
//! so (`kubevet.cpu.yaml`). Read through junitparser, `result.json` and the collected objects.

mod support;

use serde_json::Value;
use support::{case, junit, repo, result_json, run_suite, stdout};

struct GpuRun {
    stdout: String,
    cases: Vec<Value>,
    artifacts: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn run(suite: &str) -> GpuRun {
    let dir = tempfile::tempdir().expect("tempdir");
    let artifacts = dir.path().join("artifacts");
    let out = run_suite(&repo().join("tests/fixtures/gpu").join(suite), &artifacts);
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "skips and smoke tests do not fail the run: {text}{}",
        support::stderr(&out)
    );
    let cases = junit(&artifacts.join("junit.xml"));
    support::no_namespace_left(&cases);
    GpuRun { stdout: text, cases, artifacts, _dir: dir }
}

#[test]
fn gpu_examples_on_a_cluster_without_gpus_are_skipped_at_once_and_never_retried() {
    let run = run("kubevet.yaml");
    let gpu = case(&run.cases, "examples/gpu-job.yaml");
    assert_eq!(gpu["result"], "skipped", "{gpu:#}");
    assert_eq!(gpu["message"], "needs nvidia.com/gpu: no node of this cluster offers it", "{gpu:#}");
    assert_eq!(gpu["properties"]["resources.unoffered"], "nvidia.com/gpu", "{gpu:#}");
    assert!(gpu["properties"]["attempts"].is_null(), "never retried: {gpu:#}");
    let result = result_json(&run.artifacts, "examples.gpu-job");
    assert_eq!((result["outcome"].as_str(), result["attempts"].as_array().map(Vec::len)), (Some("skipped"), Some(0)));
    // Decided before anything was made: no namespace was created for it.
    assert!(result["namespace"].is_null(), "{result:#}");

    // A resource only the pod shows (a LimitRange's default): skipped when the pod cannot be
    // scheduled, after the failure grace, never retried though the suite retries the cluster's faults.
    let dongle = case(&run.cases, "examples/limitrange-dongle.yaml");
    assert_eq!(dongle["result"], "skipped", "{dongle:#}");
    assert_eq!(dongle["message"], "needs example.com/dongle: no node of this cluster offers it", "{dongle:#}");
    assert!(dongle["properties"]["attempts"].is_null() && dongle["properties"]["class"].is_null(), "{dongle:#}");
    assert!(dongle["properties"]["namespace"].is_string(), "{dongle:#}");

    // The override's `gpu: cpu`: the TPU taken out, the PyTorchJob judged by its own state.
    let tpu = case(&run.cases, "examples/tpu-pytorchjob.yaml");
    assert_eq!(tpu["result"], "passed", "{tpu:#}");
    assert_eq!(tpu["properties"]["gpu.cpuSmokeTest"], "google.com/tpu limits, google.com/tpu requests", "{tpu:#}");
    let reason = result_json(&run.artifacts, "examples.tpu-pytorchjob")["reason"].as_str().unwrap_or("").to_string();
    assert!(
        reason.starts_with("CPU smoke test (without google.com/tpu limits, google.com/tpu requests): Succeeded"),
        "{reason}"
    );

    // A scenario whose step applies a GPU Job: skipped as the example is, before any step.
    let scenario = case(&run.cases, "scenarios/gpu-scenario.yaml");
    assert_eq!(scenario["result"], "skipped", "{scenario:#}");
    assert_eq!(scenario["message"], "needs nvidia.com/gpu: no node of this cluster offers it", "{scenario:#}");
    assert!(result_json(&run.artifacts, "scenarios.gpu-scenario")["namespace"].is_null());
    // A pipeline whose task asks for an accelerator (KFP's set_accelerator_type): skipped
    // before anything is uploaded to KFP.
    let pipeline = case(&run.cases, "examples/gpu-pipeline.yaml");
    assert_eq!(pipeline["result"], "skipped", "{pipeline:#}");
    assert_eq!(pipeline["message"], "needs nvidia.com/gpu: no node of this cluster offers it", "{pipeline:#}");
    assert!(result_json(&run.artifacts, "examples.gpu-pipeline")["pipeline"]["runId"].is_null(), "never run in KFP");

    assert_eq!(case(&run.cases, "examples/cpu-job.yaml")["result"], "passed");
    assert!(
        run.stdout.contains(
            "2 passed, 0 failed, 0 errors, 4 skipped (4 need what no node offers; 1 ran as a CPU smoke test)"
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn with_gpu_cpu_the_example_runs_without_its_gpu_its_node_selector_and_its_toleration() {
    let run = run("kubevet.cpu.yaml");
    let gpu = case(&run.cases, "examples/gpu-job.yaml");
    assert_eq!(gpu["result"], "passed", "{gpu:#}");
    let removed = "nodeSelector nvidia.com/gpu.present, nvidia.com/gpu limits, tolerations of nvidia.com/gpu";
    assert_eq!(gpu["properties"]["gpu.cpuSmokeTest"], removed, "{gpu:#}");
    // What the cluster holds is the smoke test's object: no GPU, the named selector and
    // toleration gone, the rest as the example wrote it.
    let job = std::fs::read_to_string(run.artifacts.join("examples.gpu-job/attempt-1/objects/job.gpu-train.yaml"))
        .expect("the Job as collected");
    assert!(!job.contains("nvidia.com"), "{job}");
    assert!(job.contains("memory: 64Mi"), "the other limits stay: {job}");

    let dongle = case(&run.cases, "examples/limitrange-dongle.yaml");
    assert_eq!(dongle["result"], "skipped", "{dongle:#}");
    let said = dongle["message"].as_str().unwrap_or("");
    assert!(
        said.ends_with("(a CPU smoke test cannot remove it: the cluster gave it to the pod, not the example)"),
        "{said}"
    );
    // The scenario's apply step without its GPU: its steps judged as written.
    let scenario = case(&run.cases, "scenarios/gpu-scenario.yaml");
    assert_eq!(scenario["result"], "passed", "{scenario:#}");
    let reason = result_json(&run.artifacts, "scenarios.gpu-scenario")["reason"].as_str().unwrap_or("").to_string();
    assert_eq!(
        reason,
        "CPU smoke test (without nodeSelector nvidia.com/gpu.present, nvidia.com/gpu limits): 2 steps passed"
    );
    let applied =
        std::fs::read_to_string(run.artifacts.join("scenarios.gpu-scenario/attempt-1/objects/job.gpu-steps.yaml"))
            .expect("the scenario's Job as collected");
    assert!(!applied.contains("nvidia.com"), "{applied}");
    // The pipeline without its accelerator, run in KFP and judged by KFP's run state.
    let reason = result_json(&run.artifacts, "examples.gpu-pipeline")["reason"].as_str().unwrap_or("").to_string();
    assert!(reason.starts_with("CPU smoke test (without nvidia.com/gpu accelerator of exec-train): run "), "{reason}");
    assert!(reason.ends_with(" SUCCEEDED"), "{reason}");
    assert!(run.stdout.contains("1 skipped (1 needs what no node offers; 4 ran as CPU smoke tests)"), "{}", run.stdout);
}
