//! `psformer polyfit`: calibrate a Power-Softmax checkpoint's op ranges, choose the
//! polynomial replacements for a sweep of degrees, and measure the polynomial model against
//! its unapproximated twin and the original softmax model (QUALITY.md is generated from it).

use std::path::{Path, PathBuf};

use anyhow::Context;
use candle_core::Device;
use clap::Args;
use psf_model::data::TokenStream;
use psf_model::{Model, ModelConfig};
use psf_poly::{
    CalibrationOptions, ChoiceResult, Comparison, Mode, ObservedRanges, PolyModel, PolyOp,
    PolyWeights, Ppl, calibrate, candle_logits, candle_perplexity, compare, continuation_task,
    score_choices, windows,
};
use serde::Serialize;

/// Arguments of `psformer polyfit`.
#[derive(Args, Debug)]
pub struct PolyfitArgs {
    /// The Power-Softmax checkpoint (`config.json` + `model.safetensors`).
    #[arg(long)]
    pub model: PathBuf,
    /// Token caches of the run: `train.tokens` (calibration) and `held_out.tokens` (evaluation).
    #[arg(long)]
    pub data: PathBuf,
    /// The original softmax checkpoint, measured on the same held-out windows.
    #[arg(long)]
    pub original: Option<PathBuf>,
    /// Output directory: `ranges.json`, `spec-d<degree>.json`, `quality.json`, `quality.md`.
    #[arg(long)]
    pub out: PathBuf,
    /// Tokens per window.
    #[arg(long, default_value_t = 128)]
    pub seq: usize,
    /// Calibration windows (spread evenly over `train.tokens`). Too few miss the tails: with
    /// 32 windows of 128 tokens a reference model put 656K GELU inputs of 200 short
    /// multiple-choice items outside their intervals; 256 windows left 8.
    #[arg(long, default_value_t = 256)]
    pub calib_windows: usize,
    /// Held-out evaluation windows (consecutive from the start of `held_out.tokens`).
    #[arg(long, default_value_t = 16)]
    pub eval_windows: usize,
    /// Activation degrees to sweep.
    #[arg(long, value_delimiter = ',', default_value = "8,16,32")]
    pub degrees: Vec<usize>,
    /// Degree of the first guess of 1/x and 1/sqrt(x).
    #[arg(long, default_value_t = 7)]
    pub guess_degree: usize,
    /// Target relative error of 1/x and 1/sqrt(x) (picks the iteration counts).
    #[arg(long, default_value_t = 1e-4)]
    pub target_rel: f64,
    /// Relative interval margin.
    #[arg(long, default_value_t = 0.1)]
    pub margin: f64,
    /// Items of the held-out continuation multiple-choice task (0: skip).
    #[arg(long, default_value_t = 200)]
    pub choice_items: usize,
    /// Context tokens per item.
    #[arg(long, default_value_t = 24)]
    pub choice_context: usize,
    /// Tokens per choice.
    #[arg(long, default_value_t = 2)]
    pub choice_span: usize,
}

/// One row of the degree sweep.
#[derive(Debug, Serialize)]
struct Row {
    activation_degree: usize,
    activation_max_err: f64,
    inv_sqrt_iterations: Vec<usize>,
    reciprocal_iterations: Vec<usize>,
    exact_ppl: f64,
    poly_ppl: f64,
    ppl_rel_change: f64,
    top1_agreement: f64,
    max_logit_err: f64,
    logit_mse: f64,
    outside: u64,
    checked: u64,
    outside_by_op: Vec<(String, u64)>,
    choice_acc: Option<f64>,
    choice_agreement_with_exact: Option<f64>,
    /// Inputs outside their interval while scoring the multiple-choice items, per op.
    choice_outside: Option<Vec<(String, u64)>>,
}

/// What `quality.json` holds.
#[derive(Debug, Serialize)]
struct Quality {
    model: PathBuf,
    original: Option<PathBuf>,
    calib_tokens: usize,
    eval_tokens: usize,
    seq: usize,
    margin: f64,
    guess_degree: usize,
    target_rel: f64,
    original_ppl: Option<Ppl>,
    power_ppl: Ppl,
    choice: Option<ChoiceSummary>,
    rows: Vec<Row>,
}

/// Multiple-choice accuracy of the models without polynomials.
#[derive(Debug, Serialize)]
struct ChoiceSummary {
    items: usize,
    context: usize,
    span: usize,
    chance: f64,
    original: Option<ChoiceResult>,
    power: ChoiceResult,
    exact_twin: ChoiceResult,
}

fn calib_windows(ids: &[u32], seq: usize, n: usize) -> anyhow::Result<Vec<Vec<u32>>> {
    anyhow::ensure!(ids.len() > seq && n > 0, "too few calibration tokens");
    let stride = (ids.len() - seq) / n;
    Ok((0..n)
        .map(|i| ids[i * stride..i * stride + seq].to_vec())
        .collect())
}

