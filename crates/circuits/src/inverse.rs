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
//! Every circuit returns its output at exactly the requested scale (the input's by default):
//! Newton steps use a copy of `x` rescaled once with a constant chosen so that each iterate
//! keeps the target scale; Goldschmidt plans the scales of its squaring chain first and gives
//! the first guess the scale that makes the last product land on the target.

use crate::poly_eval::PolyEval;
use crate::{Backend, Circuit, CircuitError, Result};
use psf_approx::{self as approx, ErrorReport};

/// Iteration that refines the first guess of `1/x`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `y' = y (2 - x y)`: two levels per iteration.
    Newton,
    /// `y' = y (1 + e)`, `e' = e^2`: one level per iteration after the first.
    Goldschmidt,
}

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

    fn eval(&self, x: f64) -> f64 {
        match self {
            Guess::Constant(c) => *c,
            Guess::Poly(p) => p.polys()[0].eval(x),
        }
    }

    fn degree(&self) -> usize {
        match self {
            Guess::Constant(_) => 0,
            Guess::Poly(p) => p.degree(),
        }
    }
}

fn check_interval(a: f64, b: f64) -> Result<()> {
    if a > 0.0 && b > a && b.is_finite() {
        Ok(())
    } else {
        Err(CircuitError::Invalid(format!(
            "need 0 < a < b, got [{a}, {b}]"
        )))
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
    a: f64,
    b: f64,
    method: Method,
    guess: Guess,
    iterations: usize,
    output_scale: Option<f64>,
}

impl Reciprocal {
    /// `1/x` on `[a, b]` by `method` with `iterations` steps from a first guess of
    /// `guess_degree` (0: the constant `2/(a+b)`; else the minimax polynomial of relative
    /// error, [`approx::reciprocal`]).
    pub fn new(
        a: f64,
        b: f64,
        method: Method,
        guess_degree: usize,
        iterations: usize,
    ) -> Result<Self> {
        check_interval(a, b)?;
        let guess = if guess_degree == 0 {
            Guess::Constant(2.0 / (a + b))
        } else {
            Guess::Poly(PolyEval::new(approx::reciprocal(a, b, guess_degree)?.poly)?)
        };
        if iterations == 0 && guess_degree == 0 {
            return Err(CircuitError::Invalid("a constant needs iterations".into()));
        }
        Ok(Self {
            a,
            b,
            method,
            guess,
            iterations,
            output_scale: None,
        })
    }

    /// Sets the exact output scale (default: the input's).
    pub fn with_output_scale(mut self, scale: f64) -> Self {
        self.output_scale = Some(scale);
        self
    }

    /// The interval.
    pub fn interval(&self) -> (f64, f64) {
        (self.a, self.b)
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// Degree of the first guess (0: constant).
    pub fn guess_degree(&self) -> usize {
        self.guess.degree()
    }

    /// Number of iterations.
    pub fn iterations(&self) -> usize {
        self.iterations
    }

    /// The f64 twin: the same iteration in `f64`.
    pub fn eval_f64(&self, x: f64) -> f64 {
        let y0 = self.guess.eval(x);
        match self.method {
            Method::Newton => (0..self.iterations).fold(y0, |y, _| y * (2.0 - x * y)),
            Method::Goldschmidt => {
                let (mut y, mut e) = (y0, 1.0 - x * y0);
                for _ in 0..self.iterations {
                    y *= 1.0 + e;
                    e *= e;
                }
                y
            }
        }
    }

    /// The twin's error against `1/x` on a dense grid of `[a, b]` (the stated error).
    pub fn error_report(&self) -> ErrorReport {
        ErrorReport::measure(
            |x| 1.0 / x,
            |x| self.eval_f64(x),
            (self.a, self.b),
            self.guess_degree(),
            approx::DEFAULT_GRID,
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
        let y = match self.method {
            Method::Newton => self.newton(be, x, sigma)?,
            Method::Goldschmidt => self.goldschmidt(be, x, sigma)?,
        };
        snap(be, &y, sigma)
    }

    fn newton<B: Backend>(&self, be: &B, x: &B::Ct, sigma: f64) -> Result<B::Ct> {
        let (mut y, steps) = match &self.guess {
            // y1 = c (2 - c x): the first step is affine.
            Guess::Constant(c) => (affine(be, x, -c * c, 2.0 * c, sigma)?, self.iterations - 1),
            Guess::Poly(p) => (
                p.clone().with_output_scale(sigma).evaluate_one(be, x)?,
                self.iterations,
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
        match (&self.guess, self.iterations) {
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
        for _ in 1..self.iterations {
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
        for _ in 1..self.iterations {
            e = be.rescale(&be.mul_relin(&e, &e)?)?;
            y = be.rescale(&be.mul_relin(&y, &be.add_const(&e, 1.0)?)?)?;
        }
        Ok(y)
    }
}

impl Circuit for Reciprocal {
    fn depth(&self) -> usize {
        let (g, n) = (self.guess.depth(), self.iterations);
        match (self.method, &self.guess) {
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
    a: f64,
    b: f64,
    guess: Guess,
    iterations: usize,
    output_scale: Option<f64>,
}

impl InvSqrt {
    /// `1/sqrt(x)` on `[a, b]` with `iterations` Newton steps from a first guess of
    /// `guess_degree` (0: the public constant that is best after one step; else the minimax
    /// polynomial of relative error, [`approx::inv_sqrt`]).
    pub fn new(a: f64, b: f64, guess_degree: usize, iterations: usize) -> Result<Self> {
        check_interval(a, b)?;
        let guess = if guess_degree == 0 {
            Guess::Constant(inv_sqrt_constant(a, b))
        } else {
            Guess::Poly(PolyEval::new(approx::inv_sqrt(a, b, guess_degree)?.poly)?)
        };
        if iterations == 0 && guess_degree == 0 {
            return Err(CircuitError::Invalid("a constant needs iterations".into()));
        }
        Ok(Self {
            a,
            b,
            guess,
            iterations,
            output_scale: None,
        })
    }

    /// Sets the exact output scale (default: the input's).
    pub fn with_output_scale(mut self, scale: f64) -> Self {
        self.output_scale = Some(scale);
        self
    }

    /// Degree of the first guess (0: constant).
    pub fn guess_degree(&self) -> usize {
        self.guess.degree()
    }

    /// Number of iterations.
    pub fn iterations(&self) -> usize {
        self.iterations
    }

    /// The f64 twin.
    pub fn eval_f64(&self, x: f64) -> f64 {
        let y0 = self.guess.eval(x);
        (0..self.iterations).fold(y0, |y, _| 1.5 * y - 0.5 * (x * y) * (y * y))
    }

    /// The twin's error against `1/sqrt(x)` on a dense grid (the stated error).
    pub fn error_report(&self) -> ErrorReport {
        ErrorReport::measure(
            |x| 1.0 / x.sqrt(),
            |x| self.eval_f64(x),
            (self.a, self.b),
            self.guess_degree(),
            approx::DEFAULT_GRID,
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
                (y1, self.iterations - 1)
            }
            Guess::Poly(p) => (
                p.clone().with_output_scale(sigma).evaluate_one(be, x)?,
                self.iterations,
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

/// The constant first guess `c` of `1/sqrt(x)` on `[a, b]` that minimizes the relative error
/// after one Newton step: with `r = 1 - c sqrt(x)`, a step maps `r` to `g(r) = (3r^2 - r^3)/2`,
/// which punishes overshoot (`r < 0`) more than undershoot, so `c` balances `g` at both ends
/// (bisection between `1/sqrt(b)`, no overshoot, and `2/(sqrt a + sqrt b)`).
fn inv_sqrt_constant(a: f64, b: f64) -> f64 {
    let g = |r: f64| (3.0 * r * r - r * r * r) / 2.0;
    let gap = |c: f64| g(1.0 - c * a.sqrt()) - g(1.0 - c * b.sqrt()).abs();
    let (mut lo, mut hi) = (1.0 / b.sqrt(), 2.0 / (a.sqrt() + b.sqrt()));
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if gap(mid) > 0.0 { lo = mid } else { hi = mid }
    }
    0.5 * (lo + hi)
}

impl Circuit for InvSqrt {
    fn depth(&self) -> usize {
        match self.guess {
            Guess::Constant(_) => 2 * self.iterations - 1,
            Guess::Poly(_) => self.guess.depth() + 2 * self.iterations,
        }
    }
}

mod table;

pub use table::{TradeoffRow, tradeoff_markdown, tradeoff_rows};
