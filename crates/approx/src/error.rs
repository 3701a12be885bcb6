//! The error type of psf-approx.

/// Why an approximation could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ApproxError {
    /// An interval, degree or option that cannot give an approximation (the message says which).
    #[error("invalid approximation request: {0}")]
    Invalid(String),
}

/// `Result` with [`ApproxError`].
pub type Result<T> = std::result::Result<T, ApproxError>;
