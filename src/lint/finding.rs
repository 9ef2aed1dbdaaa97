//! A lint finding: which check or rule, how severe, what, and where.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    /// Information that counts as no finding: something kubevet could not check.
    Note,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    pub message: String,
    pub file: String,
    pub line: usize,
    pub column: usize,
    #[serde(skip)]
    pub pointer: String,
    #[serde(skip)]
    pub span: (usize, usize),
}

impl Finding {
    pub fn new(rule: &'static str, severity: Severity, pointer: &str, message: String) -> Finding {
        Finding {
            rule,
            severity,
            message,
            file: String::new(),
            line: 0,
            column: 0,
            pointer: pointer.into(),
            span: (0, 0),
        }
    }
}
