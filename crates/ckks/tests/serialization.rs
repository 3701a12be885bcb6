//! Wire format: round trips of every object, typed errors, and random corruptions that must
//! never panic (and, when they decode, re-encode to the same bytes).

use std::sync::OnceLock;

use proptest::prelude::*;
use psf_ckks::serialization::{
    DecodeError, FORMAT_VERSION, HEADER_LEN, ObjectKind, WireDecode, WireEncode, WireEncodeSecret,
    fnv1a64,
};
use psf_ckks::*;
use psf_rlwe::{GaloisKey, RelinearizationKey, SwitchingKey};

struct Fixture {
    params: CkksParameters,
    enc: Encoder,
    sk: SecretKey,
    pk: PublicKey,
    keys: EvaluationKeys,
    eval: Evaluator,
    ct: Ciphertext,
    ct3: Ciphertext,
    pt: Plaintext,
    values: Vec<f64>,
}

fn fx() -> &'static Fixture {
    static FX: OnceLock<Fixture> = OnceLock::new();
    FX.get_or_init(|| {
        let params = sets::insecure_n10().try_build().unwrap();
        let mut kgen = KeyGenerator::seeded(params.ring(), 42);
        let sk = kgen.gen_secret_key();
        let pk = kgen.gen_public_key(&sk);
        let keys = EvaluationKeys::generate(&mut kgen, &sk, &[1, 5], true).unwrap();
        let enc = Encoder::new(&params);
        let eval = Evaluator::new(&params, keys.clone());
        let log_slots = params.max_log_slots();
        let values: Vec<f64> = (0..1 << log_slots)
            .map(|i| ((i * 37 % 101) as f64) / 101.0 - 0.5)
            .collect();
        let level = params.ring().max_level();
        let pt = enc
            .encode(&values, log_slots, level, params.default_scale())
            .unwrap();
        let ct = Encryptor::with_public_key(&pk)
            .seeded(7)
            .encrypt(&pt)
            .unwrap();
        let ct3 = eval.mul_new(&ct, &ct).unwrap();
        Fixture {
            params,
            enc,
            sk,
            pk,
            keys,
            eval,
            ct,
            ct3,
            pt,
            values,
        }
    })
}

impl Fixture {
    fn decrypt(&self, ct: &Ciphertext) -> Vec<f64> {
        let pt = Decryptor::new(&self.sk).decrypt(ct).unwrap();
        self.enc.decode(&pt).unwrap()
    }

    fn relin(&self) -> &RelinearizationKey {
        self.keys.relin.as_ref().unwrap()
    }

    fn galois(&self) -> &GaloisKey {
        let g = galois_element_for_rotation(1, self.params.ring().log_n());
        &self.keys.galois[&g]
    }
}

