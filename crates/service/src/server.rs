//! The HTTP server (axum): sessions created by uploading evaluation keys, jobs on encrypted
//! inputs, health and metrics, graceful shutdown. Routes: [`crate::api`].
//!
//! Bodies are streamed and counted against their limit as they arrive (a declared
//! `Content-Length` over the limit is refused before reading); decoding and evaluation run on
//! the [`JobPool`]. Logs name sessions by the first 8 characters of their id and never hold
//! key material, ciphertexts or values.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use http_body_util::BodyExt;
use tokio::sync::Semaphore;

use crate::api::{Health, JobResult, ServerInfo, SessionMode, SessionStatus};
use crate::jobs::JobPool;
use crate::metrics::{Gauges, Metrics};
use crate::session::{Session, SessionStore, short_id};
use crate::workload::{Context, Engine};
use crate::{Limits, Result, ServiceError, frame, keys};

/// Shared state of a running server.
pub struct AppState {
    pub(crate) engine: Arc<Engine>,
    pub(crate) limits: Limits,
    pub(crate) store: Arc<SessionStore>,
    pub(crate) metrics: Metrics,
    pub(crate) jobs: JobPool,
    pub(crate) uploads: Arc<Semaphore>,
    shutting_down: AtomicBool,
}

impl AppState {
    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The sessions.
    pub fn sessions(&self) -> &SessionStore {
        &self.store
    }

    /// The worker pool (its running and queued gauges).
    pub fn jobs(&self) -> &JobPool {
        &self.jobs
    }

    fn gauges(&self) -> Gauges {
        Gauges {
            sessions: self.store.len(),
            jobs_running: self.jobs.running(),
            jobs_queued: self.jobs.queued(),
            memory_used: self.store.used(),
            memory_budget: self.store.budget(),
        }
    }

    fn fail(&self, e: ServiceError) -> Response {
        self.metrics.error(e.code());
        if e.status().is_server_error() {
            tracing::warn!(code = e.code(), "request failed: {e}");
        } else {
            tracing::debug!(code = e.code(), "request refused: {e}");
        }
        e.into_response()
    }

    pub(crate) fn open(&self) -> Result<()> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(ServiceError::ShuttingDown);
        }
        Ok(())
    }
}

/// A configured server.
pub struct Server {
    state: Arc<AppState>,
}

pub(crate) type Shared = State<Arc<AppState>>;

impl Server {
    /// A server running `engine` within `limits` (the engine's shared bootstrapping circuits
    /// come off the memory budget first).
    pub fn new(engine: Engine, limits: Limits) -> Self {
        let resident = engine.resident_bytes();
        let state = AppState {
            engine: Arc::new(engine),
            store: Arc::new(SessionStore::new(
                limits.max_sessions,
                limits.memory_budget_bytes.saturating_sub(resident),
            )),
            metrics: Metrics::default(),
            jobs: JobPool::new(limits.max_concurrent_jobs, limits.max_queued_jobs),
            uploads: Arc::new(Semaphore::new(limits.max_concurrent_uploads.max(1))),
            shutting_down: AtomicBool::new(false),
            limits,
        };
        Self {
            state: Arc::new(state),
        }
    }

    /// The shared state (for inspection by tests and the embedding program).
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// The routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/health", get(health))
            .route("/v1/metrics", get(metrics))
            .route("/v1/info", get(info))
            .route("/v1/params", get(params))
            .route("/v1/sessions", post(keys::create_session))
            .route(
                "/v1/sessions/{id}",
                get(session_status).delete(close_session),
            )
            .route("/v1/sessions/{id}/keys", post(keys::add_keys))
            .route(
                "/v1/sessions/{id}/encapsulation",
                put(keys::put_encapsulation),
            )
            .route("/v1/sessions/{id}/forward", post(forward))
            .route("/v1/sessions/{id}/step", post(step))
            .route("/v1/sessions/{id}/reset", post(reset))
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .with_state(self.state.clone())
    }

    /// Serves on `listener` until `shutdown` completes, then stops accepting, refuses new jobs
    /// and waits for the requests in flight. Idle sessions are dropped meanwhile.
    ///
    /// # Errors
    /// An I/O error of the listener.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let reaper = tokio::spawn(reap(self.state.clone()));
        let state = self.state.clone();
        let result = axum::serve(listener, self.router())
            .with_graceful_shutdown(async move {
                shutdown.await;
                tracing::info!("shutting down: refusing new work, finishing requests in flight");
                state.shutting_down.store(true, Ordering::SeqCst);
            })
            .await;
        reaper.abort();
        self.state.jobs.close();
        result
    }
}

