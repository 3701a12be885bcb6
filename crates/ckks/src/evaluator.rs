//! The CKKS evaluator: arithmetic on ciphertexts with exact scale and level bookkeeping.

use psf_math::{Repr, RnsPoly};
use psf_rlwe::{Ciphertext, KeySwitcher, Plaintext, Scale};

use crate::counts::{OpCounter, Primitive};
use crate::encoder::scaled_integer;
use crate::keys::{galois_element_for_conjugation, galois_element_for_rotation};
use crate::{CkksError, CkksParameters, EvaluationKeys, Result};

/// Evaluates CKKS operations with a set of evaluation keys.
pub struct Evaluator {
    params: CkksParameters,
    switcher: KeySwitcher,
    keys: EvaluationKeys,
    counter: OpCounter,
}

fn check_scales(a: Scale, b: Scale) -> Result<()> {
    if a.matches(b) {
        Ok(())
    } else {
        Err(CkksError::ScaleMismatch {
            left: a.log2(),
            right: b.log2(),
        })
    }
}

impl Evaluator {
    /// Evaluator for `params` holding `keys`.
    pub fn new(params: &CkksParameters, keys: EvaluationKeys) -> Self {
        Self {
            params: params.clone(),
            switcher: KeySwitcher::new(params.ring()),
            keys,
            counter: OpCounter::default(),
        }
    }

    /// Replaces the evaluation keys.
    pub fn with_keys(mut self, keys: EvaluationKeys) -> Self {
        self.keys = keys;
        self
    }

    /// The parameters.
    pub fn params(&self) -> &CkksParameters {
        &self.params
    }

    /// The evaluation keys.
    pub fn keys(&self) -> &EvaluationKeys {
        &self.keys
    }

    /// The key switcher (for the double-hoisted products of [`crate::hoisted`]).
    pub(crate) fn switcher(&self) -> &KeySwitcher {
        &self.switcher
    }

    /// Counts of the primitives executed so far.
    pub fn counter(&self) -> &OpCounter {
        &self.counter
    }

    fn check(&self, ct: &Ciphertext) -> Result<()> {
        Ok(self.params.ring().check_same(ct.params())?)
    }

    /// Checks both operands and returns their common (lower) level; ring operations read only
    /// the first `level + 1` limbs of each input, so no copy is needed.
    fn common_level(&self, a: &Ciphertext, b: &Ciphertext) -> Result<usize> {
        self.check(a)?;
        self.check(b)?;
        Ok(a.level().min(b.level()))
    }

    /// `a + b` (at the lower of the two levels; scales must match).
    pub fn add_new(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        self.counter
            .record_at(Primitive::Add, a.level().min(b.level()));
        check_scales(a.meta.scale, b.meta.scale)?;
        self.check(a)?;
        self.check(b)?;
        // Copy only the operand of higher degree, truncated to the common level.
        let (hi, lo) = if a.degree() >= b.degree() {
            (a, b)
        } else {
            (b, a)
        };
        let level = a.level().min(b.level());
        let polys = hi.polys.iter().map(|p| p.prefix(level + 1)).collect();
        let mut x = Ciphertext::from_parts(self.params.ring(), polys, hi.meta);
        let q = self.params.ring().q();
        for (p, o) in x.polys.iter_mut().zip(&lo.polys) {
            q.add_assign(p, o);
        }
        Ok(x)
    }

    /// `a - b`.
    pub fn sub_new(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        self.counter
            .record_at(Primitive::Add, a.level().min(b.level()));
        check_scales(a.meta.scale, b.meta.scale)?;
        let level = self.common_level(a, b)?;
        let q = self.params.ring().q();
        let degree = a.degree().max(b.degree());
        let n = self.params.ring().n();
        let zero = RnsPoly::zero(n, level + 1, Repr::Eval);
        let polys = (0..=degree)
            .map(|i| {
                let x = a.polys.get(i).unwrap_or(&zero);
                let y = b.polys.get(i).unwrap_or(&zero);
                let mut out = RnsPoly::zero(n, level + 1, Repr::Eval);
                q.sub(x, y, &mut out);
                out
            })
            .collect();
        Ok(Ciphertext::from_parts(self.params.ring(), polys, a.meta))
    }

    /// `-a`.
    pub fn neg_new(&self, a: &Ciphertext) -> Result<Ciphertext> {
        self.counter.record_at(Primitive::Add, a.level());
        self.check(a)?;
        let mut x = a.clone();
        for p in &mut x.polys {
            self.params.ring().q().neg_assign(p);
        }
        Ok(x)
    }

