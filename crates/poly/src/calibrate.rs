//! Calibration: record the input range of every approximated op over calibration text with
//! psf-model's [`RangeRecorder`], widen by a stated margin, and choose the approximations
//! ([`PolySpec`]): the Power-Softmax constant `c`, the intervals, degrees and the smallest
//! iteration counts that meet a target relative error.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};
use psf_approx::{FirstGuess, InvSqrtRecipe, InverseMethod, ReciprocalRecipe};
use psf_model::{AttentionNorm, Model, ModelConfig, RangeKind, RangeRecorder};
use serde::{Deserialize, Serialize};

use crate::error::{PolyError, Result};
use crate::spec::{ActivationFn, ActivationSpec, LayerSpec, PolySpec};

/// A closed interval `[lo, hi]` seen during calibration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    /// Smallest value.
    pub lo: f64,
    /// Largest value.
    pub hi: f64,
}

impl Seen {
    fn empty() -> Self {
        Self {
            lo: f64::INFINITY,
            hi: f64::NEG_INFINITY,
        }
    }
    fn add(&mut self, lo: f64, hi: f64) {
        self.lo = self.lo.min(lo);
        self.hi = self.hi.max(hi);
    }
    fn abs_max(&self) -> f64 {
        self.lo.abs().max(self.hi.abs())
    }
}

/// Ranges of one block's approximated inputs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LayerRanges {
    /// `var + eps` of the first norm.
    pub norm1: Seen,
    /// `var + eps` of the second norm.
    pub norm2: Seen,
    /// Attention scores `q.k / sqrt(head_dim)` (masked entries count as 0).
    pub scores: Seen,
    /// The length-agnostic denominator `eps + mean_j s_j^p` (unscaled, i.e. `c = 1`).
    pub denominator: Seen,
    /// MLP activation input.
    pub activation: Seen,
}

/// Everything calibration observed, by layer (JSON next to the model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedRanges {
    /// One entry per block.
    pub layers: Vec<LayerRanges>,
    /// `var + eps` of the final norm.
    pub final_norm: Seen,
    /// Calibration tokens seen.
    pub tokens: usize,
}

impl ObservedRanges {
    /// Runs `model` (candle, with a [`RangeRecorder`]) over `windows` of token ids and
    /// records the ranges. Within a block the recorder's order is norm1, scores,
    /// denominator, norm2, activation; the final norm is recorded as layer `num_layers`.
    ///
    /// # Errors
    /// A model error, a window longer than the model's positions, or no windows.
    pub fn record(model: &Model, cfg: &ModelConfig, windows: &[Vec<u32>]) -> Result<Self> {
        if windows.is_empty() {
            return Err(PolyError::InvalidSpec("no calibration windows".into()));
        }
        let blank = LayerRanges {
            norm1: Seen::empty(),
            norm2: Seen::empty(),
            scores: Seen::empty(),
            denominator: Seen::empty(),
            activation: Seen::empty(),
        };
        let mut out = Self {
            layers: vec![blank; cfg.num_layers],
            final_norm: Seen::empty(),
            tokens: 0,
        };
        for w in windows {
            let ids = Tensor::from_slice(w, (1, w.len()), &Device::Cpu)?;
            let mut rec = RangeRecorder::default();
            model.forward(&ids, Some(&mut rec))?;
            out.absorb(&rec)?;
            out.tokens += w.len();
        }
        Ok(out)
    }

    fn absorb(&mut self, rec: &RangeRecorder) -> Result<()> {
        let mut norms_seen = vec![0usize; self.layers.len() + 1];
        for (layer, kind, iv) in rec.intervals()? {
            let (lo, hi) = (iv.min as f64, iv.max as f64);
            if layer == self.layers.len() {
                self.final_norm.add(lo, hi);
                continue;
            }
            let l = &mut self.layers[layer];
            match kind {
                RangeKind::NormVariance => {
                    let which = norms_seen[layer];
                    norms_seen[layer] += 1;
                    if which == 0 {
                        &mut l.norm1
                    } else {
                        &mut l.norm2
                    }
                    .add(lo, hi);
                }
                RangeKind::Scores => l.scores.add(lo, hi),
                RangeKind::Denominator => l.denominator.add(lo, hi),
                RangeKind::ActivationInput => l.activation.add(lo, hi),
            }
        }
        Ok(())
    }
}

