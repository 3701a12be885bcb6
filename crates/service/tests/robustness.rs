//! Malformed, truncated, oversize and mismatched inputs, unknown sessions and exhausted limits:
//! each answered with its typed error, and the server keeps serving.

mod common;

use common::{MIN_BITS, TestServer, bits, input, test_limits};
use psf_ckks::serialization::WireEncode;
use psf_ckks::sets;
use psf_service::frame::encode_ciphertexts;
use psf_service::{ClientKeys, Limits, ServiceError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn code(e: &ServiceError) -> (u16, String) {
    match e {
        ServiceError::Server { status, body } => (*status, body.code.clone()),
        other => panic!("expected a typed server error, got {other}"),
    }
}

/// Sends raw bytes on a fresh connection and returns what comes back (until close).
async fn raw(url: &str, request: Vec<u8>, close_early: bool) -> String {
    let addr = url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(&request).await;
    if close_early {
        let _ = s.shutdown().await;
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The server still works: a fresh session computes a correct forward pass.
async fn still_serves(server: &TestServer, seed: u64) {
    let keys = server.keys(seed).await;
    let id = server
        .client
        .create_session(&keys)
        .await
        .unwrap()
        .session_id;
    let x = input(seed);
    let ct = keys.encrypt_replicated(&x).unwrap();
    let out = server
        .client
        .forward(&id, &server.params, &[ct])
        .await
        .unwrap();
    let b = bits(
        &server.probe.forward_f64(&x),
        &keys.decrypt(&out.outputs[0]).unwrap(),
    );
    assert!(b >= MIN_BITS);
    server.client.close_session(&id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_keys_and_batches() {
    let server = TestServer::start(test_limits()).await;
    let c = &server.client;
    let keys = server.keys(2).await;
    let good = keys.evaluation_keys().to_bytes();
    for (body, want) in [
        (Vec::new(), "malformed_object"),
        (b"not a key".to_vec(), "malformed_object"),
        (good[..good.len() / 2].to_vec(), "malformed_object"),
        (good[..good.len() - 1].to_vec(), "malformed_object"),
        ([good.as_slice(), &[0]].concat(), "malformed_object"),
    ] {
        let e = c.create_session_raw(body).await.unwrap_err();
        assert_eq!(code(&e), (400, want.to_owned()), "{e}");
    }
    // Flipped bytes anywhere in the header or a residue are refused or decode to other keys.
    let mut bad = good.clone();
    bad[40] ^= 0xff;
    let _ = c.create_session_raw(bad).await;

    let id = c.create_session(&keys).await.unwrap().session_id;
    let ct = keys.encrypt_replicated(&input(1)).unwrap();
    let batch = encode_ciphertexts(std::slice::from_ref(&ct));
    let mut lower = ct.clone();
    lower.drop_to_level(3);
    for (body, want) in [
        (Vec::new(), "malformed_frame"),
        (b"PSFB".to_vec(), "malformed_frame"),
        (batch[..batch.len() - 7].to_vec(), "malformed_frame"),
        ([batch.as_slice(), b"x"].concat(), "malformed_frame"),
        (encode_ciphertexts(&[]), "malformed_frame"),
        (encode_ciphertexts(&vec![ct.clone(); 5]), "malformed_frame"),
        (
            encode_ciphertexts(&[ct.clone(), ct.clone()]),
            "invalid_request",
        ),
        (encode_ciphertexts(&[lower]), "invalid_request"),
    ] {
        for kind in ["forward", "step"] {
            let e = c.job_raw(&id, kind, body.clone()).await.unwrap_err();
            assert_eq!(code(&e), (400, want.to_owned()), "{kind}: {e}");
        }
    }
    // A ciphertext body with a residue out of range.
    let mut corrupt = batch.clone();
    let at = corrupt.len() - 8;
    corrupt[at..].copy_from_slice(&u64::MAX.to_le_bytes());
    let e = c.job_raw(&id, "forward", corrupt).await.unwrap_err();
    assert_eq!(code(&e), (400, "malformed_object".into()));
    assert_eq!(c.session(&id).await.unwrap().cached_steps, 0);
    still_serves(&server, 3).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_parameters_missing_keys_unknown_sessions() {
    let server = TestServer::start(test_limits()).await;
    let c = &server.client;
    let other = sets::insecure_n12().try_build().unwrap();
    let info = c.info().await.unwrap();
    let foreign = tokio::task::spawn_blocking(move || {
        ClientKeys::generate(&other, &info.keys, Some(9)).unwrap()
    })
    .await
    .unwrap();
    let e = c.create_session(&foreign).await.unwrap_err();
    assert_eq!(code(&e), (400, "malformed_object".into()));
    assert!(e.to_string().contains("parameters mismatch"), "{e}");

    let mut keys = server.keys(4).await;
    let id = c.create_session(&keys).await.unwrap().session_id;
    let foreign_ct = foreign.encrypt_replicated(&input(1)).unwrap();
    let e = c
        .job_raw(&id, "forward", encode_ciphertexts(&[foreign_ct]))
        .await
        .unwrap_err();
    assert_eq!(code(&e), (400, "malformed_object".into()));

    // A session may start with part of the keys: its jobs wait for the rest.
    let needs = c.info().await.unwrap().keys;
    let evk = keys.evaluation_keys();
    let partial = psf_ckks::EvaluationKeys {
        relin: evk.relin.clone(),
        ..Default::default()
    };
    let created = c.create_session_raw(partial.to_bytes()).await.unwrap();
    assert!(!created.keys.ready && !created.keys.relinearization_missing);
    assert_eq!(created.keys.galois_missing, needs.galois_elements);
    let pid = created.session_id;
    let ct = keys.encrypt_replicated(&input(3)).unwrap();
    let batch = encode_ciphertexts(std::slice::from_ref(&ct));
    let e = c.job_raw(&pid, "forward", batch.clone()).await.unwrap_err();
    assert_eq!(code(&e), (400, "missing_keys".into()));
    assert!(
        e.to_string()
            .contains(&needs.galois_elements[0].to_string())
    );
    // Repeated keys, keys the workload does not need, and encapsulation keys for a workload
    // that does not bootstrap are refused, and change nothing.
    let (params, seed_keys) = (server.params.clone(), keys.secret_key().clone());
    let (conj, encap) = tokio::task::spawn_blocking(move || {
        let mut kgen = psf_ckks::KeyGenerator::seeded(params.ring(), 1);
        let conj = psf_ckks::EvaluationKeys::generate(&mut kgen, &seed_keys, &[], true).unwrap();
        let encap =
            psf_circuits::bootstrap::Encapsulation::generate(&params, &seed_keys, 8, Some(2))
                .unwrap();
        (conj, encap)
    })
    .await
    .unwrap();
    for (what, body) in [
        ("keys", partial.to_bytes()),
        ("keys", conj.to_bytes()),
        ("encapsulation", encap.to_bytes()),
    ] {
        let e = c.upload_raw(&pid, what, body).await.unwrap_err();
        assert_eq!(code(&e), (400, "invalid_request".into()), "{what}: {e}");
    }
    let e = c
        .upload_raw(&pid, "encapsulation", b"PSFW".to_vec())
        .await
        .unwrap_err();
    assert_eq!(code(&e), (400, "malformed_object".into()));
    // The rest of the keys completes the session.
    let rest = psf_ckks::EvaluationKeys {
        relin: None,
        galois: evk.galois.clone(),
    };
    let status = c.upload_raw(&pid, "keys", rest.to_bytes()).await.unwrap();
    assert!(status.keys.ready, "{status:?}");
    let out = c.forward(&pid, &server.params, &[ct]).await.unwrap();
    let b = bits(
        &server.probe.forward_f64(&input(3)),
        &keys.decrypt(&out.outputs[0]).unwrap(),
    );
    assert!(b >= MIN_BITS);
    let e = c
        .upload_raw(&pid, "keys", rest.to_bytes())
        .await
        .unwrap_err();
    assert_eq!(code(&e), (400, "invalid_request".into()));
    c.close_session(&pid).await.unwrap();
    keys = server.keys(5).await;

    let ghost = "0123456789abcdef0123456789abcdef";
    for e in [
        c.session(ghost).await.unwrap_err(),
        c.close_session(ghost).await.unwrap_err(),
        c.job_raw(ghost, "forward", Vec::new()).await.unwrap_err(),
        c.job_raw("../../etc", "step", Vec::new())
            .await
            .unwrap_err(),
    ] {
        assert_eq!(code(&e).0, 404, "{e}");
    }
    let answer = raw(
        &server.url,
        b"PUT /v1/sessions HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
            .to_vec(),
        false,
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 405") && answer.contains("method_not_allowed"),
        "{answer}"
    );
    let answer = raw(
        &server.url,
        b"GET /v1/sessions/%FF%FE HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".to_vec(),
        false,
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 400") && answer.contains("invalid_request"),
        "{answer}"
    );
    let e = c.job_raw(&id, "nonsense", Vec::new()).await.unwrap_err();
    assert_eq!(code(&e), (404, "not_found".into()));
    let ct = keys.encrypt_replicated(&input(2)).unwrap();
    assert!(c.forward(&id, &server.params, &[ct]).await.is_ok());
    server.shutdown().await;
}

/// Requests refused before their body is read (an unknown session, a bad query) still get
/// their typed answer while the client is sending a body of megabytes: the server receives
/// and drops the body first instead of resetting the connection under the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_refused_before_their_body_get_typed_errors() {
    let server = TestServer::start(test_limits()).await;
    let c = &server.client;
    let ghost = "0123456789abcdef0123456789abcdef";
    let batch = vec![0u8; 1 << 20];
    let keys = vec![0u8; 12 << 20];
    for _ in 0..3 {
        let e = c
            .job_raw(ghost, "forward", batch.clone())
            .await
            .unwrap_err();
        assert_eq!(code(&e), (404, "unknown_session".into()), "{e}");
        let e = c.job_raw(ghost, "step?x=1", batch.clone()).await;
        assert_eq!(code(&e.unwrap_err()).0, 400);
        let e = c.job_raw(ghost, "forward?seed=3", batch.clone()).await;
        assert_eq!(code(&e.unwrap_err()), (400, "invalid_request".into()));
        let e = c.upload_raw(ghost, "keys", keys.clone()).await.unwrap_err();
        assert_eq!(code(&e), (404, "unknown_session".into()), "{e}");
    }
    still_serves(&server, 9).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_and_truncated_uploads() {
    let limits = Limits {
        max_key_bytes: 1 << 20,
        ..test_limits()
    };
    let server = TestServer::start(limits).await;
    let c = &server.client;
    let keys = server.keys(6).await;
    let big = keys.evaluation_keys().to_bytes();
    assert!(big.len() > 1 << 20);
    let e = c.create_session_raw(big).await.unwrap_err();
    // The server answers 413 before reading the body and closes the connection; a client
    // still writing the body may see the connection reset before it reads the answer.
    if !matches!(e, ServiceError::Transport(_)) {
        assert_eq!(code(&e), (413, "payload_too_large".into()));
    }
    assert_eq!(server.state.metrics().errors_with("payload_too_large"), 1);

    // Streamed without a length: refused once the limit is crossed, not after buffering all.
    let mut req =
        b"POST /v1/sessions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..20 {
        req.extend_from_slice(format!("{:x}\r\n", 1 << 16).as_bytes());
        req.extend(std::iter::repeat_n(0u8, 1 << 16));
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let answer = raw(&server.url, req, false).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"));

    // A body shorter than its declared length, then the connection closes.
    let mut req = b"POST /v1/sessions HTTP/1.1\r\nhost: x\r\ncontent-length: 5000\r\n\r\n".to_vec();
    req.extend(std::iter::repeat_n(7u8, 100));
    let _ = raw(&server.url, req, true).await;
    // Garbage that is not HTTP.
    let _ = raw(&server.url, vec![0xff; 4096], true).await;

    // An unknown session is answered without waiting for the (never sent) body.
    let req = b"POST /v1/sessions/x/forward HTTP/1.1\r\nhost: x\r\ncontent-length: 2000000\r\n\r\n";
    let t = std::time::Instant::now();
    let answer = raw(&server.url, req.to_vec(), false).await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(answer.contains("unknown_session"));
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(c.health().await.unwrap().status, "ok");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_memory_and_cache_limits() {
    let probe = TestServer::start(test_limits()).await;
    let keys = probe.keys(7).await;
    let key_bytes = keys.evaluation_keys().encoded_len() as u64;
    probe.shutdown().await;

    let limits = Limits {
        max_sessions: 3,
        memory_budget_bytes: 2 * key_bytes + key_bytes / 2,
        max_cache_steps: 2,
        ..test_limits()
    };
    let server = TestServer::start(limits).await;
    let c = &server.client;
    let a = c.create_session(&keys).await.unwrap().session_id;
    let b = c.create_session(&keys).await.unwrap().session_id;
    assert_ne!(a, b);
    let e = c.create_session(&keys).await.unwrap_err();
    assert_eq!(code(&e), (503, "memory_budget".into()));
    let ct = keys.encrypt_replicated(&input(1)).unwrap();
    for _ in 0..2 {
        c.step(&a, &server.params, std::slice::from_ref(&ct))
            .await
            .unwrap();
    }
    let e = c
        .step(&a, &server.params, std::slice::from_ref(&ct))
        .await
        .unwrap_err();
    assert_eq!(code(&e), (409, "cache_full".into()));
    c.close_session(&b).await.unwrap();
    let b = c.create_session(&keys).await.unwrap().session_id;
    c.close_session(&b).await.unwrap();
    let metrics = c.metrics().await.unwrap();
    assert!(
        metrics.contains("psf_errors_total{code=\"memory_budget\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("psf_errors_total{code=\"cache_full\"} 1"),
        "{metrics}"
    );
    server.shutdown().await;
}
