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
    /// A bad command line or a missing file that has no position: what was asked, and the
    /// cause where one failed (kept typed as the source).
    #[error("{}", whole(context, source.as_deref()))]
    Usage {
        context: String,
        #[source]
        source: Option<Cause>,
    },
    /// The cluster or the machine failed kubevet, not the user's examples: what kubevet was doing,
    /// and the cause, kept typed as the source.
    #[error("infrastructure: {}", whole(context, source.as_deref()))]
    Infrastructure {
        context: String,
        #[source]
        source: Option<Cause>,
    },
    /// The run history's database failed: its file and the cause, kept as the source.
    #[error("history {}: {source}", path.display())]
    History {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The cause of an error, kept as its source so that it stays typed.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// One line: what kubevet was doing, then why it failed (either may stand alone).
fn whole(context: &str, source: Option<&(dyn std::error::Error + Send + Sync)>) -> String {
    match source {
        None => context.to_string(),
        Some(cause) if context.is_empty() => cause.to_string(),
        Some(cause) => format!("{context}: {cause}"),
    }
}

impl Error {
    /// A usage error that has no cause beyond what the user asked.
    pub fn usage(context: impl Into<String>) -> Self {
        Error::Usage { context: context.into(), source: None }
    }

    /// A usage error caused by `cause` while doing `context` (reading a file the user named…).
    pub fn usage_because(context: impl Into<String>, cause: impl Into<Cause>) -> Self {
        Error::Usage { context: context.into(), source: Some(cause.into()) }
    }

    /// A usage error whose cause says it all (it names the file or the flag).
    pub fn usage_from(cause: impl Into<Cause>) -> Self {
        Error::Usage { context: String::new(), source: Some(cause.into()) }
    }

    /// The machine or the cluster failed, and the cause says how (it names what kubevet did).
    pub fn infrastructure_from(cause: impl Into<Cause>) -> Self {
        Error::Infrastructure { context: String::new(), source: Some(cause.into()) }
    }

    /// The machine or the cluster failed while doing `context`, for no deeper cause kubevet holds.
    pub fn infrastructure(context: impl Into<String>) -> Self {
        Error::Infrastructure { context: context.into(), source: None }
    }

    /// The machine or the cluster failed while doing `context`, because of `cause`.
    pub fn infrastructure_because(context: impl Into<String>, cause: impl Into<Cause>) -> Self {
        Error::Infrastructure { context: context.into(), source: Some(cause.into()) }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_says_what_and_why_on_one_line_and_keeps_the_cause_typed() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let e = Error::infrastructure_because("writing run.json", io);
        assert_eq!(e.to_string(), "infrastructure: writing run.json: denied");
        let cause = std::error::Error::source(&e).and_then(|c| c.downcast_ref::<std::io::Error>());
        assert_eq!(cause.map(std::io::Error::kind), Some(std::io::ErrorKind::PermissionDenied));
        let bare = Error::usage_from(std::io::Error::other("no such plan"));
        assert_eq!(bare.to_string(), "no such plan");
        assert_eq!(Error::usage("the suite has no case").to_string(), "the suite has no case");
        assert!(std::error::Error::source(&Error::infrastructure("no node")).is_none());
    }
}
