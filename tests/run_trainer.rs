//! TrainJobs through the binary on the TEST STAND-IN Trainer v2 and JobSet
//! (`tests/standin-trainer`): the fixture suite `tests/fixtures/trainer-v2`, Trainer's own
//! upstream examples with their image swapped, and the stand-in checked by the real kubeflow
//! SDK from PyPI.

mod support;

use std::path::Path;

use serde_json::Value;
use support::{case, copy_dir, junit, kubectl_ok, repo, result_json, run_suite, stderr, stdout};

struct TrainerRun {
    code: Option<i32>,
    stdout: String,
    cases: Vec<Value>,
    artifacts: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

#[test]
fn the_trainer_v2_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let artifacts = dir.path().join("artifacts");
    let out = run_suite(&repo().join("tests/fixtures/trainer-v2/kubevet.yaml"), &artifacts);
    let cases = junit(&artifacts.join("junit.xml"));
    let run = TrainerRun { code: out.status.code(), stdout: stdout(&out), cases, artifacts, _dir: dir };
    let checks: &[support::Check<TrainerRun>] = &[
        ("exit code", |run| assert_eq!(run.code, Some(1), "one TrainJob fails: {}", run.stdout)),
        ("a TrainJob that passes", a_trainjob_passes_with_the_indexed_pods_trainer_gives_it),
        ("a node that fails", a_failing_node_fails_the_trainjob_naming_its_job_and_pod),
        ("a failure policy", a_failure_policy_restarts_the_jobset_once_and_it_passes),
        ("evidence", the_jobset_and_its_jobs_are_kept_as_evidence),
        ("runtime patches", runtime_patches_reach_the_jobset_and_its_pods),
        ("cleanup", |run| support::no_namespace_left(&run.cases)),
    ];
    support::all_checks(&run, checks);
}

fn reason(run: &TrainerRun, id: &str) -> String {
    result_json(&run.artifacts, id)["reason"].as_str().unwrap_or_default().to_string()
}

/// The YAML of every pod kubevet kept for a case, as JSON.
fn pods(run: &TrainerRun, id: &str) -> Vec<Value> {
    let dir = run.artifacts.join(id).join("pods");
    let mut pods: Vec<Value> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| {
            let text = std::fs::read_to_string(e.path().join("pod.yaml")).expect("pod.yaml");
            serde_saphyr::from_str(&text).expect("pod.yaml is YAML")
        })
        .collect();
    pods.sort_by_key(|p| p["metadata"]["name"].as_str().unwrap_or_default().to_string());
    pods
}

fn a_trainjob_passes_with_the_indexed_pods_trainer_gives_it(run: &TrainerRun) {
    let c = case(&run.cases, "examples/passes.yaml");
    assert_eq!(c["result"], "passed", "{c:#}");
    assert_eq!(reason(run, "examples.passes"), "Complete: AllJobsCompleted: jobset completed successfully");
    let pods = pods(run, "examples.passes");
    assert_eq!(pods.len(), 2, "{pods:#?}");
    for (index, pod) in pods.iter().enumerate() {
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        assert!(name.starts_with(&format!("passes-node-0-{index}-")), "Indexed Jobs' pod name: {name}");
        assert_eq!(pod["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"], index.to_string());
        assert_eq!(pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"], index.to_string());
        assert_eq!(pod["spec"]["hostname"], format!("passes-node-0-{index}"));
        assert_eq!(pod["spec"]["subdomain"], "passes");
        assert_eq!(pod["metadata"]["labels"]["jobset.sigs.k8s.io/replicatedjob-name"], "node");
        // The runtime's image, swapped by the suite's images: for the fake torch kubevet built.
        let image = pod["spec"]["containers"][0]["image"].as_str().unwrap_or_default();
        assert!(image.starts_with("pytorch/pytorch:kv-"), "{image}");
        let log = std::fs::read_to_string(run.artifacts.join("examples.passes/pods").join(name).join("node.log"))
            .expect("node.log");
        let rank = format!("rank {index} of 2 on node {index}, master passes-node-0-0.passes:29500");
        assert!(log.contains(&rank), "{log}");
    }
}

fn a_failing_node_fails_the_trainjob_naming_its_job_and_pod(run: &TrainerRun) {
    let c = case(&run.cases, "examples/node-fails.yaml");
    assert_eq!(c["result"], "failure", "{c:#}");
    assert_eq!(c["properties"]["class"], "test", "{c:#}");
    let why = reason(run, "examples.node-fails");
    let jobset =
        "Failed: FailedJobs: jobset failed due to one or more job failures (first failed job: node-fails-node-0)";
    assert!(why.starts_with(jobset), "{why}");
    assert!(why.contains("(pod node-fails-node-0-1-") && why.ends_with(" container node exited with code 3)"), "{why}");
    assert!(c["message"].as_str().unwrap_or_default().contains("first failed job: node-fails-node-0"), "{c:#}");
    assert!(c["system_out"].as_str().unwrap_or_default().contains("node 1 gives up"), "the failing log: {c:#}");
}

fn a_failure_policy_restarts_the_jobset_once_and_it_passes(run: &TrainerRun) {
    let c = case(&run.cases, "examples/restarts-once.yaml");
    assert_eq!(c["result"], "passed", "{c:#}");
    let attempts: Vec<String> = pods(run, "examples.restarts-once")
        .iter()
        .map(|p| p["metadata"]["labels"]["jobset.sigs.k8s.io/restart-attempt"].as_str().unwrap_or("?").to_string())
        .collect();
    assert!(attempts.contains(&"1".to_string()), "the second attempt's pod: {attempts:?}");
}

fn made(run: &TrainerRun, id: &str, file: &str) -> Value {
    let path = run.artifacts.join(id).join("objects/made").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).expect("YAML")
}

