//! Plaintext matrices by their generalized diagonals, and the baby-step giant-step plan.
//!
//! A transform maps a slot vector `x` (cyclic over `slots`) to
//! `y[m] = sum_r diag_r[m] * x[(m + r) mod slots]`, with `diag_r[m] = M[m][(m + r) mod slots]`.
//! The offsets `r` in use are multiples of a stride `s` (their gcd with `slots`); with
//! `r = s (j n1 + i)` the product is evaluated as
//! `y = sum_j rot_{s j n1}( sum_i rot_{-s j n1}(diag_r) * rot_{s i}(x) )`:
//! the baby-step rotations `rot_{s i}(x)` are shared (hoisted), the diagonals are pre-rotated
//! in clear, and each giant step rotates one inner sum.

use std::collections::BTreeMap;

use crate::{Circuit, CircuitError, Result, rotation_galois_elements};

/// How a transform is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// The diagonal method: one hoisted rotation of the input per diagonal, no giant steps.
    Diagonal,
    /// Baby-step giant-step with `n1` baby steps (`None`: the `n1` that minimizes key
    /// switches, giant steps weighted twice).
    Bsgs(Option<usize>),
}

/// The baby-step giant-step schedule of a transform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BsgsPlan {
    /// Baby steps.
    pub n1: usize,
    /// The gcd of the offsets in use (and of the slot count).
    pub stride: usize,
    /// Baby rotations (slot units) that some diagonal uses, increasing; may include 0.
    pub baby: Vec<i64>,
    /// Giant steps: rotation (slot units) and `(index into baby, diagonal offset)` terms.
    pub giant: Vec<(i64, Vec<(usize, usize)>)>,
}

impl BsgsPlan {
    /// Non-zero baby rotations (one hoisted key switch each).
    pub fn baby_rotations(&self) -> Vec<i64> {
        self.baby.iter().copied().filter(|&k| k != 0).collect()
    }

    /// Non-zero giant rotations (one key switch each).
    pub fn giant_rotations(&self) -> Vec<i64> {
        self.giant.iter().map(|g| g.0).filter(|&k| k != 0).collect()
    }

    /// Every rotation the plan needs.
    pub fn rotations(&self) -> Vec<i64> {
        let mut r = self.baby_rotations();
        r.extend(self.giant_rotations());
        r.sort_unstable();
        r.dedup();
        r
    }
}

/// A plaintext matrix acting on slot vectors, held by its non-zero generalized diagonals.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearTransform {
    slots: usize,
    diagonals: BTreeMap<usize, Vec<f64>>,
    plan: BsgsPlan,
}

