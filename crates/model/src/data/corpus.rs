//! Reading the text corpus: the files shipped inside the crate (embedded in the library) or
//! any directory of `*.txt.xz` / `*.txt` files.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The corpus files shipped in `crates/model/data/` (see its SOURCES.md), embedded here so
/// training needs nothing outside the library.
const SHIPPED: [(&str, &[u8]); 4] = [
    ("austen", include_bytes!("../../data/austen.txt.xz")),
    (
        "shakespeare_gut",
        include_bytes!("../../data/shakespeare_gut.txt.xz"),
    ),
    ("kjv", include_bytes!("../../data/kjv.txt.xz")),
    ("brown", include_bytes!("../../data/brown.txt.xz")),
];

/// Where the training text comes from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DataSource {
    /// The public-domain / MIT texts shipped with the crate (about 3.6M words).
    #[default]
    Shipped,
    /// Every `*.txt.xz` and `*.txt` file in a directory, in name order.
    Dir {
        /// The directory.
        path: PathBuf,
    },
}

/// One named text.
#[derive(Debug, Clone)]
pub struct Document {
    /// File stem, e.g. `"austen"`.
    pub name: String,
    /// Its UTF-8 text.
    pub text: String,
}

impl DataSource {
    /// Reads every document of this source; `only` keeps just the named ones (all if empty).
    pub fn load(&self, only: &[String]) -> Result<Vec<Document>> {
        let keep = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
        let docs = match self {
            DataSource::Shipped => SHIPPED
                .iter()
                .filter(|(name, _)| keep(name))
                .map(|(name, bytes)| {
                    let text = decompress_xz(bytes, Path::new(name))?;
                    Ok(Document {
                        name: name.to_string(),
                        text,
                    })
                })
                .collect::<Result<Vec<_>>>()?,
            DataSource::Dir { path } => read_dir(path)?
                .into_iter()
                .filter(|d| keep(&d.name))
                .collect(),
        };
        if docs.is_empty() {
            return Err(Error::NotEnoughData(format!(
                "no documents in {self:?} matching {only:?}"
            )));
        }
        Ok(docs)
    }
}

fn read_dir(dir: &Path) -> Result<Vec<Document>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.to_string_lossy();
            n.ends_with(".txt.xz") || n.ends_with(".txt")
        })
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            let name = name
                .trim_end_matches(".xz")
                .trim_end_matches(".txt")
                .to_string();
            let text = if p.to_string_lossy().ends_with(".xz") {
                decompress_xz(&bytes, &p)?
            } else {
                String::from_utf8(bytes).map_err(|e| xz_err(&p, e.to_string()))?
            };
            Ok(Document { name, text })
        })
        .collect()
}

/// Decompresses an xz stream (pure Rust, `lzma-rs`) into UTF-8 text.
pub fn decompress_xz(bytes: &[u8], path: &Path) -> Result<String> {
    let mut out = Vec::with_capacity(bytes.len() * 4);
    lzma_rs::xz_decompress(&mut std::io::Cursor::new(bytes), &mut out)
        .map_err(|e| xz_err(path, e.to_string()))?;
    String::from_utf8(out).map_err(|e| xz_err(path, e.to_string()))
}

fn xz_err(path: &Path, msg: String) -> Error {
    Error::Xz {
        path: path.to_path_buf(),
        msg,
    }
}

/// Splits `text` into (train, held-out): the last `fraction` of it, cut at a line break.
pub fn split_held_out(text: &str, fraction: f64) -> (&str, &str) {
    let target = ((1.0 - fraction.clamp(0.0, 1.0)) * text.len() as f64) as usize;
    let mut cut = target.min(text.len());
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    let cut = text[cut..].find('\n').map_or(text.len(), |i| cut + i + 1);
    text.split_at(cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_cuts_at_a_line_break() {
        let text = "one\ntwo\nthree\nfour\n";
        let (a, b) = split_held_out(text, 0.3);
        assert_eq!(format!("{a}{b}"), text);
        assert!(a.ends_with('\n') && !b.is_empty() && b.len() < text.len() / 2);
        assert_eq!(split_held_out(text, 0.0).1, "");
    }

    #[test]
    fn shipped_corpus_decompresses() {
        let docs = DataSource::Shipped.load(&["kjv".into()]).unwrap();
        assert_eq!(docs.len(), 1);
        assert!(docs[0].text.len() > 3_000_000 && docs[0].text.contains("In the beginning"));
    }
}
