//! One file per stage kind: its typed config, its inputs and outputs, and how a task of that
//! kind runs inside a worker. The scheduling, caching and committing around them live in `exec`;
//! stage kinds never touch the store or the index.

pub mod cohort;
pub mod command;
pub mod config;
pub mod error;
pub mod evaluate;
pub mod predict;
pub mod pretrain;
pub mod report;
pub mod synth;
pub mod train;

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::Value;

pub use config::ConfigError;
pub use error::StageError;

use crate::kinds::{DepSpec, KindSchemas, StageKind};
use crate::task::TaskFile;

/// The built-in kinds' config schemas, for the experiment loader (`crate::dsl::load`).
pub struct Builtin;

impl KindSchemas for Builtin {
    /// Validates a built-in kind's config and returns it with every default filled in.
    fn resolve_config(&self, kind: StageKind, raw: &Value) -> Result<Value, ConfigError> {
        match kind {
            StageKind::Command => Ok(Value::Null),
            StageKind::Synth => synth::resolve(raw),
            StageKind::Cohort => cohort::resolve(raw),
            StageKind::Evaluate => evaluate::resolve(raw),
            StageKind::Pretrain => pretrain::resolve(raw),
            StageKind::Train => train::resolve(raw),
            StageKind::Predict => predict::resolve(raw),
            StageKind::Report => report::resolve(raw),
        }
    }

    /// Output name → path inside the output folder, for a built-in kind with a resolved config.
    fn outputs(&self, kind: StageKind, config: &Value) -> BTreeMap<String, String> {
        let list: Vec<(String, String)> = match kind {
            StageKind::Command => Vec::new(),
            StageKind::Synth => synth::outputs(config),
            StageKind::Cohort => cohort::outputs(config),
            StageKind::Evaluate => evaluate::outputs(config),
            StageKind::Pretrain => pretrain::outputs(config),
            StageKind::Train => train::outputs(config),
            StageKind::Predict => predict::outputs(config),
            StageKind::Report => report::outputs(config),
        };
        list.into_iter().collect()
    }

    /// A key of the raw `config` that a stage with these deps would ignore (only `train` has
    /// keys that depend on its deps).
    fn unused_key(&self, kind: StageKind, raw: &Value, deps: &[&str]) -> Option<ConfigError> {
        match kind {
            StageKind::Train => train::unused_key(raw, deps),
            _ => None,
        }
    }

    /// The named inputs of a built-in kind; `None` where deps are free-form: `command`, and
    /// `cohort`, whose config names the deps it reads (checked when the stage runs).
    fn dep_spec(&self, kind: StageKind) -> Option<DepSpec> {
        match kind {
            StageKind::Command | StageKind::Cohort => None,
            StageKind::Synth => Some(synth::DEPS),
            StageKind::Evaluate => Some(evaluate::DEPS),
            StageKind::Pretrain => Some(pretrain::DEPS),
            StageKind::Train => Some(train::DEPS),
            StageKind::Predict => Some(predict::DEPS),
            StageKind::Report => Some(report::DEPS),
        }
    }
}

/// Runs a built-in task inside a worker; returns the stage's metrics. `log` is the task's
/// standard output file.
pub fn run_builtin(task: &TaskFile, log: &mut dyn Write) -> Result<Value, StageError> {
    match task.kind {
        StageKind::Command => Err(StageError::Dependency(
            "command stages are run by the worker through `sh`".to_string(),
        )),
        StageKind::Synth => synth::run(task, log),
        StageKind::Cohort => cohort::run(task, log),
        StageKind::Evaluate => evaluate::run(task, log),
        StageKind::Pretrain => pretrain::run(task, log),
        StageKind::Train => train::run(task, log),
        StageKind::Predict => predict::run(task, log),
        StageKind::Report => report::run(task, log),
    }
}
