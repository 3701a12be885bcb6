//! The evaluation context of one forward pass: the timed backend, the refresh policy, the
//! component clock, the bootstraps placed, progress, and the small kernels every stage uses
//! (exact-scale products, masks, rotate-and-sum).

use std::sync::Mutex;
use std::time::Instant;

use psf_circuits::Backend;
use psf_ckks::LevelCounts;

use super::refresh::Refresh;
use super::timed::Timed;
use crate::layout::Layout;
use crate::report::{BootstrapSite, Component, PrimitiveClass};
use crate::{InferError, Result};

/// A progress event.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// The stage that just finished (`L{layer}.{stage}`).
    pub stage: String,
    /// Stages done so far.
    pub done: usize,
    /// Stages in the pass.
    pub total: usize,
    /// Seconds since the pass started.
    pub elapsed_s: f64,
}

/// Where the wall clock goes: the current component since `since`.
struct Clock {
    current: Component,
    since: Instant,
    wall: [f64; Component::ALL.len()],
    /// Level counts at the last switch, and the counts attributed to each component.
    counted: Option<LevelCounts>,
    counts: Vec<LevelCounts>,
}

/// One forward pass in flight.
pub struct Engine<'a, B: Backend> {
    pub(crate) be: Timed<B>,
    refresh: &'a dyn Refresh<B>,
    pub(crate) layout: Layout,
    pub(crate) scale: f64,
    clock: Mutex<Clock>,
    boots: Mutex<Vec<BootstrapSite>>,
    progress: &'a (dyn Fn(&Progress) + Sync),
    started: Instant,
    stages: Mutex<(usize, usize)>,
}

/// Largest relative scale mismatch a product may snap away (the user primes are within
/// this of the scale).
const SNAP_TOLERANCE: f64 = 1.0 / 256.0;

impl<'a, B: Backend> Engine<'a, B> {
    /// A pass over `be` with `refresh`, reporting `total_stages` stages to `progress`.
    pub fn new(
        be: B,
        refresh: &'a dyn Refresh<B>,
        layout: Layout,
        total_stages: usize,
        progress: &'a (dyn Fn(&Progress) + Sync),
    ) -> Self {
        let scale = be.default_scale();
        Self {
            be: Timed::new(be),
            refresh,
            layout,
            scale,
            clock: Mutex::new(Clock {
                current: Component::Other,
                since: Instant::now(),
                wall: [0.0; Component::ALL.len()],
                counted: None,
                counts: vec![LevelCounts::default(); Component::ALL.len()],
            }),
            boots: Mutex::new(Vec::new()),
            progress,
            started: Instant::now(),
            stages: Mutex::new((0, total_stages)),
        }
    }

    /// Switches the clock (and the primitive attribution) to `c`; returns the previous one.
    pub(crate) fn enter(&self, c: Component) -> Component {
        let mut k = self.clock.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let (cur, since) = (k.current as usize, k.since);
        k.wall[cur] += (now - since).as_secs_f64();
        if let Some(levels) = self.be.level_counts() {
            if let Some(last) = k.counted.take() {
                k.counts[cur].merge(&(levels.clone() - last));
            }
            k.counted = Some(levels);
        }
        let prev = k.current;
        (k.current, k.since) = (c, now);
        self.be.set_component(c);
        prev
    }

    /// Wall seconds per component so far (stops the clock).
    pub(crate) fn wall(&self) -> [f64; Component::ALL.len()] {
        self.enter(Component::Other);
        self.clock.lock().unwrap_or_else(|e| e.into_inner()).wall
    }

    /// Primitive counts by level attributed to each component (backends that record
    /// levels only).
    pub(crate) fn component_counts(&self) -> Vec<LevelCounts> {
        self.enter(Component::Other);
        self.clock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .counts
            .clone()
    }

