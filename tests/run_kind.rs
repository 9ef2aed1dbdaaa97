//! The kind provider, driven through the `kubevet` binary with the TEST STAND-IN `kind` of
//! tests/standins (real kind needs Docker-in-Docker and node images from a registry, neither
//! of which this machine has; the real path runs in the GitHub workflow). The stand-in plays
//! each cluster with the real test cluster, so the cases really run; the command lines it
//! recorded are checked against kind's documented flags.

mod support;

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use support::{Documented, Standins, assert_documented, junit, repo, stderr, stdout};

/// The flags of the kind subcommands kubevet uses, from kind's documentation
/// (kind.sigs.k8s.io, `kind <command> --help`): (flag, takes a value).
const KIND: &[Documented] = &[
    (
        &["create", "cluster"],
        &[
            ("--name", true),
            ("--image", true),
            ("--config", true),
            ("--kubeconfig", true),
            ("--wait", true),
            ("--retain", false),
        ],
    ),
    (&["delete", "cluster"], &[("--name", true), ("--kubeconfig", true)]),
    (&["get", "clusters"], &[]),
    (&["get", "kubeconfig"], &[("--name", true), ("--internal", false)]),
    (&["load", "docker-image"], &[("--name", true), ("--nodes", true)]),
    (&["export", "logs"], &[("--name", true)]),
];

const IMAGE_1_34: &str = "kindest/node:v1.34.0@sha256:7416a61b42b1662ca6ca89f02028ac133a309a2a30ba309614e8ec94d976dc5a";
const IMAGE_1_33: &str = "kindest/node:v1.33.4@sha256:25a6018e48dfcaee478f4a59af81157a437f15e6e140bf103f85a2e7cd0cbbf2";

fn run(standins: &Standins, suite: &Path, artifacts: &Path, extra: &[&str]) -> std::process::Output {
    standins
        .kubevet()
        .args(["run", "--suite"])
        .arg(suite)
        .arg("--artifacts")
        .arg(artifacts)
        .args(extra)
        .output()
        .expect("kubevet runs")
}

fn option<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).map(String::as_str)
}

#[test]
fn a_version_matrix_gets_one_pinned_cluster_per_version_and_deletes_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let standins = Standins::new(dir.path());
    let artifacts = dir.path().join("artifacts");
    let out = run(&standins, &repo().join("tests/fixtures/kind/kubevet.yaml"), &artifacts, &[]);
    assert_eq!(out.status.code(), Some(1), "one example fails on purpose\n{}\n{}", stdout(&out), stderr(&out));

    // One testsuite per version, each with its node image; every case ran on each.
    let cases = junit(&artifacts.join("junit.xml"));
    for (label, image) in [("v1.34", IMAGE_1_34), ("v1.33", IMAGE_1_33)] {
        let suite_name = format!("kind-matrix [kubernetes {label}]");
        let cell: Vec<_> = cases.iter().filter(|c| c["suite"] == suite_name.as_str()).collect();
        assert_eq!(cell.len(), 3, "{suite_name}: {cases:#?}");
        assert_eq!(cell[0]["suite_properties"]["cluster.image"], image);
        assert_eq!(cell[0]["suite_properties"]["kubernetes.requested"], label.trim_start_matches('v'));
        // The version is in every classname, so a consumer that merges retries by
        // name|classname|file never takes one case on two versions for a retry.
        assert!(
            cell.iter()
                .all(|c| c["classname"].as_str().is_some_and(|n| n.ends_with(&format!(" [kubernetes {label}]")))),
            "{cell:#?}"
        );
        let result = |name: &str| cell.iter().find(|c| c["name"] == name).map(|c| c["result"].clone());
        assert_eq!(result("examples/hello-job.yaml"), Some("passed".into()));
        assert_eq!(result("examples/built-image-job.yaml"), Some("passed".into()), "the built image was loaded");
        assert_eq!(result("examples/failing-job.yaml"), Some("failure".into()));
        assert!(artifacts.join(label).join("kind-logs/kind-version.txt").is_file(), "kind export logs for {label}");
    }

    // What kind was asked, in order, per cluster; every flag is one kind documents.
    let calls = standins.calls("kind");
    for call in &calls {
        assert_documented(call, KIND);
    }
    for (name, image, label) in [("kubevet-kind-1-34", IMAGE_1_34, "v1.34"), ("kubevet-kind-1-33", IMAGE_1_33, "v1.33")]
    {
        let mine: Vec<&Vec<String>> = calls.iter().filter(|c| c.iter().any(|a| a == name)).collect();
        let verbs: Vec<String> = mine.iter().map(|c| c[..2].join(" ")).collect();
        assert_eq!(verbs, ["create cluster", "load docker-image", "export logs", "delete cluster"], "{mine:?}");
        assert_eq!(option(mine[0], "--image"), Some(image));
        assert!(option(mine[0], "--kubeconfig").is_some_and(|k| k.starts_with(&standins.cache.display().to_string())));
        assert!(mine[1][2].starts_with("kubevet.test/hello-app:kv-"), "the built image is loaded: {:?}", mine[1]);
        assert_eq!(mine[2][2], artifacts.join(label).join("kind-logs").display().to_string());
    }
    assert_eq!(standins.kind_clusters(), Vec::<String>::new(), "every cluster kubevet created is deleted");
}

