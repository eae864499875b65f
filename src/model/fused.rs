//! Fused CPU training kernels: LayerNorm, multi-head attention and GELU as one op each, forward
//! and backward, for the CPU training backend ([`CpuBackend`]).
//!
//! burn's autodiff backend records LayerNorm as ten elementwise and reduction ops; attention as
//! layout copies of the heads, two batched matmuls and a softmax of five ops (plus the score
//! scale and the key-mask bias), each a fresh buffer forward and more backward; its GELU calls
//! libm's scalar `erf` per element, forward and again backward. Here each is one pass forward
//! and one backward, and the model calls [`layer_norm`], [`attention`] and [`gelu`] instead of
//! burn's. The plain CPU backend
//! (inference, the JEPA targets) runs the same forward kernels, so training and inference share
//! one arithmetic; any other backend (CUDA) takes burn's own ops. Which one a call gets is
//! decided by the tensor's type, with no unsafe code.
//!
//! The arithmetic is plain Rust on `f32` slices: every sum runs over eight fixed lanes that are
//! combined in one fixed order, and no multiply-add is fused, so the bits depend neither on the
//! thread count nor on the instruction set (rows and batch items are split among threads, never
//! a sum).
//! `exp` and `erf` are [`exp_f32`] and [`erf_f32`], this module's own, branch-free so that
//! their loops vectorize, and so that no libm variant chosen at run time can change them.

use std::any::Any;

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::nn::LayerNorm;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Shape, Tensor, TensorMetadata, TensorPrimitive};
use burn_flex::FlexTensor;
use macerator::{Arch, Simd, WithSimd};
use rayon::prelude::*;

use super::backend::CpuBackend;
use super::init::LAYER_NORM_EPSILON;

/// Rows per task; a fixed split, so partial sums never depend on the thread count.
const ROWS_PER_TASK: usize = 32;

/// Tensors of fewer elements are done on the calling thread: waking the pool costs more than
/// the work (the CPU backend's own threshold for elementwise ops).
const PARALLEL_MIN: usize = 256 * 1024;

/// `x` as a `U` when `T` and `U` are the same type, else `x` back.
fn same_type<T: 'static, U: 'static>(x: T) -> Result<U, T> {
    let mut slot = Some(x);
    match (&mut slot as &mut dyn Any).downcast_mut::<Option<U>>() {
        Some(u) => Ok(u.take().expect("the slot was just filled")),
        None => Err(slot.expect("the slot was not taken")),
    }
}

/// `y` back as a `Tensor<B, D>`, where `y`'s backend is known to be `B`.
fn back<C: Backend, B: Backend, const D: usize>(y: Tensor<C, D>) -> Tensor<B, D> {
    same_type::<Tensor<C, D>, Tensor<B, D>>(y)
        .unwrap_or_else(|_| unreachable!("called with B = C only"))
}

/// `t` as a tensor of backend `C`, where `B` is known to be `C`.
fn as_backend<B: Backend, C: Backend, const D: usize>(t: Tensor<B, D>) -> Tensor<C, D> {
    same_type::<Tensor<B, D>, Tensor<C, D>>(t)
        .unwrap_or_else(|_| unreachable!("called with B = C only"))
}

/// `layer.forward(x)`; fused on the CPU backends (training and inference). `layer` is one of
/// [`super::init::layer_norm`]'s, with [`LAYER_NORM_EPSILON`].
pub fn layer_norm<B: Backend, const D: usize>(
    layer: &LayerNorm<B>,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    let Some(beta) = layer.beta.as_ref() else {
        return layer.forward(x);
    };
    let x = match same_type::<Tensor<B, D>, Tensor<CpuBackend, D>>(x) {
        Ok(x) => {
            let (gamma, beta) = (as_backend(layer.gamma.val()), as_backend(beta.val()));
            return back(layer_norm_cpu(x, gamma, beta, LAYER_NORM_EPSILON));
        }
        Err(x) => x,
    };
    match same_type::<Tensor<B, D>, Tensor<Flex, D>>(x) {
        Ok(x) => {
            let gamma = flex(as_backend::<B, Flex, 1>(layer.gamma.val()));
            let beta = flex(as_backend::<B, Flex, 1>(beta.val()));
            let (shape, y, _) = layer_norm_flex(
                x,
                gamma.storage::<f32>(),
                beta.storage::<f32>(),
                LAYER_NORM_EPSILON,
            );
            back(from_flex::<D>(new_f32(shape, y)))
        }
        Err(x) => layer.forward(x),
    }
}

/// LayerNorm of a plain CPU tensor's last-dimension rows: its shape, the output and the
/// normalized rows.
fn layer_norm_flex<const D: usize>(
    x: Tensor<Flex, D>,
    gamma: &[f32],
    beta: &[f32],
    epsilon: f64,
) -> (Shape, Vec<f32>, Vec<f32>) {
    let x = flex(x);
    let shape = x.shape();
    let d = shape[D - 1];
    let (y, xhat, _) = layer_norm_forward(
        Arch::new(),
        x.storage::<f32>(),
        gamma,
        beta,
        d,
        epsilon as f32,
    );
    (shape, y, xhat)
}

/// LayerNorm without affine parameters over the last dimension; fused on the plain CPU backend
/// (where the JEPA targets are computed).
pub fn layer_norm_plain<B: Backend, const D: usize>(x: Tensor<B, D>, epsilon: f64) -> Tensor<B, D> {
    match same_type::<Tensor<B, D>, Tensor<Flex, D>>(x) {
        Ok(x) => {
            let d = x.dims()[D - 1];
            let (shape, _, xhat) = layer_norm_flex(x, &vec![1.0; d], &vec![0.0; d], epsilon);
            back(from_flex::<D>(new_f32(shape, xhat)))
        }
        Err(x) => {
            let mean = x.clone().mean_dim(D - 1);
            let c = x - mean;
            let var = (c.clone() * c.clone()).mean_dim(D - 1);
            c / var.add_scalar(epsilon).sqrt()
        }
    }
}

