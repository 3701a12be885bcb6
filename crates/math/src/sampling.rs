//! Sampling from a ChaCha20 CSPRNG: uniform residues, ternary and sparse-ternary secrets,
//! and the discrete Gaussian error distribution.
//!
//! Real keys draw the seed from the operating system ([`Sampler::from_os_rng`]); tests and
//! experiments pass a seed ([`Sampler::from_seed`]) so they are reproducible.

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::{Repr, RnsBasis, RnsPoly};

/// The standard deviation of the HE standard's error distribution.
pub const DEFAULT_SIGMA: f64 = 3.19;
/// Errors are truncated at `GAUSSIAN_TAIL * sigma`.
pub const GAUSSIAN_TAIL: f64 = 6.0;

/// A CSPRNG-backed sampler.
pub struct Sampler {
    rng: ChaCha20Rng,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sampler(ChaCha20)")
    }
}

impl Sampler {
    /// Seeded from the operating system's randomness (for real keys).
    pub fn from_os_rng() -> Self {
        Self {
            rng: ChaCha20Rng::from_os_rng(),
        }
    }

    /// Deterministic, from a 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self {
            rng: ChaCha20Rng::from_seed(seed),
        }
    }

    /// Deterministic, from a `u64` (tests).
    pub fn seeded(seed: u64) -> Self {
        Self {
            rng: ChaCha20Rng::seed_from_u64(seed),
        }
    }

    /// A fresh 32-byte seed drawn from this sampler.
    pub fn next_seed(&mut self) -> [u8; 32] {
        let mut s = [0u8; 32];
        self.rng.fill_bytes(&mut s);
        s
    }

    /// Uniform in `[0, q)` by rejection sampling.
    #[inline]
    pub fn uniform_below(&mut self, q: u64) -> u64 {
        let bits = 64 - (q - 1).leading_zeros();
        let mask = if bits == 64 {
            u64::MAX
        } else {
            (1u64 << bits) - 1
        };
        loop {
            let x = self.rng.next_u64() & mask;
            if x < q {
                return x;
            }
        }
    }

    /// A uniform polynomial modulo every prime of the first `limbs` primes of `basis`,
    /// tagged with `repr` (a uniform polynomial is uniform in either form).
    pub fn uniform_poly(&mut self, basis: &RnsBasis, limbs: usize, repr: Repr) -> RnsPoly {
        let n = basis.n();
        let mut p = RnsPoly::zero(n, limbs, repr);
        for i in 0..limbs {
            let q = basis.modulus(i).value();
            for x in p.limb_mut(i) {
                *x = self.uniform_below(q);
            }
        }
        p
    }

    /// Uniform ternary coefficients in `{-1, 0, 1}`.
    pub fn ternary(&mut self, n: usize) -> Vec<i64> {
        (0..n).map(|_| self.uniform_below(3) as i64 - 1).collect()
    }

    /// Ternary coefficients with exactly `h` nonzero entries (each `+-1`), at uniform positions.
    pub fn sparse_ternary(&mut self, n: usize, h: usize) -> Vec<i64> {
        let h = h.min(n);
        let mut out = vec![0i64; n];
        // Partial Fisher-Yates over positions.
        let mut idx: Vec<usize> = (0..n).collect();
        for k in 0..h {
            let j = k + self.uniform_below((n - k) as u64) as usize;
            idx.swap(k, j);
            out[idx[k]] = if self.rng.next_u32() & 1 == 0 { 1 } else { -1 };
        }
        out
    }

    /// Rounded Gaussian with standard deviation `sigma`, truncated at `GAUSSIAN_TAIL * sigma`.
    pub fn gaussian(&mut self, n: usize, sigma: f64) -> Vec<i64> {
        let bound = (GAUSSIAN_TAIL * sigma).ceil();
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            // Box-Muller: two independent normals per draw.
            let u1: f64 = 1.0 - self.rng.random::<f64>();
            let u2: f64 = self.rng.random::<f64>();
            let r = (-2.0 * u1.ln()).sqrt() * sigma;
            let t = std::f64::consts::TAU * u2;
            for z in [r * t.cos(), r * t.sin()] {
                let z = z.round();
                if z.abs() <= bound && out.len() < n {
                    out.push(z as i64);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributions_have_expected_moments() {
        let mut s = Sampler::seeded(7);
        let n = 1 << 16;
        let g = s.gaussian(n, DEFAULT_SIGMA);
        let var = g.iter().map(|&x| (x * x) as f64).sum::<f64>() / n as f64;
        let mean = g.iter().sum::<i64>() as f64 / n as f64;
        assert!(mean.abs() < 0.05, "mean {mean}");
        // Rounding adds 1/12 to the variance.
        assert!(
            (var.sqrt() - (DEFAULT_SIGMA * DEFAULT_SIGMA + 1.0 / 12.0).sqrt()).abs() < 0.05,
            "std {}",
            var.sqrt()
        );
        assert!(
            g.iter()
                .all(|&x| (x as f64).abs() <= (GAUSSIAN_TAIL * DEFAULT_SIGMA).ceil())
        );
        let t = s.ternary(n);
        for v in [-1, 0, 1] {
            let c = t.iter().filter(|&&x| x == v).count() as f64 / n as f64;
            assert!((c - 1.0 / 3.0).abs() < 0.01);
        }
        let sp = s.sparse_ternary(n, 192);
        assert_eq!(sp.iter().filter(|&&x| x != 0).count(), 192);
        let u: Vec<u64> = (0..n).map(|_| s.uniform_below(1000)).collect();
        let mean = u.iter().sum::<u64>() as f64 / n as f64;
        assert!((mean - 499.5).abs() < 5.0);
    }

    #[test]
    fn seeded_is_deterministic() {
        let a = Sampler::seeded(3).ternary(64);
        let b = Sampler::seeded(3).ternary(64);
        assert_eq!(a, b);
        assert_ne!(a, Sampler::seeded(4).ternary(64));
    }
}
