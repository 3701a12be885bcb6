//! Rotation keys limited to a maximum level: precision against full keys at every level they
//! cover (plain, hoisted and double-hoisted rotations), typed errors above, and the wire
//! format (round trips, mixed key sets, malformed lengths, the fuzz corpus still decoding).

use std::path::PathBuf;
use std::sync::OnceLock;

use proptest::prelude::*;
use psf_ckks::serialization::{
    DecodeError, EncapsulationParts, HEADER_LEN, WireDecode, WireEncode, decode_encapsulation,
    encode_encapsulation,
};
use psf_ckks::*;
use psf_rlwe::{GaloisKey, ParametersLiteral, RelinearizationKey, RlweError, SwitchingKey};

/// The limited keys reach this level (`insecure_n10`: 7 Q primes, alpha = 2, dnum = 4).
const L: usize = 3;
const ROTATIONS: [i64; 3] = [1, 3, 4];

struct Fixture {
    params: CkksParameters,
    sk: SecretKey,
    enc: Encoder,
    full: Evaluator,
    limited: Evaluator,
}

fn fx() -> &'static Fixture {
    static FX: OnceLock<Fixture> = OnceLock::new();
    FX.get_or_init(|| {
        let params = sets::insecure_n10().try_build().unwrap();
        let mut kgen = KeyGenerator::seeded(params.ring(), 11);
        let sk = kgen.gen_secret_key();
        let full = EvaluationKeys::generate(&mut kgen, &sk, &ROTATIONS, true).unwrap();
        let leveled: Vec<(i64, usize)> = ROTATIONS.iter().map(|&k| (k, L)).collect();
        let limited = EvaluationKeys::generate_leveled(&mut kgen, &sk, &leveled, true).unwrap();
        Fixture {
            enc: Encoder::new(&params),
            full: Evaluator::new(&params, full),
            limited: Evaluator::new(&params, limited),
            params,
            sk,
        }
    })
}

impl Fixture {
    fn values(&self) -> Vec<f64> {
        (0..self.params.max_slots())
            .map(|i| ((i * 29 % 97) as f64) / 97.0 - 0.5)
            .collect()
    }

    fn encrypt(&self, level: usize) -> Ciphertext {
        let (v, log_slots) = (self.values(), self.params.max_log_slots());
        let pt = self
            .enc
            .encode(&v, log_slots, level, self.params.default_scale())
            .unwrap();
        Encryptor::with_secret_key(&self.sk)
            .seeded(level as u64 + 1)
            .encrypt(&pt)
            .unwrap()
    }

    fn decrypt(&self, ct: &Ciphertext) -> Vec<f64> {
        let pt = Decryptor::new(&self.sk).decrypt(ct).unwrap();
        self.enc.decode(&pt).unwrap()
    }

    /// The f64 twin of a left rotation by `k`.
    fn rotated(&self, k: i64) -> Vec<f64> {
        let v = self.values();
        let n = v.len() as i64;
        (0..n).map(|i| v[(i + k).rem_euclid(n) as usize]).collect()
    }
}

fn too_low(r: Result<Ciphertext>, level: usize) -> bool {
    matches!(
        r,
        Err(CkksError::Rlwe(RlweError::KeyLevelTooLow { level: l, key_level: L })) if l == level
    )
}

#[test]
fn limited_keys_are_smaller_and_leveled() {
    let f = fx();
    let ring = f.params.ring();
    let (full, limited) = (f.full.keys(), f.limited.keys());
    let conj = galois_element_for_conjugation(ring.log_n());
    for &k in &ROTATIONS {
        let g = galois_element_for_rotation(k, ring.log_n());
        assert_eq!(full.galois_max_level(g), Some(ring.max_level()));
        assert_eq!(limited.galois_max_level(g), Some(L));
    }
    assert_eq!(limited.galois_max_level(conj), Some(ring.max_level()));
    assert_eq!(
        limited.relin.as_ref().unwrap().0.max_level(),
        ring.max_level()
    );
    // Galois keys: 2 of 4 digits over 4 + 2 of 9 limbs, one third of a full key.
    let g1 = galois_element_for_rotation(1, ring.log_n());
    let (kf, kl) = (&full.galois[&g1].key, &limited.galois[&g1].key);
    assert_eq!(3 * kl.size_bytes(), kf.size_bytes());
    assert_eq!(kl.size_bytes(), SwitchingKey::size_bytes_at(ring, L));
    assert!(limited.size_bytes() < full.size_bytes());
    // Levels above the top are refused.
    let mut kgen = KeyGenerator::seeded(ring, 1);
    assert!(matches!(
        EvaluationKeys::generate_leveled(&mut kgen, &f.sk, &[(1, 7)], false),
        Err(RlweError::InvalidLevel { level: 7, .. })
    ));
}