#[test]
fn one_cell_with_reuse_keeps_its_cluster_for_the_next_run_and_cluster_down_removes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let standins = Standins::new(dir.path());
    let suite = repo().join("tests/fixtures/kind/kubevet.yaml");
    let args = ["--k8s-version", "1.33", "--reuse", "--select", "examples/hello-job.yaml"];
    let out = run(&standins, &suite, &dir.path().join("a1"), &args);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let cases = junit(&dir.path().join("a1/junit.xml"));
    assert_eq!(cases.len(), 1, "one cell, one case: {cases:#?}");
    assert_eq!(cases[0]["suite"], "kind-matrix [kubernetes v1.33]");
    assert_eq!(standins.kind_clusters(), ["kubevet-kind-1-33"], "--reuse keeps the cluster");

    let out = run(&standins, &suite, &dir.path().join("a2"), &args);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let verbs: Vec<String> = standins.calls("kind").iter().map(|c| c[..2].join(" ")).collect();
    assert_eq!(
        verbs,
        ["get clusters", "create cluster", "load docker-image", "get clusters", "get kubeconfig", "load docker-image"],
        "the second run reuses the cluster; nothing failed, so no logs were exported"
    );

    let status = standins.kubevet().args(["cluster", "status", "--suite"]).arg(&suite).output().expect("runs");
    let text = stdout(&status);
    assert!(text.contains("kubevet-kind-1-33\tup\t") && text.contains("Kubernetes v1.20"), "{text}");
    assert!(text.contains("kubevet-kind-1-34\tabsent\t"), "{text}");
    let down = standins.kubevet().args(["cluster", "down", "--suite"]).arg(&suite).output().expect("runs");
    assert_eq!(down.status.code(), Some(0), "{}", stderr(&down));
    assert_eq!(stdout(&down), "kubevet-kind-1-34\tnot found\nkubevet-kind-1-33\tdeleted\n");
    assert_eq!(standins.kind_clusters(), Vec::<String>::new());
    for call in standins.calls("kind") {
        assert_documented(&call, KIND);
    }
}

#[test]
fn a_missing_tool_is_named_before_anything_is_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let standins = Standins::new(dir.path());
    // A PATH with docker, kubectl and git but no kind.
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    for tool in ["docker", "kubectl", "git", "python3"] {
        let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().expect("sh runs");
        std::os::unix::fs::symlink(stdout(&found).trim(), bin.join(tool)).expect("symlink");
    }
    let out = standins
        .kubevet()
        .env("PATH", &bin)
        .args(["run", "--suite"])
        .arg(repo().join("tests/fixtures/kind/kubevet.yaml"))
        .arg("--artifacts")
        .arg(dir.path().join("artifacts"))
        .output()
        .expect("kubevet runs");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("missing tools: kind (install kind (https://kind.sigs.k8s.io/"),
        "the error names the tool and how to get it: {}",
        stderr(&out)
    );
    assert!(standins.calls("kind").is_empty() && standins.kind_clusters().is_empty(), "nothing was created");
}

#[test]
fn a_cluster_that_fails_to_come_up_is_an_error_case_and_is_cleaned_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let standins = Standins::new(dir.path());
    let artifacts = dir.path().join("artifacts");
    let out = standins
        .kubevet()
        .env("KUBEVET_STANDIN_KIND_FAIL_CREATE", "1")
        .args(["run", "--k8s-version", "1.34", "--suite"])
        .arg(repo().join("tests/fixtures/kind/kubevet.yaml"))
        .arg("--artifacts")
        .arg(&artifacts)
        .output()
        .expect("kubevet runs");
    assert_eq!(out.status.code(), Some(3), "no cluster is exit 3\n{}\n{}", stdout(&out), stderr(&out));
    let cases = junit(&artifacts.join("junit.xml"));
    let cluster = support::case(&cases, "cluster");
    assert_eq!(cluster["result"], "error");
    assert!(cluster["message"].as_str().unwrap_or("").contains("failed to create cluster"), "{cluster:#?}");
    assert!(
        cases
            .iter()
            .filter(|c| c["name"] != "cluster")
            .all(|c| c["message"] == "infrastructure: not run: cluster failed")
    );
    let verbs: Vec<String> = standins.calls("kind").iter().map(|c| c[..2].join(" ")).collect();
    assert_eq!(verbs, ["get clusters", "create cluster", "delete cluster"], "a failed creation is deleted");
}