/// Per-op margins that override [`CalibrationOptions::margin`] (`None`: that margin).
/// Widening the upper end of `1/x` or `1/sqrt x` by a factor `F` costs about `log2 F` more
/// iterations (their intervals already span ratios of 1e3-1e9); a larger `c` moves the
/// denominator's interval down by `F^p` at the same price; a wider activation interval costs
/// accuracy at a fixed degree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct OpMargins {
    /// `c = (1 + m) max|s|`.
    #[serde(default)]
    pub c: Option<f64>,
    /// Upper end of the reciprocal's interval: `hi * (1 + m)`.
    #[serde(default)]
    pub reciprocal_hi: Option<f64>,
    /// Upper end of every inverse square root's interval: `hi * (1 + m)`.
    #[serde(default)]
    pub inv_sqrt_hi: Option<f64>,
    /// The activation's interval: `[lo - m w, hi + m w]`, `w = hi - lo`.
    #[serde(default)]
    pub activation: Option<f64>,
    /// Widen the reciprocal's interval to at least `[eps / c^p, 1 + eps / c^p]`: the smallest
    /// denominator any query can have (all scores 0) and the largest while every
    /// `|s / c| <= 1` (a mean of `(s/c)^p <= 1`). Then only scores beyond `c` can push it
    /// past its interval.
    #[serde(default)]
    pub reciprocal_to_bound: bool,
    /// Raise the reciprocal's lower end to `b / r` when its interval is wider than this ratio
    /// (`r = b / a`): each halving of `r` saves about one Goldschmidt iteration (one level).
    /// Denominators below the new lower end are those of queries whose scores are all near
    /// zero; there the iterations still converge from below (no divergence: the first guess
    /// barely moves over `[0, a]` in its normalized coordinate) but leave the relative error
    /// `(1 - x y0)^(2^n)`, which shrinks those rows' attention weights. Measured, not assumed:
    /// the `only 1/x` ablation shows what it costs.
    #[serde(default)]
    pub reciprocal_max_ratio: Option<f64>,
}

/// How calibration turns ranges into approximations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationOptions {
    /// Relative margin: positive intervals become `[lo / (1 + m), hi * (1 + m)]`, the
    /// activation's `[lo - m w, hi + m w]` (`w = hi - lo`), and `c = (1 + m) max|s|`;
    /// [`Self::margins`] overrides it per op.
    pub margin: f64,
    /// Per-op margins.
    #[serde(default)]
    pub margins: OpMargins,
    /// Degree of the activation's minimax polynomial (the smallest, with
    /// [`Self::activation_target_error`]).
    pub activation_degree: usize,
    /// Per-layer degrees: each layer's degree goes up the ladder `d -> 2 d + 1` from
    /// [`Self::activation_degree`] until the minimax error on its interval is at most this
    /// (or [`Self::activation_max_degree`] is reached). `None`: one degree for all layers.
    #[serde(default)]
    pub activation_target_error: Option<f64>,
    /// Largest per-layer activation degree.
    #[serde(default = "default_max_degree")]
    pub activation_max_degree: usize,
    /// Degree of the inverse square root's first guess (0: constant).
    pub inv_sqrt_guess_degree: usize,
    /// Degree of the reciprocal's first guess (0: constant).
    pub reciprocal_guess_degree: usize,
    /// Newton or Goldschmidt for the reciprocal.
    pub reciprocal_method: InverseMethod,
    /// Iterations are the fewest whose largest relative error on the interval (dense
    /// geometric + uniform grid) is at most this.
    pub target_rel_error: f64,
    /// Upper bound on iterations.
    pub max_iterations: usize,
    /// First-guess degrees to choose from, per inverse: the one whose circuit is shallowest
    /// (guess depth plus iterations, [`InvSqrtRecipe::depth`]) while meeting the target.
    /// Empty: the two degrees above.
    #[serde(default)]
    pub guess_degree_candidates: Vec<usize>,
}

