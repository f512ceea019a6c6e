//! Library errors, each knowing its exit code: 2 for bad usage or input (nothing was changed), 1 for failures at
//! run time. Messages say which side, which resource, and what to do.

use crate::plan::PlanError;
use crate::state::StateError;

pub const EXIT_RUNTIME: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    State(#[from] StateError),
    /// Bad input found before anything was created.
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Ssh(#[from] crate::ssh::SshError),
    #[error(transparent)]
    Configure(#[from] crate::configure::ConfigureError),
    /// verify ran, and at least one check failed; the report has already been printed.
    #[error("{failed} of {total} checks failed")]
    ChecksFailed { failed: usize, total: usize },
    #[error("{0}")]
    Runtime(String),
    /// An AWS call failed at run time (what was done so far is in the state; re-running resumes).
    #[error(transparent)]
    Aws(#[from] crate::aws::AwsError),
    #[error(transparent)]
    Discover(#[from] crate::discover::DiscoverError),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Plan(_) | Error::Input(_) => EXIT_USAGE,
            Error::Discover(crate::discover::DiscoverError::Aws(_)) | Error::Aws(_) => EXIT_RUNTIME,
            Error::Discover(_) => EXIT_USAGE,
            Error::State(StateError::Missing { .. }) => EXIT_USAGE,
            Error::State(_) => EXIT_RUNTIME,
            Error::Ssh(_)
            | Error::Configure(_)
            | Error::ChecksFailed { .. }
            | Error::Runtime(_) => EXIT_RUNTIME,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
