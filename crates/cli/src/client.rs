//! `psformer infer` (the whole client flow against a server in one command: the encrypted
//! language model with `--model`, the probe layer otherwise) and `psformer client ...` (its
//! steps on files: a key directory in the layout of `psformer keygen`, session ids,
//! ciphertexts).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use psf_circuits::bootstrap::Encapsulation;
use psf_ckks::serialization::{WireDecode, WireEncode, WireEncodeSecret};
use psf_ckks::{CkksParameters, EvaluationKeys, PrecisionStats};
use psf_service::{Client, ClientKeys, ModelClient, Probe, ProbeSpec, SessionMode};

use tokenizers::Tokenizer;

use crate::keys_cmd::write_secret;

/// Arguments of `infer`.
#[derive(clap::Args)]
pub struct InferArgs {
    /// Server URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Model: the client's copy of the served model directory (its embedding table is looked
    /// up here; its fingerprint must match the server's).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Model: a prompt (repeat for several, up to the server's batch); longer prompts keep
    /// their last tokens.
    #[arg(long)]
    prompt: Vec<String>,
    /// Model: tokenizer (default: the model's tokenizer.json, else models/demo/tokenizer.json).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Model: next-token candidates shown per prompt.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Model: writes the job's latency report (JSON) here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Model: generate this many tokens after the (first) prompt, one encrypted `step` at a
    /// time with the server's encrypted KV cache, instead of one forward pass.
    #[arg(long, default_value_t = 0)]
    generate: usize,
    /// Probe: input values (comma separated; repeated over the slots).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    values: Vec<f64>,
    /// Probe: also run this many `step`s (the encrypted cache), each on the same input.
    #[arg(long, default_value_t = 0)]
    steps: usize,
}

/// `client` subcommands.
#[derive(clap::Subcommand)]
pub enum ClientCommand {
    /// Prints the server's parameters, workload, key needs and limits.
    Info(ServerArg),
    /// Generates a key directory for the server's parameters and workload (a model's
    /// encapsulation keys go to encapsulation.keys).
    Keygen {
        #[command(flatten)]
        server: ServerArg,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Opens a session by uploading a key directory's eval.keys (in several uploads if the
    /// server's limit needs) and encapsulation.keys if present; prints the session id.
    Session {
        #[command(flatten)]
        server: ServerArg,
        /// Key directory.
        #[arg(long)]
        keys: PathBuf,
    },
    /// Sends a ciphertext file to `forward` (or `step`) and writes the answer.
    Run {
        #[command(flatten)]
        server: ServerArg,
        /// Key directory (for the parameters).
        #[arg(long)]
        keys: PathBuf,
        /// Session id.
        #[arg(long)]
        session: String,
        /// Input ciphertext (from `psformer encrypt`).
        #[arg(long)]
        input: PathBuf,
        /// Output ciphertext (for `psformer decrypt`).
        #[arg(long)]
        out: PathBuf,
        /// Run a `step` (extends the encrypted cache) instead of `forward`.
        #[arg(long)]
        step: bool,
    },
    /// Closes a session.
    Close {
        #[command(flatten)]
        server: ServerArg,
        /// Session id.
        #[arg(long)]
        session: String,
    },
}

/// The server to talk to.
#[derive(clap::Args)]
pub struct ServerArg {
    /// Server URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Runs a `client` subcommand.
pub fn client(cmd: &ClientCommand) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        match cmd {
            ClientCommand::Info(s) => {
                let info = Client::new(&s.server).info().await?;
                println!("{}", serde_json::to_string_pretty(&info)?);
            }
            ClientCommand::Keygen { server, out } => {
                keygen(&Client::new(&server.server), out).await?
            }
            ClientCommand::Session { server, keys } => {
                let params = load_params(keys)?;
                let evk = EvaluationKeys::from_bytes(&read(keys, "eval.keys")?, &params)
                    .context("eval.keys")?;
                let encap = match keys.join("encapsulation.keys").is_file() {
                    true => Some(
                        Encapsulation::from_bytes(&read(keys, "encapsulation.keys")?, &params)
                            .context("encapsulation.keys")?,
                    ),
                    false => None,
                };
                let created = Client::new(&server.server)
                    .open_session(&evk, encap.as_ref(), SessionMode::Forward)
                    .await?;
                anyhow::ensure!(created.keys.ready, "keys missing: {:?}", created.keys);
                println!("{}", created.session_id);
            }
            ClientCommand::Run {
                server,
                keys,
                session,
                input,
                out,
                step,
            } => {
                let params = load_params(keys)?;
                let ct = psf_ckks::Ciphertext::from_bytes(&std::fs::read(input)?, &params)
                    .with_context(|| format!("decoding {}", input.display()))?;
                let c = Client::new(&server.server);
                let t = Instant::now();
                let answer = match step {
                    true => c.step(session, &params, &[ct]).await?,
                    false => c.forward(session, &params, &[ct]).await?,
                };
                let first = answer.outputs.first().context("empty answer")?;
                std::fs::write(out, first.to_bytes())?;
                println!(
                    "answer in {:.3} s written to {}",
                    t.elapsed().as_secs_f64(),
                    out.display()
                );
            }
            ClientCommand::Close { server, session } => {
                Client::new(&server.server).close_session(session).await?;
                println!("closed");
            }
        }
        Ok(())
    })
}

