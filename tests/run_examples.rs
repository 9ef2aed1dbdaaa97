//! The project's own examples, under the root kubevet.yaml, pass on the test cluster with the
//! stand-in training operator and the stand-in KFP API server installed (its scenarios: tests/run_scenarios.rs).

mod support;

use support::{case, junit, kubevet, repo};

#[test]
fn the_projects_examples_pass() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = kubevet()
        .current_dir(repo())
        .args(["run", "--select", "examples/**", "--kubeconfig"])
        .arg(support::kubeconfig())
        .arg("--artifacts")
        .arg(dir.path())
        .output()
        .expect("kubevet runs");
    assert_eq!(out.status.code(), Some(0), "{}\n{}", support::stdout(&out), support::stderr(&out));
    let cases = junit(&dir.path().join("junit.xml"));
    assert_eq!(case(&cases, "examples/batch/hello-job.yaml")["result"], "passed");
    assert_eq!(case(&cases, "examples/training-v1/pytorch-simple.yaml")["result"], "passed");
    assert_eq!(case(&cases, "examples/training-v1/tensorflow-simple.yaml")["result"], "passed");
    assert_eq!(case(&cases, "examples/trainer-v2/two-node-env.yaml")["result"], "skipped");
    // On the TEST STAND-IN KFP API server, which tests/run installs as it does the operator.
    assert_eq!(case(&cases, "examples/pipelines/train-and-evaluate.yaml")["result"], "passed");
    assert_eq!(case(&cases, "examples/pipelines/greet.py")["result"], "passed");
}

/// The kind workflow's suite (which cannot run here) runs what the loopback one skips: the
/// TrainJob example (`skip: false` over the base suite's skip) and the examples' notebooks.
#[test]
fn the_kind_suite_runs_the_trainjob_and_the_notebooks_the_loopback_suite_skips() {
    let out = kubevet()
        .current_dir(repo())
        .args(["list", "--suite", "kubevet.kind.yaml", "--output", "json"])
        .output()
        .expect("kubevet runs");
    assert!(out.status.success(), "{}", support::stderr(&out));
    let cases: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    let of = |file: &str| cases.iter().find(|c| c["file"] == file).unwrap_or_else(|| panic!("no {file}: {cases:#?}"));
    assert!(of("examples/trainer-v2/two-node-env.yaml")["skip"].is_null(), "{cases:#?}");
    let notebook = of("examples/notebooks/trainjob-sdk.ipynb");
    assert_eq!((notebook["profile"].as_str(), notebook["skip"].as_str()), (Some("notebook"), None));
    let out = kubevet().current_dir(repo()).args(["list", "--output", "json"]).output().expect("kubevet runs");
    let base: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    let skipped = base.iter().find(|c| c["file"] == "examples/trainer-v2/two-node-env.yaml").map(|c| c["skip"].clone());
    assert!(skipped.is_some_and(|s| s.is_string()), "the loopback suite still skips it: {base:#?}");
}
