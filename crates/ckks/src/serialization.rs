//! Versioned, length-checked binary format (see the module's items).

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended early.
    #[error("input truncated: needed {needed} more bytes at offset {offset}")]
    Truncated { offset: usize, needed: usize },
}
