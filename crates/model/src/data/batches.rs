//! Token streams: seeded random training batches and sequential evaluation windows.

use std::path::Path;

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::synthetic::{self, EpisodeMixer};
use crate::error::{Error, Result};

/// A flat sequence of token ids.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenStream {
    /// The ids.
    pub ids: Vec<u32>,
}

impl TokenStream {
    /// Wraps ids.
    pub fn new(ids: Vec<u32>) -> Self {
        TokenStream { ids }
    }

    /// The batch for optimizer step `step`: `batch` windows of `seq + 1` tokens at offsets
    /// drawn from a generator seeded by `(seed, step)`, so a resumed run sees the same data.
    /// With `mix`, a seeded fraction of the rows are synthetic in-context episodes instead
    /// (the text rows stay those of the unmixed run). Returns inputs and next-token targets,
    /// both `(B, T)`.
    pub fn batch(
        &self,
        seed: u64,
        step: usize,
        batch: usize,
        seq: usize,
        mix: Option<&EpisodeMixer>,
        dev: &Device,
    ) -> Result<(Tensor, Tensor)> {
        let max_start = self.check_len(seq)?;
        let mut rng =
            ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x9E3779B97F4A7C15) ^ step as u64);
        let mut synth_rng = synthetic::step_rng(seed, step);
        let mut x = Vec::with_capacity(batch * seq);
        let mut y = Vec::with_capacity(batch * seq);
        for _ in 0..batch {
            let s = rng.random_range(0..=max_start);
            match mix {
                Some(m) if m.pick(&mut synth_rng) => {
                    let row = m.row(seq + 1, &mut synth_rng);
                    x.extend_from_slice(&row[..seq]);
                    y.extend_from_slice(&row[1..]);
                }
                _ => {
                    x.extend_from_slice(&self.ids[s..s + seq]);
                    y.extend_from_slice(&self.ids[s + 1..s + seq + 1]);
                }
            }
        }
        Ok((
            Tensor::from_vec(x, (batch, seq), dev)?,
            Tensor::from_vec(y, (batch, seq), dev)?,
        ))
    }

    /// Consecutive non-overlapping `(inputs, targets)` windows of `seq` tokens, `batch` per
    /// item (the last item may be smaller); at most `max_windows` windows when given.
    pub fn eval_batches(
        &self,
        batch: usize,
        seq: usize,
        max_windows: Option<usize>,
        dev: &Device,
    ) -> Result<Vec<(Tensor, Tensor)>> {
        self.check_len(seq)?;
        let mut n = (self.ids.len() - 1) / seq;
        if let Some(m) = max_windows {
            n = n.min(m);
        }
        let starts: Vec<usize> = (0..n).map(|w| w * seq).collect();
        starts
            .chunks(batch.max(1))
            .map(|chunk| {
                let x: Vec<u32> = chunk
                    .iter()
                    .flat_map(|&s| self.ids[s..s + seq].iter().copied())
                    .collect();
                let y: Vec<u32> = chunk
                    .iter()
                    .flat_map(|&s| self.ids[s + 1..s + seq + 1].iter().copied())
                    .collect();
                let b = chunk.len();
                Ok((
                    Tensor::from_vec(x, (b, seq), dev)?,
                    Tensor::from_vec(y, (b, seq), dev)?,
                ))
            })
            .collect()
    }

    fn check_len(&self, seq: usize) -> Result<usize> {
        if self.ids.len() < seq + 1 {
            return Err(Error::NotEnoughData(format!(
                "{} tokens, need {}",
                self.ids.len(),
                seq + 1
            )));
        }
        Ok(self.ids.len() - seq - 1)
    }

    /// Writes the ids as little-endian u16 (vocabularies up to 65,536) or u32, with a header.
    pub fn write(&self, path: &Path) -> Result<()> {
        let wide = self.ids.iter().any(|&i| i > u16::MAX as u32);
        let mut bytes = Vec::with_capacity(8 + self.ids.len() * 4);
        bytes.extend_from_slice(if wide { b"PSFTOK32" } else { b"PSFTOK16" });
        for &i in &self.ids {
            if wide {
                bytes.extend_from_slice(&i.to_le_bytes());
            } else {
                bytes.extend_from_slice(&(i as u16).to_le_bytes());
            }
        }
        std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
    }

    /// Reads a file written by [`TokenStream::write`].
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let bad = || Error::NotEnoughData(format!("{}: not a token file", path.display()));
        let (head, body) = bytes.split_at_checked(8).ok_or_else(bad)?;
        let ids = match head {
            b"PSFTOK16" => body
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]) as u32)
                .collect(),
            b"PSFTOK32" => body
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            _ => return Err(bad()),
        };
        Ok(TokenStream { ids })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_seeded_and_shifted() {
        let s = TokenStream::new((0..1000).collect());
        let dev = Device::Cpu;
        let (x, y) = s.batch(1, 5, 4, 16, None, &dev).unwrap();
        let (x2, _) = s.batch(1, 5, 4, 16, None, &dev).unwrap();
        let (x3, _) = s.batch(1, 6, 4, 16, None, &dev).unwrap();
        let v = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<u32>().unwrap();
        assert_eq!(v(&x), v(&x2));
        assert_ne!(v(&x), v(&x3));
        assert!(v(&x).iter().zip(v(&y)).all(|(a, b)| b == a + 1));
        let ev = s.eval_batches(3, 100, None, &dev).unwrap();
        assert_eq!(ev.len(), 3);
        assert_eq!(ev[2].0.dims(), &[3, 100]);
    }

    #[test]
    fn mixed_batches_keep_their_text_rows() {
        use crate::data::synthetic::{SyntheticMix, tests::mixer};
        let mix = mixer(&SyntheticMix::default()).unwrap();
        let s = TokenStream::new((5000..9000).collect());
        let dev = Device::Cpu;
        let rows = |t: &Tensor| t.to_vec2::<u32>().unwrap();
        let (plain, _) = s.batch(2, 9, 32, 24, None, &dev).unwrap();
        let (x, y) = s.batch(2, 9, 32, 24, Some(&mix), &dev).unwrap();
        let (x2, _) = s.batch(2, 9, 32, 24, Some(&mix), &dev).unwrap();
        assert_eq!(rows(&x), rows(&x2));
        let (plain, x, y) = (rows(&plain), rows(&x), rows(&y));
        let mut synthetic = 0;
        for i in 0..32 {
            assert_eq!(x[i][1..], y[i][..23]);
            if x[i][0] >= 5000 {
                assert_eq!(x[i], plain[i]);
            } else {
                synthetic += 1;
            }
        }
        assert!((4..=28).contains(&synthetic), "{synthetic} of 32 rows");
    }

    #[test]
    fn token_files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        for ids in [vec![1u32, 2, 65535], vec![7, 70000]] {
            let p = dir.path().join("t.tokens");
            TokenStream::new(ids.clone()).write(&p).unwrap();
            assert_eq!(TokenStream::read(&p).unwrap().ids, ids);
        }
    }
}
