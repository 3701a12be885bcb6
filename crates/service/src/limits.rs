//! The server's limits: sizes, counts, concurrency, memory and time.
//!
//! Peak memory is bounded by `memory_budget_bytes` (keys, bootstrapping circuits and encrypted
//! state of every session, accounted before anything is admitted) plus the bodies in flight
//! (`max_concurrent_uploads x max_key_bytes + (max_concurrent_jobs + max_queued_jobs) x
//! max_input_bytes`) plus the working memory of the running jobs.
//!
//! Sizes at 128-bit N = 2^16 (`N16_QP1765_BOOT_128BIT`, measured on the demo model, see
//! SERVICE.md): one full switching key is 137.7 MiB; a forward session of the demo model needs
//! 9.2 GiB of keys (most rotation keys limited to the level they serve) and 4.40 GiB of
//! encoded bootstrapping diagonals, a step session 4.3 GiB and 0.84 GiB. Clients upload key
//! sets in parts of at most `max_key_bytes`.

use serde::{Deserialize, Serialize};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Limits of a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Open sessions at most.
    pub max_sessions: usize,
    /// Largest key upload in bytes (one part of a session's keys).
    pub max_key_bytes: u64,
    /// Largest job body (a ciphertext batch) in bytes.
    pub max_input_bytes: u64,
    /// Most ciphertexts in one batch.
    pub max_batch: usize,
    /// Jobs running at once (each on a blocking worker).
    pub max_concurrent_jobs: usize,
    /// Jobs waiting for a worker at most; beyond, requests are answered `busy`.
    pub max_queued_jobs: usize,
    /// Key uploads being received at once.
    pub max_concurrent_uploads: usize,
    /// Bytes of keys, bootstrapping circuits and encrypted state of all sessions together.
    pub memory_budget_bytes: u64,
    /// Steps an encrypted cache may hold.
    pub max_cache_steps: usize,
    /// Seconds a session may stay unused before it is dropped.
    pub session_idle_secs: u64,
    /// Seconds a body may take to arrive.
    pub upload_timeout_secs: u64,
}

impl Default for Limits {
    /// Sized for 128-bit parameters at N = 2^16 on one machine of ~128 GiB: uploads of 1 GiB
    /// (7 full keys), 64 GiB for sessions (four forward sessions of the demo model).
    fn default() -> Self {
        Self {
            max_sessions: 16,
            max_key_bytes: GIB,
            max_input_bytes: 256 * MIB,
            max_batch: 256,
            max_concurrent_jobs: 2,
            max_queued_jobs: 32,
            max_concurrent_uploads: 2,
            memory_budget_bytes: 64 * GIB,
            max_cache_steps: 1024,
            session_idle_secs: 1800,
            upload_timeout_secs: 600,
        }
    }
}
