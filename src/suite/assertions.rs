//! Log assertions: what a workload's logs must (or must not) say, and numbers read from them.

use regex::Regex;

#[derive(Debug, Clone)]
pub enum LogCheck {
    /// Some line matches.
    Matches(Regex),
    /// No line matches.
    Absent(Regex),
    /// The last line that matches has a first capture group that parses as a number within bounds.
    Threshold { regex: Regex, at_least: Option<f64>, at_most: Option<f64> },
}

#[derive(Debug, Clone)]
pub struct LogAssertion {
    /// Only pods whose replica label has this value (master, worker…).
    pub replica: Option<String>,
    pub container: Option<String>,
    pub check: LogCheck,
}

/// One container's log, as the assertion sees it.
pub struct LogSource<'a> {
    pub pod: &'a str,
    pub container: &'a str,
    pub replica: Option<&'a str>,
    pub text: &'a str,
}

impl LogAssertion {
    pub fn describe(&self) -> String {
        let scope = match (&self.replica, &self.container) {
            (Some(r), Some(c)) => format!("{r} replica's {c} log"),
            (Some(r), None) => format!("{r} replica's log"),
            (None, Some(c)) => format!("{c} container's log"),
            (None, None) => "workload's log".to_string(),
        };
        match &self.check {
            LogCheck::Matches(r) => format!("{scope} must match /{r}/"),
            LogCheck::Absent(r) => format!("{scope} must not match /{r}/"),
            LogCheck::Threshold { regex, at_least, at_most } => {
                let mut bounds = Vec::new();
                if let Some(v) = at_least {
                    bounds.push(format!(">= {v}"));
                }
                if let Some(v) = at_most {
                    bounds.push(format!("<= {v}"));
                }
                format!("{scope}: /{regex}/ {}", bounds.join(" and "))
            }
        }
    }

    /// Ok, or why not: which assertion, and the line it read (or that none matched).
    pub fn evaluate(&self, logs: &[LogSource<'_>]) -> Result<(), String> {
        let lines = logs
            .iter()
            .filter(|l| self.replica.as_deref().is_none_or(|r| l.replica == Some(r)))
            .filter(|l| self.container.as_deref().is_none_or(|c| l.container == c))
            .flat_map(|l| l.text.lines().map(move |line| (l.pod, line)));
        let fail = |detail: String| Err(format!("log assertion failed: {}: {detail}", self.describe()));
        match &self.check {
            LogCheck::Matches(regex) => match lines.clone().find(|(_, line)| regex.is_match(line)) {
                Some(_) => Ok(()),
                None => fail("no line matched".into()),
            },
            LogCheck::Absent(regex) => match lines.clone().find(|(_, line)| regex.is_match(line)) {
                Some((pod, line)) => fail(format!("pod {pod} printed {line:?}")),
                None => Ok(()),
            },
            LogCheck::Threshold { regex, at_least, at_most } => {
                let Some((pod, line, caps)) =
                    lines.filter_map(|(pod, line)| regex.captures(line).map(|c| (pod, line, c))).next_back()
                else {
                    return fail("no line matched".into());
                };
                let captured = caps.get(1).map(|m| m.as_str()).unwrap_or_default();
                let Ok(value) = captured.parse::<f64>() else {
                    return fail(format!("pod {pod} printed {line:?}, and {captured:?} is not a number"));
                };
                let within = at_least.is_none_or(|min| value >= min) && at_most.is_none_or(|max| value <= max);
                if within { Ok(()) } else { fail(format!("read {value} from pod {pod}: {line:?}")) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source<'a>(replica: &'a str, text: &'a str) -> LogSource<'a> {
        LogSource { pod: "p-0", container: "c", replica: Some(replica), text }
    }

    fn re(s: &str) -> Regex {
        Regex::new(s).expect("valid regex")
    }

    #[test]
    fn threshold_reads_the_last_matching_line_of_the_named_replica() {
        let logs = [source("master", "accuracy=0.5\naccuracy=0.93\n"), source("worker", "accuracy=0.1\n")];
        let a = LogAssertion {
            replica: Some("master".into()),
            container: None,
            check: LogCheck::Threshold { regex: re(r"accuracy=([0-9.]+)"), at_least: Some(0.9), at_most: None },
        };
        assert_eq!(a.evaluate(&logs), Ok(()));
        let b = LogAssertion { replica: Some("worker".into()), ..a.clone() };
        let err = b.evaluate(&logs).expect_err("0.1 < 0.9");
        assert!(err.contains("read 0.1 from pod p-0: \"accuracy=0.1\""), "{err}");
    }

    #[test]
    fn matches_and_absent() {
        let logs = [source("worker", "step 1\nTraceback (most recent call last)\n")];
        let must = LogAssertion { replica: None, container: None, check: LogCheck::Matches(re("done")) };
        assert!(must.evaluate(&logs).expect_err("missing").ends_with("no line matched"));
        let never = LogAssertion { replica: None, container: None, check: LogCheck::Absent(re("Traceback")) };
        assert!(never.evaluate(&logs).expect_err("present").contains("Traceback (most recent"));
        let other =
            LogAssertion { replica: Some("master".into()), container: None, check: LogCheck::Absent(re("Traceback")) };
        assert_eq!(other.evaluate(&logs), Ok(()));
    }
}
