//! Real-slot variant: refresh two ciphertexts of real slot values with one bootstrap.
//!
//! A full-slot bootstrap refreshes `N/2` complex slots; real data uses half of that. The pair
//! `(a, b)` is packed as `(a + i b) / 2` (the `1/2` is an exact relabeling of the scale, no
//! level), bootstrapped once, and split by conjugation: `out + conj(out) = a` and
//! `-i (out - conj(out)) = b`, both at the default scale, at the bootstrap's output level.
//! Cost over one bootstrap: one conjugation (a key switch) and two exact plaintext products by
//! `+-i`. The single-ciphertext form keeps only the real part, which also removes the
//! imaginary noise the bootstrap leaves on real data.

use psf_ckks::{Ciphertext, Evaluator, Scale};

use super::{Bootstrapper, Encapsulation};
use crate::{CircuitError, Result};

impl Bootstrapper {
    /// Refreshes two ciphertexts of real slot values (same level and scale) with one
    /// bootstrap; returns them in order.
    pub fn bootstrap_real_pair(
        &self,
        eval: &Evaluator,
        encapsulation: Option<&Encapsulation>,
        a: &Ciphertext,
        b: &Ciphertext,
    ) -> Result<(Ciphertext, Ciphertext)> {
        if !a.meta.scale.matches(b.meta.scale) || a.meta.log_slots != b.meta.log_slots {
            return Err(CircuitError::Invalid(
                "real pair: scales or slot counts differ".into(),
            ));
        }
        let packed = eval.add_new(a, &self.mul_by_i(eval, b, 1.0)?)?;
        let out = self.bootstrap(eval, encapsulation, &halved(&packed))?;
        let conj = eval.conjugate_new(&out)?;
        let re = eval.add_new(&out, &conj)?;
        let im = self.mul_by_i(eval, &eval.sub_new(&out, &conj)?, -1.0)?;
        Ok((re, im))
    }

    /// Refreshes a ciphertext of real slot values, keeping only the real part.
    pub fn bootstrap_real(
        &self,
        eval: &Evaluator,
        encapsulation: Option<&Encapsulation>,
        ct: &Ciphertext,
    ) -> Result<Ciphertext> {
        let out = self.bootstrap(eval, encapsulation, &halved(ct))?;
        Ok(eval.add_new(&out, &eval.conjugate_new(&out)?)?)
    }
}

/// The same ciphertext read at twice the scale, i.e. holding half the values (exact).
fn halved(ct: &Ciphertext) -> Ciphertext {
    let mut x = ct.clone();
    x.meta.scale = Scale(2.0 * ct.meta.scale.0);
    x
}
