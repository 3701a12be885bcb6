//! Evaluation tools on a tiny random model: the multiple-choice scorer against the training
//! loss, attention capture against the fused forward, locality and ICL plumbing, figures,
//! and the whole suite with an attention override.

use candle_core::{Device, Tensor};
use psf_model::data::TokenStream;
use psf_model::data::synthetic::{EpisodeMixer, SyntheticMix, step_rng};
use psf_model::data::tokenizer::{EOS, train_bpe, word_pool};
use psf_model::eval::attention::{attention_maps, locality};
use psf_model::eval::choice::{ChoiceItem, ChoiceTask, encode_pair, score_task};
use psf_model::eval::icl::{IclConfig, IclTask, icl_curve};
use psf_model::eval::perplexity::perplexity;
use psf_model::eval::scorer::{CandleLm, CausalLm, log_likelihood};
use psf_model::eval::suite::{SuiteConfig, evaluate_dir, held_out_stream};
use psf_model::{AttentionNorm, Model, ModelConfigLiteral, PowerSoftmax};

fn tiny(norm: AttentionNorm, vocab: usize) -> (Model, psf_model::ModelConfig) {
    let mut lit = ModelConfigLiteral::neox_reference();
    lit.vocab_size = vocab;
    lit.hidden_size = 32;
    lit.num_hidden_layers = 2;
    lit.num_attention_heads = 2;
    lit.intermediate_size = 64;
    lit.max_position_embeddings = 48;
    lit.attention_norm = Some(norm);
    let cfg = lit.try_build().unwrap();
    let (model, _) = Model::init_random(&cfg, 3, &Device::Cpu).unwrap();
    (model, cfg)
}

fn power4() -> AttentionNorm {
    AttentionNorm::Power(PowerSoftmax {
        p: 4,
        eps: 1e-2,
        ..PowerSoftmax::default()
    })
}

/// The summed log-likelihood of a continuation equals minus the training cross-entropy
/// summed over the same positions.
#[test]
fn log_likelihood_agrees_with_the_training_loss() {
    let (model, cfg) = tiny(power4(), 50);
    let dev = Device::Cpu;
    let lm = CandleLm::new(&model, cfg.max_position_embeddings, &dev);
    let ids: Vec<u32> = (0..12).map(|i| (i * 7 + 3) % 50).collect();
    let ll = log_likelihood(&lm, &ids[..1], &ids[1..]).unwrap();
    let x = Tensor::from_slice(&ids[..11], (1, 11), &dev).unwrap();
    let y = Tensor::from_slice(&ids[1..], (1, 11), &dev).unwrap();
    let ce = model
        .loss(&x, &y, None)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap() as f64;
    assert!(
        (ll.sum + 11.0 * ce).abs() < 1e-3 * (1.0 + ll.sum.abs()),
        "{} vs {}",
        ll.sum,
        -11.0 * ce
    );
    // Left truncation keeps the last max_len + 1 tokens.
    let long: Vec<u32> = (0..60).map(|i| (i * 5 + 1) % 50).collect();
    let a = log_likelihood(&lm, &long[..57], &long[57..]).unwrap();
    let b = log_likelihood(&lm, &long[60 - 49..57], &long[57..]).unwrap();
    assert!((a.sum - b.sum).abs() < 1e-9);
}

