//! Model configuration, read from a Hugging Face `config.json`.
//!
//! Two stages (see STYLE.md): [`ModelConfigLiteral`] is the serde document as Hugging Face
//! writes it (unknown fields ignored, so a real checkpoint's `config.json` parses), and
//! [`ModelConfigLiteral::try_build`] checks it once into a resolved [`ModelConfig`].

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::attention_norm::AttentionNorm;
use crate::error::{Error, Result};

/// The two decoder layouts we load by Hugging Face tensor names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// GPT-NeoX / Pythia: LayerNorm with bias, fused QKV, partial rotary, (parallel) residual,
    /// GELU MLP, untied output head `embed_out`.
    GptNeox,
    /// Llama: RMSNorm, separate Q/K/V with grouped-query attention, full RoPE, SwiGLU MLP.
    Llama,
}

/// The MLP's non-linearity (Hugging Face `hidden_act`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Exact GELU, `x * Phi(x)` (`"gelu"`).
    Gelu,
    /// Tanh approximation of GELU (`"gelu_new"`, `"gelu_fast"`, `"gelu_pytorch_tanh"`).
    GeluTanh,
    /// SiLU / swish (`"silu"`, `"swish"`); Llama's gate.
    Silu,
    /// ReLU (`"relu"`).
    Relu,
}

impl Activation {
    fn from_hf(name: &str) -> Result<Self> {
        Ok(match name {
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_fast" | "gelu_pytorch_tanh" => Activation::GeluTanh,
            "silu" | "swish" => Activation::Silu,
            "relu" => Activation::Relu,
            other => {
                return Err(Error::InvalidConfig(format!(
                    "unsupported hidden_act {other:?}"
                )));
            }
        })
    }
    fn hf_name(self) -> &'static str {
        match self {
            Activation::Gelu => "gelu",
            Activation::GeluTanh => "gelu_new",
            Activation::Silu => "silu",
            Activation::Relu => "relu",
        }
    }
}

/// A Hugging Face `config.json` for `model_type` `"gpt_neox"` or `"llama"`, plus our
/// `attention_norm` field. Optional fields take the Hugging Face defaults of each layout.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelConfigLiteral {
    /// `"gpt_neox"` or `"llama"`.
    pub model_type: String,
    /// Vocabulary size (rows of the embedding table).
    pub vocab_size: usize,
    /// Model width d.
    pub hidden_size: usize,
    /// Number of decoder blocks.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention); defaults to `num_attention_heads`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_key_value_heads: Option<usize>,
    /// Per-head width; defaults to `hidden_size / num_attention_heads`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<usize>,
    /// MLP width.
    pub intermediate_size: usize,
    /// Longest sequence the rotary tables are built for.
    pub max_position_embeddings: usize,
    /// GPT-NeoX: fraction of each head's dimensions that are rotated (default 0.25).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotary_pct: Option<f64>,
    /// Newer spelling of `rotary_pct`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial_rotary_factor: Option<f64>,
    /// GPT-NeoX: RoPE base (default 10000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotary_emb_base: Option<f64>,
    /// Llama (and newer GPT-NeoX configs): RoPE base (default 10000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
    /// Transformers v5 nests `rope_theta` / `partial_rotary_factor` / `rope_type` here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rope_parameters: Option<serde_json::Value>,
    /// Rope scaling (only `null` or type `"default"` is supported).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<serde_json::Value>,
    /// GPT-NeoX LayerNorm epsilon (default 1e-5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer_norm_eps: Option<f64>,
    /// Llama RMSNorm epsilon (default 1e-6).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rms_norm_eps: Option<f64>,
    /// GPT-NeoX: `x + attn(ln1 x) + mlp(ln2 x)` when true (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_parallel_residual: Option<bool>,
    /// Output head shares the embedding table (default false for GPT-NeoX, true for Llama
    /// in Hugging Face's class default; real Llama checkpoints state it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tie_word_embeddings: Option<bool>,
    /// MLP activation (`"gelu"` for GPT-NeoX, `"silu"` for Llama by default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hidden_act: Option<String>,
    /// Biases on the attention projections (GPT-NeoX default true, Llama false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attention_bias: Option<bool>,
    /// Llama: biases on the MLP projections (default false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mlp_bias: Option<bool>,
    /// Ours: how attention scores are normalized (default softmax).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attention_norm: Option<AttentionNorm>,
    /// Ours: a per-head positional decay of the attention weights at ALiBi's slopes (default
    /// false; `crate::layers::alibi_slopes`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position_decay: Option<bool>,
    /// Ours: subtract a learned share of each query row's mean visible score before
    /// normalizing (default false; Power-Softmax and pointwise only, see
    /// `attention_norm::center_scores`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score_centering: Option<bool>,
}

