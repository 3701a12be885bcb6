//! Versioned, length-checked binary format for parameters, plaintexts, ciphertexts and keys.
//!
//! Every object starts with a 16-byte header; all integers are little-endian:
//!
//! | offset | size | field                                                              |
//! |--------|------|--------------------------------------------------------------------|
//! | 0      | 4    | magic [`MAGIC`] (`b"PSFW"`)                                        |
//! | 4      | 2    | format version, `u16` ([`FORMAT_VERSION`])                         |
//! | 6      | 1    | object kind ([`ObjectKind`])                                       |
//! | 7      | 1    | reserved, must be 0                                                |
//! | 8      | 8    | [`parameters_fingerprint`] (parameter blobs: FNV-1a of their body) |
//!
//! Bodies (`u32` unless noted; a polynomial is `limbs x N` residues, `u64` each, limb-major):
//!
//! - plaintext: `scale: f64, log_slots, n, limbs, poly`
//! - ciphertext: `scale: f64, log_slots, n, polys (>= 2), limbs, polys x poly`
//! - secret key: `n, limbs (= |Q|+|P|), s`
//! - public key: `n, limbs (= |Q|), b, a`
//! - switching / relinearization key: `n, digits, limbs, digits x (b, a)`; a key up to level
//!   `L` (`|Q| - 1` for a full key, less for a key limited to the levels a circuit runs at)
//!   has `limbs = L + 1 + |P|` (the primes `q_0..q_L ++ P`) and `digits = ceil((L + 1) /
//!   alpha)` (`dnum` when full); the decoder reads `L` from `limbs` and checks `digits`
//!   against it. Full keys are encoded exactly as before limited keys existed.
//! - Galois key: `galois_element: u64, <switching key body>`
//! - evaluation keys: `has_relin: u8, [<switching key body>], count,
//!   count x (galois_element: u64, <switching key body>)`, elements strictly increasing
//! - encapsulation keys (bootstrapping): `hamming_weight, small_fingerprint: u64, <switching key
//!   body over the small set>, <switching key body over the main set>`, both keys full (see
//!   [`decode_encapsulation`])
//! - parameters: see [`CkksParametersLiteral::to_bytes`](crate::CkksParametersLiteral::to_bytes).
//!
//! Decoding ([`WireDecode::from_bytes`]) needs the parameters and checks everything: magic,
//! version, kind, fingerprint, every length against the parameters (before allocating), every
//! residue against its prime, the metadata, and that no bytes trail. The encoding is canonical:
//! whatever decodes re-encodes to the same bytes. Secret keys are written only through
//! [`WireEncodeSecret::to_bytes_secret`].

mod encapsulation;
mod literal;
mod objects;
mod wire;

pub use encapsulation::{
    EncapsulationParts, decode_encapsulation, encapsulation_encoded_len, encode_encapsulation,
};
use psf_rlwe::Parameters;
use zeroize::Zeroizing;

use crate::CkksParameters;

/// First four bytes of every encoded object.
pub const MAGIC: [u8; 4] = *b"PSFW";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Length of the common header in bytes.
pub const HEADER_LEN: usize = 16;

/// What an encoded object is (byte 6 of the header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum ObjectKind {
    /// [`crate::CkksParametersLiteral`].
    Parameters = 1,
    /// [`psf_rlwe::Plaintext`].
    Plaintext = 2,
    /// [`psf_rlwe::Ciphertext`].
    Ciphertext = 3,
    /// [`psf_rlwe::SecretKey`].
    SecretKey = 4,
    /// [`psf_rlwe::PublicKey`].
    PublicKey = 5,
    /// [`psf_rlwe::SwitchingKey`].
    SwitchingKey = 6,
    /// [`psf_rlwe::RelinearizationKey`].
    RelinearizationKey = 7,
    /// [`psf_rlwe::GaloisKey`].
    GaloisKey = 8,
    /// [`crate::EvaluationKeys`].
    EvaluationKeys = 9,
    /// Encapsulation keys of sparse-secret bootstrapping ([`EncapsulationParts`]).
    EncapsulationKeys = 10,
}

