//! Parameter initialization from the local seeded [`Rng`] (I-JEPA's truncated normal, std 0.02,
//! zero biases, unit LayerNorm gains), so weights never depend on burn's global generator.

use burn::module::Param;
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use crate::rng::Rng;

/// Standard deviation of the truncated-normal init.
pub const INIT_STD: f64 = 0.02;

/// A parameter of `shape` filled with truncated-normal draws.
pub fn normal_param<B: Backend, const D: usize>(
    shape: [usize; D],
    rng: &mut Rng,
    device: &B::Device,
) -> Param<Tensor<B, D>> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.trunc_normal(INIT_STD)).collect();
    Param::from_data(TensorData::new(v, shape), device)
}

/// A zero parameter of `shape`.
pub fn zero_param<B: Backend, const D: usize>(
    shape: [usize; D],
    device: &B::Device,
) -> Param<Tensor<B, D>> {
    let n: usize = shape.iter().product();
    Param::from_data(TensorData::new(vec![0f32; n], shape), device)
}

/// A linear layer `d_in → d_out` (weight `[d_in, d_out]`).
pub fn linear<B: Backend>(
    d_in: usize,
    d_out: usize,
    bias: bool,
    rng: &mut Rng,
    device: &B::Device,
) -> Linear<B> {
    Linear {
        weight: normal_param([d_in, d_out], rng, device),
        bias: bias.then(|| zero_param([d_out], device)),
    }
}

/// The LayerNorm variance offset (PyTorch's default).
pub const LAYER_NORM_EPSILON: f64 = 1e-5;

pub fn layer_norm<B: Backend>(d: usize, device: &B::Device) -> LayerNorm<B> {
    LayerNormConfig::new(d)
        .with_epsilon(LAYER_NORM_EPSILON)
        .init(device)
}
