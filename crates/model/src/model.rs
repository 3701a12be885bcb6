//! A causal language model of either layout, loaded by Hugging Face tensor names, or
//! initialized from a seed for training.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{D, DType, Device, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::{Arch, ModelConfig, ModelConfigLiteral};
use crate::error::{Error, Result};
use crate::llama::Llama;
use crate::loss::head_cross_entropy;
use crate::neox::GptNeox;
use crate::ranges::RangeRecorder;

/// A GPT-NeoX or Llama causal language model.
#[derive(Debug, Clone)]
pub enum Model {
    /// GPT-NeoX / Pythia layout.
    Neox(GptNeox),
    /// Llama layout.
    Llama(Llama),
}

impl Model {
    /// Builds the model from a `VarBuilder` whose tensors carry Hugging Face names.
    pub fn load(vb: VarBuilder, cfg: &ModelConfig) -> Result<Self> {
        Ok(match cfg.arch {
            Arch::GptNeox => Model::Neox(GptNeox::load(vb, cfg)?),
            Arch::Llama => Model::Llama(Llama::load(vb, cfg)?),
        })
    }

    /// Loads a `.safetensors` file (f32; other float types are converted) for `cfg`.
    pub fn from_safetensors(
        path: impl AsRef<Path>,
        cfg: &ModelConfig,
        device: &Device,
    ) -> Result<Self> {
        let tensors = candle_core::safetensors::load(path.as_ref(), device)?;
        Self::load(VarBuilder::from_tensors(tensors, DType::F32, device), cfg)
    }

    /// Loads a Hugging Face model directory: `config.json` + `model.safetensors`.
    pub fn from_pretrained_dir(
        dir: impl AsRef<Path>,
        device: &Device,
    ) -> Result<(Self, ModelConfig)> {
        Self::from_dir_edited(dir, |_| {}, device)
    }

    /// Loads a model directory with its `config.json` changed by `edit` before it is checked,
    /// e.g. the same weights under another attention normalization.
    pub fn from_dir_edited(
        dir: impl AsRef<Path>,
        edit: impl FnOnce(&mut ModelConfigLiteral),
        device: &Device,
    ) -> Result<(Self, ModelConfig)> {
        let dir = dir.as_ref();
        let mut lit = ModelConfigLiteral::from_file(dir.join("config.json"))?;
        edit(&mut lit);
        let cfg = lit.try_build()?;
        let model = Self::from_safetensors(dir.join("model.safetensors"), &cfg, device)?;
        Ok((model, cfg))
    }

    /// A freshly initialized, trainable model: weights `N(0, 0.02)`, biases 0, norm gains 1.
    /// Each tensor's values depend only on `(seed, name)`, not on creation order.
    pub fn init_random(cfg: &ModelConfig, seed: u64, device: &Device) -> Result<(Self, VarMap)> {
        let varmap = VarMap::new();
        let backend = SeededInit {
            varmap: varmap.clone(),
            seed,
        };
        let vb = VarBuilder::from_backend(Box::new(backend), DType::F32, device.clone());
        Ok((Self::load(vb, cfg)?, varmap))
    }

    /// Trainable model whose variables live in `varmap` (already filled, e.g. from a
    /// checkpoint, or filled with the seeded initialization for missing names).
    pub fn with_varmap(
        cfg: &ModelConfig,
        varmap: &VarMap,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let backend = SeededInit {
            varmap: varmap.clone(),
            seed,
        };
        Self::load(
            VarBuilder::from_backend(Box::new(backend), DType::F32, device.clone()),
            cfg,
        )
    }

    /// Final hidden states `(B, T, C)` for token ids `(B, T)` (u32).
    pub fn hidden(&self, ids: &Tensor, rec: Option<&mut RangeRecorder>) -> Result<Tensor> {
        match self {
            Model::Neox(m) => m.hidden(ids, rec),
            Model::Llama(m) => m.hidden(ids, rec),
        }
    }

