//! Clusters: getting one ([`provision`]: kind, a control plane in a container, an existing
//! kubeconfig) and every request kubevet sends to one ([`client`]), plus the two things both
//! the installer and the runner do with a cluster: [`wait`] for workloads to reach a verdict
//! by watching them, and [`collect`] the evidence of a namespace.
//!
//! May use: `suite` (settings, profiles) and `util`.

pub mod clean;
pub mod client;
pub mod collect;
mod container;
pub mod kfp;
pub mod manage;
pub mod provision;
pub mod retry;
pub mod wait;

pub use client::{
    ApiError, Applied, Cluster, Kind, LABEL_CASE, LABEL_RUN, NamespaceNotDeleted, NamespaceTracker, describe,
    label_value,
};
