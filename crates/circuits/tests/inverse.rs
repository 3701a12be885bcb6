//! Inverse and inverse square root: the depth/accuracy table on the simulator (printed), exact
//! levels and scales, and encrypted runs against the exact functions within the circuits'
//! stated errors plus 2^-20, with counts, levels and scales identical to the simulator's.

use psf_circuits::inverse::{InvSqrt, Method, Reciprocal, tradeoff_markdown, tradeoff_rows};
use psf_circuits::{Backend, Circuit, HeBackend, SimBackend};
use psf_ckks::*;

/// N=2^12 with twelve 50-bit levels. NOT SECURE.
fn params() -> CkksParameters {
    let mut lit = sets::insecure_n12();
    lit.ring.name = "INSECURE_N12_DEPTH12_TEST".into();
    lit.ring.log_q = std::iter::once(60).chain([50; 12]).collect();
    lit.try_build().unwrap()
}

const EPS: f64 = 1.0 / 64.0;

#[test]
fn tradeoff_table_is_consistent() {
    let params = params();
    let rows = tradeoff_rows(&params, (EPS, 1.0), &[0, 3, 7], 4).unwrap();
    println!("{}", tradeoff_markdown(&rows));
    for r in rows
        .iter()
        .filter(|r| r.function == "1/x" && r.method == "newton")
    {
        let g = rows
            .iter()
            .find(|g| {
                g.method == "goldschmidt"
                    && (g.guess_degree, g.iterations) == (r.guess_degree, r.iterations)
            })
            .unwrap();
        // The same iterates, computed two ways, at no more depth.
        assert!((r.max_rel_err - g.max_rel_err).abs() <= 1e-9 * r.max_rel_err + 1e-13);
        assert!(g.depth <= r.depth);
    }
    for w in rows.windows(2) {
        let same = (w[0].function, w[0].method, w[0].guess_degree)
            == (w[1].function, w[1].method, w[1].guess_degree);
        if same && w[1].iterations == w[0].iterations + 1 && w[0].max_rel_err > 1e-10 {
            assert!(
                w[1].max_rel_err < w[0].max_rel_err,
                "{:?} -> {:?}",
                w[0],
                w[1]
            );
        }
    }
}

#[test]
fn levels_scales_and_twins_on_the_simulator() {
    let params = params();
    let sim = SimBackend::with_slots(&params, 256);
    let x: Vec<f64> = (0..256)
        .map(|i| EPS + (1.0 - EPS) * i as f64 / 255.0)
        .collect();
    let top = sim.max_level();
    let ct = sim.encrypt(&x, top, sim.default_scale()).unwrap();
    let target = 2f64.powi(49);
    for (deg, it) in [(0, 1), (0, 2), (0, 5), (3, 0), (3, 1), (7, 2), (15, 3)] {
        for m in [Method::Newton, Method::Goldschmidt] {
            let c = Reciprocal::new(EPS, 1.0, m, deg, it).unwrap();
            if c.depth() > top {
                continue;
            }
            let y = c.evaluate(&sim, &ct).unwrap();
            assert_eq!(
                (y.level, y.scale),
                (top - c.depth(), ct.scale),
                "{m:?} {deg} {it}"
            );
            let y = c
                .clone()
                .with_output_scale(target)
                .evaluate(&sim, &ct)
                .unwrap();
            assert_eq!(y.scale, target);
            for (v, h) in x.iter().zip(&y.values) {
                let w = c.eval_f64(*v);
                assert!(
                    (w - h).abs() <= 1e-9 * w.abs(),
                    "{m:?} {deg} {it}: {w} vs {h}"
                );
            }
        }
        if deg == 0 && it == 0 {
            continue;
        }
        let c = InvSqrt::new(EPS, 1.0, deg, it.max(1)).unwrap();
        if c.depth() <= top {
            let y = c.evaluate(&sim, &ct).unwrap();
            assert_eq!((y.level, y.scale), (top - c.depth(), ct.scale));
            for (v, h) in x.iter().zip(&y.values) {
                assert!((c.eval_f64(*v) - h).abs() <= 1e-9 * h.abs());
            }
        }
    }
    let low = sim.encrypt(&x, 3, sim.default_scale()).unwrap();
    let c = Reciprocal::new(EPS, 1.0, Method::Newton, 7, 2).unwrap();
    assert!(c.evaluate(&sim, &low).is_err());
    assert!(Reciprocal::new(0.0, 1.0, Method::Newton, 3, 1).is_err());
    assert!(InvSqrt::new(1.0, 0.5, 3, 1).is_err());
    assert_eq!((c.min_input_level(), c.galois_elements(12)), (8, vec![]));
}

