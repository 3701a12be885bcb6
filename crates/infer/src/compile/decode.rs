//! The decoder: a model compiled for autoregressive generation, one token per step, with the
//! keys and values of earlier tokens held encrypted by the server (DESIGN.md §4, "beyond the
//! paper").
//!
//! **Step layout** ([`StepLayout`]). The new token's `d_model` features sit in consecutive
//! slots, replicated over the whole ciphertext with period `model_period` (the next power of
//! two), so one ciphertext holds the token and every slot-wise operation keeps the
//! replication. Weight products use the periodic diagonal maps of [`super::decode_maps`]
//! (`min(p_in, p_out)` plaintext products each). Queries, keys and values have period
//! `attn_period`; the key (value) cache of a layer packs token `j` into block
//! `j mod R` (`R = slots / attn_period`) of ciphertext `j / R`, so scores of every cached token
//! are one product and one rotate-and-sum per cache ciphertext.
//!
//! **Compilation** ([`Decoder::compile`]) folds the weights as [`super::CompiledModel`] does
//! (norm gain and shift, the attention scale, grouped heads; RoPE per step position when the
//! maps are built) and steps through calibration sequences on the simulation evaluator. That
//! dry run fixes the [`Plan`]: the bootstraps of one step (levels are data-independent, so
//! every step places them identically), the bound of every refresh site (largest magnitude
//! over all positions seen, times two, as a power of two), the rotation keys, and the counts
//! of the longest step for the cost model.
//!
//! With [`DecodeOptions::sparse_refresh`] (the default) bootstraps run on `attn_period`
//! slots: every refreshed value of a step is replicated with that period, so its plaintext
//! lies in the sparse subring (see `runtime/decode_refresh.rs`).

use std::collections::{BTreeMap, BTreeSet};

use psf_circuits::SimBackend;
use psf_circuits::bootstrap::presets::{self, BootstrapPreset};
use psf_ckks::CkksParameters;
use serde::{Deserialize, Serialize};

use super::decode_maps::replicate;
use super::weights::Folded;
use super::{CompiledBlock, KeyRequirements, Plan, compile_block, key_requirements_of};
use crate::model::{Mlp, ModelIr};
use crate::runtime::decode::{KvCache, step_sim};
use crate::runtime::refresh::{SimRefresh, bound_for};
use crate::runtime::{Progress, RunOptions};
use crate::{InferError, Result};

/// Where one decoding step's values sit in the slots (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepLayout {
    /// Slots per ciphertext.
    pub slots: usize,
    /// Model width.
    pub d_model: usize,
    /// Replication period of the residual stream (`d_model` rounded up to a power of two).
    pub model_period: usize,
    /// Query, key and value width (`heads * head_dim`).
    pub attn_width: usize,
    /// Their period, and the width of one token's block in the cache (at least
    /// `model_period`).
    pub attn_period: usize,
    /// Period of the MLP hidden layer.
    pub hidden_period: usize,
    /// Logits per step.
    pub vocab: usize,
    /// Period of the logits (at most `slots`; larger vocabularies take several ciphertexts).
    pub vocab_period: usize,
    /// Positions the cache holds.
    pub max_len: usize,
}

fn pow2(n: usize) -> usize {
    n.max(1).next_power_of_two()
}

impl StepLayout {
    /// The layout of `ir` in ciphertexts of `slots` slots for `max_len` positions.
    ///
    /// # Errors
    /// A width (model, attention, MLP) that does not fit one ciphertext, or `max_len` 0.
    pub fn new(slots: usize, ir: &ModelIr, max_len: usize) -> Result<Self> {
        let model_period = pow2(ir.d_model);
        let attn_width = ir
            .blocks
            .iter()
            .map(|b| b.attn.heads * b.attn.head_dim)
            .max()
            .unwrap_or(0);
        let hidden = ir
            .blocks
            .iter()
            .map(|b| match &b.mlp {
                Mlp::Plain { up, .. } | Mlp::Gated { up, .. } => up.rows,
            })
            .max()
            .unwrap_or(0);
        let l = Self {
            slots,
            d_model: ir.d_model,
            model_period,
            attn_width,
            attn_period: pow2(attn_width).max(model_period),
            hidden_period: pow2(hidden),
            vocab: ir.vocab(),
            vocab_period: pow2(ir.vocab()).min(slots),
            max_len,
        };
        let widest = l.attn_period.max(l.hidden_period);
        if !slots.is_power_of_two() || widest > slots || max_len == 0 {
            return Err(InferError::Unsupported(format!(
                "step layout: widths up to {widest} and {max_len} positions in {slots} slots"
            )));
        }
        Ok(l)
    }

    /// Tokens per cache ciphertext (`R`).
    pub fn tokens_per_cache_ct(&self) -> usize {
        self.slots / self.attn_period
    }

    /// Cache ciphertexts per layer and per keys/values at `max_len` tokens.
    pub fn cache_cts(&self) -> usize {
        self.max_len.div_ceil(self.tokens_per_cache_ct())
    }

    /// `(ciphertext, block)` of the cache entry of position `pos`.
    pub fn cache_slot(&self, pos: usize) -> (usize, usize) {
        let r = self.tokens_per_cache_ct();
        (pos / r, pos % r)
    }

