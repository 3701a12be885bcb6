//! The client side of the `model` workload: the embedding lookup on the client's own copy of
//! the model directory, keys for the server's compiled model, encryption of a batch of
//! prompts and decryption of the logits at their last positions.
//!
//! The embedding table is public but never sent: the client loads the same model directory
//! as the server (`config.json`, `model.safetensors`, `poly.json`) and refuses to run when its
//! fingerprint differs from the server's ([`crate::model::ModelSpec::fingerprint`]). Prompts
//! shorter than the compiled `seq_len` are padded by repeating their own tokens (attention is
//! causal, so the logits at a prompt's last position do not depend on what follows, and
//! repeated text stays within the calibrated ranges); prompts fewer than the compiled `batch`
//! are repeated to fill it.

use std::path::Path;

use psf_ckks::{Ciphertext, CkksParameters, Decryptor, Encryptor};
use psf_infer::HeadPositions;
use psf_infer::client::{Client as InferClient, StepClient};
use psf_poly::PolyWeights;

use crate::api::{ServerInfo, SessionMode};
use crate::model::{ModelSpec, embed_prompts, model_fingerprint};
use crate::{ClientKeys, Result, ServiceError};

/// A client of a `model` server.
pub struct ModelClient {
    spec: ModelSpec,
    keys: ClientKeys,
    infer: InferClient,
    stepper: Option<StepClient>,
    weights: PolyWeights,
}

fn invalid<T>(reason: String) -> Result<T> {
    Err(ServiceError::InvalidRequest { reason })
}

