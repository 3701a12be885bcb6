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
    Approximated, CalibrationOptions, ChoiceItem, ChoiceResult, Comparison, Mode, ObservedRanges,
    OpMargins, PolyModel, PolyOp, PolyWeights, Ppl, calibrate, candle_logits, candle_perplexity,
    compare_modes, continuation_task, score_choices, score_choices_from, windows,
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
    /// Relative interval margin (every op, unless one of the per-op margins below is given).
    #[arg(long, default_value_t = 0.1)]
    pub margin: f64,
    /// Margin of the Power-Softmax constant: `c = (1 + m) max|s|`. Each doubling of
    /// `1 + m` costs about `p` more Goldschmidt iterations.
    #[arg(long)]
    pub margin_c: Option<f64>,
    /// Margin of the upper end of 1/x's interval (`hi * (1 + m)`; about `log2(1 + m)` more
    /// iterations).
    #[arg(long)]
    pub margin_recip: Option<f64>,
    /// Margin of the upper end of the 1/sqrt x intervals (`hi * (1 + m)`).
    #[arg(long)]
    pub margin_inv_sqrt: Option<f64>,
    /// Margin of the activation's interval (`[lo - m w, hi + m w]`, `w = hi - lo`).
    #[arg(long)]
    pub margin_act: Option<f64>,
    /// Raise 1/x's upper end to `1 + eps/c^p`, the largest denominator while every scaled
    /// score lies in [-1, 1] (about log2 of the factor in extra iterations).
    #[arg(long)]
    pub recip_to_bound: bool,
    /// Per-layer activation degrees: raise each layer's degree from the swept one (d -> 2d+1)
    /// until its minimax error is at most this.
    #[arg(long)]
    pub act_target_err: Option<f64>,
    /// Largest per-layer activation degree (with `--act-target-err`).
    #[arg(long, default_value_t = 255)]
    pub act_max_degree: usize,
    /// Reuse the op ranges of an earlier run (its `ranges.json`) instead of calibrating.
    #[arg(long)]
    pub ranges: Option<PathBuf>,
    /// Also run, per degree, the ablations: only 1/sqrt x, only 1/x, only the activation
    /// approximated (the other ops exact), each against the exact twin.
    #[arg(long)]
    pub ablation: bool,
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
    /// Per-layer activation degrees (differ from `activation_degree` with `--act-target-err`).
    activation_degrees: Vec<usize>,
    /// Which ops are approximated (`polynomial`: all; `only ...`: an ablation).
    mode: String,
    activation_max_err: f64,
    inv_sqrt_iterations: Vec<usize>,
    reciprocal_iterations: Vec<usize>,
    /// Multiplicative depth the circuit pays per block (psf-circuits' `depth()` of each
    /// op), the largest over the blocks: activation, reciprocal, inverse square root.
    depth_activation: Vec<usize>,
    depth_reciprocal: Vec<usize>,
    depth_inv_sqrt: Vec<usize>,
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
    /// Held-out positions with an input outside its interval (of `positions`).
    positions_outside: u64,
    positions: u64,
    /// Positions by the site where they first went outside, most frequent first.
    first_outside: Vec<(String, u64)>,
    /// Every site with inputs outside (the run, then the exact twin on the same windows).
    sites_outside: Vec<SiteRow>,
    /// Every site of the exact twin (its input ranges on the held-out text).
    exact_sites: Vec<SiteRow>,
    /// The exact twin's positions with an input outside (calibration coverage).
    exact_positions_outside: u64,
}

/// One op site's tally.
#[derive(Debug, Serialize)]
struct SiteRow {
    layer: usize,
    op: String,
    outside: u64,
    total: u64,
    min: f64,
    max: f64,
}

fn site_rows(o: &psf_poly::OutOfRange, all: bool) -> Vec<SiteRow> {
    o.sites
        .iter()
        .filter(|(_, c)| all || c.outside > 0)
        .map(|(s, c)| SiteRow {
            layer: s.layer,
            op: format!("{:?}", s.op),
            outside: c.outside,
            total: c.total,
            min: c.min,
            max: c.max,
        })
        .collect()
}

