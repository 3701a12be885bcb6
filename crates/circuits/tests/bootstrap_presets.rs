//! The bootstrapping presets: precision of the N = 2^16 chain's INSECURE twin at N = 2^12
//! (full slots, uniform real inputs in `[-1, 1]`; CI-sized), the real-slot variant (two real
//! ciphertexts through one bootstrap), and a stage-by-stage error
//! breakdown for any ring degree (`BOOT_LOG_N=14 cargo test --release -p psf-circuits --test
//! bootstrap_presets -- --ignored --nocapture`).

use std::f64::consts::TAU;

use num_complex::Complex64;
use psf_circuits::bootstrap::dft::{apply_all, coeffs_to_slots_factors, slots_to_coeffs_factors};
use psf_circuits::bootstrap::presets::{self, BootstrapPreset, EPHEMERAL_WEIGHT};
use psf_circuits::bootstrap::{Bootstrapper, Encapsulation};
use psf_ckks::{
    Ciphertext, CkksParameters, Decryptor, Encoder, Encryptor, EvaluationKeys, Evaluator,
    KeyGenerator, PrecisionStats, Primitive, Scale, SecretKey,
};

struct Setup {
    params: CkksParameters,
    sk: SecretKey,
    encoder: Encoder,
    eval: Evaluator,
    boot: Bootstrapper,
    encap: Encapsulation,
}

fn setup(preset: &BootstrapPreset) -> Setup {
    let params = preset.params.try_build().unwrap();
    let boot = Bootstrapper::new(&params, preset.config).unwrap();
    let mut kgen = KeyGenerator::seeded(params.ring(), 21);
    let sk = kgen.gen_secret_key();
    let keys = EvaluationKeys::generate(&mut kgen, &sk, &boot.rotations(), true).unwrap();
    let encap = Encapsulation::generate(&params, &sk, EPHEMERAL_WEIGHT, Some(22)).unwrap();
    Setup {
        encoder: Encoder::new(&params),
        eval: Evaluator::new(&params, keys),
        params,
        sk,
        boot,
        encap,
    }
}

fn uniform(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect()
}

impl Setup {
    fn encrypt(&self, x: &[f64]) -> Ciphertext {
        let pt = (self.encoder)
            .encode(
                x,
                self.params.max_log_slots(),
                0,
                self.params.default_scale(),
            )
            .unwrap();
        Encryptor::with_secret_key(&self.sk)
            .seeded(23)
            .encrypt(&pt)
            .unwrap()
    }

    fn decode(&self, ct: &Ciphertext, scale: Option<f64>) -> Vec<Complex64> {
        let mut pt = Decryptor::new(&self.sk).decrypt(ct).unwrap();
        if let Some(s) = scale {
            pt.meta.scale = Scale(s);
        }
        self.encoder.decode_complex(&pt).unwrap()
    }
}

fn bits(name: &str, want: &[Complex64], have: &[Complex64]) -> PrecisionStats {
    let s = PrecisionStats::from_complex(want, have);
    eprintln!(
        "{name}: min {:.2} bits, mean {:.2} bits",
        s.min_bits, s.mean_bits
    );
    s
}

/// The N = 2^16 chain at N = 2^12, full slots: the whole bootstrap on uniform real inputs.
#[test]
fn twin_of_n16_at_n12_full_slots_precision() {
    let s = setup(&presets::insecure_twin_of_n16(12));
    let x = uniform(s.params.max_slots(), 3);
    let out = (s.boot)
        .bootstrap(&s.eval, Some(&s.encap), &s.encrypt(&x))
        .unwrap();
    assert_eq!(out.level(), 12);
    assert!(out.meta.scale.matches(s.params.default_scale()));
    let have: Vec<f64> = s.decode(&out, None).iter().map(|z| z.re).collect();
    let stats = PrecisionStats::from_real(&x, &have);
    eprintln!("twin N=2^12: {stats:?}");
    assert!(
        stats.min_bits >= 19.0 && stats.mean_bits >= 21.0,
        "{stats:?}"
    );
}

