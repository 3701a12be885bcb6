//! psf-poly: calibration of a trained model's op ranges, polynomial replacement of division,
//! inverse square root and activations, and [`PolyModel`], the `f64` twin of the encrypted
//! circuit (DESIGN.md §2.2-2.4). No homomorphic-encryption dependency.
//!
//! # The contract (psf-infer's encrypted circuit mirrors it)
//!
//! The input is the sequence of token **embeddings** `(T, d)` (the client looks them up); the
//! output is the logits of the requested positions. Every approximation choice is a
//! [`PolySpec`]. In [`Mode::Polynomial`] every non-polynomial op is replaced as below; in
//! [`Mode::Exact`] the same code runs with the true `1/sqrt`, `1/x` and activation (the
//! unapproximated twin); [`Mode::Only`] approximates only the classes it names (ablation: what
//! each class costs alone). Per decoder block `i`, with `ls = spec.layers[i]`:
//!
//! 1. `ln1 = Norm(x; ls.norm1)`, where LayerNorm is `mu = mean(x)`, `d = x - mu`,
//!    `var = mean(d*d)`, `r = InvSqrt(var + eps)`, `y = d*r*gamma + beta`, and RMSNorm is
//!    `ms = mean(x*x)`, `r = InvSqrt(ms + eps)`, `y = x*r*gamma`. `InvSqrt` is
//!    [`psf_approx::InvSqrtRecipe::eval_with`] (first guess on `[a, b]` + Newton steps
//!    `y' = 1.5 y - 0.5 (x y) y^2`).
//! 2. `q, k, v = ln1 W + b` (NeoX's fused QKV is split per head, [`PolyWeights`]); RoPE on
//!    `q` and `k` (angles `pos * inv_freq` rounded to `f32`, rotate-half layout, first
//!    `rotary_dim` dimensions of each head; a fixed linear map per position); then
//!    `q *= 1 / (sqrt(head_dim) * ls.c)`.
//! 3. Power-Softmax per head, length-agnostic, multiplicative causal mask: for query `t`,
//!    `z_j = q_t . k_j`; `n_j = z_j^p` (repeated squaring, [`int_pow`]) times `mask_tj` (1
//!    for `j <= t`, else 0); `L_t = t + 1`; `m_t = (1/L_t) * sum_j n_j`;
//!    `den_t = eps / c^p + m_t`; `R_t = Reciprocal(den_t)`
//!    ([`psf_approx::ReciprocalRecipe::eval_with`] on `ls.reciprocal`); `w_tj = n_j * R_t *
//!    (1/L_t)`; `out_t = sum_j w_tj v_j`; heads concatenated; output projection `o`.
//!    Grouped-query heads: query head `h` uses kv head `h / (H / H_kv)`.
//! 4. MLP: NeoX `down(Act(up y))`, Llama `down(Act(gate y) * up y)`; `Act` is the
//!    Chebyshev polynomial `ls.activation.poly` (minimax of GELU / SiLU on its interval).
//! 5. Residual: NeoX with parallel residual `x + attn(ln1 x) + mlp(ln2 x)` (summed in that
//!    order, `ln2 = Norm(x; ls.norm2)`); otherwise (Llama) sequential
//!    `x' = x + attn(ln1 x)`, `x' + mlp(Norm(x'; ls.norm2))`.
//!
//! After the last block: the final norm (`spec.final_norm`) on the requested positions, then
//! the LM head (no bias). Every input of `InvSqrt`, `Reciprocal` and `Act`, and every scaled
//! score `z` (against `[-1, 1]`), is tallied per layer and op in [`OutOfRange`]; outside its
//! interval the polynomial is evaluated anyway, as the circuit would. Each position is also
//! tallied at the first site where one of its inputs fell outside
//! ([`OutOfRange::first_outside`]): a position that goes wrong early feeds garbage keys and
//! values to every later query, so the first sites say where a failure starts.

mod calibrate;
mod choice;
mod error;
mod eval;
mod matrix;
mod model;
mod spec;
mod weights;

pub use calibrate::{
    CalibrationOptions, LayerRanges, ObservedRanges, OpMargins, Seen, UNMET_TARGETS, calibrate,
};
pub use choice::{ChoiceItem, ChoiceResult, continuation_task, score_choices, score_choices_from};
pub use error::{PolyError, Result};
pub use eval::{
    Comparison, Ppl, candle_logits, candle_perplexity, compare, compare_many, compare_modes,
    nll_and_argmax, windows,
};
pub use matrix::Matrix;
pub use model::{Forward, PolyModel, int_pow};
pub use spec::{
    ActivationFn, ActivationSpec, Approximated, LayerSpec, Mode, OpSite, OutOfRange, PolyOp,
    PolySpec, RangeCount,
};
pub use weights::{LayerWeights, LinearWeights, MlpWeights, NormWeights, PolyWeights};
