//! CKKS bootstrapping: `ScaleDown -> ModRaise -> CoeffsToSlots -> EvalMod -> SlotsToCoeffs`,
//! with sparse-secret encapsulation ([`Encapsulation`]) and the bootstrapping levels at the top
//! of the modulus chain, apart from the user's: a refreshed ciphertext comes out at level
//! `max_level - depth()` with the default scale.
//!
//! Pieces: [`dft`] (the factored special FFT, `f64`), [`eval_mod`] (the scaled cosine with
//! double angle and its error analysis), [`linear`] (the encoded BSGS stages), [`keys`].
//! Scales are exact throughout: CoeffsToSlots runs at scale `q_0` (so its slots hold
//! `t = (m + q_0 I) / q_0`), EvalMod's output scale is chosen so that relabeling
//! `sin(2 pi t) ~= 2 pi m / q_0` by `2 pi scale_in / q_0` gives the default scale.

pub mod dft;
pub mod eval_mod;
pub mod keys;
pub mod linear;
pub mod presets;
mod real;
mod wire;

use std::f64::consts::TAU;

use num_complex::Complex64;
use psf_ckks::{Ciphertext, CkksParameters, Encoder, EvaluationKeys, Evaluator, Scale};
use psf_rlwe::KeySwitcher;

pub use eval_mod::EvalModSpec;
pub use keys::Encapsulation;
pub use linear::DftStage;

use crate::{Circuit, CircuitError, HeBackend, PolyEval, Result};
use dft::DiagMatrix;
use linear::BsgsPlan;

/// What a bootstrapping circuit is made of.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BootstrapConfig {
    /// `log2` of the slot count of the ciphertexts it refreshes.
    pub log_slots: u32,
    /// Levels (matrix factors) of CoeffsToSlots.
    pub cts_levels: usize,
    /// Levels (matrix factors) of SlotsToCoeffs.
    pub stc_levels: usize,
    /// The EvalMod approximation.
    pub eval_mod: EvalModSpec,
    /// Hamming weight of the ephemeral sparse secret (encapsulation); `None` when the user's
    /// secret is itself sparse enough for `eval_mod.k`.
    pub ephemeral_weight: Option<usize>,
    /// `log2` of the message ratio `q_0 / scale` that ScaleDown aims at: an input of smaller
    /// scale is multiplied at level 0 by the integer `floor(q_0 / (2^ratio scale))` (no level
    /// used, relative precision unchanged). Every error before SlotsToCoeffs is amplified by
    /// the ratio; the sine's curvature error shrinks with it (by 4 per bit).
    pub log_message_ratio: u32,
}

impl BootstrapConfig {
    /// Levels consumed: CoeffsToSlots + EvalMod + SlotsToCoeffs.
    pub fn depth(&self) -> usize {
        self.cts_levels + self.eval_mod.depth() + self.stc_levels
    }
}

/// A bootstrapping circuit for one parameter set, with its DFT matrices encoded.
pub struct Bootstrapper {
    params: CkksParameters,
    config: BootstrapConfig,
    encoder: Encoder,
    switcher: KeySwitcher,
    cts: Vec<DftStage>,
    stc: Vec<DftStage>,
    cosine: PolyEval,
}

