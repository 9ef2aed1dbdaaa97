//! A notebook case: the notebook executed headless by papermill in the case's namespace (a
//! kubeconfig whose context points there), every workload it makes watched while it runs, then
//! the verdict: it ran to its end, and each workload it made (one a profile recognises, not
//! made by a controller) reached success; one still running is waited for within the case's
//! timeout. Evidence: the executed notebook, a text rendering of it, papermill's output, and
//! what kubevet collects for workloads.

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{Arc, Mutex},
};

use futures::StreamExt;
use serde_json::Value;
use tokio::{task::JoinHandle, time::Instant};

use super::{
    case::{CaseRun, Cleanup, Stop},
    extended,
};
use crate::{
    cluster::{Applied, Kind},
    outcome::{CaseResult, NotebookRun, Outcome, Phase},
    plan::{
        NotebookCase,
        notebook::{self, Notebook},
    },
    suite::{FailureClass, gpu::GpuMode, notebooks::Judge, profile::Profile},
    util::{
        command::{self, Finished},
        duration::{Dur, deadline},
        files::{self, absolute},
    },
};

/// The last state seen of each top-level workload of the namespace and whether it is still
/// there, by kind (an index into the kinds watched) and name.
type Seen = Arc<Mutex<BTreeMap<(usize, String), (Value, bool)>>>;

/// A workload the notebook made, as last seen.
struct Made<'p> {
    applied: Applied,
    profile: &'p Profile,
    last: Value,
    /// Still there when the notebook ended (else the notebook deleted it).
    present: bool,
}

