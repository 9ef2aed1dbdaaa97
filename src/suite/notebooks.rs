//! The suite's `notebooks:`: how Jupyter notebook cases (`*.ipynb` files the examples' globs
//! pick) are executed, with papermill.

use serde::Deserialize;

/// What judges a notebook case (an override's `judge:`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Judge {
    /// The notebook ran to its end, and every workload it made reached success (default).
    #[default]
    Workloads,
    /// The notebook ran to its end; what it made is collected, not judged.
    Notebook,
}

#[derive(Debug, Clone, Default)]
pub struct NotebookSettings {
    /// The Jupyter kernel every notebook runs with (papermill `-k`); by default each
    /// notebook's own `kernelspec`.
    pub kernel: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct NotebooksFile {
    kernel: Option<String>,
}

impl From<&NotebooksFile> for NotebookSettings {
    fn from(file: &NotebooksFile) -> NotebookSettings {
        NotebookSettings { kernel: file.kernel.clone() }
    }
}
