//! Unit and scientific checks of the model zoo on tiny synthetic cohorts.

use burn::module::AutodiffModule;
use burn::tensor::{Tensor, TensorData};

use super::TokenizerKind;
use super::backend::CpuBackend;
use super::checkpoint;
use super::data::{Normalization, Prepared};
use super::encoder::{Dropout, Keys};
use super::heads::Classifier;
use super::jepa::{JepaSettings, JepaTrainer, MaskPlan, pretrain};
use super::predictor::Predictor;
use super::tokens::{BatchTensors, Tokenizer};
use super::train::{TrainSettings, auc, train_classifier};
use super::{Arch, ModelClass, OptimSettings, PredictorArch, to_vec};
use crate::cohort::{COHORT_FORMAT, Cohort, Modality};
use crate::rng::Rng;

type B = CpuBackend;

/// A cohort whose imaging and clinical tokens are noisy linear views of a shared 2-d latent `z`;
/// the label is `z0 > 0`. Clinical is missing for a `missing` share of patients.
pub fn tiny_cohort(n: usize, seed: u64, missing: f64) -> Cohort {
    let (ti, di, tc, dc) = (3, 4, 2, 4);
    let mut rng = Rng::stream(seed, "tiny-cohort");
    // Fixed loadings (the same for every cohort of the test).
    let mut lr = Rng::stream(99, "loadings");
    let li: Vec<f64> = (0..ti * di * 2).map(|_| lr.normal()).collect();
    let lc: Vec<f64> = (0..tc * dc * 2).map(|_| lr.normal()).collect();
    let mut imaging = Modality::zeros(n, ti, di);
    let mut clinical = Modality::zeros(n, tc, dc);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let z = [rng.normal(), rng.normal()];
        labels.push((z[0] > 0.0) as u8);
        for (j, v) in imaging.patient_mut(i).iter_mut().enumerate() {
            *v = (li[2 * j] * z[0] + li[2 * j + 1] * z[1] + 0.1 * rng.normal()) as f32;
        }
        if rng.uniform() < missing {
            clinical.present[i] = false;
        } else {
            for (j, v) in clinical.patient_mut(i).iter_mut().enumerate() {
                *v = (lc[2 * j] * z[0] + lc[2 * j + 1] * z[1] + 0.1 * rng.normal()) as f32;
            }
        }
    }
    Cohort {
        format: COHORT_FORMAT,
        name: "tiny".into(),
        n,
        ids: (0..n).map(|i| format!("p{i:04}")).collect(),
        labels: Some(labels),
        imaging,
        clinical,
        true_logit: None,
    }
}

fn arch(c: &Cohort) -> Arch {
    Arch {
        img_tokens: c.imaging.tokens,
        img_width: c.imaging.width,
        clin_tokens: c.clinical.tokens,
        clin_width: c.clinical.width,
        dim: 16,
        depth: 1,
        heads: 2,
        dim_head: 8,
        mlp_dim: 32,
        dropout: 0.0,
        tokenizer: TokenizerKind::PerSlot,
    }
}

fn optim(lr: f64, warmup: usize) -> OptimSettings {
    OptimSettings {
        lr,
        start_lr: lr / 10.0,
        final_lr: 1e-6,
        warmup_steps: warmup,
        cosine: true,
        weight_decay: 0.04,
        final_weight_decay: 0.4,
        clip_grad: 1.0,
    }
}

fn batch_of(data: &Prepared, idx: &[usize]) -> BatchTensors<B> {
    BatchTensors::from_host(
        &data.batch(idx),
        (data.img_tokens, data.img_width),
        (data.clin_tokens, data.clin_width),
        &Default::default(),
    )
}

