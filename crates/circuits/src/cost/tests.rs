use psf_approx::Chebyshev;
use psf_ckks::*;

use super::*;
use crate::{Backend, HeBackend, PolyEval, SimBackend};

fn curve(points: &[(usize, f64)]) -> CostCurve {
    CostCurve {
        primitive: Primitive::Add,
        threads: 1,
        points: (points.iter())
            .map(|&(level, ms)| CostPoint {
                level,
                ms,
                min_ms: ms,
                max_ms: ms,
            })
            .collect(),
    }
}

#[test]
fn curves_interpolate_linearly_inside_the_grid_only() {
    let c = curve(&[(0, 1.0), (4, 5.0), (6, 11.0)]);
    assert_eq!(c.ms_at(0), Some(1.0));
    assert_eq!(c.ms_at(2), Some(3.0));
    assert_eq!(c.ms_at(5), Some(8.0));
    assert_eq!(c.ms_at(6), Some(11.0));
    assert_eq!(c.ms_at(7), None);
    assert_eq!(curve(&[(2, 4.0), (3, 5.0)]).ms_at(1), None);
    // A single point is level-independent (bootstrapping).
    assert_eq!(curve(&[(0, 9.0)]).ms_at(12), Some(9.0));
    assert_eq!(curve(&[]).ms_at(0), None);
}

/// A small circuit: a degree-7 polynomial, a product, rotations (plain and hoisted) and
/// plaintext products, over any backend.
fn small_circuit<B: Backend>(be: &B, x: &B::Ct) -> crate::Result<B::Ct> {
    let p = Chebyshev::interpolate(|t| (1.3 * t).tanh(), -1.0, 1.0, 7);
    let y = PolyEval::new(p)?.evaluate_one(be, x)?;
    let yy = be.rescale(&be.mul_relin(&y, &y)?)?;
    let pt = be.encode(&vec![0.5; be.slots()], be.level(&yy), be.default_scale())?;
    let z = be.rescale(&be.mul_plain(&yy, &pt)?)?;
    let rs = be.rotate_hoisted(&z, &[1, 2, 3])?;
    let mut acc = be.rotate(&z, 4)?;
    for r in &rs {
        acc = be.add(&acc, r)?;
    }
    be.drop_to_level(&acc, be.level(&acc) - 1)
}

#[test]
fn predict_prices_sim_counts_at_the_table_entries_and_he_counts_match() {
    let params = sets::insecure_n10().try_build().unwrap();
    let cfg = MeasureConfig {
        levels: Vec::new(),
        threads: vec![1],
        reps: 1,
        seed: 5,
        note: "test".into(),
    };
    let table = measure_table(&params, &cfg, |_, _| {}).unwrap();
    assert_eq!(table.thread_counts(), vec![1]);
    let top = params.ring().max_level();
    assert_eq!(
        table.curve(Primitive::Relinearize, 1).unwrap().points.len(),
        top + 1
    );
    assert_eq!(
        table.curve(Primitive::Rescale, 1).unwrap().points[0].level,
        1
    );

    let xs: Vec<f64> = (0..params.max_slots())
        .map(|i| ((i * 13) % 29) as f64 / 14.0 - 1.0)
        .collect();
    let sim = SimBackend::new(&params);
    let ct = sim.encrypt(&xs, top, sim.default_scale()).unwrap();
    small_circuit(&sim, &ct).unwrap();
    let counts = sim.counter().snapshot_levels();
    assert!(counts.unleveled().nonzero().is_empty());

    // The same circuit on ciphertexts records the same per-level counts.
    let mut kgen = KeyGenerator::seeded(params.ring(), 3);
    let sk = kgen.gen_secret_key();
    let keys = EvaluationKeys::generate(&mut kgen, &sk, &[1, 2, 3, 4], false).unwrap();
    let (enc, eval) = (Encoder::new(&params), Evaluator::new(&params, keys));
    let pt = enc
        .encode(&xs, params.max_log_slots(), top, params.default_scale())
        .unwrap();
    let he_ct = Encryptor::with_secret_key(&sk).encrypt(&pt).unwrap();
    small_circuit(&HeBackend::new(&params, &enc, &eval), &he_ct).unwrap();
    assert_eq!(eval.counter().snapshot_levels(), counts);

    // predict = sum over (primitive, level) of count * the measured point at that level.
    let model = CostModel::new(table.clone(), 1).unwrap();
    let pred = model.predict(&counts).unwrap();
    let mut expected = 0.0;
    for e in counts.entries() {
        let curve = table.curve(e.primitive, 1).unwrap();
        let point = curve.points.iter().find(|p| p.level == e.level).unwrap();
        expected += e.count as f64 * point.ms / 1e3;
    }
    assert!(expected > 0.0);
    assert!(
        (pred.seconds - expected).abs() <= 1e-12 * expected,
        "{pred} vs {expected}"
    );
    let parts: f64 = pred.by_primitive.values().sum();
    assert!((parts - pred.seconds).abs() <= 1e-12 * expected);
    assert!(pred.by_primitive.contains_key(&Primitive::RotateHoisted));
    assert!(CostModel::new(table, 2).is_err());
}

#[test]
fn predict_refuses_unleveled_counts_and_unmeasured_levels() {
    let table = CostTable {
        params: "T".into(),
        log_n: 10,
        max_level: 6,
        reps: 1,
        note: String::new(),
        curves: vec![curve(&[(2, 1.0), (4, 3.0)])],
    };
    let model = CostModel::new(table, 1).unwrap();
    let mut c = LevelCounts::default();
    c.add(Primitive::Add, 3, 2);
    assert!((model.predict(&c).unwrap().seconds - 4e-3).abs() < 1e-15);
    c.add(Primitive::Add, 5, 1);
    assert!(matches!(
        model.predict(&c),
        Err(CircuitError::NoCost { level: Some(5), .. })
    ));
    let counter = OpCounter::default();
    counter.record(Primitive::Add);
    assert!(matches!(
        model.predict(&counter.snapshot_levels()),
        Err(CircuitError::NoCost { level: None, .. })
    ));
    let mut m = LevelCounts::default();
    m.add(Primitive::Mul, 3, 1);
    assert!(matches!(
        model.predict(&m),
        Err(CircuitError::NoCost {
            primitive: Primitive::Mul,
            ..
        })
    ));
}
