//! The whole evaluation of one model directory in one call (what `psformer eval` runs):
//! held-out perplexity, the multiple-choice tasks, the ICL curves and attention locality,
//! with optional attention heat maps, as one serializable [`ModelReport`].

use std::path::{Path, PathBuf};

use candle_core::Device;
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use crate::attention_norm::AttentionNorm;
use crate::data::corpus::split_held_out;
use crate::data::tokenizer::{self, EOS};
use crate::data::{DataSource, TokenStream};
use crate::error::{Error, Result};
use crate::eval::attention::{LayerLocality, attention_maps, locality};
use crate::eval::choice::{ChoiceReport, ChoiceTask, score_task};
use crate::eval::icl::{IclConfig, IclCurve, IclTask, icl_curve};
use crate::eval::perplexity::{Perplexity, perplexity};
use crate::eval::plot::heatmap_png;
use crate::eval::scorer::CandleLm;
use crate::model::Model;
use crate::train::checkpoint::read_state;

/// What to evaluate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteConfig {
    /// Held-out perplexity over at most this many windows (`None`: skip).
    pub ppl_windows: Option<usize>,
    /// Window length for perplexity and locality (capped by the model's context).
    pub seq_len: usize,
    /// Multiple-choice task files.
    pub tasks: Vec<PathBuf>,
    /// Items per task (all when `None`).
    pub task_limit: Option<usize>,
    /// ICL probes to run.
    pub icl: Vec<IclTask>,
    /// Episodes per ICL point.
    pub icl_episodes: usize,
    /// Locality over this many held-out windows (`None`: skip).
    pub locality_windows: Option<usize>,
    /// Write attention heat maps of the first held-out window here.
    pub attention_dir: Option<PathBuf>,
    /// Tokens of that window drawn in the heat maps.
    pub attention_tokens: usize,
    /// Held-out fraction of each shipped document (training's default 0.02).
    pub held_out_fraction: f64,
    /// Evaluates the weights with this attention normalization instead of their
    /// `config.json`'s, e.g. a softmax checkpoint swapped to Power-Softmax before any
    /// training (where the conversion route starts). `None`: the config's.
    #[serde(default)]
    pub attention_norm: Option<AttentionNorm>,
}

impl Default for SuiteConfig {
    fn default() -> Self {
        SuiteConfig {
            ppl_windows: Some(256),
            seq_len: 128,
            tasks: Vec::new(),
            task_limit: None,
            icl: vec![IclTask::Induction, IclTask::Recall],
            icl_episodes: 64,
            locality_windows: Some(16),
            attention_dir: None,
            attention_tokens: 32,
            held_out_fraction: 0.02,
            attention_norm: None,
        }
    }
}

/// Everything measured on one model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelReport {
    /// The model directory.
    pub model: PathBuf,
    /// Optimizer step of the checkpoint, when it has a `state.json`.
    pub step: Option<usize>,
    /// The attention normalization evaluated (`config.json`'s, or the suite's override).
    pub attention_norm: serde_json::Value,
    /// Parameters (weights and biases).
    pub parameters: usize,
    /// Whether the model has the positional decay (`position_decay`).
    #[serde(default)]
    pub position_decay: bool,
    /// Whether the model centers its scores (`score_centering`).
    #[serde(default)]
    pub score_centering: bool,
    /// Held-out perplexity.
    pub perplexity: Option<Perplexity>,
    /// Multiple-choice accuracies.
    pub tasks: Vec<ChoiceReport>,
    /// ICL curves.
    pub icl: Vec<IclCurve>,
    /// Mean attention distance per layer.
    pub locality: Vec<LayerLocality>,
    /// Heat maps written.
    pub attention_pngs: Vec<PathBuf>,
}

/// Finds `tokenizer.json` in `dir` or its parent (a training run keeps it next to
/// `checkpoint/`).
pub fn find_tokenizer(dir: &Path) -> Result<PathBuf> {
    [dir.join("tokenizer.json"), dir.join("../tokenizer.json")]
        .into_iter()
        .find(|p| p.exists())
        .ok_or_else(|| Error::Checkpoint {
            path: dir.to_path_buf(),
            msg: "no tokenizer.json here or in the parent directory".into(),
        })
}

/// The held-out part of every shipped document (cut as training cuts it), tokenized with
/// `tk`, documents separated by the end-of-text token.
pub fn held_out_stream(tk: &Tokenizer, fraction: f64) -> Result<TokenStream> {
    let eos = tk.token_to_id(EOS).unwrap_or(0);
    let mut ids = Vec::new();
    for doc in DataSource::Shipped.load(&[])? {
        ids.extend(tokenizer::encode(
            tk,
            split_held_out(&doc.text, fraction).1,
        )?);
        ids.push(eos);
    }
    Ok(TokenStream::new(ids))
}

