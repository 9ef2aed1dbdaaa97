//! One `kubevet run`: what every cell shares is prepared once (tools checked, images built,
//! operators resolved and rendered), then each cell of the Kubernetes-version matrix gets its
//! cluster, its images, its operators and its cases, and gives its cluster back; the reports
//! cover every cell.

use std::{
    io::{IsTerminal, Write},
    path::PathBuf,
    sync::Arc,
};

use tokio::sync::watch;

use crate::{
    cluster::{
        Applied, Cluster,
        provision::{self, Cell, ProvisionError, Provisioned},
        retry::RetryPolicy,
    },
    history,
    images::{self, Built},
    operators::{
        OperatorError, install,
        render::{self, Rendered},
        versions,
    },
    outcome::{CaseResult, CellReport, Outcome, RunReport},
    plan::Case,
    report::{
        self,
        terminal::{ColorChoice, Terminal},
    },
    run::{self, RunOptions},
    suite::{Suite, images::Retag},
    util::{command, error::Error, files::copy_tree},
};

/// How this run was asked for, beyond the suite.
pub struct Session {
    pub suite: Suite,
    pub cases: Vec<Case>,
    pub k8s_version: Option<String>,
    pub reuse: bool,
    pub junit: Option<PathBuf>,
    /// Colour on the terminal (`--color`).
    pub color: ColorChoice,
    /// Its `artifacts` is the run's folder; each cell's cases go to a sub-folder in a matrix.
    pub options: RunOptions,
    /// The history database this run is added to (none: `--no-history`).
    pub history: Option<PathBuf>,
    /// The HTML report to write (`--html`).
    pub html: Option<PathBuf>,
    /// The CTRF report to write (`--ctrf`).
    pub ctrf: Option<PathBuf>,
    /// The shard of a plan this run is (`--plan --shard`).
    pub shard: Option<crate::util::run_file::ShardRef>,
}

/// What every cell shares, made once per run.
struct Prepared {
    /// With built images' references swapped in.
    cases: Vec<Case>,
    built: Vec<Built>,
    /// Per operator, in the suite's order.
    rendered: Vec<Result<Rendered, OperatorError>>,
    /// Images that did not build: then no cell runs.
    failed_builds: Vec<CaseResult>,
    /// The cases whose GitHub group was printed as they ended.
    shown: report::terminal::Shown,
}

impl Session {
    /// The run, until `cancel` turns true (an interrupt: the caller's one signal, shared by
    /// every session a sweep makes, so no listener is left behind per run).
    pub async fn run(mut self, cancel: tokio::sync::watch::Receiver<bool>) -> Result<i32, Error> {
        let started = jiff::Timestamp::now();
        let suite = &self.suite;
        let cells = provision::cells(&suite.cluster, self.k8s_version.as_deref())?;
        command::require(&provision::tools(&suite.cluster, !suite.images.is_empty(), &suite.operators))?;
        let prepared = self.prepare().await;
        let mut reports = Vec::new();
        for cell in &cells {
            let dir =
                cell.label().map(|l| self.options.artifacts.join(l)).unwrap_or_else(|| self.options.artifacts.clone());
            let not_started = |reason: &str, outcome: Option<Outcome>, infrastructure_failed: bool| {
                let mut report = run::not_run(&prepared.cases, &dir, reason, *cancel.borrow());
                if let Some(outcome) = outcome {
                    report.results.iter_mut().for_each(|r| r.outcome = outcome);
                }
                report.results.splice(0..0, prepared.failed_builds.iter().cloned());
                CellReport {
                    setup_seconds: None,
                    cell: cell.clone(),
                    server_version: String::new(),
                    report,
                    requests: Default::default(),
                    infrastructure_failed,
                }
            };
            if let Some(failed) = prepared.failed_builds.first() {
                reports.push(not_started(&format!("not run: {} failed to build", failed.name), None, true));
            } else if *cancel.borrow() {
                // Every cell is in the report, the ones an interrupt kept from starting too.
                reports.push(not_started("interrupted before this cell started", Some(Outcome::Skipped), false));
            } else {
                reports.push(self.cell(cell, &dir, &prepared, cancel.clone()).await);
            }
        }
        self.report(&prepared, &reports, *cancel.borrow(), started)
    }

