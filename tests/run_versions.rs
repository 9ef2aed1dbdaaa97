//! Operators from a git repository at a floating version: `latest` is resolved against the
//! tags at every run (pre-releases excluded), a pinned version is used as written, and a change
//! since the previous run is said first and recorded in run.json and the JUnit properties.

mod support;

use std::{path::Path, process::Command};

use support::{junit, kubectl, kubevet, stdout};

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.email=test@kubevet.dev", "-c", "user.name=kubevet test", "-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", support::stderr(&out));
}

fn release(work: &Path, version: &str) {
    std::fs::write(
        work.join("deploy/config.yaml"),
        format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: kubevet-versioned-op}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: operator-version, namespace: kubevet-versioned-op}}\ndata: {{version: \"{version}\"}}\n"),
    )
    .expect("write");
    git(work, &["add", "-A"]);
    git(work, &["commit", "-q", "-m", version]);
    git(work, &["tag", &format!("v{version}")]);
}

fn write_suite(dir: &Path, repo: &Path, version: &str) {
    std::fs::write(
        dir.join("kubevet.yaml"),
        format!(
            "apiVersion: kubevet.dev/v1alpha1\nkind: Suite\noperators:\n  - name: versioned\n    git: {{url: \"{}\", version: \"{version}\"}}\n    kustomize: deploy\n",
            repo.display()
        ),
    )
    .expect("write suite");
}

/// (the version the run used, what it said first, run.json)
fn run(dir: &Path, cache: &Path, extra: &[&str]) -> (String, String, serde_json::Value) {
    let artifacts = dir.join("artifacts");
    let _ = std::fs::remove_dir_all(&artifacts);
    let out = kubevet()
        .env("KUBEVET_CACHE", cache)
        .args(["run", "--suite"])
        .arg(dir.join("kubevet.yaml"))
        .arg("--kubeconfig")
        .arg(support::kubeconfig())
        .arg("--artifacts")
        .arg(&artifacts)
        .args(extra)
        .output()
        .expect("kubevet runs");
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), support::stderr(&out));
    let cases = junit(&artifacts.join("junit.xml"));
    let version = cases[0]["suite_properties"]["operator.versioned.version"].as_str().unwrap_or("").to_string();
    let run_json =
        serde_json::from_str(&std::fs::read_to_string(artifacts.join("run.json")).expect("run.json")).expect("JSON");
    (version, stdout(&out).lines().next().unwrap_or("").to_string(), run_json)
}

#[test]
fn floating_versions_are_resolved_every_run_and_changes_are_said_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (work, repo, cache, suite) =
        (dir.path().join("work"), dir.path().join("repo.git"), dir.path().join("cache"), dir.path().join("suite"));
    for d in [&work, &suite] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    std::fs::create_dir_all(work.join("deploy")).expect("mkdir");
    std::fs::write(work.join("deploy/kustomization.yaml"), "resources: [config.yaml]\n").expect("write");
    std::fs::create_dir_all(suite.join("examples")).expect("mkdir");
    std::fs::copy(support::repo().join("examples/batch/hello-job.yaml"), suite.join("examples/hello-job.yaml"))
        .expect("copy");
    git(&work, &["init", "-q"]);
    release(&work, "1.8.0");
    git(dir.path(), &["clone", "-q", "--bare", "work", "repo.git"]);

    write_suite(&suite, &repo, "latest");
    let (version, first_line, _) = run(&suite, &cache, &[]);
    assert_eq!(version, "v1.8.0");
    assert!(!first_line.starts_with("changed"), "{first_line}");

    release(&work, "1.9.0");
    release(&work, "2.0.0-rc.1");
    git(&work, &["push", "-q", "--tags", repo.to_str().expect("utf-8")]);
    // Listed again at every run (no resolveTtl): the new tag is seen at once.
    let (version, first_line, run_json) = run(&suite, &cache, &[]);
    assert_eq!(version, "v1.9.0", "latest skips the pre-release");
    assert_eq!(run_json["rendered"]["versioned"]["listingCached"], false);
    assert_eq!(run_json["rendered"]["versioned"]["cache"], "miss", "a new version is rendered once");
    assert_eq!(first_line, "changed since the previous run: versioned v1.8.0 → v1.9.0");
    assert_eq!(run_json["changed"], serde_json::json!(["versioned v1.8.0 → v1.9.0"]));
    let applied = kubectl(&[
        "-n",
        "kubevet-versioned-op",
        "get",
        "configmap",
        "operator-version",
        "-o",
        "jsonpath={.data.version}",
    ]);
    assert_eq!(stdout(&applied), "1.9.0", "the resolved version's manifests were installed");

    write_suite(&suite, &repo, "v1.8.0");
    let (version, first_line, _) = run(&suite, &cache, &[]);
    assert_eq!(version, "v1.8.0", "a pinned version is used as written");
    assert_eq!(first_line, "changed since the previous run: versioned v1.9.0 → v1.8.0");
    kubectl(&["delete", "namespace", "kubevet-versioned-op", "--wait=false"]);
}

