//! Counts of the primitives an [`crate::Evaluator`] executed: the ground truth that the
//! simulation evaluator's predicted counts are checked against.

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
}

impl Primitive {
    /// Every primitive, in display order.
    pub const ALL: [Primitive; 12] = [
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
    ];
}

/// Thread-safe counters, one per [`Primitive`].
#[derive(Debug, Default)]
pub struct OpCounter {
    counts: [AtomicU64; 12],
}

impl OpCounter {
    /// Adds one to `p`.
    pub fn record(&self, p: Primitive) {
        self.counts[p as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `k` to `p`.
    pub fn record_n(&self, p: Primitive, k: u64) {
        self.counts[p as usize].fetch_add(k, Ordering::Relaxed);
    }

    /// The current counts.
    pub fn snapshot(&self) -> OpCounts {
        let mut c = OpCounts::default();
        for p in Primitive::ALL {
            c.0[p as usize] = self.counts[p as usize].load(Ordering::Relaxed);
        }
        c
    }

    /// Sets every count to zero.
    pub fn reset(&self) {
        for c in &self.counts {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// A snapshot of primitive counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpCounts(pub [u64; 12]);

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
