//! The simulation evaluator: circuits run on cleartext slot vectors with the real evaluator's
//! exact level and scale bookkeeping and primitive counts.
//!
//! [`SimBackend`] mirrors [`crate::HeBackend`] operation by operation: a rescale divides the
//! scale by the real prime `q_level` of the same parameters, products multiply scales, additions
//! of mismatched scales and rescales at level 0 fail with the same [`CkksError`]s, missing keys
//! fail where the real evaluator fails, and every primitive is recorded in the same
//! [`OpCounter`] slots (`mul_relin` = `Mul` + `Relinearize`, hoisted rotations = one
//! `Decompose` plus one `RotateHoisted` each, ...), at the same levels
//! ([`OpCounter::snapshot_levels`]). A circuit run on both backends yields identical counts
//! (in total and per level), levels and scales; the simulated values are the f64 twin of the decrypted result (constants
//! are rounded exactly as the encoder rounds them), optionally with modelled noise.

use std::collections::HashSet;
use std::sync::Mutex;

use psf_ckks::{CkksError, CkksParameters, OpCounter, OpCounts, Primitive, Scale};
use psf_math::Sampler;

use crate::{Backend, CircuitError, Result};

/// Largest scaled constant the encoder accepts (`2^126`, as `psf_ckks`'s encoder).
const MAX_SCALED: f64 = 8.5e37;

/// A simulated ciphertext: the message in clear with its level and exact scale.
#[derive(Debug, Clone, PartialEq)]
pub struct SimCiphertext {
    /// Slot values (the message a decryption would return, up to noise).
    pub values: Vec<f64>,
    /// Level (number of primes minus one).
    pub level: usize,
    /// Exact scale.
    pub scale: f64,
}

/// A simulated plaintext.
#[derive(Debug, Clone, PartialEq)]
pub struct SimPlaintext {
    /// Slot values.
    pub values: Vec<f64>,
    /// Level.
    pub level: usize,
    /// Exact scale.
    pub scale: f64,
}

/// Standard deviations of modelled noise, in units of the integer message (a slot receives
/// Gaussian noise of `std / scale`). See [`NoiseModel::estimate`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoiseModel {
    /// Fresh public-key encryption.
    pub fresh: f64,
    /// Plaintext encoding (coefficient rounding).
    pub encode: f64,
    /// Rescale rounding.
    pub rescale: f64,
    /// Key switching (relinearization, rotation).
    pub key_switch: f64,
}

impl NoiseModel {
    /// A heuristic estimate for `params` (uniform ternary secret of weight `h ~ 2N/3`): a
    /// coefficient error of variance `v` becomes a real-slot error of variance `N v / 2`.
    /// Rescale and key switching (dominated by ModDown rounding) round `e0 + e1 s`:
    /// `v = (1 + h) / 12`; encoding rounds once: `v = 1/12`; public-key encryption:
    /// `v = sigma^2 (1 + 2h)`.
    pub fn estimate(params: &CkksParameters) -> Self {
        let n = params.ring().n() as f64;
        let h = 2.0 * n / 3.0;
        let sigma = psf_math::DEFAULT_SIGMA;
        let slot = |v: f64| (n * v / 2.0).sqrt();
        Self {
            fresh: slot(sigma * sigma * (1.0 + 2.0 * h)),
            encode: slot(1.0 / 12.0),
            rescale: slot((1.0 + h) / 12.0),
            key_switch: slot((1.0 + h) / 12.0),
        }
    }
}

/// Which evaluation keys the simulated evaluator holds (all by default).
#[derive(Debug, Clone, Default)]
struct SimKeys {
    relin: bool,
    /// `None`: every Galois key.
    galois: Option<HashSet<usize>>,
}

/// The simulation evaluator (see the module documentation).
pub struct SimBackend {
    params: CkksParameters,
    slots: usize,
    counter: OpCounter,
    keys: SimKeys,
    noise: Option<(NoiseModel, Mutex<Sampler>)>,
}

