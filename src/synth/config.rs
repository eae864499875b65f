//! The knobs of the synthetic environment: the `config:` of a `synth` stage. Every field has a
//! default sized for a CPU study that trains in minutes; the doc comments are the user reference.

use serde::{Deserialize, Serialize};

/// The knobs of the synthetic environment (docs/study.md, "The synthetic environment").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SynthConfig {
    /// ρ in [0, 1]: share of the label logit's variance explained by the shared cause z_s, seen by
    /// both modalities. ρ = 0 is "independent causes": imaging sees u_i, the record sees u_c, and
    /// neither can predict the other. Default 0.5.
    pub rho: f64,
    /// Strength (≥ 0) of the external institution's shift: clinical loadings change by `shift`
    /// times a fresh sparse loading (coding practice), z_s's mean moves by 0.5·`shift` along a
    /// fixed direction, imaging is rescaled by 1 + 0.1·`shift` and offset by 0.1·`shift`
    /// (scanner). 0 makes the external population identical to the internal one. Default 1.
    pub shift: f64,
    /// λ ≥ 0: label leak into the internal clinical record. A pre-diagnosis code (a diagnostic
    /// work-up ordered because cancer is suspected) is present for 10% of benign patients and
    /// for 10% + 90%·(1 − e^(−λ)) of malignant ones (about 67% at λ = 1), internal institution only.
    /// λ = 0 makes the code independent of the label. Default 1.
    pub leak: f64,
    /// Share in [0, 1] of the labeled incomplete split missing one modality (imaging or clinical,
    /// at random). The other splits are complete. Default 0.5.
    pub missing: f64,
    /// η in [0, 0.5): probability that a recorded label is flipped. Default 0.05.
    pub label_noise: f64,
    /// α > 0: scale of the label logit (the bracket has unit variance). Default 3.
    pub alpha: f64,
    /// Intercept b of the label logit (−1 with α = 3 gives a prevalence near 0.4). Default −1.
    pub bias: f64,
    /// Patients in the unlabeled, complete split (JEPA pretraining). Default 4000.
    pub n_unlabeled: usize,
    /// Patients in the labeled, incomplete split (supervised pretraining). Default 2000.
    pub n_incomplete: usize,
    /// Patients in the small labeled finetuning split. Default 300.
    pub n_finetune: usize,
    /// Patients in the internal test split. Default 1000.
    pub n_internal: usize,
    /// Patients in the external test split. Default 1000.
    pub n_external: usize,
    /// Dimension (≥ 1) of each latent cause z_s, u_i, u_c. Default 4.
    pub latent_dim: usize,
    /// Imaging tokens per patient (≥ 1): the index nodule first, then distractors. Default 5.
    pub img_tokens: usize,
    /// Features per imaging token (≥ 1). Default 16.
    pub img_width: usize,
    /// Clinical tokens per patient (≥ 1); the last carries the pre-diagnosis code. Default 4.
    pub clin_tokens: usize,
    /// Features per clinical token (≥ 1). Default 16.
    pub clin_width: usize,
    /// Standard deviation (≥ 0) of the noise on the index nodule's features (signal variance per
    /// feature ≈ 1). Default 0.5.
    pub img_noise: f64,
    /// Signal scale (≥ 0) on the distractor tokens, whose noise has standard deviation 1.
    /// Default 0.1.
    pub distractor_signal: f64,
    /// Standard deviation (≥ 0) of the noise on clinical features (signal variance ≈ 1).
    /// Default 0.5.
    pub clin_noise: f64,
    /// Share in (0, 1] of nonzero entries of the clinical loading of [z_s; u_c]. Default 0.25.
    pub clin_density: f64,
    /// Scale (≥ 0) of the site nuisance: two label-free factors (care site, utilization) loaded
    /// onto every clinical feature. Default 1.
    pub nuisance: f64,
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
            img_noise: 0.5,
            distractor_signal: 0.1,
            clin_noise: 0.5,
            clin_density: 0.25,
            nuisance: 1.0,
        }
    }
}

impl SynthConfig {
    /// Checks every knob's range; the error names the offending key.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let reals = [
            ("rho", self.rho),
            ("shift", self.shift),
            ("leak", self.leak),
            ("missing", self.missing),
            ("label_noise", self.label_noise),
            ("alpha", self.alpha),
            ("bias", self.bias),
            ("img_noise", self.img_noise),
            ("distractor_signal", self.distractor_signal),
            ("clin_noise", self.clin_noise),
            ("clin_density", self.clin_density),
            ("nuisance", self.nuisance),
        ];
        for (key, v) in reals {
            if !v.is_finite() {
                return Err((key, format!("{v} is not a finite number")));
            }
        }
        let in_unit = |key: &'static str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err((key, format!("{v} is outside [0, 1]")))
            }
        };
        in_unit("rho", self.rho)?;
        in_unit("missing", self.missing)?;
        for (key, v) in [
            ("shift", self.shift),
            ("leak", self.leak),
            ("img_noise", self.img_noise),
            ("distractor_signal", self.distractor_signal),
            ("clin_noise", self.clin_noise),
            ("nuisance", self.nuisance),
        ] {
            if v < 0.0 {
                return Err((key, format!("{v} is negative")));
            }
        }
        if !(0.0..0.5).contains(&self.label_noise) {
            return Err((
                "label_noise",
                format!(
                    "{} is outside [0, 0.5): at 0.5 labels carry no signal",
                    self.label_noise
                ),
            ));
        }
        if self.alpha <= 0.0 {
            return Err(("alpha", format!("{} is not positive", self.alpha)));
        }
        if !(self.clin_density > 0.0 && self.clin_density <= 1.0) {
            return Err((
                "clin_density",
                format!("{} is outside (0, 1]", self.clin_density),
            ));
        }
        for (key, v) in [
            ("latent_dim", self.latent_dim),
            ("img_tokens", self.img_tokens),
            ("img_width", self.img_width),
            ("clin_tokens", self.clin_tokens),
            ("clin_width", self.clin_width),
        ] {
            if v == 0 {
                return Err((key, "must be at least 1".to_string()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_and_bad_knobs_name_their_key() {
        assert!(SynthConfig::default().check().is_ok());
        let bad = |f: fn(&mut SynthConfig)| {
            let mut c = SynthConfig::default();
            f(&mut c);
            c.check().unwrap_err().0
        };
        assert_eq!(bad(|c| c.rho = 1.5), "rho");
        assert_eq!(bad(|c| c.label_noise = 0.5), "label_noise");
        assert_eq!(bad(|c| c.shift = -1.0), "shift");
        assert_eq!(bad(|c| c.latent_dim = 0), "latent_dim");
        assert_eq!(bad(|c| c.alpha = f64::NAN), "alpha");
    }
}
