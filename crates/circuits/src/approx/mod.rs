//! Polynomial approximation in `f64`: Chebyshev interpolation (and, in sibling modules,
//! minimax fitting, error reports and the functions psformer needs).

mod chebyshev;

pub use chebyshev::Chebyshev;
