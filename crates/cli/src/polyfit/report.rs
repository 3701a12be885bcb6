//! The tables of `psformer polyfit`: one row per run (a degree, all ops or one class
//! approximated), what `quality.json` holds, and the markdown of `quality.md`.

use std::path::PathBuf;

use psf_poly::{ChoiceResult, Comparison, Mode, PolyOp, Ppl};
use serde::Serialize;

/// One row of the degree sweep.
#[derive(Debug, Serialize)]
pub(super) struct Row {
    pub(super) activation_degree: usize,
    /// Per-layer activation degrees (differ from `activation_degree` with `--act-target-err`).
    pub(super) activation_degrees: Vec<usize>,
    /// Which ops are approximated (`polynomial`: all; `only ...`: an ablation).
    pub(super) mode: String,
    pub(super) activation_max_err: f64,
    pub(super) inv_sqrt_iterations: Vec<usize>,
    pub(super) reciprocal_iterations: Vec<usize>,
    /// Multiplicative depth the circuit pays per block (psf-circuits' `depth()` of each
    /// op), the largest over the blocks: activation, reciprocal, inverse square root.
    pub(super) depth_activation: Vec<usize>,
    pub(super) depth_reciprocal: Vec<usize>,
    pub(super) depth_inv_sqrt: Vec<usize>,
    pub(super) exact_ppl: f64,
    pub(super) poly_ppl: f64,
    pub(super) ppl_rel_change: f64,
    pub(super) top1_agreement: f64,
    pub(super) max_logit_err: f64,
    pub(super) logit_mse: f64,
    pub(super) outside: u64,
    pub(super) checked: u64,
    pub(super) outside_by_op: Vec<(String, u64)>,
    pub(super) choice_acc: Option<f64>,
    pub(super) choice_agreement_with_exact: Option<f64>,
    /// Inputs outside their interval while scoring the multiple-choice items, per op.
    pub(super) choice_outside: Option<Vec<(String, u64)>>,
    /// The items' positions by first site outside, and `(positions outside, positions)`.
    pub(super) choice_first_outside: Option<Vec<(String, u64)>>,
    pub(super) choice_positions_outside: Option<(u64, u64)>,
    /// Held-out positions with an input outside its interval (of `positions`).
    pub(super) positions_outside: u64,
    pub(super) positions: u64,
    /// Positions by the site where they first went outside, most frequent first.
    pub(super) first_outside: Vec<(String, u64)>,
    /// Every site with inputs outside (the run, then the exact twin on the same windows).
    pub(super) sites_outside: Vec<SiteRow>,
    /// Every site of the exact twin (its input ranges on the held-out text).
    pub(super) exact_sites: Vec<SiteRow>,
    /// The exact twin's positions with an input outside (calibration coverage).
    pub(super) exact_positions_outside: u64,
}

