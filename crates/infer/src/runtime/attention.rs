//! Power-Softmax attention on the token-interleaved layout, diagonal by diagonal.
//!
//! For a key offset `r` (key `t - r` of query `t`), `k` rotated right by `r` token slots lines
//! every key up with its query: `s_r(t) = sum_{f in head} q_f(t) k_f(t - r)` is one
//! ciphertext product and a feature sum per head. The multiplicative mask
//! `M_r(t) = [pos(t) >= r] * L_t^(-1/p)` (`L_t = pos(t) + 1`) is applied before the power,
//! so `(s_r M_r)^p = [visible] s_r^p / L_t`: the length-agnostic mean is then the plain sum
//! over `r`, and the reciprocal `R` of it runs once per score ciphertext. The weights
//! `w_r = (s_r M_r)^p R` are never formed: `R` does not depend on `r`, so
//! `out = R * sum_r (s_r M_r)^p * (v rotated by r)` takes one pass over the offsets and one
//! product by `R` per output ciphertext instead of one per offset and score ciphertext.
//! Wrapped-around slots of the rotations only reach masked (invisible) keys.
//!
//! Head sums: with `d_ct >= head_dim` features per ciphertext a head is `head_dim`
//! consecutive features of one ciphertext: rotate-and-sum leaves the sum at the head's first
//! feature, the mask also keeps only that feature, and a reverse rotate-and-sum copies the
//! weight to the whole head. With `d_ct < head_dim` a head spans `head_dim / d_ct`
//! ciphertexts: they are added and one full rotate-and-sum leaves the sum everywhere.

use psf_circuits::inverse::Reciprocal;
use psf_circuits::{Backend, Circuit};

use super::engine::{Engine, power_depth};
use crate::Result;
use crate::compile::weights::Folded;
use crate::model::Attention;
use crate::report::Component;

/// Rotations computed together (hoisted) when lining keys and values up.
const ROTATION_CHUNK: usize = 16;

/// The projections of one attention block, folded.
#[derive(Debug, Clone)]
pub struct AttentionWeights {
    /// Queries (norm, scale `1/(sqrt(dh) c)` and RoPE folded in).
    pub q: Folded,
    /// Keys (norm and RoPE folded in, heads expanded).
    pub k: Folded,
    /// Values (norm folded in, heads expanded).
    pub v: Folded,
    /// Output projection.
    pub o: Folded,
}

/// Levels from the normalized input to the attention output.
pub(crate) fn attention_depth(p: u32) -> usize {
    // projection, q k product, mask, power, weight product, a v product, output projection
    1 + 1 + 1 + power_depth(p) + 1 + 1 + 1
}

/// The denominator of padding slots (unused features and tokens): inside the reciprocal's
/// interval, near its low end. The denominators are bootstrapped with a bound set by their
/// largest magnitude, so padding at the interval's middle (about 1 for `[0.0015, 2]`) would
/// cost the real, much smaller denominators bits of precision (measured: 3.3e-3 instead of
/// 1e-6 on the logits of a layout with unused features).
pub(crate) fn den_padding(attn: &Attention) -> f64 {
    let (a, b) = (attn.reciprocal.a, attn.reciprocal.b);
    a + (b - a) / 64.0
}

/// Levels the reciprocal's input needs (its depth plus the product with the weighted values
/// and the output projection).
pub(crate) fn reciprocal_need(recip: &Reciprocal) -> usize {
    recip.depth() + 2
}

