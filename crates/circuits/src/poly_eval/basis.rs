//! The Chebyshev power basis `T_1 .. T_n` of an encrypted input, computed lazily with exact
//! scales: `T_{2a} = 2 T_a^2 - 1`, `T_{a+b} = 2 T_a T_b - T_{a-b}` (`a` the largest power of
//! two below `a + b`), so `T_i` sits at level `top - ceil(log2 i)`.

use std::collections::BTreeMap;

use crate::{Backend, Result};

/// `ceil(log2(n))` for `n >= 1`.
pub(crate) fn ceil_log2(n: usize) -> usize {
    (usize::BITS - (n.max(1) - 1).leading_zeros()) as usize
}

/// Largest power of two `<= n` (`n >= 1`).
pub(crate) fn prev_pow2(n: usize) -> usize {
    1 << (usize::BITS - 1 - n.leading_zeros())
}

/// How the input `x` in `[a, b]` becomes `t = alpha x + beta` in `[-1, 1]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum UnitMap {
    /// `[a, b] = [-1, 1]`: `t = x`.
    Identity,
    /// `alpha` is a positive integer: `t = alpha x + beta` by an integer product, no level.
    Integer(i64, f64),
    /// General: `t = rescale(alpha x * q_L) + beta`, one level, scale preserved exactly.
    Scaled(f64, f64),
}

impl UnitMap {
    /// The map of `[a, b]`.
    pub(crate) fn new(a: f64, b: f64) -> Self {
        let alpha = 2.0 / (b - a);
        let beta = -(a + b) / (b - a);
        if alpha == 1.0 && beta == 0.0 {
            UnitMap::Identity
        } else if alpha >= 1.0 && alpha == alpha.round() && alpha < (1u64 << 52) as f64 {
            UnitMap::Integer(alpha as i64, beta)
        } else {
            UnitMap::Scaled(alpha, beta)
        }
    }

    /// Levels the map consumes.
    pub(crate) fn levels(&self) -> usize {
        match self {
            UnitMap::Scaled(..) => 1,
            _ => 0,
        }
    }

    /// Applies the map to a ciphertext.
    pub(crate) fn apply<B: Backend>(&self, be: &B, x: &B::Ct) -> Result<B::Ct> {
        match *self {
            UnitMap::Identity => Ok(x.clone()),
            UnitMap::Integer(alpha, beta) => {
                let t = if alpha == 1 {
                    x.clone()
                } else {
                    be.mul_int(x, alpha)?
                };
                add_const_nonzero(be, t, beta)
            }
            UnitMap::Scaled(alpha, beta) => {
                let q = be.prime(be.level(x)) as f64;
                let t = be.mul_const(x, alpha, q)?;
                let t = add_const_nonzero(be, t, beta)?;
                let t = be.rescale(&t)?;
                Ok(be.with_scale(&t, be.scale(x)))
            }
        }
    }
}

fn add_const_nonzero<B: Backend>(be: &B, t: B::Ct, c: f64) -> Result<B::Ct> {
    if c == 0.0 { Ok(t) } else { be.add_const(&t, c) }
}

/// Lazily computed `T_i(t)` of one input.
pub(crate) struct PowerBasis<'b, B: Backend> {
    be: &'b B,
    top: usize,
    powers: BTreeMap<usize, B::Ct>,
}

impl<'b, B: Backend> PowerBasis<'b, B> {
    /// The basis of `t` (already in `[-1, 1]`): `T_1 = t`.
    pub(crate) fn new(be: &'b B, t: B::Ct) -> Self {
        let top = be.level(&t);
        let mut powers = BTreeMap::new();
        powers.insert(1, t);
        Self { be, top, powers }
    }

    /// The backend.
    pub(crate) fn backend(&self) -> &'b B {
        self.be
    }

    /// Level of `T_1`.
    pub(crate) fn top(&self) -> usize {
        self.top
    }

    /// Level at which `T_i` is (or will be) computed.
    pub(crate) fn level_of(&self, i: usize) -> Option<usize> {
        self.top.checked_sub(ceil_log2(i))
    }

    /// `T_i`, computing it (and what it depends on) if needed.
    pub(crate) fn get(&mut self, i: usize) -> Result<&B::Ct> {
        self.ensure(i)?;
        Ok(&self.powers[&i])
    }

    /// The exact scale of `T_i`.
    pub(crate) fn scale_of(&mut self, i: usize) -> Result<f64> {
        let be = self.be;
        Ok(be.scale(self.get(i)?))
    }

    fn ensure(&mut self, i: usize) -> Result<()> {
        if self.powers.contains_key(&i) {
            return Ok(());
        }
        debug_assert!(i >= 2);
        let a = if i.is_power_of_two() {
            i / 2
        } else {
            prev_pow2(i)
        };
        let b = i - a;
        self.ensure(a)?;
        self.ensure(b)?;
        if a != b {
            self.ensure(a - b)?;
        }
        let be = self.be;
        let (ta, tb) = (&self.powers[&a], &self.powers[&b]);
        let prod = be.mul_relin(ta, tb)?;
        let twice = be.add(&prod, &prod)?;
        let shifted = if a == b {
            be.add_const(&twice, -1.0)?
        } else {
            let tc = &self.powers[&(a - b)];
            let cs = be.scale(&twice) / be.scale(tc);
            be.sub(&twice, &be.mul_const(tc, 1.0, cs)?)?
        };
        let t = be.rescale(&shifted)?;
        debug_assert_eq!(Some(be.level(&t)), self.level_of(i));
        self.powers.insert(i, t);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_helpers() {
        assert_eq!(
            (1..=9).map(ceil_log2).collect::<Vec<_>>(),
            [0, 1, 2, 2, 3, 3, 3, 3, 4]
        );
        assert_eq!(
            (1..=9).map(prev_pow2).collect::<Vec<_>>(),
            [1, 2, 2, 4, 4, 4, 4, 8, 8]
        );
    }

    #[test]
    fn unit_maps() {
        assert_eq!(UnitMap::new(-1.0, 1.0), UnitMap::Identity);
        assert_eq!(UnitMap::new(0.0, 2.0), UnitMap::Integer(1, -1.0));
        assert_eq!(UnitMap::new(-0.5, 0.5), UnitMap::Integer(2, 0.0));
        assert_eq!(UnitMap::new(-8.0, 8.0), UnitMap::Scaled(0.125, 0.0));
        assert_eq!(UnitMap::new(-8.0, 8.0).levels(), 1);
    }
}
