//! Training throughput on the reference shape (4 layers, d=256, 4 heads, seq 128,
//! batch 16, vocab 8192), random tokens.
//!
//! `RAYON_NUM_THREADS=2 cargo run --release -p psf-model --example throughput -- [softmax|power] [steps]`

use std::time::Instant;

use candle_core::{Device, Tensor};
use psf_model::train::{AdamWConfig, Schedule, Trainer};
use psf_model::{AttentionNorm, Model, ModelConfigLiteral, PowerSoftmax};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> psf_model::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let norm = match args.get(1).map(String::as_str) {
        Some("power") => AttentionNorm::Power(PowerSoftmax {
            eps: 1e-3,
            ..Default::default()
        }),
        Some("relu") => AttentionNorm::ReluLinear,
        _ => AttentionNorm::Softmax,
    };
    let steps: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let (batch, seq) = (16usize, 128usize);
    let mut lit = ModelConfigLiteral::neox_reference();
    lit.attention_norm = Some(norm.clone());
    let cfg = lit.try_build()?;
    let dev = Device::Cpu;
    let (model, varmap) = Model::init_random(&cfg, 0, &dev)?;
    let schedule = Schedule {
        max_lr: 1e-3,
        min_lr: 1e-4,
        warmup_steps: 5,
        total_steps: steps + 2,
    };
    let mut trainer = Trainer::new(&cfg, model, varmap, AdamWConfig::default(), schedule, None);
    let ids: Vec<u32> = (0..batch * (seq + 1))
        .map(|i| ((i * 7919) % cfg.vocab_size) as u32)
        .collect();
    let ids = Tensor::from_vec(ids, (batch, seq + 1), &dev)?;
    let (x, y) = (ids.narrow(1, 0, seq)?, ids.narrow(1, 1, seq)?);
    trainer.step(&x, &y)?; // warm-up
    let t0 = Instant::now();
    for _ in 0..steps {
        let out = trainer.step(&x, &y)?;
        eprintln!("loss {:.4}", out.loss);
    }
    let secs = t0.elapsed().as_secs_f64();
    if std::env::var("PSF_PHASES").is_ok() {
        phases(&trainer, &x, &y)?;
    }
    let tps = (steps * batch * seq) as f64 / secs;
    println!(
        "{norm:?}: {steps} steps in {secs:.2} s, {:.0} ms/step, {tps:.0} tokens/s",
        1e3 * secs / steps as f64
    );
    Ok(())
}

/// Splits one step into forward, backward and optimizer time (PSF_PHASES=1).
fn phases(trainer: &Trainer, x: &Tensor, y: &Tensor) -> psf_model::Result<()> {
    for _ in 0..3 {
        let t = Instant::now();
        let loss = trainer.model.loss(x, y, None)?;
        let f = t.elapsed().as_secs_f64();
        let grads = loss.backward()?;
        let b = t.elapsed().as_secs_f64() - f;
        drop(grads);
        println!("forward {:.0} ms, backward {:.0} ms", f * 1e3, b * 1e3);
    }
    Ok(())
}
