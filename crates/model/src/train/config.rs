//! The serde-friendly description of a training run (what `psformer train` reads).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::ModelConfigLiteral;
use crate::data::{DataConfig, SyntheticMix};
use crate::train::optim::AdamWConfig;
use crate::train::step::RangeLoss;

/// Everything a training run needs. Every field has a default; the defaults train the
/// issue's reference shape (GPT-NeoX, 4 layers, d=256, 4 heads, seq 128, batch 16, vocab 8192)
/// with softmax attention on the shipped corpus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// The model to train from scratch (`vocab_size` 0 means: the tokenizer's size).
    /// With `init_from`, only its `attention_norm` is used (the conversion route).
    pub model: ModelConfigLiteral,
    /// A Hugging Face directory (`config.json` + `model.safetensors`) to start from.
    pub init_from: Option<PathBuf>,
    /// Text and tokenizer.
    pub data: DataConfig,
    /// Where the token cache, checkpoint and logs go.
    pub out_dir: PathBuf,
    /// Sequences per step.
    pub batch_size: usize,
    /// Tokens per sequence.
    pub seq_len: usize,
    /// Total optimizer steps.
    pub steps: usize,
    /// Peak learning rate.
    pub max_lr: f64,
    /// Final learning rate of the cosine decay.
    pub min_lr: f64,
    /// Linear warm-up steps.
    pub warmup_steps: usize,
    /// AdamW and gradient clipping.
    pub adamw: AdamWConfig,
    /// Optional range-minimization loss.
    pub range_loss: Option<RangeLoss>,
    /// Synthetic in-context episodes mixed into the batches (none by default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synthetic: Option<SyntheticMix>,
    /// Seeds initialization and batch sampling.
    pub seed: u64,
    /// Save a checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: usize,
    /// Held-out perplexity every this many steps (0: only at the end).
    pub eval_every: usize,
    /// Held-out windows per evaluation (0: all).
    pub eval_windows: usize,
    /// Stop this invocation once this many steps are done (the schedule still spans `steps`;
    /// a later invocation with `resume` continues). For time-sliced runs.
    pub stop_at: Option<usize>,
    /// Continue from `out_dir/checkpoint` when it exists.
    pub resume: bool,
    /// Show a progress bar on stderr (on a terminal; plain lines every 10 steps elsewhere).
    /// Off, stderr gets a line every 100 steps and the evaluation lines: a log.
    pub progress: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        let mut model = ModelConfigLiteral::neox_reference();
        model.vocab_size = 0;
        TrainConfig {
            model,
            init_from: None,
            data: DataConfig::default(),
            out_dir: PathBuf::from("runs/default"),
            batch_size: 16,
            seq_len: 128,
            steps: 2000,
            max_lr: 1e-3,
            min_lr: 1e-4,
            warmup_steps: 100,
            adamw: AdamWConfig::default(),
            range_loss: None,
            synthetic: None,
            seed: 0,
            checkpoint_every: 500,
            eval_every: 500,
            eval_windows: 64,
            stop_at: None,
            resume: true,
            progress: true,
        }
    }
}

impl TrainConfig {
    /// Whether a checkpoint written under `other` may be resumed under `self`.
    pub(crate) fn same_run_as(&self, other: &TrainConfig) -> bool {
        let strip = |c: &TrainConfig| TrainConfig {
            stop_at: None,
            resume: false,
            progress: false,
            ..c.clone()
        };
        strip(self) == strip(other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_example_config_parses() {
        let text = include_str!("../../examples/reference_power.json");
        let cfg: TrainConfig = serde_json::from_str(text).unwrap();
        assert_eq!((cfg.steps, cfg.batch_size, cfg.seq_len), (250, 16, 128));
        assert!(cfg.model.attention_norm.is_some() && cfg.data == DataConfig::default());
        let json = serde_json::to_string(&TrainConfig::default()).unwrap();
        assert_eq!(
            serde_json::from_str::<TrainConfig>(&json).unwrap(),
            TrainConfig::default()
        );
    }
}
