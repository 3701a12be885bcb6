//! Autoregressive generation with the server-side encrypted KV cache: the client encrypts one
//! token's embedding per step, the server runs the decoder against the cache, the client
//! decrypts the logits, picks the argmax token and encrypts its embedding. Prints the
//! per-token latency and its per-component breakdown and writes one report JSON per step.
//!
//! ```text
//! # the demo model, 128-bit N=2^16 chain: plan + simulated counts priced by the measured
//! # cost table (no encryption):
//! cargo run --release -p psf-infer --example generate -- --model models/demo \
//!     --spec models/demo/poly.json --log-n 16 --sim \
//!     --cost crates/circuits/costs/n16_boot.json --out target-infer/generate-demo-sim
//! # the same encrypted (128-bit; a quiet machine and ~20 GiB):
//! cargo run --release -p psf-infer --example generate -- --model models/demo \
//!     --spec models/demo/poly.json --log-n 16 --out target-infer/generate-demo
//! # a random NeoX shape on the INSECURE N=2^12 twin (minutes):
//! cargo run --release -p psf-infer --example generate -- --log-n 12 --layers 2 --d 16 \
//!     --heads 2 --mlp 32 --vocab 32 --out target-infer/generate-small
//! ```
//! Options: `--full-refresh` (bootstrap on all slots instead of the sparse `attn_period`
//! slots), `--prompt TEXT` (with `--model`; default "Once upon a time"), `--new N` generated
//! tokens (default 3), `--max-len N` (default: the prompt plus the new tokens), `--threads N`;
//! calibration (refresh bounds): `--calib-seqs N` windows (default 8) of `max_len` tokens of
//! `DIR/calibration.txt`, or of a token cache `--calib-tokens target-model/demo/data/train.tokens`.

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;

use psf_approx::{Chebyshev, InvSqrtRecipe, InverseMethod, ReciprocalRecipe};
use psf_circuits::SimBackend;
use psf_circuits::bootstrap::{Bootstrapper, Encapsulation, presets};
use psf_circuits::cost::{CostModel, CostTable};
use psf_ckks::{Decryptor, Encoder, Encryptor, EvaluationKeys, Evaluator, KeyGenerator};
use psf_infer::client::{StepClient, StepSpec};
use psf_infer::model::{Attention, Block, Linear, Mlp, ModelIr, Norm, NormKind, Rope};
use psf_infer::runtime::decode::{KvCache, step, step_sim};
use psf_infer::runtime::{RunOptions, ServerContext, SimRefresh, run_sim};
use psf_infer::{CompileOptions, CompiledModel, Component, DecodeOptions, Decoder, Report};
use psf_model::data::{TokenStream, tokenizer};
use psf_poly::{PolyModel, PolySpec, PolyWeights};

