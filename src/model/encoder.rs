//! The pre-LN transformer encoder with masked multi-head attention: a key mask removes tokens
//! (a missing modality, or JEPA's hidden targets) from every attention so that their values can
//! never reach another token.

use burn::module::Module;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::activation::{gelu, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use super::init;
use crate::rng::Rng;

/// Added to the attention score of a masked key: `exp` of it underflows to exactly 0, while a
/// row whose keys are all masked stays finite (uniform) instead of NaN.
pub const MASKED_SCORE: f32 = -1.0e9;

/// Dropout driven by the local RNG; inactive when `rng` is `None` or `p == 0`.
pub struct Dropout<'a> {
    pub p: f64,
    pub rng: Option<&'a mut Rng>,
}

impl Dropout<'_> {
    pub fn none() -> Dropout<'static> {
        Dropout { p: 0.0, rng: None }
    }

    pub fn apply<B: Backend, const D: usize>(&mut self, x: Tensor<B, D>) -> Tensor<B, D> {
        let Some(rng) = self.rng.as_deref_mut() else {
            return x;
        };
        if self.p <= 0.0 {
            return x;
        }
        let shape = x.shape();
        let n = shape.num_elements();
        let keep = 1.0 - self.p;
        let mask: Vec<f32> = (0..n)
            .map(|_| {
                if rng.uniform() < keep {
                    (1.0 / keep) as f32
                } else {
                    0.0
                }
            })
            .collect();
        let dims: [usize; D] = shape.dims();
        let mask = Tensor::<B, D>::from_data(TensorData::new(mask, dims), &x.device());
        x * mask
    }
}

/// Multi-head self-attention without biases (as the PyTorch reference).
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    /// `dim → 3 · heads · dim_head` (queries, keys, values).
    pub qkv: Linear<B>,
    /// `heads · dim_head → dim`
    pub out: Linear<B>,
    pub heads: usize,
    pub dim_head: usize,
}

impl<B: Backend> Attention<B> {
    pub fn new(
        dim: usize,
        heads: usize,
        dim_head: usize,
        rng: &mut Rng,
        device: &B::Device,
    ) -> Self {
        let inner = heads * dim_head;
        Attention {
            qkv: init::linear(dim, 3 * inner, false, rng, device),
            out: init::linear(inner, dim, false, rng, device),
            heads,
            dim_head,
        }
    }

    /// `x`: `[batch, tokens, dim]`; `key_bias`: `[batch, 1, 1, tokens]` (0 or [`MASKED_SCORE`]).
    pub fn forward(&self, x: Tensor<B, 3>, key_bias: Tensor<B, 4>) -> Tensor<B, 3> {
        let [b, t, _] = x.dims();
        let (h, dh) = (self.heads, self.dim_head);
        let inner = h * dh;
        // [batch, tokens, 3, heads, dim_head] → [3, batch, heads, tokens, dim_head]
        let qkv = self
            .qkv
            .forward(x)
            .reshape([b, t, 3, h, dh])
            .permute([2, 0, 3, 1, 4]);
        let q = qkv.clone().narrow(0, 0, 1).reshape([b, h, t, dh]);
        let k = qkv.clone().narrow(0, 1, 1).reshape([b, h, t, dh]);
        let v = qkv.narrow(0, 2, 1).reshape([b, h, t, dh]);
        let scale = 1.0 / (dh as f64).sqrt();
        // [batch, heads, tokens, tokens]
        let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(scale) + key_bias;
        let attn = softmax(scores, 3);
        // [batch, heads, tokens, dim_head] → [batch, tokens, heads · dim_head]
        let ctx = attn.matmul(v).swap_dims(1, 2).reshape([b, t, inner]);
        self.out.forward(ctx)
    }
}

/// The position-wise MLP: `dim → mlp_dim → dim` with GELU.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    pub fc1: Linear<B>,
    pub fc2: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    pub fn new(dim: usize, hidden: usize, rng: &mut Rng, device: &B::Device) -> Self {
        Mlp {
            fc1: init::linear(dim, hidden, true, rng, device),
            fc2: init::linear(hidden, dim, true, rng, device),
        }
    }

    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.fc2.forward(gelu(self.fc1.forward(x)))
    }
}

/// A pre-LN block: `x + attn(ln(x))`, then `x + mlp(ln(x))`.
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    pub norm1: LayerNorm<B>,
    pub attn: Attention<B>,
    pub norm2: LayerNorm<B>,
    pub mlp: Mlp<B>,
}

impl<B: Backend> Block<B> {
    pub fn new(
        dim: usize,
        heads: usize,
        dim_head: usize,
        mlp_dim: usize,
        rng: &mut Rng,
        device: &B::Device,
    ) -> Self {
        Block {
            norm1: init::layer_norm(dim, device),
            attn: Attention::new(dim, heads, dim_head, rng, device),
            norm2: init::layer_norm(dim, device),
            mlp: Mlp::new(dim, mlp_dim, rng, device),
        }
    }

    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        key_bias: Tensor<B, 4>,
        drop: &mut Dropout,
    ) -> Tensor<B, 3> {
        let a = self.attn.forward(self.norm1.forward(x.clone()), key_bias);
        let x = x + drop.apply(a);
        let m = self.mlp.forward(self.norm2.forward(x.clone()));
        x + drop.apply(m)
    }
}

/// A stack of blocks and a final LayerNorm.
#[derive(Module, Debug)]
pub struct Transformer<B: Backend> {
    pub blocks: Vec<Block<B>>,
    pub norm: LayerNorm<B>,
}

/// `[batch, tokens]` 0/1 key mask → `[batch, 1, 1, tokens]` additive attention bias.
pub fn key_bias<B: Backend>(key_mask: Tensor<B, 2>) -> Tensor<B, 4> {
    let [b, t] = key_mask.dims();
    key_mask
        .neg()
        .add_scalar(1.0)
        .mul_scalar(MASKED_SCORE)
        .reshape([b, 1, 1, t])
}

impl<B: Backend> Transformer<B> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        dim: usize,
        depth: usize,
        heads: usize,
        dim_head: usize,
        mlp_dim: usize,
        rng: &mut Rng,
        device: &B::Device,
    ) -> Self {
        Transformer {
            blocks: (0..depth)
                .map(|_| Block::new(dim, heads, dim_head, mlp_dim, rng, device))
                .collect(),
            norm: init::layer_norm(dim, device),
        }
    }

    /// `x`: `[batch, tokens, dim]`; `key_mask`: `[batch, tokens]` (1 = may be attended to).
    /// Returns `[batch, tokens, dim]`.
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        key_mask: Tensor<B, 2>,
        drop: &mut Dropout,
    ) -> Tensor<B, 3> {
        let bias = key_bias(key_mask);
        let mut x = x;
        for b in &self.blocks {
            x = b.forward(x, bias.clone(), drop);
        }
        self.norm.forward(x)
    }
}
