//! `RelinearizationKey::from_bytes` under the fuzzing parameters.
#![no_main]

libfuzzer_sys::fuzz_target!(
    |data: &[u8]| psf_fuzz::check_decoder::<psf_rlwe::RelinearizationKey>(data)
);