/// Command-line options (module docs).
#[derive(Parser)]
struct Args {
    /// A trained model directory (else a random model of the shape below).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Its polynomial spec (`poly.json`).
    #[arg(long)]
    spec: Option<PathBuf>,
    /// Calibration token ids (a `.tokens` file).
    #[arg(long)]
    calib_tokens: Option<PathBuf>,
    /// Calibration sequences.
    #[arg(long, default_value_t = 8)]
    calib_seqs: usize,
    /// Prompt text.
    #[arg(long, default_value = "Once upon a time")]
    prompt: String,
    /// Prompt token ids, comma separated (instead of the text).
    #[arg(long, value_delimiter = ',')]
    prompt_ids: Option<Vec<usize>>,
    /// `log2` of the ring degree.
    #[arg(long, default_value_t = 12)]
    log_n: u32,
    /// Blocks of the random model.
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// Width of the random model.
    #[arg(long, default_value_t = 16)]
    d: usize,
    /// Heads of the random model.
    #[arg(long, default_value_t = 2)]
    heads: usize,
    /// MLP width of the random model.
    #[arg(long, default_value_t = 32)]
    mlp: usize,
    /// Vocabulary of the random model.
    #[arg(long, default_value_t = 32)]
    vocab: usize,
    /// Tokens to generate.
    #[arg(long, default_value_t = 3)]
    new: usize,
    /// Positions of the cache (default: prompt + new tokens).
    #[arg(long)]
    max_len: Option<usize>,
    /// Simulate and price the steps instead of encrypting.
    #[arg(long)]
    sim: bool,
    /// Bootstrap on all slots instead of the sparse attention period.
    #[arg(long)]
    full_refresh: bool,
    /// Cost table (JSON) for the prediction.
    #[arg(long)]
    cost: Option<String>,
    /// Output directory of the reports.
    #[arg(long, default_value = "target-infer/generate")]
    out: String,
    /// Threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

/// What the client holds: the model, its embedding table, the prompt and calibration text.
struct Setup {
    ir: ModelIr,
    embed: Vec<Vec<f64>>,
    prompt: Vec<usize>,
    calibration: Vec<Vec<usize>>,
    name: Box<dyn Fn(usize) -> String>,
}

/// The model directory with its PolySpec, tokenizer and calibration text.
fn from_dir(a: &Args, dir: &PathBuf) -> Setup {
    let weights = PolyWeights::from_dir(dir).expect("model weights");
    let spec_path = a.spec.clone().unwrap_or_else(|| dir.join("poly.json"));
    let spec = PolySpec::from_file(&spec_path).expect("PolySpec");
    let embed = (0..weights.config.vocab_size)
        .map(|i| weights.embed(&[i as u32]).expect("row").data)
        .collect();
    let poly = PolyModel::new(weights, spec).expect("PolyModel");
    let ir = ModelIr::from_poly(&poly).expect("model IR");
    let tk = tokenizer::load(&dir.join("tokenizer.json")).expect("tokenizer");
    let prompt: Vec<usize> = a.prompt_ids.clone().unwrap_or_else(|| {
        let ids = tokenizer::encode(&tk, &a.prompt).expect("prompt");
        ids.into_iter().map(|i| i as usize).collect()
    });
    let ids = match &a.calib_tokens {
        Some(path) => TokenStream::read(path).expect("token cache").ids,
        None => {
            let path = dir.join("calibration.txt");
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (or pass --calib-tokens)", path.display()));
            tokenizer::encode(&tk, &text).expect("calibration tokens")
        }
    };
    let len = max_len(a, prompt.len());
    // Up to `calib_seqs` windows of `len` tokens spread evenly over the calibration tokens.
    let windows = ids.len() / len;
    let step = (windows / a.calib_seqs.max(1)).max(1);
    let calibration = (0..windows)
        .step_by(step)
        .take(a.calib_seqs)
        .map(|w| {
            ids[w * len..(w + 1) * len]
                .iter()
                .map(|&i| i as usize)
                .collect()
        })
        .collect();
    let name = Box::new(move |id: usize| tokenizer::decode(&tk, &[id as u32]).unwrap_or_default());
    Setup {
        ir,
        embed,
        prompt,
        calibration,
        name,
    }
}

fn max_len(a: &Args, prompt: usize) -> usize {
    a.max_len.unwrap_or(prompt + a.new)
}

/// Uniform `[-1, 1)` numbers from a seeded LCG.
fn lcg(state: &mut u64) -> f64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

fn linear(s: &mut u64, rows: usize, cols: usize) -> Linear {
    let k = (3.0 / cols as f64).sqrt();
    let w = (0..rows * cols).map(|_| lcg(s) * k).collect();
    let b = Some((0..rows).map(|_| lcg(s) * 0.1).collect());
    Linear::new(rows, cols, w, b).expect("shape")
}

fn norm(d: usize) -> Norm {
    Norm {
        kind: NormKind::LayerNorm,
        gamma: vec![1.0; d],
        beta: Some(vec![0.0; d]),
        eps: 1e-5,
        inv_sqrt: InvSqrtRecipe {
            a: 0.05,
            b: 8.0,
            guess_degree: 7,
            iterations: 2,
        },
    }
}

/// One NeoX block of the random model.
fn random_block(a: &Args, s: &mut u64) -> Block {
    let dh = a.d / a.heads;
    Block {
        norm1: norm(a.d),
        norm2: norm(a.d),
        attn: Attention {
            heads: a.heads,
            kv_heads: a.heads,
            head_dim: dh,
            q: linear(s, a.d, a.d),
            k: linear(s, a.d, a.d),
            v: linear(s, a.d, a.d),
            o: linear(s, a.d, a.d),
            rope: Some(Rope {
                rotary_dim: (dh / 4).max(2),
                theta: 10000.0,
            }),
            c: 4.0,
            p: 4,
            eps: 0.5,
            reciprocal: ReciprocalRecipe {
                a: 0.0015,
                b: 2.0,
                method: InverseMethod::Goldschmidt,
                guess_degree: 7,
                iterations: 3,
            },
            decay: Vec::new(),
        },
        mlp: Mlp::Plain {
            up: linear(s, a.mlp, a.d),
            down: linear(s, a.d, a.mlp),
            act: Chebyshev::interpolate(psf_approx::gelu_exact, -8.0, 8.0, 15),
        },
        parallel_residual: true,
    }
}

/// A random NeoX-layout model with the recipes of the tests, a random embedding table, a
/// prompt of 3 tokens and 4 random calibration sequences.
fn random(a: &Args) -> Setup {
    let mut s = 5u64;
    let blocks = (0..a.layers).map(|_| random_block(a, &mut s)).collect();
    let ir = ModelIr {
        d_model: a.d,
        blocks,
        final_norm: norm(a.d),
        lm_head: linear(&mut s, a.vocab, a.d),
    };
    let embed = (0..a.vocab)
        .map(|_| (0..a.d).map(|_| lcg(&mut s)).collect())
        .collect();
    let prompt = (a.prompt_ids.clone()).unwrap_or(vec![1 % a.vocab, 5 % a.vocab, 9 % a.vocab]);
    let len = max_len(a, prompt.len());
    let calibration = (0..4)
        .map(|_| {
            (0..len)
                .map(|_| ((lcg(&mut s) + 1.0) * 0.5 * a.vocab as f64) as usize % a.vocab)
                .collect()
        })
        .collect();
    Setup {
        ir,
        embed,
        prompt,
        calibration,
        name: Box::new(|id| format!("#{id}")),
    }
}

fn argmax(v: &[f64]) -> usize {
    (0..v.len())
        .max_by(|&i, &j| v[i].total_cmp(&v[j]))
        .unwrap_or(0)
}

/// Prints one step's line and breakdown, writes its JSON; returns the (wall or predicted)
/// seconds.
fn record(report: &Report, pos: usize, out: &str, sim: bool) -> f64 {
    let path = format!("{out}/step-{pos:03}.json");
    report.write_json(&path).expect("report JSON");
    let secs = |c: Component| {
        let x = report.components.iter().find(|x| x.component == Some(c));
        x.map_or(0.0, |x| {
            if sim {
                x.predicted_s.unwrap_or(0.0)
            } else {
                x.wall_s
            }
        })
    };
    let total: f64 = if sim {
        Component::ALL.iter().map(|&c| secs(c)).sum()
    } else {
        report.total_s
    };
    let parts: Vec<String> = Component::ALL
        .iter()
        .map(|&c| format!("{} {:.2}", c.label(), secs(c)))
        .collect();
    let kind = if sim { "predicted" } else { "wall" };
    println!(
        "  position {pos}: {total:.2} s {kind} ({})",
        parts.join(", ")
    );
    total
}

fn main() {
    let a = Args::parse();
    let setup = match &a.model {
        Some(dir) => from_dir(&a, dir),
        None => random(&a),
    };
    let len = max_len(&a, setup.prompt.len());
    let dec = compile(&a, &setup, len);
    std::fs::create_dir_all(&a.out).expect("output directory");
    let cost: Option<CostModel> = a.cost.as_ref().map(|p| {
        let t: CostTable =
            serde_json::from_str(&std::fs::read_to_string(p).expect("cost table")).expect("JSON");
        CostModel::new(t, a.threads).expect("cost model")
    });
    let opts = RunOptions {
        threads: a.threads,
        progress: &|_| {},
        cost: cost.as_ref(),
        positions: None,
    };
    let (ids, want, have, times) = if a.sim {
        sim_steps(&a, &setup, &dec, &opts, len)
    } else {
        run_encrypted(&a, &setup, &dec, &opts, len)
    };
    summary(&setup, &ids, &want, &have, &times);
}

/// The decoder for `len` positions, calibrated on the setup's windows (those on which the
/// polynomial model itself diverges, inputs outside its intervals, are left out and counted).
fn compile(a: &Args, setup: &Setup, len: usize) -> Decoder {
    let embed =
        |s: &Vec<usize>| -> Vec<Vec<f64>> { s.iter().map(|&i| setup.embed[i].clone()).collect() };
    let all = setup.calibration.len();
    let calib: Vec<Vec<Vec<f64>>> = (setup.calibration.iter().map(embed))
        .filter(|seq| {
            let l = setup.ir.forward_f64(seq).expect("twin");
            l.iter().flatten().all(|v| v.is_finite())
        })
        .collect();
    if calib.len() < all {
        println!(
            "calibration: {} of {all} windows left out (the polynomial model diverges on them)",
            all - calib.len()
        );
    }
    let t = Instant::now();
    let mut dopts = DecodeOptions::for_log_n(len, a.log_n, calib);
    dopts.sparse_refresh = !a.full_refresh;
    let dec = Decoder::compile(&setup.ir, &dopts).expect("compile");
    let req = dec.key_requirements().expect("keys");
    let (lay, plan) = (&dec.layout, &dec.plan);
    println!(
        "decoder compiled in {:.1} s: max_len {len}, {} slots (bootstrapping 2^{}), periods model {} / attention {} / MLP {} / vocab {}, {} cache ciphertexts per layer; per step {} bootstraps ({} ciphertexts), {} rotation keys",
        t.elapsed().as_secs_f64(),
        lay.slots,
        dec.preset.config.log_slots,
        lay.model_period,
        lay.attn_period,
        lay.hidden_period,
        lay.vocab_period,
        lay.cache_cts(),
        plan.bootstraps.len(),
        plan.bootstraps.iter().map(|b| b.ciphertexts).sum::<usize>(),
        req.rotations.len()
    );
    let bounds: Vec<String> = (plan.bounds.iter())
        .map(|(k, v)| format!("{k} 2^{}", v.log2()))
        .collect();
    println!("refresh bounds: {}", bounds.join(", "));
    dec
}

type Outcome = (Vec<usize>, Vec<Vec<f64>>, Vec<Vec<f64>>, Vec<f64>);

/// Steps on the simulation evaluator (cleartext, exact levels and counts).
fn sim_steps(a: &Args, s: &Setup, dec: &Decoder, opts: &RunOptions<'_>, len: usize) -> Outcome {
    let params = dec.params().expect("params");
    let refresh = SimRefresh::new(dec.fresh_level(&params));
    let mut cache = KvCache::new(dec);
    let (mut ids, mut xs) = (s.prompt.clone(), Vec::new());
    let (mut want, mut have, mut times) = (Vec::new(), Vec::new(), Vec::new());
    // The table prices a full-slot bootstrap; a sparse one is scaled by the measured ratio.
    let sparse = dec.preset.config.log_slots < params.max_log_slots();
    let ratio = (sparse && a.cost.is_some()).then(|| sparse_ratio(dec.preset.config.log_slots));
    if let Some(r) = ratio {
        println!(
            "sparse bootstrap (2^{} slots) / full-slot bootstrap, measured on the INSECURE N=2^12 twin: {r:.3}",
            dec.preset.config.log_slots
        );
    }
    println!("simulated steps (predicted from the cost table):");
    for pos in 0..len {
        xs.push(s.embed[ids[pos]].clone());
        let token = dec.layout.pack_token(&xs[pos]).expect("token");
        let sim = SimBackend::new(&params);
        let mut run = step_sim(dec, sim, &refresh, &mut cache, &token, opts).expect("step");
        if let Some(r) = ratio {
            scale_bootstraps(&mut run.report, r);
        }
        times.push(record(&run.report, pos, &a.out, a.cost.is_some()));
        let slots: Vec<Vec<f64>> = run.outputs.iter().map(|c| c.values.clone()).collect();
        let logits = dec.layout.unpack_logits(&slots).expect("logits");
        if pos + 1 >= ids.len() {
            ids.push(argmax(&logits));
            want.push(s.ir.forward_f64(&xs).expect("twin").pop().expect("row"));
            have.push(logits);
        }
    }
    if a.cost.is_some() {
        let steps: f64 = times[..s.prompt.len()].iter().sum();
        let whole = forward_prediction(s, dec, opts);
        println!(
            "prefill of {} tokens: {steps:.2} s by steps (cache filled) vs {whole:.2} s predicted for the whole-prompt forward (no cache)",
            s.prompt.len()
        );
    }
    (ids, want, have, times)
}

/// Multiplies the bootstrapping prediction of `report` by `ratio` (sparse bootstraps).
fn scale_bootstraps(report: &mut Report, ratio: f64) {
    for c in &mut report.components {
        if c.component == Some(Component::Bootstrap) {
            c.predicted_s = c.predicted_s.map(|p| p * ratio);
        }
    }
    report.notes.push(format!(
        "bootstrapping predicted as {ratio:.3} x the table's full-slot bootstrap (sparse slots, ratio measured at N=2^12)"
    ));
}

/// Seconds of real-pair bootstraps of the INSECURE N=2^12 twin of the 128-bit chain with
/// `2^log_slots` slots (`log_slots` capped at the ring's), `reps` runs.
fn bootstrap_seconds(log_slots: u32, reps: usize) -> Vec<f64> {
    let preset = presets::insecure_twin_of_n16(12);
    let params = preset.params.try_build().expect("params");
    let mut cfg = preset.config;
    cfg.log_slots = log_slots.min(params.max_log_slots());
    let boot = Bootstrapper::new(&params, cfg).expect("bootstrapper");
    let mut kgen = KeyGenerator::seeded(params.ring(), 1);
    let sk = kgen.gen_secret_key();
    let keys = EvaluationKeys::generate(&mut kgen, &sk, &boot.rotations(), true).expect("keys");
    let encap = cfg
        .ephemeral_weight
        .map(|h| Encapsulation::generate(&params, &sk, h, Some(2)).expect("encapsulation"));
    let eval = Evaluator::new(&params, keys);
    let encoder = Encoder::new(&params);
    let p = 1usize << cfg.log_slots;
    let x: Vec<f64> = (0..params.max_slots())
        .map(|m| ((m % p) as f64 * 0.37).sin())
        .collect();
    let pt = encoder
        .encode(&x, params.max_log_slots(), 0, params.default_scale())
        .expect("encode");
    let mut ct = Encryptor::with_secret_key(&sk)
        .encrypt(&pt)
        .expect("encrypt");
    ct.meta.log_slots = cfg.log_slots;
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            boot.bootstrap_real_pair(&eval, encap.as_ref(), &ct, &ct)
                .expect("bootstrap");
            t.elapsed().as_secs_f64()
        })
        .collect()
}