impl CaseRun<'_> {
    pub(super) async fn run_notebook(self, notebook: &NotebookCase) -> (CaseResult, Option<Cleanup>) {
        let case = self.case;
        let mut result = CaseResult::new(case, self.dir.clone());
        let ends = deadline(case.timeout.0);
        if let Err(e) = command::require(&["papermill"]) {
            result.finish(Outcome::Error, Some(e.to_string()));
            return (result, None);
        }
        let Some(namespace) = self.open_namespace(&mut result).await else { return (result, None) };
        let sampled = self.usage.register(&namespace);
        let cleanup = Cleanup { namespace: namespace.clone(), unfinished: Vec::new(), cluster_scoped: Vec::new() };
        let (kinds, seen, watches) = self.watch_workloads(&namespace).await;
        let clock = Instant::now();
        self.progress.phase(&case.name, "notebook");
        let ran = self.execute(notebook, &namespace, ends, &mut result).await;
        result.phases.push(Phase::since("notebook", clock));
        let notebook_ended = Instant::now();
        watches.iter().for_each(JoinHandle::abort);
        let made = made_of(&kinds, &seen, &namespace);
        let mut run = NotebookRun { kernel: notebook.kernel.clone(), ..NotebookRun::default() };
        let stop = match ran {
            Ok(done) => self.judge_notebook(&done, &result.artifacts, &mut run, &mut result.log_tail),
            Err(why) => Some((Outcome::Error, Some(FailureClass::Infrastructure), why)),
        };
        run.workloads = made.iter().map(|m| format!("{}/{}", m.applied.kind.resource.kind, m.applied.name)).collect();
        let (outcome, class, mut reason) =
            self.judge_made(stop, notebook.judge, &namespace, &made, ends, &mut result).await;
        self.measure_namespace(sampled, &namespace, &mut result).await;
        if !result.cpu_smoke.is_empty() {
            reason = format!("CPU smoke test (with {}): {reason}", result.cpu_smoke.join(", "));
        }
        run.verdict_after_seconds = Some(notebook_ended.elapsed().as_secs_f64());
        result.notebook = Some(run);
        result.finish_as(outcome, class, Some(reason));
        (result, Some(cleanup))
    }

    /// One watch per workload kind the suite's profiles know and the cluster serves, each
    /// keeping the last state of every object of the namespace that no controller made.
    async fn watch_workloads(&self, namespace: &str) -> (Vec<(Kind, &Profile)>, Seen, Vec<JoinHandle<()>>) {
        let mut kinds: Vec<(Kind, &Profile)> = Vec::new();
        for profile in self.profiles.iter().filter(|p| !p.kind.is_empty()) {
            if let Some(kind) = self.cluster.served_kind(&profile.group, &profile.kind).await
                && !kinds.iter().any(|(k, _)| k.resource == kind.resource)
            {
                kinds.push((kind, profile));
            }
        }
        let seen: Seen = Arc::default();
        let watches = kinds
            .iter()
            .enumerate()
            .map(|(index, (kind, _))| {
                let mut stream = Box::pin(self.cluster.watch_matching(kind, namespace, None, None));
                let seen = seen.clone();
                tokio::spawn(async move {
                    while let Some(snapshot) = stream.next().await {
                        let Ok(objects) = snapshot else { continue };
                        let Ok(mut seen) = seen.lock() else { return };
                        seen.iter_mut()
                            .filter(|((k, _), _)| *k == index)
                            .for_each(|(_, (_, present))| *present = false);
                        for object in objects.into_iter().filter(top_level) {
                            let name =
                                object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
                            seen.insert((index, name), (object, true));
                        }
                    }
                })
            })
            .collect();
        (kinds, seen, watches)
    }

    /// papermill on the notebook: its output notebook, its own output (`papermill.log`) and a
    /// text rendering (`notebook.txt`) in the artifacts; the kubeconfig it is given lives in
    /// kubevet's cache only while it runs (it holds credentials).
    async fn execute(
        &self,
        notebook: &NotebookCase,
        namespace: &str,
        ends: Instant,
        result: &mut CaseResult,
    ) -> Result<Finished, String> {
        let artifacts = absolute(&result.artifacts);
        std::fs::create_dir_all(&artifacts).map_err(|e| format!("cannot make {}: {e}", artifacts.display()))?;
        let kubeconfig =
            self.cluster.kubeconfig_in(namespace).map_err(|e| format!("the notebook's kubeconfig: {e}"))?;
        let secret = files::cache_dir().join("notebook-kubeconfigs").join(format!("{namespace}.json"));
        write_private(&secret, kubeconfig.as_bytes()).map_err(|e| format!("writing {}: {e}", secret.display()))?;
        let input = absolute(&self.case.path);
        let dir = input.parent().map(Path::to_path_buf).unwrap_or_else(|| ".".into());
        let output = artifacts.join("notebook.ipynb");
        let mut argv: Vec<String> = vec!["papermill".into(), input.display().to_string(), output.display().to_string()];
        argv.extend(["--cwd".into(), dir.display().to_string(), "--no-progress-bar".into(), "--log-output".into()]);
        if let Some(kernel) = &notebook.kernel {
            argv.extend(["-k".into(), kernel.clone()]);
        }
        let parameters = self.parameters(notebook, result).await;
        if !parameters.is_empty() {
            // As YAML (JSON is YAML): typed exactly as the suite writes them, where `-p`
            // would guess ("1" → 1).
            argv.extend(["-y".into(), Value::Object(parameters).to_string()]);
        }
        let env = vec![
            ("KUBECONFIG", secret.display().to_string()),
            ("KUBEVET_NAMESPACE", namespace.to_string()),
            ("KUBEVET_CASE", self.case.name.clone()),
            ("KUBEVET_RUN", self.run_id.to_string()),
            ("KUBEVET_ARTIFACTS", artifacts.display().to_string()),
            ("PYTHONUNBUFFERED", "1".to_string()),
            ("KUBEVET_IMAGES", serde_json::to_string(&notebook.images).unwrap_or_else(|_| "{}".into())),
        ];
        let timeout = ends.saturating_duration_since(Instant::now());
        let ran = command::script_until(&argv, &env, &dir, timeout, self.cancel.clone()).await;
        let _ = std::fs::remove_file(&secret);
        let done = ran.map_err(|e| e.to_string())?;
        if let Err(e) = std::fs::write(artifacts.join("papermill.log"), &done.output) {
            result.collect_problems.push(format!("writing papermill.log: {e}"));
        }
        Ok(done)
    }

    /// The overrides' parameters; in a CPU smoke test (`gpu: cpu`, no node with an
    /// accelerator) the suite's `gpu.parameters` over them.
    async fn parameters(&self, notebook: &NotebookCase, result: &mut CaseResult) -> serde_json::Map<String, Value> {
        let mut parameters = notebook.parameters.clone();
        if self.case.gpu != GpuMode::Cpu || self.gpu.parameters.is_empty() {
            return parameters;
        }
        match self.cluster.node_allocatable().await {
            Ok(nodes) if !extended::offers_accelerator(&nodes) => {
                for (name, value) in &self.gpu.parameters {
                    result.cpu_smoke.push(format!("{name}={value}"));
                    parameters.insert(name.clone(), value.clone());
                }
            }
            Ok(_) => {}
            Err(e) => result.collect_problems.push(format!("gpu: cpu not applied, the nodes could not be read: {e}")),
        }
        parameters
    }

    /// How the notebook itself ended: none when it ran to its end.
    fn judge_notebook(
        &self,
        done: &Finished,
        artifacts: &Path,
        run: &mut NotebookRun,
        log_tail: &mut Option<String>,
    ) -> Option<Stop> {
        let path = artifacts.join("notebook.ipynb");
        let executed = notebook::read(&path).ok();
        if let Some(nb) = &executed {
            run.cells = nb.own_cells().count();
            run.ran = nb.own_cells().filter(|(_, c)| matches!(c.status(), Some("completed" | "failed"))).count();
            if let Err(e) = std::fs::write(artifacts.join("notebook.txt"), render(nb)) {
                tracing::warn!(error = %e, "cannot write notebook.txt");
            }
        }
        let verdict = verdict(done, executed.as_ref(), self.case.timeout);
        if let Some(failed) = &verdict.failed {
            run.failed_cell = Some(failed.cell);
            *log_tail = Some(failed.traceback.clone());
        }
        verdict.stop
    }

    /// The verdict of the workloads the notebook made, after its own (`stop`, none when it ran
    /// to its end); their evidence is collected either way.
    async fn judge_made(
        &self,
        stop: Option<Stop>,
        judge: Judge,
        namespace: &str,
        made: &[Made<'_>],
        ends: Instant,
        result: &mut CaseResult,
    ) -> Stop {
        let applied: Vec<Applied> = made.iter().map(|m| m.applied.clone()).collect();
        let waiting = stop.is_none() && judge == Judge::Workloads;
        let present: Vec<(usize, &Profile)> =
            made.iter().enumerate().filter(|(_, m)| m.present).map(|(i, m)| (i, m.profile)).collect();
        let mut seen: Vec<Option<Value>> = made.iter().map(|m| Some(m.last.clone())).collect();
        let mut pods = None;
        let mut waited = None;
        if waiting && !present.is_empty() {
            let timeout = ends.saturating_duration_since(Instant::now());
            let (w, p) = self.wait_for(namespace, &applied, &present, timeout, result).await;
            for ((i, _), state) in present.iter().zip(&w.workloads) {
                if state.is_some() {
                    seen[*i] = state.clone();
                }
            }
            pods = Some(p);
            waited = Some(w.ending);
        }
        let interrupted = stop.as_ref().is_some_and(|s| s.0 == Outcome::Interrupted);
        let pod_states = pods.clone().unwrap_or_default();
        let evidence = self.collect_into(result, namespace, &applied, (seen, pods), interrupted).await;
        if let Some(stop) = stop {
            return stop;
        }
        if judge == Judge::Notebook {
            let note = if made.is_empty() {
                String::new()
            } else {
                format!("; {} workloads collected, not judged", made.len())
            };
            return (Outcome::Passed, None, format!("the notebook ran to its end (judge: notebook){note}"));
        }
        // What the notebook deleted before its end is judged by its last state.
        for m in made.iter().filter(|m| !m.present) {
            if let Some(why) = m.profile.failure.holds(&m.last) {
                let name = format!("{} {}", m.applied.kind.resource.kind, m.applied.name);
                return (
                    Outcome::Failed,
                    Some(FailureClass::Test),
                    format!("{name} failed (then the notebook deleted it): {why}"),
                );
            }
        }
        match waited {
            None if made.is_empty() => {
                (Outcome::Passed, None, "the notebook ran to its end; it made no workload".into())
            }
            None => (Outcome::Passed, None, format!("the notebook ran to its end; {}", finished(made))),
            Some(ending) => {
                let (outcome, class, why) = self.judge(ending, &pod_states, &evidence, &mut result.unoffered).await;
                let names: Vec<String> = present
                    .iter()
                    .map(|(i, _)| format!("{} {}", made[*i].applied.kind.resource.kind, made[*i].applied.name))
                    .collect();
                (outcome, class, format!("the notebook ran to its end; {}: {why}", names.join(", ")))
            }
        }
    }
}

