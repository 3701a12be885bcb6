//! The PSFW wire format of [`Encapsulation`] (object kind `EncapsulationKeys`, see
//! `psf_ckks::serialization`): the sparse secret's weight, the small set's fingerprint and the
//! two switching keys. Decoding derives the small set from the receiver's parameters and the
//! weight ([`small_params`]), so keys made for other parameters or another derivation fail
//! with a typed error.

use psf_ckks::CkksParameters;
use psf_ckks::serialization::{
    DecodeError, DecodeResult, WireDecode, WireEncode, decode_encapsulation,
    encapsulation_encoded_len, encode_encapsulation,
};

use super::keys::{Encapsulation, small_params};

impl WireEncode for Encapsulation {
    fn encoded_len(&self) -> usize {
        encapsulation_encoded_len(self.to_sparse(), self.to_dense())
    }

    fn to_bytes(&self) -> Vec<u8> {
        encode_encapsulation(self.weight(), self.to_sparse(), self.to_dense())
    }
}

impl WireDecode for Encapsulation {
    fn from_bytes(bytes: &[u8], params: &CkksParameters) -> DecodeResult<Self> {
        let parts = decode_encapsulation(bytes, params, |h| {
            small_params(params, h).map_err(|e| e.to_string())
        })?;
        Encapsulation::from_parts(
            params,
            parts.hamming_weight,
            parts.to_sparse,
            parts.to_dense,
        )
        .map_err(|e| DecodeError::Malformed {
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use psf_ckks::serialization::ObjectKind;
    use psf_ckks::{KeyGenerator, sets};

    fn keys(params: &CkksParameters, seed: u64, h: usize) -> Encapsulation {
        let mut kgen = KeyGenerator::seeded(params.ring(), seed);
        let sk = kgen.gen_secret_key();
        Encapsulation::generate(params, &sk, h, Some(seed + 1)).unwrap()
    }

    #[test]
    fn round_trip_is_canonical() {
        let params = sets::insecure_n10().try_build().unwrap();
        let enc = keys(&params, 1, 16);
        let bytes = enc.to_bytes();
        assert_eq!(bytes.len(), enc.encoded_len());
        assert_eq!(bytes[6], ObjectKind::EncapsulationKeys as u8);
        let back = Encapsulation::from_bytes(&bytes, &params).unwrap();
        assert_eq!(back.weight(), 16);
        assert_eq!(back.to_bytes(), bytes);
        assert_eq!(back.to_dense().to_bytes(), enc.to_dense().to_bytes());
        assert_eq!(back.to_sparse().to_bytes(), enc.to_sparse().to_bytes());
        assert_eq!(back.small_params().name(), enc.small_params().name());
    }

    #[test]
    fn malformed_and_foreign_bytes_are_typed_errors() {
        let params = sets::insecure_n10().try_build().unwrap();
        let bytes = keys(&params, 3, 8).to_bytes();
        // Every prefix, including the empty one, is refused without panicking.
        for cut in (0..bytes.len()).step_by(97).chain([bytes.len() - 1]) {
            assert!(Encapsulation::from_bytes(&bytes[..cut], &params).is_err());
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            Encapsulation::from_bytes(&trailing, &params),
            Err(DecodeError::TrailingBytes { .. })
        ));
        // Weight 0 and weights past N.
        for h in [0u32, 1025, u32::MAX] {
            let mut b = bytes.clone();
            b[16..20].copy_from_slice(&h.to_le_bytes());
            assert!(matches!(
                Encapsulation::from_bytes(&b, &params),
                Err(DecodeError::InvalidLength { .. })
            ));
        }
        // A weight is not part of a set's fingerprint (the small sets of two weights share
        // their primes): another weight decodes, and the receiver checks it against its needs.
        let mut b = bytes.clone();
        b[16..20].copy_from_slice(&9u32.to_le_bytes());
        assert_eq!(Encapsulation::from_bytes(&b, &params).unwrap().weight(), 9);
        // A corrupted small-set fingerprint.
        let mut b = bytes.clone();
        b[20] ^= 1;
        assert!(matches!(
            Encapsulation::from_bytes(&b, &params),
            Err(DecodeError::ParametersMismatch { .. })
        ));
        // A residue not below its prime.
        let mut b = bytes.clone();
        let at = 16 + 12 + 12;
        b[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            Encapsulation::from_bytes(&b, &params),
            Err(DecodeError::ResidueOutOfRange { .. })
        ));
        // Keys of other parameters.
        let other = sets::insecure_n12().try_build().unwrap();
        assert!(matches!(
            Encapsulation::from_bytes(&bytes, &other),
            Err(DecodeError::ParametersMismatch { .. })
        ));
        // Another object kind.
        let galois = psf_ckks::EvaluationKeys::default().to_bytes();
        assert!(matches!(
            Encapsulation::from_bytes(&galois, &params),
            Err(DecodeError::WrongKind { .. })
        ));
    }

    #[test]
    fn from_parts_refuses_keys_of_other_sets() {
        let params = sets::insecure_n10().try_build().unwrap();
        let enc = keys(&params, 5, 8);
        let swapped =
            Encapsulation::from_parts(&params, 8, enc.to_dense().clone(), enc.to_sparse().clone());
        assert!(swapped.is_err());
    }
}
