//! Measuring a [`CostTable`]: every primitive at every level of a grid, median of repeated
//! runs after a warm-up, in rayon pools of the requested thread counts.
//!
//! What is timed at level `l` (fresh ciphertexts of full slots encrypted at `l`): `Encode`
//! (encoding a full slot vector), `Add` (`add_new`), `PtMul` (`mul_plain_new`), `ConstMul`
//! (`mul_const_new`), `Mul` (the tensor product `mul_new`), `Relinearize` (of that product),
//! `Rescale` and `DropLevel` (from `l`, so `l >= 1`), `Rotate` (`rotate_new` by 1). Hoisted
//! rotations are separated by timing one and eight hoisted rotations:
//! `RotateHoisted = (t8 - t1) / 7` and `Decompose = t1 - RotateHoisted`. Bootstrapping
//! ([`measure_bootstrap`]) is timed end to end on a preset at level 0.

use std::time::Instant;

use psf_ckks::{
    Ciphertext, CkksParameters, Encoder, Encryptor, EvaluationKeys, Evaluator, KeyGenerator,
    Primitive, Scale,
};

use super::{CostCurve, CostPoint, CostTable};
use crate::bootstrap::presets::{BootstrapPreset, EPHEMERAL_WEIGHT};
use crate::bootstrap::{Bootstrapper, Encapsulation};
use crate::{CircuitError, Result};

/// What to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasureConfig {
    /// Levels to measure (empty: every level `0..=max_level`).
    pub levels: Vec<usize>,
    /// Thread counts.
    pub threads: Vec<usize>,
    /// Timed repetitions per point (after one warm-up run).
    pub reps: usize,
    /// Seed of the keys and the encryption randomness.
    pub seed: u64,
    /// Free text stored in the table (machine, load, command).
    pub note: String,
}

impl MeasureConfig {
    /// The grid for a set of top level `max_level`: the requested levels (checked, sorted,
    /// deduplicated) or all of them.
    pub fn grid(&self, max_level: usize) -> Result<Vec<usize>> {
        if self.levels.is_empty() {
            return Ok((0..=max_level).collect());
        }
        let mut g = self.levels.clone();
        g.sort_unstable();
        g.dedup();
        match g.last() {
            Some(&l) if l > max_level => Err(CircuitError::NotEnoughLevels {
                needed: l,
                level: max_level,
            }),
            _ => Ok(g),
        }
    }

    fn check(&self) -> Result<()> {
        if self.reps == 0 || self.threads.is_empty() || self.threads.contains(&0) {
            return Err(CircuitError::Invalid(format!(
                "measurement needs reps >= 1 and thread counts >= 1 (reps {}, threads {:?})",
                self.reps, self.threads
            )));
        }
        Ok(())
    }
}

/// Median, minimum and maximum in ms.
type Stats = (f64, f64, f64);

/// [`Stats`] of `reps` runs of `f` after one warm-up run.
fn time<T>(reps: usize, mut f: impl FnMut() -> Result<T>) -> Result<Stats> {
    std::hint::black_box(f()?);
    let mut ts = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        std::hint::black_box(f()?);
        ts.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ts.sort_by(f64::total_cmp);
    Ok((ts[ts.len() / 2], ts[0], ts[ts.len() - 1]))
}

fn point(level: usize, (ms, min_ms, max_ms): Stats) -> CostPoint {
    CostPoint {
        level,
        ms,
        min_ms,
        max_ms,
    }
}

fn pool<T: Send>(threads: usize, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| CircuitError::Invalid(format!("thread pool of {threads}: {e}")))?
        .install(f)
}

/// The evaluator and a ciphertext source of one parameter set.
struct Bench {
    params: CkksParameters,
    enc: Encoder,
    eval: Evaluator,
    encryptor: Encryptor,
    x: Vec<f64>,
}

