//! Notebooks among the linted files: read as `run` reads them (JSON, nbformat 4), and a
//! `parameters` cell where the suite gives the notebook parameters. The YAML and shell
//! snippets inside cells are the notebook's own text: left as they are.

use std::path::Path;

use serde_json::{Map, Value};

use super::finding::{Finding, Severity};
use crate::{plan::notebook, util::error::Error};

pub fn is_notebook(path: &Path) -> bool {
    path.extension().is_some_and(|x| x == "ipynb")
}

/// `given`: the parameters the suite's overrides give this file, and where.
pub fn check(path: &Path, text: &str, given: Option<(&Map<String, Value>, &str)>) -> Vec<Finding> {
    let at = |rule, severity, message: String, line: u64, column: u64| {
        let mut f = Finding::new(rule, severity, "", message);
        (f.line, f.column) = (line as usize, column as usize);
        f
    };
    let nb = match notebook::parse(path, text) {
        Ok(nb) => nb,
        Err(Error::Input { line, column, message, hint, .. }) => {
            let message = hint.map(|h| format!("{message} (help: {h})")).unwrap_or(message);
            return vec![at("notebook", Severity::Error, message, line, column)];
        }
        Err(other) => return vec![at("notebook", Severity::Error, other.to_string(), 1, 1)],
    };
    match given {
        Some((parameters, from)) if !parameters.is_empty() && !nb.has_parameters_cell() => {
            let names: Vec<&str> = parameters.keys().map(String::as_str).collect();
            vec![at(
                "notebook-parameters",
                Severity::Warning,
                format!(
                    "{from} gives this notebook parameters ({}), but no cell is tagged `parameters`: papermill puts them in a cell of their own at the top, before the notebook's own values, which may then overwrite them; tag the cell that sets their defaults `parameters`",
                    names.join(", ")
                ),
                1,
                1,
            )]
        }
        _ => Vec::new(),
    }
}
