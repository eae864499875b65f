//! Per-modality linear tokenizers with learned slot and modality embeddings, and the token
//! encoder (tokenizer + transformer) that JEPA pretrains and classifiers finetune.
//!
//! Token order is imaging first, then clinical. A missing modality is never imputed: its tokens
//! are masked out of attention keys and of the pool by the presence mask.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use super::Arch;
use super::data::{HostBatch, Rng};
use super::encoder::{Dropout, Transformer};
use super::init;

/// Imaging and clinical features → `[batch, tokens, dim]`.
#[derive(Module, Debug)]
pub struct Tokenizer<B: Backend> {
    /// `img_width → dim`, shared by the imaging tokens.
    pub imaging: Linear<B>,
    /// `clin_width → dim`, shared by the clinical tokens.
    pub clinical: Linear<B>,
    /// `[tokens, dim]`: one learned embedding per token slot.
    pub slots: Param<Tensor<B, 2>>,
    /// `[2, dim]`: imaging, clinical.
    pub modality: Param<Tensor<B, 2>>,
    pub img_tokens: usize,
}

impl<B: Backend> Tokenizer<B> {
    pub fn new(arch: &Arch, rng: &mut Rng, device: &B::Device) -> Self {
        Tokenizer {
            imaging: init::linear(arch.img_width, arch.dim, true, rng, device),
            clinical: init::linear(arch.clin_width, arch.dim, true, rng, device),
            slots: init::normal_param([arch.tokens(), arch.dim], rng, device),
            modality: init::normal_param([2, arch.dim], rng, device),
            img_tokens: arch.img_tokens,
        }
    }

    /// `imaging`: `[batch, img_tokens, img_width]`, `clinical`: `[batch, clin_tokens, clin_width]`
    /// → `[batch, tokens, dim]`.
    pub fn forward(&self, imaging: Tensor<B, 3>, clinical: Tensor<B, 3>) -> Tensor<B, 3> {
        let ti = imaging.dims()[1];
        let tc = clinical.dims()[1];
        let x = Tensor::cat(
            vec![
                self.imaging.forward(imaging),
                self.clinical.forward(clinical),
            ],
            1,
        );
        let [t, d] = self.slots.dims();
        let modality = self.modality.val();
        // [tokens, dim]: the modality embedding of each slot.
        let per_slot = Tensor::cat(
            vec![
                modality.clone().narrow(0, 0, 1).expand([ti, d]),
                modality.narrow(0, 1, 1).expand([tc, d]),
            ],
            0,
        );
        x + (self.slots.val() + per_slot).reshape([1, t, d])
    }
}

/// The encoder f: tokenizer then transformer.
#[derive(Module, Debug)]
pub struct TokenEncoder<B: Backend> {
    pub tokenizer: Tokenizer<B>,
    pub transformer: Transformer<B>,
}

impl<B: Backend> TokenEncoder<B> {
    pub fn new(arch: &Arch, rng: &mut Rng, device: &B::Device) -> Self {
        TokenEncoder {
            tokenizer: Tokenizer::new(arch, rng, device),
            transformer: Transformer::new(
                arch.dim,
                arch.depth,
                arch.heads,
                arch.dim_head,
                arch.mlp_dim,
                rng,
                device,
            ),
        }
    }

    /// All tokens, attending only to tokens where `key_mask` is 1 → `[batch, tokens, dim]`.
    pub fn forward(
        &self,
        input: &BatchTensors<B>,
        key_mask: Tensor<B, 2>,
        drop: &mut Dropout,
    ) -> Tensor<B, 3> {
        let x = self
            .tokenizer
            .forward(input.imaging.clone(), input.clinical.clone());
        self.transformer.forward(x, key_mask, drop)
    }

    /// Only the token slots `keep` (attending among themselves, minus masked keys)
    /// → `[batch, keep.len(), dim]`. `keep_mask` is the presence mask of those slots,
    /// `[batch, keep.len()]`.
    pub fn forward_subset(
        &self,
        input: &BatchTensors<B>,
        keep: &Tensor<B, 1, burn::tensor::Int>,
        keep_mask: Tensor<B, 2>,
        drop: &mut Dropout,
    ) -> Tensor<B, 3> {
        let x = self
            .tokenizer
            .forward(input.imaging.clone(), input.clinical.clone())
            .select(1, keep.clone());
        self.transformer.forward(x, keep_mask, drop)
    }
}

/// A host batch on a device.
#[derive(Debug, Clone)]
pub struct BatchTensors<B: Backend> {
    /// `[batch, img_tokens, img_width]`
    pub imaging: Tensor<B, 3>,
    /// `[batch, clin_tokens, clin_width]`
    pub clinical: Tensor<B, 3>,
    /// `[batch, tokens]` presence (1/0).
    pub token_mask: Tensor<B, 2>,
    /// `[batch]` labels (absent when unlabeled).
    pub labels: Option<Tensor<B, 1>>,
}

impl<B: Backend> BatchTensors<B> {
    pub fn from_host(
        h: &HostBatch,
        img: (usize, usize),
        clin: (usize, usize),
        device: &B::Device,
    ) -> Self {
        let b = h.size;
        BatchTensors {
            imaging: Tensor::from_data(
                TensorData::new(h.imaging.clone(), [b, img.0, img.1]),
                device,
            ),
            clinical: Tensor::from_data(
                TensorData::new(h.clinical.clone(), [b, clin.0, clin.1]),
                device,
            ),
            token_mask: Tensor::from_data(
                TensorData::new(h.token_mask.clone(), [b, img.0 + clin.0]),
                device,
            ),
            labels: (!h.labels.is_empty())
                .then(|| Tensor::from_data(TensorData::new(h.labels.clone(), [b]), device)),
        }
    }
}

/// Masked mean over tokens: `x` `[batch, tokens, dim]`, `mask` `[batch, tokens]` → `[batch, dim]`.
/// A patient with no present token pools to zeros.
pub fn masked_mean<B: Backend>(x: Tensor<B, 3>, mask: Tensor<B, 2>) -> Tensor<B, 2> {
    let [b, t, d] = x.dims();
    let m = mask.reshape([b, t, 1]);
    let sum = (x * m.clone()).sum_dim(1).reshape([b, d]);
    let count = m.sum_dim(1).reshape([b, 1]).clamp_min(1.0);
    sum / count
}
