//! The model as the compiler sees it: weights in `f64` (PyTorch orientation, `(out, in)`), the
//! norms, attention and MLP of every block with their approximation recipes. It mirrors the
//! `psf_poly::PolyModel` contract (see the crate docs): [`ModelIr::from_poly`] converts one,
//! and tests build small ones directly.

use psf_approx::{Chebyshev, InvSqrtRecipe, ReciprocalRecipe};
use serde::{Deserialize, Serialize};

use crate::{InferError, Result};

/// A dense linear map `y = W x + b` with `W` of `rows x cols` (row-major).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Linear {
    /// Output features.
    pub rows: usize,
    /// Input features.
    pub cols: usize,
    /// `rows * cols` weights, row after row.
    pub w: Vec<f64>,
    /// Optional bias of length `rows`.
    pub bias: Option<Vec<f64>>,
}

impl Linear {
    /// A linear map, checked.
    ///
    /// # Errors
    /// Weights or bias of the wrong length.
    pub fn new(rows: usize, cols: usize, w: Vec<f64>, bias: Option<Vec<f64>>) -> Result<Self> {
        if w.len() != rows * cols || rows == 0 || cols == 0 {
            return Err(InferError::shape("linear weights", rows * cols, w.len()));
        }
        if let Some(b) = &bias
            && b.len() != rows
        {
            return Err(InferError::shape("linear bias", rows, b.len()));
        }
        Ok(Self {
            rows,
            cols,
            w,
            bias,
        })
    }

    /// `W[r][c]`.
    pub fn at(&self, r: usize, c: usize) -> f64 {
        self.w[r * self.cols + c]
    }

    /// The bias entry `b[r]` (0 without bias).
    pub fn bias_at(&self, r: usize) -> f64 {
        self.bias.as_ref().map_or(0.0, |b| b[r])
    }

    /// `W x + b` in `f64`.
    pub fn apply(&self, x: &[f64]) -> Vec<f64> {
        (0..self.rows)
            .map(|r| {
                let row = &self.w[r * self.cols..(r + 1) * self.cols];
                row.iter().zip(x).map(|(a, b)| a * b).sum::<f64>() + self.bias_at(r)
            })
            .collect()
    }
}

/// LayerNorm (GPT-NeoX) or RMSNorm (Llama).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormKind {
    /// `mu = mean x; d = x - mu; var = mean d^2; y = d InvSqrt(var + eps) gamma + beta`.
    LayerNorm,
    /// `ms = mean x^2; y = x InvSqrt(ms + eps) gamma`.
    RmsNorm,
}

/// A norm with its inverse-square-root recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Norm {
    /// Which norm.
    pub kind: NormKind,
    /// Gain, one per feature.
    pub gamma: Vec<f64>,
    /// Shift (LayerNorm with bias).
    pub beta: Option<Vec<f64>>,
    /// Epsilon added to the variance.
    pub eps: f64,
    /// The `1/sqrt(var + eps)` approximation.
    pub inv_sqrt: InvSqrtRecipe,
}

/// Rotary position embedding on the first `rotary_dim` features of each head (Hugging Face
/// `rotate_half` convention, angles computed in `f32` as psf-model does).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rope {
    /// Rotated features per head (even).
    pub rotary_dim: usize,
    /// Base.
    pub theta: f64,
}

impl Rope {
    /// `(cos, sin)` of feature `i < rotary_dim` of a head at position `pos`.
    pub fn angle(&self, i: usize, pos: usize) -> (f64, f64) {
        let half = self.rotary_dim / 2;
        let j = i % half;
        let inv = 1.0 / self.theta.powf(2.0 * j as f64 / self.rotary_dim as f64);
        let a = f64::from(pos as f32 * inv as f32);
        (a.cos(), a.sin())
    }

    /// The coefficients of the rotated feature `i` at `pos`: `(own, partner, partner index)`,
    /// `x'[i] = own x[i] + partner x[partner index]` (identity beyond `rotary_dim`).
    pub fn row(&self, i: usize, pos: usize) -> (f64, f64, usize) {
        if i >= self.rotary_dim {
            return (1.0, 0.0, i);
        }
        let half = self.rotary_dim / 2;
        let (c, s) = self.angle(i, pos);
        if i < half {
            (c, -s, i + half)
        } else {
            (c, s, i - half)
        }
    }
}