#[test]
fn shapes_of_classifier_and_predictor() {
    let c = tiny_cohort(6, 1, 0.0);
    let a = arch(&c);
    let data = Prepared::new(&c, &Normalization::fit(&c), ModelClass::Multimodal).unwrap();
    let b = batch_of(&data, &[0, 1, 2, 3]);
    let dev = Default::default();
    let mut rng = Rng::stream(0, "t");
    let m = Classifier::<B>::new(&a, &mut rng, &dev);
    assert_eq!(m.forward(&b, &mut Dropout::none()).dims(), [4]);
    assert_eq!(m.pooled(&b, &mut Dropout::none()).dims(), [4, 16]);
    let p = Predictor::<B>::new(
        16,
        a.tokens(),
        &PredictorArch {
            pred_depth: 1,
            pred_emb_dim: 8,
        },
        &mut rng,
        &dev,
    );
    let keep = Tensor::from_data(TensorData::new(vec![0i64, 1, 2], [3]), &dev);
    let tgt = Tensor::from_data(TensorData::new(vec![3i64, 4], [2]), &dev);
    let km = b.token_mask.clone().select(1, keep.clone());
    let tm = b.token_mask.clone().select(1, tgt.clone());
    let z = m
        .encoder
        .forward_subset(&b, &keep, &Keys::Masked(km.clone()), &mut Dropout::none());
    assert_eq!(z.dims(), [4, 3, 16]);
    let out = p.forward(
        z,
        &keep,
        Keys::Masked(km),
        &tgt,
        Keys::Masked(tm),
        &mut Dropout::none(),
    );
    assert_eq!(out.dims(), [4, 2, 16]);
}

#[test]
fn per_slot_tokenizers_tell_slots_apart_and_per_modality_ones_do_not() {
    let dev = Default::default();
    let c = tiny_cohort(2, 1, 0.0);
    // Every imaging token of a patient carries the same features.
    let (ti, wi) = (c.imaging.tokens, c.imaging.width);
    let same: Vec<f32> = (0..2 * ti)
        .flat_map(|_| (0..wi).map(|j| j as f32 - 1.5))
        .collect();
    let clin = vec![0f32; 2 * c.clinical.tokens * c.clinical.width];
    let imaging = Tensor::<B, 3>::from_data(TensorData::new(same, [2, ti, wi]), &dev);
    let clinical = Tensor::<B, 3>::from_data(
        TensorData::new(clin, [2, c.clinical.tokens, c.clinical.width]),
        &dev,
    );
    for (kind, distinct) in [
        (TokenizerKind::PerSlot, true),
        (TokenizerKind::PerModality, false),
    ] {
        let a = Arch {
            tokenizer: kind,
            ..arch(&c)
        };
        let t = Tokenizer::<B>::new(&a, &mut Rng::stream(3, "t"), &dev);
        let maps = t.imaging.dims()[0];
        assert_eq!(maps, if distinct { ti } else { 1 });
        // Remove the slot and modality embeddings: what is left is the projection.
        let x = t.forward(imaging.clone(), clinical.clone());
        let offsets = t.forward(imaging.clone().zeros_like(), clinical.clone());
        let v = to_vec(x - offsets).unwrap();
        let d = a.dim;
        let (tok0, tok1) = (&v[..d], &v[d..2 * d]);
        let gap = tok0
            .iter()
            .zip(tok1)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        // Equal up to the rounding of adding and removing the embeddings.
        assert_eq!(gap > 1e-4, distinct, "{kind:?}: gap {gap}");
        // Slot 1 of a per-slot tokenizer is exactly its own map applied to the features.
        if distinct {
            let w = to_vec(t.imaging.val().narrow(0, 1, 1)).unwrap();
            for (k, got) in tok1.iter().enumerate() {
                let want: f32 = (0..wi).map(|j| (j as f32 - 1.5) * w[j * d + k]).sum();
                assert!((got - want).abs() < 1e-5, "dim {k}: {got} vs {want}");
            }
        }
    }
}

