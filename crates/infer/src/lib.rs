//! psf-infer: compiles a polynomial model into a CKKS circuit (layout, levels, bootstrap
//! placement, rotation keys, cost model) and evaluates it on ciphertexts (DESIGN.md §4).
//!
//! The flow (see `README.md` in this crate):
//! 1. [`ModelIr`] (from a `psf_poly::PolyModel`, or built directly) and [`CompileOptions`]
//!    go into [`CompiledModel::compile`], which lays the prompts out ([`Layout`]), folds
//!    weights, and fixes the [`Plan`] by a dry run on the simulation evaluator.
//! 2. The client generates the keys of [`CompiledModel::key_requirements`], encrypts its
//!    embeddings with [`client::Client::encrypt_embeddings`].
//! 3. The server runs [`runtime::forward`] with a [`runtime::ServerContext`] and returns the
//!    logit ciphertexts and a [`Report`].
//! 4. The client decrypts with [`client::Client::decrypt_logits`].
//!
//! Autoregressive generation: [`Decoder::compile`] (step layout, plan by a dry run over
//! calibration sequences), [`client::StepClient`] encrypts one token and decrypts one
//! position's logits, [`runtime::decode::step`] runs one token against the server-side
//! [`runtime::decode::KvCache`].

pub mod chart;
pub mod client;
pub mod compile;
mod error;
mod from_poly;
pub mod layout;
pub mod model;
mod reference;
pub mod report;
pub mod runtime;

pub use compile::decode::{DecodeOptions, Decoder, StepLayout};
pub use compile::{CompileOptions, CompiledModel, HeadPositions, KeyRequirements, Plan};
pub use error::{InferError, Result};
pub use layout::Layout;
pub use model::ModelIr;
pub use report::{Component, PrimitiveClass, Report};
