//! Evaluation: perplexity ([`perplexity`]), zero-shot multiple choice ([`choice`]) scored by
//! summed log-likelihood ([`scorer`]), the shipped multiple-choice task generator ([`tasks`]),
//! in-context learning on synthetic tasks ([`icl`]), attention maps and their locality
//! ([`attention`]), PNG figures ([`plot`]), all of it for a model directory ([`suite`]), and
//! side-by-side Markdown tables of several models' reports ([`compare`]).
//!
//! Every scorer works on a [`CausalLm`], so the same code evaluates the candle model
//! ([`CandleLm`]) and any other implementation (psf-poly's polynomial model).

pub mod attention;
pub mod choice;
pub mod compare;
pub mod icl;
pub mod perplexity;
pub mod plot;
pub mod scorer;
pub mod suite;
pub mod tasks;

pub use choice::{ChoiceItem, ChoiceReport, ChoiceTask, ItemScore, score_item, score_task};
pub use perplexity::{Perplexity, perplexity, perplexity_of_text};
pub use scorer::{CandleLm, CausalLm, LogLikelihood, log_likelihood};
