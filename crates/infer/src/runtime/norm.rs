//! LayerNorm and RMSNorm on the token-interleaved layout. The gain and shift are folded into
//! the weights that consume the output (see [`crate::compile::weights`]), so a norm returns
//! `d * InvSqrt(var + eps)` (LayerNorm, `d = x - mean x`) or `x * InvSqrt(mean x^2 + eps)`.
//!
//! Feature sums: the ciphertexts are added, then one rotate-and-sum over the features of a
//! ciphertext (stride `n`) leaves every feature slot of a token holding the token's sum, so
//! the statistics need no replication. Padding tokens get a value inside the inverse square
//! root's interval (their outputs are discarded), keeping every slot bounded.

use psf_approx::InvSqrtRecipe;
use psf_circuits::inverse::InvSqrt;
use psf_circuits::{Backend, Circuit};

use super::engine::Engine;
use crate::Result;
use crate::model::NormKind;
use crate::report::Component;

/// One inverse square root to apply to the shared statistics.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NormRecipe<'r> {
    pub eps: f64,
    pub inv_sqrt: &'r InvSqrtRecipe,
}

/// Levels a norm consumes with these recipes.
pub(crate) fn norm_depth(kind: NormKind, recipes: &[NormRecipe<'_>]) -> Result<usize> {
    let deepest = recipes
        .iter()
        .map(|r| Ok(InvSqrt::from_recipe(r.inv_sqrt)?.depth()))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .max()
        .unwrap_or(0);
    Ok(deepest + if kind == NormKind::LayerNorm { 4 } else { 3 })
}

impl<B: Backend> Engine<'_, B> {
    /// The norm of `x` (`d_model` features, at least [`norm_depth`] levels) under each
    /// recipe: one output per recipe, sharing the mean and variance.
    pub(crate) fn norm(
        &self,
        kind: NormKind,
        x: &[B::Ct],
        d_model: usize,
        recipes: &[NormRecipe<'_>],
    ) -> Result<Vec<Vec<B::Ct>>> {
        self.enter(Component::Norm);
        let (d, n) = (self.layout.features_per_ct(), self.layout.tokens());
        // The input with its unused feature slots zeroed (at the level the mean's product
        // takes anyway), so the output is zero there: bootstrapping noise in unused slots
        // would otherwise reach the next linear map, which sums copies of a narrow input.
        let masked = x
            .iter()
            .enumerate()
            .map(|(c, xc)| {
                let mask = self
                    .layout
                    .slot_vector(|f, _| if c * d + f < d_model { 1.0 } else { 0.0 });
                self.mul_pt(xc, &mask)
            })
            .collect::<Result<Vec<_>>>()?;
        let centred = match kind {
            NormKind::LayerNorm => {
                let s = self.rot_sum(&self.sum(x)?, n, d)?;
                masked
                    .iter()
                    .enumerate()
                    .map(|(c, xc)| {
                        let inv_d = self.layout.slot_vector(|f, _| {
                            if c * d + f < d_model {
                                1.0 / d_model as f64
                            } else {
                                0.0
                            }
                        });
                        let mu = self.mul_pt(&s, &inv_d)?;
                        Ok(self.be.sub(xc, &mu)?)
                    })
                    .collect::<Result<Vec<_>>>()?
            }
            NormKind::RmsNorm => x.to_vec(),
        };
        let squares = centred
            .iter()
            .map(|c| self.mul(c, c))
            .collect::<Result<Vec<_>>>()?;
        let total = self.mul_c(
            &self.rot_sum(&self.sum(&squares)?, n, d)?,
            1.0 / d_model as f64,
        )?;
        let scaled = match kind {
            NormKind::LayerNorm => centred,
            NormKind::RmsNorm => masked,
        };
        recipes
            .iter()
            .map(|r| {
                let inv = InvSqrt::from_recipe(r.inv_sqrt)?.with_output_scale(self.scale);
                let mid = 0.5 * (r.inv_sqrt.a + r.inv_sqrt.b);
                let real = self.layout.real_tokens();
                let pad = self
                    .layout
                    .slot_vector(|_, t| if t < real { r.eps } else { mid });
                let var = self.add_pt(&total, &pad)?;
                let inv = inv.evaluate(&self.be, &var)?;
                scaled.iter().map(|c| self.mul(c, &inv)).collect()
            })
            .collect()
    }
}
