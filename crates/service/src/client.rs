//! The client library: keys for a server's workload, sessions, and jobs on encrypted inputs.
//!
//! The secret key stays in [`ClientKeys`]; only evaluation keys and ciphertexts are sent.

use psf_ckks::serialization::WireEncode;
use psf_ckks::{
    Ciphertext, CkksParameters, Decryptor, Encoder, Encryptor, EvaluationKeys, KeyGenerator,
    PublicKey, SecretKey,
};
use reqwest::StatusCode;

use crate::api::{Health, KeyRequirements, ServerInfo, SessionCreated, SessionStatus};
use crate::{ErrorBody, Result, ServiceError, frame};

/// A client's keys: the secret and public keys, and the evaluation keys a server needs.
pub struct ClientKeys {
    params: CkksParameters,
    secret: SecretKey,
    public: PublicKey,
    evaluation: EvaluationKeys,
}

impl ClientKeys {
    /// Generates keys under `params` for `needs` (seeded for tests; from the OS otherwise).
    ///
    /// # Errors
    /// A Galois element the ring does not have.
    pub fn generate(
        params: &CkksParameters,
        needs: &KeyRequirements,
        seed: Option<u64>,
    ) -> Result<Self> {
        let mut kgen = match seed {
            Some(s) => KeyGenerator::seeded(params.ring(), s),
            None => KeyGenerator::new(params.ring()),
        };
        let secret = kgen.gen_secret_key();
        let public = kgen.gen_public_key(&secret);
        let mut evaluation = EvaluationKeys::default();
        if needs.relinearization {
            evaluation.relin = Some(kgen.gen_relinearization_key(&secret));
        }
        for &g in &needs.galois_elements {
            let key = kgen
                .gen_galois_key(g, &secret)
                .map_err(psf_ckks::CkksError::from)?;
            evaluation.galois.insert(g, key);
        }
        Ok(Self {
            params: params.clone(),
            secret,
            public,
            evaluation,
        })
    }

    /// Keys loaded from elsewhere (e.g. a key directory).
    pub fn from_parts(
        params: &CkksParameters,
        secret: SecretKey,
        public: PublicKey,
        evaluation: EvaluationKeys,
    ) -> Self {
        Self {
            params: params.clone(),
            secret,
            public,
            evaluation,
        }
    }

    /// The parameters.
    pub fn params(&self) -> &CkksParameters {
        &self.params
    }

    /// The evaluation keys (what a server receives).
    pub fn evaluation_keys(&self) -> &EvaluationKeys {
        &self.evaluation
    }

    /// The secret key (never sent).
    pub fn secret_key(&self) -> &SecretKey {
        &self.secret
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Encrypts `values` (repeated cyclically to fill every slot) at the top level with the
    /// default scale: the input shape of the server's workloads.
    ///
    /// # Errors
    /// No values, or an encoding error.
    pub fn encrypt_replicated(&self, values: &[f64]) -> Result<Ciphertext> {
        if values.is_empty() {
            return Err(ServiceError::InvalidRequest {
                reason: "nothing to encrypt".into(),
            });
        }
        let p = &self.params;
        let slots: Vec<f64> = values.iter().copied().cycle().take(p.max_slots()).collect();
        let pt = Encoder::new(p).encode(
            &slots,
            p.max_log_slots(),
            p.ring().max_level(),
            p.default_scale(),
        )?;
        Encryptor::with_public_key(&self.public)
            .encrypt(&pt)
            .map_err(|e| psf_ckks::CkksError::from(e).into())
    }

    /// Decrypts and decodes every slot.
    ///
    /// # Errors
    /// A ciphertext of other parameters.
    pub fn decrypt(&self, ct: &Ciphertext) -> Result<Vec<f64>> {
        let pt = Decryptor::new(&self.secret)
            .decrypt(ct)
            .map_err(psf_ckks::CkksError::from)?;
        Ok(Encoder::new(&self.params).decode(&pt)?)
    }
}

/// A connection to a psformer server.
#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

/// Turns an answer into its body, or into the server's typed error.
async fn check(resp: reqwest::Response) -> Result<reqwest::Response> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let text = resp.text().await?;
    let body = serde_json::from_str::<ErrorBody>(&text).unwrap_or(ErrorBody {
        code: "untyped".into(),
        message: text.chars().take(200).collect(),
    });
    Err(ServiceError::Server {
        status: status.as_u16(),
        body,
    })
}

fn protocol(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Protocol {
        reason: e.to_string(),
    }
}

