//! A run as a person sees it, in a real terminal (tmux): one line per finished case with its
//! outcome, time, class and reason, a live line per running case with its phase and time
//! against its timeout, the failures again at the end, colour unless NO_COLOR; and plain
//! lines with no control codes when the output is not a terminal.

mod support;

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use support::{kubeconfig, kubevet, stderr};

fn suite(dir: &Path) -> std::path::PathBuf {
    let job = |name: &str, script: &str| {
        format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: {name}}}\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: main\n          image: kubevet.test/busybox:1.35\n          imagePullPolicy: IfNotPresent\n          command: [\"sh\", \"-c\", \"{script}\"]\n"
        )
    };
    std::fs::create_dir_all(dir.join("examples")).expect("mkdir");
    std::fs::write(dir.join("examples/quick.yaml"), job("quick", "echo done")).expect("write");
    std::fs::write(dir.join("examples/sleepy.yaml"), job("sleepy", "sleep 6; echo done")).expect("write");
    std::fs::write(dir.join("examples/broken.yaml"), job("broken", "echo the end of a failing log; exit 4"))
        .expect("write");
    let suite = dir.join("kubevet.yaml");
    std::fs::write(&suite, "apiVersion: kubevet.dev/v1alpha1\nkind: Suite\ndefaults: {timeout: 1m}\n").expect("write");
    suite
}

struct Tmux(String);

impl Tmux {
    fn start(name: &str, command: &str) -> Tmux {
        let _ = Command::new("tmux").args(["kill-session", "-t", name]).output();
        let ok = Command::new("tmux")
            .args(["new-session", "-d", "-s", name, "-x", "200", "-y", "50", command])
            .status()
            .expect("tmux runs (apt-get install tmux)");
        assert!(ok.success());
        Tmux(name.to_string())
    }

    /// The screen and its scrollback, with colour codes when `escapes`.
    fn screen(&self, escapes: bool) -> String {
        let mut args = vec!["capture-pane", "-p", "-J", "-S", "-200", "-t", &self.0];
        if escapes {
            args.push("-e");
        }
        String::from_utf8_lossy(&Command::new("tmux").args(&args).output().expect("capture").stdout).into_owned()
    }

    /// Waits (watching the screen) until `found` holds, for at most `limit`.
    fn wait_for(&self, limit: Duration, found: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen(false);
            if found(&screen) || start.elapsed() > limit {
                return screen;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.0]).output();
    }
}

fn command(dir: &Path, suite: &Path, env: &str) -> String {
    format!(
        "cd {} && {env} KUBEVET_CACHE={}/cache {} run --suite {} --kubeconfig {} --artifacts {}/artifacts; echo EXIT=$?; sleep 600",
        dir.display(),
        dir.display(),
        env!("CARGO_BIN_EXE_kubevet"),
        suite.display(),
        kubeconfig().display(),
        dir.display()
    )
}

#[test]
fn on_a_terminal_cases_are_lines_with_a_live_area_and_colour() {
    let dir = tempfile::tempdir().expect("tempdir");
    let suite = suite(dir.path());
    let session = format!("kubevet-{}", std::process::id());
    let tmux = Tmux::start(&session, &command(dir.path(), &suite, ""));
    // While sleepy.yaml runs, the live area shows it, its phase and its time against 1m0s.
    let live = tmux.wait_for(Duration::from_secs(60), |s| {
        s.lines().any(|l| l.contains("examples/sleepy.yaml running") && l.contains("/1m0s"))
    });
    assert!(live.lines().any(|l| l.contains("examples/sleepy.yaml running") && l.contains("/1m0s")), "{live}");
    assert!(live.contains("cases done"), "{live}");
    let end = tmux.wait_for(Duration::from_secs(120), |s| s.contains("EXIT="));
    assert!(end.contains("EXIT=1"), "{end}");
    let lines: Vec<&str> = end.lines().map(str::trim).collect();
    assert!(lines.iter().any(|l| l.starts_with("PASS [") && l.ends_with("examples/quick.yaml")), "{end}");
    let failed = lines.iter().find(|l| l.starts_with("FAIL [")).expect("a FAIL line");
    assert!(failed.contains("examples/broken.yaml  test: Failed: BackoffLimitExceeded"), "{failed}");
    // Then the failures again, with the log's end, then the summary.
    let failures = end.find("Failures:").expect("the failures again");
    let summary = end.find("CASE ").expect("the summary");
    assert!(failures < summary && end[failures..summary].contains("the end of a failing log"), "{end}");
    assert!(!end.contains(" INFO ") && !end.contains("kubevet::run"), "no tracing lines without -v:\n{end}");
    assert!(!end.contains("cases done"), "the live area is cleared at the end:\n{end}");
    let coloured = tmux.screen(true);
    assert!(coloured.lines().any(|l| l.contains("\x1b[") && l.contains("PASS")), "PASS in colour:\n{coloured}");
}

#[test]
fn no_color_and_a_pipe_give_plain_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let suite = suite(dir.path());
    let session = format!("kubevet-nc-{}", std::process::id());
    let tmux = Tmux::start(&session, &command(dir.path(), &suite, "NO_COLOR=1"));
    let end = tmux.wait_for(Duration::from_secs(120), |s| s.contains("EXIT="));
    assert!(end.contains("EXIT=1"), "{end}");
    let coloured = tmux.screen(true);
    let pass = coloured.lines().find(|l| l.contains("PASS [")).expect("a PASS line");
    assert!(!pass.contains("\x1b["), "NO_COLOR: {pass:?}");

    // Not a terminal: the same lines, and no control code anywhere.
    let out = kubevet()
        .args(["run", "--suite"])
        .arg(&suite)
        .arg("--kubeconfig")
        .arg(kubeconfig())
        .arg("--artifacts")
        .arg(dir.path().join("piped"))
        .output()
        .expect("kubevet runs");
    let err = stderr(&out);
    assert!(err.lines().any(|l| l.trim().starts_with("PASS [") && l.trim().ends_with("examples/sleepy.yaml")), "{err}");
    assert!(!err.contains('\x1b') && !support::stdout(&out).contains('\x1b'), "control codes in a pipe:\n{err}");
    assert!(!err.contains('⠋'), "no spinner in a pipe");
}
