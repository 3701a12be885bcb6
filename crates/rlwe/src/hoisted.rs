//! Lazy key switching for double hoisting (Bossuat, Mouchet, Troncoso-Pastoriza, Hubaux 2021;
//! Lattigo's `MultiplyByDiagMatrix`): key-switching results are kept over the extended basis
//! `Q_l ++ P`, *before* the division by `P` (ModDown), so that many of them can be multiplied
//! by plaintexts and summed there and divided by `P` once.
//!
//! An [`ExtendedCiphertext`] `(x_0, x_1)` over `Q_l ++ P` stands for `P` times a ciphertext:
//! `x_0 + x_1 s ~= P m`. [`KeySwitcher::mod_down_extended`] divides by `P` with rounding.

use psf_math::{BasisConverter, Repr, RnsBasis, RnsPoly};

use crate::keyswitch::{self, Decomposition};
use crate::{Ciphertext, GaloisKey, KeySwitcher, MetaData, Result, RlweError};

/// A degree-1 ciphertext over `Q_level ++ P` (evaluation form) holding `P` times a message:
/// the un-ModDown'ed output of key switching.
#[derive(Clone, Debug)]
pub struct ExtendedCiphertext {
    /// The level `l` of the `Q` part.
    pub level: usize,
    /// `x_0` over `Q_l ++ P`.
    pub c0: RnsPoly,
    /// `x_1` over `Q_l ++ P`.
    pub c1: RnsPoly,
}

impl KeySwitcher {
    /// The basis `Q_level ++ P` of extended ciphertexts and plaintexts.
    pub fn extended_basis(&self, level: usize) -> &RnsBasis {
        self.params().ks().qlp(level)
    }

    /// Checks that `x` has `level + 1 + |P|` limbs in both parts, `level <= |Q| - 1`.
    fn check_extended(&self, x: &ExtendedCiphertext) -> Result<()> {
        self.params().check_level(x.level)?;
        let limbs = x.level + 1 + self.params().p().len();
        if x.c0.limbs() != limbs || x.c1.limbs() != limbs {
            return Err(RlweError::Malformed {
                reason: format!(
                    "extended ciphertext at level {} with {} and {} limbs (expected {limbs})",
                    x.level,
                    x.c0.limbs(),
                    x.c1.limbs()
                ),
            });
        }
        Ok(())
    }

    /// `P * ct` over `Q_l ++ P` (the "rotation by 0" of double hoisting; no key switch).
    pub fn lift_extended(&self, ct: &Ciphertext) -> Result<ExtendedCiphertext> {
        if ct.degree() != 1 {
            return Err(RlweError::Malformed {
                reason: format!("lift needs degree 1, got {}", ct.degree()),
            });
        }
        Ok(ExtendedCiphertext {
            level: ct.level(),
            c0: self.lift_poly(&ct.polys[0]),
            c1: self.lift_poly(&ct.polys[1]),
        })
    }

    /// `P * c` over `Q_l ++ P` for `c` over `Q_l` (zero `P` limbs).
    fn lift_poly(&self, c: &RnsPoly) -> RnsPoly {
        let level = c.limbs() - 1;
        let q = self.params().q();
        let p_mod_q: Vec<u64> = (0..=level)
            .map(|i| self.params().p().product_mod(q.modulus(i)))
            .collect();
        let mut x = c.clone();
        q.mul_scalar_assign(&mut x, &p_mod_q);
        x.resize(level + 1 + self.params().p().len());
        x
    }

    /// [`Self::automorphism_hoisted`] without the ModDown: `(P phi(c_0) + <phi(dec), b>,
    /// <phi(dec), a>)` over `Q_l ++ P`.
    ///
    /// # Errors
    /// As [`Self::automorphism_hoisted`] ([`RlweError::KeyLevelTooLow`] above the key's level).
    pub fn automorphism_hoisted_lazy(
        &self,
        ct: &Ciphertext,
        dec: &Decomposition,
        key: &GaloisKey,
    ) -> Result<ExtendedCiphertext> {
        if ct.degree() != 1 {
            return Err(RlweError::Malformed {
                reason: format!("automorphism needs degree 1, got {}", ct.degree()),
            });
        }
        let level = ct.level();
        self.check_hoisted(dec, level, &key.key)?;
        let perm = self.params().galois_permutation(key.galois_element);
        let (mut a0, a1) =
            keyswitch::inner_product(self.params().ks(), dec, &key.key, Some(&perm))?;
        let mut c0 = RnsPoly::zero(ct.polys[0].n(), level + 1, Repr::Eval);
        self.params()
            .q()
            .automorphism_eval(&ct.polys[0], &perm, &mut c0);
        self.extended_basis(level)
            .add_assign(&mut a0, &self.lift_poly(&c0));
        Ok(ExtendedCiphertext {
            level,
            c0: a0,
            c1: a1,
        })
    }

