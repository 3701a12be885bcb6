//! Parameters in two stages: a serde [`ParametersLiteral`] the user writes, checked once by
//! [`ParametersLiteral::try_build`] into immutable, shared [`Parameters`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use psf_math::{CrtReconstructor, PrimeSearch, RnsBasis, ntt_primes};
use serde::{Deserialize, Serialize};

use crate::keyswitch::KeySwitchTables;
use crate::security::{INSECURE_PREFIX, max_log_qp_128};
use crate::{Result, RlweError};

/// Distribution of the secret key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SecretDistribution {
    /// Uniform ternary coefficients in `{-1, 0, 1}` (the HE standard's assumption).
    #[default]
    Ternary,
    /// Ternary with exactly `hamming_weight` nonzero coefficients.
    SparseTernary { hamming_weight: usize },
}

/// What the user writes: ring degree, prime sizes (or explicit primes), digit size, secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParametersLiteral {
    /// Name of the set; sets that are not 128-bit secure must start with `INSECURE`.
    pub name: String,
    /// `log2 N`.
    pub log_n: u32,
    /// Bit sizes of the ciphertext primes `q_0, q_1, ...` (`q_0` is the base prime).
    #[serde(default)]
    pub log_q: Vec<u32>,
    /// Bit sizes of the auxiliary key-switching primes `P`.
    #[serde(default)]
    pub log_p: Vec<u32>,
    /// Explicit ciphertext primes (instead of `log_q`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<Vec<u64>>,
    /// Explicit auxiliary primes (instead of `log_p`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p: Option<Vec<u64>>,
    /// Primes of `Q` per key-switching digit (`alpha`); `dnum = ceil(|Q| / alpha)`.
    /// Defaults to `|P|`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digit_size: Option<usize>,
    /// Secret-key distribution.
    #[serde(default)]
    pub secret: SecretDistribution,
    /// Standard deviation of the error distribution.
    #[serde(default = "default_sigma")]
    pub sigma: f64,
}

fn default_sigma() -> f64 {
    psf_math::DEFAULT_SIGMA
}

impl ParametersLiteral {
    /// Checks the literal, generates the primes, enforces the 128-bit bound (unless the name
    /// starts with `INSECURE`) and precomputes everything operations need.
    pub fn try_build(&self) -> Result<Arc<Parameters>> {
        Parameters::build(self.clone()).map(Arc::new)
    }
}

/// Immutable parameters shared (via `Arc`) by every key, plaintext and ciphertext.
pub struct Parameters {
    literal: ParametersLiteral,
    q: RnsBasis,
    p: RnsBasis,
    qp: RnsBasis,
    digit_size: usize,
    ks: KeySwitchTables,
    crt: CrtReconstructor,
    galois_perms: Mutex<HashMap<usize, Arc<Vec<u32>>>>,
}

impl std::fmt::Debug for Parameters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parameters")
            .field("name", &self.literal.name)
            .field("log_n", &self.literal.log_n)
            .field("q", &self.q.primes())
            .field("p", &self.p.primes())
            .field("digit_size", &self.digit_size)
            .finish()
    }
}

fn invalid(reason: impl Into<String>) -> RlweError {
    RlweError::InvalidParameters {
        reason: reason.into(),
    }
}

/// Primes of the given sizes: runs of equal sizes are searched together (`Around` for the
/// scaling primes after the first, `Below` otherwise), all distinct from `exclude`.
fn primes_for(sizes: &[u32], n: usize, scaling: bool, exclude: &mut Vec<u64>) -> Result<Vec<u64>> {
    let mut out = Vec::with_capacity(sizes.len());
    let mut i = 0;
    while i < sizes.len() {
        let run = sizes[i..].iter().take_while(|&&b| b == sizes[i]).count();
        let search = if scaling && i > 0 {
            PrimeSearch::Around
        } else {
            PrimeSearch::Below
        };
        let (count, run) = if scaling && i == 0 {
            (1, 1)
        } else {
            (run, run)
        };
        let ps = ntt_primes(sizes[i], n, count, search, exclude)?;
        exclude.extend(&ps);
        out.extend(ps);
        i += run;
    }
    Ok(out)
}