fn read(dir: &Path, file: &str) -> anyhow::Result<Vec<u8>> {
    let path = dir.join(file);
    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
}

fn load_params(dir: &Path) -> anyhow::Result<CkksParameters> {
    CkksParameters::from_bytes(&read(dir, "params.bin")?).context("params.bin")
}

async fn keygen(c: &Client, out: &Path) -> anyhow::Result<()> {
    let (info, params) = (c.info().await?, c.params().await?);
    let t = Instant::now();
    let keys = match info.workload.as_str() {
        "model" => ClientKeys::for_model(&params, &ModelClient::spec_of(&info)?.keys, None)?,
        _ => ClientKeys::generate(&params, &info.keys, None)?,
    };
    std::fs::create_dir_all(out)?;
    if let Some(enc) = keys.encapsulation() {
        std::fs::write(out.join("encapsulation.keys"), enc.to_bytes())?;
    }
    std::fs::write(out.join("params.bin"), params.to_bytes())?;
    write_secret(
        &out.join("secret.key"),
        &keys.secret_key().to_bytes_secret(),
    )?;
    std::fs::write(out.join("public.key"), keys.public_key().to_bytes())?;
    let evk = keys.evaluation_keys().to_bytes();
    std::fs::write(out.join("eval.keys"), &evk)?;
    println!(
        "{}: keys for '{}' in {:.2} s; eval.keys {:.1} MiB; written to {}",
        params.ring().name(),
        info.workload,
        t.elapsed().as_secs_f64(),
        evk.len() as f64 / 1048576.0,
        out.display()
    );
    Ok(())
}

/// Runs `infer`: keys, session, encrypted forward (and steps), decryption, and the comparison
/// with the f64 twin (the model's `PolyModel`, or the server's public probe layer).
pub fn infer(args: &InferArgs) -> anyhow::Result<()> {
    if let Some(dir) = &args.model {
        return runtime()?.block_on(infer_model(args, dir));
    }
    anyhow::ensure!(
        !args.values.is_empty(),
        "give --values (or --model and --prompt)"
    );
    runtime()?.block_on(async {
        let c = Client::new(&args.server);
        let (info, params) = (c.info().await?, c.params().await?);
        anyhow::ensure!(info.workload == "probe", "workload {} is not supported here", info.workload);
        let spec: ProbeSpec = serde_json::from_value(info.workload_spec.clone())?;
        let probe = Probe::new(spec.clone(), params.max_slots())?;
        let mut x = args.values.clone();
        x.resize(spec.dim, 0.0);
        let t = Instant::now();
        let keys = ClientKeys::generate(&params, &info.keys, None)?;
        let t_keys = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let id = c.create_session(&keys).await?.session_id;
        let t_upload = t.elapsed().as_secs_f64();
        let ct = keys.encrypt_replicated(&x)?;
        let t = Instant::now();
        let out = c.forward(&id, &params, std::slice::from_ref(&ct)).await?;
        let t_forward = t.elapsed().as_secs_f64();
        let got = keys.decrypt(out.outputs.first().context("empty answer")?)?;
        report("forward", &probe.forward_f64(&x), &got, spec.dim);
        let mut steps = Vec::new();
        for i in 0..args.steps {
            steps.push(x.clone());
            let out = c.step(&id, &params, std::slice::from_ref(&ct)).await?;
            let got = keys.decrypt(out.outputs.first().context("empty answer")?)?;
            report(&format!("step {i}"), &probe.step_f64(&steps), &got, spec.dim);
        }
        c.close_session(&id).await?;
        println!(
            "{}: keygen {t_keys:.2} s, session (key upload) {t_upload:.2} s, forward {t_forward:.2} s",
            params.ring().name()
        );
        Ok(())
    })
}

