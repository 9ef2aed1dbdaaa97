//! Jupyter notebooks as cases: the `.ipynb` file read (nbformat 4, JSON), its kernel, whether
//! it has papermill's `parameters` cell; and the same reader for the notebook papermill wrote,
//! whose cells carry their outputs and papermill's status.

use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::{
    suite::notebooks::Judge,
    util::error::{Error, Result},
};

/// papermill's tag of the cell it puts parameters after (or replaces, when injected).
pub const PARAMETERS_TAG: &str = "parameters";
/// Cells papermill adds: its injected parameters, and the error banner on a failure.
const PAPERMILL_TAGS: &[&str] = &["injected-parameters", "papermill-error-cell-tag"];

/// What a notebook case runs.
#[derive(Debug, Clone)]
pub struct NotebookCase {
    /// papermill's `-k`: the suite's `notebooks.kernel`, else the notebook's own kernelspec.
    pub kernel: Option<String>,
    /// The overrides' `parameters:`, given as papermill parameters.
    pub parameters: Map<String, Value>,
    pub judge: Judge,
    /// The images kubevet built for the run, by repository (the notebook's `KUBEVET_IMAGES`):
    /// its code names them, and code is not rewritten as manifests are.
    pub images: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
pub struct Notebook {
    pub nbformat: u64,
    #[serde(default)]
    pub metadata: Value,
    pub cells: Vec<Cell>,
}

#[derive(Debug, Deserialize)]
pub struct Cell {
    pub cell_type: String,
    /// A string or a list of lines, as nbformat allows.
    #[serde(default)]
    source: Value,
    #[serde(default)]
    pub metadata: Value,
    #[serde(default)]
    pub outputs: Vec<Value>,
    #[serde(default)]
    pub execution_count: Option<u64>,
}

impl Cell {
    pub fn source(&self) -> String {
        joined(&self.source)
    }

    pub fn tags(&self) -> impl Iterator<Item = &str> {
        self.metadata["tags"].as_array().into_iter().flatten().filter_map(Value::as_str)
    }

    /// Added by papermill, not the notebook's own.
    pub fn is_papermill_s(&self) -> bool {
        self.tags().any(|t| PAPERMILL_TAGS.contains(&t))
    }

    /// papermill's `status` of the cell: pending, running, completed, failed.
    pub fn status(&self) -> Option<&str> {
        self.metadata.pointer("/papermill/status").and_then(Value::as_str)
    }

    /// The first line of its source that is not blank, for a reason.
    pub fn first_line(&self) -> String {
        self.source().lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("").to_string()
    }
}

/// nbformat's multiline string: one string, or a list of lines that keep their newlines.
pub fn joined(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(lines) => lines.iter().filter_map(Value::as_str).collect(),
        _ => String::new(),
    }
}

impl Notebook {
    /// The kernel its metadata names.
    pub fn kernel(&self) -> Option<&str> {
        self.metadata.pointer("/kernelspec/name").and_then(Value::as_str)
    }

    pub fn has_parameters_cell(&self) -> bool {
        self.cells.iter().any(|c| c.cell_type == "code" && c.tags().any(|t| t == PARAMETERS_TAG))
    }

    /// The notebook's own cells with their 1-based numbers in the file as written (papermill's
    /// additions not counted): the numbers a person sees in Jupyter.
    pub fn own_cells(&self) -> impl Iterator<Item = (usize, &Cell)> {
        self.cells.iter().filter(|c| !c.is_papermill_s()).enumerate().map(|(i, c)| (i + 1, c))
    }
}

/// Reads a notebook file: JSON in nbformat 4; an error at its line and column otherwise.
pub fn read(path: &Path) -> Result<Notebook> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::usage_because(format!("cannot read notebook {}", path.display()), e))?;
    parse(path, &text)
}

pub fn parse(path: &Path, text: &str) -> Result<Notebook> {
    let notebook: Notebook = serde_json::from_str(text).map_err(|e| {
        Error::input(path, e.line() as u64, e.column() as u64, format!("not a Jupyter notebook (nbformat JSON): {e}"))
            .with_hint("save it from Jupyter, or check it with `jupyter nbconvert --to notebook`")
    })?;
    if notebook.nbformat != 4 {
        return Err(Error::input(
            path,
            1,
            1,
            format!("nbformat {} is not supported; kubevet reads nbformat 4", notebook.nbformat),
        )
        .with_hint("upgrade it with `jupyter nbconvert --to notebook --nbformat 4`"));
    }
    Ok(notebook)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_numbered_as_written_and_papermills_own_are_left_out() {
        let text = r#"{"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {"name": "python3"}},
          "cells": [
            {"cell_type": "markdown", "metadata": {"tags": ["papermill-error-cell-tag"]}, "source": "error"},
            {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": ["epochs = 1\n", "lr = 0.1"], "outputs": []},
            {"cell_type": "code", "metadata": {"tags": ["injected-parameters"]}, "source": "epochs = 2", "outputs": []},
            {"cell_type": "code", "metadata": {}, "source": "\n  raise ValueError('x')\n", "outputs": []}]}"#;
        let nb = parse(Path::new("n.ipynb"), text).expect("a notebook");
        assert_eq!(nb.kernel(), Some("python3"));
        assert!(nb.has_parameters_cell());
        let own: Vec<(usize, String)> = nb.own_cells().map(|(n, c)| (n, c.first_line())).collect();
        assert_eq!(own, [(1, "epochs = 1".to_string()), (2, "raise ValueError('x')".to_string())]);
    }

    #[test]
    fn a_broken_notebook_is_an_error_at_its_position() {
        let err = parse(Path::new("n.ipynb"), "{\n  \"nbformat\": 4,\n  \"cells\": [}\n").expect_err("broken");
        assert!(matches!(err, Error::Input { line: 3, .. }), "{err:?}");
        let old = parse(Path::new("n.ipynb"), r#"{"nbformat": 3, "cells": []}"#).expect_err("old");
        assert!(old.to_string().contains("nbformat 3 is not supported"), "{old}");
    }
}
