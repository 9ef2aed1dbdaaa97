//! What a person watching a run sees, as cargo-nextest shows tests: one line per finished
//! case (outcome, duration, case, class, reason), and on a terminal a live area under them
//! with each running case, its phase and its time against its timeout. Colour where the
//! terminal takes it (`--color`, `NO_COLOR`); plain lines, no control codes, when the output
//! is not a terminal. At the end, the failures again with their reason and log tail.

use std::{
    collections::HashMap,
    io::{IsTerminal, Write},
    sync::Mutex,
    time::Duration,
};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::outcome::{CaseResult, Outcome, Progress};

/// `--color`: always, never, or when the output is a terminal and `NO_COLOR` is unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether to colour a stream that is (or is not) a terminal.
    pub fn enabled(self, terminal: bool) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }
}

/// An outcome's label, padded, in its colour.
pub fn label(outcome: Outcome, color: bool) -> String {
    let text = format!("{:>11}", outcome.label());
    if !color {
        return text;
    }
    let code = match outcome {
        Outcome::Passed => "32;1",
        Outcome::Failed | Outcome::Error => "31;1",
        Outcome::Flaky | Outcome::Interrupted => "33;1",
        Outcome::Skipped => "33",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// The line for a finished case: `       PASS [   2.3s] examples/job.yaml`, then the class
/// and reason of one that did not pass.
pub fn case_line(r: &CaseResult, color: bool) -> String {
    let mut line = format!("{} [{:>6.1}s] {}", label(r.outcome, color), r.seconds, r.name);
    if r.outcome != Outcome::Passed {
        let reason = r.reason.as_deref().unwrap_or("").lines().next().unwrap_or("");
        let class = r.class.map(|c| format!("{}: ", c.name())).unwrap_or_default();
        line.push_str(&format!("  {class}{reason}"));
    }
    line
}

/// The failures again, at the end: reason, evidence and the log tail of each.
pub fn failures(results: &[&CaseResult], color: bool) -> String {
    let failed: Vec<&&CaseResult> =
        results.iter().filter(|r| r.outcome.is_failure() || r.outcome == Outcome::Flaky).collect();
    if failed.is_empty() {
        return String::new();
    }
    let mut out = String::from("\nFailures:\n");
    for r in failed {
        out.push_str(&format!("\n{}\n", case_line(r, color)));
        out.push_str(&format!("    evidence: {}\n", r.artifacts.display()));
        if let Some(tail) = &r.log_tail {
            for line in tail.lines() {
                out.push_str(&format!("    {line}\n"));
            }
        }
    }
    out
}

/// The cases (cell label, case id) whose GitHub group was printed as they ended.
pub type Shown = std::sync::Arc<Mutex<std::collections::BTreeSet<(Option<String>, String)>>>;

/// The run shown on standard error: live lines on a terminal, finished-case lines always.
pub struct Terminal {
    color: bool,
    /// In GitHub Actions: each finished case's `::group::` on standard output as it ends,
    /// with the cell's label, and where to note that it was shown.
    github: Option<(Option<String>, Shown)>,
    live: Option<MultiProgress>,
    running: Mutex<HashMap<String, (ProgressBar, String)>>,
    done: Option<ProgressBar>,
}

impl Terminal {
    pub fn new(cases: usize, choice: ColorChoice) -> Terminal {
        let terminal = std::io::stderr().is_terminal();
        let color = choice.enabled(terminal);
        if !terminal {
            return Terminal { color, github: None, live: None, running: Mutex::new(HashMap::new()), done: None };
        }
        let live = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let done = live.add(ProgressBar::new(cases as u64));
        if let Ok(style) = ProgressStyle::with_template("{spinner} {pos}/{len} cases done [{elapsed}] {msg}") {
            done.set_style(style);
        }
        done.enable_steady_tick(Duration::from_millis(200));
        Terminal { color, github: None, live: Some(live), running: Mutex::new(HashMap::new()), done: Some(done) }
    }

    /// Prints each case's GitHub `::group::` as the case ends, not all at the end, noting in
    /// `shown` which were.
    pub fn with_github_groups(mut self, cell: Option<String>, shown: Shown) -> Terminal {
        self.github = Some((cell, shown));
        self
    }

    fn print(&self, line: &str) {
        match &self.live {
            Some(live) => {
                let _ = live.println(line);
            }
            // A closed standard error (`2>&1 | head`) must not stop a case: the line is lost, not the case.
            None => {
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            }
        }
    }

    /// Clears the live area, so that what is printed next stands alone.
    pub fn finish(&self) {
        if let Some(done) = &self.done {
            done.finish_and_clear();
        }
        if let Ok(mut running) = self.running.lock() {
            for (_, (bar, _)) in running.drain() {
                bar.finish_and_clear();
            }
        }
    }
}

impl Progress for Terminal {
    fn started(&self, case: &str, attempt: u32, timeout: &str) {
        let Some(live) = &self.live else { return };
        let bar = live.insert_from_back(1, ProgressBar::new_spinner());
        if let Ok(style) = ProgressStyle::with_template("  {spinner} {msg} {elapsed}/{prefix}") {
            bar.set_style(style);
        }
        let name = if attempt > 1 { format!("{case} (attempt {attempt})") } else { case.to_string() };
        bar.set_prefix(timeout.to_string());
        bar.set_message(format!("{name} starting"));
        bar.enable_steady_tick(Duration::from_millis(200));
        if let Ok(mut running) = self.running.lock()
            && let Some((old, _)) = running.insert(case.to_string(), (bar, name))
        {
            old.finish_and_clear();
        }
    }

    fn phase(&self, case: &str, phase: &str) {
        if let Ok(running) = self.running.lock()
            && let Some((bar, name)) = running.get(case)
        {
            bar.set_message(format!("{name} {phase}"));
        }
    }

    fn finished(&self, result: &CaseResult) {
        if let Ok(mut running) = self.running.lock()
            && let Some((bar, _)) = running.remove(&result.name)
        {
            bar.finish_and_clear();
        }
        if let Some(done) = &self.done {
            done.inc(1);
        }
        self.print(&case_line(result, self.color));
        if let Some((cell, shown)) = &self.github {
            super::print(&super::github::group(result, cell.as_deref()));
            if let Ok(mut shown) = shown.lock() {
                shown.insert((cell.clone(), result.id.clone()));
            }
        }
    }

    fn note(&self, text: &str) {
        if let Some(done) = &self.done {
            done.set_message(text.to_string());
        }
    }
}