/// Two real vectors through one bootstrap, and the single real form.
#[test]
fn real_pair_through_one_bootstrap() {
    let s = setup(&presets::insecure_twin_of_n16(12));
    let n = s.params.max_slots();
    let (x, y) = (uniform(n, 5), uniform(n, 6));
    let (cx, cy) = (s.encrypt(&x), s.encrypt(&y));
    let before = s.eval.counter().snapshot();
    let (bx, by) = s
        .boot
        .bootstrap_real_pair(&s.eval, Some(&s.encap), &cx, &cy)
        .unwrap();
    let used = s.eval.counter().snapshot() - before;
    for (name, want, ct) in [("a", &x, &bx), ("b", &y, &by)] {
        assert_eq!(ct.level(), 12);
        assert!(ct.meta.scale.matches(s.params.default_scale()));
        let have = s.decode(ct, None);
        let re: Vec<f64> = have.iter().map(|z| z.re).collect();
        let stats = PrecisionStats::from_real(want, &re);
        let imag = have.iter().map(|z| z.im.abs()).fold(0.0, f64::max);
        eprintln!("real pair {name}: {stats} | max |imag| {imag:.2e}");
        assert!(
            stats.min_bits >= 19.0 && stats.mean_bits >= 21.0,
            "{name}: {stats}"
        );
        assert!(imag < 1e-5, "{name}: imaginary part {imag}");
    }
    // The single real form is one bootstrap plus one conjugation: the pair costs the same
    // products and key switches, i.e. one bootstrap for two ciphertexts.
    let before = s.eval.counter().snapshot();
    let r = s.boot.bootstrap_real(&s.eval, Some(&s.encap), &cx).unwrap();
    let single = s.eval.counter().snapshot() - before;
    assert_eq!(used.get(Primitive::Mul), single.get(Primitive::Mul));
    assert_eq!(used.key_switches(), single.key_switches());
    let have: Vec<f64> = s.decode(&r, None).iter().map(|z| z.re).collect();
    let stats = PrecisionStats::from_real(&x, &have);
    assert!(stats.min_bits >= 19.0, "single real: {stats}");
}

/// Stage-local errors: each stage against its `f64` twin applied to the decrypted output of
/// the stage before.
#[test]
#[ignore = "diagnostic; BOOT_LOG_N picks the ring degree"]
fn stage_errors() {
    let log_n: u32 = std::env::var("BOOT_LOG_N").map_or(13, |v| v.parse().unwrap());
    let preset = presets::for_log_n(log_n);
    let s = setup(&preset);
    let cfg = preset.config;
    let n = s.params.max_slots();
    let k = cfg.eval_mod.k;
    let q0 = s.params.ring().q().modulus(0).value() as f64;
    let x = uniform(n, 3);
    let ct = s.encrypt(&x);
    let raised = s.boot.mod_raise(&s.eval, Some(&s.encap), &ct).unwrap();
    let raised_slots = s.decode(&raised, None);
    let parts = s.boot.coeffs_to_slots(&s.eval, &raised).unwrap();
    let w: Vec<Complex64> = apply_all(&coeffs_to_slots_factors(n, cfg.cts_levels), &raised_slots)
        .iter()
        .map(|z| z / k)
        .collect();
    let re: Vec<Complex64> = w.iter().map(|z| Complex64::new(z.re, 0.0)).collect();
    let im: Vec<Complex64> = w.iter().map(|z| Complex64::new(z.im, 0.0)).collect();
    let (y_re, y_im) = (s.decode(&parts[0], None), s.decode(&parts[1], None));
    bits("CoeffsToSlots re (y = t/K)", &re, &y_re);
    let mut worst: Vec<(f64, usize)> = (re.iter().zip(&y_re).enumerate())
        .map(|(i, (a, b))| ((a - b).norm(), i))
        .collect();
    worst.sort_by(|a, b| b.0.total_cmp(&a.0));
    eprintln!("worst CtS slots: {:?}", &worst[..6]);
    eprintln!(
        "values there: {:?}",
        worst[..3]
            .iter()
            .map(|w| re[w.1].re * k)
            .collect::<Vec<_>>()
    );
    bits("CoeffsToSlots im (y = t/K)", &im, &y_im);
    let scale_in = s.boot.raised_message_scale(ct.meta.scale);
    let reduced: Vec<Ciphertext> = (parts.iter())
        .map(|p| s.boot.eval_mod(&s.eval, p, scale_in).unwrap())
        .collect();
    // EvalMod output relabeled: sin(2 pi K y) q_0 / (2 pi scale_in) = the message coefficient.
    let relabel = |y: &[Complex64]| -> Vec<Complex64> {
        (y.iter())
            .map(|v| Complex64::new((TAU * k * v.re).sin() * q0 / (TAU * scale_in), 0.0))
            .collect()
    };
    let delta = s.params.default_scale().0;
    let (m_re, m_im) = (
        s.decode(&reduced[0], Some(delta)),
        s.decode(&reduced[1], Some(delta)),
    );
    bits("EvalMod re (coefficient units)", &relabel(&y_re), &m_re);
    bits("EvalMod im (coefficient units)", &relabel(&y_im), &m_im);
    let out = s.boot.slots_to_coeffs(&s.eval, &reduced).unwrap();
    let v: Vec<Complex64> = (m_re.iter().zip(&m_im))
        .map(|(a, b)| Complex64::new(a.re, b.re))
        .collect();
    let want = apply_all(&slots_to_coeffs_factors(n, cfg.stc_levels), &v);
    let have = s.decode(&out, None);
    bits("SlotsToCoeffs", &want, &have);
    let xs: Vec<Complex64> = x.iter().map(|&v| Complex64::new(v, 0.0)).collect();
    bits("end to end (complex)", &xs, &have);
}
