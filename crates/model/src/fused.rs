//! Fused CPU kernels with hand-written backward passes for the hot element-wise parts of a
//! training step: the causal attention normalizations (softmax, stable Power-Softmax),
//! LayerNorm / RMSNorm and exact GELU. Each replaces 6 to 10 composed candle ops (and about
//! twice as many in the backward pass). The composed forms stay the reference: the tests
//! below compare values and gradients, and the range recorder always uses the composed ops.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::error::Result;

fn f32s<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s.as_slice::<f32>()?[a..b]),
        None => candle_core::bail!("fused kernels need contiguous f32 inputs"),
    }
}

/// Rows per parallel task: enough work to amortize scheduling.
fn rows_per_task(row_len: usize) -> usize {
    (16384 / row_len.max(1)).max(1)
}

// ---------------------------------------------------------------------------------------
// Causal attention normalization

/// Which normalization, with its parameters.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CausalKind {
    /// `softmax` over keys `j <= i`.
    Softmax,
    /// `s_j^p / (eps_i + sum_{k<=i} s_k^p)` via `x = s / (max|s| + delta)`;
    /// `eps_i = eps * (i + 1)` when `per_key`, else `eps`.
    Power {
        p: i32,
        eps: f32,
        per_key: bool,
        delta: f32,
    },
}

/// `x^p` by repeated squaring, inlined (`f32::powi` is an out-of-line call per element).
#[inline(always)]
fn ipow(x: f32, p: i32) -> f32 {
    let (mut r, mut b, mut e) = (1f32, x, p);
    while e > 0 {
        if e & 1 == 1 {
            r *= b;
        }
        b *= b;
        e >>= 1;
    }
    r
}

/// Per-row statistics of the power form: `c` and the scaled denominator `Dn`.
fn power_stats(row: &[f32], p: i32, eps_i: f32, delta: f32) -> (f32, f32) {
    let c = row.iter().fold(0f32, |m, &s| m.max(s.abs())) + delta;
    let inv_c = 1.0 / c;
    let z: f32 = row.iter().map(|&s| ipow(s * inv_c, p)).sum();
    (c, z + eps_i * ipow(inv_c, p))
}

/// Normalizes causal scores `(.., T, T)` (the mask is implied: key `j > i` gets weight 0).
pub(crate) fn causal_norm(scores: &Tensor, kind: CausalKind) -> Result<Tensor> {
    Ok(scores.contiguous()?.apply_op1(CausalNorm(kind))?)
}

struct CausalNorm(CausalKind);

impl CustomOp1 for CausalNorm {
    fn name(&self) -> &'static str {
        "causal-norm"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32s(s, l)?;
        let t = l.shape().dims()[l.shape().rank() - 1];
        let mut out = vec![0f32; x.len()];
        let rows = rows_per_task(t);
        out.par_chunks_mut(t * rows)
            .zip(x.par_chunks(t * rows))
            .enumerate()
            .for_each(|(task, (dst, src))| {
                for (r, (d, row)) in dst.chunks_mut(t).zip(src.chunks(t)).enumerate() {
                    let i = (task * rows + r) % t;
                    forward_row(self.0, &row[..=i], &mut d[..=i]);
                }
            });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let g = arg.apply_op3_no_bwd(res, &grad.contiguous()?, &CausalNormGrad(self.0))?;
        Ok(Some(g))
    }
}

fn forward_row(kind: CausalKind, s: &[f32], y: &mut [f32]) {
    let i = s.len() - 1;
    match kind {
        CausalKind::Softmax => {
            let m = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut z = 0f32;
            for (d, &v) in y.iter_mut().zip(s) {
                *d = (v - m).exp();
                z += *d;
            }
            y.iter_mut().for_each(|d| *d /= z);
        }
        CausalKind::Power {
            p,
            eps,
            per_key,
            delta,
        } => {
            let eps_i = if per_key { eps * (i + 1) as f32 } else { eps };
            let (c, dn) = power_stats(s, p, eps_i, delta);
            let (inv_c, inv_dn) = (1.0 / c, 1.0 / dn);
            for (d, &v) in y.iter_mut().zip(s) {
                *d = ipow(v * inv_c, p) * inv_dn;
            }
        }
    }
}

/// `(scores, weights, upstream) -> d scores`.
struct CausalNormGrad(CausalKind);