    /// `ct + pt` (scales must match).
    pub fn add_plain_new(&self, ct: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext> {
        self.counter
            .record_at(Primitive::Add, ct.level().min(pt.level()));
        self.check(ct)?;
        check_scales(ct.meta.scale, pt.meta.scale)?;
        let level = ct.level().min(pt.level());
        let mut x = ct.clone();
        x.drop_to_level(level);
        self.params
            .ring()
            .q()
            .add_assign(&mut x.polys[0], &pt.poly.prefix(level + 1));
        Ok(x)
    }

    /// `ct * pt`; the scale is the product of the scales.
    pub fn mul_plain_new(&self, ct: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext> {
        self.counter
            .record_at(Primitive::PtMul, ct.level().min(pt.level()));
        self.check(ct)?;
        let level = ct.level().min(pt.level());
        let q = self.params.ring().q();
        let polys = ct
            .polys
            .iter()
            .map(|c| {
                let mut out = RnsPoly::zero(self.params.ring().n(), level + 1, Repr::Eval);
                q.mul(c, &pt.poly, &mut out);
                out
            })
            .collect();
        let mut meta = ct.meta;
        meta.scale = Scale(ct.meta.scale.0 * pt.meta.scale.0);
        Ok(Ciphertext::from_parts(self.params.ring(), polys, meta))
    }

    /// `ct * k` for an integer `k` (scale unchanged, no level used).
    pub fn mul_int_new(&self, ct: &Ciphertext, k: i64) -> Result<Ciphertext> {
        self.counter.record_at(Primitive::ConstMul, ct.level());
        self.check(ct)?;
        let mut x = ct.clone();
        let q = self.params.ring().q();
        let s = q.scalar_residues(k as i128);
        for c in &mut x.polys {
            q.mul_scalar_assign(c, &s);
        }
        Ok(x)
    }

    /// `ct * c` for a real constant encoded as `round(c * const_scale)`; the scale becomes
    /// `scale * const_scale`. With `const_scale = q_level` the next rescale restores the scale
    /// exactly (see [`Self::mul_const_then_rescale_new`]).
    pub fn mul_const_new(&self, ct: &Ciphertext, c: f64, const_scale: Scale) -> Result<Ciphertext> {
        self.counter.record_at(Primitive::ConstMul, ct.level());
        self.check(ct)?;
        let v = scaled_integer(c, const_scale)?;
        let mut x = ct.clone();
        let q = self.params.ring().q();
        let s = q.scalar_residues(v);
        for p in &mut x.polys {
            q.mul_scalar_assign(p, &s);
        }
        x.meta.scale = Scale(ct.meta.scale.0 * const_scale.0);
        Ok(x)
    }

    /// `ct * c` followed by a rescale, with the scale unchanged exactly (one level).
    pub fn mul_const_then_rescale_new(&self, ct: &Ciphertext, c: f64) -> Result<Ciphertext> {
        let ql = self.params.ring().q().modulus(ct.level()).value() as f64;
        let mut x = self.mul_const_new(ct, c, Scale(ql))?;
        self.rescale(&mut x)?;
        x.meta.scale = ct.meta.scale;
        Ok(x)
    }

    /// `ct + c` for a real constant (added to every slot).
    pub fn add_const_new(&self, ct: &Ciphertext, c: f64) -> Result<Ciphertext> {
        self.counter.record_at(Primitive::Add, ct.level());
        self.check(ct)?;
        let v = scaled_integer(c, ct.meta.scale)?;
        let mut x = ct.clone();
        let q = self.params.ring().q();
        q.add_scalar_assign(&mut x.polys[0], &q.scalar_residues(v));
        Ok(x)
    }

    /// The tensor product `a * b` (degree 2, not relinearized); scale is the product.
    pub fn mul_new(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        self.counter
            .record_at(Primitive::Mul, a.level().min(b.level()));
        let level = self.common_level(a, b)?;
        if a.degree() != 1 || b.degree() != 1 {
            return Err(CkksError::DegreeTooHigh {
                degree: a.degree().max(b.degree()),
            });
        }
        let q = self.params.ring().q();
        let n = self.params.ring().n();
        let zero = || RnsPoly::zero(n, level + 1, Repr::Eval);
        let (mut c0, mut c1, mut c2) = (zero(), zero(), zero());
        q.mul(&a.polys[0], &b.polys[0], &mut c0);
        q.mul(&a.polys[0], &b.polys[1], &mut c1);
        q.mul_add_assign(&mut c1, &a.polys[1], &b.polys[0]);
        q.mul(&a.polys[1], &b.polys[1], &mut c2);
        let mut meta = a.meta;
        meta.scale = Scale(a.meta.scale.0 * b.meta.scale.0);
        Ok(Ciphertext::from_parts(
            self.params.ring(),
            vec![c0, c1, c2],
            meta,
        ))
    }

    /// Relinearizes a degree-2 ciphertext back to degree 1.
    pub fn relinearize(&self, ct: &Ciphertext) -> Result<Ciphertext> {
        self.check(ct)?;
        match ct.degree() {
            1 => return Ok(ct.clone()),
            2 => {}
            d => return Err(CkksError::DegreeTooHigh { degree: d }),
        }
        let rlk = self
            .keys
            .relin
            .as_ref()
            .ok_or_else(|| CkksError::MissingKey("relinearization key".into()))?;
        self.counter.record_at(Primitive::Relinearize, ct.level());
        let (mut d0, mut d1) = self.switcher.switch(&ct.polys[2], &rlk.0)?;
        let q = self.params.ring().q();
        q.add_assign(&mut d0, &ct.polys[0]);
        q.add_assign(&mut d1, &ct.polys[1]);
        Ok(Ciphertext::from_parts(
            self.params.ring(),
            vec![d0, d1],
            ct.meta,
        ))
    }

    /// `a * b` relinearized.
    pub fn mul_relin_new(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        self.relinearize(&self.mul_new(a, b)?)
    }

    /// Divides by the last prime and drops it; the scale is divided by that prime exactly.
    pub fn rescale(&self, ct: &mut Ciphertext) -> Result<()> {
        self.counter.record_at(Primitive::Rescale, ct.level());
        self.check(ct)?;
        let level = ct.level();
        if level == 0 {
            return Err(CkksError::CannotRescale { level });
        }
        let q = self.params.ring().q();
        let ql = q.modulus(level).value() as f64;
        let polys = std::mem::take(&mut ct.polys);
        ct.polys = rayon_map(polys, |mut p| {
            q.rescale_eval(&mut p);
            p
        });
        ct.meta.scale = Scale(ct.meta.scale.0 / ql);
        Ok(())
    }

    /// A rescaled copy.
    pub fn rescale_new(&self, ct: &Ciphertext) -> Result<Ciphertext> {
        let mut x = ct.clone();
        self.rescale(&mut x)?;
        Ok(x)
    }

    /// A copy with `levels` limbs dropped (no rescale).
    pub fn drop_level_new(&self, ct: &Ciphertext, levels: usize) -> Result<Ciphertext> {
        self.counter.record_at(Primitive::DropLevel, ct.level());
        self.check(ct)?;
        if levels > ct.level() {
            return Err(psf_rlwe::RlweError::InvalidLevel {
                level: ct.level(),
                min: levels,
                max: self.params.ring().max_level(),
            }
            .into());
        }
        let mut x = ct.clone();
        x.drop_to_level(ct.level() - levels);
        Ok(x)
    }

    fn galois_key(&self, g: usize, what: impl FnOnce() -> String) -> Result<&psf_rlwe::GaloisKey> {
        self.keys
            .galois
            .get(&g)
            .ok_or_else(|| CkksError::MissingKey(what()))
    }

    /// Rotates the slots left by `k` (negative: right).
    pub fn rotate_new(&self, ct: &Ciphertext, k: i64) -> Result<Ciphertext> {
        self.counter.record_at(Primitive::Rotate, ct.level());
        self.check(ct)?;
        let g = galois_element_for_rotation(k, self.params.ring().log_n());
        let key = self.galois_key(g, || format!("rotation by {k} (Galois element {g})"))?;
        Ok(self.switcher.automorphism(ct, key)?)
    }

    /// Rotations of one ciphertext by each of `ks`, sharing one decomposition (hoisting).
    pub fn rotate_hoisted_new(&self, ct: &Ciphertext, ks: &[i64]) -> Result<Vec<Ciphertext>> {
        self.check(ct)?;
        if ct.degree() != 1 {
            return Err(CkksError::DegreeTooHigh {
                degree: ct.degree(),
            });
        }
        let log_n = self.params.ring().log_n();
        let keys = ks
            .iter()
            .map(|&k| {
                let g = galois_element_for_rotation(k, log_n);
                self.galois_key(g, || format!("rotation by {k} (Galois element {g})"))
            })
            .collect::<Result<Vec<_>>>()?;
        for key in &keys {
            check_key_level(key, ct.level())?;
        }
        let dec = self.switcher.decompose(&ct.polys[1]);
        self.counter.record_at(Primitive::Decompose, ct.level());
        self.counter
            .record_n_at(Primitive::RotateHoisted, ct.level(), keys.len() as u64);
        keys.into_iter()
            .map(|key| Ok(self.switcher.automorphism_hoisted(ct, &dec, key)?))
            .collect()
    }

    /// Complex conjugation of every slot.
    pub fn conjugate_new(&self, ct: &Ciphertext) -> Result<Ciphertext> {
        self.counter.record_at(Primitive::Rotate, ct.level());
        self.check(ct)?;
        let g = galois_element_for_conjugation(self.params.ring().log_n());
        let key = self.galois_key(g, || "conjugation".into())?;
        Ok(self.switcher.automorphism(ct, key)?)
    }
}

/// Fails with [`psf_rlwe::RlweError::KeyLevelTooLow`] unless `key` switches at `level` (a
/// check made before a decomposition is paid for).
pub(crate) fn check_key_level(key: &psf_rlwe::GaloisKey, level: usize) -> Result<()> {
    let key_level = key.key.max_level();
    if level > key_level {
        return Err(psf_rlwe::RlweError::KeyLevelTooLow { level, key_level }.into());
    }
    Ok(())
}

fn rayon_map(polys: Vec<RnsPoly>, f: impl Fn(RnsPoly) -> RnsPoly + Sync + Send) -> Vec<RnsPoly> {
    use rayon::prelude::*;
    polys.into_par_iter().map(f).collect()
}
