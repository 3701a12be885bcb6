//! Encoding of plaintexts, ciphertexts and keys.

use std::collections::HashMap;
use std::sync::Arc;

use psf_math::RnsPoly;
use psf_rlwe::{
    Ciphertext, GaloisKey, MetaData, Parameters, Plaintext, PublicKey, RelinearizationKey, Scale,
    SecretKey, SwitchingKey,
};
use zeroize::Zeroizing;

use super::wire::{Reader, Writer};
use super::{
    DecodeError, DecodeResult, ObjectKind, WireDecode, WireEncode, WireEncodeSecret,
    parameters_fingerprint,
};
use crate::{CkksParameters, EvaluationKeys};

/// Bytes of `scale: f64, log_slots: u32`.
const META_LEN: usize = 12;

fn residue_bytes<'a>(polys: impl IntoIterator<Item = &'a RnsPoly>) -> usize {
    polys.into_iter().map(|p| 8 * p.data().len()).sum()
}

fn writer(kind: ObjectKind, params: &Parameters, body_len: usize) -> Writer {
    Writer::new(kind, parameters_fingerprint(params), body_len)
}

/// Reads the header of a `kind` object and checks its fingerprint against `params`.
fn reader<'a>(bytes: &'a [u8], kind: ObjectKind, params: &Parameters) -> DecodeResult<Reader<'a>> {
    let mut r = Reader::new(bytes);
    let found = r.header(kind)?;
    let expected = parameters_fingerprint(params);
    if found != expected {
        return Err(DecodeError::ParametersMismatch { expected, found });
    }
    Ok(r)
}

fn write_meta(w: &mut Writer, meta: &MetaData) {
    w.f64(meta.scale.0);
    w.u32(meta.log_slots);
}

fn read_meta(r: &mut Reader, params: &Parameters) -> DecodeResult<MetaData> {
    let bits = r.u64()?;
    let scale = f64::from_bits(bits);
    if !(scale.is_finite() && scale > 0.0) {
        return Err(DecodeError::InvalidScale { bits });
    }
    let log_slots = r.u32()?;
    let max = params.log_n() - 1;
    if log_slots > max {
        return Err(DecodeError::InvalidLogSlots { log_slots, max });
    }
    Ok(MetaData {
        scale: Scale(scale),
        log_slots,
    })
}

fn read_n(r: &mut Reader, params: &Parameters) -> DecodeResult<usize> {
    r.len32("ring degree", params.n(), params.n())
}

/// `count` polynomials over `moduli`, the total length checked before anything is allocated.
fn read_polys(
    r: &mut Reader,
    n: usize,
    moduli: &[u64],
    count: usize,
) -> DecodeResult<Vec<RnsPoly>> {
    r.ensure(r.product(&[count, n, moduli.len(), 8])?)?;
    (0..count).map(|_| r.poly(n, moduli)).collect()
}

fn malformed(e: impl std::fmt::Display) -> DecodeError {
    DecodeError::Malformed {
        reason: e.to_string(),
    }
}

impl WireEncode for Plaintext {
    fn encoded_len(&self) -> usize {
        super::HEADER_LEN + META_LEN + 8 + residue_bytes([&self.poly])
    }

    fn to_bytes(&self) -> Vec<u8> {
        let body = self.encoded_len() - super::HEADER_LEN;
        let mut w = writer(ObjectKind::Plaintext, self.params(), body);
        write_meta(&mut w, &self.meta);
        w.len32(self.poly.n());
        w.len32(self.poly.limbs());
        w.residues(self.poly.data());
        w.finish()
    }
}

impl WireDecode for Plaintext {
    fn from_bytes(bytes: &[u8], params: &CkksParameters) -> DecodeResult<Self> {
        let ring = params.ring();
        let mut r = reader(bytes, ObjectKind::Plaintext, ring)?;
        let meta = read_meta(&mut r, ring)?;
        let n = read_n(&mut r, ring)?;
        let limbs = r.len32("limbs", 1, ring.q().len())?;
        let poly = r.poly(n, &ring.q().primes()[..limbs])?;
        r.finish()?;
        Plaintext::new(ring, poly, meta).map_err(malformed)
    }
}

impl WireEncode for Ciphertext {
    fn encoded_len(&self) -> usize {
        super::HEADER_LEN + META_LEN + 12 + residue_bytes(&self.polys)
    }

