//! Runs `psf_model::train::run` with a JSON `TrainConfig` (defaults when no file is given).
//!
//! `MIMALLOC_PURGE_DELAY=-1 RAYON_NUM_THREADS=2 cargo run --release -p psf-model --example train -- run.json`

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cfg: psf_model::train::TrainConfig = match std::env::args().nth(1) {
        Some(path) => serde_json::from_str(&std::fs::read_to_string(path)?)?,
        None => Default::default(),
    };
    let report = psf_model::train::run(&cfg)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