impl Client {
    /// A client of the server at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1{path}", self.base)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        let resp = check(self.http.get(self.url(path)).send().await?).await?;
        serde_json::from_slice(&resp.bytes().await?).map_err(protocol)
    }

    /// `GET /health`.
    ///
    /// # Errors
    /// Transport errors or a typed server error.
    pub async fn health(&self) -> Result<Health> {
        self.get_json("/health").await
    }

    /// `GET /info`.
    ///
    /// # Errors
    /// As [`Self::health`].
    pub async fn info(&self) -> Result<ServerInfo> {
        self.get_json("/info").await
    }

    /// `GET /metrics` (Prometheus text).
    ///
    /// # Errors
    /// As [`Self::health`].
    pub async fn metrics(&self) -> Result<String> {
        let resp = check(self.http.get(self.url("/metrics")).send().await?).await?;
        Ok(resp.text().await?)
    }

    /// `GET /params`, decoded and built.
    ///
    /// # Errors
    /// As [`Self::health`], or parameters that do not decode.
    pub async fn params(&self) -> Result<CkksParameters> {
        let resp = check(self.http.get(self.url("/params")).send().await?).await?;
        CkksParameters::from_bytes(&resp.bytes().await?).map_err(|source| ServiceError::Decode {
            what: "parameters",
            source,
        })
    }

    /// Opens a session with `keys`' evaluation keys.
    ///
    /// # Errors
    /// As [`Self::create_session_raw`].
    pub async fn create_session(&self, keys: &ClientKeys) -> Result<SessionCreated> {
        self.create_session_raw(keys.evaluation_keys().to_bytes())
            .await
    }

    /// Opens a session by uploading encoded evaluation keys as they are.
    ///
    /// # Errors
    /// Transport errors or the server's typed error (malformed keys, missing keys, limits).
    pub async fn create_session_raw(&self, body: Vec<u8>) -> Result<SessionCreated> {
        let req = self.http.post(self.url("/sessions")).body(body);
        let resp = check(req.send().await?).await?;
        if resp.status() != StatusCode::CREATED {
            return Err(protocol(format!("status {}", resp.status())));
        }
        serde_json::from_slice(&resp.bytes().await?).map_err(protocol)
    }

    /// `GET /sessions/{id}`.
    ///
    /// # Errors
    /// As [`Self::health`].
    pub async fn session(&self, id: &str) -> Result<SessionStatus> {
        self.get_json(&format!("/sessions/{id}")).await
    }

    /// Closes a session.
    ///
    /// # Errors
    /// As [`Self::health`].
    pub async fn close_session(&self, id: &str) -> Result<()> {
        let url = self.url(&format!("/sessions/{id}"));
        check(self.http.delete(url).send().await?).await?;
        Ok(())
    }

    /// Empties a session's encrypted cache.
    ///
    /// # Errors
    /// As [`Self::health`].
    pub async fn reset(&self, id: &str) -> Result<SessionStatus> {
        let url = self.url(&format!("/sessions/{id}/reset"));
        let resp = check(self.http.post(url).send().await?).await?;
        serde_json::from_slice(&resp.bytes().await?).map_err(protocol)
    }

    /// Runs `forward` on `inputs`; the outputs are decoded under `params`.
    ///
    /// # Errors
    /// As [`Self::job_raw`], or outputs that do not decode.
    pub async fn forward(
        &self,
        id: &str,
        params: &CkksParameters,
        inputs: &[Ciphertext],
    ) -> Result<Vec<Ciphertext>> {
        self.job(id, "forward", params, inputs).await
    }

    /// Runs one `step` (extends the session's encrypted cache).
    ///
    /// # Errors
    /// As [`Self::forward`].
    pub async fn step(
        &self,
        id: &str,
        params: &CkksParameters,
        inputs: &[Ciphertext],
    ) -> Result<Vec<Ciphertext>> {
        self.job(id, "step", params, inputs).await
    }

    /// Frames `inputs`, runs job `kind` and decodes its outputs under `params`.
    async fn job(
        &self,
        id: &str,
        kind: &str,
        params: &CkksParameters,
        inputs: &[Ciphertext],
    ) -> Result<Vec<Ciphertext>> {
        let bytes = self
            .job_raw(id, kind, frame::encode_ciphertexts(inputs))
            .await?;
        frame::decode_ciphertexts(&bytes, params, 0, usize::MAX)
    }

    /// Posts a raw body to job endpoint `kind` (`"forward"` or `"step"`) and returns the raw
    /// answer.
    ///
    /// # Errors
    /// Transport errors or the server's typed error.
    pub async fn job_raw(&self, id: &str, kind: &str, body: Vec<u8>) -> Result<Vec<u8>> {
        let url = self.url(&format!("/sessions/{id}/{kind}"));
        let resp = check(self.http.post(url).body(body).send().await?).await?;
        Ok(resp.bytes().await?.to_vec())
    }
}
