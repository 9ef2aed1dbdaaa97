//! Failure classes and the suite's own rules for them (`classes:`): a regular expression over
//! a case's reason and its namespace's events moves a known cause into a class.

use regex::Regex;
use serde::Serialize;

/// Why a case did not pass, so CI can act on it: retry the cluster's faults, fix the
/// example's mistakes, look into the workload's own failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureClass {
    /// The workload ran and failed: a failed job, a non-zero exit, a log assertion.
    Test,
    /// The workload did not finish within its timeout.
    Timeout,
    /// Not the example's fault: a registry, an eviction, a node, the cluster's capacity, API
    /// errors beyond their retries, a quota, the cluster or an operator.
    Infrastructure,
    /// The example itself is wrong: rejected by validation, an unknown kind, a missing object
    /// it refers to.
    Example,
}

impl FailureClass {
    pub const ALL: [FailureClass; 4] =
        [FailureClass::Test, FailureClass::Timeout, FailureClass::Infrastructure, FailureClass::Example];

    pub fn name(self) -> &'static str {
        match self {
            FailureClass::Test => "test",
            FailureClass::Timeout => "timeout",
            FailureClass::Infrastructure => "infrastructure",
            FailureClass::Example => "example",
        }
    }

    pub fn parse(text: &str) -> Option<FailureClass> {
        FailureClass::ALL.into_iter().find(|c| c.name() == text)
    }
}

/// `classes:` entry: when `pattern` matches the reason or an event line, the case's failure
/// is of `class`. The suite's rules come before kubevet's own, first match wins.
#[derive(Debug, Clone)]
pub struct ClassRule {
    pub pattern: Regex,
    pub class: FailureClass,
}

/// The class the first matching rule gives.
pub fn by_rules(rules: &[ClassRule], texts: &[&str]) -> Option<FailureClass> {
    rules.iter().find(|r| texts.iter().any(|t| r.pattern.is_match(t))).map(|r| r.class)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_is_named_as_the_suite_and_reports_write_it_and_read_back() {
        let names: Vec<&str> = FailureClass::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names, ["test", "timeout", "infrastructure", "example"]);
        for class in FailureClass::ALL {
            assert_eq!(FailureClass::parse(class.name()), Some(class));
        }
        for unknown in ["", "Test", "infra", "tests"] {
            assert_eq!(FailureClass::parse(unknown), None, "{unknown:?}");
        }
    }
}
