//! The JEPA predictor g: narrower than the encoder; context tokens are projected in, hidden
//! target slots enter as a learned mask token plus their slot embedding, and the outputs at the
//! target slots are projected back to the encoder width.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use super::encoder::{Dropout, Keys, Transformer, dense};
use super::{PredictorArch, init};
use crate::rng::Rng;

#[derive(Module, Debug)]
pub struct Predictor<B: Backend> {
    /// `dim → pred_emb_dim`
    pub embed: Linear<B>,
    /// `[pred_emb_dim]`
    pub mask_token: Param<Tensor<B, 1>>,
    /// `[tokens, pred_emb_dim]`: the predictor's own slot embeddings.
    pub slots: Param<Tensor<B, 2>>,
    pub transformer: Transformer<B>,
    /// `pred_emb_dim → dim`
    pub out: Linear<B>,
}

impl<B: Backend> Predictor<B> {
    pub fn new(
        dim: usize,
        tokens: usize,
        p: &PredictorArch,
        rng: &mut Rng,
        device: &B::Device,
    ) -> Self {
        let pd = p.pred_emb_dim;
        Predictor {
            embed: init::linear(dim, pd, true, rng, device),
            mask_token: init::zero_param([pd], device),
            slots: init::normal_param([tokens, pd], rng, device),
            transformer: Transformer::new(
                pd,
                p.pred_depth,
                p.heads(),
                p.dim_head(),
                2 * pd,
                rng,
                device,
            ),
            out: init::linear(pd, dim, true, rng, device),
        }
    }

    /// `z`: context features `[batch, n_keep, dim]` at slots `keep` (keys `keep_keys`,
    /// `[batch, n_keep]`); predicts the slots `target` (keys `target_keys`, `[batch, n_target]`)
    /// → `[batch, n_target, dim]`.
    pub fn forward(
        &self,
        z: Tensor<B, 3>,
        keep: &Tensor<B, 1, Int>,
        keep_keys: Keys<B>,
        target: &Tensor<B, 1, Int>,
        target_keys: Keys<B>,
        drop: &mut Dropout,
    ) -> Tensor<B, 3> {
        let [b, nk, _] = z.dims();
        let z_device = z.device();
        let nt = target.dims()[0];
        let pd = self.mask_token.dims()[0];
        let slots = self.slots.val();
        // [batch, n_keep, pd]
        let ctx =
            dense(&self.embed, z) + slots.clone().select(0, keep.clone()).reshape([1, nk, pd]);
        // [batch, n_target, pd]
        let tgt = (slots.select(0, target.clone()) + self.mask_token.val().reshape([1, pd]))
            .reshape([1, nt, pd])
            .expand([b, nt, pd]);
        let x = Tensor::cat(vec![ctx, tgt], 1);
        let keys = keep_keys.cat(target_keys, &z_device);
        let h = self.transformer.forward(x, &keys, drop).narrow(1, nk, nt);
        dense(&self.out, h)
    }
}
