//! A bug of kubevet's that panics inside a case (injected in this debug build through
//! `KUBEVET_TEST_PANIC_IN_CASE`, once the case's namespace holds its objects): the case is
//! still in the report as kubevet's own error, the others run, and its namespace is deleted.

mod support;

use support::{case, junit, kubeconfig, kubevet, repo, stderr};

#[test]
fn a_panicking_case_is_recorded_and_its_namespace_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let artifacts = dir.path().join("artifacts");
    let out = kubevet()
        .args(["run", "--suite"])
        .arg(repo().join("tests/fixtures/outcomes/kubevet.yaml"))
        .args(["--select", "examples/passing-job.yaml", "--select", "examples/configmap-job.yaml"])
        .arg("--kubeconfig")
        .arg(kubeconfig())
        .arg("--artifacts")
        .arg(&artifacts)
        .env("KUBEVET_TEST_PANIC_IN_CASE", "examples/passing-job.yaml")
        .output()
        .expect("kubevet runs");
    assert_eq!(out.status.code(), Some(1), "a case that did not pass: {}", stderr(&out));
    let cases = junit(&artifacts.join("junit.xml"));
    let panicked = case(&cases, "examples/passing-job.yaml");
    assert_eq!(panicked["result"], "error", "{panicked:#?}");
    let message = panicked["message"].as_str().unwrap_or_default();
    assert!(message.contains("kubevet failed while running this case"), "{message}");
    assert!(message.contains("injected by KUBEVET_TEST_PANIC_IN_CASE"), "{message}");
    assert_eq!(case(&cases, "examples/configmap-job.yaml")["result"], "passed", "the other case is unharmed");

    let result: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(artifacts.join("examples.passing-job/result.json")).expect("result.json"),
    )
    .expect("JSON");
    assert!(result["leftBehind"].as_array().is_some_and(|l| l.is_empty()), "{result:#}");
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(artifacts.join("run.json")).expect("run.json")).expect("JSON");
    let run_id = run["cells"][0]["run"].as_str().expect("the run's id");
    let left: Vec<String> = support::namespaces_of_run(run_id)
        .into_iter()
        .filter(|ns| {
            // Going counts as gone: a Terminating namespace is on its way.
            support::kubectl_ok(&["get", ns, "-o", "jsonpath={.status.phase}"]).trim() != "Terminating"
        })
        .collect();
    assert!(left.is_empty(), "the panicked case's namespace was not deleted: {left:?}");
}
