//! Double-hoisted baby-step giant-step products `sum_j rot_{r_j}(sum_i pt_ij * rot_{b_i}(ct))`
//! (Bossuat et al. 2021, Lattigo's `MultiplyByDiagMatrix`).
//!
//! The input is decomposed once; every baby-step rotation stays over `Q_l ++ P` (no ModDown);
//! plaintexts, extended exactly to `Q_l ++ P`, multiply them there and the inner sums
//! accumulate there; each giant step pays one ModDown of its inner sum's `c_1`, one
//! decomposition and one inner product, and stays extended too; a single final ModDown
//! divides everything by `P`.
//!
//! **Counts.** The [`crate::OpCounter`] records what the plain hoisted path records for the
//! same product, so that a simulation of the plain path predicts these counts exactly:
//! `Decompose` 1 (when some baby rotation is non-zero), `RotateHoisted` one per non-zero baby
//! rotation, `PtMul` one per term, `Add` `terms - giant steps` for the inner sums plus
//! `giant steps - 1` for the outer sum, `Rotate` one per non-zero giant rotation. Here a
//! `RotateHoisted` is a lazy hoisted key switch (no ModDown) and a `Rotate` a key switch of an
//! extended ciphertext (ModDown of `c_1`, decomposition, inner product).

use psf_math::RnsPoly;
use psf_rlwe::{Ciphertext, ExtendedCiphertext, MetaData, Plaintext};

use crate::counts::Primitive;
use crate::keys::galois_element_for_rotation;
use crate::{CkksError, Evaluator, Result};

/// A plaintext over `Q_level ++ P` (evaluation form) for products with extended ciphertexts.
#[derive(Clone, Debug)]
pub struct ExtendedPlaintext {
    /// Level of the `Q` part.
    pub level: usize,
    /// The polynomial over `Q_level ++ P`.
    pub poly: RnsPoly,
    /// Scale and slot count.
    pub meta: MetaData,
}

/// One giant step: the rotation applied to the inner sum `sum (pt * rot_{baby[i]}(ct))`.
#[derive(Clone, Debug)]
pub struct GiantStep<'a> {
    /// Left rotation of the inner sum (0: none).
    pub rotation: i64,
    /// `(index into the baby rotations, plaintext)` pairs.
    pub terms: Vec<(usize, &'a ExtendedPlaintext)>,
}

/// One input of a block product: a ciphertext and the baby rotations taken of it.
#[derive(Clone, Copy, Debug)]
pub struct BabySteps<'a> {
    /// The input.
    pub ct: &'a Ciphertext,
    /// Its baby rotations (0: the input itself).
    pub rotations: &'a [i64],
}

/// A giant step of a block product: `(input, index into its baby rotations, plaintext)` terms.
#[derive(Clone, Debug)]
pub struct BlockGiantStep<'a> {
    /// Left rotation of the inner sum (0: none).
    pub rotation: i64,
    /// `(input, baby index, plaintext)` terms.
    pub terms: Vec<(usize, usize, &'a ExtendedPlaintext)>,
}

impl Evaluator {
    /// Extends `pt` exactly to `Q_l ++ P` (its coefficients are below `Q_l / 2`).
    pub fn extend_plaintext(&self, pt: &Plaintext) -> Result<ExtendedPlaintext> {
        Ok(ExtendedPlaintext {
            level: pt.level(),
            poly: self.switcher().extend_exact(&pt.poly)?,
            meta: pt.meta,
        })
    }

