//! The classifier: token encoder, masked mean pool, then LayerNorm → Linear → GELU → Linear → one
//! logit. Also inference over a whole cohort.

use burn::module::Module;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::Arch;
use super::data::Prepared;
use super::encoder::Dropout;
use super::tokens::{BatchTensors, TokenEncoder, masked_mean};
use super::{fused, init};
use crate::rng::Rng;

/// Pooled features `[batch, dim]` → logits `[batch]`.
#[derive(Module, Debug)]
pub struct Head<B: Backend> {
    pub norm: LayerNorm<B>,
    pub fc1: Linear<B>,
    pub fc2: Linear<B>,
}

impl<B: Backend> Head<B> {
    pub fn new(dim: usize, rng: &mut Rng, device: &B::Device) -> Self {
        Head {
            norm: init::layer_norm(dim, device),
            fc1: init::linear(dim, dim, true, rng, device),
            fc2: init::linear(dim, 1, true, rng, device),
        }
    }

    pub fn forward(&self, pooled: Tensor<B, 2>) -> Tensor<B, 1> {
        let [b, _] = pooled.dims();
        let h = fused::gelu(self.fc1.forward(fused::layer_norm(&self.norm, pooled)));
        self.fc2.forward(h).reshape([b])
    }
}

#[derive(Module, Debug)]
pub struct Classifier<B: Backend> {
    pub encoder: TokenEncoder<B>,
    pub head: Head<B>,
}

impl<B: Backend> Classifier<B> {
    pub fn new(arch: &Arch, rng: &mut Rng, device: &B::Device) -> Self {
        let encoder = TokenEncoder::new(arch, rng, device);
        let head = Head::new(arch.dim, rng, device);
        Classifier { encoder, head }
    }

    /// Pooled features `[batch, dim]` (present tokens only).
    pub fn pooled(&self, input: &BatchTensors<B>, drop: &mut Dropout) -> Tensor<B, 2> {
        let h = self.encoder.forward(input, &input.keys(), drop);
        masked_mean(h, input.token_mask.clone())
    }

    /// Logits `[batch]`.
    pub fn forward(&self, input: &BatchTensors<B>, drop: &mut Dropout) -> Tensor<B, 1> {
        self.head.forward(self.pooled(input, drop))
    }
}

/// Logits of every patient of `data`, in cohort order, in batches of `batch`.
pub fn predict<B: Backend>(
    model: &Classifier<B>,
    data: &Prepared,
    batch: usize,
    device: &B::Device,
) -> Result<Vec<f32>, super::ModelError> {
    let mut out = Vec::with_capacity(data.n);
    let idx: Vec<usize> = (0..data.n).collect();
    for chunk in idx.chunks(batch.max(1)) {
        let h = data.batch(chunk);
        let t = BatchTensors::<B>::from_host(
            &h,
            (data.img_tokens, data.img_width),
            (data.clin_tokens, data.clin_width),
            device,
        );
        let logits = model.forward(&t, &mut Dropout::none());
        out.extend(super::to_vec(logits)?);
    }
    Ok(out)
}