async fn reap(state: Arc<AppState>) {
    let idle = Duration::from_secs(state.limits.session_idle_secs);
    let mut tick = tokio::time::interval((idle / 4).max(Duration::from_secs(1)));
    loop {
        tick.tick().await;
        let store = state.store.clone();
        if let Ok(n) = tokio::task::spawn_blocking(move || store.expire(idle)).await
            && n > 0
        {
            state.metrics.add(&state.metrics.sessions_expired, n as u64);
            tracing::info!(expired = n, "idle sessions dropped");
        }
    }
}

/// Answers `result`, recording an error.
pub(crate) fn answer<T: IntoResponse>(state: &AppState, result: Result<T>) -> Response {
    match result {
        Ok(r) => r.into_response(),
        Err(e) => state.fail(e),
    }
}

fn binary(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
}

async fn health(State(state): Shared) -> Response {
    let status = if state.shutting_down.load(Ordering::SeqCst) {
        "shutting_down"
    } else {
        "ok"
    };
    axum::Json(Health {
        status: status.into(),
        sessions: state.store.len(),
        jobs_running: state.jobs.running(),
    })
    .into_response()
}

async fn metrics(State(state): Shared) -> Response {
    let text = state.metrics.render(&state.gauges());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn info(State(state): Shared) -> Response {
    let e = &state.engine;
    axum::Json(ServerInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        params_name: e.params().ring().name().into(),
        params_fingerprint: format!(
            "{:016x}",
            psf_ckks::serialization::parameters_fingerprint(e.params().ring())
        ),
        workload: e.name().into(),
        workload_spec: e.spec_json(),
        keys: e.keys(SessionMode::Forward).unwrap_or_default(),
        step_keys: e.keys(SessionMode::Step).ok(),
        input: e.input_shape(),
        step_input: e.step_shape(),
        limits: state.limits.clone(),
    })
    .into_response()
}

async fn params(State(state): Shared) -> Response {
    binary(state.engine.params().to_bytes())
}

async fn not_found(State(state): Shared, method: Method, uri: Uri) -> Response {
    state.fail(ServiceError::NotFound {
        method: method.to_string(),
        path: uri.path().into(),
    })
}

async fn method_not_allowed(State(state): Shared, method: Method, uri: Uri) -> Response {
    state.fail(ServiceError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().into(),
    })
}

/// The `{id}` of a session route; an unparsable one is a typed error like any other.
pub(crate) struct SessionId(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for SessionId {
    type Rejection = ServiceError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(id)) => Ok(Self(id)),
            Err(e) => Err(ServiceError::InvalidRequest {
                reason: format!("session id: {}", e.body_text()),
            }),
        }
    }
}

/// The body length a request declares (`Content-Length`), if it declares a valid one.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Reads `body` to its end, refusing more than `limit` bytes (as declared or as received)
/// and bodies that take longer than the upload timeout.
pub(crate) async fn read_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    what: &'static str,
    limit: u64,
) -> Result<Vec<u8>> {
    let declared = declared_length(headers);
    if let Some(size) = declared.filter(|&s| s > limit) {
        return Err(ServiceError::PayloadTooLarge { what, size, limit });
    }
    let timeout = Duration::from_secs(state.limits.upload_timeout_secs);
    let read = async {
        let mut body = body;
        let mut out = Vec::with_capacity(declared.unwrap_or(0) as usize);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ServiceError::BodyRead {
                reason: e.to_string(),
            })?;
            if let Ok(data) = frame.into_data() {
                let size = (out.len() + data.len()) as u64;
                if size > limit {
                    return Err(ServiceError::PayloadTooLarge { what, size, limit });
                }
                out.extend_from_slice(&data);
            }
        }
        Ok(out)
    };
    let out = tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| ServiceError::BodyRead {
            reason: format!("not received within {} s", timeout.as_secs()),
        })??;
    state
        .metrics
        .add(&state.metrics.bytes_received, out.len() as u64);
    Ok(out)
}

