//! Reproduction verification: lock files, comparison of a recomputation with a lock, root-cause
//! analysis, the verification table, and reviewer bundles.
//!
//! A *lock* ([`Lock`], `experiments/<name>.lock`) pins what one complete run of an experiment
//! produced: every stage's key (with its key JSON, so differences explain themselves), output
//! digests and scalar metrics, the data digests, the code identity of each stage kind, the
//! platform and backend, and the tolerance policy. [`verdict`] checks a recomputation (itself
//! described as a lock) against it, item by item, names the first differing stage whose inputs
//! were identical as the root cause and marks what lies downstream of it as consequences.
//! [`bundle`] packs everything a reviewer needs offline into one `.tar.gz`.
//!
//! This module reads run folders and store records through the types of [`crate::exec`] and
//! [`crate::store`]; it never opens the index itself (callers pass the records) and never writes
//! into the store.

pub mod archive;
pub mod bundle;
mod lock;
mod render;
mod verdict;

pub use lock::{
    DEFAULT_METRIC_TOLERANCES, LOCK_FORMAT, Lock, LockStage, MAX_AUC_TOLERANCE, Platform, RunParts,
    SamePlatformRule, TolerancePolicy, lock_bytes, lock_path_for, parse_lock, read_lock,
    write_lock,
};
pub use render::{render_html, render_table};
pub use verdict::{Outcome, Row, StageRole, StageVerdict, Verification, verdict};

use std::path::PathBuf;

/// What can go wrong while locking, verifying or bundling.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` is not a lock file of format {LOCK_FORMAT}: {message}")]
    BadLock { path: PathBuf, message: String },
    #[error("`{path}` is not a bundle made by `orchestrate bundle`: {message}")]
    BadBundle { path: PathBuf, message: String },
    #[error("`{path}` is not a {kind} archive made by orchestrate: {message}")]
    BadArchive {
        path: PathBuf,
        kind: String,
        message: String,
    },
}
