//! `sign` and `ReLU` by composite polynomials.
//!
//! Two families of odd stages, composed `p_k o ... o p_1`, approximate `sign` on
//! `[-1, -eps] u [eps, 1]`:
//! - Cheon, Kim, Kim, Lee, Lee ("Efficient homomorphic comparison methods with optimal
//!   complexity", Asiacrypt 2020): `f_n(x) = sum_{i=0}^n C(2i, i) / 4^i * x (1 - x^2)^i`, with
//!   `f_n(+-1) = +-1` and a zero of order `n` of `f_n'` there, so its iterates converge doubly
//!   exponentially to `sign` once `|x|` is away from 0;
//! - minimax composites (Lee, Lee, Kim, No, "Minimax approximation of sign function by
//!   composite polynomial", 2021): stage `i` is the odd minimax approximation of `sign` of its
//!   degree on `[tau_i, 1]`, divided by `1 + e_i` (its error) so that it maps `[tau_i, 1]` into
//!   `[tau_{i+1}, 1]`, `tau_{i+1} = (1 - e_i) / (1 + e_i)`. An odd `x q(x^2)` approximating
//!   `sign` on `[tau, 1]` has error `sqrt(u) |1/sqrt(u) - q(u)|` at `u = x^2`: `q` is the
//!   relative-error minimax of `1/sqrt(u)` on `[tau^2, 1]`, which [`remez`] fits.
//!
//! `ReLU(x) = x (1 + sign(x / B)) / 2` on `[-B, B]`.

use serde::{Deserialize, Serialize};

use super::Chebyshev;
use super::remez::{RemezOptions, remez};
use super::report::{DEFAULT_GRID, ErrorReport};
use crate::{ApproxError, Result};

/// Monomial coefficients (`x^0, x^1, ...`) of Cheon et al.'s `f_n`.
pub fn cheon_f(n: usize) -> Vec<f64> {
    let mut out = vec![0.0; 2 * n + 2];
    // x (1 - x^2)^i = sum_j C(i, j) (-1)^j x^{2j+1}.
    let mut central = 1.0; // C(2i, i) / 4^i
    for i in 0..=n {
        if i > 0 {
            central *= (2 * i - 1) as f64 / (2 * i) as f64;
        }
        let mut binom = 1.0;
        for j in 0..=i {
            if j > 0 {
                binom *= (i + 1 - j) as f64 / j as f64;
            }
            let sign = if j % 2 == 0 { 1.0 } else { -1.0 };
            out[2 * j + 1] += central * binom * sign;
        }
    }
    out
}

/// The odd minimax approximation of `sign` of odd `degree` on `[tau, 1]`, in the Chebyshev
/// basis of `[-1, 1]`, and its error.
///
/// # Errors
/// An even degree or `tau` outside `(0, 1)`, or as [`remez`].
pub fn minimax_sign_stage(tau: f64, degree: usize) -> Result<(Chebyshev, f64)> {
    if degree.is_multiple_of(2) || !(tau > 0.0 && tau < 1.0) {
        return Err(ApproxError::Invalid(format!(
            "sign stage needs an odd degree and 0 < tau < 1, got {degree}, {tau}"
        )));
    }
    let fit = remez(
        |u: f64| 1.0 / u.sqrt(),
        tau * tau,
        1.0,
        (degree - 1) / 2,
        &RemezOptions::relative(),
    )?;
    let q = fit.poly;
    let stage = Chebyshev::interpolate(|x| x * q.eval(x * x), -1.0, 1.0, degree);
    Ok((stage, fit.max_error))
}

/// A composite polynomial `p_k o ... o p_1` approximating `sign` on `[-1, -eps] u [eps, 1]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompositeSign {
    /// The stages in order of application, each in the Chebyshev basis of `[-1, 1]`.
    pub stages: Vec<Chebyshev>,
    /// The gap `(-eps, eps)` where no accuracy is promised.
    pub eps: f64,
    /// The error of the composite on `[-1, -eps] u [eps, 1]`.
    pub report: ErrorReport,
}

impl CompositeSign {
    /// `f_n^{d_f}` (Cheon et al.), measured on `[-1, -eps] u [eps, 1]`.
    pub fn cheon(n: usize, d_f: usize, eps: f64) -> Self {
        let f = Chebyshev::from_monomial(&cheon_f(n), -1.0, 1.0);
        Self::measured(vec![f; d_f], eps)
    }

