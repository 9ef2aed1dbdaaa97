//! Operators from Helm charts, through the `kubevet` binary on the real test cluster, with the
//! TEST STAND-IN `helm` of tests/standins (Helm cannot be installed here; the real path runs in
//! the GitHub workflow) and a TEST STAND-IN chart server on 127.0.0.1 for repository indexes and
//! OCI tags. Checked: what gets applied, the render cache (hit, miss on a changed input,
//! `kubevet render` ahead of a run), floating chart versions with the listing TTL, and that
//! every recorded helm command line uses only flags Helm documents.

mod support;

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use serde_json::Value;
use support::{Documented, Standins, assert_documented, junit, kubectl, repo, stderr, stdout};

/// The flags of the helm subcommands kubevet uses, from Helm's documentation
/// (helm.sh/docs/helm/helm_template, helm_upgrade, helm_get_manifest): (flag, takes a value).
const HELM: &[Documented] = &[
    (
        &["template"],
        &[
            ("--namespace", true),
            ("--version", true),
            ("--repo", true),
            ("--values", true),
            ("--set", true),
            ("--include-crds", false),
            ("--plain-http", false),
        ],
    ),
    (
        &["upgrade"],
        &[
            ("--install", false),
            ("--namespace", true),
            ("--version", true),
            ("--repo", true),
            ("--values", true),
            ("--set", true),
            ("--create-namespace", false),
            ("--wait", false),
            ("--timeout", true),
            ("--plain-http", false),
            ("--kubeconfig", true),
            ("--kube-context", true),
        ],
    ),
    (&["get", "manifest"], &[("--namespace", true), ("--kubeconfig", true), ("--kube-context", true)]),
];

/// The scenario's chart published as `version` in the stand-in's chart store.
fn publish(charts: &Path, version: &str) {
    let dir = charts.join(format!("widget-operator-{version}"));
    support::copy_dir(&repo().join("tests/fixtures/helm/charts/widget-operator"), &dir);
    let meta = std::fs::read_to_string(dir.join("Chart.yaml")).expect("Chart.yaml");
    std::fs::write(dir.join("Chart.yaml"), meta.replace("version: 0.3.0", &format!("version: {version}")))
        .expect("write");
}

/// A suite in `dir` whose one operator, `widgets`, is `operator` (its YAML under the name), with
/// copies of `examples` (files of this repository) as its examples.
fn write_suite(dir: &Path, operator: &str, examples: &[&str]) -> PathBuf {
    std::fs::create_dir_all(dir.join("examples")).expect("mkdir");
    for example in examples {
        let from = repo().join(example);
        std::fs::copy(&from, dir.join("examples").join(from.file_name().expect("a file"))).expect("copy");
    }
    let suite = dir.join("kubevet.yaml");
    let text = format!("apiVersion: kubevet.dev/v1alpha1\nkind: Suite\noperators:\n  - name: widgets\n{operator}");
    std::fs::write(&suite, text).expect("write");
    suite
}

/// The scenario's chart, by absolute path.
fn chart() -> String {
    repo().join("tests/fixtures/helm/charts/widget-operator").display().to_string()
}

const HELLO: &str = "tests/fixtures/helm/examples/hello-job.yaml";

fn run(
    standins: &Standins,
    suite: &Path,
    artifacts: &Path,
    extra: &[&str],
) -> (std::process::Output, Vec<Value>, Value) {
    let out = standins
        .kubevet()
        .env("KUBEVET_STANDIN_CHARTS", standins.state.join("charts"))
        .args(["run", "--kubeconfig"])
        .arg(support::kubeconfig())
        .arg("--suite")
        .arg(suite)
        .arg("--artifacts")
        .arg(artifacts)
        .args(extra)
        .output()
        .expect("kubevet runs");
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let run_json = std::fs::read_to_string(artifacts.join("run.json")).expect("run.json");
    (out, junit(&artifacts.join("junit.xml")), serde_json::from_str(&run_json).expect("JSON"))
}

