//! Block-matrix products over several ciphertexts: `y_o = sum_i M_{o,i} x_i`, each block a
//! [`LinearTransform`], all blocks on one schedule so that each input's baby-step rotations
//! are computed once (hoisted) for every output, and each output's giant-step rotations once
//! for every input.
//!
//! Counts: per input with a non-zero baby rotation, `Decompose` 1 and `RotateHoisted` per
//! distinct non-zero baby rotation its blocks use; `PtMul` per diagonal of every block;
//! per output, `Rotate` per distinct non-zero giant rotation and `Rescale` 1; `Add` to sum.

use std::collections::BTreeMap;

use rayon::prelude::*;

use psf_ckks::{BabySteps, BlockGiantStep, Ciphertext, ExtendedPlaintext};

use super::encoded::at_level;
use super::transform::{best_n1, gcd};
use super::{DoubleHoistedTransform, EncodedTransform, LinearTransform};
use crate::{Backend, Circuit, CircuitError, HeBackend, Result, rotation_galois_elements};

/// A matrix of `outputs x inputs` blocks (`None`: zero block) over ciphertexts of `slots`.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockTransform {
    blocks: Vec<Vec<Option<LinearTransform>>>,
    inputs: usize,
}

impl BlockTransform {
    /// From blocks `[output][input]`, rescheduled on a common baby-step count and stride.
    ///
    /// # Errors
    /// Ragged or empty block rows, blocks of different slot counts, or an all-zero output row.
    pub fn new(blocks: Vec<Vec<Option<LinearTransform>>>) -> Result<Self> {
        let inputs = blocks.first().map_or(0, Vec::len);
        let all: Vec<&LinearTransform> = blocks.iter().flatten().flatten().collect();
        let Some(first) = all.first() else {
            return Err(CircuitError::Invalid("block matrix without blocks".into()));
        };
        let slots = first.slots();
        if inputs == 0
            || blocks
                .iter()
                .any(|r| r.len() != inputs || r.iter().all(Option::is_none))
            || all.iter().any(|t| t.slots() != slots)
        {
            return Err(CircuitError::Invalid(
                "block rows must be equally long, non-zero, over one slot count".into(),
            ));
        }
        let offsets: Vec<usize> = all
            .iter()
            .flat_map(|t| t.diagonals().keys().copied())
            .collect();
        let stride = offsets.iter().fold(slots, |g, &r| gcd(g, r));
        let indices: Vec<usize> = offsets.iter().map(|r| r / stride).collect();
        let span = indices.iter().max().map_or(1, |&m| m + 1);
        let n1 = best_n1(&indices, span);
        let blocks = blocks
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .map(|b| b.map(|t| t.with_schedule(n1, stride)).transpose())
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { blocks, inputs })
    }

    /// Input ciphertexts.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Output ciphertexts.
    pub fn outputs(&self) -> usize {
        self.blocks.len()
    }

    /// The blocks `[output][input]`.
    pub fn blocks(&self) -> &[Vec<Option<LinearTransform>>] {
        &self.blocks
    }

    /// The cleartext twin on the inputs' slot vectors.
    pub fn apply_f64(&self, xs: &[Vec<f64>]) -> Vec<Vec<f64>> {
        self.blocks
            .iter()
            .map(|row| {
                let mut y: Vec<f64> = Vec::new();
                for (t, x) in row.iter().zip(xs) {
                    let Some(t) = t else { continue };
                    let v = t.apply_f64(x);
                    y.resize(v.len(), 0.0);
                    y.iter_mut().zip(&v).for_each(|(a, b)| *a += b);
                }
                y
            })
            .collect()
    }

    /// Encodes every block at `level`.
    ///
    /// # Errors
    /// As [`LinearTransform::encode`].
    pub fn encode<B: Backend>(&self, b: &B, level: usize) -> Result<EncodedBlockTransform<B>> {
        let blocks = self
            .blocks
            .iter()
            .map(|row| {
                row.iter()
                    .map(|t| t.as_ref().map(|t| t.encode(b, level)).transpose())
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(EncodedBlockTransform { blocks, level })
    }

    /// Encodes every block over `Q_level ++ P` for the double-hoisted path.
    ///
    /// # Errors
    /// As [`LinearTransform::encode`].
    pub fn encode_double_hoisted(
        &self,
        b: &HeBackend<'_>,
        level: usize,
    ) -> Result<DoubleHoistedBlockTransform> {
        let blocks = self
            .blocks
            .iter()
            .map(|row| {
                row.iter()
                    .map(|t| {
                        t.as_ref()
                            .map(|t| t.encode_double_hoisted(b, level))
                            .transpose()
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(DoubleHoistedBlockTransform { blocks, level })
    }

    fn all_rotations(&self) -> Vec<i64> {
        let mut r: Vec<i64> = self
            .blocks
            .iter()
            .flatten()
            .flatten()
            .flat_map(|t| t.plan().rotations())
            .collect();
        r.sort_unstable();
        r.dedup();
        r
    }
}

impl Circuit for BlockTransform {
    fn depth(&self) -> usize {
        1
    }

    fn galois_elements(&self, log_n: u32) -> Vec<usize> {
        rotation_galois_elements(self.all_rotations(), log_n)
    }

    fn needs_relinearization_key(&self) -> bool {
        false
    }
}

/// A [`BlockTransform`] with encoded blocks.
pub struct EncodedBlockTransform<B: Backend> {
    blocks: Vec<Vec<Option<EncodedTransform<B>>>>,
    level: usize,
}

impl<B: Backend> EncodedBlockTransform<B> {
    /// `y_o = sum_i M_{o,i} x_i` for every output, rescaled (level `level - 1`, each output at
    /// the first input's scale; all inputs must share one scale).
    ///
    /// # Errors
    /// A wrong number of inputs, an input below the encoding level, or a backend error.
    pub fn apply(&self, b: &B, xs: &[B::Ct]) -> Result<Vec<B::Ct>> {
        let inputs = self.blocks.first().map_or(0, Vec::len);
        if xs.len() != inputs {
            return Err(CircuitError::Invalid(format!(
                "{} inputs, expected {inputs}",
                xs.len()
            )));
        }
        let scale = b.scale(&xs[0]);
        let rotated = (0..inputs)
            .map(|i| self.baby_steps(b, &xs[i], i))
            .collect::<Result<Vec<_>>>()?;
        self.blocks
            .iter()
            .map(|row| {
                let mut giants: BTreeMap<i64, B::Ct> = BTreeMap::new();
                for (i, enc) in row.iter().enumerate() {
                    let Some(enc) = enc else { continue };
                    let plan = enc.transform().plan();
                    for ((g, terms), pts) in plan.giant.iter().zip(&enc.diagonals) {
                        for (&(bi, _), pt) in terms.iter().zip(pts) {
                            let prod = b.mul_plain(&rotated[i][&plan.baby[bi]], pt)?;
                            add_to_giant(b, &mut giants, *g, prod)?;
                        }
                    }
                }
                finish_output(b, giants, scale)
            })
            .collect()
    }

    /// The baby-step rotations of input `i` used by any block of column `i`, by rotation.
    fn baby_steps(&self, b: &B, x: &B::Ct, i: usize) -> Result<BTreeMap<i64, B::Ct>> {
        let rots = self
            .blocks
            .iter()
            .filter_map(|row| row[i].as_ref())
            .flat_map(|enc| enc.transform().plan().baby_rotations());
        baby_steps(b, x, self.level, rots)
    }
}

/// `x` at `level` and rotated by each of `rots` (hoisted), by rotation (0: `x` itself).
fn baby_steps<B: Backend>(
    b: &B,
    x: &B::Ct,
    level: usize,
    rots: impl Iterator<Item = i64>,
) -> Result<BTreeMap<i64, B::Ct>> {
    let x = match b.level(x) {
        l if l == level => x.clone(),
        l if l > level => b.drop_to_level(x, level)?,
        l => {
            return Err(CircuitError::NotEnoughLevels {
                needed: level,
                level: l,
            });
        }
    };
    let mut rots: Vec<i64> = rots.collect();
    rots.sort_unstable();
    rots.dedup();
    let mut out = BTreeMap::new();
    if !rots.is_empty() {
        for (k, ct) in rots.iter().zip(b.rotate_hoisted(&x, &rots)?) {
            out.insert(*k, ct);
        }
    }
    out.insert(0, x);
    Ok(out)
}

impl BlockTransform {
    /// `y_o = sum_i M_{o,i} x_i`, rescaled, with the diagonals encoded at `level` just before
    /// their products, one giant step at a time (the products of a giant step run in
    /// parallel). Same results, levels, scales and counts as `self.encode(b, level)?.apply(b,
    /// xs)`, but memory for one giant step's plaintexts instead of the whole matrix's (at
    /// `N = 2^16`, level 12, a 512 x 2048 map would hold 4,096 plaintexts of 6.8 MB).
    ///
    /// # Errors
    /// As [`EncodedBlockTransform::apply`].
    pub fn apply_streamed<B: Backend>(
        &self,
        b: &B,
        xs: &[B::Ct],
        level: usize,
    ) -> Result<Vec<B::Ct>> {
        if xs.len() != self.inputs {
            return Err(CircuitError::Invalid(format!(
                "{} inputs, expected {}",
                xs.len(),
                self.inputs
            )));
        }
        let scale = b.scale(&xs[0]);
        let pt_scale = super::encoded::diagonal_scale(b, level)?;
        let rotated = (0..self.inputs)
            .map(|i| {
                let rots = self
                    .blocks
                    .iter()
                    .filter_map(|row| row[i].as_ref())
                    .flat_map(|t| t.plan().baby_rotations());
                baby_steps(b, &xs[i], level, rots)
            })
            .collect::<Result<Vec<_>>>()?;
        self.blocks
            .iter()
            .map(|row| {
                let mut giants: BTreeMap<i64, B::Ct> = BTreeMap::new();
                for (i, t) in row.iter().enumerate() {
                    let Some(t) = t else { continue };
                    let plan = t.plan();
                    for (g, terms) in &plan.giant {
                        let prods = terms
                            .par_iter()
                            .map(|&(bi, r)| {
                                let pt = b.encode(&t.prerotated(r, *g), level, pt_scale)?;
                                b.mul_plain(&rotated[i][&plan.baby[bi]], &pt)
                            })
                            .collect::<Result<Vec<_>>>()?;
                        for prod in prods {
                            add_to_giant(b, &mut giants, *g, prod)?;
                        }
                    }
                }
                finish_output(b, giants, scale)
            })
            .collect()
    }
}

/// Adds `prod` to the inner sum of giant step `g`.
fn add_to_giant<B: Backend>(
    b: &B,
    giants: &mut BTreeMap<i64, B::Ct>,
    g: i64,
    prod: B::Ct,
) -> Result<()> {
    let acc = match giants.remove(&g) {
        None => prod,
        Some(acc) => b.add(&acc, &prod)?,
    };
    giants.insert(g, acc);
    Ok(())
}

/// One output: each giant step's inner sum rotated by its step and added, rescaled, at
/// `scale`.
fn finish_output<B: Backend>(b: &B, giants: BTreeMap<i64, B::Ct>, scale: f64) -> Result<B::Ct> {
    let mut total: Option<B::Ct> = None;
    for (g, inner) in giants {
        let inner = if g != 0 { b.rotate(&inner, g)? } else { inner };
        total = Some(match total {
            None => inner,
            Some(acc) => b.add(&acc, &inner)?,
        });
    }
    let total = total.ok_or_else(|| CircuitError::Invalid("zero output".into()))?;
    Ok(b.with_scale(&b.rescale(&total)?, scale))
}

/// A [`BlockTransform`] with blocks over `Q_level ++ P`, evaluated double hoisted on
/// ciphertexts ([`psf_ckks::Evaluator::bsgs_double_hoisted_blocks`]): same results, levels,
/// scales and counts as [`EncodedBlockTransform::apply`].
pub struct DoubleHoistedBlockTransform {
    blocks: Vec<Vec<Option<DoubleHoistedTransform>>>,
    level: usize,
}

impl DoubleHoistedBlockTransform {
    /// `y_o = sum_i M_{o,i} x_i` for every output, rescaled.
    ///
    /// # Errors
    /// As [`EncodedBlockTransform::apply`].
    pub fn apply(&self, b: &HeBackend<'_>, xs: &[Ciphertext]) -> Result<Vec<Ciphertext>> {
        let inputs = self.blocks.first().map_or(0, Vec::len);
        if xs.len() != inputs || inputs == 0 {
            return Err(CircuitError::Invalid(format!(
                "{} inputs, expected {inputs}",
                xs.len()
            )));
        }
        let scale = b.scale(&xs[0]);
        let dropped = xs
            .iter()
            .map(|x| at_level(b, x, self.level))
            .collect::<Result<Vec<_>>>()?;
        let xs: Vec<&Ciphertext> = dropped
            .iter()
            .zip(xs)
            .map(|(d, x)| d.as_ref().unwrap_or(x))
            .collect();
        // Per input, the union of its blocks' baby rotations.
        let rots: Vec<Vec<i64>> = (0..inputs)
            .map(|i| {
                let mut r: Vec<i64> = self
                    .blocks
                    .iter()
                    .filter_map(|row| row[i].as_ref())
                    .flat_map(|t| t.transform().plan().baby.clone())
                    .collect();
                r.sort_unstable();
                r.dedup();
                r
            })
            .collect();
        let babies: Vec<BabySteps<'_>> = xs
            .iter()
            .zip(&rots)
            .map(|(ct, r)| BabySteps { ct, rotations: r })
            .collect();
        let outputs: Vec<Vec<BlockGiantStep<'_>>> = self
            .blocks
            .iter()
            .map(|row| giant_steps(row, &rots))
            .collect();
        let ys = b
            .evaluator()
            .bsgs_double_hoisted_blocks(&babies, &outputs)?;
        ys.iter()
            .map(|y| Ok(b.with_scale(&b.rescale(y)?, scale)))
            .collect()
    }
}

/// The giant steps of one output row: terms of every block merged by giant rotation.
fn giant_steps<'a>(
    row: &'a [Option<DoubleHoistedTransform>],
    rots: &[Vec<i64>],
) -> Vec<BlockGiantStep<'a>> {
    let mut giants: BTreeMap<i64, Vec<(usize, usize, &'a ExtendedPlaintext)>> = BTreeMap::new();
    for (i, t) in row.iter().enumerate() {
        let Some(t) = t else { continue };
        let plan = t.transform().plan();
        for ((g, terms), pts) in plan.giant.iter().zip(&t.diagonals) {
            for (&(bi, _), pt) in terms.iter().zip(pts) {
                let k = rots[i].binary_search(&plan.baby[bi]).unwrap_or(0);
                giants.entry(*g).or_default().push((i, k, pt));
            }
        }
    }
    giants
        .into_iter()
        .map(|(rotation, terms)| BlockGiantStep { rotation, terms })
        .collect()
}