/// Multi-head attention over token-major rows: `q`, `k`, `v` `[batch, tokens, heads · dim_head]`
/// (head `h` in columns `h · dim_head ..`) → the same shape, each head
/// `softmax(q · kᵀ · scale + key_bias) · v`. `key_bias` `[batch, tokens]` is 0, or
/// [`super::encoder::MASKED_SCORE`] for a key no query may read (no gradient flows into it).
///
/// Fused on the CPU backends (training and inference): each batch item's heads are read
/// straight from the projections' rows and written straight to the output's, so no layout copy
/// moves heads in and out of a batched matmul, and the products of 13 × 32 blocks that the
/// `paper` shapes give are plain loops instead of thousands of tiny gemm calls. Elsewhere
/// (CUDA) [`attention_reference`], burn's ops.
pub fn attention<B: Backend>(
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    heads: usize,
    scale: f64,
    key_bias: Option<Tensor<B, 2>>,
) -> Tensor<B, 3> {
    type Qkv<B> = (Tensor<B, 3>, Tensor<B, 3>, Tensor<B, 3>);
    let qkv = match same_type::<Qkv<B>, Qkv<CpuBackend>>((q, k, v)) {
        Ok((q, k, v)) => {
            let bias = key_bias.map(|b| flex(as_backend::<B, CpuBackend, 2>(b).inner()));
            return back(attention_cpu(q, k, v, heads, scale as f32, bias));
        }
        Err(qkv) => qkv,
    };
    match same_type::<Qkv<B>, Qkv<Flex>>(qkv) {
        Ok((q, k, v)) => {
            let bias = key_bias.map(|b| flex(as_backend::<B, Flex, 2>(b)));
            let (q, k, v) = (flex(q), flex(k), flex(v));
            let geometry = Heads::of(&q, &k, &v, heads, scale as f32);
            let (out, _) = attention_forward(
                Arch::new(),
                q.storage::<f32>(),
                k.storage::<f32>(),
                v.storage::<f32>(),
                bias.as_ref().map(|b| b.storage::<f32>()),
                geometry,
            );
            back(from_flex::<3>(new_f32(q.shape(), out)))
        }
        Err((q, k, v)) => attention_reference(q, k, v, heads, scale, key_bias),
    }
}

/// [`attention`] in burn's ops: heads as a transposed view, two batched matmuls and burn's
/// softmax. What a GPU backend runs, and the reference the fused kernels are tested against.
pub fn attention_reference<B: Backend>(
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    heads: usize,
    scale: f64,
    key_bias: Option<Tensor<B, 2>>,
) -> Tensor<B, 3> {
    let [b, t, inner] = q.dims();
    let split = |x: Tensor<B, 3>| x.reshape([b, t, heads, inner / heads]).swap_dims(1, 2);
    let mut scores = split(q).matmul(split(k).swap_dims(2, 3)).mul_scalar(scale);
    if let Some(bias) = key_bias {
        scores = scores + bias.reshape([b, 1, 1, t]);
    }
    burn::tensor::activation::softmax(scores, 3)
        .matmul(split(v))
        .swap_dims(1, 2)
        .reshape([b, t, inner])
}

/// `gelu(x)` (the exact form, `x · Φ(x)`, as PyTorch's default); fused on the CPU backends
/// (training and inference), with [`erf_f32`] and [`exp_f32`].
pub fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let x = match same_type::<Tensor<B, D>, Tensor<CpuBackend, D>>(x) {
        Ok(x) => return back(gelu_cpu(x)),
        Err(x) => x,
    };
    match same_type::<Tensor<B, D>, Tensor<Flex, D>>(x) {
        Ok(x) => {
            let x = flex(x);
            let y = gelu_forward(Arch::new(), x.storage::<f32>());
            back(from_flex::<D>(new_f32(x.shape(), y)))
        }
        Err(x) => burn::tensor::activation::gelu(x),
    }
}

type AdTensor = FloatTensor<CpuBackend>;

/// A plain CPU tensor's contiguous `f32` storage.
fn flex<const D: usize>(t: Tensor<Flex, D>) -> FlexTensor {
    f32_rows(&t.into_primitive().tensor())
}

fn from_flex<const D: usize>(t: FlexTensor) -> Tensor<Flex, D> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

fn primitive<const D: usize>(t: Tensor<CpuBackend, D>) -> AdTensor {
    t.into_primitive().tensor()
}

fn tensor<const D: usize>(t: AdTensor) -> Tensor<CpuBackend, D> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

fn f32_rows(t: &FlexTensor) -> FlexTensor {
    assert_eq!(t.dtype(), DType::F32, "the CPU training kernels are f32");
    t.to_contiguous()
}

fn new_f32(shape: Shape, data: Vec<f32>) -> FlexTensor {
    FlexTensor::from_data(burn::tensor::TensorData::new(data, shape))
}

#[derive(Debug)]
struct LayerNormOp;

impl Backward<Flex, 3> for LayerNormOp {
    /// The normalized input, each row's `1 / σ`, and the gain.
    type State = (FlexTensor, Vec<f32>, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (xhat, rstd, gamma) = ops.state;
        let grad = f32_rows(&grads.consume::<Flex>(&ops.node));
        let [px, pg, pb] = ops.parents;
        let shape = xhat.shape();
        let d = gamma.shape().num_elements();
        let (dx, dgamma, dbeta) = layer_norm_backward(
            Arch::new(),
            grad.storage::<f32>(),
            xhat.storage::<f32>(),
            &rstd,
            gamma.storage::<f32>(),
            d,
        );
        if let Some(node) = px {
            grads.register::<Flex>(node.id, new_f32(shape, dx));
        }
        if let Some(node) = pg {
            grads.register::<Flex>(node.id, new_f32(Shape::new([d]), dgamma));
        }
        if let Some(node) = pb {
            grads.register::<Flex>(node.id, new_f32(Shape::new([d]), dbeta));
        }
    }
}

