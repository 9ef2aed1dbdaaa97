//! `kubevet run` installs the operators under test before the examples: the stand-in from its
//! kustomize directory (CRDs Established, Deployment Available, then a PyTorchJob passes), and
//! a broken operator whose install fails fast with its pod's reason.

mod support;

use support::{case, junit, kubectl, repo};

fn run(suite: &str) -> (i32, Vec<serde_json::Value>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = support::run_suite(&repo().join(suite), dir.path());
    let cases = junit(&dir.path().join("junit.xml"));
    (out.status.code().unwrap_or(-1), cases, dir)
}

#[test]
fn the_standin_operator_is_installed_by_kubevet_then_its_example_passes() {
    let (code, cases, dir) = run("tests/fixtures/operator/kubevet.yaml");
    let operator = case(&cases, "operator standin-training-operator");
    assert_eq!(operator["classname"], "operator");
    assert_eq!(operator["result"], "passed", "{cases:#?}");
    assert_eq!(code, 0, "{cases:#?}");
    assert_eq!(case(&cases, "examples/pytorch-simple.yaml")["result"], "passed");
    let result: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("operators/standin-training-operator/result.json"))
            .expect("result.json"),
    )
    .expect("JSON");
    assert_eq!(result["reason"], "8 objects applied (rendered); 2 CRDs Established, 1 Deployments Available");
    let logs =
        std::fs::read_dir(dir.path().join("operators/standin-training-operator/pods")).expect("operator pods").count();
    assert!(logs >= 1, "the operator's logs are kept");
}

#[test]
fn a_broken_operator_fails_the_install_fast_and_no_example_runs() {
    // kubevet leaves operators installed; a previous run's may still be going away.
    kubectl(&["delete", "namespace", "kubevet-broken-operator", "--ignore-not-found", "--wait=true", "--timeout=120s"]);
    let (code, cases, _dir) = run("tests/fixtures/broken-operator/kubevet.yaml");
    kubectl(&["delete", "namespace", "kubevet-broken-operator", "--wait=false"]);
    assert_eq!(code, 1);
    let operator = case(&cases, "operator broken");
    assert_eq!(operator["result"], "failure");
    let message = operator["message"].as_str().unwrap_or("");
    assert!(message.starts_with("infrastructure: install failed: pod broken-operator-"), "{message}");
    assert!(message.contains("ErrImagePull") || message.contains("ImagePullBackOff"), "{message}");
    assert!(operator["time"].as_f64().unwrap_or(999.0) < 60.0, "not fast: {operator}");
    let example = case(&cases, "examples/hello-job.yaml");
    assert_eq!(example["result"], "error");
    assert_eq!(example["message"], "infrastructure: not run: operator broken failed to install");
}
