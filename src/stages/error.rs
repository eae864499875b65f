//! Why a built-in stage failed: the error every stage kind returns to the worker, which writes
//! its message (one line) into the result file.
//!
//! Errors of the layers below (a cohort's, a model's, a report's) are carried as their message
//! with its cause, not as their types: this file is in every stage kind's code identity, and
//! naming `crate::model::ModelError` here would put all of `model/` (and through the report's
//! error all of `report/`) into the key of every `command` and `evaluate` stage, so editing
//! the model would recompute stages that never touch it.

use std::path::{Path, PathBuf};

use crate::kinds::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The task's config does not parse as the kind's (it was validated when the experiment was
    /// loaded, so this is a task file from another version or edited by hand).
    #[error("config {}: {}", .0.path.join("."), .0.message)]
    Config(ConfigError),
    /// A dependency is missing or has the wrong shape (one path where several were given).
    #[error("{0}")]
    Dependency(String),
    /// A file could not be read or written.
    #[error("cannot {action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// An input's content is not what the stage needs; the message names the file (and line).
    #[error("{0}")]
    Input(String),
    /// A cohort folder that cannot be read or written (`crate::cohort::CohortError`).
    #[error("{0}")]
    Cohort(String),
    /// A model that cannot be trained, loaded or run (`crate::model::ModelError`).
    #[error("{0}")]
    Model(String),
    /// A report that cannot be rendered (`crate::report::ReportError`).
    #[error("{0}")]
    Report(String),
}

impl StageError {
    /// A cohort error, with its cause.
    pub fn cohort(e: impl std::error::Error) -> StageError {
        StageError::Cohort(one_line(&e))
    }

    /// A model error, with its cause.
    pub fn model(e: impl std::error::Error) -> StageError {
        StageError::Model(one_line(&e))
    }

    /// A report error, with its cause.
    pub fn report(e: impl std::error::Error) -> StageError {
        StageError::Report(one_line(&e))
    }

    pub fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StageError {
        let path = path.to_path_buf();
        move |source| StageError::Io {
            action,
            path,
            source,
        }
    }
}

/// An error's message followed by each of its causes, `: `-separated: a result file holds one
/// line, no chain.
pub fn one_line(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}
