//! A measured cost model: per-primitive latencies at each level ([`CostTable`], measured by
//! [`measure`] and written as JSON by `psformer bench costs`) and [`CostModel::predict`], which
//! prices the per-level counts of a run ([`LevelCounts`], from the simulation evaluator or the
//! real one) in seconds with a per-primitive breakdown.
//!
//! **Interpolation.** A [`CostCurve`] holds the median latency at a grid of levels (every level,
//! or a sparse grid); between grid points the cost is linear in the level (the work of every
//! primitive is linear in the limb count `level + 1`, up to the key-switching digits, which
//! change in steps), outside the grid it is an error. A curve of a single point is
//! level-independent (bootstrapping: its cost does not depend on the input level).
//!
//! **What a prediction assumes.** Each counted primitive costs what it cost alone in the
//! measurement (no cache or allocation effects between operations), on the same machine, at the
//! same thread count. The double-hoisted BSGS of `psf-ckks` records its lazy products and
//! rotations under `PtMul` / `Rotate` / `RotateHoisted` (see `psf_ckks::hoisted`), which the
//! table prices as the plain operations. A run that bootstraps through
//! [`crate::bootstrap::Bootstrapper`] counts the bootstrap's inner primitives (it does not
//! record [`Primitive::Bootstrap`]); a planned bootstrap (a simulated refresh) records
//! `Bootstrap` once and is priced by the table's bootstrapping curve.

pub mod measure;

use std::collections::BTreeMap;

use psf_ckks::{LevelCounts, Primitive};
use serde::{Deserialize, Serialize};

use crate::{CircuitError, Result};

pub use measure::{MeasureConfig, measure_bootstrap, measure_table};

/// A measured latency at one level.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CostPoint {
    /// The level the primitive ran at (see `psf_ckks::LevelCounts`).
    pub level: usize,
    /// Median latency in milliseconds.
    pub ms: f64,
    /// Minimum over the repetitions.
    pub min_ms: f64,
    /// Maximum over the repetitions.
    pub max_ms: f64,
}

/// Latencies of one primitive at one thread count, by level (sorted, distinct levels).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostCurve {
    /// The primitive.
    pub primitive: Primitive,
    /// Threads of the rayon pool it ran in.
    pub threads: usize,
    /// Measured points, by increasing level.
    pub points: Vec<CostPoint>,
}

impl CostCurve {
    /// The latency in ms at `level`: the measured point, a linear interpolation between the two
    /// nearest points, or the single point of a level-independent curve; `None` outside the
    /// measured range.
    pub fn ms_at(&self, level: usize) -> Option<f64> {
        match self.points.as_slice() {
            [] => None,
            [only] => Some(only.ms),
            points => {
                let i = points.partition_point(|p| p.level < level);
                let hi = points.get(i)?;
                if hi.level == level {
                    return Some(hi.ms);
                }
                let lo = points.get(i.checked_sub(1)?)?;
                let t = (level - lo.level) as f64 / (hi.level - lo.level) as f64;
                Some(lo.ms + t * (hi.ms - lo.ms))
            }
        }
    }
}

/// Measured per-primitive latencies for one parameter set on one machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostTable {
    /// Name of the parameter set.
    pub params: String,
    /// `log2 N`.
    pub log_n: u32,
    /// Highest level of the set.
    pub max_level: usize,
    /// Repetitions per measurement (the median is kept), after one warm-up run.
    pub reps: usize,
    /// Where and how it was measured (machine, load, command).
    pub note: String,
    /// One curve per (primitive, thread count).
    pub curves: Vec<CostCurve>,
}

impl CostTable {
    /// The curve of `p` at `threads`, if measured.
    pub fn curve(&self, p: Primitive, threads: usize) -> Option<&CostCurve> {
        self.curves
            .iter()
            .find(|c| c.primitive == p && c.threads == threads)
    }

