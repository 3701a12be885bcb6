//! Decoder blocks, the final norm and the LM head, with the automatic refresh points: each
//! stage asks for the levels it consumes and [`Engine::ensure`] bootstraps its inputs when they
//! have fewer.

use psf_circuits::{Backend, Circuit, PolyEval};

use super::attention::attention_depth;
use super::engine::Engine;
use super::norm::{NormRecipe, norm_depth};
use crate::compile::weights::Folded;
use crate::compile::{CompiledBlock, CompiledModel, MlpWeights};
use crate::report::Component;
use crate::{InferError, Result};

/// Levels from the normalized input to the MLP output.
pub(crate) fn mlp_depth(w: &MlpWeights) -> Result<usize> {
    Ok(match w {
        MlpWeights::Plain { act, .. } => 1 + PolyEval::new(act.clone())?.depth() + 1,
        MlpWeights::Gated { act, .. } => 1 + PolyEval::new(act.clone())?.depth() + 2,
    })
}

fn recipe(n: &crate::model::Norm) -> NormRecipe<'_> {
    NormRecipe {
        eps: n.eps,
        inv_sqrt: &n.inv_sqrt,
    }
}

impl<B: Backend> Engine<'_, B> {
    /// `y = W x + b` for a folded matrix.
    pub(crate) fn linear(&self, x: &[B::Ct], f: &Folded) -> Result<Vec<B::Ct>> {
        self.enter(Component::PtMatmul);
        let level = x
            .iter()
            .map(|c| self.be.level(c))
            .min()
            .ok_or_else(|| InferError::Unsupported("linear map of nothing".into()))?;
        let enc = f.transform(&self.layout)?.encode(&self.be, level)?;
        let copies = f.input_copies(&self.layout);
        let y = if copies > 1 {
            let stride = f.period(&self.layout) * self.layout.tokens();
            let x = x
                .first()
                .ok_or_else(|| InferError::Unsupported("linear map of nothing".into()))?;
            enc.apply(&self.be, &[self.replicate(x, stride, copies)?])?
        } else {
            enc.apply(&self.be, x)?
        };
        if !f.has_bias() {
            return Ok(y);
        }
        self.enter(Component::Other);
        y.iter()
            .zip(f.bias_vectors(&self.layout))
            .map(|(c, b)| self.add_pt(c, &b))
            .collect()
    }

    /// The whole pass: blocks, final norm, LM head (logits of every position).
    pub(crate) fn forward(&self, m: &CompiledModel, x: Vec<B::Ct>) -> Result<Vec<B::Ct>> {
        let mut x = x;
        for (l, b) in m.blocks.iter().enumerate() {
            x = self.block(&format!("L{l}"), m.ir.d_model, b, x)?;
        }
        let fin = &m.ir.final_norm;
        let need = norm_depth(fin.kind, &[recipe(fin)])?;
        let x = self.ensure("final.norm", x, need)?;
        let y = self.norm(fin.kind, &x, m.ir.d_model, &[recipe(fin)])?;
        let y = self.ensure("final.head", y.into_iter().next().unwrap_or_default(), 1)?;
        let logits = self.linear(&y, &m.lm_head)?;
        self.stage_done("final");
        Ok(logits)
    }

    fn block(&self, site: &str, d: usize, b: &CompiledBlock, x: Vec<B::Ct>) -> Result<Vec<B::Ct>> {
        let kind = b.norm1.kind;
        let att_need = attention_depth(b.attn.p);
        let mlp_need = mlp_depth(&b.mlp)?;
        if b.parallel_residual {
            let recipes = [recipe(&b.norm1), recipe(&b.norm2)];
            let x = self.ensure(&format!("{site}.norm"), x, norm_depth(kind, &recipes)?)?;
            let mut ys = self.norm(kind, &x, d, &recipes)?.into_iter();
            let (y1, y2) = (ys.next().unwrap_or_default(), ys.next().unwrap_or_default());
            let c = y1.len();
            let both = [y1, y2].concat();
            let mut both = self.ensure(&format!("{site}.inputs"), both, att_need.max(mlp_need))?;
            let y2 = both.split_off(c);
            let a = self.attention(site, &b.attn, &b.weights, &both)?;
            let m = self.mlp(&b.mlp, &y2)?;
            self.enter(Component::Other);
            let out = self.add_all(&self.add_all(&x, &a)?, &m)?;
            self.stage_done(site);
            return Ok(out);
        }
        let recipes = [recipe(&b.norm1)];
        let x = self.ensure(&format!("{site}.norm1"), x, norm_depth(kind, &recipes)?)?;
        let y = self
            .norm(kind, &x, d, &recipes)?
            .into_iter()
            .next()
            .unwrap_or_default();
        let y = self.ensure(&format!("{site}.attn_in"), y, att_need)?;
        let a = self.attention(site, &b.attn, &b.weights, &y)?;
        self.enter(Component::Other);
        let x = self.add_all(&x, &a)?;
        let recipes = [recipe(&b.norm2)];
        let x = self.ensure(
            &format!("{site}.norm2"),
            x,
            norm_depth(b.norm2.kind, &recipes)?,
        )?;
        let y = self
            .norm(b.norm2.kind, &x, d, &recipes)?
            .into_iter()
            .next()
            .unwrap_or_default();
        let y = self.ensure(&format!("{site}.mlp_in"), y, mlp_need)?;
        let m = self.mlp(&b.mlp, &y)?;
        self.enter(Component::Other);
        let out = self.add_all(&x, &m)?;
        self.stage_done(site);
        Ok(out)
    }

    fn mlp(&self, w: &MlpWeights, y: &[B::Ct]) -> Result<Vec<B::Ct>> {
        match w {
            MlpWeights::Plain { up, down, act } => {
                let h = self.linear(y, up)?;
                self.enter(Component::Activation);
                let act = PolyEval::new(act.clone())?.with_output_scale(self.scale);
                let h = h
                    .iter()
                    .map(|c| Ok(act.evaluate_one(&self.be, c)?))
                    .collect::<Result<Vec<_>>>()?;
                self.linear(&h, down)
            }
            MlpWeights::Gated {
                gate,
                up,
                down,
                act,
            } => {
                let g = self.linear(y, gate)?;
                let u = self.linear(y, up)?;
                self.enter(Component::Activation);
                let act = PolyEval::new(act.clone())?.with_output_scale(self.scale);
                let h = g
                    .iter()
                    .zip(&u)
                    .map(|(gc, uc)| self.mul(&act.evaluate_one(&self.be, gc)?, uc))
                    .collect::<Result<Vec<_>>>()?;
                self.linear(&h, down)
            }
        }
    }
}
