//! psf-model: transformer language models with Power-Softmax attention (DESIGN.md §2).
//!
//! Two layouts loaded by Hugging Face tensor names: GPT-NeoX/Pythia ([`neox`]) and Llama
//! ([`llama`]); the attention normalization is a configuration choice ([`attention_norm`]),
//! optionally with a positional decay of the weights at ALiBi's slopes
//! ([`layers::alibi_slopes`]) and, as a study option, scores centered by a learned share of
//! each row's mean ([`attention_norm::center_scores`]).
//! Training ([`train`]) and evaluation ([`eval`]) run on candle's CPU backend. This crate has
//! no homomorphic-encryption dependency.

pub mod attention_norm;
pub mod config;
pub mod data;
pub mod error;
pub mod eval;
mod fused;
pub mod import;
pub mod ranges;

pub use attention_norm::{AttentionNorm, CausalMask, EpsScaling, PowerForm, PowerSoftmax};
pub use config::{Activation, Arch, ModelConfig, ModelConfigLiteral};
pub use error::{Error, Result};
pub use ranges::{Interval, RangeKind, RangeRecord, RangeRecorder};
pub mod layers;
pub mod llama;
pub mod loss;
pub mod model;
pub mod neox;
pub mod rope;
pub mod train;

pub use loss::cross_entropy;
pub use model::Model;