fn the_jobset_and_its_jobs_are_kept_as_evidence(run: &TrainerRun) {
    let jobset = made(run, "examples.restarts-once", "jobset.restarts-once.yaml");
    assert_eq!(jobset["status"]["restarts"], 1, "{jobset:#}");
    assert_eq!(jobset["metadata"]["ownerReferences"][0]["kind"], "TrainJob");
    let job = made(run, "examples.node-fails", "job.node-fails-node-0.yaml");
    assert_eq!(job["spec"]["completions"], 2, "numNodes became the Job's completions: {job:#}");
    let failed = job["status"]["conditions"].as_array().into_iter().flatten().any(|c| c["type"] == "Failed");
    assert!(failed, "the Job the Kubernetes Job controller failed: {job:#}");
}

fn runtime_patches_reach_the_jobset_and_its_pods(run: &TrainerRun) {
    let c = case(&run.cases, "examples/runtime-patches.yaml");
    assert_eq!(c["result"], "passed", "the patched env var reached the node (its log assertion): {c:#}");
    let jobset = made(run, "examples.runtime-patches", "jobset.runtime-patches.yaml");
    assert_eq!(jobset["metadata"]["labels"]["team"], "ml-platform", "{jobset:#}");
}

/// Trainer's upstream examples folder, as a user would point kubevet at it: the runtime
/// installed as an operator, the example's image (`pytorch/pytorch`) swapped for a fake built
/// from `tests/fake-torch` by the suite's `images:`.
#[test]
fn the_upstream_trainer_v2_examples_run_with_their_image_swapped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let project = dir.path().join("trainer");
    copy_dir(&repo().join("../shared/data/examples/trainer-v2"), &project.join("examples"));
    std::fs::create_dir_all(project.join("runtimes")).expect("mkdir");
    let kustomization = "resources: [../examples/torch_distributed-runtime.yaml]\n";
    std::fs::write(project.join("runtimes/kustomization.yaml"), kustomization).expect("write");
    let suite = format!(
        "apiVersion: kubevet.dev/v1alpha1\nkind: Suite\nmetadata: {{name: upstream-trainer-v2}}\n\
         examples: {{include: [\"examples/*.yaml\"], exclude: [\"examples/*-runtime.yaml\"]}}\n\
         images: [{{name: pytorch/pytorch, context: {}}}]\n\
         operators: [{{name: runtimes, kustomize: runtimes, kustomizeArgs: [--load-restrictor, LoadRestrictionsNone]}}]\n\
         defaults: {{timeout: 2m, failureGrace: 10s}}\n",
        repo().join("tests/fake-torch").display()
    );
    std::fs::write(project.join("kubevet.yaml"), suite).expect("write");
    let artifacts = dir.path().join("artifacts");
    let out = run_suite(&project.join("kubevet.yaml"), &artifacts);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let cases = junit(&artifacts.join("junit.xml"));
    let c = case(&cases, "examples/01-multi-node.yaml");
    assert_eq!(c["result"], "passed", "{c:#}");
    let logs = logs_of(&artifacts.join("examples.01-multi-node/pods"));
    for rank in 0..3 {
        assert!(logs.contains(&format!("RANK: {rank}\n")), "three ranks of WORLD_SIZE 3: {logs}");
    }
    assert_eq!(logs.matches("WORLD_SIZE: 3\n").count(), 3, "{logs}");
}

fn logs_of(pods: &Path) -> String {
    let mut all = String::new();
    for pod in std::fs::read_dir(pods).expect("pods").flatten() {
        all.push_str(&std::fs::read_to_string(pod.path().join("node.log")).expect("node.log"));
    }
    all
}

/// The kubeflow SDK (`TrainerClient`) against the stand-in, as a Trainer user drives it.
#[test]
fn the_standin_speaks_trainer_to_the_official_kubeflow_sdk() {
    let namespace = format!("kv-test-trainer-sdk-{}", std::process::id());
    kubectl_ok(&["create", "namespace", &namespace]);
    let out = std::process::Command::new("python3")
        .arg(repo().join("tests/standin-trainer/sdk_check.py"))
        .arg(&namespace)
        .arg("kubevet.test/fake-torch:dev")
        .env("KUBECONFIG", support::kubeconfig())
        .output()
        .expect("python3");
    kubectl_ok(&["delete", "namespace", &namespace, "--wait=false"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let seen: Value = serde_json::from_str(stdout(&out).lines().last().unwrap_or_default()).expect("JSON");
    let runtimes = seen["runtimes"].as_array().expect("runtimes");
    assert!(runtimes.iter().any(|r| r == "torch-distributed"), "{seen:#}");
    assert_eq!(seen["torch_framework"], "torch");
    assert_eq!(seen["status"], "Complete");
    assert_eq!(seen["steps"], serde_json::json!([["node-0", "Succeeded"], ["node-1", "Succeeded"]]), "{seen:#}");
    let logs = seen["logs"].as_array().expect("logs");
    assert!(logs.iter().any(|l| l == "sdk rank 1 of 2 node 1"), "node-1's log: {seen:#}");
    assert!(seen["logs_node0"].as_array().expect("logs").iter().any(|l| l == "sdk rank 0 of 2 node 0"), "{seen:#}");
    assert!(seen["failing"].as_str().unwrap_or_default().ends_with(" is Failed"), "{seen:#}");
    assert_eq!(seen["failing_status"], "Failed");
}
