//! The demo's text side: the model's tokenizer, its calibration text and naming the top
//! next-token candidates.

use std::path::Path;

use anyhow::Context;
use psf_model::data::tokenizer;
use tokenizers::Tokenizer;

/// The tokenizer and calibration text of a model directory.
pub struct DemoText {
    tokenizer: Tokenizer,
    calibration: Vec<u32>,
    max_len: usize,
}

impl DemoText {
    /// Loads `tokenizer.json` and tokenizes `calibration.txt` of `dir` (text like what will be
    /// served; the compiler's dry run takes its refresh bounds from it).
    pub fn load(dir: &Path, max_len: usize) -> anyhow::Result<Self> {
        let tokenizer = tokenizer::load(&dir.join("tokenizer.json"))?;
        let path = dir.join("calibration.txt");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let calibration = tokenizer::encode(&tokenizer, &text)?;
        anyhow::ensure!(
            calibration.len() >= max_len,
            "{} holds {} tokens; the model's context is {max_len}",
            path.display(),
            calibration.len()
        );
        Ok(Self {
            tokenizer,
            calibration,
            max_len,
        })
    }

    /// The token ids of `prompt` (1 to the model's context length).
    pub fn encode(&self, prompt: &str) -> anyhow::Result<Vec<u32>> {
        let ids = tokenizer::encode(&self.tokenizer, prompt)?;
        anyhow::ensure!(!ids.is_empty(), "the prompt is empty");
        anyhow::ensure!(
            ids.len() <= self.max_len,
            "the prompt has {} tokens; the model's context is {}",
            ids.len(),
            self.max_len
        );
        Ok(ids)
    }

    /// The first `len` tokens of the calibration text.
    pub fn calibration(&self, len: usize) -> anyhow::Result<Vec<u32>> {
        self.calibration
            .get(..len)
            .map(<[u32]>::to_vec)
            .with_context(|| format!("no {len} calibration tokens"))
    }

    /// `(token text, logit)` of `(id, logit)` pairs.
    pub fn named(&self, top: &[(u32, f64)]) -> anyhow::Result<Vec<(String, f64)>> {
        top.iter()
            .map(|&(id, l)| Ok((tokenizer::decode(&self.tokenizer, &[id])?, l)))
            .collect()
    }
}

/// The `k` largest logits as `(id, logit)`, largest first.
pub fn top_k(logits: &[f64], k: usize) -> Vec<(u32, f64)> {
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    idx.into_iter()
        .take(k)
        .map(|i| (i as u32, logits[i]))
        .collect()
}
