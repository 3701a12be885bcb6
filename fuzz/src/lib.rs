//! Shared parts of the fuzz targets: the fuzzing parameter set and the decoder check.

use std::sync::OnceLock;

use psf_ckks::CkksParameters;
use psf_ckks::serialization::{WireDecode, WireEncode};

/// The fuzzing set of `psf_service::fuzzing`, built once.
pub fn params() -> &'static CkksParameters {
    static PARAMS: OnceLock<CkksParameters> = OnceLock::new();
    PARAMS.get_or_init(|| psf_service::fuzzing::params().expect("fuzzing parameters"))
}

/// Decodes `data` as a `T`; whatever decodes must re-encode to the same bytes (the format is
/// canonical).
pub fn check_decoder<T: WireDecode + WireEncode>(data: &[u8]) {
    if let Ok(obj) = T::from_bytes(data, params()) {
        assert_eq!(
            obj.to_bytes(),
            data,
            "decoded object re-encodes differently"
        );
    }
}
