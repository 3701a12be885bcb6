//! [`ModelIr::from_poly`]: the compiler's view of a `psf_poly::PolyModel` (its weights and
//! its `PolySpec`), one block per layer, with the same recipes, so the circuit computes what
//! the PolyModel computes in `Mode::Polynomial`.

use psf_poly::{LinearWeights, MlpWeights, NormWeights, PolyModel};

use crate::model::{Attention, Block, Linear, Mlp, ModelIr, Norm, NormKind, Rope};
use crate::{InferError, Result};

fn linear(l: &LinearWeights) -> Result<Linear> {
    Linear::new(l.w.rows, l.w.cols, l.w.data.clone(), l.b.clone())
}

fn norm(n: &NormWeights, recipe: psf_approx::InvSqrtRecipe) -> Norm {
    Norm {
        kind: if n.beta.is_some() {
            NormKind::LayerNorm
        } else {
            NormKind::RmsNorm
        },
        gamma: n.gamma.clone(),
        beta: n.beta.clone(),
        eps: n.eps,
        inv_sqrt: recipe,
    }
}

impl ModelIr {
    /// The model of `poly` (weights and approximation spec).
    ///
    /// # Errors
    /// A model that is not Power-Softmax, or a spec with the wrong number of layers.
    pub fn from_poly(poly: &PolyModel) -> Result<Self> {
        let (w, spec) = (poly.weights(), poly.spec());
        let cfg = &w.config;
        let p = spec.p;
        if p == 0 || w.power().0 != p || spec.layers.len() != w.layers.len() {
            return Err(InferError::Unsupported(format!(
                "PolyModel with p = {p} and {} specs for {} layers",
                spec.layers.len(),
                w.layers.len()
            )));
        }
        let rope = (cfg.rotary_dim > 0).then_some(Rope {
            rotary_dim: cfg.rotary_dim,
            theta: cfg.rope_theta,
        });
        let blocks = w
            .layers
            .iter()
            .zip(&spec.layers)
            .map(|(l, s)| {
                let act = s.activation.poly.clone();
                let mlp = match &l.mlp {
                    MlpWeights::Plain { up, down } => Mlp::Plain {
                        up: linear(up)?,
                        down: linear(down)?,
                        act,
                    },
                    MlpWeights::Gated { gate, up, down } => Mlp::Gated {
                        gate: linear(gate)?,
                        up: linear(up)?,
                        down: linear(down)?,
                        act,
                    },
                };
                Ok(Block {
                    norm1: norm(&l.norm1, s.norm1),
                    norm2: norm(&l.norm2, s.norm2),
                    attn: Attention {
                        heads: cfg.num_heads,
                        kv_heads: cfg.num_kv_heads,
                        head_dim: cfg.head_dim,
                        q: linear(&l.q)?,
                        k: linear(&l.k)?,
                        v: linear(&l.v)?,
                        o: linear(&l.o)?,
                        rope,
                        c: s.c,
                        p,
                        eps: spec.eps,
                        reciprocal: s.reciprocal,
                        decay: l.decay.clone(),
                    },
                    mlp,
                    parallel_residual: cfg.parallel_residual,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            d_model: cfg.hidden_size,
            blocks,
            final_norm: norm(&w.final_norm, spec.final_norm),
            lm_head: Linear::new(w.head.rows, w.head.cols, w.head.data.clone(), None)?,
        })
    }
}
