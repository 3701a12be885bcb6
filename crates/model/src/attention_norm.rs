//! Every attention-score normalization in one file (DESIGN.md §2.1): softmax, Power-Softmax in
//! its stable training form and its length-agnostic inference form, and the pointwise
//! baseline `relu(s)/L`. All are built from composed candle ops, so autograd reaches every
//! parameter (candle's fused softmax drops gradients); the tests check values and gradients.

use candle_core::{D, DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fused::{self, CausalKind};
use crate::ranges::{RangeKind, RangeRecorder};

/// How attention scores become attention weights. Serialized as `{"kind": "softmax"}`,
/// `{"kind": "power", "p": 4, "eps": 1e-3, ...}` or `{"kind": "relu_linear"}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AttentionNorm {
    /// `e^{s_j} / sum_i e^{s_i}` with an additive `-inf` causal mask.
    #[default]
    Softmax,
    /// Power-Softmax `s_j^p / (eps_term + sum_i s_i^p)` with a multiplicative causal mask.
    Power(PowerSoftmax),
    /// Pointwise baseline `relu(s_j) / L`, L the number of visible keys.
    ReluLinear,
}

/// Parameters of Power-Softmax.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PowerSoftmax {
    /// The power, a positive even integer (4 for decoders, 6 for encoders).
    pub p: u32,
    /// The denominator's offset: a model hyper-parameter (1e-3..1e-2), not a numerical guard.
    /// With `eps = 0` a query row whose visible scores are all exactly 0 gives 0/0 (NaN).
    #[serde(default)]
    pub eps: f64,
    /// Whether `eps` is per key (length-agnostic) or fixed (Lipschitz form).
    #[serde(default)]
    pub eps_scaling: EpsScaling,
    /// `delta` in the stable form's `c = max|s| + delta`.
    #[serde(default = "default_delta")]
    pub delta: f64,
    /// Which algebraically equal computation to run.
    #[serde(default)]
    pub form: PowerForm,
}

fn default_delta() -> f64 {
    1e-4
}

/// Where `eps` enters the denominator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EpsScaling {
    /// Length-agnostic: `(s_j^p / L) / (eps + mean_i s_i^p)`, i.e. `eps * L` added to the sum.
    #[default]
    PerKey,
    /// Lipschitz form: `s_j^p / (eps + sum_i s_i^p)`.
    Fixed,
}

/// Two computations of the same function.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerForm {
    /// Training: `PowerSoftmax(s / c)` with `c = max_i |s_i| + delta` per row, so `(s/c)^p`
    /// stays in `[0, 1]`; eps is rescaled by `c^-p` so the value is unchanged.
    #[default]
    Stable,
    /// Inference: literally `(s^p / L) / (eps + mean s^p)` (or `s^p / (eps + sum s^p)`), the
    /// form whose reciprocal is later replaced by a polynomial.
    Inference,
}

impl Default for PowerSoftmax {
    fn default() -> Self {
        PowerSoftmax {
            p: 4,
            eps: 0.0,
            eps_scaling: EpsScaling::PerKey,
            delta: default_delta(),
            form: PowerForm::Stable,
        }
    }
}

/// Causal-mask tensors for `T` queries over `T` keys, built once per forward pass.
#[derive(Debug, Clone)]
pub struct CausalMask {
    /// `(T, T)`: 1 where key <= query, else 0 (multiplicative mask).
    pub keep: Tensor,
    /// `(T, T)`: 0 where key <= query, else `-inf` (additive mask for softmax).
    pub additive: Tensor,
    /// `(T, 1)`: number of visible keys `L_i = i + 1`.
    pub keys: Tensor,
    /// `(T, T)`: the distance `i - j` from query i back to key j where key <= query, else 0.
    pub distance: Tensor,
}

impl CausalMask {
    /// The lower-triangular mask for sequence length `t`.
    pub fn new(t: usize, device: &Device) -> Result<Self> {
        let keep: Vec<f32> = (0..t * t)
            .map(|k| if k % t <= k / t { 1.0 } else { 0.0 })
            .collect();
        let additive: Vec<f32> = keep
            .iter()
            .map(|&m| if m > 0.0 { 0.0 } else { f32::NEG_INFINITY })
            .collect();
        let keys: Vec<f32> = (1..=t).map(|l| l as f32).collect();
        let distance: Vec<f32> = (0..t * t)
            .map(|k| (k / t).saturating_sub(k % t) as f32)
            .collect();
        Ok(CausalMask {
            keep: Tensor::from_vec(keep, (t, t), device)?,
            additive: Tensor::from_vec(additive, (t, t), device)?,
            keys: Tensor::from_vec(keys, (t, 1), device)?,
            distance: Tensor::from_vec(distance, (t, t), device)?,
        })
    }
}

