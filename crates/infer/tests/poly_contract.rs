//! The compiled circuit against `psf_poly::PolyModel` itself: a tiny random NeoX model from
//! psf-model, its calibrated `PolySpec` (default options, and the options of the SmolLM2 fit:
//! per-layer activation degrees, the reciprocal's bound, per-op margins, first guesses chosen
//! by depth), the PolyModel in polynomial mode; the circuit's `f64` twin and its simulated run
//! (exact levels, scales, bootstrap placement) reproduce the PolyModel's logits.

mod common;

use candle_core::Device;
use psf_circuits::SimBackend;
use psf_infer::runtime::{RunOptions, SimRefresh, run_sim};
use psf_infer::{CompileOptions, CompiledModel, ModelIr};
use psf_model::model::var_tensors;
use psf_model::{Model, ModelConfigLiteral};
use psf_poly::{
    CalibrationOptions, Mode, ObservedRanges, OpMargins, PolyModel, PolyWeights, calibrate,
};

fn poly_model(opts: &CalibrationOptions) -> PolyModel {
    let json = r#"{"model_type":"gpt_neox","vocab_size":64,"hidden_size":32,"num_hidden_layers":2,
        "num_attention_heads":4,"intermediate_size":64,"max_position_embeddings":16,
        "rotary_pct":0.5,"attention_norm":{"kind":"power","p":4,"eps":0.001}}"#;
    let lit: ModelConfigLiteral = serde_json::from_str(json).unwrap();
    let cfg = lit.try_build().unwrap();
    let (_, varmap) = Model::init_random(&cfg, 3, &Device::Cpu).unwrap();
    let model = Model::with_varmap(&cfg, &varmap, 3, &Device::Cpu).unwrap();
    let weights = PolyWeights::from_tensors(var_tensors(&varmap), cfg.clone()).unwrap();
    let windows: Vec<Vec<u32>> = (0..6).map(|s| ids(16, s * 7 + 1)).collect();
    let ranges = ObservedRanges::record(&model, &cfg, &windows).unwrap();
    let spec = calibrate(&cfg, &ranges, opts).unwrap();
    PolyModel::new(weights, spec).unwrap()
}

fn ids(n: usize, seed: u32) -> Vec<u32> {
    (0..n as u32)
        .map(|i| (i.wrapping_mul(2654435761) ^ seed) % 64)
        .collect()
}

#[test]
fn circuit_reproduces_the_poly_model() {
    check(&poly_model(&CalibrationOptions::default()));
}

#[test]
fn circuit_reproduces_a_poly_model_fitted_with_the_smollm2_options() {
    let opts = CalibrationOptions {
        activation_degree: 7,
        activation_target_error: Some(1e-9),
        activation_max_degree: 63,
        margins: OpMargins {
            reciprocal_to_bound: true,
            inv_sqrt_hi: Some(1.0),
            activation: Some(0.25),
            ..OpMargins::default()
        },
        guess_degree_candidates: vec![3, 7, 15],
        ..CalibrationOptions::default()
    };
    let poly = poly_model(&opts);
    let degrees: Vec<usize> = (poly.spec().layers.iter())
        .map(|l| l.activation.poly.degree())
        .collect();
    assert!(
        degrees.iter().any(|&d| d > 7),
        "per-layer degrees {degrees:?}"
    );
    check(&poly);
}

fn check(poly: &PolyModel) {
    let ir = ModelIr::from_poly(poly).unwrap();
    let (batch, seq_len) = (4, 8);
    let embed = |seed: u32| -> Vec<Vec<Vec<f64>>> {
        (0..batch as u32)
            .map(|b| {
                let m = poly.weights().embed(&ids(seq_len, seed + b)).unwrap();
                (0..seq_len).map(|t| m.row(t).to_vec()).collect()
            })
            .collect()
    };
    let x = embed(100);
    let m = CompiledModel::compile(
        &ir,
        &CompileOptions::for_log_n(seq_len, batch, 12, embed(1)),
    )
    .unwrap();
    let params = m.params().unwrap();
    let refresh = SimRefresh::new(m.fresh_level(&params));
    let packed = m.layout.pack(&x, ir.d_model).unwrap();
    let run = run_sim(
        &m,
        SimBackend::new(&params),
        &refresh,
        &packed,
        &RunOptions::default(),
    );
    let slots: Vec<Vec<f64>> = run
        .unwrap()
        .outputs
        .iter()
        .map(|c| c.values.clone())
        .collect();
    let mut worst = (0.0f64, 0.0f64);
    for (b, prompt) in x.iter().enumerate() {
        let flat: Vec<f64> = prompt.iter().flatten().copied().collect();
        let emb = psf_poly::Matrix::new(seq_len, ir.d_model, flat).unwrap();
        let want = poly.forward(&emb, Mode::Polynomial).unwrap().logits;
        let twin = ir.forward_f64(prompt).unwrap();
        for pos in 0..seq_len {
            let have = m.layout.unpack_token(&slots, ir.vocab(), b, pos).unwrap();
            for (v, w) in want.row(pos).iter().enumerate() {
                worst.0 = worst.0.max((twin[pos][v] - w).abs());
                worst.1 = worst.1.max((have[v] - w).abs());
            }
        }
    }
    eprintln!(
        "max |twin - PolyModel| {:.2e}, max |circuit - PolyModel| {:.2e}",
        worst.0, worst.1
    );
    assert!(worst.0 < 1e-9 && worst.1 < 1e-6, "{worst:?}");
}
