//! `Encapsulation::from_bytes` (the bootstrapping's encapsulation keys) under the fuzzing
//! parameters; whatever decodes must re-encode to the same bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| psf_fuzz::check_decoder::<
    psf_circuits::bootstrap::Encapsulation,
>(data));
