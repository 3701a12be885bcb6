//! Error reports of an approximation, measured on a dense grid.

use serde::{Deserialize, Serialize};

/// Default number of grid points of an [`ErrorReport`].
pub const DEFAULT_GRID: usize = 20_001;

/// How far an approximation is from its function, measured on `grid` evenly spaced points of
/// `interval` (minus the open `excluded` gap, if any).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ErrorReport {
    /// Largest absolute error `max |f(x) - p(x)|`.
    pub max_abs: f64,
    /// Root mean square of the absolute error.
    pub rms: f64,
    /// Largest relative error `max |f(x) - p(x)| / |f(x)|` (over points with `f(x) != 0`).
    pub max_rel: f64,
    /// The interval `[a, b]` measured on.
    pub interval: (f64, f64),
    /// An open sub-interval left out of the measurement (e.g. the gap `(-eps, eps)` around a
    /// discontinuity of `sign`).
    pub excluded: Option<(f64, f64)>,
    /// Degree of the approximation (for a composite: the degree of the composed polynomial).
    pub degree: usize,
    /// Number of grid points (before the excluded gap is removed).
    pub grid: usize,
}

impl ErrorReport {
    /// Measures `p` against `f` on `grid` evenly spaced points of `[a, b]` (both ends included).
    pub fn measure(
        f: impl Fn(f64) -> f64,
        p: impl Fn(f64) -> f64,
        (a, b): (f64, f64),
        degree: usize,
        grid: usize,
    ) -> Self {
        Self::measure_excluding(f, p, (a, b), None, degree, grid)
    }

    /// Like [`Self::measure`], skipping the grid points strictly inside `excluded`.
    pub fn measure_excluding(
        f: impl Fn(f64) -> f64,
        p: impl Fn(f64) -> f64,
        (a, b): (f64, f64),
        excluded: Option<(f64, f64)>,
        degree: usize,
        grid: usize,
    ) -> Self {
        let grid = grid.max(2);
        let (mut max_abs, mut max_rel, mut sum_sq, mut count) = (0.0f64, 0.0f64, 0.0, 0usize);
        for i in 0..grid {
            let x = a + (b - a) * i as f64 / (grid - 1) as f64;
            if excluded.is_some_and(|(lo, hi)| x > lo && x < hi) {
                continue;
            }
            let (fx, px) = (f(x), p(x));
            let e = (fx - px).abs();
            max_abs = max_abs.max(e);
            if fx != 0.0 {
                max_rel = max_rel.max(e / fx.abs());
            }
            sum_sq += e * e;
            count += 1;
        }
        Self {
            max_abs,
            rms: (sum_sq / count.max(1) as f64).sqrt(),
            max_rel,
            interval: (a, b),
            excluded,
            degree,
            grid,
        }
    }

    /// `-log2(max_abs)`: bits of absolute precision of the worst point.
    pub fn bits(&self) -> f64 {
        -self.max_abs.log2()
    }
}

impl std::fmt::Display for ErrorReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[{}, {}]{} degree {}: max |err| {:.3e} ({:.1} bits), rms {:.3e}, max rel {:.3e}",
            self.interval.0,
            self.interval.1,
            match self.excluded {
                Some((lo, hi)) => format!(" \\ ({lo}, {hi})"),
                None => String::new(),
            },
            self.degree,
            self.max_abs,
            self.bits(),
            self.rms,
            self.max_rel
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_known_errors() {
        // p = f + 0.5 on [0, 1] except p = f on the right half.
        let r = ErrorReport::measure(
            |x| x,
            |x| if x < 0.5 { x + 0.5 } else { x },
            (0.0, 1.0),
            3,
            101,
        );
        assert_eq!(r.max_abs, 0.5);
        assert!((r.rms - 0.5 * (50.0f64 / 101.0).sqrt()).abs() < 1e-12);
        assert_eq!(r.grid, 101);
        let gap = ErrorReport::measure_excluding(
            |x: f64| x.signum(),
            |x| x,
            (-1.0, 1.0),
            Some((-0.5, 0.5)),
            1,
            201,
        );
        assert!((gap.max_abs - 0.5).abs() < 1e-12);
    }
}
