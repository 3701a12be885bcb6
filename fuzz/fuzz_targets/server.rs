//! The server's request handling in process: a fuzzed body sent to a fuzzed endpoint of a
//! server holding one valid session. Every answer must be a success or a typed 4xx/503 error;
//! a 500 (a panicking job) or a panic fails the target.
#![no_main]

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use psf_ckks::serialization::WireEncode;
use psf_service::{ClientKeys, Limits, Server, fuzzing};
use tower::ServiceExt;

struct Fixture {
    rt: tokio::runtime::Runtime,
    router: Router,
    session: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let engine = fuzzing::engine().unwrap();
        let keys = ClientKeys::generate(
            engine.params(),
            &engine.keys(psf_service::SessionMode::Forward).unwrap(),
            Some(1),
        ).unwrap();
        let limits = Limits {
            max_key_bytes: 1 << 20,
            max_input_bytes: 1 << 20,
            max_batch: 4,
            max_sessions: 64,
            memory_budget_bytes: 256 << 20,
            max_cache_steps: 16,
            ..Limits::default()
        };
        let router = Server::new(engine, limits).router();
        let req = Request::post("/v1/sessions")
            .body(Body::from(keys.evaluation_keys().to_bytes()))
            .unwrap();
        let resp = rt.block_on(router.clone().oneshot(req)).unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let body = rt
            .block_on(axum::body::to_bytes(resp.into_body(), 1 << 20))
            .unwrap();
        let created: psf_service::api::SessionCreated = serde_json::from_slice(&body).unwrap();
        Fixture {
            rt,
            router,
            session: created.session_id,
        }
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let s = &f.session;
    let (method, path) = match selector % 10 {
        0 => (Method::POST, "/v1/sessions".to_string()),
        1 => (Method::POST, format!("/v1/sessions/{s}/forward")),
        2 => (Method::POST, format!("/v1/sessions/{s}/step")),
        3 => (Method::POST, format!("/v1/sessions/{s}/reset")),
        4 => (Method::GET, format!("/v1/sessions/{s}")),
        5 => (
            Method::DELETE,
            format!("/v1/sessions/{}", String::from_utf8_lossy(body)),
        ),
        6 => (Method::GET, "/v1/info".to_string()),
        8 => (Method::POST, format!("/v1/sessions/{s}/keys")),
        9 => (Method::PUT, format!("/v1/sessions/{s}/encapsulation")),
        _ => (
            Method::POST,
            format!("/v1/sessions/{}/forward", String::from_utf8_lossy(body)),
        ),
    };
    let Ok(req) = Request::builder()
        .method(method)
        .uri(&path)
        .body(Body::from(body.to_vec()))
    else {
        return;
    };
    let resp = f.rt.block_on(f.router.clone().oneshot(req)).unwrap();
    let status = resp.status();
    assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
    if !status.is_success() {
        let body =
            f.rt.block_on(axum::body::to_bytes(resp.into_body(), 1 << 20))
                .unwrap();
        let e: psf_service::ErrorBody = serde_json::from_slice(&body).expect("typed JSON error");
        assert!(!e.code.is_empty());
    }
});
