//! Content digests and code identity: what goes into a key besides the config.
//!
//! Owns SHA-256 of files (hardware-accelerated through `sha2`), Merkle digests of directories,
//! the stat-cache protocol that lets unchanged files skip re-hashing, the built-in code identity
//! of each stage kind (computed at build time), and git provenance. It never opens the index
//! itself: callers pass a [`StatCache`].

mod code_identity;
mod digest;
mod git;

pub use code_identity::{BINARY_IDENTITY, builtin_code_files, builtin_code_identity};
pub use digest::{
    FileStat, NoCache, StatCache, hash_bytes, hash_file, hash_path, hash_paths_parallel, hex,
};
pub use git::{GitProvenance, git_provenance};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum FingerprintError {
    #[error("`{path}` does not exist")]
    Missing { path: PathBuf },
    #[error("cannot read `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "`{path}` is a symbolic link or special file: outputs and inputs must be regular files or directories"
    )]
    Unsupported { path: PathBuf },
}
