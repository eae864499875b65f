//! What the dispatcher needs from an executor: start a worker on a task file, report when it
//! ends, cancel what runs. Executors never read results or touch the index: the dispatcher reads
//! the worker's result file and commits.

use std::path::Path;
use std::sync::mpsc::Sender;

use super::ExecError as Error;

/// How a worker ended, as far as the executor can tell. The result file is the source of truth
/// for the stage's outcome; this only explains a worker that died without writing one.
#[derive(Debug, Clone, Default)]
pub struct WorkerExit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// Executor-specific detail (e.g. a Slurm job state).
    pub note: Option<String>,
}

impl WorkerExit {
    pub fn describe(&self) -> String {
        let how = match (self.code, self.signal) {
            (_, Some(sig)) => format!("was killed by signal {sig}"),
            (Some(c), _) => format!("exited with status {c}"),
            _ => "ended".to_string(),
        };
        match &self.note {
            Some(n) => format!("{how} ({n})"),
            None => how,
        }
    }
}

/// Sent once per launched task when its worker is gone.
pub struct TaskEnd {
    pub idx: usize,
    pub exit: WorkerExit,
}

/// A handle on a launched task: a process group id, a job id.
#[derive(Debug, Clone)]
pub struct Launched {
    pub id: String,
}

pub trait Executor {
    fn name(&self) -> &'static str;
    /// Starts a worker running `orchestrate worker --task TASK`; must send exactly one
    /// [`TaskEnd`] for it on `tx`, whatever happens.
    fn launch(
        &mut self,
        idx: usize,
        task: &Path,
        scratch: &Path,
        tx: Sender<TaskEnd>,
    ) -> Result<Launched, Error>;
    /// Ctrl-C: stop every running task (their `TaskEnd`s still arrive).
    fn cancel(&mut self, running: &[Launched]);
    /// Called after a task's `TaskEnd`: clean up anything it left running.
    fn reap(&mut self, launched: &Launched);
}
