//! Negacyclic number-theoretic transform over `Z_q[X]/(X^N + 1)`, `N = 2^10 .. 2^17`.
//!
//! Two backends compute the *same* transform (same root `psi`, same bit-reversed output
//! order), so they are interchangeable bit for bit:
//! - [`NttBackend::Tfhe`]: `tfhe-ntt` with runtime CPU dispatch (AVX-512 IFMA for primes below
//!   2^51, AVX-512 / AVX2 otherwise); the default, measured faster (BENCHMARKS.md).
//! - [`NttBackend::Harvey`]: our own radix-2 Cooley-Tukey / Gentleman-Sande transform with
//!   Shoup multiplications and lazy reduction in `[0, 4q)`; the portable reference.
//!
//! Evaluation order: `forward(a)[k] = a(psi^(2 * bitrev(k) + 1))`.

use crate::{MathError, Modulus, Result};

/// Smallest supported `log2 N`.
pub const MIN_LOG_N: u32 = 4;
/// Largest supported `log2 N`.
pub const MAX_LOG_N: u32 = 17;

/// Which implementation runs the transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NttBackend {
    /// `tfhe-ntt` (SIMD, runtime-dispatched).
    #[default]
    Tfhe,
    /// Our scalar Harvey transform.
    Harvey,
}

/// Precomputed tables for one prime and one ring degree.
#[derive(Clone)]
pub struct NttPlan {
    n: usize,
    modulus: Modulus,
    psi: u64,
    harvey: HarveyTables,
    tfhe: Option<tfhe_ntt::prime64::Plan>,
    backend: NttBackend,
}

#[derive(Clone)]
struct HarveyTables {
    /// `psi^bitrev(k)` and Shoup quotients.
    fwd: Vec<(u64, u64)>,
    /// `psi^-bitrev(k)` and Shoup quotients.
    inv: Vec<(u64, u64)>,
    n_inv: (u64, u64),
}

impl std::fmt::Debug for NttPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NttPlan")
            .field("n", &self.n)
            .field("q", &self.modulus.value())
            .field("backend", &self.backend)
            .finish()
    }
}

fn bit_reverse(x: usize, log_n: u32) -> usize {
    x.reverse_bits() >> (usize::BITS - log_n)
}

impl NttPlan {
    /// Plan for degree `n` and NTT-friendly prime `q` with the default backend.
    pub fn new(n: usize, q: u64) -> Result<Self> {
        Self::with_backend(n, q, NttBackend::default())
    }

    /// Plan with an explicit backend. Both backends use `tfhe-ntt`'s choice of root.
    pub fn with_backend(n: usize, q: u64, backend: NttBackend) -> Result<Self> {
        let log_n = n.trailing_zeros();
        if !n.is_power_of_two() || !(MIN_LOG_N..=MAX_LOG_N).contains(&log_n) {
            return Err(MathError::UnsupportedDegree {
                n,
                min_log: MIN_LOG_N,
                max_log: MAX_LOG_N,
            });
        }
        let modulus = Modulus::new(q)?;
        if !crate::is_ntt_friendly(q, n) {
            return Err(MathError::NotNttFriendly { modulus: q, n });
        }
        let tfhe = tfhe_ntt::prime64::Plan::try_new(n, q)
            .ok_or(MathError::NotNttFriendly { modulus: q, n })?;
        // The root tfhe-ntt uses: the first output of the transform of X is psi.
        let mut x = vec![0u64; n];
        x[1] = 1;
        tfhe.fwd(&mut x);
        let psi = x[0] % q;
        let harvey = HarveyTables::new(n, &modulus, psi)?;
        let tfhe = (backend == NttBackend::Tfhe).then_some(tfhe);
        Ok(Self {
            n,
            modulus,
            psi,
            harvey,
            tfhe,
            backend,
        })
    }

    /// Ring degree `N`.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The prime.
    pub fn modulus(&self) -> &Modulus {
        &self.modulus
    }

