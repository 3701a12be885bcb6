//! The `model` workload: an encrypted polynomial language model.
//!
//! A model directory holds `config.json` and `model.safetensors` (Hugging Face names, a
//! Power-Softmax model) and `poly.json` (its `psf_poly::PolySpec`, written by `psformer
//! polyfit`). The server loads them into a `psf_poly::PolyModel`, turns it into the compiler's
//! `psf_infer::ModelIr` and compiles it for one layout (`seq_len` positions x `batch` prompts)
//! and a bootstrapping preset, calibrating the bootstrap bounds on embeddings of real text.
//! With `max_len`, the model is also compiled for step-wise generation (`psf_infer::Decoder`,
//! its own circuit and keys): a `step` session then holds an encrypted KV cache, and each
//! `step` job appends one encrypted token and answers the logits of its position. Clients
//! fetch the public facts ([`ModelSpec`]: layouts, encryption levels, the exact key lists)
//! from `/v1/info`; the embedding table is public too but never travels: a client runs
//! the lookup itself on its own copy of the same directory (checked by [`ModelSpec::fingerprint`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use psf_circuits::bootstrap::Bootstrapper;
use psf_circuits::bootstrap::keys::small_params;
use psf_ckks::serialization::{HEADER_LEN, fnv1a64};
use psf_ckks::{Ciphertext, CkksParameters};
use psf_infer::client::{ClientSpec, StepSpec};
use psf_infer::runtime::decode::KvCache;
use psf_infer::runtime::{Progress, RunOptions, ServerContext};
use psf_infer::{
    CompileOptions, CompiledModel, DecodeOptions, Decoder, HeadPositions, ModelIr, Report,
};
use psf_poly::{PolyModel, PolySpec, PolyWeights};
use serde::{Deserialize, Serialize};

use crate::api::{KeyRequirements, SessionMode};
use crate::{Result, ServiceError};

/// How a model is compiled for serving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelOptions {
    /// Positions per prompt (at most the model's context).
    pub seq_len: usize,
    /// Prompts per job, packed side by side into the same ciphertexts.
    pub batch: usize,
    /// `log2` of the ring degree: 16 and 15 are the 128-bit bootstrapping presets, smaller
    /// degrees their INSECURE twins (tests).
    pub log_n: u32,
    /// Threads of a job's evaluation pool.
    pub threads: usize,
    /// Positions of step-wise generation with an encrypted KV cache (prompt and generated
    /// tokens; at most the model's context); `None` compiles no decoder.
    pub max_len: Option<usize>,
    /// Which positions a `forward` job answers logits for: every position, or one requested
    /// position per prompt (by default its last), packed densely.
    pub head: HeadPositions,
}

/// The text the compiler's dry run calibrates the bootstrap bounds on.
#[derive(Debug, Clone)]
pub enum Calibration {
    /// Token ids.
    Tokens(Vec<u32>),
    /// Text, tokenized with the `tokenizer.json` at `tokenizer`.
    Text {
        /// The text.
        text: String,
        /// The tokenizer file.
        tokenizer: PathBuf,
    },
}

impl Calibration {
    /// The token ids.
    ///
    /// # Errors
    /// An unreadable tokenizer.
    pub fn token_ids(&self) -> Result<Vec<u32>> {
        match self {
            Calibration::Tokens(ids) => Ok(ids.clone()),
            Calibration::Text { text, tokenizer } => {
                let tk = psf_model::data::tokenizer::load(tokenizer)
                    .map_err(|e| model_error(tokenizer, e))?;
                psf_model::data::tokenizer::encode(&tk, text).map_err(|e| model_error(tokenizer, e))
            }
        }
    }
}

