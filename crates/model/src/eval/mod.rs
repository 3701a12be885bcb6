//! Evaluation: perplexity on held-out text (the multiple-choice, ICL and attention tools
//! follow in the next commit).

pub mod perplexity;

pub use perplexity::{Perplexity, perplexity, perplexity_of_text};
