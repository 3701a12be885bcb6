//! Keys and key generation: secret, public, switching (relinearization, Galois) keys.

use std::sync::Arc;

use psf_math::{Repr, RnsPoly, Sampler};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::{Parameters, Result, SecretDistribution};

/// The secret key `s`, in evaluation form over `QP`. Zeroized on drop; not `Debug`-printable.
#[derive(Clone)]
pub struct SecretKey {
    params: Arc<Parameters>,
    pub(crate) s: RnsPoly,
}

impl Zeroize for SecretKey {
    fn zeroize(&mut self) {
        self.s.data_mut().zeroize();
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl ZeroizeOnDrop for SecretKey {}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl SecretKey {
    /// The parameters.
    pub fn params(&self) -> &Arc<Parameters> {
        &self.params
    }

    /// The key polynomial over `QP` (evaluation form). Handle with care.
    pub fn poly(&self) -> &RnsPoly {
        &self.s
    }

    /// Builds a secret key from its evaluation-form polynomial over `QP`.
    pub fn from_poly(params: &Arc<Parameters>, s: RnsPoly) -> Self {
        Self {
            params: params.clone(),
            s,
        }
    }
}

/// The public key `(b, a) = (-a s + e, a)` over `Q` at the top level.
#[derive(Clone)]
pub struct PublicKey {
    params: Arc<Parameters>,
    /// `-a s + e`.
    pub b: RnsPoly,
    /// Uniform `a`.
    pub a: RnsPoly,
}

impl PublicKey {
    /// Wraps the two polynomials (top level, evaluation form).
    pub fn from_polys(params: &Arc<Parameters>, b: RnsPoly, a: RnsPoly) -> Self {
        Self {
            params: params.clone(),
            b,
            a,
        }
    }

    /// The parameters.
    pub fn params(&self) -> &Arc<Parameters> {
        &self.params
    }
}

/// A hybrid key-switching key from `s_in` to `s`: one `(b_j, a_j)` pair over `Q_L ++ P` per
/// digit, `b_j = -a_j s + e_j + P * g_j * s_in` with `g_j` the CRT gadget of digit `j`.
///
/// `L` is the key's [maximum level](Self::max_level): a full key has `L = |Q| - 1` and `dnum`
/// digits; a key limited to `L` (Lattigo's `LevelQ`) has the limbs `Q_0..Q_L ++ P` and the
/// `ceil((L + 1) / alpha)` digits covering `Q_0..Q_L`, and switches ciphertexts at levels
/// `<= L` only (a switch above is an [`crate::RlweError::KeyLevelTooLow`]). Limited keys are
/// what a circuit that never runs above `L` needs, at a fraction of the size.
#[derive(Clone)]
pub struct SwitchingKey {
    params: Arc<Parameters>,
    /// `(b_j, a_j)` per digit, evaluation form over `Q_L ++ P`.
    pub digits: Vec<(RnsPoly, RnsPoly)>,
}

impl SwitchingKey {
    /// Wraps digits (shape checked by the decoder and by [`Self::validate`]); the maximum level
    /// is read from the limb count of the polynomials (`L + 1 + |P|`).
    pub fn from_digits(params: &Arc<Parameters>, digits: Vec<(RnsPoly, RnsPoly)>) -> Self {
        Self {
            params: params.clone(),
            digits,
        }
    }

    /// The parameters.
    pub fn params(&self) -> &Arc<Parameters> {
        &self.params
    }

    /// The highest ciphertext level the key switches at: its `Q` limbs minus one (the
    /// parameters' top level for a full key; 0 for a key without digits, which
    /// [`Self::validate`] rejects).
    pub fn max_level(&self) -> usize {
        let limbs = self.digits.first().map_or(0, |(b, _)| b.limbs());
        limbs.saturating_sub(self.params.p().len() + 1)
    }

    /// Whether the key covers every level of its parameters.
    pub fn is_full(&self) -> bool {
        self.max_level() == self.params.max_level()
    }

    /// Digits of a key (and of a decomposition) at `level`: `ceil((level + 1) / alpha)`.
    pub fn digits_at(params: &Parameters, level: usize) -> usize {
        (level + 1).div_ceil(params.digit_size())
    }

    /// Checks the shape: at least one digit, every polynomial of degree `N` in evaluation form
    /// with `L + 1 + |P|` limbs for one `L <= |Q| - 1`, and [`Self::digits_at`]`(L)` digits.
    ///
    /// # Errors
    /// [`crate::RlweError::Malformed`] naming what is off.
    pub fn validate(&self) -> Result<()> {
        let malformed = |reason: String| Err(crate::RlweError::Malformed { reason });
        let (np, nq) = (self.params.p().len(), self.params.q().len());
        let Some((b0, _)) = self.digits.first() else {
            return malformed("switching key without digits".into());
        };
        let limbs = b0.limbs();
        if limbs <= np || limbs > nq + np {
            return malformed(format!(
                "switching key with {limbs} limbs (expected {} to {})",
                np + 1,
                nq + np
            ));
        }
        let want = Self::digits_at(&self.params, self.max_level());
        if self.digits.len() != want {
            return malformed(format!(
                "switching key up to level {} has {} digits, expected {want}",
                self.max_level(),
                self.digits.len()
            ));
        }
        let n = self.params.n();
        let bad = self
            .digits
            .iter()
            .flat_map(|(b, a)| [b, a])
            .any(|p| p.limbs() != limbs || p.n() != n || p.repr() != Repr::Eval);
        if bad {
            return malformed("switching-key polynomials of different shapes".into());
        }
        Ok(())
    }

    /// Size in bytes of the key material.
    pub fn size_bytes(&self) -> usize {
        self.digits
            .iter()
            .map(|(b, a)| 8 * (b.data().len() + a.data().len()))
            .sum()
    }

    /// Size in bytes of a key limited to `max_level` under `params` (the full key's at the top
    /// level): `digits x 2 x (L + 1 + |P|) x N x 8`.
    pub fn size_bytes_at(params: &Parameters, max_level: usize) -> usize {
        let limbs = max_level + 1 + params.p().len();
        Self::digits_at(params, max_level) * 2 * limbs * params.n() * 8
    }
}

/// Relinearization key: switches `s^2` to `s`.
#[derive(Clone)]
pub struct RelinearizationKey(pub SwitchingKey);

/// Galois key for `X -> X^g`: switches `s(X^g)` to `s`.
#[derive(Clone)]
pub struct GaloisKey {
    /// The Galois element `g` (odd, modulo `2N`).
    pub galois_element: usize,
    /// The switching key.
    pub key: SwitchingKey,
}

/// Generates keys from a CSPRNG.
pub struct KeyGenerator {
    params: Arc<Parameters>,
    sampler: Sampler,
}

impl KeyGenerator {
    /// Key generator seeded from the operating system (for real keys).
    pub fn new(params: &Arc<Parameters>) -> Self {
        Self {
            params: params.clone(),
            sampler: Sampler::from_os_rng(),
        }
    }

    /// Deterministic key generator (tests and reproducible experiments only).
    pub fn seeded(params: &Arc<Parameters>, seed: u64) -> Self {
        Self {
            params: params.clone(),
            sampler: Sampler::seeded(seed),
        }
    }

    /// A fresh secret key from the parameters' distribution.
    pub fn gen_secret_key(&mut self) -> SecretKey {
        let n = self.params.n();
        let mut coeffs = match self.params.secret_distribution() {
            SecretDistribution::Ternary => self.sampler.ternary(n),
            SecretDistribution::SparseTernary { hamming_weight } => {
                self.sampler.sparse_ternary(n, hamming_weight)
            }
        };
        let sk = self.secret_from_coeffs(&coeffs);
        coeffs.zeroize();
        sk
    }

    /// The same small secret as `sk` (which may belong to other parameters of the same ring
    /// degree) over this generator's parameters: for key switching between parameter sets,
    /// e.g. the dense-to-sparse key of sparse-secret encapsulation.
    ///
    /// # Panics
    /// If the ring degrees differ.
    pub fn secret_from_key(&self, sk: &SecretKey) -> SecretKey {
        assert_eq!(sk.params.n(), self.params.n(), "ring degrees differ");
        let q = sk.params.q();
        let mut limb = sk.s.limb(0).to_vec();
        q.plan(0).inverse(&mut limb);
        let m = q.modulus(0);
        let mut coeffs: Vec<i64> = limb.iter().map(|&x| m.center(x)).collect();
        limb.zeroize();
        let out = self.secret_from_coeffs(&coeffs);
        coeffs.zeroize();
        out
    }

    /// A secret key from explicit small coefficients.
    pub fn secret_from_coeffs(&self, coeffs: &[i64]) -> SecretKey {
        let qp = self.params.qp();
        let mut s = RnsPoly::from_signed(coeffs, qp, qp.len());
        qp.ntt(&mut s);
        SecretKey {
            params: self.params.clone(),
            s,
        }
    }

    /// Error polynomial over the first `limbs` primes of `basis`, evaluation form.
    pub(crate) fn error_poly(&mut self, basis: &psf_math::RnsBasis, limbs: usize) -> RnsPoly {
        let mut e_coeffs = self.sampler.gaussian(self.params.n(), self.params.sigma());
        let mut e = RnsPoly::from_signed(&e_coeffs, basis, limbs);
        e_coeffs.zeroize();
        basis.ntt(&mut e);
        e
    }

    /// The sampler (for encryptors sharing this generator's randomness).
    pub fn sampler_mut(&mut self) -> &mut Sampler {
        &mut self.sampler
    }

    /// Public key for `sk`.
    pub fn gen_public_key(&mut self, sk: &SecretKey) -> PublicKey {
        let params = self.params.clone();
        let q = params.q();
        let limbs = q.len();
        let a = self.sampler.uniform_poly(q, limbs, Repr::Eval);
        let mut b = self.error_poly(q, limbs);
        let s = sk.s.prefix(limbs);
        let mut as_ = RnsPoly::zero(q.n(), limbs, Repr::Eval);
        q.mul(&a, &s, &mut as_);
        q.sub_assign(&mut b, &as_);
        PublicKey {
            params: self.params.clone(),
            b,
            a,
        }
    }

    /// Switching key from `s_in` (evaluation form over `QP`) to `sk`, full (every level).
    pub fn gen_switching_key(&mut self, s_in: &RnsPoly, sk: &SecretKey) -> SwitchingKey {
        let top = self.params.max_level();
        self.switching_key_at(s_in, sk, top)
    }

    /// Switching key from `s_in` (evaluation form over `QP`; only its limbs of `Q_0..Q_L` are
    /// read) to `sk`, limited to `max_level` (`L`): `a` and the errors are sampled directly
    /// over `Q_L ++ P`, and only the digits covering `Q_0..Q_L` are made. `L = |Q| - 1` gives
    /// [`Self::gen_switching_key`]'s key.
    ///
    /// # Errors
    /// [`crate::RlweError::InvalidLevel`] when `max_level` exceeds the parameters' top level.
    pub fn gen_switching_key_up_to(
        &mut self,
        s_in: &RnsPoly,
        sk: &SecretKey,
        max_level: usize,
    ) -> Result<SwitchingKey> {
        self.params.check_level(max_level)?;
        Ok(self.switching_key_at(s_in, sk, max_level))
    }

    /// The key of [`Self::gen_switching_key_up_to`] for a checked level.
    fn switching_key_at(&mut self, s_in: &RnsPoly, sk: &SecretKey, level: usize) -> SwitchingKey {
        let params = self.params.clone();
        let basis = params.ks().qlp(level);
        let (nq, alpha) = (params.q().len(), params.digit_size());
        let p_mod_q: Vec<u64> = (0..=level)
            .map(|i| params.p().product_mod(basis.modulus(i)))
            .collect();
        let s = restrict_to_level(&sk.s, nq, level);
        let digits = (0..SwitchingKey::digits_at(&params, level))
            .map(|j| {
                let a = self.sampler.uniform_poly(basis, basis.len(), Repr::Eval);
                let mut b = self.error_poly(basis, basis.len());
                let mut as_ = RnsPoly::zero(basis.n(), basis.len(), Repr::Eval);
                basis.mul(&a, &s, &mut as_);
                basis.sub_assign(&mut b, &as_);
                // + P * g_j * s_in: on the primes of digit j, P mod q_i; zero elsewhere.
                for i in (j * alpha)..((j + 1) * alpha).min(level + 1) {
                    let m = basis.modulus(i);
                    let (w, ws) = (p_mod_q[i], m.shoup(p_mod_q[i]));
                    let src = s_in.limb(i);
                    for (d, &x) in b.limb_mut(i).iter_mut().zip(src) {
                        *d = m.add(*d, m.mul_shoup(x, w, ws));
                    }
                }
                (b, a)
            })
            .collect();
        let mut s = s;
        s.data_mut().zeroize();
        SwitchingKey { params, digits }
    }

    /// Relinearization key (`s^2 -> s`).
    pub fn gen_relinearization_key(&mut self, sk: &SecretKey) -> RelinearizationKey {
        let top = self.params.max_level();
        RelinearizationKey(self.with_square(sk, |g, s2| g.switching_key_at(s2, sk, top)))
    }

    /// Relinearization key limited to `max_level` (see [`Self::gen_switching_key_up_to`]).
    ///
    /// # Errors
    /// [`crate::RlweError::InvalidLevel`] when `max_level` exceeds the top level.
    pub fn gen_relinearization_key_up_to(
        &mut self,
        sk: &SecretKey,
        max_level: usize,
    ) -> Result<RelinearizationKey> {
        self.params.check_level(max_level)?;
        Ok(RelinearizationKey(self.with_square(sk, |g, s2| {
            g.switching_key_at(s2, sk, max_level)
        })))
    }

    /// Runs `f` with `s^2` over `QP` (zeroized afterwards).
    fn with_square<T>(&mut self, sk: &SecretKey, f: impl FnOnce(&mut Self, &RnsPoly) -> T) -> T {
        let qp = self.params.qp();
        let mut s2 = RnsPoly::zero(qp.n(), qp.len(), Repr::Eval);
        qp.mul(&sk.s, &sk.s, &mut s2);
        let out = f(self, &s2);
        s2.data_mut().zeroize();
        out
    }

    /// Galois key for `X -> X^g` (`s(X^g) -> s`), full.
    pub fn gen_galois_key(&mut self, galois_element: usize, sk: &SecretKey) -> Result<GaloisKey> {
        let top = self.params.max_level();
        self.gen_galois_key_up_to(galois_element, sk, top)
    }

    /// Galois key for `X -> X^g` limited to `max_level` (see
    /// [`Self::gen_switching_key_up_to`]).
    ///
    /// # Errors
    /// [`crate::RlweError::InvalidParameters`] for an even element;
    /// [`crate::RlweError::InvalidLevel`] when `max_level` exceeds the top level.
    pub fn gen_galois_key_up_to(
        &mut self,
        galois_element: usize,
        sk: &SecretKey,
        max_level: usize,
    ) -> Result<GaloisKey> {
        let two_n = 2 * self.params.n();
        let g = galois_element % two_n;
        if g.is_multiple_of(2) {
            return Err(crate::RlweError::InvalidParameters {
                reason: format!("Galois element {galois_element} is even"),
            });
        }
        self.params.check_level(max_level)?;
        let qp = self.params.qp();
        let perm = self.params.galois_permutation(g);
        let mut sg = RnsPoly::zero(qp.n(), qp.len(), Repr::Eval);
        qp.automorphism_eval(&sk.s, &perm, &mut sg);
        let key = self.switching_key_at(&sg, sk, max_level);
        sg.data_mut().zeroize();
        Ok(GaloisKey {
            galois_element: g,
            key,
        })
    }
}

/// The limbs `Q_0..Q_level ++ P` of `s` (over `QP`, `nq` limbs of `Q`).
fn restrict_to_level(s: &RnsPoly, nq: usize, level: usize) -> RnsPoly {
    let (n, q_len) = (s.n(), (level + 1) * s.n());
    let mut out = RnsPoly::zero(n, s.limbs() - (nq - level - 1), Repr::Eval);
    out.data_mut()[..q_len].copy_from_slice(&s.data()[..q_len]);
    out.data_mut()[q_len..].copy_from_slice(&s.data()[nq * n..]);
    out
}
