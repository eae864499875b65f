//! The experiment file as written: serde types that reject unknown keys and wrong types.
//!
//! These are the raw, unvalidated shapes. `validate` and `expand` turn them into an
//! [`Experiment`](super::Experiment); nothing else should read them.

use crate::kinds::Backend;
use indexmap::IndexMap;
use serde::Deserialize;
use serde_yaml::Value;

/// Top level of `experiments/*.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentFile {
    /// Name of the experiment: `runs/<experiment>/` holds its runs.
    pub experiment: String,
    /// Free text shown in reports.
    #[serde(default)]
    pub description: Option<String>,
    /// The experiment seed; stages that are not replicated use it. Default 0.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Replicate seeds: every stage with `replicate: true` runs once per seed.
    #[serde(default)]
    pub seeds: Option<Vec<u64>>,
    /// Values applied to every stage that does not set them.
    #[serde(default)]
    pub defaults: Option<Defaults>,
    /// Stages by name, in any order: the DAG comes from their `deps`.
    pub stages: IndexMap<String, StageSpec>,
    /// A grid over stage config paths (`STAGE.params.NAME` or `STAGE.config.a.b`) → values;
    /// `zip:` (a map of such keys, or a list of maps) moves its keys together, one variant per
    /// position. Checked in `load`.
    #[serde(default)]
    pub sweep: Option<IndexMap<String, Value>>,
    /// Where stages run: `local` (default) or `slurm`. `--executor` overrides it.
    #[serde(default)]
    pub executor: Option<ExecutorKind>,
    /// Settings of the Slurm executor.
    #[serde(default)]
    pub slurm: Option<SlurmSpec>,
    /// Tensor backend of built-in training stages: `cpu` (default) or `cuda`. `--backend`
    /// overrides it.
    #[serde(default)]
    pub backend: Option<Backend>,
    /// Published numbers to show beside ours in reports (free-form, validated by the report).
    #[serde(default)]
    pub paper: Option<Value>,
}

/// Where a stage runs.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutorKind {
    Local,
    Slurm,
}

/// `slurm:` block: how stages become `sbatch` jobs.
#[derive(Debug, Deserialize, Clone, Default, PartialEq, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmSpec {
    #[serde(default)]
    pub partition: Option<String>,
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub qos: Option<String>,
    /// Default wall-time limit of a job (`--time`), e.g. `02:00:00`.
    #[serde(default)]
    pub time: Option<String>,
    /// Prefix of job names (`<prefix>-<experiment>-<stage>`).
    #[serde(default)]
    pub job_name_prefix: Option<String>,
    /// Extra `#SBATCH` options, e.g. `["--constraint=a100"]`.
    #[serde(default)]
    pub extra: Vec<String>,
    /// Seconds between `squeue` polls (backing off up to 10× this). Default 2.
    #[serde(default)]
    pub poll_seconds: Option<f64>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    #[serde(default)]
    pub resources: Option<ResourcesSpec>,
    #[serde(default)]
    pub retries: Option<u32>,
}

/// One stage as written.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    pub kind: String,
    /// Shell command (`command` stages only), with `{deps.X}`, `{outs.X}`, `{params.X}`,
    /// `{seed}`, `{threads}` and `{workspace}` placeholders.
    #[serde(default)]
    pub cmd: Option<String>,
    /// Inputs: a workspace path, `stage:NAME/OUT`, or `stage:NAME[*]/OUT` to gather every variant.
    #[serde(default)]
    pub deps: IndexMap<String, String>,
    /// Files or directories whose content is part of the stage's code identity.
    #[serde(default)]
    pub code: Vec<String>,
    /// Outputs, relative to the stage's own output directory.
    #[serde(default)]
    pub outs: IndexMap<String, String>,
    /// Named values, part of the key, substituted as `{params.NAME}`.
    #[serde(default)]
    pub params: IndexMap<String, Value>,
    /// Typed configuration of built-in stage kinds.
    #[serde(default)]
    pub config: Option<Value>,
    #[serde(default)]
    pub resources: Option<ResourcesSpec>,
    /// How many times a failed attempt is retried. Default 0.
    #[serde(default)]
    pub retries: Option<u32>,
    /// Run once per experiment `seeds:` entry.
    #[serde(default)]
    pub replicate: bool,
    /// Run this stage with another executor than the experiment's (e.g. `local` on a cluster).
    #[serde(default)]
    pub executor: Option<ExecutorKind>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct ResourcesSpec {
    #[serde(default)]
    pub cpus: Option<u32>,
    #[serde(default)]
    pub gpus: Option<u32>,
    /// Memory in MiB (used by cluster executors).
    #[serde(default)]
    pub mem_mb: Option<u64>,
    /// Wall-time limit (cluster executors), e.g. `00:30:00`.
    #[serde(default)]
    pub time: Option<String>,
}
