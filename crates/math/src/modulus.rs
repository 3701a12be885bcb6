//! Arithmetic modulo a word-sized prime: Barrett reduction for general products, Shoup
//! multiplication by a precomputed constant, and helpers (inverse, power, centering).

use crate::{MathError, Result};

/// Largest supported modulus (exclusive): lazy reductions keep values below `4q < 2^64`,
/// and the wide reduction's remainder below `5q < 2^64`.
pub const MAX_MODULUS: u64 = 1 << 61;

/// A modulus `q < 2^62` with its Barrett constant.
///
/// Products are reduced with `mu = floor(2^(2k) / q)`, `k = bit length of q`: for
/// `x < q^2`, `q_hat = ((x >> (k-1)) * mu) >> (k+1)` under-estimates `x / q` by at most 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Modulus {
    value: u64,
    bits: u32,
    mu: u64,
    mu_wide_hi: u64,
    mu_wide_lo: u64,
}

impl Modulus {
    /// Builds the reduction constants for `q`; fails unless `2 <= q < 2^62`.
    pub fn new(q: u64) -> Result<Self> {
        if !(2..MAX_MODULUS).contains(&q) {
            return Err(MathError::UnsupportedModulus { modulus: q });
        }
        let bits = 64 - q.leading_zeros();
        let mu = ((1u128 << (2 * bits)) / q as u128) as u64;
        let mu_wide = u128::MAX / q as u128;
        Ok(Self {
            value: q,
            bits,
            mu,
            mu_wide_hi: (mu_wide >> 64) as u64,
            mu_wide_lo: mu_wide as u64,
        })
    }

    /// The modulus `q`.
    #[inline(always)]
    pub fn value(&self) -> u64 {
        self.value
    }

    /// Bit length of `q`.
    #[inline(always)]
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// `x mod q` for any `x < q^2` (Barrett).
    #[inline(always)]
    pub fn reduce_u128(&self, x: u128) -> u64 {
        let k = self.bits;
        let q_hat = (((x >> (k - 1)) as u64 as u128 * self.mu as u128) >> (k + 1)) as u64;
        let r = (x as u64).wrapping_sub(q_hat.wrapping_mul(self.value));
        // r < 3q: branch-free conditional subtractions.
        let r = r.min(r.wrapping_sub(2 * self.value));
        r.min(r.wrapping_sub(self.value))
    }

    /// `x mod q` for an arbitrary 128-bit `x` (128-bit Barrett with `floor(2^128 / q)`);
    /// used to reduce lazily accumulated sums of products.
    #[inline(always)]
    pub fn reduce_u128_any(&self, x: u128) -> u64 {
        let (x1, x0) = ((x >> 64) as u64 as u128, x as u64 as u128);
        let (m1, m0) = (self.mu_wide_hi as u128, self.mu_wide_lo as u128);
        // floor(x * mu / 2^128), dropping the low-low partial product: under by at most 3.
        let mid = ((x1 * m0) >> 64) + ((x0 * m1) >> 64);
        // Only the low word of q_hat matters: the true remainder is below 5q < 2^64.
        let q_hat = (x1 as u64)
            .wrapping_mul(self.mu_wide_hi)
            .wrapping_add(mid as u64);
        let q = self.value;
        let r = (x as u64).wrapping_sub(q_hat.wrapping_mul(q));
        // r < 5q: branch-free conditional subtractions (min picks the non-wrapped value).
        let r = r.min(r.wrapping_sub(4 * q));
        let r = r.min(r.wrapping_sub(2 * q));
        r.min(r.wrapping_sub(q))
    }

    /// `x mod q` for any `u64`.
    #[inline(always)]
    pub fn reduce(&self, x: u64) -> u64 {
        // Every u64 is below q^2 once q has 32 bits: Barrett applies.
        if self.bits > 32 {
            self.reduce_u128(x as u128)
        } else {
            x % self.value
        }
    }

    /// `(a * b) mod q` for `a, b < q`.
    #[inline(always)]
    pub fn mul(&self, a: u64, b: u64) -> u64 {
        self.reduce_u128(a as u128 * b as u128)
    }

