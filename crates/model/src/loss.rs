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

/// Mean cross-entropy of the logits `hidden @ weight^T` against `targets`, without handing
/// the `(N, V)` logits to the autograd graph: one op computes them with `gemm`, the loss and
/// `softmax - onehot`, and its backward pass does the two products `G W` and `G^T H` directly.
/// This saves candle's zero-fill-and-add accumulation of the largest gradient of a step.
/// `hidden` `(N, C)`, `weight` `(V, C)`, `targets` `(N)` u32.
pub fn head_cross_entropy(hidden: &Tensor, weight: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (h, w, t) = (
        hidden.contiguous()?,
        weight.contiguous()?,
        targets.contiguous()?,
    );
    let keep = (h.track_op() || w.track_op()).then(|| Arc::new(Mutex::new(None)));
    Ok(h.apply_op3(&w, &t, HeadCrossEntropy { keep })?.mean_all()?)
}

/// `dst (m, n) = lhs (m, k) @ rhs (k, n)`, row-major with the given row/column strides.
fn matmul(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
) {
    assert!(dst.len() >= m * n);
    assert!(m == 0 || k == 0 || lhs.len() > (m - 1) * lhs_rs + (k - 1) * lhs_cs);
    assert!(k == 0 || n == 0 || rhs.len() > (k - 1) * rhs_rs + (n - 1) * rhs_cs);
    let threads = candle_core::utils::get_num_threads();
    // SAFETY: the asserts bound every index gemm reads or writes; the buffers do not overlap.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(threads),
        );
    }
}

/// `(hidden, weight, targets) -> per-row loss`, keeping `softmax - onehot` when `keep`.
struct HeadCrossEntropy {
    keep: Option<Arc<Mutex<Option<Vec<f32>>>>>,
}

impl CustomOp3 for HeadCrossEntropy {
    fn name(&self) -> &'static str {
        "head-cross-entropy"
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
        let (Some((h0, h1)), Some((w0, w1)), Some((t0, t1))) = (
            l1.contiguous_offsets(),
            l2.contiguous_offsets(),
            l3.contiguous_offsets(),
        ) else {
            candle_core::bail!("head cross-entropy needs contiguous inputs");
        };
        let (h, w) = (
            &s1.as_slice::<f32>()?[h0..h1],
            &s2.as_slice::<f32>()?[w0..w1],
        );
        let targets = &s3.as_slice::<u32>()?[t0..t1];
        let ((n, c), (v, c2)) = (l1.shape().dims2()?, l2.shape().dims2()?);
        if c != c2 || targets.len() != n || targets.iter().any(|&t| t as usize >= v) {
            candle_core::bail!("head cross-entropy: bad shapes or targets");
        }
        let mut logits = vec![0f32; n * v];
        matmul((n, v, c), &mut logits, h, (c, 1), w, (1, c)); // (N, V) = H W^T
        let out: Vec<f32> = logits
            .par_chunks_mut(v)
            .zip(targets.par_iter())
            .map(|(row, &t)| {
                let (m, lse) = log_sum_exp(row);
                let loss = m + lse - row[t as usize];
                if self.keep.is_some() {
                    row.iter_mut().for_each(|x| *x = (*x - m - lse).exp());
                    row[t as usize] -= 1.0;
                }
                loss
            })
            .collect();
        if let Some(keep) = &self.keep {
            *keep.lock().expect("cross-entropy lock") = Some(logits);
        }
        Ok((CpuStorage::F32(out), Shape::from(n)))
    }

    fn bwd(
        &self,
        h: &Tensor,
        w: &Tensor,
        _t: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let kept = self
            .keep
            .as_ref()
            .and_then(|k| k.lock().expect("cross-entropy lock").take());
        let Some(mut g) = kept else {
            candle_core::bail!("head cross-entropy: backward without a kept gradient");
        };
        let ((n, c), (v, _)) = (h.dims2()?, w.dims2()?);
        let upstream = grad.to_vec1::<f32>()?;
        g.par_chunks_mut(v)
            .zip(upstream.par_iter())
            .for_each(|(row, &u)| {
                row.iter_mut().for_each(|x| *x *= u);
            });
        let (hv, wv) = (
            h.flatten_all()?.to_vec1::<f32>()?,
            w.flatten_all()?.to_vec1::<f32>()?,
        );
        let mut dh = vec![0f32; n * c];
        matmul((n, c, v), &mut dh, &g, (v, 1), &wv, (c, 1)); // (N, C) = G W
        let mut dw = vec![0f32; v * c];
        matmul((v, c, n), &mut dw, &g, (1, v), &hv, (c, 1)); // (V, C) = G^T H
        let dh = Tensor::from_vec(dh, (n, c), h.device())?;
        let dw = Tensor::from_vec(dw, (v, c), w.device())?;
        Ok((Some(dh), Some(dw), None))
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
    fn fused_head_matches_matmul_then_composed_loss() {
        let dev = Device::Cpu;
        let mk = |n: usize, c: usize, k: usize| {
            let d: Vec<f32> = (0..n * c)
                .map(|i| (((i * k) % 17) as f32 - 8.0) * 0.1)
                .collect();
            Var::from_tensor(&Tensor::from_vec(d, (n, c), &dev).unwrap()).unwrap()
        };
        let (h, w) = (mk(7, 5, 3), mk(13, 5, 7));
        let targets = Tensor::new(&[0u32, 12, 3, 3, 7, 1, 9], &dev).unwrap();
        let a = head_cross_entropy(h.as_tensor(), w.as_tensor(), &targets).unwrap();
        let logits = h.as_tensor().matmul(&w.as_tensor().t().unwrap()).unwrap();
        let b = cross_entropy_composed(&logits, &targets).unwrap();
        let (av, bv) = (a.to_scalar::<f32>().unwrap(), b.to_scalar::<f32>().unwrap());
        assert!((av - bv).abs() < 1e-6, "{av} vs {bv}");
        let (ga, gb) = (
            (a * 3.0).unwrap().backward().unwrap(),
            (b * 3.0).unwrap().backward().unwrap(),
        );
        for v in [&h, &w] {
            let d = (ga.get(v.as_tensor()).unwrap() - gb.get(v.as_tensor()).unwrap()).unwrap();
            let d = d.abs().unwrap().flatten_all().unwrap().max(0).unwrap();
            assert!(d.to_scalar::<f32>().unwrap() < 1e-6);
        }
    }

    #[test]
    fn rejects_out_of_range_targets() {
        let logits = Tensor::zeros((2, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
        let targets = Tensor::new(&[0u32, 3], &Device::Cpu).unwrap();
        assert!(cross_entropy(&logits, &targets).is_err());
    }
}