fn configmap(namespace: &str, key: &str) -> String {
    support::kubectl_ok(&[
        "-n",
        namespace,
        "get",
        "configmap",
        "widgets-settings",
        "-o",
        &format!("jsonpath={{.data.{key}}}"),
    ])
}

#[test]
fn a_local_chart_is_templated_applied_and_rendered_once_per_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let standins = Standins::new(dir.path());
    let suite = dir.path().join("suite");
    support::copy_dir(&repo().join("tests/fixtures/helm"), &suite);
    let suite_file = suite.join("kubevet.yaml");

    let (_, cases, run_json) = run(&standins, &suite_file, &dir.path().join("a1"), &[]);
    let install = support::case(&cases, "operator widgets");
    assert_eq!(install["result"], "passed", "{install:#?}");
    assert_eq!(install["message"], Value::Null);
    assert_eq!(cases[0]["suite_properties"]["operator.widgets.render"], "miss");
    assert_eq!(support::case(&cases, "examples/hello-job.yaml")["result"], "passed");
    assert_eq!(configmap("kubevet-helm-widgets", "greeting"), "hello-from-set", "--set wins over the values");
    let replicas = kubectl(&[
        "-n",
        "kubevet-helm-widgets",
        "get",
        "deploy",
        "widgets-controller",
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    assert_eq!(stdout(&replicas), "1", "the suite's values file wins over the chart's values.yaml");
    let crd = kubectl(&["get", "crd", "gadgets.example.com", "-o", "name"]);
    assert!(crd.status.success(), "the chart's crds/ were applied: {}", stderr(&crd));
    let first_file = run_json["rendered"]["widgets"]["file"].as_str().unwrap_or_default().to_string();

    let (_, cases, run_json) = run(&standins, &suite_file, &dir.path().join("a2"), &[]);
    assert_eq!(cases[0]["suite_properties"]["operator.widgets.render"], "hit");
    assert_eq!(run_json["rendered"]["widgets"]["file"], first_file.as_str());
    assert_eq!(standins.calls("helm").len(), 1, "an unchanged chart is rendered once");

    std::fs::write(suite.join("values-test.yaml"), "replicas: 1\ngreeting: from-a-changed-file\n").expect("write");
    let (_, cases, run_json) = run(&standins, &suite_file, &dir.path().join("a3"), &[]);
    assert_eq!(cases[0]["suite_properties"]["operator.widgets.render"], "miss", "a changed values file");
    assert_ne!(run_json["rendered"]["widgets"]["file"], first_file.as_str());

    let calls = standins.calls("helm");
    assert_eq!(calls.len(), 2);
    for call in &calls {
        assert_documented(call, HELM);
    }
    let chart = suite.join("charts/widget-operator").display().to_string();
    let values = suite.join("values-test.yaml").display().to_string();
    let expected = ["template", "widgets", &chart, "--namespace", "kubevet-helm-widgets", "--values", &values]
        .into_iter()
        .chain(["--set", "greeting=hello-from-set", "--include-crds"])
        .map(str::to_string)
        .collect::<Vec<_>>();
    assert_eq!(calls[0], expected);
    kubectl(&["delete", "namespace", "kubevet-helm-widgets", "--wait=false"]);
}

#[test]
fn kubevet_render_fills_the_cache_ahead_of_a_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let standins = Standins::new(dir.path());
    let suite = dir.path().join("suite");
    support::copy_dir(&repo().join("tests/fixtures/helm"), &suite);
    // Its own namespace, so that it runs beside the other tests of this chart.
    let text = std::fs::read_to_string(suite.join("kubevet.yaml")).expect("suite");
    std::fs::write(suite.join("kubevet.yaml"), text.replace("kubevet-helm-widgets", "kubevet-helm-render"))
        .expect("write");
    let render =
        || standins.kubevet().args(["render", "--suite"]).arg(suite.join("kubevet.yaml")).output().expect("runs");
    let out = render();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(lines[0], "OPERATOR\tVERSION\tCACHE\tFILE");
    let fields: Vec<&str> = lines[1].split('\t').collect();
    assert_eq!(&fields[..3], ["widgets", "local", "miss"]);
    assert!(Path::new(fields[3]).is_file(), "the rendered manifests are in the cache: {}", fields[3]);
    assert!(std::fs::read_to_string(fields[3]).unwrap_or_default().contains("kind: CustomResourceDefinition"));
    assert!(stdout(&render()).contains("widgets\tlocal\thit\t"));
    let (_, cases, _) = run(&standins, &suite.join("kubevet.yaml"), &dir.path().join("a"), &[]);
    assert_eq!(cases[0]["suite_properties"]["operator.widgets.render"], "hit", "the run used what render made");
    assert_eq!(standins.calls("helm").len(), 1);
    kubectl(&["delete", "namespace", "kubevet-helm-render", "--wait=false"]);
}

