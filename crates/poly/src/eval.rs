//! Quality of a polynomial model against its unapproximated twin: perplexity of both, top-1
//! agreement and logit error over held-out windows, with the out-of-interval tally.

use candle_core::{Device, Tensor};
use psf_model::Model;
use serde::{Deserialize, Serialize};

use crate::error::{PolyError, Result};
use crate::matrix::Matrix;
use crate::model::{Forward, PolyModel};
use crate::spec::{Mode, OutOfRange};

/// Consecutive non-overlapping windows of `seq + 1` tokens (inputs are the first `seq`,
/// targets the last `seq`), as psf-model's held-out perplexity takes them; at most `max`.
///
/// # Errors
/// Fewer than `seq + 1` tokens, or `seq == 0`.
pub fn windows(ids: &[u32], seq: usize, max: Option<usize>) -> Result<Vec<Vec<u32>>> {
    if seq == 0 || ids.len() < seq + 1 {
        return Err(PolyError::Shape {
            expected: format!("at least {} tokens", seq + 1),
            got: ids.len().to_string(),
        });
    }
    let mut n = (ids.len() - 1) / seq;
    if let Some(m) = max {
        n = n.min(m);
    }
    Ok((0..n)
        .map(|w| ids[w * seq..w * seq + seq + 1].to_vec())
        .collect())
}

/// Mean next-token negative log-likelihood and its exponential.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Ppl {
    /// Mean NLL (nats).
    pub nll: f64,
    /// `exp(nll)`.
    pub ppl: f64,
    /// Predicted tokens.
    pub tokens: usize,
}

impl Ppl {
    fn from_sum(sum: f64, tokens: usize) -> Self {
        let nll = sum / tokens.max(1) as f64;
        Self {
            nll,
            ppl: nll.exp(),
            tokens,
        }
    }
}

/// The polynomial model against its exact twin on the same windows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Comparison {
    /// The exact twin ([`Mode::Exact`]).
    pub exact: Ppl,
    /// The polynomial model ([`Mode::Polynomial`]).
    pub poly: Ppl,
    /// Positions where both predict the same top-1 token.
    pub top1_agree: usize,
    /// Largest `|logit_poly - logit_exact|` over all positions and tokens.
    pub max_logit_err: f64,
    /// Mean squared logit difference.
    pub logit_mse: f64,
    /// Out-of-interval tally of the polynomial run.
    pub out_of_range: OutOfRange,
    /// Out-of-interval tally of the exact twin on the same windows: the held-out inputs that
    /// calibration did not cover, without any approximation error propagated.
    pub exact_out_of_range: OutOfRange,
}

impl Comparison {
    /// Top-1 agreement as a fraction.
    pub fn agreement(&self) -> f64 {
        self.top1_agree as f64 / self.poly.tokens.max(1) as f64
    }

    /// `ppl_poly / ppl_exact - 1`.
    pub fn ppl_rel_change(&self) -> f64 {
        self.poly.ppl / self.exact.ppl - 1.0
    }
}

/// `(sum of target NLL in nats, argmax per row)` of logits `(T, V)` against `targets`.
pub fn nll_and_argmax(logits: &Matrix, targets: &[u32]) -> (f64, Vec<usize>) {
    let mut sum = 0.0;
    let mut top = Vec::with_capacity(logits.rows);
    for (r, &t) in targets.iter().enumerate().take(logits.rows) {
        let row = logits.row(r);
        let (mut best, mut mx) = (0, f64::NEG_INFINITY);
        for (i, &v) in row.iter().enumerate() {
            if v > mx {
                (best, mx) = (i, v);
            }
        }
        let lse = mx + row.iter().map(|v| (v - mx).exp()).sum::<f64>().ln();
        sum += lse - row[t as usize];
        top.push(best);
    }
    (sum, top)
}

/// Runs both modes of `model` over `windows` (each `seq + 1` tokens) and compares them.
///
/// # Errors
/// As [`PolyModel::forward_ids`].
pub fn compare(model: &PolyModel, windows: &[Vec<u32>]) -> Result<Comparison> {
    let mut all = compare_many(std::slice::from_ref(model), windows)?;
    Ok(all.remove(0))
}