impl Default for CalibrationOptions {
    fn default() -> Self {
        Self {
            margin: 0.1,
            margins: OpMargins::default(),
            activation_degree: 16,
            activation_target_error: None,
            activation_max_degree: default_max_degree(),
            inv_sqrt_guess_degree: 7,
            reciprocal_guess_degree: 7,
            reciprocal_method: InverseMethod::Goldschmidt,
            target_rel_error: 1e-4,
            max_iterations: 30,
            guess_degree_candidates: Vec::new(),
        }
    }
}

fn default_max_degree() -> usize {
    255
}

/// The activation fit of one layer: [`CalibrationOptions::activation_degree`], raised per
/// [`CalibrationOptions::activation_target_error`].
fn activation_fit(
    f: ActivationFn,
    iv: (f64, f64),
    opts: &CalibrationOptions,
) -> Result<ActivationSpec> {
    let mut d = opts.activation_degree;
    loop {
        let spec = ActivationSpec::fit(f, iv, d)?;
        let next = 2 * d + 1;
        match opts.activation_target_error {
            Some(t) if spec.report.max_abs > t && next <= opts.activation_max_degree => d = next,
            _ => return Ok(spec),
        }
    }
}

/// The margins in force: [`OpMargins`] resolved against [`CalibrationOptions::margin`].
#[derive(Debug, Clone, Copy)]
struct Margins {
    lo: f64,
    c: f64,
    rec: f64,
    inv: f64,
    act: f64,
    to_bound: bool,
    max_ratio: Option<f64>,
}

impl Margins {
    fn new(opts: &CalibrationOptions) -> Self {
        let (m, mm) = (opts.margin, opts.margins);
        Self {
            lo: m,
            c: mm.c.unwrap_or(m),
            rec: mm.reciprocal_hi.unwrap_or(m),
            inv: mm.inv_sqrt_hi.unwrap_or(m),
            act: mm.activation.unwrap_or(m),
            to_bound: mm.reciprocal_to_bound,
            max_ratio: mm.reciprocal_max_ratio,
        }
    }

    fn note(&self) -> String {
        let bound = if self.to_bound {
            " (interval at least [eps/c^p, 1 + eps/c^p])"
        } else {
            ""
        };
        let ratio = self.max_ratio.map_or(String::new(), |r| {
            format!(", 1/x interval ratio at most {r:e}")
        });
        format!(
            "c {}, 1/x upper end {}{bound}, 1/sqrt x upper end {}, activation {}, lower ends \
             {}{ratio}",
            self.c, self.rec, self.inv, self.act, self.lo
        )
    }
}

/// Chooses a [`PolySpec`] for a Power-Softmax model from its observed ranges.
///
/// # Errors
/// A model that is not Power-Softmax, empty ranges, or a failed fit.
pub fn calibrate(
    cfg: &ModelConfig,
    ranges: &ObservedRanges,
    opts: &CalibrationOptions,
) -> Result<PolySpec> {
    let AttentionNorm::Power(ps) = &cfg.attention_norm else {
        return Err(PolyError::Unsupported(
            "calibration needs a Power-Softmax model".into(),
        ));
    };
    let act = match cfg.activation {
        psf_model::Activation::Gelu => ActivationFn::Gelu,
        psf_model::Activation::GeluTanh => ActivationFn::GeluTanh,
        psf_model::Activation::Silu => ActivationFn::Silu,
        psf_model::Activation::Relu => return Err(PolyError::Unsupported("ReLU MLP".into())),
    };
    let m = Margins::new(opts);
    let layers = ranges
        .layers
        .iter()
        .map(|l| layer_spec(l, (ps.p, ps.eps), act, &m, opts))
        .collect::<Result<Vec<_>>>()?;
    let mut notes = BTreeMap::new();
    notes.insert("calibration_tokens".into(), ranges.tokens.to_string());
    notes.insert(
        "options".into(),
        serde_json::to_string(opts).unwrap_or_default(),
    );
    notes.insert("margins".into(), m.note());
    let mut spec = PolySpec {
        p: ps.p,
        eps: ps.eps,
        layers,
        final_norm: inv_sqrt_recipe(positive(ranges.final_norm, m.lo, m.inv)?, opts)?,
        margin: opts.margin,
        notes,
    };
    let unmet = unmet_targets(&spec, opts)?;
    if !unmet.is_empty() {
        spec.notes.insert(UNMET_TARGETS.into(), unmet.join("; "));
    }
    Ok(spec)
}