fn layer_norm_cpu<const D: usize>(
    x: Tensor<CpuBackend, D>,
    gamma: Tensor<CpuBackend, 1>,
    beta: Tensor<CpuBackend, 1>,
    epsilon: f64,
) -> Tensor<CpuBackend, D> {
    let (x, gamma, beta) = (primitive(x), primitive(gamma), primitive(beta));
    let shape = x.primitive.shape();
    let d = shape[D - 1];
    let input = f32_rows(&x.primitive);
    let g = f32_rows(&gamma.primitive);
    let b = f32_rows(&beta.primitive);
    let (y, xhat, rstd) = layer_norm_forward(
        Arch::new(),
        input.storage::<f32>(),
        g.storage::<f32>(),
        b.storage::<f32>(),
        d,
        epsilon as f32,
    );
    let y = new_f32(shape.clone(), y);
    let out = match LayerNormOp
        .prepare::<NoCheckpointing>([x.node.clone(), gamma.node.clone(), beta.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((new_f32(shape, xhat), rstd, g), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    tensor(out)
}

#[derive(Debug)]
struct AttentionOp;

impl Backward<Flex, 3> for AttentionOp {
    /// The queries, keys and values, the attention weights and the geometry.
    type State = (FlexTensor, FlexTensor, FlexTensor, Vec<f32>, Heads);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (q, k, v, probs, geometry) = ops.state;
        let grad = f32_rows(&grads.consume::<Flex>(&ops.node));
        let [pq, pk, pv] = ops.parents;
        let (dq, dk, dv) = attention_backward(
            Arch::new(),
            q.storage::<f32>(),
            k.storage::<f32>(),
            v.storage::<f32>(),
            &probs,
            grad.storage::<f32>(),
            geometry,
        );
        for (parent, d) in [(pq, dq), (pk, dk), (pv, dv)] {
            if let Some(node) = parent {
                grads.register::<Flex>(node.id, new_f32(q.shape(), d));
            }
        }
    }
}

fn attention_cpu(
    q: Tensor<CpuBackend, 3>,
    k: Tensor<CpuBackend, 3>,
    v: Tensor<CpuBackend, 3>,
    heads: usize,
    scale: f32,
    key_bias: Option<FlexTensor>,
) -> Tensor<CpuBackend, 3> {
    let (q, k, v) = (primitive(q), primitive(k), primitive(v));
    let (qf, kf, vf) = (
        f32_rows(&q.primitive),
        f32_rows(&k.primitive),
        f32_rows(&v.primitive),
    );
    let geometry = Heads::of(&qf, &kf, &vf, heads, scale);
    let (out, probs) = attention_forward(
        Arch::new(),
        qf.storage::<f32>(),
        kf.storage::<f32>(),
        vf.storage::<f32>(),
        key_bias.as_ref().map(|b| b.storage::<f32>()),
        geometry,
    );
    let out = new_f32(qf.shape(), out);
    let out = match AttentionOp
        .prepare::<NoCheckpointing>([q.node.clone(), k.node.clone(), v.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((qf, kf, vf, probs, geometry), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    tensor(out)
}

#[derive(Debug)]
struct GeluOp;

impl Backward<Flex, 1> for GeluOp {
    /// The input.
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let x = ops.state;
        let grad = f32_rows(&grads.consume::<Flex>(&ops.node));
        let [parent] = ops.parents;
        if let Some(node) = parent {
            let dx = gelu_backward(Arch::new(), grad.storage::<f32>(), x.storage::<f32>());
            grads.register::<Flex>(node.id, new_f32(x.shape(), dx));
        }
    }
}

fn gelu_cpu<const D: usize>(x: Tensor<CpuBackend, D>) -> Tensor<CpuBackend, D> {
    let x = primitive(x);
    let input = f32_rows(&x.primitive);
    let y = new_f32(
        input.shape(),
        gelu_forward(Arch::new(), input.storage::<f32>()),
    );
    let out = match GeluOp
        .prepare::<NoCheckpointing>([x.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(input, y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    tensor(out)
}

// ---- the kernels: plain f32 slices -------------------------------------------------------------

const LANES: usize = 8;

/// `Σ a[i] · b[i]` over eight lanes combined in a fixed order (`b = None`: `Σ a[i]`).
#[inline(always)]
fn lane_dot(a: &[f32], b: Option<&[f32]>) -> f32 {
    let mut acc = [0f32; LANES];
    let n = a.len() / LANES * LANES;
    match b {
        Some(b) => {
            for (ca, cb) in a[..n].chunks_exact(LANES).zip(b[..n].chunks_exact(LANES)) {
                for l in 0..LANES {
                    acc[l] += ca[l] * cb[l];
                }
            }
            for i in n..a.len() {
                acc[i - n] += a[i] * b[i];
            }
        }
        None => {
            for ca in a[..n].chunks_exact(LANES) {
                for l in 0..LANES {
                    acc[l] += ca[l];
                }
            }
            for i in n..a.len() {
                acc[i - n] += a[i];
            }
        }
    }
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
}

/// LayerNorm of each `d`-row of `x`: the output, the normalized rows, and each row's `1 / σ`
/// (biased variance, `epsilon` inside the root, as PyTorch).
pub fn layer_norm_forward(
    level: Arch,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    d: usize,
    epsilon: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let rows = x.len() / d;
    let mut y = vec![0f32; x.len()];
    let mut xhat = vec![0f32; x.len()];
    let mut rstd = vec![0f32; rows];
    let chunk = ROWS_PER_TASK * d;
    let task = |y, xhat, rstd, x| {
        level.dispatch(LayerNormRows {
            y,
            xhat,
            rstd,
            x,
            gamma,
            beta,
            epsilon,
        })
    };
    if x.len() >= PARALLEL_MIN {
        (y.par_chunks_mut(chunk).zip(xhat.par_chunks_mut(chunk)))
            .zip(rstd.par_chunks_mut(ROWS_PER_TASK).zip(x.par_chunks(chunk)))
            .for_each(|((y, xhat), (rstd, x))| task(y, xhat, rstd, x));
    } else {
        (y.chunks_mut(chunk).zip(xhat.chunks_mut(chunk)))
            .zip(rstd.chunks_mut(ROWS_PER_TASK).zip(x.chunks(chunk)))
            .for_each(|((y, xhat), (rstd, x))| task(y, xhat, rstd, x));
    }
    (y, xhat, rstd)
}

/// One task of [`layer_norm_forward`]: its rows.
struct LayerNormRows<'a> {
    y: &'a mut [f32],
    xhat: &'a mut [f32],
    rstd: &'a mut [f32],
    x: &'a [f32],
    gamma: &'a [f32],
    beta: &'a [f32],
    epsilon: f32,
}

impl WithSimd for LayerNormRows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self) {
        let LayerNormRows {
            y,
            xhat,
            rstd,
            x,
            gamma,
            beta,
            epsilon,
        } = self;
        let d = gamma.len();
        for (r, s) in rstd.iter_mut().enumerate() {
            let (x, xhat, y) = (
                &x[r * d..][..d],
                &mut xhat[r * d..][..d],
                &mut y[r * d..][..d],
            );
            let mean = lane_dot(x, None) / d as f32;
            for (c, &v) in xhat.iter_mut().zip(x) {
                *c = v - mean;
            }
            let var = lane_dot(xhat, Some(xhat)) / d as f32;
            *s = 1.0 / (var + epsilon).sqrt();
            for j in 0..d {
                xhat[j] *= *s;
                y[j] = xhat[j] * gamma[j] + beta[j];
            }
        }
    }
}

/// The LayerNorm gradients from the output gradient `g`: input, gain, bias.
pub fn layer_norm_backward(
    level: Arch,
    g: &[f32],
    xhat: &[f32],
    rstd: &[f32],
    gamma: &[f32],
    d: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut dx = vec![0f32; g.len()];
    let chunk = ROWS_PER_TASK * d;
    // Each task's partial gain and bias gradients, summed below in task order.
    let task = |dx, g, xhat, rstd| {
        level.dispatch(LayerNormGrads {
            dx,
            g,
            xhat,
            rstd,
            gamma,
        })
    };
    let partials: Vec<(Vec<f32>, Vec<f32>)> = if g.len() >= PARALLEL_MIN {
        (dx.par_chunks_mut(chunk)
            .zip(g.par_chunks(chunk).zip(xhat.par_chunks(chunk))))
        .zip(rstd.par_chunks(ROWS_PER_TASK))
        .map(|((dx, (g, xhat)), rstd)| task(dx, g, xhat, rstd))
        .collect()
    } else {
        (dx.chunks_mut(chunk)
            .zip(g.chunks(chunk).zip(xhat.chunks(chunk))))
        .zip(rstd.chunks(ROWS_PER_TASK))
        .map(|((dx, (g, xhat)), rstd)| task(dx, g, xhat, rstd))
        .collect()
    };
    let mut dgamma = vec![0f32; d];
    let mut dbeta = vec![0f32; d];
    for (pg, pb) in &partials {
        for j in 0..d {
            dgamma[j] += pg[j];
            dbeta[j] += pb[j];
        }
    }
    (dx, dgamma, dbeta)
}

/// One task of [`layer_norm_backward`]: its rows' input gradients, and its partial gain and
/// bias gradients.
struct LayerNormGrads<'a> {
    dx: &'a mut [f32],
    g: &'a [f32],
    xhat: &'a [f32],
    rstd: &'a [f32],
    gamma: &'a [f32],
}

impl WithSimd for LayerNormGrads<'_> {
    type Output = (Vec<f32>, Vec<f32>);

    #[inline(always)]
    fn with_simd<S: Simd>(self) -> Self::Output {
        let LayerNormGrads {
            dx,
            g,
            xhat,
            rstd,
            gamma,
        } = self;
        let d = gamma.len();
        let mut dgamma = vec![0f32; d];
        let mut dbeta = vec![0f32; d];
        let mut gg = vec![0f32; d];
        for (r, &s) in rstd.iter().enumerate() {
            let (g, xhat, dx) = (&g[r * d..][..d], &xhat[r * d..][..d], &mut dx[r * d..][..d]);
            for j in 0..d {
                gg[j] = g[j] * gamma[j];
                dgamma[j] += g[j] * xhat[j];
                dbeta[j] += g[j];
            }
            let a = lane_dot(&gg, None) / d as f32;
            let c = lane_dot(&gg, Some(xhat)) / d as f32;
            for j in 0..d {
                dx[j] = s * ((gg[j] - a) - xhat[j] * c);
            }
        }
        (dgamma, dbeta)
    }
}

/// The shape of an attention: `batch` items of `tokens` rows, each row `heads` blocks of
/// `dim_head` columns, and the score scale.
#[derive(Debug, Clone, Copy)]
pub struct Heads {
    pub batch: usize,
    pub tokens: usize,
    pub heads: usize,
    pub dim_head: usize,
    pub scale: f32,
}

impl Heads {
    fn of(q: &FlexTensor, k: &FlexTensor, v: &FlexTensor, heads: usize, scale: f32) -> Heads {
        let shape = q.shape();
        assert!(
            k.shape() == shape && v.shape() == shape,
            "queries, keys and values of one shape"
        );
        assert_eq!(shape.num_dims(), 3, "[batch, tokens, heads · dim_head]");
        assert_eq!(shape[2] % heads, 0, "heads divide the width");
        Heads {
            batch: shape[0],
            tokens: shape[1],
            heads,
            dim_head: shape[2] / heads,
            scale,
        }
    }

    /// Where head `head` of token row `row` starts among an item's rows.
    #[inline(always)]
    fn col(&self, head: usize, row: usize) -> usize {
        (row * self.heads + head) * self.dim_head
    }

    /// The tokens rounded up to whole register blocks of 8: the row length of a transposed head
    /// ([`transpose_head`]).
    fn padded(&self) -> usize {
        self.tokens.next_multiple_of(8)
    }

    /// Floats of one item's token rows, and of its attention weights.
    fn item_sizes(&self) -> (usize, usize) {
        (
            self.tokens * self.heads * self.dim_head,
            self.heads * self.tokens * self.tokens,
        )
    }
}

/// `x[start..start + len]`.
#[inline(always)]
fn block(x: &[f32], start: usize, len: usize) -> &[f32] {
    &x[start..][..len]
}

/// `out[c] = Σ_r w(r) · x[at(r) + c]` for every column `c` of `out`, each sum in the order
/// `r = 0, 1, …, n − 1` (so the same bits at every vector width), accumulated in registers 32,
/// 16 or 8 columns at a time (independent chains, so that the adds do not wait on each other).
#[inline(always)]
fn combine_rows(
    out: &mut [f32],
    n: usize,
    w: impl Fn(usize) -> f32,
    x: &[f32],
    at: impl Fn(usize) -> usize,
) {
    let mut c0 = 0;
    while out.len() - c0 >= 32 {
        combine_block::<32>(&mut out[c0..c0 + 32], c0, n, &w, x, &at);
        c0 += 32;
    }
    while out.len() - c0 >= 8 {
        combine_block::<8>(&mut out[c0..c0 + 8], c0, n, &w, x, &at);
        c0 += 8;
    }
    for (c, o) in out[c0..].iter_mut().enumerate() {
        let mut acc = 0f32;
        for r in 0..n {
            acc += w(r) * x[at(r) + c0 + c];
        }
        *o = acc;
    }
}

/// [`combine_rows`] for the `N` columns from `c0`.
#[inline(always)]
fn combine_block<const N: usize>(
    out: &mut [f32],
    c0: usize,
    n: usize,
    w: &impl Fn(usize) -> f32,
    x: &[f32],
    at: &impl Fn(usize) -> usize,
) {
    let mut acc = [0f32; N];
    for r in 0..n {
        let (a, xr) = (w(r), &x[at(r) + c0..][..N]);
        for l in 0..N {
            acc[l] += a * xr[l];
        }
    }
    out.copy_from_slice(&acc);
}

/// Head `h`'s `dim_head` columns of the `tokens` rows of `x`, transposed into `t`
/// (`[dim_head, g.padded()]`, zero past `tokens`): a key (or value) per column, so that
/// products with them run across keys in registers.
#[inline(always)]
fn transpose_head(t: &mut [f32], x: &[f32], g: &Heads, h: usize) {
    let padded = g.padded();
    for j in 0..g.tokens {
        for (c, &v) in x[g.col(h, j)..][..g.dim_head].iter().enumerate() {
            t[c * padded + j] = v;
        }
    }
}

/// Attention of token-major `q`, `k`, `v` (see [`attention`]): the output, same layout, and the
/// attention weights `[batch, heads, queries, keys]`. `bias`: one `tokens`-row per item.
///
/// Items are independent (split among threads above `PARALLEL_MIN` elements); within an item
/// every sum runs in a fixed order (`combine_rows`: a score column by column, the weighted sum
/// of values key by key).
pub fn attention_forward(
    level: Arch,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    bias: Option<&[f32]>,
    g: Heads,
) -> (Vec<f32>, Vec<f32>) {
    let t = g.tokens;
    let (rows, weights) = g.item_sizes();
    let mut out = vec![0f32; q.len()];
    let mut probs = vec![0f32; g.batch * weights];
    let task = |(item, (out, p)): (usize, (&mut [f32], &mut [f32]))| {
        level.dispatch(AttendItem {
            q: block(q, item * rows, rows),
            k: block(k, item * rows, rows),
            v: block(v, item * rows, rows),
            bias: bias.map(|b| block(b, item * t, t)),
            out,
            p,
            g,
        })
    };
    if q.len() >= PARALLEL_MIN {
        out.par_chunks_mut(rows)
            .zip(probs.par_chunks_mut(weights))
            .enumerate()
            .for_each(task);
    } else {
        out.chunks_mut(rows)
            .zip(probs.chunks_mut(weights))
            .enumerate()
            .for_each(task);
    }
    (out, probs)
}

/// One batch item of [`attention_forward`].
struct AttendItem<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    bias: Option<&'a [f32]>,
    out: &'a mut [f32],
    p: &'a mut [f32],
    g: Heads,
}

impl WithSimd for AttendItem<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self) {
        let AttendItem {
            q,
            k,
            v,
            bias,
            out,
            p,
            g,
        } = self;
        let (t, dh, padded) = (g.tokens, g.dim_head, g.padded());
        let col = |head: usize, row: usize| g.col(head, row);
        let (mut kt, mut scores) = (vec![0f32; dh * padded], vec![0f32; padded]);
        // Scores less each row's maximum, then `exp` over the item's whole block (one loop the
        // compiler vectorizes), then each row over its sum.
        for (h, p) in p.chunks_exact_mut(t * t).enumerate() {
            transpose_head(&mut kt, k, &g, h);
            for (i, row) in p.chunks_exact_mut(t).enumerate() {
                combine_rows(&mut scores, dh, |c| q[col(h, i) + c], &kt, |c| c * padded);
                for (s, &v) in row.iter_mut().zip(&scores) {
                    *s = v * g.scale;
                }
                if let Some(b) = bias {
                    for (s, &b) in row.iter_mut().zip(b) {
                        *s += b;
                    }
                }
                let max = row.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
                for s in row.iter_mut() {
                    *s -= max;
                }
            }
        }
        for s in p.iter_mut() {
            *s = exp_f32(*s);
        }
        for row in p.chunks_exact_mut(t) {
            let inv = 1.0 / lane_dot(row, None);
            for s in row.iter_mut() {
                *s *= inv;
            }
        }
        for (h, p) in p.chunks_exact(t * t).enumerate() {
            for i in 0..t {
                let o = &mut out[col(h, i)..][..dh];
                combine_rows(o, t, |j| p[i * t + j], v, |j| col(h, j));
            }
        }
    }
}

