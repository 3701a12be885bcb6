//! `psformer polyfit`: calibrate a Power-Softmax checkpoint's op ranges, choose the
//! polynomial replacements for a sweep of degrees, and measure the polynomial model against
//! its unapproximated twin and the original softmax model (QUALITY.md is generated from it).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use candle_core::Device;
use clap::Args;
use psf_model::data::TokenStream;
use psf_model::{Model, ModelConfig};
use psf_poly::{
    CalibrationOptions, ChoiceItem, ChoiceResult, Comparison, Mode, ObservedRanges, PolyModel,
    PolyOp, PolyWeights, Ppl, calibrate, candle_logits, candle_perplexity, compare_many,
    continuation_task, score_choices, score_choices_from, windows,
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
#[derive(Debug, Clone, Serialize)]
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

/// The candle-side measurements: ranges, perplexities and multiple-choice picks of the
/// Power-Softmax model and of the original softmax model.
struct CandleSide {
    cfg: ModelConfig,
    ranges: ObservedRanges,
    power_ppl: Ppl,
    original_ppl: Option<Ppl>,
    power_choice: ChoiceResult,
    original_choice: Option<ChoiceResult>,
}

fn candle_side(
    a: &PolyfitArgs,
    calib: &[Vec<u32>],
    evalw: &[Vec<u32>],
    items: &[ChoiceItem],
) -> anyhow::Result<CandleSide> {
    let t = Instant::now();
    let (model, cfg) = load(&a.model)?;
    let ranges = ObservedRanges::record(&model, &cfg, calib)?;
    eprintln!(
        "calibration: {} tokens in {:.0} s",
        ranges.tokens,
        t.elapsed().as_secs_f64()
    );
    std::fs::write(
        a.out.join("ranges.json"),
        serde_json::to_string_pretty(&ranges)?,
    )?;
    let power_ppl = candle_perplexity(&model, evalw)?;
    eprintln!("power model (candle): ppl {:.3}", power_ppl.ppl);
    let power_choice = score_choices(items, |x| candle_logits(&model, x))?;
    drop(model);
    let (original_ppl, original_choice) = match &a.original {
        Some(dir) => {
            let m = load(dir)?.0;
            let ppl = candle_perplexity(&m, evalw)?;
            eprintln!("original model (candle): ppl {:.3}", ppl.ppl);
            let ch = if items.is_empty() {
                None
            } else {
                Some(score_choices(items, |x| candle_logits(&m, x))?)
            };
            (Some(ppl), ch)
        }
        None => (None, None),
    };
    eprintln!("candle models done at {:.0} s", t.elapsed().as_secs_f64());
    Ok(CandleSide {
        cfg,
        ranges,
        power_ppl,
        original_ppl,
        power_choice,
        original_choice,
    })
}

/// Logits of positions `from..` of `ids` (what multiple-choice scoring reads).
fn poly_logits(
    poly: &PolyModel,
    ids: &[u32],
    from: usize,
    mode: Mode,
) -> psf_poly::Result<psf_poly::Forward> {
    let x = poly.weights().embed(ids)?;
    let positions: Vec<usize> = (from..ids.len()).collect();
    poly.forward_at(&x, &positions, mode)
}

/// Scores the items with the polynomial model; fills the row's multiple-choice fields.
fn choice_row(
    r: &mut Row,
    poly: &PolyModel,
    items: &[ChoiceItem],
    exact: &ChoiceResult,
) -> anyhow::Result<()> {
    let mut seen = psf_poly::OutOfRange::default();
    let pc = score_choices_from(items, |x, from| {
        let f = poly_logits(poly, x, from, Mode::Polynomial)?;
        seen.merge(&f.out_of_range);
        Ok(f.logits)
    })?;
    let mut by_op = std::collections::BTreeMap::<String, u64>::new();
    for (site, n) in seen.sites.iter().filter(|(_, n)| n.outside > 0) {
        *by_op.entry(format!("{:?}", site.op)).or_default() += n.outside;
    }
    r.choice_outside = Some(by_op.into_iter().collect());
    r.choice_acc = Some(pc.acc);
    r.choice_agreement_with_exact = Some(pc.agreement(exact));
    Ok(())
}

/// Runs calibration and the degree sweep; writes the files and prints the markdown table.
pub fn run_polyfit(a: &PolyfitArgs) -> anyhow::Result<()> {
    let t = Instant::now();
    std::fs::create_dir_all(&a.out)?;
    let train = TokenStream::read(&a.data.join("train.tokens"))?;
    let held = TokenStream::read(&a.data.join("held_out.tokens"))?;
    let calib = calib_windows(&train.ids, a.seq, a.calib_windows)?;
    let evalw = windows(&held.ids, a.seq, Some(a.eval_windows))?;
    let items = if a.choice_items > 0 {
        let (n, ctx, span) = (a.choice_items, a.choice_context, a.choice_span);
        continuation_task(&held.ids, n, ctx, span, 4, 0)?
    } else {
        Vec::new()
    };
    let cs = candle_side(a, &calib, &evalw, &items)?;
    let mut specs = Vec::with_capacity(a.degrees.len());
    for &d in &a.degrees {
        let spec = calibrate(&cs.cfg, &cs.ranges, &options(a, d))?;
        spec.to_file(a.out.join(format!("spec-d{d}.json")))?;
        specs.push(spec);
    }
    anyhow::ensure!(!specs.is_empty(), "no degrees given");
    let base = PolyModel::new(PolyWeights::from_dir(&a.model)?, specs[0].clone())?;
    let polys = specs
        .iter()
        .map(|s| base.with_spec(s.clone()))
        .collect::<psf_poly::Result<Vec<_>>>()?;
    drop(base);
    let comparisons = compare_many(&polys, &evalw)?;
    let elapsed = || t.elapsed().as_secs_f64();
    eprintln!(
        "held-out comparison ({} windows, {} specs) done at {:.0} s",
        evalw.len(),
        polys.len(),
        elapsed()
    );
    let rows = a.degrees.iter().zip(&polys).zip(&comparisons);
    let mut q = Quality {
        model: a.model.clone(),
        original: a.original.clone(),
        calib_tokens: cs.ranges.tokens,
        eval_tokens: evalw.len() * a.seq,
        seq: a.seq,
        margin: a.margin,
        guess_degree: a.guess_degree,
        target_rel: a.target_rel,
        original_ppl: cs.original_ppl,
        power_ppl: cs.power_ppl,
        choice: None,
        rows: rows.map(|((&d, p), c)| row(d, p.spec(), c)).collect(),
    };
    // Written now and after every degree's multiple choice: a run stopped early keeps what
    // it measured.
    write_quality(a, &q)?;
    if !items.is_empty() {
        let exact_twin = score_choices_from(&items, |x, from| {
            Ok(poly_logits(&polys[0], x, from, Mode::Exact)?.logits)
        })?;
        let ch = ChoiceSummary {
            items: items.len(),
            context: a.choice_context,
            span: a.choice_span,
            chance: 0.25,
            original: cs.original_choice.clone(),
            power: cs.power_choice.clone(),
            exact_twin,
        };
        q.choice = Some(ch.clone());
        for (i, poly) in polys.iter().enumerate() {
            choice_row(&mut q.rows[i], poly, &items, &ch.exact_twin)?;
            write_quality(a, &q)?;
            eprintln!(
                "multiple choice, degree {}: {:.0} s",
                q.rows[i].activation_degree,
                elapsed()
            );
        }
    }
    for r in &q.rows {
        eprintln!(
            "degree {}: ppl {:.3} -> {:.3}, top-1 agreement {:.4}, outside {}, outside on choice items {:?} ({:.0} s)",
            r.activation_degree,
            r.exact_ppl,
            r.poly_ppl,
            r.top1_agreement,
            r.outside,
            r.choice_outside,
            elapsed()
        );
    }
    println!("{}", write_quality(a, &q)?);
    Ok(())
}

/// Writes `quality.json` and `quality.md`; returns the markdown.
fn write_quality(a: &PolyfitArgs, q: &Quality) -> anyhow::Result<String> {
    std::fs::write(a.out.join("quality.json"), serde_json::to_string_pretty(q)?)?;
    let md = markdown(q);
    std::fs::write(a.out.join("quality.md"), &md)?;
    Ok(md)
}

fn options(a: &PolyfitArgs, degree: usize) -> CalibrationOptions {
    CalibrationOptions {
        margin: a.margin,
        activation_degree: degree,
        inv_sqrt_guess_degree: a.guess_degree,
        reciprocal_guess_degree: a.guess_degree,
        target_rel_error: a.target_rel,
        ..CalibrationOptions::default()
    }
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
    // Accuracy with its standard error (binomial, over the items).
    let acc = |r: Option<&ChoiceResult>| {
        r.map_or("-".to_string(), |r| {
            format!("{:.1}% ± {:.1}", 100.0 * r.acc, 100.0 * r.acc_stderr)
        })
    };
    s.push_str("\n\n| model | perplexity | multiple choice acc |\n|---|---:|---:|\n");
    s.push_str(&format!(
        "| original (softmax) | {} | {} |\n| Power-Softmax (candle) | {:.3} | {} |\n",
        f3(q.original_ppl.map(|p| p.ppl)),
        acc(ch.and_then(|c| c.original.as_ref())),
        q.power_ppl.ppl,
        acc(ch.map(|c| &c.power)),
    ));
    if let Some(r) = q.rows.first() {
        s.push_str(&format!(
            "| Power-Softmax, f64 exact twin | {:.3} | {} |\n",
            r.exact_ppl,
            acc(ch.map(|c| &c.exact_twin))
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
