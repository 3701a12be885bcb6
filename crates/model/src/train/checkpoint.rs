//! Checkpoints: `model.safetensors` (Hugging Face names) + `config.json` (loadable with
//! `Model::from_pretrained_dir`), `optimizer.safetensors` (AdamW moments) and `state.json`
//! (step, run configuration). Written to a temporary directory and renamed into place.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{check_names, named_vars, var_tensors};
use crate::train::Trainer;
use crate::train::config::TrainConfig;

/// `state.json` of a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Optimizer steps completed.
    pub step: usize,
    /// Training loss of the last step (NaN before the first step: JSON has no NaN, so it is
    /// written as `null` and read back as NaN).
    #[serde(deserialize_with = "null_as_nan")]
    pub loss: f32,
    /// The run's configuration (a resumed run must match it, except `steps`).
    pub train: TrainConfig,
}

fn null_as_nan<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f32, D::Error> {
    Ok(Option::<f32>::deserialize(d)?.unwrap_or(f32::NAN))
}

/// Saves `trainer` into `dir` (replacing any previous checkpoint there).
pub fn save(dir: &Path, trainer: &Trainer, train: &TrainConfig, loss: f32) -> Result<()> {
    let tmp = dir.with_extension("tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    candle_core::safetensors::save(&var_tensors(&trainer.varmap), tmp.join("model.safetensors"))?;
    candle_core::safetensors::save(
        &trainer.opt.state_tensors()?,
        tmp.join("optimizer.safetensors"),
    )?;
    trainer.cfg.to_literal().to_file(tmp.join("config.json"))?;
    let state = CheckpointState {
        step: trainer.opt.step,
        loss,
        train: train.clone(),
    };
    let path = tmp.join("state.json");
    let text = serde_json::to_string_pretty(&state).map_err(|e| Error::json(&path, e))?;
    std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| Error::io(dir, e))
}

/// Reads `state.json` of the checkpoint in `dir`, if there is one.
pub fn read_state(dir: &Path) -> Result<Option<CheckpointState>> {
    let path = dir.join("state.json");
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    Ok(Some(
        serde_json::from_str(&text).map_err(|e| Error::json(&path, e))?,
    ))
}

/// Overwrites the variables of `varmap` with the tensors of a safetensors file (which must
/// hold every variable with the same shape; extra tensors are ignored).
pub fn load_weights(varmap: &VarMap, path: &Path, dev: &Device) -> Result<()> {
    let tensors = candle_core::safetensors::load(path, dev)?;
    check_names(varmap, &tensors).map_err(|e| ckpt_err(path, e.to_string()))?;
    for (name, var) in named_vars(varmap) {
        var.set(&tensors[&name].to_dtype(var.dtype())?)?;
    }
    Ok(())
}

/// Restores weights, optimizer moments and step of `trainer` from `dir`.
pub fn restore(dir: &Path, trainer: &mut Trainer, dev: &Device) -> Result<CheckpointState> {
    let state = read_state(dir)?.ok_or_else(|| ckpt_err(dir, "no state.json".into()))?;
    load_weights(&trainer.varmap, &dir.join("model.safetensors"), dev)?;
    let opt: HashMap<String, Tensor> =
        candle_core::safetensors::load(dir.join("optimizer.safetensors"), dev)?;
    trainer
        .opt
        .load_state(&opt, state.step)
        .map_err(|e| ckpt_err(dir, e.to_string()))?;
    Ok(state)
}

fn ckpt_err(path: &Path, msg: String) -> Error {
    Error::Checkpoint {
        path: PathBuf::from(path),
        msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_loss_round_trips_through_state_json() {
        let state = CheckpointState {
            step: 0,
            loss: f32::NAN,
            train: TrainConfig::default(),
        };
        let text = serde_json::to_string(&state).unwrap();
        let back: CheckpointState = serde_json::from_str(&text).unwrap();
        assert!(back.loss.is_nan() && back.step == 0);
        let finite = CheckpointState { loss: 2.5, ..state };
        let back: CheckpointState =
            serde_json::from_str(&serde_json::to_string(&finite).unwrap()).unwrap();
        assert_eq!(back.loss, 2.5);
    }
}
