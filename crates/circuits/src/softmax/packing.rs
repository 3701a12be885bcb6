//! Diagonal packing of causal attention scores (`heads` x `tokens` x `tokens`).
//!
//! Generalized diagonal `d` of head `h` holds `s_h[t, (t - d) mod L]` for every query `t`; it
//! is causal-visible iff `t >= d` (key `j = t - d`). One diagonal of all heads takes
//! `H L` slots (slot `h L + t`); a ciphertext of `S` slots holds `g = S / (H L)` consecutive
//! diagonals (chunk `k` of ciphertext `c` is diagonal `c g + k`), so `L / g` ciphertexts hold
//! everything. Every slot of every ciphertext then belongs to query `(h, t) = slot mod H L`:
//! the row sums over keys are plain additions of the ciphertexts followed by `log2 g`
//! rotations by multiples of `H L` (after which every chunk holds the sums), and the
//! per-row reciprocal multiplies every ciphertext slot-wise, with no further rotation.

use crate::{CircuitError, Result};

/// The shape of one attention layer's scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionShape {
    /// Attention heads `H`.
    pub heads: usize,
    /// Tokens `L` (queries and keys; causal).
    pub tokens: usize,
}

/// The diagonal packing of an [`AttentionShape`] into ciphertexts of `slots` slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiagonalPacking {
    /// The shape.
    pub shape: AttentionShape,
    /// Slots per ciphertext.
    pub slots: usize,
}

impl DiagonalPacking {
    /// Checks that `H L` is a power of two that divides `slots` and that `g = slots / (H L)`
    /// divides `L` (every slot used, no partial ciphertext).
    pub fn new(shape: AttentionShape, slots: usize) -> Result<Self> {
        let hl = shape.heads * shape.tokens;
        let ok = hl > 0
            && hl.is_power_of_two()
            && slots.is_power_of_two()
            && hl <= slots
            && shape.tokens.is_multiple_of(slots / hl);
        if !ok {
            return Err(CircuitError::Invalid(format!(
                "diagonal packing of {} heads x {} tokens into {slots} slots needs H L a power \
                 of two <= slots and slots / (H L) dividing L",
                shape.heads, shape.tokens
            )));
        }
        Ok(Self { shape, slots })
    }

    /// Slots of one diagonal (all heads): `H L`.
    pub fn diagonal_slots(&self) -> usize {
        self.shape.heads * self.shape.tokens
    }

    /// Diagonals per ciphertext `g`.
    pub fn diagonals_per_ct(&self) -> usize {
        self.slots / self.diagonal_slots()
    }

    /// Number of ciphertexts `L / g`.
    pub fn ciphertexts(&self) -> usize {
        self.shape.tokens / self.diagonals_per_ct()
    }

    /// The rotations of the row-sum step: `H L 2^i` for `i < log2 g`.
    pub fn rotations(&self) -> Vec<i64> {
        let g = self.diagonals_per_ct();
        (0..g.trailing_zeros())
            .map(|i| (self.diagonal_slots() << i) as i64)
            .collect()
    }

    /// `(head, query t, key j, visible)` of `slot` of ciphertext `c`.
    pub fn locate(&self, c: usize, slot: usize) -> (usize, usize, usize, bool) {
        let (hl, l) = (self.diagonal_slots(), self.shape.tokens);
        let d = c * self.diagonals_per_ct() + slot / hl;
        let (h, t) = ((slot % hl) / l, slot % l);
        (h, t, (t + l - d) % l, t >= d)
    }

    /// Packs `scores[h][t][j]` (only `j <= t` is read; masked slots get `fill`).
    pub fn pack(&self, scores: &[Vec<Vec<f64>>], fill: f64) -> Vec<Vec<f64>> {
        (0..self.ciphertexts())
            .map(|c| {
                (0..self.slots)
                    .map(|s| match self.locate(c, s) {
                        (h, t, j, true) => scores[h][t][j],
                        _ => fill,
                    })
                    .collect()
            })
            .collect()
    }

    /// Unpacks slot vectors into `w[h][t][j]` for `j <= t` (rows of `t + 1` entries).
    pub fn unpack(&self, cts: &[Vec<f64>]) -> Vec<Vec<Vec<f64>>> {
        let l = self.shape.tokens;
        let mut w: Vec<Vec<Vec<f64>>> = (0..self.shape.heads)
            .map(|_| (0..l).map(|t| vec![0.0; t + 1]).collect())
            .collect();
        for (c, v) in cts.iter().enumerate() {
            for (s, &x) in v.iter().enumerate().take(self.slots) {
                if let (h, t, j, true) = self.locate(c, s) {
                    w[h][t][j] = x;
                }
            }
        }
        w
    }

    /// The plaintext multiplying ciphertext `c`: `weight(t)` on visible slots, 0 elsewhere.
    pub fn mask(&self, c: usize, weight: impl Fn(usize) -> f64) -> Vec<f64> {
        (0..self.slots)
            .map(|s| match self.locate(c, s) {
                (_, t, _, true) => weight(t),
                _ => 0.0,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_visible_score_lands_once_and_round_trips() {
        let shape = AttentionShape {
            heads: 2,
            tokens: 8,
        };
        let p = DiagonalPacking::new(shape, 64).unwrap();
        assert_eq!((p.diagonals_per_ct(), p.ciphertexts()), (4, 2));
        assert_eq!(p.rotations(), vec![16, 32]);
        let scores: Vec<Vec<Vec<f64>>> = (0..2)
            .map(|h| {
                (0..8)
                    .map(|t| (0..8).map(|j| (100 * h + 10 * t + j) as f64).collect())
                    .collect()
            })
            .collect();
        let packed = p.pack(&scores, -1.0);
        let visible = packed.iter().flatten().filter(|&&x| x >= 0.0).count();
        assert_eq!(visible, 2 * 8 * 9 / 2);
        let back = p.unpack(&packed);
        for h in 0..2 {
            for t in 0..8 {
                for j in 0..=t {
                    assert_eq!(back[h][t][j], scores[h][t][j]);
                }
            }
        }
        assert!(DiagonalPacking::new(shape, 8).is_err());
        assert!(
            DiagonalPacking::new(
                AttentionShape {
                    heads: 3,
                    tokens: 8
                },
                64
            )
            .is_err()
        );
    }
}
