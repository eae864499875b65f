//! `train` stages: a classifier (`model_class` imaging, clinical or multimodal) trained with BCE on
//! a labeled finetune cohort, from scratch or from a `pretrain` stage's weights, with a stratified
//! validation split, early stopping on validation loss and the best checkpoint kept.
//!
//! Deps: `data` (labeled cohort), `init` (optional: a `pretrain` stage's `model`, the role of the
//! lab's `pretrained_model`). With `init`, the architecture is the pretrained one, so the config's
//! size keys ([`ARCH_KEYS`]) are refused at validation rather than silently ignored. Finetuning
//! from `init` trains the head alone over the frozen encoder for `head_epochs`, and no epoch
//! before `min_epochs` is kept (see `crate::model::train`). Outputs: `model`, `curve`. Metrics:
//! best epoch, the first epoch that could be kept, early stopping, best validation loss (and
//! AUC), backend and device.

use std::io::Write;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::StageError;
use super::config::{
    ConfigError, check_rates, check_sizes, check_unit, from_task, key_error, typed,
};
use super::pretrain::{LrSchedule, logger, missing, one_input, read_cohort, write_json};
use crate::kinds::DepSpec;
use crate::model::pipeline::{self, Init, InitFrom};
use crate::model::train::TrainSettings;
use crate::model::{Arch, ModelClass, OptimSettings, TokenizerKind};
use crate::task::TaskFile;

pub const DEPS: DepSpec = DepSpec {
    required: &["data"],
    optional: &["init"],
};

/// The `train` config (the lab's flat keys plus I-JEPA's optimizer names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// `imaging`, `clinical` or `multimodal`: which modalities the classifier sees.
    pub model_class: ModelClass,
    /// Which encoder of a JEPA `init` to start from: `target` (EMA) or `context`.
    pub init_from: InitFrom,
    /// Seed of this stage's RNG streams; `null` uses the stage's seed.
    pub random_seed: Option<u64>,
    /// Share of each label class held out for validation (early stopping).
    pub val_fraction: f64,
    /// Epochs without a lower validation loss before stopping (counted from `min_epochs`).
    pub patience: usize,
    /// No checkpoint of an epoch before this (0-based) is kept, and early stopping does not
    /// count them: on a small validation split an almost untrained model can otherwise win.
    /// [default: 5, capped at the last epoch]
    pub min_epochs: Option<usize>,
    /// With `init`: epochs that train only the head over the frozen pretrained encoder before
    /// the whole model trains (linear probing, then finetuning); not kept as checkpoints.
    /// [default: 5, capped at the last epoch, which always trains the whole model]
    pub head_epochs: Option<usize>,
    pub embedding_dim: usize,
    pub depth: usize,
    pub heads: usize,
    pub dim_head: usize,
    pub mlp_dim: usize,
    pub dropout: f64,
    /// `per_slot` (one linear map per token slot) or `per_modality` (one map shared by a
    /// modality's tokens, the original design).
    pub tokenizer: TokenizerKind,
    pub batch_size: usize,
    /// Maximum epochs.
    pub epochs: usize,
    /// Peak learning rate.
    pub lr: f64,
    pub start_lr: f64,
    pub final_lr: f64,
    /// Linear warmup in optimizer steps.
    pub warmup_steps: usize,
    pub schedule: LrSchedule,
    /// AdamW weight decay, cosine from `weight_decay` to `final_weight_decay`; never on biases,
    /// norms or 1-D parameters.
    pub weight_decay: f64,
    pub final_weight_decay: f64,
    /// Clip gradients to this global L2 norm (0 = off).
    pub clip_grad: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            model_class: ModelClass::Multimodal,
            init_from: InitFrom::Target,
            random_seed: None,
            val_fraction: 0.2,
            patience: 10,
            min_epochs: None,
            head_epochs: None,
            embedding_dim: 32,
            depth: 2,
            heads: 4,
            dim_head: 8,
            mlp_dim: 64,
            dropout: 0.1,
            tokenizer: TokenizerKind::default(),
            batch_size: 32,
            epochs: 60,
            lr: 5e-4,
            start_lr: 5e-5,
            final_lr: 1e-6,
            warmup_steps: 20,
            schedule: LrSchedule::Cosine,
            weight_decay: 0.05,
            final_weight_decay: 0.05,
            clip_grad: 1.0,
        }
    }
}

impl TrainConfig {
    fn check(&self) -> Result<(), ConfigError> {
        check_sizes(&[
            ("embedding_dim", self.embedding_dim),
            ("depth", self.depth),
            ("heads", self.heads),
            ("dim_head", self.dim_head),
            ("mlp_dim", self.mlp_dim),
            ("batch_size", self.batch_size),
            ("epochs", self.epochs),
        ])?;
        check_unit("dropout", self.dropout, false)?;
        check_rates(&[
            ("lr", self.lr),
            ("start_lr", self.start_lr),
            ("final_lr", self.final_lr),
            ("weight_decay", self.weight_decay),
            ("final_weight_decay", self.final_weight_decay),
            ("clip_grad", self.clip_grad),
        ])?;
        check_unit("val_fraction", self.val_fraction, true)?;
        if self.lr <= 0.0 {
            return Err(key_error("lr", "must be > 0"));
        }
        Ok(())
    }
}

