//! PolyModel against psf-model's candle forward on tiny random models (NeoX and Llama with
//! grouped-query attention), calibration, and out-of-interval counting.

use candle_core::Device;
use psf_model::model::var_tensors;
use psf_model::{Model, ModelConfig, ModelConfigLiteral};
use psf_poly::{
    Approximated, CalibrationOptions, Mode, ObservedRanges, PolyModel, PolyOp, PolyWeights,
    calibrate, candle_logits, compare, compare_many,
};

fn literal(neox: bool) -> ModelConfigLiteral {
    let json = if neox {
        r#"{"model_type":"gpt_neox","vocab_size":64,"hidden_size":32,"num_hidden_layers":2,
            "num_attention_heads":4,"intermediate_size":64,"max_position_embeddings":16,
            "rotary_pct":0.5,"attention_norm":{"kind":"power","p":4,"eps":0.001}}"#
    } else {
        r#"{"model_type":"llama","vocab_size":64,"hidden_size":32,"num_hidden_layers":2,
            "num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":48,
            "max_position_embeddings":16,"tie_word_embeddings":true,
            "attention_norm":{"kind":"power","p":4,"eps":0.001}}"#
    };
    serde_json::from_str(json).unwrap()
}

/// A random model with larger-than-default weights (so scores and activations are not tiny).
fn random(neox: bool, seed: u64) -> (Model, ModelConfig, PolyWeights) {
    random_from(literal(neox), seed)
}

/// As [`random`], from a literal.
fn random_from(lit: ModelConfigLiteral, seed: u64) -> (Model, ModelConfig, PolyWeights) {
    let cfg = lit.try_build().unwrap();
    let dev = Device::Cpu;
    let (_, varmap) = Model::init_random(&cfg, seed, &dev).unwrap();
    for (name, var) in psf_model::model::named_vars(&varmap) {
        if name.ends_with("weight") && var.rank() == 2 {
            var.set(&(var.as_tensor() * 8.0).unwrap()).unwrap();
        }
    }
    let model = Model::with_varmap(&cfg, &varmap, seed, &dev).unwrap();
    let weights = PolyWeights::from_tensors(var_tensors(&varmap), cfg.clone()).unwrap();
    (model, cfg, weights)
}

fn ids(n: usize, seed: u32) -> Vec<u32> {
    (0..n as u32)
        .map(|i| (i.wrapping_mul(2654435761) ^ seed) % 64)
        .collect()
}

