//! Fused CPU training kernels: LayerNorm, the attention softmax and GELU as one op each,
//! forward and backward, for the CPU training backend ([`CpuBackend`]).
//!
//! burn's autodiff backend records LayerNorm as ten elementwise and reduction ops and softmax
//! as five (plus the score scale and the key-mask bias), each a fresh buffer forward and more
//! backward; its GELU calls libm's scalar `erf` per element, forward and again backward. Here
//! each is one pass over its rows forward and one backward, and the model calls
//! [`layer_norm`], [`attention_softmax`] and [`gelu`] instead of burn's. The plain CPU backend
//! (inference, the JEPA targets) runs the same forward kernels, so training and inference share
//! one arithmetic; any other backend (CUDA) takes burn's own ops. Which one a call gets is
//! decided by the tensor's type, with no unsafe code.
//!
//! The arithmetic is plain Rust on `f32` slices: every sum runs over eight fixed lanes that are
//! combined in one fixed order, and no multiply-add is fused, so the bits depend neither on the
//! thread count nor on the instruction set (rows are split among threads, never a sum).
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
    let (y, xhat, _) = layer_norm_forward(x.storage::<f32>(), gamma, beta, d, epsilon as f32);
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

/// `softmax(scores · scale + key_bias)` over the last dimension; `scores` `[batch, heads,
/// queries, keys]`, `key_bias` `[batch, 1, 1, keys]` (no gradient flows into it). Fused on the
/// CPU training backend.
pub fn attention_softmax<B: Backend>(
    scores: Tensor<B, 4>,
    scale: f64,
    key_bias: Option<Tensor<B, 4>>,
) -> Tensor<B, 4> {
    let scores = match same_type::<Tensor<B, 4>, Tensor<CpuBackend, 4>>(scores) {
        Ok(scores) => {
            let bias = key_bias.map(|b| flex(as_backend::<B, CpuBackend, 4>(b).inner()));
            return back(attention_softmax_cpu(scores, scale as f32, bias));
        }
        Err(scores) => scores,
    };
    match same_type::<Tensor<B, 4>, Tensor<Flex, 4>>(scores) {
        Ok(scores) => {
            let bias = key_bias.map(|b| flex(as_backend::<B, Flex, 4>(b)));
            let s = flex(scores);
            let shape = s.shape();
            let y = softmax_forward(
                s.storage::<f32>(),
                bias.as_ref().map(|b| b.storage::<f32>()),
                shape[1] * shape[2],
                shape[3],
                scale as f32,
            );
            back(from_flex::<4>(new_f32(shape, y)))
        }
        Err(scores) => {
            let mut s = scores.mul_scalar(scale);
            if let Some(bias) = key_bias {
                s = s + bias;
            }
            burn::tensor::activation::softmax(s, 3)
        }
    }
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
            let y = gelu_forward(x.storage::<f32>());
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
struct SoftmaxOp;

impl Backward<Flex, 1> for SoftmaxOp {
    /// The output and the scale.
    type State = (FlexTensor, f32);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (y, scale) = ops.state;
        let grad = f32_rows(&grads.consume::<Flex>(&ops.node));
        let [parent] = ops.parents;
        if let Some(node) = parent {
            let shape = y.shape();
            let keys = shape[3];
            let ds = softmax_backward(grad.storage::<f32>(), y.storage::<f32>(), keys, scale);
            grads.register::<Flex>(node.id, new_f32(shape, ds));
        }
    }
}