/// Median time of a sparse real-pair bootstrap over a full-slot one (3 runs each, one
/// thread: the full-slot circuit's two EvalMods would otherwise run side by side).
fn sparse_ratio(log_slots: u32) -> f64 {
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    let sparse = median(pool.install(|| bootstrap_seconds(log_slots, 3)));
    let full = median(pool.install(|| bootstrap_seconds(u32::MAX, 3)));
    println!(
        "real-pair bootstrap at N=2^12: sparse {sparse:.2} s, full {full:.2} s (medians of 3)"
    );
    sparse / full
}

/// The predicted seconds of the whole-prompt forward pass ([`CompiledModel`]) over the prompt.
fn forward_prediction(s: &Setup, dec: &Decoder, opts: &RunOptions<'_>) -> f64 {
    let n = s.prompt.len();
    let embed =
        |ids: &[usize]| -> Vec<Vec<f64>> { ids.iter().map(|&i| s.embed[i].clone()).collect() };
    let copts = CompileOptions {
        seq_len: n,
        batch: 1,
        preset: dec.preset.clone(),
        calibration: vec![embed(&s.calibration[0][..n])],
        head: psf_infer::compile::HeadPositions::All,
    };
    let m = CompiledModel::compile(&s.ir, &copts).expect("whole-prompt compile");
    let params = m.params().expect("params");
    let refresh = SimRefresh::new(m.fresh_level(&params));
    let packed = m
        .layout
        .pack(&[embed(&s.prompt)], s.ir.d_model)
        .expect("pack");
    let run = run_sim(&m, SimBackend::new(&params), &refresh, &packed, opts).expect("forward");
    run.report
        .components
        .iter()
        .filter_map(|c| c.predicted_s)
        .sum()
}

