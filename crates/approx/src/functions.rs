//! The functions psformer approximates, each as a minimax polynomial on a stated interval with
//! its measured error: GELU and SiLU (absolute error), `1/x` and `1/sqrt(x)` (relative error,
//! as the first guess of Newton/Goldschmidt iterations).

use serde::{Deserialize, Serialize};

use super::Chebyshev;
use super::remez::{RemezOptions, remez};
use super::report::{DEFAULT_GRID, ErrorReport};
use crate::{ApproxError, Result};

/// A polynomial approximation of a named function with its measured error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approximation {
    /// What is approximated, e.g. `"gelu"`.
    pub name: String,
    /// The polynomial, in the Chebyshev basis of its interval.
    pub poly: Chebyshev,
    /// Its error against the exact function on a dense grid of the interval.
    pub report: ErrorReport,
}

impl Approximation {
    /// Fits the minimax polynomial of `f` with `opts` and measures it.
    ///
    /// # Errors
    /// As [`remez`].
    pub fn minimax(
        name: &str,
        f: impl Fn(f64) -> f64 + Copy,
        (a, b): (f64, f64),
        degree: usize,
        opts: &RemezOptions,
    ) -> Result<Self> {
        let fit = remez(f, a, b, degree, opts)?;
        let report = ErrorReport::measure(f, |x| fit.poly.eval(x), (a, b), degree, DEFAULT_GRID);
        Ok(Self {
            name: name.into(),
            poly: fit.poly,
            report,
        })
    }

    /// Evaluates the polynomial.
    pub fn eval(&self, x: f64) -> f64 {
        self.poly.eval(x)
    }
}

/// The error function, from the everywhere-positive series
/// `erf(x) = 2/sqrt(pi) e^{-x^2} sum_n 2^n x^{2n+1} / (1 * 3 * ... * (2n+1))`
/// (Abramowitz-Stegun 7.1.6), accurate to a few ulps; `+-1` beyond `|x| = 6`.
pub fn erf(x: f64) -> f64 {
    if x.abs() > 6.0 {
        return x.signum();
    }
    let x2 = x * x;
    let (mut term, mut sum) = (x, x);
    let mut n = 0.0;
    while term.abs() > 1e-17 * sum.abs() {
        n += 1.0;
        term *= 2.0 * x2 / (2.0 * n + 1.0);
        sum += term;
    }
    2.0 / std::f64::consts::PI.sqrt() * (-x2).exp() * sum
}

/// `GELU(x) = x/2 (1 + erf(x / sqrt 2))` (the exact, erf form).
pub fn gelu_exact(x: f64) -> f64 {
    0.5 * x * (1.0 + erf(x * std::f64::consts::FRAC_1_SQRT_2))
}

/// `SiLU(x) = x / (1 + e^{-x})`.
pub fn silu_exact(x: f64) -> f64 {
    x / (1.0 + (-x).exp())
}

/// Minimax GELU of `degree` on `[a, b]` (absolute error).
///
/// # Errors
/// As [`remez`].
pub fn gelu(a: f64, b: f64, degree: usize) -> Result<Approximation> {
    Approximation::minimax("gelu", gelu_exact, (a, b), degree, &RemezOptions::default())
}

/// Minimax SiLU of `degree` on `[a, b]` (absolute error).
///
/// # Errors
/// As [`remez`].
pub fn silu(a: f64, b: f64, degree: usize) -> Result<Approximation> {
    Approximation::minimax("silu", silu_exact, (a, b), degree, &RemezOptions::default())
}

fn positive_interval(what: &str, a: f64, b: f64) -> Result<()> {
    if a > 0.0 && b > a {
        Ok(())
    } else {
        Err(ApproxError::Invalid(format!(
            "{what} needs 0 < a < b, got [{a}, {b}]"
        )))
    }
}

/// Minimax `1/x` of `degree` on `[a, b]`, `0 < a < b` (relative error: the first guess of
/// Newton or Goldschmidt iterations).
///
/// # Errors
/// An interval that is not positive, or as [`remez`].
pub fn reciprocal(a: f64, b: f64, degree: usize) -> Result<Approximation> {
    positive_interval("reciprocal", a, b)?;
    Approximation::minimax(
        "1/x",
        |x| 1.0 / x,
        (a, b),
        degree,
        &RemezOptions::relative(),
    )
}

/// Minimax `1/sqrt(x)` of `degree` on `[a, b]`, `0 < a < b` (relative error).
///
/// # Errors
/// An interval that is not positive, or as [`remez`].
pub fn inv_sqrt(a: f64, b: f64, degree: usize) -> Result<Approximation> {
    positive_interval("inv_sqrt", a, b)?;
    Approximation::minimax(
        "1/sqrt(x)",
        |x| 1.0 / x.sqrt(),
        (a, b),
        degree,
        &RemezOptions::relative(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_known_values() {
        // erf(0.5), erf(1), erf(2) to 16 digits.
        for (x, want) in [
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (2.0, 0.995_322_265_018_952_7),
        ] {
            assert!((erf(x) - want).abs() < 4e-16, "erf({x}) = {}", erf(x));
            assert!((erf(-x) + want).abs() < 4e-16);
        }
    }

    #[test]
    fn rejects_non_positive_intervals() {
        assert!(reciprocal(0.0, 1.0, 4).is_err());
        assert!(inv_sqrt(-1.0, 1.0, 4).is_err());
    }
}
