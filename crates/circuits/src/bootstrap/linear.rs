//! The homomorphic DFT stages: one [`DiagMatrix`] per level, its diagonals split for a
//! baby-step giant-step product, encoded once (complex slots, scale = the prime the stage
//! consumes) and evaluated with [`psf_ckks::Evaluator::bsgs_double_hoisted`].

use num_complex::Complex64;
use psf_ckks::{Ciphertext, CkksParameters, Encoder, Evaluator, Scale};
use psf_ckks::{ExtendedPlaintext, GiantStep};

use super::dft::DiagMatrix;
use crate::Result;

/// The BSGS split of a matrix's rotations: `r = step * (g * baby + j)` with `0 <= j < baby`.
#[derive(Debug, Clone, PartialEq)]
pub struct BsgsPlan {
    /// Baby rotations `step * j`.
    pub baby: Vec<i64>,
    /// Per giant rotation `step * g * baby`, the `(baby index, rotation r)` it gathers.
    pub giant: Vec<(i64, Vec<(usize, i64)>)>,
}

impl BsgsPlan {
    /// Splits signed rotations (all multiples of their gcd) with about `sqrt` many of each.
    pub fn new(rotations: &[i64]) -> Self {
        let step = rotations.iter().fold(0i64, |g, &r| gcd(g, r.abs())).max(1);
        let (lo, hi) = rotations.iter().fold((i64::MAX, i64::MIN), |(lo, hi), &r| {
            (lo.min(r / step), hi.max(r / step))
        });
        let span = (hi - lo + 1).max(1) as u64;
        let baby_n = 1i64 << span.isqrt().max(1).next_power_of_two().trailing_zeros();
        let mut baby: Vec<i64> = Vec::new();
        let mut giant: Vec<(i64, Vec<(usize, i64)>)> = Vec::new();
        for &r in rotations {
            let s = r / step;
            let (g, j) = (
                s.div_euclid(baby_n) * baby_n * step,
                s.rem_euclid(baby_n) * step,
            );
            let bi = baby.iter().position(|&b| b == j).unwrap_or_else(|| {
                baby.push(j);
                baby.len() - 1
            });
            match giant.iter_mut().find(|(gr, _)| *gr == g) {
                Some((_, terms)) => terms.push((bi, r)),
                None => giant.push((g, vec![(bi, r)])),
            }
        }
        Self { baby, giant }
    }

    /// Every rotation the plan performs (with zeros), for key generation.
    pub fn rotations(&self) -> impl Iterator<Item = i64> + '_ {
        self.baby
            .iter()
            .copied()
            .chain(self.giant.iter().map(|g| g.0))
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// One encoded DFT stage at a fixed level.
pub struct DftStage {
    plan: BsgsPlan,
    /// Plaintexts in the order of `plan.giant`'s terms.
    pts: Vec<Vec<ExtendedPlaintext>>,
    level: usize,
}

impl DftStage {
    /// Encodes `m` (acting on `m.size()` slots) for an input at `level`, with plaintext scale
    /// `q_level` (so a rescale after the product keeps the input's scale).
    pub fn encode(
        params: &CkksParameters,
        encoder: &Encoder,
        eval: &Evaluator,
        m: &DiagMatrix,
        level: usize,
    ) -> Result<Self> {
        let size = m.size();
        let log_slots = size.trailing_zeros();
        let scale = Scale(params.ring().q().modulus(level).value() as f64);
        let plan = BsgsPlan::new(&m.rotations());
        let pts = plan
            .giant
            .iter()
            .map(|(g, terms)| {
                terms
                    .iter()
                    .map(|&(_, r)| {
                        let d = &m.diagonals()[&(r.rem_euclid(size as i64) as usize)];
                        // rot_g(pt * rot_j(v)) = d * rot_(g+j)(v) for pt = d rotated right by g.
                        let shift = g.rem_euclid(size as i64) as usize;
                        let rotated: Vec<Complex64> =
                            (0..size).map(|x| d[(x + size - shift) % size]).collect();
                        let pt = encoder.encode_complex(&rotated, log_slots, level, scale)?;
                        Ok(eval.extend_plaintext(&pt)?)
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { plan, pts, level })
    }

    /// The level the stage expects its input at.
    pub fn level(&self) -> usize {
        self.level
    }

    /// Bytes of the encoded diagonals.
    pub fn size_bytes(&self) -> usize {
        self.pts
            .iter()
            .flatten()
            .map(|p| 8 * p.poly.data().len())
            .sum()
    }

    /// The BSGS plan.
    pub fn plan(&self) -> &BsgsPlan {
        &self.plan
    }

    /// `M ct`, rescaled: one level, scale unchanged.
    pub fn apply(&self, eval: &Evaluator, ct: &Ciphertext) -> Result<Ciphertext> {
        let giant: Vec<GiantStep<'_>> = self
            .plan
            .giant
            .iter()
            .zip(&self.pts)
            .map(|((g, terms), pts)| GiantStep {
                rotation: *g,
                terms: terms.iter().zip(pts).map(|(&(i, _), p)| (i, p)).collect(),
            })
            .collect();
        let mut out = eval.bsgs_double_hoisted(ct, &self.plan.baby, &giant)?;
        eval.rescale(&mut out)?;
        out.meta.scale = ct.meta.scale;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_covers_every_rotation_once() {
        let rots: Vec<i64> = (-31..=31).map(|s| 4 * s).collect();
        let plan = BsgsPlan::new(&rots);
        assert_eq!(plan.baby.len(), 8);
        let baby = &plan.baby;
        let mut covered: Vec<i64> = plan
            .giant
            .iter()
            .flat_map(|(g, t)| t.iter().map(move |&(i, r)| (g + baby[i], r)))
            .map(|(sum, r)| {
                assert_eq!(sum, r);
                r
            })
            .collect();
        covered.sort_unstable();
        assert_eq!(covered, rots);
        assert!(plan.giant.len() <= 9);
    }
}