    /// Logits `(B, T, V)` for token ids `(B, T)`.
    pub fn forward(&self, ids: &Tensor, rec: Option<&mut RangeRecorder>) -> Result<Tensor> {
        let h = self.hidden(ids, rec)?;
        match self {
            Model::Neox(m) => m.head().forward(&h),
            Model::Llama(m) => m.head().forward(&h),
        }
    }

    /// Mean next-token cross-entropy of `ids` `(B, T)` against `targets` `(B, T)` (u32).
    pub fn loss(
        &self,
        ids: &Tensor,
        targets: &Tensor,
        rec: Option<&mut RangeRecorder>,
    ) -> Result<Tensor> {
        let h = self.hidden(ids, rec)?; // (B, T, C)
        let head = match self {
            Model::Neox(m) => m.head(),
            Model::Llama(m) => m.head(),
        };
        let h = h.reshape(((), h.dim(D::Minus1)?))?; // (B*T, C)
        head_cross_entropy(&h, head.weight(), &targets.flatten_all()?)
    }
}

/// A `VarBuilder` backend that creates missing variables from a seeded RNG keyed by name.
struct SeededInit {
    varmap: VarMap,
    seed: u64,
}

impl SimpleBackend for SeededInit {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut data = self.varmap.data().lock().expect("varmap lock");
        if let Some(var) = data.get(name) {
            if var.shape() != &s {
                candle_core::bail!("{name}: shape {:?}, expected {s:?}", var.shape());
            }
            return Ok(var.as_tensor().clone());
        }
        let values = init_values(s.elem_count(), h, self.seed, name)?;
        let var = Var::from_tensor(&Tensor::from_vec(values, s, dev)?.to_dtype(dtype)?)?;
        let tensor = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(tensor)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let data = self.varmap.data().lock().expect("varmap lock");
        match data.get(name) {
            Some(v) => Ok(v.as_tensor().clone()),
            None => candle_core::bail!("{name}: no such variable"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap
            .data()
            .lock()
            .expect("varmap lock")
            .contains_key(name)
    }
}

fn init_values(n: usize, h: Init, seed: u64, name: &str) -> candle_core::Result<Vec<f32>> {
    // FNV-1a of the name, mixed with the seed.
    let key = name.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ key);
    Ok(match h {
        Init::Const(c) => vec![c as f32; n],
        Init::Randn { mean, stdev } => (0..n)
            .map(|_| {
                let (u1, u2): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random::<f64>());
                let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                (mean + stdev * z) as f32
            })
            .collect(),
        Init::Uniform { lo, up } => (0..n).map(|_| rng.random_range(lo..up) as f32).collect(),
        other => candle_core::bail!("{name}: unsupported init {other:?}"),
    })
}

/// Every trainable variable by name, sorted (for optimizers and checkpoints).
pub fn named_vars(varmap: &VarMap) -> Vec<(String, Var)> {
    let data = varmap.data().lock().expect("varmap lock");
    let mut vars: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// The variables' current values, by name (for saving with `candle_core::safetensors::save`).
pub fn var_tensors(varmap: &VarMap) -> HashMap<String, Tensor> {
    named_vars(varmap)
        .into_iter()
        .map(|(k, v)| (k, v.as_tensor().clone()))
        .collect()
}

/// Checks that no variable is missing from a loaded tensor map (a checkpoint of another shape).
pub fn check_names(expected: &VarMap, loaded: &HashMap<String, Tensor>) -> Result<()> {
    for (name, var) in named_vars(expected) {
        match loaded.get(&name) {
            Some(t) if t.shape() == var.shape() => {}
            Some(t) => {
                return Err(Error::InvalidConfig(format!(
                    "{name}: shape {:?} in file, model wants {:?}",
                    t.shape(),
                    var.shape()
                )));
            }
            None => return Err(Error::InvalidConfig(format!("{name}: missing in file"))),
        }
    }
    Ok(())
}
