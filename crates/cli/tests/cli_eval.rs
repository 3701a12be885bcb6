//! `psformer eval --reports`: earlier reports side by side (Markdown table, figures); a
//! malformed report file and a bad `--attention-norm` as clear errors.

use std::process::Command;

fn psformer(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_psformer"))
        .args(args)
        .output()
        .expect("runs")
}

const REPORTS: &str = r#"[
 {"model":"a","step":10,"attention_norm":{"kind":"softmax"},"parameters":5,
  "perplexity":{"nll":1.0,"ppl":2.718,"tokens":8},"tasks":[],
  "icl":[{"task":"recall","chance":0.001,"points":[{"shots":2,"accuracy":0.5,"stderr":0.1,
          "predictions":4,"pool_accuracy":0.75,"target_logprob":-1.5}]}],
  "locality":[{"layer":0,"per_head":[3.0],"mean":3.0,"relative":0.5,"local_mass":0.2}],
  "attention_pngs":[]},
 {"model":"b","step":10,"attention_norm":{"kind":"power","p":4},"parameters":5,
  "perplexity":{"nll":1.1,"ppl":3.004,"tokens":8},"tasks":[],
  "icl":[{"task":"recall","chance":0.001,"points":[{"shots":2,"accuracy":0.25,"stderr":0.1,
          "predictions":4,"pool_accuracy":0.5,"target_logprob":-2.0}]}],
  "locality":[{"layer":0,"per_head":[4.0],"mean":4.0,"relative":0.6,"local_mass":0.1}],
  "attention_pngs":[]}
]"#;

#[test]
fn earlier_reports_compare_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("reports.json");
    std::fs::write(&reports, REPORTS).unwrap();
    let figs = dir.path().join("figures");
    let out = psformer(&[
        "eval",
        "--reports",
        reports.to_str().unwrap(),
        "--markdown",
        "--figures",
        figs.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("| | softmax (step 10) | power p=4 (step 10) |"));
    assert!(stdout.contains("| held-out perplexity | 2.72 | 3.00 |"));
    assert!(
        stdout.contains("| ICL recall, pairs = 2 | 0.50 / 0.75 / -1.50 | 0.25 / 0.50 / -2.00 |")
    );
    for png in ["locality.png", "icl_recall.png", "icl_recall_logprob.png"] {
        assert!(figs.join(png).metadata().unwrap().len() > 1000, "{png}");
    }

    std::fs::write(&reports, r#"{"model": "not a list"}"#).unwrap();
    let out = psformer(&["eval", "--reports", reports.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a list of evaluation reports"), "{err}");
}

/// A malformed or invalid `--attention-norm` override is refused before any model is read.
#[test]
fn a_bad_attention_override_is_a_clear_error() {
    for (arg, want) in [
        (r#"{"kind":"power","p":3}"#, "p=3 must be even"),
        ("power4", "expected value"),
    ] {
        let out = psformer(&["eval", "no-such-model", "--attention-norm", arg]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--attention-norm") && err.contains(want),
            "{err}"
        );
    }
}
