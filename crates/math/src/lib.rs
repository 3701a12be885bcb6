//! `psf-math`: the arithmetic under psformer's CKKS engine.
//!
//! 64-bit modular arithmetic ([`Modulus`], [`Montgomery`]), negacyclic NTT ([`NttPlan`]),
//! RNS bases and polynomials ([`RnsBasis`], [`RnsPoly`]), base conversion between RNS bases
//! ([`BasisConverter`]), sampling ([`Sampler`]) and NTT-friendly primes ([`ntt_primes`]).

mod conversion;
mod error;
mod ifma;
mod modulus;
mod ntt;
mod poly;
mod pool;
mod primes;
mod ring_ops;
mod rns;
mod sampling;

pub use conversion::{BasisConverter, CrtReconstructor};
pub use error::{MathError, Result};
pub use modulus::{MAX_MODULUS, Modulus, Montgomery};
pub use ntt::{MAX_LOG_N, MIN_LOG_N, NttBackend, NttPlan};
pub use poly::{Repr, RnsPoly};
pub use pool::BufferPool;
pub use primes::{PrimeSearch, is_ntt_friendly, is_prime, ntt_primes};
pub use rns::RnsBasis;
pub use sampling::{DEFAULT_SIGMA, GAUSSIAN_TAIL, Sampler};
