//! psf-infer: compiles a polynomial model into a CKKS circuit (layout, levels, bootstrap
//! placement, rotation keys, cost model) and evaluates it on ciphertexts (DESIGN.md §4).
