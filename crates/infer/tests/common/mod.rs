//! A tiny random polynomial model (GPT-NeoX or Llama layout) and prompts for the tests.

#![allow(dead_code)]

use psf_approx::{Chebyshev, InvSqrtRecipe, InverseMethod, ReciprocalRecipe};
use psf_infer::model::{Attention, Block, Linear, Mlp, ModelIr, Norm, NormKind, Rope};

/// Uniform numbers in `[-1, 1)` from a seeded LCG.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }

    pub fn vec(&mut self, n: usize, scale: f64) -> Vec<f64> {
        (0..n).map(|_| self.next() * scale).collect()
    }

    fn linear(&mut self, rows: usize, cols: usize, bias: bool) -> Linear {
        let s = (3.0 / cols as f64).sqrt();
        let b = bias.then(|| self.vec(rows, 0.1));
        Linear::new(rows, cols, self.vec(rows * cols, s), b).unwrap()
    }
}

/// Shape of the tiny model.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub d: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub mlp: usize,
    pub vocab: usize,
    pub layers: usize,
    pub llama: bool,
    /// A positional decay (rates 0.3 / (h + 1)) in every block's attention.
    pub decay: bool,
}

pub const NEOX: Shape = Shape {
    d: 16,
    heads: 2,
    kv_heads: 2,
    head_dim: 8,
    mlp: 32,
    vocab: 32,
    layers: 2,
    llama: false,
    decay: false,
};

pub const LLAMA: Shape = Shape {
    d: 16,
    heads: 4,
    kv_heads: 2,
    head_dim: 4,
    mlp: 24,
    vocab: 32,
    layers: 1,
    llama: true,
    decay: false,
};

fn norm(rng: &mut Lcg, shape: &Shape) -> Norm {
    let kind = if shape.llama {
        NormKind::RmsNorm
    } else {
        NormKind::LayerNorm
    };
    Norm {
        kind,
        gamma: rng.vec(shape.d, 0.2).into_iter().map(|g| 1.0 + g).collect(),
        beta: (!shape.llama).then(|| rng.vec(shape.d, 0.1)),
        eps: 1e-5,
        // Variances of the tiny model lie in ~[0.1, 3] (margin included).
        inv_sqrt: InvSqrtRecipe {
            a: 0.05,
            b: 8.0,
            guess_degree: 7,
            iterations: 2,
        },
    }
}

/// A random model of `shape` (weights `U(-sqrt(3/fan_in), ..)`), with approximations whose
/// intervals cover what its activations reach on [`prompts`].
pub fn model(shape: Shape, seed: u64) -> ModelIr {
    let mut rng = Lcg(seed);
    let (d, dh) = (shape.d, shape.head_dim);
    let act = if shape.llama {
        Chebyshev::interpolate(psf_approx::silu_exact, -8.0, 8.0, 15)
    } else {
        Chebyshev::interpolate(psf_approx::gelu_exact, -8.0, 8.0, 15)
    };
    let blocks = (0..shape.layers)
        .map(|_| {
            let bias = !shape.llama;
            let attn = Attention {
                heads: shape.heads,
                kv_heads: shape.kv_heads,
                head_dim: dh,
                q: rng.linear(shape.heads * dh, d, bias),
                k: rng.linear(shape.kv_heads * dh, d, bias),
                v: rng.linear(shape.kv_heads * dh, d, bias),
                o: rng.linear(d, shape.heads * dh, bias),
                rope: Some(Rope {
                    rotary_dim: if shape.llama { dh } else { dh / 2 },
                    theta: 10000.0,
                }),
                c: 4.0,
                p: 4,
                eps: 0.5,
                reciprocal: ReciprocalRecipe {
                    a: 0.0015,
                    b: 2.0,
                    method: InverseMethod::Goldschmidt,
                    guess_degree: 7,
                    iterations: 3,
                },
                decay: if shape.decay {
                    (0..shape.heads).map(|h| 0.3 / (h + 1) as f64).collect()
                } else {
                    Vec::new()
                },
            };
            let mlp = if shape.llama {
                Mlp::Gated {
                    gate: rng.linear(shape.mlp, d, false),
                    up: rng.linear(shape.mlp, d, false),
                    down: rng.linear(d, shape.mlp, false),
                    act: act.clone(),
                }
            } else {
                Mlp::Plain {
                    up: rng.linear(shape.mlp, d, true),
                    down: rng.linear(d, shape.mlp, true),
                    act: act.clone(),
                }
            };
            Block {
                norm1: norm(&mut rng, &shape),
                norm2: norm(&mut rng, &shape),
                attn,
                mlp,
                parallel_residual: !shape.llama,
            }
        })
        .collect();
    ModelIr {
        d_model: d,
        final_norm: norm(&mut rng, &shape),
        lm_head: rng.linear(shape.vocab, d, false),
        blocks,
    }
}

/// `batch` prompts of `seq_len` embeddings, uniform in `[-1, 1]`.
pub fn prompts(d: usize, batch: usize, seq_len: usize, seed: u64) -> Vec<Vec<Vec<f64>>> {
    let mut rng = Lcg(seed);
    (0..batch)
        .map(|_| (0..seq_len).map(|_| rng.vec(d, 1.0)).collect())
        .collect()
}

/// Max abs error, MSE and top-1 agreement of `have` against `want` (rows of logits).
pub fn compare(want: &[Vec<f64>], have: &[Vec<f64>]) -> (f64, f64, f64) {
    let argmax = |v: &[f64]| {
        (0..v.len())
            .max_by(|&a, &b| v[a].total_cmp(&v[b]))
            .unwrap_or(0)
    };
    let (mut max, mut se, mut n, mut agree) = (0.0f64, 0.0, 0usize, 0usize);
    for (w, h) in want.iter().zip(have) {
        for (a, b) in w.iter().zip(h) {
            max = max.max((a - b).abs());
            se += (a - b) * (a - b);
            n += 1;
        }
        agree += usize::from(argmax(w) == argmax(h));
    }
    (max, se / n as f64, agree as f64 / want.len() as f64)
}