#[test]
fn a_missing_modality_changes_nothing_whatever_its_values() {
    let mut c = tiny_cohort(4, 2, 0.0);
    c.clinical.present[1] = false;
    let a = arch(&c);
    let norm = Normalization::fit(&c);
    let m = Classifier::<B>::new(&a, &mut Rng::stream(3, "m"), &Default::default());
    let pooled = |c: &Cohort| {
        let data = Prepared::new(c, &norm, ModelClass::Multimodal).unwrap();
        let b = batch_of(&data, &[0, 1, 2, 3]);
        (
            to_vec(m.pooled(&b, &mut Dropout::none())).unwrap(),
            to_vec(m.forward(&b, &mut Dropout::none())).unwrap(),
        )
    };
    let before = pooled(&c);
    // The model must not read the missing patient's clinical values, even absurd ones; build
    // the batch by hand so normalization cannot zero them first.
    let data = Prepared::new(&c, &norm, ModelClass::Multimodal).unwrap();
    let mut host = data.batch(&[0, 1, 2, 3]);
    let k = c.clinical.tokens * c.clinical.width;
    for v in &mut host.clinical[k..2 * k] {
        *v = 1.0e3;
    }
    let b = BatchTensors::<B>::from_host(
        &host,
        (data.img_tokens, data.img_width),
        (data.clin_tokens, data.clin_width),
        &Default::default(),
    );
    let after = (
        to_vec(m.pooled(&b, &mut Dropout::none())).unwrap(),
        to_vec(m.forward(&b, &mut Dropout::none())).unwrap(),
    );
    assert_eq!(before, after);
    // And the present patients really do depend on their clinical values.
    for v in &mut host.clinical[..k] {
        *v = 1.0e3;
    }
    let b = BatchTensors::<B>::from_host(
        &host,
        (data.img_tokens, data.img_width),
        (data.clin_tokens, data.clin_width),
        &Default::default(),
    );
    assert_ne!(
        to_vec(m.pooled(&b, &mut Dropout::none())).unwrap()[..16],
        before.0[..16]
    );
}

#[test]
fn checkpoint_round_trips_bytes() {
    let c = tiny_cohort(4, 2, 0.0);
    let m = Classifier::<B>::new(&arch(&c), &mut Rng::stream(5, "m"), &Default::default());
    let (shapes, bytes) = checkpoint::to_bytes(&m).unwrap();
    let other = Classifier::<B>::new(&arch(&c), &mut Rng::stream(6, "m"), &Default::default());
    let loaded = checkpoint::from_bytes(other, &shapes, &bytes, &Default::default()).unwrap();
    assert_eq!(checkpoint::to_bytes(&loaded).unwrap().1, bytes);
    let bad = vec![vec![1usize]];
    let third = Classifier::<B>::new(&arch(&c), &mut Rng::stream(6, "m"), &Default::default());
    assert!(checkpoint::from_bytes(third, &bad, &bytes, &Default::default()).is_err());
}

fn jepa_settings(c: &Cohort, epochs: usize, seed: u64) -> JepaSettings {
    JepaSettings {
        arch: arch(c),
        predictor: PredictorArch {
            pred_depth: 1,
            pred_emb_dim: 8,
        },
        optim: optim(2e-3, 10),
        epochs,
        batch_size: 32,
        ema: (0.996, 1.0),
        cross_modal_prob: 0.5,
        mask_ratio: 0.5,
        collapse_std: 0.05,
        seed,
    }
}

#[test]
fn ema_target_follows_the_context_encoder() {
    let c = tiny_cohort(32, 4, 0.0);
    let s = jepa_settings(&c, 1, 1);
    let data = Prepared::new(&c, &Normalization::fit(&c), ModelClass::Multimodal).unwrap();
    let mut t = JepaTrainer::<B>::new(s, Default::default());
    let before = checkpoint::to_bytes(&t.target).unwrap().1;
    let b = batch_of(&data, &(0..32).collect::<Vec<_>>());
    let plan = MaskPlan::cross_modal(3, 2, true);
    // Momentum 1: the target must not move; momentum 0: it must equal the context encoder.
    t.step(&b, &plan, 1e-3, 0.0, 1.0);
    assert_eq!(checkpoint::to_bytes(&t.target).unwrap().1, before);
    t.step(&b, &plan, 1e-3, 0.0, 0.0);
    assert_eq!(
        checkpoint::to_bytes(&t.target).unwrap().1,
        checkpoint::to_bytes(&t.online.context.valid()).unwrap().1
    );
}

