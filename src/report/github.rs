//! GitHub Actions output (`GITHUB_ACTIONS=true` or `--github`): each case in a
//! `::group::`, an `::error` annotation on the example file at its workload's line for each
//! case that did not pass (`::warning` for a flaky one), and a Markdown summary appended to
//! `$GITHUB_STEP_SUMMARY`. Values are escaped as GitHub documents (`%`, CR, LF, and `:` and
//! `,` in properties); text that comes from examples or logs is printed between
//! `::stop-commands::` markers, so no line of it can run a workflow command of its own.

use std::fmt::Write as _;

use crate::{
    outcome::{CaseResult, CellReport, Outcome},
    util::{
        github::{annotation, escape_data, workspace_path},
        ids::random_hex,
    },
};

/// GitHub's limit on one step's summary.
pub const SUMMARY_LIMIT: usize = 1024 * 1024;

/// Untrusted text, printed where GitHub does not look for workflow commands.
fn verbatim(out: &mut String, text: &str) {
    let token = format!("kubevet-{}", random_hex(16));
    let _ = writeln!(out, "::stop-commands::{token}");
    out.push_str(text);
    if !text.ends_with('\n') {
        out.push('\n');
    }
    let _ = writeln!(out, "::{token}::");
}

fn label(cell: &CellReport) -> String {
    cell_label(cell.cell.label().as_deref())
}

fn cell_label(label: Option<&str>) -> String {
    label.map(|l| format!(" [kubernetes {l}]")).unwrap_or_default()
}

/// One case's `::group::`, printed as the case ends (`cell`: its cell's label in a matrix).
pub fn group(r: &CaseResult, cell: Option<&str>) -> String {
    let mut out = String::new();
    let title = format!("{} {}{} ({:.1}s)", r.outcome.label(), r.name, cell_label(cell), r.seconds);
    let _ = writeln!(out, "::group::{}", escape_data(&title));
    let mut body = format!("{}\nartifacts: {}\n", r.classed_reason(), r.artifacts.display());
    for a in &r.attempts {
        let _ = writeln!(body, "earlier attempt: {} {}", a.outcome.label(), a.reason.as_deref().unwrap_or(""));
    }
    if let Some(tail) = &r.log_tail {
        body.push_str(tail);
    }
    verbatim(&mut out, &body);
    out.push_str("::endgroup::\n");
    out
}

/// The job log's part of reports made elsewhere (`kubevet merge`): a group per case, then
/// the annotations.
pub fn log(reports: &[CellReport]) -> String {
    let mut out = String::new();
    for cell in reports {
        for r in &cell.report.results {
            out.push_str(&group(r, cell.cell.label().as_deref()));
        }
    }
    out.push_str(&annotations(reports));
    out
}

/// An `::error` (or `::warning`, for a flaky case) on each example file that did not pass.
pub fn annotations(reports: &[CellReport]) -> String {
    let mut out = String::new();
    for cell in reports {
        for r in &cell.report.results {
            let level = match r.outcome {
                Outcome::Failed | Outcome::Error => "error",
                Outcome::Flaky => "warning",
                _ => continue,
            };
            let (file, line) = match &r.source {
                Some((path, line)) => (workspace_path(path), *line),
                None => (r.name.clone(), 1),
            };
            let class = r.class.map(|c| format!(" ({})", c.name())).unwrap_or_default();
            let title = format!("kubevet: {} {}{class}{}", r.outcome.label(), r.name, label(cell));
            let _ = writeln!(out, "{}", annotation(level, &file, line, None, &title, &r.classed_reason()));
        }
    }
    out
}

fn row(cell: &CellReport, r: &CaseResult) -> String {
    let reason = r.reason.as_deref().unwrap_or("").lines().next().unwrap_or("");
    // A table cell: no pipes, no newlines, nothing GitHub would render as markup of ours.
    let reason: String = reason.replace('|', "\\|").chars().take(300).collect();
    let class = r.class.map(|c| c.name()).unwrap_or("");
    format!(
        "| {} | {}{} | {class} | {:.1}s | {reason} |\n",
        r.outcome.label(),
        r.name.replace('|', "\\|"),
        label(cell),
        r.seconds
    )
}

/// The step summary: counts, what changed, then a table with failures first; within
/// GitHub's limit.
pub fn step_summary(reports: &[CellReport], changed: &[String]) -> String {
    let all: Vec<(&CellReport, &CaseResult)> =
        reports.iter().flat_map(|c| c.report.results.iter().map(move |r| (c, r))).collect();
    let count = |o: Outcome| all.iter().filter(|(_, r)| r.outcome == o).count();
    let mut out = String::from("## kubevet\n\n");
    let _ = writeln!(
        out,
        "**{} passed, {} failed, {} errors, {} flaky, {} skipped{}**\n",
        count(Outcome::Passed),
        count(Outcome::Failed),
        count(Outcome::Error),
        count(Outcome::Flaky),
        count(Outcome::Skipped),
        super::summary::unoffered_note(all.iter().map(|(_, r)| *r))
    );
    if !changed.is_empty() {
        let _ = writeln!(out, "Changed since the previous run: {}\n", changed.join(", "));
    }
    out.push_str("| outcome | case | class | time | reason |\n| --- | --- | --- | --- | --- |\n");
    let rank = |o: Outcome| match o {
        Outcome::Failed | Outcome::Error | Outcome::Interrupted => 0,
        Outcome::Flaky => 1,
        _ => 2,
    };
    let mut ordered = all.clone();
    ordered.sort_by_key(|(_, r)| rank(r.outcome));
    let mut left = 0;
    for (i, (cell, r)) in ordered.iter().enumerate() {
        let line = row(cell, r);
        if out.len() + line.len() + 200 > SUMMARY_LIMIT {
            left = ordered.len() - i;
            break;
        }
        out.push_str(&line);
    }
    if left > 0 {
        let _ = writeln!(out, "\n{left} more cases not shown (GitHub's summary limit); the JUnit file has them all.");
    }
    out
}

/// Appends the step summary to `$GITHUB_STEP_SUMMARY`, when GitHub gives one.
pub fn append_step_summary(reports: &[CellReport], changed: &[String]) {
    append_to_step_summary(&step_summary(reports, changed));
}

/// Appends markdown to `$GITHUB_STEP_SUMMARY`, when GitHub gives one.
pub fn append_to_step_summary(markdown: &str) {
    use std::io::Write;
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") else { return };
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(markdown.as_bytes()));
    if let Err(e) = written {
        tracing::warn!(file = %std::path::Path::new(&path).display(), error = %e, "cannot write the step summary");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_text_is_printed_with_commands_stopped() {
        let mut out = String::new();
        verbatim(&mut out, "::add-mask::secret\n::set-output name=a::b");
        let lines: Vec<&str> = out.lines().collect();
        let token = lines[0].strip_prefix("::stop-commands::").expect("stops commands first");
        assert_eq!(lines.last().copied(), Some(format!("::{token}::").as_str()));
        assert!(token.len() > 16, "a token nobody can guess");
    }
}
