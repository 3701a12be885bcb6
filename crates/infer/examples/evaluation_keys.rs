//! The evaluation keys of a compiled model directory (default `models/demo`, the `psformer
//! demo` model): how many, their bytes with every key full and with the circuit's rotations
//! limited to the fresh level (what `KeyRequirements::generate` makes), and, with
//! `--generate`, the time to generate each set. Keys are generated one at a time and dropped,
//! so the full set never sits in memory.
//!
//! ```text
//! cargo run --release -p psf-infer --example evaluation_keys -- --model models/demo \
//!     --seq-len 12 --generate
//! ```
//! `--seq-len` is the prompt length the model is compiled for (the demo's default prompt has
//! 12 tokens); the calibration inputs are the embeddings of token ids `0..seq_len` (they set
//! the refresh bounds only: rotations and levels do not depend on them).

use std::time::Instant;

use clap::Parser;

use psf_ckks::{CkksParameters, KeyGenerator, SecretKey};
use psf_infer::{CompileOptions, CompiledModel, KeyRequirements, ModelIr};
use psf_poly::{PolyModel, PolySpec, PolyWeights};

/// Command-line options.
#[derive(Parser)]
struct Args {
    /// Model directory (weights, `poly.json`).
    #[arg(long, default_value = "models/demo")]
    model: String,
    /// Prompt length the model is compiled for.
    #[arg(long, default_value_t = 12)]
    seq_len: usize,
    /// `log2` of the ring degree.
    #[arg(long, default_value_t = 16)]
    log_n: u32,
    /// Also generate each key set and time it.
    #[arg(long)]
    generate: bool,
    /// Threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

/// Generates the relinearization key and every Galois key of `req`, one at a time; returns
/// (seconds, bytes).
fn generate(req: &KeyRequirements, params: &CkksParameters, sk: &SecretKey) -> (f64, usize) {
    let mut kgen = KeyGenerator::new(params.ring());
    let t = Instant::now();
    let mut bytes = kgen.gen_relinearization_key(sk).0.size_bytes();
    for &g in &req.galois_elements {
        let level = req.required_level(g, params);
        bytes += kgen
            .gen_galois_key_up_to(g, sk, level)
            .expect("odd element, valid level")
            .key
            .size_bytes();
    }
    (t.elapsed().as_secs_f64(), bytes)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse();
    rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads)
        .build_global()?;
    let weights = PolyWeights::from_dir(&a.model)?;
    let spec = PolySpec::from_file(format!("{}/poly.json", a.model))?;
    let poly = PolyModel::new(weights, spec)?;
    let ir = ModelIr::from_poly(&poly)?;
    let vocab = poly.weights().config.vocab_size as u32;
    let ids: Vec<u32> = (0..a.seq_len as u32).map(|i| i % vocab).collect();
    let emb = poly.weights().embed(&ids)?;
    let calibration = vec![(0..emb.rows).map(|i| emb.row(i).to_vec()).collect()];
    let opts = CompileOptions::for_log_n(a.seq_len, 1, a.log_n, calibration);
    let m = CompiledModel::compile(&ir, &opts)?;
    let params = m.params()?;
    let limited = m.key_requirements()?;
    let full = KeyRequirements {
        key_levels: Default::default(),
        ..limited.clone()
    };
    let ring = params.ring();
    let mib = |b: usize| b as f64 / (1u64 << 20) as f64;
    let top = ring.max_level();
    let mut by_level = std::collections::BTreeMap::new();
    for &g in &limited.galois_elements {
        *by_level
            .entry(limited.required_level(g, &params))
            .or_insert(0) += 1;
    }
    let histogram: Vec<String> = (by_level.iter())
        .map(|(l, n)| {
            format!(
                "{n} at {}",
                if *l == top {
                    "top".into()
                } else {
                    l.to_string()
                }
            )
        })
        .collect();
    println!(
        "{} (N = 2^{}, {} Q primes, {} P primes, dnum {}): {} rotations + conjugation; fresh \
         level {} of {}; Galois keys by level: {}",
        ring.name(),
        ring.log_n(),
        ring.q().len(),
        ring.p().len(),
        ring.dnum(),
        limited.rotations.len(),
        m.fresh_level(&params),
        top,
        histogram.join(", ")
    );
    let (fb, lb) = (
        full.key_material_bytes(&params),
        limited.key_material_bytes(&params),
    );
    println!(
        "evaluation keys (relinearization + Galois): all full {:.0} MiB, limited {:.0} MiB ({:.1} %)",
        mib(fb),
        mib(lb),
        100.0 * lb as f64 / fb as f64
    );
    if a.generate {
        let sk = KeyGenerator::new(ring).gen_secret_key();
        for (name, req) in [("all full", &full), ("limited", &limited)] {
            let (s, bytes) = generate(req, &params, &sk);
            println!(
                "generation ({name}, {} threads): {s:.1} s, {:.0} MiB",
                a.threads,
                mib(bytes)
            );
        }
    }
    Ok(())
}
