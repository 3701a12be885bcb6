//! `psf-circuits`: CKKS circuits for psformer, written once over the [`Backend`] trait and
//! run on ciphertexts ([`HeBackend`]) or on cleartext with exact level/scale bookkeeping and
//! primitive counts (the simulation evaluator).

mod backend;
pub mod bootstrap;
mod circuit;
pub mod cost;
mod error;
pub mod inverse;
pub mod linear;
pub mod poly_eval;
pub mod sim;
pub mod softmax;

pub use backend::{Backend, HeBackend};
pub use circuit::{Circuit, rotation_galois_elements};
pub use error::{CircuitError, Result};
pub use poly_eval::PolyEval;
pub use sim::{NoiseModel, SimBackend, SimCiphertext, SimPlaintext};
