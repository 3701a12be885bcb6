//! Building blocks shared by both layouts, each `load(vb, ..)` + `forward`, from composed
//! candle ops only (candle's fused LayerNorm / RMSNorm drop gradients in training).

use candle_core::{D, DType, Device, Tensor};
use candle_nn::{Init, VarBuilder};

use crate::attention_norm::{CausalMask, center_scores};
use crate::config::{Activation, ModelConfig};
use crate::error::Result;
use crate::fused;
use crate::ranges::{RangeKind, RangeRecorder};
use crate::rope::Rope;

/// Standard deviation of the normal initialization of weights (GPT-NeoX / Llama default).
pub const INIT_STD: f64 = 0.02;

/// What every transformer block needs besides its weights (both layouts).
pub(crate) struct Ctx<'a> {
    pub(crate) cfg: &'a ModelConfig,
    pub(crate) rope: &'a Rope,
    pub(crate) mask: &'a CausalMask,
    /// The positional decay's rates `(H,)`, when the model has one.
    pub(crate) decay: Option<&'a Tensor>,
    pub(crate) layer: usize,
}

/// `y = x W^T + b`, weight `(out, in)` as in PyTorch.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// Loads `{vb}.weight` and, if `bias`, `{vb}.bias`.
    pub fn load(vb: VarBuilder, in_dim: usize, out_dim: usize, bias: bool) -> Result<Self> {
        let init = Init::Randn {
            mean: 0.0,
            stdev: INIT_STD,
        };
        let weight = vb.get_with_hints((out_dim, in_dim), "weight", init)?;
        let bias = if bias {
            Some(vb.get_with_hints(out_dim, "bias", Init::Const(0.0))?)
        } else {
            None
        };
        Ok(Linear { weight, bias })
    }

    /// Wraps an existing weight (tied output head).
    pub fn from_weight(weight: Tensor) -> Self {
        Linear { weight, bias: None }
    }

    /// The weight `(out, in)`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// `(..., in) -> (..., out)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let in_dim = dims[dims.len() - 1];
        let rows = x.elem_count() / in_dim;
        let y = x.reshape((rows, in_dim))?.matmul(&self.weight.t()?)?; // (N, out)
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out_dims = dims;
        *out_dims.last_mut().expect("non-empty") = self.weight.dim(0)?;
        Ok(y.reshape(out_dims)?)
    }
}

/// LayerNorm (with bias) or RMSNorm (without), over the last dimension.
#[derive(Debug, Clone)]
pub struct Norm {
    weight: Tensor,
    bias: Option<Tensor>,
    eps: f64,
}

impl Norm {
    /// LayerNorm `{vb}.weight`, `{vb}.bias`.
    pub fn load_layer_norm(vb: VarBuilder, dim: usize, eps: f64) -> Result<Self> {
        let weight = vb.get_with_hints(dim, "weight", Init::Const(1.0))?;
        let bias = Some(vb.get_with_hints(dim, "bias", Init::Const(0.0))?);
        Ok(Norm { weight, bias, eps })
    }

    /// RMSNorm `{vb}.weight`.
    pub fn load_rms_norm(vb: VarBuilder, dim: usize, eps: f64) -> Result<Self> {
        let weight = vb.get_with_hints(dim, "weight", Init::Const(1.0))?;
        Ok(Norm {
            weight,
            bias: None,
            eps,
        })
    }

    /// Normalizes `(..., C)`; records the input of `1/sqrt(.)` as [`RangeKind::NormVariance`].
    /// Without a recorder this is one fused kernel (`crate::fused`), else composed ops.
    pub fn forward(
        &self,
        x: &Tensor,
        layer: usize,
        rec: Option<&mut RangeRecorder>,
    ) -> Result<Tensor> {
        if rec.is_none() && x.dtype() == DType::F32 {
            return fused::norm(x, &self.weight, self.bias.as_ref(), self.eps);
        }
        self.forward_composed(x, layer, rec)
    }

