//! `pretrain` stages: JEPA pretraining on an unlabeled (complete) cohort, or supervised
//! pretraining (BCE, missing modalities masked) on a labeled, possibly incomplete one.
//!
//! Deps: `data` (a cohort folder). Outputs: `model` (checkpoint folder: `model.json` and
//! little-endian f32 weights) and `curve` (`curve.json`: per-epoch losses, lr, target std and the
//! predict-the-mean baseline). Metrics: final and baseline loss, target-feature std min/last,
//! `collapsed`, and the backend and device.
//!
//! Config keys follow I-JEPA (`pred_depth`, `pred_emb_dim`, `ema`, `weight_decay`,
//! `final_weight_decay`, `start_lr`, `final_lr`, `warmup` in epochs) and the lab's code
//! (`random_seed`, `embedding_dim`, `depth`, `heads`, `dim_head`, `mlp_dim`, `dropout`, `tokenizer`,
//! `batch_size`, `epochs`, `lr`, `schedule`).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::StageError;
use super::config::{
    ConfigError, check_rates, check_sizes, check_unit, from_task, key_error, typed,
};
use crate::cohort::Cohort;
use crate::kinds::DepSpec;
use crate::model::jepa::JepaSettings;
use crate::model::pipeline;
use crate::model::train::TrainSettings;
use crate::model::{Arch, ModelClass, OptimSettings, PredictorArch, TokenizerKind};
use crate::task::TaskFile;

pub const DEPS: DepSpec = DepSpec {
    required: &["data"],
    optional: &[],
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Joint-embedding predictive pretraining (no labels).
    #[default]
    Jepa,
    /// BCE on the labels of the data cohort.
    Supervised,
}

/// Learning-rate schedule after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    /// Cosine decay to `final_lr`.
    #[default]
    Cosine,
    /// `lr` throughout.
    Constant,
}

/// The `pretrain` config. Sizes default to the CPU model (dim 32, depth 2, heads 4) of
/// docs/study.md, "The model zoo".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PretrainConfig {
    /// `jepa` or `supervised`.
    pub method: Method,
    /// Seed of this stage's RNG streams; `null` uses the stage's seed.
    pub random_seed: Option<u64>,
    /// Token width of the encoder.
    pub embedding_dim: usize,
    /// Transformer blocks of the encoder.
    pub depth: usize,
    pub heads: usize,
    /// Width of each attention head.
    pub dim_head: usize,
    /// Hidden width of each block's MLP.
    pub mlp_dim: usize,
    /// Dropout on the residual branches (training only).
    pub dropout: f64,
    /// `per_slot` (one linear map per token slot) or `per_modality` (one map shared by a
    /// modality's tokens, the original design).
    pub tokenizer: TokenizerKind,
    /// Predictor blocks (JEPA).
    pub pred_depth: usize,
    /// Predictor token width (JEPA; narrower than `embedding_dim`).
    pub pred_emb_dim: usize,
    pub batch_size: usize,
    pub epochs: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Learning rate at the start of warmup.
    pub start_lr: f64,
    /// Learning rate at the end of training (cosine schedule).
    pub final_lr: f64,
    /// Warmup length in epochs.
    pub warmup: f64,
    pub schedule: LrSchedule,
    /// AdamW weight decay at the start; cosine to `final_weight_decay` at the end. Never
    /// applied to biases, norms or the mask token.
    pub weight_decay: f64,
    pub final_weight_decay: f64,
    /// Clip gradients to this global L2 norm (0 = off).
    pub clip_grad: f64,
    /// EMA momentum of the target encoder: [start, end], linear over training (JEPA).
    pub ema: [f64; 2],
    /// Probability that a batch hides one whole modality (JEPA); else random slot masking.
    pub cross_modal_prob: f64,
    /// Share of the token slots hidden by random masking (JEPA).
    pub mask_ratio: f64,
    /// Flag the run as collapsed when the last epoch's target std is below this (JEPA).
    pub collapse_std: f64,
    /// Supervised: classes of modality used.
    pub model_class: ModelClass,
    /// Supervised: share of each class held out for early stopping.
    pub val_fraction: f64,
    /// Supervised: epochs without a lower validation loss before stopping.
    pub patience: usize,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        PretrainConfig {
            method: Method::Jepa,
            random_seed: None,
            embedding_dim: 32,
            depth: 2,
            heads: 4,
            dim_head: 8,
            mlp_dim: 64,
            dropout: 0.0,
            tokenizer: TokenizerKind::default(),
            pred_depth: 1,
            pred_emb_dim: 24,
            batch_size: 128,
            epochs: 60,
            lr: 1e-3,
            start_lr: 2e-4,
            final_lr: 1e-6,
            warmup: 5.0,
            schedule: LrSchedule::Cosine,
            weight_decay: 0.04,
            final_weight_decay: 0.4,
            clip_grad: 1.0,
            ema: [0.996, 1.0],
            cross_modal_prob: 0.5,
            mask_ratio: 0.5,
            collapse_std: 0.05,
            model_class: ModelClass::Multimodal,
            val_fraction: 0.2,
            patience: 10,
        }
    }
}