#[test]
fn an_interrupt_deletes_the_cluster_and_reports_every_cell() {
    let dir = tempfile::tempdir().expect("tempdir");
    let standins = Standins::new(dir.path());
    let suite_dir = dir.path().join("suite");
    std::fs::create_dir_all(suite_dir.join("examples")).expect("mkdir");
    // A Job of this test's own name: the interrupt tests run long-1 on the same cluster.
    let long = std::fs::read_to_string(repo().join("tests/fixtures/interrupt/examples/long-1.yaml")).expect("read");
    std::fs::write(suite_dir.join("examples/long-1.yaml"), long.replace("name: long-1", "name: kind-interrupted-long"))
        .expect("write");
    std::fs::write(
        suite_dir.join("kubevet.yaml"),
        "apiVersion: kubevet.dev/v1alpha1\nkind: Suite\ncluster: {provider: kind, name: kv-int, kubernetesVersions: [\"1.34\", \"1.33\"]}\n",
    )
    .expect("write");
    let artifacts = dir.path().join("artifacts");
    let mut child = standins
        .kubevet()
        .args(["run", "--suite"])
        .arg(suite_dir.join("kubevet.yaml"))
        .arg("--artifacts")
        .arg(&artifacts)
        // Info log lines, to know when the case starts.
        .arg("-v")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("kubevet starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match lines.next() {
            Some(Ok(line)) if line.contains("case starting") => break,
            Some(_) => {}
            None => break,
        }
    }
    // Interrupted while it runs: once its Job's pod is running.
    let running = || {
        let args =
            ["get", "pods", "-A", "-l", "job-name=kind-interrupted-long", "--field-selector=status.phase=Running"];
        !support::kubectl_ok(&[&args[..], &["-o", "name"]].concat()).trim().is_empty()
    };
    while !running() {
        assert!(Instant::now() < deadline, "the case's pod runs within a minute");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill").success());
    let drain = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    let status = child.wait().expect("kubevet exits");
    let log = drain.join().unwrap_or_default().join("\n");
    assert_eq!(status.code(), Some(130), "{log}");
    assert_eq!(standins.kind_clusters(), Vec::<String>::new(), "the interrupted cell's cluster is deleted: {log}");
    let cases = junit(&artifacts.join("junit.xml"));
    assert_eq!(cases.len(), 2, "both cells are in the report: {cases:#?}");
    assert_eq!(cases[0]["message"], "interrupted while it ran");
    assert_eq!(cases[1]["suite"], "kubevet [kubernetes v1.33]");
    assert_eq!(cases[1]["result"], "skipped");
    assert_eq!(cases[1]["message"], "interrupted before this cell started");
    let verbs: Vec<String> = standins.calls("kind").iter().map(|c| c[..2].join(" ")).collect();
    assert_eq!(verbs.last().map(String::as_str), Some("delete cluster"), "{verbs:?}");
}

#[test]
fn cluster_up_creates_and_keeps_a_cluster_that_run_reuse_then_uses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let standins = Standins::new(dir.path());
    let suite = repo().join("tests/fixtures/kind/kubevet.yaml");
    let up = || {
        standins
            .kubevet()
            .args(["cluster", "up", "--k8s-version", "1.34", "--suite"])
            .arg(&suite)
            .output()
            .expect("runs")
    };
    let out = up();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let kubeconfig = standins.cache.join("kind/kubevet-kind-1-34.kubeconfig");
    assert_eq!(stdout(&out), format!("kubevet-kind-1-34\tup\t{IMAGE_1_34}\t{}\n", kubeconfig.display()));
    assert!(kubeconfig.is_file());
    assert_eq!(stdout(&up()), stdout(&out), "a second up finds the cluster and keeps it");
    let out = run(
        &standins,
        &suite,
        &dir.path().join("a"),
        &["--k8s-version", "1.34", "--reuse", "--select", "examples/hello-job.yaml"],
    );
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let verbs: Vec<String> = standins.calls("kind").iter().map(|c| c[..2].join(" ")).collect();
    assert_eq!(
        verbs,
        [
            "get clusters",
            "create cluster",
            "get clusters",
            "get kubeconfig",
            "get clusters",
            "get kubeconfig",
            "load docker-image"
        ],
        "created once by `cluster up`, then only found"
    );
    assert_eq!(standins.kind_clusters(), ["kubevet-kind-1-34"]);
    let down = standins
        .kubevet()
        .args(["cluster", "down", "--k8s-version", "1.34", "--suite"])
        .arg(&suite)
        .output()
        .expect("runs");
    assert_eq!(stdout(&down), "kubevet-kind-1-34\tdeleted\n");
}

