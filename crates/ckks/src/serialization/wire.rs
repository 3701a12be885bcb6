//! Byte-level reader and writer: header, little-endian integers, residue blocks.

use psf_math::{Repr, RnsPoly};
use zeroize::Zeroize;

use super::{DecodeError, DecodeResult, FORMAT_VERSION, HEADER_LEN, MAGIC, ObjectKind};

/// Writes into a buffer sized once for the whole object.
pub(super) struct Writer {
    buf: Vec<u8>,
    expected_len: usize,
}

impl Writer {
    /// A buffer of `HEADER_LEN + body_len` bytes, header written.
    pub fn new(kind: ObjectKind, fingerprint: u64, body_len: usize) -> Self {
        let expected_len = HEADER_LEN + body_len;
        let mut w = Self {
            buf: Vec::with_capacity(expected_len),
            expected_len,
        };
        w.bytes(&MAGIC);
        w.u16(FORMAT_VERSION);
        w.u8(kind as u8);
        w.u8(0);
        w.u64(fingerprint);
        w
    }

    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    pub fn u8(&mut self, x: u8) {
        self.buf.push(x);
    }

    pub fn u16(&mut self, x: u16) {
        self.bytes(&x.to_le_bytes());
    }

    pub fn u32(&mut self, x: u32) {
        self.bytes(&x.to_le_bytes());
    }

    /// A length field (`u32`; every length this format writes fits).
    pub fn len32(&mut self, x: usize) {
        self.u32(u32::try_from(x).unwrap_or(u32::MAX));
    }

    pub fn u64(&mut self, x: u64) {
        self.bytes(&x.to_le_bytes());
    }

    pub fn f64(&mut self, x: f64) {
        self.u64(x.to_bits());
    }

    /// Residues as little-endian `u64`s.
    pub fn residues(&mut self, data: &[u64]) {
        let start = self.buf.len();
        self.buf.resize(start + 8 * data.len(), 0);
        let (words, _) = self.buf[start..].as_chunks_mut::<8>();
        for (w, &x) in words.iter_mut().zip(data) {
            *w = x.to_le_bytes();
        }
    }

    /// Overwrites the header's fingerprint field.
    pub fn set_fingerprint(&mut self, fingerprint: u64) {
        if let Some(f) = self.buf.get_mut(8..HEADER_LEN) {
            f.copy_from_slice(&fingerprint.to_le_bytes());
        }
    }

    /// The body written so far.
    pub fn body(&self) -> &[u8] {
        self.buf.get(HEADER_LEN..).unwrap_or_default()
    }

    pub fn finish(self) -> Vec<u8> {
        debug_assert_eq!(self.buf.len(), self.expected_len, "encoded length");
        self.buf
    }
}

/// Reads from a byte slice; every read is bounds-checked and never panics.
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    /// Fails unless `len` more bytes are there (checked before allocating).
    pub fn ensure(&self, len: usize) -> DecodeResult<()> {
        if len > self.remaining() {
            return Err(DecodeError::Truncated {
                offset: self.pos,
                needed: len - self.remaining(),
            });
        }
        Ok(())
    }

    /// `a * b * c` bytes, or a `Truncated` error if that overflows.
    pub fn product(&self, factors: &[usize]) -> DecodeResult<usize> {
        factors
            .iter()
            .try_fold(1usize, |acc, &f| acc.checked_mul(f))
            .ok_or(DecodeError::Truncated {
                offset: self.pos,
                needed: usize::MAX,
            })
    }

    pub fn take(&mut self, len: usize) -> DecodeResult<&'a [u8]> {
        self.ensure(len)?;
        let s = self
            .bytes
            .get(self.pos..self.pos + len)
            .ok_or(DecodeError::Truncated {
                offset: self.pos,
                needed: len,
            })?;
        self.pos += len;
        Ok(s)
    }

    fn array<const K: usize>(&mut self) -> DecodeResult<[u8; K]> {
        let s = self.take(K)?;
        s.first_chunk::<K>().copied().ok_or(DecodeError::Truncated {
            offset: self.pos,
            needed: K,
        })
    }

    pub fn u8(&mut self) -> DecodeResult<u8> {
        Ok(self.array::<1>()?[0])
    }

    pub fn u16(&mut self) -> DecodeResult<u16> {
        self.array().map(u16::from_le_bytes)
    }

    pub fn u32(&mut self) -> DecodeResult<u32> {
        self.array().map(u32::from_le_bytes)
    }

    pub fn u64(&mut self) -> DecodeResult<u64> {
        self.array().map(u64::from_le_bytes)
    }

    /// A `u32` length field that must lie in `[min, max]`.
    pub fn len32(&mut self, field: &'static str, min: usize, max: usize) -> DecodeResult<usize> {
        let found = self.u32()? as usize;
        if !(min..=max).contains(&found) {
            return Err(DecodeError::InvalidLength {
                field,
                found: found as u64,
                min: min as u64,
                max: max as u64,
            });
        }
        Ok(found)
    }

    /// A `0`/`1` flag.
    pub fn flag(&mut self, field: &'static str) -> DecodeResult<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(DecodeError::InvalidTag { field, value }),
        }
    }

    /// The header; returns its fingerprint field.
    pub fn header(&mut self, expected: ObjectKind) -> DecodeResult<u64> {
        let found = self.array::<4>()?;
        if found != MAGIC {
            return Err(DecodeError::BadMagic { found });
        }
        let version = self.u16()?;
        if version != FORMAT_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let tag = self.u8()?;
        let found = ObjectKind::from_tag(tag).ok_or(DecodeError::UnknownKind { tag })?;
        if found != expected {
            return Err(DecodeError::WrongKind { expected, found });
        }
        match self.u8()? {
            0 => self.u64(),
            value => Err(DecodeError::InvalidTag {
                field: "reserved",
                value,
            }),
        }
    }

    /// A polynomial of `moduli.len()` limbs of `n` residues, each below its limb's modulus.
    pub fn poly(&mut self, n: usize, moduli: &[u64]) -> DecodeResult<RnsPoly> {
        if n == 0 {
            return Err(DecodeError::InvalidLength {
                field: "n",
                found: 0,
                min: 1,
                max: u32::MAX.into(),
            });
        }
        let len = self.product(&[n, moduli.len(), 8])?;
        let bytes = self.take(len)?;
        let mut data = Vec::with_capacity(n * moduli.len());
        for (limb, (chunk, &q)) in bytes.chunks_exact(8 * n).zip(moduli).enumerate() {
            let start = data.len();
            let (words, _) = chunk.as_chunks::<8>();
            data.extend(words.iter().map(|w| u64::from_le_bytes(*w)));
            if let Some(&value) = data[start..].iter().find(|&&x| x >= q) {
                data.zeroize();
                return Err(DecodeError::ResidueOutOfRange {
                    limb,
                    value,
                    modulus: q,
                });
            }
        }
        RnsPoly::from_data(n, Repr::Eval, data).map_err(|e| DecodeError::Malformed {
            reason: e.to_string(),
        })
    }

    /// Fails if bytes remain.
    pub fn finish(self) -> DecodeResult<()> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes {
                offset: self.pos,
                count,
            }),
        }
    }
}
