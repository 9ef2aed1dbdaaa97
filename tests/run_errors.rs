//! Bad input and a missing cluster: distinct exit codes and messages that say what and where,
//! never a panic.

mod support;

use support::{kubevet, repo, stderr};

#[test]
fn a_malformed_example_is_exit_2_with_file_line_and_column() {
    let out = kubevet()
        .args(["run", "--suite"])
        .arg(repo().join("tests/fixtures/malformed/kubevet.yaml"))
        .output()
        .expect("kubevet runs");
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("tests/fixtures/malformed/examples/broken.yaml:7:3: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn an_unknown_suite_key_is_exit_2_at_its_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let suite = dir.path().join("kubevet.yaml");
    std::fs::write(
        &suite,
        "apiVersion: kubevet.dev/v1alpha1\nkind: Suite\ndefaults:\n  concurrency: 2\n  timout: 5m\n",
    )
    .expect("write");
    let out = kubevet().args(["list", "--suite"]).arg(&suite).output().expect("kubevet runs");
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("kubevet.yaml:5:3: unknown field `timout`"), "{err}");
}

#[test]
fn an_unreachable_cluster_is_exit_3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:9'}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n",
    )
    .expect("write");
    let out = kubevet()
        .args(["run", "--suite"])
        .arg(repo().join("kubevet.yaml"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--artifacts")
        .arg(dir.path().join("artifacts"))
        .output()
        .expect("kubevet runs");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("cluster at https://127.0.0.1:9/ unreachable"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // The report is still written: a cluster error case, every example not run.
    let cases = support::junit(&dir.path().join("artifacts/junit.xml"));
    let cluster = support::case(&cases, "cluster");
    assert_eq!(cluster["result"], "error");
    assert!(cluster["message"].as_str().unwrap_or("").contains("unreachable"), "{cluster:#?}");
    assert!(cases.len() > 1 && cases.iter().skip(1).all(|c| c["result"] != "passed"), "{cases:#?}");
}
