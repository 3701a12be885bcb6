//! Polynomial approximation in `f64`: Chebyshev interpolation, minimax (Remez) fitting, error
//! reports on dense grids, and the functions psformer needs (GELU, SiLU, `1/x`, `1/sqrt(x)`,
//! `sign` and `ReLU` by composite polynomials). Every approximation states its interval,
//! degree and measured error ([`ErrorReport`]). No homomorphic-encryption dependency: the
//! polynomial model (psf-poly) and the CKKS circuits (psf-circuits) share these polynomials.

mod chebyshev;
mod error;
mod functions;
mod inverse;
mod remez;
mod report;
mod sign;

pub use chebyshev::Chebyshev;
pub use error::{ApproxError, Result};
pub use functions::{Approximation, erf, gelu, gelu_exact, inv_sqrt, reciprocal, silu, silu_exact};
pub use inverse::{FirstGuess, InvSqrtRecipe, InverseMethod, ReciprocalRecipe, inv_sqrt_constant};
pub use remez::{ErrorWeight, Minimax, RemezOptions, remez};
pub use report::{DEFAULT_GRID, ErrorReport};
pub use sign::{CompositeRelu, CompositeSign, cheon_f, minimax_sign_stage};
