//! Evaluates model directories with the whole suite (held-out perplexity, the shipped
//! multiple-choice tasks, ICL curves, locality) and prints a table per model and the JSON of
//! all reports; the library twin of `psformer eval` (no HE crates to build).
//!
//! `cargo run --release -p psf-model --example eval -- <model_dir>... [--json out.json]
//! [--attention-norm '{"kind":"power","p":4,"eps":0.001}']` (the override evaluates the weights
//! with that normalization instead of their `config.json`'s).

use std::path::PathBuf;

use psf_model::AttentionNorm;
use psf_model::eval::suite::{SuiteConfig, evaluate_dir};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut dirs = Vec::new();
    let mut json: Option<PathBuf> = None;
    let mut attention_norm: Option<AttentionNorm> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--json" {
            json = args.next().map(PathBuf::from);
        } else if a == "--attention-norm" {
            let text = args.next().ok_or("--attention-norm needs a JSON value")?;
            attention_norm = Some(text.parse::<AttentionNorm>()?);
        } else {
            dirs.push(PathBuf::from(a));
        }
    }
    let tasks_dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tasks"));
    let mut tasks: Vec<PathBuf> = std::fs::read_dir(&tasks_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    tasks.sort();
    let cfg = SuiteConfig {
        tasks,
        attention_norm,
        ..SuiteConfig::default()
    };
    let mut reports = Vec::new();
    for dir in &dirs {
        let r = evaluate_dir(dir, None, &cfg, &candle_core::Device::Cpu)?;
        print!("{}", r.to_table());
        reports.push(r);
    }
    if let Some(p) = json {
        std::fs::write(&p, serde_json::to_string_pretty(&reports)?)?;
        println!("wrote {}", p.display());
    }
    Ok(())
}