    /// `(a + b) mod q` for `a, b < q`.
    #[inline(always)]
    pub fn add(&self, a: u64, b: u64) -> u64 {
        let s = a + b;
        if s >= self.value { s - self.value } else { s }
    }

    /// `(a - b) mod q` for `a, b < q`.
    #[inline(always)]
    pub fn sub(&self, a: u64, b: u64) -> u64 {
        if a >= b { a - b } else { a + self.value - b }
    }

    /// `-a mod q` for `a < q`.
    #[inline(always)]
    pub fn neg(&self, a: u64) -> u64 {
        if a == 0 { 0 } else { self.value - a }
    }

    /// Shoup's precomputed quotient `floor(w * 2^64 / q)` for a constant `w < q`.
    #[inline]
    pub fn shoup(&self, w: u64) -> u64 {
        (((w as u128) << 64) / self.value as u128) as u64
    }

    /// `(a * w) mod q` with `w_shoup = shoup(w)`; `a` may be any `u64`, result in `[0, q)`.
    #[inline(always)]
    pub fn mul_shoup(&self, a: u64, w: u64, w_shoup: u64) -> u64 {
        let r = self.mul_shoup_lazy(a, w, w_shoup);
        if r >= self.value { r - self.value } else { r }
    }

    /// `(a * w) mod q` in `[0, 2q)` (no final correction).
    #[inline(always)]
    pub fn mul_shoup_lazy(&self, a: u64, w: u64, w_shoup: u64) -> u64 {
        let q_hat = ((a as u128 * w_shoup as u128) >> 64) as u64;
        a.wrapping_mul(w)
            .wrapping_sub(q_hat.wrapping_mul(self.value))
    }

    /// `a^e mod q`.
    pub fn pow(&self, mut a: u64, mut e: u64) -> u64 {
        let mut r = 1 % self.value;
        a = self.reduce(a);
        while e > 0 {
            if e & 1 == 1 {
                r = self.mul(r, a);
            }
            a = self.mul(a, a);
            e >>= 1;
        }
        r
    }

    /// `a^-1 mod q` for prime `q` (by the extended Euclidean algorithm, so any `q` works
    /// when `gcd(a, q) = 1`).
    pub fn inv(&self, a: u64) -> Result<u64> {
        let (mut t, mut new_t) = (0i128, 1i128);
        let (mut r, mut new_r) = (self.value as i128, self.reduce(a) as i128);
        while new_r != 0 {
            let quotient = r / new_r;
            (t, new_t) = (new_t, t - quotient * new_t);
            (r, new_r) = (new_r, r - quotient * new_r);
        }
        if r != 1 {
            return Err(MathError::NotInvertible {
                value: a,
                modulus: self.value,
            });
        }
        Ok(t.rem_euclid(self.value as i128) as u64)
    }

    /// The representative of `a` in `(-q/2, q/2]`.
    #[inline(always)]
    pub fn center(&self, a: u64) -> i64 {
        if a > self.value / 2 {
            a as i64 - self.value as i64
        } else {
            a as i64
        }
    }

    /// `x mod q` for a signed `x`.
    #[inline(always)]
    pub fn from_i64(&self, x: i64) -> u64 {
        let r = self.reduce(x.unsigned_abs());
        if x < 0 { self.neg(r) } else { r }
    }

    /// `x mod q` for a signed 128-bit `x`.
    #[inline]
    pub fn from_i128(&self, x: i128) -> u64 {
        let r = self.reduce_u128_any(x.unsigned_abs());
        if x < 0 { self.neg(r) } else { r }
    }
}

/// Montgomery arithmetic modulo an odd `q < 2^62` with `R = 2^64`.
///
/// Kept for completeness and tested against [`Modulus`]; Barrett and Shoup are faster in the
/// kernels we measured (see BENCHMARKS.md), so the engine uses those.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Montgomery {
    q: u64,
    /// `-q^-1 mod 2^64`.
    q_neg_inv: u64,
    /// `R^2 mod q`.
    r2: u64,
}

