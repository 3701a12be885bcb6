//! The recipes of `1/x` and `1/sqrt(x)` on a calibrated interval `[a, b]`, `0 < a < b`: a
//! first guess (a public constant, or a minimax polynomial of relative error) refined by
//! Newton or Goldschmidt iterations, with the `f64` evaluation that follows the encrypted
//! circuit (psf-circuits `inverse.rs`) step by step. Both the circuit and the polynomial model
//! (psf-poly) are built from these types, so they share one definition.
//!
//! With a guess of relative error `e0(x) = 1 - x y0(x)`, `n` iterations of either method for
//! `1/x` leave `1 - x y_n = e0^(2^n)`. Newton: `y' = y (2 - x y)`. Goldschmidt: `y' = y (1 + e)`,
//! `e' = e^2`. Newton for `1/sqrt(x)`: `y' = 1.5 y - 0.5 (x y) y^2`.

use serde::{Deserialize, Serialize};

use crate::report::{DEFAULT_GRID, ErrorReport};
use crate::{ApproxError, Chebyshev, Result};

/// Iteration that refines the first guess of `1/x`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InverseMethod {
    /// `y' = y (2 - x y)`: two levels per iteration.
    Newton,
    /// `y' = y (1 + e)`, `e' = e^2`: one level per iteration after the first.
    Goldschmidt,
}

/// A first guess: a public constant or a polynomial on the recipe's interval.
#[derive(Debug, Clone, PartialEq)]
pub enum FirstGuess {
    /// The same constant for every input.
    Constant(f64),
    /// A minimax polynomial of relative error.
    Poly(Chebyshev),
}

impl FirstGuess {
    /// The guess at `x`.
    pub fn eval(&self, x: f64) -> f64 {
        match self {
            FirstGuess::Constant(c) => *c,
            FirstGuess::Poly(p) => p.eval(x),
        }
    }

    /// Degree (0 for a constant).
    pub fn degree(&self) -> usize {
        match self {
            FirstGuess::Constant(_) => 0,
            FirstGuess::Poly(p) => p.degree(),
        }
    }
}

fn check(a: f64, b: f64, guess_degree: usize, iterations: usize) -> Result<()> {
    if !(a > 0.0 && b > a && b.is_finite()) {
        return Err(ApproxError::Invalid(format!(
            "inverse needs 0 < a < b, got [{a}, {b}]"
        )));
    }
    if guess_degree == 0 && iterations == 0 {
        return Err(ApproxError::Invalid("a constant needs iterations".into()));
    }
    Ok(())
}

/// `1/x` on `[a, b]`: first guess of `guess_degree` (0: the constant `2/(a+b)`; else the
/// minimax polynomial of relative error, [`crate::reciprocal`]) and `iterations` steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReciprocalRecipe {
    /// Left end of the interval (> 0).
    pub a: f64,
    /// Right end of the interval.
    pub b: f64,
    /// Newton or Goldschmidt.
    pub method: InverseMethod,
    /// Degree of the first guess (0: constant).
    pub guess_degree: usize,
    /// Number of iterations.
    pub iterations: usize,
}

impl ReciprocalRecipe {
    /// Checks the recipe (positive interval; a constant guess needs iterations).
    pub fn validate(&self) -> Result<()> {
        check(self.a, self.b, self.guess_degree, self.iterations)
    }

    /// The first guess this recipe starts from.
    ///
    /// # Errors
    /// An invalid recipe, or a failed minimax fit.
    pub fn first_guess(&self) -> Result<FirstGuess> {
        self.validate()?;
        Ok(if self.guess_degree == 0 {
            FirstGuess::Constant(2.0 / (self.a + self.b))
        } else {
            FirstGuess::Poly(crate::reciprocal(self.a, self.b, self.guess_degree)?.poly)
        })
    }

    /// The circuit's computation in `f64`, from a guess built by [`Self::first_guess`].
    pub fn eval_with(&self, guess: &FirstGuess, x: f64) -> f64 {
        let y0 = guess.eval(x);
        match self.method {
            InverseMethod::Newton => (0..self.iterations).fold(y0, |y, _| y * (2.0 - x * y)),
            InverseMethod::Goldschmidt => {
                let (mut y, mut e) = (y0, 1.0 - x * y0);
                for _ in 0..self.iterations {
                    y *= 1.0 + e;
                    e *= e;
                }
                y
            }
        }
    }

    /// Multiplicative depth of psf-circuits' `Reciprocal` for this recipe (its
    /// `Circuit::depth`, which psformer's tests compare with this): a polynomial guess maps
    /// `[a, b]` onto `[-1, 1]` (one level) and takes `ceil(log2(degree + 1))`; Goldschmidt adds
    /// `iterations + 1`, Newton `2 iterations` (`2 iterations - 1` after a constant guess).
    pub fn depth(&self) -> usize {
        let (g, n) = (guess_depth(self.guess_degree), self.iterations);
        match (self.method, self.guess_degree) {
            (InverseMethod::Newton, 0) => (2 * n).saturating_sub(1),
            (InverseMethod::Newton, _) => g + 2 * n,
            (InverseMethod::Goldschmidt, 0) => n + usize::from(n > 1),
            (InverseMethod::Goldschmidt, _) => g + if n == 0 { 0 } else { n + 1 },
        }
    }

