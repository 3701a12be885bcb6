//! [`PolyWeights`]: a psf-model checkpoint's weights in `f64`, read by Hugging Face names
//! (GPT-NeoX and Llama layouts). NeoX's fused `query_key_value` is split into per-head
//! q, k, v so both layouts look the same to the forward pass.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use psf_model::layers::alibi_slopes;
use psf_model::{Activation, Arch, AttentionNorm, EpsScaling, ModelConfig, ModelConfigLiteral};

use crate::error::{PolyError, Result};
use crate::matrix::Matrix;
use crate::spec::ActivationFn;

/// `y = x W^T + b`, `W` `(out, in)`.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearWeights {
    /// `(out, in)`.
    pub w: Matrix,
    /// `(out)`, if any.
    pub b: Option<Vec<f64>>,
}

impl LinearWeights {
    pub(crate) fn apply(&self, x: &Matrix) -> Matrix {
        x.linear(&self.w, self.b.as_deref())
    }
}

/// LayerNorm (`beta` present) or RMSNorm (`beta` absent).
#[derive(Debug, Clone, PartialEq)]
pub struct NormWeights {
    /// Gain.
    pub gamma: Vec<f64>,
    /// Bias (LayerNorm only).
    pub beta: Option<Vec<f64>>,
    /// The epsilon added to the variance (or mean square).
    pub eps: f64,
}

/// The MLP of a block.
#[derive(Debug, Clone, PartialEq)]
pub enum MlpWeights {
    /// NeoX: `down(act(up x))`.
    Plain {
        /// `dense_h_to_4h`.
        up: LinearWeights,
        /// `dense_4h_to_h`.
        down: LinearWeights,
    },
    /// Llama: `down(act(gate x) * up x)`.
    Gated {
        /// `gate_proj`.
        gate: LinearWeights,
        /// `up_proj`.
        up: LinearWeights,
        /// `down_proj`.
        down: LinearWeights,
    },
}

/// One decoder block.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerWeights {
    /// `input_layernorm`.
    pub norm1: NormWeights,
    /// `post_attention_layernorm`.
    pub norm2: NormWeights,
    /// Queries `(heads * head_dim, d)`, head-major rows.
    pub q: LinearWeights,
    /// Keys `(kv_heads * head_dim, d)`.
    pub k: LinearWeights,
    /// Values `(kv_heads * head_dim, d)`.
    pub v: LinearWeights,
    /// Output projection `(d, heads * head_dim)`.
    pub o: LinearWeights,
    /// Positional decay rates per head (`position_decay`): key j's weight for query i is
    /// multiplied by `exp(-rate * (i - j))`. Empty without a decay.
    pub decay: Vec<f64>,
    /// The MLP.
    pub mlp: MlpWeights,
}

/// A whole model's weights in `f64`, with its configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct PolyWeights {
    /// The resolved configuration (must use Power-Softmax with per-key eps).
    pub config: ModelConfig,
    /// Embedding table `(vocab, d)` (the client's lookup).
    pub embed: Matrix,
    /// Decoder blocks.
    pub layers: Vec<LayerWeights>,
    /// Final norm.
    pub final_norm: NormWeights,
    /// LM head `(vocab, d)`.
    pub head: Matrix,
}

struct Named(HashMap<String, Tensor>);

impl Named {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f64>> {
        let t = self.0.get(name).ok_or_else(|| PolyError::Weight {
            name: name.into(),
            msg: "missing".into(),
        })?;
        if t.dims() != shape {
            return Err(PolyError::Weight {
                name: name.into(),
                msg: format!("shape {:?}, expected {shape:?}", t.dims()),
            });
        }
        Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?)
    }

    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Matrix> {
        Matrix::new(rows, cols, self.get(name, &[rows, cols])?)
    }

    fn linear(&self, prefix: &str, out: usize, inp: usize, bias: bool) -> Result<LinearWeights> {
        Ok(LinearWeights {
            w: self.matrix(&format!("{prefix}.weight"), out, inp)?,
            b: if bias {
                Some(self.get(&format!("{prefix}.bias"), &[out])?)
            } else {
                None
            },
        })
    }

    fn norm(&self, prefix: &str, d: usize, layer_norm: bool, eps: f64) -> Result<NormWeights> {
        Ok(NormWeights {
            gamma: self.get(&format!("{prefix}.weight"), &[d])?,
            beta: if layer_norm {
                Some(self.get(&format!("{prefix}.bias"), &[d])?)
            } else {
                None
            },
            eps,
        })
    }
}