    /// Logit ciphertexts per step.
    pub fn logit_cts(&self) -> usize {
        self.vocab.div_ceil(self.vocab_period)
    }

    /// One token's embedding as the slot vector the client encrypts.
    ///
    /// # Errors
    /// An embedding of the wrong width.
    pub fn pack_token(&self, x: &[f64]) -> Result<Vec<f64>> {
        if x.len() != self.d_model {
            return Err(InferError::shape("embedding", self.d_model, x.len()));
        }
        Ok(replicate(x, self.model_period, self.slots))
    }

    /// The logits of a step from its decrypted slot vectors.
    ///
    /// # Errors
    /// The wrong number or length of slot vectors.
    pub fn unpack_logits(&self, cts: &[Vec<f64>]) -> Result<Vec<f64>> {
        if cts.len() != self.logit_cts() || cts.iter().any(|c| c.len() < self.vocab_period) {
            return Err(InferError::shape(
                "logit ciphertexts",
                self.logit_cts(),
                cts.len(),
            ));
        }
        Ok((0..self.vocab)
            .map(|g| cts[g / self.vocab_period][g % self.vocab_period])
            .collect())
    }
}

/// What to compile a decoder for.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// Positions a sequence may reach (prompt and generated tokens).
    pub max_len: usize,
    /// CKKS parameters and the bootstrapping circuit.
    pub preset: BootstrapPreset,
    /// Embedding sequences `[sequence][position][feature]` (each of 1 to `max_len` positions)
    /// the dry run steps through to find the refresh bounds: text like what will be served,
    /// ideally reaching `max_len`.
    pub calibration: Vec<Vec<Vec<f64>>>,
    /// Bootstrap with `attn_period` slots (sparse packing; every refreshed value is
    /// replicated with that period) instead of the preset's full slots: same levels, a
    /// cheaper circuit, fewer rotation keys.
    pub sparse_refresh: bool,
}

impl DecodeOptions {
    /// The bootstrapping preset of ring degree `2^log_n` ([`presets::for_log_n`]).
    pub fn for_log_n(max_len: usize, log_n: u32, calibration: Vec<Vec<Vec<f64>>>) -> Self {
        Self {
            max_len,
            preset: presets::for_log_n(log_n),
            calibration,
            sparse_refresh: true,
        }
    }
}

/// A model compiled for step-by-step decoding with an encrypted KV cache.
#[derive(Debug, Clone)]
pub struct Decoder {
    /// The model.
    pub ir: ModelIr,
    /// The step layout.
    pub layout: StepLayout,
    /// Parameters and bootstrapping circuit.
    pub preset: BootstrapPreset,
    /// Blocks with folded weights (RoPE is applied per step position).
    pub blocks: Vec<CompiledBlock>,
    /// LM head with the final norm folded in.
    pub lm_head: Folded,
    /// The plan of the dry run (per step).
    pub plan: Plan,
}

/// The bound of every refresh site from the largest magnitude seen there; a bootstrap
/// input's scale times its bound must stay below `q_0 / 2`.
fn checked_bounds(
    params: &CkksParameters,
    maxima: BTreeMap<String, f64>,
) -> Result<BTreeMap<String, f64>> {
    let q0 = params.ring().q().modulus(0).value() as f64;
    let limit = q0 / (2.0 * params.default_scale().0);
    maxima
        .into_iter()
        .map(|(site, max_abs)| {
            let bound = bound_for(max_abs);
            if !bound.is_finite() || bound >= limit {
                return Err(InferError::RefreshRange {
                    site,
                    max_abs,
                    limit: limit / 2.0,
                });
            }
            Ok((site, bound))
        })
        .collect()
}

/// The slots of the bootstrapping circuit, when fewer than the parameters' (sparse refresh).
pub(crate) fn sparse_slots(preset: &BootstrapPreset, params: &CkksParameters) -> Option<u32> {
    (preset.config.log_slots < params.max_log_slots()).then_some(preset.config.log_slots)
}

impl Decoder {
    /// Compiles `ir` for decoding (see the module docs).
    ///
    /// # Errors
    /// Inconsistent shapes, widths that do not fit a ciphertext, empty or over-long
    /// calibration sequences, a stage deeper than a bootstrap leaves, or an error of the dry
    /// run.
    pub fn compile(ir: &ModelIr, opts: &DecodeOptions) -> Result<Self> {
        ir.validate()?;
        let params = opts.preset.params.try_build()?;
        let layout = StepLayout::new(params.max_slots(), ir, opts.max_len)?;
        if opts.calibration.is_empty()
            || opts
                .calibration
                .iter()
                .any(|s| s.is_empty() || s.len() > opts.max_len)
        {
            return Err(InferError::shape(
                "calibration sequences",
                format!("1 or more of 1..={} positions", opts.max_len),
                format!("{} sequences", opts.calibration.len()),
            ));
        }
        let mut preset = opts.preset.clone();
        if opts.sparse_refresh {
            preset.config.log_slots = layout.attn_period.ilog2().min(params.max_log_slots());
        }
        let mut d = Self {
            ir: ir.clone(),
            layout,
            preset,
            blocks: ir
                .blocks
                .iter()
                .map(compile_block)
                .collect::<Result<Vec<_>>>()?,
            lm_head: Folded::after_norm(&ir.lm_head, &ir.final_norm)?,
            plan: Plan {
                stages: ir.blocks.len() + 1,
                ..Plan::default()
            },
        };
        d.plan = d.dry_run(&params, &opts.calibration)?;
        Ok(d)
    }