/// Centers causal scores `(B, H, T, T)` by a share of their row mean: `s_ij - a_h m_i`,
/// `m_i` the mean of query i's visible scores, `a`: `(H,)` (learned, 0 = no change).
///
/// Softmax is invariant to a shift of a row, so a query-dependent offset `q_i . mean(k)`
/// costs it nothing; Power-Softmax is invariant to a scaling instead, and an offset common
/// to a row's scores flattens its weights. Subtracting the mean gives the model that shift
/// invariance back where it wants it. Under HE it is a linear step: one more sum over the
/// keys (as the denominator's) and a plaintext product by `a_h / L_i`.
pub fn center_scores(scores: &Tensor, share: &Tensor, mask: &CausalMask) -> Result<Tensor> {
    let h = share.dim(0)?;
    let mean = scores
        .broadcast_mul(&mask.keep)?
        .sum_keepdim(D::Minus1)?
        .broadcast_div(&mask.keys)?; // (B, H, T, 1)
    let offset = mean.broadcast_mul(&share.reshape((1, h, 1, 1))?)?;
    Ok(scores.broadcast_sub(&offset)?)
}

impl std::str::FromStr for AttentionNorm {
    type Err = Error;

    /// Parses the JSON form (`{"kind":"power","p":4,"eps":0.001}`, as in `config.json`) and
    /// validates it: what a command-line override takes.
    fn from_str(json: &str) -> Result<Self> {
        let norm: AttentionNorm = serde_json::from_str(json)
            .map_err(|e| Error::InvalidConfig(format!("attention normalization {json:?}: {e}")))?;
        norm.validate()?;
        Ok(norm)
    }
}

impl AttentionNorm {
    /// Checks the parameters (even p in 2..=16, eps >= 0, delta > 0).
    pub fn validate(&self) -> Result<()> {
        if let AttentionNorm::Power(ps) = self {
            if ps.p == 0 || !ps.p.is_multiple_of(2) || ps.p > 16 {
                return Err(Error::InvalidConfig(format!(
                    "power p={} must be even, 2..=16",
                    ps.p
                )));
            }
            if !(ps.eps >= 0.0 && ps.delta > 0.0) {
                return Err(Error::InvalidConfig(
                    "power needs eps >= 0 and delta > 0".into(),
                ));
            }
        }
        Ok(())
    }

    /// Normalizes causal attention scores `(B, H, T, T)` into weights of the same shape.
    /// With a recorder, records the scores and (Power-Softmax) the denominator for `layer`.
    ///
    /// Without a recorder, softmax and the stable Power-Softmax run as one fused kernel with a
    /// hand-written backward (`crate::fused`); otherwise, and for the other forms, as composed
    /// ops ([`AttentionNorm::forward_composed`]).
    pub fn forward(
        &self,
        scores: &Tensor,
        mask: &CausalMask,
        layer: usize,
        rec: Option<&mut RangeRecorder>,
    ) -> Result<Tensor> {
        if rec.is_none()
            && scores.dtype() == DType::F32
            && let Some(kind) = self.fused_kind()
        {
            return fused::causal_norm(scores, kind);
        }
        self.forward_composed(scores, mask, layer, rec)
    }

    /// Applies a per-head positional decay to causal scores `(B, H, T, T)`: afterwards every
    /// key's unnormalized weight is multiplied by `exp(-rate_h * (i - j))` (`rates`: `(H,)`,
    /// positive). Softmax adds `-rate * (i - j)` to its scores (ALiBi); Power-Softmax multiplies
    /// them by `exp(-rate * (i - j) / p)`, a plaintext product like its causal mask, since
    /// `(f s)^p = f^p s^p`; the pointwise baseline multiplies them by `exp(-rate * (i - j))`.
    pub fn decay_scores(
        &self,
        scores: &Tensor,
        rates: &Tensor,
        mask: &CausalMask,
    ) -> Result<Tensor> {
        let h = rates.dim(0)?;
        let rd = rates.reshape((1, h, 1, 1))?.broadcast_mul(&mask.distance)?; // (1, H, T, T)
        Ok(match self {
            AttentionNorm::Softmax => scores.broadcast_sub(&rd)?,
            AttentionNorm::Power(ps) => {
                scores.broadcast_mul(&(rd * (-1.0 / ps.p as f64))?.exp()?)?
            }
            AttentionNorm::ReluLinear => scores.broadcast_mul(&rd.neg()?.exp()?)?,
        })
    }