impl<B: Backend> Engine<'_, B> {
    /// Attention of `y` (normalized, at least [`attention_depth`] levels); `site` names the
    /// refresh point of the denominator.
    pub(crate) fn attention(
        &self,
        site: &str,
        attn: &Attention,
        w: &AttentionWeights,
        y: &[B::Ct],
    ) -> Result<Vec<B::Ct>> {
        let q = self.linear(y, &w.q)?;
        let k = self.linear(y, &w.k)?;
        let v = self.linear(y, &w.v)?;
        let groups = self.score_groups(attn, q.len());
        // One pass over the key offsets: each numerator goes into its row's denominator and,
        // weighted, into the output; the reciprocal multiplies the output once at the end.
        let mut den: Vec<Option<B::Ct>> = vec![None; groups.count];
        let mut out: Vec<Option<B::Ct>> = vec![None; v.len()];
        for chunk in self.offsets_in_chunks() {
            let keys = self.rotated(&k, &chunk)?;
            let values = self.rotated(&v, &chunk)?;
            for (j, &r) in chunk.iter().enumerate() {
                let keys: Vec<B::Ct> = keys.iter().map(|c| c[j].clone()).collect();
                let numer = self.numerators(attn, &groups, &q, &keys, r)?;
                self.enter(Component::PowerSoftmax);
                for (acc, n) in den.iter_mut().zip(&numer) {
                    *acc = Some(self.accumulate(acc.take(), n.clone())?);
                }
                self.enter(Component::CtMatmul);
                for (c, acc) in out.iter_mut().enumerate() {
                    let t = self.mul(&numer[groups.of(c)], &values[c][j])?;
                    *acc = Some(self.accumulate(acc.take(), t)?);
                }
            }
        }
        self.enter(Component::PowerSoftmax);
        let recip = Reciprocal::from_recipe(&attn.reciprocal)?.with_output_scale(self.scale);
        let den = self.denominators(attn, den.into_iter().flatten().collect())?;
        let den = self.ensure(&format!("{site}.den"), den, reciprocal_need(&recip))?;
        let inv = den
            .iter()
            .map(|d| Ok(recip.evaluate(&self.be, d)?))
            .collect::<Result<Vec<_>>>()?;
        let out = out
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(c, o)| self.mul(&o, &inv[groups.of(c)]))
            .collect::<Result<Vec<_>>>()?;
        self.linear(&out, &w.o)
    }

    /// `acc + x` (`x` when there is no `acc` yet).
    fn accumulate(&self, acc: Option<B::Ct>, x: B::Ct) -> Result<B::Ct> {
        Ok(match acc {
            None => x,
            Some(a) => self.be.add(&a, &x)?,
        })
    }

    /// Key offsets `0 .. seq_len` in chunks.
    fn offsets_in_chunks(&self) -> Vec<Vec<usize>> {
        let all: Vec<usize> = (0..self.layout.seq_len).collect();
        all.chunks(ROTATION_CHUNK).map(<[usize]>::to_vec).collect()
    }

    /// Each ciphertext of `x` rotated right by each of `offsets` token slots (hoisted).
    fn rotated(&self, x: &[B::Ct], offsets: &[usize]) -> Result<Vec<Vec<B::Ct>>> {
        self.enter(Component::CtMatmul);
        let ks: Vec<i64> = offsets.iter().map(|&r| -(r as i64)).collect();
        x.iter()
            .map(|c| {
                let nonzero: Vec<i64> = ks.iter().copied().filter(|&k| k != 0).collect();
                let mut rots = if nonzero.is_empty() {
                    Vec::new()
                } else {
                    self.be.rotate_hoisted(c, &nonzero)?
                }
                .into_iter();
                Ok(ks
                    .iter()
                    .map(|&k| {
                        if k == 0 {
                            c.clone()
                        } else {
                            rots.next().expect("one per offset")
                        }
                    })
                    .collect())
            })
            .collect()
    }

    /// `(s_r M_r)^p` for every score ciphertext.
    fn numerators(
        &self,
        attn: &Attention,
        groups: &ScoreGroups,
        q: &[B::Ct],
        keys: &[B::Ct],
        r: usize,
    ) -> Result<Vec<B::Ct>> {
        self.enter(Component::CtMatmul);
        let prods = q
            .iter()
            .zip(keys)
            .map(|(a, b)| self.mul(a, b))
            .collect::<Result<Vec<_>>>()?;
        let (d, n) = (self.layout.features_per_ct(), self.layout.tokens());
        let dh = attn.head_dim;
        (0..groups.count)
            .map(|i| {
                self.enter(Component::CtMatmul);
                let summed = if groups.per_head {
                    let members = &prods[i * groups.span..(i + 1) * groups.span];
                    self.rot_sum(&self.sum(members)?, n, d)?
                } else {
                    self.rot_sum(&prods[i], n, dh)?
                };
                self.enter(Component::PowerSoftmax);
                let mask = self.score_mask(attn, groups, i, r);
                let z = self.mul_pt(&summed, &mask)?;
                let numer = self.power(&z, attn.p)?;
                // The power keeps the zeros off the head starts, so the copy to the whole head
                // can come after it, at a lower level (cheaper rotations).
                if groups.per_head {
                    Ok(numer)
                } else {
                    self.replicate(&numer, n, dh)
                }
            })
            .collect()
    }

    /// `M_r` of score ciphertext `i`: visibility times `L_t^(-1/p)` (times the head's
    /// positional decay at distance `r`), at head starts when heads share a ciphertext.
    fn score_mask(&self, attn: &Attention, groups: &ScoreGroups, i: usize, r: usize) -> Vec<f64> {
        let d = self.layout.features_per_ct();
        let width = attn.heads * attn.head_dim;
        let inv_p = 1.0 / f64::from(attn.p);
        self.layout.slot_vector(|f, t| {
            let head_start = groups.per_head || (f % attn.head_dim == 0 && i * d + f < width);
            let head = if groups.per_head {
                i
            } else {
                (i * d + f) / attn.head_dim
            };
            match self.layout.position(t) {
                Some(pos) if pos >= r && head_start => {
                    ((pos + 1) as f64).powf(-inv_p) * attn.decay_factor(head, r)
                }
                _ => 0.0,
            }
        })
    }

    /// `eps / c^p + sum_r numer_r` from the sums over `r`, with padding slots set inside the
    /// reciprocal's interval ([`den_padding`]).
    fn denominators(&self, attn: &Attention, sums: Vec<B::Ct>) -> Result<Vec<B::Ct>> {
        let eps = attn.eps / attn.c.powi(attn.p as i32);
        let mid = den_padding(attn);
        let d = self.layout.features_per_ct();
        let width = attn.heads * attn.head_dim;
        let per_head = d < attn.head_dim;
        sums.iter()
            .enumerate()
            .map(|(i, m)| {
                let pad = self.layout.slot_vector(|f, t| {
                    let real = self.layout.position(t).is_some() && (per_head || i * d + f < width);
                    if real { eps } else { mid }
                });
                self.add_pt(m, &pad)
            })
            .collect()
    }

    /// `z^p` by repeated squaring.
    pub(crate) fn power(&self, z: &B::Ct, p: u32) -> Result<B::Ct> {
        let mut sq = z.clone();
        let mut acc: Option<B::Ct> = None;
        let mut e = p;
        loop {
            if e & 1 == 1 {
                acc = Some(match acc {
                    None => sq.clone(),
                    Some(a) => self.mul(&a, &sq)?,
                });
            }
            e >>= 1;
            if e == 0 {
                break;
            }
            sq = self.mul(&sq, &sq)?;
        }
        Ok(acc.expect("p > 0"))
    }

    fn score_groups(&self, attn: &Attention, q_cts: usize) -> ScoreGroups {
        let d = self.layout.features_per_ct();
        if d < attn.head_dim {
            let span = attn.head_dim / d;
            ScoreGroups {
                per_head: true,
                span,
                count: q_cts / span,
            }
        } else {
            ScoreGroups {
                per_head: false,
                span: 1,
                count: q_cts,
            }
        }
    }
}

/// How query ciphertexts map to score ciphertexts.
struct ScoreGroups {
    /// A head spans `span` ciphertexts (one score ciphertext per head).
    per_head: bool,
    span: usize,
    count: usize,
}

impl ScoreGroups {
    /// The score ciphertext weighting value ciphertext `c`.
    fn of(&self, c: usize) -> usize {
        c / self.span
    }
}
