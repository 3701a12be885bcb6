//! Packings of causal attention scores (`heads` x `tokens` x `tokens`): [`DiagonalPacking`]
//! (ours: the row sums are additions across ciphertexts, one reciprocal serves all of them)
//! and [`RowPacking`] (NEXUS's: whole rows per ciphertext, a reciprocal per ciphertext), both
//! behind [`ScorePacking`], which packs, unpacks and masks from what each packing says every
//! slot holds ([`Slot`]).
//!
//! **Diagonal packing.**
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

    /// What slot `slot` of ciphertext `c` holds: a visible score, or a masked one.
    pub fn slot(&self, c: usize, slot: usize) -> Slot {
        match self.locate(c, slot) {
            (h, t, j, true) => Slot::Score { h, t, j },
            _ => Slot::Masked,
        }
    }
}

/// NEXUS's row packing: row `(h, t)` of `L` keys takes `2L` slots, the row and then a copy
/// (`x + rot(x, -L)` in the circuit), so that a rotate-and-sum of strides `1, 2, ..., L/2`
/// leaves the row's sum in each of its first `L` slots; a ciphertext of `S` slots holds
/// `S / 2L` rows (row `r = h L + t` in ciphertext `r / (S / 2L)`), so `2 H L^2 / S`
/// ciphertexts hold everything, each with its own denominators. A window that starts in a
/// copy half spans two rows (the copy's tail and the next row's head): its sum lies within
/// twice the row-sum interval and is never read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowPacking {
    /// The shape.
    pub shape: AttentionShape,
    /// Slots per ciphertext.
    pub slots: usize,
}

impl RowPacking {
    /// Checks that `L` is a power of two with `2L <= slots` and that the rows fill whole
    /// ciphertexts.
    pub fn new(shape: AttentionShape, slots: usize) -> Result<Self> {
        let l = shape.tokens;
        let ok = l > 0
            && l.is_power_of_two()
            && slots.is_power_of_two()
            && 2 * l <= slots
            && (shape.heads * l).is_multiple_of(slots / (2 * l));
        if !ok {
            return Err(CircuitError::Invalid(format!(
                "row packing of {} heads x {l} tokens into {slots} slots needs L a power of \
                 two, 2 L <= slots and whole ciphertexts of rows",
                shape.heads
            )));
        }
        Ok(Self { shape, slots })
    }

    /// Rows per ciphertext `S / 2L`.
    pub fn rows_per_ct(&self) -> usize {
        self.slots / (2 * self.shape.tokens)
    }

    /// Number of ciphertexts `H L / (S / 2L)`.
    pub fn ciphertexts(&self) -> usize {
        self.shape.heads * self.shape.tokens / self.rows_per_ct()
    }

    /// The row sums' rotations: `1, 2, ..., L/2`.
    pub fn rotations(&self) -> Vec<i64> {
        (0..self.shape.tokens.trailing_zeros())
            .map(|i| 1i64 << i)
            .collect()
    }

    /// The rotation that duplicates each row into its copy half.
    pub fn copy_rotation(&self) -> i64 {
        -(self.shape.tokens as i64)
    }

    /// `(head, query t, key j, visible, in the row's first half)` of `slot` of ciphertext `c`.
    pub fn locate(&self, c: usize, slot: usize) -> (usize, usize, usize, bool, bool) {
        let l = self.shape.tokens;
        let r = c * self.rows_per_ct() + slot / (2 * l);
        let (h, t, k) = (r / l, r % l, slot % (2 * l));
        let j = k % l;
        (h, t, j, j <= t, k < l)
    }

    /// What slot `slot` of ciphertext `c` holds: a visible score of a row's first half, a
    /// slot of its copy half (the circuit fills it), or a masked score.
    pub fn slot(&self, c: usize, slot: usize) -> Slot {
        match self.locate(c, slot) {
            (h, t, j, true, true) => Slot::Score { h, t, j },
            (_, t, _, visible, false) => Slot::Copy { t, visible },
            _ => Slot::Masked,
        }
    }
}

/// What one slot of a packed ciphertext holds; packing, unpacking, the masks and the slots
/// read follow from it ([`ScorePacking`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The visible score `s_h[t, j]` (`j <= t`): packed, masked with query `t`'s weight, read.
    Score {
        /// Head.
        h: usize,
        /// Query.
        t: usize,
        /// Key.
        j: usize,
    },
    /// A row's copy half (row packing): packed as 0 (the circuit adds the row into it),
    /// masked with query `t`'s weight where the copied key is visible, never read.
    Copy {
        /// Query.
        t: usize,
        /// Whether the copied key is visible.
        visible: bool,
    },
    /// A masked (non-causal) score: packed as the fill value, masked to 0, never read.
    Masked,
}

/// Where the scores sit: the packing a softmax circuit runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScorePacking {
    /// Ours: diagonals, one reciprocal for every ciphertext.
    Diagonal(DiagonalPacking),
    /// NEXUS's: rows, a reciprocal per ciphertext.
    Rows(RowPacking),
}

impl ScorePacking {
    /// The shape.
    pub fn shape(&self) -> AttentionShape {
        match self {
            Self::Diagonal(p) => p.shape,
            Self::Rows(p) => p.shape,
        }
    }

    /// Slots per ciphertext.
    pub fn slots(&self) -> usize {
        match self {
            Self::Diagonal(p) => p.slots,
            Self::Rows(p) => p.slots,
        }
    }

    /// Number of ciphertexts.
    pub fn ciphertexts(&self) -> usize {
        match self {
            Self::Diagonal(p) => p.ciphertexts(),
            Self::Rows(p) => p.ciphertexts(),
        }
    }

