//! Linear transforms on ciphertexts against their f64 twins (INSECURE sets), keys generated
//! from each transform's Galois elements, and simulated counts equal to the real ones.

use std::collections::HashMap;

use psf_circuits::linear::*;
use psf_circuits::{Backend, Circuit, HeBackend, SimBackend};
use psf_ckks::*;

struct Ctx {
    params: CkksParameters,
    enc: Encoder,
    sk: SecretKey,
    eval: Evaluator,
}

/// Keys for exactly the Galois elements `circuit` lists.
fn ctx(lit: CkksParametersLiteral, circuits: &[&dyn Circuit]) -> Ctx {
    let params = lit.try_build().unwrap();
    let mut kgen = KeyGenerator::seeded(params.ring(), 11);
    let sk = kgen.gen_secret_key();
    let log_n = params.ring().log_n();
    let mut galois = HashMap::new();
    for g in circuits.iter().flat_map(|c| c.galois_elements(log_n)) {
        galois.insert(g, kgen.gen_galois_key(g, &sk).unwrap());
    }
    let keys = EvaluationKeys {
        relin: None,
        galois,
    };
    let eval = Evaluator::new(&params, keys);
    Ctx {
        enc: Encoder::new(&params),
        params,
        sk,
        eval,
    }
}

impl Ctx {
    fn backend(&self) -> HeBackend<'_> {
        HeBackend::new(&self.params, &self.enc, &self.eval)
    }

    fn encrypt(&self, v: &[f64]) -> Ciphertext {
        let level = self.params.ring().max_level();
        let pt = self
            .enc
            .encode(
                v,
                self.params.max_log_slots(),
                level,
                self.params.default_scale(),
            )
            .unwrap();
        Encryptor::with_secret_key(&self.sk)
            .seeded(3)
            .encrypt(&pt)
            .unwrap()
    }

    fn check(&self, what: &str, want: &[f64], ct: &Ciphertext, min_bits: f64) {
        let pt = Decryptor::new(&self.sk).decrypt(ct).unwrap();
        let have = self.enc.decode(&pt).unwrap();
        let stats = PrecisionStats::from_real(want, &have[..want.len()]);
        println!("{what:<34} {stats}");
        assert!(stats.min_bits >= min_bits, "{what}: {stats}");
    }
}

/// Uniform values in `[-amp, amp]` from a xorshift stream.
fn random(n: usize, seed: u64, amp: f64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            amp * (2.0 * (s >> 11) as f64 / (1u64 << 53) as f64 - 1.0)
        })
        .collect()
}

fn matrix(rows: usize, cols: usize, seed: u64, amp: f64) -> Vec<Vec<f64>> {
    random(rows * cols, seed, amp)
        .chunks(cols)
        .map(<[f64]>::to_vec)
        .collect()
}

/// `w x` for `x` features x tokens.
fn matmul(w: &[Vec<f64>], x: &[Vec<f64>]) -> Vec<Vec<f64>> {
    w.iter()
        .map(|row| {
            (0..x[0].len())
                .map(|t| row.iter().zip(x).map(|(a, xf)| a * xf[t]).sum())
                .collect()
        })
        .collect()
}

fn flat(v: &[Vec<f64>]) -> Vec<f64> {
    v.iter().flatten().copied().collect()
}