/// A checked, resolved model configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// Which layout.
    pub arch: Arch,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model width d.
    pub hidden_size: usize,
    /// Decoder blocks.
    pub num_layers: usize,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads (divides `num_heads`).
    pub num_kv_heads: usize,
    /// Per-head width.
    pub head_dim: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Longest supported sequence.
    pub max_position_embeddings: usize,
    /// Rotated dimensions per head (even, <= `head_dim`).
    pub rotary_dim: usize,
    /// RoPE base.
    pub rope_theta: f64,
    /// Norm epsilon (LayerNorm or RMSNorm).
    pub norm_eps: f64,
    /// GPT-NeoX parallel residual (always false for Llama).
    pub parallel_residual: bool,
    /// Output head tied to the embedding table.
    pub tie_word_embeddings: bool,
    /// MLP activation.
    pub activation: Activation,
    /// Attention projections have biases.
    pub attention_bias: bool,
    /// MLP projections have biases.
    pub mlp_bias: bool,
    /// Attention-score normalization.
    pub attention_norm: AttentionNorm,
    /// Per-head positional decay of the attention weights at ALiBi's slopes.
    pub position_decay: bool,
    /// Each layer subtracts a learned per-head share of the row's mean score.
    pub score_centering: bool,
}

impl ModelConfigLiteral {
    /// Reads a Hugging Face `config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::json(path, e))
    }

    /// Writes this literal as `config.json` (Hugging Face-compatible, plus `attention_norm`).
    pub fn to_file(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::json(path, e))?;
        std::fs::write(path, text).map_err(|e| Error::io(path, e))
    }

    /// The issue's reference training shape in the GPT-NeoX layout: 4 layers, d=256, 4 heads,
    /// MLP 4d, vocabulary 8192, 128 positions, rotary 25 %, parallel residual.
    pub fn neox_reference() -> Self {
        ModelConfigLiteral {
            model_type: "gpt_neox".into(),
            vocab_size: 8192,
            hidden_size: 256,
            num_hidden_layers: 4,
            num_attention_heads: 4,
            intermediate_size: 1024,
            max_position_embeddings: 128,
            rotary_pct: Some(0.25),
            rotary_emb_base: Some(10000.0),
            layer_norm_eps: Some(1e-5),
            use_parallel_residual: Some(true),
            tie_word_embeddings: Some(false),
            hidden_act: Some("gelu".into()),
            ..Default::default()
        }
    }

    /// Checks the literal and resolves every default.
    pub fn try_build(&self) -> Result<ModelConfig> {
        let arch = match self.model_type.as_str() {
            "gpt_neox" => Arch::GptNeox,
            "llama" => Arch::Llama,
            other => return Err(invalid(format!("unsupported model_type {other:?}"))),
        };
        let neox = arch == Arch::GptNeox;
        let heads = self.num_attention_heads;
        let kv_heads = self.num_key_value_heads.unwrap_or(heads);
        if heads == 0 || self.hidden_size == 0 || self.vocab_size == 0 {
            return Err(invalid(
                "hidden_size, num_attention_heads, vocab_size must be > 0".into(),
            ));
        }
        if kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
            return Err(invalid(format!(
                "{heads} heads not a multiple of {kv_heads} kv heads"
            )));
        }
        if neox && kv_heads != heads {
            return Err(invalid("gpt_neox has no grouped-query attention".into()));
        }
        let head_dim = self.head_dim.unwrap_or(self.hidden_size / heads);
        if self.head_dim.is_none() && !self.hidden_size.is_multiple_of(heads) {
            return Err(invalid(format!(
                "hidden_size not divisible by {heads} heads"
            )));
        }
        let (rotary_dim, theta) = self.rope(head_dim, neox)?;
        let act = self
            .hidden_act
            .as_deref()
            .unwrap_or(if neox { "gelu" } else { "silu" });
        let norm_eps = if neox {
            self.layer_norm_eps.unwrap_or(1e-5)
        } else {
            self.rms_norm_eps.unwrap_or(1e-6)
        };
        let attention_norm = self.attention_norm.clone().unwrap_or_default();
        attention_norm.validate()?;
        let score_centering = self.score_centering.unwrap_or(false);
        if score_centering && attention_norm == AttentionNorm::Softmax {
            return Err(invalid(
                "score_centering does nothing under softmax, which is shift invariant".into(),
            ));
        }
        Ok(ModelConfig {
            arch,
            vocab_size: self.vocab_size,
            hidden_size: self.hidden_size,
            num_layers: self.num_hidden_layers,
            num_heads: heads,
            num_kv_heads: kv_heads,
            head_dim,
            intermediate_size: self.intermediate_size,
            max_position_embeddings: self.max_position_embeddings.max(1),
            rotary_dim,
            rope_theta: theta.unwrap_or(10000.0),
            norm_eps,
            parallel_residual: neox && self.use_parallel_residual.unwrap_or(true),
            tie_word_embeddings: self.tie_word_embeddings.unwrap_or(!neox),
            activation: Activation::from_hf(act)?,
            attention_bias: self.attention_bias.unwrap_or(neox),
            mlp_bias: neox || self.mlp_bias.unwrap_or(false),
            attention_norm,
            position_decay: self.position_decay.unwrap_or(false),
            score_centering,
        })
    }

    /// `(rotated dimensions per head, RoPE base)` from whichever spelling the config uses.
    fn rope(&self, head_dim: usize, neox: bool) -> Result<(usize, Option<f64>)> {
        let rope_params = self.rope_parameters.as_ref();
        let nested = |key: &str| {
            rope_params
                .and_then(|v| v.get(key))
                .and_then(|v| v.as_f64())
        };
        check_rope_type(rope_params, self.rope_scaling.as_ref())?;
        let pct = self
            .rotary_pct
            .or(self.partial_rotary_factor)
            .or(nested("partial_rotary_factor"));
        let pct = pct.unwrap_or(if neox { 0.25 } else { 1.0 });
        // Hugging Face truncates: int(head_dim * rotary_pct).
        let rotary_dim = (head_dim as f64 * pct) as usize;
        if !rotary_dim.is_multiple_of(2) || rotary_dim > head_dim {
            return Err(invalid(format!(
                "rotary dimension {rotary_dim} must be even, <= head_dim"
            )));
        }
        let theta = self
            .rope_theta
            .or(self.rotary_emb_base)
            .or(nested("rope_theta"));
        Ok((rotary_dim, theta))
    }
}