#[test]
fn install_upgrade_is_helm_upgrade_then_its_manifest_read_back_and_watched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let standins = Standins::new(dir.path());
    let chart = chart();
    let operator = format!(
        "    timeout: 90s\n    helm:\n      chart: {chart}\n      namespace: kubevet-helm-upgrade\n      install: upgrade\n      set: {{replicas: \"1\"}}\n"
    );
    let suite = write_suite(dir.path(), &operator, &[HELLO]);
    let (_, cases, _) = run(&standins, &suite, &dir.path().join("a"), &[]);
    let install = support::case(&cases, "operator widgets");
    assert_eq!(install["result"], "passed", "{install:#?}");
    let calls = standins.calls("helm");
    let verbs: Vec<&str> = calls.iter().map(|c| c[0].as_str()).collect();
    assert_eq!(verbs, ["template", "upgrade", "get"], "rendered (for the cache and lint), installed, then read back");
    for call in &calls {
        assert_documented(call, HELM);
    }
    let kubeconfig = support::kubeconfig().display().to_string();
    let upgrade = [
        "upgrade",
        "--install",
        "widgets",
        &chart,
        "--namespace",
        "kubevet-helm-upgrade",
        "--set",
        "replicas=1",
        "--create-namespace",
        "--wait",
        "--timeout",
        "90s",
        "--kubeconfig",
        &kubeconfig,
    ];
    assert_eq!(calls[1], upgrade);
    assert_eq!(
        calls[2],
        ["get", "manifest", "widgets", "--namespace", "kubevet-helm-upgrade", "--kubeconfig", &kubeconfig]
    );
    let applied = std::fs::read_to_string(dir.path().join("a/operators/widgets/result.json")).expect("result.json");
    assert!(
        applied.contains("1 CRDs Established, 1 Deployments Available"),
        "the chart's CRD is watched too: {applied}"
    );
    kubectl(&["delete", "namespace", "kubevet-helm-upgrade", "--wait=false"]);
}

/// The stand-in chart server, on a free port, serving `root`.
struct ChartServer {
    child: Child,
    port: u16,
}

