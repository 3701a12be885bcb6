//! Chebyshev BSGS evaluation: exact depth and output scale on the simulator for many degrees,
//! shared power bases, and encrypted GELU (degree 63 on [-8, 8]) against its f64 twin with
//! identical counts, levels and scales on both backends.

use psf_approx::{self as approx, Chebyshev, gelu_exact};
use psf_circuits::{Backend, Circuit, HeBackend, PolyEval, SimBackend};
use psf_ckks::*;

fn grid(a: f64, b: f64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| a + (b - a) * i as f64 / (n - 1) as f64)
        .collect()
}

#[test]
fn depth_levels_and_exact_scale_for_many_degrees() {
    let params = sets::insecure_n12().try_build().unwrap();
    let sim = SimBackend::with_slots(&params, 64);
    let xs = grid(-3.0, 5.0, 64);
    for (a, b, map) in [
        (-1.0, 1.0, 0),
        (-3.0, 5.0, 1),
        (-0.5, 0.5, 0),
        (0.0, 2.0, 0),
    ] {
        for d in [
            1usize, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 100, 127,
        ] {
            let p = Chebyshev::interpolate(|x| (0.7 * x).sin() + 0.1 * x * x, a, b, d);
            let pe = PolyEval::new(p.clone()).unwrap();
            if pe.depth() > sim.max_level() {
                continue;
            }
            let x: Vec<f64> = xs.iter().map(|v| a + (b - a) * (v + 3.0) / 8.0).collect();
            let ct = sim
                .encrypt(&x, sim.max_level(), sim.default_scale())
                .unwrap();
            let out = pe.evaluate_one(&sim, &ct).unwrap();
            assert_eq!(out.level, sim.max_level() - pe.depth(), "d={d} [{a},{b}]");
            assert_eq!(out.scale, ct.scale, "d={d}");
            let expected_depth = map + (usize::BITS - d.leading_zeros()) as usize;
            assert_eq!(pe.depth(), expected_depth, "d={d}");
            for (v, y) in x.iter().zip(&out.values) {
                assert!(
                    (p.eval(*v) - y).abs() < 1e-9,
                    "d={d} x={v}: {} vs {y}",
                    p.eval(*v)
                );
            }
        }
    }
}

#[test]
fn several_polynomials_share_the_power_basis() {
    let params = sets::insecure_n12().try_build().unwrap();
    let sim = SimBackend::with_slots(&params, 16);
    let ps: Vec<Chebyshev> = [31usize, 20, 7]
        .iter()
        .map(|&d| Chebyshev::interpolate(|x| (x * d as f64 / 10.0).cos(), -2.0, 2.0, d))
        .collect();
    let x = grid(-2.0, 2.0, 16);
    let ct = sim.encrypt(&x, 7, sim.default_scale()).unwrap();
    let joint = PolyEval::many(ps.clone()).unwrap();
    let outs = joint.evaluate(&sim, &ct).unwrap();
    let joint_muls = sim.counts().get(Primitive::Mul);
    let mut separate_muls = 0;
    for (i, p) in ps.iter().enumerate() {
        sim.counter().reset();
        let alone = PolyEval::new(p.clone())
            .unwrap()
            .with_log_baby(joint.log_baby());
        let o = alone.evaluate_one(&sim, &ct).unwrap();
        separate_muls += sim.counts().get(Primitive::Mul);
        assert_eq!((o.level, o.scale), (outs[i].level, outs[i].scale));
        assert_eq!(outs[i].level, 7 - joint.depth_of(i));
        for (v, y) in x.iter().zip(&outs[i].values) {
            assert!((p.eval(*v) - y).abs() < 1e-9);
        }
    }
    println!("joint Mul {joint_muls}, separate {separate_muls}");
    assert!(joint_muls < separate_muls);
}

#[test]
fn errors_and_output_scale() {
    let params = sets::insecure_n12().try_build().unwrap();
    let sim = SimBackend::with_slots(&params, 8);
    let p = Chebyshev::interpolate(f64::exp, -1.0, 1.0, 15);
    let pe = PolyEval::new(p).unwrap();
    let low = sim.encrypt(&[0.5], 3, sim.default_scale()).unwrap();
    assert!(pe.evaluate(&sim, &low).is_err());
    let ct = sim.encrypt(&[0.5], 6, sim.default_scale()).unwrap();
    let out = pe
        .clone()
        .with_output_scale(2f64.powi(45))
        .evaluate_one(&sim, &ct)
        .unwrap();
    assert_eq!(out.scale, 2f64.powi(45));
    assert!((out.values[0] - 0.5f64.exp()).abs() < 1e-9);
    assert!(
        PolyEval::new(Chebyshev {
            a: 0.0,
            b: 1.0,
            coeffs: vec![1.0, 0.0]
        })
        .is_err()
    );
    assert!(PolyEval::many(vec![]).is_err());
    assert_eq!((pe.min_input_level(), pe.galois_elements(12)), (4, vec![]));
}

#[test]
fn encrypted_gelu_degree_63_matches_twin_and_simulator() {
    let params = sets::insecure_n12().try_build().unwrap();
    let mut kgen = KeyGenerator::seeded(params.ring(), 11);
    let sk = kgen.gen_secret_key();
    let pk = kgen.gen_public_key(&sk);
    let keys = EvaluationKeys::generate(&mut kgen, &sk, &[], false).unwrap();
    let enc = Encoder::new(&params);
    let eval = Evaluator::new(&params, keys);
    let he = HeBackend::new(&params, &enc, &eval);
    let sim = SimBackend::new(&params);

    // The toolkit's minimax GELU and its stated (measured) error.
    let (a, b, d) = (-8.0, 8.0, 63);
    let fit = approx::gelu(a, b, d).unwrap();
    let (p, approx_err) = (fit.poly.clone(), fit.report.max_abs);
    let pe = PolyEval::new(p.clone()).unwrap();
    assert_eq!(pe.depth(), 7);

    let x = grid(a, b, params.max_slots());
    let level = params.ring().max_level();
    let pt = enc
        .encode(&x, params.max_log_slots(), level, params.default_scale())
        .unwrap();
    let ct = Encryptor::with_public_key(&pk)
        .seeded(5)
        .encrypt(&pt)
        .unwrap();
    let out = pe.evaluate_one(&he, &ct).unwrap();
    let have = enc
        .decode(&Decryptor::new(&sk).decrypt(&out).unwrap())
        .unwrap();

    let sct = sim.encrypt(&x, level, params.default_scale().0).unwrap();
    let sout = pe.evaluate_one(&sim, &sct).unwrap();
    assert_eq!(
        he.counts(),
        sim.counts(),
        "he {} / sim {}",
        he.counts(),
        sim.counts()
    );
    assert_eq!((out.level(), out.meta.scale.0), (sout.level, sout.scale));
    assert_eq!(out.meta.scale, ct.meta.scale);
    println!("GELU d=63 on [-8, 8]: counts {}", sim.counts());

    let twin: Vec<f64> = x.iter().map(|&v| p.eval(v)).collect();
    let exact: Vec<f64> = x.iter().map(|&v| gelu_exact(v)).collect();
    let vs_twin = PrecisionStats::from_real(&twin, &have);
    let vs_exact = PrecisionStats::from_real(&exact, &have);
    println!("vs twin: {vs_twin}\nvs GELU: {vs_exact} (approximation error {approx_err:.3e})");
    assert!(vs_twin.max_abs_err <= 2f64.powi(-20), "{vs_twin}");
    assert!(
        vs_exact.max_abs_err <= approx_err + 2f64.powi(-20),
        "{vs_exact}"
    );
}
