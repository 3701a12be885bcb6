use psf_ckks::*;

use super::*;
use crate::{HeBackend, SimBackend};

/// Seeded scores in `[-B, B]`.
fn scores(shape: AttentionShape, bound: f64, seed: u64) -> Vec<Vec<Vec<f64>>> {
    let mut s = seed;
    let mut next = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * bound
    };
    (0..shape.heads)
        .map(|_| {
            (0..shape.tokens)
                .map(|_| (0..shape.tokens).map(|_| next()).collect())
                .collect()
        })
        .collect()
}

fn max_rel_row_error(want: &[Vec<Vec<f64>>], have: &[Vec<Vec<f64>>]) -> f64 {
    let mut worst = 0.0f64;
    for (wh, hh) in want.iter().zip(have) {
        for (wr, hr) in wh.iter().zip(hh) {
            let scale = wr.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for (a, b) in wr.iter().zip(hr) {
                worst = worst.max((a - b).abs() / scale);
            }
        }
    }
    worst
}

const SHAPE: AttentionShape = AttentionShape {
    heads: 4,
    tokens: 32,
};

/// A deep toy chain (N = 2^11, 60 + 26 x 45 bits): every variant fits without refresh.
/// NOT SECURE.
fn deep_params() -> CkksParameters {
    let mut lit = sets::insecure_n10();
    lit.ring.name = "INSECURE_N11_DEEP_SOFTMAX_TEST".into();
    lit.ring.log_n = 11;
    lit.ring.log_q = std::iter::once(60).chain([45; 26]).collect();
    lit.ring.log_p = vec![61; 3];
    lit.try_build().unwrap()
}

/// Both packings of [`SHAPE`] in `slots` slots.
fn packings(slots: usize) -> [ScorePacking; 2] {
    [
        ScorePacking::Diagonal(DiagonalPacking::new(SHAPE, slots).unwrap()),
        ScorePacking::Rows(RowPacking::new(SHAPE, slots).unwrap()),
    ]
}

#[test]
fn twins_approximate_the_exact_functions_within_their_stated_errors() {
    let s = scores(SHAPE, 2.0, 1);
    let cfg = SoftmaxConfig::default();
    for (packing, (variant, bound)) in packings(1024).into_iter().flat_map(|p| {
        [
            (SoftmaxVariant::Power, 2e-3),
            (SoftmaxVariant::Taylor, 1.2e-2),
            (SoftmaxVariant::Square, 8e-3),
        ]
        .map(|v| (p, v))
    }) {
        let circuit = SoftmaxCircuit::new(variant, packing, cfg).unwrap();
        let (recip, _) = circuit.reciprocal_report();
        assert!(
            recip.max_rel <= cfg.reciprocal_error,
            "{variant:?} {recip:?}"
        );
        let twin = packing.unpack(&circuit.eval_f64(&circuit.pack(&s)));
        let err = max_rel_row_error(&exact(variant, &cfg, &s), &twin);
        let name = packing.name();
        assert!(err < bound, "{variant:?} {name}: twin vs exact {err:e}");
    }
}

#[test]
fn encrypted_variants_match_their_twins() {
    let params = deep_params();
    let [diagonal, rows] = packings(params.max_slots());
    let mut rotations = diagonal.rotations();
    rotations.extend(rows.rotations());
    let mut kgen = KeyGenerator::seeded(params.ring(), 8);
    let sk = kgen.gen_secret_key();
    let keys = EvaluationKeys::generate(&mut kgen, &sk, &rotations, false).unwrap();
    let (enc, eval) = (Encoder::new(&params), Evaluator::new(&params, keys));
    let he = HeBackend::new(&params, &enc, &eval);
    let s = scores(SHAPE, 2.0, 2);
    let top = params.ring().max_level();
    let no_refresh = |_: &Ciphertext| -> crate::Result<Ciphertext> {
        Err(CircuitError::Invalid("unexpected refresh".into()))
    };
    for (packing, (variant, min_bits)) in [diagonal, rows].into_iter().flat_map(|p| {
        [
            (SoftmaxVariant::Power, 22.0),
            (SoftmaxVariant::Taylor, 22.0),
            (SoftmaxVariant::Square, 20.0),
        ]
        .map(|v| (p, v))
    }) {
        let circuit = SoftmaxCircuit::new(variant, packing, SoftmaxConfig::default()).unwrap();
        let xs = circuit.pack(&s);
        let cts: Vec<Ciphertext> = (xs.iter())
            .map(|x| {
                let pt = enc
                    .encode(x, params.max_log_slots(), top, params.default_scale())
                    .unwrap();
                Encryptor::with_secret_key(&sk).encrypt(&pt).unwrap()
            })
            .collect();
        let out = circuit.evaluate(&he, &cts, &no_refresh).unwrap();
        let want: Vec<f64> = circuit.eval_f64(&xs).concat();
        let have: Vec<f64> = (out.iter())
            .flat_map(|c| {
                enc.decode(&Decryptor::new(&sk).decrypt(c).unwrap())
                    .unwrap()
            })
            .collect();
        let stats = PrecisionStats::from_real(&want, &have);
        let name = packing.name();
        println!("{variant:?} {name}: {stats}");
        assert!(stats.min_bits >= min_bits, "{variant:?} {name}: {stats}");
    }
}

#[test]
fn exp_variants_refresh_their_division_on_the_bootstrapping_chain() {
    // The N = 2^16 bootstrapping chain at N = 2^11: 12 user levels (NOT SECURE).
    let mut lit = sets::n16_boot_128bit();
    lit.ring.name = "INSECURE_N11_TWIN_OF_N16_BOOT".into();
    lit.ring.log_n = 11;
    let params = lit.try_build().unwrap();
    let s = scores(SHAPE, 2.0, 3);
    for (packing, variant) in
        (packings(params.max_slots()).into_iter()).flat_map(|p| SoftmaxVariant::ALL.map(|v| (p, v)))
    {
        let circuit = SoftmaxCircuit::new(variant, packing, SoftmaxConfig::default()).unwrap();
        let sim = SimBackend::new(&params);
        let xs = circuit.pack(&s);
        let cts: Vec<_> = (xs.iter())
            .map(|x| sim.encrypt(x, 12, sim.default_scale()).unwrap())
            .collect();
        let out = circuit
            .evaluate(&sim, &cts, &sim_bootstrap(&sim, 12))
            .unwrap();
        let boots = sim.counter().snapshot().get(Primitive::Bootstrap);
        // Rows: every ciphertext refreshes its own division.
        let per_division = match packing {
            ScorePacking::Diagonal(_) => 1,
            ScorePacking::Rows(r) => r.ciphertexts() as u64,
        };
        match variant {
            SoftmaxVariant::Power => assert_eq!(boots, 0),
            _ => assert!(boots >= 2 * per_division, "{variant:?}: {boots} bootstraps"),
        }
        let want = circuit.eval_f64(&xs).concat();
        let have: Vec<f64> = out.iter().flat_map(|c| c.values.clone()).collect();
        let stats = PrecisionStats::from_real(&want, &have);
        assert!(stats.min_bits > 35.0, "{variant:?}: {stats}");
    }
}
