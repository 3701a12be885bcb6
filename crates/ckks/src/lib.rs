//! psf-ckks
