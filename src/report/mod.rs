//! Reports of a run, written from the results of every cell: the JUnit file CI systems read
//! ([`junit`]), `run.json` (what the run used and what it cost), the summary people read
//! ([`summary`]), and the exit code.
//!
//! May use: `outcome`, `operators` (what each version resolved to) and `util`.

pub mod github;
pub mod junit;
pub mod summary;

use std::path::Path;

use serde_json::{Value, json};

use crate::{
    operators::{render::Rendered, versions::Ledger},
    outcome::{CellReport, Outcome},
    suite::FlakyPolicy,
    util::{
        error::{EXIT_CASE_FAILED, EXIT_INFRASTRUCTURE, EXIT_INTERRUPTED, EXIT_LEFT_BEHIND, Error},
        files::write_atomically,
    },
};

/// `run.json`: per cell its run id, Kubernetes version and image, API requests and retries,
/// what was left behind; what each floating version resolved to, how each operator was
/// rendered, and what changed since the previous run.
pub fn run_file(reports: &[CellReport], ledger: &Ledger, rendered: &[&Rendered], changed: &[String]) -> Value {
    json!({
        "cells": reports.iter().map(|c| json!({
            "run": c.report.run_id,
            "kubernetesVersion": c.cell.version,
            "image": c.cell.image,
            "kubernetes": c.server_version,
            "requests": c.requests,
            "leftBehind": c.left_behind().collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "versions": ledger,
        "rendered": rendered.iter().map(|r| (r.operator.clone(), json!({
            "version": r.version, "floating": r.floating, "cache": r.cache_label(),
            "listingCached": r.listing_cached, "file": r.file,
        }))).collect::<serde_json::Map<_, _>>(),
        "changed": changed,
    })
}

/// Writes `run.json` and the JUnit file, each whole or not at all.
pub fn write(
    artifacts: &Path,
    junit_path: &Path,
    suite_name: &str,
    reports: &[CellReport],
    properties: &[(String, String)],
    run_file: &Value,
) -> Result<(), Error> {
    write_atomically(&artifacts.join("run.json"), run_file.to_string().as_bytes())
        .map_err(|e| Error::Infrastructure(format!("writing run.json: {e}")))?;
    let xml = junit::junit(suite_name, reports, properties)
        .to_string()
        .map_err(|e| Error::Infrastructure(format!("rendering JUnit: {e}")))?;
    write_atomically(junit_path, xml.as_bytes())
        .map_err(|e| Error::Infrastructure(format!("writing {}: {e}", junit_path.display())))
}

/// The exit code of a run: interrupted, then a cell without its cluster, then a failed
/// case, then something left on the cluster.
pub fn exit_code(reports: &[CellReport], interrupted: bool, flaky: FlakyPolicy) -> i32 {
    if interrupted || reports.iter().any(|c| c.report.interrupted) {
        return EXIT_INTERRUPTED;
    }
    if reports.iter().any(|c| c.infrastructure_failed) {
        return EXIT_INFRASTRUCTURE;
    }
    let failed = reports
        .iter()
        .flat_map(|c| &c.report.results)
        .any(|r| r.outcome.is_failure() || (r.outcome == Outcome::Flaky && flaky == FlakyPolicy::Fail));
    match (failed, reports.iter().any(|c| c.left_behind().next().is_some())) {
        (true, _) => EXIT_CASE_FAILED,
        (false, true) => EXIT_LEFT_BEHIND,
        (false, false) => 0,
    }
}
