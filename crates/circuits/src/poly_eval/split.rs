//! Chebyshev-basis division by `T_n`: `p = q T_n + r` with `deg r < n`, from
//! `T_{n+j} = 2 T_n T_j - T_{n-j}` (valid for `0 < j < n`, i.e. `deg p < 2n`).

/// Index of the last non-zero coefficient (0 for the zero polynomial).
pub(crate) fn degree(coeffs: &[f64]) -> usize {
    coeffs.iter().rposition(|&c| c != 0.0).unwrap_or(0)
}

/// Splits `p` (of degree `< 2n`, `>= n`) into `(q, r)` with `p = q T_n + r`.
pub(crate) fn split(coeffs: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let d = degree(coeffs);
    debug_assert!(d >= n && d < 2 * n, "degree {d}, n {n}");
    let mut r: Vec<f64> = coeffs[..n].to_vec();
    let mut q = vec![0.0; d - n + 1];
    q[0] = coeffs[n];
    for j in 1..=d - n {
        let c = coeffs[n + j];
        if c != 0.0 {
            q[j] = 2.0 * c;
            r[n - j] -= c;
        }
    }
    (q, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheb(c: &[f64], t: f64) -> f64 {
        let (mut t0, mut t1, mut s) = (1.0, t, c[0]);
        for &ck in &c[1..] {
            s += ck * t1;
            (t0, t1) = (t1, 2.0 * t * t1 - t0);
        }
        s
    }

    #[test]
    fn split_reconstructs() {
        let p: Vec<f64> = (0..14).map(|k| ((k * 7 + 3) % 11) as f64 - 5.0).collect();
        for n in [8usize] {
            let (q, r) = split(&p, n);
            assert_eq!((q.len(), r.len()), (6, 8));
            for i in 0..=20 {
                let t = -1.0 + i as f64 / 10.0;
                let tn = (n as f64 * t.acos()).cos();
                let want = cheb(&p, t);
                assert!((cheb(&q, t) * tn + cheb(&r, t) - want).abs() < 1e-9 * (1.0 + want.abs()));
            }
        }
        assert_eq!(degree(&[1.0, 0.0, 2.0, 0.0]), 2);
        assert_eq!(degree(&[0.0]), 0);
    }
}