impl ModelClient {
    /// A client for the server described by `info` and `params`, with the embedding table of
    /// `dir` (checked against the server's fingerprint) and fresh keys for a `mode` session
    /// (seeded for tests).
    ///
    /// # Errors
    /// A server that does not serve a model (or has no decoder for `step`), another model, or
    /// a key generation failure.
    pub fn open(
        info: &ServerInfo,
        params: &CkksParameters,
        dir: &Path,
        mode: SessionMode,
        seed: Option<u64>,
    ) -> Result<Self> {
        let spec = Self::spec_of(info)?;
        let local = model_fingerprint(dir)?;
        if local != spec.fingerprint {
            return invalid(format!(
                "{} has fingerprint {local}, the server's model {} has {}",
                dir.display(),
                spec.name,
                spec.fingerprint
            ));
        }
        let weights = PolyWeights::from_dir(dir).map_err(|e| ServiceError::Model {
            path: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let needs = match (mode, &spec.step) {
            (SessionMode::Forward, _) => &spec.keys,
            (SessionMode::Step, Some(step)) => &step.keys,
            (SessionMode::Step, None) => return Err(crate::model::no_decoder()),
        };
        let keys = ClientKeys::for_model(params, needs, seed)?;
        Self::new(spec, params, weights, keys)
    }

    /// The model facts of `info`.
    ///
    /// # Errors
    /// [`ServiceError::Protocol`] when the server does not serve a model.
    pub fn spec_of(info: &ServerInfo) -> Result<ModelSpec> {
        if info.workload != "model" {
            return Err(ServiceError::Protocol {
                reason: format!(
                    "the server runs the {} workload, not a model",
                    info.workload
                ),
            });
        }
        serde_json::from_value(info.workload_spec.clone()).map_err(|e| ServiceError::Protocol {
            reason: format!("model spec: {e}"),
        })
    }

    /// A client from its parts (the weights must be the server's model's).
    ///
    /// # Errors
    /// A spec that does not fit `params` or the weights.
    pub fn new(
        spec: ModelSpec,
        params: &CkksParameters,
        weights: PolyWeights,
        keys: ClientKeys,
    ) -> Result<Self> {
        let cfg = &weights.config;
        if cfg.hidden_size != spec.d_model || cfg.vocab_size != spec.vocab {
            return invalid(format!(
                "local model d={} vocab={}, server's d={} vocab={}",
                cfg.hidden_size, cfg.vocab_size, spec.d_model, spec.vocab
            ));
        }
        let infer = InferClient::new(spec.client.clone(), params)?;
        let stepper = spec
            .step
            .as_ref()
            .map(|s| StepClient::new(s.client.clone(), params))
            .transpose()?;
        Ok(Self {
            spec,
            keys,
            infer,
            stepper,
            weights,
        })
    }

    /// The server's model facts.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The keys (upload them with [`crate::Client::create_session_with`] in the mode they
    /// were made for).
    pub fn keys(&self) -> &ClientKeys {
        &self.keys
    }

    /// Drops the uploaded keys ([`ClientKeys::forget_uploaded`]).
    pub fn forget_uploaded_keys(&mut self) {
        self.keys.forget_uploaded();
    }

    /// The local model weights (embedding table; the f64 twin's weights).
    pub fn weights(&self) -> &PolyWeights {
        &self.weights
    }

    /// The `batch` token windows of `seq_len` a job encrypts for `prompts` (see the module
    /// docs for the padding).
    ///
    /// # Errors
    /// No prompts, more prompts than the batch, an empty prompt or one longer than `seq_len`.
    pub fn windows(&self, prompts: &[Vec<u32>]) -> Result<Vec<Vec<u32>>> {
        let (seq_len, batch) = (self.spec.seq_len, self.spec.batch);
        if prompts.is_empty() || prompts.len() > batch {
            return invalid(format!("{} prompts for a batch of {batch}", prompts.len()));
        }
        if let Some(p) = prompts.iter().find(|p| p.is_empty() || p.len() > seq_len) {
            return invalid(format!("a prompt of {} tokens (1..={seq_len})", p.len()));
        }
        Ok((0..batch)
            .map(|b| {
                let p = &prompts[b % prompts.len()];
                (0..seq_len).map(|j| p[j % p.len()]).collect()
            })
            .collect())
    }

    /// The position of each window's prompt whose logits a `forward` job asks for (its last
    /// token) when the server's head computes one position per prompt; `None` when it
    /// computes every position.
    ///
    /// # Errors
    /// As [`Self::windows`].
    pub fn positions(&self, prompts: &[Vec<u32>]) -> Result<Option<Vec<usize>>> {
        self.windows(prompts)?;
        if self.spec.client.head != HeadPositions::Last {
            return Ok(None);
        }
        let last = |b: usize| prompts[b % prompts.len()].len() - 1;
        Ok(Some((0..self.spec.batch).map(last).collect()))
    }

    /// Looks up and encrypts `prompts` (token ids) with the public key (seeded for tests).
    ///
    /// # Errors
    /// As [`Self::windows`], a token past the vocabulary, or an encryption error.
    pub fn encrypt(&self, prompts: &[Vec<u32>], seed: Option<u64>) -> Result<Vec<Ciphertext>> {
        let x = embed_prompts(&self.weights, &self.windows(prompts)?)?;
        let mut enc = Encryptor::with_public_key(self.keys.public_key());
        if let Some(s) = seed {
            enc = enc.seeded(s);
        }
        Ok(self.infer.encrypt_embeddings(&mut enc, &x)?)
    }

    fn stepper(&self) -> Result<&StepClient> {
        self.stepper
            .as_ref()
            .ok_or_else(|| ServiceError::InvalidRequest {
                reason: "the server compiled no decoder for step-wise generation".into(),
            })
    }

    /// Looks up and encrypts one token for a `step` job (seeded for tests).
    ///
    /// # Errors
    /// A server without steps, a token past the vocabulary, or an encryption error.
    pub fn encrypt_token(&self, token: u32, seed: Option<u64>) -> Result<Ciphertext> {
        let stepper = self.stepper()?;
        let x = embed_prompts(&self.weights, &[vec![token]])?;
        let mut enc = Encryptor::with_public_key(self.keys.public_key());
        if let Some(s) = seed {
            enc = enc.seeded(s);
        }
        Ok(stepper.encrypt_token(&mut enc, &x[0][0])?)
    }

    /// Decrypts the logits a `step` job answered.
    ///
    /// # Errors
    /// A server without steps, or the wrong number of ciphertexts.
    pub fn decrypt_step(&self, outputs: &[Ciphertext]) -> Result<Vec<f64>> {
        let dec = Decryptor::new(self.keys.secret_key());
        Ok(self.stepper()?.decrypt_logits(&dec, outputs)?)
    }

    /// Decrypts the logits at the last position of each of `prompts` (as encrypted by
    /// [`Self::encrypt`]; a last-position head must have been asked for
    /// [`Self::positions`]).
    ///
    /// # Errors
    /// The wrong number of ciphertexts, or as [`Self::windows`].
    pub fn decrypt_last(
        &self,
        outputs: &[Ciphertext],
        prompts: &[Vec<u32>],
    ) -> Result<Vec<Vec<f64>>> {
        self.windows(prompts)?;
        let positions: Vec<(usize, usize)> = prompts
            .iter()
            .enumerate()
            .map(|(b, p)| (b, p.len() - 1))
            .collect();
        let dec = Decryptor::new(self.keys.secret_key());
        Ok(self.infer.decrypt_logits(&dec, outputs, &positions)?)
    }
}
