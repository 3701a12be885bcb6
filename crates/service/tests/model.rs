//! The encrypted language model over loopback: a tiny GPT-NeoX Power-Softmax model written into
//! a temp dir (`config.json`, `model.safetensors`, `poly.json`), served on the INSECURE
//! N = 2^12 twin of the 128-bit bootstrapping chain; a client with its own copy of the
//! directory uploads its keys in several parts, runs a batch of prompts and decrypts logits
//! that match the `PolyModel` twin. Key uploads of other parameters, malformed, repeated or of
//! the wrong weight are refused, and sessions never share keys. Step-wise generation appends
//! one encrypted token per `step` to the session's encrypted KV cache.

use std::path::Path;
use std::sync::Arc;

use candle_core::Device;
use psf_circuits::bootstrap::Encapsulation;
use psf_ckks::serialization::WireEncode;
use psf_ckks::{CkksParameters, EvaluationKeys, KeyGenerator};
use psf_infer::HeadPositions;
use psf_model::model::var_tensors;
use psf_model::{Model, ModelConfigLiteral};
use psf_poly::{CalibrationOptions, Mode, ObservedRanges, PolyWeights, calibrate};
use psf_service::frame::encode_ciphertexts;
use psf_service::{
    Calibration, Client, Engine, Limits, ModelClient, ModelOptions, ModelWorkload, Server,
    ServiceError, SessionMode,
};
use tokio::sync::oneshot;

const CONFIG: &str = r#"{"model_type":"gpt_neox","vocab_size":64,"hidden_size":32,
    "num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":64,
    "max_position_embeddings":16,"rotary_pct":0.5,
    "attention_norm":{"kind":"power","p":4,"eps":0.001}}"#;

/// Pseudo-random token ids.
fn ids(n: usize, seed: u32) -> Vec<u32> {
    (0..n as u32)
        .map(|i| (i.wrapping_mul(2654435761) ^ seed.wrapping_mul(40503)) % 64)
        .collect()
}

/// Writes a random model and its calibrated `PolySpec` into `dir`.
fn write_model(dir: &Path) {
    let lit: ModelConfigLiteral = serde_json::from_str(CONFIG).unwrap();
    let cfg = lit.try_build().unwrap();
    let (_, varmap) = Model::init_random(&cfg, 3, &Device::Cpu).unwrap();
    let model = Model::with_varmap(&cfg, &varmap, 3, &Device::Cpu).unwrap();
    let tensors = var_tensors(&varmap);
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("config.json"), CONFIG).unwrap();
    let windows: Vec<Vec<u32>> = (0..6).map(|s| ids(16, s * 7 + 1)).collect();
    let ranges = ObservedRanges::record(&model, &cfg, &windows).unwrap();
    let spec = calibrate(&cfg, &ranges, &CalibrationOptions::default()).unwrap();
    spec.to_file(dir.join("poly.json")).unwrap();
}

fn options() -> ModelOptions {
    ModelOptions {
        seq_len: 8,
        batch: 4,
        log_n: 12,
        threads: 2,
        max_len: Some(6),
        head: HeadPositions::All,
    }
}