/// Refuses a request whose body has not been read: the body is received and dropped first,
/// frame by frame (up to `limit` bytes, as declared or received, within the upload timeout),
/// because a client still sending it would otherwise see the connection reset, not `error`.
pub(crate) async fn refuse<T>(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    limit: u64,
    error: ServiceError,
) -> Result<T> {
    let declared = declared_length(headers);
    // A body over the limit is not received: its connection closes after the answer.
    if declared.is_none_or(|size| size <= limit) {
        let drain = async {
            let (mut body, mut size) = (body, 0u64);
            while let Some(Ok(frame)) = body.frame().await {
                size += frame.data_ref().map_or(0, |d| d.len() as u64);
                if size > limit {
                    break;
                }
            }
        };
        let timeout = Duration::from_secs(state.limits.upload_timeout_secs);
        let _ = tokio::time::timeout(timeout, drain).await;
    }
    Err(error)
}

pub(crate) async fn status_of(state: &AppState, session: Arc<Session>) -> Result<SessionStatus> {
    let engine = state.engine.clone();
    let ((steps, bytes), keys) = state
        .jobs
        .run({
            let session = session.clone();
            move || Ok((session.usage(), keys::key_status(&engine, &session)))
        })
        .await?;
    Ok(SessionStatus {
        session_id: session.id().into(),
        cached_steps: steps,
        bytes,
        jobs: session.jobs(),
        mode: session.mode(),
        keys,
    })
}

async fn session_status(State(state): Shared, SessionId(id): SessionId) -> Response {
    let result = match state.store.get(&id) {
        Ok(session) => status_of(&state, session).await,
        Err(e) => Err(e),
    };
    answer(&state, result.map(axum::Json))
}

async fn close_session(State(state): Shared, SessionId(id): SessionId) -> Response {
    let store = state.store.clone();
    let result = tokio::task::spawn_blocking(move || store.remove(&id))
        .await
        .unwrap_or_else(|_| {
            Err(ServiceError::Internal {
                reason: "closing the session failed".into(),
            })
        });
    if result.is_ok() {
        state.metrics.add(&state.metrics.sessions_closed, 1);
    }
    answer(&state, result.map(|()| StatusCode::NO_CONTENT))
}

async fn reset(State(state): Shared, SessionId(id): SessionId) -> Response {
    let result = async {
        let session = state.store.get(&id)?;
        let (s, store) = (session.clone(), state.store.clone());
        state
            .jobs
            .run(move || {
                let mut guard = s.try_state()?;
                store.release(guard.bytes());
                guard.clear();
                Ok(())
            })
            .await?;
        status_of(&state, session).await
    }
    .await;
    answer(&state, result.map(axum::Json))
}

/// Which job a request runs (a forward pass with its requested positions, or steps).
#[derive(Clone)]
enum JobKind {
    Forward(Option<Vec<usize>>),
    Step,
}

impl JobKind {
    fn name(&self) -> &'static str {
        match self {
            JobKind::Forward(_) => "forward",
            JobKind::Step => "step",
        }
    }
}

async fn forward(
    State(state): Shared,
    SessionId(id): SessionId,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = match forward_positions(uri.query()) {
        Ok(positions) => run_job(&state, &id, &headers, body, JobKind::Forward(positions)).await,
        Err(e) => refuse(&state, &headers, body, state.limits.max_input_bytes, e).await,
    };
    answer(&state, result.map(binary))
}

async fn step(
    State(state): Shared,
    SessionId(id): SessionId,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = match uri.query() {
        Some(q) if !q.is_empty() => {
            let e = ServiceError::InvalidRequest {
                reason: format!("a step takes no query parameters, got {q:?}"),
            };
            refuse(&state, &headers, body, state.limits.max_input_bytes, e).await
        }
        _ => run_job(&state, &id, &headers, body, JobKind::Step).await,
    };
    answer(&state, result.map(binary))
}