impl CustomOp3 for CausalNormGrad {
    fn name(&self) -> &'static str {
        "causal-norm-grad"
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
        let (s, y, g) = (f32s(s1, l1)?, f32s(s2, l2)?, f32s(s3, l3)?);
        let t = l1.shape().dims()[l1.shape().rank() - 1];
        let rows = rows_per_task(t);
        let mut out = vec![0f32; s.len()];
        let n = t * rows;
        out.par_chunks_mut(n)
            .zip(s.par_chunks(n).zip(y.par_chunks(n).zip(g.par_chunks(n))))
            .enumerate()
            .for_each(|(task, (dst, (s, (y, g))))| {
                let rows = dst
                    .chunks_mut(t)
                    .zip(s.chunks(t).zip(y.chunks(t).zip(g.chunks(t))));
                for (r, (d, (s, (y, g)))) in rows.enumerate() {
                    let i = (task * rows_per_task(t) + r) % t;
                    backward_row(self.0, &s[..=i], &y[..=i], &g[..=i], &mut d[..=i]);
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

fn backward_row(kind: CausalKind, s: &[f32], y: &[f32], g: &[f32], d: &mut [f32]) {
    let dot: f32 = g.iter().zip(y).map(|(a, b)| a * b).sum();
    match kind {
        CausalKind::Softmax => {
            for ((d, &y), &g) in d.iter_mut().zip(y).zip(g) {
                *d = y * (g - dot);
            }
        }
        CausalKind::Power {
            p,
            eps,
            per_key,
            delta,
        } => {
            // d y_j / d s_k summed: p x_j^(p-1) / (c Dn) * (g_j - <g, y>), x = s / c.
            let i = s.len() - 1;
            let eps_i = if per_key { eps * (i + 1) as f32 } else { eps };
            let (c, dn) = power_stats(s, p, eps_i, delta);
            let (inv_c, scale) = (1.0 / c, p as f32 / (c * dn));
            for ((d, &s), &g) in d.iter_mut().zip(s).zip(g) {
                *d = scale * ipow(s * inv_c, p - 1) * (g - dot);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// LayerNorm / RMSNorm

/// LayerNorm (`bias` given) or RMSNorm over the last dimension of `x`.
pub(crate) fn norm(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, eps: f64) -> Result<Tensor> {
    let x = x.contiguous()?;
    let op = NormOp {
        eps: eps as f32,
        centered: bias.is_some(),
    };
    Ok(match bias {
        Some(b) => x.apply_op3(weight, b, op)?,
        None => x.apply_op3(weight, &weight.zeros_like()?, op)?,
    })
}

#[derive(Clone, Copy)]
struct NormOp {
    eps: f32,
    centered: bool,
}

/// `(mean, 1 / sqrt(var + eps))` of a row (mean 0 for RMSNorm).
fn row_stats(row: &[f32], eps: f32, centered: bool) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = if centered {
        row.iter().sum::<f32>() / n
    } else {
        0.0
    };
    let var = row.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

impl CustomOp3 for NormOp {
    fn name(&self) -> &'static str {
        "norm"
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
        let (x, w, b) = (f32s(s1, l1)?, f32s(s2, l2)?, f32s(s3, l3)?);
        let c = w.len();
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(c)
            .zip(x.par_chunks(c))
            .for_each(|(d, row)| {
                let (mean, rstd) = row_stats(row, self.eps, self.centered);
                for (k, d) in d.iter_mut().enumerate() {
                    *d = (row[k] - mean) * rstd * w[k] + b[k];
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let packed = x.apply_op3_no_bwd(w, &grad.contiguous()?, &NormGrad(*self))?;
        let (n, c) = (x.elem_count(), w.elem_count());
        let dx = packed.narrow(0, 0, n)?.reshape(x.shape())?;
        let dw = packed.narrow(0, n, c)?;
        let db = packed.narrow(0, n + c, c)?;
        Ok((Some(dx), Some(dw), self.centered.then_some(db)))
    }
}

/// `(x, w, upstream) -> [dx, dw, db]` packed into one flat tensor.
struct NormGrad(NormOp);

impl CustomOp3 for NormGrad {
    fn name(&self) -> &'static str {
        "norm-grad"
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
        let (x, w, g) = (f32s(s1, l1)?, f32s(s2, l2)?, f32s(s3, l3)?);
        let (c, NormOp { eps, centered }) = (w.len(), self.0);
        let mut out = vec![0f32; x.len() + 2 * c];
        let (dx, dwb) = out.split_at_mut(x.len());
        let rows = rows_per_task(c);
        let partial = dx
            .par_chunks_mut(c * rows)
            .zip(x.par_chunks(c * rows).zip(g.par_chunks(c * rows)))
            .map(|(dx, (x, g))| {
                let mut acc = vec![0f32; 2 * c]; // [dw, db]
                for (dx, (x, g)) in dx.chunks_mut(c).zip(x.chunks(c).zip(g.chunks(c))) {
                    let (mean, rstd) = row_stats(x, eps, centered);
                    let (mut m1, mut m2) = (0f32, 0f32);
                    for k in 0..c {
                        let xhat = (x[k] - mean) * rstd;
                        let dxhat = g[k] * w[k];
                        m1 += dxhat;
                        m2 += dxhat * xhat;
                        acc[k] += g[k] * xhat;
                        acc[c + k] += g[k];
                    }
                    let (m1, m2) = (if centered { m1 / c as f32 } else { 0.0 }, m2 / c as f32);
                    for k in 0..c {
                        let xhat = (x[k] - mean) * rstd;
                        dx[k] = rstd * (g[k] * w[k] - m1 - xhat * m2);
                    }
                }
                acc
            })
            .reduce(
                || vec![0f32; 2 * c],
                |a, b| a.iter().zip(&b).map(|(x, y)| x + y).collect(),
            );
        dwb.copy_from_slice(&partial);
        let n = out.len();
        Ok((CpuStorage::F32(out), Shape::from(n)))
    }
}

// ---------------------------------------------------------------------------------------
// Exact GELU

/// `x * Phi(x)` with the exact normal CDF.
pub(crate) fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    Ok(x.contiguous()?.apply_op1(Gelu)?)
}

struct Gelu;

fn phi_cdf(x: f32) -> f32 {
    0.5 * (1.0 + candle_core::cpu::erf::erf_f32(x * std::f32::consts::FRAC_1_SQRT_2))
}

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "gelu-erf"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32s(s, l)?;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(16384)
            .zip(x.par_chunks(16384))
            .for_each(|(d, x)| {
                d.iter_mut().zip(x).for_each(|(d, &v)| *d = v * phi_cdf(v));
            });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2_no_bwd(&grad.contiguous()?, &GeluGrad)?))
    }
}

/// `(x, upstream) -> upstream * (Phi(x) + x phi(x))`.
struct GeluGrad;

impl CustomOp2 for GeluGrad {
    fn name(&self) -> &'static str {
        "gelu-erf-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, g) = (f32s(s1, l1)?, f32s(s2, l2)?);
        let k = 1.0 / (2.0 * std::f32::consts::PI).sqrt();
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(16384)
            .zip(x.par_chunks(16384).zip(g.par_chunks(16384)))
            .for_each(|(d, (x, g))| {
                for ((d, &v), &g) in d.iter_mut().zip(x).zip(g) {
                    *d = g * (phi_cdf(v) + v * k * (-0.5 * v * v).exp());
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

// ---------------------------------------------------------------------------------------
// Rotary position embedding

/// Rotates the first `cos.len() / max_len` dimensions of each head of `x` `(B, H, T, D)` by
/// the angles of positions `0..T` (Hugging Face rotate-half convention). `cos`, `sin`:
/// `(max_len, R)` tables, row-major.
pub(crate) fn rope(
    x: &Tensor,
    cos: &std::sync::Arc<Vec<f32>>,
    sin: &std::sync::Arc<Vec<f32>>,
    r: usize,
) -> Result<Tensor> {
    let op = Rope {
        cos: cos.clone(),
        sin: sin.clone(),
        r,
        inverse: false,
    };
    Ok(x.contiguous()?.apply_op1(op)?)
}

struct Rope {
    cos: std::sync::Arc<Vec<f32>>,
    sin: std::sync::Arc<Vec<f32>>,
    r: usize,
    /// Rotate by minus the angle (the backward pass).
    inverse: bool,
}

impl CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        "rope"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32s(s, l)?;
        let (_, _, t, d) = l.shape().dims4()?;
        if t * self.r > self.cos.len() {
            candle_core::bail!("rope: {t} positions exceed the table");
        }
        let (r, half) = (self.r, self.r / 2);
        let sign = if self.inverse { -1.0 } else { 1.0 };
        let mut out = x.to_vec();
        out.par_chunks_mut(t * d).for_each(|head| {
            for (pos, v) in head.chunks_mut(d).enumerate() {
                let (cos, sin) = (
                    &self.cos[pos * r..pos * r + r],
                    &self.sin[pos * r..pos * r + r],
                );
                for k in 0..half {
                    let (a, b) = (v[k], v[k + half]);
                    // [a, b] -> [a cos - b sin, b cos + a sin]; cos/sin repeat over the halves.
                    v[k] = a * cos[k] - sign * b * sin[k];
                    v[k + half] = b * cos[k + half] + sign * a * sin[k + half];
                }
            }
        });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let inverse = Rope {
            cos: self.cos.clone(),
            sin: self.sin.clone(),
            r: self.r,
            inverse: !self.inverse,
        };
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&inverse)?))
    }
}
