//! kubevet proves that the examples and operators of a Kubernetes project still work.
//!
//! The flow, one module per stage, each using only the stages before it:
//! [`suite`] (the suite file) → [`plan`] (cases from the examples) → [`cluster`] (getting a
//! cluster, every request to it, waiting and collecting) → [`outcome`] (what became of each
//! case) → [`images`] and [`operators`] (built, rendered, installed) → [`run`] (each case:
//! apply, wait, collect, clean up) → [`report`] (JUnit, `run.json`, CTRF, summary) →
//! [`history`] (the run history, health, the HTML report) → [`matrix`] (a CI matrix of shards
//! planned from the history) → [`session`] (one `kubevet run`
//! across the matrix) → [`sweep`] (runs on a schedule). [`lint`] is the tier without a cluster, beside the
//! flow; [`util`] holds the small helpers every stage may use.

pub mod cluster;
pub mod history;
pub mod images;
pub mod lint;
pub mod matrix;
pub mod operators;
pub mod outcome;
pub mod plan;
pub mod report;
pub mod run;
pub mod session;
pub mod suite;
pub mod sweep;
pub mod util;