#[test]
fn dense_bsgs_and_double_hoisting_agree_with_twin_and_simulator() {
    let m = matrix(512, 512, 1, 1.0 / 16.0);
    let t = LinearTransform::from_dense(&m, 512, Strategy::Bsgs(None)).unwrap();
    assert_eq!((t.plan().n1, t.plan().giant.len()), (32, 16));
    let c = ctx(sets::insecure_n10(), &[&t]);
    assert_eq!(c.eval.keys().galois.len(), 31 + 15);
    let b = c.backend();
    let x = random(512, 2, 1.0);
    let want: Vec<f64> = m
        .iter()
        .map(|r| r.iter().zip(&x).map(|(a, b)| a * b).sum())
        .collect();
    assert_eq!(t.apply_f64(&x).len(), 512);
    let level = b.max_level();
    let ct = c.encrypt(&x);
    let enc = t.encode(&b, level).unwrap();
    c.eval.counter().reset();
    let out = enc.apply(&b, &ct).unwrap();
    let bsgs_counts = c.eval.counter().snapshot();
    assert_eq!((out.level(), out.meta.scale), (level - 1, ct.meta.scale));
    c.check("dense 512x512 BSGS", &want, &out, 24.0);
    let dh = t.encode_double_hoisted(&b, level).unwrap();
    c.eval.counter().reset();
    let out2 = dh.apply(&b, &ct).unwrap();
    assert_eq!(c.eval.counter().snapshot(), bsgs_counts);
    c.check("dense 512x512 double hoisted", &want, &out2, 24.0);
    // The simulator predicts the counts exactly.
    let sim = SimBackend::new(&c.params);
    let sx = sim.encrypt(&x, level, b.default_scale()).unwrap();
    let senc = t.encode(&sim, level).unwrap();
    sim.counter().reset();
    let sy = senc.apply(&sim, &sx).unwrap();
    assert_eq!(sim.counts(), bsgs_counts);
    assert_eq!((sy.level, sy.scale), (out.level(), out.meta.scale.0));
    let g = |p| bsgs_counts.get(p);
    assert_eq!(
        [
            g(Primitive::Decompose),
            g(Primitive::RotateHoisted),
            g(Primitive::Rotate)
        ],
        [1, 31, 15]
    );
    assert_eq!(
        [
            g(Primitive::PtMul),
            g(Primitive::Add),
            g(Primitive::Rescale)
        ],
        [512, 511, 1]
    );
}

#[test]
fn diagonal_method_on_a_replicated_matrix() {
    let m = matrix(64, 64, 3, 0.25);
    let t = LinearTransform::from_dense(&m, 512, Strategy::Diagonal).unwrap();
    assert_eq!(
        (t.plan().giant.len(), t.plan().baby_rotations().len()),
        (1, 63)
    );
    let c = ctx(sets::insecure_n10(), &[&t]);
    let b = c.backend();
    let x64 = random(64, 4, 1.0);
    let x: Vec<f64> = (0..512).map(|i| x64[i % 64]).collect();
    let want: Vec<f64> = (0..512)
        .map(|i| m[i % 64].iter().zip(&x64).map(|(a, b)| a * b).sum())
        .collect();
    // Input above the encoding level: dropped first.
    let enc = t.encode(&b, b.max_level() - 1).unwrap();
    let out = enc.apply(&b, &c.encrypt(&x)).unwrap();
    assert_eq!(out.level(), b.max_level() - 2);
    c.check("64x64 diagonal method (replicated)", &want, &out, 24.0);
    assert!(t.encode(&b, 0).is_err());
}

