//! The compiler: from a polynomial model and a sequence length to a CKKS circuit.
//!
//! [`CompiledModel::compile`] lays the batch out ([`Layout`]), folds norms, the attention
//! scale, RoPE and grouped heads into the weight rows ([`weights`]), and runs the whole
//! circuit once on the simulation evaluator with calibration embeddings. That dry run fixes
//! the [`Plan`]: where bootstraps land (a stage bootstraps its inputs when they have fewer
//! levels than it consumes; levels are data-independent, so the real run places them
//! identically), the bound each refresh site divides by, the rotation keys the circuit uses
//! and the primitive counts per component that the cost model turns into a latency.

pub mod decode;
pub mod decode_maps;
pub mod head;
mod keys;
pub mod weights;

pub use head::HeadPositions;
pub use keys::KeyRequirements;
pub(crate) use keys::key_requirements_of;

use std::collections::BTreeMap;

use psf_approx::Chebyshev;
use psf_circuits::SimBackend;
use psf_circuits::bootstrap::presets::{self, BootstrapPreset};
use psf_ckks::CkksParameters;
use serde::{Deserialize, Serialize};

use crate::layout::Layout;
use crate::model::{Attention, Mlp, ModelIr, Norm};
use crate::report::{BootstrapSite, Report};
use crate::runtime::attention::AttentionWeights;
use crate::runtime::refresh::{SimRefresh, bound_for};
use crate::runtime::{self, RunOptions};
use crate::{InferError, Result};
use weights::Folded;

/// What to compile for.
#[derive(Debug, Clone)]
pub struct CompileOptions {
    /// Positions per prompt.
    pub seq_len: usize,
    /// Prompts packed into the slots side by side.
    pub batch: usize,
    /// CKKS parameters and the bootstrapping circuit.
    pub preset: BootstrapPreset,
    /// Embeddings `[prompt][position][feature]` (`batch` prompts of `seq_len`) the dry run
    /// uses to find the refresh bounds: text like what will be served.
    pub calibration: Vec<Vec<Vec<f64>>>,
    /// The positions whose logits are computed (every position by default).
    pub head: HeadPositions,
}

impl CompileOptions {
    /// The bootstrapping preset of ring degree `2^log_n` ([`presets::for_log_n`]: 128-bit at
    /// 16 and 15, INSECURE twins below).
    pub fn for_log_n(
        seq_len: usize,
        batch: usize,
        log_n: u32,
        calibration: Vec<Vec<Vec<f64>>>,
    ) -> Self {
        Self {
            seq_len,
            batch,
            preset: presets::for_log_n(log_n),
            calibration,
            head: HeadPositions::All,
        }
    }
}

/// The MLP weights of a block, folded.
#[derive(Debug, Clone)]
pub enum MlpWeights {
    /// `down(act(up y))`.
    Plain {
        /// Input projection (norm folded in).
        up: Folded,
        /// Output projection.
        down: Folded,
        /// The activation polynomial.
        act: Chebyshev,
    },
    /// `down(act(gate y) * up y)`.
    Gated {
        /// Gate projection (norm folded in).
        gate: Folded,
        /// Up projection (norm folded in).
        up: Folded,
        /// Output projection.
        down: Folded,
        /// The activation polynomial.
        act: Chebyshev,
    },
}

/// One compiled decoder block.
#[derive(Debug, Clone)]
pub struct CompiledBlock {
    /// Norm before attention (its recipe; gain and shift are folded into q, k, v).
    pub norm1: Norm,
    /// Norm before the MLP.
    pub norm2: Norm,
    /// Attention hyper-parameters and recipes.
    pub attn: Attention,
    /// Folded attention projections.
    pub weights: AttentionWeights,
    /// Folded MLP.
    pub mlp: MlpWeights,
    /// Parallel residual (NeoX).
    pub parallel_residual: bool,
}

/// What the dry run fixed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Bound (a power of two) each refresh site divides by before bootstrapping.
    pub bounds: BTreeMap<String, f64>,
    /// Bootstraps in order.
    pub bootstraps: Vec<BootstrapSite>,
    /// Rotations the circuit uses outside bootstrapping (slot units).
    pub rotations: Vec<i64>,
    /// The highest level each of them runs at (keys are limited to it); plans written
    /// before this field existed limit them to the fresh level.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rotation_levels: BTreeMap<i64, usize>,
    /// The simulated run's report (primitive counts; times are of the simulator).
    pub simulated: Report,
    /// Progress stages of a pass.
    pub stages: usize,
}