    /// The reference computation from composed candle ops (records ranges when asked).
    pub fn forward_composed(
        &self,
        x: &Tensor,
        layer: usize,
        rec: Option<&mut RangeRecorder>,
    ) -> Result<Tensor> {
        let (centered, var) = if self.bias.is_some() {
            let xc = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
            let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
            (xc, var)
        } else {
            (x.clone(), x.sqr()?.mean_keepdim(D::Minus1)?)
        };
        let var = (var + self.eps)?; // (..., 1)
        if let Some(rec) = rec {
            rec.record(layer, RangeKind::NormVariance, &var)?;
        }
        let y = centered
            .broadcast_div(&var.sqrt()?)?
            .broadcast_mul(&self.weight)?;
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}

/// ALiBi's slopes `2^(-8 (h + 1) / H)` for `heads` heads: the rates of the positional decay
/// (`position_decay` in the config), under which key j's unnormalized weight for query i is
/// multiplied by `exp(-rate_h (i - j))`. Fixed numbers, so under HE the decay is a plaintext
/// factor per head and distance; it gives Power-Softmax, which has no temperature, local heads.
pub fn alibi_slopes(heads: usize) -> Vec<f64> {
    (0..heads)
        .map(|h| (-8.0 * (h + 1) as f64 / heads as f64).exp2())
        .collect()
}

/// A layer's score-centering shares `(H,)` (`{vb}.score_centering`, initialized to 0, i.e.
/// no centering) when the model has `score_centering`, else `None`.
pub(crate) fn load_centering(vb: &VarBuilder, cfg: &ModelConfig) -> Result<Option<Tensor>> {
    if !cfg.score_centering {
        return Ok(None);
    }
    Ok(Some(vb.get_with_hints(
        cfg.num_heads,
        "score_centering",
        Init::Const(0.0),
    )?))
}

/// The decay rates `(H,)` of a model with `position_decay`, else `None`.
pub(crate) fn decay_rates(cfg: &ModelConfig, device: &Device) -> Result<Option<Tensor>> {
    if !cfg.position_decay {
        return Ok(None);
    }
    let rates: Vec<f32> = alibi_slopes(cfg.num_heads)
        .iter()
        .map(|&r| r as f32)
        .collect();
    Ok(Some(Tensor::from_vec(rates, cfg.num_heads, device)?))
}

/// Applies `act`, recording its input as [`RangeKind::ActivationInput`].
pub fn activate(
    act: Activation,
    x: &Tensor,
    layer: usize,
    rec: Option<&mut RangeRecorder>,
) -> Result<Tensor> {
    if let Some(rec) = rec {
        rec.record(layer, RangeKind::ActivationInput, x)?;
    } else if act == Activation::Gelu && x.dtype() == DType::F32 {
        return fused::gelu_erf(x);
    }
    Ok(match act {
        Activation::Gelu => x.gelu_erf()?,
        Activation::GeluTanh => x.gelu()?,
        Activation::Silu => x.silu()?,
        Activation::Relu => x.relu()?,
    })
}

/// Scaled dot-product attention with grouped-query heads: q `(B, H, T, D)`, k and v
/// `(B, Hkv, T, D)`, optionally with score centering (the layer's shares `(H,)`) and a
/// positional decay; returns `(B, T, H * D)`. A recorder made by
/// [`RangeRecorder::with_attention`] also receives the attention weights `(B, H, T, T)`.
pub(crate) fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    centering: Option<&Tensor>,
    ctx: &Ctx,
    mut rec: Option<&mut RangeRecorder>,
) -> Result<Tensor> {
    let (norm, mask, layer) = (&ctx.cfg.attention_norm, ctx.mask, ctx.layer);
    let (b, h, t, d) = q.dims4()?;
    let kv_heads = k.dim(1)?;
    let (k, v) = (repeat_kv(k, h / kv_heads)?, repeat_kv(v, h / kv_heads)?);
    let q = (q * (1.0 / (d as f64).sqrt()))?; // scaling q is half the work of scaling scores
    let scores = q.matmul(&k.t()?)?; // (B, H, T, T)
    let scores = match centering {
        Some(share) => center_scores(&scores, share, mask)?,
        None => scores,
    };
    let scores = match ctx.decay {
        Some(rates) => norm.decay_scores(&scores, rates, mask)?,
        None => scores,
    };
    let weights = norm.forward(&scores, mask, layer, rec.as_deref_mut())?;
    if let Some(rec) = rec {
        rec.record_attention(layer, &weights); // evaluation hook; a no-op unless enabled
    }
    let y = weights.matmul(&v)?; // (B, H, T, D)
    Ok(y.transpose(1, 2)?.reshape((b, t, h * d))?)
}

/// `(B, Hkv, T, D) -> (B, Hkv * n, T, D)`, each kv head repeated `n` times in place.
fn repeat_kv(x: &Tensor, n: usize) -> Result<Tensor> {
    if n == 1 {
        return Ok(x.clone());
    }
    let (b, hkv, t, d) = x.dims4()?;
    Ok(x.unsqueeze(2)?
        .broadcast_as((b, hkv, n, t, d))?
        .reshape((b, hkv * n, t, d))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn data(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 250.0 - 2.0)
            .collect()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        let d = (a - b).unwrap().abs().unwrap().flatten_all().unwrap();
        d.max(0).unwrap().to_scalar().unwrap()
    }

    /// Fused LayerNorm / RMSNorm and GELU against the composed ops: values and all gradients.
    #[test]
    fn fused_norms_and_gelu_match_composed() {
        let dev = Device::Cpu;
        let var = |v: Vec<f32>, s: &[usize]| {
            Var::from_tensor(&Tensor::from_vec(v, s, &dev).unwrap()).unwrap()
        };
        let x = var(data(5 * 7 * 24, 1), &[5, 7, 24]);
        let w = var(data(24, 2), &[24]);
        let b = var(data(24, 3), &[24]);
        let probe = Tensor::from_vec(data(5 * 7 * 24, 4), (5, 7, 24), &dev).unwrap();
        for centered in [true, false] {
            let norm = Norm {
                weight: w.as_tensor().clone(),
                bias: centered.then(|| b.as_tensor().clone()),
                eps: 1e-5,
            };
            let fa = norm.forward(x.as_tensor(), 0, None).unwrap();
            let fb = norm.forward_composed(x.as_tensor(), 0, None).unwrap();
            assert!(max_diff(&fa, &fb) < 1e-5);
            let ga = (fa * &probe)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let gb = (fb * &probe)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            for v in [&x, &w, &b].into_iter().take(if centered { 3 } else { 2 }) {
                let (a, b) = (
                    ga.get(v.as_tensor()).unwrap(),
                    gb.get(v.as_tensor()).unwrap(),
                );
                assert!(
                    max_diff(a, b) < 1e-4,
                    "centered {centered}: {}",
                    max_diff(a, b)
                );
            }
        }
        let ya = activate(Activation::Gelu, x.as_tensor(), 0, None).unwrap();
        let yb = x.as_tensor().gelu_erf().unwrap();
        assert!(max_diff(&ya, &yb) < 1e-6);
        let ga = (ya * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let gb = (yb * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(
            max_diff(
                ga.get(x.as_tensor()).unwrap(),
                gb.get(x.as_tensor()).unwrap()
            ) < 1e-5
        );
    }
}