/// One op site's tally.
#[derive(Debug, Serialize)]
pub(super) struct SiteRow {
    pub(super) layer: usize,
    pub(super) op: String,
    pub(super) outside: u64,
    pub(super) total: u64,
    pub(super) min: f64,
    pub(super) max: f64,
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

pub(super) fn first_sites(o: &psf_poly::OutOfRange) -> Vec<(String, u64)> {
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
pub(super) struct Quality {
    pub(super) model: PathBuf,
    pub(super) original: Option<PathBuf>,
    pub(super) calib_tokens: usize,
    pub(super) eval_tokens: usize,
    pub(super) seq: usize,
    pub(super) margin: f64,
    /// The per-op margins the specs were calibrated with (their `notes`).
    pub(super) margins: Option<String>,
    pub(super) guess_degree: usize,
    /// The candidate guess degrees (`--guess-degrees`; empty: `guess_degree` only).
    pub(super) guess_degrees: Vec<usize>,
    pub(super) target_rel: f64,
    pub(super) original_ppl: Option<Ppl>,
    pub(super) power_ppl: Ppl,
    pub(super) choice: Option<ChoiceSummary>,
    pub(super) rows: Vec<Row>,
}

/// Multiple-choice accuracy of the models without polynomials.
#[derive(Debug, Clone, Serialize)]
pub(super) struct ChoiceSummary {
    pub(super) items: usize,
    pub(super) context: usize,
    pub(super) span: usize,
    pub(super) chance: f64,
    pub(super) original: Option<ChoiceResult>,
    pub(super) power: ChoiceResult,
    pub(super) exact_twin: ChoiceResult,
    /// The exact twin on the items: positions by first site outside, and `(outside, all)`.
    pub(super) exact_first_outside: Vec<(String, u64)>,
    pub(super) exact_positions_outside: (u64, u64),
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

pub(super) fn row(
    d: usize,
    mode: Mode,
    spec: &psf_poly::PolySpec,
    c: &Comparison,
) -> anyhow::Result<Row> {
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
        choice_first_outside: None,
        choice_positions_outside: None,
        positions_outside: c.out_of_range.positions_outside(),
        positions: c.out_of_range.positions,
        first_outside: first_sites(&c.out_of_range),
        sites_outside: site_rows(&c.out_of_range, false),
        exact_sites: site_rows(&c.exact_out_of_range, true),
        exact_positions_outside: c.exact_out_of_range.positions_outside(),
    })
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

pub(super) fn markdown(q: &Quality) -> String {
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
        if q.guess_degrees.is_empty() {
            q.guess_degree.to_string()
        } else {
            format!("{:?} (the shallowest circuit per inverse)", q.guess_degrees)
        },
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
        s.push_str(&format!(
            "- degree {} ({}): {}\n",
            r.activation_degree,
            r.mode,
            top_sites(&r.first_outside)
        ));
        if let (Some(f), Some((n, all))) = (&r.choice_first_outside, r.choice_positions_outside) {
            s.push_str(&format!(
                "  - on the MC items, {n} of {all} positions: {}\n",
                top_sites(f)
            ));
        }
    }
    if let Some(c) = ch {
        let (n, all) = c.exact_positions_outside;
        s.push_str(&format!(
            "- exact twin on the MC items, {n} of {all} positions: {}\n",
            top_sites(&c.exact_first_outside)
        ));
    }
    s
}

/// The six most frequent first sites, `site: positions`.
fn top_sites(v: &[(String, u64)]) -> String {
    let top: Vec<String> = v.iter().take(6).map(|(k, n)| format!("{k}: {n}")).collect();
    if top.is_empty() {
        "none".to_string()
    } else {
        top.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use psf_approx::{InvSqrtRecipe, InverseMethod, ReciprocalRecipe};
    use psf_circuits::Circuit;
    use psf_circuits::inverse::{InvSqrt, Reciprocal};

    /// psf-approx's depth formulas (which calibration minimizes) are the circuits' depths.
    #[test]
    fn recipe_depths_match_the_circuits() {
        for guess_degree in [0, 1, 2, 3, 7, 8, 15, 31] {
            for iterations in 0..5 {
                if guess_degree == 0 && iterations == 0 {
                    continue;
                }
                let s = InvSqrtRecipe {
                    a: 0.5,
                    b: 300.0,
                    guess_degree,
                    iterations,
                };
                assert_eq!(
                    InvSqrt::from_recipe(&s).unwrap().depth(),
                    s.depth(),
                    "{s:?}"
                );
                for method in [InverseMethod::Newton, InverseMethod::Goldschmidt] {
                    let r = ReciprocalRecipe {
                        a: 1e-3,
                        b: 2.0,
                        method,
                        guess_degree,
                        iterations,
                    };
                    let c = Reciprocal::from_recipe(&r).unwrap();
                    assert_eq!(c.depth(), r.depth(), "{r:?}");
                }
            }
        }
    }
}
