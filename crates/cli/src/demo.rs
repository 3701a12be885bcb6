//! `psformer demo`: the shipped Power-Softmax model (`models/demo`) predicts the next token
//! of a prompt over CKKS-encrypted data, end to end on 128-bit parameters.
//!
//! Client: tokenizes and embeds the prompt (the embedding table is the public part of the
//! model the client runs), generates its keys from OS randomness and encrypts. Server: the
//! compiled polynomial model (`psf_infer`) on the ciphertexts, with bootstrapping. Client:
//! decrypts the logits and compares them with the plaintext polynomial model (what the
//! circuit computes, in f64) and the unapproximated Power-Softmax model.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use psf_circuits::cost::{CostModel, CostTable};
use psf_ckks::{Decryptor, Encryptor, KeyGenerator, PrecisionStats};
use psf_infer::client::{Client, ClientSpec};
use psf_infer::runtime::{RunOptions, ServerContext, SimRefresh, forward, run_sim};
use psf_infer::{CompileOptions, CompiledModel, ModelIr, Report};
use psf_poly::{Matrix, Mode, PolyModel, PolySpec, PolyWeights};
use serde::Serialize;

use crate::demo_text::{DemoText, top_k};

/// The prompt used when none is given.
pub const DEFAULT_PROMPT: &str = "\"I am sure,\" said Elizabeth, \"that I never";

/// Arguments of `demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// The prompt (tokenized with the model's `tokenizer.json`).
    #[arg(long, default_value = DEFAULT_PROMPT)]
    prompt: String,
    /// Model directory: `config.json`, `model.safetensors`, `tokenizer.json`, `poly.json`
    /// (the PolySpec) and `calibration.txt`. Default: the shipped `models/demo`.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Ring degree `2^log_n`: 16 is the 128-bit bootstrapping set; 12 its INSECURE test twin.
    #[arg(long, default_value_t = 16)]
    log_n: u32,
    /// Threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Next-token candidates to print.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// A measured cost table (`psformer bench costs`): prints the cost model's prediction per
    /// component next to the measurement.
    #[arg(long)]
    costs: Option<PathBuf>,
    /// Stop after compiling: simulated run priced by `--costs` (no keys, no encryption).
    #[arg(long)]
    predict_only: bool,
    /// Output directory: `report.json`, `report.png`, `demo.json`.
    #[arg(long, default_value = "target/demo")]
    out: PathBuf,
}

/// What `demo.json` holds.
#[derive(Serialize)]
struct DemoResult {
    prompt: String,
    tokens: usize,
    parameters: String,
    secure_128: bool,
    keygen_s: f64,
    evaluation_keys_mib: f64,
    encrypt_s: f64,
    server_s: f64,
    decrypt_s: f64,
    total_s: f64,
    encrypted_top: Vec<(String, f64)>,
    polynomial_top: Vec<(String, f64)>,
    exact_top: Vec<(String, f64)>,
    agreement: Agreement,
}

/// Decrypted logits against the plaintext polynomial model, over every position.
#[derive(Serialize)]
struct Agreement {
    max_abs_err: f64,
    mse: f64,
    min_bits: f64,
    mean_bits: f64,
    same_top1_positions: usize,
    positions: usize,
}