#[test]
fn interleaved_transform_and_blocks() {
    // 512 slots, 8 tokens: 64 features per ciphertext.
    let layout = Interleaved::new(8, 512).unwrap();
    assert_eq!(layout.features_per_ct(), 64);
    let w = matrix(64, 64, 5, 0.125);
    let t = layout.transform(&w, Strategy::Bsgs(None)).unwrap();
    assert!(t.plan().rotations().iter().all(|r| r % 8 == 0));
    // 192 x 128 over 2 input and 3 output ciphertexts.
    let wb = matrix(192, 128, 6, 0.125);
    let bt = layout.block_transform(&wb).unwrap();
    assert_eq!((bt.inputs(), bt.outputs()), (2, 3));
    let c = ctx(sets::insecure_n10(), &[&t, &bt]);
    let b = c.backend();
    let level = b.max_level();
    let x = matrix(64, 8, 7, 1.0);
    let packed = layout.pack(&x);
    let want = flat(&matmul(&w, &x));
    let ct = c.encrypt(&packed[0]);
    let out = t.encode(&b, level).unwrap().apply(&b, &ct).unwrap();
    let unpack = |ct: &Ciphertext| {
        let pt = Decryptor::new(&c.sk).decrypt(ct).unwrap();
        c.enc.decode(&pt).unwrap()
    };
    let have = flat(&layout.unpack(&[unpack(&out)], 64));
    let stats = PrecisionStats::from_real(&want, &have);
    println!("interleaved 64x64, 8 tokens          {stats}");
    assert!(stats.min_bits >= 24.0, "{stats}");
    let dh = t
        .encode_double_hoisted(&b, level)
        .unwrap()
        .apply(&b, &ct)
        .unwrap();
    let have = flat(&layout.unpack(&[unpack(&dh)], 64));
    assert!(PrecisionStats::from_real(&want, &have).min_bits >= 24.0);
    // Blocks.
    let xb = matrix(128, 8, 8, 1.0);
    let cts: Vec<Ciphertext> = layout.pack(&xb).iter().map(|v| c.encrypt(v)).collect();
    let benc = bt.encode(&b, level).unwrap();
    c.eval.counter().reset();
    let outs = benc.apply(&b, &cts).unwrap();
    let he_counts = c.eval.counter().snapshot();
    let dec: Vec<Vec<f64>> = outs.iter().map(unpack).collect();
    let stats =
        PrecisionStats::from_real(&flat(&matmul(&wb, &xb)), &flat(&layout.unpack(&dec, 192)));
    println!("block 192x128, 2 -> 3 ciphertexts    {stats}");
    assert!(stats.min_bits >= 23.0, "{stats}");
    assert_eq!(he_counts.get(Primitive::Decompose), 2);
    assert_eq!(he_counts.get(Primitive::Rescale), 3);
    let sim = SimBackend::new(&c.params);
    let sx: Vec<_> = layout
        .pack(&xb)
        .iter()
        .map(|v| sim.encrypt(v, level, b.default_scale()).unwrap())
        .collect();
    let senc = bt.encode(&sim, level).unwrap();
    sim.counter().reset();
    let sy = senc.apply(&sim, &sx).unwrap();
    assert_eq!(sim.counts(), he_counts);
    let twin = bt.apply_f64(&layout.pack(&xb));
    let sv: Vec<Vec<f64>> = sy.iter().map(|s| sim.decrypt(s)).collect();
    assert!(PrecisionStats::from_real(&flat(&twin), &flat(&sv)).min_bits > 40.0);
}

#[test]
fn rotate_and_sum_and_masks() {
    let (n, slots) = (8usize, 512usize);
    let inner = RotateAndSum::new(n, 1).unwrap();
    let outer = RotateAndSum::new(slots / n, n).unwrap();
    let c = ctx(sets::insecure_n10(), &[&inner, &outer]);
    let b = c.backend();
    let x = random(slots, 9, 1.0);
    let ct = c.encrypt(&x);
    let mask = Mask::select(slots, |m| m % n == 0);
    // Sum over the tokens of each feature, kept in the feature's first slot.
    let summed = inner.apply(&b, &ct).unwrap();
    assert_eq!(summed.level(), ct.level());
    let masked = mask
        .encode(&b, b.max_level())
        .unwrap()
        .apply(&b, &summed)
        .unwrap();
    let want = mask.apply_f64(&inner.apply_f64(&x));
    c.check("inner sum (8 tokens) + mask", &want, &masked, 26.0);
    for m in (0..slots).step_by(n) {
        let direct: f64 = x[m..m + n].iter().sum();
        assert!((want[m] - direct).abs() < 1e-12);
    }
    let out = outer.apply(&b, &ct).unwrap();
    c.check("outer sum (64 features)", &outer.apply_f64(&x), &out, 24.0);
    assert_eq!(inner.galois_elements(10).len(), 3);
    assert!(RotateAndSum::new(3, 1).is_err());
}

