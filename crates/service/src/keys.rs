//! Session creation and key uploads: `POST /sessions[?mode=]` opens a session with a first
//! part of its evaluation keys, `POST /sessions/{id}/keys` adds more, `PUT
//! /sessions/{id}/encapsulation` sets the bootstrapping's encapsulation keys. Every upload is
//! streamed and size-limited, decoded under the server's parameters, admitted against the
//! exact keys the session's mode needs, and accounted; the first job of a session with
//! complete keys builds its evaluation context.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use psf_circuits::bootstrap::Encapsulation;
use psf_ckks::EvaluationKeys;
use psf_ckks::serialization::WireDecode;

use crate::api::{KeyStatus, SessionCreated, SessionMode, SessionStatus};
use crate::server::{AppState, SessionId, Shared, answer, read_body, refuse, status_of};
use crate::session::{Keys, Session, SessionStore, short_id};
use crate::workload::{Context, Engine, KeySet, missing};
use crate::{Result, ServiceError};

pub(crate) async fn create_session(
    State(state): Shared,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = match session_mode(uri.query()) {
        Ok(mode) => create_session_inner(&state, mode, &headers, body).await,
        Err(e) => refuse(&state, &headers, body, state.limits.max_key_bytes, e).await,
    };
    answer(&state, result.map(|c| (StatusCode::CREATED, axum::Json(c))))
}

/// The `mode` of `?mode=forward|step` (default `forward`).
fn session_mode(query: Option<&str>) -> Result<SessionMode> {
    let mut mode = SessionMode::Forward;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        mode = match pair {
            "mode=forward" => SessionMode::Forward,
            "mode=step" => SessionMode::Step,
            other => {
                return Err(ServiceError::InvalidRequest {
                    reason: format!(
                        "query {:?}: expected mode=forward or mode=step",
                        other.chars().take(40).collect::<String>()
                    ),
                });
            }
        };
    }
    Ok(mode)
}

async fn create_session_inner(
    state: &Arc<AppState>,
    mode: SessionMode,
    headers: &HeaderMap,
    body: Body,
) -> Result<SessionCreated> {
    let limit = state.limits.max_key_bytes;
    let admitted = state.open().and_then(|()| {
        state.engine.keys(mode)?;
        state.store.check_capacity()?;
        upload_permit(state)
    });
    let _upload = match admitted {
        Ok(permit) => permit,
        Err(e) => return refuse(state, headers, body, limit, e).await,
    };
    let bytes = read_body(state, headers, body, "evaluation keys", limit).await?;
    let key_bytes = bytes.len() as u64;
    state.store.reserve(key_bytes)?;
    let (engine, store) = (state.engine.clone(), state.store.clone());
    let t = Instant::now();
    let made = state
        .jobs
        .run(move || {
            let keys = decode_keys(&engine, &bytes)?;
            drop(bytes);
            if keys.relin.is_none() && keys.galois.is_empty() {
                return Err(ServiceError::InvalidRequest {
                    reason: "a session opens with at least one key".into(),
                });
            }
            let mut set = KeySet::default();
            engine.add_keys(mode, &mut set, keys)?;
            let status = engine.key_status(mode, &set);
            Ok((store.insert(mode, set, key_bytes)?, status))
        })
        .await;
    let (session, keys) = made.inspect_err(|e| {
        if !matches!(e, ServiceError::TooManySessions { .. }) {
            state.store.release(key_bytes);
        }
    })?;
    state.metrics.add(&state.metrics.sessions_created, 1);
    state
        .metrics
        .job_ok("create_session", t.elapsed().as_secs_f64());
    tracing::info!(
        session = short_id(session.id()),
        key_bytes,
        "session created"
    );
    Ok(SessionCreated {
        session_id: session.id().into(),
        key_bytes,
        mode,
        keys,
    })
}

fn decode_keys(engine: &Engine, bytes: &[u8]) -> Result<EvaluationKeys> {
    EvaluationKeys::from_bytes(bytes, engine.params()).map_err(|source| ServiceError::Decode {
        what: "evaluation keys",
        source,
    })
}

/// What an upload to an open session carries.
#[derive(Clone, Copy)]
enum Upload {
    Evaluation,
    Encapsulation,
}

impl Upload {
    fn what(self) -> &'static str {
        match self {
            Upload::Evaluation => "evaluation keys",
            Upload::Encapsulation => "encapsulation keys",
        }
    }
}

