//! End-to-end encrypted forward pass of a random polynomial model of a given shape (default:
//! the Pythia-70M shape, 6 blocks, d = 512, 8 heads, MLP 2048, 128 tokens), with the latency
//! breakdown (JSON + PNG) and the cost model's prediction per component.
//!
//! ```text
//! # plan + simulated counts priced by the measured N=2^16 table (no encryption):
//! cargo run --release -p psf-infer --example encrypted_forward -- --log-n 16 --sim \
//!     --cost crates/circuits/costs/n16_boot.json --out target-infer/pythia70m
//! # encrypted, 128-bit (N=2^16 bootstrapping chain); needs a quiet machine and ~20+ GiB:
//! cargo run --release -p psf-infer --example encrypted_forward -- --log-n 16 \
//!     --cost crates/circuits/costs/n16_boot.json --out target-infer/pythia70m
//! # encrypted, INSECURE N=2^12 twin, small shape (seconds to minutes):
//! cargo run --release -p psf-infer --example encrypted_forward -- --log-n 12 --layers 1 \
//!     --d 64 --heads 2 --mlp 128 --vocab 64 --seq-len 32 --out target-infer/small
//! ```
//! The vocabulary defaults to 512 (the LM head of Pythia's 50k vocabulary on every position
//! would be 197 output ciphertexts; `--vocab 50304 --last` computes the last position's
//! logits only, 2 output ciphertexts).

use std::time::Instant;

use clap::Parser;

use psf_approx::{Chebyshev, InvSqrtRecipe, InverseMethod, ReciprocalRecipe};
use psf_circuits::SimBackend;
use psf_circuits::cost::{CostModel, CostTable};
use psf_ckks::{Decryptor, Encryptor, KeyGenerator};
use psf_infer::client::{Client, ClientSpec};
use psf_infer::model::{Attention, Block, Linear, Mlp, ModelIr, Norm, NormKind, Rope};
use psf_infer::runtime::{RunOptions, ServerContext, SimRefresh, forward, run_sim};
use psf_infer::{CompileOptions, CompiledModel, HeadPositions, Report};