fn check_scales(a: f64, b: f64) -> Result<()> {
    if Scale(a).matches(Scale(b)) {
        Ok(())
    } else {
        Err(CkksError::ScaleMismatch {
            left: Scale(a).log2(),
            right: Scale(b).log2(),
        }
        .into())
    }
}

/// `round(value * scale) / scale`, the constant the encoder really uses, or its error.
fn rounded_const(value: f64, scale: f64) -> Result<f64> {
    let x = (value * scale).round();
    if x.is_finite() && x.abs() < MAX_SCALED {
        Ok(x / scale)
    } else {
        Err(CkksError::ValueTooLarge {
            value,
            log_scale: Scale(scale).log2(),
        }
        .into())
    }
}

impl SimBackend {
    /// A simulator for `params` with `N/2` slots, all keys, and no noise.
    pub fn new(params: &CkksParameters) -> Self {
        Self::with_slots(params, params.max_slots())
    }

    /// A simulator with `slots` slots (rotations are cyclic over `slots`, as with sparse
    /// packing); levels, scales and counts are those of the full parameters.
    ///
    /// # Panics
    /// If `slots` is zero or larger than `N/2`.
    pub fn with_slots(params: &CkksParameters, slots: usize) -> Self {
        assert!(slots > 0 && slots <= params.max_slots(), "slots {slots}");
        Self {
            params: params.clone(),
            slots,
            counter: OpCounter::default(),
            keys: SimKeys {
                relin: true,
                galois: None,
            },
            noise: None,
        }
    }

    /// Restricts the keys: whether a relinearization key exists and which Galois elements
    /// have keys; operations needing others fail with [`CkksError::MissingKey`].
    pub fn with_keys(mut self, relin: bool, galois: impl IntoIterator<Item = usize>) -> Self {
        self.keys = SimKeys {
            relin,
            galois: Some(galois.into_iter().collect()),
        };
        self
    }

    /// Adds Gaussian noise after encryption, encoding, rescaling and key switching.
    pub fn with_noise(mut self, model: NoiseModel, seed: u64) -> Self {
        self.noise = Some((model, Mutex::new(Sampler::seeded(seed))));
        self
    }

    /// The parameters.
    pub fn params(&self) -> &CkksParameters {
        &self.params
    }

    /// The counter (e.g. to reset it between measurements).
    pub fn counter(&self) -> &OpCounter {
        &self.counter
    }

    /// "Encrypts" `values` (padded with zeros) at `level` and `scale` (not counted, as the
    /// evaluator does not count encryption).
    pub fn encrypt(&self, values: &[f64], level: usize, scale: f64) -> Result<SimCiphertext> {
        let values = self.padded(values, level, scale)?;
        let mut ct = SimCiphertext {
            values,
            level,
            scale,
        };
        self.add_noise(&mut ct.values, scale, |m| m.fresh);
        Ok(ct)
    }

    /// The message of `ct` (what decryption and decoding return).
    pub fn decrypt(&self, ct: &SimCiphertext) -> Vec<f64> {
        ct.values.clone()
    }

    fn padded(&self, values: &[f64], level: usize, scale: f64) -> Result<Vec<f64>> {
        self.params.ring().check_level(level)?;
        if values.len() > self.slots {
            return Err(CkksError::TooManyValues {
                values: values.len(),
                slots: self.slots,
            }
            .into());
        }
        let max = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        rounded_const(max, scale)?;
        let mut v = values.to_vec();
        v.resize(self.slots, 0.0);
        Ok(v)
    }

    fn add_noise(&self, values: &mut [f64], scale: f64, std: impl Fn(&NoiseModel) -> f64) {
        let Some((model, rng)) = &self.noise else {
            return;
        };
        let sigma = std(model) / scale;
        let mut rng = rng.lock().unwrap_or_else(|e| e.into_inner());
        for v in values.iter_mut() {
            *v += sigma * standard_normal(&mut rng);
        }
    }

    fn zip(&self, a: &SimCiphertext, b: &[f64], f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
        a.values.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()
    }

    fn map(a: &SimCiphertext, f: impl Fn(f64) -> f64) -> SimCiphertext {
        SimCiphertext {
            values: a.values.iter().map(|&x| f(x)).collect(),
            level: a.level,
            scale: a.scale,
        }
    }

