//! Helpers shared by the integration tests: the test cluster's kubeconfig, the kubevet binary,
//! kubectl, and a JUnit reader that is not kubevet's own code.
#![allow(dead_code)] // each test file uses a different part of this module

pub mod faults;

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

/// The kubevet binary, with its cache in a folder of this test process's own (nextest runs
/// each test in a process), so that no test sees another's checkouts or rendered manifests.
pub fn kubevet() -> Command {
    let cache = std::env::temp_dir().join(format!("kubevet-test-cache-{}", std::process::id()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubevet"));
    cmd.env("NO_COLOR", "1").env_remove("KUBECONFIG").env("KUBEVET_CACHE", cache);
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

/// kubectl's standard output; a failing kubectl fails the test, so that a broken kubectl is
/// never read as "nothing there".
pub fn kubectl_ok(args: &[&str]) -> String {
    program_ok("kubectl", args)
}

/// `program --kubeconfig … ARGS`'s standard output, failing the test on a non-zero exit.
pub fn program_ok(program: &str, args: &[&str]) -> String {
    let out =
        Command::new(program).arg("--kubeconfig").arg(kubeconfig()).args(args).output().expect("the program runs");
    assert!(out.status.success(), "{program} {} failed ({}): {}", args.join(" "), out.status, stderr(&out));
    stdout(&out)
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// What `tests/support/<script>` (a real consumer's reader, not kubevet's code) prints as JSON of
/// the file at `path`; `reader` names the consumer when it cannot read it.
fn read_by(script: &str, reader: &str, path: &Path) -> Vec<Value> {
    let out = Command::new("python3")
        .arg(repo().join("tests/support").join(script))
        .arg(path)
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{reader} could not read {}: {}", path.display(), stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{script} printed no JSON: {e}"))
}

/// The cases of a JUnit file as junitparser reads them.
pub fn junit(path: &Path) -> Vec<Value> {
    read_by("junit_to_json.py", "junitparser", path)
}

/// The metric families of a Prometheus text exposition as prometheus_client's parser reads them.
pub fn exposition(path: &Path) -> Vec<Value> {
    read_by("exposition_to_json.py", "prometheus_client", path)
}

pub fn case<'a>(cases: &'a [Value], name: &str) -> &'a Value {
    cases.iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no test case {name} in {cases:#?}"))
}

/// A case's `result.json` in a run's artifacts.
pub fn result_json(artifacts: &Path, id: &str) -> Value {
    let text = std::fs::read_to_string(artifacts.join(id).join("result.json"))
        .unwrap_or_else(|e| panic!("{id}/result.json: {e}"));
    serde_json::from_str(&text).expect("result.json is JSON")
}

/// The metric assertion `name` of a case's `result.json`; a missing one fails the test.
pub fn metric_check<'a>(result: &'a Value, name: &str) -> &'a Value {
    result["metrics"]
        .as_array()
        .and_then(|m| m.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no metric assertion {name} in {result:#}"))
}

/// What `kubevet list --suite SUITE` says on standard error when it refuses the suite at load
/// (exit 2, bad input).
pub fn refused_at_load(suite: &Path) -> String {
    let out = kubevet().args(["list", "--suite"]).arg(suite).output().expect("kubevet list");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    err
}

/// A named check of one run.
pub type Check<R> = (&'static str, fn(&R));

/// Every check on one run (nextest gives each test a process of its own, so one test holds
/// them all): each runs, and the test fails listing every one that failed.
pub fn all_checks<R>(run: &R, checks: &[Check<R>]) {
    let failed: Vec<&str> = checks
        .iter()
        .filter(|(_, check)| std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(run))).is_err())
        .map(|(name, _)| *name)
        .collect();
    assert!(failed.is_empty(), "checks failed (their messages are above): {failed:?}");
}

/// No case of a JUnit report (junitparser's reading) left its namespace on the cluster.
pub fn no_namespace_left(cases: &[Value]) {
    for c in cases {
        if let Some(ns) = c["properties"]["namespace"].as_str() {
            let left = kubectl_ok(&["get", "namespace", ns, "--ignore-not-found", "-o", "name"]);
            assert_eq!(left, "", "namespace {ns} of {} is still there", c["name"]);
        }
    }
}