/// `TrainJob mnist: Complete` for each workload the notebook made (and deleted) that ended.
fn finished(made: &[Made<'_>]) -> String {
    let lines: Vec<String> = made
        .iter()
        .map(|m| {
            let state =
                m.profile.success.holds(&m.last).unwrap_or_else(|| "deleted by the notebook before it ended".into());
            format!("{} {}: {state}", m.applied.kind.resource.kind, m.applied.name)
        })
        .collect();
    lines.join("; ")
}

/// An object no controller made (a JobSet's Jobs, a TrainJob's JobSet are their owner's).
fn top_level(object: &Value) -> bool {
    !object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|owners| owners.iter().any(|o| o["controller"].as_bool() == Some(true)))
}

fn made_of<'p>(kinds: &[(Kind, &'p Profile)], seen: &Seen, namespace: &str) -> Vec<Made<'p>> {
    let Ok(seen) = seen.lock() else { return Vec::new() };
    seen.iter()
        .filter_map(|((index, name), (last, present))| {
            let (kind, profile) = kinds.get(*index)?;
            let applied = Applied { kind: kind.clone(), namespace: Some(namespace.to_string()), name: name.clone() };
            Some(Made { applied, profile, last: last.clone(), present: *present })
        })
        .collect()
}

/// The cell that raised, as the verdict names it.
#[derive(Debug, PartialEq)]
struct FailedCell {
    cell: usize,
    traceback: String,
}