/// The default model directory: `models/demo` under the working directory, else the one of
/// the source tree the binary was built from.
fn default_model_dir() -> PathBuf {
    let here = PathBuf::from("models/demo");
    if here.join("config.json").exists() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/demo")
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let dir = args.model.clone().unwrap_or_else(default_model_dir);
    let weights = PolyWeights::from_dir(&dir)
        .with_context(|| format!("loading the model in {}", dir.display()))?;
    let spec = PolySpec::from_file(dir.join("poly.json"))
        .with_context(|| format!("reading {}", dir.join("poly.json").display()))?;
    let poly = PolyModel::new(weights, spec)?;
    let text = DemoText::load(&dir, poly.weights().config.max_position_embeddings)?;
    let ids = text.encode(&args.prompt)?;
    println!(
        "model {} ({} layers, d = {}, Power-Softmax p = {}), prompt: {:?} ({} tokens)",
        dir.display(),
        poly.weights().layers.len(),
        poly.weights().config.hidden_size,
        poly.spec().p,
        args.prompt,
        ids.len()
    );

    // Client: the plaintext polynomial model on the prompt tells whether every approximated
    // input stays inside its interval (outside, the polynomials - and the encrypted result -
    // are not the model any more).
    let want = poly.forward_ids(&ids, Mode::Polynomial)?;
    let outside = want.out_of_range.outside();
    if outside > 0 || want.logits.data.iter().any(|v| !v.is_finite()) {
        println!(
            "warning: on this prompt {outside} of {} approximated inputs fall outside their calibrated intervals; expect the encrypted result to differ from the model",
            want.out_of_range.total()
        );
    }
    let want = want.logits;

    // Server: compile the model for the prompt length (public) on calibration text.
    let t = Instant::now();
    let ir = ModelIr::from_poly(&poly)?;
    let calibration = vec![rows(&poly.weights().embed(&text.calibration(ids.len())?)?)];
    let opts = CompileOptions::for_log_n(ids.len(), 1, args.log_n, calibration);
    let m = CompiledModel::compile(&ir, &opts)?;
    let params = m.params()?;
    let req = m.key_requirements()?;
    let ring = params.ring();
    println!(
        "compiled for {} (N = 2^{}, log QP = {:.0}, {}) in {:.1} s: {} bootstraps ({} ciphertexts), {} rotation keys",
        ring.name(),
        ring.log_n(),
        ring.log_qp(),
        if ring.is_secure() {
            "128-bit secure"
        } else {
            "INSECURE test size"
        },
        t.elapsed().as_secs_f64(),
        m.plan.bootstraps.len(),
        m.plan
            .bootstraps
            .iter()
            .map(|b| b.ciphertexts)
            .sum::<usize>(),
        req.rotations.len()
    );
    let cost = load_costs(args)?;
    let x = vec![rows(&poly.weights().embed(&ids)?)];
    if args.predict_only {
        let refresh = SimRefresh::new(m.fresh_level(&params));
        let packed = m.layout.pack(&x, ir.d_model)?;
        let run = run_options(args, cost.as_ref(), &|_| {});
        let r = run_sim(
            &m,
            psf_circuits::SimBackend::new(&params),
            &refresh,
            &packed,
            &run,
        )?;
        return save_report(&r.report, &args.out);
    }

    // Client: keys from OS randomness, encryption of the embeddings.
    let t = Instant::now();
    let mut kgen = KeyGenerator::new(ring);
    let sk = kgen.gen_secret_key();
    let (keys, encapsulation) = req.generate(&params, &mut kgen, &sk, None)?;
    let keygen_s = t.elapsed().as_secs_f64();
    let keys_mib = keys.size_bytes() as f64 / 1048576.0;
    println!("client: key generation {keygen_s:.1} s (evaluation keys {keys_mib:.0} MiB)");
    let t = Instant::now();
    let client = Client::new(ClientSpec::of(&m)?, &params)?;
    let cts = client.encrypt_embeddings(&mut Encryptor::with_secret_key(&sk), &x)?;
    let encrypt_s = t.elapsed().as_secs_f64();

    // Server: the encrypted forward pass.
    let server = ServerContext::new(&m, keys, encapsulation)?;
    let bar = crate::timing::stage_bar(m.plan.stages as u64);
    let progress = |p: &psf_infer::runtime::Progress| {
        bar.set_position(p.done as u64);
        bar.set_message(p.stage.clone());
    };
    let (out, report) = forward(
        &m,
        &server,
        cts,
        &run_options(args, cost.as_ref(), &progress),
    )?;
    bar.finish_and_clear();
    let server_s = report.total_s;

    // Client: decrypt every position, compare with the plaintext models.
    let t = Instant::now();
    let positions: Vec<(usize, usize)> = (0..ids.len()).map(|p| (0, p)).collect();
    let have = client.decrypt_logits(&Decryptor::new(&sk), &out, &positions)?;
    let decrypt_s = t.elapsed().as_secs_f64();
    let exact = poly.forward_ids(&ids, Mode::Exact)?.logits;
    let last = ids.len() - 1;
    let res = DemoResult {
        prompt: args.prompt.clone(),
        tokens: ids.len(),
        parameters: ring.name().to_string(),
        secure_128: ring.is_secure(),
        keygen_s,
        evaluation_keys_mib: keys_mib,
        encrypt_s,
        server_s,
        decrypt_s,
        total_s: start.elapsed().as_secs_f64(),
        encrypted_top: text.named(&top_k(&have[last], args.top))?,
        polynomial_top: text.named(&top_k(want.row(last), args.top))?,
        exact_top: text.named(&top_k(exact.row(last), args.top))?,
        agreement: compare(&want, &have),
    };
    print_result(&res, &report);
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(
        args.out.join("demo.json"),
        serde_json::to_string_pretty(&res)?,
    )?;
    save_report(&report, &args.out)
}

