//! psf-model
