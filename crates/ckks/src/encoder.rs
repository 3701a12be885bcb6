//! The CKKS encoder: slot vectors <-> scaled, rounded plaintext polynomials in RNS form.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use num_complex::Complex64;
use psf_math::{Repr, RnsPoly};
use psf_rlwe::{MetaData, Plaintext, Scale};
use rayon::prelude::*;

use crate::encoding::SpecialFft;
use crate::{CkksError, CkksParameters, Result};

/// Largest magnitude of a scaled coefficient the encoder accepts.
const MAX_SCALED: f64 = 8.5e37; // 2^126

/// `round(value * scale)` as an integer, or an error if it overflows the encoder's range.
pub(crate) fn scaled_integer(value: f64, scale: Scale) -> Result<i128> {
    let x = (value * scale.0).round();
    if x.is_finite() && x.abs() < MAX_SCALED {
        Ok(x as i128)
    } else {
        Err(CkksError::ValueTooLarge {
            value,
            log_scale: scale.log2(),
        })
    }
}

/// Encodes and decodes slot vectors for one parameter set (any power-of-two slot count).
/// A sparse packing (`2^log_slots` slots below the maximum, i.e. a polynomial in `X^gap`)
/// is transformed at degree `N / gap` and spread ([`psf_math::NttPlan::forward_strided`]).
pub struct Encoder {
    params: CkksParameters,
    ffts: Mutex<HashMap<u32, Arc<SpecialFft>>>,
    strided: Mutex<HashMap<usize, Arc<Vec<psf_math::NttPlan>>>>,
}

/// Sparse packings transform at degree `N / gap` when it is at least this (the smallest
/// supported NTT degree).
const MIN_STRIDED_DEGREE: usize = 1 << psf_math::MIN_LOG_N;

impl Encoder {
    /// Encoder for `params`.
    pub fn new(params: &CkksParameters) -> Self {
        Self {
            params: params.clone(),
            ffts: Mutex::new(HashMap::new()),
            strided: Mutex::new(HashMap::new()),
        }
    }

    /// The plans of the transform of polynomials in `X^gap`, one per prime of `Q`.
    fn strided_plans(&self, gap: usize) -> Result<Arc<Vec<psf_math::NttPlan>>> {
        let mut cache = self.strided.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = cache.get(&gap) {
            return Ok(p.clone());
        }
        let q = self.params.ring().q();
        let plans = (0..q.len())
            .map(|i| q.plan(i).strided_plan(gap))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(psf_rlwe::RlweError::from)?;
        let plans = Arc::new(plans);
        cache.insert(gap, plans.clone());
        Ok(plans)
    }

    /// The parameters.
    pub fn params(&self) -> &CkksParameters {
        &self.params
    }

    fn fft(&self, log_slots: u32) -> Result<Arc<SpecialFft>> {
        let mut cache = self.ffts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = cache.get(&log_slots) {
            return Ok(f.clone());
        }
        let f = Arc::new(SpecialFft::new(self.params.ring().log_n(), log_slots)?);
        cache.insert(log_slots, f.clone());
        Ok(f)
    }

    /// Encodes complex `values` (padded with zeros to `2^log_slots`) at `level` and `scale`.
    pub fn encode_complex(
        &self,
        values: &[Complex64],
        log_slots: u32,
        level: usize,
        scale: Scale,
    ) -> Result<Plaintext> {
        let fft = self.fft(log_slots)?;
        if values.len() > fft.slots() {
            return Err(CkksError::TooManyValues {
                values: values.len(),
                slots: fft.slots(),
            });
        }
        let mut padded = values.to_vec();
        padded.resize(fft.slots(), Complex64::new(0.0, 0.0));
        let mut coeffs = vec![0.0; fft.ring_degree()];
        fft.coeffs_from_slots(&padded, &mut coeffs);
        self.encode_coeffs(&coeffs, log_slots, level, scale)
    }

    /// Encodes real `values` (padded with zeros) at `level` and `scale`.
    pub fn encode(
        &self,
        values: &[f64],
        log_slots: u32,
        level: usize,
        scale: Scale,
    ) -> Result<Plaintext> {
        let fft = self.fft(log_slots)?;
        if values.len() > fft.slots() {
            return Err(CkksError::TooManyValues {
                values: values.len(),
                slots: fft.slots(),
            });
        }
        let mut padded = values.to_vec();
        padded.resize(fft.slots(), 0.0);
        let mut coeffs = vec![0.0; fft.ring_degree()];
        fft.coeffs_from_real_slots(&padded, &mut coeffs);
        self.encode_coeffs(&coeffs, log_slots, level, scale)
    }

