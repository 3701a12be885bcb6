//! Arithmetic on [`RnsPoly`] over the primes of an [`RnsBasis`]: each operation acts on the
//! first `out.limbs()` limbs, pairing limb `i` with prime `i` of the basis.

use crate::poly::{for_each_limb, zip_limbs, zip3_limbs};
use crate::{Repr, RnsBasis, RnsPoly};

impl RnsBasis {
    /// Forward NTT of every limb (coefficients -> evaluations).
    pub fn ntt(&self, p: &mut RnsPoly) {
        assert_eq!(
            p.repr(),
            Repr::Coeff,
            "ntt of a polynomial already in evaluation form"
        );
        assert!(p.limbs() <= self.len());
        for_each_limb(p, |i, l| self.plan(i).forward(l));
        p.set_repr(Repr::Eval);
    }

    /// Inverse NTT of every limb (evaluations -> coefficients).
    pub fn intt(&self, p: &mut RnsPoly) {
        assert_eq!(
            p.repr(),
            Repr::Eval,
            "intt of a polynomial in coefficient form"
        );
        assert!(p.limbs() <= self.len());
        for_each_limb(p, |i, l| self.plan(i).inverse(l));
        p.set_repr(Repr::Coeff);
    }

    fn check(&self, out: &RnsPoly, a: &RnsPoly) {
        assert!(
            out.limbs() <= a.limbs() && out.limbs() <= self.len(),
            "limb count mismatch"
        );
        assert_eq!(out.n(), a.n());
    }

    /// `out = a + b`.
    pub fn add(&self, a: &RnsPoly, b: &RnsPoly, out: &mut RnsPoly) {
        self.check(out, a);
        self.check(out, b);
        debug_assert_eq!(a.repr(), b.repr());
        out.set_repr(a.repr());
        zip3_limbs(out, a, b, |i, o, x, y| {
            let m = self.modulus(i);
            for ((o, &x), &y) in o.iter_mut().zip(x).zip(y) {
                *o = m.add(x, y);
            }
        });
    }

    /// `out += a`.
    pub fn add_assign(&self, out: &mut RnsPoly, a: &RnsPoly) {
        self.check(out, a);
        debug_assert_eq!(out.repr(), a.repr());
        zip_limbs(out, a, |i, o, x| {
            let m = self.modulus(i);
            for (o, &x) in o.iter_mut().zip(x) {
                *o = m.add(*o, x);
            }
        });
    }

    /// `out = a - b`.
    pub fn sub(&self, a: &RnsPoly, b: &RnsPoly, out: &mut RnsPoly) {
        self.check(out, a);
        self.check(out, b);
        debug_assert_eq!(a.repr(), b.repr());
        out.set_repr(a.repr());
        zip3_limbs(out, a, b, |i, o, x, y| {
            let m = self.modulus(i);
            for ((o, &x), &y) in o.iter_mut().zip(x).zip(y) {
                *o = m.sub(x, y);
            }
        });
    }

    /// `out -= a`.
    pub fn sub_assign(&self, out: &mut RnsPoly, a: &RnsPoly) {
        self.check(out, a);
        debug_assert_eq!(out.repr(), a.repr());
        zip_limbs(out, a, |i, o, x| {
            let m = self.modulus(i);
            for (o, &x) in o.iter_mut().zip(x) {
                *o = m.sub(*o, x);
            }
        });
    }

    /// `p = -p`.
    pub fn neg_assign(&self, p: &mut RnsPoly) {
        for_each_limb(p, |i, l| {
            let m = self.modulus(i);
            for x in l.iter_mut() {
                *x = m.neg(*x);
            }
        });
    }

    /// `out = a * b` coefficient-wise (both in evaluation form: the ring product).
    pub fn mul(&self, a: &RnsPoly, b: &RnsPoly, out: &mut RnsPoly) {
        self.check(out, a);
        self.check(out, b);
        debug_assert!(a.repr() == Repr::Eval && b.repr() == Repr::Eval);
        out.set_repr(Repr::Eval);
        zip3_limbs(out, a, b, |i, o, x, y| {
            o.fill(0);
            self.plan(i).mul_accumulate(o, x, y);
        });
    }

    /// `out *= a` coefficient-wise.
    pub fn mul_assign(&self, out: &mut RnsPoly, a: &RnsPoly) {
        self.check(out, a);
        debug_assert!(a.repr() == Repr::Eval && out.repr() == Repr::Eval);
        zip_limbs(out, a, |i, o, x| {
            let m = self.modulus(i);
            for (o, &x) in o.iter_mut().zip(x) {
                *o = m.mul(*o, x);
            }
        });
    }