    fn to_bytes(&self) -> Vec<u8> {
        let body = self.encoded_len() - super::HEADER_LEN;
        let mut w = writer(ObjectKind::Ciphertext, self.params(), body);
        write_meta(&mut w, &self.meta);
        w.len32(self.params().n());
        w.len32(self.polys.len());
        w.len32(self.polys.first().map_or(0, RnsPoly::limbs));
        for p in &self.polys {
            w.residues(p.data());
        }
        w.finish()
    }
}

impl WireDecode for Ciphertext {
    fn from_bytes(bytes: &[u8], params: &CkksParameters) -> DecodeResult<Self> {
        let ring = params.ring();
        let mut r = reader(bytes, ObjectKind::Ciphertext, ring)?;
        let meta = read_meta(&mut r, ring)?;
        let n = read_n(&mut r, ring)?;
        let count = r.len32("polynomial count", 2, u32::MAX as usize)?;
        let limbs = r.len32("limbs", 1, ring.q().len())?;
        let polys = read_polys(&mut r, n, &ring.q().primes()[..limbs], count)?;
        r.finish()?;
        Ok(Ciphertext::from_parts(ring, polys, meta))
    }
}

impl WireEncodeSecret for SecretKey {
    fn to_bytes_secret(&self) -> Zeroizing<Vec<u8>> {
        let s = self.poly();
        let mut w = writer(ObjectKind::SecretKey, self.params(), 8 + residue_bytes([s]));
        w.len32(s.n());
        w.len32(s.limbs());
        w.residues(s.data());
        Zeroizing::new(w.finish())
    }
}

impl WireDecode for SecretKey {
    fn from_bytes(bytes: &[u8], params: &CkksParameters) -> DecodeResult<Self> {
        let ring = params.ring();
        let mut r = reader(bytes, ObjectKind::SecretKey, ring)?;
        let n = read_n(&mut r, ring)?;
        let qp = ring.qp().len();
        r.len32("limbs", qp, qp)?;
        let s = SecretKey::from_poly(ring, r.poly(n, &ring.qp().primes())?);
        r.finish()?;
        Ok(s)
    }
}

impl WireEncode for PublicKey {
    fn encoded_len(&self) -> usize {
        super::HEADER_LEN + 8 + residue_bytes([&self.b, &self.a])
    }

    fn to_bytes(&self) -> Vec<u8> {
        let body = self.encoded_len() - super::HEADER_LEN;
        let mut w = writer(ObjectKind::PublicKey, self.params(), body);
        w.len32(self.b.n());
        w.len32(self.b.limbs());
        w.residues(self.b.data());
        w.residues(self.a.data());
        w.finish()
    }
}

impl WireDecode for PublicKey {
    fn from_bytes(bytes: &[u8], params: &CkksParameters) -> DecodeResult<Self> {
        let ring = params.ring();
        let mut r = reader(bytes, ObjectKind::PublicKey, ring)?;
        let n = read_n(&mut r, ring)?;
        let nq = ring.q().len();
        r.len32("limbs", nq, nq)?;
        let mut polys = read_polys(&mut r, n, &ring.q().primes(), 2)?;
        r.finish()?;
        let (a, b) = (polys.pop(), polys.pop());
        match (b, a) {
            (Some(b), Some(a)) => Ok(PublicKey::from_polys(ring, b, a)),
            _ => Err(malformed("public key needs two polynomials")),
        }
    }
}

/// Switching-key body: `n, digits, limbs, digits x (b, a)`.
pub(super) fn switching_body_len(key: &SwitchingKey) -> usize {
    12 + key
        .digits
        .iter()
        .map(|(b, a)| residue_bytes([b, a]))
        .sum::<usize>()
}

pub(super) fn write_switching_body(w: &mut Writer, key: &SwitchingKey) {
    w.len32(key.params().n());
    w.len32(key.digits.len());
    w.len32(key.digits.first().map_or(0, |(b, _)| b.limbs()));
    for (b, a) in &key.digits {
        w.residues(b.data());
        w.residues(a.data());
    }
}

/// Length of a well-formed full switching-key body under `params` (the longest a key body
/// can be).
pub(super) fn expected_switching_body_len(params: &Parameters) -> usize {
    12 + 16 * params.dnum() * params.qp().len() * params.n()
}

