//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in `psf-model`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor operation failed (shape mismatch, missing tensor in a checkpoint, ...).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON document (config, checkpoint metadata) could not be parsed or written.
    #[error("{path}: {source}")]
    Json {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// A model configuration is inconsistent or unsupported.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// The tokenizer library failed (training, loading, encoding).
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// An xz stream could not be decompressed.
    #[error("{path}: xz: {msg}")]
    Xz {
        /// The file involved.
        path: PathBuf,
        /// What the decoder said.
        msg: String,
    },
    /// There is not enough data for what was asked (e.g. fewer tokens than one sequence).
    #[error("not enough data: {0}")]
    NotEnoughData(String),
    /// A checkpoint does not match the model or the training run it should resume.
    #[error("checkpoint {path}: {msg}")]
    Checkpoint {
        /// The checkpoint directory.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A GGUF checkpoint is malformed or uses something the importer does not support.
    #[error("gguf {path}: {msg}")]
    Gguf {
        /// The file involved.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// Fetching a published checkpoint into the cache failed.
    #[error("fetch {what}: {msg}")]
    Fetch {
        /// What was being fetched.
        what: String,
        /// What went wrong, with the command to run by hand.
        msg: String,
    },
    /// A task file (JSONL) is malformed.
    #[error("{path}:{line}: {msg}")]
    TaskFile {
        /// The file involved.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// An evaluation request cannot be scored (empty choices, answer out of range, a
    /// continuation longer than the model's context, ...).
    #[error("evaluation input: {what}")]
    EvalInput {
        /// What is wrong.
        what: String,
    },
    /// Drawing or writing a PNG figure failed.
    #[error("plot {path}: {msg}")]
    Plot {
        /// The file being written.
        path: PathBuf,
        /// What the plotting library said.
        msg: String,
    },
    /// A loss or a gradient became NaN or infinite.
    #[error("non-finite value at step {step}: {what}")]
    NonFinite {
        /// The optimizer step.
        step: usize,
        /// What became non-finite.
        what: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    /// Wraps a JSON error with the path it concerns.
    pub fn json(path: impl Into<PathBuf>, source: serde_json::Error) -> Self {
        Error::Json {
            path: path.into(),
            source,
        }
    }
}
