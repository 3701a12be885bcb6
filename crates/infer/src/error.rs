//! Errors of the inference engine.

use psf_circuits::CircuitError;

/// Everything that can go wrong in `psf-infer`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InferError {
    /// Error from the circuits layer (and, through it, CKKS).
    #[error(transparent)]
    Circuit(#[from] CircuitError),
    /// Error from the CKKS layer.
    #[error(transparent)]
    Ckks(#[from] psf_ckks::CkksError),
    /// Error from an approximation recipe.
    #[error(transparent)]
    Approx(#[from] psf_approx::ApproxError),
    /// Error from the polynomial-model crate.
    #[error(transparent)]
    Poly(#[from] psf_poly::PolyError),
    /// A shape that does not fit the model or the layout.
    #[error("shape mismatch in {what}: expected {expected}, got {got}")]
    Shape {
        /// What was checked.
        what: String,
        /// What was expected.
        expected: String,
        /// What was given.
        got: String,
    },
    /// The model cannot be laid out or compiled with these options.
    #[error("cannot compile: {0}")]
    Unsupported(String),
    /// A stage needs more levels than a bootstrap leaves.
    #[error("stage {stage} needs {needed} levels, a refreshed ciphertext has {available}")]
    TooDeep {
        /// The stage.
        stage: String,
        /// Levels it consumes.
        needed: usize,
        /// Levels after bootstrapping.
        available: usize,
    },
    /// A refresh point was reached that the compiled plan does not know (the plan and the
    /// inputs disagree on the circuit's shape).
    #[error("refresh point {0} missing from the compiled plan")]
    UnknownRefresh(String),
    /// A decoding step past the decoder's maximum length.
    #[error("the KV cache is full: {max_len} positions")]
    CacheFull {
        /// The decoder's maximum length.
        max_len: usize,
    },
    /// Values at a refresh site too large for bootstrapping (the calibration drove the model
    /// outside its approximation intervals, or the model diverges there).
    #[error(
        "refresh site {site}: values up to {max_abs:e}, bootstrapping takes magnitudes below {limit:e}"
    )]
    RefreshRange {
        /// The site.
        site: String,
        /// Largest magnitude the dry run saw.
        max_abs: f64,
        /// Largest the bootstrap input scale allows.
        limit: f64,
    },
    /// The dry run produced non-finite values on a calibration sequence (the polynomial model
    /// diverges there: inputs outside its approximation intervals).
    #[error("calibration sequence {sequence}, position {position}: non-finite logits")]
    Diverged {
        /// Index of the calibration sequence.
        sequence: usize,
        /// Position in it.
        position: usize,
    },
    /// Writing a report or chart failed.
    #[error("report output {path}: {msg}")]
    Output {
        /// Path written.
        path: String,
        /// Cause.
        msg: String,
    },
}

impl InferError {
    pub(crate) fn shape(what: &str, expected: impl ToString, got: impl ToString) -> Self {
        InferError::Shape {
            what: what.into(),
            expected: expected.to_string(),
            got: got.to_string(),
        }
    }
}

impl From<psf_rlwe::RlweError> for InferError {
    fn from(e: psf_rlwe::RlweError) -> Self {
        InferError::Ckks(e.into())
    }
}

/// Result alias of `psf-infer`.
pub type Result<T> = std::result::Result<T, InferError>;
