//! Rotate-and-sum reductions and plaintext masks.

use crate::{Backend, Circuit, CircuitError, Result, rotation_galois_elements};

/// Sums `block` (a power of two) values spaced `stride` apart: slot `m` of the output holds
/// `sum_{k < block} x[(m + k stride) mod slots]`, in `log2(block)` rotations and additions.
/// With the token-interleaved layout, `stride = 1, block = n` sums over the tokens of a
/// feature ("inner"), and `stride = n, block = d` over the features of a token ("outer").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotateAndSum {
    /// Values summed.
    pub block: usize,
    /// Distance between them.
    pub stride: usize,
}

impl RotateAndSum {
    /// A reduction over `block` values `stride` apart.
    ///
    /// # Errors
    /// A block that is not a power of two, or a zero stride.
    pub fn new(block: usize, stride: usize) -> Result<Self> {
        if !block.is_power_of_two() || stride == 0 {
            return Err(CircuitError::Invalid(format!(
                "rotate-and-sum over {block} x {stride}"
            )));
        }
        Ok(Self { block, stride })
    }

    /// Rotations used: `stride * 2^i` for `2^i < block`.
    pub fn rotations(&self) -> Vec<i64> {
        (0..self.block.ilog2())
            .map(|i| (self.stride << i) as i64)
            .collect()
    }

    /// The reduction (no level used).
    ///
    /// # Errors
    /// A missing rotation key or a backend error.
    pub fn apply<B: Backend>(&self, b: &B, ct: &B::Ct) -> Result<B::Ct> {
        let mut acc = ct.clone();
        for r in self.rotations() {
            acc = b.add(&acc, &b.rotate(&acc, r)?)?;
        }
        Ok(acc)
    }

    /// The cleartext twin.
    pub fn apply_f64(&self, x: &[f64]) -> Vec<f64> {
        let n = x.len();
        (0..n)
            .map(|m| (0..self.block).map(|k| x[(m + k * self.stride) % n]).sum())
            .collect()
    }
}

impl Circuit for RotateAndSum {
    fn depth(&self) -> usize {
        0
    }

    fn min_input_level(&self) -> usize {
        0
    }

    fn galois_elements(&self, log_n: u32) -> Vec<usize> {
        rotation_galois_elements(self.rotations(), log_n)
    }

    fn needs_relinearization_key(&self) -> bool {
        false
    }
}

/// A plaintext mask (typically 0/1, e.g. a causal mask or a block selector): one plaintext
/// product and a rescale, with the output scale equal to the input scale.
#[derive(Debug, Clone, PartialEq)]
pub struct Mask {
    /// The mask values per slot (zero-padded).
    pub values: Vec<f64>,
}

/// A [`Mask`] encoded at one level.
pub struct EncodedMask<B: Backend> {
    pt: B::Pt,
    level: usize,
}

impl Mask {
    /// The 0/1 mask of the slots where `keep` holds, over `slots` slots.
    pub fn select(slots: usize, keep: impl Fn(usize) -> bool) -> Self {
        Self {
            values: (0..slots).map(|m| f64::from(u8::from(keep(m)))).collect(),
        }
    }

    /// Encodes at `level` with scale `q_level` (so the rescale restores the input scale).
    ///
    /// # Errors
    /// `level` 0, or an encoding error.
    pub fn encode<B: Backend>(&self, b: &B, level: usize) -> Result<EncodedMask<B>> {
        if level == 0 {
            return Err(CircuitError::NotEnoughLevels { needed: 1, level });
        }
        let pt = b.encode(&self.values, level, b.prime(level) as f64)?;
        Ok(EncodedMask { pt, level })
    }

    /// The cleartext twin.
    pub fn apply_f64(&self, x: &[f64]) -> Vec<f64> {
        x.iter()
            .enumerate()
            .map(|(m, v)| v * self.values.get(m).copied().unwrap_or(0.0))
            .collect()
    }
}

impl<B: Backend> EncodedMask<B> {
    /// `x * mask`, rescaled (input at the encoding level or above).
    ///
    /// # Errors
    /// An input below the encoding level, or a backend error.
    pub fn apply(&self, b: &B, ct: &B::Ct) -> Result<B::Ct> {
        let scale = b.scale(ct);
        if b.level(ct) < self.level {
            return Err(CircuitError::NotEnoughLevels {
                needed: self.level,
                level: b.level(ct),
            });
        }
        let ct = if b.level(ct) > self.level {
            b.drop_to_level(ct, self.level)?
        } else {
            ct.clone()
        };
        Ok(b.with_scale(&b.rescale(&b.mul_plain(&ct, &self.pt)?)?, scale))
    }
}

impl Circuit for Mask {
    fn depth(&self) -> usize {
        1
    }

    fn needs_relinearization_key(&self) -> bool {
        false
    }
}