pub(crate) fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl LinearTransform {
    /// From diagonals `(offset, values)`: offsets are taken modulo `slots` (negative allowed),
    /// values have length `slots` (or a period dividing it, repeated); diagonals with equal
    /// offsets are summed and all-zero diagonals dropped.
    ///
    /// # Errors
    /// A slot count that is not a power of two, values whose length does not divide it, or no
    /// non-zero diagonal.
    pub fn from_diagonals(
        slots: usize,
        diagonals: impl IntoIterator<Item = (i64, Vec<f64>)>,
        strategy: Strategy,
    ) -> Result<Self> {
        if !slots.is_power_of_two() {
            return Err(CircuitError::Invalid(format!(
                "{slots} slots: not a power of two"
            )));
        }
        let mut map: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        for (r, v) in diagonals {
            if v.is_empty() || !slots.is_multiple_of(v.len()) {
                return Err(CircuitError::Invalid(format!(
                    "diagonal of length {} for {slots} slots",
                    v.len()
                )));
            }
            let r = r.rem_euclid(slots as i64) as usize;
            let d = map.entry(r).or_insert_with(|| vec![0.0; slots]);
            for (m, x) in d.iter_mut().enumerate() {
                *x += v[m % v.len()];
            }
        }
        map.retain(|_, v| v.iter().any(|&x| x != 0.0));
        let plan = plan(slots, map.keys().copied(), strategy, None)?;
        Ok(Self {
            slots,
            diagonals: map,
            plan,
        })
    }

    /// The transform whose diagonal `k < count` (rotation `k * stride`) holds `value(k, m)` in
    /// slot `m`; `None` when every diagonal is zero (e.g. a zero block of a block matrix).
    ///
    /// # Errors
    /// As [`Self::from_diagonals`].
    pub fn from_diagonal_fn(
        slots: usize,
        count: usize,
        stride: usize,
        value: impl Fn(usize, usize) -> f64,
        strategy: Strategy,
    ) -> Result<Option<Self>> {
        let diags: Vec<(i64, Vec<f64>)> = (0..count)
            .map(|k| {
                (
                    (k * stride) as i64,
                    (0..slots).map(|m| value(k, m)).collect(),
                )
            })
            .filter(|(_, v): &(i64, Vec<f64>)| v.iter().any(|&x| x != 0.0))
            .collect();
        if diags.is_empty() {
            return Ok(None);
        }
        Self::from_diagonals(slots, diags, strategy).map(Some)
    }

    /// The `d x d` matrix `rows` acting on vectors replicated with period `d` (`d` divides
    /// `slots`): the output is replicated too. With `d = slots`, a plain square matrix.
    ///
    /// # Errors
    /// A non-square matrix, `d` not dividing `slots`, or as [`Self::from_diagonals`].
    pub fn from_dense(rows: &[Vec<f64>], slots: usize, strategy: Strategy) -> Result<Self> {
        let d = rows.len();
        if d == 0 || rows.iter().any(|r| r.len() != d) || !slots.is_multiple_of(d) {
            return Err(CircuitError::Invalid(format!(
                "dense matrix must be d x d with d | {slots}"
            )));
        }
        let diags = (0..d).map(|r| {
            let v: Vec<f64> = (0..d).map(|m| rows[m][(m + r) % d]).collect();
            (r as i64, v)
        });
        Self::from_diagonals(slots, diags, strategy)
    }

    /// The same transform with the schedule forced to `n1` baby steps over offsets in units of
    /// `stride` (which must divide every offset): blocks of a [`super::BlockTransform`] share
    /// their rotations this way.
    pub(crate) fn with_schedule(mut self, n1: usize, stride: usize) -> Result<Self> {
        self.plan = plan(
            self.slots,
            self.diagonals.keys().copied(),
            Strategy::Bsgs(Some(n1)),
            Some(stride),
        )?;
        Ok(self)
    }

    /// Slots the transform acts on.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// The non-zero diagonals by offset.
    pub fn diagonals(&self) -> &BTreeMap<usize, Vec<f64>> {
        &self.diagonals
    }

    /// The evaluation schedule.
    pub fn plan(&self) -> &BsgsPlan {
        &self.plan
    }

    /// The cleartext twin: `y[m] = sum_r diag_r[m] x[(m + r) mod slots]`.
    pub fn apply_f64(&self, x: &[f64]) -> Vec<f64> {
        let n = self.slots;
        let mut y = vec![0.0; n];
        for (&r, d) in &self.diagonals {
            for m in 0..n {
                y[m] += d[m] * x.get((m + r) % n).copied().unwrap_or(0.0);
            }
        }
        y
    }

    /// The diagonal at `offset`, pre-rotated right by `giant` slots (for the giant step).
    pub(crate) fn prerotated(&self, offset: usize, giant: i64) -> Vec<f64> {
        let n = self.slots as i64;
        let d = &self.diagonals[&offset];
        (0..n)
            .map(|m| d[(m - giant).rem_euclid(n) as usize])
            .collect()
    }
}