/// A repository with deploy/ rendering one ConfigMap whose data says `content`, committed
/// on main.
fn commit_remote(work: &Path, content: &str) {
    std::fs::create_dir_all(work.join("deploy")).expect("mkdir");
    std::fs::write(work.join("deploy/kustomization.yaml"), "resources: [config.yaml]\n").expect("write");
    std::fs::write(
        work.join("deploy/config.yaml"),
        format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: kubevet-remote-op}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: remote, namespace: kubevet-remote-op}}\ndata: {{content: \"{content}\"}}\n"),
    )
    .expect("write");
    git(work, &["add", "-A"]);
    git(work, &["commit", "-q", "-m", content]);
}

#[test]
fn a_remote_kustomize_target_is_rendered_once_at_a_tag_and_every_run_at_a_branch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (work, repo, cache, suite) =
        (dir.path().join("work"), dir.path().join("repo.git"), dir.path().join("cache"), dir.path().join("suite"));
    std::fs::create_dir_all(&work).expect("mkdir");
    std::fs::create_dir_all(suite.join("examples")).expect("mkdir");
    std::fs::copy(support::repo().join("examples/batch/hello-job.yaml"), suite.join("examples/hello-job.yaml"))
        .expect("copy");
    git(&work, &["init", "-q"]);
    commit_remote(&work, "tagged");
    git(&work, &["tag", "v1.0.0"]);
    git(dir.path(), &["clone", "-q", "--bare", "work", "repo.git"]);
    let target = |reference: &str| {
        std::fs::write(
            suite.join("kubevet.yaml"),
            format!(
                "apiVersion: kubevet.dev/v1alpha1\nkind: Suite\noperators:\n  - name: remote\n    kustomize: \"file://{}//deploy?ref={reference}\"\n",
                repo.display()
            ),
        )
        .expect("write suite");
    };
    let applied = || {
        let out = kubectl(&["-n", "kubevet-remote-op", "get", "configmap", "remote", "-o", "jsonpath={.data.content}"]);
        stdout(&out)
    };

    target("v1.0.0");
    let (_, _, first) = run(&suite, &cache, &[]);
    let (_, _, second) = run(&suite, &cache, &[]);
    assert_eq!(
        (first["rendered"]["remote"]["cache"].as_str(), second["rendered"]["remote"]["cache"].as_str()),
        (Some("miss"), Some("hit"))
    );
    assert_eq!(applied(), "tagged");

    commit_remote(&work, "moved on");
    git(&work, &["push", "-q", repo.to_str().expect("utf-8"), "main"]);
    target("main");
    let (_, _, at_branch) = run(&suite, &cache, &[]);
    assert_eq!(at_branch["rendered"]["remote"]["cache"], "miss", "a branch is rendered at every run");
    assert_eq!(applied(), "moved on");
    kubectl(&["delete", "namespace", "kubevet-remote-op", "--wait=false"]);
}