impl Parameters {
    fn build(literal: ParametersLiteral) -> Result<Self> {
        let log_n = literal.log_n;
        if !(psf_math::MIN_LOG_N..=psf_math::MAX_LOG_N).contains(&log_n) {
            return Err(invalid(format!(
                "log_n = {log_n} outside [{}, {}]",
                psf_math::MIN_LOG_N,
                psf_math::MAX_LOG_N
            )));
        }
        if !(literal.sigma > 0.0 && literal.sigma < 100.0) {
            return Err(invalid(format!(
                "sigma = {} must be in (0, 100)",
                literal.sigma
            )));
        }
        let n = 1usize << log_n;
        let mut used = Vec::new();
        let q_primes = match &literal.q {
            Some(q) => q.clone(),
            None => primes_for(&literal.log_q, n, true, &mut used)?,
        };
        used.extend(&q_primes);
        let p_primes = match &literal.p {
            Some(p) => p.clone(),
            None => primes_for(&literal.log_p, n, false, &mut used)?,
        };
        if q_primes.is_empty() || p_primes.is_empty() {
            return Err(invalid("need at least one Q prime and one P prime"));
        }
        if q_primes.iter().chain(&p_primes).any(|&x| x >= 1 << 61) {
            return Err(invalid("primes must be below 2^61"));
        }
        let q = RnsBasis::new(n, &q_primes)?;
        let p = RnsBasis::new(n, &p_primes)?;
        let qp = q.concat(&p)?;
        let digit_size = literal.digit_size.unwrap_or(p.len());
        if digit_size == 0 || digit_size > q.len() {
            return Err(invalid(format!(
                "digit_size = {digit_size} must be in [1, {}]",
                q.len()
            )));
        }
        if let SecretDistribution::SparseTernary { hamming_weight } = literal.secret
            && (hamming_weight == 0 || hamming_weight > n)
        {
            return Err(invalid(format!(
                "hamming weight {hamming_weight} must be in [1, N]"
            )));
        }
        let log_qp = qp.log2_product();
        let insecure = literal.name.starts_with(INSECURE_PREFIX);
        match max_log_qp_128(log_n) {
            Some(max) if log_qp > max as f64 && !insecure => {
                return Err(RlweError::Insecure {
                    name: literal.name.clone(),
                    log_qp,
                    max,
                    log_n,
                });
            }
            None if !insecure => {
                return Err(invalid(format!(
                    "N = 2^{log_n} has no 128-bit bound; only INSECURE sets may use it"
                )));
            }
            _ => {}
        }
        let ks = KeySwitchTables::new(&q, &p, digit_size)?;
        let crt = CrtReconstructor::new(&q)?;
        Ok(Self {
            literal,
            q,
            p,
            qp,
            digit_size,
            ks,
            crt,
            galois_perms: Mutex::new(HashMap::new()),
        })
    }

    /// The literal these parameters were built from, with the primes filled in.
    pub fn literal(&self) -> ParametersLiteral {
        let mut l = self.literal.clone();
        l.q = Some(self.q.primes());
        l.p = Some(self.p.primes());
        l.digit_size = Some(self.digit_size);
        l
    }

    /// The set's name.
    pub fn name(&self) -> &str {
        &self.literal.name
    }

    /// `log2 N`.
    pub fn log_n(&self) -> u32 {
        self.literal.log_n
    }

    /// Ring degree `N`.
    pub fn n(&self) -> usize {
        1 << self.literal.log_n
    }

    /// Ciphertext primes `Q`.
    pub fn q(&self) -> &RnsBasis {
        &self.q
    }

    /// Auxiliary primes `P`.
    pub fn p(&self) -> &RnsBasis {
        &self.p
    }

    /// `Q` followed by `P`.
    pub fn qp(&self) -> &RnsBasis {
        &self.qp
    }

    /// Highest level (`|Q| - 1`).
    pub fn max_level(&self) -> usize {
        self.q.len() - 1
    }

    /// Primes per key-switching digit.
    pub fn digit_size(&self) -> usize {
        self.digit_size
    }

    /// Number of digits at the top level (`dnum`).
    pub fn dnum(&self) -> usize {
        self.q.len().div_ceil(self.digit_size)
    }

    /// `log2(QP)`.
    pub fn log_qp(&self) -> f64 {
        self.qp.log2_product()
    }

    /// Whether this set is 128-bit secure by the HE standard's table.
    pub fn is_secure(&self) -> bool {
        max_log_qp_128(self.log_n()).is_some_and(|m| self.log_qp() <= m as f64)
    }

    /// Secret-key distribution.
    pub fn secret_distribution(&self) -> SecretDistribution {
        self.literal.secret
    }

    /// Error standard deviation.
    pub fn sigma(&self) -> f64 {
        self.literal.sigma
    }

    pub(crate) fn ks(&self) -> &KeySwitchTables {
        &self.ks
    }

    /// CRT reconstruction over `Q`.
    pub fn crt(&self) -> &CrtReconstructor {
        &self.crt
    }

    /// The evaluation-domain permutation of `X -> X^g` (cached).
    pub fn galois_permutation(&self, g: usize) -> Arc<Vec<u32>> {
        let mut cache = self.galois_perms.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .entry(g)
            .or_insert_with(|| Arc::new(self.q.plan(0).automorphism_permutation(g)))
            .clone()
    }

    /// Checks that `level` exists.
    pub fn check_level(&self, level: usize) -> Result<()> {
        if level > self.max_level() {
            return Err(RlweError::InvalidLevel {
                level,
                min: 0,
                max: self.max_level(),
            });
        }
        Ok(())
    }

    /// Fails unless `self` and `other` are the same parameter set.
    pub fn check_same(self: &Arc<Self>, other: &Arc<Self>) -> Result<()> {
        if Arc::ptr_eq(self, other)
            || (self.q.primes() == other.q.primes() && self.p.primes() == other.p.primes())
        {
            Ok(())
        } else {
            Err(RlweError::ParametersMismatch {
                left: self.name().into(),
                right: other.name().into(),
            })
        }
    }
}
