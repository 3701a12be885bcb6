//! The element-wise approximations of the softmax variants, each with its `f64` twin and its
//! measured error on its input interval, and the classic Goldschmidt division with refreshes.
//!
//! - [`TaylorExp`]: `e^x ~= sum_{k <= 8} x^k / k!` on `[-B, B]` (NEXUS style), evaluated as
//!   the same polynomial in the Chebyshev basis by [`PolyEval`] (`1 + ceil(log2 9) = 5` levels
//!   on `[-2, 2]`: the interval map costs one).
//! - [`SquareExp`]: `e^x ~= (1 + x / 2^r)^(2^r)` on `[-B, B]` (the "square strategy"): the
//!   scaling by `2^-r` is folded into the scores upstream, so `r` squarings, `r` levels.
//! - [`ClassicGoldschmidt`]: `1/x` on `[a, b]` from the constant guess `c = 2 / (a + b)`:
//!   `e_0 = 1 - c x`, `y_1 = c (1 + e_0)`, then `e_k = e_{k-1}^2`, `y_{k+1} = y_k (1 + e_k)`;
//!   `1 - x y_n = e_0^(2^n)`, so the relative error is at most `((b - a) / (b + a))^(2^n)`.
//!   When its operands run out of levels it calls a refresh (bootstrapping) hook.

use psf_approx::{Chebyshev, ErrorReport};

use crate::{Backend, Circuit, PolyEval, Result};

/// Grid used for the stated errors.
const GRID: usize = 4001;

/// `e^x` by its degree-`d` Taylor polynomial at 0 on `[-B, B]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TaylorExp {
    /// Half-width `B` of the input interval.
    pub bound: f64,
    /// The polynomial, evaluated by BSGS.
    pub poly: PolyEval,
}

impl TaylorExp {
    /// The degree-`degree` Taylor polynomial of `e^x` on `[-bound, bound]`.
    pub fn new(bound: f64, degree: usize) -> Result<Self> {
        let mut coeffs = vec![1.0];
        for k in 1..=degree {
            coeffs.push(coeffs[k - 1] / k as f64);
        }
        let poly = PolyEval::new(Chebyshev::from_monomial(&coeffs, -bound, bound))?;
        Ok(Self { bound, poly })
    }

    /// The f64 twin.
    pub fn eval_f64(&self, x: f64) -> f64 {
        self.poly.eval_f64(x)[0]
    }

    /// Error against `e^x` on `[-B, B]`.
    pub fn error_report(&self) -> ErrorReport {
        let (b, d) = (self.bound, self.poly.degree());
        ErrorReport::measure(f64::exp, |x| self.eval_f64(x), (-b, b), d, GRID)
    }

    /// Levels consumed.
    pub fn depth(&self) -> usize {
        self.poly.depth()
    }
}

/// `e^x ~= (1 + x / 2^r)^(2^r)` on `[-B, B]`; the input holds `x / 2^r` (folded upstream).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SquareExp {
    /// Half-width `B` of the input interval.
    pub bound: f64,
    /// Number of squarings `r`.
    pub squarings: usize,
}

impl SquareExp {
    /// The factor `2^-r` the scores are multiplied by before encryption.
    pub fn input_factor(&self) -> f64 {
        (-(self.squarings as f64)).exp2()
    }

    /// The f64 twin on the folded input `x / 2^r`.
    pub fn eval_folded(&self, y: f64) -> f64 {
        (0..self.squarings).fold(1.0 + y, |v, _| v * v)
    }

    /// The approximation as a function of `x`.
    pub fn eval_f64(&self, x: f64) -> f64 {
        self.eval_folded(x * self.input_factor())
    }

    /// Error against `e^x` on `[-B, B]`.
    pub fn error_report(&self) -> ErrorReport {
        let b = self.bound;
        let degree = 1usize << self.squarings;
        ErrorReport::measure(f64::exp, |x| self.eval_f64(x), (-b, b), degree, GRID)
    }