    fn fused_kind(&self) -> Option<CausalKind> {
        match self {
            AttentionNorm::Softmax => Some(CausalKind::Softmax),
            AttentionNorm::Power(ps) if ps.form == PowerForm::Stable => Some(CausalKind::Power {
                p: ps.p as i32,
                eps: ps.eps as f32,
                per_key: ps.eps_scaling == EpsScaling::PerKey,
                delta: ps.delta as f32,
            }),
            _ => None,
        }
    }

    /// The reference computation from composed candle ops (records ranges when asked).
    pub fn forward_composed(
        &self,
        scores: &Tensor,
        mask: &CausalMask,
        layer: usize,
        rec: Option<&mut RangeRecorder>,
    ) -> Result<Tensor> {
        match self {
            AttentionNorm::Softmax => softmax(scores, mask, layer, rec),
            AttentionNorm::Power(ps) => match ps.form {
                PowerForm::Stable => ps.stable(scores, mask, layer, rec),
                PowerForm::Inference => ps.inference(scores, mask, layer, rec),
            },
            AttentionNorm::ReluLinear => relu_linear(scores, mask, layer, rec),
        }
    }
}

fn softmax(
    scores: &Tensor,
    mask: &CausalMask,
    layer: usize,
    rec: Option<&mut RangeRecorder>,
) -> Result<Tensor> {
    if let Some(rec) = rec {
        rec.record(layer, RangeKind::Scores, &scores.broadcast_mul(&mask.keep)?)?;
    }
    let s = scores.broadcast_add(&mask.additive)?; // (B, H, T, T)
    let m = s.max_keepdim(D::Minus1)?.detach(); // (B, H, T, 1)
    let e = s.broadcast_sub(&m)?.exp()?;
    let z = e.sum_keepdim(D::Minus1)?;
    Ok(e.broadcast_div(&z)?)
}

fn relu_linear(
    scores: &Tensor,
    mask: &CausalMask,
    layer: usize,
    rec: Option<&mut RangeRecorder>,
) -> Result<Tensor> {
    let s = scores.broadcast_mul(&mask.keep)?; // (B, H, T, T), masked scores are 0
    if let Some(rec) = rec {
        rec.record(layer, RangeKind::Scores, &s)?;
    }
    Ok(s.relu()?.broadcast_div(&mask.keys)?)
}

impl PowerSoftmax {
    /// `eps_i` added to `sum_j s_ij^p` for each query row: `(T, 1)`.
    fn eps_per_row(&self, mask: &CausalMask) -> Result<Tensor> {
        Ok(match self.eps_scaling {
            EpsScaling::PerKey => (&mask.keys * self.eps)?,
            EpsScaling::Fixed => (mask.keys.ones_like()? * self.eps)?,
        })
    }

    /// The reciprocal's input in inference form, from the raw `sum_j s_j^p` `(B, H, T, 1)`.
    fn inference_denominator(&self, sum_sp: &Tensor, mask: &CausalMask) -> Result<Tensor> {
        Ok(match self.eps_scaling {
            EpsScaling::PerKey => (sum_sp.broadcast_div(&mask.keys)? + self.eps)?,
            EpsScaling::Fixed => (sum_sp + self.eps)?,
        })
    }

    fn stable(
        &self,
        scores: &Tensor,
        mask: &CausalMask,
        layer: usize,
        rec: Option<&mut RangeRecorder>,
    ) -> Result<Tensor> {
        let s = scores.broadcast_mul(&mask.keep)?; // (B, H, T, T), masked scores are 0
        let c = (s.abs()?.max_keepdim(D::Minus1)?.detach() + self.delta)?; // (B, H, T, 1)
        let xp = int_pow(&s.broadcast_div(&c)?, self.p)?; // (s/c)^p in [0, 1]
        let z = xp.sum_keepdim(D::Minus1)?; // (B, H, T, 1)
        let cp = int_pow(&c, self.p)?; // c^p, detached
        let den = (&z + self.eps_per_row(mask)?.broadcast_div(&cp)?)?;
        if let Some(rec) = rec {
            rec.record(layer, RangeKind::Scores, &s)?;
            rec.record(
                layer,
                RangeKind::Denominator,
                &self.inference_denominator(&(z * cp)?, mask)?,
            )?;
        }
        Ok(xp.broadcast_div(&den)?)
    }

