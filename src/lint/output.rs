//! How lint findings are shown: compiler-style diagnostics with the source line and a caret
//! (miette), JSON, SARIF 2.1.0 for GitHub code scanning, or JUnit.

use std::time::Duration;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, NamedSource, Report};
use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};
use serde_json::json;

use super::{CHECKS, LintReport, Severity, rules::RULES};

pub fn summary(report: &LintReport) -> String {
    format!(
        "kubevet lint: {} files, {} documents: {} errors, {} warnings, {} notes",
        report.files.len(),
        report.documents(),
        report.count(Severity::Error),
        report.count(Severity::Warning),
        report.count(Severity::Note)
    )
}

pub fn text(report: &LintReport, color: bool) -> String {
    let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_context_lines(1);
    let mut out = String::new();
    for file in &report.files {
        for f in &file.findings {
            let severity = match f.severity {
                Severity::Error => miette::Severity::Error,
                Severity::Warning => miette::Severity::Warning,
                Severity::Note => miette::Severity::Advice,
            };
            let diagnostic = MietteDiagnostic::new(f.message.clone())
                .with_code(f.rule)
                .with_severity(severity)
                .with_label(LabeledSpan::at(f.span.0..f.span.0 + f.span.1, "here"));
            let located = Report::new(diagnostic).with_source_code(NamedSource::new(&file.name, file.text.clone()));
            if handler.render_report(&mut out, located.as_ref()).is_err() {
                out.push_str(&format!("{}:{}:{}: {}: {}\n", f.file, f.line, f.column, f.rule, f.message));
            }
            out.push('\n');
        }
    }
    out.push_str(&summary(report));
    out.push('\n');
    out
}

pub fn json(report: &LintReport) -> String {
    let findings: Vec<_> = report.files.iter().flat_map(|f| &f.findings).collect();
    let value = json!({
        "files": report.files.len(),
        "documents": report.documents(),
        "errors": report.count(Severity::Error),
        "warnings": report.count(Severity::Warning),
        "notes": report.count(Severity::Note),
        "findings": findings,
    });
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

/// GitHub annotations: `::error` / `::warning` / `::notice` at each finding's file:line:col.
pub fn github(report: &LintReport) -> String {
    let mut out = String::new();
    for file in &report.files {
        for f in &file.findings {
            let level = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
                Severity::Note => "notice",
            };
            let path = crate::util::github::workspace_path(std::path::Path::new(&f.file));
            let title = format!("kubevet lint: {}", f.rule);
            let line =
                crate::util::github::annotation(level, &path, f.line as u64, Some(f.column as u64), &title, &f.message);
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

pub fn sarif(report: &LintReport) -> String {
    let rules: Vec<_> = CHECKS
        .iter()
        .map(|(id, text)| (*id, *text))
        .chain(RULES.iter().map(|r| (r.name, r.summary)))
        .map(|(id, text)| json!({"id": id, "shortDescription": {"text": text}}))
        .collect();
    let results: Vec<_> = report
        .files
        .iter()
        .flat_map(|f| &f.findings)
        .map(|f| {
            let level = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
                Severity::Note => "note",
            };
            json!({
                "ruleId": f.rule,
                "level": level,
                "message": {"text": f.message},
                "locations": [{"physicalLocation": {
                    "artifactLocation": {"uri": f.file},
                    "region": {"startLine": f.line.max(1), "startColumn": f.column.max(1)},
                }}],
            })
        })
        .collect();
    let value = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "kubevet", "version": env!("CARGO_PKG_VERSION"), "informationUri": "https://github.com/kubevet/kubevet", "rules": rules}},
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

/// One test case per file: failed when it has an error or a warning.
pub fn junit(report: &LintReport) -> String {
    let mut suite = TestSuite::new("kubevet lint");
    for file in &report.files {
        let problems: Vec<_> = file.findings.iter().filter(|f| f.severity != Severity::Note).collect();
        let status = if problems.is_empty() {
            TestCaseStatus::success()
        } else {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(format!("{} findings; first: {}", problems.len(), problems[0].message));
            s.set_type(problems[0].rule);
            s
        };
        let mut case = TestCase::new(file.name.as_str(), status);
        case.set_classname("lint");
        case.set_time(Duration::ZERO);
        let lines: String = file
            .findings
            .iter()
            .map(|f| format!("{}:{}:{}: {}: {}\n", f.file, f.line, f.column, f.rule, f.message))
            .collect();
        if !lines.is_empty() {
            case.set_system_out(lines);
        }
        suite.add_test_case(case);
    }
    let mut report_xml = quick_junit::Report::new("kubevet");
    report_xml.add_test_suite(suite);
    report_xml.to_string().unwrap_or_default()
}