impl ModelConfig {
    /// The literal that [`ModelConfigLiteral::try_build`] turns back into this config.
    pub fn to_literal(&self) -> ModelConfigLiteral {
        let neox = self.arch == Arch::GptNeox;
        ModelConfigLiteral {
            model_type: if neox { "gpt_neox" } else { "llama" }.into(),
            vocab_size: self.vocab_size,
            hidden_size: self.hidden_size,
            num_hidden_layers: self.num_layers,
            num_attention_heads: self.num_heads,
            num_key_value_heads: Some(self.num_kv_heads),
            head_dim: Some(self.head_dim),
            intermediate_size: self.intermediate_size,
            max_position_embeddings: self.max_position_embeddings,
            rotary_pct: neox.then(|| self.rotary_dim as f64 / self.head_dim as f64),
            rope_theta: Some(self.rope_theta),
            layer_norm_eps: neox.then_some(self.norm_eps),
            rms_norm_eps: (!neox).then_some(self.norm_eps),
            use_parallel_residual: neox.then_some(self.parallel_residual),
            tie_word_embeddings: Some(self.tie_word_embeddings),
            hidden_act: Some(self.activation.hf_name().into()),
            attention_bias: Some(self.attention_bias),
            mlp_bias: (!neox).then_some(self.mlp_bias),
            attention_norm: Some(self.attention_norm.clone()),
            position_decay: self.position_decay.then_some(true),
            score_centering: self.score_centering.then_some(true),
            ..Default::default()
        }
    }
}

fn invalid(msg: String) -> Error {
    Error::InvalidConfig(msg)
}

/// Only plain RoPE is implemented; scaled variants (linear, dynamic, llama3, yarn) are refused
/// rather than silently computed wrong.
fn check_rope_type(
    params: Option<&serde_json::Value>,
    scaling: Option<&serde_json::Value>,
) -> Result<()> {
    for v in [params, scaling].into_iter().flatten() {
        let kind = v
            .get("rope_type")
            .or_else(|| v.get("type"))
            .and_then(|t| t.as_str());
        if let Some(kind) = kind.filter(|k| *k != "default") {
            return Err(invalid(format!("rope type {kind:?} is not supported")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neox_defaults_and_round_trip() {
        let cfg = ModelConfigLiteral::neox_reference().try_build().unwrap();
        assert_eq!((cfg.head_dim, cfg.rotary_dim), (64, 16));
        assert!(cfg.parallel_residual && !cfg.tie_word_embeddings && cfg.attention_bias);
        assert_eq!(cfg.to_literal().try_build().unwrap(), cfg);
    }

    #[test]
    fn llama_hf_json_parses() {
        let json = r#"{"model_type":"llama","vocab_size":256,"hidden_size":64,
            "num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,
            "intermediate_size":96,"max_position_embeddings":64,"rope_theta":500000.0,
            "rms_norm_eps":1e-5,"tie_word_embeddings":false,"torch_dtype":"float32",
            "attention_norm":{"kind":"power","p":4}}"#;
        let lit: ModelConfigLiteral = serde_json::from_str(json).unwrap();
        let cfg = lit.try_build().unwrap();
        assert_eq!(
            (cfg.num_kv_heads, cfg.rotary_dim, cfg.rope_theta),
            (2, 16, 500000.0)
        );
        assert_eq!(cfg.activation, Activation::Silu);
        assert!(matches!(cfg.attention_norm, AttentionNorm::Power(_)));
    }

    #[test]
    fn rejects_bad_shapes() {
        let mut lit = ModelConfigLiteral::neox_reference();
        lit.num_key_value_heads = Some(3);
        assert!(lit.try_build().is_err());
        lit.num_key_value_heads = None;
        lit.rope_scaling = Some(serde_json::json!({"rope_type": "llama3"}));
        assert!(lit.try_build().is_err());
    }
}
