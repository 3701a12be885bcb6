//! The JSON documents of the HTTP API, shared by the server and the client.
//!
//! Endpoints (all under `/v1`):
//!
//! | method | path                    | body in               | answer                      |
//! |--------|-------------------------|-----------------------|-----------------------------|
//! | GET    | `/health`               |                       | [`Health`]                  |
//! | GET    | `/metrics`              |                       | Prometheus text             |
//! | GET    | `/info`                 |                       | [`ServerInfo`]              |
//! | GET    | `/params`               |                       | parameters (PSFW)           |
//! | POST   | `/sessions[?mode=step]` | evaluation keys (PSFW)| 201 [`SessionCreated`]      |
//! | GET    | `/sessions/{id}`        |                       | [`SessionStatus`]           |
//! | DELETE | `/sessions/{id}`        |                       | 204                         |
//! | POST   | `/sessions/{id}/keys`   | evaluation keys (PSFW)| [`SessionStatus`]           |
//! | PUT    | `/sessions/{id}/encapsulation` | encapsulation keys (PSFW) | [`SessionStatus`]  |
//! | POST   | `/sessions/{id}/forward`| ciphertext batch      | job result                  |
//! | POST   | `/sessions/{id}/step`   | ciphertext batch      | job result                  |
//! | POST   | `/sessions/{id}/reset`  |                       | [`SessionStatus`]           |
//!
//! A session may be opened with part of the keys and completed by further uploads (a 128-bit
//! key set is larger than one upload may be); its jobs run once [`KeyStatus::ready`]. A
//! model session is opened for one [`SessionMode`]: `forward` passes over a batch of prompts,
//! or `step`-wise generation with an encrypted KV cache (each with its own circuit and keys).
//! Binary bodies are `application/octet-stream` (batches and job results: [`crate::frame`]);
//! every error is answered with its status and a [`crate::ErrorBody`].

use serde::{Deserialize, Serialize};

/// What `/health` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `"ok"`, or `"shutting_down"`.
    pub status: String,
    /// Open sessions.
    pub sessions: usize,
    /// Jobs running now.
    pub jobs_running: usize,
}

/// The evaluation keys a workload needs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KeyRequirements {
    /// Whether the relinearization key is needed.
    pub relinearization: bool,
    /// Galois elements of the rotation/conjugation keys, sorted.
    pub galois_elements: Vec<usize>,
    /// Hamming weight of the sparse secret of the bootstrapping's encapsulation keys, when
    /// the workload bootstraps.
    #[serde(default)]
    pub encapsulation_weight: Option<usize>,
    /// The level a Galois element's key must reach, for keys that may be limited below the
    /// top level (the others must be full).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub key_levels: std::collections::BTreeMap<usize, usize>,
}

/// What a session is opened for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionMode {
    /// `forward` jobs (the model's batch of prompts).
    #[default]
    Forward,
    /// `step` jobs (generation with an encrypted KV cache).
    Step,
}

impl SessionMode {
    /// The query value (`forward` or `step`).
    pub fn as_str(self) -> &'static str {
        match self {
            SessionMode::Forward => "forward",
            SessionMode::Step => "step",
        }
    }
}

/// Which of the needed keys a session still lacks.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KeyStatus {
    /// Whether every needed key is there (jobs can run).
    pub ready: bool,
    /// The relinearization key is missing.
    pub relinearization_missing: bool,
    /// Galois elements whose keys are missing, sorted.
    pub galois_missing: Vec<usize>,
    /// The encapsulation keys are missing.
    pub encapsulation_missing: bool,
}

/// What a job answers besides its ciphertexts (the JSON part of a job result frame).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    /// `"forward"` or `"step"`.
    pub kind: String,
    /// Seconds the job ran on the server (decoding, evaluation and encoding).
    pub seconds: f64,
    /// Steps in the session's encrypted cache after a `step`.
    pub cached_steps: Option<usize>,
    /// The latency report (per component and primitive class) of the model's forward pass,
    /// or of its last step.
    pub report: Option<psf_infer::Report>,
    /// The reports of the earlier steps of a step job with several tokens (a prompt's
    /// prefill), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier_steps: Vec<psf_infer::Report>,
}

/// What the inputs of one job must look like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputShape {
    /// Ciphertexts per request.
    pub ciphertexts: usize,
    /// Level every input ciphertext must be at.
    pub level: usize,
    /// `log2` of the slot count of the inputs.
    pub log_slots: u32,
    /// `log2` of the scale of the inputs.
    pub log_scale: f64,
}

/// What `/info` answers: the parameters, the workload and its key needs, and the limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// Service version (the crate's).
    pub version: String,
    /// Name of the parameter set.
    pub params_name: String,
    /// Parameter fingerprint (hex), as in every PSFW header.
    pub params_fingerprint: String,
    /// Workload kind: `"probe"` or `"model"`.
    pub workload: String,
    /// Its description (JSON; a [`crate::ProbeSpec`] or a [`crate::model::ModelSpec`]).
    pub workload_spec: serde_json::Value,
    /// Keys a `forward` session must upload.
    pub keys: KeyRequirements,
    /// Keys a `step` session must upload, when the workload has steps.
    #[serde(default)]
    pub step_keys: Option<KeyRequirements>,
    /// Inputs of `forward`.
    pub input: InputShape,
    /// Inputs of `step`, when the workload has steps.
    #[serde(default)]
    pub step_input: Option<InputShape>,
    /// The server's limits.
    pub limits: crate::Limits,
}

/// What `POST /sessions` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCreated {
    /// The session id (128 random bits, hex): present it on every later call.
    pub session_id: String,
    /// Bytes of key material held for the session.
    pub key_bytes: u64,
    /// What the session is for.
    pub mode: SessionMode,
    /// Keys still missing.
    pub keys: KeyStatus,
}

/// What `GET /sessions/{id}` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionStatus {
    /// The session id.
    pub session_id: String,
    /// Steps in the encrypted cache.
    pub cached_steps: usize,
    /// Bytes held for the session: keys plus encrypted state.
    pub bytes: u64,
    /// Jobs completed in the session.
    pub jobs: u64,
    /// What the session is for.
    pub mode: SessionMode,
    /// Keys still missing.
    pub keys: KeyStatus,
}