/// The [`PolySpec::notes`] key listing the inverses that miss
/// [`CalibrationOptions::target_rel_error`] even at [`CalibrationOptions::max_iterations`]
/// (a first guess too poor for its interval: Newton for `1/sqrt x` stalls when the guess's
/// relative error nears 1, so more iterations do not help; narrow the interval or raise the
/// guess degree).
pub const UNMET_TARGETS: &str = "unmet_targets";

/// Every inverse of `spec` whose relative error on its interval exceeds the target.
fn unmet_targets(spec: &PolySpec, opts: &CalibrationOptions) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut check = |name: String, r: &InvSqrtRecipe| -> Result<()> {
        let g = r.first_guess()?;
        let e = max_rel_error(|x| 1.0 / x.sqrt(), |x| r.eval_with(&g, x), (r.a, r.b));
        if e > opts.target_rel_error {
            out.push(format!(
                "{name}: 1/sqrt x rel. error {e:.1e} after {}",
                r.iterations
            ));
        }
        Ok(())
    };
    for (i, l) in spec.layers.iter().enumerate() {
        check(format!("layer {i} norm1"), &l.norm1)?;
        check(format!("layer {i} norm2"), &l.norm2)?;
    }
    check("final norm".into(), &spec.final_norm)?;
    for (i, l) in spec.layers.iter().enumerate() {
        let r = l.reciprocal;
        let g = r.first_guess()?;
        let e = max_rel_error(|x| 1.0 / x, |x| r.eval_with(&g, x), (r.a, r.b));
        if e > opts.target_rel_error {
            out.push(format!(
                "layer {i}: 1/x rel. error {e:.1e} after {}",
                r.iterations
            ));
        }
    }
    Ok(out)
}

/// One block's approximations from its ranges.
fn layer_spec(
    l: &LayerRanges,
    (p, eps): (u32, f64),
    act: ActivationFn,
    m: &Margins,
    opts: &CalibrationOptions,
) -> Result<LayerSpec> {
    let c = (1.0 + m.c) * l.scores.abs_max().max(1e-6);
    let cp = c.powi(p as i32);
    let den = Seen {
        lo: l.denominator.lo / cp,
        hi: l.denominator.hi / cp,
    };
    let mut rec = positive(den, m.lo, m.rec)?;
    if m.to_bound {
        rec = (rec.0.min(eps / cp), rec.1.max(1.0 + eps / cp));
    }
    if let Some(r) = m.max_ratio.filter(|r| *r > 1.0) {
        rec.0 = rec.0.max(rec.1 / r);
    }
    let (alo, ahi) = (l.activation.lo, l.activation.hi);
    let w = (ahi - alo).max(1e-6);
    Ok(LayerSpec {
        norm1: inv_sqrt_recipe(positive(l.norm1, m.lo, m.inv)?, opts)?,
        norm2: inv_sqrt_recipe(positive(l.norm2, m.lo, m.inv)?, opts)?,
        c,
        reciprocal: reciprocal_recipe(rec, opts)?,
        activation: activation_fit(act, (alo - m.act * w, ahi + m.act * w), opts)?,
    })
}

/// `[lo / (1 + m_lo), hi * (1 + m_hi)]` of a positive range.
fn positive(s: Seen, m_lo: f64, m_hi: f64) -> Result<(f64, f64)> {
    if !(s.lo > 0.0 && s.hi.is_finite() && s.hi >= s.lo) {
        return Err(PolyError::InvalidSpec(format!(
            "range [{}, {}] is not positive (not calibrated?)",
            s.lo, s.hi
        )));
    }
    let (a, b) = (s.lo / (1.0 + m_lo), s.hi * (1.0 + m_hi));
    Ok((a, if b > a { b } else { a * 2.0 }))
}