/// Runs `cfg` on the model in `dir` (`config.json`, `model.safetensors`, tokenizer here or
/// in the parent directory, or `tokenizer` when given).
pub fn evaluate_dir(
    dir: &Path,
    tokenizer: Option<&Path>,
    cfg: &SuiteConfig,
    dev: &Device,
) -> Result<ModelReport> {
    let (model, mcfg) = Model::from_dir_edited(
        dir,
        |lit| {
            if let Some(norm) = &cfg.attention_norm {
                lit.attention_norm = Some(norm.clone());
            }
        },
        dev,
    )?;
    let tk_path = match tokenizer {
        Some(p) => p.to_path_buf(),
        None => find_tokenizer(dir)?,
    };
    let tk = tokenizer::load(&tk_path)?;
    let seq = cfg.seq_len.min(mcfg.max_position_embeddings);
    let held = held_out_stream(&tk, cfg.held_out_fraction)?;
    let lm = CandleLm::new(&model, mcfg.max_position_embeddings, dev);
    let perplexity = match cfg.ppl_windows {
        Some(w) => Some(perplexity(&model, &held, seq, 8, Some(w), dev)?),
        None => None,
    };
    let mut tasks = Vec::new();
    for path in &cfg.tasks {
        let task = ChoiceTask::from_jsonl(path)?;
        tasks.push(score_task(&lm, &tk, &task, cfg.task_limit)?.0);
    }
    let mut icl = Vec::new();
    for &task in &cfg.icl {
        let mut icfg = IclConfig::default_for(task);
        icfg.episodes = cfg.icl_episodes;
        icl.push(icl_curve(&lm, &tk, task, &icfg)?);
    }
    let locality = match cfg.locality_windows {
        Some(w) => locality(&model, &held, seq, w, dev)?,
        None => Vec::new(),
    };
    let attention_pngs = match &cfg.attention_dir {
        Some(out) => write_heatmaps(&model, &held, cfg.attention_tokens.min(seq), out, dev)?,
        None => Vec::new(),
    };
    Ok(ModelReport {
        model: dir.to_path_buf(),
        step: read_state(dir)?.map(|s| s.step),
        attention_norm: serde_json::to_value(&mcfg.attention_norm).unwrap_or_default(),
        parameters: parameter_count(dir)?,
        position_decay: mcfg.position_decay,
        score_centering: mcfg.score_centering,
        perplexity,
        tasks,
        icl,
        locality,
        attention_pngs,
    })
}

fn write_heatmaps(
    model: &Model,
    held: &TokenStream,
    tokens: usize,
    out: &Path,
    dev: &Device,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let ids = held
        .ids
        .get(..tokens)
        .ok_or_else(|| Error::NotEnoughData(format!("{} held-out tokens", held.ids.len())))?;
    let mut paths = Vec::new();
    for map in attention_maps(model, ids, dev)? {
        let path = out.join(format!("attention_layer{}.png", map.layer));
        heatmap_png(&map, (384 / tokens.max(1)).max(2) as u32, &path)?;
        paths.push(path);
    }
    Ok(paths)
}

/// Number of values stored in a model directory's `model.safetensors` (weights and biases;
/// a tied head is stored once).
pub fn parameter_count(dir: &Path) -> Result<usize> {
    let tensors = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu)?;
    Ok(tensors.values().map(|t| t.elem_count()).sum())
}

impl ModelReport {
    /// A plain-text table of the report (for stdout).
    pub fn to_table(&self) -> String {
        let mut s = format!(
            "model {} (step {}, {} parameters, attention {})\n",
            self.model.display(),
            self.step.map_or("-".into(), |s| s.to_string()),
            self.parameters,
            self.attention_norm
        );
        if self.position_decay {
            s += "  positional decay at ALiBi's slopes\n";
        }
        if self.score_centering {
            s += "  scores centered by a learned share of the row mean\n";
        }
        if let Some(p) = &self.perplexity {
            s += &format!(
                "  held-out perplexity {:.3} (nll {:.4}, {} tokens)\n",
                p.ppl, p.nll, p.tokens
            );
        }
        for t in &self.tasks {
            s += &format!(
                "  {:<14} acc {:.3} ± {:.3}  acc_norm {:.3} ± {:.3}  (n={}, chance {:.3})\n",
                t.task, t.acc, t.acc_stderr, t.acc_norm, t.acc_norm_stderr, t.items, t.chance
            );
        }
        for c in &self.icl {
            let pts: Vec<String> = c
                .points
                .iter()
                .map(|p| {
                    format!(
                        "{}:{:.2}/{:.2}/{:.2}",
                        p.shots, p.accuracy, p.pool_accuracy, p.target_logprob
                    )
                })
                .collect();
            s += &format!(
                "  icl {:?} (shots:acc/pool acc/target log-prob) {}\n",
                c.task,
                pts.join(" ")
            );
        }
        for l in &self.locality {
            s += &format!(
                "  layer {} mean attention distance {:.2} tokens (relative {:.2}, local mass {:.2})",
                l.layer, l.mean, l.relative, l.local_mass
            );
            if let Some(w) = l.row_weight {
                s += &format!(", attended weight {w:.3}");
            }
            if let (Some(top), Some(h)) = (l.top_weight, l.entropy) {
                s += &format!(", largest share {top:.3}, relative entropy {h:.3}");
            }
            s += "\n";
        }
        s
    }
}