fn report(what: &str, twin: &[f64], slots: &[f64], d: usize) {
    let want: Vec<f64> = (0..slots.len()).map(|j| twin[j % d]).collect();
    let stats = PrecisionStats::from_real(&want, slots);
    let shown: Vec<String> = slots
        .iter()
        .take(d.min(8))
        .map(|v| format!("{v:.5}"))
        .collect();
    println!(
        "{what}: [{}] vs f64 twin: {:.1} min / {:.1} mean bits",
        shown.join(", "),
        stats.min_bits,
        stats.mean_bits
    );
}

/// Prompts as token ids, each keeping its last `seq_len` tokens.
fn tokenize(
    tk: &tokenizers::Tokenizer,
    prompts: &[String],
    seq_len: usize,
) -> anyhow::Result<Vec<Vec<u32>>> {
    prompts
        .iter()
        .map(|p| {
            let ids = psf_model::data::tokenizer::encode(tk, p)?;
            anyhow::ensure!(!ids.is_empty(), "an empty prompt");
            Ok(ids[ids.len().saturating_sub(seq_len)..].to_vec())
        })
        .collect()
}

/// The `k` largest logits as `(token text, logit)`.
fn top_k(tk: &tokenizers::Tokenizer, logits: &[f64], k: usize) -> Vec<(String, f64)> {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    order
        .into_iter()
        .take(k)
        .map(|i| {
            let text = psf_model::data::tokenizer::decode(tk, &[i as u32]).unwrap_or_default();
            (text, logits[i])
        })
        .collect()
}

/// The server's model as a client sees it: the connection, its info and parameters, the
/// tokenizer, a [`ModelClient`] with fresh keys for one session mode, and the seconds key
/// generation took.
struct OpenModel {
    client: Client,
    info: psf_service::api::ServerInfo,
    params: CkksParameters,
    tokenizer: Tokenizer,
    model: ModelClient,
    keygen_s: f64,
}

async fn open_model(args: &InferArgs, dir: &Path, mode: SessionMode) -> anyhow::Result<OpenModel> {
    let client = Client::new(&args.server);
    let (info, params) = (client.info().await?, client.params().await?);
    let tokenizer = psf_model::data::tokenizer::load(&crate::serve::tokenizer_path(
        dir,
        args.tokenizer.as_ref(),
    )?)?;
    let t = Instant::now();
    let model = ModelClient::open(&info, &params, dir, mode, None)?;
    Ok(OpenModel {
        client,
        info,
        params,
        tokenizer,
        model,
        keygen_s: t.elapsed().as_secs_f64(),
    })
}

/// `infer --model`: keys for the server's compiled model, a session (keys uploaded in parts),
/// the prompts looked up and encrypted here, the encrypted forward pass on the server, the
/// logits at each prompt's last position decrypted and compared with the local `PolyModel`.
async fn infer_model(args: &InferArgs, dir: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(!args.prompt.is_empty(), "give --prompt");
    if args.generate > 0 {
        return generate(args, dir).await;
    }
    let OpenModel {
        client: c,
        params,
        tokenizer: tk,
        model: mut mc,
        keygen_s: t_keys,
        ..
    } = open_model(args, dir, SessionMode::Forward).await?;
    let spec = mc.spec().clone();
    let prompts = tokenize(&tk, &args.prompt, spec.seq_len)?;
    let t = Instant::now();
    let created = c.create_session(mc.keys()).await?;
    let t_upload = t.elapsed().as_secs_f64();
    mc.forget_uploaded_keys();
    let cts = mc.encrypt(&prompts, None)?;
    let t = Instant::now();
    let out = match mc.positions(&prompts)? {
        Some(p) => c.forward_at(&created.session_id, &params, &cts, &p).await?,
        None => c.forward(&created.session_id, &params, &cts).await?,
    };
    let t_forward = t.elapsed().as_secs_f64();
    let logits = mc.decrypt_last(&out.outputs, &prompts)?;
    c.close_session(&created.session_id).await?;

    let poly = psf_poly::PolyModel::new(
        mc.weights().clone(),
        psf_poly::PolySpec::from_file(dir.join("poly.json"))?,
    )?;
    for ((text, ids), have) in args.prompt.iter().zip(&prompts).zip(&logits) {
        let twin = poly.forward_ids(ids, psf_poly::Mode::Polynomial)?;
        let want = twin.logits.row(ids.len() - 1);
        let err = want
            .iter()
            .zip(have)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        let (top, twin_top) = (top_k(&tk, have, args.top), top_k(&tk, want, 1));
        println!("prompt: {text:?} ({} tokens)", ids.len());
        let shown: Vec<String> = top.iter().map(|(t, l)| format!("{t:?} {l:.3}")).collect();
        println!("  next token (encrypted): {}", shown.join(", "));
        println!(
            "  vs PolyModel: same top-1 {}, max |logit error| {err:.2e}",
            top.first().map(|t| &t.0) == twin_top.first().map(|t| &t.0)
        );
    }
    if let Some(report) = &out.result.report {
        println!("{}", report.table());
        if let Some(path) = &args.report {
            report.write_json(path)?;
        }
    }
    println!(
        "{} on {}: keygen {t_keys:.1} s, key upload {t_upload:.1} s ({:.2} GiB), \
         forward {t_forward:.1} s (server job {:.1} s)",
        spec.name,
        params.ring().name(),
        created.key_bytes as f64 / f64::from(1 << 30),
        out.result.seconds
    );
    Ok(())
}

