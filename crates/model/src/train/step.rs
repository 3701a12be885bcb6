//! One optimization step: forward, loss (+ optional range penalty), backward, AdamW.

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::model::{Model, named_vars};
use crate::ranges::{RangeKind, RangeRecorder};
use crate::train::optim::{AdamW, AdamWConfig, Schedule};

/// The range-minimization loss `alpha * sum_layers max|input|` (DESIGN.md §2.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RangeLoss {
    /// Weight of the penalty (small, e.g. 1e-4; reported with results).
    pub alpha: f64,
    /// Which inputs are penalized.
    #[serde(default = "default_kinds")]
    pub kinds: Vec<RangeKind>,
}

fn default_kinds() -> Vec<RangeKind> {
    vec![
        RangeKind::Denominator,
        RangeKind::NormVariance,
        RangeKind::ActivationInput,
    ]
}

/// What one step produced.
#[derive(Debug, Clone, Copy)]
pub struct StepOutput {
    /// Cross-entropy (without the range penalty).
    pub loss: f32,
    /// The range penalty before multiplying by alpha (0 when off).
    pub range_penalty: f32,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Learning rate used.
    pub lr: f64,
}

/// A model with its variables, optimizer and schedule.
pub struct Trainer {
    /// The model being trained (its weights are the variables in `varmap`).
    pub model: Model,
    /// Trainable variables by Hugging Face name.
    pub varmap: VarMap,
    /// Optimizer (holds the step counter).
    pub opt: AdamW,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Optional range-minimization loss.
    pub range_loss: Option<RangeLoss>,
    /// The model configuration.
    pub cfg: ModelConfig,
}

impl Trainer {
    /// A trainer for a model whose variables are in `varmap` (see [`Model::init_random`]).
    pub fn new(
        cfg: &ModelConfig,
        model: Model,
        varmap: VarMap,
        adamw: AdamWConfig,
        schedule: Schedule,
        range_loss: Option<RangeLoss>,
    ) -> Self {
        let opt = AdamW::new(named_vars(&varmap), adamw);
        Trainer {
            model,
            varmap,
            opt,
            schedule,
            range_loss,
            cfg: cfg.clone(),
        }
    }

    /// One step on inputs `x` and targets `y`, both `(B, T)` u32.
    pub fn step(&mut self, x: &Tensor, y: &Tensor) -> Result<StepOutput> {
        let step = self.opt.step;
        let mut rec = RangeRecorder::default();
        let record = self.range_loss.is_some().then_some(&mut rec);
        let ce = self.model.loss(x, y, record)?;
        let (total, penalty) = match &self.range_loss {
            Some(rl) => match rec.range_penalty(&rl.kinds)? {
                Some(p) => ((&ce + (&p * rl.alpha)?)?, p.to_scalar::<f32>()?),
                None => (ce.clone(), 0.0),
            },
            None => (ce.clone(), 0.0),
        };
        let loss = ce.to_scalar::<f32>()?;
        if !loss.is_finite() {
            return Err(Error::NonFinite {
                step,
                what: "loss".into(),
            });
        }
        let grads = total.backward()?;
        let lr = self.schedule.lr(step);
        let stats = self.opt.step(&grads, lr)?;
        Ok(StepOutput {
            loss,
            range_penalty: penalty,
            grad_norm: stats.grad_norm,
            lr,
        })
    }

    /// The device the model lives on.
    pub fn device(&self) -> Device {
        named_vars(&self.varmap)
            .first()
            .map(|(_, v)| v.device().clone())
            .unwrap_or(Device::Cpu)
    }
}
