//! Errors of the circuits layer.

use psf_ckks::CkksError;

/// Everything that can go wrong in `psf-circuits`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CircuitError {
    /// Error from the CKKS layer.
    #[error(transparent)]
    Ckks(#[from] CkksError),
    /// An approximation could not be built.
    #[error(transparent)]
    Approx(#[from] psf_approx::ApproxError),
    /// The input ciphertext has too few levels for the circuit.
    #[error("circuit needs input level >= {needed}, got {level}")]
    NotEnoughLevels { needed: usize, level: usize },
    /// Invalid circuit configuration.
    #[error("invalid circuit: {0}")]
    Invalid(String),
    /// A cost table lacks the latency of a counted primitive (`level: None`: the count was
    /// recorded without a level).
    #[error(
        "cost table {table} has no cost for {primitive:?} at level {level:?}, {threads} threads"
    )]
    NoCost {
        primitive: psf_ckks::Primitive,
        level: Option<usize>,
        threads: usize,
        table: String,
    },
}

impl From<psf_rlwe::RlweError> for CircuitError {
    fn from(e: psf_rlwe::RlweError) -> Self {
        CircuitError::Ckks(e.into())
    }
}

/// Result alias of `psf-circuits`.
pub type Result<T> = std::result::Result<T, CircuitError>;
