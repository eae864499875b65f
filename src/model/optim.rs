//! AdamW with decoupled weight decay that skips one-dimensional parameters (biases, LayerNorm
//! gains and shifts, the mask token: the I-JEPA rule), warmup-cosine learning rate, cosine weight
//! decay, clipping by global gradient norm, and the EMA update of a target module.
//!
//! burn's own AdamW decays every parameter, hence this small re-implementation. Moments are kept
//! in module visit order (deterministic), not keyed by random parameter ids.

use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor};

use super::OptimSettings;

/// Learning-rate and weight-decay schedules over `total_steps` optimizer steps.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub s: OptimSettings,
    pub total_steps: usize,
}

impl Schedule {
    /// Linear warmup from `start_lr` to `lr`, then cosine to `final_lr` (or constant `lr`).
    pub fn lr(&self, step: usize) -> f64 {
        let s = &self.s;
        if step < s.warmup_steps {
            return s.start_lr + (s.lr - s.start_lr) * step as f64 / s.warmup_steps as f64;
        }
        if !s.cosine {
            return s.lr;
        }
        let span = self.total_steps.saturating_sub(s.warmup_steps).max(1);
        let progress = ((step - s.warmup_steps) as f64 / span as f64).min(1.0);
        s.final_lr + (s.lr - s.final_lr) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }

    /// Cosine from `weight_decay` at step 0 to `final_weight_decay` at the last step.
    pub fn weight_decay(&self, step: usize) -> f64 {
        let s = &self.s;
        let progress = (step as f64 / self.total_steps.max(1) as f64).min(1.0);
        s.weight_decay
            + (s.final_weight_decay - s.weight_decay)
                * 0.5
                * (1.0 - (std::f64::consts::PI * progress).cos())
    }
}

/// A parameter's first and second moments and how many updates it has had (its own count, so a
/// parameter that starts training late, such as an encoder unfrozen after the head-only epochs,
/// gets the bias correction of its first step).
type Moments<B> = (Tensor<B, 1>, Tensor<B, 1>, i32);

/// AdamW (β = 0.9, 0.999; ε = 1e-8) over a module's float parameters.
pub struct AdamW<B: AutodiffBackend> {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    moments: Vec<Option<Moments<B::InnerBackend>>>,
}

impl<B: AutodiffBackend> Default for AdamW<B> {
    fn default() -> Self {
        AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            moments: Vec::new(),
        }
    }
}

struct GradNorm<'a, B: AutodiffBackend> {
    grads: &'a B::Gradients,
    squares: Vec<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for GradNorm<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = param.val().grad(self.grads) {
            self.squares.push((g.clone() * g).sum());
        }
    }
}

/// The global L2 norm of the gradients of `module`'s parameters.
pub fn grad_norm<B: AutodiffBackend, M: Module<B>>(module: &M, grads: &B::Gradients) -> f64 {
    let mut v = GradNorm::<B> {
        grads,
        squares: Vec::new(),
    };
    module.visit(&mut v);
    if v.squares.is_empty() {
        return 0.0;
    }
    Tensor::cat(v.squares, 0)
        .sum()
        .into_scalar()
        .elem::<f64>()
        .sqrt()
}

struct Update<'a, B: AutodiffBackend> {
    opt: &'a mut AdamW<B>,
    grads: &'a B::Gradients,
    index: usize,
    lr: f64,
    weight_decay: f64,
    grad_scale: f64,
}

impl<B: AutodiffBackend> ModuleMapper<B> for Update<'_, B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let i = self.index;
        self.index += 1;
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = tensor.grad(self.grads) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let dims = tensor.dims();
        let n: usize = dims.iter().product();
        let w = tensor.inner().reshape([n]);
        let g = grad.reshape([n]);
        let g = if self.grad_scale == 1.0 {
            g
        } else {
            g.mul_scalar(self.grad_scale)
        };
        if self.opt.moments.len() <= i {
            self.opt.moments.resize_with(i + 1, || None);
        }
        let (b1, b2) = (self.opt.beta1, self.opt.beta2);
        let (m, v, t) = match self.opt.moments[i].take() {
            Some((m, v, t)) => (
                m.mul_scalar(b1) + g.clone().mul_scalar(1.0 - b1),
                v.mul_scalar(b2) + (g.clone() * g).mul_scalar(1.0 - b2),
                t + 1,
            ),
            None => (
                g.clone().mul_scalar(1.0 - b1),
                (g.clone() * g).mul_scalar(1.0 - b2),
                1,
            ),
        };
        let c1 = 1.0 - b1.powi(t);
        let c2 = 1.0 - b2.powi(t);
        // One-dimensional parameters (biases, norms, the mask token) are never decayed.
        let decay = if D > 1 { self.weight_decay } else { 0.0 };
        let step =
            m.clone().div_scalar(c1) / v.clone().div_scalar(c2).sqrt().add_scalar(self.opt.eps);
        let w = w.mul_scalar(1.0 - self.lr * decay) - step.mul_scalar(self.lr);
        self.opt.moments[i] = Some((m, v, t));
        let w = Tensor::<B, D>::from_inner(w.reshape(dims)).require_grad();
        Param::from_mapped_value(id, w, mapper)
    }
}

impl<B: AutodiffBackend> AdamW<B> {
    /// One step. Gradients are first scaled so that their global norm is at most `clip`
    /// (`clip <= 0` disables clipping). Returns the updated module and the gradient norm
    /// before clipping.
    pub fn step<M: AutodiffModule<B>>(
        &mut self,
        module: M,
        grads: &B::Gradients,
        lr: f64,
        weight_decay: f64,
        clip: f64,
    ) -> (M, f64) {
        let norm = if clip > 0.0 {
            grad_norm(&module, grads)
        } else {
            0.0
        };
        let grad_scale = if clip > 0.0 && norm > clip {
            clip / (norm + 1e-6)
        } else {
            1.0
        };
        let mut u = Update {
            opt: self,
            grads,
            index: 0,
            lr,
            weight_decay,
            grad_scale,
        };
        (module.map(&mut u), norm)
    }
}

