//! What the server computes for a session: the [`Engine`] holds the parameters and the
//! workload (the [`crate::probe`] layer or an encrypted language model, [`crate::model`]),
//! admits uploaded keys against the workload's needs, builds a session's evaluation
//! [`Context`] once its keys are complete, checks inputs and runs `forward` and `step`.

use std::sync::Arc;

use psf_circuits::HeBackend;
use psf_circuits::bootstrap::Encapsulation;
use psf_ckks::serialization::WireEncode;
use psf_ckks::{Ciphertext, CkksParameters, Encoder, EvaluationKeys, Evaluator};
use psf_infer::Report;
use psf_infer::runtime::ServerContext;
use psf_infer::runtime::decode::KvCache;

use crate::api::{InputShape, KeyRequirements, KeyStatus, SessionMode};
use crate::model::{ModelWorkload, no_decoder};
use crate::probe::{Probe, ProbeSpec};
use crate::{Result, ServiceError};

/// The computations a server offers.
#[derive(Clone)]
#[non_exhaustive]
pub enum Workload {
    /// A dense layer and a GELU ([`crate::probe`]).
    Probe(Box<Probe>),
    /// A compiled polynomial language model ([`crate::model`]).
    Model(Arc<ModelWorkload>),
}

/// Keys uploaded to a session that is not complete yet.
#[derive(Default)]
pub struct KeySet {
    /// Relinearization and Galois keys received so far.
    pub evaluation: EvaluationKeys,
    /// Encapsulation keys of the bootstrapping, once received.
    pub encapsulation: Option<Encapsulation>,
}

/// What a session with complete keys evaluates with: its keys inside the workload's
/// evaluator (and, for the model, its bootstrapping circuit).
pub enum Context {
    /// The probe's evaluator.
    Probe(Box<Evaluator>),
    /// The encrypted model's server context.
    Model(Box<ServerContext>),
}

/// A session's encrypted state on the server: the probe's cache of projected steps, or the
/// model's KV cache (keys and values of every token stepped so far).
#[derive(Default)]
pub struct EncryptedState {
    cache: Vec<Ciphertext>,
    kv: Option<KvCache>,
}

impl EncryptedState {
    /// Steps held.
    pub fn steps(&self) -> usize {
        self.cache.len() + self.kv.as_ref().map_or(0, KvCache::len)
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        let size = |cts: &[Ciphertext]| cts.iter().map(|c| c.encoded_len() as u64).sum::<u64>();
        let kv = self.kv.as_ref().map_or(0, |kv| {
            let layers = (0..).take_while(|&l| !kv.keys(l).is_empty() || !kv.values(l).is_empty());
            layers.map(|l| size(kv.keys(l)) + size(kv.values(l))).sum()
        });
        size(&self.cache) + kv
    }

    /// Drops every step.
    pub fn clear(&mut self) {
        self.cache.clear();
        self.kv = None;
    }
}

/// Parameters, encoder and workload: everything a job needs but the session's keys.
pub struct Engine {
    params: CkksParameters,
    encoder: Encoder,
    workload: Workload,
}