/// Length of the shortest well-formed switching-key body under `params` (a key limited to
/// level 0: one digit over `q_0 ++ P`).
pub(super) fn min_switching_body_len(params: &Parameters) -> usize {
    12 + 16 * (1 + params.p().len()) * params.n()
}

/// A switching-key body, full or limited to a maximum level `L <= |Q| - 1`: `limbs = L + 1 +
/// |P|` in `[|P| + 1, |Q| + |P|]` and `digits = ceil((L + 1) / alpha)`, both checked before
/// the polynomials (whose total length is checked before allocating).
pub(super) fn read_switching_body(
    r: &mut Reader,
    params: &Arc<Parameters>,
) -> DecodeResult<SwitchingKey> {
    read_switching_body_within(r, params, 0)
}

/// [`read_switching_body`] for full keys only (the encapsulation keys).
pub(super) fn read_full_switching_body(
    r: &mut Reader,
    params: &Arc<Parameters>,
) -> DecodeResult<SwitchingKey> {
    read_switching_body_within(r, params, params.max_level())
}

/// A switching-key body whose maximum level is at least `min_level`.
fn read_switching_body_within(
    r: &mut Reader,
    params: &Arc<Parameters>,
    min_level: usize,
) -> DecodeResult<SwitchingKey> {
    let n = read_n(r, params)?;
    let dnum = params.dnum();
    let digits = r.len32("digits", 1, dnum)?;
    let (np, nq) = (params.p().len(), params.q().len());
    let limbs = r.len32("limbs", np + 1 + min_level, np + nq)?;
    let level = limbs - np - 1;
    let want = SwitchingKey::digits_at(params, level);
    if digits != want {
        return Err(DecodeError::InvalidLength {
            field: "digits",
            found: digits as u64,
            min: want as u64,
            max: want as u64,
        });
    }
    let mut moduli = params.q().primes()[..=level].to_vec();
    moduli.extend(params.p().primes());
    let mut polys = read_polys(r, n, &moduli, 2 * digits)?.into_iter();
    let mut out = Vec::with_capacity(digits);
    while let (Some(b), Some(a)) = (polys.next(), polys.next()) {
        out.push((b, a));
    }
    Ok(SwitchingKey::from_digits(params, out))
}

fn encode_switching(kind: ObjectKind, key: &SwitchingKey, prefix: Option<u64>) -> Vec<u8> {
    let body = switching_body_len(key) + if prefix.is_some() { 8 } else { 0 };
    let mut w = writer(kind, key.params(), body);
    if let Some(g) = prefix {
        w.u64(g);
    }
    write_switching_body(&mut w, key);
    w.finish()
}

fn read_galois_element(r: &mut Reader, params: &Parameters) -> DecodeResult<usize> {
    let element = r.u64()?;
    let two_n = 2 * params.n() as u64;
    if element.is_multiple_of(2) || element >= two_n {
        return Err(DecodeError::InvalidGaloisElement { element, two_n });
    }
    Ok(element as usize)
}

impl WireEncode for SwitchingKey {
    fn encoded_len(&self) -> usize {
        super::HEADER_LEN + switching_body_len(self)
    }

    fn to_bytes(&self) -> Vec<u8> {
        encode_switching(ObjectKind::SwitchingKey, self, None)
    }
}

impl WireDecode for SwitchingKey {
    fn from_bytes(bytes: &[u8], params: &CkksParameters) -> DecodeResult<Self> {
        let mut r = reader(bytes, ObjectKind::SwitchingKey, params.ring())?;
        let key = read_switching_body(&mut r, params.ring())?;
        r.finish()?;
        Ok(key)
    }
}

impl WireEncode for RelinearizationKey {
    fn encoded_len(&self) -> usize {
        self.0.encoded_len()
    }

    fn to_bytes(&self) -> Vec<u8> {
        encode_switching(ObjectKind::RelinearizationKey, &self.0, None)
    }
}

impl WireDecode for RelinearizationKey {
    fn from_bytes(bytes: &[u8], params: &CkksParameters) -> DecodeResult<Self> {
        let mut r = reader(bytes, ObjectKind::RelinearizationKey, params.ring())?;
        let key = read_switching_body(&mut r, params.ring())?;
        r.finish()?;
        Ok(RelinearizationKey(key))
    }
}