#[test]
fn encrypted_inverses_match_stated_errors_and_simulator() {
    let params = params();
    let mut kgen = KeyGenerator::seeded(params.ring(), 3);
    let sk = kgen.gen_secret_key();
    let pk = kgen.gen_public_key(&sk);
    let keys = EvaluationKeys::generate(&mut kgen, &sk, &[], false).unwrap();
    let enc = Encoder::new(&params);
    let eval = Evaluator::new(&params, keys);
    let he = HeBackend::new(&params, &enc, &eval);
    let sim = SimBackend::new(&params);
    let n = params.max_slots();
    let x: Vec<f64> = (0..n)
        .map(|i| EPS + (1.0 - EPS) * i as f64 / (n - 1) as f64)
        .collect();
    let top = params.ring().max_level();
    let scale = params.default_scale();
    let pt = enc.encode(&x, params.max_log_slots(), top, scale).unwrap();
    let ct = Encryptor::with_public_key(&pk)
        .seeded(9)
        .encrypt(&pt)
        .unwrap();
    let sct = sim.encrypt(&x, top, scale.0).unwrap();

    let recips = [
        Reciprocal::new(EPS, 1.0, Method::Goldschmidt, 15, 3).unwrap(),
        Reciprocal::new(EPS, 1.0, Method::Newton, 7, 4).unwrap(),
    ];
    for c in &recips {
        let stated = c.error_report().max_abs;
        let (y, sy) = (
            c.evaluate(&he, &ct).unwrap(),
            c.evaluate(&sim, &sct).unwrap(),
        );
        check(
            &he,
            &sim,
            &enc,
            &sk,
            &y,
            &sy,
            &x,
            |v| 1.0 / v,
            |v| c.eval_f64(v),
            stated,
        );
        println!(
            "1/x {:?} deg {} x {} (depth {}) ok",
            c.method(),
            c.guess_degree(),
            c.iterations(),
            c.depth()
        );
    }
    let c = InvSqrt::new(EPS, 1.0, 7, 3).unwrap();
    let stated = c.error_report().max_abs;
    let (y, sy) = (
        c.evaluate(&he, &ct).unwrap(),
        c.evaluate(&sim, &sct).unwrap(),
    );
    check(
        &he,
        &sim,
        &enc,
        &sk,
        &y,
        &sy,
        &x,
        |v| 1.0 / v.sqrt(),
        |v| c.eval_f64(v),
        stated,
    );
}

#[allow(clippy::too_many_arguments)]
fn check(
    he: &HeBackend<'_>,
    sim: &SimBackend,
    enc: &Encoder,
    sk: &SecretKey,
    y: &Ciphertext,
    sy: &psf_circuits::SimCiphertext,
    x: &[f64],
    exact: impl Fn(f64) -> f64,
    twin: impl Fn(f64) -> f64,
    stated: f64,
) {
    assert_eq!(
        he.counts(),
        sim.counts(),
        "he {} / sim {}",
        he.counts(),
        sim.counts()
    );
    assert_eq!((y.level(), y.meta.scale.0), (sy.level, sy.scale));
    let have = enc.decode(&Decryptor::new(sk).decrypt(y).unwrap()).unwrap();
    let want: Vec<f64> = x.iter().map(|&v| exact(v)).collect();
    let tw: Vec<f64> = x.iter().map(|&v| twin(v)).collect();
    let vs_exact = PrecisionStats::from_real(&want, &have);
    let vs_twin = PrecisionStats::from_real(&tw, &have);
    println!("  vs twin: {vs_twin}\n  vs exact: {vs_exact} (stated {stated:.3e})");
    assert!(vs_twin.max_abs_err <= 2f64.powi(-20), "{vs_twin}");
    assert!(
        vs_exact.max_abs_err <= stated + 2f64.powi(-20),
        "{vs_exact}"
    );
}
