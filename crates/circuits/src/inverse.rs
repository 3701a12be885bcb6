//! `1/x` and `1/sqrt(x)` on a calibrated interval `[a, b]`, `0 < a < b`: a first guess (a
//! public constant, or a minimax polynomial of relative error evaluated by [`PolyEval`]) refined
//! by Newton or Goldschmidt iterations.
//!
//! With a guess of relative error `e0(x) = 1 - x y0(x)`, `n` iterations of either method for
//! `1/x` leave `1 - x y_n = e0^(2^n)` exactly; Goldschmidt runs the squarings of `e` beside the
//! products with `y` and needs about half of Newton's depth. The degree-0 guess is the
//! classical scaling by the public constant `c = 2 / (a + b)` (so `c x` lies in `(0, 2)`).
//! Newton for `1/sqrt(x)`: `y' = y (3 - x y^2) / 2`, two levels per step.
//!
//! The recipes (interval, method, first-guess degree, iterations) and their `f64` twins are
//! [`ReciprocalRecipe`] and [`InvSqrtRecipe`] in psf-approx; the circuits here are built from
//! them ([`Reciprocal::from_recipe`], [`InvSqrt::from_recipe`]), so the polynomial model
//! (psf-poly) and the encrypted circuit share one definition.
//!
//! Every circuit returns its output at exactly the requested scale (the input's by default):
//! Newton steps use a copy of `x` rescaled once with a constant chosen so that each iterate
//! keeps the target scale; Goldschmidt plans the scales of its squaring chain first and gives
//! the first guess the scale that makes the last product land on the target.

use crate::poly_eval::PolyEval;
use crate::{Backend, Circuit, CircuitError, Result};
use psf_approx::{ErrorReport, FirstGuess, InvSqrtRecipe, ReciprocalRecipe};

/// Iteration that refines the first guess of `1/x` (defined in psf-approx with the recipe).
pub use psf_approx::InverseMethod as Method;

/// A first guess: a public constant or a polynomial.
#[derive(Debug, Clone, PartialEq)]
enum Guess {
    Constant(f64),
    Poly(PolyEval),
}

impl Guess {
    fn depth(&self) -> usize {
        match self {
            Guess::Constant(_) => 0,
            Guess::Poly(p) => p.depth(),
        }
    }

    fn from_first_guess(g: &FirstGuess) -> Result<(Self, FirstGuess)> {
        Ok(match g {
            FirstGuess::Constant(c) => (Guess::Constant(*c), g.clone()),
            FirstGuess::Poly(p) => (Guess::Poly(PolyEval::new(p.clone())?), g.clone()),
        })
    }
}

/// `x * round(c cs) / cs`, rescaled once, with its new scale forced to `scale` exactly
/// (`cs = scale * q / scale(x)`): one level on `x`, none on the caller's path.
fn scaled_copy<B: Backend>(be: &B, x: &B::Ct, c: f64, scale: f64) -> Result<B::Ct> {
    let q = be.prime(be.level(x)) as f64;
    let t = be.rescale(&be.mul_const(x, c, scale * q / be.scale(x))?)?;
    Ok(be.with_scale(&t, scale))
}

/// `alpha x + beta` at level `level(x) - 1` and exactly `scale`.
fn affine<B: Backend>(be: &B, x: &B::Ct, alpha: f64, beta: f64, scale: f64) -> Result<B::Ct> {
    let q = be.prime(be.level(x)) as f64;
    let t = be.mul_const(x, alpha, scale * q / be.scale(x))?;
    let t = be.rescale(&be.add_const(&t, beta)?)?;
    Ok(be.with_scale(&t, scale))
}

/// Re-labels `ct` to exactly `target` after checking that its tracked scale is within 2^-30
/// (relative) of it: the circuits plan their scales, this removes the last ulps.
fn snap<B: Backend>(be: &B, ct: &B::Ct, target: f64) -> Result<B::Ct> {
    let s = be.scale(ct);
    if ((s / target) - 1.0).abs() > 2f64.powi(-30) {
        return Err(CircuitError::Invalid(format!(
            "scale plan missed: 2^{:.6} vs 2^{:.6}",
            s.log2(),
            target.log2()
        )));
    }
    Ok(be.with_scale(ct, target))
}

