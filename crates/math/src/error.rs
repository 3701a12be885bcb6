//! Errors of the math layer.

/// Everything that can go wrong in `psf-math`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MathError {
    /// The modulus is outside the supported range `[2, 2^62)`.
    #[error("modulus {modulus} is not supported (need 2 <= q < 2^62)")]
    UnsupportedModulus { modulus: u64 },
    /// The ring degree is not a power of two in the supported range.
    #[error("ring degree {n} is not supported (need a power of two in [2^{min_log}, 2^{max_log}])")]
    UnsupportedDegree {
        n: usize,
        min_log: u32,
        max_log: u32,
    },
    /// The modulus is not prime or not congruent to 1 modulo 2N.
    #[error("modulus {modulus} is not an NTT-friendly prime for N = {n} (need prime q = 1 mod 2N)")]
    NotNttFriendly { modulus: u64, n: usize },
    /// Not enough primes of the requested size exist.
    #[error("could not find {wanted} NTT-friendly primes of {bits} bits for N = {n}")]
    NotEnoughPrimes { wanted: usize, bits: u32, n: usize },
    /// Two moduli in a basis are equal.
    #[error("modulus {modulus} appears twice in an RNS basis")]
    DuplicateModulus { modulus: u64 },
    /// An operation got operands of mismatching shape.
    #[error("shape mismatch: {what}: expected {expected}, found {found}")]
    ShapeMismatch {
        what: &'static str,
        expected: usize,
        found: usize,
    },
    /// A value has no inverse modulo q.
    #[error("{value} is not invertible modulo {modulus}")]
    NotInvertible { value: u64, modulus: u64 },
}

/// Result alias of `psf-math`.
pub type Result<T> = std::result::Result<T, MathError>;
