//! psf-poly: calibration of a trained model's op ranges, polynomial replacement of division,
//! inverse square root and activations, and `PolyModel`, the f64 twin of the encrypted
//! circuit (DESIGN.md §2.2-2.4). No homomorphic-encryption dependency.
