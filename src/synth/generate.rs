//! Patients and splits: draws each patient's latent causes, disease state, pre-diagnosis code,
//! recorded label and both modalities, and assembles the five cohorts with disjoint ids.
//!
//! Per patient of an institution (see [`World`] for the fixed parameters):
//!
//! ```text
//! z_s, u_i, u_c ~ standardized Laplace^d, z_s += z_shift (external only)
//! ℓ  = label logit (see `latent`),     y* ~ Bernoulli(σ(ℓ)),   y = y* flipped w.p. η
//! c  ~ Bernoulli(q1 if y* else q0)     internal only: the pre-diagnosis code (leak)
//! true_logit = ℓ + log(q1/q0) if c else ℓ + log((1−q1)/(1−q0))   (internal; ℓ externally)
//! imaging token 0 (index nodule) = A·[z_s; u_i] + img_noise·ε
//! imaging token k ≥ 1 (distractor) = distractor_signal·B_k·[z_s; u_i] + ε
//! imaging ← gain·imaging + offset       (scanner; identity internally)
//! clinical token t = L_t·[z_s; u_c] + nuisance·G_t·h + clin_noise·ε
//!                    (+ c·LEAK_AMPLITUDE·v on the last token)
//! ```
//!
//! ε, h ~ N(0, I). `true_logit` is the log-odds of y* given everything the record could reveal
//! (the latents and the code), so its AUC against the recorded labels is the Bayes ceiling of a
//! test cohort: label noise is a monotone map of P(y* = 1), so it leaves the ranking optimal.
//!
//! Each split has its own RNG stream, and every patient consumes the same number of draws
//! whatever the knobs: a sweep over ρ, λ, shift or η reuses the same patients' noise (common
//! random numbers), which makes differences between sweep points far less noisy.

use super::config::SynthConfig;
use super::latent::{Latents, sigmoid};
use super::world::{LEAK_AMPLITUDE, NUISANCE_FACTORS, Population, World};
use crate::cohort::{COHORT_FORMAT, Cohort, Modality};
use crate::rng::Rng;

/// One split of the synthetic study.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitSpec {
    pub name: &'static str,
    /// First letter of its patient ids (`I00001`, …): disjoint across splits by construction.
    pub id_prefix: char,
    pub population: Population,
    /// Whether labels (and true logits) are written.
    pub labeled: bool,
    /// Whether patients may miss a modality (the labeled incomplete split).
    pub incomplete: bool,
}

/// The five splits, in output order. The unlabeled split is complete by construction (JEPA
/// pretraining needs both modalities); the finetune and test splits are complete too, since
/// the study's design has missingness only in the supervised-pretraining set (docs/study.md,
/// "The synthetic environment").
pub const SPLITS: [SplitSpec; 5] = [
    SplitSpec {
        name: "unlabeled",
        id_prefix: 'U',
        population: Population::Internal,
        labeled: false,
        incomplete: false,
    },
    SplitSpec {
        name: "incomplete",
        id_prefix: 'L',
        population: Population::Internal,
        labeled: true,
        incomplete: true,
    },
    SplitSpec {
        name: "finetune",
        id_prefix: 'F',
        population: Population::Internal,
        labeled: true,
        incomplete: false,
    },
    SplitSpec {
        name: "internal",
        id_prefix: 'I',
        population: Population::Internal,
        labeled: true,
        incomplete: false,
    },
    SplitSpec {
        name: "external",
        id_prefix: 'E',
        population: Population::External,
        labeled: true,
        incomplete: false,
    },
];

/// Patients requested for a split.
pub fn split_size(cfg: &SynthConfig, split: &str) -> usize {
    match split {
        "unlabeled" => cfg.n_unlabeled,
        "incomplete" => cfg.n_incomplete,
        "finetune" => cfg.n_finetune,
        "internal" => cfg.n_internal,
        _ => cfg.n_external,
    }
}

