//! Byte-level BPE: training on the corpus with the `tokenizers` crate, and encoding.

use std::path::Path;

use rayon::prelude::*;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer, TokenizerBuilder};

use crate::error::{Error, Result};

/// The end-of-text token placed between documents (id 0 after training).
pub const EOS: &str = "<|endoftext|>";

/// How many of the most frequent single-token words the in-context episodes draw from
/// (`eval::icl` probes, `data::synthetic` training rows).
pub const WORD_POOL: usize = 1000;

/// The single-token words in-context episodes draw from: ids of tokens `"Ġ" + [a-z]{3,}`, the
/// `WORD_POOL` smallest ids (BPE merges are learnt in order of frequency).
pub fn word_pool(tk: &Tokenizer) -> Vec<u32> {
    let mut ids: Vec<u32> = tk
        .get_vocab(false)
        .into_iter()
        .filter(|(s, _)| {
            s.strip_prefix('Ġ')
                .is_some_and(|w| w.len() >= 3 && w.chars().all(|c| c.is_ascii_lowercase()))
        })
        .map(|(_, id)| id)
        .collect();
    ids.sort_unstable();
    ids.truncate(WORD_POOL);
    ids
}

fn tok_err(e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(e.to_string())
}

/// Trains a byte-level BPE of `vocab_size` tokens (including [`EOS`]) on `texts`, saves it as
/// `tokenizer.json` at `path`, and returns it.
pub fn train_bpe(texts: &[&str], vocab_size: usize, path: &Path) -> Result<Tokenizer> {
    let mut trainer = BpeTrainerBuilder::new()
        .show_progress(false)
        .vocab_size(vocab_size)
        .min_frequency(2)
        .special_tokens(vec![AddedToken::from(EOS, true)])
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let byte_level = ByteLevel::new(false, true, true);
    let mut tk = TokenizerBuilder::<BPE, NormalizerWrapper, ByteLevel, ByteLevel, ByteLevel>::new()
        .with_model(BPE::default())
        .with_normalizer(None)
        .with_pre_tokenizer(Some(byte_level))
        .with_post_processor(Some(byte_level))
        .with_decoder(Some(byte_level))
        .build()
        .map_err(tok_err)?;
    // Lines are the training "sequences"; the pre-tokenizer splits them into words.
    let lines = texts.iter().flat_map(|t| t.lines());
    tk.train(&mut trainer, lines).map_err(tok_err)?;
    tk.save(path, false).map_err(tok_err)?;
    load(path)
}

/// Loads a `tokenizer.json`.
pub fn load(path: &Path) -> Result<Tokenizer> {
    Tokenizer::from_file(path).map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))
}

/// Encodes `text` (in parallel, in line-aligned chunks; byte-level BPE never merges across a
/// line break, so chunking does not change the result).
pub fn encode(tk: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    let chunks = line_chunks(text, 1 << 16);
    let ids: Vec<Vec<u32>> = chunks
        .par_iter()
        .map(|c| {
            tk.encode_fast(*c, false)
                .map(|e| e.get_ids().to_vec())
                .map_err(tok_err)
        })
        .collect::<Result<_>>()?;
    Ok(ids.concat())
}

/// Decodes ids back to text.
pub fn decode(tk: &Tokenizer, ids: &[u32]) -> Result<String> {
    tk.decode(ids, false).map_err(tok_err)
}

/// Splits `text` into pieces of about `size` bytes, each ending just after a `'\n'`.
fn line_chunks(text: &str, size: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = size.min(rest.len());
        while !rest.is_char_boundary(cut) {
            cut += 1;
        }
        let cut = rest[cut..].find('\n').map_or(rest.len(), |i| cut + i + 1);
        let (head, tail) = rest.split_at(cut);
        out.push(head);
        rest = tail;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trains_round_trips_and_chunks_consistently() {
        let dir = tempfile::tempdir().unwrap();
        let text = "the cat sat on the mat.\nthe dog sat on the log.\n".repeat(40);
        let tk = train_bpe(&[&text], 300, &dir.path().join("tokenizer.json")).unwrap();
        assert_eq!(tk.token_to_id(EOS), Some(0));
        let ids = encode(&tk, &text).unwrap();
        // 8 pre-tokens per line (6 words, ".", "\n"), each a single merged token.
        assert_eq!(ids.len(), 8 * 80);
        assert_eq!(decode(&tk, &ids).unwrap(), text);
        let whole = tk
            .encode_fast(text.as_str(), false)
            .unwrap()
            .get_ids()
            .to_vec();
        assert_eq!(ids, whole);
        assert_eq!(line_chunks("a\nbb\nccc\n", 2), vec!["a\nbb\n", "ccc\n"]);
    }
}