    /// `sum_j rot_{r_j}(sum_(i, pt) pt * rot_{baby[i]}(ct))`, double hoisted, not rescaled.
    /// Every plaintext must be at `ct`'s level and have the same scale; the result's scale is
    /// `ct`'s times theirs. See the module documentation for the counts recorded.
    pub fn bsgs_double_hoisted(
        &self,
        ct: &Ciphertext,
        baby: &[i64],
        giant: &[GiantStep<'_>],
    ) -> Result<Ciphertext> {
        let input = [BabySteps {
            ct,
            rotations: baby,
        }];
        let steps: Vec<BlockGiantStep<'_>> = giant
            .iter()
            .map(|g| BlockGiantStep {
                rotation: g.rotation,
                terms: g.terms.iter().map(|&(i, p)| (0, i, p)).collect(),
            })
            .collect();
        let mut out = self.bsgs_double_hoisted_blocks(&input, &[steps])?;
        Ok(out.remove(0))
    }

    /// Block products `y_o = sum_j rot_{r_oj}(sum_(k, i, pt) pt * rot_{baby_k[i]}(x_k))`, double
    /// hoisted: each input is decomposed once and its baby rotations (kept over `Q_l ++ P`)
    /// serve every output. All inputs share one level and scale, as do all plaintexts. Counts
    /// as the plain path: per input `Decompose` 1 and `RotateHoisted` per non-zero baby
    /// rotation; per output and giant step `PtMul` per term, `Add` for the sums, `Rotate` if
    /// the rotation is non-zero.
    pub fn bsgs_double_hoisted_blocks(
        &self,
        inputs: &[BabySteps<'_>],
        outputs: &[Vec<BlockGiantStep<'_>>],
    ) -> Result<Vec<Ciphertext>> {
        let first = inputs
            .first()
            .ok_or_else(|| CkksError::InvalidArgument("no inputs".into()))?
            .ct;
        for x in inputs {
            self.params().ring().check_same(x.ct.params())?;
            if x.ct.level() != first.level() || !x.ct.meta.scale.matches(first.meta.scale) {
                return Err(CkksError::InvalidArgument(
                    "block inputs at different levels or scales".into(),
                ));
            }
        }
        let level = first.level();
        let babies: Vec<usize> = inputs.iter().map(|x| x.rotations.len()).collect();
        let rotated = inputs
            .iter()
            .map(|x| self.baby_steps(x.ct, x.rotations))
            .collect::<Result<Vec<_>>>()?;
        outputs
            .iter()
            .map(|giant| {
                let pt_scale = check_terms(level, &babies, giant)?;
                let total = self.giant_steps(&rotated, giant)?;
                let mut meta = first.meta;
                meta.scale = psf_rlwe::Scale(first.meta.scale.0 * pt_scale);
                Ok(self.switcher().mod_down_extended(total, meta))
            })
            .collect()
    }

    /// `sum_j rot_{r_j}(inner_j)` over `Q_l ++ P` from the extended baby rotations.
    fn giant_steps(
        &self,
        rotated: &[Vec<ExtendedCiphertext>],
        giant: &[BlockGiantStep<'_>],
    ) -> Result<ExtendedCiphertext> {
        let level = rotated[0][0].level;
        let basis = self.switcher().extended_basis(level);
        let mut total: Option<ExtendedCiphertext> = None;
        for step in giant {
            let Some((&(k0, i0, p0), rest)) = step.terms.split_first() else {
                continue;
            };
            let mut inner = mul_extended(basis, &rotated[k0][i0], p0);
            for &(k, i, p) in rest {
                basis.mul_add_assign(&mut inner.c0, &rotated[k][i].c0, &p.poly);
                basis.mul_add_assign(&mut inner.c1, &rotated[k][i].c1, &p.poly);
            }
            self.counter()
                .record_n_at(Primitive::PtMul, level, step.terms.len() as u64);
            self.counter()
                .record_n_at(Primitive::Add, level, step.terms.len() as u64 - 1);
            if step.rotation != 0 {
                let key = self.rotation_key(step.rotation)?;
                inner = self.switcher().automorphism_extended_lazy(&inner, key)?;
                self.counter().record_at(Primitive::Rotate, level);
            }
            total = Some(match total {
                None => inner,
                Some(mut t) => {
                    basis.add_assign(&mut t.c0, &inner.c0);
                    basis.add_assign(&mut t.c1, &inner.c1);
                    self.counter().record_at(Primitive::Add, level);
                    t
                }
            });
        }
        total.ok_or_else(|| CkksError::InvalidArgument("no terms".into()))
    }

    /// The baby-step rotations of `ct`, extended: lifts for 0, lazy hoisted rotations sharing
    /// one decomposition otherwise.
    fn baby_steps(&self, ct: &Ciphertext, baby: &[i64]) -> Result<Vec<ExtendedCiphertext>> {
        if ct.degree() != 1 {
            return Err(CkksError::DegreeTooHigh {
                degree: ct.degree(),
            });
        }
        let nonzero = baby.iter().filter(|&&k| k != 0).count();
        for &k in baby.iter().filter(|&&k| k != 0) {
            crate::evaluator::check_key_level(self.rotation_key(k)?, ct.level())?;
        }
        let dec = (nonzero > 0).then(|| self.switcher().decompose(&ct.polys[1]));
        if nonzero > 0 {
            self.counter().record_at(Primitive::Decompose, ct.level());
            self.counter()
                .record_n_at(Primitive::RotateHoisted, ct.level(), nonzero as u64);
        }
        baby.iter()
            .map(|&k| match (&dec, k) {
                (Some(dec), k) if k != 0 => {
                    let key = self.rotation_key(k)?;
                    Ok(self.switcher().automorphism_hoisted_lazy(ct, dec, key)?)
                }
                _ => Ok(self.switcher().lift_extended(ct)?),
            })
            .collect()
    }

    fn rotation_key(&self, k: i64) -> Result<&psf_rlwe::GaloisKey> {
        let g = galois_element_for_rotation(k, self.params().ring().log_n());
        self.keys()
            .galois
            .get(&g)
            .ok_or_else(|| CkksError::MissingKey(format!("rotation by {k} (Galois element {g})")))
    }
}

/// Checks levels, indices and scales of the terms; returns the common plaintext scale.
fn check_terms(level: usize, babies: &[usize], giant: &[BlockGiantStep<'_>]) -> Result<f64> {
    let mut scale: Option<f64> = None;
    for &(k, i, p) in giant.iter().flat_map(|g| g.terms.iter()) {
        if babies.get(k).is_none_or(|&n| i >= n) || p.level != level {
            return Err(CkksError::InvalidArgument(format!(
                "term (input {k}, baby {i}, plaintext level {}) at level {level}",
                p.level
            )));
        }
        match scale {
            None => scale = Some(p.meta.scale.0),
            Some(s) if psf_rlwe::Scale(s).matches(p.meta.scale) => {}
            Some(s) => {
                return Err(CkksError::ScaleMismatch {
                    left: s.log2(),
                    right: p.meta.scale.log2(),
                });
            }
        }
    }
    scale.ok_or_else(|| CkksError::InvalidArgument("no terms".into()))
}

/// `pt * x` over `Q_l ++ P`.
fn mul_extended(
    basis: &psf_math::RnsBasis,
    x: &ExtendedCiphertext,
    pt: &ExtendedPlaintext,
) -> ExtendedCiphertext {
    let mut c0 = x.c0.clone();
    let mut c1 = x.c1.clone();
    basis.mul_assign(&mut c0, &pt.poly);
    basis.mul_assign(&mut c1, &pt.poly);
    ExtendedCiphertext {
        level: x.level,
        c0,
        c1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        Decryptor, Encoder, Encryptor, EvaluationKeys, KeyGenerator, PrecisionStats, sets,
    };

    const BABY: [i64; 4] = [0, 1, 2, 3];
    const GIANT: [i64; 3] = [0, 4, 8];
    /// Term `t` sits in giant step `t / 4` with baby step `t % 4` (the last step has two).
    const TERMS: usize = 10;

    /// The same product by rotations, plaintext products and additions.
    fn plain_path(eval: &Evaluator, ct: &Ciphertext, pts: &[Plaintext]) -> Ciphertext {
        let rotated = eval.rotate_hoisted_new(ct, &BABY[1..]).unwrap();
        let mut total: Option<Ciphertext> = None;
        for (j, &r) in GIANT.iter().enumerate() {
            let mut inner: Option<Ciphertext> = None;
            for t in (0..TERMS).filter(|t| t / 4 == j) {
                let src = if t % 4 == 0 { ct } else { &rotated[t % 4 - 1] };
                let prod = eval.mul_plain_new(src, &pts[t]).unwrap();
                inner = Some(match inner {
                    None => prod,
                    Some(acc) => eval.add_new(&acc, &prod).unwrap(),
                });
            }
            let mut inner = inner.unwrap();
            if r != 0 {
                inner = eval.rotate_new(&inner, r).unwrap();
            }
            total = Some(match total {
                None => inner,
                Some(acc) => eval.add_new(&acc, &inner).unwrap(),
            });
        }
        total.unwrap()
    }

    /// The double-hoisted product equals the plain one in value and in the primitive counts.
    #[test]
    fn double_hoisted_matches_plain_path() {
        let params = sets::insecure_n10().try_build().unwrap();
        let mut kgen = KeyGenerator::seeded(params.ring(), 5);
        let sk = kgen.gen_secret_key();
        let rots: Vec<i64> = BABY.iter().chain(&GIANT).copied().collect();
        let keys = EvaluationKeys::generate(&mut kgen, &sk, &rots, false).unwrap();
        let (enc, eval) = (Encoder::new(&params), Evaluator::new(&params, keys));
        let (slots, log_slots) = (params.max_slots(), params.max_log_slots());
        let level = params.ring().max_level();
        let x: Vec<f64> = (0..slots)
            .map(|i| ((i * 7 % 13) as f64 - 6.0) / 8.0)
            .collect();
        let pt = enc
            .encode(&x, log_slots, level, params.default_scale())
            .unwrap();
        let ct = Encryptor::with_secret_key(&sk)
            .seeded(1)
            .encrypt(&pt)
            .unwrap();
        let pscale = psf_rlwe::Scale(params.ring().q().modulus(level).value() as f64);
        let pts: Vec<Plaintext> = (0..TERMS)
            .map(|j| {
                let v: Vec<f64> = (0..slots).map(|i| ((i + 3 * j) % 5) as f64 / 4.0).collect();
                enc.encode(&v, log_slots, level, pscale).unwrap()
            })
            .collect();
        eval.counter().reset();
        let plain = plain_path(&eval, &ct, &pts);
        let plain_counts = eval.counter().snapshot();
        let ext: Vec<ExtendedPlaintext> = pts
            .iter()
            .map(|p| eval.extend_plaintext(p).unwrap())
            .collect();
        let giant: Vec<GiantStep<'_>> = (0..GIANT.len())
            .map(|j| GiantStep {
                rotation: GIANT[j],
                terms: (0..TERMS)
                    .filter(|t| t / 4 == j)
                    .map(|t| (t % 4, &ext[t]))
                    .collect(),
            })
            .collect();
        eval.counter().reset();
        let hoisted = eval.bsgs_double_hoisted(&ct, &BABY, &giant).unwrap();
        assert_eq!(eval.counter().snapshot(), plain_counts);
        assert!(hoisted.meta.scale.matches(plain.meta.scale));
        let dec = Decryptor::new(&sk);
        let have = enc.decode(&dec.decrypt(&hoisted).unwrap()).unwrap();
        let want = enc.decode(&dec.decrypt(&plain).unwrap()).unwrap();
        let stats = PrecisionStats::from_real(&want, &have);
        assert!(stats.min_bits > 25.0, "{stats}");
        // A plaintext at another level is refused.
        let low = enc.encode(&x, log_slots, level - 1, pscale).unwrap();
        let low = eval.extend_plaintext(&low).unwrap();
        let bad = [GiantStep {
            rotation: 0,
            terms: vec![(0, &low)],
        }];
        assert!(eval.bsgs_double_hoisted(&ct, &BABY, &bad).is_err());
    }
}