fn load(dir: &Path) -> anyhow::Result<(Model, ModelConfig)> {
    Model::from_pretrained_dir(dir, &Device::Cpu)
        .with_context(|| format!("loading {}", dir.display()))
}

fn row(d: usize, spec: &psf_poly::PolySpec, c: &Comparison) -> Row {
    let mut by_op = std::collections::BTreeMap::<String, u64>::new();
    for (site, n) in &c.out_of_range.sites {
        if site.op != PolyOp::Scores {
            *by_op.entry(format!("{:?}", site.op)).or_default() += n.outside;
        }
    }
    let outside_scores: u64 = c
        .out_of_range
        .sites
        .iter()
        .filter(|(s, _)| s.op == PolyOp::Scores)
        .map(|(_, n)| n.outside)
        .sum();
    by_op.insert("Scores(|s/c|>1)".into(), outside_scores);
    Row {
        activation_degree: d,
        activation_max_err: spec
            .layers
            .iter()
            .map(|l| l.activation.report.max_abs)
            .fold(0.0, f64::max),
        inv_sqrt_iterations: spec
            .layers
            .iter()
            .flat_map(|l| [l.norm1.iterations, l.norm2.iterations])
            .chain([spec.final_norm.iterations])
            .collect(),
        reciprocal_iterations: spec
            .layers
            .iter()
            .map(|l| l.reciprocal.iterations)
            .collect(),
        exact_ppl: c.exact.ppl,
        poly_ppl: c.poly.ppl,
        ppl_rel_change: c.ppl_rel_change(),
        top1_agreement: c.agreement(),
        max_logit_err: c.max_logit_err,
        logit_mse: c.logit_mse,
        outside: by_op
            .iter()
            .filter(|(k, _)| !k.starts_with("Scores"))
            .map(|(_, v)| v)
            .sum(),
        checked: c.out_of_range.total(),
        outside_by_op: by_op.into_iter().collect(),
        choice_acc: None,
        choice_agreement_with_exact: None,
        choice_outside: None,
    }
}

/// Runs calibration and the degree sweep; writes the files and prints the markdown table.
pub fn run_polyfit(a: &PolyfitArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&a.out)?;
    let train = TokenStream::read(&a.data.join("train.tokens"))?;
    let held = TokenStream::read(&a.data.join("held_out.tokens"))?;
    let calib = calib_windows(&train.ids, a.seq, a.calib_windows)?;
    let evalw = windows(&held.ids, a.seq, Some(a.eval_windows))?;
    let (model, cfg) = load(&a.model)?;
    let ranges = ObservedRanges::record(&model, &cfg, &calib)?;
    std::fs::write(
        a.out.join("ranges.json"),
        serde_json::to_string_pretty(&ranges)?,
    )?;
    let power_ppl = candle_perplexity(&model, &evalw)?;
    eprintln!("power model (candle): ppl {:.3}", power_ppl.ppl);
    let original_ppl = match &a.original {
        Some(dir) => Some(candle_perplexity(&load(dir)?.0, &evalw)?),
        None => None,
    };
    let weights = PolyWeights::from_dir(&a.model)?;
    let items = if a.choice_items > 0 {
        continuation_task(
            &held.ids,
            a.choice_items,
            a.choice_context,
            a.choice_span,
            4,
            0,
        )?
    } else {
        Vec::new()
    };
    let original = match &a.original {
        Some(dir) if !items.is_empty() => {
            let m = load(dir)?.0;
            Some(score_choices(&items, |x| candle_logits(&m, x))?)
        }
        _ => None,
    };
    let power_choice = score_choices(&items, |x| candle_logits(&model, x))?;
    let mut choice: Option<ChoiceSummary> = None;
    let mut rows = Vec::new();
    for &d in &a.degrees {
        let opts = CalibrationOptions {
            margin: a.margin,
            activation_degree: d,
            inv_sqrt_guess_degree: a.guess_degree,
            reciprocal_guess_degree: a.guess_degree,
            target_rel_error: a.target_rel,
            ..CalibrationOptions::default()
        };
        let spec = calibrate(&cfg, &ranges, &opts)?;
        spec.to_file(a.out.join(format!("spec-d{d}.json")))?;
        let poly = PolyModel::new(weights.clone(), spec.clone())?;
        let c = compare(&poly, &evalw)?;
        let mut r = row(d, &spec, &c);
        if !items.is_empty() {
            if choice.is_none() {
                let exact_twin =
                    score_choices(&items, |x| Ok(poly.forward_ids(x, Mode::Exact)?.logits))?;
                choice = Some(ChoiceSummary {
                    items: items.len(),
                    context: a.choice_context,
                    span: a.choice_span,
                    chance: 0.25,
                    original: original.clone(),
                    power: power_choice.clone(),
                    exact_twin,
                });
            }
            let mut seen = psf_poly::OutOfRange::default();
            let pc = score_choices(&items, |x| {
                let f = poly.forward_ids(x, Mode::Polynomial)?;
                seen.merge(&f.out_of_range);
                Ok(f.logits)
            })?;
            let mut by_op = std::collections::BTreeMap::<String, u64>::new();
            for (site, n) in seen.sites.iter().filter(|(_, n)| n.outside > 0) {
                *by_op.entry(format!("{:?}", site.op)).or_default() += n.outside;
            }
            r.choice_outside = Some(by_op.into_iter().collect());
            r.choice_acc = Some(pc.acc);
            r.choice_agreement_with_exact = choice.as_ref().map(|c| pc.agreement(&c.exact_twin));
        }
        eprintln!(
            "degree {d}: ppl {:.3} -> {:.3}, top-1 agreement {:.4}, outside {}, outside on choice items {:?}",
            r.exact_ppl, r.poly_ppl, r.top1_agreement, r.outside, r.choice_outside
        );
        rows.push(r);
    }
    let q = Quality {
        model: a.model.clone(),
        original: a.original.clone(),
        calib_tokens: ranges.tokens,
        eval_tokens: evalw.len() * a.seq,
        seq: a.seq,
        margin: a.margin,
        guess_degree: a.guess_degree,
        target_rel: a.target_rel,
        original_ppl,
        power_ppl,
        choice,
        rows,
    };
    std::fs::write(
        a.out.join("quality.json"),
        serde_json::to_string_pretty(&q)?,
    )?;
    let md = markdown(&q);
    std::fs::write(a.out.join("quality.md"), &md)?;
    println!("{md}");
    Ok(())
}

