//! Criterion benchmark of bootstrapping on the INSECURE twins of the N=2^16 preset (same chain
//! and circuit, full slots) at small ring degrees, sized for CI:
//! `cargo bench -p psf-circuits --bench bootstrap` (set `RAYON_NUM_THREADS` for 1 or 2 threads).
//! Before timing, each ring degree's output is checked (12 levels left, >= 19 bits minimum
//! precision on uniform real inputs). The N=2^16 figures come from
//! `examples/bootstrap_bench.rs` (criterion at that size is too slow; see BOOTSTRAP_NOTES.md).

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use psf_circuits::bootstrap::presets::{self, EPHEMERAL_WEIGHT};
use psf_circuits::bootstrap::{Bootstrapper, Encapsulation};
use psf_ckks::*;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench_bootstrap(c: &mut Criterion) {
    let mut group = c.benchmark_group("bootstrap_twin_of_n16");
    group.sample_size(10);
    for log_n in [12u32, 13] {
        let preset = presets::insecure_twin_of_n16(log_n);
        let params = preset.params.try_build().unwrap();
        let boot = Bootstrapper::new(&params, preset.config).unwrap();
        let mut kgen = KeyGenerator::seeded(params.ring(), 1);
        let sk = kgen.gen_secret_key();
        let keys = EvaluationKeys::generate(&mut kgen, &sk, &boot.rotations(), true).unwrap();
        let encap = Encapsulation::generate(&params, &sk, EPHEMERAL_WEIGHT, Some(2)).unwrap();
        let enc = Encoder::new(&params);
        let eval = Evaluator::new(&params, keys);
        let n = params.max_slots();
        let x: Vec<f64> = (0..n)
            .map(|i| ((i * 7919) % n) as f64 / n as f64 * 2.0 - 1.0)
            .collect();
        let pt = enc
            .encode(&x, params.max_log_slots(), 0, params.default_scale())
            .unwrap();
        let ct = Encryptor::with_secret_key(&sk)
            .seeded(3)
            .encrypt(&pt)
            .unwrap();
        let out = boot.bootstrap(&eval, Some(&encap), &ct).unwrap();
        let have = enc
            .decode(&Decryptor::new(&sk).decrypt(&out).unwrap())
            .unwrap();
        let stats = PrecisionStats::from_real(&x, &have);
        println!("N=2^{log_n}: levels left {}, {stats}", out.level());
        assert_eq!(out.level(), 12);
        assert!(stats.min_bits >= 19.0, "{stats}");
        group.bench_function(BenchmarkId::from_parameter(format!("logN={log_n}")), |b| {
            b.iter(|| boot.bootstrap(&eval, Some(&encap), &ct).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench_bootstrap);
criterion_main!(benches);
