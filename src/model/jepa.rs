//! JEPA pretraining (docs/study.md, "Canonical JEPA recipe"): a context encoder sees some token
//! slots, a narrower predictor predicts the layer-normed features that an EMA target encoder
//! computes for the hidden slots, with a smooth-L1 loss. Masks are cross-modal (predict one
//! modality from the other) or random, one mask per batch. The collapse monitor logs the
//! per-slot, per-dimension standard deviation of the targets across patients and the loss of
//! predicting their mean.

use burn::module::{AutodiffModule, Module};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor};
use serde::Serialize;

use super::data::{Prepared, shuffled_batches};
use super::encoder::{Dropout, Keys, index_tensor};
use super::fused;
use super::optim::{AdamW, Schedule, ema_update};
use super::predictor::Predictor;
use super::tokens::{BatchTensors, TokenEncoder};
use super::{Arch, ModelError, OptimSettings, PredictorArch};
use crate::rng::Rng;

/// Everything a JEPA run needs besides the data.
#[derive(Debug, Clone)]
pub struct JepaSettings {
    pub arch: Arch,
    pub predictor: PredictorArch,
    pub optim: OptimSettings,
    pub epochs: usize,
    pub batch_size: usize,
    /// EMA momentum at the first and the last step (linear in between).
    pub ema: (f64, f64),
    /// Probability that a batch is masked cross-modally (else random slot masking).
    pub cross_modal_prob: f64,
    /// Share of slots hidden by random masking.
    pub mask_ratio: f64,
    /// Target std below which the run is flagged as collapsed.
    pub collapse_std: f64,
    pub seed: u64,
}

/// The trained modules: the online part (context encoder + predictor).
#[derive(Module, Debug)]
pub struct Online<B: Backend> {
    pub context: TokenEncoder<B>,
    pub predictor: Predictor<B>,
}

/// Which slots a batch keeps as context and which it predicts (sorted, disjoint, non-empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskPlan {
    pub keep: Vec<usize>,
    pub target: Vec<usize>,
}

impl MaskPlan {
    /// Context = one modality, target = the other.
    pub fn cross_modal(img_tokens: usize, clin_tokens: usize, predict_clinical: bool) -> MaskPlan {
        let img: Vec<usize> = (0..img_tokens).collect();
        let clin: Vec<usize> = (img_tokens..img_tokens + clin_tokens).collect();
        if predict_clinical {
            MaskPlan {
                keep: img,
                target: clin,
            }
        } else {
            MaskPlan {
                keep: clin,
                target: img,
            }
        }
    }

    /// Draws a plan: cross-modal with probability `cross_modal_prob`, else `mask_ratio` of the
    /// slots at random (at least one kept and one hidden).
    pub fn sample(s: &JepaSettings, rng: &mut Rng) -> MaskPlan {
        let (ti, tc) = (s.arch.img_tokens, s.arch.clin_tokens);
        let t = ti + tc;
        if ti > 0 && tc > 0 && rng.uniform() < s.cross_modal_prob {
            return MaskPlan::cross_modal(ti, tc, rng.below(2) == 0);
        }
        let mut slots: Vec<usize> = (0..t).collect();
        rng.shuffle(&mut slots);
        let n = ((s.mask_ratio * t as f64).round() as usize).clamp(1, t - 1);
        let mut target = slots[..n].to_vec();
        let mut keep = slots[n..].to_vec();
        target.sort_unstable();
        keep.sort_unstable();
        MaskPlan { keep, target }
    }
}

/// What one step measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepStats {
    pub loss: f64,
    /// Loss of predicting each slot's batch mean target.
    pub baseline: f64,
    /// Mean over slots and dimensions of the targets' std across patients.
    pub target_std: f64,
    pub grad_norm: f64,
}

/// One epoch of the curve.
#[derive(Debug, Clone, Serialize)]
pub struct JepaEpoch {
    pub epoch: usize,
    pub loss: f64,
    pub baseline: f64,
    pub target_std: f64,
    pub lr: f64,
    pub weight_decay: f64,
    pub momentum: f64,
    pub grad_norm: f64,
}

/// The run's summary.
#[derive(Debug, Clone, Serialize)]
pub struct JepaOutcome {
    pub epochs: Vec<JepaEpoch>,
    pub final_loss: f64,
    pub baseline_loss: f64,
    pub target_std_min: f64,
    pub target_std_last: f64,
    pub collapsed: bool,
    pub steps: usize,
}

