//! `CkksParameters::from_bytes` (decoded without parameters, then built).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(lit) = psf_ckks::CkksParametersLiteral::from_bytes(data) {
        assert_eq!(
            lit.to_bytes(),
            data,
            "decoded literal re-encodes differently"
        );
    }
});
