//! `command` stages: any shell command with declared deps, code and outs.
//!
//! The command runs under `sh -c` in the workspace root, with placeholders replaced by absolute,
//! shell-quoted paths. Its thread count is fixed through `OMP_NUM_THREADS`, `MKL_NUM_THREADS`,
//! `OPENBLAS_NUM_THREADS` and `RAYON_NUM_THREADS`; its GPUs through `CUDA_VISIBLE_DEVICES` (left
//! as Slurm set it for a Slurm job with GPUs).

use std::fs::File;
use std::process::{Command, ExitStatus, Stdio};

use crate::task::TaskFile;

/// Runs the task's command to completion with its output going to the given log files.
pub fn execute(task: &TaskFile, stdout: File, stderr: File) -> std::io::Result<ExitStatus> {
    let cmd = task.command.as_deref().unwrap_or_default();
    let threads = task.threads.to_string();
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(cmd)
        .current_dir(&task.workspace)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .env("OMP_NUM_THREADS", &threads)
        .env("MKL_NUM_THREADS", &threads)
        .env("OPENBLAS_NUM_THREADS", &threads)
        .env("RAYON_NUM_THREADS", &threads)
        .env("ORCHESTRATE_STAGE", &task.stage)
        .env("ORCHESTRATE_SEED", task.seed.to_string())
        .env("ORCHESTRATE_OUT_DIR", &task.out_dir);
    if task.pin_devices {
        c.env("CUDA_VISIBLE_DEVICES", task.devices.join(","));
    }
    crate::task::die_with_parent(&mut c);
    c.status()
}
