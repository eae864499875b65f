//! The worker side: run one task file, write its result file. This is what
//! `orchestrate worker --task FILE` does, locally or inside a Slurm job.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use crate::fingerprint::{self, NoCache};
use crate::kinds::StageKind;

use crate::task::{ResultFile, TaskFile, TaskStatus, stderr_path, stdout_path, write_json_atomic};

/// The worker's command line, `orchestrate worker --task FILE`, recognized before the CLI
/// parses anything (executors and Slurm jobs use exactly this form): `Some(exit code)` when
/// `args` (with the program name first) is a worker invocation, `None` otherwise.
pub fn main_if_worker(args: &[std::ffi::OsString]) -> Option<i32> {
    match args {
        [_, w, ..] if w != "worker" => None,
        [_, _, t, file] if t == "--task" => Some(run(Path::new(file))),
        [_, _, ..] => {
            eprintln!("usage: orchestrate worker --task FILE (run by executors, not by hand)");
            Some(crate::exit::USAGE)
        }
        _ => None,
    }
}

/// Runs the task at `task_path`; returns the process exit code (0 ok, 3 the stage failed,
/// 1 the task file itself could not be read or the result not written,
/// [`EXIT_DISK_FULL`](crate::task::EXIT_DISK_FULL) the result not written for lack of space).
pub fn run(task_path: &Path) -> i32 {
    let task = match TaskFile::read(task_path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "error: cannot read task file `{}`: {e}",
                task_path.display()
            );
            return crate::exit::INTERNAL;
        }
    };
    let result = execute(&task);
    if let Err(e) = write_json_atomic(&task.result_path(), &result) {
        // stderr is the worker's log, in the same scratch folder: on a full disk this line is
        // lost too (and must not panic), so the exit status carries the cause.
        let _ = writeln!(
            std::io::stderr(),
            "error: cannot write `{}`: {e}",
            task.result_path().display()
        );
        if e.kind() == std::io::ErrorKind::StorageFull {
            return crate::task::EXIT_DISK_FULL;
        }
        return crate::exit::INTERNAL;
    }
    match result.status {
        TaskStatus::Ok => crate::exit::OK,
        TaskStatus::Failed => crate::exit::STAGE_FAILED,
    }
}

fn execute(task: &TaskFile) -> ResultFile {
    let start = Instant::now();
    let mut result = ResultFile {
        status: TaskStatus::Failed,
        message: None,
        exit_code: None,
        object: None,
        outs: BTreeMap::new(),
        duration_ms: 0,
        host: crate::task::host_name(),
        metrics: serde_json::Value::Null,
    };
    let fail = |mut r: ResultFile, msg: String| {
        r.message = Some(msg);
        r.duration_ms = start.elapsed().as_millis() as u64;
        r
    };
    if let Err(e) = prepare_out_dir(task) {
        return fail(result, format!("cannot create the output folder: {e}"));
    }
    let logs = File::create(stdout_path(&task.scratch))
        .and_then(|o| File::create(stderr_path(&task.scratch)).map(|e| (o, e)));
    let (stdout, stderr) = match logs {
        Ok(l) => l,
        Err(e) => return fail(result, format!("cannot create the log files: {e}")),
    };
    if task.kind == StageKind::Command {
        match crate::stages::command::execute(task, stdout, stderr) {
            Ok(status) => {
                result.exit_code = status.code();
                if !status.success() {
                    use std::os::unix::process::ExitStatusExt;
                    let why = match (status.code(), status.signal()) {
                        (Some(c), _) => format!("the command exited with status {c}"),
                        (None, Some(s)) => format!("the command was killed by signal {s}"),
                        _ => "the command failed".to_string(),
                    };
                    return fail(result, why);
                }
            }
            Err(e) => return fail(result, format!("cannot start `sh`: {e}")),
        }
    } else {
        // Built-in kinds run in this process with the task's fixed thread count.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(task.threads.max(1) as usize)
            .build_global();
        drop(stderr);
        let mut log = stdout;
        match crate::stages::run_builtin(task, &mut log) {
            Ok(metrics) => result.metrics = metrics,
            Err(e) => return fail(result, crate::stages::error::one_line(&e)),
        }
    }
    // Every declared output must exist; the whole output folder becomes the object.
    for (name, rel) in &task.outs {
        let p = task.out_dir.join(rel);
        match fingerprint::hash_path(&p, &NoCache) {
            Ok(d) => {
                result.outs.insert(name.clone(), d);
            }
            Err(fingerprint::FingerprintError::Missing { .. }) => {
                return fail(
                    result,
                    format!(
                        "the stage exited successfully but did not create its declared output `{name}` (`{rel}`)"
                    ),
                );
            }
            Err(e) => return fail(result, format!("output `{name}`: {e}")),
        }
    }
    match fingerprint::hash_path(&task.out_dir, &NoCache) {
        Ok(d) => result.object = Some(d),
        Err(e) => return fail(result, format!("cannot hash the output folder: {e}")),
    }
    result.status = TaskStatus::Ok;
    result.duration_ms = start.elapsed().as_millis() as u64;
    result
}

/// Creates `out_dir` and the parent folders of every declared output.
fn prepare_out_dir(task: &TaskFile) -> std::io::Result<()> {
    fs::create_dir_all(&task.out_dir)?;
    for rel in task.outs.values() {
        if let Some(parent) = task.out_dir.join(rel).parent() {
            fs::create_dir_all(parent)?;
        }
    }
    Ok(())
}
