//! Bootstrapping end to end on seeded INSECURE toy sets: every stage checked against its
//! `f64` twin, per-stage golden outputs, and the final precision.
//!
//! Golden files live in `tests/vectors/bootstrap/`; `UPDATE_GOLDEN=1 cargo test --release -p
//! psf-circuits --test bootstrap` rewrites them.

use std::f64::consts::TAU;

use num_complex::Complex64;
use psf_circuits::bootstrap::dft::{apply_all, coeffs_to_slots_factors};
use psf_circuits::bootstrap::{BootstrapConfig, Bootstrapper, Encapsulation, EvalModSpec};
use psf_ckks::{
    Ciphertext, CkksParameters, CkksParametersLiteral, Decryptor, Encoder, Encryptor,
    EvaluationKeys, Evaluator, KeyGenerator, PrecisionStats, Scale, SecretKey,
};

/// N = 2^12: q_0 60 bits, 2 user levels of 45 bits, SlotsToCoeffs 2 x 45, EvalMod 9 x 60,
/// CoeffsToSlots 2 x 55; P = 3 x 61; scale 2^45. NOT SECURE.
fn params() -> CkksParameters {
    let mut log_q = vec![60, 45, 45, 45, 45];
    log_q.extend([60; 9]);
    log_q.extend([55, 55]);
    CkksParametersLiteral {
        ring: psf_rlwe::ParametersLiteral {
            name: "INSECURE_N12_BOOT_TEST".into(),
            log_n: 12,
            log_q,
            log_p: vec![61; 3],
            q: None,
            p: None,
            digit_size: None,
            secret: Default::default(),
            sigma: 3.2,
        },
        log_default_scale: 45,
    }
    .try_build()
    .unwrap()
}

fn config(log_slots: u32) -> BootstrapConfig {
    BootstrapConfig {
        log_slots,
        cts_levels: 2,
        stc_levels: 2,
        eval_mod: EvalModSpec {
            k: 16.0,
            degree: 40,
            double_angle: 3,
        },
        ephemeral_weight: Some(32),
        log_message_ratio: 15,
    }
}

struct Setup {
    params: CkksParameters,
    sk: SecretKey,
    encoder: Encoder,
    eval: Evaluator,
    boot: Bootstrapper,
    encap: Encapsulation,
}

fn setup(log_slots: u32) -> Setup {
    let params = params();
    let boot = Bootstrapper::new(&params, config(log_slots)).unwrap();
    let mut kgen = KeyGenerator::seeded(params.ring(), 11);
    let sk = kgen.gen_secret_key();
    let keys = EvaluationKeys::generate(&mut kgen, &sk, &boot.rotations(), true).unwrap();
    let encap = Encapsulation::generate(&params, &sk, 32, Some(12)).unwrap();
    Setup {
        encoder: Encoder::new(&params),
        eval: Evaluator::new(&params, keys),
        params,
        sk,
        boot,
        encap,
    }
}

fn inputs(n: usize, seed: u64) -> Vec<Complex64> {
    let mut s = seed;
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    (0..n).map(|_| Complex64::new(next(), next())).collect()
}

impl Setup {
    fn encrypt(&self, z: &[Complex64]) -> Ciphertext {
        let log_slots = self.boot.config().log_slots;
        let pt = self
            .encoder
            .encode_complex(z, log_slots, 0, self.params.default_scale())
            .unwrap();
        Encryptor::with_secret_key(&self.sk)
            .seeded(13)
            .encrypt(&pt)
            .unwrap()
    }

    /// Decoded slots of `ct` read with `log_slots` slots.
    fn decode(&self, ct: &Ciphertext, log_slots: u32) -> Vec<Complex64> {
        let mut pt = Decryptor::new(&self.sk).decrypt(ct).unwrap();
        pt.meta.log_slots = log_slots;
        self.encoder.decode_complex(&pt).unwrap()
    }
}

fn assert_bits(
    name: &str,
    want: &[Complex64],
    have: &[Complex64],
    min_bits: f64,
) -> PrecisionStats {
    let stats = PrecisionStats::from_complex(want, have);
    eprintln!(
        "{name}: min {:.1} bits, mean {:.1} bits",
        stats.min_bits, stats.mean_bits
    );
    assert!(stats.min_bits >= min_bits, "{name}: {stats:?}");
    stats
}

