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
    // On the TEST STAND-IN Trainer v2 and JobSet; the notebook drives them with the kubeflow SDK.
    assert_eq!(case(&cases, "examples/trainer-v2/two-node-env.yaml")["result"], "passed");
    assert_eq!(case(&cases, "examples/notebooks/trainjob-sdk.ipynb")["result"], "passed");
    // On the TEST STAND-IN KFP API server, which tests/run installs as it does the operator.
    assert_eq!(case(&cases, "examples/pipelines/train-and-evaluate.yaml")["result"], "passed");
    assert_eq!(case(&cases, "examples/pipelines/greet.py")["result"], "passed");
}

/// The kind workflow's suite (which cannot run here) runs the same TrainJob example and
/// notebook as the loopback one, on the real operators, and no pipeline.
#[test]
fn the_kind_suite_runs_the_trainjob_and_the_notebook_as_the_loopback_suite_does() {
    let list = |suite: &[&str]| -> Vec<serde_json::Value> {
        let out = kubevet()
            .current_dir(repo())
            .args(["list", "--output", "json"])
            .args(suite)
            .output()
            .expect("kubevet runs");
        assert!(out.status.success(), "{}", support::stderr(&out));
        serde_json::from_slice(&out.stdout).expect("JSON")
    };
    for cases in [list(&["--suite", "kubevet.kind.yaml"]), list(&[])] {
        let of =
            |file: &str| cases.iter().find(|c| c["file"] == file).unwrap_or_else(|| panic!("no {file}: {cases:#?}"));
        assert!(of("examples/trainer-v2/two-node-env.yaml")["skip"].is_null(), "{cases:#?}");
        let notebook = of("examples/notebooks/trainjob-sdk.ipynb");
        assert_eq!((notebook["profile"].as_str(), notebook["skip"].as_str()), (Some("notebook"), None));
    }
    let kind = list(&["--suite", "kubevet.kind.yaml"]);
    assert!(
        !kind.iter().any(|c| c["file"].as_str().is_some_and(|f| f.starts_with("examples/pipelines/"))),
        "{kind:#?}"
    );
}
