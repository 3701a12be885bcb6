//! Errors of the RLWE layer.

use psf_math::MathError;

/// Everything that can go wrong in `psf-rlwe`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RlweError {
    /// Error from the arithmetic layer.
    #[error(transparent)]
    Math(#[from] MathError),
    /// The parameter literal is inconsistent.
    #[error("invalid parameters: {reason}")]
    InvalidParameters { reason: String },
    /// `log QP` exceeds the HE standard's 128-bit bound and the set is not named INSECURE.
    #[error(
        "parameter set {name:?} is not 128-bit secure: log2(QP) = {log_qp:.1} > {max} allowed at N = 2^{log_n} \
         (HE standard, ternary secret); name it INSECURE_... for tests only"
    )]
    Insecure {
        name: String,
        log_qp: f64,
        max: u32,
        log_n: u32,
    },
    /// A level outside `[min, max]`.
    #[error("level {level} is out of range [{min}, {max}]")]
    InvalidLevel {
        level: usize,
        min: usize,
        max: usize,
    },
    /// Operands built for different parameter sets.
    #[error("operands belong to different parameter sets ({left} vs {right})")]
    ParametersMismatch { left: String, right: String },
    /// Operand shape (degree, limb count, representation) differs from what was expected.
    #[error("malformed operand: {reason}")]
    Malformed { reason: String },
    /// A switching key limited to `key_level` used at a higher ciphertext level.
    #[error(
        "key switching at level {level} needs a key up to at least that level; this key \
         reaches level {key_level} (generate it with a higher maximum level)"
    )]
    KeyLevelTooLow { level: usize, key_level: usize },
    /// A key needed for the operation is missing.
    #[error("missing key: {what}")]
    MissingKey { what: String },
}

/// Result alias of `psf-rlwe`.
pub type Result<T> = std::result::Result<T, RlweError>;
