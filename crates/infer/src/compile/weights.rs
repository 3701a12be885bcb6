//! Weight matrices as the circuit applies them: norm gains and shifts, the attention scale
//! `1 / (sqrt(head_dim) c)`, RoPE (a fixed rotation per position) and grouped key/value heads
//! are folded into the rows before the diagonals are built, so they cost no level.
//!
//! A folded matrix may depend on the token (RoPE): the diagonal values of the
//! token-interleaved transform are then per slot, which the diagonal method allows at no cost.

use psf_circuits::linear::{BlockTransform, LinearTransform, Strategy};

use crate::layout::Layout;
use crate::model::{Attention, Linear, Norm, NormKind, Rope};
use crate::{InferError, Result};

/// A linear map ready for the layout: `y[g](t) = sum_f W_t[g][f] x[f](t) + b_t[g]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Folded {
    /// Output features.
    pub rows: usize,
    /// Input features.
    pub cols: usize,
    w: Vec<f64>,
    bias: Vec<f64>,
    /// Per-head rotation of the output rows: `(rope, head_dim)`.
    rope: Option<(Rope, usize)>,
}

impl Folded {
    /// `lin` as is.
    pub fn plain(lin: &Linear) -> Self {
        Self {
            rows: lin.rows,
            cols: lin.cols,
            w: lin.w.clone(),
            bias: (0..lin.rows).map(|r| lin.bias_at(r)).collect(),
            rope: None,
        }
    }

    /// `lin` applied to `gamma * x + beta` (a norm's output before its gain and shift).
    pub fn after_norm(lin: &Linear, norm: &Norm) -> Result<Self> {
        if norm.gamma.len() != lin.cols {
            return Err(InferError::shape("norm gain", lin.cols, norm.gamma.len()));
        }
        let mut f = Self::plain(lin);
        for r in 0..lin.rows {
            let row = &mut f.w[r * lin.cols..(r + 1) * lin.cols];
            if let (Some(beta), NormKind::LayerNorm) = (&norm.beta, norm.kind) {
                f.bias[r] += row.iter().zip(beta).map(|(w, b)| w * b).sum::<f64>();
            }
            row.iter_mut().zip(&norm.gamma).for_each(|(w, g)| *w *= g);
        }
        Ok(f)
    }

    /// Rows expanded from `kv_heads` to `heads` heads (grouped-query attention).
    pub fn expand_heads(mut self, attn: &Attention) -> Self {
        let group = attn.heads / attn.kv_heads;
        if group == 1 {
            return self;
        }
        let (dh, cols) = (attn.head_dim, self.cols);
        let rows = attn.heads * dh;
        let src = |g: usize| (g / dh / group) * dh + g % dh;
        let w = (0..rows)
            .flat_map(|g| self.w[src(g) * cols..(src(g) + 1) * cols].to_vec())
            .collect();
        self.bias = (0..rows).map(|g| self.bias[src(g)]).collect();
        self.w = w;
        self.rows = rows;
        self
    }

    /// Rows and bias multiplied by `alpha`.
    pub fn scaled(mut self, alpha: f64) -> Self {
        self.w.iter_mut().for_each(|w| *w *= alpha);
        self.bias.iter_mut().for_each(|b| *b *= alpha);
        self
    }

    /// Output rows rotated per position by `rope` (heads of `head_dim` rows).
    pub fn with_rope(mut self, rope: Option<Rope>, head_dim: usize) -> Self {
        self.rope = rope.map(|r| (r, head_dim));
        self
    }

    /// `(own, partner, partner row)` of output row `g` at position `pos`.
    fn row_mix(&self, g: usize, pos: usize) -> (f64, f64, usize) {
        match self.rope {
            None => (1.0, 0.0, g),
            Some((rope, dh)) => {
                let (own, other, i) = rope.row(g % dh, pos);
                (own, other, g - g % dh + i)
            }
        }
    }

    /// `W_pos[g][f]`.
    pub fn weight(&self, g: usize, f: usize, pos: usize) -> f64 {
        let (a, b, p) = self.row_mix(g, pos);
        let w = a * self.w[g * self.cols + f];
        if b == 0.0 {
            w
        } else {
            w + b * self.w[p * self.cols + f]
        }
    }

    /// `b_pos[g]`.
    pub fn bias(&self, g: usize, pos: usize) -> f64 {
        let (a, b, p) = self.row_mix(g, pos);
        a * self.bias[g] + b * self.bias[p]
    }

    /// Whether any bias entry is non-zero.
    pub fn has_bias(&self) -> bool {
        self.bias.iter().any(|&b| b != 0.0)
    }

    /// The cleartext map at position `pos`.
    pub fn apply_f64(&self, x: &[f64], pos: usize) -> Vec<f64> {
        (0..self.rows)
            .map(|g| {
                (0..self.cols)
                    .map(|f| self.weight(g, f, pos) * x[f])
                    .sum::<f64>()
                    + self.bias(g, pos)
            })
            .collect()
    }

    /// The period of the input features: `cols` rounded up to a power of two when that is
    /// below the layout's features per ciphertext (a narrow input), else the features per
    /// ciphertext.
    pub fn period(&self, layout: &Layout) -> usize {
        self.cols.next_power_of_two().min(layout.features_per_ct())
    }