#[test]
fn jepa_loss_falls_well_below_the_mean_baseline_without_collapse() {
    let c = tiny_cohort(256, 7, 0.0);
    let data = Prepared::new(&c, &Normalization::fit(&c), ModelClass::Multimodal).unwrap();
    let s = JepaSettings {
        batch_size: 16,
        optim: optim(3e-3, 20),
        ..jepa_settings(&c, 30, 3)
    };
    let mut lines = Vec::new();
    let (_, out) = pretrain::<B>(&data, &s, &Default::default(), &mut |l| {
        lines.push(l.to_string())
    })
    .unwrap();
    let first = &out.epochs[0];
    eprintln!("{}", lines.join("\n"));
    assert!(!out.collapsed, "collapsed: {out:?}");
    assert!(
        out.final_loss < 0.5 * out.baseline_loss,
        "loss {} vs baseline {} (first epoch {} / {})",
        out.final_loss,
        out.baseline_loss,
        first.loss,
        first.baseline
    );
    assert!(out.final_loss < first.loss);
}

#[test]
fn supervised_training_learns_a_separable_signal_and_is_deterministic() {
    let c = tiny_cohort(200, 11, 0.3);
    let data = Prepared::new(&c, &Normalization::fit(&c), ModelClass::Multimodal).unwrap();
    let s = TrainSettings {
        arch: arch(&c),
        optim: OptimSettings {
            weight_decay: 0.01,
            final_weight_decay: 0.01,
            ..optim(3e-3, 5)
        },
        epochs: 15,
        batch_size: 32,
        val_fraction: 0.25,
        patience: 5,
        min_epochs: 0,
        head_epochs: 0,
        seed: 5,
    };
    let run = || {
        let (m, out) =
            train_classifier::<B>(&data, None, &s, &Default::default(), &mut |_| {}).unwrap();
        (checkpoint::to_bytes(&m).unwrap().1, out)
    };
    let (bytes, out) = run();
    let auc_best = out.best_val_auc.unwrap();
    assert!(auc_best > 0.85, "val auc {auc_best}: {out:?}");
    assert!(
        out.best_val_loss < 0.5,
        "val loss {} vs chance 0.69",
        out.best_val_loss
    );
    let (bytes2, out2) = run();
    assert_eq!(bytes, bytes2, "training twice gave different weights");
    assert_eq!(out.best_val_loss.to_bits(), out2.best_val_loss.to_bits());
    // Scores on a fresh cohort stay informative.
    let test = tiny_cohort(200, 12, 0.3);
    let td = Prepared::new(&test, &Normalization::fit(&c), ModelClass::Multimodal).unwrap();
    let m = Classifier::<B>::new(&s.arch, &mut Rng::stream(0, "x"), &Default::default());
    let m = checkpoint::from_bytes(
        m,
        &checkpoint::to_bytes(&m_shapes(&s)).unwrap().0,
        &bytes,
        &Default::default(),
    )
    .unwrap();
    let scores = super::heads::predict(&m, &td, 64, &Default::default()).unwrap();
    let a = auc(&scores, test.labels.as_ref().unwrap()).unwrap();
    assert!(a > 0.85, "test auc {a}");
}

fn m_shapes(s: &TrainSettings) -> Classifier<B> {
    Classifier::<B>::new(&s.arch, &mut Rng::stream(0, "x"), &Default::default())
}

#[test]
fn a_batch_with_every_token_present_skips_the_mask_and_gives_the_same_bits() {
    let c = tiny_cohort(6, 1, 0.0);
    let a = arch(&c);
    let data = Prepared::new(&c, &Normalization::fit(&c), ModelClass::Multimodal).unwrap();
    let b = batch_of(&data, &[0, 1, 2, 3]);
    assert!(b.complete, "the tiny cohort has every token present");
    let dev = Default::default();
    let m = Classifier::<B>::new(&a, &mut Rng::stream(0, "t"), &dev);
    let all = m.encoder.forward(&b, &b.keys(), &mut Dropout::none());
    let ones = Keys::Masked(Tensor::ones([4, a.tokens()], &dev));
    let masked = m.encoder.forward(&b, &ones, &mut Dropout::none());
    assert!(matches!(b.keys(), Keys::All(_)));
    assert_eq!(
        to_vec(all.flatten::<1>(0, 2)).unwrap(),
        to_vec(masked.flatten::<1>(0, 2)).unwrap()
    );
}

