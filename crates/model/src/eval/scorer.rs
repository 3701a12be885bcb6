//! Log-likelihood of a continuation given a context, for any causal language model.
//!
//! [`CausalLm`] is the one thing an evaluation needs from a model: the next-token logits at
//! every position of a token sequence. It is implemented here for the candle [`Model`]
//! ([`CandleLm`]); `psf-poly`'s f64 polynomial model implements it too, so the same
//! multiple-choice and in-context-learning code scores both.

use candle_core::{D, Device, Tensor};

use crate::error::{Error, Result};
use crate::model::Model;

/// A causal language model seen as a function from token ids to next-token logits.
pub trait CausalLm {
    /// The implementor's error type; it must absorb this crate's errors.
    type Error: From<Error>;

    /// The longest token sequence [`CausalLm::logits`] accepts.
    fn max_len(&self) -> usize;

    /// Next-token logits for one sequence: `ids.len()` rows, row `t` scoring the token that
    /// follows `ids[..=t]`. Every row has the same length (the vocabulary size).
    fn logits(&self, ids: &[u32]) -> std::result::Result<Vec<Vec<f32>>, Self::Error>;
}

/// A psf-model [`Model`] on a candle device, as a [`CausalLm`].
#[derive(Debug, Clone)]
pub struct CandleLm<'a> {
    model: &'a Model,
    max_len: usize,
    device: Device,
}

impl<'a> CandleLm<'a> {
    /// Wraps `model`, whose context is `max_len` tokens (its `max_position_embeddings`).
    pub fn new(model: &'a Model, max_len: usize, device: &Device) -> Self {
        CandleLm {
            model,
            max_len,
            device: device.clone(),
        }
    }

    /// The wrapped model.
    pub fn model(&self) -> &Model {
        self.model
    }

    /// The device inputs are placed on.
    pub fn device(&self) -> &Device {
        &self.device
    }
}

impl CausalLm for CandleLm<'_> {
    type Error = Error;

    fn max_len(&self) -> usize {
        self.max_len
    }

    fn logits(&self, ids: &[u32]) -> Result<Vec<Vec<f32>>> {
        check_len(ids.len(), self.max_len)?;
        let x = Tensor::from_slice(ids, (1, ids.len()), &self.device)?;
        let logits = self.model.forward(&x, None)?.squeeze(0)?; // (T, V)
        Ok(logits.to_vec2::<f32>()?)
    }
}

fn check_len(n: usize, max: usize) -> Result<()> {
    if n == 0 || n > max {
        return Err(Error::EvalInput {
            what: format!("sequence of {n} tokens; the model takes 1..={max}"),
        });
    }
    Ok(())
}

/// The log-likelihood of a continuation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogLikelihood {
    /// `sum_t log p(continuation_t | context, continuation_<t)` in nats.
    pub sum: f64,
    /// Tokens in the continuation.
    pub tokens: usize,
    /// Whether greedy decoding would have produced the whole continuation.
    pub greedy: bool,
}

/// `log p(continuation | context)` under `lm`. When the two do not fit into `lm.max_len()`
/// tokens, the context is cut from the left (as lm-evaluation-harness does); an empty
/// context or a continuation that alone fills the window is an error.
pub fn log_likelihood<M: CausalLm>(
    lm: &M,
    context: &[u32],
    continuation: &[u32],
) -> std::result::Result<LogLikelihood, M::Error> {
    let max = lm.max_len();
    if context.is_empty() || continuation.is_empty() || continuation.len() > max {
        return Err(Error::EvalInput {
            what: format!(
                "context of {} and continuation of {} tokens (need >= 1 each, continuation <= {max})",
                context.len(),
                continuation.len()
            ),
        }
        .into());
    }
    let mut whole: Vec<u32> = context.iter().chain(continuation).copied().collect();
    if whole.len() > max + 1 {
        whole.drain(..whole.len() - (max + 1));
    }
    let input = &whole[..whole.len() - 1];
    let rows = lm.logits(input)?;
    let first = input.len() - continuation.len(); // row predicting continuation[0]
    let mut out = LogLikelihood {
        sum: 0.0,
        tokens: continuation.len(),
        greedy: true,
    };
    for (row, &target) in rows[first..].iter().zip(continuation) {
        let (lp, is_max) = log_prob(row, target).ok_or_else(|| Error::EvalInput {
            what: format!("token {target} outside a vocabulary of {}", row.len()),
        })?;
        out.sum += lp;
        out.greedy &= is_max;
    }
    Ok(out)
}

/// `(log softmax(row)[target], target is the arg-max)`, computed in f64; `None` when
/// `target` is out of range.
pub fn log_prob(row: &[f32], target: u32) -> Option<(f64, bool)> {
    let t = *row.get(target as usize)? as f64;
    let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let lse = max
        + row
            .iter()
            .map(|&x| (x as f64 - max).exp())
            .sum::<f64>()
            .ln();
    Some((t - lse, t >= max))
}

/// The arg-max of a logits row (first one on ties).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if x > row[best] {
            best = i;
        }
    }
    best
}

/// Next-token logits `(B, T, V)` for a batch of equal-length sequences with the candle model:
/// the last position of each, as rows. Used by the in-context-learning probes to score many
/// episodes per forward pass.
pub fn last_logits(lm: &CandleLm, batch: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
    let t = batch.first().map_or(0, Vec::len);
    if batch.iter().any(|s| s.len() != t) {
        return Err(Error::EvalInput {
            what: "sequences of a batch differ in length".into(),
        });
    }
    check_len(t, lm.max_len)?;
    let flat: Vec<u32> = batch.concat();
    let x = Tensor::from_vec(flat, (batch.len(), t), &lm.device)?;
    let logits = lm.model.forward(&x, None)?; // (B, T, V)
    Ok(logits.narrow(1, t - 1, 1)?.squeeze(D::Minus2)?.to_vec2()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bigram "model" with known probabilities: the next token is `prev + 1 (mod V)` with
    /// logit 2, every other token logit 0.
    struct Bigram {
        vocab: usize,
    }

    impl CausalLm for Bigram {
        type Error = Error;
        fn max_len(&self) -> usize {
            4
        }
        fn logits(&self, ids: &[u32]) -> Result<Vec<Vec<f32>>> {
            check_len(ids.len(), 4)?;
            Ok(ids
                .iter()
                .map(|&i| {
                    let mut row = vec![0f32; self.vocab];
                    row[(i as usize + 1) % self.vocab] = 2.0;
                    row
                })
                .collect())
        }
    }

    #[test]
    fn log_likelihood_sums_the_continuation_rows() {
        let lm = Bigram { vocab: 5 };
        let lse = (2f64.exp() + 4.0).ln();
        let ll = log_likelihood(&lm, &[1, 2], &[3, 4]).unwrap();
        assert!((ll.sum - 2.0 * (2.0 - lse)).abs() < 1e-9 && ll.greedy && ll.tokens == 2);
        let ll = log_likelihood(&lm, &[1, 2], &[3, 0]).unwrap();
        assert!((ll.sum - (2.0 - lse) - (0.0 - lse)).abs() < 1e-9 && !ll.greedy);
        // 6 tokens do not fit into 4 + 1: the context is cut from the left.
        let long = log_likelihood(&lm, &[9, 9, 9, 1, 2], &[3]).unwrap();
        assert!((long.sum - (2.0 - lse)).abs() < 1e-9);
        assert!(log_likelihood(&lm, &[], &[1]).is_err());
        assert!(log_likelihood(&lm, &[1], &[1, 2, 3, 4, 0]).is_err());
        assert!(log_likelihood(&lm, &[1], &[7]).is_err());
    }
}