impl ObjectKind {
    /// The kind with header tag `tag`, if any.
    pub fn from_tag(tag: u8) -> Option<Self> {
        use ObjectKind::*;
        [
            Parameters,
            Plaintext,
            Ciphertext,
            SecretKey,
            PublicKey,
            SwitchingKey,
            RelinearizationKey,
            GaloisKey,
            EvaluationKeys,
            EncapsulationKeys,
        ]
        .into_iter()
        .find(|k| *k as u8 == tag)
    }
}

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended early.
    #[error("input truncated: needed {needed} more bytes at offset {offset}")]
    Truncated { offset: usize, needed: usize },
    /// The input does not start with [`MAGIC`].
    #[error("bad magic {found:02x?}: not a psformer object (expected {:?})", MAGIC)]
    BadMagic { found: [u8; 4] },
    /// Written by another format version.
    #[error("unsupported format version {found} (this build reads version {supported})")]
    UnsupportedVersion { found: u16, supported: u16 },
    /// The kind tag names no object.
    #[error("unknown object kind tag {tag}")]
    UnknownKind { tag: u8 },
    /// Another kind of object than asked for.
    #[error("wrong object kind: expected {expected:?}, found {found:?}")]
    WrongKind {
        expected: ObjectKind,
        found: ObjectKind,
    },
    /// Encoded under other parameters (fingerprints differ).
    #[error("parameters mismatch: fingerprint {found:#018x}, expected {expected:#018x}")]
    ParametersMismatch { expected: u64, found: u64 },
    /// A parameter blob whose body does not match its checksum.
    #[error("parameter checksum mismatch: header {found:#018x}, body {expected:#018x}")]
    ChecksumMismatch { expected: u64, found: u64 },
    /// A length or count outside what the parameters allow.
    #[error("invalid {field}: {found} not in [{min}, {max}]")]
    InvalidLength {
        field: &'static str,
        found: u64,
        min: u64,
        max: u64,
    },
    /// A residue not below its prime.
    #[error("residue {value} in limb {limb} is not below its modulus {modulus}")]
    ResidueOutOfRange {
        limb: usize,
        value: u64,
        modulus: u64,
    },
    /// A scale that is not finite and positive (`bits` of the `f64`).
    #[error("invalid scale {} (must be finite and > 0)", f64::from_bits(*bits))]
    InvalidScale { bits: u64 },
    /// More slots than `N / 2`.
    #[error("log_slots = {log_slots} exceeds the maximum {max}")]
    InvalidLogSlots { log_slots: u32, max: u32 },
    /// A Galois element that is even or not below `2N`.
    #[error("invalid Galois element {element} (must be odd and < 2N = {two_n})")]
    InvalidGaloisElement { element: u64, two_n: u64 },
    /// Galois elements of evaluation keys not strictly increasing (duplicates included).
    #[error("Galois element {element} does not follow {previous} (must be strictly increasing)")]
    UnsortedGaloisElements { previous: u64, element: u64 },
    /// A flag or enumeration byte with an unknown value.
    #[error("invalid {field} tag {value}")]
    InvalidTag { field: &'static str, value: u8 },
    /// A string that is not UTF-8.
    #[error("{field} is not valid UTF-8")]
    InvalidUtf8 { field: &'static str },
    /// The decoded parameter literal does not build.
    #[error("invalid parameters: {reason}")]
    InvalidParameters { reason: String },
    /// A lower layer rejected the decoded object.
    #[error("malformed object: {reason}")]
    Malformed { reason: String },
    /// Bytes left after the object.
    #[error("{count} trailing bytes after the object at offset {offset}")]
    TrailingBytes { offset: usize, count: usize },
}

/// Result alias of this module.
pub type DecodeResult<T> = std::result::Result<T, DecodeError>;

/// Objects that can be written without secrets (everything but [`psf_rlwe::SecretKey`]).
pub trait WireEncode {
    /// Exact length of [`WireEncode::to_bytes`]'s output.
    fn encoded_len(&self) -> usize;
    /// The encoding, written into one pre-sized buffer.
    fn to_bytes(&self) -> Vec<u8>;
}

/// Objects decoded against parameters.
pub trait WireDecode: Sized {
    /// Decodes `bytes` (exactly one object), checking it against `params`.
    fn from_bytes(bytes: &[u8], params: &CkksParameters) -> DecodeResult<Self>;
}

/// Secret material: written only through this explicitly named call.
pub trait WireEncodeSecret {
    /// The encoding of the secret, in a buffer zeroized on drop.
    fn to_bytes_secret(&self) -> Zeroizing<Vec<u8>>;
}

/// FNV-1a (64-bit) of `bytes`: a stable, seedless hash (not cryptographic).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    fnv1a64_update(0xcbf2_9ce4_8422_2325, bytes)
}

fn fnv1a64_update(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Fingerprint of a parameter set: FNV-1a over `log_n`, the `Q` and `P` primes and the digit
/// size. Objects carry it, so decoding under other parameters fails early.
pub fn parameters_fingerprint(params: &Parameters) -> u64 {
    let mut h = fnv1a64(b"psformer/parameters");
    h = fnv1a64_update(h, &params.log_n().to_le_bytes());
    for basis in [params.q(), params.p()] {
        h = fnv1a64_update(h, &(basis.len() as u64).to_le_bytes());
        for q in basis.primes() {
            h = fnv1a64_update(h, &q.to_le_bytes());
        }
    }
    fnv1a64_update(h, &(params.digit_size() as u64).to_le_bytes())
}
