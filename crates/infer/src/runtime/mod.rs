//! The runtime: evaluates a [`CompiledModel`] on ciphertexts ([`forward`], with the
//! bootstrapping circuit) or on the simulation evaluator ([`run_sim`]), in a pool of
//! `threads` threads, streaming [`Progress`] and returning a [`Report`] with wall time per
//! component and time per primitive class.

pub mod attention;
mod blocks;
pub mod decode;
mod decode_blocks;
mod decode_refresh;
pub mod engine;
mod norm;
pub mod refresh;
pub mod timed;

use std::collections::BTreeMap;
use std::sync::Arc;

use psf_circuits::bootstrap::presets::BootstrapPreset;
use psf_circuits::bootstrap::{Bootstrapper, Encapsulation};
use psf_circuits::cost::CostModel;
use psf_circuits::{Backend, HeBackend, SimBackend, SimCiphertext};
use psf_ckks::{
    Ciphertext, CkksParameters, Encoder, EvaluationKeys, Evaluator, LevelCounts, OpCounts,
    Primitive,
};

pub use engine::{Engine, Progress};
pub use refresh::{HeRefresh, Refresh, SimRefresh};

use crate::compile::CompiledModel;
use crate::report::{Component, ComponentTime, PrimitiveClass, PrimitiveTime, Report};
use crate::{InferError, Result};

/// How to run.
pub struct RunOptions<'a> {
    /// Threads of the pool (the evaluator parallelizes over RNS limbs inside it).
    pub threads: usize,
    /// Called after every block.
    pub progress: &'a (dyn Fn(&Progress) + Sync),
    /// Prices each component's per-level counts into `predicted_s` (the cost model).
    pub cost: Option<&'a CostModel>,
    /// For a [`crate::HeadPositions::Last`] head: the position of each prompt whose logits
    /// are computed (one per prompt of the batch, each below `seq_len`); `None` is the last
    /// position of every prompt. An every-position head computes them all and ignores it.
    pub positions: Option<&'a [usize]>,
}

impl Default for RunOptions<'_> {
    fn default() -> Self {
        Self {
            threads: 2,
            progress: &|_| {},
            cost: None,
            positions: None,
        }
    }
}

/// The outputs of a run and what was measured.
pub struct Run<C> {
    /// Logit ciphertexts (`cts_for(vocab)`, every position).
    pub outputs: Vec<C>,
    /// The latency report.
    pub report: Report,
    /// Rotations the circuit used (outside bootstrapping).
    pub rotations: Vec<i64>,
    /// The highest level each of them ran at.
    pub rotation_levels: BTreeMap<i64, usize>,
}

pub(crate) fn pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| InferError::Unsupported(format!("thread pool: {e}")))
}

fn execute<B: Backend>(
    m: &CompiledModel,
    be: B,
    refresh: &dyn Refresh<B>,
    inputs: Vec<B::Ct>,
    opts: &RunOptions<'_>,
    backend: &str,
) -> Result<Run<B::Ct>> {
    let expected = m.layout.cts_for(m.ir.d_model);
    if inputs.len() != expected {
        return Err(InferError::shape(
            "input ciphertexts",
            expected,
            inputs.len(),
        ));
    }
    let positions = requested_positions(m, opts.positions)?;
    let before = be.counts();
    let eng = Engine::new(be, refresh, m.layout, m.plan.stages.max(1), opts.progress);
    let outputs = pool(opts.threads)?.install(|| eng.forward(m, inputs, &positions))?;
    let total = eng.elapsed();
    let mut report = report(m, &eng, total, before, backend, opts.threads);
    if let Some(cost) = opts.cost {
        predict(&mut report, &eng.component_counts(), cost);
    }
    let tally = eng.be.tally();
    Ok(Run {
        outputs,
        report,
        rotations: tally.rotations,
        rotation_levels: tally.rotation_levels,
    })
}

