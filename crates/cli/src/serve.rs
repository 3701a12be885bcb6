//! `psformer serve`: the HTTP server of `psf-service` on a parameter set and a workload, until
//! Ctrl-C or SIGTERM (then it finishes the requests in flight).

use std::net::SocketAddr;

use anyhow::Context;

use crate::keys_cmd::named_params;
use psf_service::{Engine, Limits, ProbeSpec, Server};

/// Arguments of `serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Parameter set: n14, n15, n16 (128-bit), insecure-n10, insecure-n12 (toys for tests)
    /// or a path to a JSON `CkksParametersLiteral`.
    #[arg(long, default_value = "n16")]
    params: String,
    /// Dimension of the probe layer (the workload served until the compiled model is wired).
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
    /// Largest key upload, MiB.
    #[arg(long, default_value_t = Limits::default().max_key_bytes >> 20)]
    max_key_mib: u64,
    /// Memory budget for keys and encrypted state of all sessions, MiB.
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
    let params = named_params(&args.params)?;
    let d = args.probe_dim as f64;
    let spec = ProbeSpec {
        dim: args.probe_dim,
        seed: 7,
        interval: (-d.sqrt(), d.sqrt()),
        degree: args.probe_degree,
    };
    let engine = Engine::probe(params, spec)?;
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