struct Served {
    client: Client,
    params: CkksParameters,
    workload: Arc<ModelWorkload>,
    stop: oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Compiles the model of `dir` with [`options`] and serves it on loopback.
async fn serve(dir: &Path, limits: Limits) -> Served {
    serve_with(dir, limits, options()).await
}

/// Compiles the model of `dir` with `opts` and serves it on loopback.
async fn serve_with(dir: &Path, limits: Limits, opts: ModelOptions) -> Served {
    let dir = dir.to_path_buf();
    let workload = tokio::task::spawn_blocking(move || {
        let calibration = Calibration::Tokens(ids(256, 99));
        ModelWorkload::load(&dir, &calibration, &opts).unwrap()
    })
    .await
    .unwrap();
    let workload = Arc::new(workload);
    let engine = Engine::model(workload.clone()).unwrap();
    let params = engine.params().clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(Server::new(engine, limits).serve(listener, async move {
        let _ = stopped.await;
    }));
    Served {
        client: Client::new(&url),
        params,
        workload,
        stop,
        handle,
    }
}

impl Served {
    async fn shutdown(self) {
        let _ = self.stop.send(());
        self.handle.await.unwrap().unwrap();
    }
}

fn code(e: &ServiceError) -> (u16, String) {
    match e {
        ServiceError::Server { status, body } => (*status, body.code.clone()),
        other => panic!("expected a typed server error, got {other}"),
    }
}

/// Limits that force the evaluation keys into several uploads (two keys per upload).
fn limits(key_body: u64) -> Limits {
    Limits {
        max_key_bytes: 5 * key_body / 2,
        max_input_bytes: 64 << 20,
        max_batch: 8,
        memory_budget_bytes: 4 << 30,
        upload_timeout_secs: 60,
        ..Limits::default()
    }
}

/// Max abs error, MSE and top-1 agreement of `have` against `want`.
fn compare(want: &[Vec<f64>], have: &[Vec<f64>]) -> (f64, f64, f64) {
    let argmax = |v: &[f64]| (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap();
    let (mut max, mut se, mut n, mut agree) = (0.0f64, 0.0, 0usize, 0usize);
    for (w, h) in want.iter().zip(have) {
        for (a, b) in w.iter().zip(h) {
            max = max.max((a - b).abs());
            se += (a - b) * (a - b);
            n += 1;
        }
        agree += usize::from(argmax(w) == argmax(h));
    }
    (max, se / n as f64, agree as f64 / want.len() as f64)
}

/// The PolyModel's logits at each prompt's last position.
fn twin(weights: &PolyWeights, dir: &Path, prompts: &[Vec<u32>]) -> Vec<Vec<f64>> {
    let spec = psf_poly::PolySpec::from_file(dir.join("poly.json")).unwrap();
    let poly = psf_poly::PolyModel::new(weights.clone(), spec).unwrap();
    prompts
        .iter()
        .map(|p| {
            let f = poly.forward_ids(p, Mode::Polynomial).unwrap();
            f.logits.row(p.len() - 1).to_vec()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_model_round_trip_matches_the_poly_model() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path());
    let ring = psf_circuits::bootstrap::presets::for_log_n(options().log_n)
        .params
        .try_build()
        .unwrap();
    let ring = ring.ring();
    let key_body = (8 + 12 + 16 * ring.dnum() * ring.qp().len() * ring.n()) as u64;
    let s = serve(dir.path(), limits(key_body)).await;
    let c = &s.client;
    let info = c.info().await.unwrap();
    assert_eq!(info.workload, "model");
    let spec = ModelClient::spec_of(&info).unwrap();
    assert_eq!(
        info.keys.encapsulation_weight,
        spec.keys.encapsulation_weight
    );
    eprintln!(
        "{}: {} bootstrap sites, {} Galois keys, keys {:.1} MiB + {:.1} MiB, context {:.1} MiB",
        spec.params_name,
        spec.bootstrap_sites,
        spec.keys.galois_elements.len(),
        spec.evaluation_key_bytes as f64 / 1048576.0,
        spec.encapsulation_key_bytes as f64 / 1048576.0,
        spec.context_bytes as f64 / 1048576.0
    );

    // Client: its own copy of the model, keys, a session opened in several uploads.
    let (params, d, info2) = (s.params.clone(), dir.path().to_path_buf(), info.clone());
    let mc = tokio::task::spawn_blocking(move || {
        ModelClient::open(&info2, &params, &d, SessionMode::Forward, Some(21)).unwrap()
    })
    .await
    .unwrap();
    let created = c.create_session(mc.keys()).await.unwrap();
    assert!(created.keys.ready, "{:?}", created.keys);
    let id = created.session_id;
    assert_eq!(c.session(&id).await.unwrap().bytes, created.key_bytes);
    let metrics = c.metrics().await.unwrap();
    assert!(
        metrics.contains("psf_jobs_total{kind=\"upload_encapsulation\"} 1"),
        "{metrics}"
    );
    // The published sizes are exact: every further part adds its header, flag and count.
    let parts: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("psf_jobs_total{kind=\"upload_keys\"} "))
        .expect("several uploads")
        .parse()
        .unwrap();
    let framing = parts * (psf_ckks::serialization::HEADER_LEN as u64 + 5);
    assert_eq!(
        created.key_bytes,
        spec.evaluation_key_bytes + spec.encapsulation_key_bytes + framing
    );

    let prompts: Vec<Vec<u32>> = vec![ids(8, 1), ids(5, 2), ids(8, 3)];
    let cts = mc.encrypt(&prompts, Some(22)).unwrap();
    assert_eq!(cts.len(), info.input.ciphertexts);
    let out = c.forward(&id, &s.params, &cts).await.unwrap();
    let report = out.result.report.expect("the model's report");
    eprintln!("{}", report.table());
    assert_eq!(report.bootstraps, s.workload.compiled().plan.bootstraps);
    assert!(report.total_s > 0.0);
    let have = mc.decrypt_last(&out.outputs, &prompts).unwrap();
    let want = twin(mc.weights(), dir.path(), &prompts);
    let (max, mse, top1) = compare(&want, &have);
    eprintln!("encrypted vs PolyModel: max abs error {max:.3e}, MSE {mse:.3e}, top-1 {top1}");
    assert!(top1 == 1.0 && mse < 1e-6, "max {max} mse {mse} top1 {top1}");

    // This server answers every position: requested positions are refused.
    let e = (c.forward_at(&id, &s.params, &cts, &[7, 4, 7, 7]).await).unwrap_err();
    assert_eq!(code(&e), (400, "invalid_request".into()));

    let metrics = c.metrics().await.unwrap();
    assert!(
        metrics.contains("psf_jobs_total{kind=\"forward\"} 1"),
        "{metrics}"
    );
    let status = c.session(&id).await.unwrap();
    // The bootstrapping circuit is the workload's, shared: the session holds its keys.
    assert_eq!(status.bytes, created.key_bytes);

    // Isolation: the same ciphertexts sent to another client's session are evaluated under
    // that session's keys only, and decrypt (with the first client's key) to garbage.
    let (params, d) = (s.params.clone(), dir.path().to_path_buf());
    let other = tokio::task::spawn_blocking(move || {
        ModelClient::open(&info, &params, &d, SessionMode::Forward, Some(31)).unwrap()
    })
    .await
    .unwrap();
    let other_id = c.create_session(other.keys()).await.unwrap().session_id;
    let cross = c.forward(&other_id, &s.params, &cts).await.unwrap();
    let garbage = mc.decrypt_last(&cross.outputs, &prompts).unwrap();
    let (max, _, _) = compare(&want, &garbage);
    assert!(
        max > 1.0,
        "another session's keys must not give the answer ({max:.3e})"
    );
    c.close_session(&other_id).await.unwrap();
    c.close_session(&id).await.unwrap();
    assert_eq!(c.health().await.unwrap().sessions, 0);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_uploads_are_checked_and_sessions_do_not_share_keys() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path());
    let s = serve(dir.path(), Limits::default()).await;
    let c = &s.client;
    let spec = ModelClient::spec_of(&c.info().await.unwrap()).unwrap();
    let h = spec.keys.encapsulation_weight.unwrap();

    // A few keys under the server's parameters and under others.
    let params = s.params.clone();
    // A rotation of the bootstrapping (its key must be full), to be made at level 1.
    let log_n = params.ring().log_n();
    let full_rotation = *spec
        .keys
        .rotations
        .iter()
        .find(|&&r| {
            let g = psf_ckks::galois_element_for_rotation(r, log_n);
            !spec.keys.key_levels.contains_key(&g)
        })
        .unwrap();
    let (relin, encap, light, foreign_relin, foreign_encap, low) =
        tokio::task::spawn_blocking(move || {
            let mut kgen = KeyGenerator::seeded(params.ring(), 5);
            let sk = kgen.gen_secret_key();
            let relin = EvaluationKeys::generate(&mut kgen, &sk, &[], false).unwrap();
            let mut low =
                EvaluationKeys::generate_leveled(&mut kgen, &sk, &[(full_rotation, 1)], false)
                    .unwrap();
            low.relin = None;
            let encap = Encapsulation::generate(&params, &sk, h, Some(6)).unwrap();
            let light = Encapsulation::generate(&params, &sk, h / 2, Some(7)).unwrap();
            let other = psf_circuits::bootstrap::presets::for_log_n(11)
                .params
                .try_build()
                .unwrap();
            let mut kgen = KeyGenerator::seeded(other.ring(), 8);
            let sk = kgen.gen_secret_key();
            let foreign_relin = EvaluationKeys::generate(&mut kgen, &sk, &[], false).unwrap();
            let foreign_encap = Encapsulation::generate(&other, &sk, h, Some(9)).unwrap();
            (relin, encap, light, foreign_relin, foreign_encap, low)
        })
        .await
        .unwrap();

    let e = c
        .create_session_raw(foreign_relin.to_bytes())
        .await
        .unwrap_err();
    assert_eq!(code(&e), (400, "malformed_object".into()));
    assert!(e.to_string().contains("parameters mismatch"), "{e}");

    // Session A: the relinearization key only.
    let a = c.create_session_raw(relin.to_bytes()).await.unwrap();
    assert!(!a.keys.ready && a.keys.encapsulation_missing);
    assert_eq!(a.keys.galois_missing, spec.keys.galois_elements);
    let a = a.session_id;
    let good = encap.to_bytes();
    let mut wrong_kind = good.clone();
    wrong_kind[6] = 9;
    for (body, want) in [
        (foreign_encap.to_bytes(), (400, "malformed_object")),
        (good[..good.len() / 3].to_vec(), (400, "malformed_object")),
        ([good.as_slice(), &[0]].concat(), (400, "malformed_object")),
        (wrong_kind, (400, "malformed_object")),
        (relin.to_bytes(), (400, "malformed_object")),
        (light.to_bytes(), (400, "invalid_request")),
    ] {
        let e = c.upload_raw(&a, "encapsulation", body).await.unwrap_err();
        assert_eq!(code(&e), (want.0, want.1.to_owned()), "{e}");
    }
    let status = c
        .upload_raw(&a, "encapsulation", good.clone())
        .await
        .unwrap();
    assert!(!status.keys.encapsulation_missing && !status.keys.ready);
    let e = c
        .upload_raw(&a, "encapsulation", good.clone())
        .await
        .unwrap_err();
    assert_eq!(code(&e), (400, "invalid_request".into()));
    let e = c
        .upload_raw(&a, "keys", relin.to_bytes())
        .await
        .unwrap_err();
    assert_eq!(code(&e), (400, "invalid_request".into()));
    // A rotation key limited below the level it serves.
    let e = c.upload_raw(&a, "keys", low.to_bytes()).await.unwrap_err();
    assert_eq!(code(&e), (400, "invalid_request".into()));
    assert!(e.to_string().contains("must reach"), "{e}");

    // Session B holds nothing of A's: its encapsulation keys are still missing, and a job
    // there is refused rather than run with A's keys.
    let b = c.create_session_raw(relin.to_bytes()).await.unwrap();
    assert!(b.keys.encapsulation_missing);
    let zeros = vec![vec![0.0; spec.d_model]; spec.seq_len];
    let pt_client = psf_infer::client::Client::new(spec.client.clone(), &s.params).unwrap();
    let mut kgen = KeyGenerator::seeded(s.params.ring(), 5);
    let sk = kgen.gen_secret_key();
    let mut enc = psf_ckks::Encryptor::with_secret_key(&sk).seeded(3);
    let cts = pt_client
        .encrypt_embeddings(&mut enc, &vec![zeros; spec.batch])
        .unwrap();
    let e = c
        .job_raw(&b.session_id, "forward", encode_ciphertexts(&cts))
        .await
        .unwrap_err();
    assert_eq!(code(&e), (400, "missing_keys".into()));
    assert!(e.to_string().contains("encapsulation true"), "{e}");
    let e = c
        .job_raw(&a, "forward", encode_ciphertexts(&cts))
        .await
        .unwrap_err();
    assert_eq!(code(&e), (400, "missing_keys".into()));
    assert!(e.to_string().contains("encapsulation false"), "{e}");
    let used = s.workload.spec().encapsulation_key_bytes + 2 * relin.encoded_len() as u64;
    assert_eq!(
        c.session(&a).await.unwrap().bytes + c.session(&b.session_id).await.unwrap().bytes,
        used
    );
    c.close_session(&a).await.unwrap();
    c.close_session(&b.session_id).await.unwrap();
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_wise_generation_with_the_encrypted_kv_cache() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path());
    let s = serve(dir.path(), Limits::default()).await;
    let c = &s.client;
    let info = c.info().await.unwrap();
    let (params, d) = (s.params.clone(), dir.path().to_path_buf());
    let mc = tokio::task::spawn_blocking(move || {
        ModelClient::open(&info, &params, &d, SessionMode::Step, Some(41)).unwrap()
    })
    .await
    .unwrap();
    let max_len = mc.spec().step.as_ref().unwrap().client.layout.max_len;
    let created = c
        .create_session_with(mc.keys(), SessionMode::Step)
        .await
        .unwrap();
    assert!(created.keys.ready && created.mode == SessionMode::Step);
    let id = created.session_id;
    // A step session runs steps only.
    let cts = vec![mc.encrypt_token(1, Some(2)).unwrap()];
    let e = c.forward(&id, &s.params, &cts).await.unwrap_err();
    assert_eq!(code(&e), (400, "invalid_request".into()));

