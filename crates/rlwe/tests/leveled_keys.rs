//! Switching keys limited to a maximum level `L` (limbs `Q_0..Q_L ++ P`, the digits covering
//! `Q_0..Q_L`): their shape and size, key switching with them at every level `<= L` (the
//! noise matches a full key's), and typed errors above `L`.

use std::sync::Arc;

use psf_math::RnsPoly;
use psf_rlwe::{
    Ciphertext, Decryptor, Encryptor, KeyGenerator, KeySwitcher, MetaData, Parameters,
    ParametersLiteral, Plaintext, RlweError, Scale, SecretKey, SwitchingKey,
};

/// `|Q| = 6`, `|P| = 2`, `alpha = 2`: `dnum = 3`. NOT SECURE.
fn params() -> Arc<Parameters> {
    ParametersLiteral {
        name: "INSECURE_LEVELED_KEYS".into(),
        log_n: 10,
        log_q: vec![60, 45, 45, 45, 45, 45],
        log_p: vec![61, 61],
        q: None,
        p: None,
        digit_size: None,
        secret: Default::default(),
        sigma: 3.2,
    }
    .try_build()
    .unwrap()
}

fn meta() -> MetaData {
    MetaData {
        scale: Scale(1.0),
        log_slots: 0,
    }
}

/// A message with coefficients below 2^40 at `level`, and its encryption under `sk`.
fn encrypt(params: &Arc<Parameters>, sk: &SecretKey, level: usize, seed: u64) -> Ciphertext {
    let coeffs: Vec<i64> = (0..params.n() as i64)
        .map(|i| ((i * 7919 + seed as i64 * 31) % 2001 - 1000) << 29)
        .collect();
    let mut m = RnsPoly::from_signed(&coeffs, params.q(), level + 1);
    params.q().ntt(&mut m);
    let pt = Plaintext::new(params, m, meta()).unwrap();
    Encryptor::with_secret_key(sk)
        .seeded(seed)
        .encrypt(&pt)
        .unwrap()
}

/// Largest centered coefficient of `a - b` (decryptions at the same level).
fn max_diff(params: &Parameters, a: &Plaintext, b: &Plaintext) -> i64 {
    let q = params.q().prefix(a.poly.limbs());
    let mut d = a.poly.clone();
    q.sub_assign(&mut d, &b.poly);
    q.intt(&mut d);
    let m0 = q.modulus(0);
    d.limb(0).iter().map(|&x| m0.center(x).abs()).max().unwrap()
}

/// `ct` rotated by `g` in the clear: the decryption of the reference (exact automorphism of
/// the plaintext, no key switching).
fn rotated_plain(params: &Arc<Parameters>, sk: &SecretKey, ct: &Ciphertext, g: usize) -> Plaintext {
    let pt = Decryptor::new(sk).decrypt(ct).unwrap();
    let q = params.q().prefix(pt.poly.limbs());
    let perm = params.galois_permutation(g);
    let mut out = RnsPoly::zero(pt.poly.n(), pt.poly.limbs(), psf_math::Repr::Eval);
    q.automorphism_eval(&pt.poly, &perm, &mut out);
    Plaintext::new(params, out, meta()).unwrap()
}

