//! GPT-NeoX / Pythia layout: LayerNorm with bias, fused per-head-interleaved QKV, partial
//! rotary, parallel (or sequential) residual, GELU MLP, untied head `embed_out`.
//! Tensor names are Hugging Face's `GPTNeoXForCausalLM`.

use candle_core::Tensor;
use candle_nn::{Embedding, Init, VarBuilder};

use crate::attention_norm::CausalMask;
use crate::config::ModelConfig;
use crate::error::Result;
use crate::layers::{Ctx, INIT_STD, Linear, Norm, activate, attend, decay_rates, load_centering};
use crate::ranges::RangeRecorder;
use crate::rope::Rope;

/// One decoder block, `gpt_neox.layers.{i}`.
#[derive(Debug, Clone)]
struct Block {
    input_layernorm: Norm,
    post_attention_layernorm: Norm,
    query_key_value: Linear,
    dense: Linear,
    dense_h_to_4h: Linear,
    dense_4h_to_h: Linear,
    /// Score-centering shares `(H,)` (`score_centering`), `{attention}.score_centering`.
    score_centering: Option<Tensor>,
}

/// A GPT-NeoX causal language model.
#[derive(Debug, Clone)]
pub struct GptNeox {
    cfg: ModelConfig,
    embed_in: Embedding,
    blocks: Vec<Block>,
    final_layer_norm: Norm,
    embed_out: Linear,
    rope: Rope,
}

impl Block {
    fn load(vb: VarBuilder, cfg: &ModelConfig) -> Result<Self> {
        let (d, eps) = (cfg.hidden_size, cfg.norm_eps);
        let att = vb.pp("attention");
        let mlp = vb.pp("mlp");
        Ok(Block {
            input_layernorm: Norm::load_layer_norm(vb.pp("input_layernorm"), d, eps)?,
            post_attention_layernorm: Norm::load_layer_norm(
                vb.pp("post_attention_layernorm"),
                d,
                eps,
            )?,
            query_key_value: Linear::load(att.pp("query_key_value"), d, 3 * d, cfg.attention_bias)?,
            dense: Linear::load(att.pp("dense"), d, d, cfg.attention_bias)?,
            dense_h_to_4h: Linear::load(mlp.pp("dense_h_to_4h"), d, cfg.intermediate_size, true)?,
            dense_4h_to_h: Linear::load(mlp.pp("dense_4h_to_h"), cfg.intermediate_size, d, true)?,
            score_centering: load_centering(&att, cfg)?,
        })
    }

    fn attention(&self, x: &Tensor, ctx: &Ctx, rec: Option<&mut RangeRecorder>) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let (h, hd) = (ctx.cfg.num_heads, ctx.cfg.head_dim);
        // Hugging Face views QKV as (B, T, H, 3 * hd): q, k, v interleaved per head.
        let qkv = self
            .query_key_value
            .forward(x)?
            .reshape((b, t, h, 3 * hd))?
            .transpose(1, 2)?; // (B, H, T, 3hd)
        let q = ctx.rope.apply(&qkv.narrow(3, 0, hd)?.contiguous()?)?; // (B, H, T, hd)
        let k = ctx.rope.apply(&qkv.narrow(3, hd, hd)?.contiguous()?)?;
        let v = qkv.narrow(3, 2 * hd, hd)?.contiguous()?;
        let y = attend(&q, &k, &v, self.score_centering.as_ref(), ctx, rec)?; // (B, T, C)
        self.dense.forward(&y)
    }

    fn mlp(&self, x: &Tensor, ctx: &Ctx, rec: Option<&mut RangeRecorder>) -> Result<Tensor> {
        let hidden = self.dense_h_to_4h.forward(x)?; // (B, T, 4C)
        self.dense_4h_to_h
            .forward(&activate(ctx.cfg.activation, &hidden, ctx.layer, rec)?)
    }

    fn forward(
        &self,
        x: &Tensor,
        ctx: &Ctx,
        mut rec: Option<&mut RangeRecorder>,
    ) -> Result<Tensor> {
        let ln1 = self
            .input_layernorm
            .forward(x, ctx.layer, rec.as_deref_mut())?;
        let attn = self.attention(&ln1, ctx, rec.as_deref_mut())?; // (B, T, C)
        if ctx.cfg.parallel_residual {
            let ln2 = self
                .post_attention_layernorm
                .forward(x, ctx.layer, rec.as_deref_mut())?;
            let mlp = self.mlp(&ln2, ctx, rec)?;
            Ok(((x + attn)? + mlp)?)
        } else {
            let x = (x + attn)?;
            let ln2 = self
                .post_attention_layernorm
                .forward(&x, ctx.layer, rec.as_deref_mut())?;
            Ok((&x + self.mlp(&ln2, ctx, rec)?)?)
        }
    }
}

impl GptNeox {
    /// Loads (or, from a fresh `VarMap`, initializes) the model under Hugging Face names.
    pub fn load(vb: VarBuilder, cfg: &ModelConfig) -> Result<Self> {
        let base = vb.pp("gpt_neox");
        let init = Init::Randn {
            mean: 0.0,
            stdev: INIT_STD,
        };
        let emb = base.pp("embed_in").get_with_hints(
            (cfg.vocab_size, cfg.hidden_size),
            "weight",
            init,
        )?;
        let blocks = (0..cfg.num_layers)
            .map(|i| Block::load(base.pp("layers").pp(i), cfg))
            .collect::<Result<Vec<_>>>()?;
        let final_layer_norm =
            Norm::load_layer_norm(base.pp("final_layer_norm"), cfg.hidden_size, cfg.norm_eps)?;
        let embed_out = if cfg.tie_word_embeddings {
            Linear::from_weight(emb.clone())
        } else {
            Linear::load(vb.pp("embed_out"), cfg.hidden_size, cfg.vocab_size, false)?
        };
        let rope = Rope::new(
            cfg.rotary_dim,
            cfg.rope_theta,
            cfg.max_position_embeddings,
            vb.device(),
        )?;
        Ok(GptNeox {
            cfg: cfg.clone(),
            embed_in: Embedding::new(emb, cfg.hidden_size),
            blocks,
            final_layer_norm,
            embed_out,
            rope,
        })
    }

    /// Final hidden states `(B, T, C)` for token ids `(B, T)`, after the final norm.
    pub fn hidden(&self, ids: &Tensor, mut rec: Option<&mut RangeRecorder>) -> Result<Tensor> {
        let t = ids.dim(1)?;
        let mask = CausalMask::new(t, ids.device())?;
        let decay = decay_rates(&self.cfg, ids.device())?;
        let mut x = candle_core::Module::forward(&self.embed_in, ids)?; // (B, T, C)
        for (layer, block) in self.blocks.iter().enumerate() {
            let ctx = Ctx {
                cfg: &self.cfg,
                rope: &self.rope,
                mask: &mask,
                decay: decay.as_ref(),
                layer,
            };
            x = block.forward(&x, &ctx, rec.as_deref_mut())?;
        }
        self.final_layer_norm.forward(&x, self.cfg.num_layers, rec)
    }

    /// The output head `(.., C) -> (.., V)`.
    pub fn head(&self) -> &Linear {
        &self.embed_out
    }
}
