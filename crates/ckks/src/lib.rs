//! psf-ckks

pub mod encoding;
pub mod precision;
