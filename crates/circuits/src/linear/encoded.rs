//! Transforms with their diagonals encoded, evaluated on any [`Backend`] (hoisted baby steps)
//! or, on ciphertexts, double hoisted.
//!
//! Both paths record the same primitive counts for the same transform (see
//! [`psf_ckks::Evaluator::bsgs_double_hoisted`]): `DropLevel` 1 if the input is above the
//! encoding level, `Decompose` 1 and `RotateHoisted` per non-zero baby rotation, `PtMul` per
//! diagonal, `Add` `diagonals - 1`, `Rotate` per non-zero giant rotation, `Rescale` 1. So the
//! simulator, which runs the generic path, predicts the double-hoisted path's counts exactly.

use psf_ckks::{Ciphertext, ExtendedPlaintext, GiantStep};

use super::LinearTransform;
use crate::{Backend, CircuitError, HeBackend, Result};

/// A [`LinearTransform`] with its pre-rotated diagonals encoded at one level.
pub struct EncodedTransform<B: Backend> {
    transform: LinearTransform,
    level: usize,
    /// Encoded diagonals, in the order of the plan's giant-step terms.
    pub(crate) diagonals: Vec<Vec<B::Pt>>,
}

/// The scale of diagonals encoded at `level`: the prime the product's rescale divides by, so
/// that the output scale equals the input scale exactly.
pub(crate) fn diagonal_scale<B: Backend>(b: &B, level: usize) -> Result<f64> {
    if level == 0 {
        return Err(CircuitError::NotEnoughLevels { needed: 1, level });
    }
    Ok(b.prime(level) as f64)
}

/// Drops `ct` to `level` if it is above; the transform's input must not be below.
pub(crate) fn at_level<B: Backend>(b: &B, ct: &B::Ct, level: usize) -> Result<Option<B::Ct>> {
    match b.level(ct) {
        l if l == level => Ok(None),
        l if l > level => Ok(Some(b.drop_to_level(ct, level)?)),
        l => Err(CircuitError::NotEnoughLevels {
            needed: level,
            level: l,
        }),
    }
}

impl LinearTransform {
    /// Encodes the pre-rotated diagonals at `level` (the input level; the output is at
    /// `level - 1`) with scale `q_level`.
    ///
    /// # Errors
    /// `level` 0, or an encoding error.
    pub fn encode<B: Backend>(&self, b: &B, level: usize) -> Result<EncodedTransform<B>> {
        let scale = diagonal_scale(b, level)?;
        let diagonals = self
            .plan()
            .giant
            .iter()
            .map(|(g, terms)| {
                terms
                    .iter()
                    .map(|&(_, r)| b.encode(&self.prerotated(r, *g), level, scale))
                    .collect()
            })
            .collect::<Result<_>>()?;
        Ok(EncodedTransform {
            transform: self.clone(),
            level,
            diagonals,
        })
    }

    /// Encodes the diagonals over `Q_level ++ P` for the double-hoisted path.
    ///
    /// # Errors
    /// As [`Self::encode`].
    pub fn encode_double_hoisted(
        &self,
        b: &HeBackend<'_>,
        level: usize,
    ) -> Result<DoubleHoistedTransform> {
        let enc = self.encode(b, level)?;
        let diagonals = enc
            .diagonals
            .iter()
            .map(|step| {
                step.iter()
                    .map(|pt| Ok(b.evaluator().extend_plaintext(pt)?))
                    .collect()
            })
            .collect::<Result<_>>()?;
        Ok(DoubleHoistedTransform {
            transform: enc.transform,
            level,
            diagonals,
        })
    }
}

impl<B: Backend> EncodedTransform<B> {
    /// The transform.
    pub fn transform(&self) -> &LinearTransform {
        &self.transform
    }

    /// The input level the diagonals are encoded for.
    pub fn level(&self) -> usize {
        self.level
    }

    /// `M x`, rescaled (output level `level - 1`, output scale = input scale).
    ///
    /// # Errors
    /// An input below the encoding level, a missing rotation key, or a backend error.
    pub fn apply(&self, b: &B, ct: &B::Ct) -> Result<B::Ct> {
        let scale = b.scale(ct);
        let dropped = at_level(b, ct, self.level)?;
        let ct = dropped.as_ref().unwrap_or(ct);
        let plan = self.transform.plan();
        let nonzero = plan.baby_rotations();
        let rotated = if nonzero.is_empty() {
            Vec::new()
        } else {
            b.rotate_hoisted(ct, &nonzero)?
        };
        let offset = usize::from(plan.baby.first() == Some(&0));
        let baby = |i: usize| {
            if plan.baby[i] == 0 {
                ct
            } else {
                &rotated[i - offset]
            }
        };
        let mut total: Option<B::Ct> = None;
        for ((g, terms), pts) in plan.giant.iter().zip(&self.diagonals) {
            let mut inner: Option<B::Ct> = None;
            for (&(i, _), pt) in terms.iter().zip(pts) {
                let prod = b.mul_plain(baby(i), pt)?;
                inner = Some(match inner {
                    None => prod,
                    Some(acc) => b.add(&acc, &prod)?,
                });
            }
            let Some(mut inner) = inner else { continue };
            if *g != 0 {
                inner = b.rotate(&inner, *g)?;
            }
            total = Some(match total {
                None => inner,
                Some(acc) => b.add(&acc, &inner)?,
            });
        }
        let total = total.ok_or_else(|| CircuitError::Invalid("empty transform".into()))?;
        Ok(b.with_scale(&b.rescale(&total)?, scale))
    }
}

/// A [`LinearTransform`] with diagonals over `Q_level ++ P`, evaluated double hoisted on
/// ciphertexts (see [`psf_ckks::Evaluator::bsgs_double_hoisted`]).
pub struct DoubleHoistedTransform {
    transform: LinearTransform,
    level: usize,
    pub(crate) diagonals: Vec<Vec<ExtendedPlaintext>>,
}

impl DoubleHoistedTransform {
    /// The transform.
    pub fn transform(&self) -> &LinearTransform {
        &self.transform
    }

    /// `M x`, rescaled; same result, levels, scale and counts as [`EncodedTransform::apply`].
    ///
    /// # Errors
    /// As [`EncodedTransform::apply`].
    pub fn apply(&self, b: &HeBackend<'_>, ct: &Ciphertext) -> Result<Ciphertext> {
        let scale = b.scale(ct);
        let dropped = at_level(b, ct, self.level)?;
        let ct = dropped.as_ref().unwrap_or(ct);
        let plan = self.transform.plan();
        let giant: Vec<GiantStep<'_>> = plan
            .giant
            .iter()
            .zip(&self.diagonals)
            .map(|((g, terms), pts)| GiantStep {
                rotation: *g,
                terms: terms.iter().zip(pts).map(|(&(i, _), p)| (i, p)).collect(),
            })
            .collect();
        let out = b.evaluator().bsgs_double_hoisted(ct, &plan.baby, &giant)?;
        Ok(b.with_scale(&b.rescale(&out)?, scale))
    }
}
