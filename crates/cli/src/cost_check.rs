//! `psformer bench costs --check TABLE`: the cost model against a measured run at the table's
//! parameter set: a degree-15 Chebyshev polynomial (a `tanh`) followed by a 32-diagonal BSGS
//! linear transform, simulated for the per-level counts, priced by the table, and run on
//! ciphertexts (median of repetitions) at each thread count of the table.

use std::time::Instant;

use psf_approx::Chebyshev;
use psf_circuits::cost::{CostModel, CostTable};
use psf_circuits::linear::{LinearTransform, Strategy};
use psf_circuits::{Backend, Circuit, HeBackend, PolyEval, SimBackend};
use psf_ckks::{
    CkksParameters, Encoder, Encryptor, EvaluationKeys, Evaluator, KeyGenerator, PrecisionStats,
};

use crate::timing::with_threads;

fn circuit(slots: usize) -> anyhow::Result<(PolyEval, LinearTransform)> {
    let poly = PolyEval::new(Chebyshev::interpolate(|x| (2.0 * x).tanh(), -1.0, 1.0, 15))?;
    let diagonals = (0..32i64).map(|k| {
        let v: Vec<f64> = (0..slots)
            .map(|i| (((i as i64 * 7 + k * 13) % 23) as f64 / 23.0 - 0.5) / 8.0)
            .collect();
        (k, v)
    });
    let lt = LinearTransform::from_diagonals(slots, diagonals, Strategy::Bsgs(None))?;
    Ok((poly, lt))
}

/// Runs the check and prints predicted vs measured seconds per thread count.
pub fn run(params: &CkksParameters, table: &CostTable, reps: usize) -> anyhow::Result<()> {
    let slots = params.max_slots();
    let (poly, lt) = circuit(slots)?;
    let level = poly.depth() + 1;
    let x: Vec<f64> = (0..slots)
        .map(|i| ((i * 37) % 101) as f64 / 101.0 - 0.5)
        .collect();
    // Simulated counts of the transform's application plus the polynomial (encoding of the
    // diagonals happens once, outside the timed region, in both runs).
    let sim = SimBackend::new(params);
    let ct = sim.encrypt(&x, level, sim.default_scale())?;
    let enc_sim = lt.encode(&sim, level - poly.depth())?;
    sim.counter().reset();
    let y = poly.evaluate_one(&sim, &ct)?;
    enc_sim.apply(&sim, &y)?;
    let counts = sim.counter().snapshot_levels();
    println!("simulated counts: {counts}");

    let mut kgen = KeyGenerator::seeded(params.ring(), 11);
    let sk = kgen.gen_secret_key();
    let keys = EvaluationKeys::generate(&mut kgen, &sk, &lt.plan().rotations(), false)?;
    let (enc, eval) = (Encoder::new(params), Evaluator::new(params, keys));
    let he = HeBackend::new(params, &enc, &eval);
    let encoded = lt.encode(&he, level - poly.depth())?;
    let pt = enc.encode(&x, params.max_log_slots(), level, params.default_scale())?;
    let ct = Encryptor::with_secret_key(&sk).seeded(3).encrypt(&pt)?;
    for threads in table.thread_counts() {
        let predicted = CostModel::new(table.clone(), threads)?.predict(&counts)?;
        let (ms, out) = with_threads(threads, || -> anyhow::Result<(f64, _)> {
            let mut times = Vec::new();
            let mut out = None;
            for _ in 0..reps.max(1) {
                eval.counter().reset();
                let t = Instant::now();
                let y = poly.evaluate_one(&he, &ct)?;
                out = Some(encoded.apply(&he, &y)?);
                times.push(t.elapsed().as_secs_f64());
            }
            times.sort_by(f64::total_cmp);
            Ok((times[times.len() / 2], out))
        })??;
        anyhow::ensure!(
            eval.counter().snapshot_levels() == counts,
            "HE counts differ from the simulation"
        );
        let have = enc.decode(&psf_ckks::Decryptor::new(&sk).decrypt(&out.expect("reps >= 1"))?)?;
        let poly_x: Vec<f64> = x.iter().map(|&v| poly.eval_f64(v)[0]).collect();
        let want = lt.apply_f64(&poly_x);
        let bits = PrecisionStats::from_real(&want, &have).min_bits;
        println!(
            "[{threads}T] poly(15) + 32-diagonal BSGS at level {level}: measured {ms:.3} s, \
             predicted {predicted} ({:+.1}%), precision {bits:.1} bits, load {}",
            100.0 * (predicted.seconds / ms - 1.0),
            crate::bench_costs::loadavg()
        );
    }
    Ok(())
}