    /// The primitive `2N`-th root of unity the transform evaluates at.
    pub fn psi(&self) -> u64 {
        self.psi
    }

    /// The backend in use.
    pub fn backend(&self) -> NttBackend {
        self.backend
    }

    /// In-place forward transform; input in `[0, q)`, output in `[0, q)`, bit-reversed order.
    pub fn forward(&self, a: &mut [u64]) {
        debug_assert_eq!(a.len(), self.n);
        match &self.tfhe {
            Some(plan) => plan.fwd(a),
            None => self.harvey.forward(a, &self.modulus),
        }
    }

    /// In-place inverse transform (including the `1/N` factor); output in `[0, q)`.
    pub fn inverse(&self, a: &mut [u64]) {
        debug_assert_eq!(a.len(), self.n);
        match &self.tfhe {
            Some(plan) => {
                plan.inv(a);
                plan.normalize(a);
            }
            None => self.harvey.inverse(a, &self.modulus),
        }
    }

    /// `acc[i] = (acc[i] + a[i] * b[i]) mod q` (SIMD with the tfhe backend).
    pub fn mul_accumulate(&self, acc: &mut [u64], a: &[u64], b: &[u64]) {
        match &self.tfhe {
            Some(plan) => plan.mul_accumulate(acc, a, b),
            None => {
                let m = &self.modulus;
                for ((c, &x), &y) in acc.iter_mut().zip(a).zip(b) {
                    *c = m.add(*c, m.mul(x, y));
                }
            }
        }
    }

    /// The plan of the transform of polynomials in `X^gap`: degree `n / gap` at the root
    /// `psi^gap` (Harvey backend), for [`Self::forward_strided`].
    ///
    /// # Errors
    /// `gap` not a power of two, or `n / gap` below the smallest supported degree.
    pub fn strided_plan(&self, gap: usize) -> Result<NttPlan> {
        let small = self.n / gap.max(1);
        let log = small.trailing_zeros();
        if !gap.is_power_of_two() || gap > self.n || !(MIN_LOG_N..=MAX_LOG_N).contains(&log) {
            return Err(MathError::UnsupportedDegree {
                n: small,
                min_log: MIN_LOG_N,
                max_log: MAX_LOG_N,
            });
        }
        let psi = self.modulus.pow(self.psi, gap as u64);
        Ok(Self {
            n: small,
            modulus: self.modulus,
            psi,
            harvey: HarveyTables::new(small, &self.modulus, psi)?,
            tfhe: None,
            backend: NttBackend::Harvey,
        })
    }

    /// The forward transform of `p(X) = a(X^gap)` (degree `N`, `gap = N / a.len()`) from `a`
    /// (in `[0, q)`, transformed in place by `small`, the plan of [`Self::strided_plan`]),
    /// written to `out` (`N` values): `p(psi^(2 bitrev(k) + 1)) = a(psi_small^(2 bitrev'(k / gap)
    /// + 1))`, so each of `a`'s transform values fills `gap` consecutive outputs. Costs a
    /// transform of degree `N / gap` and `N` writes instead of a transform of degree `N`.
    pub fn forward_strided(&self, small: &NttPlan, a: &mut [u64], out: &mut [u64]) {
        debug_assert_eq!(out.len(), self.n);
        debug_assert_eq!(a.len(), small.n);
        small.forward(a);
        let gap = self.n / small.n;
        for (chunk, &v) in out.chunks_exact_mut(gap).zip(a.iter()) {
            chunk.fill(v);
        }
    }

    /// The exponent `e_k` with `forward(a)[k] = a(psi^e_k)`, `e_k = 2 * bitrev(k) + 1`.
    pub fn evaluation_exponent(&self, k: usize) -> usize {
        2 * bit_reverse(k, self.n.trailing_zeros()) + 1
    }

