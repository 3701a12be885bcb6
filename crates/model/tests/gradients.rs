//! Every parameter receives a non-zero gradient under every attention normalization, with
//! and without the range-minimization loss, in both layouts.

use candle_core::{DType, Device, Tensor};
use psf_model::model::named_vars;
use psf_model::{
    AttentionNorm, EpsScaling, Model, ModelConfigLiteral, PowerForm, PowerSoftmax, RangeKind,
    RangeRecorder,
};

fn tiny(model_type: &str, norm: AttentionNorm) -> ModelConfigLiteral {
    ModelConfigLiteral {
        model_type: model_type.into(),
        vocab_size: 64,
        hidden_size: 32,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: (model_type == "llama").then_some(2),
        intermediate_size: 48,
        max_position_embeddings: 16,
        attention_norm: Some(norm),
        ..Default::default()
    }
}

fn norms() -> Vec<AttentionNorm> {
    let power = |eps, eps_scaling, form| {
        AttentionNorm::Power(PowerSoftmax {
            p: 4,
            eps,
            eps_scaling,
            delta: 1e-4,
            form,
        })
    };
    vec![
        AttentionNorm::Softmax,
        AttentionNorm::ReluLinear,
        power(0.0, EpsScaling::PerKey, PowerForm::Stable),
        power(1e-2, EpsScaling::PerKey, PowerForm::Stable),
        power(1e-2, EpsScaling::Fixed, PowerForm::Stable),
        power(1e-2, EpsScaling::PerKey, PowerForm::Inference),
    ]
}

fn check_all_gradients(lit: ModelConfigLiteral, range_loss: bool) {
    let dev = Device::Cpu;
    let cfg = lit.try_build().unwrap();
    let (model, varmap) = Model::init_random(&cfg, 7, &dev).unwrap();
    let ids: Vec<u32> = (0..2 * 9).map(|i| (i * 37 + 5) % 64).collect();
    let ids = Tensor::from_vec(ids, (2, 9), &dev).unwrap();
    let (x, y) = (ids.narrow(1, 0, 8).unwrap(), ids.narrow(1, 1, 8).unwrap());
    let mut rec = RangeRecorder::default();
    let mut loss = model.loss(&x, &y, range_loss.then_some(&mut rec)).unwrap();
    if range_loss {
        let kinds = [
            RangeKind::Denominator,
            RangeKind::NormVariance,
            RangeKind::ActivationInput,
        ];
        let penalty = rec.range_penalty(&kinds).unwrap().unwrap();
        loss = (loss + (penalty * 1e-3).unwrap()).unwrap();
    }
    let grads = loss.backward().unwrap();
    let vars = named_vars(&varmap);
    assert!(vars.len() > 10);
    for (name, var) in vars {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name}: no gradient"));
        let g = g
            .to_dtype(DType::F32)
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap();
        let g = g.to_scalar::<f32>().unwrap();
        assert!(
            g.is_finite() && g > 0.0,
            "{:?} {name}: |grad| sum {g}",
            cfg.attention_norm
        );
    }
}

#[test]
fn neox_every_parameter_gets_a_gradient() {
    for norm in norms() {
        check_all_gradients(tiny("gpt_neox", norm), false);
    }
}

#[test]
fn llama_every_parameter_gets_a_gradient() {
    for norm in norms() {
        check_all_gradients(tiny("llama", norm), false);
    }
}

#[test]
fn every_parameter_gets_a_gradient_with_position_decay() {
    for model_type in ["gpt_neox", "llama"] {
        for norm in norms() {
            let mut lit = tiny(model_type, norm);
            lit.position_decay = Some(true);
            check_all_gradients(lit, false);
        }
    }
}

#[test]
fn every_parameter_gets_a_gradient_with_score_centering() {
    for model_type in ["gpt_neox", "llama"] {
        for norm in norms() {
            if norm == AttentionNorm::Softmax {
                continue; // rejected: a shift changes nothing under softmax
            }
            let mut lit = tiny(model_type, norm);
            lit.score_centering = Some(true);
            lit.position_decay = Some(true);
            check_all_gradients(lit, false);
        }
    }
}

#[test]
fn range_loss_keeps_every_gradient() {
    for model_type in ["gpt_neox", "llama"] {
        let norm = AttentionNorm::Power(PowerSoftmax {
            eps: 1e-2,
            ..Default::default()
        });
        check_all_gradients(tiny(model_type, norm), true);
    }
}

#[test]
fn recorder_sees_every_layer() {
    let dev = Device::Cpu;
    let norm = AttentionNorm::Power(PowerSoftmax::default());
    let cfg = tiny("gpt_neox", norm).try_build().unwrap();
    let (model, _) = Model::init_random(&cfg, 1, &dev).unwrap();
    let ids = Tensor::zeros((1, 8), DType::U32, &dev).unwrap();
    let mut rec = RangeRecorder::default();
    model.forward(&ids, Some(&mut rec)).unwrap();
    let intervals = rec.intervals().unwrap();
    // Per layer: 2 norms, scores, denominator, activation; plus the final norm.
    assert_eq!(intervals.len(), 2 * 5 + 1);
    for (_, kind, iv) in intervals {
        assert!(iv.min <= iv.max);
        if matches!(kind, RangeKind::Denominator | RangeKind::NormVariance) {
            assert!(iv.min > 0.0, "{kind:?} {iv:?}");
        }
    }
}
