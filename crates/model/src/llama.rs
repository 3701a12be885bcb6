//! Llama layout: RMSNorm, separate Q/K/V projections with grouped-query attention, full RoPE,
//! SwiGLU MLP, optionally tied `lm_head`. Tensor names are Hugging Face's `LlamaForCausalLM`.

use candle_core::Tensor;
use candle_nn::{Embedding, Init, VarBuilder};

use crate::attention_norm::CausalMask;
use crate::config::ModelConfig;
use crate::error::Result;
use crate::layers::{Ctx, INIT_STD, Linear, Norm, activate, attend, decay_rates, load_centering};
use crate::ranges::RangeRecorder;
use crate::rope::Rope;

/// One decoder block, `model.layers.{i}`.
#[derive(Debug, Clone)]
struct Block {
    input_layernorm: Norm,
    post_attention_layernorm: Norm,
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
    /// Score-centering shares `(H,)` (`score_centering`), `{attention}.score_centering`.
    score_centering: Option<Tensor>,
}

/// A Llama causal language model.
#[derive(Debug, Clone)]
pub struct Llama {
    cfg: ModelConfig,
    embed_tokens: Embedding,
    blocks: Vec<Block>,
    norm: Norm,
    lm_head: Linear,
    rope: Rope,
}

impl Block {
    fn load(vb: VarBuilder, cfg: &ModelConfig) -> Result<Self> {
        let (d, eps, hd) = (cfg.hidden_size, cfg.norm_eps, cfg.head_dim);
        let (q_dim, kv_dim) = (cfg.num_heads * hd, cfg.num_kv_heads * hd);
        let (att, mlp, ab, mb) = (
            vb.pp("self_attn"),
            vb.pp("mlp"),
            cfg.attention_bias,
            cfg.mlp_bias,
        );
        let ff = cfg.intermediate_size;
        Ok(Block {
            input_layernorm: Norm::load_rms_norm(vb.pp("input_layernorm"), d, eps)?,
            post_attention_layernorm: Norm::load_rms_norm(
                vb.pp("post_attention_layernorm"),
                d,
                eps,
            )?,
            q_proj: Linear::load(att.pp("q_proj"), d, q_dim, ab)?,
            k_proj: Linear::load(att.pp("k_proj"), d, kv_dim, ab)?,
            v_proj: Linear::load(att.pp("v_proj"), d, kv_dim, ab)?,
            o_proj: Linear::load(att.pp("o_proj"), q_dim, d, ab)?,
            gate_proj: Linear::load(mlp.pp("gate_proj"), d, ff, mb)?,
            up_proj: Linear::load(mlp.pp("up_proj"), d, ff, mb)?,
            down_proj: Linear::load(mlp.pp("down_proj"), ff, d, mb)?,
            score_centering: load_centering(&att, cfg)?,
        })
    }

    fn attention(&self, x: &Tensor, ctx: &Ctx, rec: Option<&mut RangeRecorder>) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let (h, kvh, hd) = (ctx.cfg.num_heads, ctx.cfg.num_kv_heads, ctx.cfg.head_dim);
        let heads = |y: Tensor, n: usize| -> Result<Tensor> {
            Ok(y.reshape((b, t, n, hd))?.transpose(1, 2)?.contiguous()?) // (B, n, T, hd)
        };
        let q = ctx.rope.apply(&heads(self.q_proj.forward(x)?, h)?)?;
        let k = ctx.rope.apply(&heads(self.k_proj.forward(x)?, kvh)?)?;
        let v = heads(self.v_proj.forward(x)?, kvh)?;
        let y = attend(&q, &k, &v, self.score_centering.as_ref(), ctx, rec)?; // (B, T, H*hd)
        self.o_proj.forward(&y)
    }

    fn mlp(&self, x: &Tensor, ctx: &Ctx, rec: Option<&mut RangeRecorder>) -> Result<Tensor> {
        let gate = activate(
            ctx.cfg.activation,
            &self.gate_proj.forward(x)?,
            ctx.layer,
            rec,
        )?; // (B, T, F)
        self.down_proj.forward(&(gate * self.up_proj.forward(x)?)?)
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
        let x = (x + self.attention(&ln1, ctx, rec.as_deref_mut())?)?; // (B, T, C)
        let ln2 = self
            .post_attention_layernorm
            .forward(&x, ctx.layer, rec.as_deref_mut())?;
        Ok((&x + self.mlp(&ln2, ctx, rec)?)?)
    }
}

impl Llama {
    /// Loads (or, from a fresh `VarMap`, initializes) the model under Hugging Face names.
    pub fn load(vb: VarBuilder, cfg: &ModelConfig) -> Result<Self> {
        let base = vb.pp("model");
        let init = Init::Randn {
            mean: 0.0,
            stdev: INIT_STD,
        };
        let emb = base.pp("embed_tokens").get_with_hints(
            (cfg.vocab_size, cfg.hidden_size),
            "weight",
            init,
        )?;
        let blocks = (0..cfg.num_layers)
            .map(|i| Block::load(base.pp("layers").pp(i), cfg))
            .collect::<Result<Vec<_>>>()?;
        let norm = Norm::load_rms_norm(base.pp("norm"), cfg.hidden_size, cfg.norm_eps)?;
        let lm_head = if cfg.tie_word_embeddings {
            Linear::from_weight(emb.clone())
        } else {
            Linear::load(vb.pp("lm_head"), cfg.hidden_size, cfg.vocab_size, false)?
        };
        let rope = Rope::new(
            cfg.rotary_dim,
            cfg.rope_theta,
            cfg.max_position_embeddings,
            vb.device(),
        )?;
        Ok(Llama {
            cfg: cfg.clone(),
            embed_tokens: Embedding::new(emb, cfg.hidden_size),
            blocks,
            norm,
            lm_head,
            rope,
        })
    }

    /// Final hidden states `(B, T, C)` for token ids `(B, T)`, after the final norm.
    pub fn hidden(&self, ids: &Tensor, mut rec: Option<&mut RangeRecorder>) -> Result<Tensor> {
        let t = ids.dim(1)?;
        let mask = CausalMask::new(t, ids.device())?;
        let decay = decay_rates(&self.cfg, ids.device())?;
        let mut x = candle_core::Module::forward(&self.embed_tokens, ids)?; // (B, T, C)
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
        self.norm.forward(&x, self.cfg.num_layers, rec)
    }

    /// The output head `(.., C) -> (.., V)`.
    pub fn head(&self) -> &Linear {
        &self.lm_head
    }
}