/// `min_epochs` and `head_epochs` when the config leaves them unset.
pub const DEFAULT_MIN_EPOCHS: usize = 5;
pub const DEFAULT_HEAD_EPOCHS: usize = 5;

pub fn resolve(raw: &Value) -> Result<Value, ConfigError> {
    let (cfg, json) = typed::<TrainConfig>(raw)?;
    cfg.check()?;
    // Set explicitly, they must leave an epoch to keep; their defaults are capped at the last
    // epoch instead (a short run keeps its last epoch), see `crate::model::train`.
    for (key, value) in [
        ("min_epochs", cfg.min_epochs),
        ("head_epochs", cfg.head_epochs),
    ] {
        if let Some(v) = value
            && v >= cfg.epochs
        {
            return Err(key_error(
                key,
                format!(
                    "must be below `epochs` ({}): no epoch would be left to keep",
                    cfg.epochs
                ),
            ));
        }
    }
    Ok(json)
}

/// The size keys a `train` stage with `init` does not read: the pretrained checkpoint fixes the
/// architecture.
pub const ARCH_KEYS: &[&str] = &[
    "embedding_dim",
    "depth",
    "heads",
    "dim_head",
    "mlp_dim",
    "tokenizer",
];

/// Config keys that a stage with these deps would ignore: the size keys when it has `init`,
/// `init_from` and `head_epochs` when it has none. Names the first such key of `raw`.
pub fn unused_key(raw: &Value, deps: &[&str]) -> Option<ConfigError> {
    let has_init = deps.contains(&"init");
    let set = |k: &str| raw.get(k).is_some();
    let (key, why) = if has_init {
        let k = ARCH_KEYS.iter().find(|k| set(k))?;
        (
            *k,
            "is ignored with `init`: the pretrained checkpoint fixes the architecture; remove it",
        )
    } else {
        let k = ["init_from", "head_epochs"].into_iter().find(|k| set(k))?;
        (
            k,
            "only applies with an `init` dependency (a pretrained encoder); remove it or add `init`",
        )
    };
    Some(key_error(key, why))
}

pub fn outputs(_config: &Value) -> Vec<(String, String)> {
    vec![
        ("model".to_string(), "model".to_string()),
        ("curve".to_string(), "curve.json".to_string()),
    ]
}

pub fn run(task: &TaskFile, log: &mut dyn Write) -> Result<Value, StageError> {
    let cfg: TrainConfig = from_task(&task.config)?;
    let data_dir = one_input(task, "data")?.ok_or_else(|| missing("data"))?;
    let cohort = read_cohort(data_dir)?;
    let init = one_input(task, "init")?.map(|dir| Init {
        dir,
        from: cfg.init_from,
    });
    let from_pretrained = init.is_some();
    let settings = TrainSettings {
        arch: Arch {
            img_tokens: cohort.imaging.tokens,
            img_width: cohort.imaging.width,
            clin_tokens: cohort.clinical.tokens,
            clin_width: cohort.clinical.width,
            dim: cfg.embedding_dim,
            depth: cfg.depth,
            heads: cfg.heads,
            dim_head: cfg.dim_head,
            mlp_dim: cfg.mlp_dim,
            dropout: cfg.dropout,
            tokenizer: cfg.tokenizer,
        },
        optim: OptimSettings {
            lr: cfg.lr,
            start_lr: cfg.start_lr,
            final_lr: cfg.final_lr,
            warmup_steps: cfg.warmup_steps,
            cosine: cfg.schedule == LrSchedule::Cosine,
            weight_decay: cfg.weight_decay,
            final_weight_decay: cfg.final_weight_decay,
            clip_grad: cfg.clip_grad,
        },
        epochs: cfg.epochs,
        batch_size: cfg.batch_size,
        val_fraction: cfg.val_fraction,
        patience: cfg.patience,
        min_epochs: cfg.min_epochs.unwrap_or(DEFAULT_MIN_EPOCHS),
        head_epochs: cfg.head_epochs.unwrap_or(DEFAULT_HEAD_EPOCHS),
        seed: cfg.random_seed.unwrap_or(task.seed),
    };
    let model_dir = task.out_dir.join("model");
    let mut logf = logger(log);
    let (out, info) = pipeline::train(
        task.backend,
        &cohort,
        cfg.model_class,
        init,
        settings,
        false,
        &model_dir,
        &mut logf,
    )
    .map_err(StageError::model)?;
    write_json(
        task.out_dir.join("curve.json"),
        &json!({
            "model_class": cfg.model_class,
            "epochs": out.epochs,
            "best_epoch": out.best_epoch,
            "first_eligible_epoch": out.first_eligible,
            "head_epochs": out.head_epochs,
            "stopped_early": out.stopped_early,
        }),
    )?;
    Ok(json!({
        "model_class": cfg.model_class,
        "pretrained": from_pretrained,
        "best_epoch": out.best_epoch,
        "best_val_loss": out.best_val_loss,
        "best_val_auc": out.best_val_auc,
        "stopped_early": out.stopped_early,
        "first_eligible_epoch": out.first_eligible,
        "head_epochs": out.head_epochs,
        "epochs": out.epochs.len(),
        "steps": out.steps,
        "n_train": out.n_train,
        "n_val": out.n_val,
        "backend": info.backend,
        "device": info.device,
        "kernels": info.kernels,
    }))
}