    /// The error of the `f64` evaluation against `1/x` on a dense grid of `[a, b]`.
    ///
    /// # Errors
    /// As [`Self::first_guess`].
    pub fn error_report(&self) -> Result<ErrorReport> {
        let g = self.first_guess()?;
        Ok(ErrorReport::measure(
            |x| 1.0 / x,
            |x| self.eval_with(&g, x),
            (self.a, self.b),
            self.guess_degree,
            DEFAULT_GRID,
        ))
    }
}

/// `1/sqrt(x)` on `[a, b]` by Newton: first guess of `guess_degree` (0: the constant that
/// minimizes the relative error after one step; else the minimax polynomial of relative
/// error, [`crate::inv_sqrt`]) and `iterations` steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InvSqrtRecipe {
    /// Left end of the interval (> 0).
    pub a: f64,
    /// Right end of the interval.
    pub b: f64,
    /// Degree of the first guess (0: constant).
    pub guess_degree: usize,
    /// Number of Newton iterations.
    pub iterations: usize,
}

impl InvSqrtRecipe {
    /// Checks the recipe (positive interval; a constant guess needs iterations).
    pub fn validate(&self) -> Result<()> {
        check(self.a, self.b, self.guess_degree, self.iterations)
    }

    /// The first guess this recipe starts from.
    ///
    /// # Errors
    /// An invalid recipe, or a failed minimax fit.
    pub fn first_guess(&self) -> Result<FirstGuess> {
        self.validate()?;
        Ok(if self.guess_degree == 0 {
            FirstGuess::Constant(inv_sqrt_constant(self.a, self.b))
        } else {
            FirstGuess::Poly(crate::inv_sqrt(self.a, self.b, self.guess_degree)?.poly)
        })
    }

    /// The circuit's computation in `f64`, from a guess built by [`Self::first_guess`].
    pub fn eval_with(&self, guess: &FirstGuess, x: f64) -> f64 {
        let y0 = guess.eval(x);
        (0..self.iterations).fold(y0, |y, _| 1.5 * y - 0.5 * (x * y) * (y * y))
    }

    /// Multiplicative depth of psf-circuits' `InvSqrt` for this recipe: the guess as for
    /// [`ReciprocalRecipe::depth`], then two levels per Newton step (`2 iterations - 1` after
    /// a constant guess).
    pub fn depth(&self) -> usize {
        match self.guess_degree {
            0 => (2 * self.iterations).saturating_sub(1),
            d => guess_depth(d) + 2 * self.iterations,
        }
    }

    /// The error of the `f64` evaluation against `1/sqrt(x)` on a dense grid of `[a, b]`.
    ///
    /// # Errors
    /// As [`Self::first_guess`].
    pub fn error_report(&self) -> Result<ErrorReport> {
        let g = self.first_guess()?;
        Ok(ErrorReport::measure(
            |x| 1.0 / x.sqrt(),
            |x| self.eval_with(&g, x),
            (self.a, self.b),
            self.guess_degree,
            DEFAULT_GRID,
        ))
    }
}

/// Depth of a first guess of `degree` on a positive interval (0 for a constant): one level
/// for the affine map onto `[-1, 1]`, then `ceil(log2(degree + 1))`.
fn guess_depth(degree: usize) -> usize {
    if degree == 0 {
        0
    } else {
        1 + (usize::BITS - degree.leading_zeros()) as usize
    }
}

/// The constant first guess `c` of `1/sqrt(x)` on `[a, b]` that minimizes the relative error
/// after one Newton step: with `r = 1 - c sqrt(x)`, a step maps `r` to `g(r) = (3r^2 - r^3)/2`,
/// which punishes overshoot (`r < 0`) more than undershoot, so `c` balances `g` at both ends
/// (bisection between `1/sqrt(b)`, no overshoot, and `2/(sqrt a + sqrt b)`).
pub fn inv_sqrt_constant(a: f64, b: f64) -> f64 {
    let g = |r: f64| (3.0 * r * r - r * r * r) / 2.0;
    let gap = |c: f64| g(1.0 - c * a.sqrt()) - g(1.0 - c * b.sqrt()).abs();
    let (mut lo, mut hi) = (1.0 / b.sqrt(), 2.0 / (a.sqrt() + b.sqrt()));
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if gap(mid) > 0.0 { lo = mid } else { hi = mid }
    }
    0.5 * (lo + hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipes_converge_quadratically() {
        for method in [InverseMethod::Newton, InverseMethod::Goldschmidt] {
            let r = ReciprocalRecipe {
                a: 0.01,
                b: 1.0,
                method,
                guess_degree: 7,
                iterations: 6,
            };
            let full = r.error_report().unwrap().max_rel;
            assert!(full < 1e-12, "{method:?}: {full}");
            let fewer = ReciprocalRecipe { iterations: 1, ..r };
            let e = fewer.error_report().unwrap().max_rel;
            assert!(e > 1e3 * full.max(1e-16) && e < 1.0, "{e} vs {full}");
        }
        let s = InvSqrtRecipe {
            a: 0.01,
            b: 1.0,
            guess_degree: 7,
            iterations: 6,
        };
        let e = s.error_report().unwrap().max_rel;
        assert!(e < 1e-9, "{e}");
    }

    #[test]
    fn rejects_bad_recipes() {
        let r = ReciprocalRecipe {
            a: 0.0,
            b: 1.0,
            method: InverseMethod::Newton,
            guess_degree: 3,
            iterations: 1,
        };
        assert!(r.first_guess().is_err());
        let s = InvSqrtRecipe {
            a: 1.0,
            b: 2.0,
            guess_degree: 0,
            iterations: 0,
        };
        assert!(s.first_guess().is_err());
    }
}
