//! The user's checks on examples (`checks:` in the suite) through the `kubevet` binary on the
//! test cluster: CEL over the workload and its pods, a script on the host with the case's
//! cluster and namespace, exec in a running container; what a failed check saw, in
//! `result.json`, JUnit (junitparser) and the evidence.

mod support;

use serde_json::Value;
use support::{case, junit, repo, run_suite, stderr};

fn result(artifacts: &std::path::Path, id: &str) -> Value {
    let text = std::fs::read_to_string(artifacts.join(id).join("result.json")).expect("result.json");
    serde_json::from_str(&text).expect("JSON")
}

#[test]
fn checks_pass_and_fail_with_what_they_saw() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run_suite(&repo().join("tests/fixtures/checks/kubevet.yaml"), dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let cases = junit(&dir.path().join("junit.xml"));
    let outcome = |name: &str| case(&cases, name)["result"].as_str().unwrap_or_default().to_string();

    // Two CEL checks and a script that reads the cluster and writes into the artifacts.
    assert_eq!(outcome("examples/two-workers.yaml"), "passed");
    let two = result(dir.path(), "examples.two-workers");
    let steps: Vec<(&str, &str)> = two["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| (s["action"].as_str().unwrap_or(""), s["outcome"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(steps, [("cel", "passed"), ("cel", "passed"), ("script", "passed")]);
    let written = std::fs::read_to_string(dir.path().join("examples.two-workers/workers-succeeded.txt"))
        .expect("the script wrote into KUBEVET_ARTIFACTS");
    assert_eq!(written, "2");
    let kept = std::fs::read_to_string(
        dir.path().join("examples.two-workers/checks/03-the-model-file-is-in-the-artifacts.log"),
    )
    .expect("the script's output is kept");
    assert!(kept.starts_with("case examples/two-workers.yaml in kv-two-workers-"), "{kept}");
    let system_out = case(&cases, "examples/two-workers.yaml")["system_out"].as_str().unwrap_or("").to_string();
    assert!(system_out.contains("step checks \"both workers succeeded\" (cel): passed"), "{system_out}");

    // A CEL check that is false names the value it read.
    assert_eq!(outcome("examples/one-worker-short.yaml"), "failure");
    let short = result(dir.path(), "examples.one-worker-short");
    assert_eq!(short["class"], "test");
    assert_eq!(
        short["reason"],
        "check \"two workers were asked for\" failed: `object.spec.pytorchReplicaSpecs.Worker.replicas == 2` is false; saw object.spec.pytorchReplicaSpecs.Worker.replicas = 1"
    );

    // A shell script (asked for with shell: true) that exits 1.
    assert_eq!(outcome("examples/script-fails.yaml"), "failure");
    assert_eq!(
        result(dir.path(), "examples.script-fails")["reason"],
        "check \"pods are labelled\" failed: exit code 1"
    );

    // exec inside a Deployment's running container, and a quantity comparison.
    assert_eq!(outcome("examples/serving.yaml"), "passed");
    let serving = result(dir.path(), "examples.serving");
    let detail = serving["steps"][0]["detail"].as_str().unwrap_or("");
    assert!(detail.starts_with("in pod serving-") && detail.ends_with(": <h1>model ready</h1>"), "{detail}");
    assert_eq!(serving["steps"][1]["outcome"], "passed");
    // Both pipes drained side by side: no hang, and every byte of each kept.
    assert_eq!(serving["steps"][2]["outcome"], "passed", "{serving:#}");
    let loud = std::fs::read_to_string(dir.path().join("examples.serving/checks/03-a-loud-command-is-read-whole.log"))
        .expect("the exec's output is kept");
    assert_eq!(loud.lines().filter(|l| *l == "e").count(), 32768, "all of standard error");
    assert_eq!(loud.lines().filter(|l| *l == "o").count(), 32768, "all of standard output");
    assert!(loud.contains("end"), "standard output to its end");

    // exec into a job whose containers have ended: said at once, with what to do instead.
    let finished = result(dir.path(), "examples.exec-on-finished");
    let reason = finished["reason"].as_str().unwrap_or("");
    assert!(reason.contains("no running pod to exec in (found: exec-on-finished-"), "{reason}");
    assert!(reason.contains("(Succeeded)); exec needs a running container"), "{reason}");
    assert!(finished["seconds"].as_f64().unwrap_or(99.0) < 30.0, "it did not wait out the check's timeout");
}
