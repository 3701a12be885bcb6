//! `SecretKey::from_bytes` under the fuzzing parameters (re-encoded through the secret path).
#![no_main]

use psf_ckks::SecretKey;
use psf_ckks::serialization::{WireDecode, WireEncodeSecret};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(sk) = SecretKey::from_bytes(data, psf_fuzz::params()) {
        assert_eq!(sk.to_bytes_secret().as_slice(), data);
    }
});