/// The gradients of [`attention_forward`]'s `q`, `k`, `v` from the attention weights `probs`
/// and the output gradient `dout`. Per head, with `P` the weights and `dS = scale · P ⊙ (dP −
/// rowsum(dP ⊙ P))`, `dP = dO · vᵀ`: `dq = dS · k`, `dk = dSᵀ · q`, `dv = Pᵀ · dO`.
pub fn attention_backward(
    level: Arch,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    probs: &[f32],
    dout: &[f32],
    g: Heads,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (rows, weights) = g.item_sizes();
    let mut dq = vec![0f32; q.len()];
    let mut dk = vec![0f32; q.len()];
    let mut dv = vec![0f32; q.len()];
    let task = |(item, (dq, (dk, dv))): (usize, (&mut _, (&mut _, &mut _)))| {
        level.dispatch(AttendItemGrads {
            q: block(q, item * rows, rows),
            k: block(k, item * rows, rows),
            v: block(v, item * rows, rows),
            p: block(probs, item * weights, weights),
            dout: block(dout, item * rows, rows),
            dq,
            dk,
            dv,
            g,
        })
    };
    if q.len() >= PARALLEL_MIN {
        dq.par_chunks_mut(rows)
            .zip(dk.par_chunks_mut(rows).zip(dv.par_chunks_mut(rows)))
            .enumerate()
            .for_each(task);
    } else {
        dq.chunks_mut(rows)
            .zip(dk.chunks_mut(rows).zip(dv.chunks_mut(rows)))
            .enumerate()
            .for_each(task);
    }
    (dq, dk, dv)
}

