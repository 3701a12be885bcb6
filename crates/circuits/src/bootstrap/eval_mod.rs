//! EvalMod: the reduction `t -> t mod 1` of bootstrapping, approximated by `sin(2 pi t)`.
//!
//! After ModRaise and CoeffsToSlots a slot holds `y = t / K` with `t = I + eps`, `I` an integer
//! with `|I| < K` and `eps = m / q_0` the wanted message. Since `sin(2 pi t) = sin(2 pi eps)`
//! and `sin(2 pi eps) ~= 2 pi eps` for small `eps`, the circuit evaluates
//!
//! ```text
//! c_0 = p(y) ~= cos(2 pi (K y - 1/4) / 2^r)        (Chebyshev interpolant on [-1, 1])
//! c_(j+1) = 2 c_j^2 - 1                             (r double angles)
//! ```
//!
//! so that `c_r = cos(2 pi (t - 1/4)) = sin(2 pi t)` (the scaled cosine with double angle of
//! Han-Ki and Bossuat et al.). The factor `2 pi` and `q_0 / scale` are absorbed into the exact
//! scale bookkeeping, not multiplied.
//!
//! **Error analysis.** Three errors add up (relative to the message `eps`): (1) the sine's
//! curvature, `|sin(2 pi eps)/(2 pi) - eps| <= (2 pi)^2 |eps|^3 / 6`, i.e. a relative error
//! `(2 pi eps)^2 / 6` (with `eps <= 2^-10` about `2^-17.6`; it shrinks by 4 per bit of
//! `q_0 / scale`); (2) the interpolation error of `p`, amplified by each double angle by at
//! most 4 (the derivative of `2c^2 - 1`), so by `4^r` ([`EvalModSpec::poly_error`] and
//! [`EvalModSpec::max_error`] measure it); (3) the noise of the ciphertext, amplified the same
//! way. `K` comes from the sparse secret's Hamming weight `h` ([`k_bound`]).

use std::f64::consts::{PI, TAU};

use psf_approx::Chebyshev;

/// The EvalMod approximation: interval half-width `K`, degree of the cosine interpolant and
/// number of double angles `r`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalModSpec {
    /// `|I| < K` for the integer part `I` after ModRaise.
    pub k: f64,
    /// Degree of the Chebyshev interpolant of the scaled cosine.
    pub degree: usize,
    /// Number of double angles `r`.
    pub double_angle: u32,
}

impl EvalModSpec {
    /// The interpolant `p(y) ~= cos(2 pi (K y - 1/4) / 2^r)` on `[-1, 1]`.
    pub fn cosine(&self) -> Chebyshev {
        let (k, div) = (self.k, f64::from(1u32 << self.double_angle));
        Chebyshev::interpolate(
            |y| (TAU * (k * y - 0.25) / div).cos(),
            -1.0,
            1.0,
            self.degree,
        )
    }

    /// Levels consumed: `ceil(log2(degree + 1))` for the interpolant plus one per double angle.
    pub fn depth(&self) -> usize {
        (usize::BITS - self.degree.leading_zeros()) as usize + self.double_angle as usize
    }

    /// The `f64` twin of the circuit: `~= sin(2 pi K y)`.
    pub fn eval_f64(&self, y: f64) -> f64 {
        self.eval_with(&self.cosine(), y)
    }

    fn eval_with(&self, p: &Chebyshev, y: f64) -> f64 {
        (0..self.double_angle).fold(p.eval(y), |c, _| 2.0 * c * c - 1.0)
    }

    /// Largest error of the interpolant against the scaled cosine on a dense grid of `[-1, 1]`.
    pub fn poly_error(&self) -> f64 {
        let (p, div) = (self.cosine(), f64::from(1u32 << self.double_angle));
        grid(1 << 14)
            .map(|y| (p.eval(y) - (TAU * (self.k * y - 0.25) / div).cos()).abs())
            .fold(0.0, f64::max)
    }