/// The public facts of a served model (the `workload_spec` of `/v1/info`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// The model directory's name.
    pub name: String,
    /// FNV-1a fingerprint of `config.json`, `model.safetensors` and `poly.json` (hex): a
    /// client checks its own copy against it ([`model_fingerprint`]).
    pub fingerprint: String,
    /// `GptNeox` or `Llama`.
    pub arch: String,
    /// Decoder blocks.
    pub layers: usize,
    /// Embedding width.
    pub d_model: usize,
    /// Attention heads.
    pub heads: usize,
    /// Vocabulary (logits per position).
    pub vocab: usize,
    /// Positions per prompt.
    pub seq_len: usize,
    /// Prompts per job.
    pub batch: usize,
    /// Name of the CKKS parameter set.
    pub params_name: String,
    /// What a client needs to encrypt and decrypt (layout, widths, encryption level).
    pub client: ClientSpec,
    /// The exact keys of a `forward` session (`psf_infer::KeyRequirements::generate`).
    pub keys: psf_infer::KeyRequirements,
    /// Step-wise generation, when the server compiled a decoder.
    pub step: Option<StepFacts>,
    /// Logit ciphertexts a job answers.
    pub output_ciphertexts: usize,
    /// Bootstrap sites of a forward pass.
    pub bootstrap_sites: usize,
    /// Ciphertexts refreshed in a forward pass.
    pub bootstrapped_ciphertexts: usize,
    /// Bytes of the encoded evaluation keys (relinearization and Galois keys, each limited to
    /// the level it serves where the circuit allows).
    pub evaluation_key_bytes: u64,
    /// Bytes of the encoded encapsulation keys.
    pub encapsulation_key_bytes: u64,
    /// Bytes of the bootstrapping circuit (encoded DFT diagonals), built once at start and
    /// shared by every session (accounted once, not per session).
    pub context_bytes: u64,
    /// Tokens of the calibration text.
    pub calibration_tokens: usize,
    /// Threads of a job.
    pub threads: usize,
}

/// The public facts of step-wise generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepFacts {
    /// What a client needs (the step layout: one token per ciphertext; the level).
    pub client: StepSpec,
    /// The exact keys of a `step` session.
    pub keys: psf_infer::KeyRequirements,
    /// Bootstrap sites of one step.
    pub bootstrap_sites: usize,
    /// Bytes of the encoded evaluation keys.
    pub evaluation_key_bytes: u64,
    /// Bytes of the encoded encapsulation keys.
    pub encapsulation_key_bytes: u64,
    /// Bytes of the decoder's bootstrapping circuit (it may use fewer slots), built once and
    /// shared by every `step` session (none when it is the forward pass's circuit).
    pub context_bytes: u64,
}

/// A compiled model (and decoder) and its public facts.
pub struct ModelWorkload {
    compiled: CompiledModel,
    decoder: Option<Decoder>,
    spec: ModelSpec,
    threads: usize,
    /// The forward pass's bootstrapping circuit, shared by every session.
    boot: Arc<Bootstrapper>,
    /// The decoder's (the forward pass's when both use the same preset).
    step_boot: Option<Arc<Bootstrapper>>,
}

/// The step facts of `dec` and its bootstrapping circuit (`forward`'s when the presets agree).
fn step_facts(
    dec: &Decoder,
    forward: &CompiledModel,
    forward_boot: &Arc<Bootstrapper>,
) -> Result<(StepFacts, Arc<Bootstrapper>)> {
    let params = dec.params()?;
    let keys = dec.key_requirements()?;
    let (evaluation_key_bytes, encapsulation_key_bytes) = key_bytes(&params, &keys)?;
    let (boot, context_bytes) = if dec.preset == forward.preset {
        (forward_boot.clone(), 0)
    } else {
        let b = Bootstrapper::new(&params, dec.preset.config)?;
        let bytes = b.size_bytes() as u64;
        (Arc::new(b), bytes)
    };
    let facts = StepFacts {
        client: StepSpec::of(dec)?,
        keys,
        bootstrap_sites: dec.plan.bootstraps.len(),
        evaluation_key_bytes,
        encapsulation_key_bytes,
        context_bytes,
    };
    Ok((facts, boot))
}

