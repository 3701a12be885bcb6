//! [`PolyModel`]: the forward pass of the contract (see the crate documentation) in `f64`.

use std::sync::Arc;

use psf_approx::{FirstGuess, InvSqrtRecipe};
use psf_model::Arch;
use rayon::prelude::*;

use crate::error::{PolyError, Result};
use crate::matrix::{Matrix, dot};
use crate::spec::{LayerSpec, Mode, OutOfRange, PolyOp, PolySpec};
use crate::weights::{LayerWeights, MlpWeights, NormWeights, PolyWeights};

/// What a forward pass returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Forward {
    /// Logits `(positions, vocab)`, one row per requested position.
    pub logits: Matrix,
    /// Inputs checked against their intervals, per op and layer.
    pub out_of_range: OutOfRange,
}

/// The first guesses of a layer's inverse recipes, built once.
#[derive(Debug, Clone)]
struct Guesses {
    norm1: FirstGuess,
    norm2: FirstGuess,
    reciprocal: FirstGuess,
}

/// The polynomial model: weights, approximation spec and the precomputed first guesses.
/// The weights are shared: [`Self::with_spec`] makes a model with another spec without
/// copying them (a degree sweep of a 135M-parameter model holds one copy).
#[derive(Debug, Clone)]
pub struct PolyModel {
    weights: Arc<PolyWeights>,
    spec: PolySpec,
    guesses: Vec<Guesses>,
    final_guess: FirstGuess,
    rope: RopeTable,
}

impl PolyModel {
    /// Checks that `spec` fits `weights` (one layer spec per block, same `p` and `eps`) and
    /// builds the first-guess polynomials.
    ///
    /// # Errors
    /// A mismatching or invalid spec.
    pub fn new(weights: PolyWeights, spec: PolySpec) -> Result<Self> {
        Self::shared(Arc::new(weights), spec)
    }

    /// The same weights with another spec (checked as in [`Self::new`]).
    ///
    /// # Errors
    /// A mismatching or invalid spec.
    pub fn with_spec(&self, spec: PolySpec) -> Result<Self> {
        Self::shared(Arc::clone(&self.weights), spec)
    }