    // A prompt of 3 tokens in one step job (a prefill: the LM head only at the last), then 3
    // tokens generated greedily and fed back one step at a time; the logits of each answered
    // position against the PolyModel on the prefix.
    let spec = psf_poly::PolySpec::from_file(dir.path().join("poly.json")).unwrap();
    let poly = psf_poly::PolyModel::new(mc.weights().clone(), spec).unwrap();
    let argmax = |v: &[f64]| (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap();
    let mut tokens = ids(3, 5);
    let (mut want, mut have) = (Vec::new(), Vec::new());
    let mut pos = 0;
    while pos < max_len {
        let batch: Vec<u32> = if pos == 0 {
            tokens.clone()
        } else {
            vec![tokens[pos]]
        };
        let cts: Vec<_> = batch
            .iter()
            .enumerate()
            .map(|(i, &t)| mc.encrypt_token(t, Some(50 + (pos + i) as u64)).unwrap())
            .collect();
        let out = c.step(&id, &s.params, &cts).await.unwrap();
        pos += batch.len();
        assert_eq!(out.result.cached_steps, Some(pos));
        assert_eq!(out.result.earlier_steps.len(), batch.len() - 1);
        let report = out.result.report.expect("the step's report");
        assert_eq!(
            report.bootstraps,
            s.workload.decoder().unwrap().plan.bootstraps
        );
        let logits = mc.decrypt_step(&out.outputs).unwrap();
        let twin = poly.forward_ids(&tokens[..pos], Mode::Polynomial).unwrap();
        want.push(twin.logits.row(pos - 1).to_vec());
        if pos < max_len {
            tokens.push(argmax(&logits) as u32);
        }
        have.push(logits);
    }
    let (max, mse, top1) = compare(&want, &have);
    eprintln!(
        "{} answers over {max_len} positions vs PolyModel: max abs error {max:.3e}, MSE {mse:.3e}, top-1 {top1}",
        want.len()
    );
    assert!(top1 == 1.0 && mse < 1e-6, "max {max} mse {mse} top1 {top1}");

    // The cache is accounted, bounded by the decoder's length, emptied by reset and freed
    // with the session.
    let status = c.session(&id).await.unwrap();
    assert_eq!(status.cached_steps, max_len);
    let health = c.health().await.unwrap();
    assert_eq!(health.sessions, 1);
    let ct = mc.encrypt_token(tokens[0], Some(1)).unwrap();
    let e = c.step(&id, &s.params, &[ct]).await.unwrap_err();
    assert_eq!(code(&e), (409, "cache_full".into()));
    let held = status.bytes;
    let reset = c.reset(&id).await.unwrap();
    assert_eq!(reset.cached_steps, 0);
    assert!(reset.bytes < held, "{} < {held}", reset.bytes);
    c.close_session(&id).await.unwrap();
    let metrics = c.metrics().await.unwrap();
    assert!(metrics.contains("psf_memory_used_bytes 0"), "{metrics}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_position_head_answers_each_prompts_requested_position() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path());
    let opts = ModelOptions {
        head: HeadPositions::Last,
        max_len: None,
        ..options()
    };
    let s = serve_with(dir.path(), Limits::default(), opts).await;
    let c = &s.client;
    let info = c.info().await.unwrap();
    let (params, d) = (s.params.clone(), dir.path().to_path_buf());
    let mc = tokio::task::spawn_blocking(move || {
        ModelClient::open(&info, &params, &d, SessionMode::Forward, Some(61)).unwrap()
    })
    .await
    .unwrap();
    let spec = mc.spec().clone();
    assert_eq!(spec.client.head, HeadPositions::Last);
    // One logit ciphertext per prompt (64 logits fit in one), not one per feature group.
    assert_eq!(spec.output_ciphertexts, spec.batch);
    let id = c.create_session(mc.keys()).await.unwrap().session_id;

    // Prompts of 8, 5 and 3 tokens (the fourth window repeats the first): each asks for
    // its own last position.
    let prompts: Vec<Vec<u32>> = vec![ids(8, 1), ids(5, 2), ids(3, 3)];
    let positions = mc
        .positions(&prompts)
        .unwrap()
        .expect("a last-position head");
    assert_eq!(positions, vec![7, 4, 2, 7]);
    let cts = mc.encrypt(&prompts, Some(62)).unwrap();
    let out = (c.forward_at(&id, &s.params, &cts, &positions).await).unwrap();
    assert_eq!(out.outputs.len(), spec.output_ciphertexts);
    let have = mc.decrypt_last(&out.outputs, &prompts).unwrap();
    let want = twin(mc.weights(), dir.path(), &prompts);
    let (max, mse, top1) = compare(&want, &have);
    eprintln!(
        "last-position head vs PolyModel: max abs error {max:.3e}, MSE {mse:.3e}, top-1 {top1}"
    );
    assert!(top1 == 1.0 && mse < 1e-6, "max {max} mse {mse} top1 {top1}");

    // Malformed or misfitting positions are typed errors, and the session survives them.
    let body = encode_ciphertexts(&cts);
    for kind in [
        "forward?positions=7,4",
        "forward?positions=7,4,2,8",
        "forward?positions=7,x,2,1",
        "forward?positions=1,1,1,1&positions=1,1,1,1",
        "forward?seed=3",
    ] {
        let e = (c.job_raw(&id, kind, body.clone()).await).unwrap_err();
        assert_eq!(code(&e), (400, "invalid_request".into()), "{kind}");
    }
    assert!(c.session(&id).await.unwrap().keys.ready);
    c.close_session(&id).await.unwrap();
    s.shutdown().await;
}
