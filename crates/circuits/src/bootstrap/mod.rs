//! CKKS bootstrapping: `ScaleDown -> ModRaise -> CoeffsToSlots -> EvalMod -> SlotsToCoeffs`,
//! with sparse-secret encapsulation.

pub mod dft;
