//! `psformer convert`: swap a softmax checkpoint's attention for Power-Softmax (same
//! parameters) and continue pre-training briefly, measuring held-out perplexity before the
//! swap, right after it, and after every segment of steps (the recovery curve).

use std::path::PathBuf;

use anyhow::Context;
use candle_core::Device;
use clap::Args;
use psf_model::attention_norm::{AttentionNorm, PowerSoftmax};
use psf_model::data::{DataConfig, TokenData};
use psf_model::eval::perplexity;
use psf_model::train::{RangeLoss, TrainConfig, run};
use psf_model::{Model, ModelConfigLiteral};
use serde::Serialize;

/// Arguments of `psformer convert`.
#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// The softmax checkpoint: a directory with `config.json` and `model.safetensors`.
    #[arg(long)]
    pub from: PathBuf,
    /// The tokenizer the checkpoint was trained with (`tokenizer.json`).
    #[arg(long)]
    pub tokenizer: PathBuf,
    /// Output directory (checkpoint, token cache, `conversion.json`).
    #[arg(long)]
    pub out: PathBuf,
    /// Power-Softmax exponent (even).
    #[arg(long, default_value_t = 4)]
    pub p: u32,
    /// Power-Softmax eps (per key, length-agnostic form).
    #[arg(long, default_value_t = 1e-3)]
    pub eps: f64,
    /// Total continued-training steps.
    #[arg(long, default_value_t = 200)]
    pub steps: usize,
    /// Held-out perplexity is measured after every this many steps.
    #[arg(long, default_value_t = 50)]
    pub segment: usize,
    /// Sequences per step.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 128)]
    pub seq: usize,
    /// Peak learning rate (warm-up 10 % of the steps, cosine to a tenth).
    #[arg(long, default_value_t = 3e-4)]
    pub lr: f64,
    /// Range-minimization loss weight (off when absent).
    #[arg(long)]
    pub range_alpha: Option<f64>,
    /// Held-out windows per evaluation.
    #[arg(long, default_value_t = 64)]
    pub eval_windows: usize,
    /// Seed of batch sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// One point of the recovery curve.
#[derive(Debug, Serialize)]
struct Point {
    steps: usize,
    tokens: usize,
    held_out_ppl: f64,
    /// Training tokens per second of the segment that ended here (steps only).
    tokens_per_sec: Option<f64>,
}

/// What `conversion.json` holds.
#[derive(Debug, Serialize)]
struct Conversion {
    from: PathBuf,
    attention: AttentionNorm,
    range_alpha: Option<f64>,
    batch: usize,
    seq: usize,
    lr: f64,
    /// Held-out perplexity of the original softmax model (same windows).
    original_ppl: f64,
    /// Steps 0 is the swapped model before any training.
    curve: Vec<Point>,
}

fn train_config(a: &ConvertArgs) -> TrainConfig {
    let mut cfg = TrainConfig {
        init_from: Some(a.from.clone()),
        data: DataConfig {
            tokenizer: Some(a.tokenizer.clone()),
            ..DataConfig::default()
        },
        out_dir: a.out.clone(),
        batch_size: a.batch,
        seq_len: a.seq,
        steps: a.steps,
        max_lr: a.lr,
        min_lr: a.lr / 10.0,
        warmup_steps: (a.steps / 10).max(1),
        range_loss: a.range_alpha.map(|alpha| RangeLoss {
            alpha,
            kinds: vec![
                psf_model::RangeKind::Denominator,
                psf_model::RangeKind::NormVariance,
                psf_model::RangeKind::ActivationInput,
            ],
        }),
        seed: a.seed,
        checkpoint_every: 0,
        eval_every: 0,
        eval_windows: a.eval_windows,
        resume: true,
        // Plain log lines every 10 steps (loss, range penalty, tokens/s) on stderr.
        progress: true,
        ..TrainConfig::default()
    };
    cfg.model.attention_norm = Some(AttentionNorm::Power(PowerSoftmax {
        p: a.p,
        eps: a.eps,
        ..PowerSoftmax::default()
    }));
    cfg
}

/// Held-out perplexity of the checkpoint `a.from` with its attention set to `norm`, on the
/// windows the training run evaluates (no trainer, no checkpoint written).
fn held_out_ppl(a: &ConvertArgs, data: &TokenData, norm: AttentionNorm) -> anyhow::Result<f64> {
    let dev = Device::Cpu;
    let edit = |lit: &mut ModelConfigLiteral| {
        lit.attention_norm = Some(norm);
        lit.max_position_embeddings = lit.max_position_embeddings.max(a.seq);
    };
    let (model, _) = Model::from_dir_edited(&a.from, edit, &dev)?;
    let windows = (a.eval_windows > 0).then_some(a.eval_windows);
    Ok(perplexity(&model, &data.held_out, a.seq, a.batch, windows, &dev)?.ppl)
}

/// Runs the conversion and writes `conversion.json`.
pub fn run_convert(a: &ConvertArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.segment > 0 && a.steps > 0,
        "steps and segment must be > 0"
    );
    let cfg = train_config(a);
    // Tokenize once into the run's cache (the training invocations find it there).
    let data = psf_model::data::prepare(&cfg.data, &a.out.join("data"))
        .context("tokenizing the corpus")?;
    let original_ppl =
        held_out_ppl(a, &data, AttentionNorm::Softmax).context("evaluating the original model")?;
    eprintln!("original (softmax): held-out ppl {original_ppl:.3}");
    let power = cfg.model.attention_norm.clone().unwrap_or_default();
    let swapped = held_out_ppl(a, &data, power).context("evaluating the swapped model")?;
    drop(data);
    eprintln!("power p={}: step 0: held-out ppl {swapped:.3}", a.p);
    let mut curve = vec![Point {
        steps: 0,
        tokens: 0,
        held_out_ppl: swapped,
        tokens_per_sec: None,
    }];
    let mut stop = 0;
    while stop < a.steps {
        stop = (stop + a.segment).min(a.steps);
        let report = run(&TrainConfig {
            stop_at: Some(stop),
            ..cfg.clone()
        })
        .with_context(|| format!("training to step {stop}"))?;
        let tokens = report.steps * a.batch * a.seq;
        eprintln!(
            "power p={}: step {} ({tokens} tokens): held-out ppl {:.3}",
            a.p, report.steps, report.held_out.ppl
        );
        curve.push(Point {
            steps: report.steps,
            tokens,
            held_out_ppl: report.held_out.ppl,
            tokens_per_sec: Some(report.tokens_per_sec),
        });
    }
    let out = Conversion {
        from: a.from.clone(),
        attention: cfg.model.attention_norm.clone().unwrap_or_default(),
        range_alpha: a.range_alpha,
        batch: a.batch,
        seq: a.seq,
        lr: a.lr,
        original_ppl,
        curve,
    };
    let path = a.out.join("conversion.json");
    std::fs::write(&path, serde_json::to_string_pretty(&out)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