    /// What every cell shares: images built (a failed build is a result in the report, not a
    /// lost report), the cases pointed at them, and every operator resolved and rendered once
    /// (a failure there is its install's).
    async fn prepare(&mut self) -> Prepared {
        let suite = &self.suite;
        let mut built = Vec::new();
        let mut failed_builds = Vec::new();
        for image in &suite.images {
            match images::build(image).await {
                Ok(b) => {
                    tracing::info!(image = %b.reference, cached = b.cached, "image ready");
                    built.push(b);
                }
                Err(e) => {
                    tracing::error!(image = %image.name, error = %e, "image build failed");
                    let dir = self.options.artifacts.join("images").join(crate::util::files::file_name(&image.name));
                    let mut result = CaseResult::named(
                        &format!("image.{}", image.name),
                        &format!("image {}", image.name),
                        "image",
                        dir,
                    );
                    result.finish(Outcome::Error, Some(e.to_string()));
                    result.write();
                    failed_builds.push(result);
                }
            }
        }
        let retags: Vec<Retag> = built.iter().map(Built::retag).collect();
        let mut cases = std::mem::take(&mut self.cases);
        for object in cases.iter_mut().flat_map(|c| c.objects.iter_mut()) {
            images::rewrite(&mut object.value, &retags);
        }
        // A scenario's objects name the suite's images as examples do.
        for scenario in cases.iter_mut().filter_map(|c| c.scenario.as_mut()) {
            let scenario = std::sync::Arc::make_mut(scenario);
            for step in scenario.steps.iter_mut().chain(&mut scenario.catch).chain(&mut scenario.finally) {
                if let crate::plan::StepAction::Apply { objects, .. } = &mut step.action {
                    for object in objects.iter_mut() {
                        images::rewrite(object, &retags);
                    }
                }
            }
        }
        // A notebook's code cannot be rewritten: it is told the built references instead.
        for notebook in cases.iter_mut().filter_map(|c| c.notebook.as_mut()) {
            let notebook = std::sync::Arc::make_mut(notebook);
            notebook.images = retags.iter().map(|r| (r.repository.clone(), r.reference.clone())).collect();
        }
        crate::run::pipeline::prepare(&mut cases, &retags, &suite.pipelines).await;
        let rendered = render::render_all(&suite.operators, suite.defaults.resolve_ttl.0).await;
        Prepared { cases, built, rendered, failed_builds, shown: Default::default() }
    }

