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
pub struct Encoder {
    params: CkksParameters,
    ffts: Mutex<HashMap<u32, Arc<SpecialFft>>>,
}

impl Encoder {
    /// Encoder for `params`.
    pub fn new(params: &CkksParameters) -> Self {
        Self {
            params: params.clone(),
            ffts: Mutex::new(HashMap::new()),
        }
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
        let q = ring.q();
        let mut ints = Vec::with_capacity(coeffs.len());
        for &c in coeffs {
            ints.push(scaled_integer(c, scale)?);
        }
        let mut poly = RnsPoly::zero(ring.n(), level + 1, Repr::Coeff);
        let small = ints.iter().all(|x| x.unsigned_abs() < 1 << 62);
        let n = ring.n();
        poly.data_mut()
            .par_chunks_exact_mut(n)
            .enumerate()
            .for_each(|(i, limb)| {
                let m = q.modulus(i);
                for (d, &x) in limb.iter_mut().zip(&ints) {
                    *d = if small {
                        m.from_i64(x as i64)
                    } else {
                        m.from_i128(x)
                    };
                }
            });
        q.ntt(&mut poly);
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