    fn inference(
        &self,
        scores: &Tensor,
        mask: &CausalMask,
        layer: usize,
        rec: Option<&mut RangeRecorder>,
    ) -> Result<Tensor> {
        let s = scores.broadcast_mul(&mask.keep)?; // (B, H, T, T)
        let sp = int_pow(&s, self.p)?;
        let sum = sp.sum_keepdim(D::Minus1)?; // (B, H, T, 1)
        let den = self.inference_denominator(&sum, mask)?;
        if let Some(rec) = rec {
            rec.record(layer, RangeKind::Scores, &s)?;
            rec.record(layer, RangeKind::Denominator, &den)?;
        }
        let num = match self.eps_scaling {
            EpsScaling::PerKey => sp.broadcast_div(&mask.keys)?, // s^p / L
            EpsScaling::Fixed => sp,
        };
        Ok(num.broadcast_div(&den)?)
    }
}

/// `x^p` for a positive integer `p`, by repeated squaring of composed multiplications.
pub fn int_pow(x: &Tensor, p: u32) -> Result<Tensor> {
    let mut result: Option<Tensor> = None;
    let mut base = x.clone();
    let mut e = p;
    while e > 0 {
        if e & 1 == 1 {
            result = Some(match result {
                None => base.clone(),
                Some(r) => (r * &base)?,
            });
        }
        e >>= 1;
        if e > 0 {
            base = base.sqr()?;
        }
    }
    match result {
        Some(r) => Ok(r),
        None => Ok(x.ones_like()?.to_dtype(DType::F32)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    fn scores(b: usize, h: usize, t: usize, seed: u64) -> Tensor {
        let mut state = seed;
        let data: Vec<f32> = (0..b * h * t * t)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 6.0
            })
            .collect();
        Tensor::from_vec(data, (b, h, t, t), &Device::Cpu).unwrap()
    }

    fn power(eps: f64, scaling: EpsScaling, form: PowerForm) -> AttentionNorm {
        AttentionNorm::Power(PowerSoftmax {
            p: 4,
            eps,
            eps_scaling: scaling,
            delta: 1e-4,
            form,
        })
    }

    fn all_norms() -> Vec<AttentionNorm> {
        let mut v = vec![AttentionNorm::Softmax, AttentionNorm::ReluLinear];
        for form in [PowerForm::Stable, PowerForm::Inference] {
            for scaling in [EpsScaling::PerKey, EpsScaling::Fixed] {
                v.push(power(1e-2, scaling, form));
            }
        }
        v
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    #[test]
    fn rows_sum_to_one_and_mask_is_zero() {
        let t = 6;
        let mask = CausalMask::new(t, &Device::Cpu).unwrap();
        let s = scores(2, 3, t, 1);
        for norm in [
            AttentionNorm::Softmax,
            power(0.0, EpsScaling::PerKey, PowerForm::Stable),
        ] {
            let w = norm.forward(&s, &mask, 0, None).unwrap();
            let sums = w
                .sum(D::Minus1)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            assert!(
                sums.iter().all(|x| (x - 1.0).abs() < 1e-5),
                "{norm:?}: {sums:?}"
            );
            let above = w.broadcast_mul(&(1.0 - &mask.keep).unwrap()).unwrap();
            assert_eq!(max_diff(&above, &above.zeros_like().unwrap()), 0.0);
        }
    }

    #[test]
    fn stable_and_inference_forms_agree() {
        let t = 8;
        let mask = CausalMask::new(t, &Device::Cpu).unwrap();
        let s = scores(2, 2, t, 7);
        for scaling in [EpsScaling::PerKey, EpsScaling::Fixed] {
            let mut r1 = RangeRecorder::default();
            let mut r2 = RangeRecorder::default();
            let a = power(1e-2, scaling, PowerForm::Stable).forward(&s, &mask, 0, Some(&mut r1));
            let b = power(1e-2, scaling, PowerForm::Inference).forward(&s, &mask, 0, Some(&mut r2));
            assert!(max_diff(&a.unwrap(), &b.unwrap()) < 1e-5);
            let (i1, i2) = (r1.intervals().unwrap(), r2.intervals().unwrap());
            assert_eq!(i1.len(), 2);
            for ((_, k1, a), (_, k2, b)) in i1.iter().zip(&i2) {
                assert_eq!(k1, k2);
                assert!(
                    (a.max - b.max).abs() <= 1e-4 * b.max.abs().max(1.0),
                    "{a:?} {b:?}"
                );
            }
        }
    }

    #[test]
    fn power_softmax_is_division_invariant_without_eps() {
        let t = 5;
        let mask = CausalMask::new(t, &Device::Cpu).unwrap();
        let s = scores(1, 2, t, 3);
        let norm = power(0.0, EpsScaling::PerKey, PowerForm::Inference);
        let a = norm.forward(&s, &mask, 0, None).unwrap();
        let b = norm.forward(&(&s * 0.37).unwrap(), &mask, 0, None).unwrap();
        assert!(max_diff(&a, &b) < 1e-5);
    }

    #[test]
    fn relu_linear_is_relu_over_key_count() {
        let mask = CausalMask::new(3, &Device::Cpu).unwrap();
        let s = Tensor::new(
            &[[[[1f32, 9., 9.], [-2., 4., 9.], [3., 0., -1.]]]],
            &Device::Cpu,
        );
        let w = AttentionNorm::ReluLinear
            .forward(&s.unwrap(), &mask, 0, None)
            .unwrap();
        let got = w.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let want = [1., 0., 0., 0., 2., 0., 1., 0., 0.];
        assert!(
            got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-6),
            "{got:?}"
        );
    }

    /// With a decay, each visible key's unnormalized weight is multiplied by exp(-r (i - j)):
    /// checked against a direct computation of each normalization's definition.
    #[test]
    fn decay_multiplies_unnormalized_weights() {
        let (h, t) = (2, 5);
        let mask = CausalMask::new(t, &Device::Cpu).unwrap();
        let s = scores(1, h, t, 21);
        let rates = [0.3f32, 0.05];
        let rate_t = Tensor::new(&rates, &Device::Cpu).unwrap();
        let sv = s.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for norm in [
            AttentionNorm::Softmax,
            AttentionNorm::ReluLinear,
            power(1e-2, EpsScaling::PerKey, PowerForm::Stable),
        ] {
            let decayed = norm.decay_scores(&s, &rate_t, &mask).unwrap();
            let w = norm.forward(&decayed, &mask, 0, None).unwrap();
            let got = w.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            for hh in 0..h {
                for i in 0..t {
                    let row = |j: usize| sv[(hh * t + i) * t + j] as f64;
                    let f = |j: usize| (-(rates[hh] as f64) * (i - j) as f64).exp();
                    let un: Vec<f64> = (0..=i)
                        .map(|j| {
                            f(j) * match norm {
                                AttentionNorm::Softmax => row(j).exp(),
                                AttentionNorm::ReluLinear => row(j).max(0.0),
                                AttentionNorm::Power(_) => row(j).powi(4),
                            }
                        })
                        .collect();
                    let den = match norm {
                        AttentionNorm::Softmax => un.iter().sum::<f64>(),
                        AttentionNorm::ReluLinear => (i + 1) as f64,
                        AttentionNorm::Power(_) => un.iter().sum::<f64>() + 1e-2 * (i + 1) as f64,
                    };
                    for (j, u) in un.iter().enumerate() {
                        let g = got[(hh * t + i) * t + j] as f64;
                        assert!((g - u / den).abs() < 1e-5, "{norm:?} h{hh} i{i} j{j}: {g}");
                    }
                }
            }
        }
    }

    /// Centering subtracts share_h times the mean of each row's visible scores (future keys
    /// ignored): checked against a direct computation, and share 0 changes nothing.
    #[test]
    fn centering_subtracts_a_share_of_the_visible_mean() {
        let (h, t) = (2, 5);
        let mask = CausalMask::new(t, &Device::Cpu).unwrap();
        let s = scores(1, h, t, 33);
        let sv = s.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let shares = [1.0f32, 0.4];
        let share_t = Tensor::new(&shares, &Device::Cpu).unwrap();
        let got = center_scores(&s, &share_t, &mask).unwrap();
        let got = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for hh in 0..h {
            for i in 0..t {
                let row = |j: usize| sv[(hh * t + i) * t + j];
                let mean = (0..=i).map(row).sum::<f32>() / (i + 1) as f32;
                for j in 0..t {
                    let want = row(j) - shares[hh] * mean;
                    let g = got[(hh * t + i) * t + j];
                    assert!((g - want).abs() < 1e-5, "h{hh} i{i} j{j}: {g} vs {want}");
                }
            }
        }
        let zero = Tensor::zeros(h, DType::F32, &Device::Cpu).unwrap();
        let same = center_scores(&s, &zero, &mask).unwrap();
        assert!(max_diff(&same, &s) == 0.0);
    }

    /// The fused kernels (f32) against the composed ops: values and gradients.
    #[test]
    fn fused_matches_composed() {
        let t = 9;
        let mask = CausalMask::new(t, &Device::Cpu).unwrap();
        let s0 = scores(2, 3, t, 5);
        let probe = scores(2, 3, t, 6);
        for norm in all_norms() {
            let var = Var::from_tensor(&s0).unwrap();
            let a = norm.forward(var.as_tensor(), &mask, 0, None).unwrap();
            let b = norm
                .forward_composed(var.as_tensor(), &mask, 0, None)
                .unwrap();
            assert!(max_diff(&a, &b) < 1e-6, "{norm:?}");
            let ga = (a * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (b * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            let (ga, gb) = (
                ga.get(var.as_tensor()).unwrap(),
                gb.get(var.as_tensor()).unwrap(),
            );
            assert!(max_diff(ga, gb) < 1e-5, "{norm:?}: {}", max_diff(ga, gb));
        }
    }

    /// Backward checked against central finite differences (f64) for every normalization.
    #[test]
    fn gradients_match_finite_differences() {
        let t = 4;
        let dev = Device::Cpu;
        let mask = CausalMask::new(t, &dev).unwrap();
        let mask64 = CausalMask {
            keep: mask.keep.to_dtype(DType::F64).unwrap(),
            additive: mask.additive.to_dtype(DType::F64).unwrap(),
            keys: mask.keys.to_dtype(DType::F64).unwrap(),
            distance: mask.distance.to_dtype(DType::F64).unwrap(),
        };
        let s0 = scores(1, 1, t, 11).to_dtype(DType::F64).unwrap();
        let probe = scores(1, 1, t, 12).to_dtype(DType::F64).unwrap();
        let loss = |norm: &AttentionNorm, s: &Tensor| {
            let w = norm.forward(s, &mask64, 0, None).unwrap();
            (w * &probe).unwrap().sum_all().unwrap()
        };
        for norm in all_norms() {
            let var = Var::from_tensor(&s0).unwrap();
            let grads = loss(&norm, var.as_tensor()).backward().unwrap();
            let g = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap();
            let g = g.to_vec1::<f64>().unwrap();
            let base = s0.flatten_all().unwrap().to_vec1::<f64>().unwrap();
            for (k, &gk) in g.iter().enumerate() {
                let h = 1e-6;
                let at = |d: f64| {
                    let mut v = base.clone();
                    v[k] += d;
                    let s = Tensor::from_vec(v, (1, 1, t, t), &dev).unwrap();
                    loss(&norm, &s).to_scalar::<f64>().unwrap()
                };
                let fd = (at(h) - at(-h)) / (2.0 * h);
                assert!(
                    (fd - gk).abs() < 1e-5 * (1.0 + fd.abs()),
                    "{norm:?} [{k}] {fd} vs {gk}"
                );
            }
        }
    }

    /// The command-line form: JSON as in `config.json`, validated; bad input is an
    /// `InvalidConfig` error naming the problem.
    #[test]
    fn parses_the_json_form_and_refuses_bad_input() {
        let norm: AttentionNorm = r#"{"kind":"power","p":4,"eps":0.001}"#.parse().unwrap();
        assert_eq!(
            norm,
            AttentionNorm::Power(PowerSoftmax {
                p: 4,
                eps: 1e-3,
                ..PowerSoftmax::default()
            })
        );
        assert_eq!(
            r#"{"kind":"relu_linear"}"#.parse::<AttentionNorm>().unwrap(),
            AttentionNorm::ReluLinear
        );
        for (bad, want) in [
            (r#"{"kind":"power","p":3}"#, "p=3 must be even"),
            (r#"{"kind":"power","p":4,"delta":0}"#, "delta > 0"),
            (r#"{"kind":"cosine"}"#, "unknown variant"),
            ("power4", "expected value"),
        ] {
            let err = bad.parse::<AttentionNorm>().unwrap_err();
            assert!(
                matches!(err, Error::InvalidConfig(_)) && err.to_string().contains(want),
                "{bad}: {err}"
            );
        }
    }
}
