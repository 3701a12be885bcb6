//! Counts of the primitives an [`crate::Evaluator`] executed, in total and per level: the
//! ground truth that the simulation evaluator's predicted counts are checked against, and
//! what a cost model prices (the cost of a primitive depends strongly on its level).
//!
//! **Level convention.** An operation is recorded at the level it computes at: the level of
//! its input (the common, lower level of two operands), i.e. it reads `level + 1` limbs. A
//! rescale is recorded at the level it divides from, a level drop at the level it drops from,
//! an encoding at the plaintext's level.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The primitives we count.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Primitive {
    /// Ciphertext + ciphertext / plaintext / constant, subtraction, negation.
    Add,
    /// Ciphertext x plaintext.
    PtMul,
    /// Ciphertext x constant (integer or scaled real).
    ConstMul,
    /// Ciphertext x ciphertext tensor product.
    Mul,
    /// Relinearization (one key switch).
    Relinearize,
    /// Rescale by one prime.
    Rescale,
    /// Rotation or conjugation with its own decomposition (one key switch).
    Rotate,
    /// Rotation reusing a shared decomposition (hoisted: inner product + ModDown only).
    RotateHoisted,
    /// Decomposition shared by hoisted rotations (ModUp).
    Decompose,
    /// Level drop without rescale.
    DropLevel,
    /// Plaintext encoding.
    Encode,
    /// Bootstrapping.
    Bootstrap,
    /// Plaintext encoding of a sparse packing (a vector repeating with a power-of-two period:
    /// a polynomial in `X^gap`, transformed at degree `N / gap`).
    EncodeSparse,
}

impl Primitive {
    /// Every primitive, in display order.
    pub const ALL: [Primitive; 13] = [
        Primitive::Add,
        Primitive::PtMul,
        Primitive::ConstMul,
        Primitive::Mul,
        Primitive::Relinearize,
        Primitive::Rescale,
        Primitive::Rotate,
        Primitive::RotateHoisted,
        Primitive::Decompose,
        Primitive::DropLevel,
        Primitive::Encode,
        Primitive::Bootstrap,
        Primitive::EncodeSparse,
    ];
}

/// Thread-safe counters: a total per [`Primitive`] and a count per `(primitive, level)`.
///
/// [`Self::record_at`] / [`Self::record_n_at`] feed both; [`Self::record`] /
/// [`Self::record_n`] (level unknown) feed the totals only, so such counts show up in
/// [`LevelCounts::unleveled`] and a cost model can refuse them.
#[derive(Debug, Default)]
pub struct OpCounter {
    totals: [AtomicU64; 13],
    levels: Mutex<BTreeMap<(Primitive, usize), u64>>,
}

impl OpCounter {
    /// Adds one to `p` at an unknown level (totals only).
    pub fn record(&self, p: Primitive) {
        self.record_n(p, 1);
    }

    /// Adds `k` to `p` at an unknown level (totals only).
    pub fn record_n(&self, p: Primitive, k: u64) {
        self.totals[p as usize].fetch_add(k, Ordering::Relaxed);
    }

    /// Adds one to `p` run at `level`.
    pub fn record_at(&self, p: Primitive, level: usize) {
        self.record_n_at(p, level, 1);
    }

    /// Adds `k` to `p` run at `level`.
    pub fn record_n_at(&self, p: Primitive, level: usize, k: u64) {
        if k == 0 {
            return;
        }
        self.totals[p as usize].fetch_add(k, Ordering::Relaxed);
        let mut levels = self.levels.lock().unwrap_or_else(|e| e.into_inner());
        *levels.entry((p, level)).or_insert(0) += k;
    }

    /// The current totals.
    pub fn snapshot(&self) -> OpCounts {
        let mut c = OpCounts::default();
        for p in Primitive::ALL {
            c.0[p as usize] = self.totals[p as usize].load(Ordering::Relaxed);
        }
        c
    }

    /// The current counts per level, with the totals.
    pub fn snapshot_levels(&self) -> LevelCounts {
        let levels = self.levels.lock().unwrap_or_else(|e| e.into_inner());
        LevelCounts {
            levels: levels.clone(),
            totals: self.snapshot(),
        }
    }

    /// Sets every count to zero.
    pub fn reset(&self) {
        let mut levels = self.levels.lock().unwrap_or_else(|e| e.into_inner());
        levels.clear();
        for c in &self.totals {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// A snapshot of primitive counts (totals over all levels).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpCounts(pub [u64; 13]);

impl OpCounts {
    /// The count of `p`.
    pub fn get(&self, p: Primitive) -> u64 {
        self.0[p as usize]
    }

    /// Adds `k` to `p`.
    pub fn add(&mut self, p: Primitive, k: u64) {
        self.0[p as usize] += k;
    }

    /// Key switches (relinearizations and rotations, hoisted or not).
    pub fn key_switches(&self) -> u64 {
        self.get(Primitive::Relinearize)
            + self.get(Primitive::Rotate)
            + self.get(Primitive::RotateHoisted)
    }

    /// Counts as `(primitive, count)` pairs, skipping zeros.
    pub fn nonzero(&self) -> Vec<(Primitive, u64)> {
        Primitive::ALL
            .iter()
            .map(|&p| (p, self.get(p)))
            .filter(|(_, c)| *c > 0)
            .collect()
    }
}

impl std::ops::Sub for OpCounts {
    type Output = OpCounts;
    fn sub(self, rhs: OpCounts) -> OpCounts {
        let mut out = self;
        for i in 0..out.0.len() {
            out.0[i] = out.0[i].saturating_sub(rhs.0[i]);
        }
        out
    }
}

impl std::fmt::Display for OpCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .nonzero()
            .iter()
            .map(|(p, c)| format!("{p:?}={c}"))
            .collect();
        f.write_str(&parts.join(" "))
    }
}

/// One `(primitive, level, count)` entry of [`LevelCounts`] (its serialized form).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LevelCount {
    /// The primitive.
    pub primitive: Primitive,
    /// The level it ran at (see the module documentation).
    pub level: usize,
    /// How many times.
    pub count: u64,
}