    /// `out += a * b` coefficient-wise.
    pub fn mul_add_assign(&self, out: &mut RnsPoly, a: &RnsPoly, b: &RnsPoly) {
        self.check(out, a);
        self.check(out, b);
        debug_assert!(a.repr() == Repr::Eval && b.repr() == Repr::Eval);
        zip3_limbs(out, a, b, |i, o, x, y| self.plan(i).mul_accumulate(o, x, y));
    }

    /// `p *= c_i` on limb `i` (`scalars[i] < q_i`).
    pub fn mul_scalar_assign(&self, p: &mut RnsPoly, scalars: &[u64]) {
        assert!(scalars.len() >= p.limbs());
        for_each_limb(p, |i, l| {
            let m = self.modulus(i);
            let (w, ws) = (scalars[i], m.shoup(scalars[i]));
            for x in l.iter_mut() {
                *x = m.mul_shoup(*x, w, ws);
            }
        });
    }

    /// `out += a * c_i` on limb `i`.
    pub fn mul_scalar_add_assign(&self, out: &mut RnsPoly, a: &RnsPoly, scalars: &[u64]) {
        self.check(out, a);
        assert!(scalars.len() >= out.limbs());
        zip_limbs(out, a, |i, o, x| {
            let m = self.modulus(i);
            let (w, ws) = (scalars[i], m.shoup(scalars[i]));
            for (o, &x) in o.iter_mut().zip(x) {
                *o = m.add(*o, m.mul_shoup(x, w, ws));
            }
        });
    }

    /// Adds the constant `c_i` (per limb) to the polynomial: to every evaluation in
    /// evaluation form, to the constant coefficient in coefficient form.
    pub fn add_scalar_assign(&self, p: &mut RnsPoly, scalars: &[u64]) {
        assert!(scalars.len() >= p.limbs());
        let repr = p.repr();
        for_each_limb(p, |i, l| {
            let m = self.modulus(i);
            match repr {
                Repr::Eval => l.iter_mut().for_each(|x| *x = m.add(*x, scalars[i])),
                Repr::Coeff => l[0] = m.add(l[0], scalars[i]),
            }
        });
    }

    /// The same integer constant reduced modulo each prime of the basis.
    pub fn scalar_residues(&self, c: i128) -> Vec<u64> {
        (0..self.len())
            .map(|i| self.modulus(i).from_i128(c))
            .collect()
    }

    /// `out = a(X^g)` in evaluation form, with `perm` from [`crate::NttPlan::automorphism_permutation`].
    pub fn automorphism_eval(&self, a: &RnsPoly, perm: &[u32], out: &mut RnsPoly) {
        self.check(out, a);
        debug_assert_eq!(a.repr(), Repr::Eval);
        out.set_repr(Repr::Eval);
        zip_limbs(out, a, |_, o, x| {
            for (o, &p) in o.iter_mut().zip(perm) {
                *o = x[p as usize];
            }
        });
    }

    /// `out = a(X^g)` in coefficient form (odd `g`).
    pub fn automorphism_coeff(&self, a: &RnsPoly, g: usize, out: &mut RnsPoly) {
        self.check(out, a);
        debug_assert_eq!(a.repr(), Repr::Coeff);
        out.set_repr(Repr::Coeff);
        let n = a.n();
        let mask = 2 * n - 1;
        zip_limbs(out, a, |i, o, x| {
            let m = self.modulus(i);
            for (j, &c) in x.iter().enumerate() {
                let e = (j * g) & mask;
                if e < n { o[e] = c } else { o[e - n] = m.neg(c) }
            }
        });
    }

    /// Divides by the last prime `q_l` with rounding and drops that limb (CKKS rescale), in
    /// evaluation form: `p_i <- (p_i - [p_l]_{q_i}) * q_l^-1`, with `[p_l]` centered.
    pub fn rescale_eval(&self, p: &mut RnsPoly) {
        assert_eq!(p.repr(), Repr::Eval);
        let l = p.limbs() - 1;
        assert!(l >= 1 && l < self.len(), "rescale needs at least two limbs");
        let n = p.n();
        let mut last = p.limb(l).to_vec();
        self.plan(l).inverse(&mut last);
        let ql = self.modulus(l).value();
        let half = ql / 2;
        p.truncate(l);
        for_each_limb(p, |i, limb| {
            let m = self.modulus(i);
            let q_l_mod = m.reduce(ql);
            let mut t = vec![0u64; n];
            for (d, &x) in t.iter_mut().zip(&last) {
                // centered representative of x in (-q_l/2, q_l/2], reduced mod q_i
                *d = if x > half {
                    m.sub(m.reduce(x), q_l_mod)
                } else {
                    m.reduce(x)
                };
            }
            self.plan(i).forward(&mut t);
            let inv = m.inv(q_l_mod).expect("distinct primes are coprime");
            let inv_s = m.shoup(inv);
            for (y, &tv) in limb.iter_mut().zip(&t) {
                *y = m.mul_shoup(m.sub(*y, tv), inv, inv_s);
            }
        });
    }
}
