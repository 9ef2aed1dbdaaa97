//! SIGINT in the middle of a run: a valid JUnit with every selected case, exit 130, and no
//! namespace of the run left (nor, for a pipeline, its KFP run or a pod not being deleted).

mod support;

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use support::{junit, kubevet, repo};

/// `kubevet run` of a fixture suite, once two of its cases have started (from its info log
/// lines): the process, and the rest of its log lines.
struct Started {
    child: std::process::Child,
    /// The run's id, from its "run starting" line.
    run_id: String,
    lines: std::io::Lines<BufReader<std::process::ChildStderr>>,
    stdout: std::process::ChildStdout,
}

fn start(suite: &str, dir: &std::path::Path, junit_path: &std::path::Path) -> Started {
    start_cases(suite, dir, junit_path, 2)
}

/// As [`start`], once `cases` cases have started.
fn start_cases(suite: &str, dir: &std::path::Path, junit_path: &std::path::Path, cases: usize) -> Started {
    let mut child = kubevet()
        .args(["run", "--suite"])
        .arg(repo().join(suite))
        .arg("--kubeconfig")
        .arg(support::kubeconfig())
        .arg("--artifacts")
        .arg(dir.join("artifacts"))
        .arg("--junit")
        .arg(junit_path)
        // Info log lines, to know when cases start.
        .arg("-v")
        .stderr(Stdio::piped())
        // Read at the end, or closed mid-run by the test that wants a closed terminal.
        .stdout(Stdio::piped())
        .spawn()
        .expect("kubevet starts");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let mut started = 0;
    let mut run_id = String::new();
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    while started < cases && Instant::now() < deadline {
        match lines.next() {
            Some(Ok(line)) if line.contains("case starting") => started += 1,
            Some(Ok(line)) if line.contains("run starting") => {
                let id = line.split_whitespace().find_map(|w| w.strip_prefix("run="));
                run_id = id.expect("the run's id in its first line").to_string();
            }
            Some(_) => {}
            None => break,
        }
    }
    assert_eq!(started, cases, "{cases} cases should have started");
    Started { child, run_id, lines, stdout }
}

/// Polls observable state (the cluster's, this machine's) until `ready`, failing the test
/// with `what` after `seconds`.
fn wait_until(what: &str, seconds: u64, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !ready() {
        assert!(Instant::now() < deadline, "not within {seconds} s: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// SIGINT, then the exit code and the log lines until the end.
fn interrupt(started: Started) -> (Option<i32>, String) {
    let Started { mut child, lines, mut stdout, .. } = started;
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill runs");
    assert!(kill.success());
    // Drain stderr so kubevet never blocks on a full pipe.
    let drain = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let status = child.wait().expect("kubevet exits");
    (status.code(), drain.join().unwrap_or_default().join("\n"))
}

#[test]
fn sigint_leaves_a_valid_report_and_no_namespace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let junit_path = dir.path().join("junit.xml");
    // Both slots hold a running case: then interrupt.
    let started = start("tests/fixtures/interrupt/kubevet.yaml", dir.path(), &junit_path);
    // Both cases of this run (whichever two the runner started) have a running pod.
    let label = format!("kubevet.dev/run={}", started.run_id);
    wait_until("a pod runs in each of the two namespaces of the run", 60, || {
        let namespaces = support::kubectl_ok(&["get", "ns", "-l", &label, "-o", "name"]);
        let running = namespaces.lines().filter(|ns| {
            let ns = ns.trim_start_matches("namespace/");
            let pods = ["-n", ns, "get", "pods", "--field-selector=status.phase=Running", "-o", "name"];
            !support::kubectl_ok(&pods).trim().is_empty()
        });
        running.count() == 2
    });
    let (code, log) = interrupt(started);
    assert_eq!(code, Some(130), "{log}");

    let cases = junit(&junit_path);
    assert_eq!(cases.len(), 3, "every selected case is in the report: {cases:#?}");
    let interrupted: Vec<_> = cases.iter().filter(|c| c["result"] == "error").collect();
    let skipped: Vec<_> = cases.iter().filter(|c| c["result"] == "skipped").collect();
    assert_eq!(interrupted.len(), 2, "{cases:#?}");
    assert!(interrupted.iter().all(|c| c["message"] == "interrupted while it ran"));
    assert_eq!(skipped.len(), 1, "{cases:#?}");
    assert!(skipped[0]["message"].as_str().unwrap_or("").contains("interrupted before this case started"));

    let xml = std::fs::read_to_string(&junit_path).expect("junit");
    let run_id =
        xml.split("name=\"kubevet.run\" value=\"").nth(1).and_then(|s| s.split('"').next()).expect("run id property");
    assert_eq!(support::namespaces_of_run(run_id), Vec::<String>::new(), "namespaces left behind");
}

#[test]
fn sigint_during_a_notebook_stops_its_kernel_and_leaves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let junit_path = dir.path().join("junit.xml");
    let started = start_cases("tests/fixtures/notebooks-interrupt/kubevet.yaml", dir.path(), &junit_path, 1);
    // The notebook's cell runs: its kernel's child is there.
    let kernel_child = || {
        let out = Command::new("pgrep").args(["-f", "^sleep 986$"]).output().expect("pgrep runs");
        assert!(matches!(out.status.code(), Some(0 | 1)), "pgrep failed: {out:?}");
        out.status.code() == Some(0)
    };
    wait_until("the notebook's cell runs", 90, kernel_child);
    let run_id = started.run_id.clone();
    let (code, log) = interrupt(started);
    assert_eq!(code, Some(130), "{log}");
    let cases = junit(&junit_path);
    assert_eq!(cases.len(), 1, "{cases:#?}");
    assert_eq!(cases[0]["message"], "interrupted while the notebook ran", "{cases:#?}");
    assert!(!kernel_child(), "the kernel's process outlived the interrupt");
    assert_eq!(support::namespaces_of_run(&run_id), Vec::<String>::new(), "namespaces left behind");
}

#[test]
fn sigint_during_scenario_steps_stops_them_and_leaves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let junit_path = dir.path().join("junit.xml");
    let started = start("tests/fixtures/interrupt-scenario/kubevet.yaml", dir.path(), &junit_path);
    // Until the script runs (its process is on this machine) and the assert waits.
    let sleeping = || Command::new("pgrep").args(["-f", "sleep 297"]).output().is_ok_and(|o| o.status.success());
    wait_until("the scenario's script is running", 30, sleeping);
    // The assert step starts once its scenario's first step made the marker.
    wait_until("the asserting scenario applied its marker", 30, || {
        let markers = support::kubectl_ok(&[
            "get",
            "configmaps",
            "-A",
            "--field-selector=metadata.name=marker",
            "-o",
            "jsonpath={.items[*].metadata.namespace}",
        ]);
        markers.split_whitespace().any(|ns| ns.starts_with("kv-long-assert-"))
    });
    let interrupted_at = Instant::now();
    let (code, log) = interrupt(started);
    assert_eq!(code, Some(130), "{log}");
    assert!(interrupted_at.elapsed() < Duration::from_secs(60), "an interrupt does not wait for the steps' timeouts");
    assert!(!sleeping(), "the script's process was stopped with its step");

    let cases = junit(&junit_path);
    assert_eq!(cases.len(), 2, "{cases:#?}");
    assert!(cases.iter().all(|c| c["result"] == "error" && c["message"] == "interrupted while it ran"), "{cases:#?}");
    let left: Vec<String> = support::kubectl_ok(&["get", "ns", "-l", "kubevet.dev/case", "-o", "name"])
        .lines()
        .filter(|n| n.contains("kv-long-script-") || n.contains("kv-long-assert-"))
        .map(str::to_string)
        .collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
}