    /// Permutation realising `X -> X^g` (odd `g`) in the evaluation domain:
    /// `forward(a(X^g))[k] = forward(a)[perm[k]]`.
    pub fn automorphism_permutation(&self, g: usize) -> Vec<u32> {
        let (n, two_n) = (self.n, 2 * self.n);
        let log_n = n.trailing_zeros();
        (0..n)
            .map(|k| {
                let e = (self.evaluation_exponent(k) * (g % two_n)) % two_n;
                bit_reverse((e - 1) / 2, log_n) as u32
            })
            .collect()
    }
}

impl HarveyTables {
    fn new(n: usize, m: &Modulus, psi: u64) -> Result<Self> {
        let log_n = n.trailing_zeros();
        let psi_inv = m.inv(psi)?;
        let table = |root: u64| -> Vec<(u64, u64)> {
            let mut powers = vec![0u64; n];
            let mut p = 1u64;
            for i in 0..n {
                powers[bit_reverse(i, log_n)] = p;
                p = m.mul(p, root);
            }
            powers.into_iter().map(|w| (w, m.shoup(w))).collect()
        };
        let n_inv = m.inv(n as u64)?;
        Ok(Self {
            fwd: table(psi),
            inv: table(psi_inv),
            n_inv: (n_inv, m.shoup(n_inv)),
        })
    }

    fn forward(&self, a: &mut [u64], m: &Modulus) {
        let q = m.value();
        let two_q = 2 * q;
        let n = a.len();
        let (mut t, mut groups) = (n, 1);
        while groups < n {
            t >>= 1;
            for (i, block) in a.chunks_exact_mut(2 * t).enumerate() {
                let (w, ws) = self.fwd[groups + i];
                let (x, y) = block.split_at_mut(t);
                for (u, v) in x.iter_mut().zip(y.iter_mut()) {
                    let a0 = if *u >= two_q { *u - two_q } else { *u };
                    let b0 = m.mul_shoup_lazy(*v, w, ws);
                    *u = a0 + b0;
                    *v = a0 + two_q - b0;
                }
            }
            groups <<= 1;
        }
        for x in a.iter_mut() {
            let mut v = *x;
            if v >= two_q {
                v -= two_q;
            }
            if v >= q {
                v -= q;
            }
            *x = v;
        }
    }

