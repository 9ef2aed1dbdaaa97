//! The `container` provider: a control plane started through testcontainers' KWOK module,
//! here from the TEST STAND-IN image tests/kwok-image/build makes of the test cluster's own
//! binaries (the module's registry image cannot be pulled on this machine). The case really
//! runs on that cluster, and the container is gone when the run ends.

mod support;

use std::process::Command;

use support::{junit, kubevet, repo, stderr, stdout};

const IMAGE: &str = "kubevet.test/kwok-cluster:v0.5.2-k8s.v1.20.2";

/// The containers, running or not, whose id starts with `id` (docker's own check).
fn containers_with_id(id: &str) -> String {
    let out =
        Command::new("docker").args(["ps", "-a", "-q", "--filter", &format!("id={id}")]).output().expect("docker runs");
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

#[test]
fn a_kwok_container_cluster_runs_the_cases_and_is_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let artifacts = dir.path().join("artifacts");
    let out = kubevet()
        .env("KUBEVET_CACHE", dir.path().join("cache"))
        .args(["run", "--suite"])
        .arg(repo().join("tests/fixtures/container/kubevet.yaml"))
        .arg("--artifacts")
        .arg(&artifacts)
        .output()
        .expect("kubevet runs");
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let cases = junit(&artifacts.join("junit.xml"));
    assert_eq!(cases.len(), 1, "{cases:#?}");
    assert_eq!(cases[0]["result"], "passed");
    assert_eq!(cases[0]["suite_properties"]["cluster.image"], IMAGE);
    assert_eq!(cases[0]["suite_properties"]["kubernetes.version"], "v1.20.2", "the container's API server answered");
    let kubeconfigs: Vec<_> =
        std::fs::read_dir(dir.path().join("cache/container")).expect("kubeconfigs").flatten().collect();
    let text = std::fs::read_to_string(kubeconfigs[0].path()).expect("kubeconfig");
    assert!(text.contains("server: \"http://127.0.0.1:"), "pointed at the mapped port: {text}");
    // The kubeconfig is named by this run's container (other tests start the same image).
    assert_eq!(kubeconfigs.len(), 1, "{kubeconfigs:?}");
    let file = kubeconfigs[0].file_name().to_string_lossy().to_string();
    let id = file.strip_suffix(".kubeconfig").filter(|id| id.len() == 12).expect("named by the container's id");
    assert_eq!(containers_with_id(id), "", "the cluster container {id} is removed at the end");
}

#[test]
fn a_container_that_fails_to_start_is_removed_and_reported() {
    // An image whose entrypoint does not exist: Docker creates the container, then cannot
    // start it, which testcontainers leaves behind.
    let dir = tempfile::tempdir().expect("tempdir");
    let image = "kubevet.test/no-entrypoint:1";
    std::fs::write(dir.path().join("Dockerfile"), "FROM kubevet.test/busybox:1.35\nENTRYPOINT [\"/does-not-exist\"]\n")
        .expect("write");
    let built = Command::new("docker")
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "--quiet", "-t", image])
        .arg(dir.path())
        .output()
        .expect("docker runs");
    assert!(built.status.success(), "{}", stderr(&built));
    std::fs::create_dir_all(dir.path().join("examples")).expect("mkdir");
    std::fs::copy(
        repo().join("tests/fixtures/container/examples/hello-job.yaml"),
        dir.path().join("examples/hello-job.yaml"),
    )
    .expect("copy");
    std::fs::write(
        dir.path().join("kubevet.yaml"),
        format!(
            "apiVersion: kubevet.dev/v1alpha1\nkind: Suite\ncluster: {{provider: container, image: \"{image}\"}}\n"
        ),
    )
    .expect("write");
    let artifacts = dir.path().join("artifacts");
    let out = kubevet()
        .env("KUBEVET_CACHE", dir.path().join("cache"))
        .args(["run", "--suite"])
        .arg(dir.path().join("kubevet.yaml"))
        .arg("--artifacts")
        .arg(&artifacts)
        .output()
        .expect("kubevet runs");
    assert_eq!(out.status.code(), Some(3), "{}\n{}", stdout(&out), stderr(&out));
    let cases = junit(&artifacts.join("junit.xml"));
    let cluster = support::case(&cases, "cluster");
    let message = cluster["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with(&format!("infrastructure: starting {image}: ")) && message.contains("does-not-exist"),
        "{message}"
    );
    let left = Command::new("docker")
        .args(["ps", "-a", "-q", "--filter", &format!("ancestor={image}")])
        .output()
        .expect("docker runs");
    assert_eq!(stdout(&left), "", "the container that did not start is removed");
    let _ = Command::new("docker").args(["rmi", image]).output();
}
