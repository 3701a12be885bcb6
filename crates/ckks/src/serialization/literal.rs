//! Compact binary encoding of parameter literals (decoded without parameters, checked by
//! `try_build`).

use psf_rlwe::{ParametersLiteral, SecretDistribution};

use super::wire::{Reader, Writer};
use super::{DecodeError, DecodeResult, HEADER_LEN, ObjectKind, fnv1a64};
use crate::{CkksParameters, CkksParametersLiteral};

fn u32s_len(v: &[u32]) -> usize {
    4 + 4 * v.len()
}

fn opt_u64s_len(v: &Option<Vec<u64>>) -> usize {
    1 + v.as_ref().map_or(0, |v| 4 + 8 * v.len())
}

fn write_u32s(w: &mut Writer, v: &[u32]) {
    w.len32(v.len());
    v.iter().for_each(|&x| w.u32(x));
}

fn write_opt_u64s(w: &mut Writer, v: &Option<Vec<u64>>) {
    w.u8(u8::from(v.is_some()));
    if let Some(v) = v {
        w.len32(v.len());
        v.iter().for_each(|&x| w.u64(x));
    }
}

/// A `u32` count of `elem`-byte items, checked against the remaining input before allocating.
fn read_count(r: &mut Reader, field: &'static str, elem: usize) -> DecodeResult<usize> {
    let count = r.len32(field, 0, u32::MAX as usize)?;
    r.ensure(r.product(&[count, elem])?)?;
    Ok(count)
}

fn read_u32s(r: &mut Reader, field: &'static str) -> DecodeResult<Vec<u32>> {
    let count = read_count(r, field, 4)?;
    (0..count).map(|_| r.u32()).collect()
}

fn read_opt_u64s(r: &mut Reader, field: &'static str) -> DecodeResult<Option<Vec<u64>>> {
    if !r.flag(field)? {
        return Ok(None);
    }
    let count = read_count(r, field, 8)?;
    (0..count)
        .map(|_| r.u64())
        .collect::<DecodeResult<_>>()
        .map(Some)
}

impl CkksParametersLiteral {
    /// Compact binary encoding. Header fingerprint: FNV-1a of the body. Body (little-endian):
    /// `name_len: u32, name: utf-8, log_n: u32, log_default_scale: u32, log_q: u32 count +
    /// u32s, log_p: likewise, q: u8 flag [+ u32 count + u64s], p: likewise, digit_size: u8
    /// flag [+ u64], secret: u8 (0 ternary, 1 sparse [+ hamming weight u64]), sigma: f64`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let l = &self.ring;
        let body = 4
            + l.name.len()
            + 8
            + u32s_len(&l.log_q)
            + u32s_len(&l.log_p)
            + opt_u64s_len(&l.q)
            + opt_u64s_len(&l.p)
            + 1
            + 8 * usize::from(l.digit_size.is_some())
            + 1
            + 8 * usize::from(matches!(l.secret, SecretDistribution::SparseTernary { .. }))
            + 8;
        let mut w = Writer::new(ObjectKind::Parameters, 0, body);
        w.len32(l.name.len());
        w.bytes(l.name.as_bytes());
        w.u32(l.log_n);
        w.u32(self.log_default_scale);
        write_u32s(&mut w, &l.log_q);
        write_u32s(&mut w, &l.log_p);
        write_opt_u64s(&mut w, &l.q);
        write_opt_u64s(&mut w, &l.p);
        w.u8(u8::from(l.digit_size.is_some()));
        if let Some(d) = l.digit_size {
            w.u64(d as u64);
        }
        match l.secret {
            SecretDistribution::Ternary => w.u8(0),
            SecretDistribution::SparseTernary { hamming_weight } => {
                w.u8(1);
                w.u64(hamming_weight as u64);
            }
        }
        w.f64(l.sigma);
        let checksum = fnv1a64(w.body());
        w.set_fingerprint(checksum);
        w.finish()
    }

    /// Decodes a literal and checks that it builds (`try_build`).
    pub fn from_bytes(bytes: &[u8]) -> DecodeResult<Self> {
        decode_literal(bytes).map(|(literal, _)| literal)
    }
}

impl CkksParameters {
    /// [`CkksParametersLiteral::to_bytes`] of [`CkksParameters::literal`] (primes included, so
    /// decoding searches for none).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.literal().to_bytes()
    }

    /// Decodes and builds parameters.
    pub fn from_bytes(bytes: &[u8]) -> DecodeResult<Self> {
        decode_literal(bytes).map(|(_, params)| params)
    }
}

fn decode_literal(bytes: &[u8]) -> DecodeResult<(CkksParametersLiteral, CkksParameters)> {
    let mut r = Reader::new(bytes);
    let found = r.header(ObjectKind::Parameters)?;
    let expected = fnv1a64(bytes.get(HEADER_LEN..).unwrap_or_default());
    if found != expected {
        return Err(DecodeError::ChecksumMismatch { expected, found });
    }
    let name_len = read_count(&mut r, "name length", 1)?;
    let name = std::str::from_utf8(r.take(name_len)?)
        .map_err(|_| DecodeError::InvalidUtf8 { field: "name" })?
        .to_owned();
    let log_n = r.u32()?;
    let log_default_scale = r.u32()?;
    let log_q = read_u32s(&mut r, "log_q")?;
    let log_p = read_u32s(&mut r, "log_p")?;
    let q = read_opt_u64s(&mut r, "q")?;
    let p = read_opt_u64s(&mut r, "p")?;
    let digit_size = match r.flag("digit_size")? {
        true => Some(usize::try_from(r.u64()?).unwrap_or(usize::MAX)),
        false => None,
    };
    let secret = match r.u8()? {
        0 => SecretDistribution::Ternary,
        1 => SecretDistribution::SparseTernary {
            hamming_weight: usize::try_from(r.u64()?).unwrap_or(usize::MAX),
        },
        value => {
            return Err(DecodeError::InvalidTag {
                field: "secret",
                value,
            });
        }
    };
    let sigma = f64::from_bits(r.u64()?);
    r.finish()?;
    let literal = CkksParametersLiteral {
        ring: ParametersLiteral {
            name,
            log_n,
            log_q,
            log_p,
            q,
            p,
            digit_size,
            secret,
            sigma,
        },
        log_default_scale,
    };
    let params = literal
        .try_build()
        .map_err(|e| DecodeError::InvalidParameters {
            reason: e.to_string(),
        })?;
    Ok((literal, params))
}
