//! `synth` stages: the synthetic environment of PAPER.md, written as cohort tables.
//!
//! Outputs one cohort folder per split (`unlabeled`, `incomplete`, `finetune`, `internal`,
//! `external`, disjoint patient ids) and `truth.json` with the Bayes AUC of each test cohort.

use std::io::Write;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::DepSpec;
use super::config::{ConfigError, typed};
use crate::exec::task::TaskFile;

/// A synth stage reads nothing.
pub const DEPS: DepSpec = DepSpec {
    required: &[],
    optional: &[],
};

pub const SPLITS: [&str; 5] = [
    "unlabeled",
    "incomplete",
    "finetune",
    "internal",
    "external",
];

/// The knobs of the synthetic environment (PAPER.md, "Proposal: the synthetic environment").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SynthConfig {
    /// ρ: share of the label explained by causes common to both modalities.
    pub rho: f64,
    /// Strength of the external cohort's shift (clinical loadings, z_s mean, scanner).
    pub shift: f64,
    /// λ: label leak into the internal clinical record (pre-diagnosis codes).
    pub leak: f64,
    /// Share of patients of the labeled incomplete set missing one modality.
    pub missing: f64,
    /// η: probability that a label is flipped.
    pub label_noise: f64,
    /// α: scale of the label logit.
    pub alpha: f64,
    /// Intercept b of the label logit.
    pub bias: f64,
    pub n_unlabeled: usize,
    pub n_incomplete: usize,
    pub n_finetune: usize,
    pub n_internal: usize,
    pub n_external: usize,
    /// Dimension of each latent cause (z_s, u_i, u_c).
    pub latent_dim: usize,
    pub img_tokens: usize,
    pub img_width: usize,
    pub clin_tokens: usize,
    pub clin_width: usize,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            rho: 0.5,
            shift: 1.0,
            leak: 1.0,
            missing: 0.5,
            label_noise: 0.05,
            alpha: 3.0,
            bias: -1.0,
            n_unlabeled: 4000,
            n_incomplete: 2000,
            n_finetune: 300,
            n_internal: 1000,
            n_external: 1000,
            latent_dim: 4,
            img_tokens: 5,
            img_width: 16,
            clin_tokens: 4,
            clin_width: 16,
        }
    }
}

pub fn resolve(raw: &Value) -> Result<Value, ConfigError> {
    typed::<SynthConfig>(raw).map(|(_, json)| json)
}

pub fn outputs(_config: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = SPLITS
        .iter()
        .map(|s| (s.to_string(), s.to_string()))
        .collect();
    out.push(("truth".to_string(), "truth.json".to_string()));
    out
}

pub fn run(_task: &TaskFile, _log: &mut dyn Write) -> Result<Value, String> {
    Err("the synthetic environment is being built (issue 3)".to_string())
}