/// Compiles the decoder for `max_len` positions, calibrated on two windows of that length.
fn decoder(
    ir: &ModelIr,
    poly: &PolyModel,
    calibration: &[u32],
    max_len: usize,
    log_n: u32,
) -> Result<Decoder> {
    let windows = calibration_windows(calibration, max_len, 2);
    let embeddings = embed_prompts(poly.weights(), &windows)?;
    Ok(Decoder::compile(
        ir,
        &DecodeOptions::for_log_n(max_len, log_n, embeddings),
    )?)
}

fn model_error(path: &Path, e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Model {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Loads the `PolyModel` of a model directory (`config.json`, `model.safetensors`,
/// `poly.json`).
///
/// # Errors
/// [`ServiceError::Model`] for missing or inconsistent files.
pub fn load_poly(dir: &Path) -> Result<PolyModel> {
    let weights = PolyWeights::from_dir(dir).map_err(|e| model_error(dir, e))?;
    let spec_path = dir.join("poly.json");
    let spec = PolySpec::from_file(&spec_path).map_err(|e| model_error(&spec_path, e))?;
    PolyModel::new(weights, spec).map_err(|e| model_error(dir, e))
}

/// The fingerprint of a model directory: FNV-1a over the FNV-1a of `config.json`,
/// `model.safetensors` and `poly.json` (hex).
///
/// # Errors
/// [`ServiceError::Model`] for an unreadable file.
pub fn model_fingerprint(dir: &Path) -> Result<String> {
    let mut parts = Vec::with_capacity(24);
    for file in ["config.json", "model.safetensors", "poly.json"] {
        let path = dir.join(file);
        let bytes = std::fs::read(&path).map_err(|e| model_error(&path, e))?;
        parts.extend_from_slice(&fnv1a64(&bytes).to_le_bytes());
    }
    Ok(format!("{:016x}", fnv1a64(&parts)))
}

/// `batch` windows of `seq_len` tokens spread evenly over `ids` (wrapping around when the
/// text is shorter).
pub fn calibration_windows(ids: &[u32], seq_len: usize, batch: usize) -> Vec<Vec<u32>> {
    if ids.is_empty() {
        return Vec::new();
    }
    let span = ids.len().saturating_sub(seq_len);
    (0..batch)
        .map(|b| {
            let start = span * b / batch.max(1);
            (0..seq_len).map(|j| ids[(start + j) % ids.len()]).collect()
        })
        .collect()
}

/// Embeddings `[prompt][position][feature]` of token windows (the client's lookup).
///
/// # Errors
/// A token id past the vocabulary.
pub fn embed_prompts(weights: &PolyWeights, prompts: &[Vec<u32>]) -> Result<Vec<Vec<Vec<f64>>>> {
    prompts
        .iter()
        .map(|ids| {
            let m = weights
                .embed(ids)
                .map_err(|e| ServiceError::InvalidRequest {
                    reason: e.to_string(),
                })?;
            Ok((0..m.rows).map(|t| m.row(t).to_vec()).collect())
        })
        .collect()
}

/// Bytes of the encoded evaluation keys (each key at its required level) and encapsulation
/// keys of `keys` (the PSFW layouts of `psf_ckks::serialization`).
fn key_bytes(params: &CkksParameters, keys: &psf_infer::KeyRequirements) -> Result<(u64, u64)> {
    // Per key: the switching-key body's `n, digits, limbs` (+ the element of a Galois key).
    let framing = 12 * usize::from(keys.relinearization) + 20 * keys.galois_elements.len();
    let evaluation = HEADER_LEN + 5 + framing + keys.key_material_bytes(params);
    let encapsulation = match keys.encapsulation_weight {
        Some(h) => {
            let small = small_params(params, h)?;
            let full = |ring: &psf_rlwe::Parameters| {
                12 + psf_rlwe::SwitchingKey::size_bytes_at(ring, ring.max_level())
            };
            HEADER_LEN + 12 + full(&small) + full(params.ring())
        }
        None => 0,
    };
    Ok((evaluation as u64, encapsulation as u64))
}

impl ModelWorkload {
    /// Loads and compiles the model directory `dir`.
    ///
    /// # Errors
    /// Unreadable files or tokenizer, or as [`Self::new`].
    pub fn load(dir: &Path, calibration: &Calibration, opts: &ModelOptions) -> Result<Self> {
        let poly = load_poly(dir)?;
        let ids = calibration.token_ids()?;
        let name = dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| dir.display().to_string());
        Self::new(&poly, &name, model_fingerprint(dir)?, &ids, opts)
    }

    /// Compiles `poly` for `opts`, calibrating on windows of the token ids `calibration`.
    ///
    /// # Errors
    /// Options that do not fit the model ([`ServiceError::InvalidRequest`]), or a compiler
    /// error ([`ServiceError::Infer`]).
    pub fn new(
        poly: &PolyModel,
        name: &str,
        fingerprint: String,
        calibration: &[u32],
        opts: &ModelOptions,
    ) -> Result<Self> {
        let cfg = &poly.weights().config;
        let context = cfg.max_position_embeddings;
        if opts.max_len.is_some_and(|l| l == 0 || l > context) {
            return Err(ServiceError::InvalidRequest {
                reason: format!(
                    "generation over {:?} positions (the model's context is {context})",
                    opts.max_len
                ),
            });
        }
        if opts.seq_len == 0 || opts.seq_len > context || opts.batch == 0 {
            return Err(ServiceError::InvalidRequest {
                reason: format!(
                    "{} prompts of {} positions (the model's context is {})",
                    opts.batch, opts.seq_len, cfg.max_position_embeddings
                ),
            });
        }
        if calibration.is_empty() {
            return Err(ServiceError::InvalidRequest {
                reason: "no calibration tokens".into(),
            });
        }
        let ir = ModelIr::from_poly(poly)?;
        let windows = calibration_windows(calibration, opts.seq_len, opts.batch);
        let embeddings = embed_prompts(poly.weights(), &windows)?;
        let mut compile =
            CompileOptions::for_log_n(opts.seq_len, opts.batch, opts.log_n, embeddings);
        compile.head = opts.head;
        let compiled = CompiledModel::compile(&ir, &compile)?;
        let keys = compiled.key_requirements()?;
        let decoder = opts
            .max_len
            .map(|l| decoder(&ir, poly, calibration, l, opts.log_n))
            .transpose()?;
        let params = compiled.params()?;
        let boot = Arc::new(Bootstrapper::new(&params, compiled.preset.config)?);
        let (step, step_boot) = match &decoder {
            Some(dec) => {
                let (facts, b) = step_facts(dec, &compiled, &boot)?;
                (Some(facts), Some(b))
            }
            None => (None, None),
        };
        let (evaluation_key_bytes, encapsulation_key_bytes) = key_bytes(&params, &keys)?;
        let client = ClientSpec::of(&compiled)?;
        let spec = ModelSpec {
            name: name.into(),
            fingerprint,
            arch: format!("{:?}", cfg.arch),
            layers: cfg.num_layers,
            d_model: cfg.hidden_size,
            heads: cfg.num_heads,
            vocab: cfg.vocab_size,
            seq_len: opts.seq_len,
            batch: opts.batch,
            params_name: params.ring().name().into(),
            output_ciphertexts: client.head.output_cts(&client.layout, client.vocab),
            client,
            step,
            bootstrap_sites: compiled.plan.bootstraps.len(),
            bootstrapped_ciphertexts: compiled.plan.bootstraps.iter().map(|b| b.ciphertexts).sum(),
            keys,
            evaluation_key_bytes,
            encapsulation_key_bytes,
            context_bytes: boot.size_bytes() as u64,
            calibration_tokens: calibration.len(),
            threads: opts.threads.max(1),
        };
        Ok(Self {
            compiled,
            decoder,
            spec,
            threads: opts.threads.max(1),
            boot,
            step_boot,
        })
    }

    /// The public facts.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The compiled model.
    pub fn compiled(&self) -> &CompiledModel {
        &self.compiled
    }

    /// The decoder of step-wise generation, if compiled.
    pub fn decoder(&self) -> Option<&Decoder> {
        self.decoder.as_ref()
    }

    /// The keys of the circuit `mode` runs (`None`: no decoder for `step`).
    pub fn key_requirements(&self, mode: SessionMode) -> Option<&psf_infer::KeyRequirements> {
        match mode {
            SessionMode::Forward => Some(&self.spec.keys),
            SessionMode::Step => self.spec.step.as_ref().map(|s| &s.keys),
        }
    }

    /// The keys a `mode` session uploads, in the service's terms.
    pub fn key_needs(&self, mode: SessionMode) -> Option<KeyRequirements> {
        self.key_requirements(mode).map(|k| KeyRequirements {
            relinearization: k.relinearization,
            galois_elements: k.galois_elements.clone(),
            encapsulation_weight: k.encapsulation_weight,
            key_levels: k.key_levels.clone(),
        })
    }

    /// Bytes of the bootstrapping circuits the workload holds for every session (built at
    /// start: the forward pass's and, if different, the decoder's).
    pub fn resident_bytes(&self) -> u64 {
        self.spec.context_bytes + self.spec.step.as_ref().map_or(0, |s| s.context_bytes)
    }

    /// The server context of a `mode` session with its complete keys.
    ///
    /// # Errors
    /// No decoder for `step`.
    pub fn context(
        &self,
        mode: SessionMode,
        evaluation: psf_ckks::EvaluationKeys,
        encapsulation: Option<psf_circuits::bootstrap::Encapsulation>,
    ) -> Result<ServerContext> {
        let boot = match mode {
            SessionMode::Forward => &self.boot,
            SessionMode::Step => self.step_boot.as_ref().ok_or_else(no_decoder)?,
        };
        Ok(ServerContext::with_bootstrapper(
            boot.clone(),
            evaluation,
            encapsulation,
        ))
    }

    fn run_options<'a>(&self, progress: &'a (dyn Fn(&Progress) + Sync)) -> RunOptions<'a> {
        RunOptions {
            threads: self.threads,
            progress,
            cost: None,
            positions: None,
        }
    }

    /// Checks a job's requested positions: one per prompt, each below `seq_len`, and only for
    /// a last-position head.
    ///
    /// # Errors
    /// [`ServiceError::InvalidRequest`] naming what is wrong.
    pub fn check_positions(&self, positions: &[usize]) -> Result<()> {
        let (seq_len, batch) = (self.spec.seq_len, self.spec.batch);
        let reason = if self.spec.client.head != HeadPositions::Last {
            "this model answers every position; positions are for a last-position head".into()
        } else if positions.len() != batch {
            format!("{} positions for a batch of {batch}", positions.len())
        } else if let Some(p) = positions.iter().find(|&&p| p >= seq_len) {
            format!("position {p} of a {seq_len}-position prompt")
        } else {
            return Ok(());
        };
        Err(ServiceError::InvalidRequest { reason })
    }

    /// The encrypted forward pass of a job: logits of every position, or of `positions`
    /// (one per prompt; `None`: the last) for a last-position head; and its report.
    ///
    /// # Errors
    /// Positions that do not fit ([`Self::check_positions`]), or as
    /// `psf_infer::runtime::forward`.
    pub fn forward(
        &self,
        server: &ServerContext,
        inputs: Vec<Ciphertext>,
        positions: Option<&[usize]>,
    ) -> Result<(Vec<Ciphertext>, Report)> {
        if let Some(p) = positions {
            self.check_positions(p)?;
        }
        let progress = |p: &Progress| log_progress("forward", p);
        let mut opts = self.run_options(&progress);
        opts.positions = positions;
        Ok(psf_infer::runtime::forward(
            &self.compiled,
            server,
            inputs,
            &opts,
        )?)
    }

    /// Steps of generation: `tokens` (ciphertexts in the step layout, one per token) appended
    /// to the session's KV cache (created at the first step); the logits of the last one's
    /// position and the report of every step. Several tokens (a prompt) run as a prefill: the
    /// LM head only at the last. A failing single step leaves the cache unchanged; a failing
    /// prefill keeps the tokens before the failing one.
    ///
    /// # Errors
    /// No decoder, or as `psf_infer::runtime::decode::step` and `prefill`.
    pub fn step(
        &self,
        server: &ServerContext,
        cache: &mut Option<KvCache>,
        mut tokens: Vec<Ciphertext>,
    ) -> Result<(Vec<Ciphertext>, Vec<Report>)> {
        let dec = self.decoder.as_ref().ok_or_else(no_decoder)?;
        let progress = |p: &Progress| log_progress("step", p);
        let opts = self.run_options(&progress);
        let cache = cache.get_or_insert_with(|| KvCache::new(dec));
        if tokens.len() == 1
            && let Some(token) = tokens.pop()
        {
            let (out, report) = psf_infer::runtime::decode::step(dec, server, cache, token, &opts)?;
            return Ok((out, vec![report]));
        }
        Ok(psf_infer::runtime::decode::prefill(
            dec, server, cache, tokens, &opts,
        )?)
    }
}

