//! The client library: keys for a server's workload, sessions, and jobs on encrypted inputs.
//!
//! The secret key stays in [`ClientKeys`]; only evaluation keys, encapsulation keys and
//! ciphertexts are sent. Key sets larger than the server's upload limit are sent in several
//! uploads ([`Client::create_session`]).

use psf_circuits::bootstrap::Encapsulation;
use psf_ckks::serialization::WireEncode;
use psf_ckks::{
    Ciphertext, CkksParameters, Decryptor, Encoder, Encryptor, EvaluationKeys, KeyGenerator,
    PublicKey, SecretKey,
};
use reqwest::StatusCode;

use crate::api::{
    Health, JobResult, KeyRequirements, ServerInfo, SessionCreated, SessionMode, SessionStatus,
};
use crate::{ErrorBody, Result, ServiceError, frame};

/// A client's keys: the secret and public keys, and the evaluation (and encapsulation) keys a
/// server needs.
pub struct ClientKeys {
    params: CkksParameters,
    secret: SecretKey,
    public: PublicKey,
    evaluation: EvaluationKeys,
    encapsulation: Option<Encapsulation>,
}

/// What a job answered: its output ciphertexts and its facts (time, the model's report).
pub struct JobOutput {
    /// The output ciphertexts.
    pub outputs: Vec<Ciphertext>,
    /// The job's facts.
    pub result: JobResult,
}

impl std::fmt::Debug for JobOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobOutput")
            .field("outputs", &self.outputs.len())
            .field("result", &self.result)
            .finish()
    }
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
            encapsulation: None,
        })
    }

    /// Generates the keys of a compiled model ([`crate::model::ModelSpec::keys`]): exactly
    /// its evaluation keys and, when it bootstraps, its encapsulation keys (seeded for tests;
    /// from the OS otherwise).
    ///
    /// # Errors
    /// Key generation failures.
    pub fn for_model(
        params: &CkksParameters,
        needs: &psf_infer::KeyRequirements,
        seed: Option<u64>,
    ) -> Result<Self> {
        let mut kgen = match seed {
            Some(s) => KeyGenerator::seeded(params.ring(), s),
            None => KeyGenerator::new(params.ring()),
        };
        let secret = kgen.gen_secret_key();
        let public = kgen.gen_public_key(&secret);
        let (evaluation, encapsulation) =
            needs.generate(params, &mut kgen, &secret, seed.map(|s| s.wrapping_add(1)))?;
        Ok(Self {
            params: params.clone(),
            secret,
            public,
            evaluation,
            encapsulation,
        })
    }

    /// Keys loaded from elsewhere (e.g. a key directory).
    pub fn from_parts(
        params: &CkksParameters,
        secret: SecretKey,
        public: PublicKey,
        evaluation: EvaluationKeys,
        encapsulation: Option<Encapsulation>,
    ) -> Self {
        Self {
            params: params.clone(),
            secret,
            public,
            evaluation,
            encapsulation,
        }
    }

    /// The encapsulation keys of the bootstrapping (what a `model` server also receives).
    pub fn encapsulation(&self) -> Option<&Encapsulation> {
        self.encapsulation.as_ref()
    }

    /// Drops the evaluation and encapsulation keys (once the server holds them: at 128 bits
    /// they are gigabytes the client no longer needs); the secret and public keys stay.
    pub fn forget_uploaded(&mut self) {
        self.evaluation = EvaluationKeys::default();
        self.encapsulation = None;
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

/// Most ciphertexts a client accepts in one answer.
const MAX_OUTPUTS: usize = 1 << 16;

/// One part of a key set uploaded on its own: whether it carries the relinearization key,
/// and which Galois elements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPart {
    /// Carries the relinearization key.
    pub relin: bool,
    /// Galois elements, increasing.
    pub galois: Vec<usize>,
}

impl KeyPart {
    /// The keys of this part (a copy of one part only, made when it is sent).
    pub fn keys(&self, all: &EvaluationKeys) -> EvaluationKeys {
        EvaluationKeys {
            relin: all.relin.clone().filter(|_| self.relin),
            galois: self
                .galois
                .iter()
                .filter_map(|g| all.galois.get(g).map(|k| (*g, k.clone())))
                .collect(),
        }
    }
}

