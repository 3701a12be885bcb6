//! One decoding step through the blocks on the step layout ([`crate::compile::decode`]):
//! norms, periodic weight maps, attention over the cache, MLP and LM head, with the refresh
//! points and levels of the whole-prompt pass ([`super::blocks`]).

use psf_circuits::inverse::{InvSqrt, Reciprocal};
use psf_circuits::{Backend, PolyEval};

use super::attention::{attention_depth, den_padding, reciprocal_need};
use super::blocks::mlp_depth;
use super::decode::LayerCache;
use super::engine::Engine;
use super::norm::{NormRecipe, norm_depth};
use crate::compile::decode::Decoder;
use crate::compile::decode_maps::{StepMap, replicate};
use crate::compile::weights::Folded;
use crate::compile::{CompiledBlock, MlpWeights};
use crate::model::{Attention, Norm, NormKind};
use crate::report::Component;
use crate::{InferError, Result};

fn recipe(n: &Norm) -> NormRecipe<'_> {
    NormRecipe {
        eps: n.eps,
        inv_sqrt: &n.inv_sqrt,
    }
}

fn one<T>(v: Vec<T>) -> Result<T> {
    v.into_iter()
        .next()
        .ok_or_else(|| InferError::Unsupported("empty refresh output".into()))
}

/// Logit ciphertexts (none without the LM head) and every layer's updated cache.
pub(crate) type StepOutput<C> = (Vec<C>, Vec<LayerCache<C>>);

/// A step at position `pos` in flight.
pub(crate) struct Stepper<'e, 'a, B: Backend> {
    e: &'e Engine<'a, B>,
    dec: &'e Decoder,
    pos: usize,
}

impl<'e, 'a, B: Backend> Stepper<'e, 'a, B> {
    pub(crate) fn new(e: &'e Engine<'a, B>, dec: &'e Decoder, pos: usize) -> Self {
        Self { e, dec, pos }
    }

    fn map(&self, p_in: usize, p_out: usize) -> Result<StepMap> {
        StepMap::new(self.dec.layout.slots, p_in, p_out, self.pos)
    }

    /// The blocks (and the LM head when `head`): logit ciphertexts and the updated caches.
    pub(crate) fn forward(
        &self,
        x: B::Ct,
        cache: &[LayerCache<B::Ct>],
        head: bool,
    ) -> Result<StepOutput<B::Ct>> {
        let mut x = x;
        let mut caches = Vec::with_capacity(cache.len());
        for (l, (b, c)) in self.dec.blocks.iter().zip(cache).enumerate() {
            let (y, updated) = self.block(&format!("L{l}"), b, x, c)?;
            x = y;
            caches.push(updated);
        }
        if !head {
            return Ok((Vec::new(), caches));
        }
        let logits = self.head(x)?;
        self.e.stage_done("final");
        Ok((logits, caches))
    }

    fn head(&self, x: B::Ct) -> Result<Vec<B::Ct>> {
        let (e, lay) = (self.e, &self.dec.layout);
        let fin = &self.dec.ir.final_norm;
        let rec = [recipe(fin)];
        let x = one(e.ensure("final.norm", vec![x], norm_depth(fin.kind, &rec)?)?)?;
        let y = one(self.norm(fin.kind, &x, &rec)?)?;
        let y = one(e.ensure("final.head", vec![y], 1)?)?;
        (0..lay.logit_cts())
            .map(|c| {
                let map = self
                    .map(lay.model_period, lay.vocab_period)?
                    .rows_from(c * lay.vocab_period);
                self.linear(&y, &self.dec.lm_head, map)
            })
            .collect()
    }

