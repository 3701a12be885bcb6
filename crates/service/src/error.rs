//! The service's error type: every failure a request can meet, with its HTTP status and a
//! stable machine-readable code, answered as a typed JSON body ([`ErrorBody`]).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use psf_ckks::serialization::DecodeError;
use serde::{Deserialize, Serialize};

/// Errors of the server and the client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// No session with this id (never created, closed, or expired).
    #[error("unknown session {id}")]
    UnknownSession { id: String },
    /// A request body larger than the limit for its kind.
    #[error("{what} of {size} bytes exceeds the limit of {limit} bytes")]
    PayloadTooLarge {
        what: &'static str,
        size: u64,
        limit: u64,
    },
    /// A body that could not be read to its end (the client went away or sent less).
    #[error("reading the request body failed: {reason}")]
    BodyRead { reason: String },
    /// Bytes that do not decode as the expected object under the server's parameters.
    #[error("malformed {what}: {source}")]
    Decode {
        what: &'static str,
        #[source]
        source: DecodeError,
    },
    /// A batch frame that does not parse (see [`crate::frame`]).
    #[error("malformed batch at offset {offset}: {reason}")]
    Frame { offset: usize, reason: String },
    /// A well-formed request the server cannot accept (wrong shape, level, count, ...).
    #[error("invalid request: {reason}")]
    InvalidRequest { reason: String },
    /// The session lacks keys the workload needs (upload them first).
    #[error(
        "missing keys: relinearization {relin_missing}, Galois elements {galois:?}, \
         encapsulation {encapsulation_missing}"
    )]
    MissingKeys {
        relin_missing: bool,
        galois: Vec<usize>,
        encapsulation_missing: bool,
    },
    /// The session limit is reached.
    #[error("too many sessions (limit {limit})")]
    TooManySessions { limit: usize },
    /// The memory budget for session state would be exceeded.
    #[error("memory budget exceeded: {needed} bytes requested, {available} of {budget} free")]
    MemoryBudget {
        needed: u64,
        available: u64,
        budget: u64,
    },
    /// Every job slot and queue place is taken.
    #[error("server busy: {running} jobs running, {queued} queued (try again later)")]
    Busy { running: usize, queued: usize },
    /// The session already runs a job that needs its state exclusively.
    #[error("session {id} is busy with another job")]
    SessionBusy { id: String },
    /// The session's encrypted cache holds the maximum number of steps.
    #[error("session cache full: {steps} steps (limit {limit})")]
    CacheFull { steps: usize, limit: usize },
    /// No such endpoint.
    #[error("no endpoint {method} {path}")]
    NotFound { method: String, path: String },
    /// The endpoint exists but not with this method.
    #[error("method {method} not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    /// The server is shutting down.
    #[error("server shutting down")]
    ShuttingDown,
    /// A homomorphic operation failed.
    #[error("homomorphic evaluation failed: {0}")]
    Circuit(#[from] psf_circuits::CircuitError),
    /// A CKKS operation failed.
    #[error("CKKS error: {0}")]
    Ckks(#[from] psf_ckks::CkksError),
    /// The encrypted inference engine failed.
    #[error("inference engine error: {reason}")]
    Engine { reason: String },
    /// The encrypted language model failed (compiling it, or a job's forward pass).
    #[error("encrypted model: {0}")]
    Infer(#[from] psf_infer::InferError),
    /// The model directory could not be loaded (files, weights, spec, tokenizer).
    #[error("model {path}: {reason}")]
    Model { path: String, reason: String },
    /// An internal failure (a job that panicked, a worker that vanished).
    #[error("internal error: {reason}")]
    Internal { reason: String },
    /// Client side: the server could not be reached or the exchange failed.
    #[error("transport error: {0}")]
    Transport(#[from] reqwest::Error),
    /// Client side: the server answered with a typed error.
    #[error("server answered {status}: {} ({})", body.message, body.code)]
    Server { status: u16, body: ErrorBody },
    /// Client side: a server answer that is not what the API promises.
    #[error("unexpected server answer: {reason}")]
    Protocol { reason: String },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, ServiceError>;

/// The JSON body of every error answer: `{"code": "...", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `"unknown_session"`.
    pub code: String,
    /// Human-readable description.
    pub message: String,
}

impl ServiceError {
    /// The stable code of this error (the `code` field of [`ErrorBody`]).
    pub fn code(&self) -> &'static str {
        use ServiceError::*;
        match self {
            UnknownSession { .. } => "unknown_session",
            PayloadTooLarge { .. } => "payload_too_large",
            BodyRead { .. } => "body_read",
            Decode { .. } => "malformed_object",
            Frame { .. } => "malformed_frame",
            InvalidRequest { .. } => "invalid_request",
            MissingKeys { .. } => "missing_keys",
            TooManySessions { .. } => "too_many_sessions",
            MemoryBudget { .. } => "memory_budget",
            Busy { .. } => "busy",
            SessionBusy { .. } => "session_busy",
            CacheFull { .. } => "cache_full",
            NotFound { .. } => "not_found",
            MethodNotAllowed { .. } => "method_not_allowed",
            ShuttingDown => "shutting_down",
            Circuit(_) | Ckks(_) | Engine { .. } | Infer(_) => "evaluation_failed",
            Model { .. } => "model",
            Internal { .. } => "internal",
            Transport(_) => "transport",
            Server { .. } => "server",
            Protocol { .. } => "protocol",
        }
    }

    /// The HTTP status the server answers this error with.
    pub fn status(&self) -> StatusCode {
        use ServiceError::*;
        match self {
            UnknownSession { .. } | NotFound { .. } => StatusCode::NOT_FOUND,
            PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyRead { .. }
            | Decode { .. }
            | Frame { .. }
            | InvalidRequest { .. }
            | MissingKeys { .. } => StatusCode::BAD_REQUEST,
            MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Circuit(_) | Ckks(_) | Engine { .. } | Infer(_) => StatusCode::UNPROCESSABLE_ENTITY,
            SessionBusy { .. } | CacheFull { .. } => StatusCode::CONFLICT,
            TooManySessions { .. } | MemoryBudget { .. } | Busy { .. } | ShuttingDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Model { .. } | Internal { .. } | Transport(_) | Server { .. } | Protocol { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// The JSON body of this error.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code().to_owned(),
            message: self.to_string(),
        }
    }

    /// Whether the server answered with this `code` (client side), or this error has it.
    pub fn has_code(&self, code: &str) -> bool {
        match self {
            ServiceError::Server { body, .. } => body.code == code,
            other => other.code() == code,
        }
    }
}

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        (self.status(), axum::Json(self.body())).into_response()
    }
}
