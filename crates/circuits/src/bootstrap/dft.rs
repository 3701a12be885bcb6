//! The homomorphic DFTs of bootstrapping in `f64`: the special FFT of
//! [`psf_ckks::encoding::SpecialFft`] factored into `log2(slots)` butterfly matrices given by
//! their diagonals, merged into a configurable number of groups (the level budget).
//!
//! The decoder computes `slots = B_{n/2} ... B_2 B_1 R w` (`R` the bit reversal, `B_h` the
//! butterflies merging blocks of length `2h`, `w` the folded coefficients); the encoder its
//! inverse `R B_1^-1 ... B_{n/2}^-1`. CoeffsToSlots applies `B_1^-1 ... B_{n/2}^-1` without the
//! final `R` and SlotsToCoeffs applies `B_{n/2} ... B_1` without the initial `R`: the slots in
//! between hold the coefficients in bit-reversed order, which the slot-wise EvalMod ignores,
//! and the two reversals cancel.

use std::collections::BTreeMap;
use std::f64::consts::TAU;

use num_complex::Complex64;

/// A square matrix on `C^size` by its nonzero diagonals: `out[x] = sum_k d_k[x] * v[(x + k) % size]`
/// (diagonal `k` multiplies the input rotated left by `k`, as [`psf_ckks::Evaluator::rotate_new`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DiagMatrix {
    size: usize,
    diags: BTreeMap<usize, Vec<Complex64>>,
}

impl DiagMatrix {
    /// The identity on `C^size`.
    pub fn identity(size: usize) -> Self {
        let mut diags = BTreeMap::new();
        diags.insert(0, vec![Complex64::new(1.0, 0.0); size]);
        Self { size, diags }
    }

    /// The matrix with the given `(row, column, value)` entries (repeated entries add up).
    pub fn from_entries(
        size: usize,
        entries: impl IntoIterator<Item = (usize, usize, Complex64)>,
    ) -> Self {
        let mut diags: BTreeMap<usize, Vec<Complex64>> = BTreeMap::new();
        for (row, col, v) in entries {
            let k = (col + size - row) % size;
            diags
                .entry(k)
                .or_insert_with(|| vec![Complex64::default(); size])[row] += v;
        }
        Self { size, diags }
    }

    /// Dimension.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The diagonals by rotation index in `[0, size)`.
    pub fn diagonals(&self) -> &BTreeMap<usize, Vec<Complex64>> {
        &self.diags
    }

    /// The rotation indices, in `(-size/2, size/2]` (the shortest rotation of each diagonal).
    pub fn rotations(&self) -> Vec<i64> {
        self.diags.keys().map(|&k| signed(k, self.size)).collect()
    }

    /// `M v`.
    ///
    /// # Panics
    /// If `v.len() != size`.
    pub fn apply(&self, v: &[Complex64]) -> Vec<Complex64> {
        assert_eq!(v.len(), self.size, "vector length");
        let mut out = vec![Complex64::default(); self.size];
        for (&k, d) in &self.diags {
            for (x, o) in out.iter_mut().enumerate() {
                *o += d[x] * v[(x + k) % self.size];
            }
        }
        out
    }

    /// `self * first`: the matrix that applies `first`, then `self`.
    ///
    /// # Panics
    /// If the sizes differ.
    pub fn after(&self, first: &DiagMatrix) -> DiagMatrix {
        assert_eq!(self.size, first.size, "matrix sizes");
        let n = self.size;
        let mut diags: BTreeMap<usize, Vec<Complex64>> = BTreeMap::new();
        // (A B v)[x] = sum_a A_a[x] sum_b B_b[x + a] v[x + a + b].
        for (&a, da) in &self.diags {
            for (&b, db) in &first.diags {
                let acc = diags
                    .entry((a + b) % n)
                    .or_insert_with(|| vec![Complex64::default(); n]);
                for x in 0..n {
                    acc[x] += da[x] * db[(x + a) % n];
                }
            }
        }
        DiagMatrix { size: n, diags }
    }

    /// Multiplies every entry by `c`.
    pub fn scaled(mut self, c: Complex64) -> Self {
        self.diags.values_mut().flatten().for_each(|x| *x *= c);
        self
    }

    /// Multiplies row `x` by `mask[x]` (`diag(mask) * M`).
    ///
    /// # Panics
    /// If `mask.len() != size`.
    pub fn row_scaled(mut self, mask: &[Complex64]) -> Self {
        assert_eq!(mask.len(), self.size, "mask length");
        for d in self.diags.values_mut() {
            d.iter_mut().zip(mask).for_each(|(x, m)| *x *= m);
        }
        self
    }