pub(crate) async fn add_keys(
    State(state): Shared,
    SessionId(id): SessionId,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = upload(&state, &id, &headers, body, Upload::Evaluation).await;
    answer(&state, result.map(axum::Json))
}

pub(crate) async fn put_encapsulation(
    State(state): Shared,
    SessionId(id): SessionId,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = upload(&state, &id, &headers, body, Upload::Encapsulation).await;
    answer(&state, result.map(axum::Json))
}

/// Receives more keys for session `id` (streamed and size-limited like the first upload),
/// admits them against the workload's needs and accounts them.
async fn upload(
    state: &Arc<AppState>,
    id: &str,
    headers: &HeaderMap,
    body: Body,
    kind: Upload,
) -> Result<SessionStatus> {
    let limit = state.limits.max_key_bytes;
    let admitted = state
        .open()
        .and_then(|()| Ok((state.store.get(id)?, upload_permit(state)?)));
    let (session, _upload) = match admitted {
        Ok(admitted) => admitted,
        Err(e) => return refuse(state, headers, body, limit, e).await,
    };
    let bytes = read_body(state, headers, body, kind.what(), limit).await?;
    let len = bytes.len() as u64;
    state.store.reserve(len)?;
    let (engine, s) = (state.engine.clone(), session.clone());
    let t = Instant::now();
    state
        .jobs
        .run(move || admit(&engine, &s, &bytes, kind))
        .await
        .inspect_err(|_| state.store.release(len))?;
    state.metrics.job_ok(
        match kind {
            Upload::Evaluation => "upload_keys",
            Upload::Encapsulation => "upload_encapsulation",
        },
        t.elapsed().as_secs_f64(),
    );
    tracing::info!(
        session = short_id(session.id()),
        bytes = len,
        "{} added",
        kind.what()
    );
    status_of(state, session).await
}

/// Decodes an upload and adds it to the session's keys (which then hold its bytes).
fn admit(engine: &Engine, session: &Session, bytes: &[u8], kind: Upload) -> Result<()> {
    let mut keys = session.keys();
    if session.is_closed() {
        return Err(ServiceError::UnknownSession {
            id: short_id(session.id()),
        });
    }
    let Keys::Collecting(set) = &mut *keys else {
        return Err(ServiceError::InvalidRequest {
            reason: "the session's keys are complete and in use".into(),
        });
    };
    match kind {
        Upload::Evaluation => {
            engine.add_keys(session.mode(), set, decode_keys(engine, bytes)?)?;
        }
        Upload::Encapsulation => {
            let keys = Encapsulation::from_bytes(bytes, engine.params()).map_err(|source| {
                ServiceError::Decode {
                    what: "encapsulation keys",
                    source,
                }
            })?;
            engine.set_encapsulation(session.mode(), set, keys)?;
        }
    }
    session.hold(bytes.len() as u64);
    Ok(())
}

/// The session's evaluation context, built by its first job once the keys are complete (on
/// the workload's shared bootstrapping circuit: nothing beyond the keys is accounted).
pub(crate) fn context(
    engine: &Engine,
    store: &SessionStore,
    session: &Session,
) -> Result<Arc<Context>> {
    let mut keys = session.keys();
    let set = match &mut *keys {
        Keys::Ready(ctx) => return Ok(ctx.clone()),
        Keys::Collecting(set) => set,
    };
    let mode = session.mode();
    let status = engine.key_status(mode, set);
    if !status.ready {
        return Err(missing(status));
    }
    match engine.build(mode, std::mem::take(set)) {
        Ok(ctx) => {
            let ctx = Arc::new(ctx);
            *keys = Keys::Ready(ctx.clone());
            Ok(ctx)
        }
        Err(e) => {
            // The keys went into the failed build: nothing is held any more.
            let held = session.held();
            session.unhold(held);
            store.release(held);
            Err(e)
        }
    }
}

pub(crate) fn key_status(engine: &Engine, session: &Session) -> KeyStatus {
    match &*session.keys() {
        Keys::Ready(_) => KeyStatus {
            ready: true,
            ..KeyStatus::default()
        },
        Keys::Collecting(set) => engine.key_status(session.mode(), set),
    }
}

/// A slot among the concurrent key uploads, or `Busy` when all are taken.
fn upload_permit(state: &AppState) -> Result<tokio::sync::OwnedSemaphorePermit> {
    state
        .uploads
        .clone()
        .try_acquire_owned()
        .map_err(|_| ServiceError::Busy {
            running: state.jobs.running(),
            queued: state.jobs.queued(),
        })
}
