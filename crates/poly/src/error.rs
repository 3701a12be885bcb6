//! The error type of psf-poly.

use std::path::PathBuf;

/// Everything that can go wrong in psf-poly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolyError {
    /// The model crate failed (loading, forward, tokenizing).
    #[error(transparent)]
    Model(#[from] psf_model::Error),
    /// A polynomial could not be built.
    #[error(transparent)]
    Approx(#[from] psf_approx::ApproxError),
    /// A tensor could not be read.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A weight is missing or has the wrong shape.
    #[error("weight {name}: {msg}")]
    Weight {
        /// Hugging Face tensor name.
        name: String,
        /// What is wrong.
        msg: String,
    },
    /// Input of the wrong shape (embeddings width, positions past the sequence, ...).
    #[error("shape: expected {expected}, got {got}")]
    Shape {
        /// What was expected.
        expected: String,
        /// What was given.
        got: String,
    },
    /// A spec that does not fit the model or cannot be evaluated.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// The model uses something the polynomial model does not support.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON document could not be parsed or written.
    #[error("{path}: {source}")]
    Json {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
}

/// `Result` with [`PolyError`].
pub type Result<T> = std::result::Result<T, PolyError>;

impl PolyError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        PolyError::Io {
            path: path.into(),
            source,
        }
    }
    pub(crate) fn json(path: &std::path::Path, source: serde_json::Error) -> Self {
        PolyError::Json {
            path: path.into(),
            source,
        }
    }
}