#[derive(Debug)]
struct NotebookVerdict {
    stop: Option<Stop>,
    failed: Option<FailedCell>,
}

/// From how papermill ended and the notebook it wrote: decided on papermill's exit, the cells'
/// `error` outputs and papermill's cell status, never on the text the notebook printed.
fn verdict(done: &Finished, executed: Option<&Notebook>, timeout: Dur) -> NotebookVerdict {
    let none = |stop| NotebookVerdict { stop: Some(stop), failed: None };
    if done.interrupted {
        return none((Outcome::Interrupted, None, "interrupted while the notebook ran".into()));
    }
    let own: Vec<(usize, &notebook::Cell)> = executed.map(|nb| nb.own_cells().collect()).unwrap_or_default();
    if done.timed_out {
        let running = own.iter().find(|(_, c)| c.status() == Some("running"));
        let at = running.map(|(n, c)| format!(", in cell {n} (`{}`)", c.first_line())).unwrap_or_default();
        return none((
            Outcome::Failed,
            Some(FailureClass::Timeout),
            format!("the notebook was still running after {timeout}{at}; stopped with its kernel"),
        ));
    }
    if done.code == Some(0) {
        return NotebookVerdict { stop: None, failed: None };
    }
    let raised = own.iter().find_map(|(n, c)| {
        c.outputs.iter().find(|o| o["output_type"] == "error" && !clean_exit(o)).map(|o| (*n, *c, o))
    });
    match raised {
        Some((n, cell, error)) => {
            let ename = error["ename"].as_str().unwrap_or("an exception");
            let evalue = error["evalue"].as_str().unwrap_or("");
            NotebookVerdict {
                stop: Some((
                    Outcome::Failed,
                    Some(FailureClass::Test),
                    format!("cell {n} (`{}`) raised {ename}: {evalue}", cell.first_line()),
                )),
                failed: Some(FailedCell { cell: n, traceback: traceback(error) }),
            }
        }
        None => {
            let tail = command::tail(&done.output).unwrap_or_default();
            none((
                Outcome::Error,
                Some(FailureClass::Infrastructure),
                format!(
                    "the notebook stopped before its end and no cell raised (its kernel died or could not start; exit {}): {tail}",
                    done.code.map(|c| c.to_string()).unwrap_or_else(|| "by a signal".into()),
                ),
            ))
        }
    }
}

/// `SystemExit` with no code or 0: a notebook that ends itself cleanly, as papermill reads it.
fn clean_exit(error: &Value) -> bool {
    error["ename"] == "SystemExit" && matches!(error["evalue"].as_str(), Some("" | "0"))
}

/// The executed notebook as plain text: each cell's number, source and outputs.
fn render(nb: &Notebook) -> String {
    let mut out = String::new();
    for (n, cell) in nb.own_cells() {
        let count = cell.execution_count.map(|c| format!(" In [{c}]")).unwrap_or_default();
        let status = cell.status().map(|s| format!(" ({s})")).unwrap_or_default();
        out.push_str(&format!("── cell {n} · {}{count}{status}\n{}\n", cell.cell_type, cell.source().trim_end()));
        for output in &cell.outputs {
            let text = match output["output_type"].as_str() {
                Some("stream") => notebook::joined(&output["text"]),
                Some("error") => traceback(output),
                _ => notebook::joined(&output["data"]["text/plain"]),
            };
            if !text.is_empty() {
                out.push_str(&format!("→ {}\n", text.trim_end().replace('\n', "\n  ")));
            }
        }
        out.push('\n');
    }
    out
}