impl ChartServer {
    fn start(root: &Path) -> ChartServer {
        let mut child = Command::new(repo().join("tests/standins/chart-server"))
            .arg(root)
            .stdout(Stdio::piped())
            .spawn()
            .expect("chart server starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("port");
        ChartServer { child, port: line.trim().parse().expect("a port") }
    }

    fn requests(root: &Path) -> Vec<String> {
        std::fs::read_to_string(root.join("requests.log")).unwrap_or_default().lines().map(str::to_string).collect()
    }
}

impl Drop for ChartServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn index(versions: &[&str]) -> String {
    let entries: String = versions
        .iter()
        .map(|v| format!("    - name: widget-operator\n      version: {v}\n      urls: [widget-operator-{v}.tgz]\n"))
        .collect();
    format!("apiVersion: v1\nentries:\n  widget-operator:\n{entries}generated: \"2026-11-22T00:00:00Z\"\n")
}

#[test]
fn chart_versions_float_with_the_repository_index_and_its_listing_ttl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let standins = Standins::new(dir.path());
    let served: PathBuf = dir.path().join("served");
    std::fs::create_dir_all(served.join("charts")).expect("mkdir");
    std::fs::write(served.join("charts/index.yaml"), index(&["0.2.0", "0.3.0", "0.4.0-rc.1"])).expect("write");
    for v in ["0.3.0", "0.4.0"] {
        publish(&standins.state.join("charts"), v);
    }
    let server = ChartServer::start(&served);
    let repo_url = format!("http://127.0.0.1:{}/charts", server.port);
    let operator = format!(
        "    helm: {{chart: widget-operator, repo: \"{repo_url}\", version: latest, namespace: kubevet-helm-repo}}\n"
    );
    let suite = write_suite(dir.path(), &operator, &[HELLO]);
    let text = std::fs::read_to_string(&suite).expect("suite");
    std::fs::write(&suite, format!("{text}defaults: {{resolveTtl: 10m}}\n")).expect("write");

    let (_, cases, _) = run(&standins, &suite, &dir.path().join("a1"), &[]);
    assert_eq!(cases[0]["suite_properties"]["operator.widgets.version"], "0.3.0", "latest skips the pre-release");
    assert_eq!(configmap("kubevet-helm-repo", "chartVersion"), "0.3.0");
    let template = &standins.calls("helm")[0];
    assert_documented(template, HELM);
    assert_eq!(&template[..3], ["template", "widgets", "widget-operator"]);
    assert!(
        template.windows(2).any(|w| w == ["--version", "0.3.0"])
            && template.windows(2).any(|w| w[0] == "--repo" && w[1] == repo_url)
    );

    // A new release within the suite's resolveTtl is not seen yet; --refresh lists anew.
    std::fs::write(served.join("charts/index.yaml"), index(&["0.2.0", "0.3.0", "0.4.0-rc.1", "0.4.0"])).expect("write");
    let (_, cases, run_json) = run(&standins, &suite, &dir.path().join("a2"), &[]);
    assert_eq!(cases[0]["suite_properties"]["operator.widgets.version"], "0.3.0");
    assert_eq!(run_json["rendered"]["widgets"]["listingCached"], true);
    assert_eq!(run_json["rendered"]["widgets"]["cache"], "hit");
    let index_gets = ChartServer::requests(&served).iter().filter(|r| r.starts_with("GET /charts/index.yaml")).count();
    assert_eq!(index_gets, 1, "the second run read the cached listing");

    let (out, cases, run_json) = run(&standins, &suite, &dir.path().join("a3"), &["--refresh"]);
    assert_eq!(cases[0]["suite_properties"]["operator.widgets.version"], "0.4.0");
    assert_eq!(stdout(&out).lines().next(), Some("changed since the previous run: widgets 0.3.0 → 0.4.0"));
    assert_eq!(run_json["changed"], serde_json::json!(["widgets 0.3.0 → 0.4.0"]));
    assert_eq!(configmap("kubevet-helm-repo", "chartVersion"), "0.4.0", "the new version is what got applied");
    kubectl(&["delete", "namespace", "kubevet-helm-repo", "--wait=false"]);
}

