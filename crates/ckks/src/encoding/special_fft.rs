//! The CKKS "special FFT": the canonical embedding of `R[X]/(X^N+1)` on `n` slots in
//! `O(n log n)`.
//!
//! With `gap = N/(2n)` and `Y = X^gap`, a message is a real polynomial `m(Y)` of degree `< 2n`
//! (so `m(X)` has coefficients only at multiples of `gap`). Slot `j` is `m` evaluated at
//! `zeta_j = exp(i*pi*5^j/N)`, i.e. at `Y = exp(2*pi*i*5^j/(4n))`. Because `Y^n = i` at every
//! slot point, `m(zeta_j) = sum_{k<n} w_k zeta_j^(k*gap)` with the folded complex coefficients
//! `w_k = c_(k*gap) + i*c_(N/2 + k*gap)`, and the map `w -> slots` is a length-`n` transform that
//! splits like a radix-2 FFT: the points of a block of length `L` are `exp(2*pi*i*5^j/(4L))`,
//! their squares are the points of the half-length block, and `5^(L/2) = 2L+1 (mod 4L)` makes
//! the second half of the points the negatives of the first.
//!
//! Conventions (the evaluator relies on them): `X -> X^(5^k mod 2N)` rotates the slots left by
//! `k` (slot `j` receives old slot `j+k mod n`) and `X -> X^(2N-1)` conjugates every slot.

use std::f64::consts::TAU;
use std::sync::Mutex;

use num_complex::Complex64;

use super::{EncodingError, MAX_LOG_N, MIN_LOG_N};

/// Tables for the canonical embedding of `Z[X]/(X^N+1)` restricted to `slots` slots
/// (a power of two, `1 <= slots <= N/2`).
#[derive(Debug)]
pub struct SpecialFft {
    log_n: u32,
    log_slots: u32,
    /// Butterfly twiddles, stage by stage: the stage merging blocks of length `2h`
    /// (`h = 1, 2, ..., n/2`) reads entries `[h-1, 2h-1)`, which hold
    /// `exp(2*pi*i * (5^j mod 8h) / (8h))` for `j < h`.
    twiddles: Vec<Complex64>,
    /// Scratch for [`Self::real_slots_from_coeffs`], whose output is too small to work in.
    scratch: Mutex<Vec<Complex64>>,
}

impl Clone for SpecialFft {
    fn clone(&self) -> Self {
        Self {
            log_n: self.log_n,
            log_slots: self.log_slots,
            twiddles: self.twiddles.clone(),
            scratch: Mutex::new(vec![Complex64::default(); self.slots()]),
        }
    }
}

impl SpecialFft {
    /// Builds the tables for `N = 2^log_n` and `2^log_slots` slots.
    ///
    /// Fails unless `MIN_LOG_N <= log_n <= MAX_LOG_N` and `log_slots <= log_n - 1`.
    pub fn new(log_n: u32, log_slots: u32) -> Result<Self, EncodingError> {
        if !(MIN_LOG_N..=MAX_LOG_N).contains(&log_n) {
            return Err(EncodingError::InvalidLogN {
                log_n,
                min: MIN_LOG_N,
                max: MAX_LOG_N,
            });
        }
        if log_slots > log_n - 1 {
            return Err(EncodingError::InvalidLogSlots {
                log_slots,
                log_n,
                max: log_n - 1,
            });
        }
        let n = 1usize << log_slots;
        let mut twiddles = Vec::with_capacity(n - 1);
        let mut h = 1;
        while h < n {
            let m = 8 * h;
            let mut g = 1;
            for _ in 0..h {
                twiddles.push(Complex64::cis(TAU * (g as f64 / m as f64)));
                g = g * 5 % m;
            }
            h *= 2;
        }
        let scratch = Mutex::new(vec![Complex64::default(); n]);
        Ok(Self {
            log_n,
            log_slots,
            twiddles,
            scratch,
        })
    }

    /// Number of slots `n`.
    pub fn slots(&self) -> usize {
        1 << self.log_slots
    }

    /// `log2` of the number of slots.
    pub fn log_slots(&self) -> u32 {
        self.log_slots
    }

    /// Ring degree `N`.
    pub fn ring_degree(&self) -> usize {
        1 << self.log_n
    }

    /// `log2(N)`.
    pub fn log_n(&self) -> u32 {
        self.log_n
    }

    /// Distance `N/(2n)` between the coefficients a message may use.
    pub fn gap(&self) -> usize {
        1 << (self.log_n - 1 - self.log_slots)
    }