    fn inverse(&self, a: &mut [u64], m: &Modulus) {
        let two_q = 2 * m.value();
        let n = a.len();
        let (mut t, mut groups) = (1, n);
        while groups > 1 {
            let half = groups >> 1;
            for (i, block) in a.chunks_exact_mut(2 * t).enumerate() {
                let (w, ws) = self.inv[half + i];
                let (x, y) = block.split_at_mut(t);
                for (u, v) in x.iter_mut().zip(y.iter_mut()) {
                    let (a0, b0) = (*u, *v);
                    let s = a0 + b0;
                    *u = if s >= two_q { s - two_q } else { s };
                    *v = m.mul_shoup_lazy(a0 + two_q - b0, w, ws);
                }
            }
            t <<= 1;
            groups = half;
        }
        let (ni, nis) = self.n_inv;
        for x in a.iter_mut() {
            *x = m.mul_shoup(*x, ni, nis);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PrimeSearch, ntt_primes};
    use proptest::prelude::*;

    fn naive_negacyclic(a: &[u64], b: &[u64], m: &Modulus) -> Vec<u64> {
        let n = a.len();
        let mut c = vec![0u64; n];
        for i in 0..n {
            for j in 0..n {
                let p = m.mul(a[i], b[j]);
                let k = i + j;
                if k < n {
                    c[k] = m.add(c[k], p);
                } else {
                    c[k - n] = m.sub(c[k - n], p);
                }
            }
        }
        c
    }

    fn plans(n: usize, bits: u32) -> (NttPlan, NttPlan) {
        let q = ntt_primes(bits, n, 1, PrimeSearch::Below, &[]).unwrap()[0];
        (
            NttPlan::with_backend(n, q, NttBackend::Tfhe).unwrap(),
            NttPlan::with_backend(n, q, NttBackend::Harvey).unwrap(),
        )
    }

    /// The strided transform of a polynomial in `X^gap` equals the full transform, on both
    /// backends' root.
    #[test]
    fn strided_transform_equals_the_full_one() {
        for (log_n, gap) in [(10usize, 4usize), (12, 64), (12, 256), (8, 16)] {
            let n = 1 << log_n;
            let (t, h) = plans(n, 55);
            let q = t.modulus().value();
            let mut s = 7u64;
            let small: Vec<u64> = (0..n / gap)
                .map(|_| {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (s >> 8) % q
                })
                .collect();
            let mut full = vec![0u64; n];
            for (i, &c) in small.iter().enumerate() {
                full[i * gap] = c;
            }
            for plan in [&t, &h] {
                let mut want = full.clone();
                plan.forward(&mut want);
                let sub = plan.strided_plan(gap).unwrap();
                let (mut a, mut have) = (small.clone(), vec![0u64; n]);
                plan.forward_strided(&sub, &mut a, &mut have);
                assert_eq!(want, have, "N = {n}, gap {gap}");
            }
        }
        let (t, _) = plans(64, 50);
        assert!(t.strided_plan(3).is_err());
        assert!(t.strided_plan(16).is_err()); // degree 4 < the smallest supported
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn backends_agree_and_convolve(log_n in 4u32..8, bits in prop::sample::select(vec![30u32, 50, 55, 60, 61]), seed: u64) {
            let n = 1 << log_n;
            let (t, h) = plans(n, bits);
            let m = *t.modulus();
            let mut s = seed | 1;
            let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s % m.value() };
            let a: Vec<u64> = (0..n).map(|_| next()).collect();
            let b: Vec<u64> = (0..n).map(|_| next()).collect();
            let (mut fa, mut fb, mut ha) = (a.clone(), b.clone(), a.clone());
            t.forward(&mut fa);
            h.forward(&mut ha);
            prop_assert_eq!(&fa, &ha);
            t.forward(&mut fb);
            let mut prod: Vec<u64> = fa.iter().zip(&fb).map(|(&x, &y)| m.mul(x, y)).collect();
            let mut prod_h = prod.clone();
            t.inverse(&mut prod);
            h.inverse(&mut prod_h);
            prop_assert_eq!(&prod, &prod_h);
            prop_assert_eq!(prod, naive_negacyclic(&a, &b, &m));
        }
    }

    #[test]
    fn evaluation_order_and_automorphisms() {
        let n = 64;
        let (t, _) = plans(n, 50);
        let m = *t.modulus();
        let a: Vec<u64> = (0..n as u64).map(|i| (i * 7919 + 13) % m.value()).collect();
        let mut fa = a.clone();
        t.forward(&mut fa);
        for (k, &v) in fa.iter().enumerate() {
            let x = m.pow(t.psi(), t.evaluation_exponent(k) as u64);
            let direct = a.iter().rev().fold(0u64, |acc, &c| m.add(m.mul(acc, x), c));
            assert_eq!(v, direct);
        }
        for g in [5usize, 25, 2 * n - 1, 3] {
            // a(X^g) in the coefficient domain.
            let mut ag = vec![0u64; n];
            for (i, &c) in a.iter().enumerate() {
                let e = (i * g) % (2 * n);
                if e < n {
                    ag[e] = m.add(ag[e], c)
                } else {
                    ag[e - n] = m.sub(ag[e - n], c)
                }
            }
            t.forward(&mut ag);
            let perm = t.automorphism_permutation(g);
            let permuted: Vec<u64> = perm.iter().map(|&p| fa[p as usize]).collect();
            assert_eq!(ag, permuted, "g = {g}");
        }
    }

    #[test]
    fn rejects_bad_inputs() {
        assert!(NttPlan::new(48, 97).is_err());
        assert!(NttPlan::new(1 << 18, 0x3fff_ffff_0000_0001).is_err());
        assert!(NttPlan::new(16, 113).is_err()); // 113 != 1 mod 32
    }
}
