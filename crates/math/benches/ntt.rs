//! NTT backends compared: `cargo bench -p psf-math --bench ntt`.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use psf_math::{NttBackend, NttPlan, PrimeSearch, Sampler, ntt_primes};

fn ntt(c: &mut Criterion) {
    let mut group = c.benchmark_group("ntt_forward");
    for log_n in [14u32, 15, 16] {
        let n = 1 << log_n;
        for bits in [50u32, 60] {
            let q = ntt_primes(bits, n, 1, PrimeSearch::Below, &[]).unwrap()[0];
            let mut s = Sampler::seeded(1);
            let a: Vec<u64> = (0..n).map(|_| s.uniform_below(q)).collect();
            for backend in [NttBackend::Tfhe, NttBackend::Harvey] {
                let plan = NttPlan::with_backend(n, q, backend).unwrap();
                let id = BenchmarkId::new(format!("{backend:?}/{bits}bit"), format!("2^{log_n}"));
                group.bench_with_input(id, &plan, |bch, plan| {
                    let mut buf = a.clone();
                    bch.iter(|| plan.forward(&mut buf));
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, ntt);
criterion_main!(benches);