    fn block(
        &self,
        site: &str,
        b: &CompiledBlock,
        x: B::Ct,
        cache: &LayerCache<B::Ct>,
    ) -> Result<(B::Ct, LayerCache<B::Ct>)> {
        let e = self.e;
        let kind = b.norm1.kind;
        let att_need = attention_depth(b.attn.p);
        let mlp_need = mlp_depth(&b.mlp)?;
        if b.parallel_residual {
            let recipes = [recipe(&b.norm1), recipe(&b.norm2)];
            let x = one(e.ensure(
                &format!("{site}.norm"),
                vec![x],
                norm_depth(kind, &recipes)?,
            )?)?;
            let ys = self.norm(kind, &x, &recipes)?;
            let both = e.ensure(&format!("{site}.inputs"), ys, att_need.max(mlp_need))?;
            let (a, cache) = self.attention(site, b, &both[0], cache)?;
            let m = self.mlp(&b.mlp, &both[1])?;
            e.enter(Component::Other);
            let out = e.be.add(&e.be.add(&x, &a)?, &m)?;
            e.stage_done(site);
            return Ok((out, cache));
        }
        let recipes = [recipe(&b.norm1)];
        let x = one(e.ensure(
            &format!("{site}.norm1"),
            vec![x],
            norm_depth(kind, &recipes)?,
        )?)?;
        let y = one(self.norm(kind, &x, &recipes)?)?;
        let y = one(e.ensure(&format!("{site}.attn_in"), vec![y], att_need)?)?;
        let (a, cache) = self.attention(site, b, &y, cache)?;
        e.enter(Component::Other);
        let x = e.be.add(&x, &a)?;
        let recipes = [recipe(&b.norm2)];
        let x = one(e.ensure(
            &format!("{site}.norm2"),
            vec![x],
            norm_depth(b.norm2.kind, &recipes)?,
        )?)?;
        let y = one(self.norm(b.norm2.kind, &x, &recipes)?)?;
        let y = one(e.ensure(&format!("{site}.mlp_in"), vec![y], mlp_need)?)?;
        let m = self.mlp(&b.mlp, &y)?;
        e.enter(Component::Other);
        let out = e.be.add(&x, &m)?;
        e.stage_done(site);
        Ok((out, cache))
    }

    /// `y = W x + b` on the step layout (one output ciphertext).
    fn linear(&self, x: &B::Ct, f: &Folded, map: StepMap) -> Result<B::Ct> {
        let e = self.e;
        e.enter(Component::PtMatmul);
        let level = e.be.level(x);
        let mut y = map.transform(f)?.encode(&e.be, level)?.apply(&e.be, x)?;
        if let Some((stride, terms)) = map.fold() {
            y = e.rot_sum(&y, stride, terms)?;
        }
        match map.bias(f) {
            None => Ok(y),
            Some(b) => {
                e.enter(Component::Other);
                e.add_pt(&y, &b)
            }
        }
    }

