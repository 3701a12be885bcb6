//! psf-service: the HTTP server (sessions, uploaded evaluation keys, encrypted jobs, limits,
//! typed JSON errors) and the client library that talks to it (DESIGN.md §5).
//!
//! - [`server::Server`]: axum routes ([`api`]), sessions with memory accounting
//!   ([`session`]), the blocking worker pool ([`jobs`]), health and metrics, graceful shutdown;
//! - [`workload::Engine`]: what a session's jobs compute: the encrypted language model
//!   ([`model`]) or the small [`probe`] layer;
//! - [`client::Client`] and [`client::ClientKeys`]: the other side, and
//!   [`model_client::ModelClient`] for a model (embedding lookup, encryption, logits);
//! - [`frame`]: the ciphertext batches of job bodies and the job results, on top of the PSFW
//!   wire format.

pub mod api;
pub mod client;
mod error;
pub mod frame;
pub mod fuzzing;
pub mod jobs;
mod keys;
mod limits;
pub mod metrics;
pub mod model;
pub mod model_client;
pub mod probe;
pub mod server;
pub mod session;
pub mod workload;

pub use api::SessionMode;
pub use client::{Client, ClientKeys, JobOutput};
pub use error::{ErrorBody, Result, ServiceError};
pub use limits::Limits;
pub use model::{Calibration, ModelOptions, ModelSpec, ModelWorkload, StepFacts};
pub use model_client::ModelClient;
pub use probe::{Probe, ProbeSpec};
pub use server::Server;
pub use workload::Engine;