    /// The ledger, `run.json`, the JUnit file and the summary; the exit code.
    fn report(
        &self,
        prepared: &Prepared,
        reports: &[CellReport],
        interrupted: bool,
        started: jiff::Timestamp,
    ) -> Result<i32, Error> {
        let suite = &self.suite;
        let rendered = || prepared.rendered.iter().flatten();
        let mut ledger: versions::Ledger =
            rendered().filter_map(|r| r.version.clone().map(|v| (r.operator.clone(), v))).collect();
        // Pipelines that live in KFP at a floating or pinned version: what each ran.
        for run in reports.iter().flat_map(|c| &c.report.results).filter_map(|r| r.pipeline.as_ref()) {
            if run.asked.is_some() && !run.version.is_empty() {
                ledger.insert(format!("pipeline {}", run.pipeline), run.version.clone());
            }
        }
        // What floating versions resolved to is recorded per run; a change is the first thing said.
        let changed = versions::changes(&versions::swap_ledger(&suite.path, &ledger), &ledger);
        let mut properties = Vec::new();
        for (name, version) in &ledger {
            let key = match name.strip_prefix("pipeline ") {
                Some(pipeline) => format!("pipeline.{pipeline}.version"),
                None => format!("operator.{name}.version"),
            };
            properties.push((key, version.clone()));
        }
        for r in rendered() {
            properties.push((format!("operator.{}.render", r.operator), r.cache_label().into()));
        }
        for change in &changed {
            properties.push(("changed".into(), change.clone()));
        }
        for b in &prepared.built {
            properties.push((format!("image.{}", b.name), b.reference.clone()));
            properties.push((format!("image.{}.cache", b.name), if b.cached { "hit" } else { "miss" }.into()));
        }
        let rendered: Vec<&Rendered> = rendered().collect();
        let id = format!("{}-{}", started.strftime("%Y%m%dT%H%M%SZ"), crate::util::ids::random_hex(6));
        let facts = report::RunFacts {
            id: &id,
            suite: &suite.name,
            started,
            ended: jiff::Timestamp::now(),
            artifacts: &self.options.artifacts,
            shard: self.shard.as_ref(),
        };
        let run_file = report::run_file(&facts, reports, &ledger, &rendered, &changed)?;
        let junit_path = self.junit.clone().unwrap_or_else(|| self.options.artifacts.join("junit.xml"));
        report::write(&self.options.artifacts, &junit_path, &suite.name, reports, &properties, &run_file)?;
        if let Some(path) = &self.ctrf {
            let ctrf = report::ctrf::ctrf(&facts, reports);
            crate::util::files::write_atomically(path, ctrf.to_string().as_bytes())
                .map_err(|e| Error::infrastructure_because(format!("writing {}", path.display()), e))?;
        }
        self.remember(&self.options.artifacts.join("run.json"), &suite.name);
        let results: Vec<&CaseResult> = reports.iter().flat_map(|c| &c.report.results).collect();
        report::print(&report::terminal::failures(&results, self.color.enabled(std::io::stdout().is_terminal())));
        if self.options.github {
            // Each case's group was printed as it ended; operator installs and cases that never
            // started get theirs now.
            let shown = prepared.shown.lock().map(|s| s.clone()).unwrap_or_default();
            for cell in reports {
                let label = cell.cell.label();
                for r in cell.report.results.iter().filter(|r| !shown.contains(&(label.clone(), r.id.clone()))) {
                    report::print(&report::github::group(r, label.as_deref()));
                }
            }
            report::print(&report::github::annotations(reports));
            report::github::append_step_summary(reports, &changed);
        }
        report::summary::print(reports, &changed, &junit_path, &self.options.artifacts, suite.defaults.flaky);
        Ok(report::exit_code(reports, interrupted, suite.defaults.flaky))
    }

    /// The run into the history, and the HTML report from it. A history that cannot be
    /// written is said, and changes no verdict.
    fn remember(&self, run_json: &std::path::Path, suite: &str) {
        let store = match (&self.history, &self.html) {
            (Some(path), _) => history::open(path),
            // A report without a history: this run alone.
            (None, Some(_)) => {
                history::store::Store::in_memory().map_err(history::failed(std::path::Path::new(":memory:")))
            }
            (None, None) => return,
        };
        let stored = store.and_then(|mut store| {
            history::append(&mut store, run_json)?;
            if let Some(html) = &self.html {
                let loaded = history::load(&store, Some(suite), history::Window::default())?;
                history::html::write(&loaded, html)?;
            }
            Ok(())
        });
        if let Err(e) = stored {
            tracing::warn!("the run was not added to the history or its report: {e}");
            let _ = writeln!(std::io::stderr(), "kubevet: the run was not added to the history: {e}");
        }
    }

