//! Autoregressive decoding with an encrypted KV cache held by the server.
//!
//! The client encrypts one token's embedding in the step layout
//! ([`crate::client::StepClient::encrypt_token`]); [`step`] runs the decoder on it at the next
//! position of the sequence's [`KvCache`], inserts the token's keys and values into the cache
//! and returns the logit ciphertexts of that position with a latency [`Report`]; the client
//! decrypts them, picks the next token and encrypts its embedding. [`prefill`] runs the prompt
//! (steps without the LM head except at the last token). [`step_sim`] is the same on the
//! simulation evaluator.
//!
//! Each layer computes, for the query at position `t` over keys `0..=t`
//! (`L = t + 1`, see `psf_poly::PolyModel`): scores `s_j = q . k_j` (q scaled by
//! `1/(sqrt(head_dim) c)`), numerators `n_j = (s_j L^(-1/p))^p = s_j^p / L`, the denominator
//! `eps / c^p + sum_j n_j` (the length-agnostic mean), its reciprocal by the layer's recipe, and
//! `sum_j n_j R v_j`.

use psf_circuits::{Backend, HeBackend, SimBackend, SimCiphertext};
use psf_ckks::Ciphertext;

use super::decode_blocks::Stepper;
use super::decode_refresh::SparseRefresh;
use super::refresh::Refresh;
use super::{Engine, Run, RunOptions, ServerContext, SimRefresh, build_report, pool, predict};
use crate::compile::decode::{Decoder, sparse_slots};
use crate::layout::Layout;
use crate::report::Report;
use crate::{InferError, Result};

/// The cached keys and values of one layer: `cache_cts` ciphertexts each, token `j` in block
/// `j mod R` of ciphertext `j / R` (see [`crate::compile::decode::StepLayout`]).
#[derive(Debug, Clone)]
pub(crate) struct LayerCache<C> {
    pub(crate) k: Vec<C>,
    pub(crate) v: Vec<C>,
}

/// The server-side state of one sequence: per layer the encrypted keys and values of the
/// tokens seen so far.
#[derive(Debug, Clone)]
pub struct KvCache<C = Ciphertext> {
    layers: Vec<LayerCache<C>>,
    len: usize,
    max_len: usize,
}

impl<C: Clone> KvCache<C> {
    /// An empty cache for `dec`.
    pub fn new(dec: &Decoder) -> Self {
        Self {
            layers: vec![
                LayerCache {
                    k: Vec::new(),
                    v: Vec::new(),
                };
                dec.blocks.len()
            ],
            len: 0,
            max_len: dec.layout.max_len,
        }
    }

    /// Tokens held (the position of the next step).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no token was added yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Positions the cache can hold.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Ciphertexts held (keys and values of every layer).
    pub fn ciphertexts(&self) -> usize {
        self.layers.iter().map(|l| l.k.len() + l.v.len()).sum()
    }

    /// The key ciphertexts of `layer`.
    pub fn keys(&self, layer: usize) -> &[C] {
        self.layers.get(layer).map_or(&[], |l| &l.k)
    }

    /// The value ciphertexts of `layer`.
    pub fn values(&self, layer: usize) -> &[C] {
        self.layers.get(layer).map_or(&[], |l| &l.v)
    }
}

/// One step of `dec` on `be`; the cache is updated only when the step succeeds.
#[allow(clippy::too_many_arguments)]
fn execute_step<B: Backend>(
    dec: &Decoder,
    be: B,
    refresh: &dyn Refresh<B>,
    cache: &mut KvCache<B::Ct>,
    token: B::Ct,
    opts: &RunOptions<'_>,
    backend: &str,
    head: bool,
) -> Result<Run<B::Ct>> {
    let pos = cache.len;
    if pos >= dec.layout.max_len {
        return Err(InferError::CacheFull {
            max_len: dec.layout.max_len,
        });
    }
    if cache.layers.len() != dec.blocks.len() || cache.max_len != dec.layout.max_len {
        return Err(InferError::shape(
            "KV cache (layers, max_len)",
            format!("({}, {})", dec.blocks.len(), dec.layout.max_len),
            format!("({}, {})", cache.layers.len(), cache.max_len),
        ));
    }
    if be.slots() != dec.layout.slots {
        return Err(InferError::shape("slots", dec.layout.slots, be.slots()));
    }
    let before = be.counts();
    let layout = Layout::new(1, 1, dec.layout.slots)?;
    let eng = Engine::new(be, refresh, layout, dec.plan.stages.max(1), opts.progress);
    let stepper = Stepper::new(&eng, dec, pos);
    let (outputs, layers) =
        pool(opts.threads)?.install(|| stepper.forward(token, &cache.layers, head))?;
    let total = eng.elapsed();
    let mut report = build_report(title(dec, pos), &eng, total, before, backend, opts.threads);
    if let Some(cost) = opts.cost {
        predict(&mut report, &eng.component_counts(), cost);
    }
    cache.layers = layers;
    cache.len += 1;
    let tally = eng.be.tally();
    Ok(Run {
        outputs,
        report,
        rotations: tally.rotations,
        rotation_levels: tally.rotation_levels,
    })
}

