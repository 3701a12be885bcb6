//! Decoder blocks, the final norm and the LM head, with the automatic refresh points: each
//! stage asks for the levels it consumes and [`Engine::ensure`] bootstraps its inputs when they
//! have fewer.

use psf_circuits::{Backend, Circuit, PolyEval};

use super::attention::attention_depth;
use super::engine::Engine;
use super::norm::{NormRecipe, norm_depth};
use crate::compile::head::last_position_head;
use crate::compile::weights::Folded;
use crate::compile::{CompiledBlock, CompiledModel, HeadPositions, MlpWeights};
use crate::report::Component;
use crate::{InferError, Result};

/// Levels from the normalized input to the MLP output.
pub(crate) fn mlp_depth(w: &MlpWeights) -> Result<usize> {
    Ok(match w {
        MlpWeights::Plain { act, .. } => 1 + PolyEval::new(act.clone())?.depth() + 1,
        MlpWeights::Gated { act, .. } => 1 + PolyEval::new(act.clone())?.depth() + 2,
    })
}

/// Levels the first norm of block `b` consumes.
fn first_norm_depth(b: &CompiledBlock) -> Result<usize> {
    let mut recipes = vec![recipe(&b.norm1)];
    if b.parallel_residual && !same_recipe(&b.norm1, &b.norm2) {
        recipes.push(recipe(&b.norm2));
    }
    norm_depth(b.norm1.kind, &recipes)
}