impl PolyWeights {
    /// Reads `config.json` + `model.safetensors` of a Hugging Face / psf-model directory.
    ///
    /// # Errors
    /// Unreadable files, a config the polynomial model does not support, missing weights.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let cfg = ModelConfigLiteral::from_file(dir.join("config.json"))?.try_build()?;
        Self::from_safetensors(dir.join("model.safetensors"), cfg)
    }

    /// Reads a safetensors file for `config`.
    ///
    /// # Errors
    /// As [`Self::from_tensors`].
    pub fn from_safetensors(path: impl AsRef<Path>, config: ModelConfig) -> Result<Self> {
        let tensors = candle_core::safetensors::load(path.as_ref(), &Device::Cpu)?;
        Self::from_tensors(tensors, config)
    }

    /// Builds from tensors by Hugging Face name.
    ///
    /// # Errors
    /// Unsupported configuration (softmax attention, fixed eps, ReLU), missing or misshapen
    /// weights.
    pub fn from_tensors(tensors: HashMap<String, Tensor>, config: ModelConfig) -> Result<Self> {
        check_config(&config)?;
        let n = Named(tensors);
        let (v, d) = (config.vocab_size, config.hidden_size);
        let (base, head_name, final_name) = match config.arch {
            Arch::GptNeox => ("gpt_neox", "embed_out", "gpt_neox.final_layer_norm"),
            Arch::Llama => ("model", "lm_head", "model.norm"),
        };
        let embed_name = match config.arch {
            Arch::GptNeox => "gpt_neox.embed_in.weight",
            Arch::Llama => "model.embed_tokens.weight",
        };
        let embed = n.matrix(embed_name, v, d)?;
        let head = if config.tie_word_embeddings {
            embed.clone()
        } else {
            n.matrix(&format!("{head_name}.weight"), v, d)?
        };
        let layers = (0..config.num_layers)
            .map(|i| match config.arch {
                Arch::GptNeox => neox_layer(&n, &format!("{base}.layers.{i}"), &config),
                Arch::Llama => llama_layer(&n, &format!("{base}.layers.{i}"), &config),
            })
            .collect::<Result<Vec<_>>>()?;
        let ln = config.arch == Arch::GptNeox;
        let final_norm = n.norm(final_name, d, ln, config.norm_eps)?;
        Ok(Self {
            config,
            embed,
            layers,
            final_norm,
            head,
        })
    }

    /// The activation this model's MLP uses.
    pub fn activation(&self) -> ActivationFn {
        activation_fn(self.config.activation).unwrap_or(ActivationFn::Gelu)
    }

    /// Power-Softmax `(p, eps)` of the model.
    pub fn power(&self) -> (u32, f64) {
        match &self.config.attention_norm {
            AttentionNorm::Power(ps) => (ps.p, ps.eps),
            _ => (0, 0.0),
        }
    }

    /// Embedding rows of `ids` `(T, d)` (what the client looks up).
    ///
    /// # Errors
    /// An id past the vocabulary.
    pub fn embed(&self, ids: &[u32]) -> Result<Matrix> {
        let d = self.config.hidden_size;
        let mut data = Vec::with_capacity(ids.len() * d);
        for &id in ids {
            if id as usize >= self.embed.rows {
                return Err(PolyError::Shape {
                    expected: format!("token id < {}", self.embed.rows),
                    got: id.to_string(),
                });
            }
            data.extend_from_slice(self.embed.row(id as usize));
        }
        Matrix::new(ids.len(), d, data)
    }
}

fn activation_fn(a: Activation) -> Option<ActivationFn> {
    match a {
        Activation::Gelu => Some(ActivationFn::Gelu),
        Activation::GeluTanh => Some(ActivationFn::GeluTanh),
        Activation::Silu => Some(ActivationFn::Silu),
        Activation::Relu => None,
    }
}

