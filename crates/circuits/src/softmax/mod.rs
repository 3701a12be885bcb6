//! "Softmax alone" over encrypted attention scores, three ways, on either packing of
//! [`packing`] (ours, diagonal, or NEXUS's, rows): Power-Softmax (`p = 4`, length-agnostic mean, causal mask as a product,
//! Goldschmidt reciprocal), NEXUS-style softmax (degree-8 Taylor `e^x` + classic Goldschmidt on
//! the row sum) and the square-strategy softmax (`(1 + x/2^r)^(2^r)` + classic Goldschmidt).
//!
//! **Inputs.** Scores `s` with `|s| <= B` (`B = 2` by default), already multiplied upstream
//! by the variant's [`SoftmaxCircuit::input_factor`] (folded into the score product, as the
//! attention scale is): Power-Softmax reads `z = s / B` in `[-1, 1]`, Taylor reads `s`, the
//! square strategy reads `s / 2^r`. Masked (non-causal) slots may hold anything in range.
//!
//! **Steps** (per ciphertext `c` of the packing, then once per head group):
//! 1. `n_c = f(x_c)`: `z^4` by two squarings, or the `e^x` approximation.
//! 2. `u_c = n_c * M_c` (one plaintext product): `M = mask / L_t` for Power-Softmax (the
//!    length-agnostic mean, `L_t = t + 1` visible keys), the 0/1 mask for the exp variants.
//! 3. `D = sum_c u_c`, then `D += rot(D, H L 2^i)` for `i < log2 g`: every slot holds its
//!    row's mean (Power) or sum (exp); Power adds `eps`.
//! 4. `R = 1 / D`: [`crate::inverse::Reciprocal`] (Goldschmidt, minimal-depth recipe reaching
//!    the target) on `[eps, 1 + eps]` for Power; [`ClassicGoldschmidt`] on
//!    `[min f, L max f]` for the exp variants (NEXUS normalizes by the plain sum), which calls
//!    the refresh (bootstrapping) hook when its operands run out of levels.
//! 5. `w_c = u_c R`.
//!
//! **Row packing** (NEXUS's layout, [`RowPacking`]): per ciphertext, `x + rot(x, -L)` copies
//! each row into its second half, then steps 1-2, a rotate-and-sum of strides `1..L/2` (every
//! first-half slot holds its row's sum), the reciprocal of that ciphertext's sums (on twice
//! the interval: windows starting in a copy half span two rows) and the product: every
//! ciphertext pays its own division (and, for the exp variants, its own bootstraps).
//!
//! [`SoftmaxCircuit::eval_f64`] is the twin (the same steps in `f64`, slot by slot);
//! [`exact`] is the function each variant approximates (softmax, or the length-agnostic
//! Power-Softmax with the same `eps`).

pub mod approx;
pub mod packing;

pub use approx::{ClassicGoldschmidt, SquareExp, TaylorExp};
pub use packing::{AttentionShape, DiagonalPacking, RowPacking, ScorePacking, Slot};

use crate::inverse::{Method, Reciprocal};
use crate::{Backend, Circuit, CircuitError, Result};

/// The softmax variants compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SoftmaxVariant {
    /// Power-Softmax, `p = 4`, length-agnostic form.
    Power,
    /// Degree-8 Taylor `e^x` + classic Goldschmidt on the sum (NEXUS style).
    Taylor,
    /// `(1 + x/2^r)^(2^r)` + classic Goldschmidt on the sum.
    Square,
}

impl SoftmaxVariant {
    /// All three, in display order.
    pub const ALL: [SoftmaxVariant; 3] = [Self::Power, Self::Taylor, Self::Square];

    /// A short name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Power => "power-softmax (p=4)",
            Self::Taylor => "taylor-8 exp + goldschmidt (NEXUS style)",
            Self::Square => "square-strategy exp + goldschmidt",
        }
    }
}

