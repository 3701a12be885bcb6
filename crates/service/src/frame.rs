//! The body of job requests and answers: a batch of ciphertexts, each in the PSFW wire format
//! of `psf_ckks::serialization`, framed with lengths.
//!
//! | offset | size | field                                             |
//! |--------|------|---------------------------------------------------|
//! | 0      | 4    | magic [`BATCH_MAGIC`] (`b"PSFB"`)                 |
//! | 4      | 2    | version, `u16` ([`BATCH_VERSION`])                |
//! | 6      | 2    | reserved, must be 0                               |
//! | 8      | 4    | count, `u32`                                      |
//! | 12     | ...  | count x (`len: u64`, `len` bytes of a ciphertext) |
//!
//! Little-endian throughout. Decoding checks the count against a caller's limit before
//! allocating, each length against the bytes left, decodes each ciphertext with
//! `from_bytes(bytes, &params)` and rejects trailing bytes.
//!
//! A job's answer is a result frame: the job's JSON facts ([`JobResult`]: time, cache size,
//! the model's latency report) and then the batch of output ciphertexts.
//!
//! | offset | size | field                                             |
//! |--------|------|---------------------------------------------------|
//! | 0      | 4    | magic [`RESULT_MAGIC`] (`b"PSFR"`)                |
//! | 4      | 2    | version, `u16` ([`RESULT_VERSION`])               |
//! | 6      | 2    | reserved, must be 0                               |
//! | 8      | 4    | `json_len: u32`                                   |
//! | 12     | ...  | `json_len` bytes of [`JobResult`] JSON, a batch   |

use psf_ckks::serialization::{HEADER_LEN, WireDecode, WireEncode};
use psf_ckks::{Ciphertext, CkksParameters};

use crate::api::JobResult;
use crate::{Result, ServiceError};

/// First four bytes of a batch.
pub const BATCH_MAGIC: [u8; 4] = *b"PSFB";
/// The batch format version this build writes and reads.
pub const BATCH_VERSION: u16 = 1;
/// Length of the batch header.
pub const BATCH_HEADER_LEN: usize = 12;
/// First four bytes of a job result.
pub const RESULT_MAGIC: [u8; 4] = *b"PSFR";
/// The result format version this build writes and reads.
pub const RESULT_VERSION: u16 = 1;

