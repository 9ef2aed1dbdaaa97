//! kubevet proves that the examples and operators of a Kubernetes project still work.
//!
//! The flow, one module per stage: [`suite`] (the suite file) → [`plan`] (cases from the
//! examples) → [`session`] (the matrix: for each cell, [`provision`] a cluster, [`install`] the
//! operators [`render`]ed once, [`run`] each case: apply, wait, collect, clean up) →
//! [`report`] (JUnit, result files, summary). [`kubernetes`] holds all cluster access,
//! [`command`] every external program. [`lint`] is the tier without a cluster.

pub mod assertions;
pub mod command;
pub mod duration;
pub mod error;
pub mod images;
pub mod install;
pub mod kubernetes;
pub mod lint;
pub mod plan;
pub mod profile;
pub mod provision;
pub mod render;
pub mod report;
pub mod run;
pub mod session;
pub mod suite;
pub mod versions;
pub mod yaml;
