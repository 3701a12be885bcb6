//! `psformer eval`: perplexity, zero-shot multiple choice, in-context learning and attention
//! locality of one or more model directories; tables on stdout, `--json`, PNG figures.

use std::path::{Path, PathBuf};

use anyhow::Context;
use candle_core::Device;
use psf_model::AttentionNorm;
use psf_model::eval::compare::{comparison_markdown, labels};
use psf_model::eval::icl::{IclPoint, IclTask};
use psf_model::eval::plot::{Series, line_chart};
use psf_model::eval::suite::{ModelReport, SuiteConfig, evaluate_dir};

/// Arguments of `eval`.
#[derive(clap::Args)]
pub struct EvalArgs {
    /// Model directories (`config.json` + `model.safetensors`; a training run's `checkpoint/`
    /// finds its `tokenizer.json` one level up).
    #[arg(required_unless_present = "reports")]
    models: Vec<PathBuf>,
    /// Reports written earlier by `--json` (or the psf-model `eval` example), added after the
    /// models evaluated now, so runs evaluated at different times share one table and figure.
    #[arg(long, num_args = 1..)]
    reports: Vec<PathBuf>,
    /// Prints one Markdown table comparing all reports side by side.
    #[arg(long)]
    markdown: bool,
    /// The tokenizer, when not next to the model.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Multiple-choice task files (JSONL); default: the shipped crates/model/tasks/*.jsonl.
    #[arg(long = "task")]
    tasks: Vec<PathBuf>,
    /// Items per task (default: all).
    #[arg(long)]
    limit: Option<usize>,
    /// Held-out windows for perplexity (0 skips it).
    #[arg(long, default_value_t = 256)]
    windows: usize,
    /// Window length (capped by the model's context).
    #[arg(long, default_value_t = 128)]
    seq_len: usize,
    /// Episodes per ICL point (0 skips ICL).
    #[arg(long, default_value_t = 64)]
    episodes: usize,
    /// Held-out windows for locality (0 skips it).
    #[arg(long, default_value_t = 16)]
    locality_windows: usize,
    /// Writes figures here: attention heat maps per model and layer, the locality figure and
    /// the ICL curves of all models.
    #[arg(long)]
    figures: Option<PathBuf>,
    /// Writes all reports as JSON to this file (`-` for stdout instead of the tables).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Evaluates the weights with this attention normalization instead of their
    /// `config.json`'s, as JSON: e.g. `'{"kind":"power","p":4,"eps":0.001}'` scores a softmax
    /// checkpoint swapped to Power-Softmax before any training.
    #[arg(long)]
    attention_norm: Option<AttentionNorm>,
}

fn shipped_tasks() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tasks");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "jsonl"));
    v.sort();
    v
}

/// Runs `eval`.
pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let mut reports = Vec::new();
    for (k, dir) in args.models.iter().enumerate() {
        let cfg = SuiteConfig {
            ppl_windows: (args.windows > 0).then_some(args.windows),
            seq_len: args.seq_len,
            tasks: if args.tasks.is_empty() {
                shipped_tasks()
            } else {
                args.tasks.clone()
            },
            task_limit: args.limit,
            icl: if args.episodes > 0 {
                vec![IclTask::Induction, IclTask::Recall]
            } else {
                vec![]
            },
            icl_episodes: args.episodes,
            locality_windows: (args.locality_windows > 0).then_some(args.locality_windows),
            attention_dir: args.figures.as_ref().map(|f| f.join(format!("model{k}"))),
            attention_norm: args.attention_norm.clone(),
            ..SuiteConfig::default()
        };
        let report = evaluate_dir(dir, args.tokenizer.as_deref(), &cfg, &dev)
            .with_context(|| format!("evaluating {}", dir.display()))?;
        if args.json.as_deref() != Some(Path::new("-")) {
            print!("{}", report.to_table());
        }
        reports.push(report);
    }
    for path in &args.reports {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let earlier: Vec<ModelReport> = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a list of evaluation reports", path.display()))?;
        reports.extend(earlier);
    }
    if args.markdown {
        print!("{}", comparison_markdown(&reports));
    }
    if let Some(fig) = &args.figures {
        figures(fig, &reports)?;
    }
    match &args.json {
        Some(p) if p.as_os_str() == "-" => println!("{}", serde_json::to_string_pretty(&reports)?),
        Some(p) => std::fs::write(p, serde_json::to_string_pretty(&reports)?)
            .with_context(|| format!("writing {}", p.display()))?,
        None => {}
    }
    Ok(())
}

fn figures(dir: &Path, reports: &[ModelReport]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let names = labels(reports);
    let loc: Vec<Series> = reports
        .iter()
        .zip(&names)
        .filter(|(r, _)| !r.locality.is_empty())
        .map(|(r, name)| Series {
            label: name.clone(),
            points: r
                .locality
                .iter()
                .map(|l| (l.layer as f64, l.mean))
                .collect(),
        })
        .collect();
    if !loc.is_empty() {
        let p = dir.join("locality.png");
        line_chart(
            &p,
            "Mean attention distance per layer",
            "layer",
            "tokens",
            true,
            &loc,
        )?;
        println!("wrote {}", p.display());
    }
    type Measure = fn(&IclPoint) -> f64;
    let measures: [(&str, &str, bool, Measure); 2] = [
        ("", "accuracy", true, |p| p.accuracy),
        (
            "_logprob",
            "mean log-probability of the target",
            false,
            |p| p.target_logprob,
        ),
    ];
    for task in [IclTask::Induction, IclTask::Recall] {
        for (suffix, axis, from_zero, measure) in measures {
            let series: Vec<Series> = reports
                .iter()
                .zip(&names)
                .filter_map(|(r, name)| {
                    let c = r.icl.iter().find(|c| c.task == task)?;
                    let points = c
                        .points
                        .iter()
                        .map(|p| (p.shots as f64, measure(p)))
                        .collect();
                    Some(Series {
                        label: name.clone(),
                        points,
                    })
                })
                .collect();
            if !series.is_empty() {
                let name = format!("{task:?}").to_lowercase();
                let p = dir.join(format!("icl_{name}{suffix}.png"));
                let x_label = match task {
                    IclTask::Induction => "earlier presentations of the pattern (shots)",
                    IclTask::Recall => "key-value pairs in the context",
                };
                let title = format!("ICL: {name}");
                line_chart(&p, &title, x_label, axis, from_zero, &series)?;
                println!("wrote {}", p.display());
            }
        }
    }
    Ok(())
}