/// Largest relative error of `approx` against `exact` on a geometric and a uniform grid.
pub(crate) fn max_rel_error(
    exact: impl Fn(f64) -> f64,
    approx: impl Fn(f64) -> f64,
    (a, b): (f64, f64),
) -> f64 {
    const N: usize = 4001;
    let ratio = (b / a).ln();
    (0..N)
        .flat_map(|i| {
            let u = i as f64 / (N - 1) as f64;
            [a * (ratio * u).exp(), a + (b - a) * u]
        })
        .map(|x| {
            let e = exact(x);
            ((approx(x) - e) / e).abs()
        })
        .fold(
            0.0,
            |m: f64, e| if e.is_nan() { f64::INFINITY } else { m.max(e) },
        )
}

/// The fewest iterations (up to the cap) that meet the target with a fixed first guess, and
/// whether they do.
fn fewest_iterations(
    err: impl Fn(usize) -> f64,
    min: usize,
    opts: &CalibrationOptions,
) -> (usize, bool) {
    let cap = opts.max_iterations.max(min);
    (min..=cap)
        .find(|&n| err(n) <= opts.target_rel_error)
        .map_or((cap, false), |n| (n, true))
}

/// The candidate first-guess degrees: [`CalibrationOptions::guess_degree_candidates`], or
/// `configured` alone.
fn candidates(configured: usize, opts: &CalibrationOptions) -> Vec<usize> {
    if opts.guess_degree_candidates.is_empty() {
        vec![configured]
    } else {
        opts.guess_degree_candidates.clone()
    }
}

/// Of `(recipe, target met, depth)` candidates, the shallowest that meets the target (ties:
/// the first, i.e. the lowest degree given first), else the first.
fn shallowest<R: Copy>(found: &[(R, bool, usize)]) -> Option<R> {
    let ok = found.iter().filter(|f| f.1).min_by_key(|f| f.2);
    ok.or(found.first()).map(|f| f.0)
}

fn inv_sqrt_recipe((a, b): (f64, f64), opts: &CalibrationOptions) -> Result<InvSqrtRecipe> {
    let mut found = Vec::new();
    for d in candidates(opts.inv_sqrt_guess_degree, opts) {
        let base = InvSqrtRecipe {
            a,
            b,
            guess_degree: d,
            iterations: usize::from(d == 0),
        };
        let g: FirstGuess = base.first_guess()?;
        let err = |n: usize| {
            let r = InvSqrtRecipe {
                iterations: n,
                ..base
            };
            max_rel_error(|x| 1.0 / x.sqrt(), |x| r.eval_with(&g, x), (a, b))
        };
        let (iterations, met) = fewest_iterations(err, base.iterations, opts);
        let r = InvSqrtRecipe { iterations, ..base };
        found.push((r, met, r.depth()));
    }
    shallowest(&found).ok_or_else(|| PolyError::InvalidSpec("no guess degree".into()))
}

fn reciprocal_recipe((a, b): (f64, f64), opts: &CalibrationOptions) -> Result<ReciprocalRecipe> {
    let mut found = Vec::new();
    for d in candidates(opts.reciprocal_guess_degree, opts) {
        let base = ReciprocalRecipe {
            a,
            b,
            method: opts.reciprocal_method,
            guess_degree: d,
            iterations: usize::from(d == 0),
        };
        let g = base.first_guess()?;
        let err = |n: usize| {
            let r = ReciprocalRecipe {
                iterations: n,
                ..base
            };
            max_rel_error(|x| 1.0 / x, |x| r.eval_with(&g, x), (a, b))
        };
        let (iterations, met) = fewest_iterations(err, base.iterations, opts);
        let r = ReciprocalRecipe { iterations, ..base };
        found.push((r, met, r.depth()));
    }
    shallowest(&found).ok_or_else(|| PolyError::InvalidSpec("no guess degree".into()))
}