/// Knobs shared by the variants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SoftmaxConfig {
    /// Bound `B` on the scores (`|s| <= B`).
    pub score_bound: f64,
    /// Power-Softmax's `eps` added to the mean of `z^4`.
    pub eps: f64,
    /// Degree of the Taylor polynomial.
    pub taylor_degree: usize,
    /// Squarings `r` of the square strategy.
    pub squarings: usize,
    /// Target relative error of the reciprocal.
    pub reciprocal_error: f64,
}

impl Default for SoftmaxConfig {
    /// `B = 2`, `eps = 2^-6`, degree 8, `r = 8` (max relative error on `[-2, 2]`: 0.78%,
    /// just below the Taylor polynomial's 0.87%), reciprocal to `1e-3`.
    fn default() -> Self {
        Self {
            score_bound: 2.0,
            eps: 1.0 / 64.0,
            taylor_degree: 8,
            squarings: 8,
            reciprocal_error: 1e-3,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Numerator {
    Power,
    Taylor(TaylorExp),
    Square(SquareExp),
}

#[derive(Debug, Clone, PartialEq)]
enum Denominator {
    Reciprocal(Reciprocal),
    Classic(ClassicGoldschmidt),
}

/// One softmax variant for one packing (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct SoftmaxCircuit {
    variant: SoftmaxVariant,
    packing: ScorePacking,
    config: SoftmaxConfig,
    numerator: Numerator,
    denominator: Denominator,
}

/// The minimal-depth Goldschmidt recipe (guess degree 0..=7, up to 12 iterations) reaching
/// relative error `target` on `[a, b]`; ties go to the cheaper guess.
fn reciprocal_for(a: f64, b: f64, target: f64) -> Result<Reciprocal> {
    let mut best: Option<Reciprocal> = None;
    for degree in [0usize, 1, 3, 7] {
        for iterations in 1..=12 {
            if degree == 0 && iterations < 2 {
                continue;
            }
            let r = Reciprocal::new(a, b, Method::Goldschmidt, degree, iterations)?;
            if r.error_report().max_rel <= target {
                if best.as_ref().is_none_or(|b| r.depth() < b.depth()) {
                    best = Some(r);
                }
                break;
            }
        }
    }
    best.ok_or_else(|| CircuitError::Invalid(format!("no reciprocal recipe on [{a}, {b}]")))
}

impl SoftmaxCircuit {
    /// Builds `variant` for `packing` with `config`.
    pub fn new(
        variant: SoftmaxVariant,
        packing: ScorePacking,
        config: SoftmaxConfig,
    ) -> Result<Self> {
        let b = config.score_bound;
        if !(b > 0.0 && config.eps > 0.0 && config.reciprocal_error > 0.0) {
            return Err(CircuitError::Invalid(format!("softmax config {config:?}")));
        }
        let numerator = match variant {
            SoftmaxVariant::Power => Numerator::Power,
            SoftmaxVariant::Taylor => Numerator::Taylor(TaylorExp::new(b, config.taylor_degree)?),
            SoftmaxVariant::Square => Numerator::Square(SquareExp {
                bound: b,
                squarings: config.squarings,
            }),
        };
        let mut circuit = Self {
            variant,
            packing,
            config,
            numerator,
            denominator: Denominator::Classic(ClassicGoldschmidt::for_target(1.0, 2.0, 0.5)),
        };
        let (lo, hi) = circuit.denominator_interval();
        circuit.denominator = match variant {
            SoftmaxVariant::Power => {
                Denominator::Reciprocal(reciprocal_for(lo, hi, config.reciprocal_error)?)
            }
            _ => Denominator::Classic(ClassicGoldschmidt::for_target(
                lo,
                hi,
                config.reciprocal_error,
            )),
        };
        Ok(circuit)
    }

    /// The variant.
    pub fn variant(&self) -> SoftmaxVariant {
        self.variant
    }

    /// The packing.
    pub fn packing(&self) -> &ScorePacking {
        &self.packing
    }

    /// The factor the scores are multiplied by upstream (`1/B`, `1` or `2^-r`).
    pub fn input_factor(&self) -> f64 {
        match &self.numerator {
            Numerator::Power => 1.0 / self.config.score_bound,
            Numerator::Taylor(_) => 1.0,
            Numerator::Square(s) => s.input_factor(),
        }
    }

    /// The numerator on the folded input, in f64.
    fn numerator_f64(&self, x: f64) -> f64 {
        match &self.numerator {
            Numerator::Power => x.powi(4),
            Numerator::Taylor(t) => t.eval_f64(x),
            Numerator::Square(s) => s.eval_folded(x),
        }
    }

    /// The interval the reciprocal is built for: `[eps, 1 + eps]` (Power), or
    /// `[min f, L max f]` over the score interval with a 1% margin (the exp variants); the
    /// upper end doubled for the row packing (module docs).
    pub fn denominator_interval(&self) -> (f64, f64) {
        let span = match self.packing {
            ScorePacking::Diagonal(_) => 1.0,
            ScorePacking::Rows(_) => 2.0,
        };
        if self.variant == SoftmaxVariant::Power {
            return (self.config.eps, span + self.config.eps);
        }
        let (b, n) = (self.config.score_bound, 2000);
        let f = |i: usize| {
            let s = -b + 2.0 * b * i as f64 / n as f64;
            self.numerator_f64(s * self.input_factor())
        };
        let lo = (0..=n).map(f).fold(f64::INFINITY, f64::min);
        let hi = (0..=n).map(f).fold(0.0, f64::max);
        (
            0.99 * lo,
            span * 1.01 * hi * self.packing.shape().tokens as f64,
        )
    }

    /// The reciprocal's stated error report on its interval, and its depth.
    pub fn reciprocal_report(&self) -> (psf_approx::ErrorReport, usize) {
        match &self.denominator {
            Denominator::Reciprocal(r) => (r.error_report(), r.depth()),
            Denominator::Classic(g) => (g.error_report(), g.depth()),
        }
    }

    /// The numerator's stated error against `e^x` (exp variants), on `[-B, B]`.
    pub fn exp_report(&self) -> Option<psf_approx::ErrorReport> {
        match &self.numerator {
            Numerator::Power => None,
            Numerator::Taylor(t) => Some(t.error_report()),
            Numerator::Square(s) => Some(s.error_report()),
        }
    }

    /// Levels of steps 1-2 (numerator and mask).
    pub fn numerator_depth(&self) -> usize {
        1 + match &self.numerator {
            Numerator::Power => 2,
            Numerator::Taylor(t) => t.depth(),
            Numerator::Square(s) => s.squarings,
        }
    }

    /// Weights of the mask plaintext of query `t`.
    fn mask_weight(&self, t: usize) -> f64 {
        match self.variant {
            SoftmaxVariant::Power => 1.0 / (t + 1) as f64,
            _ => 1.0,
        }
    }

    /// Packs `scores[h][t][j]` (already multiplied by [`Self::input_factor`]).
    pub fn pack(&self, scores: &[Vec<Vec<f64>>]) -> Vec<Vec<f64>> {
        let f = self.input_factor();
        let scaled: Vec<Vec<Vec<f64>>> = (scores.iter())
            .map(|h| {
                (h.iter())
                    .map(|r| r.iter().map(|s| s * f).collect())
                    .collect()
            })
            .collect();
        self.packing.pack(&scaled, 0.0)
    }

    /// The f64 twin of [`Self::evaluate`] on packed inputs.
    pub fn eval_f64(&self, xs: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let masked = |c: usize, x: &[f64]| -> Vec<f64> {
            let m = self.packing.mask(c, |t| self.mask_weight(t));
            (x.iter().zip(&m))
                .map(|(&v, &w)| self.numerator_f64(v) * w)
                .collect()
        };
        let eps = match self.variant {
            SoftmaxVariant::Power => self.config.eps,
            _ => 0.0,
        };
        let recip = |d: f64| match &self.denominator {
            Denominator::Reciprocal(rc) => rc.eval_f64(d + eps),
            Denominator::Classic(g) => g.eval_f64(d + eps),
        };
        match &self.packing {
            ScorePacking::Diagonal(p) => {
                let u: Vec<Vec<f64>> = (xs.iter().enumerate()).map(|(c, x)| masked(c, x)).collect();
                let hl = p.diagonal_slots();
                let r: Vec<f64> = (0..hl)
                    .map(|s| {
                        let sum: f64 = (u.iter())
                            .map(|v| v.iter().skip(s).step_by(hl).sum::<f64>())
                            .sum();
                        recip(sum)
                    })
                    .collect();
                (u.iter())
                    .map(|v| {
                        (v.iter().enumerate())
                            .map(|(s, &x)| x * r[s % hl])
                            .collect()
                    })
                    .collect()
            }
            ScorePacking::Rows(p) => (xs.iter().enumerate())
                .map(|(c, x)| {
                    let n = x.len();
                    let copy = (-p.copy_rotation()) as usize;
                    let dup: Vec<f64> = (0..n).map(|s| x[s] + x[(s + n - copy) % n]).collect();
                    let u = masked(c, &dup);
                    let mut den = u.clone();
                    for k in p.rotations() {
                        let k = k as usize;
                        den = (0..n).map(|s| den[s] + den[(s + k) % n]).collect();
                    }
                    (u.iter().zip(&den)).map(|(&v, &d)| v * recip(d)).collect()
                })
                .collect(),
        }
    }

    /// Evaluates on the packed, encrypted scores (one ciphertext per packed ciphertext, all at
    /// one level and scale); `refresh` bootstraps a ciphertext (used by the exp variants'
    /// division when levels run out).
    pub fn evaluate<B: Backend>(
        &self,
        be: &B,
        xs: &[B::Ct],
        refresh: &dyn Fn(&B::Ct) -> Result<B::Ct>,
    ) -> Result<Vec<B::Ct>> {
        let p = &self.packing;
        if xs.len() != p.ciphertexts() || be.slots() != p.slots() {
            return Err(CircuitError::Invalid(format!(
                "softmax over {} ciphertexts of {} slots, packing needs {} of {}",
                xs.len(),
                be.slots(),
                p.ciphertexts(),
                p.slots()
            )));
        }
        match p {
            ScorePacking::Diagonal(d) => {
                let u = (xs.iter().enumerate())
                    .map(|(c, x)| self.masked_numerator(be, c, x))
                    .collect::<Result<Vec<_>>>()?;
                let mut den = u[0].clone();
                for v in &u[1..] {
                    den = be.add(&den, v)?;
                }
                let r = self.reciprocal(be, &rotate_and_sum(be, den, &d.rotations())?, refresh)?;
                (u.iter())
                    .map(|v| be.rescale(&be.mul_relin(v, &r)?))
                    .collect()
            }
            ScorePacking::Rows(_) => {
                let cs: Vec<(usize, &B::Ct)> = xs.iter().enumerate().collect();
                self.evaluate_rows(be, &cs, refresh)
            }
        }
    }

    /// Row packing only: every step on the ciphertexts `cs` (`(index in the packing,
    /// ciphertext)`), each on its own (a row-packed ciphertext needs no other one, so a few of
    /// them measure the cost of all).
    pub fn evaluate_rows<B: Backend>(
        &self,
        be: &B,
        cs: &[(usize, &B::Ct)],
        refresh: &dyn Fn(&B::Ct) -> Result<B::Ct>,
    ) -> Result<Vec<B::Ct>> {
        let ScorePacking::Rows(rows) = &self.packing else {
            return Err(CircuitError::Invalid(
                "evaluate_rows needs the row packing".into(),
            ));
        };
        (cs.iter())
            .map(|&(c, x)| {
                if c >= rows.ciphertexts() {
                    return Err(CircuitError::Invalid(format!(
                        "ciphertext {c} of a {}-ciphertext packing",
                        rows.ciphertexts()
                    )));
                }
                let dup = be.add(x, &be.rotate(x, rows.copy_rotation())?)?;
                let u = self.masked_numerator(be, c, &dup)?;
                let den = rotate_and_sum(be, u.clone(), &rows.rotations())?;
                let r = self.reciprocal(be, &den, refresh)?;
                be.rescale(&be.mul_relin(&u, &r)?)
            })
            .collect()
    }

    /// Step 4 on summed denominators (Power adds `eps` first).
    fn reciprocal<B: Backend>(
        &self,
        be: &B,
        den: &B::Ct,
        refresh: &dyn Fn(&B::Ct) -> Result<B::Ct>,
    ) -> Result<B::Ct> {
        match &self.denominator {
            Denominator::Reciprocal(rc) => rc.evaluate(be, &be.add_const(den, self.config.eps)?),
            Denominator::Classic(g) => g.evaluate(be, den, refresh),
        }
    }

    /// Steps 1-2 on ciphertext `c`.
    fn masked_numerator<B: Backend>(&self, be: &B, c: usize, x: &B::Ct) -> Result<B::Ct> {
        let n = match &self.numerator {
            Numerator::Power => {
                let y = be.rescale(&be.mul_relin(x, x)?)?;
                be.rescale(&be.mul_relin(&y, &y)?)?
            }
            Numerator::Taylor(t) => t.poly.evaluate_one(be, x)?,
            Numerator::Square(s) => s.evaluate(be, x)?,
        };
        let l = be.level(&n);
        if l == 0 {
            return Err(CircuitError::NotEnoughLevels {
                needed: self.numerator_depth(),
                level: be.level(x),
            });
        }
        let mask = self.packing.mask(c, |t| self.mask_weight(t));
        let pt = be.encode(&mask, l, be.prime(l) as f64)?;
        be.rescale(&be.mul_plain(&n, &pt)?)
    }
}

/// `x + rot(x, k)` for each `k` in turn.
fn rotate_and_sum<B: Backend>(be: &B, mut x: B::Ct, ks: &[i64]) -> Result<B::Ct> {
    for &k in ks {
        x = be.add(&x, &be.rotate(&x, k)?)?;
    }
    Ok(x)
}

/// The exact function `variant` approximates, row by row on `scores[h][t][j]` (only `j <= t`
/// is read):
/// softmax, or `(z_j^4 / L_t) / (eps + mean z^4)` with `z = s / B` for Power-Softmax.
pub fn exact(
    variant: SoftmaxVariant,
    config: &SoftmaxConfig,
    scores: &[Vec<Vec<f64>>],
) -> Vec<Vec<Vec<f64>>> {
    let row = |r: &[f64]| -> Vec<f64> {
        match variant {
            SoftmaxVariant::Power => {
                let n: Vec<f64> = r.iter().map(|s| (s / config.score_bound).powi(4)).collect();
                let l = n.len() as f64;
                let den = config.eps + n.iter().sum::<f64>() / l;
                n.iter().map(|v| v / l / den).collect()
            }
            _ => {
                let e: Vec<f64> = r.iter().map(|s| s.exp()).collect();
                let sum: f64 = e.iter().sum();
                e.iter().map(|v| v / sum).collect()
            }
        }
    };
    (scores.iter())
        .map(|h| (h.iter().enumerate()).map(|(t, r)| row(&r[..=t])).collect())
        .collect()
}

#[cfg(test)]
mod tests;

/// A refresh hook for the simulation evaluator standing in for bootstrapping: records one
/// [`psf_ckks::Primitive::Bootstrap`] at the input's level and returns the message at
/// `output_level` with the default scale (the modelled bootstrap is exact: its ~21 bits of
/// precision at N = 2^16 are not simulated).
pub fn sim_bootstrap(
    sim: &crate::SimBackend,
    output_level: usize,
) -> impl Fn(&crate::SimCiphertext) -> Result<crate::SimCiphertext> + '_ {
    move |ct| {
        sim.counter()
            .record_at(psf_ckks::Primitive::Bootstrap, ct.level);
        sim.encrypt(&ct.values, output_level, sim.default_scale())
    }
}