/// The variance offset of the targets' LayerNorm (no affine parameters; I-JEPA normalizes the
/// target encoder's output per token before the loss).
pub const TARGET_NORM_EPSILON: f64 = 1e-6;

/// Smooth-L1 (β = 1), elementwise: `0.5 d²` for `|d| < 1`, else `|d| − 0.5`.
pub fn smooth_l1<B: Backend, const D: usize>(d: Tensor<B, D>) -> Tensor<B, D> {
    let a = d.abs();
    let q = a.clone().clamp_max(1.0);
    q.clone() * (a - q.mul_scalar(0.5))
}

/// The JEPA training state: online modules, EMA target, optimizer.
pub struct JepaTrainer<B: AutodiffBackend> {
    pub online: Online<B>,
    pub target: TokenEncoder<B::InnerBackend>,
    pub opt: AdamW<B>,
    pub settings: JepaSettings,
    pub device: B::Device,
    rng: Rng,
}

impl<B: AutodiffBackend> JepaTrainer<B> {
    pub fn new(settings: JepaSettings, device: B::Device) -> Self {
        let mut rng = Rng::stream(settings.seed, "jepa-init");
        let context = TokenEncoder::<B>::new(&settings.arch, &mut rng, &device);
        let predictor = Predictor::new(
            settings.arch.dim,
            settings.arch.tokens(),
            &settings.predictor,
            &mut rng,
            &device,
        );
        let target = context.valid();
        JepaTrainer {
            online: Online { context, predictor },
            target,
            opt: AdamW::default(),
            rng: Rng::stream(settings.seed, "jepa-dropout"),
            settings,
            device,
        }
    }

    /// One optimizer step and EMA update on `batch` with `plan`.
    pub fn step(
        &mut self,
        batch: &BatchTensors<B>,
        plan: &MaskPlan,
        lr: f64,
        weight_decay: f64,
        momentum: f64,
    ) -> StepStats {
        let dev = &self.device;
        let keep = index_tensor::<B>(&plan.keep, dev);
        let target = index_tensor::<B>(&plan.target, dev);
        let keep_mask = batch.token_mask.clone().select(1, keep.clone()); // [batch, n_keep]
        let target_mask = batch.token_mask.clone().select(1, target.clone()); // [batch, n_target]
        let [b, nt] = target_mask.dims();
        let keep_keys = Keys::of(keep_mask.clone(), batch.complete);
        let target_keys = Keys::of(target_mask.clone(), batch.complete);

        // Targets: EMA encoder over every present token, layer-normed, at the hidden slots.
        let inner = BatchTensors::<B::InnerBackend> {
            imaging: batch.imaging.clone().inner(),
            clinical: batch.clinical.clone().inner(),
            token_mask: batch.token_mask.clone().inner(),
            labels: None,
            complete: batch.complete,
        };
        let h = self
            .target
            .forward(&inner, &inner.keys(), &mut Dropout::none());
        let h = fused::layer_norm_plain(h, TARGET_NORM_EPSILON).select(1, target.clone().inner()); // [batch, n_target, dim]

        // A hidden slot counts when present and when the patient has some context left.
        let has_context = keep_mask.clone().sum_dim(1).clamp_max(1.0); // [batch, 1]
        let weight = (target_mask.clone() * has_context).detach(); // [batch, n_target]
        let total = weight.clone().sum().clamp_min(1.0);

        let mut drop = Dropout {
            p: self.settings.arch.dropout,
            rng: Some(&mut self.rng),
        };
        let z = self
            .online
            .context
            .forward_subset(batch, &keep, &keep_keys, &mut drop);
        let pred =
            self.online
                .predictor
                .forward(z, &keep, keep_keys, &target, target_keys, &mut drop);
        let per_token = smooth_l1(pred - Tensor::from_inner(h.clone()))
            .mean_dim(2)
            .reshape([b, nt]);
        let loss = (per_token * weight.clone()).sum() / total.clone();

        // Monitors (no gradient): per-slot mean/std of the targets across patients.
        let w = weight.inner().reshape([b, nt, 1]);
        let count = w.clone().sum_dim(0).clamp_min(1.0); // [1, n_target, 1]
        let mean = (h.clone() * w.clone()).sum_dim(0) / count.clone(); // [1, n_target, dim]
        let dev_ = h - mean;
        let std = ((dev_.clone() * dev_.clone() * w.clone()).sum_dim(0) / count)
            .sqrt()
            .mean();
        let base = (smooth_l1(dev_).mean_dim(2) * w).sum() / total.clone().inner();

        let grads = loss.backward();
        let loss_v = loss.into_scalar().elem::<f64>();
        let (online, grad_norm) = self.opt.step(
            self.online.clone(),
            &grads,
            lr,
            weight_decay,
            self.settings.optim.clip_grad,
        );
        self.online = online;
        let ctx = self.online.context.valid();
        self.target = ema_update(self.target.clone(), &ctx, momentum);
        StepStats {
            loss: loss_v,
            baseline: base.into_scalar().elem::<f64>(),
            target_std: std.into_scalar().elem::<f64>(),
            grad_norm,
        }
    }
}

