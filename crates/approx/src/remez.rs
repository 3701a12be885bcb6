//! Minimax (best uniform) polynomial approximation by the Remez exchange algorithm, in the
//! Chebyshev basis of `[a, b]`.
//!
//! Each iteration solves for the polynomial `p` and the levelled error `E` with
//! `(f - p)(x_i) / w(x_i) = (-1)^i E` on a reference of `degree + 2` points, then finds the
//! local extrema of the weighted error on a dense Chebyshev-distributed grid (each refined by a
//! golden-section search), keeps the largest of every run of equal sign, and takes as the new
//! reference the `degree + 2` consecutive alternating extrema that contain the global maximum
//! (Chebfun's exchange). It stops when the largest error exceeds `|E|` by less than the
//! tolerance: the error then equioscillates, which characterizes the minimax polynomial.

use super::Chebyshev;
use crate::{ApproxError, Result};

/// Which error the fit minimizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorWeight {
    /// `max |f(x) - p(x)|`.
    Absolute,
    /// `max |f(x) - p(x)| / |f(x)|` (`f` must not vanish on the interval).
    Relative,
}

/// Settings of [`remez`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RemezOptions {
    /// Absolute or relative error.
    pub weight: ErrorWeight,
    /// Most exchange iterations.
    pub max_iterations: usize,
    /// Stop when `(max error - |E|) <= tolerance * max error`.
    pub tolerance: f64,
    /// Points of the search grid (0: `max(4096, 64 * (degree + 2))`).
    pub grid: usize,
}

impl Default for RemezOptions {
    fn default() -> Self {
        Self {
            weight: ErrorWeight::Absolute,
            max_iterations: 60,
            tolerance: 1e-7,
            grid: 0,
        }
    }
}

impl RemezOptions {
    /// Defaults with relative error.
    pub fn relative() -> Self {
        Self {
            weight: ErrorWeight::Relative,
            ..Self::default()
        }
    }
}

/// The result of [`remez`].
#[derive(Debug, Clone, PartialEq)]
pub struct Minimax {
    /// The polynomial.
    pub poly: Chebyshev,
    /// `|E|`, the levelled (weighted) error on the final reference.
    pub levelled_error: f64,
    /// The largest weighted error found on the search grid.
    pub max_error: f64,
    /// The final reference points (in `[a, b]`).
    pub reference: Vec<f64>,
    /// Exchange iterations run.
    pub iterations: usize,
    /// Whether the tolerance was met.
    pub converged: bool,
}

/// Fits the minimax polynomial of `degree` to `f` on `[a, b]`.
///
/// # Errors
/// [`ApproxError::Invalid`] for an empty interval, a singular reference system, or a relative
/// fit of a function that vanishes on the interval.
pub fn remez(
    f: impl Fn(f64) -> f64,
    a: f64,
    b: f64,
    degree: usize,
    opts: &RemezOptions,
) -> Result<Minimax> {
    if a.partial_cmp(&b) != Some(std::cmp::Ordering::Less) {
        return Err(ApproxError::Invalid(format!(
            "remez: empty interval [{a}, {b}]"
        )));
    }
    let n = degree + 2;
    let to_x = |t: f64| 0.5 * (b - a) * t + 0.5 * (a + b);
    let weight = |fx: f64| match opts.weight {
        ErrorWeight::Absolute => 1.0,
        ErrorWeight::Relative => fx.abs(),
    };
    let err = |p: &Chebyshev, t: f64| {
        let x = to_x(t);
        let fx = f(x);
        (fx - p.eval(x)) / weight(fx)
    };
    let m = if opts.grid == 0 {
        4096.max(64 * n)
    } else {
        opts.grid.max(4 * n)
    };
    let grid: Vec<f64> = (0..m)
        .map(|i| -(std::f64::consts::PI * i as f64 / (m - 1) as f64).cos())
        .collect();
    if opts.weight == ErrorWeight::Relative && grid.iter().any(|&t| f(to_x(t)) == 0.0) {
        return Err(ApproxError::Invalid(
            "remez: relative error of a function that vanishes".into(),
        ));
    }
    // The first n of the n + 1 extrema of T_n: not symmetric, so even (odd) functions with a
    // symmetric reference cannot make the system degenerate (E = 0).
    let mut reference: Vec<f64> = (0..n)
        .map(|i| -(std::f64::consts::PI * i as f64 / n as f64).cos())
        .collect();
    let mut best: Option<Minimax> = None;
    for iteration in 1..=opts.max_iterations {
        let (coeffs, e) = solve_reference(&|t| f(to_x(t)), &weight, &reference)?;
        let poly = Chebyshev { a, b, coeffs };
        let extrema = local_extrema(&grid, &|t| err(&poly, t));
        let max_error = extrema.iter().map(|e| e.1.abs()).fold(0.0, f64::max);
        let converged = max_error - e.abs() <= opts.tolerance * max_error;
        let candidate = Minimax {
            poly,
            levelled_error: e.abs(),
            max_error,
            reference: reference.iter().map(|&t| to_x(t)).collect(),
            iterations: iteration,
            converged,
        };
        if best
            .as_ref()
            .is_none_or(|b| max_error < b.max_error || converged)
        {
            best = Some(candidate);
        }
        let alternating = alternating_runs(&extrema);
        if converged || alternating.len() < n {
            break;
        }
        reference = window_with_max(&alternating, n);
    }
    best.ok_or_else(|| ApproxError::Invalid("remez: no iterations".into()))
}

