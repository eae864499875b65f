//! What the index keeps about one committed stage.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One output of a committed stage.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutRecord {
    /// Path inside the stage's output directory.
    pub path: String,
    /// SHA-256 (file) or Merkle digest (directory).
    pub digest: String,
}

/// Everything known about one committed stage execution. Stored under its key; written only
/// after its object is in place, so a record always describes a complete object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageRecord {
    pub key: String,
    /// The canonical key JSON: `plan --explain` diffs it against the new one.
    pub key_json: serde_json::Value,
    pub experiment: String,
    pub stage: String,
    pub kind: String,
    /// Merkle digest of the stage's output directory (the object's name).
    pub object: String,
    pub outs: BTreeMap<String, OutRecord>,
    /// RFC 3339 UTC.
    pub started_at: String,
    pub duration_ms: u64,
    pub attempts: u32,
    pub host: String,
    pub threads: u32,
    /// Devices the task was pinned to (`CUDA_VISIBLE_DEVICES`), empty for CPU tasks.
    pub devices: Vec<String>,
    /// The command as run (command stages).
    pub command: Option<String>,
    /// Tail of the task's standard output and error.
    pub stdout: String,
    pub stderr: String,
    /// Stage-specific numbers (a training stage's losses, an evaluation's AUCs).
    #[serde(default)]
    pub metrics: serde_json::Value,
}
