//! The operations a circuit needs, as a trait: the real CKKS evaluator ([`HeBackend`]) and the
//! simulation evaluator implement it, so every circuit is written once and runs on both.
//!
//! Scales are exact `f64` values (the product of the real primes), levels are limb counts
//! minus one: both backends do the same bookkeeping, so a simulated run predicts the real
//! run's levels, scales and primitive counts exactly.

use psf_ckks::{
    Ciphertext, CkksParameters, Encoder, Evaluator, LevelCounts, OpCounts, Plaintext, Primitive,
    Scale,
};

use crate::Result;

/// What circuits compute with.
pub trait Backend: Sync {
    /// Ciphertext type.
    type Ct: Clone + Send + Sync;
    /// Encoded plaintext type (reusable across calls, e.g. matrix diagonals).
    type Pt: Send + Sync;

    /// Slots per ciphertext.
    fn slots(&self) -> usize;
    /// Highest level of a fresh ciphertext.
    fn max_level(&self) -> usize;
    /// The default encoding scale.
    fn default_scale(&self) -> f64;
    /// The prime `q_level`, by which a rescale at `level` divides.
    fn prime(&self, level: usize) -> u64;

    /// Level of `ct`.
    fn level(&self, ct: &Self::Ct) -> usize;
    /// Exact scale of `ct`.
    fn scale(&self, ct: &Self::Ct) -> f64;

    /// Encodes `values` (padded with zeros) at `level` and `scale`.
    fn encode(&self, values: &[f64], level: usize, scale: f64) -> Result<Self::Pt>;

    /// `a + b` (scales must match; the lower level wins).
    fn add(&self, a: &Self::Ct, b: &Self::Ct) -> Result<Self::Ct>;
    /// `a - b`.
    fn sub(&self, a: &Self::Ct, b: &Self::Ct) -> Result<Self::Ct>;
    /// `-a`.
    fn neg(&self, a: &Self::Ct) -> Result<Self::Ct>;
    /// `a + c` in every slot.
    fn add_const(&self, a: &Self::Ct, c: f64) -> Result<Self::Ct>;
    /// `a + pt` (scales must match).
    fn add_plain(&self, a: &Self::Ct, pt: &Self::Pt) -> Result<Self::Ct>;
    /// `a * k` for an integer `k` (scale unchanged).
    fn mul_int(&self, a: &Self::Ct, k: i64) -> Result<Self::Ct>;
    /// `a * round(c * const_scale)`; the scale is multiplied by `const_scale`.
    fn mul_const(&self, a: &Self::Ct, c: f64, const_scale: f64) -> Result<Self::Ct>;
    /// `a * pt`; the scale is multiplied by the plaintext's scale.
    fn mul_plain(&self, a: &Self::Ct, pt: &Self::Pt) -> Result<Self::Ct>;
    /// `a * b`, relinearized; scales multiply.
    fn mul_relin(&self, a: &Self::Ct, b: &Self::Ct) -> Result<Self::Ct>;
    /// Divides by `q_level` and drops a level.
    fn rescale(&self, a: &Self::Ct) -> Result<Self::Ct>;
    /// Drops limbs down to `level` (no rescale).
    fn drop_to_level(&self, a: &Self::Ct, level: usize) -> Result<Self::Ct>;
    /// Rotates slots left by `k`.
    fn rotate(&self, a: &Self::Ct, k: i64) -> Result<Self::Ct>;
    /// Rotations by each of `ks`, sharing one decomposition.
    fn rotate_hoisted(&self, a: &Self::Ct, ks: &[i64]) -> Result<Vec<Self::Ct>>;
    /// Re-labels the scale of `a` (no computation): for callers that have proven the new
    /// scale equal to the old one up to a negligible relative error.
    fn with_scale(&self, a: &Self::Ct, scale: f64) -> Self::Ct;

    /// Primitive counts so far.
    fn counts(&self) -> OpCounts;

    /// Primitive counts so far by level, where the backend records them (for the cost model).
    fn level_counts(&self) -> Option<LevelCounts> {
        None
    }
}

/// Smallest period [`HeBackend::encode`] looks for: `2^3` slots, a polynomial of degree 16
/// in `X^gap` (the smallest strided transform).
const MIN_LOG_PERIOD: u32 = 3;

/// `log2` of the slot count a backend encodes `values` with, out of `slots`: the smallest
/// power-of-two period of a full vector (a sparse packing), else `log2 slots`.
pub(crate) fn encoding_log_period(values: &[f64], slots: usize) -> u32 {
    match values.len() == slots {
        true => period_log2(values, MIN_LOG_PERIOD),
        false => slots.trailing_zeros(),
    }
}

/// `log2` of the smallest power-of-two period (at least `2^min_log`) of `v` (a power-of-two
/// length): halves the period while both halves agree.
fn period_log2(v: &[f64], min_log: u32) -> u32 {
    let mut log = v.len().trailing_zeros();
    while log > min_log {
        let half = 1usize << (log - 1);
        let periodic = (half..v.len()).all(|i| v[i].to_bits() == v[i % half].to_bits());
        if !periodic {
            break;
        }
        log -= 1;
    }
    log
}