/// Command-line options (the shape defaults to Pythia-70M's, see the module docs).
#[derive(Parser)]
struct Args {
    /// `log2` of the ring degree (16: 128-bit; 12: the INSECURE twin).
    #[arg(long, default_value_t = 16)]
    log_n: u32,
    /// Blocks.
    #[arg(long, default_value_t = 6)]
    layers: usize,
    /// Model width.
    #[arg(long, default_value_t = 512)]
    d: usize,
    /// Attention heads.
    #[arg(long, default_value_t = 8)]
    heads: usize,
    /// MLP width.
    #[arg(long, default_value_t = 2048)]
    mlp: usize,
    /// Vocabulary.
    #[arg(long, default_value_t = 512)]
    vocab: usize,
    /// Tokens of the prompt.
    #[arg(long, default_value_t = 128)]
    seq_len: usize,
    /// Simulate and price the circuit instead of encrypting.
    #[arg(long)]
    sim: bool,
    /// Logits of the last position only (`HeadPositions::Last`).
    #[arg(long)]
    last: bool,
    /// Cost table (JSON) for the prediction.
    #[arg(long)]
    cost: Option<String>,
    /// Output directory of the report.
    #[arg(long, default_value = "target-infer/encrypted_forward")]
    out: String,
    /// Threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
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
    Linear::new(
        rows,
        cols,
        w,
        Some((0..rows).map(|_| lcg(s) * 0.1).collect()),
    )
    .unwrap()
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

/// A NeoX-layout model with random weights and the approximation recipes of the tests.
fn model(a: &Args) -> ModelIr {
    let mut s = 5u64;
    let dh = a.d / a.heads;
    let act = Chebyshev::interpolate(psf_approx::gelu_exact, -8.0, 8.0, 15);
    let blocks = (0..a.layers)
        .map(|_| Block {
            norm1: norm(a.d),
            norm2: norm(a.d),
            attn: Attention {
                heads: a.heads,
                kv_heads: a.heads,
                head_dim: dh,
                q: linear(&mut s, a.d, a.d),
                k: linear(&mut s, a.d, a.d),
                v: linear(&mut s, a.d, a.d),
                o: linear(&mut s, a.d, a.d),
                rope: Some(Rope {
                    rotary_dim: dh / 4,
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
                up: linear(&mut s, a.mlp, a.d),
                down: linear(&mut s, a.d, a.mlp),
                act: act.clone(),
            },
            parallel_residual: true,
        })
        .collect();
    ModelIr {
        d_model: a.d,
        blocks,
        final_norm: norm(a.d),
        lm_head: linear(&mut s, a.vocab, a.d),
    }
}

fn prompts(a: &Args, seed: u64) -> Vec<Vec<Vec<f64>>> {
    let mut s = seed;
    vec![
        (0..a.seq_len)
            .map(|_| (0..a.d).map(|_| lcg(&mut s)).collect())
            .collect(),
    ]
}

fn save(report: &Report, out: &str) {
    std::fs::create_dir_all(out).unwrap();
    report.write_json(format!("{out}/report.json")).unwrap();
    if let Err(e) = psf_infer::chart::write_png(report, format!("{out}/report.png")) {
        eprintln!("chart: {e}");
    }
    println!("{}", report.table());
    println!("wrote {out}/report.json and report.png");
}

fn main() {
    let a = Args::parse();
    let ir = model(&a);
    let t = Instant::now();
    let mut opts = CompileOptions::for_log_n(a.seq_len, 1, a.log_n, prompts(&a, 1));
    if a.last {
        opts.head = HeadPositions::Last;
    }
    let m = CompiledModel::compile(&ir, &opts).expect("compile");
    let params = m.params().unwrap();
    let req = m.key_requirements().unwrap();
    println!(
        "compiled in {:.1} s: {} bootstraps ({} ciphertexts), {} rotation keys, \
         {:.0} MiB of evaluation keys",
        t.elapsed().as_secs_f64(),
        m.plan.bootstraps.len(),
        m.plan
            .bootstraps
            .iter()
            .map(|b| b.ciphertexts)
            .sum::<usize>(),
        req.rotations.len(),
        req.key_material_bytes(&params) as f64 / (1u64 << 20) as f64
    );
    let table: Option<CostModel> = a.cost.as_ref().map(|p| {
        let t: CostTable = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        CostModel::new(t, a.threads).unwrap()
    });
    let progress = |p: &psf_infer::runtime::Progress| {
        eprintln!("{} ({}/{}) {:.1} s", p.stage, p.done, p.total, p.elapsed_s)
    };
    let run = RunOptions {
        threads: a.threads,
        progress: &progress,
        cost: table.as_ref(),
        positions: None,
    };
    let x = prompts(&a, 2);
    if a.sim {
        let refresh = SimRefresh::new(m.fresh_level(&params));
        let packed = m.layout.pack(&x, a.d).unwrap();
        let r = run_sim(&m, SimBackend::new(&params), &refresh, &packed, &run).unwrap();
        save(&r.report, &a.out);
        return;
    }
    let mut kgen = KeyGenerator::seeded(params.ring(), 11);
    let sk = kgen.gen_secret_key();
    let (keys, encap) = req.generate(&params, &mut kgen, &sk, Some(12)).unwrap();
    let client = Client::new(ClientSpec::of(&m).unwrap(), &params).unwrap();
    let cts = client
        .encrypt_embeddings(&mut Encryptor::with_secret_key(&sk).seeded(13), &x)
        .unwrap();
    let server = ServerContext::new(&m, keys, encap).unwrap();
    let (out, mut report) = forward(&m, &server, cts, &run).unwrap();
    let first = if a.last { a.seq_len - 1 } else { 0 };
    let positions: Vec<(usize, usize)> = (first..a.seq_len).map(|p| (0, p)).collect();
    let have = client
        .decrypt_logits(&Decryptor::new(&sk), &out, &positions)
        .unwrap();
    let want = ir.forward_f64(&x[0]).unwrap().split_off(first);
    let (mut max, mut se, mut n, mut agree) = (0.0f64, 0.0, 0usize, 0usize);
    let argmax = |v: &[f64]| (0..v.len()).max_by(|&i, &j| v[i].total_cmp(&v[j])).unwrap();
    for (w, h) in want.iter().zip(&have) {
        for (p, q) in w.iter().zip(h) {
            max = max.max((p - q).abs());
            se += (p - q) * (p - q);
            n += 1;
        }
        agree += usize::from(argmax(w) == argmax(h));
    }
    let note = format!(
        "vs f64 twin: max abs error {max:.3e}, MSE {:.3e}, top-1 {agree}/{}",
        se / n as f64,
        want.len()
    );
    println!("{note}");
    report.notes.push(note);
    save(&report, &a.out);
}
