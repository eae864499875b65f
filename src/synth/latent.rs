//! Latent causes of one patient and the label model built on them.
//!
//! Every patient has three independent causes, each `latent_dim`-dimensional with independent
//! standardized Laplace components (mean 0, variance 1, heavier tails than a normal):
//! z_s (shared: seen by both modalities), u_i (imaging only), u_c (clinical only). The label is
//!
//! ```text
//! ℓ = α·[√ρ·(w_s·z_s) + √(1−ρ)·(w_i·u_i + w_c·u_c)/√2] + b
//! y* ~ Bernoulli(σ(ℓ))           the disease state
//! y  = y* flipped with prob. η   the recorded label
//! ```
//!
//! with fixed unit-norm weights w_s, w_i, w_c, so the bracket has unit variance whatever ρ.

use crate::rng::Rng;

/// The three latent causes of one patient.
#[derive(Debug, Clone, PartialEq)]
pub struct Latents {
    pub z_s: Vec<f64>,
    pub u_i: Vec<f64>,
    pub u_c: Vec<f64>,
}

impl Latents {
    /// Draws z_s, u_i then u_c (in that order) from `rng`, and moves z_s's mean by `z_shift`.
    pub fn draw(rng: &mut Rng, dim: usize, z_shift: &[f64]) -> Latents {
        let mut z_s: Vec<f64> = (0..dim).map(|_| rng.laplace()).collect();
        for (z, m) in z_s.iter_mut().zip(z_shift) {
            *z += m;
        }
        let u_i = (0..dim).map(|_| rng.laplace()).collect();
        let u_c = (0..dim).map(|_| rng.laplace()).collect();
        Latents { z_s, u_i, u_c }
    }

    /// [z_s; u_i]: what the index nodule's appearance depends on.
    pub fn imaging_causes(&self) -> Vec<f64> {
        self.z_s.iter().chain(&self.u_i).copied().collect()
    }

    /// [z_s; u_c]: what the clinical record depends on.
    pub fn clinical_causes(&self) -> Vec<f64> {
        self.z_s.iter().chain(&self.u_c).copied().collect()
    }
}

/// The fixed parameters of the label model.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelModel {
    /// ρ: share of the bracket's variance from z_s.
    pub rho: f64,
    pub alpha: f64,
    pub bias: f64,
    pub w_s: Vec<f64>,
    pub w_i: Vec<f64>,
    pub w_c: Vec<f64>,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl LabelModel {
    /// The label logit ℓ of a patient (before the leak and label noise).
    pub fn logit(&self, l: &Latents) -> f64 {
        let shared = self.rho.sqrt() * dot(&self.w_s, &l.z_s);
        let own = (1.0 - self.rho).sqrt() * (dot(&self.w_i, &l.u_i) + dot(&self.w_c, &l.u_c))
            / std::f64::consts::SQRT_2;
        self.alpha * (shared + own) + self.bias
    }
}

/// The logistic function, computed without overflow for large |x|.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(rho: f64) -> LabelModel {
        let mut r = Rng::from_seed(1);
        LabelModel {
            rho,
            alpha: 1.0,
            bias: 0.0,
            w_s: r.unit_vector(3),
            w_i: r.unit_vector(3),
            w_c: r.unit_vector(3),
        }
    }

    #[test]
    fn the_bracket_has_unit_variance_for_every_rho() {
        for rho in [0.0, 0.3, 1.0] {
            let m = model(rho);
            let mut r = Rng::from_seed(2);
            let xs: Vec<f64> = (0..100_000)
                .map(|_| m.logit(&Latents::draw(&mut r, 3, &[])))
                .collect();
            let var = xs.iter().map(|x| x * x).sum::<f64>() / xs.len() as f64;
            assert!((var - 1.0).abs() < 0.03, "rho {rho}: variance {var}");
        }
    }

    #[test]
    fn rho_decides_which_causes_matter() {
        let base = Latents {
            z_s: vec![0.0; 3],
            u_i: vec![0.0; 3],
            u_c: vec![0.0; 3],
        };
        let mut only_shared = base.clone();
        only_shared.z_s = vec![1.0, -2.0, 0.5];
        let mut only_own = base.clone();
        only_own.u_i = vec![1.0, -2.0, 0.5];
        // ρ = 1: only z_s moves the logit; ρ = 0: z_s does nothing and u_i does.
        assert_eq!(model(1.0).logit(&only_own), 0.0);
        assert_ne!(model(1.0).logit(&only_shared), 0.0);
        assert_eq!(model(0.0).logit(&only_shared), 0.0);
        assert_ne!(model(0.0).logit(&only_own), 0.0);
    }

    #[test]
    fn sigmoid_is_stable() {
        assert_eq!(sigmoid(0.0), 0.5);
        assert!(sigmoid(-1000.0) >= 0.0 && sigmoid(1000.0) <= 1.0);
        assert!((sigmoid(2.0) + sigmoid(-2.0) - 1.0).abs() < 1e-15);
    }
}