/// At every level up to `L`, limited keys rotate to within a bit of the full keys'
/// precision (plain, hoisted, double hoisted); at `L + 1` every path is a typed error.
#[test]
fn limited_rotations_match_full_keys_and_refuse_above() {
    let f = fx();
    for level in 0..=L {
        let ct = f.encrypt(level);
        for &k in &ROTATIONS {
            let want = f.rotated(k);
            let full =
                PrecisionStats::from_real(&want, &f.decrypt(&f.full.rotate_new(&ct, k).unwrap()));
            let lim = PrecisionStats::from_real(
                &want,
                &f.decrypt(&f.limited.rotate_new(&ct, k).unwrap()),
            );
            assert!(lim.min_bits > 25.0, "level {level}, rotation {k}: {lim}");
            assert!(
                lim.min_bits > full.min_bits - 1.0,
                "level {level}, rotation {k}: limited {lim} vs full {full}"
            );
        }
        let hoisted = f.limited.rotate_hoisted_new(&ct, &ROTATIONS).unwrap();
        for (&k, out) in ROTATIONS.iter().zip(&hoisted) {
            let stats = PrecisionStats::from_real(&f.rotated(k), &f.decrypt(out));
            assert!(
                stats.min_bits > 25.0,
                "hoisted level {level}, rotation {k}: {stats}"
            );
        }
    }
    let high = f.encrypt(L + 1);
    assert!(too_low(f.limited.rotate_new(&high, 1), L + 1));
    assert!(too_low(
        f.limited
            .rotate_hoisted_new(&high, &[1, 3])
            .map(|mut v| v.remove(0)),
        L + 1
    ));
    assert!(f.full.rotate_new(&high, 1).is_ok());
    assert!(f.limited.conjugate_new(&high).is_ok());
}

/// The double-hoisted BSGS product (the linear transforms' path) with limited keys: the same
/// values as with full keys at `L`, a typed error at `L + 1`.
#[test]
fn double_hoisted_products_with_limited_keys() {
    let f = fx();
    let slots = f.params.max_slots();
    let (baby, giant) = ([0i64, 1], [0i64, 4]);
    let run = |eval: &Evaluator, level: usize| {
        let ct = f.encrypt(level);
        let scale = psf_rlwe::Scale(f.params.ring().q().modulus(level).value() as f64);
        let pts: Vec<ExtendedPlaintext> = (0..4)
            .map(|j| {
                let v: Vec<f64> = (0..slots).map(|i| ((i + j) % 3) as f64 / 2.0).collect();
                let pt = f
                    .enc
                    .encode(&v, f.params.max_log_slots(), level, scale)
                    .unwrap();
                eval.extend_plaintext(&pt).unwrap()
            })
            .collect();
        let steps: Vec<GiantStep<'_>> = (0..2)
            .map(|j| GiantStep {
                rotation: giant[j],
                terms: (0..2).map(|i| (i, &pts[2 * j + i])).collect(),
            })
            .collect();
        eval.bsgs_double_hoisted(&ct, &baby, &steps)
    };
    let want = f.decrypt(&run(&f.full, L).unwrap());
    let have = f.decrypt(&run(&f.limited, L).unwrap());
    let stats = PrecisionStats::from_real(&want, &have);
    assert!(stats.min_bits > 25.0, "{stats}");
    assert!(too_low(run(&f.limited, L + 1), L + 1));
}

#[test]
fn merge_keeps_the_higher_level() {
    let f = fx();
    let mut merged = f.limited.keys().clone();
    merged.merge(f.full.keys().clone());
    let top = f.params.ring().max_level();
    for (&g, k) in &merged.galois {
        assert_eq!(k.key.max_level(), top, "element {g}");
    }
    let mut back = f.full.keys().clone();
    back.merge(f.limited.keys().clone());
    assert!(back.galois.values().all(|k| k.key.is_full()));
    assert_eq!(back.galois.len(), f.full.keys().galois.len());
    let mut only = EvaluationKeys::default();
    only.merge(f.limited.keys().clone());
    assert_eq!(only.size_bytes(), f.limited.keys().size_bytes());
}

