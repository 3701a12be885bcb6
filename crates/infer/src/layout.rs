//! The token-interleaved packing (DESIGN.md §4), with a batch of prompts in the token axis.
//!
//! Token `t = b * seq_len + pos` (prompt `b`, position `pos`) of `n = tokens()` token slots
//! (a power of two); slot `f * n + t` of a ciphertext holds feature `f` of token `t`, so a
//! ciphertext of `S` slots holds `S / n` features, and `d` features take `ceil(d / (S / n))`
//! ciphertexts. Token slots past `batch * seq_len` are padding (kept bounded by the circuit,
//! never read as keys by a real query).

use psf_circuits::linear::Interleaved;
use serde::{Deserialize, Serialize};

use crate::{InferError, Result};

/// Where prompts and features sit in the slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// Positions per prompt.
    pub seq_len: usize,
    /// Prompts packed side by side.
    pub batch: usize,
    /// Slots per ciphertext.
    pub slots: usize,
}

impl Layout {
    /// A layout of `batch` prompts of `seq_len` positions in ciphertexts of `slots` slots.
    ///
    /// # Errors
    /// Zero sizes, a slot count that is not a power of two, or more tokens than slots.
    pub fn new(seq_len: usize, batch: usize, slots: usize) -> Result<Self> {
        let l = Self {
            seq_len,
            batch,
            slots,
        };
        if seq_len == 0 || batch == 0 || !slots.is_power_of_two() || l.tokens() > slots {
            return Err(InferError::Unsupported(format!(
                "{batch} prompts x {seq_len} positions in {slots} slots"
            )));
        }
        Ok(l)
    }

    /// Token slots `n` (the next power of two of `batch * seq_len`).
    pub fn tokens(&self) -> usize {
        (self.batch * self.seq_len).next_power_of_two()
    }

    /// Real (non-padding) tokens.
    pub fn real_tokens(&self) -> usize {
        self.batch * self.seq_len
    }

    /// Features per ciphertext (`slots / n`).
    pub fn features_per_ct(&self) -> usize {
        self.slots / self.tokens()
    }

    /// Ciphertexts for `features` features.
    pub fn cts_for(&self, features: usize) -> usize {
        features.div_ceil(self.features_per_ct())
    }

    /// The circuits crate's view of the same packing.
    pub fn interleaved(&self) -> Interleaved {
        Interleaved::new(self.tokens(), self.slots).expect("checked by Layout::new")
    }

    /// Position of token slot `t` in its prompt, `None` for padding.
    pub fn position(&self, t: usize) -> Option<usize> {
        (t < self.real_tokens()).then_some(t % self.seq_len)
    }

    /// Token slot of prompt `b` at position `pos`.
    pub fn token(&self, b: usize, pos: usize) -> usize {
        b * self.seq_len + pos
    }

    /// Feature `f` and token `t` of slot `m` of ciphertext `ct`.
    pub fn locate(&self, ct: usize, m: usize) -> (usize, usize) {
        let n = self.tokens();
        (ct * self.features_per_ct() + m / n, m % n)
    }

    /// Packs `x[b][pos][f]` (prompts x positions x features) into slot vectors.
    ///
    /// # Errors
    /// A wrong number of prompts, positions or features.
    pub fn pack(&self, x: &[Vec<Vec<f64>>], features: usize) -> Result<Vec<Vec<f64>>> {
        if x.len() != self.batch {
            return Err(InferError::shape("prompts", self.batch, x.len()));
        }
        let n = self.tokens();
        let mut out = vec![vec![0.0; self.slots]; self.cts_for(features)];
        let d = self.features_per_ct();
        for (b, prompt) in x.iter().enumerate() {
            if prompt.len() != self.seq_len {
                return Err(InferError::shape("positions", self.seq_len, prompt.len()));
            }
            for (pos, row) in prompt.iter().enumerate() {
                if row.len() != features {
                    return Err(InferError::shape("features", features, row.len()));
                }
                let t = self.token(b, pos);
                for (f, &v) in row.iter().enumerate() {
                    out[f / d][(f % d) * n + t] = v;
                }
            }
        }
        Ok(out)
    }

    /// Reads `features` features of prompt `b` at position `pos` from slot vectors.
    ///
    /// # Errors
    /// Too few slot vectors, or a prompt/position out of range.
    pub fn unpack_token(
        &self,
        cts: &[Vec<f64>],
        features: usize,
        b: usize,
        pos: usize,
    ) -> Result<Vec<f64>> {
        if b >= self.batch || pos >= self.seq_len {
            return Err(InferError::shape(
                "token",
                format!("< ({}, {})", self.batch, self.seq_len),
                format!("({b}, {pos})"),
            ));
        }
        if cts.len() < self.cts_for(features) || cts.iter().any(|c| c.len() < self.slots) {
            return Err(InferError::shape(
                "ciphertexts",
                self.cts_for(features),
                cts.len(),
            ));
        }
        let (n, d, t) = (self.tokens(), self.features_per_ct(), self.token(b, pos));
        Ok((0..features).map(|f| cts[f / d][(f % d) * n + t]).collect())
    }

    /// A slot vector with `value(f_local, t)` in slot `f_local * n + t` (features local to one
    /// ciphertext).
    pub fn slot_vector(&self, value: impl Fn(usize, usize) -> f64) -> Vec<f64> {
        let n = self.tokens();
        (0..self.slots).map(|m| value(m / n, m % n)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_then_unpack_round_trips() {
        let l = Layout::new(3, 5, 256).unwrap();
        assert_eq!(
            (l.tokens(), l.features_per_ct(), l.cts_for(40)),
            (16, 16, 3)
        );
        let x: Vec<Vec<Vec<f64>>> = (0..5)
            .map(|b| {
                (0..3)
                    .map(|p| (0..40).map(|f| (b * 1000 + p * 100 + f) as f64).collect())
                    .collect()
            })
            .collect();
        let cts = l.pack(&x, 40).unwrap();
        for b in 0..5 {
            for p in 0..3 {
                assert_eq!(l.unpack_token(&cts, 40, b, p).unwrap(), x[b][p]);
            }
        }
        assert_eq!(l.position(14), Some(2));
        assert_eq!(l.position(15), None);
        assert!(l.pack(&x[..4], 40).is_err());
        assert!(Layout::new(64, 8, 256).is_err());
    }
}
