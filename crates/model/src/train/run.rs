//! `run(&TrainConfig)`: the whole training loop with evaluation, checkpoints and resume.

use std::path::Path;
use std::time::Instant;

use candle_core::Device;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::config::{ModelConfig, ModelConfigLiteral};
use crate::data::{self, EpisodeMixer, TokenData};
use crate::error::{Error, Result};
use crate::eval::{Perplexity, perplexity};
use crate::model::Model;
use crate::train::checkpoint;
use crate::train::config::TrainConfig;
use crate::train::optim::Schedule;
use crate::train::step::Trainer;

/// What a run ended with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainReport {
    /// Optimizer steps completed (in total, across resumes).
    pub steps: usize,
    /// Training loss of the last step.
    pub final_loss: f32,
    /// Held-out perplexity at the end.
    pub held_out: Perplexity,
    /// Training tokens per second in this invocation (steps only, evaluation excluded).
    pub tokens_per_sec: f64,
}

/// Trains as configured; resumes from `out_dir/checkpoint` when `cfg.resume` and one exists.
/// Writes the checkpoint (loadable by `Model::from_pretrained_dir`) and `report.json`.
pub fn run(cfg: &TrainConfig) -> Result<TrainReport> {
    let dev = Device::Cpu;
    let data = data::prepare(&cfg.data, &cfg.out_dir.join("data"))?;
    let model_cfg = model_config(cfg, &data)?;
    let mut trainer = build_trainer(cfg, &model_cfg, &dev)?;
    let ckpt_dir = cfg.out_dir.join("checkpoint");
    let mut loss = resume(cfg, &ckpt_dir, &mut trainer, &dev)?.unwrap_or(f32::NAN);
    data.tokenizer
        .save(cfg.out_dir.join("tokenizer.json"), false)
        .map_err(|e| Error::Tokenizer(e.to_string()))?;
    let mixer = cfg
        .synthetic
        .as_ref()
        .map(|m| EpisodeMixer::new(m, &data.tokenizer))
        .transpose()?;
    let bar = Progress::new(cfg, trainer.opt.step);
    let start_step = trainer.opt.step;
    let mut train_secs = 0f64;
    let end = cfg.stop_at.unwrap_or(cfg.steps).min(cfg.steps);
    while trainer.opt.step < end {
        let step = trainer.opt.step;
        let ts = Instant::now();
        let (x, y) = data.train.batch(
            cfg.seed,
            step,
            cfg.batch_size,
            cfg.seq_len,
            mixer.as_ref(),
            &dev,
        )?;
        let out = trainer.step(&x, &y)?;
        train_secs += ts.elapsed().as_secs_f64();
        loss = out.loss;
        let tps = ((step + 1 - start_step) * cfg.batch_size * cfg.seq_len) as f64 / train_secs;
        let done = step + 1;
        let range = match cfg.range_loss {
            Some(_) => format!(" | range {:.2}", out.range_penalty),
            None => String::new(),
        };
        bar.step(
            done,
            format!(
                "loss {:.3}{range} | lr {:.2e} | {tps:.0} tok/s",
                out.loss, out.lr
            ),
        );
        if cfg.eval_every > 0 && done % cfg.eval_every == 0 && done < cfg.steps {
            let p = evaluate(cfg, &trainer.model, &data, &dev)?;
            bar.line(format!(
                "step {done}: train loss {loss:.4}, held-out ppl {:.2}",
                p.ppl
            ));
        }
        if cfg.checkpoint_every > 0 && done % cfg.checkpoint_every == 0 {
            checkpoint::save(&ckpt_dir, &trainer, cfg, loss)?;
        }
    }
    bar.finish();
    checkpoint::save(&ckpt_dir, &trainer, cfg, loss)?;
    let held_out = evaluate(cfg, &trainer.model, &data, &dev)?;
    let ran = trainer.opt.step - start_step;
    let tokens_per_sec = if ran > 0 {
        (ran * cfg.batch_size * cfg.seq_len) as f64 / train_secs
    } else {
        0.0
    };
    let report = TrainReport {
        steps: trainer.opt.step,
        final_loss: loss,
        held_out,
        tokens_per_sec,
    };
    write_report(&cfg.out_dir.join("report.json"), &report)?;
    Ok(report)
}

