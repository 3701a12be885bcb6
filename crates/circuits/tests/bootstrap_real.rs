//! The real-slot variant of bootstrapping on the N = 2^16 chain's INSECURE twin at N = 2^12:
//! two ciphertexts of real values refreshed by one bootstrap.

use num_complex::Complex64;
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
