//! Encoding of the encapsulation keys of sparse-secret bootstrapping
//! (`psf_circuits::bootstrap::Encapsulation`): a dense-to-sparse switching key over a small
//! parameter set `{q_0} x {p'}` derived from the main set and the sparse secret's Hamming
//! weight `h`, and a sparse-to-dense switching key over the main set.
//!
//! Body (after the common header, whose fingerprint is the main set's):
//! `hamming_weight: u32, small_fingerprint: u64, <switching key body over the small set>,
//! <switching key body over the main set>`.
//!
//! This crate does not know how the small set is derived (the bootstrapping crate does), so
//! the decoder takes that derivation as a function of `h`; the derived set's fingerprint must
//! equal the one written, and both keys' lengths are checked against the bytes present before
//! anything is allocated.

use std::sync::Arc;

use psf_rlwe::{Parameters, SwitchingKey};

use super::objects::{
    expected_switching_body_len, read_full_switching_body, switching_body_len, write_switching_body,
};
use super::wire::{Reader, Writer};
use super::{DecodeError, DecodeResult, HEADER_LEN, ObjectKind, parameters_fingerprint};
use crate::CkksParameters;

/// Bytes of `hamming_weight: u32, small_fingerprint: u64`.
const PREFIX_LEN: usize = 12;

/// The parts of encapsulation keys as the wire format holds them.
pub struct EncapsulationParts {
    /// Hamming weight of the sparse secret (what the small set is derived from).
    pub hamming_weight: usize,
    /// Dense-to-sparse key over the small set.
    pub to_sparse: SwitchingKey,
    /// Sparse-to-dense key over the main set.
    pub to_dense: SwitchingKey,
}

/// Exact length of [`encode_encapsulation`]'s output.
pub fn encapsulation_encoded_len(to_sparse: &SwitchingKey, to_dense: &SwitchingKey) -> usize {
    HEADER_LEN + PREFIX_LEN + switching_body_len(to_sparse) + switching_body_len(to_dense)
}

/// Encodes encapsulation keys; the header carries the fingerprint of `to_dense`'s (main)
/// parameters, the body that of `to_sparse`'s (small) parameters.
pub fn encode_encapsulation(
    hamming_weight: usize,
    to_sparse: &SwitchingKey,
    to_dense: &SwitchingKey,
) -> Vec<u8> {
    let body = encapsulation_encoded_len(to_sparse, to_dense) - HEADER_LEN;
    let mut w = Writer::new(
        ObjectKind::EncapsulationKeys,
        parameters_fingerprint(to_dense.params()),
        body,
    );
    w.len32(hamming_weight);
    w.u64(parameters_fingerprint(to_sparse.params()));
    write_switching_body(&mut w, to_sparse);
    write_switching_body(&mut w, to_dense);
    w.finish()
}

/// Decodes encapsulation keys under the main set `params`; `small_for(h)` derives the small
/// set of weight `h` (an error string when it cannot be built).
///
/// # Errors
/// Every [`DecodeError`] of the other objects; [`DecodeError::InvalidLength`] for a weight
/// outside `[1, N]`; [`DecodeError::InvalidParameters`] when the small set cannot be derived;
/// [`DecodeError::ParametersMismatch`] when either fingerprint differs.
pub fn decode_encapsulation(
    bytes: &[u8],
    params: &CkksParameters,
    small_for: impl FnOnce(usize) -> Result<Arc<Parameters>, String>,
) -> DecodeResult<EncapsulationParts> {
    let ring = params.ring();
    let mut r = Reader::new(bytes);
    let found = r.header(ObjectKind::EncapsulationKeys)?;
    let expected = parameters_fingerprint(ring);
    if found != expected {
        return Err(DecodeError::ParametersMismatch { expected, found });
    }
    let hamming_weight = r.len32("hamming weight", 1, ring.n())?;
    let found = r.u64()?;
    let small =
        small_for(hamming_weight).map_err(|reason| DecodeError::InvalidParameters { reason })?;
    let expected = parameters_fingerprint(&small);
    if found != expected {
        return Err(DecodeError::ParametersMismatch { expected, found });
    }
    r.ensure(expected_switching_body_len(&small) + expected_switching_body_len(ring))?;
    let to_sparse = read_full_switching_body(&mut r, &small)?;
    let to_dense = read_full_switching_body(&mut r, ring)?;
    r.finish()?;
    Ok(EncapsulationParts {
        hamming_weight,
        to_sparse,
        to_dense,
    })
}
