//! The operators under test: their versions resolved ([`versions`]), their manifests rendered
//! and cached ([`render`]), and installed on a cluster ([`install`]).
//!
//! May use: `cluster`, `outcome`, `images` (retagging), `suite` and `util`.

pub mod install;
pub mod render;
pub mod versions;

use crate::{
    cluster::ApiError,
    util::{command::CommandError, error::Error, files::FileError, http::HttpError},
};

/// Why an operator could not be resolved, rendered or installed: the operator's result says
/// it, as an infrastructure failure of every case that needed it.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Http(#[from] HttpError),
    /// Boxed: the API server's details make it the largest by far.
    #[error(transparent)]
    Api(Box<ApiError>),
    /// A manifest (rendered, or from `helm get manifest`) that does not read as YAML.
    #[error("{what}: {source}")]
    Manifest {
        what: &'static str,
        #[source]
        source: Error,
    },
    /// A catalog answered, but not with a listing (an HTTP status, another format, no such chart).
    #[error("{url}: {problem}")]
    Listing { url: String, problem: String },
    #[error("listing versions of {catalog}: {source}")]
    ListingFailed {
        catalog: String,
        #[source]
        source: Box<OperatorError>,
    },
    /// The catalog lists no version the constraint allows.
    #[error("{catalog}: {source}")]
    NoVersion {
        catalog: String,
        #[source]
        source: versions::NoMatch,
    },
    /// Applied, but not ready: the waiter's verdict (failed, stuck, timed out, interrupted).
    #[error("{0}")]
    NotReady(String),
}

impl From<ApiError> for OperatorError {
    fn from(e: ApiError) -> Self {
        OperatorError::Api(Box::new(e))
    }
}
