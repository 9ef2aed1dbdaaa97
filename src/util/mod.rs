//! Small helpers every stage may use, and that use no other part of kubevet: errors and exit
//! codes, durations, YAML reading with positions, external commands, files and ids.

pub mod cel;
pub mod command;
pub mod duration;
pub mod error;
pub mod exposition;
pub mod files;
pub mod github;
pub mod http;
pub mod ids;
pub mod interrupt;
pub mod promql;
pub mod run_file;
pub mod units;
pub mod yaml;

/// Runs a command's async work to completion on a runtime of its own.
pub fn block_on<F: std::future::Future>(work: F) -> error::Result<F::Output> {
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| error::Error::infrastructure_because("cannot start the async runtime", e))?;
    Ok(runtime.block_on(work))
}