/// Encodes ciphertexts as one batch.
pub fn encode_ciphertexts(cts: &[Ciphertext]) -> Vec<u8> {
    let total: usize = cts.iter().map(|c| 8 + c.encoded_len()).sum();
    let mut out = Vec::with_capacity(BATCH_HEADER_LEN + total);
    out.extend_from_slice(&BATCH_MAGIC);
    out.extend_from_slice(&BATCH_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(cts.len() as u32).to_le_bytes());
    for ct in cts {
        let bytes = ct.to_bytes();
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

fn frame_error(offset: usize, reason: impl Into<String>) -> ServiceError {
    ServiceError::Frame {
        offset,
        reason: reason.into(),
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8]> {
        let left = self.bytes.len() - self.pos;
        if len > left {
            return Err(frame_error(
                self.pos,
                format!("truncated: {len} bytes needed, {left} left"),
            ));
        }
        let out = &self.bytes[self.pos..self.pos + len];
        self.pos += len;
        Ok(out)
    }

    fn array<const K: usize>(&mut self) -> Result<[u8; K]> {
        let mut out = [0u8; K];
        out.copy_from_slice(self.take(K)?);
        Ok(out)
    }
}

/// Decodes a batch of between `min` and `max` ciphertexts under `params`.
///
/// # Errors
/// [`ServiceError::Frame`] for a bad header, count, length or trailing bytes;
/// [`ServiceError::Decode`] for a ciphertext that does not decode under `params`.
pub fn decode_ciphertexts(
    bytes: &[u8],
    params: &CkksParameters,
    min: usize,
    max: usize,
) -> Result<Vec<Ciphertext>> {
    let mut c = Cursor { bytes, pos: 0 };
    header(&mut c, BATCH_MAGIC, BATCH_VERSION, "PSFB")?;
    let count = u32::from_le_bytes(c.array()?) as usize;
    if count < min || count > max {
        return Err(frame_error(
            8,
            format!("{count} ciphertexts, expected between {min} and {max}"),
        ));
    }
    // Every entry takes at least its length field and a PSFW header: a count the bytes cannot
    // hold is refused before anything is allocated.
    let left = bytes.len() - c.pos;
    if count > left / (8 + HEADER_LEN) {
        return Err(frame_error(
            8,
            format!("{count} ciphertexts cannot fit in {left} bytes"),
        ));
    }
    let mut cts = Vec::with_capacity(count);
    for _ in 0..count {
        let at = c.pos;
        let len = u64::from_le_bytes(c.array()?);
        let len = usize::try_from(len).map_err(|_| frame_error(at, "length overflows"))?;
        let body = c.take(len)?;
        let ct = Ciphertext::from_bytes(body, params).map_err(|source| ServiceError::Decode {
            what: "ciphertext",
            source,
        })?;
        cts.push(ct);
    }
    if c.pos != bytes.len() {
        return Err(frame_error(
            c.pos,
            format!("{} trailing bytes", bytes.len() - c.pos),
        ));
    }
    Ok(cts)
}

fn header(c: &mut Cursor<'_>, magic: [u8; 4], version: u16, what: &str) -> Result<()> {
    let found: [u8; 4] = c.array()?;
    if found != magic {
        return Err(frame_error(
            0,
            format!("bad magic {found:02x?}, expected {what}"),
        ));
    }
    let v = u16::from_le_bytes(c.array()?);
    if v != version {
        return Err(frame_error(4, format!("unsupported {what} version {v}")));
    }
    if u16::from_le_bytes(c.array()?) != 0 {
        return Err(frame_error(6, "reserved bytes must be 0"));
    }
    Ok(())
}

/// Encodes a job's answer: its facts and its output ciphertexts.
///
/// # Errors
/// [`ServiceError::Internal`] if the facts do not serialize (cannot happen).
pub fn encode_result(result: &JobResult, outputs: &[Ciphertext]) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(result).map_err(|e| ServiceError::Internal {
        reason: format!("job result JSON: {e}"),
    })?;
    let json_len = u32::try_from(json.len()).map_err(|_| ServiceError::Internal {
        reason: "job result JSON over 4 GiB".into(),
    })?;
    let batch = encode_ciphertexts(outputs);
    let mut out = Vec::with_capacity(12 + json.len() + batch.len());
    out.extend_from_slice(&RESULT_MAGIC);
    out.extend_from_slice(&RESULT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&json_len.to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&batch);
    Ok(out)
}

/// Decodes a job's answer under `params`, with at most `max` output ciphertexts.
///
/// # Errors
/// [`ServiceError::Frame`] for a bad header, JSON or batch frame; [`ServiceError::Decode`]
/// for a ciphertext that does not decode under `params`.
pub fn decode_result(
    bytes: &[u8],
    params: &CkksParameters,
    max: usize,
) -> Result<(JobResult, Vec<Ciphertext>)> {
    let mut c = Cursor { bytes, pos: 0 };
    header(&mut c, RESULT_MAGIC, RESULT_VERSION, "PSFR")?;
    let json_len = u32::from_le_bytes(c.array()?) as usize;
    let at = c.pos;
    let json = c.take(json_len)?;
    let result: JobResult = serde_json::from_slice(json)
        .map_err(|e| frame_error(at, format!("job result JSON: {e}")))?;
    let outputs = decode_ciphertexts(&bytes[c.pos..], params, 0, max).map_err(|e| match e {
        ServiceError::Frame { offset, reason } => frame_error(c.pos + offset, reason),
        other => other,
    })?;
    Ok((result, outputs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use psf_ckks::{Encoder, Encryptor, KeyGenerator, sets};

    fn setup() -> (CkksParameters, Vec<Ciphertext>) {
        let params = sets::insecure_n10().try_build().unwrap();
        let mut kgen = KeyGenerator::seeded(params.ring(), 3);
        let sk = kgen.gen_secret_key();
        let enc = Encoder::new(&params);
        let cts = (0..2)
            .map(|i| {
                let pt = enc
                    .encode(&[i as f64], 9, 2, params.default_scale())
                    .unwrap();
                Encryptor::with_secret_key(&sk).encrypt(&pt).unwrap()
            })
            .collect();
        (params, cts)
    }

    #[test]
    fn round_trip_and_rejections() {
        let (params, cts) = setup();
        let bytes = encode_ciphertexts(&cts);
        let back = decode_ciphertexts(&bytes, &params, 1, 4).unwrap();
        assert_eq!(encode_ciphertexts(&back), bytes);
        // Every strict prefix fails with a typed error.
        for cut in [0, 3, 11, 12, 19, 20, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode_ciphertexts(&bytes[..cut], &params, 1, 4).is_err());
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        let err = decode_ciphertexts(&trailing, &params, 1, 4).unwrap_err();
        assert_eq!(err.code(), "malformed_frame");
        let err = decode_ciphertexts(&bytes, &params, 3, 4).unwrap_err();
        assert_eq!(err.code(), "malformed_frame");
        let mut huge = bytes.clone();
        huge[12..20].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode_ciphertexts(&huge, &params, 1, 4).is_err());
    }

    #[test]
    fn results_round_trip_and_reject_garbage() {
        let (params, cts) = setup();
        let result = JobResult {
            kind: "forward".into(),
            seconds: 1.5,
            cached_steps: None,
            report: Some(psf_infer::Report::default()),
            earlier_steps: vec![psf_infer::Report::default()],
        };
        let bytes = encode_result(&result, &cts).unwrap();
        let (back, outs) = decode_result(&bytes, &params, 4).unwrap();
        assert_eq!(back, result);
        assert_eq!(encode_ciphertexts(&outs), encode_ciphertexts(&cts));
        for cut in [0, 4, 11, 12, 20, bytes.len() - 1] {
            assert!(decode_result(&bytes[..cut], &params, 4).is_err());
        }
        let mut bad_json = bytes.clone();
        bad_json[12] = b'[';
        assert_eq!(
            decode_result(&bad_json, &params, 4).unwrap_err().code(),
            "malformed_frame"
        );
        assert!(decode_result(&bytes, &params, 1).is_err());
        let mut huge = bytes.clone();
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_result(&huge, &params, 4).is_err());
    }

    #[test]
    fn counts_the_bytes_cannot_hold_are_refused_before_allocating() {
        let (params, _) = setup();
        let mut frame = encode_ciphertexts(&[]);
        frame[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        frame.extend_from_slice(&[0; 64]);
        let err = decode_ciphertexts(&frame, &params, 0, usize::MAX).unwrap_err();
        assert!(err.to_string().contains("cannot fit"), "{err}");
    }

    #[test]
    fn other_parameters_are_rejected() {
        let (_, cts) = setup();
        let other = sets::insecure_n12().try_build().unwrap();
        let err = decode_ciphertexts(&encode_ciphertexts(&cts), &other, 1, 4).unwrap_err();
        assert_eq!(err.code(), "malformed_object");
    }
}
