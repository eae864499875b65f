//! Why a model could not be trained, loaded or run: the model layer's own error type, which the
//! stage code wraps ([`crate::stages::StageError::Model`]).

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A checkpoint file or folder could not be read, written or created.
    #[error("cannot {action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A checkpoint that this model cannot load (format, kind, roles, shapes).
    #[error("{0}")]
    Checkpoint(String),
    /// A cohort that does not fit the model or cannot train it (shapes, labels, size).
    #[error("{0}")]
    Data(String),
    /// Training that could not finish (a loss that is not finite, no epoch run).
    #[error("{0}")]
    Training(String),
    /// The tensor backend cannot be used, or failed.
    #[error("{0}")]
    Backend(String),
}

impl ModelError {
    pub fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ModelError {
        let path = path.to_path_buf();
        move |source| ModelError::Io {
            action,
            path,
            source,
        }
    }
}
