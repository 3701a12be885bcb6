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
    Approximated, CalibrationOptions, ChoiceItem, ChoiceResult, Mode, ObservedRanges, OpMargins,
    PolyModel, PolyWeights, Ppl, calibrate, candle_logits, candle_perplexity, compare_modes,
    continuation_task, score_choices, score_choices_from, windows,
};
mod report;

use report::{ChoiceSummary, Quality, Row, first_sites, markdown, row};

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
    /// First-guess degrees to choose from for each 1/x and 1/sqrt(x): the shallowest circuit
    /// (guess depth + iterations) that meets the target (default: `--guess-degree` only).
    #[arg(long, value_delimiter = ',')]
    pub guess_degrees: Vec<usize>,
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
    /// Widen 1/x's interval to at least [eps/c^p, 1 + eps/c^p]: the smallest denominator
    /// possible and the largest while every scaled score lies in [-1, 1] (about log2 of the
    /// widening in extra iterations).
    #[arg(long)]
    pub recip_to_bound: bool,
    /// Raise 1/x's lower end so that its interval spans at most this ratio (fewer
    /// iterations; queries whose scores are all near zero get a smaller attention output:
    /// the `--ablation` row `only 1/x` measures what that costs).
    #[arg(long)]
    pub recip_max_ratio: Option<f64>,
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
    r.choice_first_outside = Some(first_sites(&seen));
    r.choice_positions_outside = Some((seen.positions_outside(), seen.positions));
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
        if let Some(unmet) = spec.notes.get(psf_poly::UNMET_TARGETS) {
            eprintln!("warning: degree {d}: target relative error not met: {unmet}");
        }
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
        guess_degrees: a.guess_degrees.clone(),
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
        let mut seen = psf_poly::OutOfRange::default();
        let exact_twin = score_choices_from(&items, |x, from| {
            let f = poly_logits(&polys[0], x, from, Mode::Exact)?;
            seen.merge(&f.out_of_range);
            Ok(f.logits)
        })?;
        let ch = ChoiceSummary {
            items: items.len(),
            context: a.choice_context,
            span: a.choice_span,
            chance: 0.25,
            original: cs.original_choice.clone(),
            power: cs.power_choice.clone(),
            exact_twin,
            exact_first_outside: first_sites(&seen),
            exact_positions_outside: (seen.positions_outside(), seen.positions),
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
            reciprocal_max_ratio: a.recip_max_ratio,
        },
        activation_target_error: a.act_target_err,
        activation_max_degree: a.act_max_degree,
        guess_degree_candidates: a.guess_degrees.clone(),
        activation_degree: degree,
        inv_sqrt_guess_degree: a.guess_degree,
        reciprocal_guess_degree: a.guess_degree,
        target_rel_error: a.target_rel,
        ..CalibrationOptions::default()
    }
}
