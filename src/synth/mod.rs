//! The synthetic environment (docs/study.md, "The synthetic environment"): latent causes,
//! a label with a tunable shared-cause share ρ, imaging and clinical tokens, a pre-diagnosis-code
//! leak at the home institution, an external institution with shifted coding, population and
//! scanner, and the Bayes AUC of each test cohort.
//!
//! Owns the generator as pure functions of a [`SynthConfig`] and a seed, with the crate's own RNG
//! ([`crate::rng`]) so outputs never change with a crate upgrade. Must never touch files, the
//! store or the clock: the `synth` stage (`stages::synth`) writes what this module returns.
//!
//! - [`config`]: the knobs and their ranges.
//! - [`latent`]: the latent causes and the label model.
//! - [`world`]: the fixed parameters drawn from the seed (loadings, weights, shifts, leak).
//! - [`generate`](mod@generate): patients and the five splits.
//! - [`bayes`]: the Bayes ceiling of a test cohort.

pub mod bayes;
pub mod config;
pub mod generate;
pub mod latent;
pub mod world;

use std::collections::BTreeMap;

use serde::Serialize;

pub use bayes::bayes_auc;
pub use config::SynthConfig;
pub use generate::{SPLITS, SplitSpec, generate_split};
pub use world::{Population, World};

use crate::cohort::Cohort;

/// The test cohorts whose Bayes AUC is reported.
pub const TEST_SPLITS: [&str; 2] = ["internal", "external"];

/// What the generator knows and a model must not: the ceiling and the base rates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Truth {
    /// Per test cohort: AUC of the true logit against the recorded labels (`None` if one class).
    pub bayes_auc: BTreeMap<String, Option<f64>>,
    /// Per labeled split: share of recorded labels equal to 1.
    pub prevalence: BTreeMap<String, Option<f64>>,
    /// Patients per split.
    pub n: BTreeMap<String, usize>,
}

/// A generated study: the five cohorts in [`SPLITS`] order and their truth.
#[derive(Debug, Clone)]
pub struct SyntheticStudy {
    pub cohorts: Vec<Cohort>,
    pub truth: Truth,
}