/// A model compiled for one layout and parameter set.
#[derive(Debug, Clone)]
pub struct CompiledModel {
    /// The model.
    pub ir: ModelIr,
    /// The packing.
    pub layout: Layout,
    /// Parameters and bootstrapping circuit.
    pub preset: BootstrapPreset,
    /// Blocks with folded weights.
    pub blocks: Vec<CompiledBlock>,
    /// LM head with the final norm folded in.
    pub lm_head: Folded,
    /// The positions whose logits the pass computes.
    pub head: HeadPositions,
    /// The plan of the dry run.
    pub plan: Plan,
}

impl CompiledModel {
    /// Compiles `ir` (see the module docs).
    ///
    /// # Errors
    /// Inconsistent shapes, a layout that does not fit, a stage deeper than a bootstrap
    /// leaves, or an error of the dry run.
    pub fn compile(ir: &ModelIr, opts: &CompileOptions) -> Result<Self> {
        ir.validate()?;
        let params = opts.preset.params.try_build()?;
        let layout = Layout::new(opts.seq_len, opts.batch, params.max_slots())?;
        let blocks = ir
            .blocks
            .iter()
            .map(compile_block)
            .collect::<Result<Vec<_>>>()?;
        let lm_head = Folded::after_norm(&ir.lm_head, &ir.final_norm)?;
        let mut m = Self {
            ir: ir.clone(),
            layout,
            preset: opts.preset.clone(),
            blocks,
            lm_head,
            head: opts.head,
            plan: Plan {
                stages: ir.blocks.len() + 1,
                ..Plan::default()
            },
        };
        let packed = layout.pack(&opts.calibration, ir.d_model)?;
        let sim = SimBackend::new(&params);
        let refresh = SimRefresh::new(m.fresh_level(&params));
        let run = runtime::run_sim(&m, sim, &refresh, &packed, &RunOptions::default())?;
        m.plan.bounds = refresh
            .maxima()
            .into_iter()
            .map(|(k, v)| (k, bound_for(v)))
            .collect();
        m.plan.bootstraps = run.report.bootstraps.clone();
        m.plan.rotations = run.rotations;
        m.plan.rotation_levels = run.rotation_levels;
        m.plan.simulated = run.report;
        Ok(m)
    }

    /// The CKKS parameters.
    ///
    /// # Errors
    /// Invalid parameters (cannot happen for a compiled model's preset).
    pub fn params(&self) -> Result<CkksParameters> {
        Ok(self.preset.params.try_build()?)
    }

    /// The level inputs are encrypted at and bootstraps return to.
    pub fn fresh_level(&self, params: &CkksParameters) -> usize {
        params.ring().max_level() - self.preset.config.depth()
    }

    /// The keys the server needs: relinearization, conjugation, the circuit's rotations
    /// (limited to [`Self::fresh_level`]) and the bootstrapping's (full), and the
    /// encapsulation keys.
    ///
    /// # Errors
    /// As [`psf_circuits::bootstrap::Bootstrapper::new`].
    pub fn key_requirements(&self) -> Result<KeyRequirements> {
        key_requirements_of(
            &self.preset,
            &self.plan.rotations,
            &self.plan.rotation_levels,
        )
    }
}

pub(crate) fn compile_block(b: &crate::model::Block) -> Result<CompiledBlock> {
    let a = &b.attn;
    let alpha = 1.0 / ((a.head_dim as f64).sqrt() * a.c);
    let weights = AttentionWeights {
        q: Folded::after_norm(&a.q, &b.norm1)?
            .scaled(alpha)
            .with_rope(a.rope, a.head_dim),
        k: Folded::after_norm(&a.k, &b.norm1)?
            .expand_heads(a)
            .with_rope(a.rope, a.head_dim),
        v: Folded::after_norm(&a.v, &b.norm1)?.expand_heads(a),
        o: Folded::plain(&a.o),
    };
    let mlp = match &b.mlp {
        Mlp::Plain { up, down, act } => MlpWeights::Plain {
            up: Folded::after_norm(up, &b.norm2)?,
            down: Folded::plain(down),
            act: act.clone(),
        },
        Mlp::Gated {
            gate,
            up,
            down,
            act,
        } => MlpWeights::Gated {
            gate: Folded::after_norm(gate, &b.norm2)?,
            up: Folded::after_norm(up, &b.norm2)?,
            down: Folded::plain(down),
            act: act.clone(),
        },
    };
    if b.norm1.kind != b.norm2.kind {
        return Err(InferError::Unsupported(
            "blocks mixing LayerNorm and RMSNorm".into(),
        ));
    }
    Ok(CompiledBlock {
        norm1: b.norm1.clone(),
        norm2: b.norm2.clone(),
        attn: a.clone(),
        weights,
        mlp,
        parallel_residual: b.parallel_residual,
    })
}