    /// Scales, rounds and reduces real coefficients into a plaintext (evaluation form).
    pub fn encode_coeffs(
        &self,
        coeffs: &[f64],
        log_slots: u32,
        level: usize,
        scale: Scale,
    ) -> Result<Plaintext> {
        let ring = self.params.ring();
        ring.check_level(level)?;
        let (q, n) = (ring.q(), ring.n());
        // A sparse packing is a polynomial in X^gap: only every gap-th coefficient is scaled
        // and transformed (at degree n / gap).
        let gap = n >> (log_slots + 1).min(ring.log_n());
        let sparse = gap > 1
            && n / gap >= MIN_STRIDED_DEGREE
            && (coeffs.iter().enumerate()).all(|(i, &c)| c == 0.0 || i % gap == 0);
        let step = if sparse { gap } else { 1 };
        let ints = (coeffs.iter().step_by(step))
            .map(|&c| scaled_integer(c, scale))
            .collect::<Result<Vec<i128>>>()?;
        let small = ints.iter().all(|x| x.unsigned_abs() < 1 << 62);
        let reduce = |m: &psf_math::Modulus, x: i128| {
            if small {
                m.from_i64(x as i64)
            } else {
                m.from_i128(x)
            }
        };
        // Sparse: each limb's gap-strided coefficients transformed at degree n / gap and
        // spread; dense: every coefficient reduced, then one NTT of the whole polynomial.
        let plans = sparse.then(|| self.strided_plans(gap)).transpose()?;
        let repr = if sparse { Repr::Eval } else { Repr::Coeff };
        let mut poly = RnsPoly::zero(n, level + 1, repr);
        poly.data_mut()
            .par_chunks_exact_mut(n)
            .enumerate()
            .for_each(|(i, limb)| {
                let m = q.modulus(i);
                let reduced = ints.iter().map(|&x| reduce(m, x));
                match &plans {
                    Some(plans) => {
                        let mut a: Vec<u64> = reduced.collect();
                        q.plan(i).forward_strided(&plans[i], &mut a, limb);
                    }
                    None => limb.iter_mut().zip(reduced).for_each(|(d, v)| *d = v),
                }
            });
        if !sparse {
            q.ntt(&mut poly);
        }
        Ok(Plaintext::new(ring, poly, MetaData { scale, log_slots })?)
    }

    /// The plaintext's real coefficients divided by its scale.
    pub fn decode_coeffs(&self, pt: &Plaintext) -> Vec<f64> {
        let ring = self.params.ring();
        let mut poly = pt.poly.clone();
        ring.q().prefix(poly.limbs()).intt(&mut poly);
        let inv = 1.0 / pt.meta.scale.0;
        let m = ring.q().modulus(0);
        if poly.limbs() == 1 {
            poly.limb(0)
                .iter()
                .map(|&x| m.center(x) as f64 * inv)
                .collect()
        } else {
            ring.crt()
                .centered_f64_all(&poly)
                .into_iter()
                .map(|x| x * inv)
                .collect()
        }
    }

    /// Decodes complex slot values.
    pub fn decode_complex(&self, pt: &Plaintext) -> Result<Vec<Complex64>> {
        let fft = self.fft(pt.meta.log_slots)?;
        let coeffs = self.decode_coeffs(pt);
        let mut values = vec![Complex64::new(0.0, 0.0); fft.slots()];
        fft.slots_from_coeffs(&coeffs, &mut values);
        Ok(values)
    }

    /// Decodes real slot values (imaginary parts dropped).
    pub fn decode(&self, pt: &Plaintext) -> Result<Vec<f64>> {
        let fft = self.fft(pt.meta.log_slots)?;
        let coeffs = self.decode_coeffs(pt);
        let mut values = vec![0.0; fft.slots()];
        fft.real_slots_from_coeffs(&coeffs, &mut values);
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sets;

    /// A sparse packing takes the strided transform: its plaintext is bit for bit the one the
    /// full transform gives for the same coefficients, and it decodes to its values.
    #[test]
    fn sparse_packings_encode_like_the_full_transform() {
        let params = sets::insecure_n12().try_build().unwrap();
        let enc = Encoder::new(&params);
        let (n, scale, level) = (params.ring().n(), params.default_scale(), 2);
        for log_slots in [3u32, 5, 9] {
            let slots = 1usize << log_slots;
            let x: Vec<f64> = (0..slots)
                .map(|i| ((i * 37) % 11) as f64 / 7.0 - 0.7)
                .collect();
            let pt = enc.encode(&x, log_slots, level, scale).unwrap();
            let mut coeffs = vec![0.0; n];
            let mut padded = x.clone();
            padded.resize(slots, 0.0);
            enc.fft(log_slots)
                .unwrap()
                .coeffs_from_real_slots(&padded, &mut coeffs);
            let q = params.ring().q();
            let mut dense = RnsPoly::zero(n, level + 1, Repr::Coeff);
            for (i, limb) in dense.data_mut().chunks_exact_mut(n).enumerate() {
                for (d, &c) in limb.iter_mut().zip(&coeffs) {
                    *d = q.modulus(i).from_i128(scaled_integer(c, scale).unwrap());
                }
            }
            q.ntt(&mut dense);
            let gap = n / (2 * slots);
            assert_eq!(pt.poly.repr(), Repr::Eval);
            // 2^3 slots give a degree-16 polynomial in X^gap: the smallest strided transform.
            assert!(n / gap >= MIN_STRIDED_DEGREE, "{log_slots}");
            assert_eq!(pt.poly.data(), dense.data(), "log_slots {log_slots}");
            let taken = enc.strided.lock().unwrap().contains_key(&gap);
            assert!(
                taken,
                "log_slots {log_slots}: the strided path was not taken"
            );
            let back = enc.decode(&pt).unwrap();
            for (a, b) in x.iter().zip(&back) {
                assert!((a - b).abs() < 1e-9, "{a} vs {b}");
            }
        }
    }
}
