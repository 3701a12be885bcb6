//! The token-interleaved layout (DESIGN.md §4): slot `f * n + t` holds feature `f` of token `t`,
//! so a ciphertext of `S` slots holds `S / n` features of `n` tokens (2^15 slots, 64 tokens:
//! 512 features). A weight matrix acts on features, identically on every token: on one
//! ciphertext its diagonals are over features, with rotations by multiples of `n`; a wider
//! matrix is a [`BlockTransform`] over feature blocks of `S / n`.

use super::{BlockTransform, LinearTransform, Strategy};
use crate::{CircuitError, Result};

/// The token-interleaved layout of `tokens` tokens in ciphertexts of `slots` slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interleaved {
    tokens: usize,
    slots: usize,
}

impl Interleaved {
    /// `tokens` tokens per ciphertext of `slots` slots (`tokens` divides `slots`, both powers
    /// of two).
    ///
    /// # Errors
    /// Sizes that are not powers of two or `tokens > slots`.
    pub fn new(tokens: usize, slots: usize) -> Result<Self> {
        if !tokens.is_power_of_two() || !slots.is_power_of_two() || tokens > slots {
            return Err(CircuitError::Invalid(format!(
                "interleaving {tokens} tokens in {slots} slots"
            )));
        }
        Ok(Self { tokens, slots })
    }

    /// Tokens `n`.
    pub fn tokens(&self) -> usize {
        self.tokens
    }

    /// Features per ciphertext (`slots / n`).
    pub fn features_per_ct(&self) -> usize {
        self.slots / self.tokens
    }

    /// Ciphertexts for `features` features.
    pub fn cts_for(&self, features: usize) -> usize {
        features.div_ceil(self.features_per_ct())
    }

    /// Packs `x[f][t]` (features x tokens) into slot vectors, `features_per_ct` features each.
    pub fn pack(&self, x: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let d = self.features_per_ct();
        x.chunks(d)
            .map(|chunk| {
                let mut v = vec![0.0; self.slots];
                for (f, row) in chunk.iter().enumerate() {
                    for (t, &val) in row.iter().take(self.tokens).enumerate() {
                        v[f * self.tokens + t] = val;
                    }
                }
                v
            })
            .collect()
    }

    /// Unpacks slot vectors into `features x tokens`.
    pub fn unpack(&self, cts: &[Vec<f64>], features: usize) -> Vec<Vec<f64>> {
        let d = self.features_per_ct();
        (0..features)
            .map(|f| {
                let v = &cts[f / d];
                (0..self.tokens)
                    .map(|t| v[(f % d) * self.tokens + t])
                    .collect()
            })
            .collect()
    }

    /// The `d x d` block `w[row0 .., col0 ..]` (zero-padded to `d = features_per_ct`) as a
    /// transform of one ciphertext: the diagonal `k` (rotation `k n`) holds
    /// `w[g][(g + k) mod d]` in slots `g n .. g n + n`. `None` if the block is zero.
    fn block(
        &self,
        w: &[Vec<f64>],
        row0: usize,
        col0: usize,
        s: Strategy,
    ) -> Result<Option<LinearTransform>> {
        let (d, n) = (self.features_per_ct(), self.tokens);
        let at = |g: usize, f: usize| {
            w.get(row0 + g)
                .and_then(|r| r.get(col0 + f))
                .copied()
                .unwrap_or(0.0)
        };
        LinearTransform::from_diagonal_fn(self.slots, d, n, |k, m| at(m / n, (m / n + k) % d), s)
    }

    /// The square `d x d` weight matrix (`d = features_per_ct`) on one ciphertext: `y[g][t] =
    /// sum_f w[g][f] x[f][t]` for every token.
    ///
    /// # Errors
    /// A matrix of the wrong size or all zero.
    pub fn transform(&self, w: &[Vec<f64>], strategy: Strategy) -> Result<LinearTransform> {
        let d = self.features_per_ct();
        if w.len() != d || w.iter().any(|r| r.len() != d) {
            return Err(CircuitError::Invalid(format!("weights must be {d} x {d}")));
        }
        self.block(w, 0, 0, strategy)?
            .ok_or_else(|| CircuitError::Invalid("zero weight matrix".into()))
    }

    /// A `d_out x d_in` weight matrix over `cts_for(d_in)` input and `cts_for(d_out)` output
    /// ciphertexts.
    ///
    /// # Errors
    /// A ragged matrix, or an all-zero block row.
    pub fn block_transform(&self, w: &[Vec<f64>]) -> Result<BlockTransform> {
        let d_in = w.first().map_or(0, Vec::len);
        if w.is_empty() || d_in == 0 || w.iter().any(|r| r.len() != d_in) {
            return Err(CircuitError::Invalid(
                "ragged or empty weight matrix".into(),
            ));
        }
        let d = self.features_per_ct();
        let blocks = (0..self.cts_for(w.len()))
            .map(|o| {
                (0..self.cts_for(d_in))
                    .map(|i| self.block(w, o * d, i * d, Strategy::Bsgs(None)))
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        BlockTransform::new(blocks)
    }
}
