//! A server on loopback with the INSECURE N=2^10 set and the default probe layer.

#![allow(dead_code)]

use std::sync::Arc;

use psf_ckks::{CkksParameters, PrecisionStats, sets};
use psf_service::server::AppState;
use psf_service::{Client, ClientKeys, Engine, Limits, Probe, ProbeSpec, Server};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running test server.
pub struct TestServer {
    pub url: String,
    pub client: Client,
    pub params: CkksParameters,
    pub probe: Probe,
    pub state: Arc<AppState>,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
}

/// Limits small enough for tests.
pub fn test_limits() -> Limits {
    Limits {
        max_sessions: 12,
        max_key_bytes: 16 << 20,
        max_input_bytes: 1 << 20,
        max_batch: 4,
        max_concurrent_jobs: 2,
        max_queued_jobs: 32,
        max_concurrent_uploads: 4,
        memory_budget_bytes: 256 << 20,
        max_cache_steps: 8,
        session_idle_secs: 600,
        upload_timeout_secs: 10,
    }
}

pub fn params() -> CkksParameters {
    sets::insecure_n10().try_build().unwrap()
}

impl TestServer {
    pub async fn start(limits: Limits) -> Self {
        let params = params();
        let engine = Engine::probe(params.clone(), ProbeSpec::default()).unwrap();
        let probe = Probe::new(ProbeSpec::default(), params.max_slots()).unwrap();
        let server = Server::new(engine, limits);
        let state = server.state().clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(server.serve(listener, async move {
            let _ = stopped.await;
        }));
        Self {
            client: Client::new(&url),
            url,
            params,
            probe,
            state,
            stop: Some(stop),
            handle: Some(handle),
        }
    }

    /// Keys for the server's workload, generated off the async threads.
    pub async fn keys(&self, seed: u64) -> ClientKeys {
        let info = self.client.info().await.unwrap();
        let params = self.params.clone();
        tokio::task::spawn_blocking(move || {
            ClientKeys::generate(&params, &info.keys, Some(seed)).unwrap()
        })
        .await
        .unwrap()
    }

    /// Signals shutdown and waits for the server to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
    }

    /// Signals shutdown without waiting.
    pub fn signal_shutdown(&mut self) -> JoinHandle<std::io::Result<()>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.handle.take().unwrap()
    }
}

/// A seeded input in `[-1, 1]^16`.
pub fn input(seed: u64) -> Vec<f64> {
    (0..16)
        .map(|i| ((seed * 31 + i * 17) % 29) as f64 / 14.0 - 1.0)
        .collect()
}

/// Bits of agreement between decrypted slots (period 16) and the twin.
pub fn bits(twin: &[f64], slots: &[f64]) -> f64 {
    let want: Vec<f64> = (0..slots.len()).map(|j| twin[j % twin.len()]).collect();
    PrecisionStats::from_real(&want, slots).min_bits
}

/// Minimum bits the probe's decrypted outputs must reach at N=2^10 (measured 33 min).
pub const MIN_BITS: f64 = 25.0;