#[test]
fn oci_chart_tags_are_listed_through_the_registry_token_challenge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let standins = Standins::new(dir.path());
    let served = dir.path().join("served");
    std::fs::create_dir_all(&served).expect("mkdir");
    std::fs::write(
        served.join("tags.json"),
        r#"{"charts/widget-operator": ["0.3.0", "0.4.0", "0.5.0-rc.1", "latest"]}"#,
    )
    .expect("write");
    publish(&standins.state.join("charts"), "0.4.0");
    let server = ChartServer::start(&served);
    let reference = format!("oci://127.0.0.1:{}/charts/widget-operator", server.port);
    let operator =
        format!("    helm: {{chart: \"{reference}\", version: \">=0.3, <0.5\", prereleases: true, plainHttp: true}}\n");
    let suite = write_suite(dir.path(), &operator, &[]);
    let out = standins
        .kubevet()
        .env("KUBEVET_STANDIN_CHARTS", standins.state.join("charts"))
        .args(["render", "--suite"])
        .arg(&suite)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("widgets\t0.4.0\tmiss\t"), "{}", stdout(&out));
    let requests = ChartServer::requests(&served);
    let statuses: Vec<&str> = requests.iter().map(|r| r.rsplit(' ').next().unwrap_or("")).collect();
    assert_eq!(statuses, ["401", "200", "200"], "challenge, token, tags: {requests:?}");
    assert!(requests[1].starts_with("GET /token?scope=repository:charts/widget-operator:pull"), "{requests:?}");
    let template = &standins.calls("helm")[0];
    assert_documented(template, HELM);
    assert_eq!(&template[..3], ["template", "widgets", reference.as_str()]);
    assert!(template.windows(2).any(|w| w == ["--version", "0.4.0"]) && template.contains(&"--plain-http".to_string()));
}

#[test]
fn the_operators_logs_sit_beside_every_failed_case_and_its_images_can_be_swapped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let standins = Standins::new(dir.path());
    // The chart is told to run an image that exists nowhere; the operator's `images:` swaps it
    // for the local busybox, as `kustomize edit set image` would.
    let operator = format!(
        "    images: [\"example.invalid/controller=kubevet.test/busybox:1.35\"]\n    helm: {{chart: \"{}\", namespace: kubevet-helm-logs, set: {{replicas: \"1\", image: \"example.invalid/controller:v9\"}}}}\n",
        chart()
    );
    let suite = write_suite(dir.path(), &operator, &["tests/fixtures/kind/examples/failing-job.yaml"]);
    let artifacts = dir.path().join("artifacts");
    let out = standins
        .kubevet()
        .args(["run", "--kubeconfig"])
        .arg(support::kubeconfig())
        .arg("--suite")
        .arg(&suite)
        .arg("--artifacts")
        .arg(&artifacts)
        .output()
        .expect("kubevet runs");
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    let copied = artifacts.join("examples.failing-job/operators/widgets");
    let logs: Vec<String> = walk(&copied).iter().filter_map(|f| std::fs::read_to_string(f).ok()).collect();
    assert!(
        logs.iter().any(|l| l.contains("controller says hello-from-values")),
        "the operator's log is in the failed case's folder: {copied:?} {logs:?}"
    );
    let image = kubectl(&[
        "-n",
        "kubevet-helm-logs",
        "get",
        "deploy",
        "widgets-controller",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(stdout(&image), "kubevet.test/busybox:1.35", "the operator's images: entry was applied");
    kubectl(&["delete", "namespace", "kubevet-helm-logs", "--wait=false"]);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries.flatten().flat_map(|e| if e.path().is_dir() { walk(&e.path()) } else { vec![e.path()] }).collect()
}

#[test]
fn lint_checks_examples_against_the_crds_a_chart_installs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let standins = Standins::new(dir.path());
    let suite = write_suite(dir.path(), &format!("    helm: {{chart: \"{}\"}}\n", chart()), &[]);
    std::fs::write(
        dir.path().join("examples/gadget.yaml"),
        "apiVersion: example.com/v1\nkind: Gadget\nmetadata:\n  name: g\nspec:\n  size: 0\n",
    )
    .expect("write");
    let out =
        standins.kubevet().args(["lint", "--output", "json", "--suite"]).arg(&suite).output().expect("kubevet runs");
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let messages: Vec<&str> =
        report["findings"].as_array().expect("findings").iter().filter_map(|f| f["message"].as_str()).collect();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(
        messages[0].starts_with("spec.size: 0 is less than the minimum of 1 (against operator widgets"),
        "{messages:?}"
    );
}
