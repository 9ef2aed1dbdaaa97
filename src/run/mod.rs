//! Running a plan: cases in parallel up to the concurrency, each in its own namespace; stop
//! starting cases on an interrupt (or on the first failure with fail-fast); clean every
//! namespace up without holding a slot; wait until they are all gone.

mod attempts;
mod case;
mod checks;
mod classify;
mod cleanup;
mod extended;
mod metrics;
mod notebook;
pub mod pipeline;
mod scenario;
mod steps;
mod usage;

use std::{panic::AssertUnwindSafe, path::PathBuf, sync::Arc, time::Duration};

use futures::FutureExt;

use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore, watch},
    task::JoinSet,
    time::Instant,
};
use tracing::info;

use attempts::{Attempts, Breaker};
use case::Cleanup;
use cleanup::clean_up;
use usage::UsageSampler;

use crate::{
    cluster::{Cluster, LABEL_CASE, LABEL_RUN, NamespaceTracker, label_value},
    outcome::{CaseResult, FailureClass, Outcome, Progress, RunReport},
    plan::Case,
    suite::Suite,
    util::duration::Dur,
    util::ids::random_hex,
};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub artifacts: PathBuf,
    pub concurrency: Option<usize>,
    pub fail_fast: bool,
    pub keep_on_failure: bool,
    /// GitHub Actions output: groups, annotations, the step summary.
    pub github: bool,
    /// The cluster is deleted right after the run (kind without `--reuse`, a container
    /// cluster): namespaces are deleted but not waited for, since nothing can be left behind.
    pub cluster_deleted_after: bool,
    /// Each case's pods' CPU and memory sampled from the kubelets (`--no-usage` turns it off).
    pub sample_usage: bool,
}

/// The report of a run whose cases could not start (an operator failed to install).
pub fn not_run(cases: &[Case], artifacts: &std::path::Path, reason: &str, interrupted: bool) -> RunReport {
    RunReport {
        run_id: random_hex(8),
        properties: Vec::new(),
        results: cases
            .iter()
            .map(|c| {
                let outcome = if c.skip.is_some() { Outcome::Skipped } else { Outcome::Error };
                let why = c.skip.clone().unwrap_or_else(|| reason.to_string());
                CaseResult::not_run(c, artifacts.join(&c.id), outcome, why)
            })
            .collect(),
        interrupted,
        seconds: 0.0,
    }
}

