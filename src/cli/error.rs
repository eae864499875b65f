//! The error every command returns, and the exit code (`crate::exit`) each maps to.
//!
//! Every module has its own `thiserror` enum; this one wraps them and knows which exit code each
//! maps to. Nothing here formats for the terminal: `cli` prints `error: …` and `caused by: …`.

use std::path::PathBuf;

use crate::exit;

/// Any failure that reaches the command line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Experiment(#[from] crate::dsl::DslError),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Fingerprint(#[from] crate::fingerprint::FingerprintError),
    #[error("{failed} of {total} stage(s) failed")]
    StagesFailed { failed: usize, total: usize },
    #[error(
        "the recomputation differs from {reference}: {different} item(s) different{}",
        root_cause.as_ref().map_or(String::new(), |r| format!(", root cause `{r}`"))
    )]
    NotReproduced {
        different: usize,
        reference: String,
        root_cause: Option<String>,
    },
    #[error(transparent)]
    Verify(#[from] crate::verify::VerifyError),
    #[error("interrupted: running stages were killed and nothing partial was committed")]
    Interrupted,
    #[error("i/o error on `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Stats(#[from] super::stats_cmd::StatsCmdError),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Experiment(_) | Error::Usage(_) | Error::Stats(_) => exit::USAGE,
            Error::Store(crate::store::StoreError::Claimed { .. }) => exit::STORE_BUSY,
            Error::Fingerprint(crate::fingerprint::FingerprintError::Missing { .. }) => exit::USAGE,
            Error::StagesFailed { .. } => exit::STAGE_FAILED,
            Error::NotReproduced { .. } => exit::NOT_REPRODUCED,
            Error::Verify(crate::verify::VerifyError::BadLock { .. })
            | Error::Verify(crate::verify::VerifyError::BadBundle { .. })
            | Error::Verify(crate::verify::VerifyError::BadArchive { .. }) => exit::USAGE,
            Error::Verify(crate::verify::VerifyError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                exit::USAGE
            }
            Error::Interrupted => exit::INTERRUPTED,
            Error::Store(_)
            | Error::Fingerprint(_)
            | Error::Io { .. }
            | Error::Internal(_)
            | Error::Verify(_) => exit::INTERNAL,
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<crate::report::ReportError> for Error {
    fn from(e: crate::report::ReportError) -> Error {
        match e {
            crate::report::ReportError::NoRun(_)
            | crate::report::ReportError::Usage(_)
            | crate::report::ReportError::Template(_) => Error::Usage(e.to_string()),
            crate::report::ReportError::Input { .. } => Error::Usage(e.to_string()),
            crate::report::ReportError::Io { path, source } => Error::Io { path, source },
            crate::report::ReportError::Internal(m) => Error::Internal(m),
        }
    }
}

impl From<crate::plan::PlanError> for Error {
    fn from(e: crate::plan::PlanError) -> Error {
        match e {
            crate::plan::PlanError::Fingerprint(e) => Error::Fingerprint(e),
            crate::plan::PlanError::Store(e) => Error::Store(e),
        }
    }
}

impl From<crate::exec::ExecError> for Error {
    fn from(e: crate::exec::ExecError) -> Error {
        use crate::exec::ExecError as E;
        match e {
            E::Usage(m) => Error::Usage(m),
            E::Io { path, source } => Error::Io { path, source },
            E::Internal(m) => Error::Internal(m),
            E::Store(e) => Error::Store(e),
            E::Fingerprint(e) => Error::Fingerprint(e),
            E::Plan(e) => e.into(),
        }
    }
}