    /// Slot values (`len = slots`) to the `N` real coefficients of the unique `m(X)` supported on
    /// multiples of [`Self::gap`] with `m(zeta_j) = values[j]`.
    ///
    /// Unscaled: the caller multiplies by the scale and rounds. Allocates nothing.
    ///
    /// # Panics
    /// If `values.len() != slots` or `coeffs.len() != N`.
    pub fn coeffs_from_slots(&self, values: &[Complex64], coeffs: &mut [f64]) {
        self.check_lens(values.len(), coeffs.len());
        let n = self.slots();
        let (re, rest) = coeffs.split_at_mut(n);
        let im = &mut rest[..n];
        for ((r, i), v) in re.iter_mut().zip(im.iter_mut()).zip(values) {
            (*r, *i) = (v.re, v.im);
        }
        self.encode_folded(coeffs);
    }

    /// [`Self::coeffs_from_slots`] for real slot values (imaginary parts zero).
    ///
    /// # Panics
    /// If `values.len() != slots` or `coeffs.len() != N`.
    pub fn coeffs_from_real_slots(&self, values: &[f64], coeffs: &mut [f64]) {
        self.check_lens(values.len(), coeffs.len());
        let n = self.slots();
        coeffs[..n].copy_from_slice(values);
        coeffs[n..2 * n].fill(0.0);
        self.encode_folded(coeffs);
    }

    /// The inverse of [`Self::coeffs_from_slots`]: `values[j] = m(zeta_j)`, reading only the
    /// coefficients at multiples of [`Self::gap`]. Allocates nothing.
    ///
    /// # Panics
    /// If `values.len() != slots` or `coeffs.len() != N`.
    pub fn slots_from_coeffs(&self, coeffs: &[f64], values: &mut [Complex64]) {
        self.check_lens(values.len(), coeffs.len());
        let (gap, half) = (self.gap(), self.ring_degree() / 2);
        for (k, v) in values.iter_mut().enumerate() {
            *v = Complex64::new(coeffs[k * gap], coeffs[half + k * gap]);
        }
        self.fft(values);
    }

    /// [`Self::slots_from_coeffs`] keeping the real parts only.
    ///
    /// Works in a scratch buffer held by `self`; when another thread holds it, allocates one.
    ///
    /// # Panics
    /// If `values.len() != slots` or `coeffs.len() != N`.
    pub fn real_slots_from_coeffs(&self, coeffs: &[f64], values: &mut [f64]) {
        self.check_lens(values.len(), coeffs.len());
        let mut local = Vec::new();
        let mut guard = self.scratch.try_lock().ok();
        let scratch = match guard.as_deref_mut() {
            Some(buf) => buf,
            None => {
                local.resize(self.slots(), Complex64::default());
                &mut local
            }
        };
        self.slots_from_coeffs(coeffs, scratch);
        for (out, v) in values.iter_mut().zip(scratch.iter()) {
            *out = v.re;
        }
    }

    fn check_lens(&self, slots: usize, coeffs: usize) {
        assert_eq!(slots, self.slots(), "slot vector length");
        assert_eq!(coeffs, self.ring_degree(), "coefficient vector length");
    }

    /// Folded slot values in split form (`re` in `coeffs[..n]`, `im` in `coeffs[n..2n]`) to
    /// coefficients: inverse transform, then spread to multiples of the gap.
    fn encode_folded(&self, coeffs: &mut [f64]) {
        let n = self.slots();
        let (re, rest) = coeffs.split_at_mut(n);
        self.ifft_split(re, &mut rest[..n]);
        self.spread(coeffs);
    }

    /// Slot values `v_j = sum_k w_k exp(2*pi*i*k*5^j/(4n))` from `w`, in place.
    fn fft(&self, a: &mut [Complex64]) {
        bit_reverse(a);
        let mut h = 1;
        while h < a.len() {
            let tw = &self.twiddles[h - 1..2 * h - 1];
            for block in a.chunks_exact_mut(2 * h) {
                let (lo, hi) = block.split_at_mut(h);
                for ((u, v), w) in lo.iter_mut().zip(hi.iter_mut()).zip(tw) {
                    let t = *v * w;
                    *v = *u - t;
                    *u += t;
                }
            }
            h *= 2;
        }
    }

    /// The inverse of [`Self::fft`] on a split complex vector `re + i*im`, in place.
    fn ifft_split(&self, re: &mut [f64], im: &mut [f64]) {
        let n = re.len();
        let mut h = n / 2;
        while h >= 1 {
            let tw = &self.twiddles[h - 1..2 * h - 1];
            for (br, bi) in re.chunks_exact_mut(2 * h).zip(im.chunks_exact_mut(2 * h)) {
                let (ur, vr) = br.split_at_mut(h);
                let (ui, vi) = bi.split_at_mut(h);
                for (j, w) in tw.iter().enumerate() {
                    let (dr, di) = (ur[j] - vr[j], ui[j] - vi[j]);
                    ur[j] += vr[j];
                    ui[j] += vi[j];
                    // (dr + i*di) * conj(w): undoes the twiddle of the forward butterfly.
                    vr[j] = dr * w.re + di * w.im;
                    vi[j] = di * w.re - dr * w.im;
                }
            }
            h /= 2;
        }
        let inv_n = 1.0 / n as f64;
        re.iter_mut().chain(im.iter_mut()).for_each(|x| *x *= inv_n);
        bit_reverse(re);
        bit_reverse(im);
    }

