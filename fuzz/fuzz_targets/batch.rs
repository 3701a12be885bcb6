//! The service's ciphertext batches and job results (`psf_service::frame`).
#![no_main]

use psf_service::frame::{decode_ciphertexts, decode_result, encode_ciphertexts};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(cts) = decode_ciphertexts(data, psf_fuzz::params(), 0, 8) {
        assert_eq!(encode_ciphertexts(&cts), data);
    }
    let _ = decode_result(data, psf_fuzz::params(), 8);
});