/// The weights of an encoder, flattened, for comparing before and after training.
fn encoder_bytes<Bk: burn::tensor::backend::Backend>(
    e: &super::tokens::TokenEncoder<Bk>,
) -> Vec<u8> {
    checkpoint::to_bytes(e).unwrap().1
}

fn finetune_settings(
    c: &Cohort,
    epochs: usize,
    min_epochs: usize,
    head_epochs: usize,
) -> TrainSettings {
    TrainSettings {
        arch: arch(c),
        optim: optim(3e-3, 2),
        epochs,
        batch_size: 32,
        val_fraction: 0.25,
        patience: 2,
        min_epochs,
        head_epochs,
        seed: 3,
    }
}

#[test]
fn a_frozen_encoder_is_left_as_it_was_while_the_head_trains() {
    let c = tiny_cohort(64, 21, 0.0);
    let data = Prepared::new(&c, &Normalization::fit(&c), ModelClass::Multimodal).unwrap();
    let dev = Default::default();
    let s = finetune_settings(&c, 4, 0, 0);
    let mut model = Classifier::<B>::new(&s.arch, &mut Rng::stream(8, "pretrained"), &dev);
    let encoder_before = encoder_bytes(&model.encoder);
    let head_before = checkpoint::to_bytes(&model.head).unwrap().1;
    model.encoder = super::train::set_trainable(model.encoder, false);
    let idx: Vec<usize> = (0..32).collect();
    let batch = batch_of(&data, &idx);
    let mut opt = super::optim::AdamW::<B>::default();
    let step = |m, opt: &mut super::optim::AdamW<B>| {
        super::train::train_step(m, opt, &batch, &mut Dropout::none(), (1e-2, 0.0, 1.0))
            .unwrap()
            .0
    };
    let model = step(model, &mut opt);
    assert_eq!(
        encoder_bytes(&model.encoder),
        encoder_before,
        "a frozen encoder moved"
    );
    assert_ne!(
        checkpoint::to_bytes(&model.head).unwrap().1,
        head_before,
        "the head did not train"
    );
    let mut model = model;
    model.encoder = super::train::set_trainable(model.encoder, true);
    let model = step(model, &mut opt);
    assert_ne!(
        encoder_bytes(&model.encoder),
        encoder_before,
        "an unfrozen encoder did not train"
    );
}

#[test]
fn finetuning_keeps_no_head_only_epoch() {
    let c = tiny_cohort(120, 21, 0.0);
    let data = Prepared::new(&c, &Normalization::fit(&c), ModelClass::Multimodal).unwrap();
    let dev = Default::default();
    let pretrained = Classifier::<B>::new(&arch(&c), &mut Rng::stream(8, "pretrained"), &dev);
    let before = encoder_bytes(&pretrained.encoder);
    // (epochs, head-only epochs, the one epoch that may be kept): four head-only epochs then one
    // of the whole model; more head-only epochs than epochs, where the last still trains it all.
    for (epochs, head, kept_epoch) in [(5, 4, 4), (3, 10, 2)] {
        let s = finetune_settings(&c, epochs, 0, head);
        let (kept, out) = train_classifier::<B>(
            &data,
            Some(pretrained.encoder.clone()),
            &s,
            &dev,
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(out.first_eligible, kept_epoch, "{out:?}");
        assert_eq!(out.best_epoch, kept_epoch, "{out:?}");
        assert_ne!(
            encoder_bytes(&kept.encoder),
            before,
            "the encoder never trained"
        );
    }
}

#[test]
fn no_epoch_before_min_epochs_is_kept_or_counts_towards_patience() {
    let c = tiny_cohort(120, 22, 0.0);
    let data = Prepared::new(&c, &Normalization::fit(&c), ModelClass::Multimodal).unwrap();
    let s = finetune_settings(&c, 12, 6, 0);
    let (_, out) =
        train_classifier::<B>(&data, None, &s, &Default::default(), &mut |_| {}).unwrap();
    assert_eq!(out.first_eligible, 6);
    assert!(
        out.best_epoch >= 6,
        "kept epoch {}: {out:?}",
        out.best_epoch
    );
    // Patience 2 counts from epoch 6: at least 6 + 1 + 2 epochs ran.
    assert!(out.epochs.len() >= 9, "{} epochs ran", out.epochs.len());
}