/// The encrypted run: client keys and tokens, server steps, client decryption.
fn run_encrypted(a: &Args, s: &Setup, dec: &Decoder, opts: &RunOptions<'_>, len: usize) -> Outcome {
    let params = dec.params().expect("params");
    let t = Instant::now();
    let mut kgen = KeyGenerator::seeded(params.ring(), 11);
    let sk = kgen.gen_secret_key();
    let req = dec.key_requirements().expect("keys");
    let (keys, encap) = req.generate(&params, &mut kgen, &sk, None).expect("keygen");
    let server = ServerContext::from_preset(&dec.preset, keys, encap).expect("server");
    println!(
        "keys and server context: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let client = StepClient::new(StepSpec::of(dec).expect("spec"), &params).expect("client");
    let mut enc = Encryptor::with_secret_key(&sk);
    let decryptor = Decryptor::new(&sk);
    let mut cache = KvCache::new(dec);
    let (mut ids, mut xs) = (s.prompt.clone(), Vec::new());
    let (mut want, mut have, mut times) = (Vec::new(), Vec::new(), Vec::new());
    println!("encrypted steps:");
    for pos in 0..len {
        xs.push(s.embed[ids[pos]].clone());
        let ct = client.encrypt_token(&mut enc, &xs[pos]).expect("encrypt");
        let (out, report) = step(dec, &server, &mut cache, ct, opts).expect("step");
        times.push(record(&report, pos, &a.out, false));
        let logits = client.decrypt_logits(&decryptor, &out).expect("decrypt");
        if pos + 1 >= ids.len() {
            ids.push(argmax(&logits));
            want.push(s.ir.forward_f64(&xs).expect("twin").pop().expect("row"));
            have.push(logits);
        }
    }
    (ids, want, have, times)
}

fn summary(s: &Setup, ids: &[usize], want: &[Vec<f64>], have: &[Vec<f64>], times: &[f64]) {
    let (mut max, mut se, mut n, mut agree) = (0.0f64, 0.0, 0usize, 0usize);
    for (w, h) in want.iter().zip(have) {
        for (p, q) in w.iter().zip(h) {
            max = max.max((p - q).abs());
            se += (p - q) * (p - q);
            n += 1;
        }
        agree += usize::from(argmax(w) == argmax(h));
    }
    let text: String = ids.iter().map(|&i| (s.name)(i)).collect();
    println!("tokens: {ids:?}\ntext: {text:?}");
    println!(
        "logits vs the f64 twin over {} steps: max abs error {max:.3e}, MSE {:.3e}, top-1 {agree}/{}",
        want.len(),
        se / n.max(1) as f64,
        want.len()
    );
    let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
    println!(
        "per-token latency: mean {mean:.2} s over {} steps (first {:.2} s, last {:.2} s)",
        times.len(),
        times.first().copied().unwrap_or(0.0),
        times.last().copied().unwrap_or(0.0)
    );
}