    /// Applies `X -> X^g` to an extended ciphertext and switches back to `s`, staying extended:
    /// `x_1` is divided by `P` (one ModDown), decomposed and multiplied with the permuted key;
    /// `x_0` is permuted as is. The result holds `P phi(m)`.
    ///
    /// # Errors
    /// A key of other parameters or malformed, an extended ciphertext of the wrong shape, or
    /// [`RlweError::KeyLevelTooLow`] when `x` sits above the key's maximum level.
    pub fn automorphism_extended_lazy(
        &self,
        x: &ExtendedCiphertext,
        key: &GaloisKey,
    ) -> Result<ExtendedCiphertext> {
        self.check_key(&key.key)?;
        self.check_extended(x)?;
        keyswitch::check_key_level(&key.key, x.level)?;
        let ks = self.params().ks();
        let c1 = keyswitch::mod_down(ks, x.c1.clone(), x.level);
        let dec = keyswitch::decompose(ks, &c1);
        let perm = self.params().galois_permutation(key.galois_element);
        let (mut a0, a1) = keyswitch::inner_product(ks, &dec, &key.key, Some(&perm))?;
        let basis = self.extended_basis(x.level);
        let mut permuted = RnsPoly::zero(x.c0.n(), x.c0.limbs(), Repr::Eval);
        basis.automorphism_eval(&x.c0, &perm, &mut permuted);
        basis.add_assign(&mut a0, &permuted);
        Ok(ExtendedCiphertext {
            level: x.level,
            c0: a0,
            c1: a1,
        })
    }

    /// Divides an extended ciphertext by `P` with rounding (two ModDowns): a ciphertext over
    /// `Q_l` with metadata `meta`.
    pub fn mod_down_extended(&self, x: ExtendedCiphertext, meta: MetaData) -> Ciphertext {
        let ks = self.params().ks();
        let level = x.level;
        let (d0, d1) = rayon::join(
            || keyswitch::mod_down(ks, x.c0, level),
            || keyswitch::mod_down(ks, x.c1, level),
        );
        Ciphertext::from_parts(self.params(), vec![d0, d1], meta)
    }

    /// The polynomial `m` over `Q_l` (evaluation form, `l + 1` limbs, centered coefficients
    /// below `Q_l / 2`) extended exactly to `Q_l ++ P`.
    ///
    /// # Errors
    /// A polynomial with more limbs than `Q` has primes.
    pub fn extend_exact(&self, m: &RnsPoly) -> Result<RnsPoly> {
        let level = m.limbs() - 1;
        self.params().check_level(level)?;
        let q = self.params().q().prefix(level + 1);
        let p = self.params().p();
        let mut coeff = m.clone();
        q.intt(&mut coeff);
        let conv = BasisConverter::new(&q, p).map_err(|e| RlweError::Malformed {
            reason: e.to_string(),
        })?;
        let n = m.n();
        let mut p_part = RnsPoly::zero(n, p.len(), Repr::Coeff);
        {
            let ins: Vec<&[u64]> = coeff.limbs_iter().collect();
            let mut outs: Vec<&mut [u64]> = p_part.data_mut().chunks_exact_mut(n).collect();
            conv.convert_exact(&ins, &mut outs);
        }
        p.ntt(&mut p_part);
        let mut out = m.clone();
        out.resize(level + 1 + p.len());
        out.data_mut()[(level + 1) * n..].copy_from_slice(p_part.data());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Decryptor, Encryptor, KeyGenerator, ParametersLiteral, Plaintext};
    use psf_math::Sampler;

