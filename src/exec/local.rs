//! The local executor: each task attempt is an `orchestrate worker` subprocess in its own process
//! group, so that Ctrl-C reaches only the dispatcher and the dispatcher can kill a task together
//! with everything its command started. A stage's `resources.time` is enforced here: past it, the
//! task's whole process group is killed and the attempt fails with `time limit … exceeded`.
//!
//! `ORCHESTRATE_WORKER_WRAPPER` runs every worker under a wrapper command: its words (split on
//! whitespace, no shell quoting) come before the worker's command line, e.g. `nice -n 10`,
//! `apptainer exec image.sif`, or `qemu-x86_64 -cpu Nehalem` (how the tests check that artifacts
//! do not depend on the CPU the workers run on).

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::Sender;
use std::time::Duration;

use super::ExecError as Error;
use super::executor::{Executor, Launched, TaskEnd, WorkerExit};

/// The environment variable naming a command to run every local worker under.
pub const WORKER_WRAPPER_ENV: &str = "ORCHESTRATE_WORKER_WRAPPER";

pub struct LocalExecutor {
    worker_exe: std::path::PathBuf,
    /// The wrapper command's words (empty: none).
    wrapper: Vec<String>,
    /// Per stage index: its wall-time limit and the limit as the user wrote it.
    limits: Vec<Option<(Duration, String)>>,
}

impl LocalExecutor {
    /// `limits[idx]`: the time limit of stage `idx` (its `resources.time`), if any.
    pub fn new(limits: Vec<Option<(Duration, String)>>) -> Result<LocalExecutor, Error> {
        let worker_exe = std::env::current_exe()
            .map_err(|e| Error::Internal(format!("cannot locate the orchestrate binary: {e}")))?;
        let wrapper = std::env::var(WORKER_WRAPPER_ENV)
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        Ok(LocalExecutor {
            worker_exe,
            wrapper,
            limits,
        })
    }
}

fn kill_group(pgid: i32, signal: i32) {
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

impl Executor for LocalExecutor {
    fn name(&self) -> &'static str {
        "local"
    }

    fn launch(
        &mut self,
        idx: usize,
        task: &Path,
        scratch: &Path,
        tx: Sender<TaskEnd>,
    ) -> Result<Launched, Error> {
        let log = scratch.join("worker.log");
        let log_file = fs::File::create(&log).map_err(|e| Error::io(&log, e))?;
        let log_err = log_file.try_clone().map_err(|e| Error::io(&log, e))?;
        let mut cmd = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(&self.worker_exe);
                c
            }
            None => Command::new(&self.worker_exe),
        };
        cmd.arg("worker")
            .arg("--task")
            .arg(task)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err);
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        crate::task::die_with_parent(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| match self.wrapper.is_empty() {
            true => Error::Internal(format!("cannot start a worker: {e}")),
            false => Error::Internal(format!(
                "cannot start a worker under `{}` (from {WORKER_WRAPPER_ENV}): {e}",
                self.wrapper.join(" ")
            )),
        })?;
        let pgid = child.id() as i32;
        // The watchdog: kills the group at the deadline unless the worker ended first.
        let timed_out = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (ended_tx, ended_rx) = std::sync::mpsc::channel::<()>();
        let limit = self.limits.get(idx).cloned().flatten();
        if let Some((limit, _)) = &limit {
            let (limit, flag) = (*limit, timed_out.clone());
            std::thread::spawn(move || {
                if ended_rx.recv_timeout(limit) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
                    flag.store(true, std::sync::atomic::Ordering::SeqCst);
                    kill_group(pgid, libc::SIGKILL);
                }
            });
        }
        std::thread::spawn(move || {
            use std::os::unix::process::ExitStatusExt;
            let waited = child.wait();
            let _ = ended_tx.send(());
            let note = limit
                .filter(|_| timed_out.load(std::sync::atomic::Ordering::SeqCst))
                .map(|(_, text)| format!("time limit {text} exceeded"));
            let exit = match waited {
                Ok(status) => WorkerExit {
                    code: status.code(),
                    signal: status.signal(),
                    note,
                },
                Err(e) => WorkerExit {
                    code: None,
                    signal: None,
                    note: Some(format!("cannot wait for the worker: {e}")),
                },
            };
            let _ = tx.send(TaskEnd { idx, exit });
        });
        Ok(Launched {
            id: pgid.to_string(),
        })
    }

    fn cancel(&mut self, running: &[Launched]) {
        let groups: Vec<i32> = running.iter().filter_map(|l| l.id.parse().ok()).collect();
        for &g in &groups {
            kill_group(g, libc::SIGTERM);
        }
        // Whatever ignores SIGTERM is killed two seconds later.
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(2));
            for g in groups {
                kill_group(g, libc::SIGKILL);
            }
        });
    }

    fn reap(&mut self, launched: &Launched) {
        // Nothing the task started may outlive it: it could still write into scratch.
        if let Ok(g) = launched.id.parse() {
            kill_group(g, libc::SIGKILL);
        }
    }
}
