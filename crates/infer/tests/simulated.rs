//! The compiled circuit on the simulation evaluator (exact levels, scales and counts, no
//! noise) against the `f64` twin of the model: NeoX and Llama layouts, both head packings.

mod common;

use common::{LLAMA, NEOX, Shape, compare, model, prompts};
use psf_circuits::SimBackend;
use psf_infer::runtime::{RunOptions, SimRefresh, run_sim};
use psf_infer::{CompileOptions, CompiledModel, HeadPositions};

fn check(shape: Shape, batch: usize, seq_len: usize) {
    check_head(shape, batch, seq_len, HeadPositions::All, None);
}

/// `positions`: the position of each prompt a last-position head is asked for (`None`: the
/// last of each).
fn check_head(
    shape: Shape,
    batch: usize,
    seq_len: usize,
    head: HeadPositions,
    positions: Option<Vec<usize>>,
) {
    let ir = model(shape, 7);
    let calib = prompts(shape.d, batch, seq_len, 1);
    let mut opts = CompileOptions::for_log_n(seq_len, batch, 12, calib);
    opts.head = head;
    let m = CompiledModel::compile(&ir, &opts).unwrap();
    assert!(!m.plan.bootstraps.is_empty());
    let x = prompts(shape.d, batch, seq_len, 2);
    let params = m.params().unwrap();
    let refresh = SimRefresh::new(m.fresh_level(&params));
    let run = run_sim(
        &m,
        SimBackend::new(&params),
        &refresh,
        &m.layout.pack(&x, shape.d).unwrap(),
        &RunOptions {
            positions: positions.as_deref(),
            ..RunOptions::default()
        },
    )
    .unwrap();
    let slots: Vec<Vec<f64>> = run.outputs.iter().map(|c| c.values.clone()).collect();
    assert_eq!(slots.len(), head.output_cts(&m.layout, shape.vocab));
    let (mut want, mut have) = (Vec::new(), Vec::new());
    for (b, p) in x.iter().enumerate() {
        let logits = ir.forward_f64(p).unwrap();
        let asked = positions.as_ref().map_or(seq_len - 1, |p| p[b]);
        for (pos, row) in logits.into_iter().enumerate() {
            if head == HeadPositions::Last && pos != asked {
                continue;
            }
            want.push(row);
            have.push(head.logits(&m.layout, shape.vocab, &slots, b, pos).unwrap());
        }
    }
    let nan_w = want
        .iter()
        .filter(|r| r.iter().any(|v| !v.is_finite()))
        .count();
    let nan_h = have
        .iter()
        .filter(|r| r.iter().any(|v| !v.is_finite()))
        .count();
    assert_eq!(
        (nan_w, nan_h),
        (0, 0),
        "non-finite logits (reference, circuit)"
    );
    let (max, mse, top1) = compare(&want, &have);
    eprintln!("{shape:?}: max {max:.2e} mse {mse:.2e} top1 {top1}");
    eprintln!("{}", run.report.table());
    assert!(max < 1e-6 && top1 == 1.0, "max {max} top1 {top1}");
    let dir = tempfile::tempdir().unwrap();
    run.report
        .write_json(dir.path().join("report.json"))
        .unwrap();
    psf_infer::chart::write_png(&run.report, dir.path().join("report.png")).unwrap();
    let json = std::fs::read_to_string(dir.path().join("report.json")).unwrap();
    let back: psf_infer::Report = serde_json::from_str(&json).unwrap();
    assert_eq!(
        (&back.bootstraps, &back.counts),
        (&run.report.bootstraps, &run.report.counts)
    );
    assert!((back.total_s - run.report.total_s).abs() < 1e-12);
    assert!(
        std::fs::metadata(dir.path().join("report.png"))
            .unwrap()
            .len()
            > 1000
    );
}

#[test]
fn neox_heads_across_ciphertexts() {
    // 16 prompts x 8 tokens = 128 token slots: 16 features per ciphertext, head_dim 8.
    check(NEOX, 16, 8);
}

#[test]
fn neox_heads_spanning_ciphertexts() {
    // 128 x 4 = 512 token slots: 4 features per ciphertext < head_dim 8.
    check(NEOX, 128, 4);
}

#[test]
fn llama_grouped_heads() {
    check(LLAMA, 8, 8);
}

/// The positional decay folded into the score masks, in both head packings and with GQA.
#[test]
fn position_decay_in_every_packing() {
    check(
        Shape {
            decay: true,
            ..NEOX
        },
        16,
        8,
    );
    check(
        Shape {
            decay: true,
            ..NEOX
        },
        128,
        4,
    );
    check(
        Shape {
            decay: true,
            ..LLAMA
        },
        8,
        8,
    );
}

#[test]
fn last_position_head_wide_and_narrow_inputs() {
    // 16 features per ciphertext = d (wide), then 32 > d = 16 (narrow input).
    check_head(NEOX, 16, 8, HeadPositions::Last, None);
    check_head(LLAMA, 8, 8, HeadPositions::Last, None);
}

#[test]
fn last_position_head_at_requested_positions() {
    // Prompts of different lengths in one batch: each asks for its own position.
    let positions: Vec<usize> = (0..16).map(|b| (5 * b + 3) % 8).collect();
    check_head(NEOX, 16, 8, HeadPositions::Last, Some(positions));
    let positions: Vec<usize> = (0..8).map(|b| (3 * b) % 8).collect();
    check_head(LLAMA, 8, 8, HeadPositions::Last, Some(positions));
}

#[test]
fn requested_positions_are_checked() {
    let ir = model(NEOX, 7);
    let mut opts = CompileOptions::for_log_n(8, 4, 12, prompts(NEOX.d, 4, 8, 1));
    opts.head = HeadPositions::Last;
    let m = CompiledModel::compile(&ir, &opts).unwrap();
    let params = m.params().unwrap();
    let refresh = SimRefresh::new(m.fresh_level(&params));
    let x = m.layout.pack(&prompts(NEOX.d, 4, 8, 2), NEOX.d).unwrap();
    for bad in [vec![7, 7, 7], vec![0, 1, 8, 2]] {
        let opts = RunOptions {
            positions: Some(&bad),
            ..RunOptions::default()
        };
        let err = run_sim(&m, SimBackend::new(&params), &refresh, &x, &opts);
        assert!(err.is_err(), "positions {bad:?} accepted");
    }
}

#[test]
fn neox_narrow_inputs() {
    // 4 prompts x 8 tokens = 32 token slots: 64 features per ciphertext > d = 16, so the
    // maps read copies of their inputs, and the GELU's value at 0 in the unused hidden rows
    // must not reach the down projection's copies.
    check(NEOX, 4, 8);
}
