//! Named bootstrapping configurations: a parameter set of [`psf_ckks::sets`] with the circuit
//! that refreshes its full-slot ciphertexts, and `INSECURE` twins of the same shape at small
//! ring degrees for tests.
//!
//! Design (N = 2^16, 128-bit, `N16_QP1765_BOOT_128BIT`): every error made before
//! SlotsToCoeffs (ModRaise and key-switching noise, CoeffsToSlots' encoded diagonals, EvalMod's
//! noise) is amplified by the message ratio `q_0 / scale` and then by the `sqrt(n)` gain of
//! SlotsToCoeffs. So ScaleDown multiplies the level-0 input by an integer up to a ratio of
//! `2^6` (`q_0 ~ 2^60`, user scale `2^45`): the sine's curvature error is then ~`2^-26` per
//! slot. EvalMod runs at scale `q_0` on 60-bit primes: a Chebyshev interpolant of degree 62 of
//! the cosine scaled by `2^-2` and two double angles (depth 8; interpolation error below
//! `2^-44` after amplification; noise amplified ~`2^6`). The sparse ephemeral secret has
//! weight 32, so `|I| < K = 16` except with probability `< 2^-40`
//! ([`super::eval_mod::k_bound`]). CoeffsToSlots and SlotsToCoeffs use three levels each
//! (radix-32 factors, 63 diagonals each, sharing their rotation keys); SlotsToCoeffs only
//! needs 40-bit primes, CoeffsToSlots 55 (its floor is the `f64` accuracy of the diagonals).

use psf_ckks::{CkksParametersLiteral, sets};

use super::{BootstrapConfig, EvalModSpec};

/// A parameter set and its bootstrapping circuit.
#[derive(Debug, Clone, PartialEq)]
pub struct BootstrapPreset {
    /// The CKKS parameters.
    pub params: CkksParametersLiteral,
    /// The circuit.
    pub config: BootstrapConfig,
}

/// EvalMod of the presets: `K = 16`, degree 62, two double angles (depth 8).
pub const EVAL_MOD: EvalModSpec = EvalModSpec {
    k: 16.0,
    degree: 62,
    double_angle: 2,
};

/// `log2 (q_0 / scale)` after ScaleDown.
pub const LOG_MESSAGE_RATIO: u32 = 6;

/// Weight of the ephemeral sparse secret.
pub const EPHEMERAL_WEIGHT: usize = 32;

fn full_slots(log_n: u32) -> BootstrapConfig {
    BootstrapConfig {
        log_slots: log_n - 1,
        cts_levels: 3,
        stc_levels: 3,
        eval_mod: EVAL_MOD,
        ephemeral_weight: Some(EPHEMERAL_WEIGHT),
        log_message_ratio: LOG_MESSAGE_RATIO,
    }
}

/// N = 2^16, 128-bit, 2^15 slots, 12 levels left after bootstrapping
/// (`N16_QP1765_BOOT_128BIT`). Measured (2^15 uniform real inputs in `[-1, 1]`, example
/// `bootstrap_bench`): precision 21.0 min / 23.8 mean bits; keys 5.61 GiB (relin, conjugation,
/// 38 rotations, 2 encapsulation keys) generated in 30.7 s on 2 threads; 4.40 GiB of encoded
/// diagonals; 17.9 s per bootstrap on one (loaded) core; peak 11.9 GiB. See
/// `crates/circuits/BOOTSTRAP_NOTES.md`.
pub fn n16_128bit() -> BootstrapPreset {
    BootstrapPreset {
        params: sets::n16_boot_128bit(),
        config: full_slots(16),
    }
}

/// N = 2^15, 128-bit, 2^14 slots, 2 levels left (`N15_QP878_BOOT_128BIT`). Measured: precision
/// 14.95 min / 17.25 mean bits; keys 3.84 GiB generated in 16.5 s on 2 threads; 4.9 s per
/// bootstrap on one core; peak 5.8 GiB.
pub fn n15_128bit() -> BootstrapPreset {
    BootstrapPreset {
        params: sets::n15_boot_128bit(),
        config: full_slots(15),
    }
}

/// The N = 2^16 preset's chain and circuit at `N = 2^log_n`, full slots. NOT SECURE: for
/// tests and quick checks of the same shape.
pub fn insecure_twin_of_n16(log_n: u32) -> BootstrapPreset {
    let mut params = sets::n16_boot_128bit();
    params.ring.name = format!("INSECURE_N{log_n}_TWIN_OF_N16_BOOT");
    params.ring.log_n = log_n;
    BootstrapPreset {
        params,
        config: full_slots(log_n),
    }
}

/// The preset for `N = 2^log_n`: the 128-bit sets at 16 and 15, the insecure twin below.
pub fn for_log_n(log_n: u32) -> BootstrapPreset {
    match log_n {
        16 => n16_128bit(),
        15 => n15_128bit(),
        _ => insecure_twin_of_n16(log_n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootstrap::eval_mod::k_bound;

    #[test]
    fn presets_build_secure_and_fit_their_circuit() {
        for (preset, left) in [(n16_128bit(), 12), (n15_128bit(), 2)] {
            let p = preset.params.try_build().unwrap();
            assert!(p.ring().is_secure(), "{}", p.ring().name());
            assert!(p.ring().log_qp() <= 1772.0);
            assert_eq!(p.ring().max_level() - preset.config.depth(), left);
            let k = k_bound(EPHEMERAL_WEIGHT, p.ring().log_n(), 40.0);
            assert!(k <= preset.config.eval_mod.k, "K bound {k}");
        }
        // Amplified interpolation error (times 4^r / 2 pi) well below the CoeffsToSlots floor.
        let amp = f64::from(4u32.pow(EVAL_MOD.double_angle)) / std::f64::consts::TAU;
        let err = (EVAL_MOD.poly_error() * amp).log2();
        assert!(err < -44.0, "amplified interpolation error 2^{err:.1}");
    }
}
