//! One scenario: its steps in order in a namespace of its own, each within its timeout and the
//! scenario's; at the first step that does not pass the rest are skipped and the `catch`
//! steps run; the evidence is collected; the `finally` steps always run. Every step is a line
//! of the result (`steps` in `result.json`, `<system-out>` in JUnit).

use std::{borrow::Cow, time::Duration};

use serde_json::Value;
use tokio::time::Instant;

use super::{
    case::{self, CaseRun, Cleanup},
    classify, extended, metrics,
    steps::{Scope, Verdict, evidence_name},
};
use crate::{
    cluster::Applied,
    outcome::{CaseResult, MetricCheck, Outcome, Phase, StepOutcome, StepReport},
    plan::{Scenario, Step, StepAction},
    suite::{Expect, FailureClass, metrics::MetricAssertion},
    util::duration::deadline as deadline_after,
};

/// The time a section's steps may take together; never overflows.
fn total(steps: &[Step]) -> Duration {
    steps.iter().fold(Duration::ZERO, |sum, s| sum.saturating_add(s.timeout))
}

/// A scenario's metrics: the snapshot before its first step (and its window among the run's),
/// what its metrics steps judged, and evidence that could not be kept.
#[derive(Default)]
struct ScenarioMetrics {
    before: Option<(usize, metrics::Snapshot)>,
    checks: Vec<MetricCheck>,
    problems: Vec<String>,
}

/// What a case's steps share as they run: the objects they applied and the metrics read.
struct Made {
    applied: Vec<Applied>,
    metrics: ScenarioMetrics,
}

/// How a list of steps ended.
enum Ended {
    Passed,
    /// At this step (section, index, name, verb), with this verdict.
    At(String, Verdict),
    /// The scenario's timeout ran out during this step.
    TimedOut(String),
    Interrupted,
}