/// Whether two norms of the same input compute the same normalized values.
fn same_recipe(a: &crate::model::Norm, b: &crate::model::Norm) -> bool {
    a.kind == b.kind && a.eps == b.eps && a.inv_sqrt == b.inv_sqrt
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
        let map = f.transform(&self.layout)?;
        let copies = f.input_copies(&self.layout);
        let y = if copies > 1 {
            let stride = f.period(&self.layout) * self.layout.tokens();
            let x = x
                .first()
                .ok_or_else(|| InferError::Unsupported("linear map of nothing".into()))?;
            map.apply_streamed(&self.be, &[self.replicate(x, stride, copies)?], level)?
        } else {
            map.apply_streamed(&self.be, x, level)?
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

    /// The whole pass: blocks, final norm, LM head (logits of every position, or of prompt
    /// `b`'s position `positions[b]` for a last-position head).
    pub(crate) fn forward(
        &self,
        m: &CompiledModel,
        x: Vec<B::Ct>,
        positions: &[usize],
    ) -> Result<Vec<B::Ct>> {
        let mut x = x;
        let fin = &m.ir.final_norm;
        let need = norm_depth(fin.kind, &[recipe(fin)])?;
        for (l, b) in m.blocks.iter().enumerate() {
            let next = match m.blocks.get(l + 1) {
                Some(nb) => first_norm_depth(nb)?,
                None => need,
            };
            x = self.block(&format!("L{l}"), m.ir.d_model, b, x, next)?;
        }
        let x = self.ensure("final.norm", x, need)?;
        let y = self.norm(fin.kind, &x, m.ir.d_model, &[recipe(fin)])?;
        let y = y.into_iter().next().unwrap_or_default();
        let logits = match m.head {
            HeadPositions::All => {
                let y = self.ensure("final.head", y, 1)?;
                self.linear(&y, &m.lm_head)?
            }
            HeadPositions::Last => {
                let y = self.ensure("final.head", y, 2)?;
                self.last_position_logits(m, &y, positions)?
            }
        };
        self.stage_done("final");
        Ok(logits)
    }

    /// The logits of prompt `b` at position `positions[b]` ([`crate::compile::head`]): the
    /// token masked and spread over its feature rows, then the dense head map of that token.
    fn last_position_logits(
        &self,
        m: &CompiledModel,
        y: &[B::Ct],
        positions: &[usize],
    ) -> Result<Vec<B::Ct>> {
        let (lay, n) = (&self.layout, self.layout.tokens());
        let mut out = Vec::new();
        for (b, &pos) in positions.iter().enumerate().take(lay.batch) {
            self.enter(Component::PtMatmul);
            let t = lay.token(b, pos);
            let mask = lay.slot_vector(|_, tt| if tt == t { 1.0 } else { 0.0 });
            let spread = y
                .iter()
                .map(|c| self.rot_sum(&self.mul_pt(c, &mask)?, 1, n))
                .collect::<Result<Vec<_>>>()?;
            let (map, bias) = last_position_head(&m.lm_head, lay, t)?;
            let level = self.min_level(&spread);
            let logits = map.apply_streamed(&self.be, &spread, level)?;
            self.enter(Component::Other);
            for (c, bv) in logits.iter().zip(&bias) {
                out.push(self.add_pt(c, bv)?);
            }
        }
        Ok(out)
    }

    /// One decoder block; `next_need` is the levels the stage after it consumes (its output
    /// is bootstrapped when it has fewer).
    fn block(
        &self,
        site: &str,
        d: usize,
        b: &CompiledBlock,
        x: Vec<B::Ct>,
        next_need: usize,
    ) -> Result<Vec<B::Ct>> {
        let kind = b.norm1.kind;
        let att_need = attention_depth(b.attn.p);
        let mlp_need = mlp_depth(&b.mlp)?;
        if b.parallel_residual {
            // Both norms see the same input and their gains are folded into the next maps:
            // with the same eps and inverse square root they give the same output.
            let shared = same_recipe(&b.norm1, &b.norm2);
            let recipes: Vec<NormRecipe<'_>> = if shared {
                vec![recipe(&b.norm1)]
            } else {
                vec![recipe(&b.norm1), recipe(&b.norm2)]
            };
            let x = self.ensure(&format!("{site}.norm"), x, norm_depth(kind, &recipes)?)?;
            let ys = self.norm(kind, &x, d, &recipes)?;
            let c = ys.first().map_or(0, Vec::len);
            let ys = self.ensure(
                &format!("{site}.inputs"),
                ys.concat(),
                att_need.max(mlp_need),
            )?;
            let (y1, y2) = if shared {
                (ys.clone(), ys)
            } else {
                (ys[..c].to_vec(), ys[c..].to_vec())
            };
            let top = self.min_level(&y1);
            let lazy = top - att_need.max(mlp_need) < next_need;
            let y1 = self.lowered(y1, att_need, lazy)?;
            let y2 = self.lowered(y2, mlp_need, lazy)?;
            let a = self.attention(site, &b.attn, &b.weights, &y1)?;
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
        let norm2_need = norm_depth(b.norm2.kind, &[recipe(&b.norm2)])?;
        let lazy = self.min_level(&y) - att_need < norm2_need;
        let y = self.lowered(y, att_need, lazy)?;
        let a = self.attention(site, &b.attn, &b.weights, &y)?;
        self.enter(Component::Other);
        let x = self.add_all(&x, &a)?;
        let recipes = [recipe(&b.norm2)];
        let x = self.ensure(&format!("{site}.norm2"), x, norm2_need)?;
        let y = self
            .norm(b.norm2.kind, &x, d, &recipes)?
            .into_iter()
            .next()
            .unwrap_or_default();
        let y = self.ensure(&format!("{site}.mlp_in"), y, mlp_need)?;
        let lazy = self.min_level(&y) - mlp_need < next_need;
        let y = self.lowered(y, mlp_need, lazy)?;
        let m = self.mlp(&b.mlp, &y)?;
        self.enter(Component::Other);
        let out = self.add_all(&x, &m)?;
        self.stage_done(site);
        Ok(out)
    }

    /// `h` with `value` subtracted from the feature rows at or past `rows`: there the
    /// activation's input is exactly 0, so its output is the polynomial's value at 0, which a
    /// narrow down projection (summing copies of its input) would otherwise pick up. Costs
    /// no level.
    fn zero_unused_rows(&self, h: Vec<B::Ct>, rows: usize, value: f64) -> Result<Vec<B::Ct>> {
        let d = self.layout.features_per_ct();
        if value == 0.0 || rows.is_multiple_of(d) {
            return Ok(h);
        }
        self.enter(Component::Activation);
        h.iter()
            .enumerate()
            .map(|(c, hc)| {
                if (c + 1) * d <= rows {
                    return Ok(hc.clone());
                }
                let fix = self
                    .layout
                    .slot_vector(|f, _| if c * d + f >= rows { -value } else { 0.0 });
                self.add_pt(hc, &fix)
            })
            .collect()
    }

    /// Lowest level of `cts`.
    fn min_level(&self, cts: &[B::Ct]) -> usize {
        cts.iter().map(|c| self.be.level(c)).min().unwrap_or(0)
    }

    /// `cts` dropped to `need` levels when `lazy`: a stage whose output is bootstrapped
    /// anyway runs cheapest at the lowest level that still fits it (every key switch,
    /// encoding and product costs about in proportion to the level).
    fn lowered(&self, cts: Vec<B::Ct>, need: usize, lazy: bool) -> Result<Vec<B::Ct>> {
        if !lazy {
            return Ok(cts);
        }
        cts.into_iter()
            .map(|c| {
                Ok(if self.be.level(&c) > need {
                    self.be.drop_to_level(&c, need)?
                } else {
                    c
                })
            })
            .collect()
    }

    fn mlp(&self, w: &MlpWeights, y: &[B::Ct]) -> Result<Vec<B::Ct>> {
        match w {
            MlpWeights::Plain { up, down, act } => {
                let h = self.linear(y, up)?;
                self.enter(Component::Activation);
                let at_zero = act.eval(0.0);
                let act = PolyEval::new(act.clone())?.with_output_scale(self.scale);
                let h = h
                    .iter()
                    .map(|c| Ok(act.evaluate_one(&self.be, c)?))
                    .collect::<Result<Vec<_>>>()?;
                let h = self.zero_unused_rows(h, up.rows, at_zero)?;
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
