//! Refreshing ciphertexts (bootstrapping) behind one trait, so the forward pass runs on the
//! CKKS evaluator and on the simulation evaluator alike.
//!
//! Bootstrapping needs its inputs in about `[-1, 1]`: each refresh site has a public bound
//! `B` (a power of two found by the compiler's simulated dry run, with a factor-2 margin);
//! the input is re-labelled to `x / B` (no computation), bootstrapped, and multiplied back by
//! the integer `B` (no level). Real-valued ciphertexts are refreshed two per bootstrap
//! ([`Bootstrapper::bootstrap_real_pair`]).

use std::collections::BTreeMap;
use std::sync::Mutex;

use psf_circuits::bootstrap::{Bootstrapper, Encapsulation};
use psf_circuits::{Backend, HeBackend, SimBackend, SimCiphertext};
use psf_ckks::{Ciphertext, Primitive};

use crate::{InferError, Result};

/// Refreshes ciphertexts to a high level.
pub trait Refresh<B: Backend>: Sync {
    /// The level of a refreshed ciphertext.
    fn output_level(&self) -> usize;
    /// Refreshes `cts` at refresh site `site` (output at [`Self::output_level`] and the
    /// default scale, same values).
    ///
    /// # Errors
    /// An unknown site or a bootstrapping error.
    fn refresh(&self, be: &B, site: &str, cts: &[B::Ct]) -> Result<Vec<B::Ct>>;
}

/// The bound a site's values are divided by before bootstrapping: the next power of two of
/// twice the largest magnitude seen (at least 1).
pub fn bound_for(max_abs: f64) -> f64 {
    (2.0 * max_abs).max(1.0).log2().ceil().exp2()
}

/// The simulated refresh: same values, level and scale reset, one `Bootstrap` counted per
/// pair of ciphertexts; it records the largest magnitude seen at every site.
pub struct SimRefresh {
    level: usize,
    maxima: Mutex<BTreeMap<String, f64>>,
}

impl SimRefresh {
    /// Refreshes to `level`.
    pub fn new(level: usize) -> Self {
        Self {
            level,
            maxima: Mutex::new(BTreeMap::new()),
        }
    }

    /// The largest magnitude seen per site.
    pub fn maxima(&self) -> BTreeMap<String, f64> {
        self.maxima
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Refresh<SimBackend> for SimRefresh {
    fn output_level(&self) -> usize {
        self.level
    }

    fn refresh(
        &self,
        be: &SimBackend,
        site: &str,
        cts: &[SimCiphertext],
    ) -> Result<Vec<SimCiphertext>> {
        let max = cts
            .iter()
            .flat_map(|c| c.values.iter())
            .fold(0.0f64, |m, v| m.max(v.abs()));
        let mut maxima = self.maxima.lock().unwrap_or_else(|e| e.into_inner());
        let e = maxima.entry(site.to_string()).or_insert(0.0);
        *e = e.max(max);
        // Priced by the cost table's bootstrapping curve (level-independent, kept at level 0).
        be.counter()
            .record_n_at(Primitive::Bootstrap, 0, cts.len().div_ceil(2) as u64);
        Ok(cts
            .iter()
            .map(|c| SimCiphertext {
                values: c.values.clone(),
                level: self.level,
                scale: be.default_scale(),
            })
            .collect())
    }
}

/// The real refresh: the bootstrapping circuit with the compiled bounds.
pub struct HeRefresh<'a> {
    boot: &'a Bootstrapper,
    encapsulation: Option<&'a Encapsulation>,
    bounds: &'a BTreeMap<String, f64>,
}

impl<'a> HeRefresh<'a> {
    /// Bootstraps with `boot` (and its encapsulation keys), dividing by the site `bounds`.
    pub fn new(
        boot: &'a Bootstrapper,
        encapsulation: Option<&'a Encapsulation>,
        bounds: &'a BTreeMap<String, f64>,
    ) -> Self {
        Self {
            boot,
            encapsulation,
            bounds,
        }
    }
}

impl Refresh<HeBackend<'_>> for HeRefresh<'_> {
    fn output_level(&self) -> usize {
        self.boot.output_level()
    }

    fn refresh(
        &self,
        be: &HeBackend<'_>,
        site: &str,
        cts: &[Ciphertext],
    ) -> Result<Vec<Ciphertext>> {
        let bound = *self
            .bounds
            .get(site)
            .ok_or_else(|| InferError::UnknownRefresh(site.to_string()))?;
        let eval = be.evaluator();
        let shrink = |c: &Ciphertext| be.with_scale(c, be.scale(c) * bound);
        let mut out = Vec::with_capacity(cts.len());
        for pair in cts.chunks(2) {
            eval.counter().record_at(Primitive::Bootstrap, 0);
            if let [a, b] = pair {
                let (x, y) = self.boot.bootstrap_real_pair(
                    eval,
                    self.encapsulation,
                    &shrink(a),
                    &shrink(b),
                )?;
                out.extend([x, y]);
            } else {
                out.push(
                    self.boot
                        .bootstrap_real(eval, self.encapsulation, &shrink(&pair[0]))?,
                );
            }
        }
        out.iter()
            .map(|c| Ok(be.mul_int(c, bound as i64)?))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::bound_for;

    #[test]
    fn bounds_are_powers_of_two_with_margin() {
        assert_eq!(bound_for(0.0), 1.0);
        assert_eq!(bound_for(0.4), 1.0);
        assert_eq!(bound_for(0.6), 2.0);
        assert_eq!(bound_for(3.0), 8.0);
    }
}