impl Montgomery {
    /// Constants for an odd modulus `q < 2^62`.
    pub fn new(q: u64) -> Result<Self> {
        if q.is_multiple_of(2) || !(3..MAX_MODULUS).contains(&q) {
            return Err(MathError::UnsupportedModulus { modulus: q });
        }
        // Newton iteration for q^-1 mod 2^64.
        let mut inv: u64 = 1;
        for _ in 0..6 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(q.wrapping_mul(inv)));
        }
        let r2 = ((1u128 << 64) % q as u128) as u64;
        let r2 = ((r2 as u128 * r2 as u128) % q as u128) as u64;
        Ok(Self {
            q,
            q_neg_inv: inv.wrapping_neg(),
            r2,
        })
    }

    /// `x * R^-1 mod q` for `x < q * 2^64`.
    #[inline(always)]
    pub fn redc(&self, x: u128) -> u64 {
        let m = (x as u64).wrapping_mul(self.q_neg_inv);
        let t = ((x + m as u128 * self.q as u128) >> 64) as u64;
        if t >= self.q { t - self.q } else { t }
    }

    /// Into Montgomery form: `a * R mod q`.
    #[inline(always)]
    pub fn to_mont(&self, a: u64) -> u64 {
        self.redc(a as u128 * self.r2 as u128)
    }

    /// Out of Montgomery form.
    #[inline(always)]
    pub fn from_mont(&self, a: u64) -> u64 {
        self.redc(a as u128)
    }

    /// Product of two values in Montgomery form.
    #[inline(always)]
    pub fn mul(&self, a: u64, b: u64) -> u64 {
        self.redc(a as u128 * b as u128)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive_mul(a: u64, b: u64, q: u64) -> u64 {
        ((a as u128 * b as u128) % q as u128) as u64
    }

    proptest! {
        #[test]
        fn barrett_matches_naive(q in 2u64..MAX_MODULUS, a: u64, b: u64) {
            let m = Modulus::new(q).unwrap();
            let (a, b) = (a % q, b % q);
            prop_assert_eq!(m.mul(a, b), naive_mul(a, b, q));
            prop_assert_eq!(m.add(a, b), ((a as u128 + b as u128) % q as u128) as u64);
            prop_assert_eq!(m.sub(a, b), ((a as u128 + q as u128 - b as u128) % q as u128) as u64);
            prop_assert_eq!(m.add(m.neg(a), a), 0);
        }

        #[test]
        fn wide_reduction_matches_naive(q in 2u64..MAX_MODULUS, x: u128) {
            let m = Modulus::new(q).unwrap();
            prop_assert_eq!(m.reduce_u128_any(x), (x % q as u128) as u64);
        }

        #[test]
        fn shoup_matches_naive(q in 2u64..MAX_MODULUS, a: u64, w: u64) {
            let m = Modulus::new(q).unwrap();
            let w = w % q;
            let ws = m.shoup(w);
            prop_assert_eq!(m.mul_shoup(a, w, ws), naive_mul(a % q, w, q));
            prop_assert!(m.mul_shoup_lazy(a, w, ws) < 2 * q);
        }

        #[test]
        fn montgomery_matches_naive(q in 1u64..(MAX_MODULUS / 2), a: u64, b: u64) {
            let q = 2 * q + 1;
            let mt = Montgomery::new(q).unwrap();
            let (a, b) = (a % q, b % q);
            let p = mt.from_mont(mt.mul(mt.to_mont(a), mt.to_mont(b)));
            prop_assert_eq!(p, naive_mul(a, b, q));
        }

        #[test]
        fn inverse_and_signed(q in 3u64..MAX_MODULUS, a: u64, x: i64) {
            let m = Modulus::new(q).unwrap();
            let a = a % q;
            if let Ok(inv) = m.inv(a) {
                prop_assert_eq!(m.mul(a, inv), 1);
            }
            let r = m.from_i64(x);
            prop_assert_eq!(r as i128, (x as i128).rem_euclid(q as i128));
            prop_assert_eq!(m.from_i128(x as i128 * 3), ((x as i128 * 3).rem_euclid(q as i128)) as u64);
        }
    }

    #[test]
    fn rejects_bad_moduli() {
        assert!(Modulus::new(0).is_err());
        assert!(Modulus::new(1).is_err());
        assert!(Modulus::new(1 << 62).is_err());
        assert!(Montgomery::new(10).is_err());
        assert_eq!(Modulus::new(97).unwrap().pow(5, 96), 1);
    }
}