struct Flatten<B: Backend> {
    values: Vec<Tensor<B, 1>>,
}

impl<B: Backend> ModuleVisitor<B> for Flatten<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let t = param.val();
        let n = t.shape().num_elements();
        self.values.push(t.reshape([n]));
    }
}

struct Ema<B: Backend> {
    online: std::vec::IntoIter<Tensor<B, 1>>,
    momentum: f64,
}

impl<B: Backend> ModuleMapper<B> for Ema<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(o) = self.online.next() else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let dims = tensor.dims();
        let t = tensor.mul_scalar(self.momentum) + o.reshape(dims).mul_scalar(1.0 - self.momentum);
        Param::from_mapped_value(id, t, mapper)
    }
}

/// `target ← momentum · target + (1 − momentum) · online`, parameter by parameter (both modules
/// have the same structure).
pub fn ema_update<B: Backend, M: Module<B>>(target: M, online: &M, momentum: f64) -> M {
    let mut f = Flatten { values: Vec::new() };
    online.visit(&mut f);
    let mut e = Ema {
        online: f.values.into_iter(),
        momentum,
    };
    target.map(&mut e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::backend::CpuBackend;
    use crate::model::init;
    use crate::rng::Rng;
    use burn::nn::{LayerNorm, Linear};

    type B = CpuBackend;

    #[derive(Module, Debug)]
    struct Tiny<B: Backend> {
        lin: Linear<B>,
        norm: LayerNorm<B>,
    }

    fn tiny() -> Tiny<B> {
        let d = Default::default();
        let mut rng = Rng::stream(1, "t");
        Tiny {
            lin: init::linear(3, 2, true, &mut rng, &d),
            norm: init::layer_norm(2, &d),
        }
    }

    fn values<M: Module<B>>(m: &M) -> Vec<Vec<f32>> {
        let mut f = Flatten { values: Vec::new() };
        m.visit(&mut f);
        f.values
            .into_iter()
            .map(|t| crate::model::to_vec(t).unwrap())
            .collect()
    }

    #[test]
    fn weight_decay_skips_biases_and_norms() {
        let m = tiny();
        let before = values(&m);
        // A loss with zero gradient everywhere: only weight decay moves parameters.
        let x = Tensor::<B, 2>::zeros([1, 3], &Default::default());
        let loss = m.norm.forward(m.lin.forward(x)).sum().mul_scalar(0.0);
        let grads = loss.backward();
        let mut opt = AdamW::<B>::default();
        let (m, _) = opt.step(m, &grads, 0.1, 0.5, 0.0);
        let after = values(&m);
        // Visit order: lin.weight, lin.bias, norm.gamma, norm.beta.
        for (a, b) in after[0].iter().zip(&before[0]) {
            assert!((a - b * 0.95).abs() < 1e-7, "{a} vs {b}");
        }
        assert_eq!(after[1], before[1]);
        assert_eq!(after[2], before[2]);
        assert_eq!(after[3], before[3]);
    }

    #[test]
    fn clipping_bounds_the_update_norm() {
        let m = tiny();
        let x = Tensor::<B, 2>::ones([4, 3], &Default::default());
        let loss = m.lin.forward(x).sum().mul_scalar(1000.0);
        let grads = loss.backward();
        assert!(grad_norm(&m, &grads) > 1000.0);
        let mut opt = AdamW::<B>::default();
        let (_, norm) = opt.step(m, &grads, 0.1, 0.0, 1.0);
        assert!(norm > 1.0);
    }

    #[test]
    fn ema_moves_target_toward_online() {
        let d = Default::default();
        let mut rng = Rng::stream(2, "a");
        let a: Linear<B> = init::linear(2, 2, true, &mut rng, &d);
        let b: Linear<B> = init::linear(2, 2, true, &mut rng, &d);
        let (va, vb) = (values(&a), values(&b));
        let t = ema_update(a, &b, 0.75);
        let vt = values(&t);
        for k in 0..2 {
            for j in 0..va[k].len() {
                let want = 0.75 * va[k][j] + 0.25 * vb[k][j];
                assert!((vt[k][j] - want).abs() < 1e-7);
            }
        }
    }

    #[test]
    fn schedules_follow_warmup_cosine_and_cosine_wd() {
        let s = Schedule {
            s: OptimSettings {
                lr: 1e-3,
                start_lr: 1e-4,
                final_lr: 1e-6,
                warmup_steps: 10,
                cosine: true,
                weight_decay: 0.04,
                final_weight_decay: 0.4,
                clip_grad: 1.0,
            },
            total_steps: 110,
        };
        assert!((s.lr(0) - 1e-4).abs() < 1e-12);
        assert!((s.lr(5) - 5.5e-4).abs() < 1e-12);
        assert!((s.lr(10) - 1e-3).abs() < 1e-12);
        assert!((s.lr(60) - (1e-6 + (1e-3 - 1e-6) * 0.5)).abs() < 1e-12);
        assert!((s.lr(110) - 1e-6).abs() < 1e-12);
        assert!((s.weight_decay(0) - 0.04).abs() < 1e-12);
        assert!((s.weight_decay(55) - 0.22).abs() < 1e-12);
        assert!((s.weight_decay(110) - 0.4).abs() < 1e-12);
    }
}