#[test]
fn limited_keys_have_the_documented_shape_and_size() {
    let params = params();
    let mut kgen = KeyGenerator::seeded(&params, 1);
    let sk = kgen.gen_secret_key();
    let full = kgen.gen_galois_key(5, &sk).unwrap();
    assert_eq!(full.key.max_level(), 5);
    assert!(full.key.is_full());
    assert_eq!(full.key.digits.len(), 3);
    for (level, digits) in [(0, 1), (1, 1), (2, 2), (3, 2), (4, 3), (5, 3)] {
        let k = kgen.gen_galois_key_up_to(5, &sk, level).unwrap();
        assert_eq!(k.key.max_level(), level);
        assert_eq!(k.key.is_full(), level == 5);
        assert_eq!(k.key.digits.len(), digits);
        assert!(
            k.key
                .digits
                .iter()
                .all(|(b, a)| b.limbs() == level + 3 && a.limbs() == level + 3)
        );
        assert_eq!(
            k.key.size_bytes(),
            SwitchingKey::size_bytes_at(&params, level)
        );
        k.key.validate().unwrap();
    }
    assert_eq!(
        full.key.size_bytes(),
        SwitchingKey::size_bytes_at(&params, 5)
    );
    // Up to the top level is the full key, draw for draw.
    let mut a = KeyGenerator::seeded(&params, 7);
    let mut b = KeyGenerator::seeded(&params, 7);
    let ka = a.gen_galois_key(25, &sk).unwrap();
    let kb = b.gen_galois_key_up_to(25, &sk, 5).unwrap();
    assert_eq!(ka.key.digits, kb.key.digits);
    // Above the top level: a typed error.
    assert!(matches!(
        kgen.gen_galois_key_up_to(5, &sk, 6),
        Err(RlweError::InvalidLevel { level: 6, .. })
    ));
    assert!(matches!(
        kgen.gen_relinearization_key_up_to(&sk, 9),
        Err(RlweError::InvalidLevel { level: 9, .. })
    ));
}

/// At every level up to `L`, a key limited to `L` rotates as well as the full key (the same
/// noise bound), plain and hoisted; at `L + 1` every path refuses it.
#[test]
fn limited_keys_switch_at_their_levels_and_refuse_above() {
    let params = params();
    let mut kgen = KeyGenerator::seeded(&params, 2);
    let sk = kgen.gen_secret_key();
    let g = 25;
    let full = kgen.gen_galois_key(g, &sk).unwrap();
    let limited = kgen.gen_galois_key_up_to(g, &sk, 3).unwrap();
    let sw = KeySwitcher::new(&params);
    let dec = Decryptor::new(&sk);
    for level in 0..=3 {
        let ct = encrypt(&params, &sk, level, 10 + level as u64);
        let want = rotated_plain(&params, &sk, &ct, g);
        let d = sw.decompose(&ct.polys[1]);
        for key in [&full, &limited] {
            let plain = dec.decrypt(&sw.automorphism(&ct, key).unwrap()).unwrap();
            let hoisted = dec
                .decrypt(&sw.automorphism_hoisted(&ct, &d, key).unwrap())
                .unwrap();
            for (name, have) in [("plain", plain), ("hoisted", hoisted)] {
                let err = max_diff(&params, &have, &want);
                assert!(
                    err < 1 << 12,
                    "level {level}, key up to {}, {name}: error {err}",
                    key.key.max_level()
                );
            }
        }
    }
    let ct = encrypt(&params, &sk, 4, 20);
    let d = sw.decompose(&ct.polys[1]);
    let too_low = |r: Result<_, RlweError>| {
        matches!(
            r,
            Err(RlweError::KeyLevelTooLow {
                level: 4,
                key_level: 3
            })
        )
    };
    assert!(too_low(sw.automorphism(&ct, &limited).map(|_| ())));
    assert!(too_low(
        sw.automorphism_hoisted(&ct, &d, &limited).map(|_| ())
    ));
    assert!(too_low(
        sw.automorphism_hoisted_lazy(&ct, &d, &limited).map(|_| ())
    ));
    let ext = sw.lift_extended(&ct).unwrap();
    assert!(too_low(
        sw.automorphism_extended_lazy(&ext, &limited).map(|_| ())
    ));
    assert!(too_low(sw.switch(&ct.polys[1], &limited.key).map(|_| ())));
    assert!(too_low(sw.switch_key(&ct, &limited.key).map(|_| ())));
    // A decomposition of another level is refused, not misread.
    let low = encrypt(&params, &sk, 2, 21);
    assert!(matches!(
        sw.automorphism_hoisted(&low, &d, &full),
        Err(RlweError::Malformed { .. })
    ));
}