impl WireEncode for GaloisKey {
    fn encoded_len(&self) -> usize {
        8 + self.key.encoded_len()
    }

    fn to_bytes(&self) -> Vec<u8> {
        let g = self.galois_element as u64;
        encode_switching(ObjectKind::GaloisKey, &self.key, Some(g))
    }
}

impl WireDecode for GaloisKey {
    fn from_bytes(bytes: &[u8], params: &CkksParameters) -> DecodeResult<Self> {
        let mut r = reader(bytes, ObjectKind::GaloisKey, params.ring())?;
        let galois_element = read_galois_element(&mut r, params.ring())?;
        let key = read_switching_body(&mut r, params.ring())?;
        r.finish()?;
        Ok(GaloisKey {
            galois_element,
            key,
        })
    }
}

impl EvaluationKeys {
    fn sorted_galois(&self) -> Vec<&GaloisKey> {
        let mut keys: Vec<&GaloisKey> = self.galois.values().collect();
        keys.sort_unstable_by_key(|k| k.galois_element);
        keys
    }
}

impl WireEncode for EvaluationKeys {
    fn encoded_len(&self) -> usize {
        let relin = self.relin.as_ref().map_or(0, |k| switching_body_len(&k.0));
        let galois: usize = self
            .galois
            .values()
            .map(|k| 8 + switching_body_len(&k.key))
            .sum();
        super::HEADER_LEN + 1 + relin + 4 + galois
    }

    /// Galois keys are written by increasing element (what the decoder requires).
    fn to_bytes(&self) -> Vec<u8> {
        let params = self
            .relin
            .as_ref()
            .map(|k| k.0.params())
            .or_else(|| self.galois.values().next().map(|k| k.key.params()));
        let fingerprint = params.map_or(0, |p| parameters_fingerprint(p));
        let body = self.encoded_len() - super::HEADER_LEN;
        let mut w = Writer::new(ObjectKind::EvaluationKeys, fingerprint, body);
        w.u8(u8::from(self.relin.is_some()));
        if let Some(k) = &self.relin {
            write_switching_body(&mut w, &k.0);
        }
        w.len32(self.galois.len());
        for k in self.sorted_galois() {
            w.u64(k.galois_element as u64);
            write_switching_body(&mut w, &k.key);
        }
        w.finish()
    }
}

impl WireDecode for EvaluationKeys {
    /// Note: empty key sets carry a zero fingerprint and decode under any parameters.
    fn from_bytes(bytes: &[u8], params: &CkksParameters) -> DecodeResult<Self> {
        let ring = params.ring();
        let mut r = Reader::new(bytes);
        let found = r.header(ObjectKind::EvaluationKeys)?;
        let expected = parameters_fingerprint(ring);
        let relin = r.flag("has_relin")?;
        let mut keys = EvaluationKeys::default();
        if relin {
            check_fingerprint(found, expected)?;
            keys.relin = Some(RelinearizationKey(read_switching_body(&mut r, ring)?));
        }
        let count = r.len32("Galois key count", 0, u32::MAX as usize)?;
        match (relin, count) {
            (false, 0) => check_fingerprint(found, 0)?,
            (false, _) => check_fingerprint(found, expected)?,
            (true, _) => {}
        }
        r.ensure(r.product(&[count, 8 + min_switching_body_len(ring)])?)?;
        keys.galois = HashMap::with_capacity(count);
        let mut previous = None;
        for _ in 0..count {
            let g = read_galois_element(&mut r, ring)?;
            if let Some(p) = previous.filter(|&p| p >= g) {
                return Err(DecodeError::UnsortedGaloisElements {
                    previous: p as u64,
                    element: g as u64,
                });
            }
            previous = Some(g);
            let key = read_switching_body(&mut r, ring)?;
            keys.galois.insert(
                g,
                GaloisKey {
                    galois_element: g,
                    key,
                },
            );
        }
        r.finish()?;
        Ok(keys)
    }
}

fn check_fingerprint(found: u64, expected: u64) -> DecodeResult<()> {
    if found == expected {
        Ok(())
    } else {
        Err(DecodeError::ParametersMismatch { expected, found })
    }
}