fn spec_for(model: &Model, cfg: &ModelConfig, opts: &CalibrationOptions) -> psf_poly::PolySpec {
    let windows: Vec<Vec<u32>> = (0..6).map(|s| ids(16, s * 7 + 1)).collect();
    let ranges = ObservedRanges::record(model, cfg, &windows).unwrap();
    calibrate(cfg, &ranges, opts).unwrap()
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

/// The exact twin's logits for `x` and their largest error against candle's, relative to the
/// largest candle logit (at least 1).
fn exact_against_candle(model: &Model, poly: &PolyModel, x: &[u32]) -> (psf_poly::Matrix, f64) {
    let want = candle_logits(model, x).unwrap();
    let got = poly.forward_ids(x, Mode::Exact).unwrap().logits;
    let scale = want.data.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(scale > 0.1, "logits too small to test: {scale}");
    let err = max_abs_diff(&want.data, &got.data) / scale.max(1.0);
    (got, err)
}

#[test]
fn exact_mode_matches_candle() {
    for neox in [true, false] {
        let (model, cfg, weights) = random(neox, 3);
        let spec = spec_for(&model, &cfg, &CalibrationOptions::default());
        let poly = PolyModel::new(weights, spec).unwrap();
        let x = ids(16, 99);
        let (got, err) = exact_against_candle(&model, &poly, &x);
        assert!(err < 1e-4, "neox {neox}: max err {err} (relative)");
        // Requested positions only.
        let at = poly.forward_at(&poly.weights().embed(&x).unwrap(), &[3, 15], Mode::Exact);
        let at = at.unwrap().logits;
        // Same values up to the summation order of the matrix product (gemm blocks by rows).
        for (a, b) in at.row(1).iter().zip(got.row(15)) {
            assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{a} vs {b}");
        }
    }
}

/// The positional decay (ALiBi's per-head rates) in the f64 twin matches candle's.
#[test]
fn exact_mode_matches_candle_with_position_decay() {
    for neox in [true, false] {
        let mut lit = literal(neox);
        lit.position_decay = Some(true);
        let (model, cfg, weights) = random_from(lit, 5);
        assert_eq!(weights.layers[0].decay.len(), 4);
        let spec = spec_for(&model, &cfg, &CalibrationOptions::default());
        let poly = PolyModel::new(weights, spec).unwrap();
        let x = ids(16, 42);
        let (got, err) = exact_against_candle(&model, &poly, &x);
        assert!(err < 1e-4, "neox {neox}: max err {err} (relative)");
        // Without its decay the same weights give other logits: the test can fail.
        let mut plain = poly.weights().clone();
        plain.layers.iter_mut().for_each(|l| l.decay.clear());
        let off = PolyModel::new(plain, poly.spec().clone()).unwrap();
        let off = off.forward_ids(&x, Mode::Exact).unwrap().logits;
        let diff = max_abs_diff(&off.data, &got.data);
        assert!(diff > 1e-2, "decay changed nothing: {diff}");
    }
}

/// Score centering (a training-study option) is not in the polynomial circuit: a model with it
/// is refused with a typed error, not converted without it.
#[test]
fn score_centering_is_refused_not_dropped() {
    let mut lit = literal(true);
    lit.score_centering = Some(true);
    let cfg = lit.try_build().unwrap();
    let (_, varmap) = Model::init_random(&cfg, 3, &Device::Cpu).unwrap();
    let err = PolyWeights::from_tensors(var_tensors(&varmap), cfg).unwrap_err();
    assert!(err.to_string().contains("score_centering"), "{err}");
}

#[test]
fn polynomial_mode_tracks_exact_and_counts_ranges() {
    let (model, cfg, weights) = random(true, 5);
    let opts = CalibrationOptions {
        target_rel_error: 1e-7,
        activation_degree: 24,
        ..Default::default()
    };
    let spec = spec_for(&model, &cfg, &opts);
    let calib: Vec<Vec<u32>> = (0..6).map(|s| ids(17, s * 7 + 1)).collect();
    let poly = PolyModel::new(weights.clone(), spec.clone()).unwrap();
    let cmp = compare(&poly, &calib).unwrap();
    assert_eq!(cmp.agreement(), 1.0);
    assert!(cmp.ppl_rel_change().abs() < 1e-3, "{cmp:?}");
    assert!(cmp.out_of_range.total() > 0);

    // Shrink every interval: inputs now fall outside and are counted per op.
    let mut narrow = spec;
    for l in &mut narrow.layers {
        l.norm1.b = l.norm1.a * 1.01;
        l.reciprocal.a = l.reciprocal.b * 0.99;
        l.activation =
            psf_poly::ActivationSpec::fit(l.activation.function, (-0.01, 0.01), 4).unwrap();
    }
    let poly = PolyModel::new(weights, narrow).unwrap();
    let f = poly.forward_ids(&ids(16, 4), Mode::Exact).unwrap();
    for op in [PolyOp::Norm1, PolyOp::Reciprocal, PolyOp::Activation] {
        let c = f.out_of_range.sites[&psf_poly::OpSite { layer: 0, op }];
        assert!(c.outside > 0 && c.outside <= c.total, "{op:?}: {c:?}");
    }
    assert_eq!(
        f.out_of_range.sites[&psf_poly::OpSite {
            layer: 0,
            op: PolyOp::Norm2
        }]
            .outside,
        0
    );
}

#[test]
fn a_degree_sweep_shares_weights_and_the_exact_run() {
    let (model, cfg, weights) = random(false, 11);
    let specs: Vec<_> = [4, 16]
        .iter()
        .map(|&d| {
            let opts = CalibrationOptions {
                activation_degree: d,
                ..Default::default()
            };
            spec_for(&model, &cfg, &opts)
        })
        .collect();
    let base = PolyModel::new(weights.clone(), specs[0].clone()).unwrap();
    let polys: Vec<PolyModel> = specs
        .iter()
        .map(|s| base.with_spec(s.clone()).unwrap())
        .collect();
    assert!(std::ptr::eq(polys[0].weights(), polys[1].weights()));
    // The calibration windows plus one target each: every input lies in its interval.
    let windows: Vec<Vec<u32>> = (0..3).map(|s| ids(17, s * 7 + 1)).collect();
    let many = compare_many(&polys, &windows).unwrap();
    for (p, m) in polys.iter().zip(&many) {
        let one = compare(p, &windows).unwrap();
        // Bit for bit, NaN included (a degree-4 SiLU on a random model may blow up).
        assert_eq!(format!("{one:?}"), format!("{m:?}"));
    }
    // The low degree is measurably worse than the high one on the same exact run.
    assert_eq!(many[0].exact, many[1].exact);
    assert!(many[1].max_logit_err.is_finite(), "{:?}", many[1]);
    assert!(many[0].max_logit_err > many[1].max_logit_err, "{many:?}");
    // Separately loaded weights, or no models, are refused.
    let other = PolyModel::new(weights, specs[1].clone()).unwrap();
    assert!(compare_many(&[polys[0].clone(), other], &windows).is_err());
    assert!(compare_many(&[], &windows).is_err());
}

#[test]
fn rejects_bad_inputs() {
    let (model, cfg, weights) = random(false, 7);
    let spec = spec_for(&model, &cfg, &CalibrationOptions::default());
    let mut short = spec.clone();
    short.layers.pop();
    assert!(PolyModel::new(weights.clone(), short).is_err());
    let poly = PolyModel::new(weights, spec).unwrap();
    assert!(poly.forward_ids(&[64], Mode::Exact).is_err());
    assert!(poly.forward_ids(&ids(17, 1), Mode::Exact).is_err());
    let x = poly.weights().embed(&ids(4, 1)).unwrap();
    assert!(poly.forward_at(&x, &[4], Mode::Exact).is_err());
}

#[test]
fn weights_from_a_checkpoint_dir_and_spec_round_trip() {
    let (_, cfg, _) = random(true, 9);
    let dir = tempfile::tempdir().unwrap();
    let (_, varmap) = Model::init_random(&cfg, 9, &Device::Cpu).unwrap();
    candle_core::safetensors::save(&var_tensors(&varmap), dir.path().join("model.safetensors"))
        .unwrap();
    cfg.to_literal()
        .to_file(dir.path().join("config.json"))
        .unwrap();
    let w = PolyWeights::from_dir(dir.path()).unwrap();
    assert_eq!(w.layers.len(), 2);
    let mut softmax = cfg.to_literal();
    softmax.attention_norm = None;
    softmax.to_file(dir.path().join("config.json")).unwrap();
    assert!(PolyWeights::from_dir(dir.path()).is_err());
}

#[test]
fn ablation_modes_approximate_one_class_each() {
    let (model, cfg, weights) = random(false, 13);
    let mut spec = spec_for(&model, &cfg, &CalibrationOptions::default());
    // A crude activation (degree 2 on a narrow interval) that the other classes do not share.
    for l in &mut spec.layers {
        l.activation =
            psf_poly::ActivationSpec::fit(l.activation.function, (-0.5, 0.5), 2).unwrap();
    }
    let poly = PolyModel::new(weights, spec).unwrap();
    let x = ids(16, 21);
    let run = |mode| poly.forward_ids(&x, mode).unwrap().logits;
    let only = |inv_sqrt, reciprocal, activation| {
        Mode::Only(Approximated {
            inv_sqrt,
            reciprocal,
            activation,
        })
    };
    let exact = run(Mode::Exact);
    // All classes on is the polynomial model, none is the exact twin, bit for bit.
    assert_eq!(run(only(true, true, true)), run(Mode::Polynomial));
    assert_eq!(run(only(false, false, false)), exact);
    let err = |m: &psf_poly::Matrix| {
        m.data
            .iter()
            .zip(&exact.data)
            .fold(0.0f64, |e, (a, b)| e.max((a - b).abs()))
    };
    let (e_norm, e_rec, e_act) = (
        err(&run(only(true, false, false))),
        err(&run(only(false, true, false))),
        err(&run(only(false, false, true))),
    );
    assert!(e_norm > 0.0 && e_rec > 0.0, "{e_norm} {e_rec}");
    assert!(
        e_act > 100.0 * e_norm.max(e_rec),
        "{e_norm} {e_rec} {e_act}"
    );
    assert_eq!(only(false, true, true).label(), "only 1/x+activation");
}

#[test]
fn positions_are_tallied_at_their_first_site_outside() {
    let (model, cfg, weights) = random(false, 17);
    let mut spec = spec_for(&model, &cfg, &CalibrationOptions::default());
    // Layer 1's first norm cannot hold any input; nothing earlier falls outside.
    spec.layers[1].norm1.b = spec.layers[1].norm1.a * 1.0001;
    spec.layers[1].norm1.a *= 0.5;
    let poly = PolyModel::new(weights, spec).unwrap();
    let windows: Vec<Vec<u32>> = (0..6).map(|s| ids(16, s * 7 + 1)).collect();
    let mut total = psf_poly::OutOfRange::default();
    for w in &windows {
        let f = poly.forward_ids(w, Mode::Exact).unwrap();
        assert_eq!(f.out_of_range.positions, 16);
        total.merge(&f.out_of_range);
    }
    let site = psf_poly::OpSite {
        layer: 1,
        op: PolyOp::Norm1,
    };
    assert_eq!(total.positions, 96);
    assert_eq!(total.positions_outside(), total.first_outside[&site]);
    // Most positions' mean squares lie above the pinched interval.
    assert!(total.first_outside[&site] >= 90, "{total:?}");
    assert_eq!(total.first_outside.len(), 1, "{total:?}");
}

/// Ranges of a 2-layer model: a narrow and a wide activation interval.
fn synthetic_ranges() -> psf_poly::ObservedRanges {
    let seen = |lo, hi| psf_poly::Seen { lo, hi };
    let layer = |act: f64| psf_poly::LayerRanges {
        norm1: seen(0.5, 40.0),
        norm2: seen(0.5, 40.0),
        scores: seen(-8.0, 5.0),
        denominator: seen(1e-3, 900.0),
        activation: seen(-act, act),
    };
    psf_poly::ObservedRanges {
        layers: vec![layer(4.0), layer(40.0)],
        final_norm: seen(0.5, 40.0),
        tokens: 64,
    }
}

#[test]
fn per_op_margins_bound_and_per_layer_degrees() {
    let cfg = literal(false).try_build().unwrap();
    let ranges = synthetic_ranges();
    let base = calibrate(&cfg, &ranges, &CalibrationOptions::default()).unwrap();
    let l = &base.layers[0];
    assert!((l.c - 1.1 * 8.0).abs() < 1e-12);
    assert!((l.reciprocal.b - 1.1 * 900.0 / l.c.powi(4)).abs() < 1e-12);
    assert_eq!(base.layers[1].activation.poly.degree(), 16);

    let opts = CalibrationOptions {
        margins: psf_poly::OpMargins {
            c: Some(0.5),
            activation: Some(0.0),
            reciprocal_to_bound: true,
            ..Default::default()
        },
        activation_degree: 15,
        activation_target_error: Some(1e-3),
        activation_max_degree: 127,
        ..Default::default()
    };
    let spec = calibrate(&cfg, &ranges, &opts).unwrap();
    let l = &spec.layers[0];
    assert!((l.c - 12.0).abs() < 1e-12);
    let eps_c = 1e-3 / 12f64.powi(4);
    // The upper end is the bound 1 + eps/c^p (the calibrated 900/c^4 = 0.043 is below it).
    assert!((l.reciprocal.b - (1.0 + eps_c)).abs() < 1e-12);
    // The lower end is at most eps/c^p (here the calibrated 1e-3/c^4/1.1 is already below).
    assert!(l.reciprocal.a <= eps_c);
    assert!(l.reciprocal.iterations > base.layers[0].reciprocal.iterations);
    assert_eq!(l.activation.interval(), (-4.0, 4.0));
    // The narrow layer keeps degree 15; the wide one climbs the ladder to meet the target.
    assert_eq!(l.activation.poly.degree(), 15);
    let wide = &spec.layers[1].activation;
    assert!(
        [31, 63, 127].contains(&wide.poly.degree()),
        "{}",
        wide.poly.degree()
    );
    assert!(wide.report.max_abs <= 1e-3 || wide.poly.degree() == 127);
    assert!(spec.notes["margins"].contains("c 0.5"), "{:?}", spec.notes);

    // A ratio cap raises the lower end and saves iterations.
    let capped = CalibrationOptions {
        margins: psf_poly::OpMargins {
            reciprocal_max_ratio: Some(1e3),
            ..opts.margins
        },
        ..opts.clone()
    };
    assert!(
        !spec.notes.contains_key(psf_poly::UNMET_TARGETS),
        "{:?}",
        spec.notes
    );
    let c = calibrate(&cfg, &ranges, &capped).unwrap();
    let r = c.layers[0].reciprocal;
    assert!((r.b / r.a - 1e3).abs() < 1e-6, "{r:?}");
    assert!(
        r.iterations < l.reciprocal.iterations,
        "{r:?} vs {:?}",
        l.reciprocal
    );
}

#[test]
fn unmet_iteration_targets_are_noted() {
    let cfg = literal(false).try_build().unwrap();
    let opts = CalibrationOptions {
        max_iterations: 1,
        ..Default::default()
    };
    let spec = calibrate(&cfg, &synthetic_ranges(), &opts).unwrap();
    let unmet = &spec.notes[psf_poly::UNMET_TARGETS];
    assert!(unmet.contains("layer 0: 1/x"), "{unmet}");
}

#[test]
fn guess_degree_candidates_pick_the_shallowest_inverse() {
    let cfg = literal(false).try_build().unwrap();
    let ranges = synthetic_ranges();
    let one = calibrate(&cfg, &ranges, &CalibrationOptions::default()).unwrap();
    let opts = CalibrationOptions {
        guess_degree_candidates: vec![3, 7, 15, 31],
        ..Default::default()
    };
    let many = calibrate(&cfg, &ranges, &opts).unwrap();
    assert!(!many.notes.contains_key(psf_poly::UNMET_TARGETS));
    for (a, b) in one.layers.iter().zip(&many.layers) {
        assert!(
            b.norm1.depth() <= a.norm1.depth(),
            "{:?} vs {:?}",
            b.norm1,
            a.norm1
        );
        assert!(b.reciprocal.depth() <= a.reciprocal.depth());
        assert!([3, 7, 15, 31].contains(&b.reciprocal.guess_degree));
    }
    // The synthetic reciprocal (ratio ~1e6) is shallower with some other degree than 7.
    let total = |s: &psf_poly::PolySpec| -> usize {
        s.layers
            .iter()
            .map(|l| l.reciprocal.depth() + l.norm1.depth())
            .sum()
    };
    assert!(
        total(&many) < total(&one),
        "{} vs {}",
        total(&many),
        total(&one)
    );
}