/// Splits `keys` into parts whose encodings stay within `limit` bytes where possible (a
/// single key larger than the limit goes alone; the server then refuses it).
pub fn key_parts(keys: &EvaluationKeys, limit: u64) -> Vec<KeyPart> {
    // Encoded sizes: a header, the relinearization flag and the Galois count per part; a
    // switching-key body (`n, digits, limbs` and residues) per key, plus a Galois element.
    let frame = (psf_ckks::serialization::HEADER_LEN + 5) as u64;
    let body = |k: &psf_rlwe::SwitchingKey| 12 + k.size_bytes() as u64;
    let mut singles: Vec<(KeyPart, u64)> = Vec::new();
    if let Some(relin) = &keys.relin {
        let part = KeyPart {
            relin: true,
            galois: Vec::new(),
        };
        singles.push((part, body(&relin.0)));
    }
    let mut galois: Vec<_> = keys.galois.iter().collect();
    galois.sort_unstable_by_key(|(g, _)| **g);
    for (&g, key) in galois {
        let part = KeyPart {
            relin: false,
            galois: vec![g],
        };
        singles.push((part, 8 + body(&key.key)));
    }
    let mut parts: Vec<KeyPart> = Vec::new();
    let mut size = 0u64;
    for (one, add) in singles {
        match parts.last_mut() {
            Some(part) if size + add <= limit => {
                part.relin |= one.relin;
                part.galois.extend(one.galois);
                size += add;
            }
            _ => {
                size = frame + add;
                parts.push(one);
            }
        }
    }
    parts
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

    /// Opens a session with `keys`: the evaluation keys in as many uploads as the server's
    /// `max_key_bytes` needs, then the encapsulation keys if any. Answers the session id,
    /// the bytes uploaded and the final key status.
    ///
    /// # Errors
    /// As [`Self::create_session_raw`] and [`Self::upload_raw`].
    pub async fn create_session(&self, keys: &ClientKeys) -> Result<SessionCreated> {
        self.create_session_with(keys, SessionMode::Forward).await
    }

    /// [`Self::create_session`] for a `mode` session (a model's `step` sessions generate with
    /// an encrypted KV cache).
    ///
    /// # Errors
    /// As [`Self::open_session`].
    pub async fn create_session_with(
        &self,
        keys: &ClientKeys,
        mode: SessionMode,
    ) -> Result<SessionCreated> {
        self.open_session(keys.evaluation_keys(), keys.encapsulation(), mode)
            .await
    }

    /// Opens a `mode` session with `evaluation` keys, in as many uploads as the server's
    /// `max_key_bytes` needs, then uploads the `encapsulation` keys if given.
    ///
    /// # Errors
    /// As [`Self::create_session_raw`] and [`Self::upload_raw`].
    pub async fn open_session(
        &self,
        evaluation: &EvaluationKeys,
        encapsulation: Option<&Encapsulation>,
        mode: SessionMode,
    ) -> Result<SessionCreated> {
        let limit = self.info().await?.limits.max_key_bytes;
        let parts = key_parts(evaluation, limit);
        let mut parts = parts.iter();
        let first = parts
            .next()
            .map(|p| p.keys(evaluation).to_bytes())
            .unwrap_or_else(|| EvaluationKeys::default().to_bytes());
        let mut created = self.post_session(first, mode).await?;
        let id = created.session_id.clone();
        for part in parts {
            let body = part.keys(evaluation).to_bytes();
            created.key_bytes += body.len() as u64;
            created.keys = self.upload_raw(&id, "keys", body).await?.keys;
        }
        if let Some(enc) = encapsulation {
            let body = enc.to_bytes();
            created.key_bytes += body.len() as u64;
            created.keys = self.upload_raw(&id, "encapsulation", body).await?.keys;
        }
        Ok(created)
    }

    /// Opens a session by uploading encoded evaluation keys as they are.
    ///
    /// # Errors
    /// Transport errors or the server's typed error (malformed keys, unneeded keys, limits).
    pub async fn create_session_raw(&self, body: Vec<u8>) -> Result<SessionCreated> {
        self.post_session(body, SessionMode::Forward).await
    }

    async fn post_session(&self, body: Vec<u8>, mode: SessionMode) -> Result<SessionCreated> {
        let url = self.url(&format!("/sessions?mode={}", mode.as_str()));
        let req = self.http.post(url).body(body);
        let resp = check(req.send().await?).await?;
        if resp.status() != StatusCode::CREATED {
            return Err(protocol(format!("status {}", resp.status())));
        }
        serde_json::from_slice(&resp.bytes().await?).map_err(protocol)
    }

    /// Uploads more keys to session `id`: `what` is `"keys"` (encoded evaluation keys, `POST`)
    /// or `"encapsulation"` (encoded encapsulation keys, `PUT`).
    ///
    /// # Errors
    /// Transport errors or the server's typed error.
    pub async fn upload_raw(&self, id: &str, what: &str, body: Vec<u8>) -> Result<SessionStatus> {
        let url = self.url(&format!("/sessions/{id}/{what}"));
        let req = match what {
            "encapsulation" => self.http.put(url),
            _ => self.http.post(url),
        };
        let resp = check(req.body(body).send().await?).await?;
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
    /// As [`Self::job_raw`], or an answer that does not decode.
    pub async fn forward(
        &self,
        id: &str,
        params: &CkksParameters,
        inputs: &[Ciphertext],
    ) -> Result<JobOutput> {
        self.job(id, "forward", params, inputs).await
    }

    /// Runs `forward` asking a last-position head for the logits of `positions` (one per
    /// prompt of the batch, e.g. [`crate::ModelClient::positions`]).
    ///
    /// # Errors
    /// As [`Self::forward`].
    pub async fn forward_at(
        &self,
        id: &str,
        params: &CkksParameters,
        inputs: &[Ciphertext],
        positions: &[usize],
    ) -> Result<JobOutput> {
        let list: Vec<String> = positions.iter().map(ToString::to_string).collect();
        let kind = format!("forward?positions={}", list.join(","));
        self.job(id, &kind, params, inputs).await
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
    ) -> Result<JobOutput> {
        self.job(id, "step", params, inputs).await
    }

    /// Frames `inputs`, runs job `kind` and decodes its answer under `params`.
    async fn job(
        &self,
        id: &str,
        kind: &str,
        params: &CkksParameters,
        inputs: &[Ciphertext],
    ) -> Result<JobOutput> {
        let bytes = self
            .job_raw(id, kind, frame::encode_ciphertexts(inputs))
            .await?;
        let (result, outputs) = frame::decode_result(&bytes, params, MAX_OUTPUTS)?;
        Ok(JobOutput { outputs, result })
    }

    /// Posts a raw body to job endpoint `kind` (`"forward"`, `"forward?positions=..."` or
    /// `"step"`) and returns the raw answer.
    ///
    /// # Errors
    /// Transport errors or the server's typed error.
    pub async fn job_raw(&self, id: &str, kind: &str, body: Vec<u8>) -> Result<Vec<u8>> {
        let url = self.url(&format!("/sessions/{id}/{kind}"));
        let resp = check(self.http.post(url).body(body).send().await?).await?;
        Ok(resp.bytes().await?.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use psf_ckks::sets;

    #[test]
    fn key_parts_stay_within_the_limit_and_cover_every_key() {
        let params = sets::insecure_n10().try_build().unwrap();
        let mut kgen = KeyGenerator::seeded(params.ring(), 1);
        let sk = kgen.gen_secret_key();
        let keys = EvaluationKeys::generate(&mut kgen, &sk, &[1, 2, 3, 5, 8], true).unwrap();
        let one = keys.encoded_len() as u64 / 7;
        let parts = key_parts(&keys, 2 * one);
        assert!(parts.len() >= 3, "{parts:?}");
        let mut galois = Vec::new();
        for p in &parts {
            let encoded = p.keys(&keys).to_bytes();
            assert!(
                encoded.len() as u64 <= 2 * one,
                "{} > {}",
                encoded.len(),
                2 * one
            );
            galois.extend(p.galois.iter().copied());
        }
        galois.sort_unstable();
        let mut all: Vec<usize> = keys.galois.keys().copied().collect();
        all.sort_unstable();
        assert_eq!(galois, all);
        assert_eq!(parts.iter().filter(|p| p.relin).count(), 1);
        // A limit below one key: one key per part.
        assert_eq!(key_parts(&keys, 1).len(), 1 + keys.galois.len());
    }
}
