//! A case and its retries. A case that fails in a class the suite retries (by default
//! `infrastructure` and `timeout`) runs again in a fresh namespace after a backoff, up to its
//! `retries`; each attempt keeps its own evidence (`<case>/attempt-N/`) and is cleaned up
//! before the next starts (cluster-scoped objects keep their names). A case that failed and
//! then passed is flaky, never a plain pass. A circuit breaker stops retrying once more than
//! a share of the run's cases have failed: a broken cluster is not a flake.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tracing::{info, warn};

use super::{RunOptions, case, cleanup::clean_up, usage::UsageSampler};
use crate::{
    cluster::{Cluster, NamespaceTracker},
    outcome::{Attempt, CaseResult, Outcome, Progress},
    plan::Case,
    suite::Suite,
};

/// Counts the run's cases whose first attempt failed; open once they are more than `share`
/// per cent of the cases that run.
pub(super) struct Breaker {
    runnable: usize,
    share: u32,
    failed: AtomicUsize,
    said: AtomicBool,
}

impl Breaker {
    pub(super) fn new(runnable: usize, share: u32) -> Breaker {
        Breaker { runnable, share, failed: AtomicUsize::new(0), said: AtomicBool::new(false) }
    }

    fn first_attempt_failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Why no case is retried any more, once that is so.
    fn open(&self) -> Option<String> {
        let failed = self.failed.load(Ordering::Relaxed);
        if failed * 100 <= self.share as usize * self.runnable {
            return None;
        }
        let why = format!(
            "not retried: {failed} of the run's {} cases failed, more than {} %: a broken cluster is not a flake",
            self.runnable, self.share
        );
        if !self.said.swap(true, Ordering::Relaxed) {
            warn!("{why}");
        }
        Some(why)
    }
}

pub(super) struct Attempts<'a> {
    pub cluster: &'a Cluster,
    pub case: &'a Case,
    pub suite: &'a Suite,
    pub run_id: &'a str,
    pub options: &'a RunOptions,
    pub breaker: &'a Breaker,
    pub slots: Arc<Semaphore>,
    pub namespaces: NamespaceTracker,
    pub usage: &'a UsageSampler,
    pub windows: &'a super::metrics::CaseWindows,
    pub cancel: watch::Receiver<bool>,
    pub progress: &'a dyn Progress,
}

impl Attempts<'_> {
    /// Runs the case (holding `permit`) until it passes, fails in a way not retried, or runs
    /// out of retries; the cleanup of its last attempt is left to the runner.
    pub(super) async fn run(mut self, permit: OwnedSemaphorePermit) -> (CaseResult, Option<case::Cleanup>) {
        let case = self.case;
        let defaults = &self.suite.defaults;
        let case_dir = self.options.artifacts.join(&case.id);
        let tries = case.retries + 1;
        let mut earlier: Vec<Attempt> = Vec::new();
        let mut left_behind: Vec<String> = Vec::new();
        let mut permit = Some(permit);
        let mut number = 0;
        loop {
            number += 1;
            let dir = if tries > 1 { case_dir.join(format!("attempt-{number}")) } else { case_dir.clone() };
            info!(case = %case.name, attempt = number, "case starting");
            self.progress.started(&case.name, number, &case.timeout.to_string());
            let (mut result, cleanup) = self.attempt(dir).await;
            let failed = result.outcome.is_failure() && result.outcome != Outcome::Interrupted;
            if failed && number == 1 {
                self.breaker.first_attempt_failed();
            }
            let retried_class = result.class.is_some_and(|c| defaults.retry_on.contains(&c));
            let blocked = if failed && retried_class && number < tries { self.breaker.open() } else { None };
            let retry = failed && retried_class && number < tries && blocked.is_none() && !*self.cancel.borrow();
            if !retry {
                if let Some(why) = blocked {
                    result.reason = Some(format!("{} ({why})", result.reason.unwrap_or_default()));
                }
                result.attempts = earlier;
                last_attempt(&mut result, number, tries);
                result.left_behind.splice(0..0, left_behind);
                // The case's own result.json sums up its attempts; each has its own too.
                result.case_dir = (tries > 1).then_some(case_dir);
                return (result, cleanup);
            }
            // This attempt is cleaned up before the next starts, without holding a slot.
            drop(permit.take());
            info!(case = %case.name, attempt = number, class = ?result.class, "retrying");
            result.write();
            if let Some(cleanup) = &cleanup {
                self.clean_up_attempt(cleanup, &mut result).await;
            }
            left_behind.extend(result.left_behind.iter().cloned());
            earlier.push(result.as_attempt());
            let backoff = crate::util::duration::doubling(defaults.retry_backoff.0, number, Duration::from_secs(300));
            let mut cancel = self.cancel.clone();
            permit = tokio::select! {
                _ = cancel.wait_for(|c| *c) => None,
                permit = async {
                    tokio::time::sleep(backoff).await;
                    self.slots.clone().acquire_owned().await.ok()
                } => permit,
            };
            if permit.is_none() {
                let mut result = CaseResult::not_run(
                    case,
                    case_dir.clone(),
                    Outcome::Interrupted,
                    "interrupted between attempts".into(),
                );
                result.attempts = earlier;
                result.left_behind = left_behind;
                return (result, None);
            }
        }
    }

    /// One attempt of the case, its evidence in `dir`.
    async fn attempt(&self, dir: std::path::PathBuf) -> (CaseResult, Option<case::Cleanup>) {
        case::CaseRun {
            cluster: self.cluster,
            case: self.case,
            run_id: self.run_id,
            dir,
            defaults: &self.suite.defaults,
            rules: &self.suite.classes,
            progress: self.progress,
            cancel: self.cancel.clone(),
            pipelines: &self.suite.pipelines,
            suite_name: &self.suite.name,
            keep_on_failure: self.options.keep_on_failure,
            gpu: &self.suite.gpu,
            profiles: &self.suite.profiles,
            metric_settings: &self.suite.metrics,
            usage: self.usage,
            windows: self.windows,
        }
        .run()
        .await
    }

    /// A failed attempt's namespace, deleted before the next attempt (kept with
    /// `--keep-on-failure`, and said so).
    async fn clean_up_attempt(&mut self, cleanup: &case::Cleanup, result: &mut CaseResult) {
        if self.options.keep_on_failure {
            result.cleanup = Some(format!("kept namespace {} (--keep-on-failure)", cleanup.namespace));
            return;
        }
        let timeout = self.suite.defaults.cleanup_timeout.0;
        clean_up(self.cluster, cleanup, &mut self.namespaces, timeout, true, result).await;
    }
}

/// The result that stands: a pass after failed attempts is flaky, and says after what.
fn last_attempt(result: &mut CaseResult, number: u32, tries: u32) {
    if result.outcome == Outcome::Passed && !result.attempts.is_empty() {
        result.outcome = Outcome::Flaky;
        result.reason = Some(format!(
            "passed on attempt {number} of {tries}, after: {}",
            result.attempts.iter().map(attempt_line).collect::<Vec<_>>().join("; ")
        ));
    }
}

fn attempt_line(a: &Attempt) -> String {
    let class = a.class.map(|c| format!("{}: ", c.name())).unwrap_or_default();
    format!("{class}{}", a.reason.as_deref().unwrap_or("").lines().next().unwrap_or(""))
}
