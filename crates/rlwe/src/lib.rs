//! `psf-rlwe`: the RLWE layer of psformer's CKKS engine.
//!
//! Parameters ([`ParametersLiteral`] -> `Arc<`[`Parameters`]`>`, checked against the HE
//! standard's 128-bit bound), keys ([`KeyGenerator`]), encryption ([`Encryptor`],
//! [`Decryptor`]) and hybrid key switching with hoisting ([`KeySwitcher`]).

mod ciphertext;
mod encryption;
mod error;
mod evaluator;
mod hoisted;
mod keys;
mod keyswitch;
mod params;
pub mod security;

pub use ciphertext::{Ciphertext, MetaData, Plaintext, Scale};
pub use encryption::{Decryptor, Encryptor};
pub use error::{Result, RlweError};
pub use evaluator::KeySwitcher;
pub use hoisted::ExtendedCiphertext;
pub use keys::{GaloisKey, KeyGenerator, PublicKey, RelinearizationKey, SecretKey, SwitchingKey};
pub use keyswitch::Decomposition;
pub use params::{Parameters, ParametersLiteral, SecretDistribution};
