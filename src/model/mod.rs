//! The model zoo (docs/study.md, "The model zoo"), written with burn: the token transformer, JEPA
//! pretraining, supervised training with early stopping, inference and checkpoints.
//!
//! Owns every use of burn in the crate (stage files call the functions here with plain data).
//! Knows nothing of the store, the index, tasks or YAML: it reads [`crate::cohort::Cohort`]s and
//! writes checkpoint folders and curves that the stage kinds (`pretrain`, `train`, `predict`)
//! declare as outputs.
//!
//! Determinism: every random draw (weight init, shuffles, masks, dropout, validation split) comes
//! from the crate's seeded [`crate::rng::Rng`], never from burn's global generator, so two runs of
//! the same config on CPU produce the same bytes whatever the test or thread interleaving.

pub mod backend;
pub mod checkpoint;
pub mod data;
pub mod encoder;
pub mod error;
pub mod fused;
pub mod heads;
pub mod init;
pub mod jepa;
pub mod optim;
pub mod pipeline;
pub mod predictor;
pub mod tokens;
pub mod train;

use serde::{Deserialize, Serialize};

pub use error::ModelError;

/// Which modalities a classifier sees (the lab's `model_class`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ModelClass {
    /// Imaging tokens only (clinical tokens are masked out for every patient).
    Imaging,
    /// Clinical tokens only.
    Clinical,
    /// Both modalities; a patient's missing modality is masked out.
    #[default]
    Multimodal,
}

impl ModelClass {
    pub fn name(self) -> &'static str {
        match self {
            ModelClass::Imaging => "imaging",
            ModelClass::Clinical => "clinical",
            ModelClass::Multimodal => "multimodal",
        }
    }

    /// Whether the class uses (imaging, clinical).
    pub fn uses(self) -> (bool, bool) {
        match self {
            ModelClass::Imaging => (true, false),
            ModelClass::Clinical => (false, true),
            ModelClass::Multimodal => (true, true),
        }
    }
}

/// How token features become token vectors (see [`tokens`] for why `per_slot` is the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TokenizerKind {
    /// One linear map per token slot.
    #[default]
    PerSlot,
    /// One linear map per modality, shared by its tokens (the original design).
    PerModality,
}

/// The token transformer's shape: what a checkpoint needs to rebuild the modules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arch {
    /// Imaging tokens per patient and features per token.
    pub img_tokens: usize,
    pub img_width: usize,
    /// Clinical tokens per patient and features per token.
    pub clin_tokens: usize,
    pub clin_width: usize,
    /// Token width of the encoder (`embedding_dim`).
    pub dim: usize,
    pub depth: usize,
    pub heads: usize,
    pub dim_head: usize,
    pub mlp_dim: usize,
    pub dropout: f64,
    pub tokenizer: TokenizerKind,
}

impl Arch {
    /// Tokens per patient, imaging first.
    pub fn tokens(&self) -> usize {
        self.img_tokens + self.clin_tokens
    }
}

/// The JEPA predictor's shape (I-JEPA's `pred_depth`, `pred_emb_dim`). Its heads are
/// `max(1, pred_emb_dim / 8)` of width 8 and its MLP is twice its width.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictorArch {
    pub pred_depth: usize,
    pub pred_emb_dim: usize,
}

impl PredictorArch {
    pub fn heads(&self) -> usize {
        (self.pred_emb_dim / 8).max(1)
    }

    pub fn dim_head(&self) -> usize {
        self.pred_emb_dim / self.heads()
    }
}

/// Optimizer and schedules shared by every training loop.
#[derive(Debug, Clone, PartialEq)]
pub struct OptimSettings {
    /// Peak learning rate (after warmup).
    pub lr: f64,
    /// Learning rate at step 0 of the warmup.
    pub start_lr: f64,
    /// Learning rate at the last step.
    pub final_lr: f64,
    /// Linear warmup length in optimizer steps.
    pub warmup_steps: usize,
    /// `cosine` decay after warmup, or `constant` at `lr`.
    pub cosine: bool,
    /// Weight decay at the first step and at the last (cosine in between).
    pub weight_decay: f64,
    pub final_weight_decay: f64,
    /// Global gradient-norm clip (0 disables).
    pub clip_grad: f64,
}

/// A tensor's values on the host as `f32`.
pub fn to_vec<B: burn::tensor::backend::Backend, const D: usize>(
    t: burn::tensor::Tensor<B, D>,
) -> Result<Vec<f32>, ModelError> {
    t.into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| ModelError::Backend(format!("cannot read a tensor back: {e:?}")))
}

#[cfg(test)]
mod tests;