    /// The same map acting on vectors of length `size * reps` that repeat with period `size`
    /// (how an `n`-slot ciphertext looks in a view with more slots).
    pub fn tiled(&self, reps: usize) -> DiagMatrix {
        let diags = self
            .diags
            .iter()
            .map(|(&k, d)| (k, d.iter().cycle().take(d.len() * reps).copied().collect()))
            .collect();
        DiagMatrix {
            size: self.size * reps,
            diags,
        }
    }

    /// Drops diagonals whose entries are all below `eps` in modulus.
    pub fn pruned(mut self, eps: f64) -> Self {
        self.diags.retain(|_, d| d.iter().any(|x| x.norm() > eps));
        self
    }
}

fn signed(k: usize, n: usize) -> i64 {
    if 2 * k > n {
        k as i64 - n as i64
    } else {
        k as i64
    }
}

/// Twiddles of the butterfly stage merging blocks of length `2h`: `exp(2*pi*i*(5^j mod 8h)/(8h))`
/// for `j < h` (the tables of `SpecialFft`).
fn twiddles(h: usize) -> Vec<Complex64> {
    let m = 8 * h;
    let mut g = 1usize;
    (0..h)
        .map(|_| {
            let w = Complex64::cis(TAU * (g as f64 / m as f64));
            g = g * 5 % m;
            w
        })
        .collect()
}

/// The decoder's butterfly stage `B_h` on `n` slots: `(u, v) -> (u + w v, u - w v)`.
pub fn butterfly(n: usize, h: usize) -> DiagMatrix {
    let tw = twiddles(h);
    let one = Complex64::new(1.0, 0.0);
    let entries = (0..n).step_by(2 * h).flat_map(|b| {
        tw.iter().enumerate().flat_map(move |(j, &w)| {
            let (u, v) = (b + j, b + j + h);
            [(u, u, one), (u, v, w), (v, u, one), (v, v, -w)]
        })
    });
    DiagMatrix::from_entries(n, entries)
}

/// The inverse of [`butterfly`]: `(u, v) -> ((u + v)/2, (u - v) conj(w)/2)`.
pub fn inverse_butterfly(n: usize, h: usize) -> DiagMatrix {
    let tw = twiddles(h);
    let half = Complex64::new(0.5, 0.0);
    let entries = (0..n).step_by(2 * h).flat_map(|b| {
        tw.iter().enumerate().flat_map(move |(j, &w)| {
            let (u, v) = (b + j, b + j + h);
            let c = w.conj() * 0.5;
            [(u, u, half), (u, v, half), (v, u, c), (v, v, -c)]
        })
    });
    DiagMatrix::from_entries(n, entries)
}

/// Sizes of `groups` consecutive groups covering `stages` stages, as even as possible
/// (larger groups first).
pub fn group_sizes(stages: usize, groups: usize) -> Vec<usize> {
    let groups = groups.clamp(1, stages.max(1));
    (0..groups)
        .map(|g| stages / groups + usize::from(g < stages % groups))
        .collect()
}

/// Merges `stages` (in the order they apply) into groups of the given sizes.
fn merge(stages: Vec<DiagMatrix>, sizes: &[usize]) -> Vec<DiagMatrix> {
    let mut it = stages.into_iter();
    sizes
        .iter()
        .map(|&s| {
            let first = it.next().expect("enough stages");
            (1..s).fold(first, |acc, _| {
                it.next().expect("enough stages").after(&acc)
            })
        })
        .collect()
}

/// CoeffsToSlots on `n` slots as `levels` factors, in the order they apply: the product maps
/// slot values to the folded coefficients in bit-reversed order (with the encoder's `1/n`).
/// With `n = 1` the single factor is the identity.
pub fn coeffs_to_slots_factors(n: usize, levels: usize) -> Vec<DiagMatrix> {
    let log_n = n.trailing_zeros() as usize;
    if log_n == 0 {
        return vec![DiagMatrix::identity(1)];
    }
    let stages = (0..log_n)
        .rev()
        .map(|l| inverse_butterfly(n, 1 << l))
        .collect();
    merge(stages, &group_sizes(log_n, levels))
}