    /// Largest error of `eval / (2 pi)` against `t mod 1` for `t = i + eps`, `|i| < K`
    /// integer, `|eps| <= eps_max`: the error of EvalMod on messages up to `eps_max`
    /// (`= max|m| / q_0`), in the units of `eps`.
    pub fn max_error(&self, eps_max: f64) -> f64 {
        let p = self.cosine();
        let top = self.k.ceil() as i64 - 1;
        let mut worst = 0.0f64;
        for i in -top..=top {
            for e in grid(64) {
                let eps = e * eps_max;
                let y = (i as f64 + eps) / self.k;
                worst = worst.max((self.eval_with(&p, y) / TAU - eps).abs());
            }
        }
        worst
    }
}

/// `count + 1` evenly spaced points of `[-1, 1]`.
fn grid(count: usize) -> impl Iterator<Item = f64> {
    (0..=count).map(move |i| -1.0 + 2.0 * i as f64 / count as f64)
}

/// A bound `K` with `P(max_j |I_j| >= K) <= 2^-log2_failure` over the `N = 2^log_n`
/// coefficients, for a ternary secret of Hamming weight `h`.
///
/// Each `I_j` is (up to rounding) a sum of `h + 1` independent variables uniform in
/// `[-1/2, 1/2]` (the centered `c_0/q_0` and `c_1/q_0` coefficients times the secret's signs), of
/// variance `(h + 1)/12`; the bound uses its Gaussian tail (the Irwin-Hall tail is lighter)
/// and a union bound over the coefficients, and is rounded up to an integer.
pub fn k_bound(h: usize, log_n: u32, log2_failure: f64) -> f64 {
    let sigma = ((h + 1) as f64 / 12.0).sqrt();
    // z with N * exp(-z^2 / 2) = 2^-log2_failure (the Gaussian tail bound
    // P(|X| >= z sigma) <= exp(-z^2 / 2)).
    let target = (-log2_failure - f64::from(log_n)) * std::f64::consts::LN_2;
    let z = (-2.0 * target).sqrt();
    (sigma * z).ceil().max(1.0)
}

/// The message ratio's effect: `(2 pi eps)^2 / 6`, the relative error of `sin(2 pi eps)/(2 pi)`
/// against `eps`.
pub fn sine_relative_error(eps: f64) -> f64 {
    (2.0 * PI * eps).powi(2) / 6.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_cosine_with_double_angle_reduces_modulo_one() {
        let spec = EvalModSpec {
            k: 16.0,
            degree: 62,
            double_angle: 3,
        };
        assert_eq!(spec.depth(), 9);
        let poly = spec.poly_error();
        assert!(poly < 1e-13, "interpolation error {poly:e}");
        // Messages up to 2^-10 of q_0: the curvature term dominates, ~eps^3 (2 pi)^2 / 6.
        let eps = 2f64.powi(-10);
        let err = spec.max_error(eps);
        let curvature = eps * sine_relative_error(eps);
        assert!(err < 1.1 * curvature + 1e-13, "{err:e} vs {curvature:e}");
        // Relative precision in bits of the message: > 17.
        assert!((eps / err).log2() > 17.0);
    }

    #[test]
    fn low_degree_shows_its_error() {
        let spec = EvalModSpec {
            k: 16.0,
            degree: 30,
            double_angle: 3,
        };
        assert_eq!(spec.depth(), 8);
        let (p, m) = (spec.poly_error(), spec.max_error(2f64.powi(-12)));
        // Amplified by at most 4^r / (2 pi) through the double angles.
        assert!(m <= p * 64.0 / TAU + 2f64.powi(-12) * sine_relative_error(2f64.powi(-12)) * 1.1);
    }

    #[test]
    fn k_bound_grows_with_the_weight_and_holds_empirically() {
        let k32 = k_bound(32, 16, 40.0);
        assert!((10.0..=16.0).contains(&k32), "{k32}");
        assert!(k_bound(192, 16, 40.0) > k32);
        // Empirical: sums of 33 uniforms never reach K over 2^16 samples.
        let mut s = 7u64;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let worst = (0..1 << 16)
            .map(|_| (0..33).map(|_| next()).sum::<f64>().abs())
            .fold(0.0, f64::max);
        assert!(worst < k32, "{worst} >= {k32}");
    }
}
