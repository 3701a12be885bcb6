//! Encrypted evaluation of polynomials in the Chebyshev basis by baby-step giant-step
//! (Paterson-Stockmeyer style, after Lattigo and Bossuat et al., Eurocrypt 2021), with exact
//! output scales and several polynomials sharing one power basis.
//!
//! A polynomial `p` of degree `d` on `[a, b]` consumes `ceil(log2(d + 1))` levels, plus one for
//! the map `t = (2x - a - b) / (b - a)` unless `2 / (b - a)` is a positive integer (then
//! `t = k x + beta` costs no level; `[-1, 1]` is the identity). Folding the map into the scale
//! instead (re-labelling `x`'s scale) would make the scale of `T_i` grow like `((b - a)/2)^i`,
//! so other intervals pay the level.
//!
//! The evaluation recurses on `p = q T_n + r` (`n` the largest power of two `<= deg p`) down to
//! "leaves" of degree `< 2^l` (the baby steps `T_1 .. T_{2^l}`), which are linear combinations
//! of the basis. Every node gets a target level and scale: the leaf constants are encoded with
//! the scale `target / scale(T_i)`, and the quotient branch is evaluated for the scale
//! `target / scale(T_n)`, so every addition matches exactly and the result, after its last
//! rescale, has exactly the requested scale (the input's by default). A leaf whose highest
//! `T_i` sits too low for its target level (only on the leading-coefficient path) is split
//! further, which keeps the depth at the minimum.

mod basis;
mod split;

use basis::{PowerBasis, UnitMap, ceil_log2, prev_pow2};
use split::{degree, split};

use crate::{Backend, Circuit, CircuitError, Result};
use psf_approx::Chebyshev;

/// One or more Chebyshev polynomials on a common interval, evaluated on one ciphertext.
#[derive(Debug, Clone, PartialEq)]
pub struct PolyEval {
    polys: Vec<Chebyshev>,
    map: UnitMap,
    output_scale: Option<f64>,
    log_baby: Option<usize>,
}

/// A node's value: a ciphertext, or a constant (a polynomial of degree 0).
enum Term<C> {
    Ct(C),
    Const(f64),
}

impl PolyEval {
    /// Evaluation of one polynomial.
    pub fn new(p: Chebyshev) -> Result<Self> {
        Self::many(vec![p])
    }

    /// Evaluation of several polynomials on the same interval, sharing the power basis.
    /// Trailing zero coefficients are dropped; every polynomial must have degree `>= 1`.
    pub fn many(polys: Vec<Chebyshev>) -> Result<Self> {
        let first = polys
            .first()
            .ok_or_else(|| CircuitError::Invalid("no polynomial".into()))?;
        let (a, b) = (first.a, first.b);
        if !(a.is_finite() && b.is_finite() && a < b) {
            return Err(CircuitError::Invalid(format!("interval [{a}, {b}]")));
        }
        let mut trimmed = Vec::with_capacity(polys.len());
        for mut p in polys {
            if (p.a, p.b) != (a, b) {
                return Err(CircuitError::Invalid(format!(
                    "intervals differ: [{a}, {b}] vs [{}, {}]",
                    p.a, p.b
                )));
            }
            if p.coeffs.iter().any(|c| !c.is_finite()) {
                return Err(CircuitError::Invalid("non-finite coefficient".into()));
            }
            let d = degree(&p.coeffs);
            if d == 0 {
                return Err(CircuitError::Invalid("constant polynomial".into()));
            }
            p.coeffs.truncate(d + 1);
            trimmed.push(p);
        }
        Ok(Self {
            polys: trimmed,
            map: UnitMap::new(a, b),
            output_scale: None,
            log_baby: None,
        })
    }

    /// Sets the exact scale of the outputs (default: the input's scale).
    pub fn with_output_scale(mut self, scale: f64) -> Self {
        self.output_scale = Some(scale);
        self
    }

    /// Sets `l`, the baby-step basis being `T_1 .. T_{2^l}` (default `ceil(m / 2)` for
    /// `m = ceil(log2(d + 1))` of the highest degree `d`).
    pub fn with_log_baby(mut self, l: usize) -> Self {
        self.log_baby = Some(l.max(1));
        self
    }

    /// The polynomials.
    pub fn polys(&self) -> &[Chebyshev] {
        &self.polys
    }

    /// The highest degree.
    pub fn degree(&self) -> usize {
        self.polys.iter().map(Chebyshev::degree).max().unwrap_or(0)
    }

    /// `l` of the baby-step basis `T_1 .. T_{2^l}`.
    pub fn log_baby(&self) -> usize {
        self.log_baby
            .unwrap_or_else(|| ceil_log2(self.degree() + 1).div_ceil(2).max(1))
    }

    /// Levels the interval map consumes (0 or 1).
    pub fn map_levels(&self) -> usize {
        self.map.levels()
    }