    /// Copies of a narrow input the transform reads: the input's `cols` features repeated
    /// with [`Self::period`] `c` over the features `0 .. rows + c - 1` (1: the input as is).
    /// The circuit makes them with `log2(copies)` rotations ([`Self::transform`]).
    pub fn input_copies(&self, layout: &Layout) -> usize {
        let (d, c) = (layout.features_per_ct(), self.period(layout));
        if c == d {
            return 1;
        }
        (self.rows.min(d).saturating_sub(1).div_ceil(c) + 1)
            .next_power_of_two()
            .min(d / c)
    }

    /// The block transform over the layout's ciphertexts: diagonal `k` of block `(o, i)`
    /// holds `W_t[o d + g][i d + (g + k) mod d]` in slot `g n + t`.
    ///
    /// A narrow input (period `c < d`, see [`Self::input_copies`]) takes only `c` diagonals
    /// per output ciphertext instead of up to `d`: diagonal `k` holds `W_t[o d + g][(g + k)
    /// mod c]` and reads the input copies, so e.g. a `vocab x d_model` LM head costs `d_model`
    /// plaintext products per output ciphertext.
    ///
    /// # Errors
    /// An output ciphertext whose rows are all zero.
    pub fn transform(&self, layout: &Layout) -> Result<BlockTransform> {
        let (d, n, slots) = (layout.features_per_ct(), layout.tokens(), layout.slots);
        let c = self.period(layout);
        let pos = |t: usize| layout.position(t).unwrap_or(0);
        let blocks = (0..layout.cts_for(self.rows))
            .map(|o| {
                (0..layout.cts_for(self.cols))
                    .map(|i| {
                        let value = |k: usize, m: usize| {
                            let (g, f) = (o * d + m / n, i * d + (m / n + k) % c);
                            if g < self.rows && f < self.cols {
                                self.weight(g, f, pos(m % n))
                            } else {
                                0.0
                            }
                        };
                        Ok(LinearTransform::from_diagonal_fn(
                            slots,
                            c,
                            n,
                            value,
                            Strategy::Bsgs(None),
                        )?)
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(BlockTransform::new(blocks)?)
    }

    /// The bias as slot vectors, one per output ciphertext.
    pub fn bias_vectors(&self, layout: &Layout) -> Vec<Vec<f64>> {
        let d = layout.features_per_ct();
        (0..layout.cts_for(self.rows))
            .map(|o| {
                layout.slot_vector(|gl, t| {
                    let g = o * d + gl;
                    if g < self.rows {
                        self.bias(g, layout.position(t).unwrap_or(0))
                    } else {
                        0.0
                    }
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `copies` copies of slot vector `x`, shifted by multiples of `stride` slots.
    fn replicate(x: &[f64], stride: usize, copies: usize) -> Vec<f64> {
        let n = x.len();
        (0..n)
            .map(|m| {
                (0..copies)
                    .map(|k| x[(m + n * copies - k * stride) % n])
                    .sum()
            })
            .collect()
    }

    #[test]
    fn folded_transform_matches_per_token_products() {
        // 8 tokens, 8 features per ct: wide (12 x 10) and narrow inputs (period 4 and 2);
        // rows are whole heads of 4 (RoPE).
        for (rows, cols, copies) in [(12, 10, 1), (12, 3, 2), (4, 3, 2), (4, 2, 4)] {
            check_transform(rows, cols, copies);
        }
    }

    fn check_transform(rows: usize, cols: usize, copies: usize) {
        let layout = Layout::new(4, 2, 64).unwrap();
        let w: Vec<f64> = (0..rows * cols)
            .map(|i| ((i * 37) % 11) as f64 - 5.0)
            .collect();
        let lin = Linear::new(rows, cols, w, Some((0..rows).map(|r| r as f64).collect())).unwrap();
        let rope = Rope {
            rotary_dim: 2,
            theta: 100.0,
        };
        let f = Folded::plain(&lin).with_rope(Some(rope), 4);
        let x: Vec<Vec<Vec<f64>>> = (0..2)
            .map(|b| {
                (0..4)
                    .map(|p| (0..cols).map(|c| (b + p + c) as f64 * 0.1).collect())
                    .collect()
            })
            .collect();
        let mut packed = layout.pack(&x, cols).unwrap();
        assert_eq!(f.input_copies(&layout), copies);
        if copies > 1 {
            let stride = f.period(&layout) * layout.tokens();
            packed = vec![replicate(&packed[0], stride, copies)];
        }
        let mut y = f.transform(&layout).unwrap().apply_f64(&packed);
        for (yo, bo) in y.iter_mut().zip(f.bias_vectors(&layout)) {
            yo.iter_mut().zip(bo).for_each(|(a, b)| *a += b);
        }
        for b in 0..2 {
            for p in 0..4 {
                let want = f.apply_f64(&x[b][p], p);
                let have = layout.unpack_token(&y, rows, b, p).unwrap();
                for (a, h) in want.iter().zip(&have) {
                    assert!((a - h).abs() < 1e-9, "{a} vs {h}");
                }
            }
        }
    }
}