    /// The norm of the residual stream under each recipe (shared statistics): feature sums by
    /// one rotate-and-sum over the period, which leaves every slot holding the sum.
    fn norm(&self, kind: NormKind, x: &B::Ct, recipes: &[NormRecipe<'_>]) -> Result<Vec<B::Ct>> {
        let (e, lay) = (self.e, &self.dec.layout);
        e.enter(Component::Norm);
        let (d, p) = (lay.d_model, lay.model_period);
        let centred = match kind {
            NormKind::LayerNorm => {
                let s = e.rot_sum(x, 1, p)?;
                let inv_d = replicate(&vec![1.0 / d as f64; d], p, lay.slots);
                e.be.sub(x, &e.mul_pt(&s, &inv_d)?)?
            }
            NormKind::RmsNorm => x.clone(),
        };
        let sq = e.mul(&centred, &centred)?;
        let total = e.mul_c(&e.rot_sum(&sq, 1, p)?, 1.0 / d as f64)?;
        recipes
            .iter()
            .map(|r| {
                let inv = InvSqrt::from_recipe(r.inv_sqrt)?.with_output_scale(e.scale);
                let var = e.be.add_const(&total, r.eps)?;
                e.mul(&centred, &inv.evaluate(&e.be, &var)?)
            })
            .collect()
    }

    /// Attention of the normalized `y` over the cache with this token's keys and values added.
    fn attention(
        &self,
        site: &str,
        b: &CompiledBlock,
        y: &B::Ct,
        cache: &LayerCache<B::Ct>,
    ) -> Result<(B::Ct, LayerCache<B::Ct>)> {
        let (e, lay) = (self.e, &self.dec.layout);
        let (attn, w) = (&b.attn, &b.weights);
        let (pd, pa) = (lay.model_period, lay.attn_period);
        let q = self.linear(y, &w.q, self.map(pd, pa)?)?;
        let cache = self.insert(y, b, cache)?;
        let numer = cache
            .k
            .iter()
            .enumerate()
            .map(|(c, k)| self.numerator(attn, &q, k, c))
            .collect::<Result<Vec<_>>>()?;
        e.enter(Component::PowerSoftmax);
        let recip = Reciprocal::from_recipe(&attn.reciprocal)?.with_output_scale(e.scale);
        let r = lay.tokens_per_cache_ct();
        let den = e.rot_sum(&e.sum(&numer)?, pa, r)?;
        let den = e.add_pt(&den, &self.den_pad(attn))?;
        let den = one(e.ensure(&format!("{site}.den"), vec![den], reciprocal_need(&recip))?)?;
        let inv = recip.evaluate(&e.be, &den)?;
        e.enter(Component::CtMatmul);
        let parts = numer
            .iter()
            .zip(&cache.v)
            .map(|(n, v)| e.mul(n, v))
            .collect::<Result<Vec<_>>>()?;
        let out = e.rot_sum(&e.sum(&parts)?, pa, r)?;
        e.enter(Component::PowerSoftmax);
        let out = e.mul(&out, &inv)?;
        let o = self.linear(&out, &w.o, self.map(pa, pd)?)?;
        Ok((o, cache))
    }

    /// The cache with this token's keys and values in their block (the projections write
    /// only that block, so insertion is an addition).
    fn insert(
        &self,
        y: &B::Ct,
        b: &CompiledBlock,
        cache: &LayerCache<B::Ct>,
    ) -> Result<LayerCache<B::Ct>> {
        let (e, lay) = (self.e, &self.dec.layout);
        let (c, block) = lay.cache_slot(self.pos);
        let map = self
            .map(lay.model_period, lay.attn_period)?
            .in_block(block)?;
        let k = self.linear(y, &b.weights.k, map)?;
        let v = self.linear(y, &b.weights.v, map)?;
        let mut out = cache.clone();
        e.enter(Component::Other);
        match c.cmp(&out.k.len()) {
            std::cmp::Ordering::Equal => {
                out.k.push(k);
                out.v.push(v);
            }
            std::cmp::Ordering::Less if c < out.v.len() => {
                out.k[c] = e.be.add(&out.k[c], &k)?;
                out.v[c] = e.be.add(&out.v[c], &v)?;
            }
            _ => {
                return Err(InferError::shape(
                    "cache ciphertexts",
                    format!("at least {c}"),
                    out.k.len(),
                ));
            }
        }
        Ok(out)
    }

    /// `(s_j L^(-1/p))^p` at every slot of head `h` of block `j` of cache ciphertext `c`.
    fn numerator(&self, attn: &Attention, q: &B::Ct, k: &B::Ct, c: usize) -> Result<B::Ct> {
        let e = self.e;
        let dh = attn.head_dim;
        e.enter(Component::CtMatmul);
        let s = e.rot_sum(&e.mul(q, k)?, 1, dh)?;
        e.enter(Component::PowerSoftmax);
        let z = e.mul_pt(&s, &self.score_mask(attn, c))?;
        let z = e.replicate(&z, 1, dh)?;
        e.power(&z, attn.p)
    }

    /// `L^(-1/p)` (times the head's positional decay) at the head starts of the visible
    /// tokens of cache ciphertext `c`, else 0.
    fn score_mask(&self, attn: &Attention, c: usize) -> Vec<f64> {
        let lay = &self.dec.layout;
        let (pa, r) = (lay.attn_period, lay.tokens_per_cache_ct());
        let scale = ((self.pos + 1) as f64).powf(-1.0 / f64::from(attn.p));
        (0..lay.slots)
            .map(|m| {
                let (j, f) = (c * r + m / pa, m % pa);
                let start = f < attn.heads * attn.head_dim && f % attn.head_dim == 0;
                if j <= self.pos && start {
                    scale * attn.decay_factor(f / attn.head_dim, self.pos - j)
                } else {
                    0.0
                }
            })
            .collect()
    }

    /// `eps / c^p` on the attention features, [`den_padding`] on the padding features.
    fn den_pad(&self, attn: &Attention) -> Vec<f64> {
        let lay = &self.dec.layout;
        let eps = attn.eps / attn.c.powi(attn.p as i32);
        let mid = den_padding(attn);
        let width = attn.heads * attn.head_dim;
        (0..lay.slots)
            .map(|m| {
                if m % lay.attn_period < width {
                    eps
                } else {
                    mid
                }
            })
            .collect()
    }

    fn mlp(&self, w: &MlpWeights, y: &B::Ct) -> Result<B::Ct> {
        let (e, lay) = (self.e, &self.dec.layout);
        let up_map = self.map(lay.model_period, lay.hidden_period)?;
        let down_map = self.map(lay.hidden_period, lay.model_period)?;
        match w {
            MlpWeights::Plain { up, down, act } => {
                let h = self.linear(y, up, up_map)?;
                e.enter(Component::Activation);
                let act = PolyEval::new(act.clone())?.with_output_scale(e.scale);
                let h = act.evaluate_one(&e.be, &h)?;
                self.linear(&h, down, down_map)
            }
            MlpWeights::Gated {
                gate,
                up,
                down,
                act,
            } => {
                let g = self.linear(y, gate, up_map)?;
                let u = self.linear(y, up, up_map)?;
                e.enter(Component::Activation);
                let act = PolyEval::new(act.clone())?.with_output_scale(e.scale);
                let h = e.mul(&act.evaluate_one(&e.be, &g)?, &u)?;
                self.linear(&h, down, down_map)
            }
        }
    }
}
