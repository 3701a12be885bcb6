//! AVX-512 IFMA kernel for the multiply-accumulate of base conversion, selected at run time
//! (`is_x86_feature_detected!`), so one binary runs on any x86-64 and is fast where IFMA exists.
//!
//! For operands below 2^52, `vpmadd52luq` / `vpmadd52huq` add the low and high 52-bit halves
//! of each 104-bit product into two 64-bit accumulators; with at most 2^11 terms neither
//! overflows, and the exact sum is `lo + hi * 2^52`.

/// Largest operand (exclusive) the kernel accepts.
pub(crate) const IFMA_LIMIT: u64 = 1 << 52;
/// Most terms per sum (keeps `lo < 2^63`).
pub(crate) const IFMA_MAX_TERMS: usize = 1 << 11;

/// Whether the CPU has AVX-512F and AVX-512 IFMA.
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| {
            is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512ifma")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// For `k` in `start..start + lo.len()` (a multiple of 8 long):
/// `lo[k] + hi[k] * 2^52 = sum_i y[i * n + k] * coeffs[i]`.
/// Requires [`available`], every `y < 2^52`, every coefficient `< 2^52`, and at most
/// [`IFMA_MAX_TERMS`] coefficients.
pub(crate) fn mac_rows(
    y: &[u64],
    n: usize,
    start: usize,
    coeffs: &[u64],
    lo: &mut [u64],
    hi: &mut [u64],
) {
    assert!(
        available()
            && coeffs.len() <= IFMA_MAX_TERMS
            && lo.len().is_multiple_of(8)
            && lo.len() == hi.len()
    );
    assert!(y.len() >= coeffs.len() * n && start + lo.len() <= n);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU features were checked above; all loads/stores are in bounds (asserted).
    unsafe {
        mac_rows_avx512(y, n, start, coeffs, lo, hi)
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512ifma")]
fn mac_rows_avx512(
    y: &[u64],
    n: usize,
    start: usize,
    coeffs: &[u64],
    lo: &mut [u64],
    hi: &mut [u64],
) {
    use std::arch::x86_64::*;
    let cs: Vec<__m512i> = coeffs
        .iter()
        .map(|&c| _mm512_set1_epi64(c as i64))
        .collect();
    for off in (0..lo.len()).step_by(8) {
        let (mut acc_lo, mut acc_hi) = (_mm512_setzero_si512(), _mm512_setzero_si512());
        for (i, &c) in cs.iter().enumerate() {
            let row = &y[i * n + start + off..i * n + start + off + 8];
            // SAFETY: `row` has 8 elements; unaligned load.
            let yv = unsafe { _mm512_loadu_si512(row.as_ptr().cast()) };
            acc_lo = _mm512_madd52lo_epu64(acc_lo, yv, c);
            acc_hi = _mm512_madd52hi_epu64(acc_hi, yv, c);
        }
        // SAFETY: 8 elements at `off` exist in both outputs.
        unsafe {
            _mm512_storeu_si512(lo[off..off + 8].as_mut_ptr().cast(), acc_lo);
            _mm512_storeu_si512(hi[off..off + 8].as_mut_ptr().cast(), acc_hi);
        }
    }
}