    /// The minimax composite with stages of the given odd `degrees`, for `|x| >= eps`.
    ///
    /// # Errors
    /// An even degree or `eps` outside `(0, 1)`, or as [`remez`].
    pub fn minimax(eps: f64, degrees: &[usize]) -> Result<Self> {
        let mut tau = eps;
        let mut stages = Vec::with_capacity(degrees.len());
        for (i, &d) in degrees.iter().enumerate() {
            let (mut stage, e) = minimax_sign_stage(tau, d)?;
            if i + 1 < degrees.len() {
                for c in &mut stage.coeffs {
                    *c /= 1.0 + e;
                }
                tau = (1.0 - e) / (1.0 + e);
            }
            stages.push(stage);
        }
        Ok(Self::measured(stages, eps))
    }

    /// The minimax composite of the least multiplicative depth (stages of one degree among 7,
    /// 15, 31; depth `sum ceil(log2(d + 1))`) whose error for `|x| >= eps` is at most
    /// `2^-bits`, with at most 12 stages.
    ///
    /// # Errors
    /// No such composite, or as [`Self::minimax`].
    pub fn for_precision(eps: f64, bits: f64) -> Result<Self> {
        let target = 2f64.powf(-bits);
        let mut best: Option<(usize, Self)> = None;
        for d in [7usize, 15, 31] {
            for k in 1..=12 {
                let c = Self::minimax(eps, &vec![d; k])?;
                if c.report.max_abs <= target {
                    let depth = k * (d + 1).ilog2() as usize;
                    if best.as_ref().is_none_or(|(bd, _)| depth < *bd) {
                        best = Some((depth, c));
                    }
                    break;
                }
            }
        }
        best.map(|b| b.1).ok_or_else(|| {
            ApproxError::Invalid(format!(
                "no minimax sign composite reaches 2^-{bits} beyond {eps}"
            ))
        })
    }

    fn measured(stages: Vec<Chebyshev>, eps: f64) -> Self {
        let degree = stages.iter().map(Chebyshev::degree).product();
        let mut s = Self {
            stages,
            eps,
            report: ErrorReport::measure(|_| 0.0, |_| 0.0, (-1.0, 1.0), 0, 2),
        };
        s.report = ErrorReport::measure_excluding(
            f64::signum,
            |x| s.eval(x),
            (-1.0, 1.0),
            Some((-eps, eps)),
            degree,
            DEFAULT_GRID,
        );
        s
    }

    /// Evaluates the composite.
    pub fn eval(&self, x: f64) -> f64 {
        self.stages.iter().fold(x, |acc, p| p.eval(acc))
    }

    /// Degree of each stage.
    pub fn stage_degrees(&self) -> Vec<usize> {
        self.stages.iter().map(Chebyshev::degree).collect()
    }
}

/// `ReLU(x) = x (1 + sign(x / bound)) / 2` on `[-bound, bound]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompositeRelu {
    /// The sign approximation on `[-1, 1]`.
    pub sign: CompositeSign,
    /// The input bound `B`.
    pub bound: f64,
    /// The error on all of `[-B, B]` (no gap: near 0 the error is at most `eps * B`).
    pub report: ErrorReport,
}

impl CompositeRelu {
    /// ReLU on `[-bound, bound]` from a sign composite.
    pub fn new(sign: CompositeSign, bound: f64) -> Self {
        let degree = sign.report.degree + 1;
        let eval = |x: f64| 0.5 * x * (1.0 + sign.eval(x / bound));
        let report = ErrorReport::measure(
            |x: f64| x.max(0.0),
            eval,
            (-bound, bound),
            degree,
            DEFAULT_GRID,
        );
        Self {
            sign,
            bound,
            report,
        }
    }

    /// Evaluates the approximation.
    pub fn eval(&self, x: f64) -> f64 {
        0.5 * x * (1.0 + self.sign.eval(x / self.bound))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f_n_matches_the_paper() {
        // f_1 = (3x - x^3)/2, f_2 = (15x - 10x^3 + 3x^5)/8, f_3 = (35x - 35x^3 + 21x^5 - 5x^7)/16.
        let f1 = cheon_f(1);
        assert_eq!(f1, vec![0.0, 1.5, 0.0, -0.5]);
        let f2 = cheon_f(2);
        for (have, want) in f2.iter().zip([0.0, 15.0, 0.0, -10.0, 0.0, 3.0]) {
            assert!((have - want / 8.0).abs() < 1e-15);
        }
        let f3 = cheon_f(3);
        for (have, want) in f3.iter().zip([0.0, 35.0, 0.0, -35.0, 0.0, 21.0, 0.0, -5.0]) {
            assert!((have - want / 16.0).abs() < 1e-15);
        }
        for n in 1..=3 {
            let f = Chebyshev::from_monomial(&cheon_f(n), -1.0, 1.0);
            assert!(
                (f.eval(1.0) - 1.0).abs() < 1e-14 && (f.eval(-0.5) + f.eval(0.5)).abs() < 1e-15
            );
        }
    }
}