/// One batch item of [`attention_backward`].
struct AttendItemGrads<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    p: &'a [f32],
    dout: &'a [f32],
    dq: &'a mut [f32],
    dk: &'a mut [f32],
    dv: &'a mut [f32],
    g: Heads,
}

impl WithSimd for AttendItemGrads<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self) {
        let AttendItemGrads {
            q,
            k,
            v,
            p,
            dout,
            dq,
            dk,
            dv,
            g,
        } = self;
        let (t, dh, padded) = (g.tokens, g.dim_head, g.padded());
        let col = |head: usize, row: usize| g.col(head, row);
        let (mut vt, mut dp) = (vec![0f32; dh * padded], vec![0f32; padded]);
        let mut ds = vec![0f32; t * t];
        for (h, p) in p.chunks_exact(t * t).enumerate() {
            transpose_head(&mut vt, v, &g, h);
            for (i, (row, pr)) in ds.chunks_exact_mut(t).zip(p.chunks_exact(t)).enumerate() {
                combine_rows(&mut dp, dh, |c| dout[col(h, i) + c], &vt, |c| c * padded);
                let dot = lane_dot(&dp[..t], Some(pr));
                for ((d, &w), &dp) in row.iter_mut().zip(pr).zip(&dp) {
                    *d = g.scale * (w * (dp - dot));
                }
            }
            for j in 0..t {
                let at = |i: usize| col(h, i);
                combine_rows(&mut dv[col(h, j)..][..dh], t, |i| p[i * t + j], dout, at);
                combine_rows(&mut dk[col(h, j)..][..dh], t, |i| ds[i * t + j], q, at);
            }
            for i in 0..t {
                let at = |j: usize| col(h, j);
                combine_rows(&mut dq[col(h, i)..][..dh], t, |j| ds[i * t + j], k, at);
            }
        }
    }
}