    /// One cell: cluster up, images loaded, operators installed in order, cases run, evidence
    /// kept, cluster given back. Whatever fails becomes a result in the report, not an exit.
    async fn cell(
        &self,
        cell: &Cell,
        dir: &std::path::Path,
        prepared: &Prepared,
        cancel: watch::Receiver<bool>,
    ) -> CellReport {
        let suite = &self.suite;
        let cases = &prepared.cases;
        let not_run = |result: CaseResult, server_version: String| {
            let reason = format!("not run: {} failed", result.name);
            let mut report = run::not_run(cases, dir, &reason, *cancel.borrow());
            tracing::error!(
                cell = cell.label().unwrap_or_default(),
                reason = result.reason.as_deref().unwrap_or(""),
                "no cluster"
            );
            report.results.insert(0, result);
            CellReport {
                setup_seconds: None,
                cell: cell.clone(),
                server_version,
                report,
                requests: Default::default(),
                infrastructure_failed: true,
            }
        };
        let started = std::time::Instant::now();
        let mut up = CaseResult::named("cluster", "cluster", "cluster", dir.join("cluster"));
        let provisioned = match provision::up(&suite.cluster, cell, self.reuse, cancel.clone()).await {
            Ok(p) => p,
            Err(e) => {
                up.finish(if *cancel.borrow() { Outcome::Interrupted } else { Outcome::Error }, Some(e.to_string()));
                return not_run(up, String::new());
            }
        };
        let report = self.on_cluster(cell, &provisioned, dir, prepared, cancel.clone(), started).await;
        let report = match report {
            Ok(r) => r,
            Err(e) => {
                up.finish(Outcome::Error, Some(e.to_string()));
                not_run(up, String::new())
            }
        };
        let failed =
            report.report.results.iter().any(|r| r.outcome != Outcome::Passed && r.outcome != Outcome::Skipped);
        if let Some(name) = &provisioned.kind_cluster
            && failed
            && cell.kind_cluster.is_some()
            && let Err(e) = provision::export_logs(name, &dir.join("kind-logs")).await
        {
            tracing::warn!(cluster = %name, error = %e, "kind export logs failed");
        }
        if let Some(container) = provisioned.container {
            if let Err(e) = container.remove().await {
                tracing::warn!(error = %e, "could not remove the cluster container");
            }
        } else if provisioned.delete_at_end
            && let Some(name) = &provisioned.kind_cluster
        {
            tracing::info!(cluster = %name, "deleting kind cluster");
            if let Err(e) = provision::delete_kind(name).await {
                tracing::warn!(cluster = %name, error = %e, "could not delete the kind cluster");
            }
        }
        report
    }

    async fn on_cluster(
        &self,
        cell: &Cell,
        provisioned: &Provisioned,
        dir: &std::path::Path,
        prepared: &Prepared,
        cancel: watch::Receiver<bool>,
        started: std::time::Instant,
    ) -> Result<CellReport, ProvisionError> {
        let suite = &self.suite;
        let Prepared { cases, built, rendered, .. } = prepared;
        if let Some(name) = &provisioned.kind_cluster {
            let references: Vec<String> = built.iter().map(|b| b.reference.clone()).collect();
            provision::load_images(name, &references).await?;
        } else if provisioned.container.is_some() && !built.is_empty() {
            tracing::warn!("built images are not loaded into a container cluster: KWOK runs no containers");
        }
        let policy = RetryPolicy::from(suite.defaults.api_retry);
        let cluster = Arc::new(
            Cluster::connect_with(provisioned.kubeconfig.as_deref(), provisioned.context.as_deref(), policy)
                .await
                .map_err(|e| ProvisionError::Connect(Box::new(e)))?,
        );
        if let Some(v) = &cell.version
            && !cluster.server_version.trim_start_matches('v').starts_with(v.trim_start_matches('v'))
        {
            tracing::warn!(wanted = %v, server = %cluster.server_version, "the cluster's version is not the one asked for");
        }
        let installs = self.install_operators(&cluster, provisioned, dir, built, rendered, &cancel).await;
        let failed_install = installs.iter().find(|(r, _)| r.outcome != Outcome::Passed).map(|(r, _)| r.name.clone());
        let cluster_deleted_after = provisioned.delete_at_end;
        let options = RunOptions { artifacts: dir.to_path_buf(), cluster_deleted_after, ..self.options.clone() };
        let setup_seconds = failed_install.is_none().then(|| started.elapsed().as_secs_f64());
        let mut report = match failed_install {
            Some(name) => run::not_run(cases, dir, &format!("not run: {name} failed to install"), *cancel.borrow()),
            None => {
                let mut terminal = Terminal::new(cases.len(), self.color);
                if self.options.github {
                    terminal = terminal.with_github_groups(cell.label(), prepared.shown.clone());
                }
                let terminal = Arc::new(terminal);
                let report = run::run(suite, cases.to_vec(), cluster.clone(), options, cancel, terminal.clone()).await;
                terminal.finish();
                report
            }
        };
        share_operator_logs(&cluster, &installs, &report, suite.defaults.log_limit_bytes).await;
        report.results.splice(0..0, installs.into_iter().map(|(r, _)| r));
        let requests = cluster.request_counts();
        tracing::info!(requests = requests.sent, retried = requests.retries(), "API requests sent");
        Ok(CellReport {
            cell: cell.clone(),
            server_version: cluster.server_version.clone(),
            report,
            requests,
            infrastructure_failed: false,
            setup_seconds,
        })
    }

