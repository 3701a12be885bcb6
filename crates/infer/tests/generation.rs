//! Autoregressive generation with the encrypted KV cache: each step's logits against the
//! `f64` twin of the prefix (`ModelIr::forward_f64`, last row), the client picking the argmax
//! token and feeding its embedding back. On the simulation evaluator (exact, tight tolerance,
//! several cache ciphertexts) and encrypted with bootstrapping on the INSECURE N = 2^12 twin
//! of the 128-bit chain.

mod common;

use common::{LLAMA, Lcg, NEOX, Shape, compare, model};
use psf_circuits::SimBackend;
use psf_ckks::{Decryptor, Encryptor, KeyGenerator, PrecisionStats};
use psf_infer::client::{StepClient, StepSpec};
use psf_infer::model::ModelIr;
use psf_infer::runtime::decode::{KvCache, prefill, step, step_sim};
use psf_infer::runtime::{RunOptions, ServerContext, SimRefresh};
use psf_infer::{Component, DecodeOptions, Decoder, InferError};

/// The client's embedding table: one random row per vocabulary entry.
fn table(shape: Shape, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = Lcg(seed);
    (0..shape.vocab).map(|_| rng.vec(shape.d, 1.0)).collect()
}

/// `count` sequences of `len` random tokens' embeddings.
fn calibration(emb: &[Vec<f64>], count: usize, len: usize, seed: u64) -> Vec<Vec<Vec<f64>>> {
    let mut rng = Lcg(seed);
    (0..count)
        .map(|_| {
            (0..len)
                .map(|_| {
                    let id = ((rng.next() + 1.0) * 0.5 * emb.len() as f64) as usize;
                    emb[id.min(emb.len() - 1)].clone()
                })
                .collect()
        })
        .collect()
}

fn argmax(v: &[f64]) -> usize {
    (0..v.len())
        .max_by(|&a, &b| v[a].total_cmp(&v[b]))
        .unwrap_or(0)
}

/// The twin's logits of the last position of `xs`.
fn twin(ir: &ModelIr, xs: &[Vec<f64>]) -> Vec<f64> {
    ir.forward_f64(xs).unwrap().pop().unwrap()
}

/// Simulated generation of `len` positions after a prompt of 3: logits of every step against
/// the twin; returns the decoder for further checks.
fn simulated(shape: Shape, log_n: u32, max_len: usize) -> Decoder {
    let ir = model(shape, 7);
    let emb = table(shape, 3);
    let calib = calibration(&emb, 2, max_len, 5);
    let dec = Decoder::compile(&ir, &DecodeOptions::for_log_n(max_len, log_n, calib)).unwrap();
    let params = dec.params().unwrap();
    let refresh = SimRefresh::new(dec.fresh_level(&params));
    let mut cache = KvCache::new(&dec);
    let (mut ids, mut xs) = (vec![1usize, 5, 9], Vec::new());
    let (mut want, mut have) = (Vec::new(), Vec::new());
    for i in 0..max_len {
        xs.push(emb[ids[i]].clone());
        let token = dec.layout.pack_token(&xs[i]).unwrap();
        let sim = SimBackend::new(&params);
        let run = step_sim(
            &dec,
            sim,
            &refresh,
            &mut cache,
            &token,
            &RunOptions::default(),
        )
        .unwrap();
        assert_eq!(run.report.bootstraps, dec.plan.bootstraps, "step {i}");
        let slots: Vec<Vec<f64>> = run.outputs.iter().map(|c| c.values.clone()).collect();
        let logits = dec.layout.unpack_logits(&slots).unwrap();
        if i + 1 >= ids.len() {
            ids.push(argmax(&logits));
        }
        want.push(twin(&ir, &xs));
        have.push(logits);
    }
    let (max, mse, top1) = compare(&want, &have);
    eprintln!(
        "{shape:?} N=2^{log_n}: {max_len} steps, {} cache ciphertexts per layer: max {max:.2e} mse {mse:.2e} top1 {top1}",
        dec.layout.cache_cts()
    );
    assert!(max < 1e-6 && top1 == 1.0, "max {max} top1 {top1}");
    assert_eq!(cache.len(), max_len);
    let last = std::mem::take(&mut xs[0]);
    let err = step_sim(
        &dec,
        SimBackend::new(&params),
        &refresh,
        &mut cache,
        &dec.layout.pack_token(&last).unwrap(),
        &RunOptions::default(),
    );
    assert!(matches!(err, Err(InferError::CacheFull { .. })));
    dec
}

#[test]
fn simulated_neox_matches_the_twin_over_several_cache_ciphertexts() {
    // 2^9 slots, 16 per token block: 32 tokens per cache ciphertext, 40 positions -> 2.
    let dec = simulated(NEOX, 10, 40);
    assert_eq!(dec.layout.cache_cts(), 2);
    assert!(!dec.plan.bootstraps.is_empty());
}

#[test]
fn simulated_llama_grouped_heads_match_the_twin() {
    let dec = simulated(LLAMA, 10, 40);
    assert_eq!(dec.layout.cache_cts(), 2);
}

