//! Next-token cross-entropy as one fused op with a hand-written backward (the logits are the
//! largest tensor of a training step; the composed form makes about ten passes over them in
//! each direction). The composed reference [`cross_entropy_composed`] checks it in the tests.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp2, CustomOp3, D, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::error::Result;

/// Mean cross-entropy of `logits` `(N, V)` (f32) against class ids `targets` `(N)` (u32).
///
/// When the logits take part in a gradient computation, the forward pass also stores
/// `softmax - onehot` (one pass over the logits instead of two), and the backward pass only
/// scales it by the upstream gradient.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let logits = logits.contiguous()?;
    let targets = targets.contiguous()?;
    let keep = logits.track_op().then(|| Arc::new(Mutex::new(None)));
    Ok(logits
        .apply_op2(&targets, RowCrossEntropy { keep })?
        .mean_all()?)
}

/// The same loss from composed candle ops (detached max shift, exp, sum, log, gather).
pub fn cross_entropy_composed(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let m = logits.max_keepdim(D::Minus1)?.detach(); // (N, 1)
    let shifted = logits.broadcast_sub(&m)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?; // (N, 1)
    let picked = shifted.gather(&targets.unsqueeze(1)?, 1)?; // (N, 1)
    Ok((lse - picked)?.mean_all()?)
}

fn slices<'a>(
    s1: &'a CpuStorage,
    l1: &Layout,
    s2: &'a CpuStorage,
    l2: &Layout,
) -> candle_core::Result<(&'a [f32], &'a [u32], usize)> {
    let (Some((a0, a1)), Some((b0, b1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
    else {
        candle_core::bail!("cross-entropy needs contiguous inputs");
    };
    let logits = &s1.as_slice::<f32>()?[a0..a1];
    let targets = &s2.as_slice::<u32>()?[b0..b1];
    let (n, v) = l1.shape().dims2()?;
    if targets.len() != n {
        candle_core::bail!("cross-entropy: {} targets for {n} rows", targets.len());
    }
    if let Some(&t) = targets.iter().find(|&&t| t as usize >= v) {
        candle_core::bail!("cross-entropy: target {t} outside vocabulary {v}");
    }
    Ok((logits, targets, v))
}

/// Writes `g * (softmax(row) - onehot(t))` into `dst`; returns the row's loss.
fn row_grad(row: &[f32], t: usize, g: f32, dst: &mut [f32]) -> f32 {
    let (m, lse) = log_sum_exp(row);
    let shift = m + lse;
    for (d, &x) in dst.iter_mut().zip(row) {
        *d = g * (x - shift).exp();
    }
    dst[t] -= g;
    shift - row[t]
}

/// `(row max, log sum exp(row - max))`.
fn log_sum_exp(row: &[f32]) -> (f32, f32) {
    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let s: f32 = row.iter().map(|&x| (x - m).exp()).sum();
    (m, s.ln())
}

/// Per-row loss `lse(row) - row[target]`: `(N, V), (N) -> (N)`; with `keep`, also stores the
/// unscaled gradient `softmax(row) - onehot(target)` for the backward pass.
struct RowCrossEntropy {
    keep: Option<Arc<Mutex<Option<Vec<f32>>>>>,
}

impl CustomOp2 for RowCrossEntropy {
    fn name(&self) -> &'static str {
        "row-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (logits, targets, v) = slices(s1, l1, s2, l2)?;
        if let Some(keep) = &self.keep {
            let mut grad = vec![0f32; logits.len()];
            let out: Vec<f32> = grad
                .par_chunks_mut(v)
                .zip(logits.par_chunks(v).zip(targets.par_iter()))
                .map(|(dst, (row, &t))| row_grad(row, t as usize, 1.0, dst))
                .collect();
            *keep.lock().expect("cross-entropy lock") = Some(grad);
            let n = out.len();
            return Ok((CpuStorage::F32(out), Shape::from(n)));
        }
        let out: Vec<f32> = logits
            .par_chunks(v)
            .zip(targets.par_iter())
            .map(|(row, &t)| {
                let (m, lse) = log_sum_exp(row);
                lse + m - row[t as usize]
            })
            .collect();
        let n = out.len();
        Ok((CpuStorage::F32(out), Shape::from(n)))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let kept = self
            .keep
            .as_ref()
            .and_then(|k| k.lock().expect("cross-entropy lock").take());
        if let Some(unscaled) = kept {
            let unscaled = Tensor::from_vec(unscaled, logits.shape(), logits.device())?;
            return Ok((Some(unscaled.broadcast_mul(&grad_res.unsqueeze(1)?)?), None));
        }
        let g = logits.apply_op3_no_bwd(targets, &grad_res.contiguous()?, &RowCrossEntropyGrad)?;
        Ok((Some(g), None))
    }
}

/// `d loss_i / d logits_ij = g_i * (softmax(row_i)_j - [j == t_i])`.
struct RowCrossEntropyGrad;

impl CustomOp3 for RowCrossEntropyGrad {
    fn name(&self) -> &'static str {
        "row-cross-entropy-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (logits, targets, v) = slices(s1, l1, s2, l2)?;
        let Some((c0, c1)) = l3.contiguous_offsets() else {
            candle_core::bail!("cross-entropy grad needs a contiguous upstream gradient");
        };
        let upstream = &s3.as_slice::<f32>()?[c0..c1];
        let mut out = vec![0f32; logits.len()];
        out.par_chunks_mut(v)
            .zip(logits.par_chunks(v))
            .zip(targets.par_iter().zip(upstream.par_iter()))
            .for_each(|((dst, row), (&t, &g))| {
                row_grad(row, t as usize, g, dst);
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn fused_matches_composed_in_value_and_gradient() {
        let dev = Device::Cpu;
        let data: Vec<f32> = (0..6 * 11)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.3)
            .collect();
        let logits = Var::from_tensor(&Tensor::from_vec(data, (6, 11), &dev).unwrap()).unwrap();
        let targets = Tensor::new(&[0u32, 3, 10, 5, 5, 1], &dev).unwrap();
        let a = cross_entropy(logits.as_tensor(), &targets).unwrap();
        let plain = cross_entropy(&logits.as_tensor().detach(), &targets).unwrap();
        assert_eq!(
            plain.to_scalar::<f32>().unwrap(),
            a.to_scalar::<f32>().unwrap()
        );
        let b = cross_entropy_composed(logits.as_tensor(), &targets).unwrap();
        let (av, bv) = (a.to_scalar::<f32>().unwrap(), b.to_scalar::<f32>().unwrap());
        assert!((av - bv).abs() < 1e-6, "{av} vs {bv}");
        let ga = a.backward().unwrap().remove(logits.as_tensor()).unwrap();
        let gb = b.backward().unwrap().remove(logits.as_tensor()).unwrap();
        let diff = (ga - gb)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-7);
    }

    #[test]
    fn rejects_out_of_range_targets() {
        let logits = Tensor::zeros((2, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
        let targets = Tensor::new(&[0u32, 3], &Device::Cpu).unwrap();
        assert!(cross_entropy(&logits, &targets).is_err());
    }
}