/// The namespaces that carry this run's label; kubectl failing fails the test.
pub fn namespaces_of_run(run_id: &str) -> Vec<String> {
    kubectl_ok(&["get", "ns", "-l", &format!("kubevet.dev/run={run_id}"), "-o", "name"])
        .lines()
        .map(str::to_string)
        .collect()
}

/// The TEST STAND-IN `kind` and `helm` of tests/standins first on PATH: they play their
/// clusters and charts with the real test cluster and record every command line they get.
pub struct Standins {
    pub record: PathBuf,
    pub state: PathBuf,
    pub cache: PathBuf,
}

impl Standins {
    pub fn new(dir: &Path) -> Standins {
        Standins { record: dir.join("calls.jsonl"), state: dir.join("standin-state"), cache: dir.join("cache") }
    }

    /// `kubevet` with the stand-ins on PATH and its cache in the test's directory.
    pub fn kubevet(&self) -> Command {
        let path = format!("{}:{}", repo().join("tests/standins").display(), std::env::var("PATH").unwrap_or_default());
        let mut cmd = kubevet();
        cmd.env("PATH", path)
            .env("KUBEVET_STANDIN_RECORD", &self.record)
            .env("KUBEVET_STANDIN_STATE", &self.state)
            .env("KUBEVET_STANDIN_KUBECONFIG", kubeconfig())
            .env("KUBEVET_CACHE", &self.cache);
        cmd
    }

    /// The command lines `tool` was called with, in order.
    pub fn calls(&self, tool: &str) -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(&self.record).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["tool"] == tool)
            .map(|v| {
                v["args"].as_array().into_iter().flatten().filter_map(|a| a.as_str().map(str::to_string)).collect()
            })
            .collect()
    }

    /// The kind clusters the stand-in holds now.
    pub fn kind_clusters(&self) -> Vec<String> {
        std::fs::read_to_string(self.state.join("kind-clusters"))
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }
}

/// A subcommand as a tool documents it: its words and its flags, each with whether it takes a value.
pub type Documented = (&'static [&'static str], &'static [(&'static str, bool)]);

/// Checks a recorded command line against a tool's documented flags: every `--flag` is known,
/// and a flag that takes a value has one.
pub fn assert_documented(args: &[String], documented: &[Documented]) {
    let (words, flags) = documented
        .iter()
        .find(|(words, _)| {
            args.len() >= words.len() && args[..words.len()].iter().zip(words.iter()).all(|(a, w)| a == w)
        })
        .unwrap_or_else(|| panic!("{args:?} is not a documented subcommand"));
    let mut rest = args[words.len()..].iter();
    while let Some(arg) = rest.next() {
        if !arg.starts_with('-') {
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (arg.as_str(), None),
        };
        let takes_value = flags
            .iter()
            .find(|(f, _)| *f == name)
            .unwrap_or_else(|| panic!("{name} is not a documented flag of {words:?}: {args:?}"))
            .1;
        if takes_value && inline.is_none() {
            let value = rest.next().unwrap_or_else(|| panic!("{name} needs a value: {args:?}"));
            assert!(!value.starts_with("--"), "{name} needs a value: {args:?}");
        }
    }
}

/// Copies a directory tree, for tests that change a scenario.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// Headless Chromium (Debian's `chromium`): the page's DOM after its scripts ran.
pub fn chromium_dom(url: &str) -> String {
    let out = Command::new("chromium")
        .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--dump-dom", url])
        .output()
        .expect("chromium runs (tests/run installs Debian's chromium)");
    assert!(out.status.success(), "chromium --dump-dom {url}: {}", stderr(&out));
    stdout(&out)
}

/// A screenshot of the page by headless Chromium.
pub fn chromium_screenshot(url: &str, png: &Path) {
    let out = Command::new("chromium")
        .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1600"])
        .arg(format!("--screenshot={}", png.display()))
        .arg(url)
        .output()
        .expect("chromium runs");
    assert!(out.status.success() && png.is_file(), "chromium --screenshot {url}: {}", stderr(&out));
}

/// Where tests keep files for people to look at after a run (screenshots).
pub fn test_artifacts() -> PathBuf {
    let dir = repo().join("target/test-artifacts");
    std::fs::create_dir_all(&dir).expect("mkdir target/test-artifacts");
    dir
}