fn markdown(q: &Quality) -> String {
    let f3 = |p: Option<f64>| p.map_or("-".to_string(), |v| format!("{v:.3}"));
    let pct = |p: Option<f64>| p.map_or("-".to_string(), |v| format!("{:.1}%", 100.0 * v));
    let ch = q.choice.as_ref();
    let mut s = format!(
        "Held-out text: {} tokens ({} windows of {}); calibration: {} tokens of training text, \
         margin {}, first guess of 1/x and 1/sqrt x of degree {}, iterations for relative \
         error <= {:e}.",
        q.eval_tokens,
        q.rows.first().map_or(0, |_| q.eval_tokens / q.seq.max(1)),
        q.seq,
        q.calib_tokens,
        q.margin,
        q.guess_degree,
        q.target_rel
    );
    if let Some(c) = ch {
        s.push_str(&format!(
            " Multiple choice: {} held-out items, {} context tokens, the true next {} tokens \
             against 3 spans from elsewhere (chance 25%).",
            c.items, c.context, c.span
        ));
    }
    s.push_str("\n\n| model | perplexity | multiple choice acc |\n|---|---:|---:|\n");
    s.push_str(&format!(
        "| original (softmax) | {} | {} |\n| Power-Softmax (candle) | {:.3} | {} |\n",
        f3(q.original_ppl.map(|p| p.ppl)),
        pct(ch.and_then(|c| c.original.as_ref().map(|r| r.acc))),
        q.power_ppl.ppl,
        pct(ch.map(|c| c.power.acc)),
    ));
    if let Some(r) = q.rows.first() {
        s.push_str(&format!(
            "| Power-Softmax, f64 exact twin | {:.3} | {} |\n",
            r.exact_ppl,
            pct(ch.map(|c| c.exact_twin.acc))
        ));
    }
    s.push_str(
        "\nPolynomial model per activation degree (exact twin -> polynomial):\n\n\
         | act. degree | max act. err | 1/sqrt iters | 1/x iters | ppl | change | MC acc | \
         MC same pick | top-1 agreement | max logit err | inputs outside |\n\
         |---:|---:|---|---|---|---:|---|---:|---:|---:|---:|\n",
    );
    let exact_mc = ch.map(|c| c.exact_twin.acc);
    for r in &q.rows {
        s.push_str(&format!(
            "| {} | {:.2e} | {:?} | {:?} | {:.3} -> {:.3} | {:+.2}% | {} -> {} | {} | {:.2}% | {:.2e} | {} / {} |\n",
            r.activation_degree,
            r.activation_max_err,
            r.inv_sqrt_iterations,
            r.reciprocal_iterations,
            r.exact_ppl,
            r.poly_ppl,
            100.0 * r.ppl_rel_change,
            pct(exact_mc),
            pct(r.choice_acc),
            pct(r.choice_agreement_with_exact),
            100.0 * r.top1_agreement,
            r.max_logit_err,
            r.outside,
            r.checked
        ));
    }
    s
}
