//! Turning cohorts into batches: feature normalization, seeded shuffles and stratified splits,
//! and the host-side batch layout the modules read. Every draw comes from the crate's
//! [`Rng`], never from a global state shared with other code.

use serde::{Deserialize, Serialize};

use crate::cohort::{Cohort, Modality};

use super::ModelClass;
use crate::rng::Rng;

/// Per-feature standardization of one modality, fitted on the present patients of a cohort.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureNorm {
    /// `[tokens * width]`
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl FeatureNorm {
    pub fn fit(m: &Modality) -> FeatureNorm {
        let k = m.tokens * m.width;
        let mut sum = vec![0f64; k];
        let mut sq = vec![0f64; k];
        let mut count = 0usize;
        for (i, &p) in m.present.iter().enumerate() {
            if !p {
                continue;
            }
            count += 1;
            for (j, &v) in m.patient(i).iter().enumerate() {
                sum[j] += v as f64;
                sq[j] += (v as f64) * (v as f64);
            }
        }
        let c = count.max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / c).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(s, m)| {
                let var = (s / c - m * m).max(0.0);
                // A constant feature keeps unit scale instead of dividing by ~0.
                if var > 1e-12 { var.sqrt() as f32 } else { 1.0 }
            })
            .collect();
        FeatureNorm {
            mean: mean.iter().map(|&m| m as f32).collect(),
            std,
        }
    }
}

/// Normalization of both modalities (saved in `model.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    pub imaging: FeatureNorm,
    pub clinical: FeatureNorm,
}

impl Normalization {
    pub fn fit(c: &Cohort) -> Normalization {
        Normalization {
            imaging: FeatureNorm::fit(&c.imaging),
            clinical: FeatureNorm::fit(&c.clinical),
        }
    }
}

/// A cohort normalized and flattened for batching; presence restricted to the model class.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub n: usize,
    pub img_tokens: usize,
    pub img_width: usize,
    pub clin_tokens: usize,
    pub clin_width: usize,
    /// `[n, img_tokens, img_width]`, zeros where missing.
    pub imaging: Vec<f32>,
    /// `[n, clin_tokens, clin_width]`
    pub clinical: Vec<f32>,
    pub img_present: Vec<bool>,
    pub clin_present: Vec<bool>,
    pub labels: Option<Vec<u8>>,
}

fn normalize(m: &Modality, norm: &FeatureNorm, used: bool) -> (Vec<f32>, Vec<bool>) {
    let k = m.tokens * m.width;
    let mut out = vec![0f32; m.values.len()];
    let mut present = vec![false; m.present.len()];
    for (i, &p) in m.present.iter().enumerate() {
        if !(p && used) {
            continue;
        }
        present[i] = true;
        for j in 0..k {
            out[i * k + j] = (m.values[i * k + j] - norm.mean[j]) / norm.std[j];
        }
    }
    (out, present)
}

impl Prepared {
    pub fn new(
        c: &Cohort,
        norm: &Normalization,
        class: ModelClass,
    ) -> Result<Prepared, super::ModelError> {
        if norm.imaging.mean.len() != c.imaging.tokens * c.imaging.width
            || norm.clinical.mean.len() != c.clinical.tokens * c.clinical.width
        {
            return Err(super::ModelError::Data(format!(
                "cohort `{}` has imaging [{}, {}] and clinical [{}, {}] tokens, which do not match the model's input shapes",
                c.name, c.imaging.tokens, c.imaging.width, c.clinical.tokens, c.clinical.width
            )));
        }
        let (use_img, use_clin) = class.uses();
        let (imaging, img_present) = normalize(&c.imaging, &norm.imaging, use_img);
        let (clinical, clin_present) = normalize(&c.clinical, &norm.clinical, use_clin);
        Ok(Prepared {
            n: c.n,
            img_tokens: c.imaging.tokens,
            img_width: c.imaging.width,
            clin_tokens: c.clinical.tokens,
            clin_width: c.clinical.width,
            imaging,
            clinical,
            img_present,
            clin_present,
            labels: c.labels.clone(),
        })
    }

