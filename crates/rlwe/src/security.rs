//! The Homomorphic Encryption Standard's bounds for 128-bit classical security with a ternary
//! secret (Albrecht et al., HE standard 2018, Table 1; N = 2^16 and 2^17 by the standard's
//! linear extension, as Lattigo and OpenFHE use).

/// Maximum `log2(QP)` for 128-bit security at `N = 2^log_n`, if tabulated.
pub fn max_log_qp_128(log_n: u32) -> Option<u32> {
    match log_n {
        10 => Some(27),
        11 => Some(54),
        12 => Some(109),
        13 => Some(218),
        14 => Some(438),
        15 => Some(881),
        16 => Some(1772),
        17 => Some(3544),
        _ => None,
    }
}

/// Prefix that marks a parameter set as deliberately insecure (tests and toy examples only).
pub const INSECURE_PREFIX: &str = "INSECURE";

#[cfg(test)]
mod tests {
    #[test]
    fn table_matches_design_figures() {
        assert_eq!(super::max_log_qp_128(15), Some(881));
        assert_eq!(super::max_log_qp_128(16), Some(1772));
        assert_eq!(super::max_log_qp_128(9), None);
    }
}
