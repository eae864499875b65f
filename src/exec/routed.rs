//! Where each stage runs when an experiment uses Slurm: the route of every stage, and an
//! executor that sends each launch to the local or the Slurm executor. Launched ids carry the
//! executor's name (`local:4242`, `slurm:17`) so `reap` and `cancel` reach the one that started
//! the task. It owns no scheduling: the dispatcher decides when a stage starts.

use std::path::Path;
use std::sync::mpsc::Sender;

use super::ExecError as Error;
use super::executor::{Executor, Launched, TaskEnd};
use super::local::LocalExecutor;
use super::slurm::SlurmExecutor;
use crate::dsl::{ExecutorKind, Experiment};

/// The executor of every stage. `--executor local` runs everything on this machine;
/// `--executor slurm` sends every stage to Slurm but those marked `executor: local`; without
/// the flag, a stage's own `executor:` wins over the experiment's.
pub fn routes(exp: &Experiment, flag: Option<ExecutorKind>) -> Vec<ExecutorKind> {
    exp.stages
        .iter()
        .map(|s| match flag {
            Some(ExecutorKind::Local) => ExecutorKind::Local,
            Some(ExecutorKind::Slurm) => s.executor.unwrap_or(ExecutorKind::Slurm),
            None => s.executor.unwrap_or(exp.executor),
        })
        .collect()
}

pub struct RoutedExecutor {
    local: LocalExecutor,
    slurm: SlurmExecutor,
    /// Per stage index.
    routes: Vec<ExecutorKind>,
}

impl RoutedExecutor {
    pub fn new(local: LocalExecutor, slurm: SlurmExecutor, routes: Vec<ExecutorKind>) -> Self {
        RoutedExecutor {
            local,
            slurm,
            routes,
        }
    }
}

const LOCAL: &str = "local:";
const SLURM: &str = "slurm:";

fn strip(l: &Launched, prefix: &str) -> Option<Launched> {
    l.id.strip_prefix(prefix)
        .map(|id| Launched { id: id.into() })
}

impl Executor for RoutedExecutor {
    fn name(&self) -> &'static str {
        "routed"
    }

    fn launch(
        &mut self,
        idx: usize,
        task: &Path,
        scratch: &Path,
        tx: Sender<TaskEnd>,
    ) -> Result<Launched, Error> {
        let (prefix, launched) = match self.routes.get(idx) {
            Some(ExecutorKind::Slurm) => (SLURM, self.slurm.launch(idx, task, scratch, tx)?),
            _ => (LOCAL, self.local.launch(idx, task, scratch, tx)?),
        };
        Ok(Launched {
            id: format!("{prefix}{}", launched.id),
        })
    }

    fn cancel(&mut self, running: &[Launched]) {
        let local: Vec<Launched> = running.iter().filter_map(|l| strip(l, LOCAL)).collect();
        let slurm: Vec<Launched> = running.iter().filter_map(|l| strip(l, SLURM)).collect();
        self.local.cancel(&local);
        // Always: the Slurm executor also cancels jobs still pending in the queue.
        self.slurm.cancel(&slurm);
    }

    fn reap(&mut self, launched: &Launched) {
        if let Some(l) = strip(launched, LOCAL) {
            self.local.reap(&l);
        } else if let Some(l) = strip(launched, SLURM) {
            self.slurm.reap(&l);
        }
    }
}
