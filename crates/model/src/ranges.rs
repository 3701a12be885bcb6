//! Recording the inputs whose ranges matter for polynomial replacement, and the
//! range-minimization loss `alpha * sum_layers max|input|` (DESIGN.md §2.2).

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Which non-polynomial (or range-sensitive) input a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RangeKind {
    /// Attention scores `q.k / sqrt(d)` after the multiplicative mask (input of `s^p`).
    Scores,
    /// Input of the reciprocal in Power-Softmax, in its length-agnostic inference form
    /// `eps' + mean_i s_i^p` (or `eps + sum_i s_i^p` with a fixed eps).
    Denominator,
    /// Input of `1/sqrt(.)` in LayerNorm / RMSNorm: `var + eps` (or `mean x^2 + eps`).
    NormVariance,
    /// Input of the MLP activation (GELU / SiLU).
    ActivationInput,
}

/// The range of one input in one layer, as scalar tensors still attached to the graph.
#[derive(Debug, Clone)]
pub struct RangeRecord {
    /// Decoder block index (`num_layers` for the final norm).
    pub layer: usize,
    /// Which input.
    pub kind: RangeKind,
    /// Minimum over the batch (scalar tensor).
    pub min: Tensor,
    /// Maximum over the batch (scalar tensor).
    pub max: Tensor,
}

/// Collects [`RangeRecord`]s during one forward pass. Pass `Some(&mut recorder)` to a model's
/// forward to record; `None` costs nothing.
///
/// A recorder made by [`RangeRecorder::with_attention`] also keeps every layer's attention
/// weights `(B, H, T, T)` (the evaluation hook behind attention maps; off by default, and
/// training never turns it on).
#[derive(Debug, Default)]
pub struct RangeRecorder {
    /// Records in the order the forward pass produced them.
    pub records: Vec<RangeRecord>,
    /// `(layer, weights (B, H, T, T))` per attention layer, when capture is on.
    pub attention: Option<Vec<(usize, Tensor)>>,
}

/// Observed interval of one input, in plain numbers (for calibration).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Smallest value seen.
    pub min: f32,
    /// Largest value seen.
    pub max: f32,
}

impl RangeRecorder {
    /// A recorder that also captures the attention weights of every layer.
    pub fn with_attention() -> Self {
        RangeRecorder {
            records: Vec::new(),
            attention: Some(Vec::new()),
        }
    }

    /// Keeps `weights` (detached) for `layer` when attention capture is on; else does nothing.
    pub fn record_attention(&mut self, layer: usize, weights: &Tensor) {
        if let Some(maps) = self.attention.as_mut() {
            maps.push((layer, weights.detach()));
        }
    }

    /// Records min and max of `x` (any shape) for `(layer, kind)`.
    pub fn record(&mut self, layer: usize, kind: RangeKind, x: &Tensor) -> Result<()> {
        let flat = x.flatten_all()?;
        let min = flat.min(0)?;
        let max = flat.max(0)?;
        self.records.push(RangeRecord {
            layer,
            kind,
            min,
            max,
        });
        Ok(())
    }

    /// `sum over records of the selected kinds of max|input|`, as a differentiable scalar.
    /// Returns `None` when nothing of those kinds was recorded.
    pub fn range_penalty(&self, kinds: &[RangeKind]) -> Result<Option<Tensor>> {
        let mut total: Option<Tensor> = None;
        for r in self.records.iter().filter(|r| kinds.contains(&r.kind)) {
            let max_abs = r.max.maximum(&r.min.neg()?)?;
            total = Some(match total {
                None => max_abs,
                Some(t) => (t + max_abs)?,
            });
        }
        Ok(total)
    }

    /// The recorded intervals as numbers, one per record.
    pub fn intervals(&self) -> Result<Vec<(usize, RangeKind, Interval)>> {
        self.records
            .iter()
            .map(|r| {
                let min = r.min.to_scalar::<f32>()?;
                let max = r.max.to_scalar::<f32>()?;
                Ok((r.layer, r.kind, Interval { min, max }))
            })
            .collect()
    }
}