    fn shared(weights: Arc<PolyWeights>, spec: PolySpec) -> Result<Self> {
        let cfg = &weights.config;
        if spec.layers.len() != cfg.num_layers {
            return Err(PolyError::InvalidSpec(format!(
                "{} layer specs for {} layers",
                spec.layers.len(),
                cfg.num_layers
            )));
        }
        let (p, eps) = weights.power();
        if spec.p != p || (spec.eps - eps).abs() > 1e-12 * eps.max(1.0) {
            return Err(PolyError::InvalidSpec(format!(
                "spec p={} eps={} vs model p={p} eps={eps}",
                spec.p, spec.eps
            )));
        }
        let guesses = spec
            .layers
            .iter()
            .map(|l| {
                if !(l.c > 0.0 && l.c.is_finite()) {
                    return Err(PolyError::InvalidSpec(format!("c = {}", l.c)));
                }
                Ok(Guesses {
                    norm1: l.norm1.first_guess()?,
                    norm2: l.norm2.first_guess()?,
                    reciprocal: l.reciprocal.first_guess()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let final_guess = spec.final_norm.first_guess()?;
        let rope = RopeTable::new(cfg.rotary_dim, cfg.rope_theta);
        Ok(Self {
            weights,
            spec,
            guesses,
            final_guess,
            rope,
        })
    }

    /// The weights.
    pub fn weights(&self) -> &PolyWeights {
        &self.weights
    }

    /// The approximation spec.
    pub fn spec(&self) -> &PolySpec {
        &self.spec
    }

    /// Logits of every position for embeddings `x` `(T, d)`.
    ///
    /// # Errors
    /// `x` of the wrong width, or longer than the model's positions.
    pub fn forward(&self, x: &Matrix, mode: Mode) -> Result<Forward> {
        let all: Vec<usize> = (0..x.rows).collect();
        self.forward_at(x, &all, mode)
    }

    /// Logits of the requested `positions` for embeddings `x` `(T, d)`.
    ///
    /// # Errors
    /// `x` of the wrong width or length, a position `>= T`.
    pub fn forward_at(&self, x: &Matrix, positions: &[usize], mode: Mode) -> Result<Forward> {
        let cfg = &self.weights.config;
        if x.cols != cfg.hidden_size || x.rows == 0 || x.rows > cfg.max_position_embeddings {
            return Err(PolyError::Shape {
                expected: format!("(1..={}, {})", cfg.max_position_embeddings, cfg.hidden_size),
                got: format!("({}, {})", x.rows, x.cols),
            });
        }
        if let Some(&p) = positions.iter().find(|&&p| p >= x.rows) {
            return Err(PolyError::Shape {
                expected: format!("positions < {}", x.rows),
                got: p.to_string(),
            });
        }
        let mut oor = OutOfRange::default();
        let mut h = x.clone();
        for (i, lw) in self.weights.layers.iter().enumerate() {
            h = self.block(i, lw, &h, mode, &mut oor);
        }
        let rows: Vec<f64> = positions.iter().flat_map(|&p| h.row(p).to_vec()).collect();
        let last = Matrix::new(positions.len(), h.cols, rows)?;
        let fin = self.spec.final_norm;
        let inv = inv_sqrt(
            mode.approximates(PolyOp::FinalNorm),
            &fin,
            &self.final_guess,
        );
        let site = (cfg.num_layers, PolyOp::FinalNorm);
        let y = norm_rows(
            &last,
            &self.weights.final_norm,
            inv,
            &mut oor,
            site,
            (fin.a, fin.b),
            positions,
        );
        oor.finish(x.rows);
        let logits = y.linear(&self.weights.head, None);
        Ok(Forward {
            logits,
            out_of_range: oor,
        })
    }

    /// Looks up the embeddings of `ids` and runs [`Self::forward`].
    ///
    /// # Errors
    /// As [`PolyWeights::embed`] and [`Self::forward`].
    pub fn forward_ids(&self, ids: &[u32], mode: Mode) -> Result<Forward> {
        self.forward(&self.weights.embed(ids)?, mode)
    }

    fn block(
        &self,
        i: usize,
        lw: &LayerWeights,
        x: &Matrix,
        mode: Mode,
        oor: &mut OutOfRange,
    ) -> Matrix {
        let (ls, g) = (&self.spec.layers[i], &self.guesses[i]);
        let approx = mode.approximates(PolyOp::Norm1);
        let inv1 = inv_sqrt(approx, &ls.norm1, &g.norm1);
        let inv2 = inv_sqrt(approx, &ls.norm2, &g.norm2);
        let (i1, i2) = ((ls.norm1.a, ls.norm1.b), (ls.norm2.a, ls.norm2.b));
        let ln1 = norm(x, &lw.norm1, inv1, oor, (i, PolyOp::Norm1), i1);
        let attn = self.attention(i, lw, ls, &ln1, mode, oor);
        let parallel =
            self.weights.config.arch == Arch::GptNeox && self.weights.config.parallel_residual;
        if parallel {
            let ln2 = norm(x, &lw.norm2, inv2, oor, (i, PolyOp::Norm2), i2);
            let mlp = self.mlp(i, lw, ls, &ln2, mode, oor);
            add(&add(x, &attn), &mlp)
        } else {
            let x = add(x, &attn);
            let ln2 = norm(&x, &lw.norm2, inv2, oor, (i, PolyOp::Norm2), i2);
            let mlp = self.mlp(i, lw, ls, &ln2, mode, oor);
            add(&x, &mlp)
        }
    }

    fn attention(
        &self,
        i: usize,
        lw: &LayerWeights,
        ls: &LayerSpec,
        y: &Matrix,
        mode: Mode,
        oor: &mut OutOfRange,
    ) -> Matrix {
        let cfg = &self.weights.config;
        let (h, hkv, hd) = (cfg.num_heads, cfg.num_kv_heads, cfg.head_dim);
        let mut q = lw.q.apply(y); // (T, H hd)
        let mut k = lw.k.apply(y); // (T, Hkv hd)
        let v = lw.v.apply(y);
        self.rope.apply(&mut q, h, hd);
        self.rope.apply(&mut k, hkv, hd);
        let scale = 1.0 / ((hd as f64).sqrt() * ls.c);
        q.data.iter_mut().for_each(|e| *e *= scale);
        let g = &self.guesses[i].reciprocal;
        let per_head: Vec<(Matrix, OutOfRange)> = (0..h)
            .into_par_iter()
            .map(|head| {
                let kv = head / (h / hkv);
                let ctx = HeadCtx {
                    q: &q,
                    k: &k,
                    v: &v,
                    qo: head * hd,
                    ko: kv * hd,
                    hd,
                    decay: lw.decay.get(head).copied().unwrap_or(0.0),
                };
                power_softmax_head(&ctx, &self.spec, ls, g, mode, i)
            })
            .collect();
        let t = y.rows;
        let mut out = Matrix::zeros(t, h * hd);
        for (head, (o, c)) in per_head.iter().enumerate() {
            oor.merge_part(c);
            for r in 0..t {
                out.row_mut(r)[head * hd..(head + 1) * hd].copy_from_slice(o.row(r));
            }
        }
        lw.o.apply(&out)
    }

    fn mlp(
        &self,
        i: usize,
        lw: &LayerWeights,
        ls: &LayerSpec,
        y: &Matrix,
        mode: Mode,
        oor: &mut OutOfRange,
    ) -> Matrix {
        let act = &ls.activation;
        let iv = act.interval();
        let approx = mode.approximates(PolyOp::Activation);
        let mut f = |mut m: Matrix| {
            let site = oor.site(i, PolyOp::Activation);
            let mut rows = Vec::new();
            for (r, row) in m.data.chunks_mut(m.cols).enumerate() {
                let mut out = false;
                for e in row.iter_mut() {
                    out |= site.observe(*e, iv);
                    *e = if approx {
                        act.eval(*e)
                    } else {
                        act.function.exact(*e)
                    };
                }
                if out {
                    rows.push(r);
                }
            }
            rows.into_iter()
                .for_each(|r| oor.flag(r, i, PolyOp::Activation));
            m
        };
        match &lw.mlp {
            MlpWeights::Plain { up, down } => down.apply(&f(up.apply(y))),
            MlpWeights::Gated { gate, up, down } => {
                let mut a = f(gate.apply(y));
                let u = up.apply(y);
                a.data.iter_mut().zip(&u.data).for_each(|(x, y)| *x *= y);
                down.apply(&a)
            }
        }
    }
}

/// One head's inputs: q (already scaled by `1/(sqrt(hd) c)`), k, v and column offsets.
struct HeadCtx<'a> {
    q: &'a Matrix,
    k: &'a Matrix,
    v: &'a Matrix,
    qo: usize,
    ko: usize,
    hd: usize,
    /// The positional decay rate (0 without one).
    decay: f64,
}

/// Power-Softmax attention of one head in the length-agnostic form with a multiplicative
/// causal mask (times the positional decay `exp(-rate (i - j) / p)`, as the circuit's mask);
/// returns `(T, hd)` and the range tallies of `Scores` and `Reciprocal`.
fn power_softmax_head(
    h: &HeadCtx,
    spec: &PolySpec,
    ls: &LayerSpec,
    guess: &FirstGuess,
    mode: Mode,
    layer: usize,
) -> (Matrix, OutOfRange) {
    let t = h.q.rows;
    let mut oor = OutOfRange::default();
    let eps_c = spec.eps / ls.c.powi(spec.p as i32);
    let rec = ls.reciprocal;
    let mut out = Matrix::zeros(t, h.hd);
    let mut n = vec![0.0; t];
    for qi in 0..t {
        let qrow = &h.q.row(qi)[h.qo..h.qo + h.hd];
        for (j, nj) in n.iter_mut().enumerate() {
            let keep = if j <= qi {
                (-h.decay * (qi - j) as f64 / f64::from(spec.p)).exp()
            } else {
                0.0
            };
            let z = dot(qrow, &h.k.row(j)[h.ko..h.ko + h.hd]) * keep;
            if j <= qi {
                oor.site(layer, PolyOp::Scores).observe(z, (-1.0, 1.0));
            }
            *nj = int_pow(z, spec.p);
        }
        let inv_l = 1.0 / (qi + 1) as f64;
        let m = inv_l * n.iter().sum::<f64>();
        let den = eps_c + m;
        if oor
            .site(layer, PolyOp::Reciprocal)
            .observe(den, (rec.a, rec.b))
        {
            oor.flag(qi, layer, PolyOp::Reciprocal);
        }
        let r = if mode.approximates(PolyOp::Reciprocal) {
            rec.eval_with(guess, den)
        } else {
            1.0 / den
        };
        let o = out.row_mut(qi);
        for (j, nj) in n.iter().enumerate().take(qi + 1) {
            let w = nj * r * inv_l;
            let vrow = &h.v.row(j)[h.ko..h.ko + h.hd];
            o.iter_mut().zip(vrow).for_each(|(o, v)| *o += w * v);
        }
    }
    (out, oor)
}

/// `x^p` by repeated squaring (as the circuit computes it).
pub fn int_pow(x: f64, p: u32) -> f64 {
    let (mut result, mut base, mut e) = (1.0, x, p);
    let mut first = true;
    while e > 0 {
        if e & 1 == 1 {
            result = if first { base } else { result * base };
            first = false;
        }
        e >>= 1;
        if e > 0 {
            base *= base;
        }
    }
    result
}

/// `1/sqrt x` as the circuit computes it (`recipe` from `guess`) when `approx`, else exact.
fn inv_sqrt<'a>(
    approx: bool,
    recipe: &'a InvSqrtRecipe,
    guess: &'a FirstGuess,
) -> impl Fn(f64) -> f64 + 'a {
    move |v| {
        if approx {
            recipe.eval_with(guess, v)
        } else {
            1.0 / v.sqrt()
        }
    }
}

/// LayerNorm (`beta` present) or RMSNorm with `inv` as `1/sqrt(.)`, tallying its input at
/// `site` (`(layer, op)`).
fn norm(
    x: &Matrix,
    w: &NormWeights,
    inv: impl Fn(f64) -> f64,
    oor: &mut OutOfRange,
    site: (usize, PolyOp),
    interval: (f64, f64),
) -> Matrix {
    let rows: Vec<usize> = (0..x.rows).collect();
    norm_rows(x, w, inv, oor, site, interval, &rows)
}

/// [`norm`] whose row `r` is position `positions[r]` (for the tally).
fn norm_rows(
    x: &Matrix,
    w: &NormWeights,
    inv: impl Fn(f64) -> f64,
    oor: &mut OutOfRange,
    (layer, op): (usize, PolyOp),
    interval: (f64, f64),
    positions: &[usize],
) -> Matrix {
    let d = x.cols as f64;
    let mut y = x.clone();
    for r in 0..x.rows {
        let row = y.row_mut(r);
        let v = match &w.beta {
            Some(_) => {
                let mu = row.iter().sum::<f64>() / d;
                row.iter_mut().for_each(|e| *e -= mu);
                row.iter().map(|e| e * e).sum::<f64>() / d
            }
            None => row.iter().map(|e| e * e).sum::<f64>() / d,
        };
        let v = v + w.eps;
        if oor.site(layer, op).observe(v, interval) {
            oor.flag(positions[r], layer, op);
        }
        let rs = inv(v);
        for (c, e) in row.iter_mut().enumerate() {
            *e = *e * rs * w.gamma[c] + w.beta.as_ref().map_or(0.0, |b| b[c]);
        }
    }
    y
}

fn add(a: &Matrix, b: &Matrix) -> Matrix {
    let mut y = a.clone();
    y.data.iter_mut().zip(&b.data).for_each(|(x, y)| *x += y);
    y
}

/// RoPE as psf-model computes it (angles rounded to `f32` like Hugging Face), on the first
/// `rotary_dim` dimensions of each head, rotate-half layout.
#[derive(Debug, Clone)]
struct RopeTable {
    rotary_dim: usize,
    inv_freq: Vec<f32>,
}

impl RopeTable {
    fn new(rotary_dim: usize, theta: f64) -> Self {
        let inv_freq = (0..rotary_dim / 2)
            .map(|i| (1.0 / theta.powf(2.0 * i as f64 / rotary_dim as f64)) as f32)
            .collect();
        Self {
            rotary_dim,
            inv_freq,
        }
    }

    /// Rotates every head of `x` `(T, heads * hd)` at positions `0..T`.
    fn apply(&self, x: &mut Matrix, heads: usize, hd: usize) {
        let half = self.rotary_dim / 2;
        for pos in 0..x.rows {
            let cs: Vec<(f64, f64)> = self
                .inv_freq
                .iter()
                .map(|f| {
                    let a = (pos as f32 * f) as f64;
                    (a.cos() as f32 as f64, a.sin() as f32 as f64)
                })
                .collect();
            let row = x.row_mut(pos);
            for h in 0..heads {
                let r = &mut row[h * hd..h * hd + self.rotary_dim];
                for (i, &(c, s)) in cs.iter().enumerate() {
                    let (x1, x2) = (r[i], r[i + half]);
                    r[i] = x1 * c - x2 * s;
                    r[i + half] = x2 * c + x1 * s;
                }
            }
        }
    }
}
