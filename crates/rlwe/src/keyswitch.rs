//! Hybrid key switching (Han-Ki): decompose into `dnum` digits of `alpha` primes, raise each
//! digit to `Q_l * P` (ModUp), take the inner product with the key, divide by `P` (ModDown).
//!
//! The decomposition is separate from the inner product, so one decomposition serves many
//! Galois keys (hoisted rotations): an automorphism commutes with the decomposition and is
//! applied to the raised digits as a permutation of evaluations.

use std::sync::Arc;

use psf_math::{BasisConverter, BufferPool, Repr, RnsBasis, RnsPoly};
use rayon::prelude::*;

use crate::{Result, RlweError, SwitchingKey};

/// Per-level tables for ModUp and ModDown.
pub(crate) struct KeySwitchTables {
    digit_size: usize,
    /// `Q_l ++ P` per level.
    qlp: Vec<RnsBasis>,
    /// ModUp converters `[level][digit]`: digit primes -> (other primes of `Q_l`) ++ `P`.
    mod_up: Vec<Vec<BasisConverter>>,
    /// ModDown converters per level: `P -> Q_l`.
    mod_down: Vec<BasisConverter>,
    /// `P^-1 mod q_i`.
    p_inv_mod_q: Vec<u64>,
    /// Reused temporaries.
    pool: Arc<BufferPool>,
}