fn attention_softmax_cpu(
    scores: Tensor<CpuBackend, 4>,
    scale: f32,
    key_bias: Option<FlexTensor>,
) -> Tensor<CpuBackend, 4> {
    let scores = primitive(scores);
    let shape = scores.primitive.shape();
    let [batch, heads, queries, keys] = [shape[0], shape[1], shape[2], shape[3]];
    let s = f32_rows(&scores.primitive);
    let bias = key_bias.inspect(|b| {
        assert_eq!(b.shape(), Shape::new([batch, 1, 1, keys]), "key bias shape");
    });
    let y = softmax_forward(
        s.storage::<f32>(),
        bias.as_ref().map(|b| b.storage::<f32>()),
        heads * queries,
        keys,
        scale,
    );
    let y = new_f32(shape, y);
    let out = match SoftmaxOp
        .prepare::<NoCheckpointing>([scores.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((y.clone(), scale), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
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
            let dx = gelu_backward(grad.storage::<f32>(), x.storage::<f32>());
            grads.register::<Flex>(node.id, new_f32(x.shape(), dx));
        }
    }
}

fn gelu_cpu<const D: usize>(x: Tensor<CpuBackend, D>) -> Tensor<CpuBackend, D> {
    let x = primitive(x);
    let input = f32_rows(&x.primitive);
    let y = new_f32(input.shape(), gelu_forward(input.storage::<f32>()));
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
    let task = |y: &mut [f32], xhat: &mut [f32], rstd: &mut [f32], x: &[f32]| {
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

/// The LayerNorm gradients from the output gradient `g`: input, gain, bias.
pub fn layer_norm_backward(
    g: &[f32],
    xhat: &[f32],
    rstd: &[f32],
    gamma: &[f32],
    d: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut dx = vec![0f32; g.len()];
    let chunk = ROWS_PER_TASK * d;
    // Each task's partial gain and bias gradients, summed below in task order.
    let task = |dx: &mut [f32], g: &[f32], xhat: &[f32], rstd: &[f32]| {
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

/// Softmax of each `keys`-row of `s · scale + bias`, where `bias` (one `keys`-row per batch
/// item) applies to the `rows_per_item` rows of its item.
pub fn softmax_forward(
    s: &[f32],
    bias: Option<&[f32]>,
    rows_per_item: usize,
    keys: usize,
    scale: f32,
) -> Vec<f32> {
    let mut y = vec![0f32; s.len()];
    let item = rows_per_item * keys;
    let task = |(i, (y, s)): (usize, (&mut [f32], &[f32]))| {
        let bias = bias.map(|b| &b[i * keys..][..keys]);
        // Scores less each row's maximum, then `exp` over the whole chunk (one loop the
        // compiler vectorizes), then each row over its sum.
        for (y, s) in y.chunks_exact_mut(keys).zip(s.chunks_exact(keys)) {
            match bias {
                Some(b) => {
                    for j in 0..keys {
                        y[j] = s[j] * scale + b[j];
                    }
                }
                None => {
                    for j in 0..keys {
                        y[j] = s[j] * scale;
                    }
                }
            }
            let max = y.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            for v in y.iter_mut() {
                *v -= max;
            }
        }
        for v in y.iter_mut() {
            *v = exp_f32(*v);
        }
        for y in y.chunks_exact_mut(keys) {
            let inv = 1.0 / lane_dot(y, None);
            for v in y.iter_mut() {
                *v *= inv;
            }
        }
    };
    if s.len() >= PARALLEL_MIN {
        y.par_chunks_mut(item)
            .zip(s.par_chunks(item))
            .enumerate()
            .for_each(task);
    } else {
        y.chunks_mut(item)
            .zip(s.chunks(item))
            .enumerate()
            .for_each(task);
    }
    y
}

/// The gradient of the scores from the output `y` and its gradient `g`:
/// `scale · y · (g − Σ g·y)` per row.
pub fn softmax_backward(g: &[f32], y: &[f32], keys: usize, scale: f32) -> Vec<f32> {
    let mut ds = vec![0f32; g.len()];
    let chunk = ROWS_PER_TASK * keys;
    let task = |(ds, (g, y)): (&mut [f32], (&[f32], &[f32]))| {
        for ((ds, g), y) in ds
            .chunks_exact_mut(keys)
            .zip(g.chunks_exact(keys))
            .zip(y.chunks_exact(keys))
        {
            let dot = lane_dot(g, Some(y));
            for j in 0..keys {
                ds[j] = scale * (y[j] * (g[j] - dot));
            }
        }
    };
    if g.len() >= PARALLEL_MIN {
        ds.par_chunks_mut(chunk)
            .zip(g.par_chunks(chunk).zip(y.par_chunks(chunk)))
            .for_each(task);
    } else {
        ds.chunks_mut(chunk)
            .zip(g.chunks(chunk).zip(y.chunks(chunk)))
            .for_each(task);
    }
    ds
}

/// Elements per task of the elementwise kernels (no sums: any split gives the same bits).
const ELEMENTS_PER_TASK: usize = 16 * 1024;

/// `out[i] = f(a[i], b[i])` (`b` = `a` for one input), split among threads above
/// [`PARALLEL_MIN`].
fn elementwise(a: &[f32], b: &[f32], f: impl Fn(&mut [f32], &[f32], &[f32]) + Sync) -> Vec<f32> {
    let mut out = vec![0f32; a.len()];
    if a.len() >= PARALLEL_MIN {
        out.par_chunks_mut(ELEMENTS_PER_TASK)
            .zip(
                a.par_chunks(ELEMENTS_PER_TASK)
                    .zip(b.par_chunks(ELEMENTS_PER_TASK)),
            )
            .for_each(|(o, (a, b))| f(o, a, b));
    } else {
        f(&mut out, a, b);
    }
    out
}

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;

/// `x · Φ(x)` with `Φ(x) = (1 + erf(x / √2)) / 2`.
pub fn gelu_forward(x: &[f32]) -> Vec<f32> {
    elementwise(x, x, |y, x, _| {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = x * (0.5 + 0.5 * erf_f32(x * FRAC_1_SQRT_2));
        }
    })
}

/// The input gradient of [`gelu_forward`] from the output gradient `g`:
/// `g · (Φ(x) + x · φ(x))`, `φ` the standard normal density.
pub fn gelu_backward(g: &[f32], x: &[f32]) -> Vec<f32> {
    // 1 / √(2π)
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    elementwise(g, x, |dx, g, x| {
        for ((dx, &g), &x) in dx.iter_mut().zip(g).zip(x) {
            let cdf = 0.5 + 0.5 * erf_f32(x * FRAC_1_SQRT_2);
            let pdf = INV_SQRT_2PI * exp_f32(-0.5 * (x * x));
            *dx = g * (cdf + x * pdf);
        }
    })
}

/// `e^x` in `f32` from plain multiplies and adds (no libm, no fused multiply-add): the same bits
/// on every CPU. Range reduction `x = k·ln 2 + r` with `ln 2` in two parts, a degree-7 Taylor
/// polynomial on `|r| ≤ ln 2 / 2` (relative error below 2 ulp), then `2^k` built in the exponent
/// bits. A masked score ([`super::encoder::MASKED_SCORE`]) underflows to exactly 0.
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
    fn attention_softmax_matches_burns_values_and_gradients_and_masks_exactly() {
        let (b, h, q, k) = (3, 2, 4, 5);
        let n = b * h * q * k;
        let s = random(n, 6);
        let w = t::<CpuBackend, 4>(random(n, 7), [b, h, q, k]);
        // Item 0 sees every key, item 1 not keys 1 and 4, item 2 none.
        let mask = [[1., 1., 1., 1., 1.], [1., 0., 1., 1., 0.], [0.; 5]];
        let bias: Vec<f32> = mask
            .iter()
            .flatten()
            .map(|&m| (1.0 - m) * MASKED_SCORE)
            .collect();
        let scale = 0.37;
        let run = |fused: bool| {
            let s = t::<CpuBackend, 4>(s.clone(), [b, h, q, k]).require_grad();
            let bias = t::<CpuBackend, 4>(bias.clone(), [b, 1, 1, k]);
            let y = if fused {
                attention_softmax(s.clone(), scale, Some(bias))
            } else {
                burn::tensor::activation::softmax(s.clone().mul_scalar(scale) + bias, 3)
            };
            let grads = (y.clone() * w.clone()).sum().backward();
            [values(y), values(s.grad(&grads).unwrap())]
        };
        let (ours, burns) = (run(true), run(false));
        assert_close("output", &ours[0], &burns[0], 1e-6);
        assert_close("d scores", &ours[1], &burns[1], 1e-5);
        let y = &ours[0];
        for row in 0..b * h * q {
            let item = row / (h * q);
            for key in 0..k {
                let v = y[row * k + key];
                match item {
                    1 if mask[1][key] == 0.0 => assert_eq!(v, 0.0, "a masked key gets exactly 0"),
                    2 => assert_eq!(v, 0.2, "a row without keys is uniform"),
                    _ => assert!(v > 0.0),
                }
            }
        }
        let unmasked = attention_softmax(t::<Flex, 4>(s.clone(), [b, h, q, k]), scale, None);
        let reference =
            burn::tensor::activation::softmax(t::<Flex, 4>(s, [b, h, q, k]).mul_scalar(scale), 3);
        assert_close(
            "without a mask",
            &values(unmasked),
            &values(reference),
            1e-6,
        );
    }

    #[test]
    fn the_kernels_give_the_same_bits_on_one_thread_and_on_four() {
        // Above the size that splits the work among threads.
        let (rows, d) = (PARALLEL_MIN / 64 + 3, 64);
        let x = random(rows * d, 8);
        let g = random(rows * d, 9);
        let (gamma, beta) = (random(d, 10), random(d, 11));
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let (y, xhat, rstd) = layer_norm_forward(&x, &gamma, &beta, d, 1e-5);
                let (dx, dg, db) = layer_norm_backward(&g, &xhat, &rstd, &gamma, d);
                let p = softmax_forward(&x, None, 1, 16, 0.5);
                let ds = softmax_backward(&g, &p, 16, 0.5);
                let (gy, gdx) = (gelu_forward(&x), gelu_backward(&g, &x));
                [y, dx, dg, db, p, ds, gy, gdx]
                    .map(|v| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>())
            })
        };
        assert!(run(1) == run(4), "every kernel output bit for bit");
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
