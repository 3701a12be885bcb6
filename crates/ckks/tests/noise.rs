//! Noise growth measured against the expected (heuristic, central-limit) bounds.
//!
//! Noise is measured exactly: decrypt, subtract the encoded message in RNS form, and read the
//! centered coefficients of the difference. Expected standard deviations:
//! - secret-key encryption: `sigma` (rounded Gaussian: `sqrt(sigma^2 + 1/12)`);
//! - public-key encryption: `e_0 + v e_pk + e_1 s`, with `v, s` uniform ternary (variance 2/3)
//!   and `e` rounded Gaussian (variance `g = sigma^2 + 1/12`): `sqrt(g * (1 + 2 * N * 2/3))`;
//! - key switching adds the ModDown rounding `r_0 + r_1 s` with `r_i` spread over `(-|P|, 1]`
//!   (approximate base conversion): about `sqrt(N * 2/3 * (|P|^2 / 12 + |P|/4))`.

use psf_ckks::*;
use psf_math::Repr;

fn noise_std(params: &CkksParameters, sk: &SecretKey, ct: &Ciphertext, pt: &Plaintext) -> f64 {
    let dec = Decryptor::new(sk).decrypt(ct).unwrap();
    let q = params.ring().q();
    let limbs = ct.level() + 1;
    let mut diff = dec.poly.clone();
    q.sub_assign(&mut diff, &pt.poly.prefix(limbs));
    q.prefix(limbs).intt(&mut diff);
    assert_eq!(diff.repr(), Repr::Coeff);
    let e = params.ring().crt().centered_f64_all(&diff);
    (e.iter().map(|x| x * x).sum::<f64>() / e.len() as f64).sqrt()
}

#[test]
fn fresh_and_key_switching_noise_match_expected_bounds() {
    let params = sets::insecure_n12().try_build().unwrap();
    let ring = params.ring();
    let n = ring.n() as f64;
    let sigma = ring.sigma();
    let mut kgen = KeyGenerator::seeded(ring, 5);
    let sk = kgen.gen_secret_key();
    let pk = kgen.gen_public_key(&sk);
    let keys = EvaluationKeys::generate(&mut kgen, &sk, &[1], false).unwrap();
    let eval = Evaluator::new(&params, keys);
    let enc = Encoder::new(&params);
    let x: Vec<f64> = (0..params.max_slots())
        .map(|i| ((i * 37) % 101) as f64 / 101.0 - 0.5)
        .collect();
    let level = ring.max_level();
    let pt = enc
        .encode(&x, params.max_log_slots(), level, params.default_scale())
        .unwrap();

    let ct_sk = Encryptor::with_secret_key(&sk)
        .seeded(1)
        .encrypt(&pt)
        .unwrap();
    let got = noise_std(&params, &sk, &ct_sk, &pt);
    let want = (sigma * sigma + 1.0 / 12.0).sqrt();
    println!("sk encryption noise std {got:.3} (expected {want:.3})");
    assert!(got > 0.8 * want && got < 1.2 * want);

    let ct_pk = Encryptor::with_public_key(&pk)
        .seeded(2)
        .encrypt(&pt)
        .unwrap();
    let got = noise_std(&params, &sk, &ct_pk, &pt);
    let ge = sigma * sigma + 1.0 / 12.0;
    let want = (ge * (1.0 + 2.0 * n * 2.0 / 3.0)).sqrt();
    println!("pk encryption noise std {got:.1} (expected {want:.1})");
    assert!(got > 0.8 * want && got < 1.2 * want);

    // Key switching (a rotation of the sk ciphertext): the noise grows by the ModDown rounding.
    let rot = eval.rotate_new(&ct_sk, 1).unwrap();
    let g = galois_element_for_rotation(1, ring.log_n());
    let mut rotated = pt.poly.clone();
    ring.q()
        .automorphism_eval(&pt.poly, &ring.galois_permutation(g), &mut rotated);
    let pt_rot = Plaintext::new(ring, rotated, pt.meta).unwrap();
    let got = noise_std(&params, &sk, &rot, &pt_rot);
    let k = ring.p().len() as f64;
    let fresh = (sigma * sigma + 1.0 / 12.0).sqrt();
    let ks = (n * 2.0 / 3.0 * (k * k / 12.0 + k / 4.0)).sqrt();
    let bound = (fresh * fresh + ks * ks).sqrt();
    println!("key switching noise std {got:.1} (bound {bound:.1})");
    assert!(
        got < 1.5 * bound,
        "key switching noise {got} above bound {bound}"
    );
    assert!(got > fresh, "key switching must add noise");
}