impl KeySwitchTables {
    pub(crate) fn new(q: &RnsBasis, p: &RnsBasis, digit_size: usize) -> Result<Self> {
        let nq = q.len();
        let mut qlp = Vec::with_capacity(nq);
        let mut mod_up = Vec::with_capacity(nq);
        let mut mod_down = Vec::with_capacity(nq);
        for level in 0..nq {
            let ql = q.prefix(level + 1);
            qlp.push(ql.concat(p)?);
            mod_down.push(BasisConverter::new(p, &ql)?);
            let digits = (level + 1).div_ceil(digit_size);
            let convs = (0..digits)
                .map(|j| {
                    let range = digit_range(j, digit_size, level);
                    let from = q.slice(range.clone());
                    let others: Vec<_> = (0..=level)
                        .filter(|i| !range.contains(i))
                        .map(|i| q.plans()[i].clone())
                        .collect();
                    let to = RnsBasis::from_plans(q.n(), others)?.concat(p)?;
                    Ok(BasisConverter::new(&from, &to)?)
                })
                .collect::<Result<Vec<_>>>()?;
            mod_up.push(convs);
        }
        let p_inv_mod_q = (0..nq)
            .map(|i| {
                let m = q.modulus(i);
                m.inv(p.product_mod(m))
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Self {
            digit_size,
            qlp,
            mod_up,
            mod_down,
            p_inv_mod_q,
            pool: Arc::new(BufferPool::new()),
        })
    }

    /// The basis `Q_level ++ P`.
    pub(crate) fn qlp(&self, level: usize) -> &RnsBasis {
        &self.qlp[level]
    }
}

fn digit_range(j: usize, alpha: usize, level: usize) -> std::ops::Range<usize> {
    (j * alpha)..((j + 1) * alpha).min(level + 1)
}

/// A polynomial decomposed into digits raised to `Q_l ++ P` (evaluation form), ready for
/// inner products with any switching key (the hoisted part of key switching). Its buffers
/// return to the parameters' pool when it is dropped.
#[derive(Debug)]
pub struct Decomposition {
    /// The level of the decomposed polynomial.
    pub level: usize,
    /// One polynomial over `Q_l ++ P` per digit.
    pub digits: Vec<RnsPoly>,
    pool: Arc<BufferPool>,
}

impl Drop for Decomposition {
    fn drop(&mut self) {
        for d in self.digits.drain(..) {
            self.pool.put(d.into_data());
        }
    }
}

/// A pooled polynomial with unspecified contents (every limb must be overwritten).
fn pooled(pool: &BufferPool, n: usize, limbs: usize, repr: Repr) -> RnsPoly {
    RnsPoly::from_data(n, repr, pool.take(n * limbs)).expect("length is a multiple of n")
}

/// Decomposes `c` (evaluation form, `level + 1` limbs) and raises each digit to `Q_l ++ P`.
pub(crate) fn decompose(t: &KeySwitchTables, c: &RnsPoly) -> Decomposition {
    let level = c.limbs() - 1;
    let n = c.n();
    let qlp = t.qlp(level);
    // Copy and inverse-transform limb by limb in parallel.
    let mut coeff = pooled(&t.pool, n, level + 1, Repr::Coeff);
    coeff
        .data_mut()
        .par_chunks_exact_mut(n)
        .enumerate()
        .for_each(|(i, limb)| {
            limb.copy_from_slice(c.limb(i));
            qlp.plan(i).inverse(limb);
        });
    let digits = t.mod_up[level]
        .par_iter()
        .enumerate()
        .map(|(j, conv)| {
            let range = digit_range(j, t.digit_size, level);
            let mut out = pooled(&t.pool, n, qlp.len(), Repr::Eval);
            let mut digit_limbs = Vec::with_capacity(range.len());
            let mut targets = Vec::with_capacity(qlp.len() - range.len());
            for (idx, limb) in out.data_mut().chunks_exact_mut(n).enumerate() {
                if range.contains(&idx) {
                    digit_limbs.push((idx, limb))
                } else {
                    targets.push((idx, limb))
                }
            }
            for (idx, limb) in digit_limbs {
                limb.copy_from_slice(c.limb(idx));
            }
            let inputs: Vec<&[u64]> = range.clone().map(|i| coeff.limb(i)).collect();
            let mut target_refs: Vec<&mut [u64]> =
                targets.iter_mut().map(|(_, l)| &mut **l).collect();
            conv.convert_approx(&inputs, &mut target_refs);
            targets
                .par_iter_mut()
                .for_each(|(idx, limb)| qlp.plan(*idx).forward(limb));
            out
        })
        .collect();
    t.pool.put(coeff.into_data());
    Decomposition {
        level,
        digits,
        pool: t.pool.clone(),
    }
}

/// Fails unless `key` (shape-checked) reaches `level`.
pub(crate) fn check_key_level(key: &SwitchingKey, level: usize) -> Result<()> {
    if level > key.max_level() {
        return Err(RlweError::KeyLevelTooLow {
            level,
            key_level: key.max_level(),
        });
    }
    Ok(())
}

/// `(sum_j d_j * b_j, sum_j d_j * a_j)` over `Q_l ++ P`, with the digits first permuted by
/// `perm` (an automorphism in evaluation form) when given. The key may be limited to any
/// level `L >= l`: its limbs are `Q_0..Q_L ++ P`, of which `Q_0..Q_l` and `P` are read, and
/// its first `ceil((l + 1) / alpha)` digits.
///
/// # Errors
/// [`RlweError::KeyLevelTooLow`] when the key stops below the decomposition's level.
pub(crate) fn inner_product(
    t: &KeySwitchTables,
    dec: &Decomposition,
    key: &SwitchingKey,
    perm: Option<&[u32]>,
) -> Result<(RnsPoly, RnsPoly)> {
    let level = dec.level;
    check_key_level(key, level)?;
    let qlp = t.qlp(level);
    let n = qlp.n();
    let mut acc0 = pooled(&t.pool, n, qlp.len(), Repr::Eval);
    let mut acc1 = pooled(&t.pool, n, qlp.len(), Repr::Eval);
    // Limb `tl` of `Q_l ++ P` in the key over `Q_L ++ P`.
    let key_q = key.max_level() + 1;
    let key_limb = |tl: usize| {
        if tl <= level {
            tl
        } else {
            key_q + tl - level - 1
        }
    };
    acc0.data_mut()
        .par_chunks_exact_mut(n)
        .zip(acc1.data_mut().par_chunks_exact_mut(n))
        .enumerate()
        .for_each(|(tl, (a0, a1))| {
            let plan = qlp.plan(tl);
            let kl = key_limb(tl);
            a0.fill(0);
            a1.fill(0);
            let mut scratch = perm.map(|_| vec![0u64; n]);
            for (j, d) in dec.digits.iter().enumerate() {
                let (kb, ka) = &key.digits[j];
                let dl = match (&perm, &mut scratch) {
                    (Some(p), Some(s)) => {
                        let src = d.limb(tl);
                        for (o, &pi) in s.iter_mut().zip(p.iter()) {
                            *o = src[pi as usize];
                        }
                        &s[..]
                    }
                    _ => d.limb(tl),
                };
                plan.mul_accumulate(a0, dl, kb.limb(kl));
                plan.mul_accumulate(a1, dl, ka.limb(kl));
            }
        });
    Ok((acc0, acc1))
}

/// Divides `x` over `Q_l ++ P` (evaluation form) by `P` with rounding: the result over `Q_l`.
pub(crate) fn mod_down(t: &KeySwitchTables, mut x: RnsPoly, level: usize) -> RnsPoly {
    let n = x.n();
    let qlp = t.qlp(level);
    let nl = level + 1;
    let p_basis = qlp.slice(nl..qlp.len());
    let mut p_part = pooled(&t.pool, n, qlp.len() - nl, Repr::Eval);
    p_part.data_mut().copy_from_slice(&x.data()[nl * n..]);
    x.truncate(nl);
    p_basis.intt(&mut p_part);
    let mut conv = pooled(&t.pool, n, nl, Repr::Coeff);
    {
        let ins: Vec<&[u64]> = p_part.limbs_iter().collect();
        let mut outs: Vec<&mut [u64]> = conv.data_mut().chunks_exact_mut(n).collect();
        t.mod_down[level].convert_approx(&ins, &mut outs);
    }
    let ql = qlp.prefix(nl);
    // out_i = (x_i - NTT(conv_i)) * P^-1, limb by limb in parallel.
    x.data_mut()
        .par_chunks_exact_mut(n)
        .zip(conv.data_mut().par_chunks_exact_mut(n))
        .enumerate()
        .for_each(|(i, (xi, ci))| {
            let m = ql.modulus(i);
            ql.plan(i).forward(ci);
            let (w, ws) = (t.p_inv_mod_q[i], m.shoup(t.p_inv_mod_q[i]));
            for (a, &b) in xi.iter_mut().zip(ci.iter()) {
                *a = m.mul_shoup(m.sub(*a, b), w, ws);
            }
        });
    x
}

/// Full key switch of `c` (evaluation form over `Q_l`): returns `(d_0, d_1)` over `Q_l` with
/// `d_0 + d_1 s ~= c * s_in`.
///
/// # Errors
/// [`RlweError::KeyLevelTooLow`] when `c` sits above the key's maximum level (checked before
/// any work).
pub(crate) fn switch(
    t: &KeySwitchTables,
    c: &RnsPoly,
    key: &SwitchingKey,
) -> Result<(RnsPoly, RnsPoly)> {
    check_key_level(key, c.limbs() - 1)?;
    let dec = decompose(t, c);
    let (a0, a1) = inner_product(t, &dec, key, None)?;
    let level = dec.level;
    Ok(rayon::join(
        || mod_down(t, a0, level),
        || mod_down(t, a1, level),
    ))
}