    /// Every rotation the circuit uses.
    pub fn rotations(&self) -> Vec<i64> {
        match self {
            Self::Diagonal(p) => p.rotations(),
            Self::Rows(p) => {
                let mut r = p.rotations();
                r.push(p.copy_rotation());
                r
            }
        }
    }

    /// What slot `slot` of ciphertext `c` holds.
    pub fn slot(&self, c: usize, slot: usize) -> Slot {
        match self {
            Self::Diagonal(p) => p.slot(c, slot),
            Self::Rows(p) => p.slot(c, slot),
        }
    }

    /// Packs `scores[h][t][j]` (only `j <= t` is read; masked slots get `fill`, copy halves 0).
    pub fn pack(&self, scores: &[Vec<Vec<f64>>], fill: f64) -> Vec<Vec<f64>> {
        (0..self.ciphertexts())
            .map(|c| {
                (0..self.slots())
                    .map(|s| match self.slot(c, s) {
                        Slot::Score { h, t, j } => scores[h][t][j],
                        Slot::Copy { .. } => 0.0,
                        Slot::Masked => fill,
                    })
                    .collect()
            })
            .collect()
    }

    /// Unpacks slot vectors into `w[h][t][j]` for `j <= t` (rows of `t + 1` entries).
    pub fn unpack(&self, cts: &[Vec<f64>]) -> Vec<Vec<Vec<f64>>> {
        let (l, heads) = (self.shape().tokens, self.shape().heads);
        let mut w: Vec<Vec<Vec<f64>>> = (0..heads)
            .map(|_| (0..l).map(|t| vec![0.0; t + 1]).collect())
            .collect();
        for (c, v) in cts.iter().enumerate() {
            for (s, &x) in v.iter().enumerate().take(self.slots()) {
                if let Slot::Score { h, t, j } = self.slot(c, s) {
                    w[h][t][j] = x;
                }
            }
        }
        w
    }

    /// The plaintext multiplying ciphertext `c` (after the copy, for rows): `weight(t)` on
    /// visible slots, 0 elsewhere.
    pub fn mask(&self, c: usize, weight: impl Fn(usize) -> f64) -> Vec<f64> {
        (0..self.slots())
            .map(|s| match self.slot(c, s) {
                Slot::Score { t, .. } | Slot::Copy { t, visible: true } => weight(t),
                _ => 0.0,
            })
            .collect()
    }

    /// Whether slot `slot` of ciphertext `c` holds a weight that [`Self::unpack`] reads (a
    /// visible score; for rows, in the row's first half).
    pub fn is_read(&self, c: usize, slot: usize) -> bool {
        matches!(self.slot(c, slot), Slot::Score { .. })
    }

    /// A short name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Diagonal(_) => "diagonal",
            Self::Rows(_) => "rows (NEXUS)",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_sum_within_their_first_halves() {
        let shape = AttentionShape {
            heads: 2,
            tokens: 8,
        };
        let p = RowPacking::new(shape, 64).unwrap();
        let sp = ScorePacking::Rows(p);
        assert_eq!((p.rows_per_ct(), p.ciphertexts()), (4, 4));
        assert_eq!(p.rotations(), vec![1, 2, 4]);
        let scores: Vec<Vec<Vec<f64>>> = (0..2)
            .map(|h| {
                (0..8)
                    .map(|t| (0..8).map(|j| (1 + 100 * h + 10 * t + j) as f64).collect())
                    .collect()
            })
            .collect();
        let packed = sp.pack(&scores, 0.0);
        let back = sp.unpack(&packed);
        for h in 0..2 {
            for t in 0..8 {
                for j in 0..=t {
                    assert_eq!(back[h][t][j], scores[h][t][j]);
                }
            }
        }
        // x + rot(x, -L), then the rotate-and-sum: every first-half slot holds its row's sum.
        for (c, x) in packed.iter().enumerate() {
            let n = x.len();
            let dup: Vec<f64> = (0..n).map(|s| x[s] + x[(s + n - 8) % n]).collect();
            let mut sum = dup.clone();
            for k in p.rotations() {
                let k = k as usize;
                sum = (0..n).map(|s| sum[s] + sum[(s + k) % n]).collect();
            }
            for (s, &v) in sum.iter().enumerate() {
                if let (h, t, _, _, true) = p.locate(c, s) {
                    let want: f64 = scores[h][t][..=t].iter().sum();
                    assert_eq!(v, want, "slot {s}");
                }
            }
        }
        assert!(RowPacking::new(shape, 8).is_err());
    }

    #[test]
    fn every_visible_score_lands_once_and_round_trips() {
        let shape = AttentionShape {
            heads: 2,
            tokens: 8,
        };
        let p = DiagonalPacking::new(shape, 64).unwrap();
        let sp = ScorePacking::Diagonal(p);
        assert_eq!((p.diagonals_per_ct(), p.ciphertexts()), (4, 2));
        assert_eq!(p.rotations(), vec![16, 32]);
        let scores: Vec<Vec<Vec<f64>>> = (0..2)
            .map(|h| {
                (0..8)
                    .map(|t| (0..8).map(|j| (100 * h + 10 * t + j) as f64).collect())
                    .collect()
            })
            .collect();
        let packed = sp.pack(&scores, -1.0);
        let visible = packed.iter().flatten().filter(|&&x| x >= 0.0).count();
        assert_eq!(visible, 2 * 8 * 9 / 2);
        let back = sp.unpack(&packed);
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