/// A snapshot of counts per `(primitive, level)`, with the totals (which also hold the
/// counts recorded without a level).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(from = "LevelCountsRepr", into = "LevelCountsRepr")]
pub struct LevelCounts {
    levels: BTreeMap<(Primitive, usize), u64>,
    totals: OpCounts,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct LevelCountsRepr {
    entries: Vec<LevelCount>,
    #[serde(default)]
    unleveled: Vec<(Primitive, u64)>,
}

impl From<LevelCounts> for LevelCountsRepr {
    fn from(c: LevelCounts) -> Self {
        Self {
            entries: c.entries().collect(),
            unleveled: c.unleveled().nonzero(),
        }
    }
}

impl From<LevelCountsRepr> for LevelCounts {
    fn from(r: LevelCountsRepr) -> Self {
        let mut c = LevelCounts::default();
        for e in r.entries {
            c.add(e.primitive, e.level, e.count);
        }
        for (p, k) in r.unleveled {
            c.totals.add(p, k);
        }
        c
    }
}

impl LevelCounts {
    /// The count of `p` at `level`.
    pub fn get(&self, p: Primitive, level: usize) -> u64 {
        self.levels.get(&(p, level)).copied().unwrap_or(0)
    }

    /// Adds `k` to `p` at `level` (and to its total).
    pub fn add(&mut self, p: Primitive, level: usize, k: u64) {
        if k > 0 {
            *self.levels.entry((p, level)).or_insert(0) += k;
            self.totals.add(p, k);
        }
    }

    /// Totals over all levels (including counts recorded without a level).
    pub fn totals(&self) -> OpCounts {
        self.totals
    }

    /// Counts recorded without a level (by [`OpCounter::record`]), per primitive.
    pub fn unleveled(&self) -> OpCounts {
        let mut leveled = OpCounts::default();
        for (&(p, _), &k) in &self.levels {
            leveled.add(p, k);
        }
        self.totals - leveled
    }

    /// Non-zero entries, by primitive then level.
    pub fn entries(&self) -> impl Iterator<Item = LevelCount> + '_ {
        self.levels
            .iter()
            .map(|(&(primitive, level), &count)| LevelCount {
                primitive,
                level,
                count,
            })
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.totals == OpCounts::default()
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &LevelCounts) {
        for e in other.entries() {
            self.add(e.primitive, e.level, e.count);
        }
        for (p, k) in other.unleveled().nonzero() {
            self.totals.add(p, k);
        }
    }
}

impl std::ops::Sub for LevelCounts {
    type Output = LevelCounts;
    /// Entry-wise saturating difference (e.g. `after - before`).
    fn sub(self, rhs: LevelCounts) -> LevelCounts {
        let mut levels = BTreeMap::new();
        for (key, k) in self.levels {
            let d = k.saturating_sub(rhs.levels.get(&key).copied().unwrap_or(0));
            if d > 0 {
                levels.insert(key, d);
            }
        }
        LevelCounts {
            levels,
            totals: self.totals - rhs.totals,
        }
    }
}

impl std::fmt::Display for LevelCounts {
    /// `Primitive@level=count` entries, then `Primitive@?=count` for unleveled counts.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = self
            .entries()
            .map(|e| format!("{:?}@{}={}", e.primitive, e.level, e.count))
            .collect();
        parts.extend((self.unleveled().nonzero().iter()).map(|(p, k)| format!("{p:?}@?={k}")));
        f.write_str(&parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_sum_to_totals_and_unleveled_is_kept_apart() {
        let c = OpCounter::default();
        c.record_at(Primitive::Mul, 5);
        c.record_n_at(Primitive::Add, 3, 4);
        c.record_at(Primitive::Add, 5);
        c.record(Primitive::Rotate);
        let s = c.snapshot_levels();
        assert_eq!(s.get(Primitive::Add, 3), 4);
        assert_eq!(s.get(Primitive::Add, 5), 1);
        assert_eq!(s.get(Primitive::Add, 4), 0);
        assert_eq!(s.totals(), c.snapshot());
        assert_eq!(s.totals().get(Primitive::Add), 5);
        assert_eq!(s.unleveled().nonzero(), vec![(Primitive::Rotate, 1)]);
        assert_eq!(s.to_string(), "Add@3=4 Add@5=1 Mul@5=1 Rotate@?=1");
        c.reset();
        assert!(c.snapshot_levels().is_empty());
    }

    #[test]
    fn level_counts_subtract_merge_and_round_trip_through_json() {
        let mut a = LevelCounts::default();
        a.add(Primitive::Rescale, 7, 3);
        a.add(Primitive::PtMul, 2, 1);
        let mut b = LevelCounts::default();
        b.add(Primitive::Rescale, 7, 1);
        let d = a.clone() - b.clone();
        assert_eq!(d.get(Primitive::Rescale, 7), 2);
        assert_eq!(d.totals().get(Primitive::Rescale), 2);
        let mut m = d.clone();
        m.merge(&b);
        assert_eq!(m, a);
        let json = serde_json::to_string(&a).unwrap();
        let back: LevelCounts = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
    }
}
