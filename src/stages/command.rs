//! `command` stages: any shell command with declared deps, code and outs.
//!
//! The command runs under `sh -c` in the workspace root, with placeholders replaced by absolute,
//! shell-quoted paths. Its thread count is fixed through `OMP_NUM_THREADS`, `MKL_NUM_THREADS`,
//! `OPENBLAS_NUM_THREADS` and `RAYON_NUM_THREADS`; its GPUs through `CUDA_VISIBLE_DEVICES` (left
//! as Slurm set it for a Slurm job with GPUs).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use crate::dsl::template::{render, shell_quote};
use crate::dsl::{Stage, coord_text};
use crate::exec::task::TaskFile;

/// Fills the command template of `stage` for one attempt.
pub fn render_command(
    stage: &Stage,
    workspace: &Path,
    inputs: &BTreeMap<String, Vec<PathBuf>>,
    out_dir: &Path,
    threads: u32,
) -> String {
    let cmd = stage.cmd.as_deref().unwrap_or_default();
    render(cmd, |p| match p.split_once('.') {
        Some(("deps", n)) => inputs
            .get(n)
            .map(|paths| {
                paths
                    .iter()
                    .map(|p| shell_quote(&p.to_string_lossy()))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default(),
        Some(("outs", n)) => stage
            .outs
            .get(n)
            .map(|rel| shell_quote(&out_dir.join(rel).to_string_lossy()))
            .unwrap_or_default(),
        Some(("params", n)) => stage
            .params
            .get(n)
            .map(|v| shell_quote(&coord_text(v)))
            .unwrap_or_default(),
        _ => match p {
            "seed" => stage.seed.to_string(),
            "threads" => threads.to_string(),
            "workspace" => shell_quote(&workspace.to_string_lossy()),
            _ => String::new(),
        },
    })
}

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
    crate::exec::die_with_parent(&mut c);
    c.status()
}