    /// Evaluates on the folded input: `1 + y`, then `r` squarings.
    pub fn evaluate<B: Backend>(&self, be: &B, y: &B::Ct) -> Result<B::Ct> {
        let mut v = be.add_const(y, 1.0)?;
        for _ in 0..self.squarings {
            v = be.rescale(&be.mul_relin(&v, &v)?)?;
        }
        Ok(v)
    }
}

/// Classic Goldschmidt `1/x` on `[a, b]` with a constant first guess (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassicGoldschmidt {
    /// Left end of the interval (> 0).
    pub a: f64,
    /// Right end.
    pub b: f64,
    /// Iterations `n` (products `y (1 + e)`; the first is affine).
    pub iterations: usize,
}

impl ClassicGoldschmidt {
    /// The fewest iterations reaching relative error `target` on `[a, b]`.
    pub fn for_target(a: f64, b: f64, target: f64) -> Self {
        let e0 = (b - a) / (b + a);
        let mut n = 1;
        while e0.powf((1u64 << n) as f64) > target && n < 62 {
            n += 1;
        }
        Self {
            a,
            b,
            iterations: n,
        }
    }

    fn c(&self) -> f64 {
        2.0 / (self.a + self.b)
    }

    /// The f64 twin (the same iteration).
    pub fn eval_f64(&self, x: f64) -> f64 {
        let c = self.c();
        let (mut e, mut y) = (1.0 - c * x, c * (2.0 - c * x));
        for _ in 1..self.iterations {
            e *= e;
            y *= 1.0 + e;
        }
        y
    }

    /// Error against `1/x` on `[a, b]`.
    pub fn error_report(&self) -> ErrorReport {
        let d = 1usize << self.iterations.min(20);
        ErrorReport::measure(|x| 1.0 / x, |x| self.eval_f64(x), (self.a, self.b), d, GRID)
    }

    /// Evaluates on `x`, calling `refresh` on both running values whenever one of them is
    /// at level 0 before an iteration (and on the result if it ends at level 0).
    pub fn evaluate<B: Backend>(
        &self,
        be: &B,
        x: &B::Ct,
        refresh: &dyn Fn(&B::Ct) -> Result<B::Ct>,
    ) -> Result<B::Ct> {
        let c = self.c();
        let mut x = x.clone();
        if be.level(&x) == 0 {
            x = refresh(&x)?;
        }
        let q = be.prime(be.level(&x)) as f64;
        let mut e = be.add_const(&be.rescale(&be.mul_const(&x, -c, q)?)?, 1.0)?;
        let y0 = be.rescale(&be.mul_const(&x, -c * c, q)?)?;
        let mut y = be.add_const(&y0, 2.0 * c)?;
        for _ in 1..self.iterations {
            if be.level(&e).min(be.level(&y)) == 0 {
                (e, y) = (refresh(&e)?, refresh(&y)?);
            }
            e = be.rescale(&be.mul_relin(&e, &e)?)?;
            y = be.rescale(&be.mul_relin(&y, &be.add_const(&e, 1.0)?)?)?;
        }
        if be.level(&y) == 0 {
            y = refresh(&y)?;
        }
        Ok(y)
    }
}

impl Circuit for ClassicGoldschmidt {
    fn depth(&self) -> usize {
        self.iterations
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stated_errors_of_the_approximations() {
        let t = TaylorExp::new(2.0, 8).unwrap();
        let r = t.error_report();
        assert!(r.max_rel < 9e-3 && r.max_rel > 8e-3, "{r:?}");
        assert_eq!(t.depth(), 5);
        let s = SquareExp {
            bound: 2.0,
            squarings: 8,
        };
        let r = s.error_report();
        assert!(r.max_rel < 8e-3 && r.max_rel > 7e-3, "{r:?}");
        let g = ClassicGoldschmidt::for_target(0.1, 100.0, 1e-3);
        assert!(g.error_report().max_rel <= 1e-3);
        let fewer = ClassicGoldschmidt {
            iterations: g.iterations - 1,
            ..g
        };
        assert!(fewer.error_report().max_rel > 1e-3);
    }
}