/// SlotsToCoeffs on `n` slots as `levels` factors, in the order they apply: the product maps
/// bit-reversed folded coefficients to slot values.
pub fn slots_to_coeffs_factors(n: usize, levels: usize) -> Vec<DiagMatrix> {
    let log_n = n.trailing_zeros() as usize;
    if log_n == 0 {
        return vec![DiagMatrix::identity(1)];
    }
    let stages = (0..log_n).map(|l| butterfly(n, 1 << l)).collect();
    merge(stages, &group_sizes(log_n, levels))
}

/// Applies factors in order.
pub fn apply_all(factors: &[DiagMatrix], v: &[Complex64]) -> Vec<Complex64> {
    factors.iter().fold(v.to_vec(), |acc, m| m.apply(&acc))
}

/// Bit-reversal permutation (a copy).
pub fn bit_reversed<T: Copy>(v: &[T]) -> Vec<T> {
    let n = v.len();
    if n <= 1 {
        return v.to_vec();
    }
    let shift = usize::BITS - n.trailing_zeros();
    (0..n).map(|i| v[i.reverse_bits() >> shift]).collect()
}

#[cfg(test)]
mod tests {
    use psf_ckks::encoding::SpecialFft;

    use super::*;

    fn rng_vec(seed: u64, n: usize) -> Vec<Complex64> {
        let mut s = seed;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        };
        (0..n).map(|_| Complex64::new(next(), next())).collect()
    }

    fn max_err(a: &[Complex64], b: &[Complex64]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).norm())
            .fold(0.0, f64::max)
    }

    /// Slots of the folded coefficients `w` by the encoder's own transform.
    fn decode_folded(fft: &SpecialFft, w: &[Complex64]) -> Vec<Complex64> {
        let (gap, half) = (fft.gap(), fft.ring_degree() / 2);
        let mut coeffs = vec![0.0; fft.ring_degree()];
        for (k, x) in w.iter().enumerate() {
            coeffs[k * gap] = x.re;
            coeffs[half + k * gap] = x.im;
        }
        let mut out = vec![Complex64::default(); fft.slots()];
        fft.slots_from_coeffs(&coeffs, &mut out);
        out
    }

    #[test]
    fn factors_match_the_special_fft_for_every_budget() {
        for log_slots in 0..=7u32 {
            let n = 1usize << log_slots;
            let fft = SpecialFft::new(log_slots + 2, log_slots).unwrap();
            let w = rng_vec(u64::from(log_slots) + 1, n);
            let slots = decode_folded(&fft, &w);
            for levels in 1..=(log_slots as usize).max(1) {
                let stc = slots_to_coeffs_factors(n, levels);
                let cts = coeffs_to_slots_factors(n, levels);
                assert_eq!(stc.len(), levels.min((log_slots as usize).max(1)));
                let got = apply_all(&stc, &bit_reversed(&w));
                assert!(max_err(&got, &slots) < 1e-12, "StC n={n} levels={levels}");
                let back = bit_reversed(&apply_all(&cts, &slots));
                assert!(max_err(&back, &w) < 1e-12, "CtS n={n} levels={levels}");
            }
        }
    }

    #[test]
    fn merged_groups_have_few_diagonals() {
        let n = 1 << 10;
        let f = coeffs_to_slots_factors(n, 3);
        let counts: Vec<usize> = f.iter().map(|m| m.diagonals().len()).collect();
        // 4 + 3 + 3 stages: 2^(k+1) - 1 diagonals, fewer where rotations wrap.
        assert!(
            counts[0] <= 31 && counts[1] <= 15 && counts[2] <= 15,
            "{counts:?}"
        );
        for m in &f {
            assert!(
                m.rotations()
                    .iter()
                    .all(|r| r.unsigned_abs() as usize <= n / 2)
            );
        }
    }

    #[test]
    fn tiled_matrix_acts_on_periodic_vectors() {
        let m = coeffs_to_slots_factors(8, 2).remove(0);
        let v = rng_vec(9, 8);
        let v2: Vec<_> = v.iter().chain(&v).copied().collect();
        let want = m.apply(&v);
        let got = m.tiled(2).apply(&v2);
        assert!(max_err(&got[..8], &want) < 1e-14 && max_err(&got[8..], &want) < 1e-14);
    }

    #[test]
    fn group_sizes_cover_the_stages() {
        assert_eq!(group_sizes(15, 4), vec![4, 4, 4, 3]);
        assert_eq!(group_sizes(3, 5), vec![1, 1, 1]);
        assert_eq!(group_sizes(5, 1), vec![5]);
    }
}