/// Elements per task of the elementwise kernels (no sums: any split gives the same bits).
const ELEMENTS_PER_TASK: usize = 16 * 1024;

/// `kernel(out, a, b)` chunk by chunk, split among threads above [`PARALLEL_MIN`].
fn elementwise(
    a: &[f32],
    b: &[f32],
    kernel: impl Fn(&mut [f32], &[f32], &[f32]) + Sync,
) -> Vec<f32> {
    let mut out = vec![0f32; a.len()];
    if a.len() >= PARALLEL_MIN {
        out.par_chunks_mut(ELEMENTS_PER_TASK)
            .zip(
                a.par_chunks(ELEMENTS_PER_TASK)
                    .zip(b.par_chunks(ELEMENTS_PER_TASK)),
            )
            .for_each(|(o, (a, b))| kernel(o, a, b));
    } else {
        kernel(&mut out, a, b);
    }
    out
}

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;

/// `x · Φ(x)` with `Φ(x) = (1 + erf(x / √2)) / 2`.
pub fn gelu_forward(level: Arch, x: &[f32]) -> Vec<f32> {
    elementwise(x, x, |y, x, _| level.dispatch(Gelu { y, x }))
}

struct Gelu<'a> {
    y: &'a mut [f32],
    x: &'a [f32],
}

impl WithSimd for Gelu<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self) {
        for (y, &x) in self.y.iter_mut().zip(self.x) {
            *y = x * (0.5 + 0.5 * erf_f32(x * FRAC_1_SQRT_2));
        }
    }
}

/// The input gradient of [`gelu_forward`] from the output gradient `g`:
/// `g · (Φ(x) + x · φ(x))`, `φ` the standard normal density.
pub fn gelu_backward(level: Arch, g: &[f32], x: &[f32]) -> Vec<f32> {
    elementwise(g, x, |dx, g, x| level.dispatch(GeluGrad { dx, g, x }))
}

struct GeluGrad<'a> {
    dx: &'a mut [f32],
    g: &'a [f32],
    x: &'a [f32],
}

impl WithSimd for GeluGrad<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self) {
        // 1 / √(2π)
        const INV_SQRT_2PI: f32 = 0.398_942_3;
        for ((dx, &g), &x) in self.dx.iter_mut().zip(self.g).zip(self.x) {
            let cdf = 0.5 + 0.5 * erf_f32(x * FRAC_1_SQRT_2);
            let pdf = INV_SQRT_2PI * exp_f32(-0.5 * (x * x));
            *dx = g * (cdf + x * pdf);
        }
    }
}

/// `e^x` in `f32` from plain multiplies and adds (no libm, no fused multiply-add): the same bits
/// on every CPU. Range reduction `x = k·ln 2 + r` with `ln 2` in two parts, a degree-7 Taylor
/// polynomial on `|r| ≤ ln 2 / 2` (relative error below 2 ulp), then `2^k` built in the exponent
/// bits. A masked score ([`super::encoder::MASKED_SCORE`]) underflows to exactly 0.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // 1.5 · 2^23: adding and subtracting it rounds to the nearest integer (ties to even).
    const ROUND: f32 = 12_582_912.0;
    const HI: f32 = 88.722_83;
    const LO: f32 = -103.972_08;
    // Branch-free so that a loop of it vectorizes; out-of-range inputs are chosen at the end.
    let xc = x.clamp(LO, HI);
    let k = (xc * LOG2E + ROUND) - ROUND;
    let r = (xc - k * LN2_HI) - k * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // 2^k may be subnormal: two factors that are each normal.
    let k = k as i32;
    let (k1, k2) = (k >> 1, k - (k >> 1));
    let two = |e: i32| f32::from_bits(((e + 127) as u32) << 23);
    let y = p * two(k1) * two(k2);
    if x < LO {
        0.0
    } else if x > HI {
        f32::INFINITY
    } else {
        y
    }
}