    /// Bootstraps placed so far.
    pub(crate) fn bootstraps(&self) -> Vec<BootstrapSite> {
        self.boots.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Seconds since the pass started.
    pub(crate) fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Reports that `stage` finished.
    pub(crate) fn stage_done(&self, stage: &str) {
        let (done, total) = {
            let mut s = self.stages.lock().unwrap_or_else(|e| e.into_inner());
            s.0 += 1;
            *s
        };
        (self.progress)(&Progress {
            stage: stage.to_string(),
            done,
            total,
            elapsed_s: self.elapsed(),
        });
    }

    /// Levels a refreshed ciphertext has.
    pub(crate) fn fresh_level(&self) -> usize {
        self.refresh.output_level()
    }

    /// Refreshes `cts` if any is below level `need` (the automatic bootstrap placement).
    pub(crate) fn ensure(&self, site: &str, cts: Vec<B::Ct>, need: usize) -> Result<Vec<B::Ct>> {
        if need > self.fresh_level() {
            return Err(InferError::TooDeep {
                stage: site.to_string(),
                needed: need,
                available: self.fresh_level(),
            });
        }
        if cts.iter().all(|c| self.be.level(c) >= need) {
            return Ok(cts);
        }
        let prev = self.enter(Component::Bootstrap);
        let start = Instant::now();
        let out = self.refresh.refresh(self.be.inner(), site, &cts);
        self.be
            .charge(PrimitiveClass::Bootstrap, start.elapsed().as_secs_f64());
        self.enter(prev);
        self.boots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(BootstrapSite {
                site: site.to_string(),
                ciphertexts: cts.len(),
            });
        out
    }

    /// Re-labels `ct` to the working scale after checking it is within the tolerance.
    pub(crate) fn snap(&self, ct: B::Ct) -> Result<B::Ct> {
        let s = self.be.scale(&ct);
        if (s / self.scale - 1.0).abs() > SNAP_TOLERANCE {
            return Err(InferError::Unsupported(format!(
                "scale 2^{:.4} too far from the working scale 2^{:.4}",
                s.log2(),
                self.scale.log2()
            )));
        }
        Ok(self.be.with_scale(&ct, self.scale))
    }

    /// `a * b`, relinearized, rescaled, at the working scale.
    pub(crate) fn mul(&self, a: &B::Ct, b: &B::Ct) -> Result<B::Ct> {
        let p = self.be.mul_relin(a, b)?;
        self.snap(self.be.rescale(&p)?)
    }

    /// `a * values` (a plaintext encoded at `a`'s level with scale `q_level`, so the scale
    /// is unchanged exactly); one level.
    pub(crate) fn mul_pt(&self, a: &B::Ct, values: &[f64]) -> Result<B::Ct> {
        let level = self.be.level(a);
        let pt = self.be.encode(values, level, self.be.prime(level) as f64)?;
        let p = self.be.rescale(&self.be.mul_plain(a, &pt)?)?;
        Ok(self.be.with_scale(&p, self.be.scale(a)))
    }

    /// `a * c` with the scale unchanged exactly; one level.
    pub(crate) fn mul_c(&self, a: &B::Ct, c: f64) -> Result<B::Ct> {
        let q = self.be.prime(self.be.level(a)) as f64;
        let p = self.be.rescale(&self.be.mul_const(a, c, q)?)?;
        Ok(self.be.with_scale(&p, self.be.scale(a)))
    }

    /// `a + values` (no level).
    pub(crate) fn add_pt(&self, a: &B::Ct, values: &[f64]) -> Result<B::Ct> {
        let pt = self.be.encode(values, self.be.level(a), self.be.scale(a))?;
        Ok(self.be.add_plain(a, &pt)?)
    }

    /// The sum of `cts` (at the lowest level among them).
    pub(crate) fn sum(&self, cts: &[B::Ct]) -> Result<B::Ct> {
        let (first, rest) = cts
            .split_first()
            .ok_or_else(|| InferError::Unsupported("sum of nothing".into()))?;
        rest.iter()
            .try_fold(first.clone(), |acc, c| Ok(self.be.add(&acc, c)?))
    }

    /// Slot `m` gets `sum_{k < block} a[m + k stride]` (`block` a power of two).
    pub(crate) fn rot_sum(&self, a: &B::Ct, stride: usize, block: usize) -> Result<B::Ct> {
        let mut acc = a.clone();
        let mut step = stride;
        while step < stride * block {
            acc = self.be.add(&acc, &self.be.rotate(&acc, step as i64)?)?;
            step *= 2;
        }
        Ok(acc)
    }

    /// Slot `m` gets `sum_{k < block} a[m - k stride]`: copies a value at a block's first slot
    /// to the whole block when the other slots are zero.
    pub(crate) fn replicate(&self, a: &B::Ct, stride: usize, block: usize) -> Result<B::Ct> {
        let mut acc = a.clone();
        let mut step = stride;
        while step < stride * block {
            acc = self.be.add(&acc, &self.be.rotate(&acc, -(step as i64))?)?;
            step *= 2;
        }
        Ok(acc)
    }

    /// Elementwise `a_i + b_i` (lowest level wins).
    pub(crate) fn add_all(&self, a: &[B::Ct], b: &[B::Ct]) -> Result<Vec<B::Ct>> {
        if a.len() != b.len() {
            return Err(InferError::shape("residual", a.len(), b.len()));
        }
        a.iter()
            .zip(b)
            .map(|(x, y)| Ok(self.be.add(x, y)?))
            .collect()
    }
}

/// Levels `z -> z^p` takes by repeated squaring (and one product per further set bit).
pub fn power_depth(p: u32) -> usize {
    (p.ilog2() + u32::from(p.count_ones() > 1)) as usize
}
