//! psf-rlwe
