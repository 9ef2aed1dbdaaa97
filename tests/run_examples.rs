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
