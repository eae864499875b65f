//! The fixed parameters of a synthetic world, drawn once from the seed: label weights, imaging
//! and clinical loadings, the external institution's shifted loadings, the leak's direction.
//!
//! Every entry is drawn whatever the knobs (a sparse loading draws its mask and its value for
//! every entry; the external delta is drawn and then scaled by `shift`), so two configs that differ
//! only in ρ, λ, shift, η or a split size share the same world: sweeps compare like with like.

use super::config::SynthConfig;
use super::latent::LabelModel;
use crate::rng::Rng;

/// Rate of the pre-diagnosis code among benign patients (and among all patients at λ = 0).
pub const LEAK_BASE_RATE: f64 = 0.1;
/// Size of the code's footprint on the last clinical token, in units of a feature's signal s.d.:
/// large enough that a model can read the code from the record.
pub const LEAK_AMPLITUDE: f64 = 3.0;
/// How far z_s's mean moves externally per unit of `shift`.
pub const Z_SHIFT_PER_UNIT: f64 = 0.5;
/// Scanner gain change and offset externally per unit of `shift`.
pub const SCANNER_PER_UNIT: f64 = 0.1;
/// Number of site-nuisance factors in the clinical record.
pub const NUISANCE_FACTORS: usize = 2;

/// A dense `rows × cols` matrix, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f64>,
}

impl Matrix {
    /// Entries i.i.d. N(0, `scale`²).
    fn gaussian(rng: &mut Rng, rows: usize, cols: usize, scale: f64) -> Matrix {
        let data = (0..rows * cols).map(|_| scale * rng.normal()).collect();
        Matrix { rows, cols, data }
    }

    /// Each entry nonzero with probability `density`, then N(0, 1/(density·cols)): a row's
    /// expected squared norm is 1, so unit-variance inputs give unit-variance outputs.
    fn sparse(rng: &mut Rng, rows: usize, cols: usize, density: f64) -> Matrix {
        let scale = 1.0 / (density * cols as f64).sqrt();
        let data = (0..rows * cols)
            .map(|_| {
                let keep = rng.uniform() < density;
                let value = rng.normal();
                if keep { scale * value } else { 0.0 }
            })
            .collect();
        Matrix { rows, cols, data }
    }

    /// `self · x` (`x.len() == cols`).
    pub fn apply(&self, x: &[f64]) -> Vec<f64> {
        self.data
            .chunks_exact(self.cols)
            .map(|row| row.iter().zip(x).map(|(a, b)| a * b).sum())
            .collect()
    }

    /// `self + k · other` (same shape).
    fn plus_scaled(&self, k: f64, other: &Matrix) -> Matrix {
        let data = self
            .data
            .iter()
            .zip(&other.data)
            .map(|(a, b)| a + k * b)
            .collect();
        Matrix {
            rows: self.rows,
            cols: self.cols,
            data,
        }
    }
}

/// Which institution a split comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Population {
    /// The home institution: unlabeled, incomplete, finetune and internal test. Has the leak.
    Internal,
    /// The external institution: shifted coding, z_s and scanner; no leak.
    External,
}

/// How one institution maps latent causes to records.
#[derive(Debug, Clone, PartialEq)]
pub struct Institution {
    /// Per clinical token, `clin_width × 2·latent_dim` loading of [z_s; u_c].
    pub clinical_loadings: Vec<Matrix>,
    /// Added to z_s (length `latent_dim`).
    pub z_shift: Vec<f64>,
    /// Imaging features become `gain · x + offset`.
    pub scanner_gain: f64,
    pub scanner_offset: Vec<f64>,
    /// Probability of the pre-diagnosis code given benign / malignant; `None` without a leak.
    pub code_rates: Option<(f64, f64)>,
}

/// All fixed parameters of a world.
#[derive(Debug, Clone, PartialEq)]
pub struct World {
    pub label: LabelModel,
    /// `img_width × 2·latent_dim` map of [z_s; u_i] onto the index nodule (token 0).
    pub index_nodule: Matrix,
    /// Per distractor token (1..img_tokens), a map of [z_s; u_i] scaled by `distractor_signal`.
    pub distractors: Vec<Matrix>,
    /// Per clinical token, `clin_width × NUISANCE_FACTORS` loading of the site nuisance.
    pub nuisance: Vec<Matrix>,
    /// Unit vector (length `clin_width`): the code's footprint on the last clinical token.
    pub leak_direction: Vec<f64>,
    pub internal: Institution,
    pub external: Institution,
}

