//! `kubevet sweep` through the binary on the test cluster: a schedule of every 3 seconds and
//! runs that take longer, so that triggers fall during runs. Read back from the history and
//! from what the sweep says: never two runs at once, the triggers that fell during a run
//! skipped (not made up for afterwards), a clean stop on SIGTERM; `--once` runs one sweep.

mod support;

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use serde_json::Value;
use support::{copy_dir, kubevet, repo, stderr};

#[test]
fn a_schedule_runs_one_at_a_time_skips_what_falls_during_a_run_and_stops_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let suite_dir = dir.path().join("suite");
    copy_dir(&repo().join("tests/fixtures/history"), &suite_dir);
    let history = dir.path().join("history.sqlite");
    let report = dir.path().join("artifacts/report.html");
    let mut child = kubevet()
        .args(["sweep", "--schedule", "*/3 * * * * *", "--suite"])
        .arg(suite_dir.join("kubevet.yaml"))
        .args(["--select", "examples/passes.yaml", "--kubeconfig"])
        .arg(support::kubeconfig())
        .arg("--artifacts")
        .arg(dir.path().join("artifacts"))
        .arg("--history")
        .arg(&history)
        .arg("--html")
        .arg(&report)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubevet starts");
    // What the sweep says, line by line as it says it: stopped once two runs have ended.
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let stderr_pipe = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let started = Instant::now();
    let mut said = String::new();
    let mut ended = 0;
    while ended < 2 {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no second run within 60 s:\n{said}"));
        ended += usize::from(line.starts_with("kubevet sweep: run ended"));
        said.push_str(&line);
        said.push('\n');
    }
    // Between runs: the sweep is waiting for its next trigger, so it stops at once with 0.
    let pid = child.id().to_string();
    std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
    let status = child.wait().expect("the sweep ends");
    reader.join().expect("the reader");
    said.extend(lines.try_iter().map(|l| l + "\n"));
    assert!(started.elapsed() < Duration::from_secs(120), "it stopped within its cleanup bounds");
    assert_eq!(status.code(), Some(0), "stopped between runs: {said}");
    assert!(said.contains("kubevet sweep: stopped between runs"), "a clean stop, said: {said}");
    // Never two runs at once: every start follows the end of the run before it.
    let events: Vec<&str> = said
        .lines()
        .filter_map(|l| match l {
            l if l.starts_with("kubevet sweep: run starting at ") => Some("start"),
            l if l.starts_with("kubevet sweep: run ended") => Some("end"),
            _ => None,
        })
        .collect();
    let alternating = events.chunks(2).all(|pair| pair == ["start", "end"]);
    assert!(alternating && events.len() == 4, "start, end, start, end: {events:?}\n{said}");

    // Runs from the history: one after the other, each starting at a trigger of the schedule.
    let rows = kubevet()
        .current_dir(dir.path())
        .args(["health", "--output", "json", "--history"])
        .arg(&history)
        .output()
        .expect("kubevet runs");
    let health: Vec<Value> = serde_json::from_slice(&rows.stdout).expect("JSON");
    let points = health.iter().find(|h| h["kubernetes"].is_string()).expect("a row per version")["points"].clone();
    let runs: Vec<String> =
        points.as_array().expect("points").iter().map(|p| p["run"].as_str().unwrap_or("").to_string()).collect();
    assert_eq!(runs.len(), 2, "both runs are in the history: {runs:?}\n{said}");
    for line in said.lines().filter(|l| l.starts_with("kubevet sweep: run starting at ")) {
        let at: jiff::Timestamp = line.trim_start_matches("kubevet sweep: run starting at ").parse().expect("a time");
        assert_eq!(at.as_second() % 3, 0, "each run starts at a trigger, not right after a long run: {line}");
    }
    // A run takes longer than 3 s (a job, then its namespace deleted): triggers fell during it.
    let skipped = said.lines().filter(|l| l.contains("skipped the trigger at")).count();
    assert!(skipped >= 1, "triggers during a run are skipped and said:\n{said}");
    // No catch-up: a run that follows another starts at a later trigger, never at once for
    // the triggers it missed.
    let mut last_end: Option<jiff::Timestamp> = None;
    for line in said.lines() {
        if let Some(rest) = line.strip_prefix("kubevet sweep: run ended at ") {
            last_end = rest.split(' ').next().and_then(|t| t.parse().ok());
        }
        if let (Some(rest), Some(end)) = (line.strip_prefix("kubevet sweep: run starting at "), last_end) {
            let start: jiff::Timestamp = rest.parse().expect("a time");
            // A catch-up would start in the second the last run ended; a trigger is later.
            assert!(
                start.as_second() > end.as_second(),
                "{start} waits for a trigger after the run that ended at {end}:\n{said}"
            );
        }
    }
    assert!(report.is_file(), "the report is written after each run");
}

#[test]
fn once_runs_one_sweep_now_and_exits_with_its_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let suite_dir = dir.path().join("suite");
    copy_dir(&repo().join("tests/fixtures/history"), &suite_dir);
    let history = dir.path().join("history.sqlite");
    let out = kubevet()
        .args(["sweep", "--once", "--suite"])
        .arg(suite_dir.join("kubevet.yaml"))
        .args(["--select", "examples/fails.yaml", "--kubeconfig"])
        .arg(support::kubeconfig())
        .arg("--artifacts")
        .arg(dir.path().join("artifacts"))
        // No history: the report is still written, of this run alone.
        .arg("--no-history")
        .arg("--html")
        .arg(dir.path().join("artifacts/report.html"))
        .output()
        .expect("kubevet runs");
    assert_eq!(out.status.code(), Some(1), "the failing example's exit code\n{}", stderr(&out));
    assert!(!history.exists(), "--no-history writes no history");
    let report = std::fs::read_to_string(dir.path().join("artifacts/report.html")).expect("the report");
    assert!(report.contains("data-example=\"examples.fails\""), "the run's case is in the report");
    let out = kubevet().args(["sweep", "--schedule", "every day"]).output().expect("kubevet runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("write a cron schedule"), "{}", stderr(&out));
}
