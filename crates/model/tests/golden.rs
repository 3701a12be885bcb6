//! Forward pass against Hugging Face transformers' logits (vectors made by
//! `scripts/make_golden.py`): both layouts, partial rotary, parallel and sequential residual,
//! grouped- and multi-query attention, tied head. Softmax attention, tolerance 1e-4.

use std::path::PathBuf;

use candle_core::{DType, Device};
use psf_model::{Arch, Model};

fn check(name: &str, arch: Arch) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name);
    let dev = Device::Cpu;
    let (model, cfg) = Model::from_pretrained_dir(&dir, &dev).unwrap();
    assert_eq!(cfg.arch, arch);
    let io = candle_core::safetensors::load(dir.join("io.safetensors"), &dev).unwrap();
    let ids = io["input_ids"].to_dtype(DType::U32).unwrap();
    let want = &io["logits"];
    let got = model.forward(&ids, None).unwrap();
    assert_eq!(got.dims(), want.dims());
    let diff = (&got - want).unwrap().abs().unwrap().flatten_all().unwrap();
    let max = diff.max(0).unwrap().to_scalar::<f32>().unwrap();
    let scale = want.abs().unwrap().flatten_all().unwrap().max(0).unwrap();
    println!(
        "{name}: max |diff| {max:.3e} (max |logit| {})",
        scale.to_scalar::<f32>().unwrap()
    );
    assert!(max < 1e-4, "{name}: max |diff| {max}");
}

#[test]
fn neox_partial_rotary_parallel_residual() {
    check("neox_parallel", Arch::GptNeox);
}

#[test]
fn neox_sequential_residual_tanh_gelu() {
    check("neox_sequential", Arch::GptNeox);
}

#[test]
fn llama_grouped_query_attention() {
    check("llama_gqa", Arch::Llama);
}

#[test]
fn llama_tied_head_multi_query() {
    check("llama_tied_mqa", Arch::Llama);
}