/// Generates one split of the world (`seed` selects its streams `split/<name>` and
/// `missing/<name>`).
pub fn generate_split(cfg: &SynthConfig, world: &World, seed: u64, spec: &SplitSpec) -> Cohort {
    let n = split_size(cfg, spec.name);
    let inst = world.institution(spec.population);
    let mut rng = Rng::stream(seed, &format!("split/{}", spec.name));
    let mut missing_rng = Rng::stream(seed, &format!("missing/{}", spec.name));
    let mut imaging = Modality::zeros(n, cfg.img_tokens, cfg.img_width);
    let mut clinical = Modality::zeros(n, cfg.clin_tokens, cfg.clin_width);
    let mut ids = Vec::with_capacity(n);
    let mut labels = Vec::with_capacity(n);
    let mut true_logits = Vec::with_capacity(n);

    for p in 0..n {
        ids.push(format!("{}{:05}", spec.id_prefix, p + 1));
        let lat = Latents::draw(&mut rng, cfg.latent_dim, &inst.z_shift);
        let logit = world.label.logit(&lat);
        // Three uniforms always drawn, in this order, so knobs never shift later draws.
        let (u_disease, u_code, u_flip) = (rng.uniform(), rng.uniform(), rng.uniform());
        let malignant = u_disease < sigmoid(logit);
        let (code, true_logit) = match inst.code_rates {
            Some((q0, q1)) => {
                let code = u_code < if malignant { q1 } else { q0 };
                let evidence = if code {
                    (q1 / q0).ln()
                } else {
                    ((1.0 - q1) / (1.0 - q0)).ln()
                };
                (code, logit + evidence)
            }
            None => (false, logit),
        };
        let label = malignant ^ (u_flip < cfg.label_noise);
        labels.push(u8::from(label));
        true_logits.push(true_logit);

        let h: Vec<f64> = (0..NUISANCE_FACTORS).map(|_| rng.normal()).collect();

        // Imaging: [tokens, width], index nodule first.
        let img_causes = lat.imaging_causes();
        let img = imaging.patient_mut(p);
        for (t, token) in img.chunks_exact_mut(cfg.img_width).enumerate() {
            let (signal, noise_sd) = if t == 0 {
                (world.index_nodule.apply(&img_causes), cfg.img_noise)
            } else {
                let s = world.distractors[t - 1].apply(&img_causes);
                (s.iter().map(|v| cfg.distractor_signal * v).collect(), 1.0)
            };
            for (j, out) in token.iter_mut().enumerate() {
                let x = signal[j] + noise_sd * rng.normal();
                *out = (inst.scanner_gain * x + inst.scanner_offset[j]) as f32;
            }
        }

        // Clinical: [tokens, width]; the code lands on the last token.
        let clin_causes = lat.clinical_causes();
        let last = cfg.clin_tokens - 1;
        let rec = clinical.patient_mut(p);
        for (t, token) in rec.chunks_exact_mut(cfg.clin_width).enumerate() {
            let signal = inst.clinical_loadings[t].apply(&clin_causes);
            let site = world.nuisance[t].apply(&h);
            for (j, out) in token.iter_mut().enumerate() {
                let mut x = signal[j] + cfg.nuisance * site[j] + cfg.clin_noise * rng.normal();
                if t == last && code {
                    x += LEAK_AMPLITUDE * world.leak_direction[j];
                }
                *out = x as f32;
            }
        }

        // Missingness from its own stream: changing `missing` changes nothing else.
        let (u_missing, u_which) = (missing_rng.uniform(), missing_rng.uniform());
        if spec.incomplete && u_missing < cfg.missing {
            let gone = if u_which < 0.5 {
                &mut imaging
            } else {
                &mut clinical
            };
            gone.present[p] = false;
            gone.patient_mut(p).fill(0.0);
        }
    }

    Cohort {
        format: COHORT_FORMAT,
        name: spec.name.to_string(),
        n,
        ids,
        labels: spec.labeled.then_some(labels),
        imaging,
        clinical,
        true_logit: spec.labeled.then_some(true_logits),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> SynthConfig {
        SynthConfig {
            n_unlabeled: 200,
            n_incomplete: 2000,
            n_finetune: 50,
            n_internal: 300,
            n_external: 300,
            ..SynthConfig::default()
        }
    }

    fn split(cfg: &SynthConfig, seed: u64, name: &str) -> Cohort {
        let world = World::draw(cfg, seed);
        let spec = SPLITS.iter().find(|s| s.name == name).expect("known split");
        generate_split(cfg, &world, seed, spec)
    }

    #[test]
    fn sizes_ids_and_completeness() {
        let cfg = small();
        for spec in &SPLITS {
            let c = split(&cfg, 1, spec.name);
            assert_eq!(c.n, split_size(&cfg, spec.name));
            assert!(c.validate().is_ok());
            assert!(c.ids.iter().all(|id| id.starts_with(spec.id_prefix)));
            assert_eq!(c.labels.is_some(), spec.labeled);
            assert_eq!(c.true_logit.is_some(), spec.labeled);
            assert_eq!(c.imaging.values.len(), c.n * 5 * 16);
            if !spec.incomplete {
                assert!(c.imaging.present.iter().all(|&p| p));
                assert!(c.clinical.present.iter().all(|&p| p));
            }
        }
    }

    #[test]
    fn missing_rate_is_close_to_the_knob_and_missing_means_zeros() {
        for missing in [0.0, 0.5, 0.8, 1.0] {
            let cfg = SynthConfig { missing, ..small() };
            let c = split(&cfg, 2, "incomplete");
            let no_img = c.imaging.present.iter().filter(|p| !**p).count();
            let no_clin = c.clinical.present.iter().filter(|p| !**p).count();
            let both_gone = (0..c.n)
                .filter(|&i| !c.imaging.present[i] && !c.clinical.present[i])
                .count();
            assert_eq!(both_gone, 0, "never both modalities missing");
            let rate = (no_img + no_clin) as f64 / c.n as f64;
            // Binomial s.d. at n = 2000 is at most 0.011.
            assert!((rate - missing).abs() < 0.04, "missing {missing}: {rate}");
            for i in (0..c.n).filter(|&i| !c.imaging.present[i]) {
                assert!(c.imaging.patient(i).iter().all(|&v| v == 0.0));
            }
            if missing > 0.0 && missing < 1.0 {
                // Which modality goes missing is a fair coin.
                let share = no_img as f64 / (no_img + no_clin) as f64;
                assert!((share - 0.5).abs() < 0.06, "imaging share {share}");
            }
        }
    }

    #[test]
    fn the_missing_knob_changes_nothing_but_presence() {
        let a = split(&small(), 3, "incomplete");
        let b = split(
            &SynthConfig {
                missing: 0.0,
                ..small()
            },
            3,
            "incomplete",
        );
        assert_eq!(a.labels, b.labels);
        for i in (0..a.n).filter(|&i| a.imaging.present[i]) {
            assert_eq!(a.imaging.patient(i), b.imaging.patient(i));
        }
    }

    #[test]
    fn the_code_appears_internally_only_and_follows_the_label() {
        let cfg = small();
        let world = World::draw(&cfg, 4);
        let proj = |c: &Cohort, i: usize| -> f64 {
            let rec = c.clinical.patient(i);
            let last = &rec[rec.len() - cfg.clin_width..];
            last.iter()
                .zip(&world.leak_direction)
                .map(|(x, v)| f64::from(*x) * v)
                .sum()
        };
        let mean_by_label = |c: &Cohort, y: u8| {
            let labels = c.labels.as_ref().expect("labeled");
            let v: Vec<f64> = (0..c.n)
                .filter(|&i| labels[i] == y)
                .map(|i| proj(c, i))
                .collect();
            v.iter().sum::<f64>() / v.len() as f64
        };
        let internal = split(&cfg, 4, "internal");
        let external = split(&cfg, 4, "external");
        // Internally malignant patients carry the code far more often (footprint 3 per code).
        assert!(mean_by_label(&internal, 1) - mean_by_label(&internal, 0) > 1.0);
        assert!((mean_by_label(&external, 1) - mean_by_label(&external, 0)).abs() < 0.5);
    }
}
