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
    /// Connecting to a side failed: an unknown profile, no region, or STS refused the credentials.
    #[error(transparent)]
    Connect(#[from] crate::aws::ConnectError),
    /// Both sides failed (each side's error, east first): reported together so one run says everything.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Several(Vec<Error>),
    /// Preflight found problems; nothing was created.
    #[error("preflight found {} problem(s); nothing was created:\n  - {}", .0.len(), .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n  - "))]
    Preflight(Vec<Problem>),
    /// A `VPCLINK_*` setting with a bad value, refused at start-up.
    #[error(transparent)]
    Setting(#[from] crate::settings::SettingError),
}

/// One problem preflight found, typed: an AWS read or probe that failed keeps its code, so the exit code can tell
/// "fix this" from "try again".
#[derive(Debug, Clone, thiserror::Error)]
pub enum Problem {
    #[error(transparent)]
    Aws(#[from] crate::aws::AwsError),
    #[error("{0}")]
    Input(String),
}

impl From<String> for Problem {
    fn from(s: String) -> Self {
        Problem::Input(s)
    }
}

impl Problem {
    /// A read that failed for now (throttling, 5xx, no answer): running again may pass.
    pub fn is_transient(&self) -> bool {
        matches!(self, Problem::Aws(e) if e.is_transient())
    }
}

impl Error {
    /// Both sides' results of one step: Ok when both are, else every error (east first).
    pub fn both<A, B>(east: Result<A>, west: Result<B>) -> Result<(A, B)> {
        match (east, west) {
            (Ok(a), Ok(b)) => Ok((a, b)),
            (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
            (Err(e), Err(w)) => Err(Error::Several(vec![e, w])),
        }
    }

    /// Preflight's verdict: None when there is no problem.
    pub fn preflight(problems: Vec<Problem>) -> Option<Error> {
        (!problems.is_empty()).then_some(Error::Preflight(problems))
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Plan(_) | Error::Input(_) | Error::Setting(_) => EXIT_USAGE,
            // Before anything is created: what the user must fix (input, permission, credentials) is 2, an AWS
            // read that failed for now (throttling, 5xx, no answer) or for another reason is 1.
            Error::Connect(e) if e.is_usage() => EXIT_USAGE,
            Error::Connect(_) => EXIT_RUNTIME,
            Error::Discover(crate::discover::DiscoverError::Aws(e)) if e.needs_user_fix() => {
                EXIT_USAGE
            }
            Error::Discover(crate::discover::DiscoverError::Aws(_)) => EXIT_RUNTIME,
            Error::Discover(_) => EXIT_USAGE,
            // Problems found before anything was created are input, unless all of them are reads that failed for
            // now: then the fix is to try again.
            Error::Preflight(p) if !p.is_empty() && p.iter().all(Problem::is_transient) => {
                EXIT_RUNTIME
            }
            Error::Preflight(_) => EXIT_USAGE,
            // Both sides failed: if either needs fixing, say so (2); else run time.
            Error::Several(errors) => errors
                .iter()
                .map(Error::exit_code)
                .max()
                .unwrap_or(EXIT_RUNTIME),
            // After creating (provisioning, teardown, status reads): every AWS failure is run time; re-running resumes.
            Error::Aws(_) => EXIT_RUNTIME,
            // A state that is missing, unreadable as a state, or hand-edited into nonsense: input to fix.
            Error::State(
                StateError::Missing { .. }
                | StateError::Parse { .. }
                | StateError::Schema { .. }
                | StateError::Invalid { .. }
                | StateError::NoHome,
            ) => EXIT_USAGE,
            Error::State(StateError::Read { .. } | StateError::Write { .. }) => EXIT_RUNTIME,
            Error::Ssh(_)
            | Error::Configure(_)
            | Error::ChecksFailed { .. }
            | Error::Runtime(_) => EXIT_RUNTIME,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