    /// The suite's operators in order, until one fails: each install's result and what it
    /// applied. A rendering that failed is an error result of its own.
    async fn install_operators(
        &self,
        cluster: &Cluster,
        provisioned: &Provisioned,
        dir: &std::path::Path,
        built: &[Built],
        rendered: &[Result<Rendered, OperatorError>],
        cancel: &watch::Receiver<bool>,
    ) -> Vec<(CaseResult, Vec<Applied>)> {
        let suite = &self.suite;
        let retags: Vec<Retag> = built.iter().map(Built::retag).collect();
        let mut installs = Vec::new();
        for (operator, rendered) in suite.operators.iter().zip(rendered) {
            tracing::info!(operator = %operator.name, "installing");
            let (result, applied) = match rendered {
                Ok(rendered) => {
                    install::Install {
                        cluster,
                        operator,
                        rendered,
                        images: &retags,
                        kubeconfig: provisioned.kubeconfig.as_deref(),
                        context: provisioned.context.as_deref(),
                        artifacts: dir,
                        grace: suite.defaults.failure_grace.0,
                        log_limit: suite.defaults.log_limit_bytes,
                        cancel: cancel.clone(),
                    }
                    .run()
                    .await
                }
                Err(why) => {
                    let name = format!("operator {}", operator.name);
                    let mut r = CaseResult::named(
                        &format!("operator.{}", operator.name),
                        &name,
                        "operator",
                        dir.join("operators").join(&operator.name),
                    );
                    r.finish(Outcome::Error, Some(format!("rendering failed: {why}")));
                    (r, Vec::new())
                }
            };
            tracing::info!(operator = %operator.name, outcome = result.outcome.label(), reason = result.reason.as_deref().unwrap_or(""), "install ended");
            let failed = result.outcome != Outcome::Passed;
            installs.push((result, applied));
            if failed {
                break;
            }
        }
        installs
    }
}

/// Operator logs cover the whole run: collected again at its end, and put beside the evidence
/// of every case that did not pass, where whoever reads it looks first.
async fn share_operator_logs(
    cluster: &Cluster,
    installs: &[(CaseResult, Vec<Applied>)],
    report: &RunReport,
    limit: usize,
) {
    for (result, applied) in installs {
        if result.outcome == Outcome::Passed {
            install::collect_logs(cluster, applied, &result.artifacts, limit).await;
            for case in report.results.iter().filter(|r| matches!(r.outcome, Outcome::Failed | Outcome::Error)) {
                let name = result.artifacts.file_name().unwrap_or_default();
                if let Err(e) = copy_tree(&result.artifacts, &case.artifacts.join("operators").join(name)) {
                    tracing::warn!(case = %case.id, error = %e, "could not copy the operator's logs");
                }
            }
        }
    }
}
