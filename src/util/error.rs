//! The errors that end a kubevet command, each with its own exit code. A failed case is not an
//! error: it is a result, reported with the others.

use std::path::{Path, PathBuf};

pub const EXIT_CASE_FAILED: i32 = 1;
pub const EXIT_BAD_INPUT: i32 = 2;
pub const EXIT_INFRASTRUCTURE: i32 = 3;
/// Every case passed, but kubevet could not delete something it made (listed in the summary).
pub const EXIT_LEFT_BEHIND: i32 = 4;
/// The run history's database could not be read or written (its file, SQLite).
pub const EXIT_HISTORY: i32 = 5;
pub const EXIT_INTERRUPTED: i32 = 130;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Something in the user's files is wrong: says where and what to do.
    #[error("{}:{line}:{column}: {message}{}", path.display(), hint.as_ref().map(|h| format!("\n  help: {h}")).unwrap_or_default())]
    Input { path: PathBuf, line: u64, column: u64, message: String, hint: Option<String> },
    /// A bad command line or a missing file that has no position.
    #[error("{0}")]
    Usage(String),
    /// The cluster or the machine failed kubevet, not the user's examples.
    #[error("infrastructure: {0}")]
    Infrastructure(String),
    /// The run history's database failed: its file and the cause, kept as the source.
    #[error("history {}: {source}", path.display())]
    History {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    pub fn input(path: &Path, line: u64, column: u64, message: impl Into<String>) -> Self {
        Error::Input { path: path.to_path_buf(), line, column, message: message.into(), hint: None }
    }

    pub fn with_hint(self, hint: impl Into<String>) -> Self {
        match self {
            Error::Input { path, line, column, message, .. } => {
                Error::Input { path, line, column, message, hint: Some(hint.into()) }
            }
            other => other,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