/// Generates every split of the world of `seed`. `cfg` must pass [`SynthConfig::check`].
pub fn generate(cfg: &SynthConfig, seed: u64) -> SyntheticStudy {
    let world = World::draw(cfg, seed);
    let cohorts: Vec<Cohort> = SPLITS
        .iter()
        .map(|spec| generate_split(cfg, &world, seed, spec))
        .collect();
    let mut truth = Truth {
        bayes_auc: BTreeMap::new(),
        prevalence: BTreeMap::new(),
        n: BTreeMap::new(),
    };
    for c in &cohorts {
        truth.n.insert(c.name.clone(), c.n);
        if c.labels.is_some() {
            truth.prevalence.insert(c.name.clone(), c.prevalence());
        }
        if TEST_SPLITS.contains(&c.name.as_str()) {
            truth.bayes_auc.insert(c.name.clone(), bayes_auc(c));
        }
    }
    SyntheticStudy { cohorts, truth }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn small() -> SynthConfig {
        SynthConfig {
            n_unlabeled: 300,
            n_incomplete: 300,
            n_finetune: 100,
            n_internal: 3000,
            n_external: 3000,
            ..SynthConfig::default()
        }
    }

    fn auc_of(study: &SyntheticStudy, split: &str) -> f64 {
        study.truth.bayes_auc[split].expect("both classes")
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let a = generate(&small(), 11);
        let b = generate(&small(), 11);
        let c = generate(&small(), 12);
        for i in 0..SPLITS.len() {
            assert_eq!(a.cohorts[i], b.cohorts[i]);
            assert_eq!(
                a.cohorts[i]
                    .imaging
                    .values
                    .iter()
                    .map(|v| v.to_bits())
                    .collect::<Vec<_>>(),
                b.cohorts[i]
                    .imaging
                    .values
                    .iter()
                    .map(|v| v.to_bits())
                    .collect::<Vec<_>>()
            );
            assert_ne!(a.cohorts[i].imaging.values, c.cohorts[i].imaging.values);
        }
        assert_eq!(a.truth, b.truth);
    }

    #[test]
    fn patient_ids_are_disjoint_across_splits() {
        let s = generate(&small(), 1);
        let mut seen = HashSet::new();
        let total: usize = s.cohorts.iter().map(|c| c.n).sum();
        for c in &s.cohorts {
            seen.extend(c.ids.iter().cloned());
        }
        assert_eq!(seen.len(), total);
        let names: Vec<&str> = s.cohorts.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "unlabeled",
                "incomplete",
                "finetune",
                "internal",
                "external"
            ]
        );
    }

    #[test]
    fn bayes_auc_is_informative_and_higher_internally_with_leak_and_shift() {
        let s = generate(&small(), 2);
        let (int, ext) = (auc_of(&s, "internal"), auc_of(&s, "external"));
        assert!(
            0.5 < ext && ext < int && int < 1.0,
            "internal {int}, external {ext}"
        );
        assert_eq!(s.truth.bayes_auc.len(), 2);
        assert_eq!(s.truth.prevalence.len(), 4, "every labeled split");
    }

    #[test]
    fn without_leak_and_shift_the_populations_match() {
        let cfg = SynthConfig {
            leak: 0.0,
            shift: 0.0,
            ..small()
        };
        let s = generate(&cfg, 2);
        let (int, ext) = (auc_of(&s, "internal"), auc_of(&s, "external"));
        // Same distribution: the AUCs differ by sampling only (s.e. ≈ 0.01 at n = 3000).
        assert!((int - ext).abs() < 0.04, "internal {int}, external {ext}");
        let p = &s.truth.prevalence;
        let (pi, pe) = (p["internal"].expect("pi"), p["external"].expect("pe"));
        assert!((pi - pe).abs() < 0.05, "prevalence {pi} vs {pe}");
    }

    /// Correlation between the first principal direction of signal in the index nodule and in
    /// the record would need a model; a latent check is exact: with ρ = 0 the imaging-only and
    /// clinical-only causes carry the label, with ρ = 1 only the shared cause does.
    #[test]
    fn rho_moves_the_label_between_shared_and_own_causes() {
        for (rho, shared_matters, own_matters) in [(1.0, true, false), (0.0, false, true)] {
            let cfg = SynthConfig { rho, ..small() };
            let w = World::draw(&cfg, 3);
            let mut r = crate::rng::Rng::from_seed(9);
            let lat = latent::Latents::draw(&mut r, cfg.latent_dim, &[]);
            let mut no_shared = lat.clone();
            no_shared.z_s.fill(0.0);
            let mut no_own = lat.clone();
            no_own.u_i.fill(0.0);
            no_own.u_c.fill(0.0);
            let full = w.label.logit(&lat);
            assert_eq!(full != w.label.logit(&no_shared), shared_matters);
            assert_eq!(full != w.label.logit(&no_own), own_matters);
        }
    }

    /// What each modality's causes contribute to the logit: with ρ = 0 the imaging-only (u_i)
    /// and clinical-only (u_c) parts are independent (correlation ≈ 0), so learning to predict
    /// one modality from the other (JEPA) finds nothing about the label; with ρ = 1 both
    /// modalities see the same cause (correlation 1).
    #[test]
    fn with_rho_zero_the_modalities_carry_independent_label_causes() {
        let corr = |rho: f64| {
            let cfg = SynthConfig { rho, ..small() };
            let w = World::draw(&cfg, 4);
            let mut r = crate::rng::Rng::from_seed(5);
            let (mut img, mut clin) = (Vec::new(), Vec::new());
            for _ in 0..20_000 {
                let lat = latent::Latents::draw(&mut r, cfg.latent_dim, &[]);
                let mut seen_by_imaging = lat.clone();
                seen_by_imaging.u_c.fill(0.0);
                let mut seen_by_record = lat;
                seen_by_record.u_i.fill(0.0);
                img.push(w.label.logit(&seen_by_imaging));
                clin.push(w.label.logit(&seen_by_record));
            }
            pearson(&img, &clin)
        };
        assert!(corr(0.0).abs() < 0.03, "rho 0: {}", corr(0.0));
        assert!((corr(1.0) - 1.0).abs() < 1e-9);
        let half = corr(0.5);
        assert!(half > 0.5 && half < 0.8, "rho 0.5: {half}");
    }

    fn pearson(x: &[f64], y: &[f64]) -> f64 {
        let n = x.len() as f64;
        let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
        let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
        let sxx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
        let syy: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
        sxy / (sxx * syy).sqrt()
    }
}
