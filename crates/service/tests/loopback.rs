//! Round trips over loopback: keys uploaded, encrypted forward and step jobs checked against
//! the f64 twin, sessions listed and closed, concurrent sessions, graceful shutdown.

mod common;

use std::time::{Duration, Instant};

use common::{MIN_BITS, TestServer, bits, input, test_limits};
use psf_service::ServiceError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_and_step_round_trip() {
    let server = TestServer::start(test_limits()).await;
    let c = &server.client;
    assert_eq!(c.health().await.unwrap().status, "ok");
    let info = c.info().await.unwrap();
    assert_eq!(info.workload, "probe");
    assert!(info.keys.relinearization && !info.keys.galois_elements.is_empty());
    let params = c.params().await.unwrap();
    assert_eq!(params.ring().name(), server.params.ring().name());

    let keys = server.keys(1).await;
    let created = c.create_session(&keys).await.unwrap();
    let id = created.session_id.as_str();
    assert_eq!(id.len(), 32);

    let x = input(1);
    let out = c
        .forward(id, &params, &[keys.encrypt_replicated(&x).unwrap()])
        .await
        .unwrap();
    assert_eq!(out.outputs.len(), 1);
    let got = keys.decrypt(&out.outputs[0]).unwrap();
    let b = bits(&server.probe.forward_f64(&x), &got);
    assert!(b >= MIN_BITS, "forward: {b:.1} bits");

    let mut steps = Vec::new();
    for t in 0..3 {
        let x = input(10 + t);
        let ct = keys.encrypt_replicated(&x).unwrap();
        steps.push(x);
        let out = c.step(id, &params, &[ct]).await.unwrap();
        assert_eq!(out.result.cached_steps, Some(t as usize + 1));
        assert!(out.result.report.is_none() && out.result.seconds > 0.0);
        let got = keys.decrypt(&out.outputs[0]).unwrap();
        let b = bits(&server.probe.step_f64(&steps), &got);
        assert!(b >= MIN_BITS, "step {t}: {b:.1} bits");
    }
    let status = c.session(id).await.unwrap();
    assert_eq!((status.cached_steps, status.jobs), (3, 4));
    assert!(status.bytes > created.key_bytes);
    assert_eq!(server.state.sessions().used(), status.bytes);
    assert_eq!(c.reset(id).await.unwrap().cached_steps, 0);
    assert_eq!(server.state.sessions().used(), created.key_bytes);

    let metrics = c.metrics().await.unwrap();
    assert!(
        metrics.contains("psf_jobs_total{kind=\"step\"} 3"),
        "{metrics}"
    );
    assert!(metrics.contains("psf_sessions_open 1"), "{metrics}");

    c.close_session(id).await.unwrap();
    assert_eq!(server.state.sessions().used(), 0);
    let err = c.session(id).await.unwrap_err();
    assert!(err.has_code("unknown_session"), "{err}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_sessions() {
    let server = TestServer::start(test_limits()).await;
    let params = server.params.clone();
    let mut tasks = Vec::new();
    for s in 0..8u64 {
        let keys = server.keys(100 + s).await;
        let (c, params, probe) = (server.client.clone(), params.clone(), server.probe.clone());
        tasks.push(tokio::spawn(async move {
            let id = c.create_session(&keys).await.unwrap().session_id;
            let mut steps = Vec::new();
            for t in 0..2 {
                let x = input(s * 7 + t);
                let ct = keys.encrypt_replicated(&x).unwrap();
                let fwd = c
                    .forward(&id, &params, std::slice::from_ref(&ct))
                    .await
                    .unwrap();
                let b = bits(
                    &probe.forward_f64(&x),
                    &keys.decrypt(&fwd.outputs[0]).unwrap(),
                );
                assert!(b >= MIN_BITS, "session {s} forward {t}: {b:.1} bits");
                steps.push(x);
                let st = c.step(&id, &params, &[ct]).await.unwrap();
                let b = bits(
                    &probe.step_f64(&steps),
                    &keys.decrypt(&st.outputs[0]).unwrap(),
                );
                assert!(b >= MIN_BITS, "session {s} step {t}: {b:.1} bits");
            }
            // Another session's keys decrypt this session's outputs to noise.
            (id, keys)
        }));
    }
    let mut done = Vec::new();
    for t in tasks {
        done.push(t.await.unwrap());
    }
    let store = server.state.sessions();
    assert_eq!(store.len(), 8);
    let budget_used = store.used();
    let mut expected = 0;
    for (id, _) in &done {
        let st = server.client.session(id).await.unwrap();
        assert_eq!(st.cached_steps, 2);
        expected += st.bytes;
    }
    assert_eq!(budget_used, expected, "accounted bytes = keys + caches");
    assert!(budget_used <= test_limits().memory_budget_bytes);

    // Isolation: a ciphertext of session 0 sent to session 1 runs under session 1's keys and
    // decrypts (with session 0's key) to garbage, never to the right answer.
    let x = input(99);
    let (id1, keys0) = (&done[1].0, &done[0].1);
    let out = server
        .client
        .forward(id1, &params, &[keys0.encrypt_replicated(&x).unwrap()])
        .await
        .unwrap();
    let b = bits(
        &server.probe.forward_f64(&x),
        &keys0.decrypt(&out.outputs[0]).unwrap(),
    );
    assert!(
        b < 4.0,
        "cross-session evaluation must not be correct ({b:.1} bits)"
    );

    for (id, _) in &done {
        server.client.close_session(id).await.unwrap();
    }
    assert_eq!(store.used(), 0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_jobs_in_flight() {
    let mut server = TestServer::start(test_limits()).await;
    let keys = server.keys(5).await;
    let c = server.client.clone();
    let id = c.create_session(&keys).await.unwrap().session_id;
    let x = input(3);
    let ct = keys.encrypt_replicated(&x).unwrap();
    let params = server.params.clone();
    let jobs: Vec<_> = (0..3)
        .map(|_| {
            let (c, id, params, ct) = (c.clone(), id.clone(), params.clone(), ct.clone());
            tokio::spawn(async move { c.forward(&id, &params, &[ct]).await })
        })
        .collect();
    // Let all three requests reach the worker pool (a connection whose request is not yet
    // read counts as idle and is closed by the shutdown), then ask the server to stop.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let state = &server.state;
        let arrived = state.jobs().running() + state.jobs().queued();
        let finished = state.metrics().jobs_ok_of("forward") as usize;
        if arrived + finished >= jobs.len() {
            break;
        }
        assert_eq!(
            state.metrics().errors_with("busy"),
            0,
            "a forward was refused"
        );
        assert!(
            Instant::now() < deadline,
            "the forwards never reached the pool"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let handle = server.signal_shutdown();
    for j in jobs {
        let out = j.await.unwrap().unwrap();
        let b = bits(
            &server.probe.forward_f64(&x),
            &keys.decrypt(&out.outputs[0]).unwrap(),
        );
        assert!(b >= MIN_BITS);
    }
    handle.await.unwrap().unwrap();
    match c.health().await {
        Err(ServiceError::Transport(_)) => {}
        other => panic!("the server still answers after shutdown: {other:?}"),
    }
}
