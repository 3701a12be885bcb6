//! What the server computes for a session: the [`Engine`] holds the parameters and the
//! workload, checks uploaded keys and inputs against them, and runs `forward` and `step`.

use psf_circuits::HeBackend;
use psf_ckks::serialization::WireEncode;
use psf_ckks::{Ciphertext, CkksParameters, Encoder, EvaluationKeys, Evaluator};

use crate::api::{InputShape, KeyRequirements};
use crate::probe::{Probe, ProbeSpec};
use crate::{Result, ServiceError};

/// The computations a server offers.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Workload {
    /// A dense layer and a GELU ([`crate::probe`]).
    Probe(Probe),
}

/// A session's encrypted state on the server (the encrypted cache of `step`).
#[derive(Default)]
pub struct EncryptedState {
    cache: Vec<Ciphertext>,
}

impl EncryptedState {
    /// Steps held.
    pub fn steps(&self) -> usize {
        self.cache.len()
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.cache.iter().map(|c| c.encoded_len() as u64).sum()
    }

    /// Drops every step.
    pub fn clear(&mut self) {
        self.cache.clear();
    }
}

/// Parameters, encoder and workload: everything a job needs but the session's keys.
pub struct Engine {
    params: CkksParameters,
    encoder: Encoder,
    workload: Workload,
}

impl Engine {
    /// An engine running the probe layer `spec` under `params`.
    ///
    /// # Errors
    /// A spec that does not fit the parameters (dimension, levels).
    pub fn probe(params: CkksParameters, spec: ProbeSpec) -> Result<Self> {
        let probe = Probe::new(spec, params.max_slots())?;
        let levels = params.ring().max_level();
        if probe.step_depth() > levels {
            return Err(ServiceError::InvalidRequest {
                reason: format!(
                    "the probe needs {} levels, {} has {levels}",
                    probe.step_depth(),
                    params.ring().name()
                ),
            });
        }
        Ok(Self {
            encoder: Encoder::new(&params),
            params,
            workload: Workload::Probe(probe),
        })
    }

    /// The parameters.
    pub fn params(&self) -> &CkksParameters {
        &self.params
    }

    /// The workload.
    pub fn workload(&self) -> &Workload {
        &self.workload
    }

    /// The workload's name.
    pub fn name(&self) -> &'static str {
        match &self.workload {
            Workload::Probe(_) => "probe",
        }
    }

    /// The workload's description as JSON.
    pub fn spec_json(&self) -> serde_json::Value {
        match &self.workload {
            Workload::Probe(p) => serde_json::to_value(p.spec()).unwrap_or_default(),
        }
    }

    /// Keys a session must upload.
    pub fn keys(&self) -> KeyRequirements {
        match &self.workload {
            Workload::Probe(p) => p.keys(self.params.ring().log_n()),
        }
    }

    /// What inputs must look like.
    pub fn input_shape(&self) -> InputShape {
        InputShape {
            ciphertexts: 1,
            level: self.params.ring().max_level(),
            log_slots: self.params.max_log_slots(),
            log_scale: self.params.default_scale().log2(),
        }
    }

    /// Checks that `keys` hold every key the workload needs.
    ///
    /// # Errors
    /// [`ServiceError::MissingKeys`] listing what is missing.
    pub fn check_keys(&self, keys: &EvaluationKeys) -> Result<()> {
        let need = self.keys();
        let relin_missing = need.relinearization && keys.relin.is_none();
        let galois: Vec<usize> = need
            .galois_elements
            .into_iter()
            .filter(|g| !keys.galois.contains_key(g))
            .collect();
        if relin_missing || !galois.is_empty() {
            return Err(ServiceError::MissingKeys {
                relin_missing,
                galois,
            });
        }
        Ok(())
    }

    /// Checks inputs against [`Self::input_shape`]: count, degree, level, slots and scale.
    ///
    /// # Errors
    /// [`ServiceError::InvalidRequest`] saying what differs.
    pub fn check_inputs(&self, inputs: &[Ciphertext]) -> Result<()> {
        let shape = self.input_shape();
        let invalid = |reason: String| Err(ServiceError::InvalidRequest { reason });
        if inputs.len() != shape.ciphertexts {
            return invalid(format!(
                "{} ciphertexts, expected {}",
                inputs.len(),
                shape.ciphertexts
            ));
        }
        for (i, ct) in inputs.iter().enumerate() {
            if ct.polys.len() != 2 {
                return invalid(format!("ciphertext {i} has degree {}", ct.polys.len() - 1));
            }
            if ct.level() != shape.level || ct.meta.log_slots != shape.log_slots {
                return invalid(format!(
                    "ciphertext {i} at level {} with 2^{} slots, expected level {} and 2^{}",
                    ct.level(),
                    ct.meta.log_slots,
                    shape.level,
                    shape.log_slots
                ));
            }
            if !ct.meta.scale.matches(self.params.default_scale()) {
                return invalid(format!(
                    "ciphertext {i} has scale 2^{:.3}, expected 2^{:.3}",
                    ct.meta.scale.log2(),
                    shape.log_scale
                ));
            }
        }
        Ok(())
    }

    /// Runs the stateless forward pass with a session's evaluator.
    ///
    /// # Errors
    /// Invalid inputs, or an evaluation error.
    pub fn forward(&self, eval: &Evaluator, inputs: &[Ciphertext]) -> Result<Vec<Ciphertext>> {
        self.check_inputs(inputs)?;
        let be = HeBackend::new(&self.params, &self.encoder, eval);
        match &self.workload {
            Workload::Probe(p) => Ok(vec![p.forward(&be, &inputs[0])?]),
        }
    }

    /// Runs one step: extends the session's encrypted cache and answers for the last position.
    /// On error the cache is left as it was.
    ///
    /// # Errors
    /// Invalid inputs, or an evaluation error.
    pub fn step(
        &self,
        eval: &Evaluator,
        state: &mut EncryptedState,
        inputs: &[Ciphertext],
    ) -> Result<Vec<Ciphertext>> {
        self.check_inputs(inputs)?;
        let be = HeBackend::new(&self.params, &self.encoder, eval);
        match &self.workload {
            Workload::Probe(p) => {
                state.cache.push(p.project(&be, &inputs[0])?);
                p.activate_mean(&be, &state.cache)
                    .map(|out| vec![out])
                    .map_err(|e| {
                        state.cache.pop();
                        e.into()
                    })
            }
        }
    }

    /// Bytes one step adds to the encrypted state at most (for admission before running).
    pub fn step_bytes(&self) -> u64 {
        let shape = self.input_shape();
        // Two polynomials of `level + 1` limbs of N residues (the projected step is one level
        // lower, so this bounds it), plus the header and metadata.
        (2 * (shape.level + 1) * self.params.ring().n() * 8 + 64) as u64
    }
}