impl PretrainConfig {
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
            ("warmup", self.warmup),
            ("weight_decay", self.weight_decay),
            ("final_weight_decay", self.final_weight_decay),
            ("clip_grad", self.clip_grad),
            ("collapse_std", self.collapse_std),
        ])?;
        check_unit("val_fraction", self.val_fraction, true)?;
        if self.lr <= 0.0 {
            return Err(key_error("lr", "must be > 0"));
        }
        if self.pred_depth == 0 || self.pred_emb_dim == 0 {
            return Err(key_error(
                "pred_depth",
                "pred_depth and pred_emb_dim must be at least 1",
            ));
        }
        let [a, b] = self.ema;
        if !(0.0..=1.0).contains(&a) || !(0.0..=1.0).contains(&b) || a > b {
            return Err(key_error(
                "ema",
                "must be [start, end] with 0 ≤ start ≤ end ≤ 1",
            ));
        }
        if !(0.0..=1.0).contains(&self.cross_modal_prob) {
            return Err(key_error("cross_modal_prob", "must be in [0, 1]"));
        }
        check_unit("mask_ratio", self.mask_ratio, true)
    }

    fn arch(&self, c: &Cohort) -> Arch {
        Arch {
            img_tokens: c.imaging.tokens,
            img_width: c.imaging.width,
            clin_tokens: c.clinical.tokens,
            clin_width: c.clinical.width,
            dim: self.embedding_dim,
            depth: self.depth,
            heads: self.heads,
            dim_head: self.dim_head,
            mlp_dim: self.mlp_dim,
            dropout: self.dropout,
            tokenizer: self.tokenizer,
        }
    }

    fn optim(&self, steps_per_epoch: usize) -> OptimSettings {
        OptimSettings {
            lr: self.lr,
            start_lr: self.start_lr,
            final_lr: self.final_lr,
            warmup_steps: (self.warmup * steps_per_epoch as f64).round() as usize,
            cosine: self.schedule == LrSchedule::Cosine,
            weight_decay: self.weight_decay,
            final_weight_decay: self.final_weight_decay,
            clip_grad: self.clip_grad,
        }
    }
}

pub fn resolve(raw: &Value) -> Result<Value, ConfigError> {
    let (cfg, json) = typed::<PretrainConfig>(raw)?;
    cfg.check()?;
    Ok(json)
}

pub fn outputs(_config: &Value) -> Vec<(String, String)> {
    vec![
        ("model".to_string(), "model".to_string()),
        ("curve".to_string(), "curve.json".to_string()),
    ]
}

/// The single path of dependency `name`.
pub(crate) fn one_input<'a>(
    task: &'a TaskFile,
    name: &str,
) -> Result<Option<&'a Path>, StageError> {
    match task.inputs.get(name).map(Vec::as_slice) {
        None | Some([]) => Ok(None),
        Some([p]) => Ok(Some(p.as_path())),
        Some(many) => Err(StageError::Dependency(format!(
            "dependency `{name}` must be one cohort or model, got {} paths",
            many.len()
        ))),
    }
}

/// The error for a required dependency that the task does not give.
pub(crate) fn missing(name: &str) -> StageError {
    StageError::Dependency(format!("dependency `{name}` is missing"))
}

