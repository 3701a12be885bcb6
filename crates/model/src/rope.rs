//! Rotary position embeddings (RoPE), Hugging Face "rotate_half" convention, optionally on
//! only the first `rotary_dim` dimensions of each head (GPT-NeoX partial rotary). Composed
//! ops only: candle's fused rotary kernels drop gradients.

use std::sync::Arc;

use candle_core::{D, DType, Device, Tensor};

use crate::error::Result;
use crate::fused;

/// Cosine and sine tables for positions `0..max_len`.
#[derive(Debug, Clone)]
pub struct Rope {
    /// `(max_len, rotary_dim)`: `cos(pos * inv_freq)` repeated for both halves.
    cos: Tensor,
    /// `(max_len, rotary_dim)`.
    sin: Tensor,
    /// The same tables as plain vectors, for the fused kernel.
    cos_vec: Arc<Vec<f32>>,
    sin_vec: Arc<Vec<f32>>,
    rotary_dim: usize,
}

impl Rope {
    /// Tables for `rotary_dim` rotated dimensions (even), base `theta`, `max_len` positions.
    pub fn new(rotary_dim: usize, theta: f64, max_len: usize, device: &Device) -> Result<Self> {
        let half = rotary_dim / 2;
        let inv_freq: Vec<f64> = (0..half)
            .map(|i| 1.0 / theta.powf(2.0 * i as f64 / rotary_dim as f64))
            .collect();
        let mut cos = Vec::with_capacity(max_len * rotary_dim);
        let mut sin = Vec::with_capacity(max_len * rotary_dim);
        for pos in 0..max_len {
            for _ in 0..2 {
                // Hugging Face computes freqs in f32: pos * inv_freq rounded to f32.
                for f in &inv_freq {
                    let angle = (pos as f32 * *f as f32) as f64;
                    cos.push(angle.cos() as f32);
                    sin.push(angle.sin() as f32);
                }
            }
        }
        Ok(Rope {
            cos: Tensor::from_slice(&cos, (max_len, rotary_dim), device)?,
            sin: Tensor::from_slice(&sin, (max_len, rotary_dim), device)?,
            cos_vec: Arc::new(cos),
            sin_vec: Arc::new(sin),
            rotary_dim,
        })
    }

    /// Rotates `x` `(B, H, T, D)` at positions `0..T`: one fused kernel with its backward
    /// (the inverse rotation) for f32 on the CPU, else [`Rope::apply_composed`].
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        if self.rotary_dim == 0 {
            return Ok(x.clone());
        }
        if x.dtype() == DType::F32 && x.device().is_cpu() {
            return fused::rope(x, &self.cos_vec, &self.sin_vec, self.rotary_dim);
        }
        self.apply_composed(x)
    }

    /// The reference computation from composed candle ops.
    pub fn apply_composed(&self, x: &Tensor) -> Result<Tensor> {
        let (_, _, t, d) = x.dims4()?;
        if self.rotary_dim == 0 {
            return Ok(x.clone());
        }
        let cos = self.cos.narrow(0, 0, t)?; // (T, R)
        let sin = self.sin.narrow(0, 0, t)?;
        let x_rot = x.narrow(D::Minus1, 0, self.rotary_dim)?; // (B, H, T, R)
        let rotated = (x_rot.broadcast_mul(&cos)? + rotate_half(&x_rot)?.broadcast_mul(&sin)?)?;
        if self.rotary_dim == d {
            return Ok(rotated);
        }
        let x_pass = x.narrow(D::Minus1, self.rotary_dim, d - self.rotary_dim)?;
        Ok(Tensor::cat(&[&rotated, &x_pass], D::Minus1)?)
    }
}

/// `[x1, x2] -> [-x2, x1]` on the last dimension.
fn rotate_half(x: &Tensor) -> Result<Tensor> {
    let half = x.dim(D::Minus1)? / 2;
    let x1 = x.narrow(D::Minus1, 0, half)?;
    let x2 = x.narrow(D::Minus1, half, half)?;
    Ok(Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fused_matches_composed_with_gradients() {
        let dev = Device::Cpu;
        let rope = Rope::new(6, 500.0, 16, &dev).unwrap();
        let data: Vec<f32> = (0..2 * 3 * 9 * 10)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 3.0)
            .collect();
        let x = candle_core::Var::from_vec(data, (2, 3, 9, 10), &dev).unwrap();
        let probe = x.as_tensor().sin().unwrap();
        let a = rope.apply(x.as_tensor()).unwrap();
        let b = rope.apply_composed(x.as_tensor()).unwrap();
        let diff = |a: &Tensor, b: &Tensor| {
            let d = (a - b).unwrap().abs().unwrap().flatten_all().unwrap();
            d.max(0).unwrap().to_scalar::<f32>().unwrap()
        };
        assert!(diff(&a, &b) < 1e-6);
        let ga = (a * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        let gb = (b * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(
            diff(
                ga.get(x.as_tensor()).unwrap(),
                gb.get(x.as_tensor()).unwrap()
            ) < 1e-5
        );
    }

    #[test]
    fn rotation_preserves_pair_norms_and_position_zero() {
        let dev = Device::Cpu;
        let rope = Rope::new(4, 10000.0, 8, &dev).unwrap();
        let x = Tensor::arange(0f32, 48., &dev)
            .unwrap()
            .reshape((1, 1, 8, 6))
            .unwrap();
        let y = rope.apply(&x).unwrap();
        let yv = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let xv = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // Position 0 is the identity; the last two (pass-through) dims never change.
        assert_eq!(&yv[..6], &xv[..6]);
        for pos in 0..8 {
            let r = pos * 6;
            assert_eq!(&yv[r + 4..r + 6], &xv[r + 4..r + 6]);
            for i in 0..2 {
                let n = |v: &[f32]| v[r + i].hypot(v[r + i + 2]);
                assert!((n(&xv) - n(&yv)).abs() < 1e-3);
            }
        }
    }
}
