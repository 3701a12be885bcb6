//! RNS bases: an ordered list of distinct NTT-friendly primes sharing one ring degree.

use std::sync::Arc;

use crate::{MathError, Modulus, NttPlan, Result};

/// An ordered RNS basis `{q_0, ..., q_{k-1}}` with one NTT plan per prime.
///
/// Plans are shared (`Arc`), so prefixes and concatenations of bases are cheap.
#[derive(Debug, Clone)]
pub struct RnsBasis {
    n: usize,
    plans: Vec<Arc<NttPlan>>,
}

impl RnsBasis {
    /// Builds plans for `primes` at degree `n`; primes must be distinct and NTT-friendly.
    pub fn new(n: usize, primes: &[u64]) -> Result<Self> {
        let plans = primes
            .iter()
            .map(|&q| NttPlan::new(n, q).map(Arc::new))
            .collect::<Result<Vec<_>>>()?;
        Self::from_plans(n, plans)
    }

    /// A basis from existing plans (checked for degree and distinctness).
    pub fn from_plans(n: usize, plans: Vec<Arc<NttPlan>>) -> Result<Self> {
        for (i, p) in plans.iter().enumerate() {
            if p.n() != n {
                return Err(MathError::ShapeMismatch {
                    what: "NTT plan degree",
                    expected: n,
                    found: p.n(),
                });
            }
            let q = p.modulus().value();
            if plans[..i].iter().any(|o| o.modulus().value() == q) {
                return Err(MathError::DuplicateModulus { modulus: q });
            }
        }
        Ok(Self { n, plans })
    }

    /// Ring degree `N`.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Number of primes.
    pub fn len(&self) -> usize {
        self.plans.len()
    }

    /// Whether the basis has no primes.
    pub fn is_empty(&self) -> bool {
        self.plans.is_empty()
    }

    /// The `i`-th prime's modulus.
    #[inline]
    pub fn modulus(&self, i: usize) -> &Modulus {
        self.plans[i].modulus()
    }

    /// The `i`-th prime's NTT plan.
    #[inline]
    pub fn plan(&self, i: usize) -> &NttPlan {
        &self.plans[i]
    }

    /// All plans.
    pub fn plans(&self) -> &[Arc<NttPlan>] {
        &self.plans
    }

    /// The primes as integers.
    pub fn primes(&self) -> Vec<u64> {
        self.plans.iter().map(|p| p.modulus().value()).collect()
    }

    /// The first `k` primes.
    pub fn prefix(&self, k: usize) -> Self {
        Self {
            n: self.n,
            plans: self.plans[..k].to_vec(),
        }
    }

    /// Primes `range` of this basis.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Self {
        Self {
            n: self.n,
            plans: self.plans[range].to_vec(),
        }
    }

    /// This basis followed by `other` (must be disjoint).
    pub fn concat(&self, other: &Self) -> Result<Self> {
        let mut plans = self.plans.clone();
        plans.extend(other.plans.iter().cloned());
        Self::from_plans(self.n, plans)
    }

    /// `log2` of the product of the primes.
    pub fn log2_product(&self) -> f64 {
        self.plans
            .iter()
            .map(|p| (p.modulus().value() as f64).log2())
            .sum()
    }

    /// The product of the primes modulo `m`.
    pub fn product_mod(&self, m: &Modulus) -> u64 {
        self.plans.iter().fold(1 % m.value(), |acc, p| {
            m.mul(acc, m.reduce(p.modulus().value()))
        })
    }
}