/// Pretrains on `data` (labels ignored). `log` receives one line per epoch.
pub fn pretrain<B: AutodiffBackend>(
    data: &Prepared,
    s: &JepaSettings,
    device: &B::Device,
    log: &mut dyn FnMut(&str),
) -> Result<(JepaTrainer<B>, JepaOutcome), ModelError> {
    if data.n == 0 {
        return Err(ModelError::Data(
            "the pretraining cohort is empty".to_string(),
        ));
    }
    let steps_per_epoch = data.n.div_ceil(s.batch_size.max(1));
    let total = steps_per_epoch * s.epochs;
    let sched = Schedule {
        s: s.optim.clone(),
        total_steps: total,
    };
    let mut trainer = JepaTrainer::<B>::new(s.clone(), device.clone());
    let mut shuffle = Rng::stream(s.seed, "jepa-shuffle");
    let mut masks = Rng::stream(s.seed, "jepa-masks");
    let all: Vec<usize> = (0..data.n).collect();
    let mut epochs = Vec::with_capacity(s.epochs);
    let mut step = 0usize;
    for epoch in 0..s.epochs {
        let (mut loss, mut base, mut std, mut gn, mut seen) = (0.0, 0.0, 0.0, 0.0, 0.0);
        let (lr0, wd0, m0) = (
            sched.lr(step),
            sched.weight_decay(step),
            momentum(s.ema, step, total),
        );
        for idx in shuffled_batches(&all, s.batch_size, &mut shuffle) {
            let host = data.batch(&idx);
            let batch = BatchTensors::<B>::from_host(
                &host,
                (data.img_tokens, data.img_width),
                (data.clin_tokens, data.clin_width),
                device,
            );
            let plan = MaskPlan::sample(s, &mut masks);
            let st = trainer.step(
                &batch,
                &plan,
                sched.lr(step),
                sched.weight_decay(step),
                momentum(s.ema, step, total),
            );
            if !st.loss.is_finite() {
                return Err(ModelError::Training(format!(
                    "the JEPA loss became {} at step {step}",
                    st.loss
                )));
            }
            let k = idx.len() as f64;
            loss += st.loss * k;
            base += st.baseline * k;
            std += st.target_std * k;
            gn += st.grad_norm * k;
            seen += k;
            step += 1;
        }
        let e = JepaEpoch {
            epoch,
            loss: loss / seen,
            baseline: base / seen,
            target_std: std / seen,
            lr: lr0,
            weight_decay: wd0,
            momentum: m0,
            grad_norm: gn / seen,
        };
        log(&format!(
            "epoch {epoch}: loss {:.5} baseline {:.5} target std {:.4} lr {:.2e}",
            e.loss, e.baseline, e.target_std, e.lr
        ));
        epochs.push(e);
    }
    let last = epochs
        .last()
        .ok_or_else(|| ModelError::Training("pretraining ran zero epochs".to_string()))?;
    let std_min = epochs
        .iter()
        .map(|e| e.target_std)
        .fold(f64::INFINITY, f64::min);
    let outcome = JepaOutcome {
        final_loss: last.loss,
        baseline_loss: last.baseline,
        target_std_min: std_min,
        target_std_last: last.target_std,
        collapsed: last.target_std < s.collapse_std,
        steps: step,
        epochs,
    };
    Ok((trainer, outcome))
}

/// EMA momentum at `step` of `total`: linear from `ema.0` to `ema.1`.
pub fn momentum(ema: (f64, f64), step: usize, total: usize) -> f64 {
    let p = (step as f64 / total.max(1) as f64).min(1.0);
    ema.0 + (ema.1 - ema.0) * p
}
