//! Regenerates the shipped multiple-choice tasks (`crates/model/tasks/*.jsonl`) from the
//! held-out part of the shipped corpus; see `psf_model::eval::tasks` for what they are.
//!
//! `cargo run --release -p psf-model --example make_tasks -- [out_dir] [items] [seed]`

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = args
        .next()
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/tasks").into());
    let mut cfg = psf_model::eval::tasks::TaskGenConfig::default();
    if let Some(items) = args.next() {
        cfg.items = items.parse()?;
    }
    if let Some(seed) = args.next() {
        cfg.seed = seed.parse()?;
    }
    std::fs::create_dir_all(&out)?;
    for task in psf_model::eval::tasks::generate(&cfg)? {
        let path = std::path::Path::new(&out).join(format!("{}.jsonl", task.name));
        task.to_jsonl(&path)?;
        println!("{}: {} items", path.display(), task.items.len());
    }
    Ok(())
}
