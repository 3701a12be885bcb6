//! Folded weight matrices on the step layout of decoding (see [`super::decode`]): one token's
//! features sit in consecutive slots, replicated across the ciphertext with a period `p`
//! (a power of two at least the width), so slot `m` holds feature `m mod p`.
//!
//! A map from inputs of period `p_in` to outputs of period `p_out` uses
//! `K = min(p_in, p_out)` generalized diagonals: diagonal `k` holds `W[g][f]` in slot `m`,
//! with output row `g = m mod p_out` and input column `f = (m + k) mod p_in`. Slot `m` thus
//! sums the `K` columns of a window starting at `m mod p_in`.
//! - `p_in <= p_out`: the window is every column, slot `m` holds `y[m mod p_out]`.
//! - `p_in > p_out`: the `p_in / p_out` slots `m, m + p_out, ..` of one output row see the
//!   windows starting at `m, m + p_out, ..` (mod `p_in`), which tile the columns; a
//!   rotate-and-sum of stride `p_out` over `p_in / p_out` terms (no level) adds them.
//!
//! So a `d x d` map costs `d` plaintext products and a `4d -> d` map `d` products plus two
//! rotations. Every diagonal value is per slot, so RoPE at the step's position and the
//! restriction of a key/value projection to its cache block cost nothing.

use psf_circuits::linear::{LinearTransform, Strategy};

use super::weights::Folded;
use crate::{InferError, Result};

/// Where a map's outputs go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepMap {
    /// Slots per ciphertext.
    pub slots: usize,
    /// Input period.
    pub p_in: usize,
    /// Output period (at most `slots`).
    pub p_out: usize,
    /// First output row (chunks of a map with more rows than slots).
    pub row0: usize,
    /// RoPE position.
    pub pos: usize,
    /// Keep only the slots of block `block` of width `p_out` (cache insertion), zero elsewhere.
    pub block: Option<usize>,
}

/// The rotate-and-sum that finishes a map with `p_in > p_out`: `(stride, terms)`.
pub type Fold = (usize, usize);

impl StepMap {
    /// A map of period `p_in` to `p_out` at RoPE position `pos`, all slots kept.
    ///
    /// # Errors
    /// Periods that are not powers of two dividing `slots`.
    pub fn new(slots: usize, p_in: usize, p_out: usize, pos: usize) -> Result<Self> {
        for p in [p_in, p_out] {
            if !p.is_power_of_two() || p > slots || !slots.is_power_of_two() {
                return Err(InferError::Unsupported(format!(
                    "period {p} in {slots} slots (powers of two, at most the slots)"
                )));
            }
        }
        Ok(Self {
            slots,
            p_in,
            p_out,
            row0: 0,
            pos,
            block: None,
        })
    }

    /// The same map for output rows `row0 ..` (the next chunk of `p_out` rows).
    pub fn rows_from(mut self, row0: usize) -> Self {
        self.row0 = row0;
        self
    }

    /// The same map keeping only block `block` (of width `p_out`) of the output.
    ///
    /// # Errors
    /// A block past the slots, or a map that needs a fold (the fold would mix blocks).
    pub fn in_block(mut self, block: usize) -> Result<Self> {
        if (block + 1) * self.p_out > self.slots || self.p_in > self.p_out {
            return Err(InferError::Unsupported(format!(
                "block {block} of width {} from period {} in {} slots",
                self.p_out, self.p_in, self.slots
            )));
        }
        self.block = Some(block);
        Ok(self)
    }

    /// Diagonals in use.
    pub fn diagonals(&self) -> usize {
        self.p_in.min(self.p_out)
    }

    /// The fold after the transform, if any.
    pub fn fold(&self) -> Option<Fold> {
        (self.p_in > self.p_out).then_some((self.p_out, self.p_in / self.p_out))
    }

    /// Length of the diagonal and bias vectors (their period).
    fn period(&self) -> usize {
        if self.block.is_some() {
            self.slots
        } else {
            self.p_in.max(self.p_out)
        }
    }

    fn kept(&self, m: usize) -> bool {
        self.block.is_none_or(|b| m / self.p_out == b)
    }

    /// Output row of slot `m` (may be past the matrix).
    fn row(&self, m: usize) -> usize {
        self.row0 + m % self.p_out
    }

    /// The transform of `f` (diagonal `k` at rotation `k`).
    ///
    /// # Errors
    /// A matrix wider than the input period, or a chunk without a non-zero weight.
    pub fn transform(&self, f: &Folded) -> Result<LinearTransform> {
        if f.cols > self.p_in {
            return Err(InferError::shape("map input period", f.cols, self.p_in));
        }
        let len = self.period();
        let diags = (0..self.diagonals()).map(|k| {
            let v: Vec<f64> = (0..len)
                .map(|m| {
                    let (g, c) = (self.row(m), (m + k) % self.p_in);
                    if self.kept(m) && g < f.rows && c < f.cols {
                        f.weight(g, c, self.pos)
                    } else {
                        0.0
                    }
                })
                .collect();
            (k as i64, v)
        });
        Ok(LinearTransform::from_diagonals(
            self.slots,
            diags,
            Strategy::Bsgs(None),
        )?)
    }

