//! Sparse-secret encapsulation (Bossuat, Troncoso-Pastoriza, Hubaux 2022): the user computes
//! under a dense ternary secret `s`; bootstrapping switches to an ephemeral sparse secret `s'`
//! at level 0, so that ModRaise adds only a small multiple `q_0 I` (`|I| < K` with `K` from the
//! weight `h`, see [`super::eval_mod::k_bound`]), and switches back to `s` at the top level.
//!
//! The dense-to-sparse key lives in a small parameter set `{q_0} x {p'}` of its own (`p'` a
//! fresh 61-bit prime): an RLWE instance under the sparse secret only over `q_0 p'` (~121
//! bits), as in Lattigo's defaults. The sparse-to-dense key is an ordinary key of the main set
//! under the dense secret.

use std::sync::Arc;

use psf_ckks::{CkksParameters, KeyGenerator, SecretKey};
use psf_math::{PrimeSearch, ntt_primes};
use psf_rlwe::{Parameters, ParametersLiteral, SecretDistribution, SwitchingKey};

use crate::{CircuitError, Result};

/// Bits of the auxiliary prime of the small dense-to-sparse set.
const AUX_PRIME_BITS: u32 = 61;

/// The two switching keys of sparse-secret encapsulation and the small set of the first.
pub struct Encapsulation {
    weight: usize,
    small: Arc<Parameters>,
    to_sparse: SwitchingKey,
    to_dense: SwitchingKey,
}

/// The small set `{q_0} x {p'}` of weight `h` for the main set `params`: `q_0` is the main
/// set's first prime and `p'` the largest 61-bit NTT prime below `2^61` that the main set does
/// not use, so both sides of the wire derive the same set from `(params, h)`.
///
/// # Errors
/// A weight the ring cannot hold, or no free auxiliary prime.
pub fn small_params(params: &CkksParameters, h: usize) -> Result<Arc<Parameters>> {
    let ring = params.ring();
    let q0 = ring.q().primes()[0];
    let used: Vec<u64> = ring
        .q()
        .primes()
        .into_iter()
        .chain(ring.p().primes())
        .collect();
    let aux = ntt_primes(AUX_PRIME_BITS, ring.n(), 1, PrimeSearch::Below, &used)
        .map_err(psf_rlwe::RlweError::from)?;
    Ok(ParametersLiteral {
        name: format!("{}_ENCAPSULATION_H{h}", ring.name()),
        log_n: ring.log_n(),
        log_q: vec![],
        log_p: vec![],
        q: Some(vec![q0]),
        p: Some(aux),
        digit_size: None,
        secret: SecretDistribution::SparseTernary { hamming_weight: h },
        sigma: ring.sigma(),
    }
    .try_build()?)
}

impl Encapsulation {
    /// Keys for the dense secret `sk` of `params` and a fresh sparse secret of weight `h`
    /// (drawn from `seed` when given, for tests; from the OS otherwise).
    pub fn generate(
        params: &CkksParameters,
        sk: &SecretKey,
        h: usize,
        seed: Option<u64>,
    ) -> Result<Self> {
        let ring = params.ring();
        let small = small_params(params, h)?;
        let (mut kgen, mut kgen_small) = match seed {
            Some(s) => (
                KeyGenerator::seeded(ring, s),
                KeyGenerator::seeded(&small, s.wrapping_add(1)),
            ),
            None => (KeyGenerator::new(ring), KeyGenerator::new(&small)),
        };
        let sparse = kgen_small.gen_secret_key();
        let dense_small = kgen_small.secret_from_key(sk);
        let to_sparse = kgen_small.gen_switching_key(dense_small.poly(), &sparse);
        let sparse_main = kgen.secret_from_key(&sparse);
        let to_dense = kgen.gen_switching_key(sparse_main.poly(), sk);
        Ok(Self {
            weight: h,
            small,
            to_sparse,
            to_dense,
        })
    }

    /// Keys received from elsewhere (the wire format): `to_sparse` must be a key over
    /// [`small_params`]`(params, h)` and `to_dense` over `params`.
    ///
    /// # Errors
    /// [`CircuitError::Invalid`] naming the key whose parameters differ.
    pub fn from_parts(
        params: &CkksParameters,
        h: usize,
        to_sparse: SwitchingKey,
        to_dense: SwitchingKey,
    ) -> Result<Self> {
        let small = small_params(params, h)?;
        let fp = psf_ckks::serialization::parameters_fingerprint;
        for (what, key, want) in [
            ("dense-to-sparse", &to_sparse, &small),
            ("sparse-to-dense", &to_dense, params.ring()),
        ] {
            if fp(key.params()) != fp(want) || key.digits.len() != want.dnum() {
                return Err(CircuitError::Invalid(format!(
                    "{what} key is not over {}",
                    want.name()
                )));
            }
        }
        Ok(Self {
            weight: h,
            small,
            to_sparse,
            to_dense,
        })
    }

    /// Hamming weight of the sparse secret.
    pub fn weight(&self) -> usize {
        self.weight
    }

    /// The small set `{q_0} x {p'}` with the sparse secret.
    pub fn small_params(&self) -> &Arc<Parameters> {
        &self.small
    }

    /// The dense-to-sparse key (over the small set).
    pub fn to_sparse(&self) -> &SwitchingKey {
        &self.to_sparse
    }

    /// The sparse-to-dense key (over the main set).
    pub fn to_dense(&self) -> &SwitchingKey {
        &self.to_dense
    }

    /// Bytes of key material.
    pub fn size_bytes(&self) -> usize {
        self.to_sparse.size_bytes() + self.to_dense.size_bytes()
    }
}
