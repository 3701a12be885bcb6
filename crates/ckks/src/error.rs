//! Errors of the CKKS layer.

use psf_rlwe::RlweError;

use crate::encoding::EncodingError;

/// Everything that can go wrong in `psf-ckks`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CkksError {
    /// Error from the RLWE layer.
    #[error(transparent)]
    Rlwe(#[from] RlweError),
    /// Error building encoding tables.
    #[error(transparent)]
    Encoding(#[from] EncodingError),
    /// Operands with different scales were added.
    #[error("scale mismatch: 2^{left:.4} vs 2^{right:.4}")]
    ScaleMismatch { left: f64, right: f64 },
    /// Operands with different slot counts.
    #[error("slot count mismatch: 2^{left} vs 2^{right}")]
    SlotsMismatch { left: u32, right: u32 },
    /// Too many values for the slots.
    #[error("{values} values do not fit in {slots} slots")]
    TooManyValues { values: usize, slots: usize },
    /// A scaled value does not fit the encoder's integer range.
    #[error("value {value:e} times scale 2^{log_scale:.1} overflows the encoder (|x| < 2^126)")]
    ValueTooLarge { value: f64, log_scale: f64 },
    /// A ciphertext at level 0 cannot be rescaled.
    #[error("cannot rescale at level {level}")]
    CannotRescale { level: usize },
    /// The operation needs a degree-1 ciphertext (relinearize first).
    #[error("operation needs a degree-1 ciphertext, got degree {degree}")]
    DegreeTooHigh { degree: usize },
    /// A key the operation needs was not given to the evaluator.
    #[error("missing key: {0}")]
    MissingKey(String),
    /// Invalid arguments to an operation (e.g. inconsistent terms of a product).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Malformed serialized data.
    #[error("decoding failed: {0}")]
    Decode(#[from] crate::serialization::DecodeError),
}

/// Result alias of `psf-ckks`.
pub type Result<T> = std::result::Result<T, CkksError>;