/// The 512 x 512 product on 64-token-interleaved slots at N=2^16, simulated: values against
/// the twin and the counts of the BSGS schedule.
#[test]
fn interleaved_512_at_n16_simulated() {
    let params = sets::n16_depth20_128bit().try_build().unwrap();
    let layout = Interleaved::new(64, params.max_slots()).unwrap();
    assert_eq!(layout.features_per_ct(), 512);
    let w = matrix(512, 512, 10, 1.0 / 32.0);
    let t = layout.transform(&w, Strategy::Bsgs(None)).unwrap();
    assert_eq!(t.galois_elements(16).len(), 31 + 15);
    let sim = SimBackend::new(&params).with_keys(false, t.galois_elements(16));
    let x = matrix(512, 64, 11, 1.0);
    let level = 10;
    let sx = sim
        .encrypt(&layout.pack(&x)[0], level, sim.default_scale())
        .unwrap();
    let enc = t.encode(&sim, level).unwrap();
    sim.counter().reset();
    let sy = enc.apply(&sim, &sx).unwrap();
    let have = flat(&layout.unpack(&[sim.decrypt(&sy)], 512));
    let stats = PrecisionStats::from_real(&flat(&matmul(&w, &x)), &have);
    assert!(stats.min_bits > 40.0, "{stats}");
    let cnt = sim.counts();
    let g = |p| cnt.get(p);
    assert_eq!(
        [
            g(Primitive::Decompose),
            g(Primitive::RotateHoisted),
            g(Primitive::Rotate)
        ],
        [1, 31, 15]
    );
    assert_eq!(
        [
            g(Primitive::PtMul),
            g(Primitive::Add),
            g(Primitive::Rescale)
        ],
        [512, 511, 1]
    );
}

/// Double-hoisted block products: same values and counts as the plain block path, inputs
/// above the encoding level dropped first.
#[test]
fn block_double_hoisting_matches_plain_blocks() {
    let layout = Interleaved::new(16, 512).unwrap();
    let wb = matrix(96, 64, 12, 0.125);
    let bt = layout.block_transform(&wb).unwrap();
    assert_eq!((bt.inputs(), bt.outputs()), (2, 3));
    let c = ctx(sets::insecure_n10(), &[&bt]);
    let b = c.backend();
    let level = b.max_level() - 1;
    let xb = matrix(64, 16, 13, 1.0);
    let cts: Vec<Ciphertext> = layout.pack(&xb).iter().map(|v| c.encrypt(v)).collect();
    let plain = bt.encode(&b, level).unwrap();
    let dh = bt.encode_double_hoisted(&b, level).unwrap();
    c.eval.counter().reset();
    let ys = plain.apply(&b, &cts).unwrap();
    let plain_counts = c.eval.counter().snapshot();
    c.eval.counter().reset();
    let zs = dh.apply(&b, &cts).unwrap();
    assert_eq!(c.eval.counter().snapshot(), plain_counts);
    assert_eq!(plain_counts.get(Primitive::DropLevel), 2);
    // Encoding on the fly: the same evaluator primitives (plus the encodings).
    c.eval.counter().reset();
    let ss = bt.apply_streamed(&b, &cts, level).unwrap();
    let streamed = c.eval.counter().snapshot();
    for p in [
        Primitive::PtMul,
        Primitive::Add,
        Primitive::Rotate,
        Primitive::RotateHoisted,
        Primitive::Decompose,
        Primitive::Rescale,
        Primitive::DropLevel,
    ] {
        assert_eq!(streamed.get(p), plain_counts.get(p), "{p:?}");
    }
    let want = flat(&matmul(&wb, &xb));
    for (what, outs) in [
        ("block 96x64 plain", &ys),
        ("block 96x64 double hoisted", &zs),
        ("block 96x64 streamed", &ss),
    ] {
        let dec: Vec<Vec<f64>> = outs
            .iter()
            .map(|ct| {
                assert_eq!((ct.level(), ct.meta.scale), (level - 1, cts[0].meta.scale));
                c.enc
                    .decode(&Decryptor::new(&c.sk).decrypt(ct).unwrap())
                    .unwrap()
            })
            .collect();
        let stats = PrecisionStats::from_real(&want, &flat(&layout.unpack(&dec, 96)));
        println!("{what:<34} {stats}");
        assert!(stats.min_bits >= 24.0, "{what}: {stats}");
    }
}
