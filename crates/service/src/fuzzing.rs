//! Fixtures shared by the fuzz targets (`fuzz/` at the repository root) and the example that
//! writes their seed corpus: a tiny INSECURE parameter set (N = 2^4) so that valid objects are
//! a few KiB and mutations reach every check of the decoders.

use psf_circuits::bootstrap::Encapsulation;
use psf_ckks::serialization::{WireEncode, WireEncodeSecret};
use psf_ckks::{CkksParameters, CkksParametersLiteral, EvaluationKeys, KeyGenerator};
use psf_rlwe::ParametersLiteral;

use crate::{ClientKeys, Engine, ProbeSpec, Result, frame};

/// The fuzzing set: N = 2^4, Q = 60 + 5 x 40 bits, P = 2 x 61 bits. NOT SECURE.
pub fn literal() -> CkksParametersLiteral {
    CkksParametersLiteral {
        ring: ParametersLiteral {
            name: "INSECURE_N4_FUZZ".into(),
            log_n: 4,
            log_q: vec![60, 40, 40, 40, 40, 40],
            log_p: vec![61, 61],
            q: None,
            p: None,
            digit_size: None,
            secret: psf_rlwe::SecretDistribution::Ternary,
            sigma: 3.2,
        },
        log_default_scale: 40,
    }
}

/// The built fuzzing set.
///
/// # Errors
/// None expected (the literal is fixed).
pub fn params() -> Result<CkksParameters> {
    Ok(literal().try_build()?)
}

/// A probe small enough for the fuzzing set: `d = 4`, GELU of degree 3 on `[-2, 2]`.
pub fn probe_spec() -> ProbeSpec {
    ProbeSpec {
        dim: 4,
        seed: 1,
        interval: (-2.0, 2.0),
        degree: 3,
    }
}

/// The engine the server fuzz target runs.
///
/// # Errors
/// None expected.
pub fn engine() -> Result<Engine> {
    Engine::probe(params()?, probe_spec())
}

/// Valid encodings to seed each target's corpus, by target name: one or two of every object
/// the wire format has, a ciphertext batch and a job result.
///
/// # Errors
/// None expected.
pub fn seeds() -> Result<Vec<(&'static str, Vec<u8>)>> {
    let params = params()?;
    let engine = engine()?;
    let keys = ClientKeys::generate(&params, &engine.keys(crate::SessionMode::Forward)?, Some(1))?;
    let ct = keys.encrypt_replicated(&[0.5, -0.25, 0.125, 1.0])?;
    let mut kgen = KeyGenerator::seeded(params.ring(), 2);
    let sk = kgen.gen_secret_key();
    let evk = keys.evaluation_keys();
    let relin = evk.relin.clone().ok_or(crate::ServiceError::Internal {
        reason: "no relinearization key".into(),
    })?;
    let galois = evk
        .galois
        .values()
        .next()
        .cloned()
        .ok_or(crate::ServiceError::Internal {
            reason: "no Galois key".into(),
        })?;
    let pt = psf_ckks::Encoder::new(&params).encode(&[1.0, 2.0], 2, 2, params.default_scale())?;
    let mut small = EvaluationKeys::default();
    small.galois.insert(galois.galois_element, galois.clone());
    let encapsulation = Encapsulation::generate(&params, keys.secret_key(), 4, Some(3))?;
    let result = crate::api::JobResult {
        kind: "forward".into(),
        seconds: 0.5,
        cached_steps: None,
        report: None,
        earlier_steps: Vec::new(),
    };
    Ok(vec![
        ("parameters", params.to_bytes()),
        ("parameters", psf_ckks::sets::insecure_n10().to_bytes()),
        ("plaintext", pt.to_bytes()),
        ("ciphertext", ct.to_bytes()),
        ("secret_key", sk.to_bytes_secret().to_vec()),
        ("public_key", keys.public_key().to_bytes()),
        ("switching_key", relin.0.to_bytes()),
        ("relinearization_key", relin.to_bytes()),
        ("galois_key", galois.to_bytes()),
        ("evaluation_keys", small.to_bytes()),
        ("evaluation_keys", EvaluationKeys::default().to_bytes()),
        ("encapsulation", encapsulation.to_bytes()),
        (
            "batch",
            frame::encode_ciphertexts(std::slice::from_ref(&ct)),
        ),
        (
            "batch",
            frame::encode_ciphertexts(&[ct.clone(), ct.clone()]),
        ),
        ("batch", frame::encode_result(&result, &[ct])?),
    ])
}