/// P(code | malignant) for leak λ: 0.1 + 0.9·(1 − e^(−λ)); equals the base rate at λ = 0.
pub fn code_rate_malignant(leak: f64) -> f64 {
    LEAK_BASE_RATE + (1.0 - LEAK_BASE_RATE) * (1.0 - (-leak).exp())
}

impl World {
    /// Draws the world of `seed` for `cfg` (stream `"world"`).
    pub fn draw(cfg: &SynthConfig, seed: u64) -> World {
        let mut rng = Rng::stream(seed, "world");
        let d = cfg.latent_dim;
        let label = LabelModel {
            rho: cfg.rho,
            alpha: cfg.alpha,
            bias: cfg.bias,
            w_s: rng.unit_vector(d),
            w_i: rng.unit_vector(d),
            w_c: rng.unit_vector(d),
        };
        let unit_scale = 1.0 / ((2 * d) as f64).sqrt();
        let index_nodule = Matrix::gaussian(&mut rng, cfg.img_width, 2 * d, unit_scale);
        let distractors = (1..cfg.img_tokens)
            .map(|_| Matrix::gaussian(&mut rng, cfg.img_width, 2 * d, unit_scale))
            .collect();
        let clinical: Vec<Matrix> = (0..cfg.clin_tokens)
            .map(|_| Matrix::sparse(&mut rng, cfg.clin_width, 2 * d, cfg.clin_density))
            .collect();
        let coding_delta: Vec<Matrix> = (0..cfg.clin_tokens)
            .map(|_| Matrix::sparse(&mut rng, cfg.clin_width, 2 * d, cfg.clin_density))
            .collect();
        let nuisance_scale = 1.0 / (NUISANCE_FACTORS as f64).sqrt();
        let nuisance = (0..cfg.clin_tokens)
            .map(|_| Matrix::gaussian(&mut rng, cfg.clin_width, NUISANCE_FACTORS, nuisance_scale))
            .collect();
        let leak_direction = rng.unit_vector(cfg.clin_width);
        let z_direction = rng.unit_vector(d);
        let scanner_direction: Vec<f64> = (0..cfg.img_width).map(|_| rng.normal()).collect();

        let internal = Institution {
            clinical_loadings: clinical.clone(),
            z_shift: vec![0.0; d],
            scanner_gain: 1.0,
            scanner_offset: vec![0.0; cfg.img_width],
            code_rates: Some((LEAK_BASE_RATE, code_rate_malignant(cfg.leak))),
        };
        let external = Institution {
            clinical_loadings: clinical
                .iter()
                .zip(&coding_delta)
                .map(|(l, delta)| l.plus_scaled(cfg.shift, delta))
                .collect(),
            z_shift: z_direction
                .iter()
                .map(|v| Z_SHIFT_PER_UNIT * cfg.shift * v)
                .collect(),
            scanner_gain: 1.0 + SCANNER_PER_UNIT * cfg.shift,
            scanner_offset: scanner_direction
                .iter()
                .map(|v| SCANNER_PER_UNIT * cfg.shift * v)
                .collect(),
            code_rates: None,
        };
        World {
            label,
            index_nodule,
            distractors,
            nuisance,
            leak_direction,
            internal,
            external,
        }
    }

    pub fn institution(&self, population: Population) -> &Institution {
        match population {
            Population::Internal => &self.internal,
            Population::External => &self.external,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knobs_other_than_sizes_do_not_change_the_draws() {
        let a = World::draw(&SynthConfig::default(), 5);
        let b = World::draw(
            &SynthConfig {
                rho: 0.1,
                leak: 0.0,
                ..SynthConfig::default()
            },
            5,
        );
        assert_eq!(a.index_nodule, b.index_nodule);
        assert_eq!(a.label.w_s, b.label.w_s);
        assert_eq!(a.external.clinical_loadings, b.external.clinical_loadings);
    }

    #[test]
    fn zero_shift_makes_the_institutions_alike_but_for_the_leak() {
        let w = World::draw(
            &SynthConfig {
                shift: 0.0,
                ..SynthConfig::default()
            },
            5,
        );
        assert_eq!(w.internal.clinical_loadings, w.external.clinical_loadings);
        assert_eq!(w.internal.z_shift, w.external.z_shift);
        assert_eq!(w.internal.scanner_offset, w.external.scanner_offset);
        assert_eq!(w.external.code_rates, None);
    }

    #[test]
    fn code_rates_grow_with_the_leak() {
        assert_eq!(code_rate_malignant(0.0), LEAK_BASE_RATE);
        assert!(code_rate_malignant(1.0) > 0.6 && code_rate_malignant(1.0) < 0.7);
        assert!(code_rate_malignant(10.0) < 1.0);
    }
}
