//! psf-math
