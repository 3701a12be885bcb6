//! Precision statistics of approximate results, in bits (Lattigo's `PrecisionStats`).
//!
//! Tests of encrypted kernels compare the decrypted output (`have`) with a cleartext `f64` twin
//! (`want`) and assert a minimum number of bits.

use std::fmt;

use num_complex::Complex64;

/// Precision reported for an exact result (`f64` has a 53-bit significand).
pub const MAX_PRECISION_BITS: f64 = 53.0;

/// Error statistics over a vector of slots; `bits = -log2(|want - have|)`, capped at
/// [`MAX_PRECISION_BITS`]. A NaN or infinite error counts as 0 bits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrecisionStats {
    /// Number of slots compared.
    pub count: usize,
    /// Bits of the worst slot.
    pub min_bits: f64,
    /// Bits of the mean absolute error.
    pub mean_bits: f64,
    /// Bits of the median absolute error.
    pub median_bits: f64,
    /// Largest absolute error.
    pub max_abs_err: f64,
    /// Mean absolute error.
    pub mean_abs_err: f64,
}

impl PrecisionStats {
    /// Statistics of complex slots; the error of a slot is the modulus of the difference.
    ///
    /// # Panics
    /// If the lengths differ.
    pub fn from_complex(want: &[Complex64], have: &[Complex64]) -> Self {
        assert_eq!(want.len(), have.len(), "want/have lengths");
        Self::from_errors(want.iter().zip(have).map(|(w, h)| (w - h).norm()).collect())
    }

    /// Statistics of real slots.
    ///
    /// # Panics
    /// If the lengths differ.
    pub fn from_real(want: &[f64], have: &[f64]) -> Self {
        assert_eq!(want.len(), have.len(), "want/have lengths");
        Self::from_errors(want.iter().zip(have).map(|(w, h)| (w - h).abs()).collect())
    }

    /// Statistics of absolute errors; an empty vector gives full precision with `count = 0`.
    fn from_errors(mut errs: Vec<f64>) -> Self {
        for e in &mut errs {
            if !e.is_finite() {
                *e = f64::INFINITY;
            }
        }
        errs.sort_by(f64::total_cmp);
        let count = errs.len();
        let max_abs_err = errs.last().copied().unwrap_or(0.0);
        let mean_abs_err = if count == 0 {
            0.0
        } else {
            errs.iter().sum::<f64>() / count as f64
        };
        let median = match count {
            0 => 0.0,
            _ if count % 2 == 1 => errs[count / 2],
            _ => 0.5 * (errs[count / 2 - 1] + errs[count / 2]),
        };
        Self {
            count,
            min_bits: to_bits(max_abs_err),
            mean_bits: to_bits(mean_abs_err),
            median_bits: to_bits(median),
            max_abs_err,
            mean_abs_err,
        }
    }
}

/// `-log2(err)` clamped to `[0, MAX_PRECISION_BITS]`.
fn to_bits(err: f64) -> f64 {
    if err.is_nan() {
        return 0.0;
    }
    (-err.log2()).clamp(0.0, MAX_PRECISION_BITS)
}

impl fmt::Display for PrecisionStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "precision (bits) min {:.2} | mean {:.2} | median {:.2} | max |err| {:.3e} (n = {})",
            self.min_bits, self.mean_bits, self.median_bits, self.max_abs_err, self.count
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_stats() {
        let want = [1.0, 2.0, 3.0, 4.0];
        let have = [
            1.0 + 2f64.powi(-10),
            2.0 - 2f64.powi(-20),
            3.0,
            4.0 + 2f64.powi(-4),
        ];
        let s = PrecisionStats::from_real(&want, &have);
        assert_eq!(s.count, 4);
        assert_eq!(s.min_bits, 4.0);
        assert_eq!(s.max_abs_err, 2f64.powi(-4));
        // Median error is the mean of 2^-20 and 2^-10.
        assert!((s.median_bits - -(0.5 * (2f64.powi(-20) + 2f64.powi(-10))).log2()).abs() < 1e-12);
        assert!(s.mean_bits > s.min_bits && s.mean_bits < s.median_bits);
    }

    #[test]
    fn complex_stats_use_the_modulus() {
        let want = [Complex64::new(0.0, 0.0); 3];
        let have = [
            Complex64::new(0.375, 0.5),
            Complex64::new(0.0, 0.125),
            Complex64::new(0.0, 0.0),
        ];
        let s = PrecisionStats::from_complex(&want, &have);
        assert_eq!(s.max_abs_err, 0.625);
        assert_eq!(s.median_bits, 3.0);
        assert_eq!(s.mean_abs_err, 0.25);
        assert_eq!(s.mean_bits, 2.0);
    }

    #[test]
    fn exact_empty_and_nan() {
        let exact = PrecisionStats::from_real(&[1.0, 2.0], &[1.0, 2.0]);
        assert_eq!(
            (exact.min_bits, exact.mean_bits),
            (MAX_PRECISION_BITS, MAX_PRECISION_BITS)
        );
        let empty = PrecisionStats::from_real(&[], &[]);
        assert_eq!((empty.count, empty.min_bits), (0, MAX_PRECISION_BITS));
        let nan = PrecisionStats::from_real(&[1.0, 2.0, 3.0], &[f64::NAN, 2.0, 3.0]);
        assert_eq!(
            (nan.min_bits, nan.mean_bits, nan.median_bits),
            (0.0, 0.0, MAX_PRECISION_BITS)
        );
    }

    #[test]
    fn display_is_one_line() {
        let s = PrecisionStats::from_real(&[1.0, 1.0], &[1.0, 1.0 + 2f64.powi(-8)]);
        let line = s.to_string();
        assert!(!line.contains('\n'));
        assert!(
            line.contains("min 8.00") && line.contains("n = 2"),
            "{line}"
        );
    }
}