/// Restores the checkpoint in `dir` when `cfg.resume` and one exists; returns its last loss.
fn resume(
    cfg: &TrainConfig,
    dir: &Path,
    trainer: &mut Trainer,
    dev: &Device,
) -> Result<Option<f32>> {
    if !cfg.resume {
        return Ok(None);
    }
    let Some(state) = checkpoint::read_state(dir)? else {
        return Ok(None);
    };
    if !state.train.same_run_as(cfg) {
        let msg = "was written by a different configuration; use another out_dir".into();
        return Err(Error::Checkpoint {
            path: dir.to_path_buf(),
            msg,
        });
    }
    Ok(Some(checkpoint::restore(dir, trainer, dev)?.loss))
}

fn model_config(cfg: &TrainConfig, data: &TokenData) -> Result<ModelConfig> {
    let vocab = data.tokenizer.get_vocab_size(true);
    let mut lit = match &cfg.init_from {
        Some(dir) => {
            let mut lit = ModelConfigLiteral::from_file(dir.join("config.json"))?;
            lit.attention_norm = cfg.model.attention_norm.clone().or(lit.attention_norm);
            lit
        }
        None => cfg.model.clone(),
    };
    if lit.vocab_size == 0 {
        lit.vocab_size = vocab;
    }
    if lit.vocab_size < vocab {
        let msg = format!("vocab_size {} < tokenizer's {vocab}", lit.vocab_size);
        return Err(Error::InvalidConfig(msg));
    }
    if lit.max_position_embeddings < cfg.seq_len {
        lit.max_position_embeddings = cfg.seq_len;
    }
    lit.try_build()
}

fn build_trainer(cfg: &TrainConfig, model_cfg: &ModelConfig, dev: &Device) -> Result<Trainer> {
    let (model, varmap) = Model::init_random(model_cfg, cfg.seed, dev)?;
    if let Some(dir) = &cfg.init_from {
        checkpoint::load_weights(&varmap, &dir.join("model.safetensors"), dev)?;
    }
    let schedule = Schedule {
        max_lr: cfg.max_lr,
        min_lr: cfg.min_lr,
        warmup_steps: cfg.warmup_steps,
        total_steps: cfg.steps,
    };
    Ok(Trainer::new(
        model_cfg,
        model,
        varmap,
        cfg.adamw.clone(),
        schedule,
        cfg.range_loss.clone(),
    ))
}

fn evaluate(
    cfg: &TrainConfig,
    model: &Model,
    data: &TokenData,
    dev: &Device,
) -> Result<Perplexity> {
    let windows = (cfg.eval_windows > 0).then_some(cfg.eval_windows);
    perplexity(
        model,
        &data.held_out,
        cfg.seq_len,
        cfg.batch_size,
        windows,
        dev,
    )
}

/// A progress bar on a terminal; plain log lines otherwise: every 10 steps when `progress`
/// is on, every 100 steps when it is off (a background run's log). Evaluation lines are
/// always written.
struct Progress {
    bar: ProgressBar,
    /// Steps between plain lines; `None` while the bar is drawn.
    plain_every: Option<usize>,
    total: usize,
}

impl Progress {
    fn new(cfg: &TrainConfig, start: usize) -> Self {
        let bar = ProgressBar::new(cfg.steps as u64);
        let tty = !bar.is_hidden();
        let plain_every = match (cfg.progress, tty) {
            (true, true) => None,
            (true, false) => Some(10),
            (false, _) => Some(100),
        };
        if plain_every.is_some() {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        let style = ProgressStyle::with_template("{bar:30} {pos}/{len} | {msg} | eta {eta}")
            .expect("valid template");
        bar.set_style(style);
        bar.set_position(start as u64);
        bar.reset_eta();
        Progress {
            bar,
            plain_every,
            total: cfg.steps,
        }
    }

    fn step(&self, done: usize, msg: String) {
        if let Some(every) = self.plain_every
            && (done.is_multiple_of(every) || done == self.total)
        {
            eprintln!("step {done}/{}: {msg}", self.total);
        }
        self.bar.set_message(msg);
        self.bar.inc(1);
    }

    fn line(&self, text: String) {
        if self.plain_every.is_some() {
            eprintln!("{text}");
        } else {
            self.bar.println(text);
        }
    }

    fn finish(self) {
        self.bar.finish();
    }
}

fn write_report(path: &Path, report: &TrainReport) -> Result<()> {
    let text = serde_json::to_string_pretty(report).map_err(|e| Error::json(path, e))?;
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}
