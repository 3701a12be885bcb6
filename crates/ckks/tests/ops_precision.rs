//! Every CKKS operation against its cleartext f64 twin, with a minimum precision in bits,
//! on small INSECURE parameter sets.

use num_complex::Complex64;
use psf_ckks::*;
use psf_math::Sampler;

struct Ctx {
    params: CkksParameters,
    enc: Encoder,
    sk: SecretKey,
    pk: PublicKey,
    eval: Evaluator,
    log_slots: u32,
}

fn ctx(lit: CkksParametersLiteral, rotations: &[i64]) -> Ctx {
    let params = lit.try_build().unwrap();
    let mut kgen = KeyGenerator::seeded(params.ring(), 42);
    let sk = kgen.gen_secret_key();
    let pk = kgen.gen_public_key(&sk);
    let keys = EvaluationKeys::generate(&mut kgen, &sk, rotations, true).unwrap();
    let enc = Encoder::new(&params);
    let eval = Evaluator::new(&params, keys);
    let log_slots = params.max_log_slots();
    Ctx {
        params,
        enc,
        sk,
        pk,
        eval,
        log_slots,
    }
}

fn random(n: usize, seed: u64) -> Vec<f64> {
    let mut s = Sampler::seeded(seed);
    (0..n)
        .map(|_| s.uniform_below(1 << 52) as f64 / (1u64 << 51) as f64 - 1.0)
        .collect()
}

impl Ctx {
    fn encrypt(&self, v: &[f64]) -> Ciphertext {
        let level = self.params.ring().max_level();
        let pt = self
            .enc
            .encode(v, self.log_slots, level, self.params.default_scale())
            .unwrap();
        Encryptor::with_public_key(&self.pk)
            .seeded(7)
            .encrypt(&pt)
            .unwrap()
    }

    fn decrypt(&self, ct: &Ciphertext) -> Vec<f64> {
        let pt = Decryptor::new(&self.sk).decrypt(ct).unwrap();
        self.enc.decode(&pt).unwrap()
    }

    fn assert_bits(&self, what: &str, want: &[f64], ct: &Ciphertext, min_bits: f64) {
        let have = self.decrypt(ct);
        let stats = PrecisionStats::from_real(want, &have);
        println!("{what:<28} {stats}");
        assert!(
            stats.min_bits >= min_bits,
            "{what}: {stats} (want min >= {min_bits} bits)"
        );
    }
}

#[test]
fn encrypt_add_mul_rescale_precision() {
    let c = ctx(sets::insecure_n12(), &[]);
    let n = 1 << c.log_slots;
    let (x, y) = (random(n, 1), random(n, 2));
    let (cx, cy) = (c.encrypt(&x), c.encrypt(&y));
    c.assert_bits("encrypt (pk)", &x, &cx, 33.0);
    let sum: Vec<f64> = x.iter().zip(&y).map(|(a, b)| a + b).collect();
    c.assert_bits("add", &sum, &c.eval.add_new(&cx, &cy).unwrap(), 32.0);
    let diff: Vec<f64> = x.iter().zip(&y).map(|(a, b)| a - b).collect();
    c.assert_bits("sub", &diff, &c.eval.sub_new(&cx, &cy).unwrap(), 32.0);
    let prod: Vec<f64> = x.iter().zip(&y).map(|(a, b)| a * b).collect();
    c.eval.counter().reset();
    let mut m = c.eval.mul_relin_new(&cx, &cy).unwrap();
    c.eval.rescale(&mut m).unwrap();
    let counts = c.eval.counter().snapshot();
    assert_eq!(
        (
            counts.get(Primitive::Mul),
            counts.get(Primitive::Relinearize),
            counts.get(Primitive::Rescale)
        ),
        (1, 1, 1)
    );
    c.assert_bits("mul+relin+rescale", &prod, &m, 30.0);
    // Degree-2 decryption before relinearization.
    c.assert_bits(
        "mul (degree 2)",
        &prod,
        &c.eval.mul_new(&cx, &cy).unwrap(),
        30.0,
    );
    // Depth: x^8 by repeated squaring, three levels.
    let mut p = cx.clone();
    for _ in 0..3 {
        p = c.eval.mul_relin_new(&p, &p).unwrap();
        c.eval.rescale(&mut p).unwrap();
    }
    let x8: Vec<f64> = x.iter().map(|a| a.powi(8)).collect();
    c.assert_bits("x^8 (3 levels)", &x8, &p, 25.0);
    assert_eq!(p.level(), c.params.ring().max_level() - 3);
    // Exact scale bookkeeping: the tracked scale is the true one, so decoding is unbiased.
    let expected = c.params.default_scale().0.powi(8)
        / (1..=3).fold(1.0, |acc, i| {
            let l = c.params.ring().max_level() + 1 - i;
            acc * (c.params.ring().q().modulus(l).value() as f64).powi(1 << (3 - i))
        });
    assert!((p.meta.scale.0 / expected - 1.0).abs() < 1e-12);
}

