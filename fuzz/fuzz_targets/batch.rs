//! The service's ciphertext batches (`psf_service::frame::decode_ciphertexts`).
#![no_main]

use psf_service::frame::{decode_ciphertexts, encode_ciphertexts};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(cts) = decode_ciphertexts(data, psf_fuzz::params(), 0, 8) {
        assert_eq!(encode_ciphertexts(&cts), data);
    }
});
