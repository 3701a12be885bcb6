//! Importing published checkpoints: GGUF files ([`gguf`]) and fetching them into a local
//! cache ([`fetch`]). Hugging Face safetensors directories load through
//! [`Model::from_pretrained_dir`](crate::Model::from_pretrained_dir).

pub mod fetch;
pub mod gguf;

pub use gguf::GgufFile;