/// Multiple choice end to end with a real BPE: the pair encoding reproduces the whole text
/// and the report counts items; a task whose right answer is the model's own greedy
/// continuation is answered correctly.
#[test]
fn multiple_choice_scores_greedy_answers_right() {
    let dir = tempfile::tempdir().unwrap();
    let text = "the cat sat on the mat and the dog ran to the log.\n".repeat(30);
    let tk = train_bpe(&[&text], 120, &dir.path().join("tokenizer.json")).unwrap();
    let (model, cfg) = tiny(AttentionNorm::Softmax, tk.get_vocab_size(true));
    let dev = Device::Cpu;
    let lm = CandleLm::new(&model, cfg.max_position_embeddings, &dev);
    let (ctx, cont) = encode_pair(&tk, "the cat sat ", "on the mat").unwrap();
    let whole = tk.encode_fast("the cat sat on the mat", false).unwrap();
    assert_eq!([ctx.clone(), cont].concat(), whole.get_ids());
    // The greedy continuation of "the cat" under this random model, as text.
    let mut ids = tk.encode_fast("the cat", false).unwrap().get_ids().to_vec();
    let n0 = ids.len();
    for _ in 0..3 {
        let rows = lm.logits(&ids).unwrap();
        ids.push(psf_model::eval::scorer::argmax(rows.last().unwrap()) as u32);
    }
    let greedy = tk.decode(&ids[n0..], false).unwrap();
    let prefix = tk.decode(&ids[..n0], false).unwrap();
    let item = ChoiceItem {
        context: prefix,
        choices: vec![greedy.clone(), " zzzz qqqq".into()],
        answer: 0,
    };
    let task = ChoiceTask {
        name: "t".into(),
        items: vec![item],
    };
    let (report, scores) = score_task(&lm, &tk, &task, None).unwrap();
    assert_eq!(report.items, 1);
    assert_eq!(scores[0].loglik.len(), 2);
    assert!(scores[0].loglik.iter().all(|l| l.is_finite() && *l < 0.0));
    assert_eq!(scores[0].pred, 0, "{:?}", scores[0].loglik);
    let path = dir.path().join("t.jsonl");
    task.to_jsonl(&path).unwrap();
    assert_eq!(ChoiceTask::from_jsonl(&path).unwrap().items, task.items);
}

/// The capture hook sees the weights the model uses: captured maps are causal and rows sum
/// to 1 (softmax, Power-Softmax without eps; below 1 with eps), and the logits with capture
/// equal the fused forward's.
#[test]
fn attention_capture_matches_the_forward_pass() {
    let dev = Device::Cpu;
    let exact_power = AttentionNorm::Power(PowerSoftmax {
        p: 4,
        eps: 0.0,
        ..PowerSoftmax::default()
    });
    for norm in [AttentionNorm::Softmax, exact_power] {
        let (model, _) = tiny(norm, 40);
        let ids: Vec<u32> = (0..10).map(|i| (i * 3 + 1) % 40).collect();
        let maps = attention_maps(&model, &ids, &dev).unwrap();
        assert_eq!(maps.len(), 2);
        for map in &maps {
            assert_eq!(map.weights.len(), 2);
            for rows in &map.weights {
                for (i, row) in rows.iter().enumerate() {
                    let s: f32 = row.iter().sum();
                    assert!((s - 1.0).abs() < 1e-4, "row sum {s}");
                    assert!(row[i + 1..].iter().all(|&w| w == 0.0));
                }
            }
        }
        let stream = TokenStream::new((0..200).map(|i| (i * 11 + 5) % 40).collect());
        let loc = locality(&model, &stream, 16, 3, &dev).unwrap();
        assert_eq!(loc.len(), 2);
        assert!(
            loc.iter()
                .all(|l| l.mean > 0.0 && l.mean < 15.0 && l.per_head.len() == 2)
        );
        assert!(
            loc.iter()
                .all(|l| (l.row_weight.unwrap() - 1.0).abs() < 1e-4)
        );
        // A row's largest share lies between uniform over 16 keys and 1; entropies in [0, 1].
        for l in &loc {
            let (top, h) = (l.top_weight.unwrap(), l.entropy.unwrap());
            assert!(top > 1.0 / 16.0 && top <= 1.0 + 1e-9, "top {top}");
            assert!((0.0..=1.0 + 1e-9).contains(&h), "entropy {h}");
        }
    }
    // With eps, `eps * L` in the denominator takes a share of every row.
    let (model, _) = tiny(power4(), 40);
    let stream = TokenStream::new((0..200).map(|i| (i * 11 + 5) % 40).collect());
    for l in locality(&model, &stream, 16, 3, &dev).unwrap() {
        let w = l.row_weight.unwrap();
        assert!(
            w > 0.0 && w < 0.999,
            "layer {} attended weight {w}",
            l.layer
        );
    }
}

