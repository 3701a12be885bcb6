//! The `probe` workload: one dense layer and a GELU on encrypted vectors, a small job kind
//! for tests and quick checks, and the check that a session's uploaded keys work
//! (the layer needs the Galois keys, the GELU polynomial the relinearization key).
//!
//! - `forward`: `y = GELU_p(W x)` for `x` of dimension `d`, replicated with period `d` in the
//!   slots (so is `y`);
//! - `step` (the encrypted cache): the session keeps `h_t = W x_t` of every step and answers
//!   `GELU_p(mean_{j <= t} h_j)`, the length-agnostic mean of Power-Softmax's denominator.
//!
//! `W` is drawn from the spec's seed, entries uniform in `[-1, 1] / sqrt(d)`, so for inputs in
//! `[-1, 1]^d` every `W x` and every mean lies in `[-sqrt d, sqrt d]`; `GELU_p` is the minimax
//! polynomial of `psf_approx::gelu` on the spec's interval, whose error it reports.

use psf_approx::ErrorReport;
use psf_circuits::linear::{LinearTransform, Strategy};
use psf_circuits::{Backend, Circuit, CircuitError, PolyEval};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::api::KeyRequirements;

/// What defines a probe layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeSpec {
    /// Dimension `d` (a power of two dividing the slot count).
    pub dim: usize,
    /// Seed of the weights.
    pub seed: u64,
    /// Interval `[a, b]` of the GELU polynomial.
    pub interval: (f64, f64),
    /// Degree of the GELU polynomial.
    pub degree: usize,
}

impl Default for ProbeSpec {
    /// `d = 16`, GELU of degree 7 on `[-4, 4] = [-sqrt d, sqrt d]`: 6 levels for `step`.
    fn default() -> Self {
        Self {
            dim: 16,
            seed: 7,
            interval: (-4.0, 4.0),
            degree: 7,
        }
    }
}

/// A probe layer built for a slot count.
#[derive(Debug, Clone)]
pub struct Probe {
    spec: ProbeSpec,
    weights: Vec<Vec<f64>>,
    transform: LinearTransform,
    activation: PolyEval,
    report: ErrorReport,
}

impl Probe {
    /// Draws the weights and fits the activation.
    ///
    /// # Errors
    /// A dimension that does not divide `slots`, or a failed fit.
    pub fn new(spec: ProbeSpec, slots: usize) -> psf_circuits::Result<Self> {
        let d = spec.dim;
        if d == 0 || !d.is_power_of_two() || d > slots {
            return Err(CircuitError::Invalid(format!(
                "probe dimension {d} must be a power of two <= {slots}"
            )));
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(spec.seed);
        let bound = 1.0 / (d as f64).sqrt();
        let weights: Vec<Vec<f64>> = (0..d)
            .map(|_| (0..d).map(|_| rng.random_range(-bound..=bound)).collect())
            .collect();
        let transform = LinearTransform::from_dense(&weights, slots, Strategy::Bsgs(None))?;
        let (a, b) = spec.interval;
        let fit = psf_approx::gelu(a, b, spec.degree)
            .map_err(|e| CircuitError::Invalid(format!("GELU fit: {e}")))?;
        let activation = PolyEval::new(fit.poly)?;
        Ok(Self {
            spec,
            weights,
            transform,
            activation,
            report: fit.report,
        })
    }

    /// The spec.
    pub fn spec(&self) -> &ProbeSpec {
        &self.spec
    }

    /// The GELU polynomial's measured error against the exact GELU on its interval.
    pub fn activation_error(&self) -> &ErrorReport {
        &self.report
    }

    /// Keys the layer needs in a ring of degree `2^log_n`.
    pub fn keys(&self, log_n: u32) -> KeyRequirements {
        KeyRequirements {
            relinearization: true,
            galois_elements: self.transform.galois_elements(log_n),
            encapsulation_weight: None,
            key_levels: Default::default(),
        }
    }

    /// Levels `forward` consumes.
    pub fn forward_depth(&self) -> usize {
        self.transform.depth() + self.activation.depth_of(0)
    }

    /// Levels `step` consumes (one more, for the mean).
    pub fn step_depth(&self) -> usize {
        self.forward_depth() + 1
    }

    /// `W x` (one level).
    pub fn project<B: Backend>(&self, be: &B, x: &B::Ct) -> psf_circuits::Result<B::Ct> {
        self.transform.encode(be, be.level(x))?.apply(be, x)
    }

    /// `GELU_p(W x)`.
    pub fn forward<B: Backend>(&self, be: &B, x: &B::Ct) -> psf_circuits::Result<B::Ct> {
        self.activation.evaluate_one(be, &self.project(be, x)?)
    }

    /// `GELU_p(mean(cache))` for projected steps `cache` (same level and scale).
    ///
    /// # Errors
    /// An empty cache, or as the backend.
    pub fn activate_mean<B: Backend>(
        &self,
        be: &B,
        cache: &[B::Ct],
    ) -> psf_circuits::Result<B::Ct> {
        let (first, rest) = cache
            .split_first()
            .ok_or_else(|| CircuitError::Invalid("empty cache".into()))?;
        let mut sum = first.clone();
        for h in rest {
            sum = be.add(&sum, h)?;
        }
        let scale = be.scale(&sum);
        let q = be.prime(be.level(&sum)) as f64;
        let mean = be.rescale(&be.mul_const(&sum, 1.0 / cache.len() as f64, q)?)?;
        let mean = be.with_scale(&mean, scale);
        self.activation.evaluate_one(be, &mean)
    }

    /// The f64 twin of `W x` (`x` of length `d`).
    pub fn project_f64(&self, x: &[f64]) -> Vec<f64> {
        self.weights
            .iter()
            .map(|row| row.iter().zip(x).map(|(w, v)| w * v).sum())
            .collect()
    }

    /// The f64 twin of [`Self::forward`].
    pub fn forward_f64(&self, x: &[f64]) -> Vec<f64> {
        self.activate_f64(&self.project_f64(x))
    }

    /// The f64 twin of the answer to the last of `steps` ([`Self::activate_mean`]).
    pub fn step_f64(&self, steps: &[Vec<f64>]) -> Vec<f64> {
        let mut mean = vec![0.0; self.spec.dim];
        for x in steps {
            for (m, h) in mean.iter_mut().zip(self.project_f64(x)) {
                *m += h / steps.len() as f64;
            }
        }
        self.activate_f64(&mean)
    }

    fn activate_f64(&self, h: &[f64]) -> Vec<f64> {
        h.iter().map(|&v| self.activation.eval_f64(v)[0]).collect()
    }
}