pub async fn run(
    suite: &Suite,
    cases: Vec<Case>,
    cluster: Arc<Cluster>,
    options: RunOptions,
    cancel_rx: watch::Receiver<bool>,
    progress: Arc<dyn Progress>,
) -> RunReport {
    let started = Instant::now();
    let run_id = random_hex(8);
    let concurrency = options.concurrency.unwrap_or(suite.defaults.concurrency).max(1);
    let (stop_starting_tx, stop_starting_rx) = watch::channel(None::<String>);
    info!(run = %run_id, cases = cases.len(), concurrency, server = %cluster.server_version, "run starting");

    let cases: Vec<Arc<Case>> = cases.into_iter().map(Arc::new).collect();
    let runnable = cases.iter().filter(|c| c.skip.is_none() && c.problem.is_none()).count();
    // One watch over the run's namespaces, for every cleanup (between attempts too).
    let namespaces = cluster.track_namespaces(&run_id);
    let shared = CaseTasks {
        cluster: cluster.clone(),
        suite: Arc::new(suite.clone()),
        breaker: Arc::new(Breaker::new(runnable, suite.defaults.circuit_breaker)),
        slots: Arc::new(Semaphore::new(concurrency)),
        namespaces: namespaces.clone(),
        usage: if options.sample_usage {
            UsageSampler::start(cluster.clone(), usage::SAMPLE_INTERVAL)
        } else {
            UsageSampler::off()
        },
        windows: metrics::CaseWindows::default(),
        run_id: run_id.clone(),
        options: options.clone(),
        progress: progress.clone(),
        cancel: cancel_rx.clone(),
        stop_starting: stop_starting_rx,
        stop_starting_tx: Arc::new(stop_starting_tx),
    };
    let mut tasks = JoinSet::new();
    let mut task_case = std::collections::HashMap::new();
    for (index, case) in cases.iter().cloned().enumerate() {
        task_case.insert(tasks.spawn(shared.clone().run(index, case)).id(), index);
    }

    // Namespaces are deleted as cases end, without holding a slot; the run waits for them all.
    let mut results: Vec<Option<CaseResult>> = vec![None; cases.len()];
    let mut cleanups = JoinSet::new();
    while let Some(joined) = tasks.join_next_with_id().await {
        let (index, (result, cleanup)) = match joined {
            Ok((_, ended)) => ended,
            // A task that panicked outside its case's own guard (reporting its end): what the
            // case made is found by its labels and deleted, and its result says what happened.
            Err(lost) => {
                if let Some(&index) = task_case.get(&lost.id()) {
                    cleanups.spawn(shared.clone().lost(index, cases[index].clone()));
                }
                continue;
            }
        };
        if let Some(done) = shared.after(index, result, cleanup, &mut cleanups) {
            results[index] = Some(done);
        }
    }
    if !cleanups.is_empty() {
        progress.note(&format!("deleting {} namespaces", cleanups.len()));
    }
    while let Some(joined) = cleanups.join_next().await {
        if let Ok((index, result)) = joined {
            results[index] = Some(result);
        }
    }
    let results = results
        .into_iter()
        .zip(cases.iter())
        .map(|(r, case)| {
            r.unwrap_or_else(|| {
                CaseResult::not_run(case, options.artifacts.join(&case.id), Outcome::Error, LOST.into())
            })
        })
        .collect();
    RunReport {
        run_id,
        properties: Vec::new(),
        results,
        interrupted: *cancel_rx.borrow(),
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// The result of a case whose task ended without giving one.
const LOST: &str = "kubevet lost this case's result (a task panicked)";

/// What ends a case's task: its result, and its namespace to delete (`true`: kept, as
/// `--keep-on-failure` asks) within the suite's cleanup timeout.
type Ended = (CaseResult, Option<(Cleanup, bool, Dur)>);

/// What every case's task shares with the run.
#[derive(Clone)]
struct CaseTasks {
    cluster: Arc<Cluster>,
    suite: Arc<Suite>,
    breaker: Arc<Breaker>,
    slots: Arc<Semaphore>,
    namespaces: NamespaceTracker,
    usage: UsageSampler,
    windows: metrics::CaseWindows,
    run_id: String,
    options: RunOptions,
    progress: Arc<dyn Progress>,
    cancel: watch::Receiver<bool>,
    /// Why no more cases start (`--fail-fast`), once that is so.
    stop_starting: watch::Receiver<Option<String>>,
    stop_starting_tx: Arc<watch::Sender<Option<String>>>,
}

impl CaseTasks {
    /// Case `index`'s task. A bug of kubevet's that panics in a case still leaves its result
    /// and deletes what the case made.
    async fn run(mut self, index: usize, case: Arc<Case>) -> (usize, Ended) {
        let (result, cleanup) = match AssertUnwindSafe(self.clone().run_case(&case)).catch_unwind().await {
            Ok(ended) => ended,
            Err(panic) => {
                let mut result = panicked(&case, self.options.artifacts.join(&case.id), panic.as_ref());
                let timeout = self.suite.defaults.cleanup_timeout.0;
                clean_up_by_label(&self.cluster, &case, &self.run_id, &mut self.namespaces, timeout, &mut result).await;
                result.write();
                (result, None)
            }
        };
        self.progress.finished(&result);
        (index, (result, cleanup))
    }

    /// What follows a case's end: its namespace kept (as `--keep-on-failure` asks), or
    /// deleted in `cleanups` (the result then comes from there); the result when it is final.
    fn after(
        &self,
        index: usize,
        mut result: CaseResult,
        cleanup: Option<(Cleanup, bool, Dur)>,
        cleanups: &mut JoinSet<(usize, CaseResult)>,
    ) -> Option<CaseResult> {
        match cleanup {
            Some((cleanup, true, _)) => {
                result.cleanup = Some(format!("kept namespace {} (--keep-on-failure)", cleanup.namespace));
                result.write();
                Some(result)
            }
            Some((cleanup, false, timeout)) => {
                let (cluster, mut namespaces) = (self.cluster.clone(), self.namespaces.clone());
                let wait = !self.options.cluster_deleted_after;
                cleanups.spawn(async move {
                    clean_up(&cluster, &cleanup, &mut namespaces, timeout.0, wait, &mut result).await;
                    result.write();
                    (index, result)
                });
                None
            }
            None => Some(result),
        }
    }

    /// A case whose task panicked outside its own guard: what it made is found by its labels
    /// and deleted, and its result says the result was lost.
    async fn lost(mut self, index: usize, case: Arc<Case>) -> (usize, CaseResult) {
        let dir = self.options.artifacts.join(&case.id);
        let mut result = CaseResult::not_run(&case, dir, Outcome::Error, LOST.into());
        let timeout = self.suite.defaults.cleanup_timeout.0;
        clean_up_by_label(&self.cluster, &case, &self.run_id, &mut self.namespaces, timeout, &mut result).await;
        result.write();
        (index, result)
    }

    /// Runs a case once a slot is free: not at all when it is skipped or cannot run, or when
    /// the run stops starting cases first.
    async fn run_case(mut self, case: &Case) -> Ended {
        let dir = self.options.artifacts.join(&case.id);
        if let Some(reason) = &case.skip {
            return (CaseResult::not_run(case, dir, Outcome::Skipped, reason.clone()), None);
        }
        if let Some(problem) = &case.problem {
            let mut r = CaseResult::new(case, dir);
            r.finish_as(Outcome::Error, Some(FailureClass::Example), Some(problem.clone()));
            r.write();
            return (r, None);
        }
        let Some(permit) = self.slot().await else {
            let reason = match self.stop_starting.borrow().clone() {
                Some(why) if !*self.cancel.borrow() => why,
                _ => "not run: the run was interrupted before this case started".to_string(),
            };
            return (CaseResult::not_run(case, dir, Outcome::Skipped, reason), None);
        };
        let attempts = Attempts {
            cluster: &self.cluster,
            case,
            suite: &self.suite,
            run_id: &self.run_id,
            options: &self.options,
            breaker: &self.breaker,
            slots: self.slots.clone(),
            namespaces: self.namespaces.clone(),
            usage: &self.usage,
            windows: &self.windows,
            cancel: self.cancel.clone(),
            progress: self.progress.as_ref(),
        };
        let (result, cleanup) = attempts.run(permit).await;
        let reason = result.reason.as_deref().unwrap_or("");
        let seconds = format!("{:.1}", result.seconds);
        info!(case = %case.name, outcome = result.outcome.label(), seconds, reason, "case ended");
        if self.options.fail_fast && matches!(result.outcome, Outcome::Failed | Outcome::Error) {
            let _ = self.stop_starting_tx.send(Some(format!("not run: --fail-fast after {} failed", case.name)));
        }
        result.write();
        let keep = self.options.keep_on_failure && result.outcome != Outcome::Passed;
        (result, cleanup.map(|c| (c, keep, self.suite.defaults.cleanup_timeout)))
    }

    /// A slot to run in; none once the run is interrupted or stops starting cases.
    async fn slot(&mut self) -> Option<OwnedSemaphorePermit> {
        let permit = tokio::select! {
            permit = self.slots.clone().acquire_owned() => permit.ok(),
            _ = self.cancel.wait_for(|c| *c) => None,
            _ = self.stop_starting.wait_for(|s| s.is_some()) => None,
        };
        permit.filter(|_| !*self.cancel.borrow() && self.stop_starting.borrow().is_none())
    }
}

/// The result of a case whose task panicked: an error of kubevet's, with the panic's message.
fn panicked(case: &Case, dir: PathBuf, panic: &(dyn std::any::Any + Send)) -> CaseResult {
    let message = panic
        .downcast_ref::<&str>()
        .map(|m| m.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into());
    tracing::error!(case = %case.name, panic = %message, "a case's task panicked");
    let mut result = CaseResult::new(case, dir);
    result.finish_as(
        Outcome::Error,
        Some(FailureClass::Infrastructure),
        Some(format!("kubevet failed while running this case (a bug of kubevet's; please report it): {message}")),
    );
    result
}

/// Deletes what a case that lost its own cleanup made: its namespaces and cluster-scoped
/// objects, found by the run's and the case's labels; what stays is listed as left behind.
async fn clean_up_by_label(
    cluster: &Cluster,
    case: &Case,
    run_id: &str,
    namespaces: &mut NamespaceTracker,
    timeout: Duration,
    result: &mut CaseResult,
) {
    let selector = format!("{LABEL_RUN}={run_id},{LABEL_CASE}={}", label_value(&case.id));
    let (found, cluster_scoped) = match cluster.leftovers(&selector).await {
        Ok(found) => found,
        Err(e) => {
            result.left_behind.push(format!("whatever carries {selector} (listing it failed: {e})"));
            return;
        }
    };
    let mut cluster_scoped = Some(cluster_scoped);
    for namespace in found {
        // The case's workloads go first, as after any case: a namespace whose Job still runs
        // pods takes a minute to go on its own.
        let mut unfinished = Vec::new();
        for w in &case.workloads {
            if let Some(object) = case.objects.get(w.object)
                && let Ok(applied) = cluster.locate(&object.value, Some(&namespace)).await
            {
                unfinished.push(applied);
            }
        }
        let cleanup = Cleanup { namespace, unfinished, cluster_scoped: cluster_scoped.take().unwrap_or_default() };
        clean_up(cluster, &cleanup, namespaces, timeout, true, result).await;
    }
    if let Some(rest) = cluster_scoped.filter(|r| !r.is_empty()) {
        for object in rest {
            if let Err(e) = cluster.delete(&object).await {
                result.left_behind.push(format!("{}/{} ({e})", object.kind.resource.kind, object.name));
            }
        }
    }
}