/// ICL curves run end to end with a tokenizer's word pool and respect the context length.
#[test]
fn icl_curves_have_one_point_per_shot_count() {
    let dir = tempfile::tempdir().unwrap();
    let words: Vec<String> = (0..400)
        .map(|i| {
            let a = (b'a' + (i % 26) as u8) as char;
            let b = (b'a' + (i / 26 % 26) as u8) as char;
            format!("{a}{b}{a}{b}")
        })
        .collect();
    let text = format!("{}\n", words.join(" ")).repeat(3);
    let tk = train_bpe(&[&text], 700, &dir.path().join("tokenizer.json")).unwrap();
    let (model, cfg) = tiny(power4(), tk.get_vocab_size(true));
    let lm = CandleLm::new(&model, cfg.max_position_embeddings, &Device::Cpu);
    let mut icfg = IclConfig::default_for(IclTask::Induction);
    icfg.shots = vec![0, 1, 2];
    icfg.episodes = 4;
    let curve = icl_curve(&lm, &tk, IclTask::Induction, &icfg).unwrap();
    assert_eq!(curve.points.len(), 3);
    assert_eq!(curve.points[1].predictions, 4 * 7);
    assert!(
        curve
            .points
            .iter()
            .all(|p| (0.0..=1.0).contains(&p.accuracy))
    );
    icfg.shots = vec![10]; // 11 presentations of 8 words do not fit into 48 tokens
    assert!(icl_curve(&lm, &tk, IclTask::Induction, &icfg).is_err());

    // The training mixer draws from the same pool: too small for 16 pairs, enough for 4.
    let mut mix = SyntheticMix::default();
    assert!(matches!(
        EpisodeMixer::new(&mix, &tk),
        Err(psf_model::Error::InvalidConfig(_))
    ));
    mix.max_pairs = 4;
    let row = EpisodeMixer::new(&mix, &tk)
        .unwrap()
        .row(48, &mut step_rng(0, 0));
    let pool = word_pool(&tk);
    let eos = tk.token_to_id(EOS).unwrap();
    assert!(row.iter().all(|t| *t == eos || pool.contains(t)));
}

/// The suite's attention override scores the saved weights under another normalization: the
/// report names the override, and its perplexity is the one of a model built directly with
/// that normalization from the same file, not the config's.
#[test]
fn suite_evaluates_saved_weights_with_another_attention() {
    let dir = tempfile::tempdir().unwrap();
    let text = "the cat sat on the mat and the dog ran to the log.\n".repeat(30);
    let tk = train_bpe(&[&text], 120, &dir.path().join("tokenizer.json")).unwrap();
    let mut lit = ModelConfigLiteral::neox_reference();
    lit.vocab_size = tk.get_vocab_size(true);
    lit.hidden_size = 32;
    lit.num_hidden_layers = 2;
    lit.num_attention_heads = 2;
    lit.intermediate_size = 64;
    lit.max_position_embeddings = 48;
    lit.attention_norm = Some(AttentionNorm::Softmax);
    lit.to_file(dir.path().join("config.json")).unwrap();
    let dev = Device::Cpu;
    let (_, varmap) = Model::init_random(&lit.try_build().unwrap(), 5, &dev).unwrap();
    varmap.save(dir.path().join("model.safetensors")).unwrap();

    let cfg = SuiteConfig {
        ppl_windows: Some(4),
        seq_len: 32,
        icl: vec![],
        locality_windows: None,
        ..SuiteConfig::default()
    };
    let softmax = evaluate_dir(dir.path(), None, &cfg, &dev).unwrap();
    let swapped = SuiteConfig {
        attention_norm: Some(power4()),
        ..cfg
    };
    let power = evaluate_dir(dir.path(), None, &swapped, &dev).unwrap();
    assert_eq!(softmax.attention_norm["kind"], "softmax");
    assert_eq!(power.attention_norm["kind"], "power");
    assert_eq!(power.attention_norm["p"], 4);

    lit.attention_norm = Some(power4());
    let direct = Model::from_safetensors(
        dir.path().join("model.safetensors"),
        &lit.try_build().unwrap(),
        &dev,
    )
    .unwrap();
    let held = held_out_stream(&tk, 0.02).unwrap();
    let want = perplexity(&direct, &held, 32, 8, Some(4), &dev)
        .unwrap()
        .ppl;
    let (p, s) = (
        power.perplexity.unwrap().ppl,
        softmax.perplexity.unwrap().ppl,
    );
    assert!((p - want).abs() < 1e-9 * want, "{p} vs {want}");
    // Random N(0, 0.02) weights make the attention nearly uniform under either normalization,
    // so the two perplexities differ by about 1e-3 relative: far above the 1e-9 match above.
    assert!(
        (p - s).abs() > 1e-5 * s,
        "the override changed nothing: {p} vs {s}"
    );
}
