//! Criterion benchmarks of encrypted Chebyshev polynomial evaluation (baby-step giant-step)
//! at N=2^16 (`N16_..._DEPTH20_128BIT`): GELU on [-8, 8] at degrees 15, 31 and 63.
//! `cargo bench -p psf-circuits --bench poly_eval` (set `RAYON_NUM_THREADS` for 1 or 2 threads).
//! Before timing, each degree is run once on the real evaluator and once on the simulation
//! evaluator; the two op counts must agree exactly, and are printed with the depth.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use psf_approx::gelu;
use psf_circuits::{Backend, Circuit, HeBackend, PolyEval, SimBackend};
use psf_ckks::*;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench_poly_eval(c: &mut Criterion) {
    let params = sets::n16_depth20_128bit().try_build().unwrap();
    let ring = params.ring();
    let mut kgen = KeyGenerator::seeded(ring, 1);
    let sk = kgen.gen_secret_key();
    let pk = kgen.gen_public_key(&sk);
    let keys = EvaluationKeys::generate(&mut kgen, &sk, &[], false).unwrap();
    let enc = Encoder::new(&params);
    let eval = Evaluator::new(&params, keys);
    let he = HeBackend::new(&params, &enc, &eval);
    let sim = SimBackend::new(&params);
    let (level, scale) = (ring.max_level(), params.default_scale());
    let n = params.max_slots();
    let x: Vec<f64> = (0..n).map(|i| -8.0 + 16.0 * i as f64 / n as f64).collect();
    let pt = enc
        .encode(&x, params.max_log_slots(), level, scale)
        .unwrap();
    let ct = Encryptor::with_public_key(&pk)
        .seeded(2)
        .encrypt(&pt)
        .unwrap();
    let sct = sim.encrypt(&x, level, scale.0).unwrap();

    let mut group = c.benchmark_group("poly_eval");
    group.sample_size(10);
    for degree in [15usize, 31, 63] {
        let pe = PolyEval::new(gelu(-8.0, 8.0, degree).unwrap().poly).unwrap();
        eval.counter().reset();
        sim.counter().reset();
        let out = pe.evaluate_one(&he, &ct).unwrap();
        let sout = pe.evaluate_one(&sim, &sct).unwrap();
        assert_eq!(
            he.counts(),
            sim.counts(),
            "counts differ at degree {degree}"
        );
        assert_eq!((out.level(), out.meta.scale.0), (sout.level, sout.scale));
        let have = enc
            .decode(&Decryptor::new(&sk).decrypt(&out).unwrap())
            .unwrap();
        let prec = PrecisionStats::from_real(&sout.values, &have);
        println!(
            "poly_eval gelu d={degree}: depth {} (levels {level} -> {}), sim counts = HE counts: {} | {prec}",
            pe.depth(),
            out.level(),
            sim.counts(),
        );
        group.bench_with_input(
            BenchmarkId::new("chebyshev_gelu", format!("N=2^16/d={degree}")),
            &degree,
            |bch, _| bch.iter(|| pe.evaluate_one(&he, &ct).unwrap()),
        );
    }
    group.finish();
}

criterion_group!(benches, bench_poly_eval);
criterion_main!(benches);
