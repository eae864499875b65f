//! The dispatcher/worker boundary: the two files that cross it, and the rule for the processes
//! on its far side. A worker (a local process or a Slurm job on another node) reads a task file
//! and writes a result file; it never opens the index. Below both the dispatcher (`crate::exec`)
//! and the stage code (`crate::stages`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::kinds::{Backend, StageKind};

pub const TASK_FORMAT: u32 = 1;

/// Everything a worker needs to run one stage attempt, with every path absolute. Written by the
/// dispatcher, read by the worker; unknown fields are refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskFile {
    pub format: u32,
    pub stage: String,
    pub kind: StageKind,
    pub workspace: PathBuf,
    /// The attempt's scratch folder inside the store; the result and logs go here.
    pub scratch: PathBuf,
    /// Where outputs are written (`scratch/out`); it becomes the stored object.
    pub out_dir: PathBuf,
    /// Output name → path relative to `out_dir`.
    pub outs: BTreeMap<String, String>,
    /// The rendered shell command (`command` stages).
    pub command: Option<String>,
    /// Built-in kinds' typed config.
    pub config: Value,
    /// Dependency name → resolved input paths (one, or several when gathered).
    pub inputs: BTreeMap<String, Vec<PathBuf>>,
    pub seed: u64,
    pub threads: u32,
    /// Devices to expose through `CUDA_VISIBLE_DEVICES`; empty hides every GPU.
    pub devices: Vec<String>,
    /// Whether the worker sets `CUDA_VISIBLE_DEVICES` to `devices`. False for a Slurm job with
    /// GPUs: Slurm chose them and set the variable for the job.
    #[serde(default = "pin_devices_default")]
    pub pin_devices: bool,
    /// Tensor backend for built-in training stages.
    #[serde(default)]
    pub backend: Backend,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Ok,
    Failed,
}

/// What a worker reports. The dispatcher re-verifies the digests before committing; unknown
/// fields are refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultFile {
    pub status: TaskStatus,
    /// Why the attempt failed, in one line.
    pub message: Option<String>,
    pub exit_code: Option<i32>,
    /// Merkle digest of `out_dir`.
    pub object: Option<String>,
    /// Output name → digest.
    pub outs: BTreeMap<String, String>,
    pub duration_ms: u64,
    pub host: String,
    #[serde(default)]
    pub metrics: Value,
}

fn pin_devices_default() -> bool {
    true
}

impl TaskFile {
    /// Reads a task file, refusing another format (a worker binary of another version).
    pub fn read(path: &Path) -> Result<TaskFile, String> {
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        let task: TaskFile = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        if task.format != TASK_FORMAT {
            return Err(format!(
                "task format {} is not this worker's ({TASK_FORMAT}): the dispatcher and the \
                 worker are different orchestrate versions",
                task.format
            ));
        }
        Ok(task)
    }

    pub fn result_path(&self) -> PathBuf {
        self.scratch.join("result.json")
    }
}

/// This machine's host name (what records and results say ran where).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

pub fn stdout_path(scratch: &Path) -> PathBuf {
    scratch.join("stdout.log")
}

pub fn stderr_path(scratch: &Path) -> PathBuf {
    scratch.join("stderr.log")
}

/// The worker's exit status when it could not write its result because the filesystem of the
/// scratch folder is full: its log cannot be written either, so the status is the message.
pub const EXIT_DISK_FULL: i32 = 75;

/// Writes JSON through a temporary file and a rename, so a reader never sees half a file.
pub fn write_json_atomic(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Makes a child die when its parent dies (Linux `PR_SET_PDEATHSIG`), so that a killed
/// dispatcher or worker leaves no orphan writing into a scratch folder.
pub fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}
