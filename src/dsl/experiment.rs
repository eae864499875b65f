//! The validated, expanded experiment: what every later box (plan, exec, report) reads.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

pub use super::schema::{ExecutorKind, SlurmSpec};
use crate::kinds::{Backend, StageKind};

/// A loaded experiment: every sweep and replicate expanded, stages in topological order.
#[derive(Debug, Clone)]
pub struct Experiment {
    pub name: String,
    pub description: Option<String>,
    /// The experiment file as the user named it (for messages).
    pub file: PathBuf,
    /// Absolute workspace root: every relative path of the experiment is resolved against it.
    pub workspace: PathBuf,
    pub seed: u64,
    /// Topologically ordered: a stage's upstream stages all have smaller indices.
    pub stages: Vec<Stage>,
    /// The experiment's executor (`local` unless the file says otherwise).
    pub executor: ExecutorKind,
    pub slurm: SlurmSpec,
    pub backend: Backend,
    /// The `paper:` block, as JSON (`null` when absent).
    pub paper: Value,
}

impl Experiment {
    pub fn stage_index(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.name == name)
    }
}

/// One concrete stage (a variant of a declared stage when it is swept or replicated).
#[derive(Debug, Clone)]
pub struct Stage {
    /// Unique name: the declared name plus its coordinates, e.g. `train[lr=0.001,seed=2]`.
    pub name: String,
    /// The declared name (`train`).
    pub base: String,
    pub kind: StageKind,
    /// Command template (`command` stages).
    pub cmd: Option<String>,
    pub deps: BTreeMap<String, Dep>,
    /// Declared code files, workspace-relative.
    pub code: Vec<String>,
    /// Outputs, relative to the stage's output directory.
    pub outs: BTreeMap<String, String>,
    pub params: BTreeMap<String, Value>,
    /// Built-in kinds' typed config, as JSON (`null` for `command`).
    pub config: Value,
    pub resources: Resources,
    pub retries: u32,
    /// The seed this stage runs with (its replicate seed, or the experiment seed).
    pub seed: u64,
    /// Sweep/replicate coordinates, in display order: `[("lr", 0.001), ("seed", 2)]`.
    pub coords: Vec<(String, Value)>,
    /// A per-stage executor override.
    pub executor: Option<ExecutorKind>,
}

/// An input of a stage.
#[derive(Debug, Clone, PartialEq)]
pub enum Dep {
    /// A workspace file or directory, workspace-relative and normalized.
    Path(String),
    /// Output `out` of upstream stages (one, or every gathered variant, sorted by name).
    Stage {
        stages: Vec<usize>,
        out: String,
        gather: bool,
    },
}

/// What a stage needs from the machine. Not part of the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resources {
    pub cpus: u32,
    pub gpus: u32,
    pub mem_mb: Option<u64>,
    /// Wall-time limit for cluster executors (Slurm `--time` syntax).
    pub time: Option<String>,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            cpus: 1,
            gpus: 0,
            mem_mb: None,
            time: None,
        }
    }
}

/// Formats a coordinate value the way it appears in a variant name.
pub fn coord_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