/// The position of each prompt whose logits the head computes: `requested` checked against
/// the layout, or the last position of every prompt.
fn requested_positions(m: &CompiledModel, requested: Option<&[usize]>) -> Result<Vec<usize>> {
    let lay = &m.layout;
    match requested {
        None => Ok(vec![lay.seq_len - 1; lay.batch]),
        Some(p) if p.len() != lay.batch => {
            Err(InferError::shape("requested positions", lay.batch, p.len()))
        }
        Some(p) => match p.iter().find(|&&q| q >= lay.seq_len) {
            Some(q) => Err(InferError::shape(
                "requested position",
                format!("< {}", lay.seq_len),
                q,
            )),
            None => Ok(p.to_vec()),
        },
    }
}

fn report<B: Backend>(
    m: &CompiledModel,
    eng: &Engine<'_, B>,
    total: f64,
    before: OpCounts,
    backend: &str,
    threads: usize,
) -> Report {
    let a = m.blocks.first().map(|b| &b.attn);
    let title = format!(
        "{} blocks, d={}, heads={}, vocab={}; {} prompts x {} tokens; N=2^{}",
        m.blocks.len(),
        m.ir.d_model,
        a.map_or(0, |a| a.heads),
        m.ir.vocab(),
        m.layout.batch,
        m.layout.seq_len,
        m.preset.params.ring.log_n,
    );
    build_report(title, eng, total, before, backend, threads)
}

/// The report of a pass of `eng` titled `title`: wall time per component, time and calls per
/// primitive class, bootstraps and counts since `before`.
pub(crate) fn build_report<B: Backend>(
    title: String,
    eng: &Engine<'_, B>,
    total: f64,
    before: OpCounts,
    backend: &str,
    threads: usize,
) -> Report {
    let wall = eng.wall();
    let tally = eng.be.tally();
    let components = Component::ALL
        .iter()
        .map(|&c| ComponentTime {
            component: Some(c),
            wall_s: wall[c as usize],
            primitive_s: tally.seconds[c as usize].iter().sum(),
            predicted_s: None,
        })
        .collect();
    let primitives = PrimitiveClass::ALL
        .iter()
        .map(|&p| PrimitiveTime {
            class: Some(p),
            seconds: tally.seconds.iter().map(|r| r[p as usize]).sum(),
            calls: tally.calls.iter().map(|r| r[p as usize]).sum(),
        })
        .collect();
    let counts = (eng.be.counts() - before)
        .nonzero()
        .into_iter()
        .map(|(p, k)| (format!("{p:?}"), k))
        .collect();
    Report {
        title,
        backend: backend.into(),
        threads,
        total_s: total,
        components,
        primitives,
        bootstraps: eng.bootstraps(),
        counts,
        notes: Vec::new(),
    }
}

/// Fills `predicted_s` of every component from its counts; bootstrapping is priced by its
/// own curve only (a real bootstrap also records its inner primitives).
pub(crate) fn predict(report: &mut Report, counts: &[LevelCounts], cost: &CostModel) {
    for (c, ct) in report.components.iter_mut().zip(counts) {
        let priced = if c.component == Some(Component::Bootstrap) {
            let mut only = LevelCounts::default();
            for e in ct.entries().filter(|e| e.primitive == Primitive::Bootstrap) {
                only.add(e.primitive, e.level, e.count);
            }
            only
        } else {
            ct.clone()
        };
        c.predicted_s = cost.predict(&priced).ok().map(|p| p.seconds);
    }
}

/// Runs on the simulation evaluator: `inputs` are the packed slot vectors
/// ([`crate::layout::Layout::pack`]), "encrypted" at the fresh level.
///
/// # Errors
/// A wrong number of inputs or an error of the circuit.
pub fn run_sim(
    m: &CompiledModel,
    sim: SimBackend,
    refresh: &SimRefresh,
    inputs: &[Vec<f64>],
    opts: &RunOptions<'_>,
) -> Result<Run<SimCiphertext>> {
    let level = refresh.output_level();
    let cts = inputs
        .iter()
        .map(|v| Ok(sim.encrypt(v, level, sim.default_scale())?))
        .collect::<Result<Vec<_>>>()?;
    execute(m, sim, refresh, cts, opts, "simulation")
}