#[test]
fn constants_plaintexts_and_levels() {
    let c = ctx(sets::insecure_n12(), &[]);
    let n = 1 << c.log_slots;
    let (x, y) = (random(n, 3), random(n, 4));
    let cx = c.encrypt(&x);
    let scale = c.params.default_scale();
    let level = c.params.ring().max_level();
    let py = c.enc.encode(&y, c.log_slots, level, scale).unwrap();
    let want: Vec<f64> = x.iter().zip(&y).map(|(a, b)| a + b).collect();
    c.assert_bits(
        "add plain",
        &want,
        &c.eval.add_plain_new(&cx, &py).unwrap(),
        33.0,
    );
    let want: Vec<f64> = x.iter().zip(&y).map(|(a, b)| a * b).collect();
    let mut m = c.eval.mul_plain_new(&cx, &py).unwrap();
    c.eval.rescale(&mut m).unwrap();
    c.assert_bits("mul plain+rescale", &want, &m, 30.0);
    let want: Vec<f64> = x.iter().map(|a| a * -0.3125 + 0.75).collect();
    let k = c.eval.mul_const_then_rescale_new(&cx, -0.3125).unwrap();
    assert_eq!(k.meta.scale, cx.meta.scale);
    c.assert_bits(
        "mul const+rescale, add const",
        &want,
        &c.eval.add_const_new(&k, 0.75).unwrap(),
        30.0,
    );
    let want: Vec<f64> = x.iter().map(|a| a * 3.0).collect();
    c.assert_bits("mul int", &want, &c.eval.mul_int_new(&cx, 3).unwrap(), 31.0);
    // Mixed levels: the lower level wins.
    let low = c.eval.drop_level_new(&cx, 2).unwrap();
    let sum = c.eval.add_new(&low, &cx).unwrap();
    assert_eq!(sum.level(), level - 2);
    // Mismatched scales are an error, not a silent drift.
    let mut other = cx.clone();
    other.meta.scale = Scale(scale.0 * 2.0);
    assert!(matches!(
        c.eval.add_new(&cx, &other),
        Err(CkksError::ScaleMismatch { .. })
    ));
    assert!(matches!(
        c.eval
            .rescale_new(&c.eval.drop_level_new(&cx, level).unwrap()),
        Err(CkksError::CannotRescale { .. })
    ));
}

#[test]
fn rotations_conjugation_and_hoisting() {
    let rots = [1i64, 2, 5, -1, 17, 100];
    let c = ctx(sets::insecure_n10(), &rots);
    let n = 1usize << c.log_slots;
    let x = random(n, 5);
    let cx = c.encrypt(&x);
    c.eval.counter().reset();
    let hoisted = c.eval.rotate_hoisted_new(&cx, &rots).unwrap();
    let counts = c.eval.counter().snapshot();
    assert_eq!(counts.get(Primitive::Decompose), 1);
    assert_eq!(counts.get(Primitive::RotateHoisted), rots.len() as u64);
    assert_eq!(counts.key_switches(), rots.len() as u64);
    for (&k, h) in rots.iter().zip(&hoisted) {
        let want: Vec<f64> = (0..n)
            .map(|j| x[(j as i64 + k).rem_euclid(n as i64) as usize])
            .collect();
        c.assert_bits(
            &format!("rotate {k}"),
            &want,
            &c.eval.rotate_new(&cx, k).unwrap(),
            30.0,
        );
        c.assert_bits(&format!("hoisted rotate {k}"), &want, h, 30.0);
    }
    assert!(matches!(
        c.eval.rotate_new(&cx, 3),
        Err(CkksError::MissingKey(_))
    ));
    // Conjugation on complex slots.
    let z: Vec<Complex64> = x
        .iter()
        .zip(random(n, 6))
        .map(|(&a, b)| Complex64::new(a, b))
        .collect();
    let level = c.params.ring().max_level();
    let pt = c
        .enc
        .encode_complex(&z, c.log_slots, level, c.params.default_scale())
        .unwrap();
    let cz = Encryptor::with_secret_key(&c.sk)
        .seeded(3)
        .encrypt(&pt)
        .unwrap();
    let conj = c.eval.conjugate_new(&cz).unwrap();
    let have = c
        .enc
        .decode_complex(&Decryptor::new(&c.sk).decrypt(&conj).unwrap())
        .unwrap();
    let want: Vec<Complex64> = z.iter().map(|v| v.conj()).collect();
    let stats = PrecisionStats::from_complex(&want, &have);
    assert!(stats.min_bits >= 28.0, "conjugate: {stats}");
}

#[test]
fn sparse_slots_round_trip_and_rotate() {
    let c = ctx(sets::insecure_n10(), &[1, 3]);
    for log_slots in [0u32, 3, 6] {
        let n = 1usize << log_slots;
        let x = random(n, 8);
        let level = c.params.ring().max_level();
        let pt = c
            .enc
            .encode(&x, log_slots, level, c.params.default_scale())
            .unwrap();
        let ct = Encryptor::with_public_key(&c.pk)
            .seeded(1)
            .encrypt(&pt)
            .unwrap();
        let r = c.eval.rotate_new(&ct, 3).unwrap();
        let have = c
            .enc
            .decode(&Decryptor::new(&c.sk).decrypt(&r).unwrap())
            .unwrap();
        let want: Vec<f64> = (0..n).map(|j| x[(j + 3) % n]).collect();
        let stats = PrecisionStats::from_real(&want, &have);
        assert!(stats.min_bits >= 28.0, "slots 2^{log_slots}: {stats}");
    }
}

#[test]
fn wrong_parameters_are_rejected() {
    let a = ctx(sets::insecure_n10(), &[]);
    let b = ctx(sets::insecure_n12(), &[]);
    let ct = a.encrypt(&[0.5]);
    assert!(b.eval.add_new(&ct, &ct).is_err());
    assert!(Decryptor::new(&b.sk).decrypt(&ct).is_err());
}

#[test]
fn security_bound_is_enforced() {
    let mut lit = sets::n14_depth5_128bit();
    lit.ring.log_q.push(50);
    let err = lit.try_build().unwrap_err();
    assert!(err.to_string().contains("not 128-bit secure"), "{err}");
    for lit in [
        sets::n14_depth5_128bit(),
        sets::n15_depth11_128bit(),
        sets::n16_depth20_128bit(),
    ] {
        let p = lit.try_build().unwrap();
        assert!(p.ring().is_secure(), "{}", p.ring().name());
    }
}
