//! Helpers shared by the integration tests: the test cluster's kubeconfig, the kubevet binary,
//! kubectl, and a JUnit reader that is not kubevet's own code.
#![allow(dead_code)] // each test file uses a different part of this module

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::Value;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The test cluster's kubeconfig: `tests/cluster/up` prints it; tests/run exports it.
pub fn kubeconfig() -> PathBuf {
    let path = std::env::var_os("KUBEVET_TEST_KUBECONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/kubevet-testcluster/kubeconfig"));
    assert!(path.is_file(), "no test cluster kubeconfig at {}: run tests/cluster/up (as root) first", path.display());
    path
}

pub fn kubevet() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubevet"));
    cmd.env("NO_COLOR", "1").env_remove("KUBECONFIG");
    cmd
}

/// `kubevet run` of a suite on the test cluster, evidence and JUnit into `artifacts`.
pub fn run_suite(suite: &Path, artifacts: &Path) -> Output {
    kubevet()
        .args(["run", "--suite"])
        .arg(suite)
        .arg("--kubeconfig")
        .arg(kubeconfig())
        .arg("--artifacts")
        .arg(artifacts)
        .output()
        .expect("kubevet runs")
}

pub fn kubectl(args: &[&str]) -> Output {
    Command::new("kubectl").arg("--kubeconfig").arg(kubeconfig()).args(args).output().expect("kubectl runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The cases of a JUnit file as junitparser reads them.
pub fn junit(path: &Path) -> Vec<Value> {
    let out = Command::new("python3")
        .arg(repo().join("tests/support/junit_to_json.py"))
        .arg(path)
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "junitparser could not read {}: {}", path.display(), stderr(&out));
    serde_json::from_slice(&out.stdout).expect("junit_to_json prints JSON")
}

pub fn case<'a>(cases: &'a [Value], name: &str) -> &'a Value {
    cases.iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no test case {name} in {cases:#?}"))
}

/// Namespaces whose name starts with `kv-` that carry this run's label.
pub fn namespaces_of_run(run_id: &str) -> Vec<String> {
    let out = kubectl(&["get", "ns", "-l", &format!("kubevet.dev/run={run_id}"), "-o", "name"]);
    stdout(&out).lines().map(str::to_string).collect()
}