/// The error for step-wise generation on a server without a decoder.
pub fn no_decoder() -> ServiceError {
    ServiceError::InvalidRequest {
        reason: "the server compiled no decoder (serve with a maximum length)".into(),
    }
}

fn log_progress(job: &str, p: &Progress) {
    tracing::debug!(
        stage = %p.stage,
        done = p.done,
        total = p.total,
        "{job} {:.1} s",
        p.elapsed_s
    );
}

/// The `context` fields of multiple-choice task files (JSONL, one item per line, as the
/// shipped `crates/model/tasks/*.jsonl`), one per line: held-out text for calibration.
///
/// # Errors
/// An unreadable file or a line that is not a JSON object with a `context` string.
pub fn task_contexts(paths: &[PathBuf]) -> Result<String> {
    let mut out = String::new();
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|e| model_error(path, e))?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let item: serde_json::Value =
                serde_json::from_str(line).map_err(|e| model_error(path, e))?;
            let context = item["context"]
                .as_str()
                .ok_or_else(|| model_error(path, "an item without a \"context\" string"))?;
            out.push_str(context);
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_spread_and_wrap() {
        let ids: Vec<u32> = (0..10).collect();
        let w = calibration_windows(&ids, 4, 3);
        assert_eq!(
            w,
            vec![vec![0, 1, 2, 3], vec![2, 3, 4, 5], vec![4, 5, 6, 7]]
        );
        let short = calibration_windows(&[7, 8], 5, 1);
        assert_eq!(short, vec![vec![7, 8, 7, 8, 7]]);
        assert!(calibration_windows(&[], 4, 2).is_empty());
    }

    #[test]
    fn task_contexts_read_jsonl() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        std::fs::write(
            &path,
            "{\"context\":\"a b\",\"choices\":[],\"answer\":0}\n\n{\"context\":\"c\"}\n",
        )
        .unwrap();
        assert_eq!(
            task_contexts(std::slice::from_ref(&path)).unwrap(),
            "a b\nc\n"
        );
        std::fs::write(&path, "{\"text\":1}\n").unwrap();
        assert_eq!(task_contexts(&[path]).unwrap_err().code(), "model");
    }
}