/// What the server holds for one client: parameters, the evaluator with the client's keys,
/// the bootstrapping circuit and the encapsulation keys.
pub struct ServerContext {
    params: CkksParameters,
    encoder: Encoder,
    eval: Evaluator,
    boot: Arc<Bootstrapper>,
    encapsulation: Option<Encapsulation>,
}

impl ServerContext {
    /// Builds the bootstrapping circuit of `m` and takes the client's keys (generated per
    /// [`CompiledModel::key_requirements`]).
    ///
    /// # Errors
    /// As [`Bootstrapper::new`].
    pub fn new(
        m: &CompiledModel,
        keys: EvaluationKeys,
        encapsulation: Option<Encapsulation>,
    ) -> Result<Self> {
        Self::from_preset(&m.preset, keys, encapsulation)
    }

    /// The same for any circuit compiled under `preset` (e.g. a
    /// [`crate::compile::decode::Decoder`]).
    ///
    /// # Errors
    /// Invalid parameters, or as [`Bootstrapper::new`].
    pub fn from_preset(
        preset: &BootstrapPreset,
        keys: EvaluationKeys,
        encapsulation: Option<Encapsulation>,
    ) -> Result<Self> {
        let params = preset.params.try_build()?;
        let boot = Bootstrapper::new(&params, preset.config)?;
        Ok(Self::with_bootstrapper(Arc::new(boot), keys, encapsulation))
    }

    /// A context on a bootstrapping circuit built once and shared (its encoded DFT matrices
    /// are key-independent: 4.4 GiB at N = 2^16, so a server holds one per parameter set, not
    /// one per session). The circuit must be the one of the compiled model's preset.
    pub fn with_bootstrapper(
        boot: Arc<Bootstrapper>,
        keys: EvaluationKeys,
        encapsulation: Option<Encapsulation>,
    ) -> Self {
        let params = boot.params().clone();
        Self {
            encoder: Encoder::new(&params),
            eval: Evaluator::new(&params, keys),
            params,
            boot,
            encapsulation,
        }
    }

    /// The evaluator (its counter holds the primitive counts of every run).
    pub fn evaluator(&self) -> &Evaluator {
        &self.eval
    }

    pub(crate) fn backend(&self) -> HeBackend<'_> {
        HeBackend::new(&self.params, &self.encoder, &self.eval)
    }

    pub(crate) fn refresh<'a>(&'a self, m: &'a CompiledModel) -> HeRefresh<'a> {
        self.refresh_with(&m.plan.bounds)
    }

    /// The bootstrapping refresh with the site bounds of a plan.
    pub(crate) fn refresh_with<'a>(&'a self, bounds: &'a BTreeMap<String, f64>) -> HeRefresh<'a> {
        HeRefresh::new(&self.boot, self.encapsulation.as_ref(), bounds)
    }

    /// The CKKS parameters.
    pub fn params(&self) -> &CkksParameters {
        &self.params
    }

    /// The bootstrapping circuit's configuration (its slot count included).
    pub fn bootstrap_config(&self) -> &psf_circuits::bootstrap::BootstrapConfig {
        self.boot.config()
    }
}

/// The encrypted forward pass: embeddings in (`cts_for(d_model)` ciphertexts at the fresh
/// level), logits of every position out, with the latency report.
///
/// # Errors
/// Wrong inputs, missing keys, or an error of the circuit.
pub fn forward(
    m: &CompiledModel,
    server: &ServerContext,
    inputs: Vec<Ciphertext>,
    opts: &RunOptions<'_>,
) -> Result<(Vec<Ciphertext>, Report)> {
    let refresh = server.refresh(m);
    let run = execute(m, server.backend(), &refresh, inputs, opts, "ckks")?;
    Ok((run.outputs, run.report))
}