    fn galois_key(&self, k: i64) -> Result<()> {
        let g = psf_ckks::galois_element_for_rotation(k, self.params.ring().log_n());
        match &self.keys.galois {
            Some(set) if !set.contains(&g) => {
                Err(CkksError::MissingKey(format!("rotation by {k} (Galois element {g})")).into())
            }
            _ => Ok(()),
        }
    }

    fn rotated(&self, a: &SimCiphertext, k: i64) -> SimCiphertext {
        let n = self.slots as i64;
        let mut out = a.clone();
        for (j, v) in out.values.iter_mut().enumerate() {
            *v = a.values[(j as i64 + k).rem_euclid(n) as usize];
        }
        self.add_noise(&mut out.values, out.scale, |m| m.key_switch);
        out
    }
}

/// One standard normal sample (Box-Muller on 53-bit uniforms).
fn standard_normal(rng: &mut Sampler) -> f64 {
    let unit = |r: &mut Sampler| (r.uniform_below(1 << 53) as f64 + 0.5) / (1u64 << 53) as f64;
    let (u1, u2) = (unit(rng), unit(rng));
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

impl Backend for SimBackend {
    type Ct = SimCiphertext;
    type Pt = SimPlaintext;

    fn slots(&self) -> usize {
        self.slots
    }

    fn max_level(&self) -> usize {
        self.params.ring().max_level()
    }

    fn default_scale(&self) -> f64 {
        self.params.default_scale().0
    }

    fn prime(&self, level: usize) -> u64 {
        self.params.ring().q().modulus(level).value()
    }

    fn level(&self, ct: &SimCiphertext) -> usize {
        ct.level
    }

    fn scale(&self, ct: &SimCiphertext) -> f64 {
        ct.scale
    }

    /// Records [`Primitive::EncodeSparse`] for a vector the real backend encodes as a sparse
    /// packing (a power-of-two period), else [`Primitive::Encode`].
    fn encode(&self, values: &[f64], level: usize, scale: f64) -> Result<SimPlaintext> {
        let slots = self.slots();
        let kind = match crate::backend::encoding_log_period(values, slots) < slots.trailing_zeros()
        {
            true => Primitive::EncodeSparse,
            false => Primitive::Encode,
        };
        self.counter.record_at(kind, level);
        let mut values = self.padded(values, level, scale)?;
        self.add_noise(&mut values, scale, |m| m.encode);
        Ok(SimPlaintext {
            values,
            level,
            scale,
        })
    }

    fn add(&self, a: &SimCiphertext, b: &SimCiphertext) -> Result<SimCiphertext> {
        self.counter.record_at(Primitive::Add, a.level.min(b.level));
        check_scales(a.scale, b.scale)?;
        Ok(SimCiphertext {
            values: self.zip(a, &b.values, |x, y| x + y),
            level: a.level.min(b.level),
            scale: a.scale,
        })
    }

    fn sub(&self, a: &SimCiphertext, b: &SimCiphertext) -> Result<SimCiphertext> {
        self.counter.record_at(Primitive::Add, a.level.min(b.level));
        check_scales(a.scale, b.scale)?;
        Ok(SimCiphertext {
            values: self.zip(a, &b.values, |x, y| x - y),
            level: a.level.min(b.level),
            scale: a.scale,
        })
    }

    fn neg(&self, a: &SimCiphertext) -> Result<SimCiphertext> {
        self.counter.record_at(Primitive::Add, a.level);
        Ok(Self::map(a, |x| -x))
    }

    fn add_const(&self, a: &SimCiphertext, c: f64) -> Result<SimCiphertext> {
        self.counter.record_at(Primitive::Add, a.level);
        let c = rounded_const(c, a.scale)?;
        Ok(Self::map(a, |x| x + c))
    }

    fn add_plain(&self, a: &SimCiphertext, pt: &SimPlaintext) -> Result<SimCiphertext> {
        self.counter
            .record_at(Primitive::Add, a.level.min(pt.level));
        check_scales(a.scale, pt.scale)?;
        Ok(SimCiphertext {
            values: self.zip(a, &pt.values, |x, y| x + y),
            level: a.level.min(pt.level),
            scale: a.scale,
        })
    }

    fn mul_int(&self, a: &SimCiphertext, k: i64) -> Result<SimCiphertext> {
        self.counter.record_at(Primitive::ConstMul, a.level);
        Ok(Self::map(a, |x| x * k as f64))
    }

    fn mul_const(&self, a: &SimCiphertext, c: f64, const_scale: f64) -> Result<SimCiphertext> {
        self.counter.record_at(Primitive::ConstMul, a.level);
        let c = rounded_const(c, const_scale)?;
        let mut out = Self::map(a, |x| x * c);
        out.scale = a.scale * const_scale;
        Ok(out)
    }

    fn mul_plain(&self, a: &SimCiphertext, pt: &SimPlaintext) -> Result<SimCiphertext> {
        self.counter
            .record_at(Primitive::PtMul, a.level.min(pt.level));
        Ok(SimCiphertext {
            values: self.zip(a, &pt.values, |x, y| x * y),
            level: a.level.min(pt.level),
            scale: a.scale * pt.scale,
        })
    }

    fn mul_relin(&self, a: &SimCiphertext, b: &SimCiphertext) -> Result<SimCiphertext> {
        let level = a.level.min(b.level);
        self.counter.record_at(Primitive::Mul, level);
        if !self.keys.relin {
            return Err(CkksError::MissingKey("relinearization key".into()).into());
        }
        self.counter.record_at(Primitive::Relinearize, level);
        let mut out = SimCiphertext {
            values: self.zip(a, &b.values, |x, y| x * y),
            level: a.level.min(b.level),
            scale: a.scale * b.scale,
        };
        self.add_noise(&mut out.values, out.scale, |m| m.key_switch);
        Ok(out)
    }

    fn rescale(&self, a: &SimCiphertext) -> Result<SimCiphertext> {
        self.counter.record_at(Primitive::Rescale, a.level);
        if a.level == 0 {
            return Err(CkksError::CannotRescale { level: 0 }.into());
        }
        let q = self.prime(a.level) as f64;
        let mut out = a.clone();
        out.level -= 1;
        out.scale = a.scale / q;
        self.add_noise(&mut out.values, out.scale, |m| m.rescale);
        Ok(out)
    }

    fn drop_to_level(&self, a: &SimCiphertext, level: usize) -> Result<SimCiphertext> {
        if level > a.level {
            return Err(CircuitError::NotEnoughLevels {
                needed: level,
                level: a.level,
            });
        }
        self.counter.record_at(Primitive::DropLevel, a.level);
        let mut out = a.clone();
        out.level = level;
        Ok(out)
    }

    fn rotate(&self, a: &SimCiphertext, k: i64) -> Result<SimCiphertext> {
        self.counter.record_at(Primitive::Rotate, a.level);
        self.galois_key(k)?;
        Ok(self.rotated(a, k))
    }

    fn rotate_hoisted(&self, a: &SimCiphertext, ks: &[i64]) -> Result<Vec<SimCiphertext>> {
        for &k in ks {
            self.galois_key(k)?;
        }
        self.counter.record_at(Primitive::Decompose, a.level);
        self.counter
            .record_n_at(Primitive::RotateHoisted, a.level, ks.len() as u64);
        Ok(ks.iter().map(|&k| self.rotated(a, k)).collect())
    }

    fn with_scale(&self, a: &SimCiphertext, scale: f64) -> SimCiphertext {
        // Re-labelling keeps the integer message `m * s`: it now decodes as `m * s / s'`.
        let ratio = a.scale / scale;
        let mut out = Self::map(a, |x| x * ratio);
        out.scale = scale;
        out
    }

    fn counts(&self) -> OpCounts {
        self.counter.snapshot()
    }

    fn level_counts(&self) -> Option<psf_ckks::LevelCounts> {
        Some(self.counter.snapshot_levels())
    }
}
