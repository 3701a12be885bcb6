//! Criterion benchmarks of the CKKS primitives at the 128-bit named sets:
//! `cargo bench -p psf-ckks --bench ckks_ops` (set `RAYON_NUM_THREADS` for 1 or 2 threads).
//! The `psformer bench ckks` command prints the same figures next to OpenFHE's.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use psf_ckks::*;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench_ops(c: &mut Criterion) {
    let sets = [
        sets::n14_depth5_128bit(),
        sets::n15_depth11_128bit(),
        sets::n16_depth20_128bit(),
    ];
    let mut group = c.benchmark_group("ckks");
    group.sample_size(10);
    for lit in sets {
        let params = lit.try_build().unwrap();
        let ring = params.ring();
        let id = |op: &str| BenchmarkId::new(op, format!("2^{}", ring.log_n()));
        let mut kgen = KeyGenerator::seeded(ring, 1);
        let sk = kgen.gen_secret_key();
        let pk = kgen.gen_public_key(&sk);
        let rotations: Vec<i64> = (1..=8).collect();
        let keys = EvaluationKeys::generate(&mut kgen, &sk, &rotations, false).unwrap();
        let enc = Encoder::new(&params);
        let eval = Evaluator::new(&params, keys);
        let (log_slots, level, scale) = (
            params.max_log_slots(),
            ring.max_level(),
            params.default_scale(),
        );
        let x: Vec<f64> = (0..params.max_slots())
            .map(|i| (i as f64 * 1e-3).sin())
            .collect();
        let pt = enc.encode(&x, log_slots, level, scale).unwrap();
        let mut encryptor = Encryptor::with_public_key(&pk).seeded(2);
        let ct = encryptor.encrypt(&pt).unwrap();
        let prod = eval.mul_relin_new(&ct, &ct).unwrap();
        let dec = Decryptor::new(&sk);
        group.bench_function(id("encode"), |b| {
            b.iter(|| enc.encode(&x, log_slots, level, scale).unwrap())
        });
        group.bench_function(id("encrypt"), |b| {
            b.iter(|| encryptor.encrypt(&pt).unwrap())
        });
        group.bench_function(id("decrypt+decode"), |b| {
            b.iter(|| enc.decode(&dec.decrypt(&ct).unwrap()).unwrap())
        });
        group.bench_function(id("add"), |b| b.iter(|| eval.add_new(&ct, &ct).unwrap()));
        group.bench_function(id("pt-mul"), |b| {
            b.iter(|| eval.mul_plain_new(&ct, &pt).unwrap())
        });
        group.bench_function(id("mul+relin"), |b| {
            b.iter(|| eval.mul_relin_new(&ct, &ct).unwrap())
        });
        group.bench_function(id("rescale"), |b| {
            b.iter(|| eval.rescale_new(&prod).unwrap())
        });
        group.bench_function(id("rotate"), |b| {
            b.iter(|| eval.rotate_new(&ct, 1).unwrap())
        });
        group.bench_function(id("hoisted-rotate-x8"), |b| {
            b.iter(|| eval.rotate_hoisted_new(&ct, &rotations).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench_ops);
criterion_main!(benches);