fn max_err(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn other_params() -> CkksParameters {
    let mut lit = sets::insecure_n10();
    lit.ring.log_q = vec![60, 40, 40, 40];
    lit.try_build().unwrap()
}

fn same_ct(a: &Ciphertext, b: &Ciphertext) {
    assert_eq!(a.polys, b.polys);
    assert_eq!(a.meta, b.meta);
}

#[test]
fn ciphertext_round_trip_decrypts_the_same() {
    let f = fx();
    for ct in [
        &f.ct,
        &f.ct3,
        &f.eval
            .rescale_new(&f.eval.relinearize(&f.ct3).unwrap())
            .unwrap(),
    ] {
        let bytes = ct.to_bytes();
        assert_eq!(bytes.len(), ct.encoded_len());
        let back = Ciphertext::from_bytes(&bytes, &f.params).unwrap();
        same_ct(ct, &back);
        assert_eq!(back.to_bytes(), bytes);
    }
    let back = Ciphertext::from_bytes(&f.ct.to_bytes(), &f.params).unwrap();
    assert_eq!(f.decrypt(&back), f.decrypt(&f.ct));
    assert!(max_err(&f.decrypt(&back), &f.values) < 1e-6);
    println!(
        "sizes at N=2^10: ciphertext (L=6, degree 1) {} B, relin key {} B, public key {} B",
        f.ct.encoded_len(),
        f.relin().encoded_len(),
        f.pk.encoded_len()
    );
}

#[test]
fn plaintext_and_public_key_round_trip() {
    let f = fx();
    let pt = Plaintext::from_bytes(&f.pt.to_bytes(), &f.params).unwrap();
    assert_eq!(pt.poly, f.pt.poly);
    assert_eq!(pt.meta, f.pt.meta);
    let pk = PublicKey::from_bytes(&f.pk.to_bytes(), &f.params).unwrap();
    assert_eq!((&pk.a, &pk.b), (&f.pk.a, &f.pk.b));
    let ct = Encryptor::with_public_key(&pk).encrypt(&pt).unwrap();
    assert!(max_err(&f.decrypt(&ct), &f.values) < 1e-6);
}

#[test]
fn secret_key_round_trip() {
    let f = fx();
    let bytes = f.sk.to_bytes_secret();
    let sk = SecretKey::from_bytes(&bytes, &f.params).unwrap();
    assert_eq!(sk.poly(), f.sk.poly());
    let pt = Decryptor::new(&sk).decrypt(&f.ct).unwrap();
    assert!(max_err(&f.enc.decode(&pt).unwrap(), &f.values) < 1e-6);
}

#[test]
fn keys_round_trip_and_still_work() {
    let f = fx();
    let relin = RelinearizationKey::from_bytes(&f.relin().to_bytes(), &f.params).unwrap();
    let galois = GaloisKey::from_bytes(&f.galois().to_bytes(), &f.params).unwrap();
    assert_eq!(galois.galois_element, f.galois().galois_element);
    let sw = SwitchingKey::from_bytes(&f.relin().0.to_bytes(), &f.params).unwrap();
    assert_eq!(sw.digits, f.relin().0.digits);
    let keys = EvaluationKeys {
        relin: Some(relin),
        galois: [(galois.galois_element, galois)].into(),
    };
    let eval = Evaluator::new(&f.params, keys);
    same_ct(
        &eval.relinearize(&f.ct3).unwrap(),
        &f.eval.relinearize(&f.ct3).unwrap(),
    );
    let rotated = eval.rotate_new(&f.ct, 1).unwrap();
    same_ct(&rotated, &f.eval.rotate_new(&f.ct, 1).unwrap());
    let want: Vec<f64> = (0..f.values.len())
        .map(|i| f.values[(i + 1) % f.values.len()])
        .collect();
    assert!(max_err(&f.decrypt(&rotated), &want) < 1e-5);
}

#[test]
fn evaluation_keys_round_trip() {
    let f = fx();
    let bytes = f.keys.to_bytes();
    assert_eq!(bytes.len(), f.keys.encoded_len());
    let keys = EvaluationKeys::from_bytes(&bytes, &f.params).unwrap();
    assert_eq!(keys.galois.len(), f.keys.galois.len());
    assert_eq!(keys.to_bytes(), bytes);
    let eval = Evaluator::new(&f.params, keys);
    same_ct(
        &eval.conjugate_new(&f.ct).unwrap(),
        &f.eval.conjugate_new(&f.ct).unwrap(),
    );
    let empty = EvaluationKeys::default().to_bytes();
    assert!(
        EvaluationKeys::from_bytes(&empty, &f.params)
            .unwrap()
            .galois
            .is_empty()
    );
}

#[test]
fn parameters_round_trip() {
    for lit in [sets::insecure_n10(), sets::n16_depth20_128bit()] {
        assert_eq!(
            CkksParametersLiteral::from_bytes(&lit.to_bytes()).unwrap(),
            lit
        );
    }
    let f = fx();
    let params = CkksParameters::from_bytes(&f.params.to_bytes()).unwrap();
    assert_eq!(params.literal(), f.params.literal());
    // Objects encoded under the original decode under the decoded parameters.
    Ciphertext::from_bytes(&f.ct.to_bytes(), &params).unwrap();
}

#[test]
fn typed_errors() {
    let f = fx();
    let ct = f.ct.to_bytes();
    let other = other_params();
    assert!(matches!(
        Ciphertext::from_bytes(&ct, &other),
        Err(DecodeError::ParametersMismatch { .. })
    ));
    assert!(matches!(
        RelinearizationKey::from_bytes(&f.relin().to_bytes(), &other),
        Err(DecodeError::ParametersMismatch { .. })
    ));
    assert_eq!(
        Plaintext::from_bytes(&ct, &f.params).unwrap_err(),
        DecodeError::WrongKind {
            expected: ObjectKind::Plaintext,
            found: ObjectKind::Ciphertext
        }
    );
    let patched = |at: usize, b: &[u8]| {
        let mut v = ct.clone();
        v[at..at + b.len()].copy_from_slice(b);
        Ciphertext::from_bytes(&v, &f.params).unwrap_err()
    };
    assert!(matches!(patched(0, b"XXXX"), DecodeError::BadMagic { .. }));
    assert_eq!(
        patched(4, &(FORMAT_VERSION + 1).to_le_bytes()),
        DecodeError::UnsupportedVersion {
            found: FORMAT_VERSION + 1,
            supported: FORMAT_VERSION
        }
    );
    assert_eq!(patched(6, &[200]), DecodeError::UnknownKind { tag: 200 });
    let scale = HEADER_LEN;
    assert!(matches!(
        patched(scale, &f64::NAN.to_le_bytes()),
        DecodeError::InvalidScale { .. }
    ));
    assert!(matches!(
        patched(scale, &(-1f64).to_le_bytes()),
        DecodeError::InvalidScale { .. }
    ));
    assert_eq!(
        patched(scale + 8, &10u32.to_le_bytes()),
        DecodeError::InvalidLogSlots {
            log_slots: 10,
            max: 9
        }
    );
    assert!(matches!(
        patched(scale + 12, &512u32.to_le_bytes()),
        DecodeError::InvalidLength { .. }
    ));
    // A huge polynomial count is refused before anything is allocated.
    assert!(matches!(
        patched(scale + 16, &u32::MAX.to_le_bytes()),
        DecodeError::Truncated { .. }
    ));
    assert!(matches!(
        patched(scale + 20, &8u32.to_le_bytes()),
        DecodeError::InvalidLength { .. }
    ));
    let q0 = f.params.ring().q().primes()[0];
    assert_eq!(
        patched(HEADER_LEN + 24, &q0.to_le_bytes()),
        DecodeError::ResidueOutOfRange {
            limb: 0,
            value: q0,
            modulus: q0
        }
    );
    // A flip that keeps a residue in range decodes, to a different ciphertext.
    let mut flipped = ct.clone();
    flipped[HEADER_LEN + 24] ^= 1;
    let back = Ciphertext::from_bytes(&flipped, &f.params).unwrap();
    assert_ne!(back.polys, f.ct.polys);
    let mut long = ct.clone();
    long.push(0);
    assert_eq!(
        Ciphertext::from_bytes(&long, &f.params).unwrap_err(),
        DecodeError::TrailingBytes {
            offset: ct.len(),
            count: 1
        }
    );
    for cut in [0, 3, 15, HEADER_LEN + 5, ct.len() / 2, ct.len() - 1] {
        assert!(matches!(
            Ciphertext::from_bytes(&ct[..cut], &f.params),
            Err(DecodeError::Truncated { .. })
        ));
    }
    let mut g = f.galois().to_bytes();
    g[HEADER_LEN..HEADER_LEN + 8].copy_from_slice(&4u64.to_le_bytes());
    assert!(matches!(
        GaloisKey::from_bytes(&g, &f.params),
        Err(DecodeError::InvalidGaloisElement { element: 4, .. })
    ));
    let mut p = f.params.to_bytes();
    p[HEADER_LEN + 6] ^= 1;
    assert!(matches!(
        CkksParameters::from_bytes(&p),
        Err(DecodeError::ChecksumMismatch { .. })
    ));
}

#[derive(Debug, Clone)]
enum Corruption {
    /// XOR bytes (index into the whole input, or into its first 64 bytes) with non-zero masks.
    Flip(Vec<(prop::sample::Index, bool, u8)>),
    Truncate(prop::sample::Index),
    Append(Vec<u8>),
    /// Overwrite a `u32` in the first 64 bytes (header and length fields).
    SetU32(usize, u32),
}

fn corruption() -> impl Strategy<Value = Corruption> {
    let value = prop_oneof![Just(0u32), Just(1), Just(2), Just(u32::MAX), any::<u32>()];
    prop_oneof![
        prop::collection::vec((any::<prop::sample::Index>(), any::<bool>(), 1u8..), 1..4)
            .prop_map(Corruption::Flip),
        any::<prop::sample::Index>().prop_map(Corruption::Truncate),
        prop::collection::vec(any::<u8>(), 1..16).prop_map(Corruption::Append),
        (0usize..60, value).prop_map(|(at, v)| Corruption::SetU32(at, v)),
    ]
}

fn corrupt(mut bytes: Vec<u8>, c: &Corruption) -> Vec<u8> {
    match c {
        Corruption::Flip(flips) => {
            for (i, head, mask) in flips {
                let len = if *head {
                    bytes.len().min(64)
                } else {
                    bytes.len()
                };
                let at = i.index(len);
                bytes[at] ^= mask;
            }
        }
        Corruption::Truncate(i) => bytes.truncate(i.index(bytes.len())),
        Corruption::Append(extra) => bytes.extend(extra),
        Corruption::SetU32(at, v) => bytes[*at..*at + 4].copy_from_slice(&v.to_le_bytes()),
    }
    bytes
}

/// Decoding never panics; whatever decodes re-encodes to exactly the corrupted bytes.
fn check<T: WireDecode>(bytes: &[u8], encode: impl Fn(&T) -> Vec<u8>) {
    if let Ok(obj) = T::from_bytes(bytes, &fx().params) {
        assert_eq!(encode(&obj), bytes, "decoded corruption is not canonical");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn corrupted_ciphertexts_and_plaintexts(c in corruption(), three in any::<bool>()) {
        let f = fx();
        let ct = if three { &f.ct3 } else { &f.ct };
        check::<Ciphertext>(&corrupt(ct.to_bytes(), &c), |x| x.to_bytes());
        check::<Plaintext>(&corrupt(f.pt.to_bytes(), &c), |x| x.to_bytes());
    }

    #[test]
    fn corrupted_keys(c in corruption()) {
        let f = fx();
        check::<PublicKey>(&corrupt(f.pk.to_bytes(), &c), |x| x.to_bytes());
        check::<SecretKey>(&corrupt(f.sk.to_bytes_secret().to_vec(), &c), |x| x.to_bytes_secret().to_vec());
        check::<RelinearizationKey>(&corrupt(f.relin().to_bytes(), &c), |x| x.to_bytes());
        check::<GaloisKey>(&corrupt(f.galois().to_bytes(), &c), |x| x.to_bytes());
    }

    #[test]
    fn corrupted_evaluation_keys(c in corruption()) {
        let f = fx();
        check::<EvaluationKeys>(&corrupt(f.keys.to_bytes(), &c), |x| x.to_bytes());
    }

    /// Corruptions with the checksum fixed up reach the parser and `try_build`.
    #[test]
    fn corrupted_parameters(c in corruption()) {
        let mut bytes = corrupt(fx().params.to_bytes(), &c);
        if bytes.len() >= HEADER_LEN {
            let sum = fnv1a64(&bytes[HEADER_LEN..]);
            bytes[8..HEADER_LEN].copy_from_slice(&sum.to_le_bytes());
        }
        if let Ok(lit) = CkksParametersLiteral::from_bytes(&bytes) {
            prop_assert_eq!(lit.to_bytes(), bytes);
        }
    }
}

/// Throughput of encoding and decoding evaluation keys (run with `--ignored --nocapture`).
#[test]
#[ignore]
fn throughput() {
    let f = fx();
    let bytes = f.keys.to_bytes();
    let reps = 50;
    let t = std::time::Instant::now();
    for _ in 0..reps {
        std::hint::black_box(f.keys.to_bytes());
    }
    let enc = t.elapsed().as_secs_f64() / reps as f64;
    let t = std::time::Instant::now();
    for _ in 0..reps {
        std::hint::black_box(EvaluationKeys::from_bytes(&bytes, &f.params).unwrap());
    }
    let dec = t.elapsed().as_secs_f64() / reps as f64;
    let mb = bytes.len() as f64 / 1e6;
    println!(
        "evaluation keys {mb:.2} MB: encode {:.0} MB/s, decode {:.0} MB/s",
        mb / enc,
        mb / dec
    );
}
