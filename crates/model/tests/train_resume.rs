//! A tiny end-to-end run: tokenizer training, training steps, checkpoint, resume (bit-exact
//! against an uninterrupted run), perplexity, and loading the checkpoint as a HF directory.

use std::path::Path;

use candle_core::Device;
use psf_model::data::{DataConfig, DataSource};
use psf_model::train::{RangeLoss, TrainConfig, run};
use psf_model::{AttentionNorm, Model, ModelConfigLiteral, PowerSoftmax};

fn write_corpus(dir: &Path) {
    let mut text = String::new();
    for i in 0..400 {
        text.push_str(&format!(
            "line {i}: the quick brown fox jumps over the lazy dog {}.\n",
            i % 7
        ));
    }
    std::fs::write(dir.join("tiny.txt"), text).unwrap();
}

fn config(root: &Path, out: &str, steps: usize) -> TrainConfig {
    let model = ModelConfigLiteral {
        model_type: "llama".into(),
        vocab_size: 0,
        hidden_size: 32,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: Some(2),
        intermediate_size: 48,
        max_position_embeddings: 32,
        attention_norm: Some(AttentionNorm::Power(PowerSoftmax {
            eps: 1e-2,
            ..Default::default()
        })),
        ..Default::default()
    };
    TrainConfig {
        model,
        data: DataConfig {
            source: DataSource::Dir {
                path: root.join("corpus"),
            },
            vocab_size: 300,
            held_out_fraction: 0.1,
            tokenizer: Some(root.join("tokenizer.json")),
            ..Default::default()
        },
        out_dir: root.join(out),
        batch_size: 4,
        seq_len: 16,
        steps,
        warmup_steps: 2,
        max_lr: 3e-3,
        range_loss: Some(RangeLoss {
            alpha: 1e-4,
            kinds: vec![psf_model::RangeKind::Denominator],
        }),
        checkpoint_every: 3,
        eval_every: 4,
        eval_windows: 8,
        progress: false,
        ..Default::default()
    }
}

#[test]
fn resumed_run_matches_uninterrupted_run() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    std::fs::create_dir(root.join("corpus")).unwrap();
    write_corpus(&root.join("corpus"));
    // Train the tokenizer once so both runs share it.
    let texts = [std::fs::read_to_string(root.join("corpus/tiny.txt")).unwrap()];
    psf_model::data::tokenizer::train_bpe(&[&texts[0]], 300, &root.join("tokenizer.json")).unwrap();

    let straight = run(&config(root, "a", 8)).unwrap();
    assert_eq!(straight.steps, 8);
    assert!(straight.held_out.ppl.is_finite() && straight.held_out.tokens > 0);

    let mut interrupted = config(root, "b", 8);
    interrupted.stop_at = Some(5);
    let first = run(&interrupted).unwrap();
    assert_eq!(first.steps, 5);
    let resumed = run(&config(root, "b", 8)).unwrap();
    assert_eq!(resumed.steps, 8);
    assert_eq!(resumed.final_loss, straight.final_loss);
    assert_eq!(resumed.held_out.nll, straight.held_out.nll);

    // The checkpoint is a loadable Hugging Face-style directory.
    let (model, cfg) = Model::from_pretrained_dir(root.join("a/checkpoint"), &Device::Cpu).unwrap();
    assert_eq!(cfg.num_kv_heads, 2);
    let ids = candle_core::Tensor::zeros((1, 4), candle_core::DType::U32, &Device::Cpu).unwrap();
    assert_eq!(
        model.forward(&ids, None).unwrap().dims(),
        &[1, 4, cfg.vocab_size]
    );
    let tk = psf_model::data::tokenizer::load(&root.join("a/tokenizer.json")).unwrap();
    let text = "line 7: the quick brown fox jumps over the lazy dog 0.\n".repeat(20);
    let p = psf_model::eval::perplexity_of_text(&model, &tk, &text, 16, 4, None, &Device::Cpu);
    let p = p.unwrap();
    assert!(p.tokens > 0 && p.ppl.is_finite() && p.ppl < 300.0, "{p:?}");

    // A different configuration refuses to resume from that checkpoint.
    let mut other = config(root, "a", 8);
    other.seed = 1;
    assert!(run(&other).is_err());
}

#[test]
fn loss_decreases_on_the_tiny_corpus() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    std::fs::create_dir(root.join("corpus")).unwrap();
    write_corpus(&root.join("corpus"));
    let mut cfg = config(root, "c", 60);
    cfg.data.tokenizer = None;
    cfg.range_loss = None;
    cfg.checkpoint_every = 0;
    cfg.eval_every = 0;
    let report = run(&cfg).unwrap();
    // Uniform over the vocabulary would be ln(300) = 5.7 nats.
    assert!(report.held_out.nll < 3.0, "{report:?}");
}