/// The real CKKS evaluator with its encoder.
pub struct HeBackend<'a> {
    params: &'a CkksParameters,
    encoder: &'a Encoder,
    eval: &'a Evaluator,
}

impl<'a> HeBackend<'a> {
    /// Wraps an evaluator and an encoder of the same parameters.
    pub fn new(params: &'a CkksParameters, encoder: &'a Encoder, eval: &'a Evaluator) -> Self {
        Self {
            params,
            encoder,
            eval,
        }
    }

    /// The evaluator.
    pub fn evaluator(&self) -> &Evaluator {
        self.eval
    }
}

impl Backend for HeBackend<'_> {
    type Ct = Ciphertext;
    type Pt = Plaintext;

    fn slots(&self) -> usize {
        self.params.max_slots()
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

    fn level(&self, ct: &Ciphertext) -> usize {
        ct.level()
    }

    fn scale(&self, ct: &Ciphertext) -> f64 {
        ct.meta.scale.0
    }

    /// A vector that repeats with a power-of-two period is encoded as that sparse packing
    /// (the same polynomial, transformed at a fraction of the degree: the replicated
    /// plaintexts of decoding steps and masks).
    fn encode(&self, values: &[f64], level: usize, scale: f64) -> Result<Plaintext> {
        let full = self.params.max_log_slots();
        let log_period = encoding_log_period(values, 1 << full);
        let kind = match log_period < full {
            true => Primitive::EncodeSparse,
            false => Primitive::Encode,
        };
        self.eval.counter().record_at(kind, level);
        let mut pt = self.encoder.encode(
            &values[..values.len().min(1 << log_period)],
            log_period,
            level,
            Scale(scale),
        )?;
        pt.meta.log_slots = full;
        Ok(pt)
    }

    fn add(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        Ok(self.eval.add_new(a, b)?)
    }

    fn sub(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        Ok(self.eval.sub_new(a, b)?)
    }

    fn neg(&self, a: &Ciphertext) -> Result<Ciphertext> {
        Ok(self.eval.neg_new(a)?)
    }

    fn add_const(&self, a: &Ciphertext, c: f64) -> Result<Ciphertext> {
        Ok(self.eval.add_const_new(a, c)?)
    }

    fn add_plain(&self, a: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext> {
        Ok(self.eval.add_plain_new(a, pt)?)
    }

    fn mul_int(&self, a: &Ciphertext, k: i64) -> Result<Ciphertext> {
        Ok(self.eval.mul_int_new(a, k)?)
    }

    fn mul_const(&self, a: &Ciphertext, c: f64, const_scale: f64) -> Result<Ciphertext> {
        Ok(self.eval.mul_const_new(a, c, Scale(const_scale))?)
    }

    fn mul_plain(&self, a: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext> {
        Ok(self.eval.mul_plain_new(a, pt)?)
    }

    fn mul_relin(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        Ok(self.eval.mul_relin_new(a, b)?)
    }

    fn rescale(&self, a: &Ciphertext) -> Result<Ciphertext> {
        Ok(self.eval.rescale_new(a)?)
    }

    fn drop_to_level(&self, a: &Ciphertext, level: usize) -> Result<Ciphertext> {
        let drop = a
            .level()
            .checked_sub(level)
            .ok_or(crate::CircuitError::NotEnoughLevels {
                needed: level,
                level: a.level(),
            })?;
        Ok(self.eval.drop_level_new(a, drop)?)
    }

    fn rotate(&self, a: &Ciphertext, k: i64) -> Result<Ciphertext> {
        Ok(self.eval.rotate_new(a, k)?)
    }

    fn rotate_hoisted(&self, a: &Ciphertext, ks: &[i64]) -> Result<Vec<Ciphertext>> {
        Ok(self.eval.rotate_hoisted_new(a, ks)?)
    }

    fn with_scale(&self, a: &Ciphertext, scale: f64) -> Ciphertext {
        let mut x = a.clone();
        x.meta.scale = Scale(scale);
        x
    }

    fn counts(&self) -> OpCounts {
        self.eval.counter().snapshot()
    }

    fn level_counts(&self) -> Option<LevelCounts> {
        Some(self.eval.counter().snapshot_levels())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_found_from_the_largest_down() {
        let v: Vec<f64> = (0..64).map(|i| (i % 8) as f64).collect();
        assert_eq!(period_log2(&v, 3), 3);
        assert_eq!(period_log2(&v, 4), 4);
        let mut w = v.clone();
        w[63] = -1.0;
        assert_eq!(period_log2(&w, 3), 6);
        let block: Vec<f64> = (0..64).map(|i| (i / 8) as f64).collect();
        assert_eq!(period_log2(&block, 3), 6);
        assert_eq!(period_log2(&[0.0; 64], 3), 3);
    }
}
