//! ModRaise and key switching between two secrets (the RLWE pieces of bootstrapping with
//! sparse-secret encapsulation).

use std::sync::Arc;

use psf_math::RnsPoly;
use psf_rlwe::{
    Ciphertext, Decryptor, Encryptor, KeyGenerator, KeySwitcher, MetaData, Parameters,
    ParametersLiteral, Plaintext, Scale, SecretDistribution,
};

fn literal(name: &str, q: Vec<u64>, p: Vec<u64>, secret: SecretDistribution) -> ParametersLiteral {
    ParametersLiteral {
        name: name.into(),
        log_n: 10,
        log_q: vec![],
        log_p: vec![],
        q: Some(q),
        p: Some(p),
        digit_size: None,
        secret,
        sigma: 3.2,
    }
}

/// A dense main set (q_0 and two more primes) and a sparse set on `q_0` with its own `P`.
fn sets() -> (Arc<Parameters>, Arc<Parameters>) {
    let main = ParametersLiteral {
        name: "INSECURE_MODRAISE".into(),
        log_n: 10,
        log_q: vec![55, 45, 45],
        log_p: vec![61, 61],
        q: None,
        p: None,
        digit_size: None,
        secret: SecretDistribution::Ternary,
        sigma: 3.2,
    }
    .try_build()
    .unwrap();
    let q0 = main.q().primes()[0];
    let p0 = main.p().primes()[0];
    let sparse = SecretDistribution::SparseTernary { hamming_weight: 16 };
    let small = literal("INSECURE_MODRAISE_SPARSE", vec![q0], vec![p0], sparse);
    (main, small.try_build().unwrap())
}

fn plaintext(params: &Arc<Parameters>, coeffs: &[i64], level: usize) -> Plaintext {
    let mut p = RnsPoly::from_signed(coeffs, params.q(), level + 1);
    params.q().ntt(&mut p);
    let meta = MetaData {
        scale: Scale(1.0),
        log_slots: 0,
    };
    Plaintext::new(params, p, meta).unwrap()
}

/// Centered coefficients of a decryption.
fn coeffs(params: &Parameters, pt: &Plaintext) -> Vec<f64> {
    let mut p = pt.poly.clone();
    params.q().prefix(p.limbs()).intt(&mut p);
    params.crt().centered_f64_all(&p)
}

fn message(n: usize) -> Vec<i64> {
    (0..n as i64)
        .map(|i| (i * 7919 % 2001 - 1000) << 20)
        .collect()
}

#[test]
fn mod_raise_adds_a_small_multiple_of_q0() {
    let (main, _) = sets();
    let mut kgen = KeyGenerator::seeded(&main, 1);
    let sk = kgen.gen_secret_key();
    let m = message(main.n());
    let ct = Encryptor::with_secret_key(&sk)
        .seeded(2)
        .encrypt(&plaintext(&main, &m, 0))
        .unwrap();
    let raised = ct.mod_raise(&main, main.max_level()).unwrap();
    assert_eq!(raised.level(), main.max_level());
    let dec = coeffs(&main, &Decryptor::new(&sk).decrypt(&raised).unwrap());
    let q0 = main.q().primes()[0] as f64;
    let mut max_i = 0.0f64;
    for (d, &x) in dec.iter().zip(&m) {
        let i = ((d - x as f64) / q0).round();
        assert!((d - x as f64 - i * q0).abs() < 64.0, "noise too large");
        max_i = max_i.max(i.abs());
    }
    // |I| <= (||s||_1 + 1) / 2 <= (N + 1) / 2, and far smaller in practice.
    assert!((1.0..64.0).contains(&max_i), "max |I| = {max_i}");
    assert!(ct.mod_raise(&main, 9).is_err());
    assert!(raised.mod_raise(&main, 1).is_err());
}

#[test]
fn encapsulation_switches_dense_to_sparse_and_back() {
    let (main, small) = sets();
    let mut kgen = KeyGenerator::seeded(&main, 3);
    let dense = kgen.gen_secret_key();
    let mut kgen_small = KeyGenerator::seeded(&small, 4);
    let sparse_small = kgen_small.gen_secret_key();
    let dense_small = kgen_small.secret_from_key(&dense);
    let to_sparse = kgen_small.gen_switching_key(dense_small.poly(), &sparse_small);
    let sparse_main = kgen.secret_from_key(&sparse_small);
    let to_dense = kgen.gen_switching_key(sparse_main.poly(), &dense);

    let m = message(main.n());
    let ct = Encryptor::with_secret_key(&dense)
        .seeded(5)
        .encrypt(&plaintext(&main, &m, 2))
        .unwrap();
    let mut low = ct.clone();
    low.drop_to_level(0);
    // Level 0 of the main set is the whole modulus of the sparse set.
    let moved: Ciphertext = low.mod_raise(&small, 0).unwrap();
    let under_sparse = KeySwitcher::new(&small)
        .switch_key(&moved, &to_sparse)
        .unwrap();
    let dec = coeffs(
        &small,
        &Decryptor::new(&sparse_small)
            .decrypt(&under_sparse)
            .unwrap(),
    );
    let err = dec
        .iter()
        .zip(&m)
        .map(|(d, &x)| (d - x as f64).abs())
        .fold(0.0, f64::max);
    assert!(err < 1e3, "dense -> sparse error {err}");

    let raised = under_sparse.mod_raise(&main, main.max_level()).unwrap();
    let back = KeySwitcher::new(&main)
        .switch_key(&raised, &to_dense)
        .unwrap();
    let dec = coeffs(&main, &Decryptor::new(&dense).decrypt(&back).unwrap());
    let q0 = main.q().primes()[0] as f64;
    let mut max_i = 0.0f64;
    for (d, &x) in dec.iter().zip(&m) {
        let i = ((d - x as f64) / q0).round();
        assert!((d - x as f64 - i * q0).abs() < 1e4, "noise after raising");
        max_i = max_i.max(i.abs());
    }
    // With h = 16 the multiple of q_0 stays below (h + 1) / 2.
    assert!(max_i <= 8.5, "max |I| = {max_i}");
}