    fn params() -> std::sync::Arc<crate::Parameters> {
        let lit = ParametersLiteral {
            name: "INSECURE_HOISTED_TEST".into(),
            log_n: 10,
            log_q: vec![60, 45, 45, 45],
            log_p: vec![61, 61],
            q: None,
            p: None,
            digit_size: None,
            secret: Default::default(),
            sigma: psf_math::DEFAULT_SIGMA,
        };
        lit.try_build().unwrap()
    }

    fn small_message(params: &std::sync::Arc<crate::Parameters>, seed: u64) -> RnsPoly {
        let mut s = Sampler::seeded(seed);
        let coeffs: Vec<i64> = (0..params.n())
            .map(|_| s.uniform_below(1 << 40) as i64 - (1 << 39))
            .collect();
        let mut m = RnsPoly::from_signed(&coeffs, params.q(), params.q().len());
        params.q().ntt(&mut m);
        m
    }

    fn meta() -> MetaData {
        MetaData {
            scale: crate::Scale(1.0),
            log_slots: 0,
        }
    }

    /// Lazy rotations, summed in the extended basis and divided by P once, decrypt to the same
    /// message as the plain hoisted rotations (up to key-switching noise).
    #[test]
    fn lazy_paths_match_plain_key_switching() {
        let params = params();
        let mut kgen = KeyGenerator::seeded(&params, 1);
        let sk = kgen.gen_secret_key();
        let (g1, g2) = (5usize, 25usize);
        let (k1, k2) = (
            kgen.gen_galois_key(g1, &sk).unwrap(),
            kgen.gen_galois_key(g2, &sk).unwrap(),
        );
        let m = small_message(&params, 2);
        let pt = Plaintext::new(&params, m.clone(), meta()).unwrap();
        let ct = Encryptor::with_secret_key(&sk)
            .seeded(3)
            .encrypt(&pt)
            .unwrap();
        let sw = KeySwitcher::new(&params);
        let dec = sw.decompose(&ct.polys[1]);
        // Plain: rot_g2(rot_g1(ct)) + ct.
        let plain_rot = sw.automorphism_hoisted(&ct, &dec, &k1).unwrap();
        let plain_rot = sw.automorphism(&plain_rot, &k2).unwrap();
        // Lazy: lift(ct) + rot_g2 of the extended rot_g1(ct), one final ModDown.
        let lazy = sw.automorphism_hoisted_lazy(&ct, &dec, &k1).unwrap();
        let lazy = sw.automorphism_extended_lazy(&lazy, &k2).unwrap();
        let mut sum = sw.lift_extended(&ct).unwrap();
        let basis = sw.extended_basis(ct.level());
        basis.add_assign(&mut sum.c0, &lazy.c0);
        basis.add_assign(&mut sum.c1, &lazy.c1);
        let out = sw.mod_down_extended(sum, meta());
        let decryptor = Decryptor::new(&sk);
        let have = decryptor.decrypt(&out).unwrap();
        let want_rot = decryptor.decrypt(&plain_rot).unwrap();
        let q = params.q();
        let mut want = want_rot.poly.clone();
        q.add_assign(&mut want, &m);
        let mut diff = have.poly.clone();
        q.sub_assign(&mut diff, &want);
        q.intt(&mut diff);
        let m0 = q.modulus(0);
        let worst = diff
            .limb(0)
            .iter()
            .map(|&x| m0.center(x).abs())
            .max()
            .unwrap();
        assert!(worst < 1 << 12, "lazy vs plain differ by {worst}");
    }

    /// The extension's `P` limbs are the residues of the same (centered) integers.
    #[test]
    fn plaintext_extension_is_exact() {
        let params = params();
        let sw = KeySwitcher::new(&params);
        let q = params.q();
        let m0 = q.modulus(0);
        let m = small_message(&params, 4);
        let ext = sw.extend_exact(&m).unwrap();
        let mut back = ext.clone();
        sw.extended_basis(q.len() - 1).intt(&mut back);
        let mut mc = m.clone();
        q.intt(&mut mc);
        for (k, pk) in (0..params.p().len()).map(|k| (k, params.p().modulus(k))) {
            for (j, &x) in mc.limb(0).iter().enumerate() {
                assert_eq!(back.limb(q.len() + k)[j], pk.from_i64(m0.center(x)));
            }
        }
    }
}