impl Bootstrapper {
    /// Builds the stages for `params` (the top `config.depth()` levels are the bootstrap's).
    pub fn new(params: &CkksParameters, config: BootstrapConfig) -> Result<Self> {
        check_config(params, &config)?;
        let top = params.ring().max_level();
        let encoder = Encoder::new(params);
        let eval = Evaluator::new(params, EvaluationKeys::default());
        let (cts_m, stc_m) = matrices(params, &config);
        let stc_top = stage_tops(params, &config).1;
        let encode = |m: &DiagMatrix, level| DftStage::encode(params, &encoder, &eval, m, level);
        let cts = (cts_m.iter().enumerate())
            .map(|(i, m)| encode(m, top - i))
            .collect::<Result<_>>()?;
        let stc = (stc_m.iter().enumerate())
            .map(|(i, m)| encode(m, stc_top - i))
            .collect::<Result<_>>()?;
        Ok(Self {
            params: params.clone(),
            config,
            cosine: PolyEval::new(config.eval_mod.cosine())?,
            switcher: KeySwitcher::new(params.ring()),
            encoder,
            cts,
            stc,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &BootstrapConfig {
        &self.config
    }

    /// The parameters it was built for.
    pub fn params(&self) -> &CkksParameters {
        &self.params
    }

    /// Bytes of the encoded DFT diagonals (extended to `Q_l ++ P`).
    pub fn size_bytes(&self) -> usize {
        self.cts
            .iter()
            .chain(&self.stc)
            .map(DftStage::size_bytes)
            .sum()
    }

    /// Number of encoded DFT diagonals.
    pub fn diagonal_count(&self) -> usize {
        (self.cts.iter().chain(&self.stc))
            .map(|s| s.plan().giant.iter().map(|g| g.1.len()).sum::<usize>())
            .sum()
    }

    /// The level of a refreshed ciphertext.
    pub fn output_level(&self) -> usize {
        self.params.ring().max_level() - self.config.depth()
    }

    /// The rotations whose keys the circuit needs (besides conjugation and relinearization).
    pub fn rotations(&self) -> Vec<i64> {
        let mut r: Vec<i64> = (self.cts.iter().chain(&self.stc))
            .flat_map(|s| s.plan().rotations().collect::<Vec<_>>())
            .chain(self.sub_sum_rotations())
            .filter(|&r| r != 0)
            .collect();
        r.sort_unstable();
        r.dedup();
        r
    }

    /// Each rotation of [`Self::rotations`] with the highest level the circuit rotates by it
    /// at: the top level for ModRaise's sub-sums and CoeffsToSlots, the input level of its
    /// stage for SlotsToCoeffs (every stage rotates at exactly its level), so a key limited to
    /// that level serves. Sorted by rotation.
    pub fn rotation_levels(&self) -> Vec<(i64, usize)> {
        let stages = self.cts.iter().chain(&self.stc);
        highest_levels(
            &self.params,
            &self.config,
            stages.map(|s| (s.plan().clone(), s.level())),
        )
    }

    /// [`Self::rotation_levels`] of the circuit `new(params, config)` would build, from the
    /// DFT plans alone: no diagonal is encoded (at N=2^16 the encoded diagonals take 4.4 GiB
    /// and most of `new`'s time), so a key list costs next to nothing.
    ///
    /// # Errors
    /// As [`Self::new`].
    pub fn planned_rotation_levels(
        params: &CkksParameters,
        config: BootstrapConfig,
    ) -> Result<Vec<(i64, usize)>> {
        check_config(params, &config)?;
        let (cts_m, stc_m) = matrices(params, &config);
        let (top, stc_top) = stage_tops(params, &config);
        let plans = (cts_m.iter().enumerate())
            .map(|(i, m)| (BsgsPlan::new(&m.rotations()), top - i))
            .chain(
                (stc_m.iter().enumerate())
                    .map(|(i, m)| (BsgsPlan::new(&m.rotations()), stc_top - i)),
            );
        Ok(highest_levels(params, &config, plans))
    }

    fn slots(&self) -> usize {
        1 << self.config.log_slots
    }

    fn sub_sum_rotations(&self) -> Vec<i64> {
        sub_sum_rotations(&self.params, &self.config)
    }

    /// The integer ScaleDown multiplies an input of scale `scale` by (at least 1).
    pub fn scale_down_factor(&self, scale: Scale) -> i64 {
        let q0 = self.params.ring().q().modulus(0).value() as f64;
        let ratio = f64::from(self.config.log_message_ratio).exp2();
        ((q0 / (ratio * scale.0)).floor() as i64).max(1)
    }

    /// The scale the ModRaise'd message had (the input's times the ScaleDown factor), which
    /// EvalMod's output scale is solved for.
    pub fn raised_message_scale(&self, scale: Scale) -> f64 {
        scale.0 * self.scale_down_factor(scale) as f64
    }

    /// Refreshes `ct` (any level, scale below `q_0 / 2`): returns it at
    /// [`Self::output_level`] with the default scale. `encapsulation` must be given iff the
    /// configuration has an ephemeral weight.
    pub fn bootstrap(
        &self,
        eval: &Evaluator,
        encapsulation: Option<&Encapsulation>,
        ct: &Ciphertext,
    ) -> Result<Ciphertext> {
        let raised = self.mod_raise(eval, encapsulation, ct)?;
        let slots = self.coeffs_to_slots(eval, &raised)?;
        let reduced = self.eval_mod_all(eval, &slots, self.raised_message_scale(ct.meta.scale))?;
        let mut out = self.slots_to_coeffs(eval, &reduced)?;
        out.meta.log_slots = ct.meta.log_slots;
        Ok(out)
    }

    /// ScaleDown (drop to level 0, multiply by [`Self::scale_down_factor`]) and ModRaise to
    /// the top level under the dense secret, with the scale set to `q_0`; for sparse slots,
    /// the sub-sum keeps the coefficients at multiples of the gap (times the gap).
    pub fn mod_raise(
        &self,
        eval: &Evaluator,
        encapsulation: Option<&Encapsulation>,
        ct: &Ciphertext,
    ) -> Result<Ciphertext> {
        let ring = self.params.ring();
        let q0 = ring.q().modulus(0).value() as f64;
        if ct.meta.scale.0 >= q0 / 2.0 || ct.meta.log_slots != self.config.log_slots {
            return Err(CircuitError::Invalid(format!(
                "bootstrap input: log2 scale {:.1} (q_0 has {:.1} bits), log_slots {}",
                ct.meta.scale.log2(),
                q0.log2(),
                ct.meta.log_slots
            )));
        }
        let mut low = ct.clone();
        low.drop_to_level(0);
        let factor = self.scale_down_factor(ct.meta.scale);
        if factor > 1 {
            low = eval.mul_int_new(&low, factor)?;
        }
        let top = ring.max_level();
        let mut raised = match (encapsulation, self.config.ephemeral_weight) {
            (Some(e), Some(_)) => {
                let small = low.mod_raise(e.small_params(), 0)?;
                let small = KeySwitcher::new(e.small_params()).switch_key(&small, e.to_sparse())?;
                let up = small.mod_raise(ring, top)?;
                self.switcher.switch_key(&up, e.to_dense())?
            }
            (None, None) => low.mod_raise(ring, top)?,
            _ => return Err(CircuitError::Invalid("encapsulation keys vs config".into())),
        };
        raised.meta.scale = Scale(q0);
        for r in self.sub_sum_rotations() {
            raised = eval.add_new(&raised, &eval.rotate_new(&raised, r)?)?;
        }
        Ok(raised)
    }

    /// CoeffsToSlots: slots `t / K` in bit-reversed order; full slots give the real and the
    /// imaginary parts of the folded coefficients as two ciphertexts, sparse slots both
    /// parts in one ciphertext of twice the slots.
    pub fn coeffs_to_slots(&self, eval: &Evaluator, ct: &Ciphertext) -> Result<Vec<Ciphertext>> {
        let y = self
            .cts
            .iter()
            .try_fold(ct.clone(), |x, s| s.apply(eval, &x))?;
        let conj = eval.conjugate_new(&y)?;
        let re = eval.add_new(&y, &conj)?;
        if self.slots() < self.params.max_slots() {
            return Ok(vec![re]);
        }
        let im = self.mul_by_i(eval, &eval.sub_new(&y, &conj)?, -1.0)?;
        Ok(vec![re, im])
    }

    /// [`Self::eval_mod`] of each CoeffsToSlots output (the real and imaginary parts run in
    /// parallel).
    pub fn eval_mod_all(
        &self,
        eval: &Evaluator,
        parts: &[Ciphertext],
        scale_in: f64,
    ) -> Result<Vec<Ciphertext>> {
        match parts {
            [re, im] => {
                let (re, im) = rayon::join(
                    || self.eval_mod(eval, re, scale_in),
                    || self.eval_mod(eval, im, scale_in),
                );
                Ok(vec![re?, im?])
            }
            _ => (parts.iter())
                .map(|c| self.eval_mod(eval, c, scale_in))
                .collect(),
        }
    }

    /// EvalMod: `sin(2 pi t)` with the output scale that makes the final scale the default.
    pub fn eval_mod(&self, eval: &Evaluator, ct: &Ciphertext, scale_in: f64) -> Result<Ciphertext> {
        let q = self.params.ring().q();
        let q0 = q.modulus(0).value() as f64;
        let r = self.config.eval_mod.double_angle as usize;
        let poly_level = ct.level() - (self.config.eval_mod.depth() - r);
        // Backwards from the wanted scale through the double angles: S_j = sqrt(S_(j+1) q).
        let want = self.params.default_scale().0 * q0 / (TAU * scale_in);
        let poly_scale = (0..r).rev().fold(want, |s, j| {
            (s * q.modulus(poly_level - j).value() as f64).sqrt()
        });
        let be = HeBackend::new(&self.params, &self.encoder, eval);
        let cosine = self.cosine.clone().with_output_scale(poly_scale);
        let mut c = cosine.evaluate_one(&be, ct)?;
        for _ in 0..r {
            let sq = eval.mul_int_new(&eval.mul_relin_new(&c, &c)?, 2)?;
            c = eval.add_const_new(&sq, -1.0)?;
            eval.rescale(&mut c)?;
        }
        Ok(c)
    }

    /// SlotsToCoeffs of the EvalMod output(s), relabeled to the default scale.
    pub fn slots_to_coeffs(&self, eval: &Evaluator, parts: &[Ciphertext]) -> Result<Ciphertext> {
        let mut v = match parts {
            [u] => u.clone(),
            [re, im] => eval.add_new(re, &self.mul_by_i(eval, im, 1.0)?)?,
            _ => return Err(CircuitError::Invalid("one or two parts".into())),
        };
        v.meta.scale = self.params.default_scale();
        self.stc.iter().try_fold(v, |x, s| s.apply(eval, &x))
    }

    /// `ct * (sign i)` exactly: the plaintext of the constant `i` at scale 1 is `X^(N/2)`.
    pub(crate) fn mul_by_i(
        &self,
        eval: &Evaluator,
        ct: &Ciphertext,
        sign: f64,
    ) -> Result<Ciphertext> {
        let i = vec![Complex64::new(0.0, sign); self.params.max_slots()];
        let log_slots = self.params.max_log_slots();
        let pt = self
            .encoder
            .encode_complex(&i, log_slots, ct.level(), Scale(1.0))?;
        Ok(eval.mul_plain_new(ct, &pt)?)
    }
}

/// Refuses a configuration deeper than the chain or with more slots than the ring.
fn check_config(params: &CkksParameters, config: &BootstrapConfig) -> Result<()> {
    let top = params.ring().max_level();
    if config.depth() > top || config.log_slots > params.max_log_slots() {
        return Err(CircuitError::Invalid(format!(
            "bootstrapping depth {} on {} levels, log_slots {}",
            config.depth(),
            top,
            config.log_slots
        )));
    }
    Ok(())
}

/// The input levels of the first CoeffsToSlots and the first SlotsToCoeffs stage.
fn stage_tops(params: &CkksParameters, config: &BootstrapConfig) -> (usize, usize) {
    let top = params.ring().max_level();
    (top, top - config.cts_levels - config.eval_mod.depth())
}

/// ModRaise's sub-sum rotations (sparse slots only).
fn sub_sum_rotations(params: &CkksParameters, config: &BootstrapConfig) -> Vec<i64> {
    let slots = 1usize << config.log_slots;
    let gap = params.max_slots() / slots;
    (0..gap.trailing_zeros())
        .map(|j| (slots << j) as i64)
        .collect()
}

/// Each non-zero rotation of the DFT stages `(plan, level)` and of the sub-sums (at the top
/// level) with the highest level it is used at, sorted by rotation.
fn highest_levels(
    params: &CkksParameters,
    config: &BootstrapConfig,
    stages: impl Iterator<Item = (BsgsPlan, usize)>,
) -> Vec<(i64, usize)> {
    let top = params.ring().max_level();
    let mut levels = std::collections::BTreeMap::new();
    let uses = stages
        .flat_map(|(plan, level)| plan.rotations().map(|r| (r, level)).collect::<Vec<_>>())
        .chain(
            sub_sum_rotations(params, config)
                .into_iter()
                .map(|r| (r, top)),
        );
    for (r, level) in uses.filter(|&(r, _)| r != 0) {
        let e = levels.entry(r).or_insert(level);
        *e = (*e).max(level);
    }
    levels.into_iter().collect()
}

/// The CoeffsToSlots and SlotsToCoeffs factors with the constants folded in: `1/(gap K)` and
/// the real-part extraction into the last CoeffsToSlots factor, and for sparse slots the
/// packing of real and imaginary parts into `2n` slots (undone by the first SlotsToCoeffs
/// factor).
fn matrices(
    params: &CkksParameters,
    config: &BootstrapConfig,
) -> (Vec<DiagMatrix>, Vec<DiagMatrix>) {
    let n = 1usize << config.log_slots;
    let gap = params.max_slots() / n;
    let mut cts = dft::coeffs_to_slots_factors(n, config.cts_levels);
    let mut stc = dft::slots_to_coeffs_factors(n, config.stc_levels);
    let c = 1.0 / (gap as f64 * config.eval_mod.k);
    let last = cts.pop().expect("at least one factor");
    let zero = Complex64::default();
    if gap == 1 {
        cts.push(last.scaled(Complex64::new(c / 2.0, 0.0)));
    } else {
        // y = A (M v, M v) with A = (1/2, -i/2): y + conj(y) = (Re M v, Im M v).
        let mask: Vec<Complex64> = (0..2 * n)
            .map(|x| {
                if x < n {
                    Complex64::new(c / 2.0, 0.0)
                } else {
                    Complex64::new(0.0, -c / 2.0)
                }
            })
            .collect();
        cts.push(last.tiled(2).row_scaled(&mask));
        // (a, b) -> (a + i b, a + i b) before the first factor.
        let one = Complex64::new(1.0, 0.0);
        let i = Complex64::new(0.0, 1.0);
        let unpack = DiagMatrix::from_entries(
            2 * n,
            (0..2 * n).flat_map(|x| [(x, x % n, one), (x, x % n + n, i)]),
        );
        stc[0] = stc[0].tiled(2).after(&unpack).pruned(zero.norm());
    }
    (cts, stc)
}

impl Circuit for Bootstrapper {
    fn depth(&self) -> usize {
        self.config.depth()
    }

    fn min_input_level(&self) -> usize {
        0
    }

    fn galois_elements(&self, log_n: u32) -> Vec<usize> {
        let mut g = crate::rotation_galois_elements(self.rotations(), log_n);
        g.push(psf_ckks::galois_element_for_conjugation(log_n));
        g.sort_unstable();
        g.dedup();
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key list from the plans alone is the built circuit's, for the full-slot INSECURE
    /// twin of the 128-bit chain.
    #[test]
    fn planned_rotation_levels_match_the_built_circuit() {
        let preset = presets::for_log_n(12);
        let params = preset.params.try_build().unwrap();
        let built = Bootstrapper::new(&params, preset.config).unwrap();
        let planned = Bootstrapper::planned_rotation_levels(&params, preset.config).unwrap();
        assert!(!planned.is_empty());
        assert_eq!(planned, built.rotation_levels());
    }
}
