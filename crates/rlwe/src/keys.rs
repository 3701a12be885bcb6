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

/// A hybrid key-switching key from `s_in` to `s`: one `(b_j, a_j)` pair over `QP` per digit,
/// `b_j = -a_j s + e_j + P * g_j * s_in` with `g_j` the CRT gadget of digit `j`.
#[derive(Clone)]
pub struct SwitchingKey {
    params: Arc<Parameters>,
    /// `(b_j, a_j)` per digit, evaluation form over `QP`.
    pub digits: Vec<(RnsPoly, RnsPoly)>,
}

impl SwitchingKey {
    /// Wraps digits (shape checked by the decoder).
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

    /// Size in bytes of the key material.
    pub fn size_bytes(&self) -> usize {
        self.digits
            .iter()
            .map(|(b, a)| 8 * (b.data().len() + a.data().len()))
            .sum()
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

    /// Switching key from `s_in` (evaluation form over `QP`) to `sk`.
    pub fn gen_switching_key(&mut self, s_in: &RnsPoly, sk: &SecretKey) -> SwitchingKey {
        let params = self.params.clone();
        let qp = params.qp();
        let (nq, alpha) = (params.q().len(), params.digit_size());
        let p_mod_q: Vec<u64> = (0..nq)
            .map(|i| params.p().product_mod(qp.modulus(i)))
            .collect();
        let digits = (0..params.dnum())
            .map(|j| {
                let a = self.sampler.uniform_poly(qp, qp.len(), Repr::Eval);
                let mut b = self.error_poly(qp, qp.len());
                let mut as_ = RnsPoly::zero(qp.n(), qp.len(), Repr::Eval);
                qp.mul(&a, &sk.s, &mut as_);
                qp.sub_assign(&mut b, &as_);
                // + P * g_j * s_in: on the primes of digit j, P mod q_i; zero elsewhere.
                for i in (j * alpha)..((j + 1) * alpha).min(nq) {
                    let m = qp.modulus(i);
                    let (w, ws) = (p_mod_q[i], m.shoup(p_mod_q[i]));
                    let src = s_in.limb(i);
                    for (d, &x) in b.limb_mut(i).iter_mut().zip(src) {
                        *d = m.add(*d, m.mul_shoup(x, w, ws));
                    }
                }
                (b, a)
            })
            .collect();
        SwitchingKey { params, digits }
    }

    /// Relinearization key (`s^2 -> s`).
    pub fn gen_relinearization_key(&mut self, sk: &SecretKey) -> RelinearizationKey {
        let qp = self.params.qp();
        let mut s2 = RnsPoly::zero(qp.n(), qp.len(), Repr::Eval);
        qp.mul(&sk.s, &sk.s, &mut s2);
        let key = self.gen_switching_key(&s2, sk);
        s2.data_mut().zeroize();
        RelinearizationKey(key)
    }

    /// Galois key for `X -> X^g` (`s(X^g) -> s`).
    pub fn gen_galois_key(&mut self, galois_element: usize, sk: &SecretKey) -> Result<GaloisKey> {
        let two_n = 2 * self.params.n();
        let g = galois_element % two_n;
        if g.is_multiple_of(2) {
            return Err(crate::RlweError::InvalidParameters {
                reason: format!("Galois element {galois_element} is even"),
            });
        }
        let qp = self.params.qp();
        let perm = self.params.galois_permutation(g);
        let mut sg = RnsPoly::zero(qp.n(), qp.len(), Repr::Eval);
        qp.automorphism_eval(&sk.s, &perm, &mut sg);
        let key = self.gen_switching_key(&sg, sk);
        sg.data_mut().zeroize();
        Ok(GaloisKey {
            galois_element: g,
            key,
        })
    }
}
