//! Encoding between slot vectors and real polynomial coefficients.
//!
//! [`SpecialFft`] is the canonical embedding of `R[X]/(X^N+1)` restricted to `n` slots, in pure
//! `f64`: scaling, rounding and the RNS representation are the encoder's business.

mod special_fft;

pub use special_fft::SpecialFft;

/// Smallest supported `log2(N)`.
pub const MIN_LOG_N: u32 = 1;
/// Largest supported `log2(N)`.
pub const MAX_LOG_N: u32 = 20;

/// Everything that can go wrong when building encoding tables.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodingError {
    /// `log2(N)` is outside `[MIN_LOG_N, MAX_LOG_N]`.
    #[error("log2(N) = {log_n} is not supported (need {min} <= log2(N) <= {max})")]
    InvalidLogN { log_n: u32, min: u32, max: u32 },
    /// The number of slots exceeds `N/2`.
    #[error("log2(slots) = {log_slots} is too large for log2(N) = {log_n} (need <= {max})")]
    InvalidLogSlots {
        log_slots: u32,
        log_n: u32,
        max: u32,
    },
}
