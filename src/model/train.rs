//! Supervised training of a classifier with binary cross-entropy: a stratified validation split,
//! early stopping on validation loss, and the best checkpoint kept. Used by `train` (from scratch
//! or from a pretrained encoder) and by supervised pretraining.
//!
//! Two guards keep a finetuning run from ending on an untrained head: the first `head_epochs`
//! epochs train only the head over a frozen pretrained encoder (linear probing, then finetuning:
//! Kumar et al. 2022), and no epoch before `min_epochs` (nor a head-only one) may become the kept
//! checkpoint or count towards early stopping. On a validation split of a dozen patients the
//! validation loss is noisy enough that an epoch-0 checkpoint could otherwise win.

use burn::module::{AutodiffModule, Module, ModuleMapper, Param};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor};
use serde::Serialize;

use super::data::{Prepared, shuffled_batches, stratified_split};
use super::encoder::Dropout;
use super::heads::{Classifier, predict};
use super::optim::{AdamW, Schedule};
use super::tokens::{BatchTensors, TokenEncoder};
use super::{Arch, ModelError, OptimSettings};
use crate::rng::Rng;

type Best<B> = (Classifier<B>, usize, f64, Option<f64>);

#[derive(Debug, Clone)]
pub struct TrainSettings {
    pub arch: Arch,
    pub optim: OptimSettings,
    pub epochs: usize,
    pub batch_size: usize,
    /// Share of each label class held out for validation.
    pub val_fraction: f64,
    /// Stop after this many epochs without a lower validation loss.
    pub patience: usize,
    /// Epochs (0-based indices below this) that may not be kept or count towards `patience`.
    pub min_epochs: usize,
    /// Epochs that train only the head over a frozen `init` encoder (ignored without `init`).
    pub head_epochs: usize,
    pub seed: u64,
}

/// Makes every float parameter of `module` require a gradient (`trainable`) or not. A frozen
/// module is left as it is by the optimizer, which skips parameters without a gradient.
pub fn set_trainable<B: Backend, M: Module<B>>(module: M, trainable: bool) -> M {
    module.map(&mut RequireGrad(trainable))
}

struct RequireGrad(bool);

