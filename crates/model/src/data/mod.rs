//! Data pipeline: corpus -> BPE tokenizer -> token ids (cached) -> seeded batches.

pub mod batches;
pub mod corpus;
pub mod synthetic;
pub mod tokenizer;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

pub use batches::TokenStream;
pub use corpus::{DataSource, Document};
pub use synthetic::{EpisodeMixer, SyntheticMix};

use crate::error::{Error, Result};

/// What text to train on and how to tokenize it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DataConfig {
    /// Where the text comes from.
    pub source: DataSource,
    /// Only these documents (file stems); all when empty.
    pub files: Vec<String>,
    /// Fraction at the end of each document held out for evaluation.
    pub held_out_fraction: f64,
    /// BPE vocabulary size when a tokenizer is trained.
    pub vocab_size: usize,
    /// Use this `tokenizer.json` instead of training one.
    pub tokenizer: Option<PathBuf>,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            source: DataSource::Shipped,
            files: Vec::new(),
            held_out_fraction: 0.02,
            vocab_size: 8192,
            tokenizer: None,
        }
    }
}

/// Tokenized training and held-out text.
pub struct TokenData {
    /// The tokenizer.
    pub tokenizer: Tokenizer,
    /// Training ids, documents separated by the end-of-text token.
    pub train: TokenStream,
    /// Held-out ids.
    pub held_out: TokenStream,
}

/// Loads the corpus, trains (or loads) the tokenizer and tokenizes, caching
/// `tokenizer.json`, `train.tokens` and `held_out.tokens` in `cache_dir`.
pub fn prepare(cfg: &DataConfig, cache_dir: &Path) -> Result<TokenData> {
    std::fs::create_dir_all(cache_dir).map_err(|e| Error::io(cache_dir, e))?;
    let tk_path = cfg
        .tokenizer
        .clone()
        .unwrap_or_else(|| cache_dir.join("tokenizer.json"));
    let (train_path, held_path) = (
        cache_dir.join("train.tokens"),
        cache_dir.join("held_out.tokens"),
    );
    if tk_path.exists() && train_path.exists() && held_path.exists() {
        return Ok(TokenData {
            tokenizer: tokenizer::load(&tk_path)?,
            train: TokenStream::read(&train_path)?,
            held_out: TokenStream::read(&held_path)?,
        });
    }
    let docs = cfg.source.load(&cfg.files)?;
    let splits: Vec<(&str, &str)> = docs
        .iter()
        .map(|d| corpus::split_held_out(&d.text, cfg.held_out_fraction))
        .collect();
    let tk = if tk_path.exists() {
        tokenizer::load(&tk_path)?
    } else {
        let train_texts: Vec<&str> = splits.iter().map(|s| s.0).collect();
        tokenizer::train_bpe(&train_texts, cfg.vocab_size, &tk_path)?
    };
    let eos = tk.token_to_id(tokenizer::EOS).unwrap_or(0);
    let mut train = Vec::new();
    let mut held = Vec::new();
    for (a, b) in &splits {
        train.extend(tokenizer::encode(&tk, a)?);
        train.push(eos);
        held.extend(tokenizer::encode(&tk, b)?);
        held.push(eos);
    }
    let (train, held_out) = (TokenStream::new(train), TokenStream::new(held));
    train.write(&train_path)?;
    held_out.write(&held_path)?;
    Ok(TokenData {
        tokenizer: tk,
        train,
        held_out,
    })
}
