//! Polynomials in RNS form: one residue vector ("limb") of `N` coefficients per prime.

use rayon::prelude::*;

use crate::{MathError, Result, RnsBasis};

/// Whether the limbs hold coefficients or NTT evaluations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Repr {
    /// Coefficients of `X^0 .. X^(N-1)`.
    Coeff,
    /// Evaluations at the NTT points (bit-reversed order, see [`crate::NttPlan`]).
    Eval,
}

/// Work below this many coefficients runs on one thread (rayon overhead dominates).
const PAR_THRESHOLD: usize = 1 << 13;

/// A polynomial of `Z_Q[X]/(X^N + 1)` in RNS form over the first `limbs()` primes of
/// whichever [`RnsBasis`] the caller pairs it with. Limb-major storage.
#[derive(Clone, PartialEq, Eq)]
pub struct RnsPoly {
    n: usize,
    repr: Repr,
    data: Vec<u64>,
}

impl std::fmt::Debug for RnsPoly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RnsPoly(n={}, limbs={}, {:?})",
            self.n,
            self.limbs(),
            self.repr
        )
    }
}

impl RnsPoly {
    /// The zero polynomial with `limbs` limbs.
    pub fn zero(n: usize, limbs: usize, repr: Repr) -> Self {
        Self {
            n,
            repr,
            data: vec![0; n * limbs],
        }
    }

    /// Wraps limb-major data (length must be a multiple of `n`).
    pub fn from_data(n: usize, repr: Repr, data: Vec<u64>) -> Result<Self> {
        if n == 0 || !data.len().is_multiple_of(n) {
            return Err(MathError::ShapeMismatch {
                what: "poly data length",
                expected: n,
                found: data.len(),
            });
        }
        Ok(Self { n, repr, data })
    }

    /// Small signed coefficients reduced into the first `limbs` primes of `basis` (coefficient form).
    pub fn from_signed(coeffs: &[i64], basis: &RnsBasis, limbs: usize) -> Self {
        let n = basis.n();
        let mut p = Self::zero(n, limbs, Repr::Coeff);
        for (i, limb) in p.data.chunks_exact_mut(n).enumerate() {
            let m = basis.modulus(i);
            for (d, &c) in limb.iter_mut().zip(coeffs) {
                *d = m.from_i64(c);
            }
        }
        p
    }

    /// Ring degree.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Number of limbs.
    pub fn limbs(&self) -> usize {
        self.data.len() / self.n
    }

    /// Current representation.
    pub fn repr(&self) -> Repr {
        self.repr
    }

    /// Sets the representation tag without transforming (for callers that fill limbs directly).
    pub fn set_repr(&mut self, repr: Repr) {
        self.repr = repr;
    }

    /// Limb `i`.
    #[inline]
    pub fn limb(&self, i: usize) -> &[u64] {
        &self.data[i * self.n..(i + 1) * self.n]
    }

    /// Limb `i`, mutable.
    #[inline]
    pub fn limb_mut(&mut self, i: usize) -> &mut [u64] {
        &mut self.data[i * self.n..(i + 1) * self.n]
    }

    /// All limbs, limb-major.
    pub fn data(&self) -> &[u64] {
        &self.data
    }

    /// The limb-major storage, consuming the polynomial (to return it to a pool).
    pub fn into_data(self) -> Vec<u64> {
        self.data
    }

    /// All limbs, mutable.
    pub fn data_mut(&mut self) -> &mut [u64] {
        &mut self.data
    }

    /// Iterator over limbs.
    pub fn limbs_iter(&self) -> std::slice::ChunksExact<'_, u64> {
        self.data.chunks_exact(self.n)
    }

    /// Drops limbs beyond the first `limbs`.
    pub fn truncate(&mut self, limbs: usize) {
        self.data.truncate(limbs * self.n);
    }

    /// Copies the first `limbs` limbs into a new polynomial.
    pub fn prefix(&self, limbs: usize) -> Self {
        Self {
            n: self.n,
            repr: self.repr,
            data: self.data[..limbs * self.n].to_vec(),
        }
    }

    /// Resizes to `limbs` limbs (new limbs are zero).
    pub fn resize(&mut self, limbs: usize) {
        self.data.resize(limbs * self.n, 0);
    }

    /// Whether every coefficient is zero.
    pub fn is_zero(&self) -> bool {
        self.data.iter().all(|&x| x == 0)
    }
}

/// Runs `f(limb_index, limb)` over the limbs of `p`, in parallel when large.
pub(crate) fn for_each_limb(p: &mut RnsPoly, f: impl Fn(usize, &mut [u64]) + Sync + Send) {
    let n = p.n;
    if p.data.len() >= PAR_THRESHOLD && p.limbs() > 1 {
        p.data
            .par_chunks_exact_mut(n)
            .enumerate()
            .for_each(|(i, l)| f(i, l));
    } else {
        p.data
            .chunks_exact_mut(n)
            .enumerate()
            .for_each(|(i, l)| f(i, l));
    }
}

/// Runs `f(limb_index, out_limb, a_limb)` over matching limbs.
pub(crate) fn zip_limbs(
    out: &mut RnsPoly,
    a: &RnsPoly,
    f: impl Fn(usize, &mut [u64], &[u64]) + Sync + Send,
) {
    let n = out.n;
    let limbs = out.limbs();
    let a = &a.data[..limbs * n];
    if out.data.len() >= PAR_THRESHOLD && limbs > 1 {
        out.data
            .par_chunks_exact_mut(n)
            .zip(a.par_chunks_exact(n))
            .enumerate()
            .for_each(|(i, (o, x))| f(i, o, x));
    } else {
        out.data
            .chunks_exact_mut(n)
            .zip(a.chunks_exact(n))
            .enumerate()
            .for_each(|(i, (o, x))| f(i, o, x));
    }
}

/// Runs `f(limb_index, out_limb, a_limb, b_limb)` over matching limbs.
pub(crate) fn zip3_limbs(
    out: &mut RnsPoly,
    a: &RnsPoly,
    b: &RnsPoly,
    f: impl Fn(usize, &mut [u64], &[u64], &[u64]) + Sync + Send,
) {
    let n = out.n;
    let limbs = out.limbs();
    let (a, b) = (&a.data[..limbs * n], &b.data[..limbs * n]);
    if out.data.len() >= PAR_THRESHOLD && limbs > 1 {
        out.data
            .par_chunks_exact_mut(n)
            .zip(a.par_chunks_exact(n).zip(b.par_chunks_exact(n)))
            .enumerate()
            .for_each(|(i, (o, (x, y)))| f(i, o, x, y));
    } else {
        out.data
            .chunks_exact_mut(n)
            .zip(a.chunks_exact(n).zip(b.chunks_exact(n)))
            .enumerate()
            .for_each(|(i, (o, (x, y)))| f(i, o, x, y));
    }
}