    /// The thread counts measured, sorted.
    pub fn thread_counts(&self) -> Vec<usize> {
        let mut t: Vec<usize> = self.curves.iter().map(|c| c.threads).collect();
        t.sort_unstable();
        t.dedup();
        t
    }

    /// Adds (or replaces) a curve.
    pub fn insert(&mut self, curve: CostCurve) {
        self.curves
            .retain(|c| !(c.primitive == curve.primitive && c.threads == curve.threads));
        self.curves.push(curve);
    }

    /// The latency in ms of `p` at `level` with `threads`. Tables measured before
    /// [`Primitive::EncodeSparse`] existed price it as a dense [`Primitive::Encode`] (an upper
    /// bound).
    ///
    /// # Errors
    /// [`CircuitError::NoCost`] when the table has no curve for `p` at `threads` or `level` lies
    /// outside its measured range.
    pub fn ms(&self, p: Primitive, level: usize, threads: usize) -> Result<f64> {
        let p = match (p, self.curve(p, threads)) {
            (Primitive::EncodeSparse, None) => Primitive::Encode,
            _ => p,
        };
        self.curve(p, threads)
            .and_then(|c| c.ms_at(level))
            .ok_or_else(|| CircuitError::NoCost {
                primitive: p,
                level: Some(level),
                threads,
                table: self.params.clone(),
            })
    }
}

/// A predicted latency with its breakdown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Total seconds.
    pub seconds: f64,
    /// Seconds per primitive (non-zero entries only).
    pub by_primitive: BTreeMap<Primitive, f64>,
    /// Thread count the table was read at.
    pub threads: usize,
}

impl std::fmt::Display for Prediction {
    /// `12.345 s (Relinearize 6.1 s, Rotate 3.2 s, ...)`, largest first.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<(&Primitive, &f64)> = self.by_primitive.iter().collect();
        parts.sort_by(|a, b| b.1.total_cmp(a.1));
        let parts: Vec<String> = parts
            .iter()
            .map(|(p, s)| format!("{p:?} {s:.3} s"))
            .collect();
        write!(f, "{:.3} s ({})", self.seconds, parts.join(", "))
    }
}

/// Prices per-level primitive counts with a [`CostTable`] at one thread count.
#[derive(Debug, Clone, PartialEq)]
pub struct CostModel {
    table: CostTable,
    threads: usize,
}

impl CostModel {
    /// A model reading `table` at `threads`.
    ///
    /// # Errors
    /// [`CircuitError::Invalid`] when the table has no curve at that thread count.
    pub fn new(table: CostTable, threads: usize) -> Result<Self> {
        if !table.thread_counts().contains(&threads) {
            return Err(CircuitError::Invalid(format!(
                "cost table {} has no measurements at {threads} threads (has {:?})",
                table.params,
                table.thread_counts()
            )));
        }
        Ok(Self { table, threads })
    }

    /// The table.
    pub fn table(&self) -> &CostTable {
        &self.table
    }

    /// The thread count.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The predicted latency of `counts`: `sum count(p, l) * ms(p, l)`.
    ///
    /// # Errors
    /// [`CircuitError::NoCost`] for counts recorded without a level, or a primitive or level
    /// the table lacks.
    pub fn predict(&self, counts: &LevelCounts) -> Result<Prediction> {
        if let Some(&(p, _)) = counts.unleveled().nonzero().first() {
            return Err(CircuitError::NoCost {
                primitive: p,
                level: None,
                threads: self.threads,
                table: self.table.params.clone(),
            });
        }
        let mut by_primitive = BTreeMap::new();
        for e in counts.entries() {
            let ms = self.table.ms(e.primitive, e.level, self.threads)?;
            *by_primitive.entry(e.primitive).or_insert(0.0) += ms * e.count as f64 / 1e3;
        }
        Ok(Prediction {
            seconds: by_primitive.values().sum(),
            by_primitive,
            threads: self.threads,
        })
    }
}

#[cfg(test)]
mod tests;
