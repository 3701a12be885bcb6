//! `psformer serve`: the HTTP server of `psf-service` on a workload (an encrypted language
//! model with `--model`, else the probe layer), until Ctrl-C or SIGTERM (then it finishes the
//! requests in flight).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use crate::keys_cmd::named_params;
use psf_infer::HeadPositions;
use psf_service::model::task_contexts;
use psf_service::{Calibration, Engine, Limits, ModelOptions, ModelWorkload, ProbeSpec, Server};

/// Which positions' logits a served model computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Head {
    /// Every position.
    All,
    /// One requested position per prompt.
    Last,
}

/// Arguments of `serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Serve the encrypted language model of this directory (`config.json`,
    /// `model.safetensors`, `poly.json`) instead of the probe layer.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Model: positions per prompt (default: the model's context).
    #[arg(long)]
    seq_len: Option<usize>,
    /// Model: prompts per job, packed into the same ciphertexts.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Model: log2 of the ring degree of the bootstrapping preset: 16 or 15 (128-bit);
    /// 11 to 14 are INSECURE twins for quick tries.
    #[arg(long, default_value_t = 16)]
    log_n: u32,
    /// Model: positions of step-wise generation with an encrypted KV cache (`step`
    /// sessions); 0 compiles no decoder.
    #[arg(long, default_value_t = 16)]
    max_len: usize,
    /// Model: logits of every position (`all`) or of one requested position per prompt
    /// (`last`, by default each prompt's last token; 2 logit ciphertexts per prompt for a
    /// 50k vocabulary instead of one set per position).
    #[arg(long, value_enum, default_value_t = Head::All)]
    pub head: Head,
    /// Model: threads of a job's evaluation.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Model: calibration text file (default: the contexts of crates/model/tasks/*.jsonl,
    /// held-out text of the shipped corpus).
    #[arg(long)]
    calibration: Option<PathBuf>,
    /// Model: tokenizer of the calibration text (default: the model's tokenizer.json, else
    /// models/demo/tokenizer.json).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Probe: parameter set: n14, n15, n16 (128-bit), insecure-n10, insecure-n12 (toys for
    /// tests) or a path to a JSON `CkksParametersLiteral`.
    #[arg(long, default_value = "n16")]
    params: String,
    /// Probe: dimension of the layer.
    #[arg(long, default_value_t = 16)]
    probe_dim: usize,
    /// Degree of the probe's GELU polynomial on [-sqrt(dim), sqrt(dim)].
    #[arg(long, default_value_t = 7)]
    probe_degree: usize,
    /// Open sessions at most.
    #[arg(long, default_value_t = Limits::default().max_sessions)]
    max_sessions: usize,
    /// Jobs running at once.
    #[arg(long, default_value_t = Limits::default().max_concurrent_jobs)]
    max_jobs: usize,
    /// Largest key upload, MiB (clients split larger key sets into several uploads).
    #[arg(long, default_value_t = Limits::default().max_key_bytes >> 20)]
    max_key_mib: u64,
    /// Memory budget for the shared bootstrapping circuits and the keys and encrypted state of
    /// all sessions, MiB.
    #[arg(long, default_value_t = Limits::default().memory_budget_bytes >> 20)]
    memory_mib: u64,
    /// Seconds before an unused session is dropped.
    #[arg(long, default_value_t = Limits::default().session_idle_secs)]
    idle_secs: u64,
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Runs the server.
pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    let engine = match &args.model {
        Some(dir) => model_engine(args, dir)?,
        None => probe_engine(args)?,
    };
    let limits = Limits {
        max_sessions: args.max_sessions,
        max_concurrent_jobs: args.max_jobs,
        max_key_bytes: args.max_key_mib << 20,
        memory_budget_bytes: args.memory_mib << 20,
        session_idle_secs: args.idle_secs,
        ..Limits::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("binding {}", args.addr))?;
        tracing::info!(
            addr = %listener.local_addr()?,
            params = engine.params().ring().name(),
            workload = engine.name(),
            "serving"
        );
        Server::new(engine, limits)
            .serve(listener, shutdown_signal())
            .await?;
        tracing::info!("stopped");
        Ok(())
    })
}

fn probe_engine(args: &ServeArgs) -> anyhow::Result<Engine> {
    let params = named_params(&args.params)?;
    let d = args.probe_dim as f64;
    let spec = ProbeSpec {
        dim: args.probe_dim,
        seed: 7,
        interval: (-d.sqrt(), d.sqrt()),
        degree: args.probe_degree,
    };
    Ok(Engine::probe(params, spec)?)
}

/// The shipped multiple-choice task files (their contexts are held-out text).
pub(crate) fn shipped_tasks() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tasks");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "jsonl"));
    v.sort();
    v
}

/// The tokenizer of a model directory: `--tokenizer`, else its own `tokenizer.json`, else the
/// demo model's.
pub(crate) fn tokenizer_path(dir: &Path, given: Option<&PathBuf>) -> anyhow::Result<PathBuf> {
    let candidates = [
        given.cloned(),
        Some(dir.join("tokenizer.json")),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/demo/tokenizer.json")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .context("no tokenizer.json: give --tokenizer")
}

fn model_engine(args: &ServeArgs, dir: &Path) -> anyhow::Result<Engine> {
    let config = psf_model::ModelConfigLiteral::from_file(dir.join("config.json"))?.try_build()?;
    let text = match &args.calibration {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
        }
        None => task_contexts(&shipped_tasks())?,
    };
    let calibration = Calibration::Text {
        text,
        tokenizer: tokenizer_path(dir, args.tokenizer.as_ref())?,
    };
    let opts = ModelOptions {
        seq_len: args.seq_len.unwrap_or(config.max_position_embeddings),
        batch: args.batch,
        log_n: args.log_n,
        threads: args.threads,
        max_len: (args.max_len > 0).then_some(args.max_len.min(config.max_position_embeddings)),
        head: match args.head {
            Head::All => HeadPositions::All,
            Head::Last => HeadPositions::Last,
        },
    };
    let t = Instant::now();
    let model = ModelWorkload::load(dir, &calibration, &opts)?;
    let s = model.spec();
    eprintln!(
        "{} compiled in {:.1} s on {}: {} prompt(s) x {} tokens, {} bootstrap sites, \
         keys {:.2} GiB ({} Galois) + {:.1} MiB encapsulation per session; bootstrapping circuit \
         {:.2} GiB, shared by all sessions",
        s.name,
        t.elapsed().as_secs_f64(),
        s.params_name,
        s.batch,
        s.seq_len,
        s.bootstrap_sites,
        s.evaluation_key_bytes as f64 / f64::from(1 << 30),
        s.keys.galois_elements.len(),
        s.encapsulation_key_bytes as f64 / f64::from(1 << 20),
        s.context_bytes as f64 / f64::from(1 << 30),
    );
    Ok(Engine::model(Arc::new(model))?)
}