/// The BSGS schedule of the offsets `offsets` over `slots`.
pub(crate) fn plan(
    slots: usize,
    offsets: impl Iterator<Item = usize>,
    strategy: Strategy,
    stride: Option<usize>,
) -> Result<BsgsPlan> {
    let offsets: Vec<usize> = offsets.collect();
    if offsets.is_empty() {
        return Err(CircuitError::Invalid(
            "transform without non-zero diagonals".into(),
        ));
    }
    let stride = match stride {
        Some(s) if s > 0 && offsets.iter().all(|r| r % s == 0) => s,
        Some(s) => {
            return Err(CircuitError::Invalid(format!(
                "stride {s} does not divide the offsets"
            )));
        }
        None => offsets.iter().fold(slots, |g, &r| gcd(g, r)),
    };
    let indices: Vec<usize> = offsets.iter().map(|&r| r / stride).collect();
    let span = indices.iter().max().map_or(1, |&m| m + 1);
    let n1 = match strategy {
        Strategy::Diagonal => span,
        Strategy::Bsgs(Some(n1)) if n1 > 0 => n1,
        Strategy::Bsgs(_) => best_n1(&indices, span),
    };
    let mut baby_set: Vec<usize> = indices.iter().map(|&k| k % n1).collect();
    baby_set.sort_unstable();
    baby_set.dedup();
    let mut giant: BTreeMap<usize, Vec<(usize, usize)>> = BTreeMap::new();
    for (&k, &r) in indices.iter().zip(&offsets) {
        let bi = baby_set.binary_search(&(k % n1)).unwrap_or(0);
        giant.entry(k / n1).or_default().push((bi, r));
    }
    Ok(BsgsPlan {
        n1,
        stride,
        baby: baby_set.iter().map(|&i| (i * stride) as i64).collect(),
        giant: giant
            .into_iter()
            .map(|(j, terms)| ((j * n1 * stride) as i64, terms))
            .collect(),
    })
}

/// The power-of-two `n1` minimizing `#baby + 2 #giant` non-zero rotations.
pub(crate) fn best_n1(indices: &[usize], span: usize) -> usize {
    let cost = |n1: usize| {
        let mut b: Vec<usize> = indices
            .iter()
            .map(|&k| k % n1)
            .filter(|&i| i != 0)
            .collect();
        let mut g: Vec<usize> = indices
            .iter()
            .map(|&k| k / n1)
            .filter(|&j| j != 0)
            .collect();
        b.sort_unstable();
        b.dedup();
        g.sort_unstable();
        g.dedup();
        b.len() + 2 * g.len()
    };
    let mut best = (usize::MAX, 1);
    let mut n1 = 1;
    while n1 <= span.next_power_of_two() {
        let c = cost(n1);
        if c < best.0 {
            best = (c, n1);
        }
        n1 *= 2;
    }
    best.1
}

impl Circuit for LinearTransform {
    /// One level: the plaintext product and its rescale.
    fn depth(&self) -> usize {
        1
    }

    fn galois_elements(&self, log_n: u32) -> Vec<usize> {
        rotation_galois_elements(self.plan.rotations(), log_n)
    }

    fn needs_relinearization_key(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_dense_and_strided_matrices() {
        let rows: Vec<Vec<f64>> = (0..512)
            .map(|i| (0..512).map(|j| ((i * 3 + j) % 7) as f64).collect())
            .collect();
        let t = LinearTransform::from_dense(&rows, 512, Strategy::Bsgs(None)).unwrap();
        let p = t.plan();
        assert_eq!(
            (p.n1, p.stride, p.baby.len(), p.giant.len()),
            (32, 1, 32, 16)
        );
        assert_eq!(p.rotations().len(), 31 + 15);
        let diag = LinearTransform::from_dense(&rows[..1], 512, Strategy::Diagonal);
        assert!(diag.is_err());
        // Offsets 0, 8, 16, ... (an interleaved layout with 8 tokens): stride 8.
        let t = LinearTransform::from_diagonals(
            256,
            (0..32).map(|k| (8 * k, vec![1.0; 256])),
            Strategy::Bsgs(None),
        )
        .unwrap();
        assert_eq!(t.plan().stride, 8);
        assert!(t.plan().rotations().iter().all(|r| r % 8 == 0));
        // The twin of the identity is the identity.
        let id = LinearTransform::from_diagonals(16, [(0, vec![1.0])], Strategy::Diagonal).unwrap();
        let x: Vec<f64> = (0..16).map(|i| i as f64).collect();
        assert_eq!(id.apply_f64(&x), x);
    }
}