/// [`compare`] for several specs of the same weights (a degree sweep, see
/// [`PolyModel::with_spec`]): the exact twin runs once per window, not once per spec (its
/// output does not depend on the approximations). One [`Comparison`] per model.
///
/// # Errors
/// No models, models of different weights, or as [`PolyModel::forward_ids`].
pub fn compare_many(models: &[PolyModel], windows: &[Vec<u32>]) -> Result<Vec<Comparison>> {
    let runs: Vec<(&PolyModel, Mode)> = models.iter().map(|m| (m, Mode::Polynomial)).collect();
    compare_modes(&runs, windows)
}

/// [`compare_many`] with a mode per model (an ablation: [`Mode::Only`] approximates one class
/// of ops and keeps the others exact). Each run is compared with the exact twin.
///
/// # Errors
/// As [`compare_many`].
pub fn compare_modes(runs: &[(&PolyModel, Mode)], windows: &[Vec<u32>]) -> Result<Vec<Comparison>> {
    let Some(&(first, _)) = runs.first() else {
        return Err(PolyError::InvalidSpec("no models to compare".into()));
    };
    if runs
        .iter()
        .any(|(m, _)| !std::ptr::eq(m.weights(), first.weights()))
    {
        return Err(PolyError::InvalidSpec(
            "compare_many needs models sharing one set of weights (PolyModel::with_spec)".into(),
        ));
    }
    let mut acc = vec![Acc::default(); runs.len()];
    let (mut se, mut n) = (0.0, 0usize);
    let mut exact_oor = OutOfRange::default();
    for w in windows {
        let (ids, targets) = (&w[..w.len() - 1], &w[1..]);
        let fe = first.forward_ids(ids, Mode::Exact)?;
        let (ne, te) = nll_and_argmax(&fe.logits, targets);
        se += ne;
        n += targets.len();
        exact_oor.merge(&fe.out_of_range);
        for ((model, mode), a) in runs.iter().zip(acc.iter_mut()) {
            let fp = model.forward_ids(ids, *mode)?;
            a.add(&fe.logits, &te, &fp, targets);
        }
    }
    let vocab = first.weights().config.vocab_size;
    Ok(acc
        .into_iter()
        .map(|a| Comparison {
            exact: Ppl::from_sum(se, n),
            poly: Ppl::from_sum(a.nll, n),
            top1_agree: a.top1_agree,
            max_logit_err: a.max_err,
            logit_mse: a.sq / (n.max(1) * vocab) as f64,
            out_of_range: a.oor,
            exact_out_of_range: exact_oor.clone(),
        })
        .collect())
}

/// Running sums of one polynomial model against the exact twin.
#[derive(Debug, Clone, Default)]
struct Acc {
    nll: f64,
    top1_agree: usize,
    max_err: f64,
    sq: f64,
    oor: OutOfRange,
}

impl Acc {
    fn add(&mut self, exact: &Matrix, exact_top: &[usize], fp: &Forward, targets: &[u32]) {
        let (np, tp) = nll_and_argmax(&fp.logits, targets);
        self.nll += np;
        self.top1_agree += exact_top.iter().zip(&tp).filter(|(a, b)| a == b).count();
        for (a, b) in exact.data.iter().zip(&fp.logits.data) {
            let d = (a - b).abs();
            self.max_err = self.max_err.max(if d.is_nan() { f64::INFINITY } else { d });
            self.sq += d * d;
        }
        self.oor.merge(&fp.out_of_range);
    }
}

/// Perplexity of the candle model on the same windows (the reference for the twins).
///
/// # Errors
/// A model error.
pub fn candle_perplexity(model: &Model, windows: &[Vec<u32>]) -> Result<Ppl> {
    let (mut sum, mut n) = (0.0, 0usize);
    for w in windows {
        let (ids, targets) = (&w[..w.len() - 1], &w[1..]);
        let logits = candle_logits(model, ids)?;
        sum += nll_and_argmax(&logits, targets).0;
        n += targets.len();
    }
    Ok(Ppl::from_sum(sum, n))
}

/// Logits `(T, V)` of the candle model for one sequence, as an `f64` [`Matrix`].
///
/// # Errors
/// A model error.
pub fn candle_logits(model: &Model, ids: &[u32]) -> Result<Matrix> {
    let x = Tensor::from_slice(ids, (1, ids.len()), &Device::Cpu)?;
    let l = model.forward(&x, None)?.squeeze(0)?; // (T, V)
    let (t, v) = l.dims2()?;
    let data = l
        .to_dtype(candle_core::DType::F64)?
        .flatten_all()?
        .to_vec1()?;
    Matrix::new(t, v, data)
}