    /// Steps through every calibration sequence on the simulation evaluator.
    fn dry_run(&self, params: &CkksParameters, calibration: &[Vec<Vec<f64>>]) -> Result<Plan> {
        let refresh = SimRefresh::new(self.fresh_level(params));
        let quiet = |_: &Progress| {};
        let opts = RunOptions {
            threads: 1,
            progress: &quiet,
            cost: None,
            positions: None,
        };
        let mut plan = Plan {
            stages: self.plan.stages,
            ..Plan::default()
        };
        let (mut rotations, mut longest) = (BTreeSet::new(), 0);
        for (i, seq) in calibration.iter().enumerate() {
            let mut cache = KvCache::new(self);
            for x in seq {
                let token = self.layout.pack_token(x)?;
                let sim = SimBackend::new(params);
                let run = step_sim(self, sim, &refresh, &mut cache, &token, &opts)?;
                if run
                    .outputs
                    .iter()
                    .any(|c| c.values.iter().any(|v| !v.is_finite()))
                {
                    return Err(InferError::Diverged {
                        sequence: i,
                        position: cache.len() - 1,
                    });
                }
                rotations.extend(run.rotations);
                for (k, l) in run.rotation_levels {
                    let e = plan.rotation_levels.entry(k).or_insert(l);
                    *e = (*e).max(l);
                }
                if i == 0 && cache.len() == 1 {
                    plan.bootstraps = run.report.bootstraps.clone();
                } else if run.report.bootstraps != plan.bootstraps {
                    return Err(InferError::Unsupported(format!(
                        "bootstrap placement differs at position {}",
                        cache.len() - 1
                    )));
                }
                if cache.len() > longest {
                    longest = cache.len();
                    plan.simulated = run.report;
                }
            }
        }
        plan.bounds = checked_bounds(params, refresh.maxima())?;
        plan.rotations = rotations.into_iter().collect();
        Ok(plan)
    }

    /// The CKKS parameters.
    ///
    /// # Errors
    /// Invalid parameters (cannot happen for a compiled decoder's preset).
    pub fn params(&self) -> Result<CkksParameters> {
        Ok(self.preset.params.try_build()?)
    }

    /// The level tokens are encrypted at and bootstraps return to.
    pub fn fresh_level(&self, params: &CkksParameters) -> usize {
        params.ring().max_level() - self.preset.config.depth()
    }

    /// The keys the server needs (see [`super::CompiledModel::key_requirements`]).
    ///
    /// # Errors
    /// As [`psf_circuits::bootstrap::Bootstrapper::new`].
    pub fn key_requirements(&self) -> Result<KeyRequirements> {
        key_requirements_of(
            &self.preset,
            &self.plan.rotations,
            &self.plan.rotation_levels,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Linear, Norm, NormKind};

    /// A model of width `d` without blocks and a `vocab x d` head (layout only).
    fn headless(d: usize, vocab: usize) -> ModelIr {
        ModelIr {
            d_model: d,
            blocks: Vec::new(),
            final_norm: Norm {
                kind: NormKind::RmsNorm,
                gamma: vec![1.0; d],
                beta: None,
                eps: 1e-5,
                inv_sqrt: psf_approx::InvSqrtRecipe {
                    a: 0.05,
                    b: 8.0,
                    guess_degree: 7,
                    iterations: 2,
                },
            },
            lm_head: Linear::new(vocab, d, vec![0.5; vocab * d], None).unwrap(),
        }
    }

    #[test]
    fn layout_periods_and_cache_slots() {
        let ir = headless(20, 100);
        let l = StepLayout::new(256, &ir, 40).unwrap();
        assert_eq!(
            (l.model_period, l.attn_period, l.vocab_period),
            (32, 32, 128)
        );
        assert_eq!((l.tokens_per_cache_ct(), l.cache_cts()), (8, 5));
        assert_eq!(l.cache_slot(17), (2, 1));
        let x: Vec<f64> = (0..20).map(f64::from).collect();
        let packed = l.pack_token(&x).unwrap();
        assert_eq!((packed[33], packed[52], packed[255]), (1.0, 0.0, 0.0));
        assert!(l.pack_token(&x[..5]).is_err());
        assert_eq!(l.unpack_logits(&[packed]).unwrap()[..3], [0.0, 1.0, 2.0]);
        let wide = StepLayout::new(64, &headless(20, 1000), 4).unwrap();
        assert_eq!((wide.vocab_period, wide.logit_cts()), (64, 16));
        assert!(StepLayout::new(16, &ir, 4).is_err());
        assert!(StepLayout::new(256, &ir, 0).is_err());
    }
}