#[test]
fn an_existing_cluster_gets_the_built_images_only_when_told_which_kind_cluster_it_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let standins = Standins::new(dir.path());
    let suite_dir = dir.path().join("suite");
    support::copy_dir(&repo().join("tests/fixtures/images"), &suite_dir);
    let suite = suite_dir.join("kubevet.yaml");
    let run_existing = |artifacts: &str| {
        let out = run(
            &standins,
            &suite,
            &dir.path().join(artifacts),
            &["--kubeconfig", &support::kubeconfig().display().to_string()],
        );
        assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    };
    run_existing("a1");
    assert!(standins.calls("kind").is_empty(), "an existing cluster is not a kind cluster unless the suite says so");
    let text = std::fs::read_to_string(&suite).expect("suite");
    std::fs::write(&suite, format!("{text}cluster: {{loadImages: \"kind:dev\"}}\n")).expect("write");
    run_existing("a2");
    let calls = standins.calls("kind");
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_documented(&calls[0], KIND);
    assert_eq!(&calls[0][..2], ["load", "docker-image"]);
    assert!(calls[0][2].starts_with("kubevet.test/hello-app:kv-") && calls[0][3..] == ["--name", "dev"], "{calls:?}");
}

#[test]
fn an_interrupt_while_kind_creates_the_cluster_deletes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let standins = Standins::new(dir.path());
    let artifacts = dir.path().join("artifacts");
    let mut child = standins
        .kubevet()
        .env("KUBEVET_STANDIN_KIND_CREATE_SECONDS", "60")
        .args(["run", "--suite"])
        .arg(repo().join("tests/fixtures/kind/kubevet.yaml"))
        .arg("--artifacts")
        .arg(&artifacts)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubevet starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while standins.kind_clusters().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(standins.kind_clusters(), ["kubevet-kind-1-34"], "kind is creating the first cluster");
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill").success());
    let status = child.wait().expect("kubevet exits");
    assert_eq!(status.code(), Some(130));
    assert_eq!(standins.kind_clusters(), Vec::<String>::new(), "the half-made cluster is deleted");
    let verbs: Vec<String> = standins.calls("kind").iter().map(|c| c[..2].join(" ")).collect();
    assert_eq!(verbs, ["get clusters", "create cluster", "delete cluster"]);
    let cases = junit(&artifacts.join("junit.xml"));
    let cluster = support::case(&cases, "cluster");
    assert_eq!(
        (cluster["result"].as_str(), cluster["message"].as_str()),
        (Some("error"), Some("interrupted while creating the cluster"))
    );
    let second: Vec<_> = cases.iter().filter(|c| c["suite"] == "kind-matrix [kubernetes v1.33]").collect();
    assert!(!second.is_empty() && second.iter().all(|c| c["result"] == "skipped"), "{cases:#?}");
}

#[test]
fn a_kind_config_file_and_a_node_image_override_reach_kind_create() {
    let dir = tempfile::tempdir().expect("tempdir");
    let standins = Standins::new(dir.path());
    std::fs::write(
        dir.path().join("kind.yaml"),
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes: [{role: control-plane}]\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("kubevet.yaml"),
        "apiVersion: kubevet.dev/v1alpha1\nkind: Suite\ncluster:\n  provider: kind\n  name: custom\n  kindConfig: kind.yaml\n  kubernetesVersions: [\"1.33\"]\n  nodeImages: {\"1.33\": \"example.com/node:custom\"}\n",
    )
    .expect("write");
    let cluster = |action: &str| {
        standins
            .kubevet()
            .args(["cluster", action, "--suite"])
            .arg(dir.path().join("kubevet.yaml"))
            .output()
            .expect("runs")
    };
    let up = cluster("up");
    assert_eq!(up.status.code(), Some(0), "{}", stderr(&up));
    let create = &standins.calls("kind")[1];
    assert_documented(create, KIND);
    assert_eq!(option(create, "--name"), Some("custom-1-33"));
    assert_eq!(option(create, "--image"), Some("example.com/node:custom"), "the suite's override wins over the table");
    assert_eq!(option(create, "--config"), Some(dir.path().join("kind.yaml").display().to_string().as_str()));
    assert_eq!(stdout(&cluster("down")), "custom-1-33\tdeleted\n");
}
