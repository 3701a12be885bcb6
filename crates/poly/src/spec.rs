//! [`PolySpec`]: every approximation choice of a polynomial model (intervals, degrees,
//! iteration counts, the Power-Softmax constant `c`), as serde JSON written by calibration and
//! read by both the [`crate::PolyModel`] and the encrypted compiler (psf-infer).

use std::collections::BTreeMap;
use std::path::Path;

use psf_approx::{Chebyshev, ErrorReport, InvSqrtRecipe, ReciprocalRecipe};
use serde::{Deserialize, Serialize};

use crate::error::{PolyError, Result};

/// How the non-polynomial ops are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The polynomials of the spec (what the encrypted circuit computes).
    Polynomial,
    /// The same `f64` code with the true functions (`1/x`, `1/sqrt x`, GELU/SiLU): the
    /// unapproximated twin.
    Exact,
    /// Ablation: the classes marked in [`Approximated`] use the spec's polynomials, the
    /// others the true functions (what one class of approximation costs on its own).
    Only(Approximated),
}

/// The op classes [`Mode::Only`] approximates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approximated {
    /// `InvSqrt` of every norm (first guess + Newton).
    pub inv_sqrt: bool,
    /// `Reciprocal` of the Power-Softmax denominators (first guess + Goldschmidt/Newton).
    pub reciprocal: bool,
    /// The MLP activation polynomial.
    pub activation: bool,
}

impl Mode {
    /// Whether `op` is computed by its polynomial in this mode (`Scores` never is: it is
    /// only checked against `[-1, 1]`).
    pub fn approximates(self, op: PolyOp) -> bool {
        let only = match self {
            Mode::Polynomial => return op != PolyOp::Scores,
            Mode::Exact => return false,
            Mode::Only(a) => a,
        };
        match op {
            PolyOp::Norm1 | PolyOp::Norm2 | PolyOp::FinalNorm => only.inv_sqrt,
            PolyOp::Reciprocal => only.reciprocal,
            PolyOp::Activation => only.activation,
            PolyOp::Scores => false,
        }
    }

    /// A short label: `polynomial`, `exact`, or the approximated classes joined by `+`.
    pub fn label(self) -> String {
        match self {
            Mode::Polynomial => "polynomial".into(),
            Mode::Exact => "exact".into(),
            Mode::Only(a) => {
                let names = [
                    (a.inv_sqrt, "1/sqrt"),
                    (a.reciprocal, "1/x"),
                    (a.activation, "activation"),
                ];
                let on: Vec<&str> = names.iter().filter(|n| n.0).map(|n| n.1).collect();
                if on.is_empty() {
                    "none".into()
                } else {
                    format!("only {}", on.join("+"))
                }
            }
        }
    }
}

/// The MLP non-linearity being approximated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivationFn {
    /// `x Phi(x)` (erf form).
    Gelu,
    /// `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.
    GeluTanh,
    /// `x / (1 + e^-x)` (Llama's SwiGLU gate).
    Silu,
}

impl ActivationFn {
    /// The exact function.
    pub fn exact(self, x: f64) -> f64 {
        match self {
            ActivationFn::Gelu => psf_approx::gelu_exact(x),
            ActivationFn::GeluTanh => {
                let k = (2.0 / std::f64::consts::PI).sqrt();
                0.5 * x * (1.0 + (k * (x + 0.044715 * x * x * x)).tanh())
            }
            ActivationFn::Silu => psf_approx::silu_exact(x),
        }
    }
}

/// The activation polynomial: minimax of `function` on `poly`'s interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivationSpec {
    /// Which function.
    pub function: ActivationFn,
    /// The polynomial in the Chebyshev basis of its interval `[poly.a, poly.b]`.
    pub poly: Chebyshev,
    /// Its measured error on the interval.
    pub report: ErrorReport,
}

impl ActivationSpec {
    /// Fits the minimax polynomial of `degree` on `[a, b]` and measures it.
    ///
    /// # Errors
    /// As [`psf_approx::remez`].
    pub fn fit(function: ActivationFn, (a, b): (f64, f64), degree: usize) -> Result<Self> {
        let ap = psf_approx::Approximation::minimax(
            "activation",
            move |x| function.exact(x),
            (a, b),
            degree,
            &psf_approx::RemezOptions::default(),
        )?;
        Ok(Self {
            function,
            poly: ap.poly,
            report: ap.report,
        })
    }

    /// The interval.
    pub fn interval(&self) -> (f64, f64) {
        (self.poly.a, self.poly.b)
    }

    /// The polynomial at `x` (what the circuit computes; evaluated outside the interval too).
    pub fn eval(&self, x: f64) -> f64 {
        self.poly.eval(x)
    }
}

/// Approximations of one decoder block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerSpec {
    /// `InvSqrt` of the first norm (`input_layernorm`): input `var + eps`.
    pub norm1: InvSqrtRecipe,
    /// `InvSqrt` of the second norm (`post_attention_layernorm`).
    pub norm2: InvSqrtRecipe,
    /// The public constant `c` of Power-Softmax (scores are divided by `c`; `1/c` is folded
    /// into q with `1/sqrt(head_dim)`).
    pub c: f64,
    /// `Reciprocal` of the length-agnostic denominator `eps / c^p + mean_j (s_j / c)^p`.
    pub reciprocal: ReciprocalRecipe,
    /// The MLP activation (GELU for NeoX, SiLU gate for Llama).
    pub activation: ActivationSpec,
}