#[test]
fn wrong_caches_and_wild_calibration_are_refused() {
    let ir = model(LLAMA, 7);
    let emb = table(LLAMA, 3);
    let calib = calibration(&emb, 1, 4, 5);
    let dec = Decoder::compile(&ir, &DecodeOptions::for_log_n(4, 10, calib.clone())).unwrap();
    let other = Decoder::compile(&ir, &DecodeOptions::for_log_n(8, 10, calib.clone())).unwrap();
    let params = dec.params().unwrap();
    let refresh = SimRefresh::new(dec.fresh_level(&params));
    let mut cache = KvCache::new(&other);
    let token = dec.layout.pack_token(&emb[0]).unwrap();
    let sim = SimBackend::new(&params);
    let r = step_sim(
        &dec,
        sim,
        &refresh,
        &mut cache,
        &token,
        &RunOptions::default(),
    );
    assert!(r.is_err());
    assert!(cache.is_empty());
    assert!(Decoder::compile(&ir, &DecodeOptions::for_log_n(2, 10, calib.clone())).is_err());
    // Embeddings far outside what the approximations were made for: the dry run refuses
    // them instead of compiling bounds no bootstrap can take.
    let wild: Vec<Vec<Vec<f64>>> = calib
        .iter()
        .map(|s| {
            s.iter()
                .map(|x| x.iter().map(|v| v * 1e4).collect())
                .collect()
        })
        .collect();
    let r = Decoder::compile(&ir, &DecodeOptions::for_log_n(4, 10, wild));
    assert!(
        matches!(
            r,
            Err(InferError::RefreshRange { .. } | InferError::Diverged { .. })
        ),
        "{r:?}"
    );
}

/// Encrypted generation: a prompt of 3 tokens (prefill), then 3 generated tokens fed back;
/// every decrypted step's logits against the twin.
fn encrypted(shape: Shape, min_bits: f64) {
    let max_len = 6;
    let ir = model(shape, 7);
    let emb = table(shape, 3);
    let calib = calibration(&emb, 2, max_len, 5);
    let dec = Decoder::compile(&ir, &DecodeOptions::for_log_n(max_len, 12, calib)).unwrap();
    let params = dec.params().unwrap();
    let req = dec.key_requirements().unwrap();

    // Client: keys.
    let mut kgen = KeyGenerator::seeded(params.ring(), 11);
    let sk = kgen.gen_secret_key();
    let (keys, encap) = req.generate(&params, &mut kgen, &sk, Some(12)).unwrap();
    let client = StepClient::new(StepSpec::of(&dec).unwrap(), &params).unwrap();
    let mut enc = Encryptor::with_secret_key(&sk).seeded(13);
    let decryptor = Decryptor::new(&sk);

    // Server: an empty cache for the sequence.
    let server = ServerContext::from_preset(&dec.preset, keys, encap).unwrap();
    let mut cache = KvCache::new(&dec);
    let opts = RunOptions::default();

    let mut ids = vec![1usize, 5, 9];
    let mut xs: Vec<Vec<f64>> = ids.iter().map(|&i| emb[i].clone()).collect();
    let prompt = xs
        .iter()
        .map(|x| client.encrypt_token(&mut enc, x).unwrap())
        .collect();
    let (mut out, reports) = prefill(&dec, &server, &mut cache, prompt, &opts).unwrap();
    assert_eq!(reports.last().unwrap().bootstraps, dec.plan.bootstraps);
    let (mut want, mut have) = (Vec::new(), Vec::new());
    loop {
        let logits = client.decrypt_logits(&decryptor, &out).unwrap();
        ids.push(argmax(&logits));
        want.push(twin(&ir, &xs));
        have.push(logits);
        if cache.len() == max_len {
            break;
        }
        xs.push(emb[*ids.last().unwrap()].clone());
        let ct = client.encrypt_token(&mut enc, xs.last().unwrap()).unwrap();
        let (o, report) = step(&dec, &server, &mut cache, ct, &opts).unwrap();
        assert_eq!(report.bootstraps, dec.plan.bootstraps);
        assert!(report.wall(Component::Bootstrap) > 0.0);
        eprintln!(
            "position {}: {:.2} s ({:.2} s bootstrapping)",
            cache.len() - 1,
            report.total_s,
            report.wall(Component::Bootstrap)
        );
        out = o;
    }
    let (max, mse, top1) = compare(&want, &have);
    eprintln!(
        "bootstrapping on 2^{} of 2^{} slots",
        dec.preset.config.log_slots,
        params.max_log_slots()
    );
    let flat = |rows: &[Vec<f64>]| rows.concat();
    let stats = PrecisionStats::from_real(&flat(&want), &flat(&have));
    eprintln!(
        "{shape:?}: {} steps, tokens {ids:?}: max abs error {max:.3e}, MSE {mse:.3e}, top-1 {top1}, precision {:.1} min / {:.1} mean bits",
        cache.len(),
        stats.min_bits,
        stats.mean_bits
    );
    assert_eq!(top1, 1.0, "top-1 differs at some step");
    assert!(mse <= 1e-3, "MSE {mse}");
    assert!(stats.min_bits >= min_bits, "{} bits", stats.min_bits);
}

#[test]
fn encrypted_generation_neox() {
    encrypted(NEOX, 12.0);
}

#[test]
fn encrypted_generation_llama_gqa() {
    encrypted(LLAMA, 12.0);
}

#[test]
fn simulated_neox_with_unused_hidden_slots_matches_the_twin() {
    // MLP 24 in a hidden period of 32: the GELU of the 8 unused slots is not 0.
    simulated(Shape { mlp: 24, ..NEOX }, 10, 40);
}

#[test]
fn simulated_decay_matches_the_twin() {
    // The positional decay folded into the decoder's score masks, over 2 cache ciphertexts.
    simulated(
        Shape {
            decay: true,
            ..NEOX
        },
        10,
        40,
    );
}
