//! A dense row-major `f64` matrix and the products the model needs.

use crate::error::{PolyError, Result};

/// A dense row-major matrix of `f64`.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// `rows * cols` values, row after row.
    pub data: Vec<f64>,
}

impl Matrix {
    /// A matrix from row-major values.
    ///
    /// # Errors
    /// `data.len() != rows * cols`.
    pub fn new(rows: usize, cols: usize, data: Vec<f64>) -> Result<Self> {
        if data.len() != rows * cols {
            return Err(PolyError::Shape {
                expected: format!("{rows} x {cols} = {} values", rows * cols),
                got: format!("{} values", data.len()),
            });
        }
        Ok(Self { rows, cols, data })
    }

    /// The zero matrix.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Row `i`, mutable.
    pub fn row_mut(&mut self, i: usize) -> &mut [f64] {
        &mut self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// `self W^T (+ b)` for a weight `w` `(out, in)` as in PyTorch: `(rows, in) -> (rows, out)`.
    /// One `gemm` call (AVX-512/FMA kernels picked at run time, rayon threads), so that
    /// 30-layer models such as SmolLM2-135M run in reasonable time.
    pub(crate) fn linear(&self, w: &Matrix, b: Option<&[f64]>) -> Matrix {
        assert_eq!(self.cols, w.cols, "linear: input width");
        let (m, n, k) = (self.rows, w.rows, self.cols);
        let mut y = Matrix::zeros(m, n);
        if m > 0 && n > 0 && k > 0 {
            assert!(self.data.len() == m * k && w.data.len() == n * k && y.data.len() == m * n);
            let threads = rayon::current_num_threads();
            // SAFETY: dst (m, n) row-major, lhs = self (m, k) row-major, rhs = W^T (k, n)
            // read from W (n, k) row-major (row stride 1, column stride k); the asserts bound
            // every index gemm touches and the three buffers are distinct allocations.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    y.data.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    self.data.as_ptr(),
                    1,
                    k as isize,
                    w.data.as_ptr(),
                    k as isize,
                    1,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::Rayon(threads),
                );
            }
        }
        if let Some(b) = b {
            for r in 0..m {
                y.row_mut(r).iter_mut().zip(b).for_each(|(e, b)| *e += b);
            }
        }
        y
    }
}

/// Dot product with eight independent accumulators (vectorizes; fixed summation order).
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f64>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_matches_naive() {
        let x = Matrix::new(2, 3, vec![1.0, 2.0, 3.0, -1.0, 0.5, 2.0]).unwrap();
        let w = Matrix::new(2, 3, vec![1.0, 0.0, -1.0, 2.0, 1.0, 0.0]).unwrap();
        let y = x.linear(&w, Some(&[0.5, -0.5]));
        assert_eq!(y.data, vec![-1.5, 3.5, -2.5, -2.0]);
        assert!(Matrix::new(2, 2, vec![0.0; 3]).is_err());
        let a: Vec<f64> = (0..19).map(|i| i as f64).collect();
        assert_eq!(dot(&a, &a), (0..19).map(|i| (i * i) as f64).sum::<f64>());
    }
}
