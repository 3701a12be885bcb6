//! Chebyshev series on an interval `[a, b]`: `p(x) = sum_k c_k T_k(t)`, `t = (2x - a - b)/(b - a)`.

use serde::{Deserialize, Serialize};

/// A polynomial in the Chebyshev basis of `[a, b]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chebyshev {
    /// Left end of the interval.
    pub a: f64,
    /// Right end of the interval.
    pub b: f64,
    /// Coefficients `c_0 .. c_d` of `T_0 .. T_d`.
    pub coeffs: Vec<f64>,
}

impl Chebyshev {
    /// Interpolates `f` at the `degree + 1` Chebyshev nodes of `[a, b]`.
    pub fn interpolate(f: impl Fn(f64) -> f64, a: f64, b: f64, degree: usize) -> Self {
        let m = degree + 1;
        let nodes: Vec<f64> = (0..m)
            .map(|j| (std::f64::consts::PI * (j as f64 + 0.5) / m as f64).cos())
            .collect();
        let values: Vec<f64> = nodes
            .iter()
            .map(|&t| f(0.5 * (b - a) * t + 0.5 * (a + b)))
            .collect();
        let coeffs = (0..m)
            .map(|k| {
                let s: f64 = (0..m)
                    .map(|j| {
                        values[j]
                            * (std::f64::consts::PI * k as f64 * (j as f64 + 0.5) / m as f64).cos()
                    })
                    .sum();
                if k == 0 {
                    s / m as f64
                } else {
                    2.0 * s / m as f64
                }
            })
            .collect();
        Self { a, b, coeffs }
    }

    /// The polynomial with monomial coefficients `coeffs` (`x^0, x^1, ...`, in the variable `x`
    /// of `[a, b]`), converted to the Chebyshev basis of `[a, b]` (exact interpolation).
    pub fn from_monomial(coeffs: &[f64], a: f64, b: f64) -> Self {
        let horner = |x: f64| coeffs.iter().rev().fold(0.0, |acc, &c| acc * x + c);
        let mut p = Self::interpolate(horner, a, b, coeffs.len().saturating_sub(1));
        // Interpolation of a polynomial of degree <= d at d + 1 nodes is exact up to rounding:
        // clear the rounding noise of coefficients that vanish by parity.
        let scale = p.coeffs.iter().fold(0.0f64, |m, c| m.max(c.abs()));
        for c in &mut p.coeffs {
            if c.abs() < 1e-15 * scale {
                *c = 0.0;
            }
        }
        p
    }

    /// Degree (number of coefficients minus one).
    pub fn degree(&self) -> usize {
        self.coeffs.len().saturating_sub(1)
    }

    /// Maps `x` in `[a, b]` to `t` in `[-1, 1]`.
    pub fn to_unit(&self, x: f64) -> f64 {
        (2.0 * x - self.a - self.b) / (self.b - self.a)
    }

    /// Evaluates by Clenshaw's recurrence.
    pub fn eval(&self, x: f64) -> f64 {
        let t = self.to_unit(x);
        let (mut b1, mut b2) = (0.0, 0.0);
        for &c in self.coeffs.iter().skip(1).rev() {
            let b0 = 2.0 * t * b1 - b2 + c;
            b2 = b1;
            b1 = b0;
        }
        t * b1 - b2 + self.coeffs.first().copied().unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_smooth_functions() {
        let p = Chebyshev::interpolate(f64::exp, -1.0, 2.0, 20);
        for i in 0..=100 {
            let x = -1.0 + 3.0 * i as f64 / 100.0;
            assert!((p.eval(x) - x.exp()).abs() < 1e-12);
        }
        let lin = Chebyshev::interpolate(|x| 3.0 * x - 1.0, 0.0, 4.0, 1);
        assert!((lin.eval(2.5) - 6.5).abs() < 1e-12);
        let cubic = Chebyshev::from_monomial(&[1.0, -2.0, 0.0, 0.5], -3.0, 2.0);
        assert_eq!(cubic.degree(), 3);
        assert!((cubic.eval(1.5) - (1.0 - 3.0 + 0.5 * 3.375)).abs() < 1e-12);
    }
}
