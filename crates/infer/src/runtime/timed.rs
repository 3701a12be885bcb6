//! [`Timed`]: a [`Backend`] wrapper that attributes the time of every primitive call to the
//! component being evaluated (pt-matmul, ct-matmul, Power-Softmax, ...) and to a primitive
//! class, and records the rotations used (so a dry run lists the rotation keys it needs).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use psf_circuits::{Backend, Result};
use psf_ckks::{LevelCounts, OpCounts};

use crate::report::{Component, PrimitiveClass};

/// Seconds and calls per `(component, primitive class)`, and the rotations seen.
#[derive(Debug, Default)]
struct Tally {
    seconds: [[f64; PrimitiveClass::ALL.len()]; Component::ALL.len()],
    calls: [[u64; PrimitiveClass::ALL.len()]; Component::ALL.len()],
    /// Rotation amount -> highest level it ran at.
    rotations: BTreeMap<i64, usize>,
}

/// A backend whose primitive calls are timed by component and class.
pub struct Timed<B: Backend> {
    inner: B,
    component: AtomicUsize,
    tally: Mutex<Tally>,
}

/// What [`Timed`] measured: seconds and calls indexed `[component][class]`.
#[derive(Debug, Clone, Default)]
pub struct TimedTally {
    /// Seconds (summed over threads).
    pub seconds: Vec<Vec<f64>>,
    /// Calls.
    pub calls: Vec<Vec<u64>>,
    /// Rotation amounts used (slot units).
    pub rotations: Vec<i64>,
    /// The highest level each rotation ran at.
    pub rotation_levels: BTreeMap<i64, usize>,
}

impl<B: Backend> Timed<B> {
    /// Wraps `inner`; the current component starts as [`Component::Other`].
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            component: AtomicUsize::new(Component::Other as usize),
            tally: Mutex::new(Tally::default()),
        }
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// Sets the component later calls are attributed to; returns the previous one.
    pub fn set_component(&self, c: Component) -> Component {
        Component::ALL[self.component.swap(c as usize, Ordering::Relaxed)]
    }

    /// Adds `seconds` of `class` to the current component (e.g. a bootstrap run outside the
    /// backend).
    pub fn charge(&self, class: PrimitiveClass, seconds: f64) {
        let c = self.component.load(Ordering::Relaxed);
        let mut t = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        t.seconds[c][class as usize] += seconds;
        t.calls[c][class as usize] += 1;
    }

    /// What was measured so far.
    pub fn tally(&self) -> TimedTally {
        let t = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        TimedTally {
            seconds: t.seconds.iter().map(|r| r.to_vec()).collect(),
            calls: t.calls.iter().map(|r| r.to_vec()).collect(),
            rotations: t.rotations.keys().copied().collect(),
            rotation_levels: t.rotations.clone(),
        }
    }

    fn timed<T>(&self, class: PrimitiveClass, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        self.charge(class, start.elapsed().as_secs_f64());
        out
    }

    fn note_rotations(&self, ks: &[i64], level: usize) {
        let mut t = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        for &k in ks.iter().filter(|&&k| k != 0) {
            let l = t.rotations.entry(k).or_insert(level);
            *l = (*l).max(level);
        }
    }
}

impl<B: Backend> Backend for Timed<B> {
    type Ct = B::Ct;
    type Pt = B::Pt;

    fn slots(&self) -> usize {
        self.inner.slots()
    }
    fn max_level(&self) -> usize {
        self.inner.max_level()
    }
    fn default_scale(&self) -> f64 {
        self.inner.default_scale()
    }
    fn prime(&self, level: usize) -> u64 {
        self.inner.prime(level)
    }
    fn level(&self, ct: &B::Ct) -> usize {
        self.inner.level(ct)
    }
    fn scale(&self, ct: &B::Ct) -> f64 {
        self.inner.scale(ct)
    }
    fn encode(&self, values: &[f64], level: usize, scale: f64) -> Result<B::Pt> {
        self.timed(PrimitiveClass::Encode, || {
            self.inner.encode(values, level, scale)
        })
    }
    fn add(&self, a: &B::Ct, b: &B::Ct) -> Result<B::Ct> {
        self.timed(PrimitiveClass::Other, || self.inner.add(a, b))
    }
    fn sub(&self, a: &B::Ct, b: &B::Ct) -> Result<B::Ct> {
        self.timed(PrimitiveClass::Other, || self.inner.sub(a, b))
    }
    fn neg(&self, a: &B::Ct) -> Result<B::Ct> {
        self.timed(PrimitiveClass::Other, || self.inner.neg(a))
    }
    fn add_const(&self, a: &B::Ct, c: f64) -> Result<B::Ct> {
        self.timed(PrimitiveClass::Other, || self.inner.add_const(a, c))
    }
    fn add_plain(&self, a: &B::Ct, pt: &B::Pt) -> Result<B::Ct> {
        self.timed(PrimitiveClass::Other, || self.inner.add_plain(a, pt))
    }
    fn mul_int(&self, a: &B::Ct, k: i64) -> Result<B::Ct> {
        self.timed(PrimitiveClass::Other, || self.inner.mul_int(a, k))
    }
    fn mul_const(&self, a: &B::Ct, c: f64, const_scale: f64) -> Result<B::Ct> {
        self.timed(PrimitiveClass::Other, || {
            self.inner.mul_const(a, c, const_scale)
        })
    }
    fn mul_plain(&self, a: &B::Ct, pt: &B::Pt) -> Result<B::Ct> {
        self.timed(PrimitiveClass::PtMul, || self.inner.mul_plain(a, pt))
    }
    fn mul_relin(&self, a: &B::Ct, b: &B::Ct) -> Result<B::Ct> {
        self.timed(PrimitiveClass::Relinearize, || self.inner.mul_relin(a, b))
    }
    fn rescale(&self, a: &B::Ct) -> Result<B::Ct> {
        self.timed(PrimitiveClass::Rescale, || self.inner.rescale(a))
    }
    fn drop_to_level(&self, a: &B::Ct, level: usize) -> Result<B::Ct> {
        self.timed(PrimitiveClass::Other, || self.inner.drop_to_level(a, level))
    }
    fn rotate(&self, a: &B::Ct, k: i64) -> Result<B::Ct> {
        self.note_rotations(&[k], self.inner.level(a));
        self.timed(PrimitiveClass::Rotation, || self.inner.rotate(a, k))
    }
    fn rotate_hoisted(&self, a: &B::Ct, ks: &[i64]) -> Result<Vec<B::Ct>> {
        self.note_rotations(ks, self.inner.level(a));
        self.timed(PrimitiveClass::Rotation, || {
            self.inner.rotate_hoisted(a, ks)
        })
    }
    fn with_scale(&self, a: &B::Ct, scale: f64) -> B::Ct {
        self.inner.with_scale(a, scale)
    }
    fn counts(&self) -> OpCounts {
        self.inner.counts()
    }
    fn level_counts(&self) -> Option<LevelCounts> {
        self.inner.level_counts()
    }
}