/// The query of a forward request: none, or `positions=P0,P1,...` (one position per prompt
/// of the batch, for a model with a last-position head).
///
/// # Errors
/// Another parameter, a repeated one, or a position that is not a number.
pub fn forward_positions(query: Option<&str>) -> Result<Option<Vec<usize>>> {
    let invalid = |reason: String| ServiceError::InvalidRequest { reason };
    let mut positions = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != "positions" || positions.is_some() {
            return Err(invalid(format!(
                "forward takes one query parameter, positions=P0,P1,...; got {pair:?}"
            )));
        }
        let list = value
            .split(',')
            .map(|v| v.parse::<usize>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| invalid(format!("positions must be numbers, got {value:?}")))?;
        positions = Some(list);
    }
    Ok(positions)
}

async fn run_job(
    state: &Arc<AppState>,
    id: &str,
    headers: &HeaderMap,
    body: Body,
    kind: JobKind,
) -> Result<Vec<u8>> {
    let limit = state.limits.max_input_bytes;
    let session = match state.open().and_then(|()| state.store.get(id)) {
        Ok(session) => session,
        Err(e) => return refuse(state, headers, body, limit, e).await,
    };
    let bytes = read_body(state, headers, body, "ciphertext batch", limit).await?;
    let (engine, store, s) = (state.engine.clone(), state.store.clone(), session.clone());
    let limits = state.limits.clone();
    let t = Instant::now();
    let name = kind.name();
    let out = state
        .jobs
        .run(move || job(&engine, &s, &bytes, kind, &limits, &store))
        .await?;
    state.metrics.job_ok(name, t.elapsed().as_secs_f64());
    state
        .metrics
        .add(&state.metrics.bytes_sent, out.len() as u64);
    tracing::info!(
        session = short_id(session.id()),
        job = name,
        ms = t.elapsed().as_millis() as u64,
        "job done"
    );
    Ok(out)
}

/// The blocking part of a job: decode, evaluate, encode.
fn job(
    engine: &Engine,
    session: &Session,
    bytes: &[u8],
    kind: JobKind,
    limits: &Limits,
    store: &SessionStore,
) -> Result<Vec<u8>> {
    let t = Instant::now();
    let name = kind.name();
    engine.check_mode(session.mode(), name)?;
    let inputs = frame::decode_ciphertexts(bytes, engine.params(), 1, limits.max_batch)?;
    let ctx = keys::context(engine, store, session)?;
    let (outputs, mut reports, cached_steps) = match kind {
        JobKind::Forward(positions) => {
            let (out, report) = engine.forward(&ctx, inputs, positions.as_deref())?;
            (out, report.into_iter().collect(), None)
        }
        JobKind::Step => {
            let (out, reports, steps) = run_steps(engine, session, inputs, limits, store, &ctx)?;
            (out, reports, Some(steps))
        }
    };
    session.job_done();
    let report = reports.pop();
    let result = JobResult {
        kind: name.into(),
        seconds: t.elapsed().as_secs_f64(),
        cached_steps,
        report,
        earlier_steps: reports,
    };
    frame::encode_result(&result, &outputs)
}

/// A step job: the cache's growth is reserved first (a bound per token) and settled against
/// what it really grew by, whether the step succeeded or not.
fn run_steps(
    engine: &Engine,
    session: &Session,
    inputs: Vec<psf_ckks::Ciphertext>,
    limits: &Limits,
    store: &SessionStore,
    ctx: &Context,
) -> Result<(Vec<psf_ckks::Ciphertext>, Vec<psf_infer::Report>, usize)> {
    let mut state = session.try_state()?;
    if session.is_closed() {
        return Err(ServiceError::UnknownSession {
            id: short_id(session.id()),
        });
    }
    let limit = engine
        .max_steps()
        .map_or(limits.max_cache_steps, |m| m.min(limits.max_cache_steps));
    if state.steps() + inputs.len() > limit {
        return Err(ServiceError::CacheFull {
            steps: state.steps(),
            limit,
        });
    }
    let reserved = engine.step_bytes() * inputs.len() as u64;
    store.reserve(reserved)?;
    let before = state.bytes();
    let result = engine.step(ctx, &mut state, inputs);
    store.settle(reserved, before, state.bytes());
    let (out, reports) = result?;
    Ok((out, reports, state.steps()))
}
