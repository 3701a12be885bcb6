//! Perplexity on held-out text.

use serde::{Deserialize, Serialize};

use candle_core::Device;

use crate::data::TokenStream;
use crate::error::Result;
use crate::loss::cross_entropy;
use crate::model::Model;

/// Perplexity of a model on a token stream.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Perplexity {
    /// Mean next-token negative log-likelihood (nats).
    pub nll: f64,
    /// `exp(nll)`.
    pub ppl: f64,
    /// Number of predicted tokens.
    pub tokens: usize,
}

/// Perplexity over consecutive non-overlapping windows of `seq_len` tokens (each window's
/// first token has no context, as in nanoGPT-style evaluation), `batch` windows at a time, at
/// most `max_windows` windows when given.
pub fn perplexity(
    model: &Model,
    stream: &TokenStream,
    seq_len: usize,
    batch: usize,
    max_windows: Option<usize>,
    dev: &Device,
) -> Result<Perplexity> {
    let mut sum = 0f64;
    let mut tokens = 0usize;
    for (x, y) in stream.eval_batches(batch, seq_len, max_windows, dev)? {
        let logits = model.forward(&x, None)?; // (B, T, V)
        let v = logits.dim(2)?;
        let n = y.elem_count();
        let mean = cross_entropy(&logits.reshape((n, v))?, &y.flatten_all()?)?;
        sum += mean.to_scalar::<f32>()? as f64 * n as f64;
        tokens += n;
    }
    let nll = sum / tokens.max(1) as f64;
    Ok(Perplexity {
        nll,
        ppl: nll.exp(),
        tokens,
    })
}

/// Perplexity of `model` on raw `text`, tokenized with `tokenizer` (e.g. a checkpoint's
/// `tokenizer.json`); see [`perplexity`] for the windowing.
pub fn perplexity_of_text(
    model: &Model,
    tokenizer: &tokenizers::Tokenizer,
    text: &str,
    seq_len: usize,
    batch: usize,
    max_windows: Option<usize>,
    dev: &Device,
) -> Result<Perplexity> {
    let stream = TokenStream::new(crate::data::tokenizer::encode(tokenizer, text)?);
    perplexity(model, &stream, seq_len, batch, max_windows, dev)
}