    /// Levels consumed by polynomial `i`: `ceil(log2(deg + 1))` plus the map's.
    pub fn depth_of(&self, i: usize) -> usize {
        self.map.levels() + ceil_log2(self.polys[i].degree() + 1)
    }

    /// The f64 twin: every polynomial at `x` (Clenshaw).
    pub fn eval_f64(&self, x: f64) -> Vec<f64> {
        self.polys.iter().map(|p| p.eval(x)).collect()
    }

    /// Evaluates every polynomial on `x`; output `i` is at level `level(x) - depth_of(i)`
    /// with exactly the output scale.
    pub fn evaluate<B: Backend>(&self, be: &B, x: &B::Ct) -> Result<Vec<B::Ct>> {
        let level = be.level(x);
        if level < self.depth() {
            return Err(CircuitError::NotEnoughLevels {
                needed: self.depth(),
                level,
            });
        }
        let sigma = self.output_scale.unwrap_or_else(|| be.scale(x));
        let mut basis = PowerBasis::new(be, self.map.apply(be, x)?);
        let baby = 1usize << self.log_baby();
        self.polys
            .iter()
            .map(|p| {
                let top = basis.top() + 1 - ceil_log2(p.degree() + 1);
                let out = expect_ct(self.node(&mut basis, &p.coeffs, top, sigma, baby)?)?;
                let out = be.rescale(&out)?;
                Ok(be.with_scale(&out, sigma))
            })
            .collect()
    }

    /// Evaluates the first polynomial.
    pub fn evaluate_one<B: Backend>(&self, be: &B, x: &B::Ct) -> Result<B::Ct> {
        Ok(self.evaluate(be, x)?.swap_remove(0))
    }

    /// `p` unrescaled at `level` with scale `sigma * q_level`.
    fn node<B: Backend>(
        &self,
        basis: &mut PowerBasis<'_, B>,
        coeffs: &[f64],
        level: usize,
        sigma: f64,
        baby: usize,
    ) -> Result<Term<B::Ct>> {
        let d = degree(coeffs);
        if d == 0 {
            return Ok(Term::Const(coeffs[0]));
        }
        if d < baby && basis.level_of(d).is_some_and(|l| l >= level) {
            return leaf(basis, coeffs, level, sigma).map(Term::Ct);
        }
        let be = basis.backend();
        let n = prev_pow2(d);
        let (q, r) = split(coeffs, n);
        let target = sigma * be.prime(level) as f64;
        let s_n = basis.scale_of(n)?;
        let prod = if degree(&q) == 0 {
            let t = be.mul_const(basis.get(n)?, q[0], target / s_n)?;
            drop_to(be, t, level)?
        } else {
            let qc = expect_ct(self.node(basis, &q, level + 1, target / s_n, baby)?)?;
            be.mul_relin(&be.rescale(&qc)?, basis.get(n)?)?
        };
        Ok(Term::Ct(
            match self.node(basis, &r, level, sigma, baby)? {
                Term::Ct(rc) => be.add(&prod, &rc)?,
                Term::Const(0.0) => prod,
                Term::Const(c) => be.add_const(&prod, c)?,
            },
        ))
    }
}

/// A leaf: `sum c_i T_i` with constants scaled to land exactly on `sigma * q_level`.
fn leaf<B: Backend>(
    basis: &mut PowerBasis<'_, B>,
    coeffs: &[f64],
    level: usize,
    sigma: f64,
) -> Result<B::Ct> {
    let be = basis.backend();
    let target = sigma * be.prime(level) as f64;
    let mut acc: Option<B::Ct> = None;
    for (i, &c) in coeffs.iter().enumerate().skip(1).rev() {
        if c == 0.0 {
            continue;
        }
        let s_i = basis.scale_of(i)?;
        let term = be.mul_const(basis.get(i)?, c, target / s_i)?;
        acc = Some(match acc {
            None => term,
            Some(a) => be.add(&a, &term)?,
        });
    }
    let mut acc = acc.ok_or_else(|| CircuitError::Invalid("empty leaf".into()))?;
    if coeffs[0] != 0.0 {
        acc = be.add_const(&acc, coeffs[0])?;
    }
    drop_to(be, acc, level)
}

fn drop_to<B: Backend>(be: &B, ct: B::Ct, level: usize) -> Result<B::Ct> {
    if be.level(&ct) > level {
        be.drop_to_level(&ct, level)
    } else {
        Ok(ct)
    }
}

fn expect_ct<C>(t: Term<C>) -> Result<C> {
    match t {
        Term::Ct(c) => Ok(c),
        Term::Const(_) => Err(CircuitError::Invalid(
            "non-constant polynomial reduced to a constant".into(),
        )),
    }
}

impl Circuit for PolyEval {
    fn depth(&self) -> usize {
        (0..self.polys.len())
            .map(|i| self.depth_of(i))
            .max()
            .unwrap_or(0)
    }
}