impl CaseRun<'_> {
    /// A scenario as the cluster can take it, as [`CaseRun::fit_to_cluster`] fits an example:
    /// when what its steps apply asks for an extended resource no node offers, none (skipped)
    /// or, with `gpu: cpu`, a copy whose applied objects do without it.
    async fn fit_scenario<'s>(&self, scenario: &'s Scenario, result: &mut CaseResult) -> Option<Cow<'s, Scenario>> {
        let sections = [&scenario.steps, &scenario.catch, &scenario.finally];
        let applied: Vec<&Value> = sections
            .into_iter()
            .flatten()
            .filter_map(|s| match &s.action {
                StepAction::Apply { objects, .. } => Some(objects),
                _ => None,
            })
            .flatten()
            .collect();
        let missing = self.to_strip(extended::asked(&applied), result).await?;
        if missing.is_empty() {
            return Some(Cow::Borrowed(scenario));
        }
        let mut fitted = scenario.clone();
        let mut removed = Vec::new();
        for step in fitted.steps.iter_mut().chain(fitted.catch.iter_mut()).chain(fitted.finally.iter_mut()) {
            if let StepAction::Apply { objects, .. } = &mut step.action {
                removed.extend(extended::strip_for_cpu(objects, &missing, self.gpu));
            }
        }
        removed.sort();
        removed.dedup();
        result.cpu_smoke = removed;
        Some(Cow::Owned(fitted))
    }

    pub(super) async fn run_scenario(self, scenario: &Scenario) -> (CaseResult, Option<Cleanup>) {
        let case = self.case;
        let mut result = CaseResult::new(case, self.dir.clone());
        let Some(scenario) = self.fit_scenario(scenario, &mut result).await else { return (result, None) };
        let scenario = scenario.as_ref();
        let Some(namespace) = self.open_namespace(&mut result).await else { return (result, None) };
        let sampled = self.usage.register(&namespace);
        let mut cleanup = Cleanup { namespace: namespace.clone(), unfinished: Vec::new(), cluster_scoped: Vec::new() };
        let artifacts = result.artifacts.clone();
        let scope = Scope {
            cluster: self.cluster,
            namespace: &namespace,
            case: &case.name,
            run_id: self.run_id,
            artifacts: &artifacts,
            replica_label: None,
            cancel: self.cancel.clone(),
        };
        let assertions = metric_assertions(scenario);
        let Some(before) = self.metrics_before(&assertions, &mut result).await else { return (result, Some(cleanup)) };
        let mut made = Made { applied: Vec::new(), metrics: ScenarioMetrics { before, ..ScenarioMetrics::default() } };
        let deadline = deadline_after(case.timeout.0);
        let clock = Instant::now();
        let ended = self.steps("steps", &scenario.steps, &scope, deadline, &mut made, &mut result.steps).await;
        if !matches!(ended, Ended::Passed | Ended::Interrupted) {
            // Catch steps get their own timeouts, even when the scenario's has run out.
            let catch_deadline = deadline_after(total(&scenario.catch));
            self.steps("catch", &scenario.catch, &scope, catch_deadline, &mut made, &mut result.steps).await;
        }
        result.phases.push(Phase::since("steps", clock));
        result.ended = Some(std::time::SystemTime::now());
        self.measure_namespace(sampled, &namespace, &mut result).await;
        let interrupted = matches!(ended, Ended::Interrupted);
        let unseen = (vec![None; made.applied.len()], None);
        let evidence = self.collect_into(&mut result, &namespace, &made.applied, unseen, interrupted).await;
        if !interrupted {
            let finally_deadline = deadline_after(total(&scenario.finally));
            self.steps("finally", &scenario.finally, &scope, finally_deadline, &mut made, &mut result.steps).await;
        }
        if let Some((window, _)) = made.metrics.before.take() {
            self.windows.close(window);
        }
        result.metrics = std::mem::take(&mut made.metrics.checks);
        result.collect_problems.append(&mut made.metrics.problems);
        for a in &made.applied {
            match a.namespace {
                None => cleanup.cluster_scoped.push(a.clone()),
                Some(_) => cleanup.unfinished.push(a.clone()),
            }
        }
        result.cluster_scoped =
            cleanup.cluster_scoped.iter().map(|a| format!("{}/{}", a.kind.resource.kind, a.name)).collect();

        let count = result.steps.iter().filter(|s| s.section == "steps").count();
        let (outcome, class, reason) = match (ended, case.expect) {
            (Ended::Passed, Expect::Success) => (Outcome::Passed, None, format!("{count} steps passed")),
            (Ended::Passed, Expect::Failure) => {
                (Outcome::Failed, Some(FailureClass::Test), format!("expected a failure, but all {count} steps passed"))
            }
            (Ended::At(at, Verdict::Error(why)), _) => {
                (Outcome::Error, Some(FailureClass::Infrastructure), format!("{at} could not be judged: {why}"))
            }
            (Ended::At(at, Verdict::Failed(why, _)), Expect::Failure) => {
                (Outcome::Passed, None, format!("failed as expected: {at} failed: {why}"))
            }
            (Ended::At(at, Verdict::Failed(why, class)), Expect::Success) => {
                let reason = format!("{at} failed: {why}");
                (Outcome::Failed, Some(classify::with_rules(self.rules, &reason, &evidence.events, class)), reason)
            }
            (Ended::At(at, Verdict::Passed(_)), _) => (Outcome::Error, None, format!("{at}: kubevet lost its verdict")),
            (Ended::TimedOut(at), _) => (
                Outcome::Failed,
                Some(FailureClass::Timeout),
                format!("the scenario's timeout ({}) ran out during {at}", case.timeout),
            ),
            (Ended::Interrupted, _) => (Outcome::Interrupted, None, "interrupted while it ran".into()),
        };
        if outcome != Outcome::Passed {
            result.log_tail = evidence.failing_tail(30);
        }
        let reason = case::smoke_tested(&result, reason);
        result.finish_as(outcome, class, Some(reason));
        (result, Some(cleanup))
    }

    /// Runs steps in order until one does not pass; the rest are reported as skipped.
    async fn steps(
        &self,
        section: &'static str,
        steps: &[Step],
        scope: &Scope<'_>,
        deadline: Instant,
        made: &mut Made,
        reports: &mut Vec<StepReport>,
    ) -> Ended {
        let mut ended = Ended::Passed;
        for (i, step) in steps.iter().enumerate() {
            let verb = step.action.verb();
            let name = scope.substitute(&step.name);
            if !matches!(ended, Ended::Passed) {
                reports.push(StepReport {
                    section: section.into(),
                    name,
                    action: verb.into(),
                    outcome: StepOutcome::Skipped,
                    seconds: 0.0,
                    detail: None,
                });
                continue;
            }
            let at = format!("{section}[{}] {name:?} ({verb}, line {})", i + 1, step.line);
            self.progress.phase(&self.case.name, &format!("{verb}: {name}"));
            let clock = Instant::now();
            let remaining = deadline.saturating_duration_since(clock);
            let evidence = scope.artifacts.join(section).join(evidence_name(i, &name));
            let mut cancel = scope.cancel.clone();
            // An interrupt drops the step: a script's process is killed with it.
            let ran = tokio::select! {
                ran = tokio::time::timeout(remaining, self.step(step, scope, made, &evidence)) => ran,
                _ = cancel.wait_for(|c| *c) => Ok(Verdict::Error("interrupted".into())),
            };
            let seconds = clock.elapsed().as_secs_f64();
            let verdict = match ran {
                Ok(verdict) => verdict,
                Err(_) => {
                    let why = format!("the scenario's timeout ran out after {seconds:.1}s of this step");
                    reports
                        .push(Verdict::Failed(why, FailureClass::Timeout).report(section, &step.name, verb, seconds));
                    ended = Ended::TimedOut(at);
                    continue;
                }
            };
            reports.push(verdict.report(section, &name, verb, seconds));
            if *scope.cancel.borrow() {
                ended = Ended::Interrupted;
            } else if !matches!(verdict, Verdict::Passed(_)) {
                ended = Ended::At(at, verdict);
            }
        }
        ended
    }

    async fn step(&self, step: &Step, scope: &Scope<'_>, made: &mut Made, evidence: &std::path::Path) -> Verdict {
        match &step.action {
            StepAction::Apply { objects, expect_error, .. } => {
                scope.apply(objects, expect_error.as_ref(), &mut made.applied).await
            }
            StepAction::Assert(target) => scope.assert(target, step.timeout).await,
            StepAction::Error { target, hold } => scope.error(target, *hold).await,
            StepAction::Wait { target, until } => scope.wait(target, until, step.timeout).await,
            StepAction::Script(script) => scope.script(script, step.timeout, evidence).await,
            StepAction::Exec(exec) => scope.exec(exec, step.timeout, evidence).await,
            StepAction::Logs { selector, assertions } => scope.logs(selector.as_deref(), assertions).await,
            StepAction::Delete(target) => scope.delete(target).await,
            StepAction::Metrics(assertions) => {
                self.metrics_step(assertions, scope.namespace, &mut made.metrics, step.line).await
            }
        }
    }

    /// A metrics step: the sources its assertions read, re-read until stable, judged against
    /// the snapshot before the scenario's first step; kept as `metrics/<source>-line-<N>.txt`.
    async fn metrics_step(
        &self,
        assertions: &[MetricAssertion],
        namespace: &str,
        read: &mut ScenarioMetrics,
        line: u64,
    ) -> Verdict {
        let Some((window, before)) = &read.before else {
            return Verdict::Error("no snapshot of the metrics was taken before the scenario".into());
        };
        let (after, notes) = match metrics::after(self.cluster, assertions, self.metric_settings).await {
            Ok(read) => read,
            Err(e) => return Verdict::Error(e.to_string()),
        };
        if let Err(e) = metrics::keep(&self.dir, &format!("line-{line}"), &after) {
            read.problems.push(format!("metrics evidence: {e}"));
        }
        read.problems.extend(notes);
        let overlapping = self.windows.overlapping(*window);
        let ended = metrics::Ended::Neither;
        let checks = metrics::judge(assertions, (before, &after), (namespace, &self.case.id), ended, &overlapping);
        let verdict = metrics::step_verdict(&checks);
        read.checks.extend(checks);
        verdict
    }
}

/// Every metric assertion of the scenario's metrics steps (steps, catch and finally).
fn metric_assertions(scenario: &Scenario) -> Vec<MetricAssertion> {
    let sections = [&scenario.steps, &scenario.catch, &scenario.finally];
    sections
        .into_iter()
        .flatten()
        .filter_map(|s| match &s.action {
            StepAction::Metrics(assertions) => Some(assertions.iter().cloned()),
            _ => None,
        })
        .flatten()
        .collect()
}