fn title(dec: &Decoder, pos: usize) -> String {
    let a = dec.blocks.first().map(|b| &b.attn);
    format!(
        "decode step at position {pos}: {} blocks, d={}, heads={}, vocab={}; max_len {}; N=2^{}",
        dec.blocks.len(),
        dec.ir.d_model,
        a.map_or(0, |a| a.heads),
        dec.ir.vocab(),
        dec.layout.max_len,
        dec.preset.params.ring.log_n,
    )
}

/// One decoding step on the simulation evaluator: `token` is the packed slot vector
/// ([`crate::compile::decode::StepLayout::pack_token`]), "encrypted" at the fresh level.
///
/// # Errors
/// A full or mismatched cache, a wrong token, or an error of the circuit.
pub fn step_sim(
    dec: &Decoder,
    sim: SimBackend,
    refresh: &SimRefresh,
    cache: &mut KvCache<SimCiphertext>,
    token: &[f64],
    opts: &RunOptions<'_>,
) -> Result<Run<SimCiphertext>> {
    let ct = sim.encrypt(token, refresh.output_level(), sim.default_scale())?;
    execute_step(dec, sim, refresh, cache, ct, opts, "simulation", true)
}

fn he_step(
    dec: &Decoder,
    server: &ServerContext,
    cache: &mut KvCache<Ciphertext>,
    token: Ciphertext,
    opts: &RunOptions<'_>,
    head: bool,
) -> Result<(Vec<Ciphertext>, Report)> {
    if server.params().max_slots() != dec.layout.slots {
        return Err(InferError::shape(
            "server parameters (slots)",
            dec.layout.slots,
            server.params().max_slots(),
        ));
    }
    if server.bootstrap_config() != &dec.preset.config {
        return Err(InferError::shape(
            "server bootstrapping slots",
            1usize << dec.preset.config.log_slots,
            1usize << server.bootstrap_config().log_slots,
        ));
    }
    let inner = server.refresh_with(&dec.plan.bounds);
    let be: HeBackend<'_> = server.backend();
    let run = match sparse_slots(&dec.preset, server.params()) {
        None => execute_step(dec, be, &inner, cache, token, opts, "ckks", head)?,
        Some(sparse) => {
            let full = server.params().max_log_slots();
            let refresh = SparseRefresh {
                inner,
                sparse,
                full,
            };
            execute_step(dec, be, &refresh, cache, token, opts, "ckks", head)?
        }
    };
    Ok((run.outputs, run.report))
}

/// One encrypted decoding step: the token's embedding ciphertext in (at the fresh level, see
/// [`crate::client::StepSpec`]), the logit ciphertexts of its position out
/// (`layout.logit_cts()`), its keys and values added to `cache`.
///
/// # Errors
/// A full cache, a cache or server of another decoder, missing keys, or an error of the
/// circuit (the cache is then unchanged).
pub fn step(
    dec: &Decoder,
    server: &ServerContext,
    cache: &mut KvCache<Ciphertext>,
    token: Ciphertext,
    opts: &RunOptions<'_>,
) -> Result<(Vec<Ciphertext>, Report)> {
    he_step(dec, server, cache, token, opts, true)
}

/// The prompt: one step per token, the LM head only at the last; returns the last token's
/// logit ciphertexts and every step's report.
///
/// # Errors
/// No tokens, or as [`step`] (tokens before the failing one stay in the cache).
pub fn prefill(
    dec: &Decoder,
    server: &ServerContext,
    cache: &mut KvCache<Ciphertext>,
    tokens: Vec<Ciphertext>,
    opts: &RunOptions<'_>,
) -> Result<(Vec<Ciphertext>, Vec<Report>)> {
    let n = tokens.len();
    if n == 0 {
        return Err(InferError::shape("prompt tokens", "at least 1", 0));
    }
    let mut reports = Vec::with_capacity(n);
    let mut logits = Vec::new();
    for (i, t) in tokens.into_iter().enumerate() {
        let (out, report) = he_step(dec, server, cache, t, opts, i + 1 == n)?;
        reports.push(report);
        logits = out;
    }
    Ok((logits, reports))
}
