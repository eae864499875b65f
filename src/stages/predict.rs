//! `predict` stages: per-patient scores (logits) of a trained classifier on each test cohort.
//!
//! Deps: `model` (a `train` stage's `model`) and cohorts by name: `internal`, `external`, `test`
//! (each optional). Output `scores` (`scores.csv`: `model,seed,cohort,id,label,score`, rows in
//! cohort then id order, scores as `{:.9e}` so the bytes are deterministic; `label` is empty for
//! an unlabeled cohort).

use std::fmt::Write as _;
use std::io::Write;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::StageError;
use super::config::{ConfigError, from_task, key_error, typed};
use super::pretrain::{missing, one_input, read_cohort};
use crate::kinds::DepSpec;
use crate::model::pipeline;
use crate::task::TaskFile;

pub const DEPS: DepSpec = DepSpec {
    required: &["model"],
    optional: &["internal", "external", "test"],
};

/// The `predict` config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PredictConfig {
    /// The model's display name in results (the `model` column), e.g. `jepa`.
    pub label: String,
}

impl Default for PredictConfig {
    fn default() -> Self {
        PredictConfig {
            label: "model".to_string(),
        }
    }
}

pub fn resolve(raw: &Value) -> Result<Value, ConfigError> {
    let (cfg, json) = typed::<PredictConfig>(raw)?;
    if cfg.label.is_empty() || cfg.label.contains([',', '\n', '"', '\r']) {
        return Err(key_error(
            "label",
            "must be a non-empty name without commas, quotes or newlines",
        ));
    }
    Ok(json)
}

pub fn outputs(_config: &Value) -> Vec<(String, String)> {
    vec![("scores".to_string(), "scores.csv".to_string())]
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn run(task: &TaskFile, log: &mut dyn Write) -> Result<Value, StageError> {
    let cfg: PredictConfig = from_task(&task.config)?;
    let model_dir = one_input(task, "model")?.ok_or_else(|| missing("model"))?;
    let mut cohorts = Vec::new();
    // Sorted by dependency name, so rows come in cohort order.
    let mut names: Vec<&str> = DEPS.optional.to_vec();
    names.sort_unstable();
    for name in names {
        if let Some(p) = one_input(task, name)? {
            cohorts.push((name.to_string(), read_cohort(p)?));
        }
    }
    if cohorts.is_empty() {
        return Err(StageError::Dependency(
            "no cohort to score: give at least one of `internal`, `external`, `test`".to_string(),
        ));
    }
    let (card, scores, info) =
        pipeline::predict(task.backend, model_dir, &cohorts).map_err(StageError::model)?;
    let mut csv = String::from("model,seed,cohort,id,label,score\n");
    let mut counts = serde_json::Map::new();
    for ((name, c), s) in cohorts.iter().zip(&scores) {
        let mut order: Vec<usize> = (0..c.n).collect();
        order.sort_by(|&a, &b| c.ids[a].cmp(&c.ids[b]));
        for i in order {
            let label = c
                .labels
                .as_ref()
                .map_or(String::new(), |l| l[i].to_string());
            let _ = writeln!(
                csv,
                "{},{},{},{},{},{:.9e}",
                csv_field(&cfg.label),
                task.seed,
                name,
                csv_field(&c.ids[i]),
                label,
                s[i]
            );
        }
        counts.insert(name.clone(), json!(c.n));
        let _ = writeln!(log, "scored {} patients of `{name}`", c.n);
    }
    let path = task.out_dir.join("scores.csv");
    std::fs::write(&path, csv).map_err(StageError::io("write", &path))?;
    Ok(json!({
        "label": cfg.label,
        "model_class": card.model_class,
        "patients": counts,
        "backend": info.backend,
        "device": info.device,
        "kernels": info.kernels,
    }))
}