#[test]
fn sigint_during_a_pipeline_run_terminates_and_deletes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let junit_path = dir.path().join("junit.xml");
    let started = start_cases("tests/fixtures/pipelines/kubevet.interrupt.yaml", dir.path(), &junit_path, 1);
    // Until the run's task pod runs: then interrupt.
    let running = || {
        let out = support::kubectl_ok(&["-n", "kubeflow", "get", "pods", "-l", "pipeline/runid", "-o", "json"]);
        let pods: serde_json::Value = serde_json::from_str(&out).expect("pods JSON");
        pods["items"].as_array().into_iter().flatten().any(|p| {
            let name = p["metadata"]["name"].as_str().unwrap_or_default();
            // The task's executor, not its driver, which runs first.
            name.starts_with("slow-task-")
                && name.contains("-system-container-impl-")
                && p["status"]["phase"] == "Running"
        })
    };
    wait_until("the pipeline's task runs", 60, running);
    let (code, log) = interrupt(started);
    assert_eq!(code, Some(130), "{log}");

    let cases = junit(&junit_path);
    let slow = support::case(&cases, "examples/slow-task.yaml");
    assert_eq!(slow["message"], "interrupted while it ran; the run was terminated", "{cases:#?}");
    let result: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("artifacts/examples.slow-task/result.json")).expect("result.json"),
    )
    .expect("JSON");
    let run_id = result["pipeline"]["runId"].as_str().expect("the run's id").to_string();
    assert!(result["cleanup"].as_str().unwrap_or_default().contains(&format!("KFP run {run_id}")), "{result:#}");
    // The run's pods are gone or going (a shell that ignores SIGTERM takes its grace period).
    let out = support::kubectl_ok(&[
        "-n",
        "kubeflow",
        "get",
        "pods",
        "-l",
        &format!("pipeline/runid={run_id}"),
        "-o",
        "json",
    ]);
    let pods: serde_json::Value = serde_json::from_str(&out).expect("pods JSON");
    let staying: Vec<&serde_json::Value> = pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect();
    assert!(staying.is_empty(), "pods of the run left: {staying:#?}");
}

#[test]
fn a_closed_terminal_loses_lines_never_the_cases_or_their_cleanup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let junit_path = dir.path().join("junit.xml");
    let Started { mut child, run_id, lines, stdout } =
        start("tests/fixtures/interrupt/kubevet.yaml", dir.path(), &junit_path);
    // `kubevet run 2>&1 | head`: the reader of its log, its lines and its summary goes away.
    drop((lines, stdout));
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill runs").success());
    let status = child.wait().expect("kubevet exits");
    assert_eq!(status.code(), Some(130));
    let cases = junit(&junit_path);
    assert_eq!(cases.len(), 3, "{cases:#?}");
    let interrupted = cases.iter().filter(|c| c["message"] == "interrupted while it ran").count();
    assert_eq!(interrupted, 2, "the running cases end as interrupted, not lost: {cases:#?}");
    assert_eq!(support::namespaces_of_run(&run_id), Vec::<String>::new(), "namespaces left behind");
}
