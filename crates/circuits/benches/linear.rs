//! The 512 x 512 plaintext-matrix transform on 64-token-interleaved slots at N=2^16
//! (`N16_QP1487_DEPTH20_128BIT`, 2^15 slots = 512 features x 64 tokens), one ciphertext in and
//! one out, BSGS with hoisted baby steps and double hoisted; the simulator's counts are printed
//! next to the measured ones (and asserted equal).
//!
//! `cargo bench -p psf-circuits --bench linear` (env `PSF_LT_LEVEL` picks the input level,
//! default 7; the encoded diagonals take 512 x (level + 1 [+ 7]) x 0.5 MiB).

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use psf_circuits::linear::{Interleaved, LinearTransform, Strategy};
use psf_circuits::{Backend, Circuit, HeBackend, SimBackend};
use psf_ckks::*;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn weights(d: usize) -> Vec<Vec<f64>> {
    (0..d)
        .map(|i| {
            (0..d)
                .map(|j| (((i * 31 + j * 17) % 97) as f64 / 97.0 - 0.5) / 16.0)
                .collect()
        })
        .collect()
}

/// Counts of one application on the simulator.
fn simulated(params: &CkksParameters, t: &LinearTransform, x: &[f64], level: usize) -> OpCounts {
    let sim = SimBackend::new(params).with_keys(false, t.galois_elements(params.ring().log_n()));
    let ct = sim.encrypt(x, level, sim.default_scale()).unwrap();
    let enc = t.encode(&sim, level).unwrap();
    sim.counter().reset();
    enc.apply(&sim, &ct).unwrap();
    sim.counts()
}

fn bench_interleaved(c: &mut Criterion) {
    let params = sets::n16_depth20_128bit().try_build().unwrap();
    let level: usize = std::env::var("PSF_LT_LEVEL")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let layout = Interleaved::new(64, params.max_slots()).unwrap();
    let t = layout
        .transform(&weights(512), Strategy::Bsgs(None))
        .unwrap();
    let log_n = params.ring().log_n();
    let mut kgen = KeyGenerator::seeded(params.ring(), 1);
    let sk = kgen.gen_secret_key();
    let galois = t
        .galois_elements(log_n)
        .into_iter()
        .map(|g| (g, kgen.gen_galois_key(g, &sk).unwrap()))
        .collect();
    let eval = Evaluator::new(
        &params,
        EvaluationKeys {
            relin: None,
            galois,
        },
    );
    let encoder = Encoder::new(&params);
    let b = HeBackend::new(&params, &encoder, &eval);
    let x: Vec<f64> = (0..params.max_slots())
        .map(|i| (i as f64 * 1e-3).sin())
        .collect();
    let pt = encoder
        .encode(&x, params.max_log_slots(), level, params.default_scale())
        .unwrap();
    let ct = Encryptor::with_secret_key(&sk)
        .seeded(2)
        .encrypt(&pt)
        .unwrap();
    let sim_counts = simulated(&params, &t, &x, level);
    let id = |what: &str| BenchmarkId::new(what, format!("2^16/level{level}"));
    let mut group = c.benchmark_group("interleaved-512x512-64tok");
    group.sample_size(10);
    {
        let enc = t.encode(&b, level).unwrap();
        eval.counter().reset();
        enc.apply(&b, &ct).unwrap();
        let counts = eval.counter().snapshot();
        println!(
            "bsgs-hoisted   measured counts: {counts}\n               simulated:       {sim_counts}"
        );
        assert_eq!(counts, sim_counts);
        group.bench_function(id("bsgs-hoisted"), |bch| {
            bch.iter(|| enc.apply(&b, &ct).unwrap())
        });
    }
    {
        let dh = t.encode_double_hoisted(&b, level).unwrap();
        eval.counter().reset();
        dh.apply(&b, &ct).unwrap();
        let counts = eval.counter().snapshot();
        println!(
            "double-hoisted measured counts: {counts}\n               simulated:       {sim_counts}"
        );
        assert_eq!(counts, sim_counts);
        group.bench_function(id("double-hoisted"), |bch| {
            bch.iter(|| dh.apply(&b, &ct).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench_interleaved);
criterion_main!(benches);
