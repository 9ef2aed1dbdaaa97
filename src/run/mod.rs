//! Running a plan: cases in parallel up to the concurrency, each in its own namespace; stop
//! starting cases on an interrupt (or on the first failure with fail-fast); clean every
//! namespace up without holding a slot; wait until they are all gone.

mod case;

use std::{path::PathBuf, sync::Arc};

use tokio::{
    sync::{Semaphore, watch},
    task::JoinSet,
    time::Instant,
};
use tracing::{Instrument, info, info_span, warn};
use tracing_indicatif::{span_ext::IndicatifSpanExt, style::ProgressStyle};

use crate::{
    cluster::Cluster,
    outcome::{CaseResult, Outcome, Phase, RunReport},
    plan::Case,
    suite::Suite,
    util::ids::random_hex,
};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub artifacts: PathBuf,
    pub concurrency: Option<usize>,
    pub fail_fast: bool,
    pub keep_on_failure: bool,
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
) -> RunReport {
    let started = Instant::now();
    let run_id = random_hex(8);
    let concurrency = options.concurrency.unwrap_or(suite.defaults.concurrency).max(1);
    let slots = Arc::new(Semaphore::new(concurrency));
    let (stop_starting_tx, stop_starting_rx) = watch::channel(None::<String>);
    let stop_starting_tx = Arc::new(stop_starting_tx);
    info!(run = %run_id, cases = cases.len(), concurrency, server = %cluster.server_version, "run starting");

    // On a terminal the run span is a live counter and each case span a live line under it.
    let run_span = info_span!("run", id = %run_id);
    if let Ok(style) = ProgressStyle::with_template("{spinner} {pos}/{len} cases done, {msg} [{elapsed}]") {
        run_span.pb_set_style(&style);
    }
    run_span.pb_set_length(cases.len() as u64);
    run_span.pb_set_message(&format!("concurrency {concurrency}"));
    run_span.pb_start();
    let mut tasks = JoinSet::new();
    let cases: Vec<Arc<Case>> = cases.into_iter().map(Arc::new).collect();
    for (index, case) in cases.iter().cloned().enumerate() {
        let cluster = cluster.clone();
        let slots = slots.clone();
        let mut cancel = cancel_rx.clone();
        let mut stop_starting = stop_starting_rx.clone();
        let stop_starting_tx = stop_starting_tx.clone();
        let artifacts = options.artifacts.clone();
        let defaults = suite.defaults.clone();
        let run_id = run_id.clone();
        let options = options.clone();
        let case_span = info_span!(parent: &run_span, "case", name = %case.name);
        tasks.spawn(async move {
            let dir = artifacts.join(&case.id);
            if let Some(reason) = &case.skip {
                return (index, CaseResult::not_run(&case, dir, Outcome::Skipped, reason.clone()), None);
            }
            if let Some(problem) = &case.problem {
                let r = CaseResult::not_run(&case, dir, Outcome::Error, problem.clone());
                r.write();
                return (index, r, None);
            }
            let permit = tokio::select! {
                permit = slots.acquire_owned() => permit.ok(),
                _ = cancel.wait_for(|c| *c) => None,
                _ = stop_starting.wait_for(|s| s.is_some()) => None,
            };
            let Some(permit) = permit.filter(|_| !*cancel.borrow() && stop_starting.borrow().is_none()) else {
                let reason = match stop_starting.borrow().clone() {
                    Some(why) if !*cancel.borrow() => why,
                    _ => "not run: the run was interrupted before this case started".to_string(),
                };
                return (index, CaseResult::not_run(&case, dir, Outcome::Skipped, reason), None);
            };
            info!(case = %case.name, "case starting");
            let (result, cleanup) = case::CaseRun {
                cluster: &cluster,
                case: &case,
                run_id: &run_id,
                artifacts,
                defaults: &defaults,
                cancel: cancel.clone(),
            }
            .run()
            .instrument(case_span)
            .await;
            drop(permit);
            info!(case = %case.name, outcome = result.outcome.label(), seconds = format!("{:.1}", result.seconds), reason = result.reason.as_deref().unwrap_or(""), "case ended");
            if options.fail_fast && matches!(result.outcome, Outcome::Failed | Outcome::Error) {
                let _ = stop_starting_tx.send(Some(format!("not run: --fail-fast after {} failed", case.name)));
            }
            result.write();
            let keep = options.keep_on_failure && result.outcome != Outcome::Passed;
            (index, result, cleanup.map(|c| (c, keep, defaults.cleanup_timeout)))
        });
    }

    // Namespaces are deleted as cases end, without holding a slot; the run waits for them all.
    let mut results: Vec<Option<CaseResult>> = vec![None; cases.len()];
    let mut cleanups = JoinSet::new();
    let namespaces = cluster.track_namespaces(&run_id);
    let mut done = 0;
    while let Some(joined) = tasks.join_next().await {
        done += 1;
        run_span.pb_set_position(done);
        let Ok((index, result, cleanup)) = joined else {
            continue;
        };
        match cleanup {
            Some((cleanup, true, _)) => {
                let mut result = result;
                result.cleanup = Some(format!("kept namespace {} (--keep-on-failure)", cleanup.namespace));
                result.write();
                results[index] = Some(result);
            }
            Some((cleanup, false, timeout)) => {
                let cluster = cluster.clone();
                let mut namespaces = namespaces.clone();
                cleanups.spawn(async move {
                    let mut result = result;
                    let clock = Instant::now();
                    let mut problems = Vec::new();
                    for object in &cleanup.cluster_scoped {
                        if let Err(e) = cluster.delete(object).await {
                            warn!(object = %object.name, error = %e, "cannot delete a cluster-scoped object");
                            result.left_behind.push(format!("{}/{}", object.kind.resource.kind, object.name));
                            problems.push(e.message);
                        }
                    }
                    if let Err(why) = cluster
                        .delete_namespace(&cleanup.namespace, &cleanup.unfinished, &mut namespaces, timeout.0)
                        .await
                    {
                        warn!(namespace = %cleanup.namespace, "{why}");
                        result.left_behind.push(format!("namespace {}", cleanup.namespace));
                        problems.push(why);
                    }
                    if !problems.is_empty() {
                        result.cleanup = Some(problems.join("; "));
                    }
                    result.phases.push(Phase::since("cleanup", clock));
                    result.write();
                    (index, result)
                });
            }
            None => results[index] = Some(result),
        }
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
                CaseResult::not_run(
                    case,
                    options.artifacts.join(&case.id),
                    Outcome::Error,
                    "kubevet lost this case's result (a task panicked)".into(),
                )
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