#[test]
fn limited_keys_round_trip() {
    let f = fx();
    let keys = f.limited.keys();
    let bytes = keys.to_bytes();
    assert_eq!(bytes.len(), keys.encoded_len());
    assert!(bytes.len() < f.full.keys().to_bytes().len());
    let back = EvaluationKeys::from_bytes(&bytes, &f.params).unwrap();
    assert_eq!(back.to_bytes(), bytes);
    for (g, k) in &keys.galois {
        assert_eq!(back.galois_max_level(*g), Some(k.key.max_level()));
        assert_eq!(back.galois[g].key.digits, k.key.digits);
    }
    // The decoded keys still rotate.
    let eval = Evaluator::new(&f.params, back);
    let out = eval.rotate_new(&f.encrypt(L), 3).unwrap();
    let stats = PrecisionStats::from_real(&f.rotated(3), &f.decrypt(&out));
    assert!(stats.min_bits > 25.0, "{stats}");
    // Every level from 0 to the top, as a lone Galois, switching and relinearization key.
    let mut kgen = KeyGenerator::seeded(f.params.ring(), 3);
    for level in 0..=f.params.ring().max_level() {
        let g = kgen.gen_galois_key_up_to(5, &f.sk, level).unwrap();
        let back = GaloisKey::from_bytes(&g.to_bytes(), &f.params).unwrap();
        assert_eq!(
            (back.key.max_level(), &back.key.digits),
            (level, &g.key.digits)
        );
        let sw = SwitchingKey::from_bytes(&g.key.to_bytes(), &f.params).unwrap();
        assert_eq!(sw.max_level(), level);
        let r = kgen.gen_relinearization_key_up_to(&f.sk, level).unwrap();
        let back = RelinearizationKey::from_bytes(&r.to_bytes(), &f.params).unwrap();
        assert_eq!(back.0.max_level(), level);
    }
}

/// Offsets in a Galois key: element (8), then `n, digits, limbs` (`u32` each).
const DIGITS_AT: usize = HEADER_LEN + 12;
const LIMBS_AT: usize = HEADER_LEN + 16;

#[test]
fn malformed_limited_keys_are_typed_errors() {
    let f = fx();
    let g1 = galois_element_for_rotation(1, f.params.ring().log_n());
    let bytes = f.limited.keys().galois[&g1].to_bytes();
    let patched = |at: usize, v: u32| {
        let mut b = bytes.clone();
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
        GaloisKey::from_bytes(&b, &f.params).err().unwrap()
    };
    let np = f.params.ring().p().len() as u32;
    let nq = f.params.ring().q().len() as u32;
    // Digits that do not match the limbs (level 3 needs 2).
    for d in [1, 3, 4] {
        assert_eq!(
            patched(DIGITS_AT, d),
            DecodeError::InvalidLength {
                field: "digits",
                found: u64::from(d),
                min: 2,
                max: 2
            }
        );
    }
    for d in [0, 5, u32::MAX] {
        assert!(matches!(
            patched(DIGITS_AT, d),
            DecodeError::InvalidLength {
                field: "digits",
                ..
            }
        ));
    }
    // No Q limb, more limbs than Q P has.
    for limbs in [0, np, nq + np + 1, u32::MAX] {
        assert!(matches!(
            patched(LIMBS_AT, limbs),
            DecodeError::InvalidLength { field: "limbs", .. }
        ));
    }
    // Limbs of another level with the same digit count (2 at levels 2 and 3): the residues
    // no longer line up with their primes, or bytes are left over.
    assert!(matches!(
        patched(LIMBS_AT, np + 3),
        DecodeError::ResidueOutOfRange { .. } | DecodeError::TrailingBytes { .. }
    ));
    for cut in [HEADER_LEN + 20, bytes.len() / 2, bytes.len() - 1] {
        assert!(matches!(
            GaloisKey::from_bytes(&bytes[..cut], &f.params),
            Err(DecodeError::Truncated { .. })
        ));
    }
    // A key set claiming many keys is refused before allocating.
    let mut set = f.limited.keys().to_bytes();
    let relin_len = 12 + 16 * 4 * 9 * f.params.ring().n();
    let count_at = HEADER_LEN + 1 + relin_len;
    set[count_at..count_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        EvaluationKeys::from_bytes(&set, &f.params),
        Err(DecodeError::Truncated { .. })
    ));
}

