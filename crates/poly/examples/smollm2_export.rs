//! Writes SmolLM2-135M-Instruct (GGUF from the cache, fetched if absent; see
//! crates/model/IMPORT.md) as a Hugging Face directory that `psformer convert` and
//! `psformer polyfit` read: `config.json` (softmax attention), `model.safetensors` (f32,
//! dequantized, Hugging Face names) and `tokenizer.json`.
//!
//! `cargo run --release -p psf-poly --example smollm2_export -- <out_dir>`

use candle_core::Device;
use psf_model::import::{GgufFile, fetch};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::path::PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: smollm2_export <out_dir>")?,
    );
    std::fs::create_dir_all(&out)?;
    let path = fetch::smollm2_gguf(&fetch::cache_dir())?;
    let gguf = GgufFile::open(&path)?;
    let lit = gguf.config_literal()?;
    let cfg = lit.try_build()?;
    let tensors = gguf.hf_tensors(&cfg, &Device::Cpu)?;
    candle_core::safetensors::save(&tensors, out.join("model.safetensors"))?;
    cfg.to_literal().to_file(out.join("config.json"))?;
    gguf.tokenizer()?
        .save(out.join("tokenizer.json"), false)
        .map_err(|e| e.to_string())?;
    println!(
        "wrote {} ({} tensors, {} layers, vocab {})",
        out.display(),
        tensors.len(),
        cfg.num_layers,
        cfg.vocab_size
    );
    Ok(())
}