/// Power-Softmax attention (length-agnostic form, multiplicative causal mask).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attention {
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (divides `heads`).
    pub kv_heads: usize,
    /// Per-head width (a power of two).
    pub head_dim: usize,
    /// Query projection (`heads * head_dim` x `d_model`).
    pub q: Linear,
    /// Key projection (`kv_heads * head_dim` x `d_model`).
    pub k: Linear,
    /// Value projection.
    pub v: Linear,
    /// Output projection (`d_model` x `heads * head_dim`).
    pub o: Linear,
    /// RoPE on q and k.
    pub rope: Option<Rope>,
    /// The public constant `c` (scores are divided by `c`).
    pub c: f64,
    /// Power-Softmax exponent (even).
    pub p: u32,
    /// The model's `eps` (the denominator is `eps / c^p + mean_j z_j^p`).
    pub eps: f64,
    /// The reciprocal of the denominator.
    pub reciprocal: ReciprocalRecipe,
    /// Positional decay rates per query head (empty: none): key j's weight for query t is
    /// multiplied by `exp(-rate (t - j))`, folded into the plaintext score mask.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decay: Vec<f64>,
}

impl Attention {
    /// The factor on the score of query head `head` at key distance `distance`:
    /// `exp(-rate * distance / p)` (its `p`-th power is the weight's decay), 1 without decay.
    pub fn decay_factor(&self, head: usize, distance: usize) -> f64 {
        match self.decay.get(head) {
            Some(rate) => (-rate * distance as f64 / f64::from(self.p)).exp(),
            None => 1.0,
        }
    }
}

/// The MLP of a block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mlp {
    /// `down(act(up x))` (GPT-NeoX, GELU).
    Plain {
        /// Input projection.
        up: Linear,
        /// Output projection.
        down: Linear,
        /// The activation polynomial on its interval.
        act: Chebyshev,
    },
    /// `down(act(gate x) * up x)` (Llama, SiLU).
    Gated {
        /// Gate projection.
        gate: Linear,
        /// Up projection.
        up: Linear,
        /// Output projection.
        down: Linear,
        /// The activation polynomial on its interval.
        act: Chebyshev,
    },
}

/// One decoder block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Block {
    /// Norm before attention.
    pub norm1: Norm,
    /// Norm before the MLP.
    pub norm2: Norm,
    /// Attention.
    pub attn: Attention,
    /// MLP.
    pub mlp: Mlp,
    /// `x + attn(n1(x)) + mlp(n2(x))` (NeoX) instead of the sequential form (Llama).
    pub parallel_residual: bool,
}

/// A whole polynomial model, from embeddings to logits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelIr {
    /// Model width.
    pub d_model: usize,
    /// Decoder blocks.
    pub blocks: Vec<Block>,
    /// Final norm.
    pub final_norm: Norm,
    /// LM head (`vocab` x `d_model`).
    pub lm_head: Linear,
}

impl ModelIr {
    /// Vocabulary size (logits per position).
    pub fn vocab(&self) -> usize {
        self.lm_head.rows
    }

    /// Checks the shapes of every block.
    ///
    /// # Errors
    /// The first inconsistent shape.
    pub fn validate(&self) -> Result<()> {
        let d = self.d_model;
        let check = |what: &str, l: &Linear, rows: usize, cols: usize| {
            if l.rows != rows || l.cols != cols {
                return Err(InferError::shape(
                    what,
                    format!("{rows} x {cols}"),
                    format!("{} x {}", l.rows, l.cols),
                ));
            }
            Ok(())
        };
        for (i, b) in self.blocks.iter().enumerate() {
            let a = &b.attn;
            if a.kv_heads == 0 || a.heads % a.kv_heads != 0 || !a.head_dim.is_power_of_two() {
                return Err(InferError::Unsupported(format!(
                    "block {i}: {} heads, {} kv heads, head_dim {} (a power of two needed)",
                    a.heads, a.kv_heads, a.head_dim
                )));
            }
            check("q", &a.q, a.heads * a.head_dim, d)?;
            check("k", &a.k, a.kv_heads * a.head_dim, d)?;
            check("v", &a.v, a.kv_heads * a.head_dim, d)?;
            check("o", &a.o, d, a.heads * a.head_dim)?;
            if a.p == 0 || a.p % 2 != 0 {
                return Err(InferError::Unsupported(format!("p = {} (even > 0)", a.p)));
            }
            if !(a.decay.is_empty() || a.decay.len() == a.heads)
                || a.decay.iter().any(|r| !(r.is_finite() && *r >= 0.0))
            {
                return Err(InferError::shape(
                    "attention decay",
                    format!("0 or {} finite rates >= 0", a.heads),
                    format!("{:?}", a.decay),
                ));
            }
            match &b.mlp {
                Mlp::Plain { up, down, .. } => {
                    check("mlp up", up, up.rows, d)?;
                    check("mlp down", down, d, up.rows)?;
                }
                Mlp::Gated { gate, up, down, .. } => {
                    check("mlp gate", gate, up.rows, d)?;
                    check("mlp up", up, up.rows, d)?;
                    check("mlp down", down, d, up.rows)?;
                }
            }
        }
        check("lm head", &self.lm_head, self.lm_head.rows, d)
    }
}