/// `erf(x)` in `f32` from plain multiplies, adds and one division (no libm, no fused
/// multiply-add): the same bits on every CPU. A rational approximation `x · P(x²) / Q(x²)` on
/// `|x| ≤ 4` (the same form and coefficients as Eigen's and XLA's `f32` erf; beyond 4, `erf` is
/// ±1 in `f32`), branch-free so that a loop of it vectorizes. Within 4·10⁻⁷ of the exact value
/// (tested; the `f32` rounding of the polynomials, largest near |x| = 4).
#[inline(always)]
pub fn erf_f32(x: f32) -> f32 {
    const A: [f32; 7] = [
        -1.609_603_3e-2,
        -2.954_600_2e-3,
        -7.349_906_3e-4,
        -5.692_506_4e-5,
        -2.101_024e-6,
        2.770_681_4e-8,
        -2.726_142_3e-10,
    ];
    const B: [f32; 5] = [
        -1.426_473_9e-2,
        -7.373_329e-3,
        -1.682_827e-3,
        -2.133_740_6e-4,
        -1.456_607_2e-5,
    ];
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = A[0] + x2 * (A[1] + x2 * (A[2] + x2 * (A[3] + x2 * (A[4] + x2 * (A[5] + x2 * A[6])))));
    let q = B[0] + x2 * (B[1] + x2 * (B[2] + x2 * (B[3] + x2 * B[4])));
    // Past 3.93, erf rounds to ±1 in `f32`; so does this, exactly.
    if x.abs() > 3.93 {
        1f32.copysign(x)
    } else {
        x * p / q
    }
}

#[cfg(test)]
mod tests {
    use burn::module::Param;
    use burn::nn::LayerNorm;
    use burn::tensor::backend::Backend;
    use burn::tensor::{Tensor, TensorData};