/// `1/x` on `[a, b]`: a first guess refined by Newton or Goldschmidt iterations.
#[derive(Debug, Clone, PartialEq)]
pub struct Reciprocal {
    recipe: ReciprocalRecipe,
    guess: Guess,
    twin_guess: FirstGuess,
    output_scale: Option<f64>,
}

impl Reciprocal {
    /// `1/x` on `[a, b]` by `method` with `iterations` steps from a first guess of
    /// `guess_degree` (0: the constant `2/(a+b)`; else the minimax polynomial of relative
    /// error, [`psf_approx::reciprocal`]).
    pub fn new(
        a: f64,
        b: f64,
        method: Method,
        guess_degree: usize,
        iterations: usize,
    ) -> Result<Self> {
        Self::from_recipe(&ReciprocalRecipe {
            a,
            b,
            method,
            guess_degree,
            iterations,
        })
    }

    /// The circuit of a psf-approx recipe (the shared definition).
    pub fn from_recipe(recipe: &ReciprocalRecipe) -> Result<Self> {
        let (guess, twin_guess) = Guess::from_first_guess(&recipe.first_guess()?)?;
        Ok(Self {
            recipe: *recipe,
            guess,
            twin_guess,
            output_scale: None,
        })
    }

    /// The recipe this circuit implements.
    pub fn recipe(&self) -> &ReciprocalRecipe {
        &self.recipe
    }

    /// Sets the exact output scale (default: the input's).
    pub fn with_output_scale(mut self, scale: f64) -> Self {
        self.output_scale = Some(scale);
        self
    }

    /// The interval.
    pub fn interval(&self) -> (f64, f64) {
        (self.recipe.a, self.recipe.b)
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.recipe.method
    }

    /// Degree of the first guess (0: constant).
    pub fn guess_degree(&self) -> usize {
        self.recipe.guess_degree
    }

    /// Number of iterations.
    pub fn iterations(&self) -> usize {
        self.recipe.iterations
    }

    /// The f64 twin: the recipe's iteration in `f64` ([`ReciprocalRecipe::eval_with`]).
    pub fn eval_f64(&self, x: f64) -> f64 {
        self.recipe.eval_with(&self.twin_guess, x)
    }

    /// The twin's error against `1/x` on a dense grid of `[a, b]` (the stated error).
    pub fn error_report(&self) -> ErrorReport {
        ErrorReport::measure(
            |x| 1.0 / x,
            |x| self.eval_f64(x),
            self.interval(),
            self.guess_degree(),
            psf_approx::DEFAULT_GRID,
        )
    }

    /// Evaluates on `x` (values in `[a, b]`); the output is at level `level(x) - depth()`.
    pub fn evaluate<B: Backend>(&self, be: &B, x: &B::Ct) -> Result<B::Ct> {
        if be.level(x) < self.depth() {
            return Err(CircuitError::NotEnoughLevels {
                needed: self.depth(),
                level: be.level(x),
            });
        }
        let sigma = self.output_scale.unwrap_or_else(|| be.scale(x));
        let y = match self.recipe.method {
            Method::Newton => self.newton(be, x, sigma)?,
            Method::Goldschmidt => self.goldschmidt(be, x, sigma)?,
        };
        snap(be, &y, sigma)
    }

    fn newton<B: Backend>(&self, be: &B, x: &B::Ct, sigma: f64) -> Result<B::Ct> {
        let (mut y, steps) = match &self.guess {
            // y1 = c (2 - c x): the first step is affine.
            Guess::Constant(c) => (
                affine(be, x, -c * c, 2.0 * c, sigma)?,
                self.recipe.iterations - 1,
            ),
            Guess::Poly(p) => (
                p.clone().with_output_scale(sigma).evaluate_one(be, x)?,
                self.recipe.iterations,
            ),
        };
        for _ in 0..steps {
            let l = be.level(&y);
            let (q1, q0) = (be.prime(l) as f64, be.prime(l - 1) as f64);
            // -x at the scale that brings y (2 - x y) back to sigma.
            let xn = scaled_copy(be, x, -1.0, q1 * q0 / sigma)?;
            let t = be.add_const(&be.rescale(&be.mul_relin(&xn, &y)?)?, 2.0)?;
            y = be.rescale(&be.mul_relin(&y, &t)?)?;
        }
        Ok(y)
    }

