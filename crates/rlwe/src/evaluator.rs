//! Key switching and automorphisms on ciphertexts: the RLWE operations the CKKS evaluator
//! builds on.

use std::sync::Arc;

use psf_math::RnsPoly;

use crate::keyswitch::{self, Decomposition};
use crate::{Ciphertext, GaloisKey, Parameters, Result, RlweError, SwitchingKey};

/// Key switching and automorphisms for one parameter set.
#[derive(Clone, Debug)]
pub struct KeySwitcher {
    params: Arc<Parameters>,
}

impl KeySwitcher {
    /// For `params`.
    pub fn new(params: &Arc<Parameters>) -> Self {
        Self {
            params: params.clone(),
        }
    }

    /// The parameters.
    pub fn params(&self) -> &Arc<Parameters> {
        &self.params
    }

    /// Checks that `key` belongs to these parameters and is well formed (full or limited).
    pub(crate) fn check_key(&self, key: &SwitchingKey) -> Result<()> {
        self.params.check_same(key.params())?;
        key.validate()
    }

    /// Checks that a polynomial to switch has between 1 and `|Q|` limbs.
    fn check_operand(&self, c: &RnsPoly) -> Result<()> {
        if c.limbs() == 0 || c.limbs() > self.params.q().len() || c.n() != self.params.n() {
            return Err(RlweError::Malformed {
                reason: format!(
                    "key-switching operand with {} limbs of degree {} (expected 1 to {} of {})",
                    c.limbs(),
                    c.n(),
                    self.params.q().len(),
                    self.params.n()
                ),
            });
        }
        Ok(())
    }

    /// Checks that `dec` decomposes a polynomial at `level` and that `key` reaches it.
    pub(crate) fn check_hoisted(
        &self,
        dec: &Decomposition,
        level: usize,
        key: &SwitchingKey,
    ) -> Result<()> {
        self.check_key(key)?;
        if dec.level != level {
            return Err(RlweError::Malformed {
                reason: format!(
                    "decomposition at level {} used for a ciphertext at level {level}",
                    dec.level
                ),
            });
        }
        keyswitch::check_key_level(key, level)
    }

    /// `(d_0, d_1)` over `Q_l` with `d_0 + d_1 s ~= c * s_in` for a key `s_in -> s`.
    ///
    /// # Errors
    /// A key of other parameters or malformed, an operand of the wrong shape, or
    /// [`RlweError::KeyLevelTooLow`] when `c`'s level is above the key's maximum level.
    pub fn switch(&self, c: &RnsPoly, key: &SwitchingKey) -> Result<(RnsPoly, RnsPoly)> {
        self.check_key(key)?;
        self.check_operand(c)?;
        keyswitch::switch(self.params.ks(), c, key)
    }

    /// Re-encrypts a degree-1 `ct` from the key's input secret `s_in` to its output secret
    /// `s`: `(c_0 + d_0, d_1)` with `d_0 + d_1 s ~= c_1 s_in` (e.g. between a dense and a
    /// sparse secret in bootstrapping).
    pub fn switch_key(&self, ct: &Ciphertext, key: &SwitchingKey) -> Result<Ciphertext> {
        self.params.check_same(ct.params())?;
        if ct.degree() != 1 {
            return Err(RlweError::Malformed {
                reason: format!("key switching needs degree 1, got {}", ct.degree()),
            });
        }
        let (mut d0, d1) = self.switch(&ct.polys[1], key)?;
        self.params.q().add_assign(&mut d0, &ct.polys[0]);
        Ok(Ciphertext::from_parts(&self.params, vec![d0, d1], ct.meta))
    }

    /// The hoistable part of key switching: decomposition and ModUp of `c`.
    pub fn decompose(&self, c: &RnsPoly) -> Decomposition {
        keyswitch::decompose(self.params.ks(), c)
    }

    /// Applies `X -> X^g` to `ct` and switches back to `s` with the Galois key.
    ///
    /// # Errors
    /// As [`Self::automorphism_hoisted`] (checked before the decomposition).
    pub fn automorphism(&self, ct: &Ciphertext, key: &GaloisKey) -> Result<Ciphertext> {
        self.check_key(&key.key)?;
        if ct.degree() != 1 {
            return Err(RlweError::Malformed {
                reason: format!("automorphism needs degree 1, got {}", ct.degree()),
            });
        }
        self.check_operand(&ct.polys[1])?;
        keyswitch::check_key_level(&key.key, ct.level())?;
        let dec = self.decompose(&ct.polys[1]);
        self.automorphism_hoisted(ct, &dec, key)
    }

    /// Like [`Self::automorphism`], reusing the decomposition of `ct.polys[1]` (hoisting):
    /// many rotations of one ciphertext pay for one decomposition.
    ///
    /// # Errors
    /// A key of other parameters or malformed, a ciphertext of degree other than 1, a
    /// decomposition at another level than `ct`, or [`RlweError::KeyLevelTooLow`] when `ct`
    /// sits above the key's maximum level.
    pub fn automorphism_hoisted(
        &self,
        ct: &Ciphertext,
        dec: &Decomposition,
        key: &GaloisKey,
    ) -> Result<Ciphertext> {
        if ct.degree() != 1 {
            return Err(RlweError::Malformed {
                reason: format!("automorphism needs degree 1, got {}", ct.degree()),
            });
        }
        let level = ct.level();
        self.check_hoisted(dec, level, &key.key)?;
        let ks = self.params.ks();
        let perm = self.params.galois_permutation(key.galois_element);
        let (a0, a1) = keyswitch::inner_product(ks, dec, &key.key, Some(&perm))?;
        let ((mut d0, d1), c0) = rayon::join(
            || {
                rayon::join(
                    || keyswitch::mod_down(ks, a0, level),
                    || keyswitch::mod_down(ks, a1, level),
                )
            },
            || {
                let mut c0 = RnsPoly::zero(self.params.n(), level + 1, psf_math::Repr::Eval);
                self.params
                    .q()
                    .automorphism_eval(&ct.polys[0], &perm, &mut c0);
                c0
            },
        );
        self.params.q().add_assign(&mut d0, &c0);
        Ok(Ciphertext::from_parts(&self.params, vec![d0, d1], ct.meta))
    }
}
