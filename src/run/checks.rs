//! The user's checks of an example (`checks:`), run once its workload has the verdict it
//! should have: every check runs and is reported; the first that fails decides the case.

use serde_json::Value;
use tokio::time::Instant;

use super::steps::{Scope, Verdict, evidence_name};
use crate::{
    outcome::StepReport,
    suite::checks::{Check, CheckKind},
};

/// Each check's report, and the first verdict that is not a pass (with the check's name).
pub async fn run(
    scope: &Scope<'_>,
    checks: &[Check],
    object: &Value,
    pods: &Value,
) -> (Vec<StepReport>, Option<(String, Verdict)>) {
    let mut reports = Vec::new();
    let mut first_bad = None;
    for (i, check) in checks.iter().enumerate() {
        let clock = Instant::now();
        let evidence = scope.artifacts.join("checks").join(evidence_name(i, &check.name));
        let (action, verdict) = match &check.kind {
            CheckKind::Cel(expression) => ("cel", scope.cel(expression, object, pods)),
            CheckKind::Script(script) => ("script", scope.script(script, check.timeout.0, &evidence).await),
            CheckKind::Exec(exec) => ("exec", scope.exec(exec, check.timeout.0, &evidence).await),
        };
        reports.push(verdict.report("checks", &check.name, action, clock.elapsed().as_secs_f64()));
        if !matches!(verdict, Verdict::Passed(_)) && first_bad.is_none() {
            first_bad = Some((check.name.clone(), verdict));
        }
    }
    (reports, first_bad)
}