/// Runs the stages one by one, checking each against its `f64` twin; returns the stage
/// outputs (decoded) and the final ciphertext.
fn run_stages(s: &Setup, z: &[Complex64]) -> (Vec<(String, Vec<Complex64>)>, Ciphertext) {
    let cfg = *s.boot.config();
    let n = 1usize << cfg.log_slots;
    let full = n == s.params.max_slots();
    let ct = s.encrypt(z);
    let q0 = s.params.ring().q().modulus(0).value() as f64;

    // ModRaise: slots of t = (m + q_0 I)/q_0 times the sub-sum's gap; t - z * ratio is the
    // slot image of an integer polynomial: check that its coefficients are integers < K.
    let raised = s.boot.mod_raise(&s.eval, Some(&s.encap), &ct).unwrap();
    assert_eq!(raised.level(), s.params.ring().max_level());
    let mut pt = Decryptor::new(&s.sk).decrypt(&raised).unwrap();
    pt.meta.scale = Scale(q0);
    let coeffs = s.encoder.decode_coeffs(&pt);
    let gap = (s.params.max_slots() / n) as f64;
    let mut max_i = 0.0f64;
    let mut m_pt = s
        .encoder
        .encode_complex(z, cfg.log_slots, 0, s.params.default_scale())
        .unwrap();
    m_pt.meta.scale = Scale(q0);
    let m = s.encoder.decode_coeffs(&m_pt);
    for (c, mm) in coeffs.iter().zip(&m) {
        let i = c / gap - mm;
        assert!((i - i.round()).abs() < 1e-6, "non-integer I: {i}");
        max_i = max_i.max(i.abs());
    }
    assert!(max_i >= 1.0 && max_i < cfg.eval_mod.k, "max |I| = {max_i}");
    let raised_slots = s.decode(&raised, cfg.log_slots);

    // CoeffsToSlots against the f64 factors applied to the decrypted slots.
    let parts = s.boot.coeffs_to_slots(&s.eval, &raised).unwrap();
    let mut w = apply_all(&coeffs_to_slots_factors(n, cfg.cts_levels), &raised_slots);
    w.iter_mut().for_each(|x| *x /= gap * cfg.eval_mod.k);
    // Real parts, then imaginary parts (two ciphertexts, or the two halves of 2n slots).
    let real = |x: f64| Complex64::new(x, 0.0);
    let cts_want: Vec<Complex64> = (w.iter().map(|x| real(x.re)))
        .chain(w.iter().map(|x| real(x.im)))
        .collect();
    let cts_have: Vec<Complex64> = if full {
        parts
            .iter()
            .flat_map(|p| s.decode(p, cfg.log_slots))
            .collect()
    } else {
        s.decode(&parts[0], cfg.log_slots + 1)
    };
    assert_bits("CoeffsToSlots", &cts_want, &cts_have, 25.0);

    // EvalMod against sin(2 pi K y) of the decrypted input, and y * K against its integer.
    let reduced: Vec<Ciphertext> = parts
        .iter()
        .map(|p| s.boot.eval_mod(&s.eval, p, ct.meta.scale.0).unwrap())
        .collect();
    let em_have: Vec<Complex64> = if full {
        reduced
            .iter()
            .flat_map(|p| s.decode(p, cfg.log_slots))
            .collect()
    } else {
        s.decode(&reduced[0], cfg.log_slots + 1)
    };
    let em_want: Vec<Complex64> = cts_have
        .iter()
        .map(|y| Complex64::new((TAU * cfg.eval_mod.k * y.re).sin(), 0.0))
        .collect();
    assert_bits("EvalMod", &em_want, &em_have, 10.0);

    // SlotsToCoeffs: the input values.
    let out = s.boot.slots_to_coeffs(&s.eval, &reduced).unwrap();
    assert_eq!(out.level(), s.boot.output_level());
    assert!(out.meta.scale.matches(s.params.default_scale()));
    let mut final_ct = out.clone();
    final_ct.meta.log_slots = cfg.log_slots;
    let got = s.decode(&final_ct, cfg.log_slots);
    let stages = vec![
        ("mod_raise".to_string(), raised_slots),
        ("coeffs_to_slots".to_string(), cts_have),
        ("eval_mod".to_string(), em_have),
        ("slots_to_coeffs".to_string(), got),
    ];
    (stages, final_ct)
}

#[test]
fn sparse_slots_bootstrap_stage_by_stage() {
    let s = setup(4);
    let z = inputs(16, 1);
    let (stages, out) = run_stages(&s, &z);
    let got = &stages[3].1;
    assert_bits("bootstrap n=16", &z, got, 16.0);
    let whole = s
        .boot
        .bootstrap(&s.eval, Some(&s.encap), &s.encrypt(&z))
        .unwrap();
    assert_eq!(s.decode(&whole, 4), s.decode(&out, 4));
    check_golden("sparse_n16.txt", &stages);
}

/// Compares the first 8 decoded values of every stage with the golden file (seeded keys and
/// encryption make the run deterministic), or rewrites it when `UPDATE_GOLDEN` is set.
fn check_golden(file: &str, stages: &[(String, Vec<Complex64>)]) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/bootstrap")
        .join(file);
    let lines: Vec<String> = stages
        .iter()
        .flat_map(|(name, v)| {
            v.iter()
                .take(8)
                .enumerate()
                .map(move |(i, x)| format!("{name} {i} {:.17e} {:.17e}", x.re, x.im))
        })
        .collect();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        return;
    }
    let golden = std::fs::read_to_string(&path).expect("golden file (UPDATE_GOLDEN=1 writes it)");
    let parse = |l: &str| -> (String, f64, f64) {
        let f: Vec<&str> = l.split_whitespace().collect();
        let num = |s: &str| s.parse::<f64>().unwrap();
        (format!("{} {}", f[0], f[1]), num(f[2]), num(f[3]))
    };
    assert_eq!(golden.lines().count(), lines.len(), "golden length");
    for (g, l) in golden.lines().zip(&lines) {
        let ((gk, gr, gi), (lk, lr, li)) = (parse(g), parse(l));
        assert_eq!(gk, lk);
        let tol = 1e-9 * (1.0 + gr.abs().max(gi.abs()));
        assert!(
            (gr - lr).abs() <= tol && (gi - li).abs() <= tol,
            "golden {g} vs {l}"
        );
    }
}

#[test]
fn full_slots_bootstrap_stage_by_stage() {
    let s = setup(11);
    let z = inputs(1 << 11, 2);
    let (stages, _) = run_stages(&s, &z);
    assert_bits("bootstrap n=2048", &z, &stages[3].1, 16.0);
}