    fn goldschmidt<B: Backend>(&self, be: &B, x: &B::Ct, sigma: f64) -> Result<B::Ct> {
        match (&self.guess, self.recipe.iterations) {
            (Guess::Poly(p), 0) => return p.clone().with_output_scale(sigma).evaluate_one(be, x),
            (Guess::Constant(c), 1) => return affine(be, x, -c * c, 2.0 * c, sigma),
            _ => {}
        }
        let top = be.level(x);
        // Levels of e0 and y1, and the (freely chosen) scale of e0.
        let (e0_level, y1_level) = match &self.guess {
            Guess::Constant(_) => (top - 1, top - 1),
            Guess::Poly(p) => (top - p.depth() - 1, top - p.depth() - 2),
        };
        let s_e0 = be.prime(e0_level) as f64;
        // Plan the squaring chain's scales; y1 must have sigma / prod(scale(e_i) / q).
        let (mut s_e, mut l_e, mut l_y, mut ratio) = (s_e0, e0_level, y1_level, 1.0);
        for _ in 1..self.recipe.iterations {
            s_e = s_e * s_e / be.prime(l_e) as f64;
            l_e -= 1;
            let m = l_y.min(l_e);
            ratio *= s_e / be.prime(m) as f64;
            l_y = m - 1;
        }
        let s_y1 = sigma / ratio;
        let (mut y, mut e) = match &self.guess {
            Guess::Constant(c) => (
                affine(be, x, -c * c, 2.0 * c, s_y1)?,
                affine(be, x, -c, 1.0, s_e0)?,
            ),
            Guess::Poly(p) => {
                let s_y0 = s_y1 * be.prime(e0_level) as f64 / s_e0;
                let y0 = p.clone().with_output_scale(s_y0).evaluate_one(be, x)?;
                let l0 = be.level(&y0);
                let xn = scaled_copy(be, x, -1.0, s_e0 * be.prime(l0) as f64 / s_y0)?;
                let e0 = be.add_const(&be.rescale(&be.mul_relin(&xn, &y0)?)?, 1.0)?;
                let y1 = be.rescale(&be.mul_relin(&y0, &be.add_const(&e0, 1.0)?)?)?;
                (y1, e0)
            }
        };
        for _ in 1..self.recipe.iterations {
            e = be.rescale(&be.mul_relin(&e, &e)?)?;
            y = be.rescale(&be.mul_relin(&y, &be.add_const(&e, 1.0)?)?)?;
        }
        Ok(y)
    }
}

impl Circuit for Reciprocal {
    fn depth(&self) -> usize {
        let (g, n) = (self.guess.depth(), self.recipe.iterations);
        match (self.recipe.method, &self.guess) {
            (Method::Newton, Guess::Constant(_)) => 2 * n - 1,
            (Method::Newton, Guess::Poly(_)) => g + 2 * n,
            (Method::Goldschmidt, Guess::Constant(_)) => n + usize::from(n > 1),
            (Method::Goldschmidt, Guess::Poly(_)) => g + if n == 0 { 0 } else { n + 1 },
        }
    }
}

/// `1/sqrt(x)` on `[a, b]`: a first guess refined by Newton iterations
/// `y' = y (3 - x y^2) / 2` (two levels each, computed as `1.5 y - 0.5 (x y) y^2`).
#[derive(Debug, Clone, PartialEq)]
pub struct InvSqrt {
    recipe: InvSqrtRecipe,
    guess: Guess,
    twin_guess: FirstGuess,
    output_scale: Option<f64>,
}