    use super::*;
    use crate::model::encoder::MASKED_SCORE;
    use crate::model::init;
    use crate::rng::Rng;

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng::stream(seed, "fused-test");
        (0..n).map(|_| rng.normal() as f32).collect()
    }

    fn t<Bk: Backend, const D: usize>(v: Vec<f32>, dims: [usize; D]) -> Tensor<Bk, D> {
        Tensor::from_data(TensorData::new(v, dims), &Default::default())
    }

    fn values<Bk: Backend, const D: usize>(t: Tensor<Bk, D>) -> Vec<f32> {
        t.into_data().to_vec::<f32>().unwrap()
    }

    fn assert_close(what: &str, a: &[f32], b: &[f32], tol: f32) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= tol * (1.0 + y.abs()),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    }

    /// A LayerNorm with non-trivial gain and bias (`d` = 12: one full lane block and a rest).
    fn norm<Bk: Backend>(d: usize) -> LayerNorm<Bk> {
        let mut ln = init::layer_norm::<Bk>(d, &Default::default());
        let gain = random(d, 2).iter().map(|g| 1.0 + g).collect::<Vec<_>>();
        ln.gamma = Param::from_data(TensorData::new(gain, [d]), &Default::default());
        ln.beta = Some(Param::from_data(
            TensorData::new(random(d, 3), [d]),
            &Default::default(),
        ));
        ln
    }

    #[test]
    fn layer_norm_matches_burns_values_and_gradients() {
        let (rows, d) = (7, 12);
        let ln = norm::<CpuBackend>(d);
        let x = random(rows * d, 1);
        let w = t::<CpuBackend, 2>(random(rows * d, 4), [rows, d]);
        let run = |fused: bool| {
            let x = t::<CpuBackend, 2>(x.clone(), [rows, d]).require_grad();
            let y = if fused {
                layer_norm(&ln, x.clone())
            } else {
                ln.forward(x.clone())
            };
            let grads = (y.clone() * w.clone()).sum().backward();
            let gx = x.grad(&grads).unwrap();
            let gg = ln.gamma.val().grad(&grads).unwrap();
            let gb = ln.beta.as_ref().unwrap().val().grad(&grads).unwrap();
            [values(y), values(gx), values(gg), values(gb)]
        };
        let (ours, burns) = (run(true), run(false));
        for (what, (a, b)) in ["output", "d input", "d gain", "d bias"]
            .iter()
            .zip(ours.iter().zip(&burns))
        {
            assert_close(what, a, b, 1e-5);
        }
    }

    #[test]
    fn layer_norm_at_inference_is_the_training_arithmetic() {
        let (rows, d) = (5, 12);
        let x = random(rows * d, 5);
        let train = layer_norm(
            &norm::<CpuBackend>(d),
            t::<CpuBackend, 2>(x.clone(), [rows, d]),
        );
        let infer = layer_norm(&norm::<Flex>(d), t::<Flex, 2>(x.clone(), [rows, d]));
        let burns = norm::<Flex>(d).forward(t::<Flex, 2>(x, [rows, d]));
        assert_eq!(values(train.clone()), values(infer), "the same bits");
        assert_close("against burn's", &values(train), &values(burns), 1e-5);
    }

    #[test]
    fn attention_matches_burns_values_and_gradients_masks_exactly_and_infers_alike() {
        let (b, tok, h, dh) = (3, 5, 2, 12);
        let width = h * dh;
        let n = b * tok * width;
        let (q, k, v) = (random(n, 6), random(n, 14), random(n, 15));
        let w = t::<CpuBackend, 3>(random(n, 7), [b, tok, width]);
        // Item 0 sees every key, item 1 not keys 1 and 4, item 2 none.
        let mask = [[1., 1., 1., 1., 1.], [1., 0., 1., 1., 0.], [0.; 5]];
        let bias: Vec<f32> = mask
            .iter()
            .flatten()
            .map(|&m| (1.0 - m) * MASKED_SCORE)
            .collect();
        let scale = 0.37;
        let cpu = |x: &[f32]| t::<CpuBackend, 3>(x.to_vec(), [b, tok, width]);
        let run = |fused: bool, masked: bool| {
            let (q, k, v) = (
                cpu(&q).require_grad(),
                cpu(&k).require_grad(),
                cpu(&v).require_grad(),
            );
            let bias = masked.then(|| t::<CpuBackend, 2>(bias.clone(), [b, tok]));
            let (qc, kc, vc) = (q.clone(), k.clone(), v.clone());
            let y = if fused {
                attention(qc, kc, vc, h, scale, bias)
            } else {
                attention_reference(qc, kc, vc, h, scale, bias)
            };
            let grads = (y.clone() * w.clone()).sum().backward();
            let grad = |x: Tensor<CpuBackend, 3>| values(x.grad(&grads).unwrap());
            [values(y), grad(q), grad(k), grad(v)]
        };
        for masked in [true, false] {
            let (ours, burns) = (run(true, masked), run(false, masked));
            for (what, (a, b)) in ["output", "d q", "d k", "d v"]
                .iter()
                .zip(ours.iter().zip(&burns))
            {
                assert_close(&format!("{what} (masked: {masked})"), a, b, 1e-5);
            }
        }
        let ours = run(true, true);
        let item = tok * width;
        // A masked key's value never reaches the output, bit for bit.
        let mut v2 = v.clone();
        for token in [1, 4] {
            for c in 0..width {
                v2[item + token * width + c] += 100.0;
            }
        }
        let bias2 = Some(t::<CpuBackend, 2>(bias.clone(), [b, tok]));
        let moved = attention(cpu(&q), cpu(&k), cpu(&v2), h, scale, bias2);
        assert_eq!(values(moved)[item..2 * item], ours[0][item..2 * item]);
        // A query without keys averages every value.
        let mean: Vec<f32> = (0..width)
            .map(|c| (0..tok).map(|j| v[2 * item + j * width + c]).sum::<f32>() / tok as f32)
            .collect();
        for i in 0..tok {
            let row = &ours[0][2 * item + i * width..][..width];
            assert_close("a query without keys", row, &mean, 1e-5);
        }
        let flex3 = |x: &[f32]| t::<Flex, 3>(x.to_vec(), [b, tok, width]);
        let bias = Some(t::<Flex, 2>(bias, [b, tok]));
        let infer = attention(flex3(&q), flex3(&k), flex3(&v), h, scale, bias);
        assert_eq!(values(infer), ours[0], "the same bits at inference");
    }

    #[test]
    fn the_kernels_give_the_same_bits_on_one_thread_and_on_four_and_at_every_simd_level() {
        // Above the size that splits the work among threads.
        let (rows, d) = (PARALLEL_MIN / 64 + 3, 64);
        let x = random(rows * d, 8);
        let g = random(rows * d, 9);
        let (gamma, beta) = (random(d, 10), random(d, 11));
        let run = |threads: usize, level: Arch| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let (y, xhat, rstd) = layer_norm_forward(level, &x, &gamma, &beta, d, 1e-5);
                let (dx, dg, db) = layer_norm_backward(level, &g, &xhat, &rstd, &gamma, d);
                // Items of 4 tokens × 2 heads × 8 columns.
                let heads = Heads {
                    batch: x.len() / 64,
                    tokens: 4,
                    heads: 2,
                    dim_head: 8,
                    scale: 0.5,
                };
                let (o, p) = attention_forward(level, &x, &g, &x, None, heads);
                let (dq, dk, dv) = attention_backward(level, &x, &g, &x, &p, &g, heads);
                let (gy, gdx) = (gelu_forward(level, &x), gelu_backward(level, &g, &x));
                [y, dx, dg, db, o, p, dq, dk, dv, gy, gdx]
                    .map(|v| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>())
            })
        };
        // This CPU's widest SIMD level against none: the kernels' bits must not depend on it.
        eprintln!("SIMD level: {:?}", Arch::new());
        let reference = run(1, Arch::Scalar);
        assert!(reference == run(4, Arch::Scalar), "1 vs 4 threads");
        assert!(
            reference == run(1, Arch::new()),
            "no SIMD vs {:?}",
            Arch::new()
        );
        assert!(
            reference == run(4, Arch::new()),
            "4 threads at {:?}",
            Arch::new()
        );
    }

    #[test]
    fn gelu_matches_burns_values_and_gradients_and_inference_is_the_training_arithmetic() {
        // Past both ends of erf's clamp, around 0, and ordinary values.
        let mut x = random(300, 12).iter().map(|v| 3.0 * v).collect::<Vec<_>>();
        x.extend([-12.0, -6.0, -5.5, -1e-6, 0.0, 1e-6, 5.5, 6.0, 12.0]);
        let n = x.len();
        let w = t::<CpuBackend, 1>(random(n, 13), [n]);
        let run = |fused: bool| {
            let xt = t::<CpuBackend, 1>(x.clone(), [n]).require_grad();
            let y = if fused {
                gelu(xt.clone())
            } else {
                burn::tensor::activation::gelu(xt.clone())
            };
            let grads = (y.clone() * w.clone()).sum().backward();
            [values(y), values(xt.grad(&grads).unwrap())]
        };
        let (ours, burns) = (run(true), run(false));
        assert_close("output", &ours[0], &burns[0], 1e-6);
        assert_close("d input", &ours[1], &burns[1], 1e-6);
        let infer = gelu(t::<Flex, 1>(x, [n]));
        assert_eq!(values(infer), ours[0], "the same bits at inference");
    }

    #[test]
    fn erf_is_within_4e_7_of_the_exact_value() {
        let mut x = -6.0f32;
        let mut worst = 0f64;
        while x < 6.0 {
            let exact = statrs::function::erf::erf(x as f64);
            let ours = erf_f32(x) as f64;
            assert!(
                (ours - exact).abs() <= 4e-7,
                "erf({x}) = {ours}, exactly {exact}"
            );
            worst = worst.max((ours - exact).abs());
            x += 0.0007;
        }
        eprintln!("erf: worst error {worst:e}");
        assert_eq!(erf_f32(0.0), 0.0);
        assert_eq!(erf_f32(9.0), 1.0);
        assert_eq!(erf_f32(-9.0), -1.0);
        assert_eq!(erf_f32(f32::INFINITY), 1.0);
        assert!(erf_f32(f32::NAN).is_nan());
    }

    #[test]
    fn exp_is_within_two_ulp_of_the_exact_value_and_underflows_to_zero() {
        let mut x = -103.9f32;
        while x < 88.7 {
            let exact = (x as f64).exp();
            let ours = exp_f32(x) as f64;
            let ulp = f32::EPSILON as f64 * exact.max(f32::MIN_POSITIVE as f64);
            assert!(
                (ours - exact).abs() <= 2.0 * ulp,
                "exp({x}) = {ours}, exactly {exact}"
            );
            x += 0.013;
        }
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-1.0e9), 0.0);
        assert_eq!(exp_f32(100.0), f32::INFINITY);
        assert!(exp_f32(f32::NAN).is_nan());
    }
}