    /// The patients `idx` (in that order) as their own table.
    pub fn subset(&self, idx: &[usize]) -> Prepared {
        let ki = self.img_tokens * self.img_width;
        let kc = self.clin_tokens * self.clin_width;
        let mut out = Prepared {
            n: idx.len(),
            img_tokens: self.img_tokens,
            img_width: self.img_width,
            clin_tokens: self.clin_tokens,
            clin_width: self.clin_width,
            imaging: Vec::with_capacity(idx.len() * ki),
            clinical: Vec::with_capacity(idx.len() * kc),
            img_present: Vec::with_capacity(idx.len()),
            clin_present: Vec::with_capacity(idx.len()),
            labels: self.labels.as_ref().map(|_| Vec::with_capacity(idx.len())),
        };
        for &i in idx {
            out.imaging
                .extend_from_slice(&self.imaging[i * ki..(i + 1) * ki]);
            out.clinical
                .extend_from_slice(&self.clinical[i * kc..(i + 1) * kc]);
            out.img_present.push(self.img_present[i]);
            out.clin_present.push(self.clin_present[i]);
            if let (Some(o), Some(l)) = (out.labels.as_mut(), self.labels.as_ref()) {
                o.push(l[i]);
            }
        }
        out
    }

    /// The host-side batch of the patients `idx` (in that order).
    pub fn batch(&self, idx: &[usize]) -> HostBatch {
        let ki = self.img_tokens * self.img_width;
        let kc = self.clin_tokens * self.clin_width;
        let t = self.img_tokens + self.clin_tokens;
        let mut b = HostBatch {
            size: idx.len(),
            imaging: Vec::with_capacity(idx.len() * ki),
            clinical: Vec::with_capacity(idx.len() * kc),
            token_mask: Vec::with_capacity(idx.len() * t),
            labels: Vec::with_capacity(idx.len()),
        };
        for &i in idx {
            b.imaging
                .extend_from_slice(&self.imaging[i * ki..(i + 1) * ki]);
            b.clinical
                .extend_from_slice(&self.clinical[i * kc..(i + 1) * kc]);
            let pi = if self.img_present[i] { 1.0 } else { 0.0 };
            let pc = if self.clin_present[i] { 1.0 } else { 0.0 };
            b.token_mask
                .extend(std::iter::repeat_n(pi, self.img_tokens));
            b.token_mask
                .extend(std::iter::repeat_n(pc, self.clin_tokens));
            if let Some(l) = &self.labels {
                b.labels.push(l[i] as f32);
            }
        }
        b
    }
}

/// One batch on the host, row-major.
#[derive(Debug, Clone)]
pub struct HostBatch {
    pub size: usize,
    /// `[batch, img_tokens, img_width]`
    pub imaging: Vec<f32>,
    /// `[batch, clin_tokens, clin_width]`
    pub clinical: Vec<f32>,
    /// `[batch, tokens]`: 1 where the token's modality is present.
    pub token_mask: Vec<f32>,
    /// `[batch]` (empty when unlabeled).
    pub labels: Vec<f32>,
}

/// Splits patient indices into (train, validation), stratified by label: each class contributes
/// `round(val_fraction * class size)` patients (at least one when the class has two or more).
pub fn stratified_split(
    labels: &[u8],
    val_fraction: f64,
    rng: &mut Rng,
) -> (Vec<usize>, Vec<usize>) {
    let mut train = Vec::new();
    let mut val = Vec::new();
    for class in [0u8, 1u8] {
        let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        rng.shuffle(&mut idx);
        let mut k = (val_fraction * idx.len() as f64).round() as usize;
        if val_fraction > 0.0 && k == 0 && idx.len() >= 2 {
            k = 1;
        }
        k = k.min(idx.len().saturating_sub(1));
        val.extend_from_slice(&idx[..k]);
        train.extend_from_slice(&idx[k..]);
    }
    train.sort_unstable();
    val.sort_unstable();
    (train, val)
}

/// Batches of `0..n` in a seeded order (all of them, the last possibly short).
pub fn shuffled_batches(items: &[usize], batch: usize, rng: &mut Rng) -> Vec<Vec<usize>> {
    let mut order = items.to_vec();
    rng.shuffle(&mut order);
    order.chunks(batch.max(1)).map(|c| c.to_vec()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::stream(7, "x");
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::stream(7, "x");
                move |_| r.next_u64()
            })
            .collect();
        let c = Rng::stream(7, "y").next_u64();
        assert_eq!(a, b);
        assert_ne!(a[0], c);
    }

    #[test]
    fn split_is_stratified_and_disjoint() {
        let labels: Vec<u8> = (0..100).map(|i| (i % 4 == 0) as u8).collect();
        let (tr, va) = stratified_split(&labels, 0.2, &mut Rng::stream(1, "split"));
        assert_eq!(tr.len() + va.len(), 100);
        assert_eq!(va.iter().filter(|&&i| labels[i] == 1).count(), 5);
        assert_eq!(va.iter().filter(|&&i| labels[i] == 0).count(), 15);
        assert!(va.iter().all(|i| !tr.contains(i)));
    }
}
