//! What stage kinds *are*, below everything that plans, runs or describes them: the kind names
//! ([`StageKind`]), the tensor [`Backend`], which kinds depend on it, the named inputs a kind
//! reads ([`DepSpec`]), and the schema of each kind's config as the [`KindSchemas`] interface.
//!
//! The typed configs themselves live beside the code that runs them (`crate::stages`, one file
//! per kind), which implements [`KindSchemas`]; the experiment loader (`crate::dsl`) and the
//! planner receive it as a parameter. So `dsl` sits below `stages` (and below burn) and the
//! compiler, not prose, keeps it there. See docs/design.md, "Layers".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The kinds of stage this binary knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageKind {
    /// Any shell command with declared deps, code and outs.
    Command,
    /// The synthetic environment: cohort tables with known causes.
    Synth,
    /// A real cohort loaded from CSV files.
    Cohort,
    /// AUCs, intervals and comparisons of gathered predictions.
    Evaluate,
    /// JEPA or supervised pretraining of the token encoder.
    Pretrain,
    /// A classifier trained from scratch or from a pretrained encoder.
    Train,
    /// Per-patient scores of a trained classifier on test cohorts.
    Predict,
    /// A self-contained HTML report of an evaluation's results.
    Report,
}

impl StageKind {
    pub const ALL: &'static [StageKind] = &[
        StageKind::Command,
        StageKind::Synth,
        StageKind::Cohort,
        StageKind::Evaluate,
        StageKind::Pretrain,
        StageKind::Train,
        StageKind::Predict,
        StageKind::Report,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StageKind::Command => "command",
            StageKind::Synth => "synth",
            StageKind::Cohort => "cohort",
            StageKind::Evaluate => "evaluate",
            StageKind::Pretrain => "pretrain",
            StageKind::Train => "train",
            StageKind::Predict => "predict",
            StageKind::Report => "report",
        }
    }

    pub fn parse(s: &str) -> Option<StageKind> {
        StageKind::ALL.iter().copied().find(|k| k.name() == s)
    }

    /// Built-in kinds take a typed `config:` and define their own outputs.
    pub fn is_builtin(self) -> bool {
        self != StageKind::Command
    }
}

/// Tensor backend of built-in training stages.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, serde::Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    #[default]
    Cpu,
    Cuda,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Cuda => "cuda",
        }
    }
}

/// Whether the kind's results depend on the tensor backend (so it is part of the key).
pub fn uses_backend(kind: StageKind) -> bool {
    match kind {
        StageKind::Command
        | StageKind::Synth
        | StageKind::Cohort
        | StageKind::Evaluate
        | StageKind::Report => false,
        StageKind::Pretrain | StageKind::Train | StageKind::Predict => true,
    }
}

/// The dependencies a built-in kind reads, by name. `"*"` among the optional names accepts any
/// other name too (e.g. `evaluate` reads every dep but `truth` as a scores file).
#[derive(Debug, Clone, Copy)]
pub struct DepSpec {
    pub required: &'static [&'static str],
    pub optional: &'static [&'static str],
}

impl DepSpec {
    pub fn accepts(&self, name: &str) -> bool {
        self.required.contains(&name)
            || self.optional.contains(&name)
            || self.optional.contains(&"*")
    }
}

/// A config that does not fit its kind's schema, with the path of the offending key inside it.
#[derive(Debug, Clone)]
pub struct ConfigError {
    pub path: Vec<String>,
    pub message: String,
}

/// The config schema of every built-in kind: validated with defaults filled in, and the outputs
/// and inputs it implies. Implemented by `crate::stages::Builtin`.
pub trait KindSchemas {
    /// Validates a built-in kind's config and returns it with every default filled in.
    fn resolve_config(&self, kind: StageKind, raw: &Value) -> Result<Value, ConfigError>;
    /// Output name → path inside the output folder, for a built-in kind with a resolved config.
    fn outputs(&self, kind: StageKind, config: &Value) -> BTreeMap<String, String>;
    /// The named inputs of a built-in kind; `None` where deps are free-form.
    fn dep_spec(&self, kind: StageKind) -> Option<DepSpec>;
    /// A key of the raw `config` that a stage with these dependency names would ignore.
    fn unused_key(&self, kind: StageKind, raw: &Value, deps: &[&str]) -> Option<ConfigError>;
}