impl<B: Backend> ModuleMapper<B> for RequireGrad {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        param.set_require_grad(self.0)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainEpoch {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    pub val_auc: Option<f64>,
    pub lr: f64,
    pub weight_decay: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainOutcome {
    pub epochs: Vec<TrainEpoch>,
    pub best_epoch: usize,
    pub best_val_loss: f64,
    pub best_val_auc: Option<f64>,
    pub stopped_early: bool,
    /// Head-only epochs that ran (`head_epochs` with `init`, capped at the last epoch; else 0).
    pub head_epochs: usize,
    /// The first epoch that could be kept (`max(min_epochs, head_epochs)`, capped by the epochs).
    pub first_eligible: usize,
    pub n_train: usize,
    pub n_val: usize,
    pub steps: usize,
}

/// Mean binary cross-entropy with logits, numerically stable:
/// `max(x, 0) − x·y + log(1 + e^{−|x|})`.
pub fn bce_with_logits<B: Backend>(logits: Tensor<B, 1>, labels: Tensor<B, 1>) -> Tensor<B, 1> {
    let pos = logits.clone().clamp_min(0.0);
    let soft = logits.clone().abs().neg().exp().log1p();
    (pos - logits * labels + soft).mean()
}

/// Mann–Whitney AUC (ties ½); `None` when a class is absent.
pub fn auc(scores: &[f32], labels: &[u8]) -> Option<f64> {
    let s: Vec<f64> = scores.iter().map(|&x| x as f64).collect();
    let l: Vec<bool> = labels.iter().map(|&y| y == 1).collect();
    crate::stats::auc(&s, &l, crate::stats::Direction::HigherIsPositive).ok()
}

fn bce_host(logits: &[f32], labels: &[u8]) -> f64 {
    let n = logits.len().max(1) as f64;
    logits
        .iter()
        .zip(labels)
        .map(|(&x, &y)| {
            let x = x as f64;
            x.max(0.0) - x * y as f64 + (-x.abs()).exp().ln_1p()
        })
        .sum::<f64>()
        / n
}

/// One supervised step on a labeled `batch`: BCE loss, backward, AdamW with `(lr, weight decay,
/// gradient clip)`. Returns the updated model and the batch's loss.
pub fn train_step<B: AutodiffBackend>(
    model: Classifier<B>,
    opt: &mut AdamW<B>,
    batch: &BatchTensors<B>,
    drop: &mut Dropout,
    (lr, weight_decay, clip): (f64, f64, f64),
) -> Result<(Classifier<B>, f64), ModelError> {
    let y = batch
        .labels
        .clone()
        .ok_or_else(|| ModelError::Data("a training batch has no labels".to_string()))?;
    let loss = bce_with_logits(model.forward(batch, drop), y);
    let grads = loss.backward();
    let l = loss.into_scalar().elem::<f64>();
    let (model, _) = opt.step(model, &grads, lr, weight_decay, clip);
    Ok((model, l))
}

/// Trains a classifier on the labeled `data`; `init` replaces the encoder's initial weights.
/// Returns the best classifier (lowest validation loss) and the curve.
pub fn train_classifier<B: AutodiffBackend>(
    data: &Prepared,
    init: Option<TokenEncoder<B>>,
    s: &TrainSettings,
    device: &B::Device,
    log: &mut dyn FnMut(&str),
) -> Result<(Classifier<B::InnerBackend>, TrainOutcome), ModelError> {
    let labels = data
        .labels
        .as_ref()
        .ok_or_else(|| ModelError::Data("the training cohort has no labels".to_string()))?;
    let (train_idx, val_idx) =
        stratified_split(labels, s.val_fraction, &mut Rng::stream(s.seed, "split"));
    if train_idx.is_empty() || val_idx.is_empty() {
        return Err(ModelError::Data(format!(
            "the training cohort ({} patients) is too small for a validation split of {}",
            data.n, s.val_fraction
        )));
    }
    let val = data.subset(&val_idx);
    let val_labels = val.labels.clone().unwrap_or_default();
    let mut rng = Rng::stream(s.seed, "train-init");
    let mut model = Classifier::<B>::new(&s.arch, &mut rng, device);
    // The last epoch always trains the whole model.
    let head_epochs = if init.is_some() {
        s.head_epochs.min(s.epochs.saturating_sub(1))
    } else {
        0
    };
    if let Some(enc) = init {
        model.encoder = if head_epochs > 0 {
            set_trainable(enc, false)
        } else {
            enc
        };
    }
    let first_eligible = s
        .min_epochs
        .max(head_epochs)
        .min(s.epochs.saturating_sub(1));
    let steps_per_epoch = train_idx.len().div_ceil(s.batch_size.max(1));
    let sched = Schedule {
        s: s.optim.clone(),
        total_steps: steps_per_epoch * s.epochs,
    };
    let mut opt = AdamW::<B>::default();
    let mut shuffle = Rng::stream(s.seed, "train-shuffle");
    let mut drop_rng = Rng::stream(s.seed, "train-dropout");
    // (model, epoch, validation loss, validation AUC) of the best epoch so far.
    let mut best: Option<Best<B::InnerBackend>> = None;
    let mut epochs = Vec::new();
    let mut step = 0usize;
    let mut since_best = 0usize;
    let mut stopped_early = false;
    for epoch in 0..s.epochs {
        if head_epochs > 0 && epoch == head_epochs {
            log(&format!(
                "epoch {epoch}: unfreezing the encoder after {head_epochs} head-only epochs"
            ));
            model.encoder = set_trainable(model.encoder, true);
        }
        let (lr0, wd0) = (sched.lr(step), sched.weight_decay(step));
        let (mut loss_sum, mut seen) = (0.0, 0.0);
        for idx in shuffled_batches(&train_idx, s.batch_size, &mut shuffle) {
            let host = data.batch(&idx);
            let batch = BatchTensors::<B>::from_host(
                &host,
                (data.img_tokens, data.img_width),
                (data.clin_tokens, data.clin_width),
                device,
            );
            let mut drop = Dropout {
                p: s.arch.dropout,
                rng: Some(&mut drop_rng),
            };
            let (m, l) = train_step(
                model,
                &mut opt,
                &batch,
                &mut drop,
                (sched.lr(step), sched.weight_decay(step), s.optim.clip_grad),
            )?;
            if !l.is_finite() {
                return Err(ModelError::Training(format!(
                    "the training loss became {l} at step {step}"
                )));
            }
            model = m;
            loss_sum += l * idx.len() as f64;
            seen += idx.len() as f64;
            step += 1;
        }
        let inner = model.valid();
        let scores = predict(&inner, &val, s.batch_size.max(256), device)?;
        let val_loss = bce_host(&scores, &val_labels);
        let val_auc = auc(&scores, &val_labels);
        log(&format!(
            "epoch {epoch}: train loss {:.5} val loss {val_loss:.5} val auc {}",
            loss_sum / seen,
            val_auc.map_or("-".to_string(), |a| format!("{a:.4}"))
        ));
        epochs.push(TrainEpoch {
            epoch,
            train_loss: loss_sum / seen,
            val_loss,
            val_auc,
            lr: lr0,
            weight_decay: wd0,
        });
        if epoch < first_eligible {
            continue;
        }
        if best.as_ref().is_none_or(|b| val_loss < b.2) {
            best = Some((inner, epoch, val_loss, val_auc));
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= s.patience.max(1) {
                stopped_early = true;
                break;
            }
        }
    }
    let (best_model, best_epoch, best_val_loss, best_val_auc) =
        best.ok_or_else(|| ModelError::Training("training ran zero epochs".to_string()))?;
    Ok((
        best_model,
        TrainOutcome {
            epochs,
            best_epoch,
            best_val_loss,
            best_val_auc,
            stopped_early,
            head_epochs,
            first_eligible,
            n_train: train_idx.len(),
            n_val: val_idx.len(),
            steps: step,
        },
    ))
}
