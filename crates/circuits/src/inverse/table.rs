//! The depth/accuracy trade-off of the inverse circuits, measured on the simulator: for each
//! method, first-guess degree and iteration count, the depth, the ciphertext products and the
//! largest errors against the exact function over a dense grid (one slot per grid point).

use psf_ckks::{CkksParameters, Primitive};

use super::{InvSqrt, Method, Reciprocal};
use crate::{Backend, Circuit, Result, SimBackend};

/// One measured configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct TradeoffRow {
    /// `"1/x"` or `"1/sqrt(x)"`.
    pub function: &'static str,
    /// `"newton"` or `"goldschmidt"`.
    pub method: &'static str,
    /// Degree of the first guess (0: constant).
    pub guess_degree: usize,
    /// Iterations.
    pub iterations: usize,
    /// Levels consumed.
    pub depth: usize,
    /// Ciphertext-ciphertext products.
    pub muls: u64,
    /// Largest absolute error on the grid.
    pub max_abs_err: f64,
    /// Largest relative error on the grid.
    pub max_rel_err: f64,
}

/// Measures every configuration with `guess_degrees` x `0..=max_iterations` (skipping those
/// deeper than the parameters allow, or with neither guess nor iteration) for `1/x` (Newton,
/// Goldschmidt) and `1/sqrt(x)` (Newton) on `[a, b]`, on a grid of `N/2` points.
pub fn tradeoff_rows(
    params: &CkksParameters,
    (a, b): (f64, f64),
    guess_degrees: &[usize],
    max_iterations: usize,
) -> Result<Vec<TradeoffRow>> {
    let sim = SimBackend::new(params);
    let n = sim.slots();
    let grid: Vec<f64> = (0..n)
        .map(|i| a + (b - a) * i as f64 / (n - 1) as f64)
        .collect();
    let x = sim.encrypt(&grid, sim.max_level(), sim.default_scale())?;
    let mut rows = Vec::new();
    for &d in guess_degrees {
        for it in 0..=max_iterations {
            if d == 0 && it == 0 {
                continue;
            }
            for (method, m) in [
                ("newton", Method::Newton),
                ("goldschmidt", Method::Goldschmidt),
            ] {
                let c = Reciprocal::new(a, b, m, d, it)?;
                if c.depth() <= sim.max_level() {
                    let row = measure(
                        &sim,
                        &x,
                        &grid,
                        c.depth(),
                        |v| 1.0 / v,
                        |be, ct| c.evaluate(be, ct),
                    )?;
                    rows.push(TradeoffRow {
                        function: "1/x",
                        method,
                        guess_degree: d,
                        iterations: it,
                        ..row
                    });
                }
            }
            let c = InvSqrt::new(a, b, d, it)?;
            if c.depth() <= sim.max_level() {
                let row = measure(
                    &sim,
                    &x,
                    &grid,
                    c.depth(),
                    |v| 1.0 / v.sqrt(),
                    |be, ct| c.evaluate(be, ct),
                )?;
                rows.push(TradeoffRow {
                    function: "1/sqrt(x)",
                    method: "newton",
                    guess_degree: d,
                    iterations: it,
                    ..row
                });
            }
        }
    }
    Ok(rows)
}

type SimCt = <SimBackend as Backend>::Ct;

fn measure(
    sim: &SimBackend,
    x: &SimCt,
    grid: &[f64],
    depth: usize,
    f: impl Fn(f64) -> f64,
    run: impl Fn(&SimBackend, &SimCt) -> Result<SimCt>,
) -> Result<TradeoffRow> {
    sim.counter().reset();
    let y = run(sim, x)?;
    let (mut abs, mut rel) = (0.0f64, 0.0f64);
    for (&v, &h) in grid.iter().zip(&y.values) {
        let e = (f(v) - h).abs();
        abs = abs.max(e);
        rel = rel.max(e / f(v).abs());
    }
    Ok(TradeoffRow {
        function: "",
        method: "",
        guess_degree: 0,
        iterations: 0,
        depth,
        muls: sim.counts().get(Primitive::Mul),
        max_abs_err: abs,
        max_rel_err: rel,
    })
}

/// The rows as a markdown table, one table per function and method.
pub fn tradeoff_markdown(rows: &[TradeoffRow]) -> String {
    let mut out = String::new();
    let mut last = ("", "");
    for r in rows_sorted(rows) {
        if (r.function, r.method) != last {
            last = (r.function, r.method);
            out.push_str(&format!(
                "\n### {} by {}\n\n| guess degree | iterations | depth | products | max abs error | max rel error | bits (abs) |\n|---:|---:|---:|---:|---:|---:|---:|\n",
                r.function, r.method
            ));
        }
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.3e} | {:.3e} | {:.1} |\n",
            r.guess_degree,
            r.iterations,
            r.depth,
            r.muls,
            r.max_abs_err,
            r.max_rel_err,
            -r.max_abs_err.log2()
        ));
    }
    out
}

fn rows_sorted(rows: &[TradeoffRow]) -> Vec<&TradeoffRow> {
    let mut v: Vec<&TradeoffRow> = rows.iter().collect();
    v.sort_by_key(|r| (r.function, r.method, r.guess_degree, r.iterations));
    v
}
