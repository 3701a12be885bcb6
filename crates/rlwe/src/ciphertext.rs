//! RLWE plaintexts and ciphertexts with the metadata the CKKS layer tracks (scale, slots).

use std::sync::Arc;

use psf_math::{Repr, RnsPoly};

use crate::{Parameters, Result, RlweError};

/// Scale bookkeeping: the exact (floating-point) factor a message is multiplied by.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, serde::Serialize, serde::Deserialize)]
pub struct Scale(pub f64);

impl Scale {
    /// `log2` of the scale.
    pub fn log2(self) -> f64 {
        self.0.log2()
    }

    /// Whether two scales agree to a relative `2^-40` (what additions need).
    pub fn matches(self, other: Scale) -> bool {
        (self.0 - other.0).abs() <= self.0.abs().max(other.0.abs()) * 2f64.powi(-40)
    }
}

/// Metadata carried by plaintexts and ciphertexts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetaData {
    /// Scale of the encoded message.
    pub scale: Scale,
    /// `log2` of the number of slots.
    pub log_slots: u32,
}

/// A plaintext polynomial over `Q_level` (evaluation form).
#[derive(Clone)]
pub struct Plaintext {
    params: Arc<Parameters>,
    /// The message polynomial.
    pub poly: RnsPoly,
    /// Scale and slot count.
    pub meta: MetaData,
}

impl std::fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Plaintext(level={}, {:?})", self.level(), self.meta)
    }
}

impl Plaintext {
    /// Wraps a polynomial with `level + 1` limbs.
    pub fn new(params: &Arc<Parameters>, poly: RnsPoly, meta: MetaData) -> Result<Self> {
        check_poly(params, &poly)?;
        Ok(Self {
            params: params.clone(),
            poly,
            meta,
        })
    }

    /// Level (`limbs - 1`).
    pub fn level(&self) -> usize {
        self.poly.limbs() - 1
    }

    /// The parameters.
    pub fn params(&self) -> &Arc<Parameters> {
        &self.params
    }
}

/// A ciphertext `(c_0, c_1, ..., c_d)` decrypting to `sum_i c_i s^i`, evaluation form.
#[derive(Clone)]
pub struct Ciphertext {
    params: Arc<Parameters>,
    /// The polynomials, all with `level + 1` limbs.
    pub polys: Vec<RnsPoly>,
    /// Scale and slot count.
    pub meta: MetaData,
}

impl std::fmt::Debug for Ciphertext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Ciphertext(degree={}, level={}, {:?})",
            self.degree(),
            self.level(),
            self.meta
        )
    }
}

fn check_poly(params: &Parameters, p: &RnsPoly) -> Result<()> {
    let bad = |reason: String| Err(RlweError::Malformed { reason });
    if p.n() != params.n() {
        return bad(format!("degree {} != N = {}", p.n(), params.n()));
    }
    if p.limbs() == 0 || p.limbs() > params.q().len() {
        return bad(format!(
            "{} limbs, expected 1..={}",
            p.limbs(),
            params.q().len()
        ));
    }
    if p.repr() != Repr::Eval {
        return bad("polynomial must be in evaluation form".into());
    }
    for i in 0..p.limbs() {
        let q = params.q().modulus(i).value();
        if p.limb(i).iter().any(|&x| x >= q) {
            return bad(format!("limb {i} has a residue >= q_{i}"));
        }
    }
    Ok(())
}

impl Ciphertext {
    /// Wraps polynomials (at least two, same level), checking their shape and residues.
    pub fn new(params: &Arc<Parameters>, polys: Vec<RnsPoly>, meta: MetaData) -> Result<Self> {
        if polys.len() < 2 {
            return Err(RlweError::Malformed {
                reason: format!("{} polynomials, need >= 2", polys.len()),
            });
        }
        for p in &polys {
            check_poly(params, p)?;
            if p.limbs() != polys[0].limbs() {
                return Err(RlweError::Malformed {
                    reason: "polynomials at different levels".into(),
                });
            }
        }
        Ok(Self {
            params: params.clone(),
            polys,
            meta,
        })
    }

    /// Builds without the residue checks, for evaluator outputs whose shape is known good.
    pub fn from_parts(params: &Arc<Parameters>, polys: Vec<RnsPoly>, meta: MetaData) -> Self {
        Self {
            params: params.clone(),
            polys,
            meta,
        }
    }

    /// A zero ciphertext of degree `degree` at `level`.
    pub fn zero(params: &Arc<Parameters>, degree: usize, level: usize, meta: MetaData) -> Self {
        let polys = (0..=degree)
            .map(|_| RnsPoly::zero(params.n(), level + 1, Repr::Eval))
            .collect();
        Self::from_parts(params, polys, meta)
    }

    /// Level (`limbs - 1`).
    pub fn level(&self) -> usize {
        self.polys[0].limbs() - 1
    }

    /// Degree (number of polynomials - 1).
    pub fn degree(&self) -> usize {
        self.polys.len() - 1
    }

    /// The parameters.
    pub fn params(&self) -> &Arc<Parameters> {
        &self.params
    }

    /// Drops limbs down to `level` (no rescaling).
    pub fn drop_to_level(&mut self, level: usize) {
        for p in &mut self.polys {
            p.truncate(level + 1);
        }
    }

    /// ModRaise: a level-0 ciphertext (modulo `q_0`) re-expressed at `level` of `to` (same
    /// ring degree) by lifting every coefficient to its centered representative in
    /// `(-q_0/2, q_0/2]`. It decrypts (under the same secret) to `m + q_0 I` with `I` a small
    /// integer polynomial, as bootstrapping needs; with `to`'s first prime equal to `q_0` and
    /// `level = 0` it only changes the parameter set.
    pub fn mod_raise(&self, to: &Arc<Parameters>, level: usize) -> Result<Ciphertext> {
        to.check_level(level)?;
        if self.level() != 0 || to.n() != self.params.n() {
            return Err(RlweError::Malformed {
                reason: format!(
                    "ModRaise needs a level-0 ciphertext of the same degree (level {}, N {} -> {})",
                    self.level(),
                    self.params.n(),
                    to.n()
                ),
            });
        }
        let (plan, m) = (self.params.q().plan(0), self.params.q().modulus(0));
        let polys = self
            .polys
            .iter()
            .map(|c| {
                let mut coeffs = c.limb(0).to_vec();
                plan.inverse(&mut coeffs);
                let centered: Vec<i64> = coeffs.iter().map(|&x| m.center(x)).collect();
                let mut p = RnsPoly::from_signed(&centered, to.q(), level + 1);
                to.q().ntt(&mut p);
                p
            })
            .collect();
        Ok(Ciphertext::from_parts(to, polys, self.meta))
    }
}