/// An `error` output's traceback as plain text.
fn traceback(error: &Value) -> String {
    let lines: Vec<String> =
        error["traceback"].as_array().into_iter().flatten().filter_map(Value::as_str).map(strip_ansi).collect();
    lines.join("\n")
}

/// IPython's tracebacks carry terminal colours.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ … final byte in @..~
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A file only its owner can read (a kubeconfig holds credentials).
fn write_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.write_all(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(code: Option<i32>, timed_out: bool) -> Finished {
        Finished { code, timed_out, interrupted: false, output: "line 1\nline 2\nNoSuchKernel: python9\n".into() }
    }

    fn executed(cells: serde_json::Value) -> Notebook {
        let text = serde_json::json!({"nbformat": 4, "metadata": {}, "cells": cells}).to_string();
        notebook::parse(Path::new("out.ipynb"), &text).expect("a notebook")
    }

    #[test]
    fn a_cell_that_raised_is_named_by_its_number_source_and_exception() {
        let nb = executed(serde_json::json!([
            {"cell_type": "markdown", "metadata": {"tags": ["papermill-error-cell-tag"]}, "source": "An Exception was encountered"},
            {"cell_type": "markdown", "metadata": {}, "source": "# Title"},
            {"cell_type": "code", "metadata": {}, "source": "x = 1", "outputs": []},
            {"cell_type": "code", "metadata": {}, "source": "print('Traceback (fake)')\nraise ValueError('bad value')", "outputs": [
                {"output_type": "stream", "name": "stdout", "text": "Traceback (fake)\n"},
                {"output_type": "error", "ename": "ValueError", "evalue": "bad value",
                 "traceback": ["\u{1b}[0;31mValueError\u{1b}[0m: bad value"]}]}]));
        let v = verdict(&finished(Some(1), false), Some(&nb), Dur(std::time::Duration::from_secs(60)));
        let (outcome, class, reason) = v.stop.expect("failed");
        assert_eq!((outcome, class), (Outcome::Failed, Some(FailureClass::Test)));
        assert_eq!(reason, "cell 3 (`print('Traceback (fake)')`) raised ValueError: bad value");
        assert_eq!(v.failed, Some(FailedCell { cell: 3, traceback: "ValueError: bad value".into() }));
    }

    #[test]
    fn no_cell_raised_is_the_machines_fault_and_a_timeout_names_the_running_cell() {
        let nb = executed(serde_json::json!([
            {"cell_type": "code", "metadata": {"papermill": {"status": "completed"}}, "source": "a = 1", "outputs": []},
            {"cell_type": "code", "metadata": {"papermill": {"status": "running"}}, "source": "import time\ntime.sleep(999)", "outputs": []}]));
        let timeout = Dur(std::time::Duration::from_secs(5));
        let (outcome, class, reason) = verdict(&finished(Some(1), false), Some(&nb), timeout).stop.expect("error");
        assert_eq!((outcome, class), (Outcome::Error, Some(FailureClass::Infrastructure)));
        assert!(reason.ends_with("exit 1): line 1 | line 2 | NoSuchKernel: python9"), "{reason}");
        let (outcome, class, reason) = verdict(&finished(None, true), Some(&nb), timeout).stop.expect("timeout");
        assert_eq!((outcome, class), (Outcome::Failed, Some(FailureClass::Timeout)));
        assert_eq!(
            reason,
            "the notebook was still running after 5s, in cell 2 (`import time`); stopped with its kernel"
        );
        // A clean SystemExit is papermill's success too; exit 0 is judged by nothing else.
        assert!(verdict(&finished(Some(0), false), Some(&nb), timeout).stop.is_none());
        assert!(clean_exit(&serde_json::json!({"ename": "SystemExit", "evalue": "0"})));
    }

    #[test]
    fn objects_a_controller_made_are_not_the_notebooks_own() {
        let owned = serde_json::json!({"metadata": {"ownerReferences": [{"kind": "JobSet", "controller": true}]}});
        assert!(!top_level(&owned));
        assert!(top_level(&serde_json::json!({"metadata": {"name": "mnist"}})));
    }
}
