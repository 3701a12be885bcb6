//! `psf-ckks`: the CKKS scheme over psformer's RLWE layer.
//!
//! [`CkksParametersLiteral`] -> [`CkksParameters`] (named sets in [`sets`]), the canonical-
//! embedding [`Encoder`], [`EvaluationKeys`], the [`Evaluator`] (add, multiply, relinearize,
//! rescale, rotate, conjugate, hoisted rotations), precision statistics and serialization.

mod counts;
mod encoder;
// The README's Rust example runs as a doctest of this crate.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

pub mod encoding;
mod error;
mod evaluator;
mod hoisted;
mod keys;
mod params;
pub mod precision;
pub mod serialization;

pub use counts::{LevelCount, LevelCounts, OpCounter, OpCounts, Primitive};
pub use encoder::Encoder;
pub use error::{CkksError, Result};
pub use evaluator::Evaluator;
pub use hoisted::{BabySteps, BlockGiantStep, ExtendedPlaintext, GiantStep};
pub use keys::{EvaluationKeys, galois_element_for_conjugation, galois_element_for_rotation};
pub use params::{CkksParameters, CkksParametersLiteral, sets};
pub use precision::PrecisionStats;
pub use psf_rlwe::{
    Ciphertext, Decryptor, Encryptor, KeyGenerator, MetaData, Plaintext, PublicKey, Scale,
    SecretKey,
};