    /// Moves `re` from `coeffs[k]` to `coeffs[k*gap]` and `im` from `coeffs[n+k]` to
    /// `coeffs[N/2 + k*gap]`, zeroing everything else. Destinations never overwrite a pending
    /// source: `im` moves first (all destinations `>= N/2 >= 2n`), then `re` in decreasing `k`.
    fn spread(&self, coeffs: &mut [f64]) {
        let (n, gap, half) = (self.slots(), self.gap(), self.ring_degree() / 2);
        if gap == 1 {
            return;
        }
        for k in (0..n).rev() {
            coeffs[half + k * gap] = coeffs[n + k];
        }
        for k in (1..n).rev() {
            coeffs[k * gap] = coeffs[k];
        }
        for chunk in coeffs.chunks_exact_mut(gap) {
            chunk[1..].fill(0.0);
        }
    }
}

/// Bit-reversal permutation of a power-of-two-length slice.
fn bit_reverse<T>(a: &mut [T]) {
    let n = a.len();
    if n <= 2 {
        return;
    }
    let shift = usize::BITS - n.trailing_zeros();
    for i in 0..n {
        let j = i.reverse_bits() >> shift;
        if i < j {
            a.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::f64::consts::PI;

    use super::*;

    /// splitmix64 in `[-1, 1)`: deterministic inputs without a dev-dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        }
        fn complex(&mut self, n: usize) -> Vec<Complex64> {
            (0..n)
                .map(|_| Complex64::new(self.next(), self.next()))
                .collect()
        }
    }

    /// `5^j mod 2N` for `j < slots`.
    fn slot_exponents(n_ring: usize, slots: usize) -> Vec<usize> {
        let mut e = Vec::with_capacity(slots);
        let mut g = 1;
        for _ in 0..slots {
            e.push(g);
            g = g * 5 % (2 * n_ring);
        }
        e
    }

    /// `m(zeta_j)` by direct evaluation, `O(N * slots)`, with exact exponent reduction.
    fn naive_slots(coeffs: &[f64], slots: usize) -> Vec<Complex64> {
        let n_ring = coeffs.len();
        slot_exponents(n_ring, slots)
            .into_iter()
            .map(|e| {
                let terms = coeffs.iter().enumerate();
                terms
                    .map(|(i, &c)| {
                        c * Complex64::cis(PI * ((i * e) % (2 * n_ring)) as f64 / n_ring as f64)
                    })
                    .sum()
            })
            .collect()
    }

    /// `m(X) -> m(X^g)` in `Z[X]/(X^N+1)`: `X^i -> (-1)^floor(i*g/N) X^(i*g mod N)`.
    fn automorphism(coeffs: &[f64], g: usize) -> Vec<f64> {
        let n_ring = coeffs.len();
        let mut out = vec![0.0; n_ring];
        for (i, &c) in coeffs.iter().enumerate() {
            let e = i * g % (2 * n_ring);
            if e < n_ring {
                out[e] += c
            } else {
                out[e - n_ring] -= c
            }
        }
        out
    }

    fn max_err(a: &[Complex64], b: &[Complex64]) -> f64 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).norm())
            .fold(0.0, f64::max)
    }

    /// Every `(log_n, log_slots)` with `N = 2..2^10`.
    fn all_sizes() -> impl Iterator<Item = (u32, u32)> {
        (1..=10).flat_map(|log_n| (0..log_n).map(move |log_slots| (log_n, log_slots)))
    }

    #[test]
    fn encode_matches_naive_evaluation_and_round_trips() {
        let mut rng = Rng(1);
        for (log_n, log_slots) in all_sizes() {
            let fft = SpecialFft::new(log_n, log_slots).unwrap();
            let (n_ring, slots, gap) = (fft.ring_degree(), fft.slots(), fft.gap());
            let values = rng.complex(slots);
            let mut coeffs = vec![f64::NAN; n_ring];
            fft.coeffs_from_slots(&values, &mut coeffs);
            for (i, c) in coeffs.iter().enumerate() {
                assert!(
                    i % gap == 0 || *c == 0.0,
                    "N=2^{log_n} n=2^{log_slots}: coeff {i}"
                );
            }
            let naive = naive_slots(&coeffs, slots);
            assert!(
                max_err(&naive, &values) < 1e-9,
                "naive N=2^{log_n} n=2^{log_slots}"
            );
            let mut back = vec![Complex64::default(); slots];
            fft.slots_from_coeffs(&coeffs, &mut back);
            assert!(
                max_err(&back, &values) < 1e-9,
                "round trip N=2^{log_n} n=2^{log_slots}"
            );
        }
    }

    #[test]
    fn decode_matches_naive_evaluation() {
        let mut rng = Rng(2);
        for (log_n, log_slots) in all_sizes() {
            let fft = SpecialFft::new(log_n, log_slots).unwrap();
            let gap = fft.gap();
            let coeffs: Vec<f64> = (0..fft.ring_degree())
                .map(|i| if i % gap == 0 { rng.next() } else { 0.0 })
                .collect();
            let mut values = vec![Complex64::default(); fft.slots()];
            fft.slots_from_coeffs(&coeffs, &mut values);
            let naive = naive_slots(&coeffs, fft.slots());
            assert!(
                max_err(&values, &naive) < 1e-9,
                "N=2^{log_n} n=2^{log_slots}"
            );
        }
    }

    #[test]
    fn galois_five_rotates_left_and_minus_one_conjugates() {
        let mut rng = Rng(3);
        for (log_n, log_slots) in all_sizes().filter(|&(log_n, _)| log_n >= 3) {
            let fft = SpecialFft::new(log_n, log_slots).unwrap();
            let (n_ring, slots) = (fft.ring_degree(), fft.slots());
            let values = rng.complex(slots);
            let mut coeffs = vec![0.0; n_ring];
            fft.coeffs_from_slots(&values, &mut coeffs);
            let mut got = vec![Complex64::default(); slots];
            for k in [1, 2, slots - 1, slots, slots + 1] {
                let g = (0..k).fold(1, |g, _| g * 5 % (2 * n_ring));
                fft.slots_from_coeffs(&automorphism(&coeffs, g), &mut got);
                let want: Vec<_> = (0..slots).map(|j| values[(j + k) % slots]).collect();
                assert!(
                    max_err(&got, &want) < 1e-9,
                    "N=2^{log_n} n=2^{log_slots} k={k}"
                );
            }
            fft.slots_from_coeffs(&automorphism(&coeffs, 2 * n_ring - 1), &mut got);
            let want: Vec<_> = values.iter().map(Complex64::conj).collect();
            assert!(
                max_err(&got, &want) < 1e-9,
                "conj N=2^{log_n} n=2^{log_slots}"
            );
        }
    }

    #[test]
    fn real_slots_round_trip() {
        let mut rng = Rng(4);
        for (log_n, log_slots) in all_sizes() {
            let fft = SpecialFft::new(log_n, log_slots).unwrap();
            let values: Vec<f64> = (0..fft.slots()).map(|_| rng.next()).collect();
            let mut coeffs = vec![0.0; fft.ring_degree()];
            fft.coeffs_from_real_slots(&values, &mut coeffs);
            let mut complex = vec![Complex64::default(); fft.slots()];
            fft.slots_from_coeffs(&coeffs, &mut complex);
            assert!(
                complex.iter().all(|v| v.im.abs() < 1e-9),
                "imag N=2^{log_n}"
            );
            let mut back = vec![0.0; fft.slots()];
            fft.real_slots_from_coeffs(&coeffs, &mut back);
            let err = values
                .iter()
                .zip(&back)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(err < 1e-9, "N=2^{log_n} n=2^{log_slots}: {err}");
        }
    }

    #[test]
    fn clone_gives_the_same_transform() {
        let fft = SpecialFft::new(6, 4).unwrap().clone();
        let values = Rng(5).complex(16);
        let mut coeffs = vec![0.0; 64];
        fft.coeffs_from_slots(&values, &mut coeffs);
        assert!(max_err(&naive_slots(&coeffs, 16), &values) < 1e-9);
    }

    #[test]
    fn rejects_bad_sizes() {
        use EncodingError::*;
        assert_eq!(
            SpecialFft::new(0, 0).unwrap_err(),
            InvalidLogN {
                log_n: 0,
                min: 1,
                max: 20
            }
        );
        assert!(matches!(
            SpecialFft::new(21, 3),
            Err(InvalidLogN { log_n: 21, .. })
        ));
        let err = SpecialFft::new(4, 4).unwrap_err();
        assert_eq!(
            err,
            InvalidLogSlots {
                log_slots: 4,
                log_n: 4,
                max: 3
            }
        );
        assert!(err.to_string().contains("log2(slots) = 4"));
        let fft = SpecialFft::new(4, 3).unwrap();
        assert_eq!((fft.slots(), fft.ring_degree(), fft.gap()), (8, 16, 1));
    }
}