/// The positional decay's rates (ALiBi's slopes) when the model has one, else none.
fn decay(cfg: &ModelConfig) -> Vec<f64> {
    if cfg.position_decay {
        alibi_slopes(cfg.num_heads)
    } else {
        Vec::new()
    }
}

fn check_config(cfg: &ModelConfig) -> Result<()> {
    match &cfg.attention_norm {
        AttentionNorm::Power(ps) if ps.eps_scaling == EpsScaling::PerKey => {}
        other => {
            return Err(PolyError::Unsupported(format!(
                "attention {other:?}: the polynomial model needs Power-Softmax with per-key eps"
            )));
        }
    }
    if activation_fn(cfg.activation).is_none() {
        return Err(PolyError::Unsupported("ReLU MLP".into()));
    }
    if cfg.score_centering {
        return Err(PolyError::Unsupported(
            "score_centering (an experiment of the training study, not in the HE circuit)".into(),
        ));
    }

    Ok(())
}

fn neox_layer(n: &Named, prefix: &str, cfg: &ModelConfig) -> Result<LayerWeights> {
    let (d, h, hd, ff) = (
        cfg.hidden_size,
        cfg.num_heads,
        cfg.head_dim,
        cfg.intermediate_size,
    );
    let qkv = n.linear(
        &format!("{prefix}.attention.query_key_value"),
        3 * h * hd,
        d,
        cfg.attention_bias,
    )?;
    // Rows are (head, [q | k | v], hd): split into head-major q, k, v.
    let split = |part: usize| -> Result<LinearWeights> {
        let mut w = Vec::with_capacity(h * hd * d);
        let mut b = Vec::with_capacity(h * hd);
        for head in 0..h {
            for r in 0..hd {
                let row = head * 3 * hd + part * hd + r;
                w.extend_from_slice(qkv.w.row(row));
                if let Some(bias) = &qkv.b {
                    b.push(bias[row]);
                }
            }
        }
        Ok(LinearWeights {
            w: Matrix::new(h * hd, d, w)?,
            b: qkv.b.as_ref().map(|_| b),
        })
    };
    let eps = cfg.norm_eps;
    Ok(LayerWeights {
        norm1: n.norm(&format!("{prefix}.input_layernorm"), d, true, eps)?,
        norm2: n.norm(&format!("{prefix}.post_attention_layernorm"), d, true, eps)?,
        q: split(0)?,
        k: split(1)?,
        v: split(2)?,
        o: n.linear(
            &format!("{prefix}.attention.dense"),
            d,
            h * hd,
            cfg.attention_bias,
        )?,
        decay: decay(cfg),
        mlp: MlpWeights::Plain {
            up: n.linear(&format!("{prefix}.mlp.dense_h_to_4h"), ff, d, true)?,
            down: n.linear(&format!("{prefix}.mlp.dense_4h_to_h"), d, ff, true)?,
        },
    })
}

fn llama_layer(n: &Named, prefix: &str, cfg: &ModelConfig) -> Result<LayerWeights> {
    let (d, hd, ff) = (cfg.hidden_size, cfg.head_dim, cfg.intermediate_size);
    let (qd, kvd) = (cfg.num_heads * hd, cfg.num_kv_heads * hd);
    let (ab, mb, eps) = (cfg.attention_bias, cfg.mlp_bias, cfg.norm_eps);
    let att = |name: &str, out: usize, inp: usize| {
        n.linear(&format!("{prefix}.self_attn.{name}"), out, inp, ab)
    };
    let mlp = |name: &str, out: usize, inp: usize| {
        n.linear(&format!("{prefix}.mlp.{name}"), out, inp, mb)
    };
    Ok(LayerWeights {
        norm1: n.norm(&format!("{prefix}.input_layernorm"), d, false, eps)?,
        norm2: n.norm(&format!("{prefix}.post_attention_layernorm"), d, false, eps)?,
        q: att("q_proj", qd, d)?,
        k: att("k_proj", kvd, d)?,
        v: att("v_proj", kvd, d)?,
        o: att("o_proj", d, qd)?,
        decay: decay(cfg),
        mlp: MlpWeights::Gated {
            gate: mlp("gate_proj", ff, d)?,
            up: mlp("up_proj", ff, d)?,
            down: mlp("down_proj", d, ff)?,
        },
    })
}