/// The lazy (double-hoisting) paths with limited keys decrypt like the plain ones.
#[test]
fn lazy_paths_accept_limited_keys() {
    let params = params();
    let mut kgen = KeyGenerator::seeded(&params, 3);
    let sk = kgen.gen_secret_key();
    let k1 = kgen.gen_galois_key_up_to(5, &sk, 2).unwrap();
    let k2 = kgen.gen_galois_key_up_to(25, &sk, 2).unwrap();
    let sw = KeySwitcher::new(&params);
    let ct = encrypt(&params, &sk, 2, 30);
    let d = sw.decompose(&ct.polys[1]);
    let lazy = sw.automorphism_hoisted_lazy(&ct, &d, &k1).unwrap();
    let lazy = sw.automorphism_extended_lazy(&lazy, &k2).unwrap();
    let out = sw.mod_down_extended(lazy, meta());
    let dec = Decryptor::new(&sk);
    let once = sw.automorphism(&ct, &k1).unwrap();
    let want = rotated_plain(&params, &sk, &once, 25);
    let err = max_diff(&params, &dec.decrypt(&out).unwrap(), &want);
    assert!(err < 1 << 13, "lazy error {err}");
}

/// Relinearization keys limited to `L` switch `s^2` at levels `<= L`.
#[test]
fn limited_relinearization_key() {
    let params = params();
    let mut kgen = KeyGenerator::seeded(&params, 4);
    let sk = kgen.gen_secret_key();
    let rlk = kgen.gen_relinearization_key_up_to(&sk, 1).unwrap();
    assert_eq!(rlk.0.max_level(), 1);
    let sw = KeySwitcher::new(&params);
    // (c_0, c_1) = (0, c) under s^2 -> s: d_0 + d_1 s ~= c s^2.
    let ct = encrypt(&params, &sk, 1, 40);
    let c = &ct.polys[1];
    let (d0, d1) = sw.switch(c, &rlk.0).unwrap();
    let q = params.q().prefix(2);
    let s = sk.poly().prefix(2);
    let mut have = RnsPoly::zero(params.n(), 2, psf_math::Repr::Eval);
    q.mul(&d1, &s, &mut have);
    q.add_assign(&mut have, &d0);
    let mut want = RnsPoly::zero(params.n(), 2, psf_math::Repr::Eval);
    let mut s2 = RnsPoly::zero(params.n(), 2, psf_math::Repr::Eval);
    q.mul(&s, &s, &mut s2);
    q.mul(c, &s2, &mut want);
    let (a, b) = (
        Plaintext::new(&params, have, meta()).unwrap(),
        Plaintext::new(&params, want, meta()).unwrap(),
    );
    let err = max_diff(&params, &a, &b);
    assert!(err < 1 << 12, "relinearization error {err}");
    let high = encrypt(&params, &sk, 2, 41);
    assert!(matches!(
        sw.switch(&high.polys[1], &rlk.0),
        Err(RlweError::KeyLevelTooLow { .. })
    ));
}

/// Keys whose digits or limbs do not fit together are refused before any arithmetic.
#[test]
fn malformed_keys_are_refused() {
    let params = params();
    let mut kgen = KeyGenerator::seeded(&params, 5);
    let sk = kgen.gen_secret_key();
    let mut key = kgen.gen_galois_key_up_to(5, &sk, 3).unwrap();
    key.key.digits.pop();
    let sw = KeySwitcher::new(&params);
    let ct = encrypt(&params, &sk, 0, 50);
    assert!(matches!(
        sw.automorphism(&ct, &key),
        Err(RlweError::Malformed { .. })
    ));
    let empty = SwitchingKey::from_digits(&params, vec![]);
    assert!(matches!(
        sw.switch(&ct.polys[1], &empty),
        Err(RlweError::Malformed { .. })
    ));
}