fn first_sites(o: &psf_poly::OutOfRange) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = o
        .first_outside
        .iter()
        .map(|(s, n)| (format!("L{} {:?}", s.layer, s.op), *n))
        .collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.1));
    v
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
    /// The per-op margins the specs were calibrated with (their `notes`).
    margins: Option<String>,
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

/// Per block: the depths of the activation, the reciprocal and the deeper of the two norms'
/// inverse square roots, as psf-circuits builds them from the spec.
type Depths = (Vec<usize>, Vec<usize>, Vec<usize>);

fn depths(spec: &psf_poly::PolySpec) -> anyhow::Result<Depths> {
    use psf_circuits::inverse::{InvSqrt, Reciprocal};
    use psf_circuits::{Circuit, PolyEval};
    let mut d = (Vec::new(), Vec::new(), Vec::new());
    for l in &spec.layers {
        d.0.push(PolyEval::new(l.activation.poly.clone())?.depth());
        d.1.push(Reciprocal::from_recipe(&l.reciprocal)?.depth());
        let n1 = InvSqrt::from_recipe(&l.norm1)?.depth();
        d.2.push(n1.max(InvSqrt::from_recipe(&l.norm2)?.depth()));
    }
    Ok(d)
}

fn row(d: usize, mode: Mode, spec: &psf_poly::PolySpec, c: &Comparison) -> anyhow::Result<Row> {
    let depths = depths(spec)?;
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
    Ok(Row {
        activation_degree: d,
        mode: mode.label(),
        activation_degrees: spec
            .layers
            .iter()
            .map(|l| l.activation.poly.degree())
            .collect(),
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
        depth_activation: depths.0,
        depth_reciprocal: depths.1,
        depth_inv_sqrt: depths.2,
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
        positions_outside: c.out_of_range.positions_outside(),
        positions: c.out_of_range.positions,
        first_outside: first_sites(&c.out_of_range),
        sites_outside: site_rows(&c.out_of_range, false),
        exact_sites: site_rows(&c.exact_out_of_range, true),
        exact_positions_outside: c.exact_out_of_range.positions_outside(),
    })
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
    let ranges = match &a.ranges {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let r: ObservedRanges = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", path.display()))?;
            anyhow::ensure!(
                r.layers.len() == cfg.num_layers,
                "{} has {} layers, the model {}",
                path.display(),
                r.layers.len(),
                cfg.num_layers
            );
            eprintln!("ranges of {} tokens from {}", r.tokens, path.display());
            r
        }
        None => {
            let r = ObservedRanges::record(&model, &cfg, calib)?;
            eprintln!(
                "calibration: {} tokens in {:.0} s",
                r.tokens,
                t.elapsed().as_secs_f64()
            );
            r
        }
    };
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
    let runs = runs(a, &polys);
    let pairs: Vec<(&PolyModel, Mode)> = runs.iter().map(|r| (&polys[r.1], r.2)).collect();
    let comparisons = compare_modes(&pairs, &evalw)?;
    let elapsed = || t.elapsed().as_secs_f64();
    eprintln!(
        "held-out comparison ({} windows, {} runs) done at {:.0} s",
        evalw.len(),
        pairs.len(),
        elapsed()
    );
    let mut q = Quality {
        model: a.model.clone(),
        original: a.original.clone(),
        calib_tokens: cs.ranges.tokens,
        eval_tokens: evalw.len() * a.seq,
        seq: a.seq,
        margin: a.margin,
        margins: specs[0].notes.get("margins").cloned(),
        guess_degree: a.guess_degree,
        target_rel: a.target_rel,
        original_ppl: cs.original_ppl,
        power_ppl: cs.power_ppl,
        choice: None,
        rows: runs
            .iter()
            .zip(&comparisons)
            .map(|(&(d, i, mode), c)| row(d, mode, polys[i].spec(), c))
            .collect::<anyhow::Result<_>>()?,
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
        let full = runs
            .iter()
            .enumerate()
            .filter(|(_, r)| r.2 == Mode::Polynomial);
        for (i, &(_, p, _)) in full {
            choice_row(&mut q.rows[i], &polys[p], &items, &ch.exact_twin)?;
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
            "degree {} ({}): ppl {:.3} -> {:.3}, top-1 agreement {:.4}, outside {}, outside on choice items {:?} ({:.0} s)",
            r.activation_degree,
            r.mode,
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

fn max(v: &[usize]) -> usize {
    v.iter().copied().max().unwrap_or(0)
}

/// The activation degree, or `d (per layer lo-hi)` when the layers differ.
fn degrees(r: &Row) -> String {
    let lo = r.activation_degrees.iter().min().copied().unwrap_or(0);
    let hi = r.activation_degrees.iter().max().copied().unwrap_or(0);
    if lo == hi {
        r.activation_degree.to_string()
    } else {
        format!("{} (per layer {lo}-{hi})", r.activation_degree)
    }
}

/// The runs to compare: `(degree, index into polys, mode)`, every spec in full and, with
/// `--ablation`, each class of ops approximated alone.
fn runs(a: &PolyfitArgs, polys: &[PolyModel]) -> Vec<(usize, usize, Mode)> {
    let mut out = Vec::new();
    for (i, &d) in a.degrees.iter().enumerate().take(polys.len()) {
        out.push((d, i, Mode::Polynomial));
        if a.ablation {
            let only = |inv_sqrt, reciprocal, activation| {
                Mode::Only(Approximated {
                    inv_sqrt,
                    reciprocal,
                    activation,
                })
            };
            out.push((d, i, only(true, false, false)));
            out.push((d, i, only(false, true, false)));
            out.push((d, i, only(false, false, true)));
        }
    }
    out
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
        margins: OpMargins {
            c: a.margin_c,
            reciprocal_hi: a.margin_recip,
            inv_sqrt_hi: a.margin_inv_sqrt,
            activation: a.margin_act,
            reciprocal_to_bound: a.recip_to_bound,
        },
        activation_target_error: a.act_target_err,
        activation_max_degree: a.act_max_degree,
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
         margins {}, first guess of 1/x and 1/sqrt x of degree {}, iterations for relative \
         error <= {:e}.",
        q.eval_tokens,
        q.rows.first().map_or(0, |_| q.eval_tokens / q.seq.max(1)),
        q.seq,
        q.calib_tokens,
        q.margins.clone().unwrap_or_else(|| q.margin.to_string()),
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
         | act. degree | approximated | max act. err | 1/sqrt iters | 1/x iters | \
         max depth act / 1/x / 1/sqrt | ppl | change | MC acc | MC same pick | \
         top-1 agreement | max logit err | inputs outside | positions outside (exact twin) |\n\
         |---:|---|---:|---|---|---|---|---:|---|---:|---:|---:|---:|---:|\n",
    );
    let exact_mc = ch.map(|c| c.exact_twin.acc);
    for r in &q.rows {
        s.push_str(&format!(
            "| {} | {} | {:.2e} | {:?} | {:?} | {} / {} / {} | {:.3} -> {:.3} | {:+.2}% | {} -> {} | {} | {:.2}% | {:.2e} | {} / {} | {} ({}) / {} |\n",
            degrees(r),
            r.mode,
            r.activation_max_err,
            r.inv_sqrt_iterations,
            r.reciprocal_iterations,
            max(&r.depth_activation),
            max(&r.depth_reciprocal),
            max(&r.depth_inv_sqrt),
            r.exact_ppl,
            r.poly_ppl,
            100.0 * r.ppl_rel_change,
            pct(exact_mc),
            pct(r.choice_acc),
            pct(r.choice_agreement_with_exact),
            100.0 * r.top1_agreement,
            r.max_logit_err,
            r.outside,
            r.checked,
            r.positions_outside,
            r.exact_positions_outside,
            r.positions
        ));
    }
    s.push_str("\nWhere positions first went outside (site: positions), per run:\n\n");
    for r in &q.rows {
        let top: Vec<String> = r
            .first_outside
            .iter()
            .take(6)
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        s.push_str(&format!(
            "- degree {} ({}): {}\n",
            r.activation_degree,
            r.mode,
            if top.is_empty() {
                "none".to_string()
            } else {
                top.join(", ")
            }
        ));
    }
    s
}
