//! CKKS parameters: RLWE parameters plus the default scale, and the named sets.

use std::sync::Arc;

use psf_rlwe::{Parameters, ParametersLiteral, Scale};
use serde::{Deserialize, Serialize};

use crate::Result;

/// What the user writes for CKKS: the RLWE literal and `log2` of the default scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CkksParametersLiteral {
    /// Ring, primes, digits, secret.
    #[serde(flatten)]
    pub ring: ParametersLiteral,
    /// `log2` of the default encoding scale.
    pub log_default_scale: u32,
}

/// Checked, shared CKKS parameters.
#[derive(Debug, Clone)]
pub struct CkksParameters {
    ring: Arc<Parameters>,
    log_default_scale: u32,
}

impl CkksParametersLiteral {
    /// Builds the ring parameters (primes, security check, tables).
    pub fn try_build(&self) -> Result<CkksParameters> {
        Ok(CkksParameters {
            ring: self.ring.try_build()?,
            log_default_scale: self.log_default_scale,
        })
    }
}

impl CkksParameters {
    /// The shared RLWE parameters (held by every key, plaintext and ciphertext).
    pub fn ring(&self) -> &Arc<Parameters> {
        &self.ring
    }

    /// The default scale `2^log_default_scale`.
    pub fn default_scale(&self) -> Scale {
        Scale(2f64.powi(self.log_default_scale as i32))
    }

    /// `log2` of the default scale.
    pub fn log_default_scale(&self) -> u32 {
        self.log_default_scale
    }

    /// Maximum number of slots (`N / 2`).
    pub fn max_slots(&self) -> usize {
        self.ring.n() / 2
    }

    /// `log2` of the maximum slot count.
    pub fn max_log_slots(&self) -> u32 {
        self.ring.log_n() - 1
    }

    /// The literal, with primes filled in.
    pub fn literal(&self) -> CkksParametersLiteral {
        CkksParametersLiteral {
            ring: self.ring.literal(),
            log_default_scale: self.log_default_scale,
        }
    }
}

fn literal(
    name: &str,
    log_n: u32,
    log_q: Vec<u32>,
    log_p: Vec<u32>,
    log_scale: u32,
) -> CkksParametersLiteral {
    CkksParametersLiteral {
        ring: ParametersLiteral {
            name: name.into(),
            log_n,
            log_q,
            log_p,
            q: None,
            p: None,
            digit_size: None,
            secret: Default::default(),
            sigma: psf_math::DEFAULT_SIGMA,
        },
        log_default_scale: log_scale,
    }
}

/// Named parameter sets. Secure sets state their size; `INSECURE_` sets are toys for tests.
pub mod sets {
    use super::*;

    /// The OpenFHE anchor's leveled chain at N=2^16: depth 20 (a 60-bit base prime, twenty
    /// 50-bit scaling primes), 50-bit scale; key switching with three digits of seven primes
    /// and P = 8 x 50 bits (below 2^52, so base conversion and NTTs take the AVX-512 IFMA paths).
    /// log QP = 1460 <= 1772 (128-bit).
    pub fn n16_depth20_128bit() -> CkksParametersLiteral {
        with_digits(
            literal(
                "N16_QP1460_DEPTH20_128BIT",
                16,
                anchor_q(20),
                vec![50; 8],
                50,
            ),
            7,
        )
    }

    /// N=2^15, depth 11 (as the OpenFHE anchor at 2^15): 60 + 11 x 50 bits, three digits of
    /// four primes, P = 5 x 50 bits. log QP = 860 <= 881 (128-bit).
    pub fn n15_depth11_128bit() -> CkksParametersLiteral {
        with_digits(
            literal(
                "N15_QP860_DEPTH11_128BIT",
                15,
                anchor_q(11),
                vec![50; 5],
                50,
            ),
            4,
        )
    }

    /// N=2^14, depth 5: 60 + 5 x 50 bits, P = 2 x 61 bits. log QP = 432 <= 438 (128-bit).
    pub fn n14_depth5_128bit() -> CkksParametersLiteral {
        literal("N14_QP432_DEPTH5_128BIT", 14, anchor_q(5), vec![61; 2], 50)
    }

    /// Toy set for tests: N=2^10, 60 + 6 x 45 bits, P = 2 x 61 bits. NOT SECURE.
    pub fn insecure_n10() -> CkksParametersLiteral {
        literal(
            "INSECURE_N10_TEST",
            10,
            {
                let mut q = vec![60];
                q.extend([45; 6]);
                q
            },
            vec![61; 2],
            45,
        )
    }

    /// Toy set for precision tests: N=2^12, 60 + 8 x 50 bits, P = 3 x 61 bits. NOT SECURE.
    pub fn insecure_n12() -> CkksParametersLiteral {
        literal("INSECURE_N12_TEST", 12, anchor_q(8), vec![61; 3], 50)
    }

    /// Bootstrapping set at N=2^16 (128-bit), for `psf_circuits::bootstrap` with full slots
    /// (2^15): `q_0` 60 bits | 12 user levels of 45 bits (scale 2^45) | SlotsToCoeffs 3 x 40 |
    /// EvalMod 8 x 60 | CoeffsToSlots 3 x 55; P = 8 x 50 bits (IFMA paths), four digits of
    /// seven primes. log QP = 1765 <= 1772. A refreshed ciphertext has 12 levels left.
    /// Measured bootstrapping precision over 2^15 uniform real inputs: 21.0 min / 23.8 mean bits;
    /// keys 5.61 GiB (generated in 30.7 s on 2 threads). Details:
    /// `crates/circuits/BOOTSTRAP_NOTES.md`.
    pub fn n16_boot_128bit() -> CkksParametersLiteral {
        with_digits(
            literal(
                "N16_QP1765_BOOT_128BIT",
                16,
                boot_q(60, &[(45, 12), (40, 3), (60, 8), (55, 3)]),
                vec![50; 8],
                45,
            ),
            7,
        )
    }

    /// Bootstrapping set at N=2^15 (128-bit), full slots (2^14): `q_0` 50 bits | 2 user levels
    /// of 40 bits (scale 2^40) | SlotsToCoeffs 3 x 34 | EvalMod 8 x 50 | CoeffsToSlots 3 x 48;
    /// P = 2 x 51 bits, nine digits of two primes. log QP = 878 <= 881. A refreshed ciphertext
    /// has 2 levels left (the 881-bit bound leaves little room at this ring degree). Measured
    /// bootstrapping precision: 14.95 min / 17.25 mean bits; keys 3.84 GiB (16.5 s on 2 threads).
    pub fn n15_boot_128bit() -> CkksParametersLiteral {
        with_digits(
            literal(
                "N15_QP878_BOOT_128BIT",
                15,
                boot_q(50, &[(40, 2), (34, 3), (50, 8), (48, 3)]),
                vec![51; 2],
                40,
            ),
            2,
        )
    }

    /// `q_0` then runs of `(bits, count)`.
    fn boot_q(q0: u32, runs: &[(u32, usize)]) -> Vec<u32> {
        let mut q = vec![q0];
        for &(bits, count) in runs {
            q.extend(std::iter::repeat_n(bits, count));
        }
        q
    }

    fn with_digits(mut lit: CkksParametersLiteral, digit_size: usize) -> CkksParametersLiteral {
        lit.ring.digit_size = Some(digit_size);
        lit
    }

    fn anchor_q(depth: usize) -> Vec<u32> {
        let mut q = vec![60];
        q.extend(std::iter::repeat_n(50, depth));
        q
    }
}