pub(crate) fn read_cohort(p: &Path) -> Result<Cohort, StageError> {
    Cohort::read(p).map_err(StageError::cohort)
}

pub(crate) fn logger(log: &mut dyn Write) -> impl FnMut(&str) + '_ {
    move |line: &str| {
        let _ = writeln!(log, "{line}");
    }
}

pub(crate) fn write_json(path: PathBuf, v: &impl Serialize) -> Result<(), StageError> {
    let bytes = serde_json::to_vec_pretty(v).expect("stage documents serialize");
    std::fs::write(&path, bytes).map_err(StageError::io("write", &path))
}

pub fn run(task: &TaskFile, log: &mut dyn Write) -> Result<Value, StageError> {
    let cfg: PretrainConfig = from_task(&task.config)?;
    let data_dir = one_input(task, "data")?.ok_or_else(|| missing("data"))?;
    let cohort = read_cohort(data_dir)?;
    let seed = cfg.random_seed.unwrap_or(task.seed);
    let model_dir = task.out_dir.join("model");
    let curve_path = task.out_dir.join("curve.json");
    let mut logf = logger(log);
    match cfg.method {
        Method::Jepa => {
            let steps = cohort.n.div_ceil(cfg.batch_size);
            let settings = JepaSettings {
                arch: cfg.arch(&cohort),
                predictor: PredictorArch {
                    pred_depth: cfg.pred_depth,
                    pred_emb_dim: cfg.pred_emb_dim,
                },
                optim: cfg.optim(steps),
                epochs: cfg.epochs,
                batch_size: cfg.batch_size,
                ema: (cfg.ema[0], cfg.ema[1]),
                cross_modal_prob: cfg.cross_modal_prob,
                mask_ratio: cfg.mask_ratio,
                collapse_std: cfg.collapse_std,
                seed,
            };
            let (out, info) =
                pipeline::pretrain_jepa(task.backend, &cohort, settings, &model_dir, &mut logf)
                    .map_err(StageError::model)?;
            write_json(curve_path, &json!({"method": "jepa", "epochs": out.epochs}))?;
            if out.collapsed {
                logf(&format!(
                    "warning: representation collapse: target std {:.4} < {}",
                    out.target_std_last, cfg.collapse_std
                ));
            }
            Ok(json!({
                "method": "jepa",
                "final_loss": out.final_loss,
                "baseline_loss": out.baseline_loss,
                "target_std_min": out.target_std_min,
                "target_std_last": out.target_std_last,
                "collapsed": out.collapsed,
                "epochs": out.epochs.len(),
                "steps": out.steps,
                "n": cohort.n,
                "backend": info.backend,
                "device": info.device,
                "kernels": info.kernels,
            }))
        }
        Method::Supervised => {
            let n_train = cohort.n - (cohort.n as f64 * cfg.val_fraction).round() as usize;
            let settings = TrainSettings {
                arch: cfg.arch(&cohort),
                optim: cfg.optim(n_train.div_ceil(cfg.batch_size)),
                epochs: cfg.epochs,
                batch_size: cfg.batch_size,
                val_fraction: cfg.val_fraction,
                patience: cfg.patience,
                // A supervised pretraining starts from scratch: every epoch may be kept.
                min_epochs: 0,
                head_epochs: 0,
                seed,
            };
            let (out, info) = pipeline::train(
                task.backend,
                &cohort,
                cfg.model_class,
                None,
                settings,
                true,
                &model_dir,
                &mut logf,
            )
            .map_err(StageError::model)?;
            write_json(
                curve_path,
                &json!({"method": "supervised", "epochs": out.epochs}),
            )?;
            Ok(json!({
                "method": "supervised",
                "best_epoch": out.best_epoch,
                "best_val_loss": out.best_val_loss,
                "best_val_auc": out.best_val_auc,
                "final_loss": out.epochs.last().map(|e| e.train_loss),
                "stopped_early": out.stopped_early,
                "epochs": out.epochs.len(),
                "steps": out.steps,
                "n_train": out.n_train,
                "n_val": out.n_val,
                "backend": info.backend,
                "device": info.device,
                "kernels": info.kernels,
            }))
        }
    }
}