impl InvSqrt {
    /// `1/sqrt(x)` on `[a, b]` with `iterations` Newton steps from a first guess of
    /// `guess_degree` (0: the public constant that is best after one step; else the minimax
    /// polynomial of relative error, [`psf_approx::inv_sqrt`]).
    pub fn new(a: f64, b: f64, guess_degree: usize, iterations: usize) -> Result<Self> {
        Self::from_recipe(&InvSqrtRecipe {
            a,
            b,
            guess_degree,
            iterations,
        })
    }

    /// The circuit of a psf-approx recipe (the shared definition).
    pub fn from_recipe(recipe: &InvSqrtRecipe) -> Result<Self> {
        let (guess, twin_guess) = Guess::from_first_guess(&recipe.first_guess()?)?;
        Ok(Self {
            recipe: *recipe,
            guess,
            twin_guess,
            output_scale: None,
        })
    }

    /// The recipe this circuit implements.
    pub fn recipe(&self) -> &InvSqrtRecipe {
        &self.recipe
    }

    /// Sets the exact output scale (default: the input's).
    pub fn with_output_scale(mut self, scale: f64) -> Self {
        self.output_scale = Some(scale);
        self
    }

    /// Degree of the first guess (0: constant).
    pub fn guess_degree(&self) -> usize {
        self.recipe.guess_degree
    }

    /// Number of iterations.
    pub fn iterations(&self) -> usize {
        self.recipe.iterations
    }

    /// The f64 twin ([`InvSqrtRecipe::eval_with`]).
    pub fn eval_f64(&self, x: f64) -> f64 {
        self.recipe.eval_with(&self.twin_guess, x)
    }

    /// The twin's error against `1/sqrt(x)` on a dense grid (the stated error).
    pub fn error_report(&self) -> ErrorReport {
        ErrorReport::measure(
            |x| 1.0 / x.sqrt(),
            |x| self.eval_f64(x),
            (self.recipe.a, self.recipe.b),
            self.guess_degree(),
            psf_approx::DEFAULT_GRID,
        )
    }

    /// Evaluates on `x` (values in `[a, b]`); the output is at level `level(x) - depth()`.
    pub fn evaluate<B: Backend>(&self, be: &B, x: &B::Ct) -> Result<B::Ct> {
        if be.level(x) < self.depth() {
            return Err(CircuitError::NotEnoughLevels {
                needed: self.depth(),
                level: be.level(x),
            });
        }
        let sigma = self.output_scale.unwrap_or_else(|| be.scale(x));
        let (mut y, steps) = match &self.guess {
            Guess::Constant(c) => {
                let y1 = affine(be, x, -0.5 * c * c * c, 1.5 * c, sigma)?;
                (y1, self.recipe.iterations - 1)
            }
            Guess::Poly(p) => (
                p.clone().with_output_scale(sigma).evaluate_one(be, x)?,
                self.recipe.iterations,
            ),
        };
        for _ in 0..steps {
            y = self.step(be, x, &y, sigma)?;
        }
        snap(be, &y, sigma)
    }

    /// One Newton step from `y` at scale `sigma` to the next iterate at scale `sigma`.
    fn step<B: Backend>(&self, be: &B, x: &B::Ct, y: &B::Ct, sigma: f64) -> Result<B::Ct> {
        let l = be.level(y);
        let (q1, q0) = (be.prime(l) as f64, be.prime(l - 1) as f64);
        // (-x/2) at the scale that makes (-x y / 2) (y^2) land on sigma * q0.
        let xh = scaled_copy(be, x, -0.5, q0 * q1 * q1 / (sigma * sigma))?;
        let z = be.rescale(&be.mul_relin(&xh, y)?)?;
        let w = be.rescale(&be.mul_relin(y, y)?)?;
        let cubic = be.mul_relin(&z, &w)?;
        let lin = be.mul_const(y, 1.5, be.scale(&cubic) / be.scale(y))?;
        be.rescale(&be.add(&cubic, &lin)?)
    }
}

impl Circuit for InvSqrt {
    fn depth(&self) -> usize {
        match self.guess {
            Guess::Constant(_) => 2 * self.recipe.iterations - 1,
            Guess::Poly(_) => self.guess.depth() + 2 * self.recipe.iterations,
        }
    }
}

mod table;

pub use table::{TradeoffRow, tradeoff_markdown, tradeoff_rows};