/// `infer --model --generate N`: a `step` session; the prompt's tokens are stepped into the
/// server's encrypted KV cache one by one, then `N` tokens are generated greedily (the client
/// decrypts each step's logits, picks the argmax and encrypts its embedding); each step is
/// compared with the local `PolyModel` on the same prefix.
async fn generate(args: &InferArgs, dir: &Path) -> anyhow::Result<()> {
    let OpenModel {
        client: c,
        info,
        params,
        tokenizer: tk,
        model: mut mc,
        keygen_s: t_keys,
    } = open_model(args, dir, SessionMode::Step).await?;
    let max_len = mc
        .spec()
        .step
        .as_ref()
        .map(|s| s.client.layout.max_len)
        .context("the server compiled no decoder")?;
    let mut tokens = tokenize(&tk, &args.prompt[..1], max_len)?.remove(0);
    let total = (tokens.len() + args.generate).min(max_len);
    let t = Instant::now();
    let created = c.create_session_with(mc.keys(), SessionMode::Step).await?;
    let t_upload = t.elapsed().as_secs_f64();
    mc.forget_uploaded_keys();
    let poly = psf_poly::PolyModel::new(
        mc.weights().clone(),
        psf_poly::PolySpec::from_file(dir.join("poly.json"))?,
    )?;
    let (mut agree, mut worst, mut server_s, mut answers) = (0usize, 0.0f64, 0.0f64, 0usize);
    let t = Instant::now();
    let (mut pos, mut last_report) = (0, None);
    while pos < total {
        // The prompt goes in as one job (a prefill, up to the server's batch limit), each
        // generated token as its own step.
        let take = match pos < tokens.len() {
            true => (tokens.len() - pos).min(info.limits.max_batch),
            false => 1,
        };
        let cts = tokens[pos..pos + take]
            .iter()
            .map(|&tok| mc.encrypt_token(tok, None))
            .collect::<psf_service::Result<Vec<_>>>()?;
        let out = c.step(&created.session_id, &params, &cts).await?;
        pos += take;
        server_s += out.result.seconds;
        last_report = out.result.report.clone();
        let logits = mc.decrypt_step(&out.outputs)?;
        let twin = poly.forward_ids(&tokens[..pos], psf_poly::Mode::Polynomial)?;
        let want = twin.logits.row(pos - 1);
        let (top, twin_top) = (top_k(&tk, &logits, 1), top_k(&tk, want, 1));
        agree += usize::from(top.first().map(|t| &t.0) == twin_top.first().map(|t| &t.0));
        answers += 1;
        worst = want
            .iter()
            .zip(&logits)
            .map(|(a, b)| (a - b).abs())
            .fold(worst, f64::max);
        if pos >= tokens.len() && pos < total {
            let next = (0..logits.len())
                .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
                .unwrap_or(0);
            tokens.push(next as u32);
        }
        eprintln!(
            "{take} token(s) to position {}: {:.1} s on the server",
            pos - 1,
            out.result.seconds
        );
    }
    c.close_session(&created.session_id).await?;
    if let Some(report) = &last_report {
        println!("the last step:\n{}", report.table());
    }
    let text = psf_model::data::tokenizer::decode(&tk, &tokens)?;
    println!("{text}");
    println!(
        "{total} positions on {}: same top-1 as the PolyModel in {agree}/{answers} answers, \
         max |logit error| {worst:.2e}; keygen {t_keys:.1} s, key upload {t_upload:.1} s \
         ({:.2} GiB), steps {:.1} s ({server_s:.1} s on the server)",
        params.ring().name(),
        created.key_bytes as f64 / f64::from(1 << 30),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
