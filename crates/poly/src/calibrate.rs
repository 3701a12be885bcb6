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

/// How calibration turns ranges into approximations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationOptions {
    /// Relative margin: positive intervals become `[lo / (1 + m), hi * (1 + m)]`, the
    /// activation's `[lo - m w, hi + m w]` (`w = hi - lo`), and `c = (1 + m) max|s|`.
    pub margin: f64,
    /// Degree of the activation's minimax polynomial.
    pub activation_degree: usize,
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
}

impl Default for CalibrationOptions {
    fn default() -> Self {
        Self {
            margin: 0.1,
            activation_degree: 16,
            inv_sqrt_guess_degree: 7,
            reciprocal_guess_degree: 7,
            reciprocal_method: InverseMethod::Goldschmidt,
            target_rel_error: 1e-4,
            max_iterations: 30,
        }
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
    let m = opts.margin;
    let layers = ranges
        .layers
        .iter()
        .map(|l| {
            let c = (1.0 + m) * l.scores.abs_max().max(1e-6);
            let cp = c.powi(ps.p as i32);
            let den = Seen {
                lo: l.denominator.lo / cp,
                hi: l.denominator.hi / cp,
            };
            let (alo, ahi) = (l.activation.lo, l.activation.hi);
            let w = (ahi - alo).max(1e-6);
            Ok(LayerSpec {
                norm1: inv_sqrt_recipe(positive(l.norm1, m)?, opts)?,
                norm2: inv_sqrt_recipe(positive(l.norm2, m)?, opts)?,
                c,
                reciprocal: reciprocal_recipe(positive(den, m)?, opts)?,
                activation: ActivationSpec::fit(
                    act,
                    (alo - m * w, ahi + m * w),
                    opts.activation_degree,
                )?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut notes = BTreeMap::new();
    notes.insert("calibration_tokens".into(), ranges.tokens.to_string());
    notes.insert(
        "options".into(),
        serde_json::to_string(opts).unwrap_or_default(),
    );
    Ok(PolySpec {
        p: ps.p,
        eps: ps.eps,
        layers,
        final_norm: inv_sqrt_recipe(positive(ranges.final_norm, m)?, opts)?,
        margin: m,
        notes,
    })
}

fn positive(s: Seen, m: f64) -> Result<(f64, f64)> {
    if !(s.lo > 0.0 && s.hi.is_finite() && s.hi >= s.lo) {
        return Err(PolyError::InvalidSpec(format!(
            "range [{}, {}] is not positive (not calibrated?)",
            s.lo, s.hi
        )));
    }
    let (a, b) = (s.lo / (1.0 + m), s.hi * (1.0 + m));
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

/// The fewest iterations (up to the cap) that meet the target with a fixed first guess.
fn fewest_iterations(err: impl Fn(usize) -> f64, min: usize, opts: &CalibrationOptions) -> usize {
    (min..=opts.max_iterations.max(min))
        .find(|&n| err(n) <= opts.target_rel_error)
        .unwrap_or(opts.max_iterations.max(min))
}

fn inv_sqrt_recipe((a, b): (f64, f64), opts: &CalibrationOptions) -> Result<InvSqrtRecipe> {
    let d = opts.inv_sqrt_guess_degree;
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
    Ok(InvSqrtRecipe {
        iterations: fewest_iterations(err, base.iterations, opts),
        ..base
    })
}

fn reciprocal_recipe((a, b): (f64, f64), opts: &CalibrationOptions) -> Result<ReciprocalRecipe> {
    let d = opts.reciprocal_guess_degree;
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
    Ok(ReciprocalRecipe {
        iterations: fewest_iterations(err, base.iterations, opts),
        ..base
    })
}
