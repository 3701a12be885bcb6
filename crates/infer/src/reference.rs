//! The `f64` twin of the circuit: the [`ModelIr`] evaluated in clear with the same
//! polynomials and iterations, in the `psf_poly::PolyModel` contract's order of operations
//! (norm gain/shift, then the projections; RoPE; Power-Softmax with the length-agnostic mean
//! and the multiplicative causal mask). Tests compare decrypted logits with it.

use psf_approx::{FirstGuess, InvSqrtRecipe, ReciprocalRecipe};

use crate::Result;
use crate::model::{Attention, Block, Linear, Mlp, ModelIr, Norm, NormKind};

/// A prompt's hidden states: `[position][feature]`.
type Seq = Vec<Vec<f64>>;

fn inv_sqrt(r: &InvSqrtRecipe, g: &FirstGuess, x: f64) -> f64 {
    r.eval_with(g, x)
}

fn norm(n: &Norm, x: &Seq) -> Result<Seq> {
    let guess = n.inv_sqrt.first_guess()?;
    Ok(x.iter()
        .map(|row| {
            let d = row.len() as f64;
            let (centred, var) = match n.kind {
                NormKind::LayerNorm => {
                    let mu = row.iter().sum::<f64>() / d;
                    let c: Vec<f64> = row.iter().map(|v| v - mu).collect();
                    let var = c.iter().map(|v| v * v).sum::<f64>() / d;
                    (c, var)
                }
                NormKind::RmsNorm => (row.clone(), row.iter().map(|v| v * v).sum::<f64>() / d),
            };
            let r = inv_sqrt(&n.inv_sqrt, &guess, var + n.eps);
            centred
                .iter()
                .enumerate()
                .map(|(f, v)| v * r * n.gamma[f] + n.beta.as_ref().map_or(0.0, |b| b[f]))
                .collect()
        })
        .collect())
}

fn linear(l: &Linear, x: &Seq) -> Seq {
    x.iter().map(|row| l.apply(row)).collect()
}

fn rope(a: &Attention, x: &mut Seq, heads: usize) {
    let Some(rope) = a.rope else { return };
    for (pos, row) in x.iter_mut().enumerate() {
        let old = row.clone();
        for h in 0..heads {
            for i in 0..rope.rotary_dim {
                let (own, other, j) = rope.row(i, pos);
                let base = h * a.head_dim;
                row[base + i] = own * old[base + i] + other * old[base + j];
            }
        }
    }
}

fn power(z: f64, p: u32) -> f64 {
    (0..p).fold(1.0, |acc, _| acc * z)
}

fn attention(a: &Attention, y: &Seq) -> Result<Seq> {
    let (mut q, mut k, v) = (linear(&a.q, y), linear(&a.k, y), linear(&a.v, y));
    rope(a, &mut q, a.heads);
    rope(a, &mut k, a.kv_heads);
    let guess = a.reciprocal.first_guess()?;
    let recip = |x: f64| ReciprocalRecipe::eval_with(&a.reciprocal, &guess, x);
    let (dh, group) = (a.head_dim, a.heads / a.kv_heads);
    let scale = 1.0 / ((dh as f64).sqrt() * a.c);
    let eps = a.eps / a.c.powi(a.p as i32);
    let mut out = vec![vec![0.0; a.heads * dh]; y.len()];
    for h in 0..a.heads {
        let kh = h / group;
        for t in 0..y.len() {
            let n: Vec<f64> = (0..=t)
                .map(|j| {
                    let s: f64 = (0..dh).map(|i| q[t][h * dh + i] * k[j][kh * dh + i]).sum();
                    power(s * scale * a.decay_factor(h, t - j), a.p)
                })
                .collect();
            let len = (t + 1) as f64;
            let r = recip(eps + n.iter().sum::<f64>() / len);
            for (j, nj) in n.iter().enumerate() {
                let w = nj * r / len;
                for i in 0..dh {
                    out[t][h * dh + i] += w * v[j][kh * dh + i];
                }
            }
        }
    }
    Ok(linear(&a.o, &out))
}

fn mlp(m: &Mlp, y: &Seq) -> Seq {
    match m {
        Mlp::Plain { up, down, act } => {
            let h: Seq = linear(up, y)
                .into_iter()
                .map(|r| r.into_iter().map(|v| act.eval(v)).collect())
                .collect();
            linear(down, &h)
        }
        Mlp::Gated {
            gate,
            up,
            down,
            act,
        } => {
            let (g, u) = (linear(gate, y), linear(up, y));
            let h: Seq = g
                .iter()
                .zip(&u)
                .map(|(gr, ur)| gr.iter().zip(ur).map(|(a, b)| act.eval(*a) * b).collect())
                .collect();
            linear(down, &h)
        }
    }
}

fn add(a: &Seq, b: &Seq) -> Seq {
    a.iter()
        .zip(b)
        .map(|(x, y)| x.iter().zip(y).map(|(p, q)| p + q).collect())
        .collect()
}

fn block(b: &Block, x: &Seq) -> Result<Seq> {
    let a = attention(&b.attn, &norm(&b.norm1, x)?)?;
    if b.parallel_residual {
        let m = mlp(&b.mlp, &norm(&b.norm2, x)?);
        return Ok(add(&add(x, &a), &m));
    }
    let x = add(x, &a);
    let m = mlp(&b.mlp, &norm(&b.norm2, &x)?);
    Ok(add(&x, &m))
}

impl ModelIr {
    /// Logits `[position][vocab]` of one prompt's embeddings `[position][d_model]`, in `f64`.
    ///
    /// # Errors
    /// An invalid approximation recipe.
    pub fn forward_f64(&self, embeddings: &[Vec<f64>]) -> Result<Vec<Vec<f64>>> {
        let mut x: Seq = embeddings.to_vec();
        for b in &self.blocks {
            x = block(b, &x)?;
        }
        Ok(linear(&self.lm_head, &norm(&self.final_norm, &x)?))
    }
}