/// Solves `sum_k c_k T_k(t_i) + (-1)^i E w(f(t_i)) = f(t_i)` for the coefficients and `E`.
fn solve_reference(
    f: &dyn Fn(f64) -> f64,
    weight: &dyn Fn(f64) -> f64,
    reference: &[f64],
) -> Result<(Vec<f64>, f64)> {
    let n = reference.len();
    let mut rows: Vec<Vec<f64>> = reference
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let fx = f(t);
            let mut row = chebyshev_basis(t, n - 1);
            let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
            row.push(sign * weight(fx));
            row.push(fx);
            row
        })
        .collect();
    let sol = gaussian_elimination(&mut rows)?;
    Ok((sol[..n - 1].to_vec(), sol[n - 1]))
}

/// `T_0(t) .. T_{count-1}(t)`.
fn chebyshev_basis(t: f64, count: usize) -> Vec<f64> {
    let mut v = Vec::with_capacity(count + 2);
    v.push(1.0);
    v.push(t);
    for k in 2..count {
        v.push(2.0 * t * v[k - 1] - v[k - 2]);
    }
    v.truncate(count);
    v
}

/// Solves the augmented system `rows` (each `[A_i | b_i]`) by Gaussian elimination with
/// partial pivoting.
fn gaussian_elimination(rows: &mut [Vec<f64>]) -> Result<Vec<f64>> {
    let n = rows.len();
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| rows[i][col].abs().total_cmp(&rows[j][col].abs()))
            .unwrap_or(col);
        if rows[pivot][col].abs() < 1e-300 {
            return Err(ApproxError::Invalid("remez: singular reference".into()));
        }
        rows.swap(col, pivot);
        let (top, rest) = rows.split_at_mut(col + 1);
        let p = &top[col];
        for r in rest.iter_mut() {
            let k = r[col] / p[col];
            if k != 0.0 {
                for (x, &y) in r[col..].iter_mut().zip(&p[col..]) {
                    *x -= k * y;
                }
            }
        }
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|j| rows[i][j] * x[j]).sum();
        x[i] = (rows[i][n] - s) / rows[i][i];
    }
    Ok(x)
}

/// Local extrema of `e` over the grid (ends included), each refined by golden-section search
/// between its grid neighbours: `(t, e(t))` in increasing `t`.
fn local_extrema(grid: &[f64], e: &dyn Fn(f64) -> f64) -> Vec<(f64, f64)> {
    let vals: Vec<f64> = grid.iter().map(|&t| e(t)).collect();
    let m = grid.len();
    let mut out = Vec::new();
    for i in 0..m {
        let v = vals[i].abs();
        let left = if i > 0 { vals[i - 1].abs() } else { -1.0 };
        let right = if i + 1 < m { vals[i + 1].abs() } else { -1.0 };
        if v >= left && v >= right && (v > left || v > right) {
            if i == 0 || i + 1 == m {
                out.push((grid[i], vals[i]));
            } else {
                out.push(golden_max(e, grid[i - 1], grid[i + 1]));
            }
        }
    }
    out
}

/// Maximizes `|e|` on `[lo, hi]` by golden-section search.
fn golden_max(e: &dyn Fn(f64) -> f64, mut lo: f64, mut hi: f64) -> (f64, f64) {
    const R: f64 = 0.618_033_988_749_894_8;
    let mut x1 = hi - R * (hi - lo);
    let mut x2 = lo + R * (hi - lo);
    let (mut f1, mut f2) = (e(x1).abs(), e(x2).abs());
    for _ in 0..40 {
        if f1 > f2 {
            hi = x2;
            (x2, f2) = (x1, f1);
            x1 = hi - R * (hi - lo);
            f1 = e(x1).abs();
        } else {
            lo = x1;
            (x1, f1) = (x2, f2);
            x2 = lo + R * (hi - lo);
            f2 = e(x2).abs();
        }
    }
    let t = 0.5 * (lo + hi);
    (t, e(t))
}

/// Keeps the largest `|e|` of every run of extrema of equal sign: the result alternates.
fn alternating_runs(extrema: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(extrema.len());
    for &(t, v) in extrema {
        match out.last_mut() {
            Some(last) if (last.1 >= 0.0) == (v >= 0.0) => {
                if v.abs() > last.1.abs() {
                    *last = (t, v);
                }
            }
            _ => out.push((t, v)),
        }
    }
    out
}

/// The `n` consecutive points of `alt` (at least `n`) that contain the largest `|e|`.
fn window_with_max(alt: &[(f64, f64)], n: usize) -> Vec<f64> {
    let imax = (0..alt.len())
        .max_by(|&i, &j| alt[i].1.abs().total_cmp(&alt[j].1.abs()))
        .unwrap_or(0);
    let start = imax.saturating_sub(n - 1).min(alt.len() - n);
    alt[start..start + n].iter().map(|p| p.0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_minimax_of_exp_is_classical() {
        // The best line for e^x on [0, 1] has slope e - 1 and equioscillates at 0,
        // ln(e - 1) and 1, with error 1 - (e - (e - 1) ln(e - 1)) / 2.
        let m = remez(f64::exp, 0.0, 1.0, 1, &RemezOptions::default()).unwrap();
        let e = std::f64::consts::E;
        let slope = e - 1.0;
        let err = 1.0 - 0.5 * (e - slope * slope.ln());
        assert!(m.converged);
        assert!(
            (m.levelled_error - err).abs() < 1e-9,
            "{} vs {err}",
            m.levelled_error
        );
        assert!((m.poly.eval(1.0) - m.poly.eval(0.0) - slope).abs() < 1e-9);
        assert!((m.reference[1] - slope.ln()).abs() < 1e-6);
    }

    #[test]
    fn solves_small_systems() {
        let mut rows = vec![vec![2.0, 1.0, 5.0], vec![1.0, 3.0, 10.0]];
        let x = gaussian_elimination(&mut rows).unwrap();
        assert!((x[0] - 1.0).abs() < 1e-12 && (x[1] - 3.0).abs() < 1e-12);
    }
}
