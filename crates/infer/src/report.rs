//! The latency report of an encrypted forward pass: wall time per component, time and calls
//! per primitive class, the bootstraps placed, op counts, and the cost model's prediction;
//! written as JSON and drawn as a PNG bar chart (see [`crate::chart`]).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{InferError, Result};

/// The parts of the model a forward pass's time is split into (the paper's breakdown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Component {
    /// Plaintext-weight products (q/k/v/o projections, MLP, LM head).
    PtMatmul,
    /// Ciphertext-ciphertext products `QK^T` and `AV`.
    CtMatmul,
    /// Power-Softmax: powers, masks, means, reciprocal, weights.
    PowerSoftmax,
    /// LayerNorm / RMSNorm (means, variances, inverse square roots).
    Norm,
    /// GELU / SiLU polynomials and the SwiGLU product.
    Activation,
    /// Bootstrapping.
    Bootstrap,
    /// Residual additions, biases and everything else.
    Other,
}

impl Component {
    /// Every component, in display order.
    pub const ALL: [Component; 7] = [
        Component::PtMatmul,
        Component::CtMatmul,
        Component::PowerSoftmax,
        Component::Norm,
        Component::Activation,
        Component::Bootstrap,
        Component::Other,
    ];

    /// A short label.
    pub fn label(self) -> &'static str {
        match self {
            Component::PtMatmul => "pt-matmul",
            Component::CtMatmul => "ct-matmul",
            Component::PowerSoftmax => "Power-Softmax",
            Component::Norm => "norms",
            Component::Activation => "activation",
            Component::Bootstrap => "bootstrapping",
            Component::Other => "other",
        }
    }
}

/// Primitive classes timed individually.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrimitiveClass {
    /// A whole bootstrap.
    Bootstrap,
    /// Rotations (single or hoisted groups).
    Rotation,
    /// Ciphertext products with relinearization.
    Relinearize,
    /// Rescales.
    Rescale,
    /// Plaintext encodings.
    Encode,
    /// Plaintext products.
    PtMul,
    /// Additions, constant products, level drops.
    Other,
}

impl PrimitiveClass {
    /// Every class, in display order.
    pub const ALL: [PrimitiveClass; 7] = [
        PrimitiveClass::Bootstrap,
        PrimitiveClass::Rotation,
        PrimitiveClass::Relinearize,
        PrimitiveClass::Rescale,
        PrimitiveClass::Encode,
        PrimitiveClass::PtMul,
        PrimitiveClass::Other,
    ];

    /// A short label.
    pub fn label(self) -> &'static str {
        match self {
            PrimitiveClass::Bootstrap => "bootstrap",
            PrimitiveClass::Rotation => "rotation",
            PrimitiveClass::Relinearize => "mul+relinearize",
            PrimitiveClass::Rescale => "rescale",
            PrimitiveClass::Encode => "encode",
            PrimitiveClass::PtMul => "pt-mul",
            PrimitiveClass::Other => "other",
        }
    }
}

/// Time of one component.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ComponentTime {
    /// Which component.
    pub component: Option<Component>,
    /// Wall-clock seconds spent in it.
    pub wall_s: f64,
    /// Seconds of primitive calls attributed to it, summed over threads.
    pub primitive_s: f64,
    /// The cost model's prediction, if a cost table was given.
    pub predicted_s: Option<f64>,
}

/// Time and calls of one primitive class (summed over threads and components).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PrimitiveTime {
    /// Which class.
    pub class: Option<PrimitiveClass>,
    /// Seconds.
    pub seconds: f64,
    /// Calls.
    pub calls: u64,
}

/// One bootstrap site of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootstrapSite {
    /// Where (`L{layer}.{stage}`).
    pub site: String,
    /// Ciphertexts refreshed there.
    pub ciphertexts: usize,
}

/// The report of one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// What ran (model shape, parameters, layout).
    pub title: String,
    /// Backend (`ckks` or `simulation`).
    pub backend: String,
    /// Threads of the pool.
    pub threads: usize,
    /// Total wall-clock seconds.
    pub total_s: f64,
    /// Per component.
    pub components: Vec<ComponentTime>,
    /// Per primitive class.
    pub primitives: Vec<PrimitiveTime>,
    /// Bootstraps in order.
    pub bootstraps: Vec<BootstrapSite>,
    /// Evaluator primitive counts of the run (`Primitive` name, count).
    pub counts: Vec<(String, u64)>,
    /// Free-form notes (machine load, parameter set).
    pub notes: Vec<String>,
}

impl Report {
    /// Wall seconds of `c`.
    pub fn wall(&self, c: Component) -> f64 {
        self.components
            .iter()
            .find(|x| x.component == Some(c))
            .map_or(0.0, |x| x.wall_s)
    }

    /// Writes the report as pretty JSON.
    ///
    /// # Errors
    /// I/O errors.
    pub fn write_json(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let out = |msg: String| InferError::Output {
            path: path.display().to_string(),
            msg,
        };
        let text = serde_json::to_string_pretty(self).map_err(|e| out(e.to_string()))?;
        std::fs::write(path, text).map_err(|e| out(e.to_string()))
    }

    /// A plain-text table of the breakdown.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{} [{}; {} threads]\n",
            self.title, self.backend, self.threads
        );
        s += &format!(
            "{:<16}{:>10}{:>12}{:>12}\n",
            "component", "wall s", "prim s", "pred s"
        );
        for c in &self.components {
            let name = c.component.map_or("?", Component::label);
            let pred = c.predicted_s.map_or("-".into(), |p| format!("{p:.3}"));
            s += &format!(
                "{name:<16}{:>10.3}{:>12.3}{pred:>12}\n",
                c.wall_s, c.primitive_s
            );
        }
        s += &format!("{:<16}{:>10.3}\n", "total", self.total_s);
        s += &format!("{:<16}{:>10}{:>12}\n", "primitive", "s", "calls");
        for p in &self.primitives {
            let name = p.class.map_or("?", PrimitiveClass::label);
            s += &format!("{name:<16}{:>10.3}{:>12}\n", p.seconds, p.calls);
        }
        s
    }
}
