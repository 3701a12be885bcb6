//! `psf-circuits`: CKKS circuits for psformer, written once over the [`Backend`] trait and
//! run on ciphertexts ([`HeBackend`]) or on cleartext with exact level/scale bookkeeping and
//! primitive counts (the simulation evaluator).

pub mod approx;
mod backend;
mod error;

pub use backend::{Backend, HeBackend};
pub use error::{CircuitError, Result};
