//! The test cluster is a real Kubernetes: its Jobs run real containers whose logs can be read,
//! and the stand-in training operator, installed from its kustomize directory, reconciles
//! PyTorchJobs into real pods. Driven with kubectl, independently of kubevet.

mod support;

use support::{kubectl, stdout};

struct Namespace(String);

impl Namespace {
    fn new(name: &str) -> Namespace {
        kubectl(&["delete", "namespace", name, "--ignore-not-found", "--wait=true"]);
        let out = kubectl(&["create", "namespace", name]);
        assert!(out.status.success(), "{}", support::stderr(&out));
        Namespace(name.to_string())
    }

    fn apply(&self, manifest: &str) {
        let path = std::env::temp_dir().join(format!("{}-{}.yaml", self.0, std::process::id()));
        std::fs::write(&path, manifest).expect("write manifest");
        let out = kubectl(&["-n", &self.0, "create", "-f", path.to_str().expect("utf-8 path")]);
        assert!(out.status.success(), "{}", support::stderr(&out));
    }

    fn wait(&self, what: &str, condition: &str) -> bool {
        let out = kubectl(&["-n", &self.0, "wait", what, &format!("--for=condition={condition}"), "--timeout=90s"]);
        out.status.success()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        kubectl(&["delete", "namespace", &self.0, "--wait=false"]);
    }
}

fn job(name: &str, script: &str) -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: {name}}}\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: main\n        image: kubevet.test/busybox:1.35\n        imagePullPolicy: IfNotPresent\n        command: [\"sh\", \"-c\", {script:?}]\n"
    )
}

fn pytorchjob(name: &str, master_script: &str) -> String {
    let replica = |script: &str| {
        format!(
            "      replicas: 1\n      restartPolicy: Never\n      template:\n        spec:\n          containers:\n          - name: pytorch\n            image: kubevet.test/busybox:1.35\n            imagePullPolicy: IfNotPresent\n            command: [\"sh\", \"-c\", {script:?}]\n"
        )
    };
    format!(
        "apiVersion: kubeflow.org/v1\nkind: PyTorchJob\nmetadata: {{name: {name}}}\nspec:\n  pytorchReplicaSpecs:\n    Master:\n{}    Worker:\n{}",
        replica(master_script),
        replica("echo worker rank=$RANK master=$MASTER_ADDR")
    )
}

#[test]
fn a_busybox_job_completes_and_its_log_holds_what_it_printed() {
    let ns = Namespace::new("it-job-ok");
    ns.apply(&job("hello", "echo printed-by-the-container-$((6*7))"));
    assert!(ns.wait("job/hello", "complete"), "job did not complete");
    let logs = kubectl(&["-n", &ns.0, "logs", "job/hello"]);
    assert_eq!(stdout(&logs).trim(), "printed-by-the-container-42");
}

#[test]
fn a_job_whose_container_exits_1_ends_failed() {
    let ns = Namespace::new("it-job-fail");
    ns.apply(&job("fails", "exit 1"));
    assert!(ns.wait("job/fails", "failed"), "job did not end Failed");
    let complete = kubectl(&["-n", &ns.0, "get", "job/fails", "-o", "jsonpath={.status.succeeded}"]);
    assert_eq!(stdout(&complete), "", "a failed job must not count a success");
}

#[test]
fn the_standin_operator_runs_a_pytorchjob_to_succeeded() {
    let ns = Namespace::new("it-pytorch-ok");
    ns.apply(&pytorchjob("ok", "echo master rank=$RANK world=$WORLD_SIZE"));
    assert!(ns.wait("pytorchjob/ok", "Succeeded"), "PyTorchJob did not succeed");
    let reason = kubectl(&[
        "-n",
        &ns.0,
        "get",
        "pytorchjob/ok",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Succeeded\")].reason}",
    ]);
    assert_eq!(stdout(&reason), "PyTorchJobSucceeded");
    let master = kubectl(&["-n", &ns.0, "logs", "ok-master-0"]);
    assert_eq!(stdout(&master).trim(), "master rank=0 world=2");
    // The job succeeds when the Master does; the worker may still be finishing.
    let done =
        kubectl(&["-n", &ns.0, "wait", "pod/ok-worker-0", "--for=jsonpath={.status.phase}=Succeeded", "--timeout=60s"]);
    assert!(done.status.success(), "{}", support::stderr(&done));
    let worker = kubectl(&["-n", &ns.0, "logs", "ok-worker-0"]);
    assert_eq!(stdout(&worker).trim(), "worker rank=1 master=ok-master-0");
    let labels = kubectl(&["-n", &ns.0, "get", "pod", "ok-master-0", "-o", "jsonpath={.metadata.labels}"]);
    assert!(stdout(&labels).contains("\"training.kubeflow.org/replica-type\":\"master\""), "{}", stdout(&labels));
}

#[test]
fn the_standin_operator_fails_a_pytorchjob_whose_master_exits_non_zero() {
    let ns = Namespace::new("it-pytorch-fail");
    ns.apply(&pytorchjob("bad", "echo boom; exit 2"));
    assert!(ns.wait("pytorchjob/bad", "Failed"), "PyTorchJob did not fail");
    let message = kubectl(&[
        "-n",
        &ns.0,
        "get",
        "pytorchjob/bad",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Failed\")].message}",
    ]);
    assert_eq!(stdout(&message), format!("PyTorchJob {}/bad is failed because 1 Master replica(s) failed.", ns.0));
}