const HOISTED: [i64; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

/// Slots (`log2`) of the sparse packing [`Primitive::EncodeSparse`] is measured with: `2^9`,
/// a decoding step's period for a model of width 512 (the cost hardly depends on it: the
/// transform at degree `2^10` is small next to spreading it over `N` values per limb).
const SPARSE_LOG_SLOTS: u32 = 9;

impl Bench {
    fn new(params: &CkksParameters, seed: u64) -> Result<Self> {
        let mut kgen = KeyGenerator::seeded(params.ring(), seed);
        let sk = kgen.gen_secret_key();
        let keys = EvaluationKeys::generate(&mut kgen, &sk, &HOISTED, false)?;
        let x = (0..params.max_slots())
            .map(|i| ((i * 7919) % 2001) as f64 / 1000.0 - 1.0)
            .collect();
        Ok(Self {
            params: params.clone(),
            enc: Encoder::new(params),
            eval: Evaluator::new(params, keys),
            encryptor: Encryptor::with_secret_key(&sk).seeded(seed + 1),
            x,
        })
    }

    fn encrypt(&mut self, level: usize) -> Result<Ciphertext> {
        let pt = self.encode(level)?;
        Ok(self.encryptor.encrypt(&pt)?)
    }

    fn encode(&self, level: usize) -> Result<psf_ckks::Plaintext> {
        let p = &self.params;
        Ok(self
            .enc
            .encode(&self.x, p.max_log_slots(), level, p.default_scale())?)
    }

    /// A sparse packing of [`SPARSE_LOG_SLOTS`] slots (a decoding step's replicated values).
    fn encode_sparse(&self, level: usize) -> Result<psf_ckks::Plaintext> {
        let p = &self.params;
        let log = SPARSE_LOG_SLOTS.min(p.max_log_slots());
        Ok(self
            .enc
            .encode(&self.x[..1 << log], log, level, p.default_scale())?)
    }

    /// Every primitive at `level` as `(primitive, (median, min, max))`.
    fn level(&mut self, level: usize, reps: usize) -> Result<Vec<(Primitive, Stats)>> {
        let ct = self.encrypt(level)?;
        let pt = self.encode(level)?;
        let (eval, q) = (&self.eval, self.params.ring().q().modulus(level).value());
        let ct2 = eval.mul_new(&ct, &ct)?;
        let mut out = vec![
            (Primitive::Encode, time(reps, || self.encode(level))?),
            (
                Primitive::EncodeSparse,
                time(reps, || self.encode_sparse(level))?,
            ),
            (Primitive::Add, time(reps, || Ok(eval.add_new(&ct, &ct)?))?),
            (
                Primitive::PtMul,
                time(reps, || Ok(eval.mul_plain_new(&ct, &pt)?))?,
            ),
            (
                Primitive::ConstMul,
                time(reps, || {
                    Ok(eval.mul_const_new(&ct, 0.75, Scale(q as f64))?)
                })?,
            ),
            (Primitive::Mul, time(reps, || Ok(eval.mul_new(&ct, &ct)?))?),
            (
                Primitive::Relinearize,
                time(reps, || Ok(eval.relinearize(&ct2)?))?,
            ),
            (
                Primitive::Rotate,
                time(reps, || Ok(eval.rotate_new(&ct, 1)?))?,
            ),
        ];
        if level > 0 {
            let prod = eval.relinearize(&ct2)?;
            out.push((
                Primitive::Rescale,
                time(reps, || Ok(eval.rescale_new(&prod)?))?,
            ));
            out.push((
                Primitive::DropLevel,
                time(reps, || Ok(eval.drop_level_new(&ct, 1)?))?,
            ));
        }
        let t1 = time(reps, || Ok(eval.rotate_hoisted_new(&ct, &HOISTED[..1])?))?;
        let t8 = time(reps, || Ok(eval.rotate_hoisted_new(&ct, &HOISTED)?))?;
        let per = |a: f64, b: f64| ((b - a) / 7.0).max(0.0);
        let hoisted = (per(t1.0, t8.0), per(t1.1, t8.1), per(t1.2, t8.2));
        let decompose = (
            (t1.0 - hoisted.0).max(0.0),
            (t1.1 - hoisted.1).max(0.0),
            (t1.2 - hoisted.2).max(0.0),
        );
        out.push((Primitive::RotateHoisted, hoisted));
        out.push((Primitive::Decompose, decompose));
        Ok(out)
    }
}

/// Measures every primitive but bootstrapping at each level of `cfg`'s grid and thread count.
/// `progress` is called after each level with `(threads, level)`.
///
/// # Errors
/// An invalid configuration or a failing operation.
pub fn measure_table(
    params: &CkksParameters,
    cfg: &MeasureConfig,
    mut progress: impl FnMut(usize, usize) + Send,
) -> Result<CostTable> {
    cfg.check()?;
    let ring = params.ring();
    let grid = cfg.grid(ring.max_level())?;
    let mut bench = Bench::new(params, cfg.seed)?;
    let mut table = CostTable {
        params: ring.name().to_string(),
        log_n: ring.log_n(),
        max_level: ring.max_level(),
        reps: cfg.reps,
        note: cfg.note.clone(),
        curves: Vec::new(),
    };
    for &threads in &cfg.threads {
        let rows = pool(threads, || {
            let mut rows = Vec::new();
            for &level in &grid {
                rows.push((level, bench.level(level, cfg.reps)?));
                progress(threads, level);
            }
            Ok(rows)
        })?;
        for p in Primitive::ALL {
            let points: Vec<CostPoint> = (rows.iter())
                .filter_map(|(l, r)| r.iter().find(|(q, _)| *q == p).map(|(_, t)| point(*l, *t)))
                .collect();
            if !points.is_empty() {
                table.insert(CostCurve {
                    primitive: p,
                    threads,
                    points,
                });
            }
        }
    }
    Ok(table)
}

/// Measures bootstrapping of the preset (keys generated once, from `seed`; input: a full-slot
/// ciphertext at level 0 with the default scale): one level-independent
/// [`Primitive::Bootstrap`] curve per thread count.
///
/// # Errors
/// A failing parameter set, key generation or bootstrap.
pub fn measure_bootstrap(
    preset: &BootstrapPreset,
    threads: &[usize],
    reps: usize,
    seed: u64,
) -> Result<Vec<CostCurve>> {
    let params = preset.params.try_build()?;
    let max_threads = threads.iter().copied().max().unwrap_or(1);
    let (boot, keys, encap, sk) = pool(max_threads, || {
        let boot = Bootstrapper::new(&params, preset.config)?;
        let mut kgen = KeyGenerator::seeded(params.ring(), seed);
        let sk = kgen.gen_secret_key();
        let keys = EvaluationKeys::generate(&mut kgen, &sk, &boot.rotations(), true)?;
        let encap = Encapsulation::generate(&params, &sk, EPHEMERAL_WEIGHT, Some(seed + 1))?;
        Ok((boot, keys, encap, sk))
    })?;
    let enc = Encoder::new(&params);
    let x: Vec<f64> = (0..params.max_slots())
        .map(|i| ((i * 31) % 201) as f64 / 100.0 - 1.0)
        .collect();
    let pt = enc.encode(&x, params.max_log_slots(), 0, params.default_scale())?;
    let ct = Encryptor::with_secret_key(&sk).seeded(seed).encrypt(&pt)?;
    let eval = Evaluator::new(&params, keys);
    threads
        .iter()
        .map(|&t| {
            let timing = pool(t, || {
                time(reps, || boot.bootstrap(&eval, Some(&encap), &ct))
            })?;
            Ok(CostCurve {
                primitive: Primitive::Bootstrap,
                threads: t,
                points: vec![point(0, timing)],
            })
        })
        .collect()
}
