//! Linear transforms of encrypted slot vectors by plaintext matrices.
//!
//! - [`LinearTransform`]: a matrix by its non-zero generalized diagonals, evaluated by the
//!   diagonal method or baby-step giant-step ([`Strategy`], [`BsgsPlan`]), on any
//!   [`crate::Backend`] ([`EncodedTransform`]) or double hoisted on ciphertexts
//!   ([`DoubleHoistedTransform`]); both record the same primitive counts.
//! - [`BlockTransform`]: block matrices over several ciphertexts.
//! - [`Interleaved`]: the token-interleaved layout of DESIGN.md §4 and its weight products.
//! - [`RotateAndSum`] reductions and plaintext [`Mask`]s.
//!
//! Every transform implements [`crate::Circuit`]: its depth (1 per plaintext product), and the
//! Galois elements of the rotation keys it needs.

mod block;
mod encoded;
mod interleaved;
mod reduce;
mod transform;

pub use block::{BlockTransform, DoubleHoistedBlockTransform, EncodedBlockTransform};
pub use encoded::{DoubleHoistedTransform, EncodedTransform};
pub use interleaved::Interleaved;
pub use reduce::{EncodedMask, Mask, RotateAndSum};
pub use transform::{BsgsPlan, LinearTransform, Strategy};