fn run_options<'a>(
    args: &DemoArgs,
    cost: Option<&'a CostModel>,
    progress: &'a (dyn Fn(&psf_infer::runtime::Progress) + Sync),
) -> RunOptions<'a> {
    RunOptions {
        threads: args.threads,
        progress,
        cost,
        positions: None,
    }
}

fn load_costs(args: &DemoArgs) -> anyhow::Result<Option<CostModel>> {
    let Some(path) = &args.costs else {
        return Ok(None);
    };
    let table: CostTable = serde_json::from_str(
        &std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("parsing {}", path.display()))?;
    Ok(Some(CostModel::new(table, args.threads)?))
}

/// A matrix as `[position][feature]`.
fn rows(m: &Matrix) -> Vec<Vec<f64>> {
    (0..m.rows).map(|i| m.row(i).to_vec()).collect()
}

/// Decrypted logits against the plaintext polynomial model, every position.
fn compare(want: &Matrix, have: &[Vec<f64>]) -> Agreement {
    let argmax = |v: &[f64]| (0..v.len()).max_by(|&i, &j| v[i].total_cmp(&v[j]));
    let (mut w, mut h) = (Vec::new(), Vec::new());
    let mut same = 0;
    for (i, row) in have.iter().enumerate() {
        w.extend_from_slice(want.row(i));
        h.extend_from_slice(row);
        same += usize::from(argmax(want.row(i)) == argmax(row));
    }
    let stats = PrecisionStats::from_real(&w, &h);
    let mse = w.iter().zip(&h).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / w.len().max(1) as f64;
    Agreement {
        max_abs_err: stats.max_abs_err,
        mse,
        min_bits: stats.min_bits,
        mean_bits: stats.mean_bits,
        same_top1_positions: same,
        positions: have.len(),
    }
}

fn print_result(r: &DemoResult, report: &Report) {
    println!("\nnext token after {:?}:", r.prompt);
    println!("| rank | encrypted (decrypted) | plaintext polynomial model | exact Power-Softmax |");
    println!("|---:|---|---|---|");
    for i in 0..r.encrypted_top.len() {
        let cell = |v: &[(String, f64)]| {
            v.get(i)
                .map_or(String::new(), |(t, l)| format!("{t:?} {l:.3}"))
        };
        println!(
            "| {} | {} | {} | {} |",
            i + 1,
            cell(&r.encrypted_top),
            cell(&r.polynomial_top),
            cell(&r.exact_top)
        );
    }
    let a = &r.agreement;
    println!(
        "\nencrypted vs plaintext polynomial model, all {} positions: max abs error {:.2e}, MSE {:.2e}, precision min {:.1} / mean {:.1} bits, same top-1 at {}/{} positions",
        a.positions,
        a.max_abs_err,
        a.mse,
        a.min_bits,
        a.mean_bits,
        a.same_top1_positions,
        a.positions
    );
    println!("\n{}", report.table());
    println!(
        "client: keygen {:.1} s, encrypt {:.2} s, decrypt {:.2} s; server {:.1} s; total {:.1} s ({})",
        r.keygen_s,
        r.encrypt_s,
        r.decrypt_s,
        r.server_s,
        r.total_s,
        if r.secure_128 {
            "128-bit parameters"
        } else {
            "INSECURE test parameters"
        }
    );
}

fn save_report(report: &Report, out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    report.write_json(out.join("report.json"))?;
    psf_infer::chart::write_png(report, out.join("report.png"))?;
    if report.backend == "simulation" {
        println!("{}", report.table());
    }
    println!("wrote {} (report.json, report.png)", out.display());
    Ok(())
}