fn invalid<T>(reason: String) -> Result<T> {
    Err(ServiceError::InvalidRequest { reason })
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
            return invalid(format!(
                "the probe needs {} levels, {} has {levels}",
                probe.step_depth(),
                params.ring().name()
            ));
        }
        Ok(Self {
            encoder: Encoder::new(&params),
            params,
            workload: Workload::Probe(Box::new(probe)),
        })
    }

    /// An engine running the compiled model `model` under its parameters.
    ///
    /// # Errors
    /// Parameters that do not build (cannot happen for a compiled model).
    pub fn model(model: Arc<ModelWorkload>) -> Result<Self> {
        let params = model.compiled().params()?;
        Ok(Self {
            encoder: Encoder::new(&params),
            params,
            workload: Workload::Model(model),
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
            Workload::Model(_) => "model",
        }
    }

    /// The workload's description as JSON.
    pub fn spec_json(&self) -> serde_json::Value {
        let value = match &self.workload {
            Workload::Probe(p) => serde_json::to_value(p.spec()),
            Workload::Model(m) => serde_json::to_value(m.spec()),
        };
        value.unwrap_or_default()
    }

    /// Keys a `mode` session must upload.
    ///
    /// # Errors
    /// [`ServiceError::InvalidRequest`] for `step` on a model served without a decoder.
    pub fn keys(&self, mode: SessionMode) -> Result<KeyRequirements> {
        let mut keys = match &self.workload {
            Workload::Probe(p) => p.keys(self.params.ring().log_n()),
            Workload::Model(m) => m.key_needs(mode).ok_or_else(no_decoder)?,
        };
        keys.galois_elements.sort_unstable();
        keys.galois_elements.dedup();
        Ok(keys)
    }

    /// Checks that a `mode` session may run a `kind` job (`"forward"` or `"step"`): the
    /// probe runs both in any session, a model session only the jobs of its mode.
    ///
    /// # Errors
    /// [`ServiceError::InvalidRequest`].
    pub fn check_mode(&self, mode: SessionMode, kind: &str) -> Result<()> {
        match &self.workload {
            Workload::Model(_) if mode.as_str() != kind => invalid(format!(
                "a {} session runs {} jobs, not {kind} (open a session with mode={kind})",
                mode.as_str(),
                mode.as_str()
            )),
            _ => Ok(()),
        }
    }

    /// Bytes the workload holds for all sessions (the model's shared bootstrapping
    /// circuits); the server takes them off its memory budget at start.
    pub fn resident_bytes(&self) -> u64 {
        match &self.workload {
            Workload::Probe(_) => 0,
            Workload::Model(m) => m.resident_bytes(),
        }
    }

    /// What the input of a `step` must look like, if the workload has steps.
    pub fn step_shape(&self) -> Option<InputShape> {
        let level = match &self.workload {
            Workload::Probe(_) => self.params.ring().max_level(),
            Workload::Model(m) => m.spec().step.as_ref()?.client.level,
        };
        Some(InputShape {
            ciphertexts: 1,
            level,
            log_slots: self.params.max_log_slots(),
            log_scale: self.params.default_scale().log2(),
        })
    }

    /// Most positions a session's steps may reach (the decoder's length), if bounded.
    pub fn max_steps(&self) -> Option<usize> {
        match &self.workload {
            Workload::Probe(_) => None,
            Workload::Model(m) => m.spec().step.as_ref().map(|s| s.client.layout.max_len),
        }
    }

    /// What the inputs of `forward` must look like.
    pub fn input_shape(&self) -> InputShape {
        let (ciphertexts, level) = match &self.workload {
            Workload::Probe(_) => (1, self.params.ring().max_level()),
            Workload::Model(m) => {
                let c = &m.spec().client;
                (c.layout.cts_for(c.d_model), c.level)
            }
        };
        InputShape {
            ciphertexts,
            level,
            log_slots: self.params.max_log_slots(),
            log_scale: self.params.default_scale().log2(),
        }
    }

    /// Adds uploaded evaluation keys to `have`; nothing is added unless every key is one the
    /// workload needs, not already there, and reaches the level it serves.
    ///
    /// # Errors
    /// [`ServiceError::InvalidRequest`] naming the unneeded or repeated keys, or a key below
    /// the level it serves.
    pub fn add_keys(
        &self,
        mode: SessionMode,
        have: &mut KeySet,
        new: EvaluationKeys,
    ) -> Result<()> {
        let need = self.keys(mode)?;
        if new.relin.is_some() {
            if !need.relinearization {
                return invalid("the workload needs no relinearization key".into());
            }
            if have.evaluation.relin.is_some() {
                return invalid("the relinearization key was already uploaded".into());
            }
        }
        let mut elements: Vec<usize> = new.galois.keys().copied().collect();
        elements.sort_unstable();
        let unneeded: Vec<usize> = elements
            .iter()
            .copied()
            .filter(|g| need.galois_elements.binary_search(g).is_err())
            .collect();
        if !unneeded.is_empty() {
            return invalid(format!("Galois elements {unneeded:?} are not needed"));
        }
        let repeated: Vec<usize> = elements
            .into_iter()
            .filter(|g| have.evaluation.galois.contains_key(g))
            .collect();
        if !repeated.is_empty() {
            return invalid(format!(
                "Galois elements {repeated:?} were already uploaded"
            ));
        }
        self.check_levels(&need, &new)?;
        if new.relin.is_some() {
            have.evaluation.relin = new.relin;
        }
        have.evaluation.galois.extend(new.galois);
        Ok(())
    }

    /// Checks that every key of `new` reaches the level it serves (the top level unless
    /// `need` limits it).
    fn check_levels(&self, need: &KeyRequirements, new: &EvaluationKeys) -> Result<()> {
        let top = self.params.ring().max_level();
        if let Some(relin) = &new.relin
            && relin.0.max_level() < top
        {
            return invalid(format!(
                "the relinearization key reaches level {}, it must reach {top}",
                relin.0.max_level()
            ));
        }
        for (g, key) in &new.galois {
            let want = need.key_levels.get(g).map_or(top, |&l| l.min(top));
            if key.key.max_level() < want {
                return invalid(format!(
                    "the key of Galois element {g} reaches level {}, it must reach {want}",
                    key.key.max_level()
                ));
            }
        }
        Ok(())
    }

    /// Sets the encapsulation keys of `have`.
    ///
    /// # Errors
    /// [`ServiceError::InvalidRequest`] when the workload does not bootstrap, the sparse
    /// secret's weight is not the one it needs, or the keys were already uploaded.
    pub fn set_encapsulation(
        &self,
        mode: SessionMode,
        have: &mut KeySet,
        keys: Encapsulation,
    ) -> Result<()> {
        match self.keys(mode)?.encapsulation_weight {
            None => invalid(format!(
                "the {} workload needs no encapsulation keys",
                self.name()
            )),
            Some(h) if h != keys.weight() => invalid(format!(
                "encapsulation keys of weight {}, the workload needs {h}",
                keys.weight()
            )),
            Some(_) if have.encapsulation.is_some() => {
                invalid("the encapsulation keys were already uploaded".into())
            }
            Some(_) => {
                have.encapsulation = Some(keys);
                Ok(())
            }
        }
    }

    /// Which keys a `mode` session holding `have` lacks.
    pub fn key_status(&self, mode: SessionMode, have: &KeySet) -> KeyStatus {
        let need = self.keys(mode).unwrap_or_default();
        let relinearization_missing = need.relinearization && have.evaluation.relin.is_none();
        let galois_missing: Vec<usize> = need
            .galois_elements
            .into_iter()
            .filter(|g| !have.evaluation.galois.contains_key(g))
            .collect();
        let encapsulation_missing =
            need.encapsulation_weight.is_some() && have.encapsulation.is_none();
        KeyStatus {
            ready: !relinearization_missing && galois_missing.is_empty() && !encapsulation_missing,
            relinearization_missing,
            galois_missing,
            encapsulation_missing,
        }
    }

    /// Builds the evaluation context of a complete key set.
    ///
    /// # Errors
    /// [`ServiceError::MissingKeys`] if keys are missing; an error of the model's
    /// bootstrapping circuit.
    pub fn build(&self, mode: SessionMode, keys: KeySet) -> Result<Context> {
        let status = self.key_status(mode, &keys);
        if !status.ready {
            return Err(missing(status));
        }
        match &self.workload {
            Workload::Probe(_) => Ok(Context::Probe(Box::new(Evaluator::new(
                &self.params,
                keys.evaluation,
            )))),
            Workload::Model(m) => Ok(Context::Model(Box::new(m.context(
                mode,
                keys.evaluation,
                keys.encapsulation,
            )?))),
        }
    }

    /// Checks inputs against `shape`: count, degree, level, slots and scale.
    ///
    /// # Errors
    /// [`ServiceError::InvalidRequest`] saying what differs.
    pub fn check_inputs(&self, inputs: &[Ciphertext], shape: &InputShape) -> Result<()> {
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

    /// Runs the stateless forward pass with a session's context; the model also answers its
    /// latency report. `positions` (one per prompt) is for a model with a last-position head.
    ///
    /// # Errors
    /// Invalid inputs or positions, or an evaluation error.
    pub fn forward(
        &self,
        ctx: &Context,
        inputs: Vec<Ciphertext>,
        positions: Option<&[usize]>,
    ) -> Result<(Vec<Ciphertext>, Option<Report>)> {
        self.check_inputs(&inputs, &self.input_shape())?;
        match (&self.workload, ctx) {
            (Workload::Probe(_), _) if positions.is_some() => Err(ServiceError::InvalidRequest {
                reason: "the probe workload takes no positions".into(),
            }),
            (Workload::Probe(p), Context::Probe(eval)) => {
                let be = HeBackend::new(&self.params, &self.encoder, eval);
                Ok((vec![p.forward(&be, &inputs[0])?], None))
            }
            (Workload::Model(m), Context::Model(server)) => {
                let (out, report) = m.forward(server, inputs, positions)?;
                Ok((out, Some(report)))
            }
            _ => Err(mismatch()),
        }
    }

    /// Runs steps: extends the session's encrypted cache by the inputs (one for the probe,
    /// one or more tokens for the model) and answers for the last position, with the reports
    /// of the model's steps. On error the probe's cache is left as it was (the model's as
    /// [`ModelWorkload::step`] says).
    ///
    /// # Errors
    /// Invalid inputs, a workload without steps, or an evaluation error.
    pub fn step(
        &self,
        ctx: &Context,
        state: &mut EncryptedState,
        inputs: Vec<Ciphertext>,
    ) -> Result<(Vec<Ciphertext>, Vec<Report>)> {
        let shape = self.step_shape().ok_or_else(no_decoder)?;
        match (&self.workload, ctx) {
            (Workload::Probe(p), Context::Probe(eval)) => {
                self.check_inputs(&inputs, &shape)?;
                let token = inputs.into_iter().next().ok_or_else(mismatch)?;
                let be = HeBackend::new(&self.params, &self.encoder, eval);
                state.cache.push(p.project(&be, &token)?);
                match p.activate_mean(&be, &state.cache) {
                    Ok(out) => Ok((vec![out], Vec::new())),
                    Err(e) => {
                        state.cache.pop();
                        Err(e.into())
                    }
                }
            }
            (Workload::Model(m), Context::Model(server)) => {
                for ct in &inputs {
                    self.check_inputs(std::slice::from_ref(ct), &shape)?;
                }
                m.step(server, &mut state.kv, inputs)
            }
            _ => Err(mismatch()),
        }
    }

    /// Bytes one step may add to the encrypted state (reserved before it runs, settled
    /// after): one ciphertext at the input level for the probe; for the model, a key and a
    /// value ciphertext per layer at the top level (a new cache ciphertext, or the growth of
    /// an existing one).
    pub fn step_bytes(&self) -> u64 {
        let ct = |level: usize| (2 * (level + 1) * self.params.ring().n() * 8 + 64) as u64;
        match &self.workload {
            Workload::Probe(_) => ct(self.input_shape().level),
            Workload::Model(m) => 2 * m.spec().layers as u64 * ct(self.params.ring().max_level()),
        }
    }
}

/// The error for a session whose keys are incomplete.
pub fn missing(status: KeyStatus) -> ServiceError {
    ServiceError::MissingKeys {
        relin_missing: status.relinearization_missing,
        galois: status.galois_missing,
        encapsulation_missing: status.encapsulation_missing,
    }
}

fn mismatch() -> ServiceError {
    ServiceError::Internal {
        reason: "a session context of another workload".into(),
    }
}