/// Every approximation choice of a polynomial model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolySpec {
    /// Power-Softmax exponent (even).
    pub p: u32,
    /// The model's `eps` (per key, length-agnostic form).
    pub eps: f64,
    /// One entry per decoder block.
    pub layers: Vec<LayerSpec>,
    /// `InvSqrt` of the final norm.
    pub final_norm: InvSqrtRecipe,
    /// Relative margin the calibrated intervals were widened by (documentation).
    pub margin: f64,
    /// Free-form provenance: calibration text, token count, degrees asked for.
    #[serde(default)]
    pub notes: BTreeMap<String, String>,
}

impl PolySpec {
    /// Reads a spec from JSON.
    ///
    /// # Errors
    /// I/O or JSON errors.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| PolyError::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| PolyError::json(path, e))
    }

    /// Writes the spec as pretty JSON.
    ///
    /// # Errors
    /// I/O or JSON errors.
    pub fn to_file(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let text = serde_json::to_string_pretty(self).map_err(|e| PolyError::json(path, e))?;
        std::fs::write(path, text).map_err(|e| PolyError::io(path, e))
    }
}

/// An op whose input is checked against its interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolyOp {
    /// `InvSqrt` of the first norm of a block.
    Norm1,
    /// `InvSqrt` of the second norm of a block.
    Norm2,
    /// `InvSqrt` of the final norm (reported with `layer = num_layers`).
    FinalNorm,
    /// Scaled scores `s / c` outside `[-1, 1]` (not an approximation, but it pushes the
    /// denominator past its interval).
    Scores,
    /// `Reciprocal` of the Power-Softmax denominator.
    Reciprocal,
    /// The MLP activation.
    Activation,
}

/// Where an input was checked: `(layer, op)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OpSite {
    /// Decoder block (`num_layers` for the final norm).
    pub layer: usize,
    /// Which op.
    pub op: PolyOp,
}

/// Inputs checked at one site and how many fell outside the interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RangeCount {
    /// Inputs checked.
    pub total: u64,
    /// Inputs outside the interval.
    pub outside: u64,
    /// Smallest input seen.
    pub min: f64,
    /// Largest input seen.
    pub max: f64,
}

impl RangeCount {
    /// Tallies `x` against `[a, b]`; true if it lies outside (NaN does).
    pub(crate) fn observe(&mut self, x: f64, (a, b): (f64, f64)) -> bool {
        if self.total == 0 {
            (self.min, self.max) = (x, x);
        }
        let out = !(x >= a && x <= b);
        self.total += 1;
        self.outside += u64::from(out);
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        out
    }

    fn merge(&mut self, o: &RangeCount) {
        if o.total == 0 {
            return;
        }
        if self.total == 0 {
            *self = *o;
            return;
        }
        self.total += o.total;
        self.outside += o.outside;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }
}

/// Out-of-interval counts per op and layer (in every mode: the exact twin counts too), and
/// where each position first went outside.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutOfRange {
    /// Counts by site.
    pub sites: BTreeMap<OpSite, RangeCount>,
    /// Positions by the first site (in the forward order: layer by layer, within a block
    /// norm1, scores, reciprocal, norm2, activation) at which one of their inputs fell
    /// outside; a position that never did is not counted. A query's scores and reciprocal
    /// count for the query's position.
    pub first_outside: BTreeMap<OpSite, u64>,
    /// Positions checked (rows of every forward pass tallied).
    pub positions: u64,
    /// The forward pass under way: position -> first site outside.
    pending: BTreeMap<usize, OpSite>,
}

impl OutOfRange {
    pub(crate) fn site(&mut self, layer: usize, op: PolyOp) -> &mut RangeCount {
        self.sites.entry(OpSite { layer, op }).or_default()
    }

    /// Notes that position `row` had an input outside at `(layer, op)` (kept if it is the
    /// row's first).
    pub(crate) fn flag(&mut self, row: usize, layer: usize, op: PolyOp) {
        self.pending.entry(row).or_insert(OpSite { layer, op });
    }

    /// Merges the tallies of another part of the same forward pass (an attention head):
    /// sites add up, a position keeps the first site flagged for it.
    pub(crate) fn merge_part(&mut self, part: &OutOfRange) {
        for (k, v) in &part.sites {
            self.sites.entry(*k).or_default().merge(v);
        }
        for (&row, &site) in &part.pending {
            self.pending.entry(row).or_insert(site);
        }
    }

    /// Ends a forward pass of `rows` positions: its first sites go into
    /// [`Self::first_outside`].
    pub(crate) fn finish(&mut self, rows: usize) {
        for site in std::mem::take(&mut self.pending).into_values() {
            *self.first_outside.entry(site).or_default() += 1;
        }
        self.positions += rows as u64;
    }

    /// Adds the tally of another (finished) forward pass into this one.
    pub fn merge(&mut self, other: &OutOfRange) {
        for (k, v) in &other.sites {
            self.sites.entry(*k).or_default().merge(v);
        }
        for (k, v) in &other.first_outside {
            *self.first_outside.entry(*k).or_default() += v;
        }
        self.positions += other.positions;
    }

    /// Positions with at least one input outside its interval.
    pub fn positions_outside(&self) -> u64 {
        self.first_outside.values().sum()
    }

    /// Total inputs outside their interval (all sites).
    pub fn outside(&self) -> u64 {
        self.sites.values().map(|c| c.outside).sum()
    }

    /// Total inputs checked (all sites).
    pub fn total(&self) -> u64 {
        self.sites.values().map(|c| c.total).sum()
    }
}
