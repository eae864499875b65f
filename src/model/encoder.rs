//! The pre-LN transformer encoder with masked multi-head attention: a key mask removes tokens
//! (a missing modality, or JEPA's hidden targets) from every attention so that their values can
//! never reach another token.

use burn::module::Module;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use super::{fused, init};
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

/// `x` `[..., d_in]` through `layer` as one 2-D matmul over all leading dimensions.
///
/// burn's `Linear::forward` on a 3-D input is a batched matmul, whose weight gradient is one
/// `[d_in, d_out]` product per batch row, materialized as `[batch, d_in, d_out]` and then summed:
/// at the `paper` benchmark shapes that was a quarter of a training step in copies and page
/// zeroing. Flattened, the weight gradient is a single product with `k = batch · tokens`.
pub fn dense<B: Backend, const D: usize>(layer: &Linear<B>, x: Tensor<B, D>) -> Tensor<B, D> {
    let mut dims = x.dims();
    let rows = dims[..D - 1].iter().product();
    let y = layer.forward(x.reshape([rows, dims[D - 1]]));
    dims[D - 1] = y.dims()[1];
    y.reshape(dims)
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

    /// `x`: `[batch, tokens, dim]`; `key_bias`: `[batch, tokens]` (0 or [`MASKED_SCORE`]),
    /// `None` when every key is present.
    ///
    /// Queries, keys and values are three products with column blocks of the one `qkv` weight
    /// (strided views, no copy). Cutting them out of one `[.., 3 · heads · dim_head]` product
    /// instead made every backward pass build three zero-filled gradients of that size and add
    /// them; without them a training step is 4–10% faster (`bench/train-step.sh`, both shapes).
    /// The weight's own blocks are 13× smaller than that product at the `paper` shapes. The
    /// products stay token-major: [`fused::attention`] reads each head's columns in place.
    pub fn forward(&self, x: Tensor<B, 3>, key_bias: Option<Tensor<B, 2>>) -> Tensor<B, 3> {
        let [b, t, d] = x.dims();
        let inner = self.heads * self.dim_head;
        let x = x.reshape([b * t, d]);
        let w = self.qkv.weight.val();
        let project = |i: usize| {
            x.clone()
                .matmul(w.clone().narrow(1, i * inner, inner))
                .reshape([b, t, inner])
        };
        let scale = 1.0 / (self.dim_head as f64).sqrt();
        let ctx = fused::attention(
            project(0),
            project(1),
            project(2),
            self.heads,
            scale,
            key_bias,
        );
        dense(&self.out, ctx)
    }
}

/// An index tensor for `select`.
pub fn index_tensor<B: Backend>(v: &[usize], device: &B::Device) -> Tensor<B, 1, Int> {
    let v: Vec<i64> = v.iter().map(|&i| i as i64).collect();
    let n = v.len();
    Tensor::from_data(TensorData::new(v, [n]), device)
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
        dense(&self.fc2, fused::gelu(dense(&self.fc1, x)))
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
        key_bias: Option<Tensor<B, 2>>,
        drop: &mut Dropout,
    ) -> Tensor<B, 3> {
        let a = self
            .attn
            .forward(fused::layer_norm(&self.norm1, x.clone()), key_bias);
        let x = x + drop.apply(a);
        let m = self.mlp.forward(fused::layer_norm(&self.norm2, x.clone()));
        x + drop.apply(m)
    }
}

/// A stack of blocks and a final LayerNorm.
#[derive(Module, Debug)]
pub struct Transformer<B: Backend> {
    pub blocks: Vec<Block<B>>,
    pub norm: LayerNorm<B>,
}

/// The keys every attention may read.
///
/// `All` when every token of every patient of the batch is present: then there is no mask work
/// at all, and the results are the bits the mask would give (a zero bias changes no score).
#[derive(Debug, Clone)]
pub enum Keys<B: Backend> {
    /// Every key of a `[batch, tokens]` batch is present.
    All([usize; 2]),
    /// `[batch, tokens]`, 1 = may be attended to.
    Masked(Tensor<B, 2>),
}

impl<B: Backend> Keys<B> {
    /// `mask` as given, or `All` when the caller knows it holds only ones.
    pub fn of(mask: Tensor<B, 2>, complete: bool) -> Self {
        if complete {
            Keys::All(mask.dims())
        } else {
            Keys::Masked(mask)
        }
    }

    /// The keys of `self`'s tokens followed by `other`'s.
    pub fn cat(self, other: Keys<B>, device: &B::Device) -> Self {
        match (self, other) {
            (Keys::All([b, n]), Keys::All([_, m])) => Keys::All([b, n + m]),
            (a, o) => Keys::Masked(Tensor::cat(vec![a.mask(device), o.mask(device)], 1)),
        }
    }

    /// The `[batch, tokens]` 0/1 mask.
    pub fn mask(self, device: &B::Device) -> Tensor<B, 2> {
        match self {
            Keys::All(dims) => Tensor::ones(dims, device),
            Keys::Masked(m) => m,
        }
    }

    /// The `[batch, tokens]` additive attention bias, `None` when every key is present.
    fn bias(&self) -> Option<Tensor<B, 2>> {
        let Keys::Masked(mask) = self else {
            return None;
        };
        Some(mask.clone().neg().add_scalar(1.0).mul_scalar(MASKED_SCORE))
    }
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

    /// `x`: `[batch, tokens, dim]`, attending only to `keys` → `[batch, tokens, dim]`.
    pub fn forward(&self, x: Tensor<B, 3>, keys: &Keys<B>, drop: &mut Dropout) -> Tensor<B, 3> {
        let bias = keys.bias();
        let mut x = x;
        for b in &self.blocks {
            x = b.forward(x, bias.clone(), drop);
        }
        fused::layer_norm(&self.norm, x)
    }
}
