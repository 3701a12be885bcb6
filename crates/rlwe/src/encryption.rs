//! Encryption (public or secret key) and decryption.

use std::sync::Arc;

use psf_math::{Repr, RnsPoly, Sampler};

use crate::{Ciphertext, Parameters, Plaintext, PublicKey, Result, SecretKey};

enum EncryptionKey {
    Public(PublicKey),
    Secret(SecretKey),
}

/// Encrypts plaintexts under a public or a secret key.
pub struct Encryptor {
    params: Arc<Parameters>,
    key: EncryptionKey,
    sampler: Sampler,
}

impl Encryptor {
    /// Public-key encryptor with OS randomness.
    pub fn with_public_key(pk: &PublicKey) -> Self {
        Self {
            params: pk.params().clone(),
            key: EncryptionKey::Public(pk.clone()),
            sampler: Sampler::from_os_rng(),
        }
    }

    /// Secret-key encryptor with OS randomness.
    pub fn with_secret_key(sk: &SecretKey) -> Self {
        Self {
            params: sk.params().clone(),
            key: EncryptionKey::Secret(sk.clone()),
            sampler: Sampler::from_os_rng(),
        }
    }

    /// Replaces the randomness source with a seeded one (tests and experiments only).
    pub fn seeded(mut self, seed: u64) -> Self {
        self.sampler = Sampler::seeded(seed);
        self
    }

    /// Encrypts `pt` at its level.
    pub fn encrypt(&mut self, pt: &Plaintext) -> Result<Ciphertext> {
        self.params.check_same(pt.params())?;
        let q = self.params.q().clone();
        let limbs = pt.level() + 1;
        let n = q.n();
        let (mut c0, mut c1) = match &self.key {
            EncryptionKey::Public(pk) => {
                let v_coeffs = self.sampler.ternary(n);
                let mut v = RnsPoly::from_signed(&v_coeffs, &q, limbs);
                q.ntt(&mut v);
                let mut c0 = error(&mut self.sampler, &self.params, limbs);
                let mut c1 = error(&mut self.sampler, &self.params, limbs);
                q.mul_add_assign(&mut c0, &v, &pk.b.prefix(limbs));
                q.mul_add_assign(&mut c1, &v, &pk.a.prefix(limbs));
                (c0, c1)
            }
            EncryptionKey::Secret(sk) => {
                let a = self.sampler.uniform_poly(&q, limbs, Repr::Eval);
                let mut c0 = error(&mut self.sampler, &self.params, limbs);
                let mut as_ = RnsPoly::zero(n, limbs, Repr::Eval);
                q.mul(&a, &sk.s.prefix(limbs), &mut as_);
                q.sub_assign(&mut c0, &as_);
                (c0, a)
            }
        };
        q.add_assign(&mut c0, &pt.poly);
        c1.set_repr(Repr::Eval);
        Ok(Ciphertext::from_parts(&self.params, vec![c0, c1], pt.meta))
    }
}

fn error(sampler: &mut Sampler, params: &Parameters, limbs: usize) -> RnsPoly {
    let q = params.q();
    let e = sampler.gaussian(q.n(), params.sigma());
    let mut p = RnsPoly::from_signed(&e, q, limbs);
    q.ntt(&mut p);
    p
}

/// Decrypts ciphertexts of any degree.
pub struct Decryptor {
    params: Arc<Parameters>,
    sk: SecretKey,
}

impl Decryptor {
    /// Decryptor for `sk`.
    pub fn new(sk: &SecretKey) -> Self {
        Self {
            params: sk.params().clone(),
            sk: sk.clone(),
        }
    }

    /// `sum_i c_i s^i` as a plaintext at the ciphertext's level.
    pub fn decrypt(&self, ct: &Ciphertext) -> Result<Plaintext> {
        self.params.check_same(ct.params())?;
        let q = self.params.q();
        let limbs = ct.level() + 1;
        let s = self.sk.s.prefix(limbs);
        // Horner: ((c_d s + c_{d-1}) s + ...) + c_0
        let mut acc = ct.polys[ct.degree()].clone();
        let mut tmp = RnsPoly::zero(q.n(), limbs, Repr::Eval);
        for c in ct.polys[..ct.degree()].iter().rev() {
            q.mul(&acc, &s, &mut tmp);
            q.add(&tmp, c, &mut acc);
        }
        Plaintext::new(&self.params, acc, ct.meta)
    }
}
