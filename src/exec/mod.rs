//! Running stages: the dispatcher (the only index owner), the local executor's worker processes,
//! the Slurm executor's jobs, resources and progress. The worker side is `crate::worker`, the
//! files between the two `crate::task`; stage kinds' own logic lives in `stages`, which this
//! module never calls.

mod dispatcher;
pub mod executor;
pub mod local;
pub mod manifest;
pub mod progress;
pub mod resources;
pub mod routed;
pub mod slurm;

pub use dispatcher::{RunOptions, RunOutcome, StageOutcome, install_interrupt_handler, run};

use std::path::PathBuf;

/// Why a run could not be carried out (a stage that fails is an outcome, not an error).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The request cannot be run here (no Slurm tools, a bad Slurm setting); nothing started.
    #[error("{0}")]
    Usage(String),
    #[error("i/o error on `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The executor or the dispatcher broke (a worker that cannot start, a lost channel).
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Fingerprint(#[from] crate::fingerprint::FingerprintError),
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),
}

impl ExecError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ExecError::Io {
            path: path.into(),
            source,
        }
    }
}