/// Encapsulation keys stay full: a limited sparse-to-dense key is refused.
#[test]
fn encapsulation_keys_must_be_full() {
    let f = fx();
    let ring = f.params.ring();
    let small = ParametersLiteral {
        name: "INSECURE_LEVELED_SMALL".into(),
        log_n: ring.log_n(),
        log_q: vec![],
        log_p: vec![],
        q: Some(vec![ring.q().primes()[0]]),
        p: Some(vec![ring.p().primes()[0]]),
        digit_size: None,
        secret: psf_rlwe::SecretDistribution::SparseTernary { hamming_weight: 8 },
        sigma: 3.2,
    }
    .try_build()
    .unwrap();
    let mut ks = KeyGenerator::seeded(&small, 4);
    let sparse = ks.gen_secret_key();
    let to_sparse = ks.gen_switching_key(ks.secret_from_key(&f.sk).poly(), &sparse);
    let mut kgen = KeyGenerator::seeded(ring, 5);
    let sparse_main = kgen.secret_from_key(&sparse);
    let full = kgen.gen_switching_key(sparse_main.poly(), &f.sk);
    let limited = kgen
        .gen_switching_key_up_to(sparse_main.poly(), &f.sk, L)
        .unwrap();
    let decode = |to_dense: &SwitchingKey| -> std::result::Result<EncapsulationParts, DecodeError> {
        let bytes = encode_encapsulation(8, &to_sparse, to_dense);
        decode_encapsulation(&bytes, &f.params, |_| Ok(small.clone()))
    };
    assert!(decode(&full).is_ok());
    // Shorter than a full key: refused by the length check made before allocating.
    assert!(matches!(
        decode(&limited),
        Err(DecodeError::Truncated { .. } | DecodeError::InvalidLength { field: "limbs", .. })
    ));
}

/// The fuzz targets' seed corpus (full keys, written before limited keys existed) decodes
/// and re-encodes byte for byte.
#[test]
fn fuzz_corpus_still_decodes() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let params =
        CkksParameters::from_bytes(&std::fs::read(root.join("parameters/seed-0")).unwrap())
            .unwrap();
    fn same<T: WireDecode + WireEncode>(bytes: &[u8], params: &CkksParameters) {
        let obj = T::from_bytes(bytes, params).unwrap();
        assert_eq!(obj.to_bytes(), bytes);
    }
    let mut seen = 0;
    for (dir, f) in [
        (
            "switching_key",
            same::<SwitchingKey> as fn(&[u8], &CkksParameters),
        ),
        ("relinearization_key", same::<RelinearizationKey>),
        ("galois_key", same::<GaloisKey>),
        ("evaluation_keys", same::<EvaluationKeys>),
    ] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            f(&std::fs::read(entry.unwrap().path()).unwrap(), &params);
            seen += 1;
        }
    }
    assert!(seen >= 5, "{seen} corpus files");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Corrupted limited keys never panic; whatever decodes re-encodes to the same bytes.
    #[test]
    fn corrupted_limited_keys(at in 0usize..64, v in prop_oneof![Just(0u32), Just(1), Just(2), Just(9), any::<u32>()], cut in any::<prop::sample::Index>()) {
        let f = fx();
        let g1 = galois_element_for_rotation(1, f.params.ring().log_n());
        for bytes in [f.limited.keys().galois[&g1].to_bytes(), f.limited.keys().to_bytes()] {
            let mut b = bytes.clone();
            b[at..at + 4].copy_from_slice(&v.to_le_bytes());
            for input in [b.clone(), bytes[..cut.index(bytes.len())].to_vec()] {
                if let Ok(k) = GaloisKey::from_bytes(&input, &f.params) {
                    prop_assert_eq!(k.to_bytes(), input.clone());
                }
                if let Ok(k) = EvaluationKeys::from_bytes(&input, &f.params) {
                    prop_assert_eq!(k.to_bytes(), input);
                }
            }
        }
    }
}