    /// The bias in the output layout, one value per slot (`None` without bias).
    pub fn bias(&self, f: &Folded) -> Option<Vec<f64>> {
        if !f.has_bias() {
            return None;
        }
        let v: Vec<f64> = (0..self.period())
            .map(|m| {
                let g = self.row(m);
                if self.kept(m) && g < f.rows {
                    f.bias(g, self.pos)
                } else {
                    0.0
                }
            })
            .collect();
        Some(replicate(&v, v.len(), self.slots))
    }

    /// The cleartext twin on a slot vector (`x` replicated with period `p_in`).
    ///
    /// # Errors
    /// As [`Self::transform`].
    pub fn apply_f64(&self, f: &Folded, x: &[f64]) -> Result<Vec<f64>> {
        let mut y = self.transform(f)?.apply_f64(x);
        if let Some((stride, terms)) = self.fold() {
            let n = y.len();
            y = (0..n)
                .map(|m| (0..terms).map(|u| y[(m + u * stride) % n]).sum())
                .collect();
        }
        if let Some(b) = self.bias(f) {
            y.iter_mut().zip(b).for_each(|(v, b)| *v += b);
        }
        Ok(y)
    }
}

/// `x` (of width at most `period`) replicated with `period` over `slots` slots.
pub fn replicate(x: &[f64], period: usize, slots: usize) -> Vec<f64> {
    (0..slots)
        .map(|m| x.get(m % period).copied().unwrap_or(0.0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Linear, Rope};

    fn folded(rows: usize, cols: usize) -> Folded {
        let w = (0..rows * cols)
            .map(|i| ((i * 37) % 11) as f64 / 5.0 - 1.0)
            .collect();
        let b = Some((0..rows).map(|r| r as f64 * 0.1).collect());
        let rope = Rope {
            rotary_dim: 4,
            theta: 100.0,
        };
        Folded::plain(&Linear::new(rows, cols, w, b).unwrap()).with_rope(Some(rope), 8)
    }

    fn check(rows: usize, cols: usize, p_in: usize, p_out: usize) {
        let (slots, pos) = (256, 5);
        let f = folded(rows, cols);
        let x: Vec<f64> = (0..cols).map(|c| (c as f64 * 0.37).sin()).collect();
        let want = f.apply_f64(&x, pos);
        let map = StepMap::new(slots, p_in, p_out, pos).unwrap();
        let y = map.apply_f64(&f, &replicate(&x, p_in, slots)).unwrap();
        for (m, v) in y.iter().enumerate() {
            let g = m % p_out;
            let w = want.get(g).copied().unwrap_or(0.0);
            assert!((v - w).abs() < 1e-12, "{rows}x{cols} slot {m}: {v} vs {w}");
        }
        assert_eq!(map.diagonals(), p_in.min(p_out));
    }

    #[test]
    fn periodic_maps_match_the_matrix_at_every_slot() {
        check(16, 16, 16, 16); // square
        check(40, 16, 16, 64); // widening (MLP up, LM head)
        check(16, 40, 64, 16); // narrowing: window fold
        check(12, 10, 16, 16); // padded rows and columns
    }

    #[test]
    fn block_maps_write_one_block_and_chunks_shift_rows() {
        let (slots, pos) = (128, 3);
        let f = folded(16, 16);
        let x: Vec<f64> = (0..16).map(|c| c as f64 * 0.1 - 0.5).collect();
        let want = f.apply_f64(&x, pos);
        let map = StepMap::new(slots, 16, 16, pos)
            .unwrap()
            .in_block(5)
            .unwrap();
        let y = map.apply_f64(&f, &replicate(&x, 16, slots)).unwrap();
        for (m, v) in y.iter().enumerate() {
            let w = if m / 16 == 5 { want[m % 16] } else { 0.0 };
            assert!((v - w).abs() < 1e-12, "slot {m}");
        }
        assert!(StepMap::new(slots, 32, 16, 0).unwrap().in_block(0).is_err());
        assert!(StepMap::new(slots, 16, 16, 0).unwrap().in_block(8).is_err());
        let chunk = StepMap::new(slots, 16, 8, pos).unwrap().rows_from(8);
        let y = chunk.apply_f64(&f, &replicate(&x, 16, slots)).unwrap();
        assert!((y[3] - want[11]).abs() < 1e-12);
        assert!(StepMap::new(100, 16, 16, 0).is_err());
    }
}
