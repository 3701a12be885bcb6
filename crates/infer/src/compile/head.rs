//! The LM head on the requested positions only.
//!
//! On every position the head is a token-interleaved linear map: `ceil(vocab / F)` output
//! ciphertexts (`F` features per ciphertext), each costing up to `F` diagonals per input
//! ciphertext, and each weight is repeated over all `n` token slots. For the last position of
//! each prompt (the next-token prediction) the head instead
//! 1. masks the position's token slot `t` (one level) and spreads it over the `n` token slots
//!    of its feature row with a rotate-and-sum of stride 1 (`log2 n` rotations): slot
//!    `(f, t')` then holds feature `f` of token `t` for `t' <= t` and feature `f + 1` (cyclic
//!    within the ciphertext) for `t' > t`;
//! 2. applies a map whose output slot `(g, t') = g n + t'` of output ciphertext `o` is logit
//!    `v = o S + g n + t'` (`S` slots): diagonal `k` holds `W[v][sigma_t'((g + k) mod F)]`,
//!    the permutation of step 1 folded into the weights. All `S` slots carry distinct logits,
//!    so a prompt needs `ceil(vocab / S)` output ciphertexts (2 for a 50k vocabulary at
//!    `S = 2^15`, against 197 for every position).

use psf_circuits::linear::{BlockTransform, LinearTransform, Strategy};
use serde::{Deserialize, Serialize};

use super::weights::Folded;
use crate::layout::Layout;
use crate::{InferError, Result};

/// Which positions' logits the forward pass computes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadPositions {
    /// Every position, token-interleaved like the hidden states.
    #[default]
    All,
    /// The last position of each prompt, the logits packed densely (module docs).
    Last,
}

impl HeadPositions {
    /// Logit ciphertexts of a forward pass.
    pub fn output_cts(self, layout: &Layout, vocab: usize) -> usize {
        match self {
            Self::All => layout.cts_for(vocab),
            Self::Last => layout.batch * vocab.div_ceil(layout.slots),
        }
    }

    /// The logits of prompt `b` at position `pos` from the decrypted slot vectors. A
    /// last-position head holds one position per prompt: `pos` must be the one the forward
    /// pass was asked for (`RunOptions::positions`, by default `seq_len - 1`).
    ///
    /// # Errors
    /// Too few slot vectors, or a prompt or position outside the layout.
    pub fn logits(
        self,
        layout: &Layout,
        vocab: usize,
        slots: &[Vec<f64>],
        b: usize,
        pos: usize,
    ) -> Result<Vec<f64>> {
        match self {
            Self::All => layout.unpack_token(slots, vocab, b, pos),
            Self::Last => {
                if b >= layout.batch || pos >= layout.seq_len {
                    return Err(InferError::shape(
                        "position (last-position head)",
                        format!("(< {}, < {})", layout.batch, layout.seq_len),
                        format!("({b}, {pos})"),
                    ));
                }
                let per = vocab.div_ceil(layout.slots);
                let cts = slots.get(b * per..(b + 1) * per).ok_or_else(|| {
                    InferError::shape("logit ciphertexts", (b + 1) * per, slots.len())
                })?;
                let s = layout.slots;
                (0..vocab)
                    .map(|v| {
                        cts[v / s]
                            .get(v % s)
                            .copied()
                            .ok_or_else(|| InferError::shape("slots", s, cts[v / s].len()))
                    })
                    .collect()
            }
        }
    }
}

/// The head map of token slot `t` after the spreading of the module docs, and its bias as
/// one slot vector per output ciphertext.
///
/// # Errors
/// A head without non-zero weights.
pub(crate) fn last_position_head(
    lm: &Folded,
    layout: &Layout,
    t: usize,
) -> Result<(BlockTransform, Vec<Vec<f64>>)> {
    let (d, n, s) = (layout.features_per_ct(), layout.tokens(), layout.slots);
    let sigma = |f: usize, tp: usize| if tp <= t { f } else { (f + 1) % d };
    let outs = lm.rows.div_ceil(s);
    let blocks = (0..outs)
        .map(|o| {
            (0..layout.cts_for(lm.cols))
                .map(|i| {
                    let value = |k: usize, m: usize| {
                        let (row, f) = (o * s + m, i * d + sigma((m / n + k) % d, m % n));
                        if row < lm.rows && f < lm.cols {
                            lm.weight(row, f, 0)
                        } else {
                            0.0
                        }
                    };
                    Ok(LinearTransform::from_diagonal_fn(
                        s,
                        d,
                        n,
                        value,
                        Strategy::Bsgs(None),
                    )?)
                })
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<Vec<_>>>()?;
    let bias = (0..outs)
        .map(|o| {
            (0..s)
                .map(|m| {
                    let row = o * s + m;
                    if row < lm.rows { lm.bias(row, 0) } else { 0.0 }
                })
                .collect()
        })
        .collect();
    Ok((BlockTransform::new(blocks)?, bias))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Linear;

    /// The spread token, then the head map, equals the plain product for the token.
    #[test]
    fn spread_token_times_head_is_the_tokens_logits() {
        let layout = Layout::new(3, 2, 64).unwrap(); // 8 token slots, 8 features per ct
        let (rows, cols) = (100, 12);
        let w: Vec<f64> = (0..rows * cols)
            .map(|i| ((i * 37) % 13) as f64 - 6.0)
            .collect();
        let bias: Vec<f64> = (0..rows).map(|r| r as f64 * 0.5).collect();
        let lm = Folded::plain(&Linear::new(rows, cols, w, Some(bias)).unwrap());
        let x: Vec<Vec<Vec<f64>>> = (0..2)
            .map(|b| {
                (0..3)
                    .map(|p| {
                        (0..cols)
                            .map(|f| (b * 7 + p * 3 + f) as f64 * 0.1)
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let packed = layout.pack(&x, cols).unwrap();
        let head = HeadPositions::Last;
        let mut slots = Vec::new();
        for b in 0..2 {
            let t = layout.token(b, 2);
            let n = layout.tokens();
            // mask token t, then slot m gets sum_{k < n} a[m + k] (cyclic)
            let spread: Vec<Vec<f64>> = packed
                .iter()
                .map(|c| {
                    let masked: Vec<f64> = (0..c.len())
                        .map(|m| if m % n == t { c[m] } else { 0.0 })
                        .collect();
                    (0..c.len())
                        .map(|m| (0..n).map(|k| masked[(m + k) % c.len()]).sum())
                        .collect()
                })
                .collect();
            let (map, bias) = last_position_head(&lm, &layout, t).unwrap();
            let mut y = map.apply_f64(&spread);
            for (yo, bo) in y.iter_mut().zip(bias) {
                yo.iter_mut().zip(bo).for_each(|(a, b)| *a += b);
            }
            slots.extend(y);
        }
        assert_eq!(slots.len(), head.output_cts(&layout, rows));
        for b in 0..2 {
            let want = lm.apply_f64(&x[b][2], 2);
            let have = head.logits(&layout, rows, &slots, b, 2).unwrap();
            for (a, h) in want.iter().zip(&have) {
                assert!((a - h).abs() < 1e-9, "{a} vs {h}");
            }
        }
        assert!(head.logits(&layout, rows, &slots, 0, 3).is_err());
        assert!(head.logits(&layout, rows, &slots, 2, 2).is_err());
    }
}
