//! `psformer train`: trains a psf-model language model from a JSON `TrainConfig`
//! (progress bar on stderr, resumable from the run's checkpoint).

use std::path::PathBuf;

use anyhow::Context;
use psf_model::train::{TrainConfig, run};

/// Arguments of `train`.
#[derive(clap::Args)]
pub struct TrainArgs {
    /// A JSON `TrainConfig` (every field optional; see crates/model/src/train/config.rs).
    config: Option<PathBuf>,
    /// Overrides `out_dir`.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Overrides `steps` (the length of the schedule).
    #[arg(long)]
    steps: Option<usize>,
    /// Stops this invocation after this many steps (resume later with the same config).
    #[arg(long)]
    stop_at: Option<usize>,
    /// Starts over instead of resuming from `out_dir/checkpoint`.
    #[arg(long)]
    fresh: bool,
    /// Writes the final report as JSON to this file (`-` for stdout) instead of a table.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Runs `train`.
pub fn run_cmd(args: &TrainArgs) -> anyhow::Result<()> {
    let mut cfg: TrainConfig = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        None => TrainConfig::default(),
    };
    if let Some(out) = &args.out {
        cfg.out_dir = out.clone();
    }
    if let Some(steps) = args.steps {
        cfg.steps = steps;
    }
    cfg.stop_at = args.stop_at.or(cfg.stop_at);
    if args.fresh {
        cfg.resume = false;
    }
    let report = run(&cfg)?;
    match &args.json {
        Some(p) if p.as_os_str() == "-" => println!("{}", serde_json::to_string_pretty(&report)?),
        Some(p) => std::fs::write(p, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", p.display()))?,
        None => {
            println!("run          {}", cfg.out_dir.display());
            println!("steps        {}", report.steps);
            println!("final loss   {:.4}", report.final_loss);
            println!(
                "held-out     ppl {:.3} (nll {:.4}, {} tokens)",
                report.held_out.ppl, report.held_out.nll, report.held_out.tokens
            );
            println!("throughput   {:.0} tokens/s", report.tokens_per_sec);
            println!("checkpoint   {}", cfg.out_dir.join("checkpoint").display());
        }
    }
    Ok(())
}
