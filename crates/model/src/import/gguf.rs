//! GGUF checkpoints (llama.cpp's format) into our Hugging Face-layout Llama.
//!
//! candle's [`gguf_file`](candle_core::quantized::gguf_file) parses the file and dequantizes
//! each tensor (F32, F16, Q4_0, Q4_1, Q8_0 and the other types candle reads) to f32. This
//! module maps the `llama.*` metadata to
//! a [`ModelConfig`], renames the tensors to Hugging Face names, and undoes the row
//! permutation llama.cpp's converter applies to the query and key projections (it stores each
//! head's rotary pairs interleaved, `(2i, 2i+1)`, where Hugging Face's rotate-half RoPE pairs
//! `(i, i + d/2)`).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, Tokenizer};

use crate::config::{ModelConfig, ModelConfigLiteral};
use crate::error::{Error, Result};
use crate::model::Model;

/// An opened GGUF file: parsed header (metadata and tensor directory), tensors read on demand.
pub struct GgufFile {
    path: PathBuf,
    content: Content,
}

impl GgufFile {
    /// Parses the header of the GGUF file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut reader = open_reader(&path)?;
        let content = Content::read(&mut reader).map_err(|e| gguf_err(&path, e))?;
        Ok(GgufFile { path, content })
    }

    /// The parsed header (metadata and tensor directory), as candle reads it.
    pub fn content(&self) -> &Content {
        &self.content
    }

    /// How many tensors of each storage type (`"Q4_1"`, `"F32"`, ...) the file holds.
    pub fn dtype_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for info in self.content.tensor_infos.values() {
            *counts.entry(format!("{:?}", info.ggml_dtype)).or_insert(0) += 1;
        }
        counts
    }

    /// The Hugging Face-style configuration the `llama.*` metadata describes.
    pub fn config_literal(&self) -> Result<ModelConfigLiteral> {
        let arch = self.md_str("general.architecture")?;
        if arch != "llama" {
            return Err(self.err(format!(
                "architecture {arch:?} is not supported (llama only)"
            )));
        }
        let key = |k: &str| format!("llama.{k}");
        let hidden = self.md_usize(&key("embedding_length"))?;
        let heads = self.md_usize(&key("attention.head_count"))?;
        let kv_heads = self.md_usize_or(&key("attention.head_count_kv"), heads)?;
        let head_dim = self.md_usize_or(&key("attention.key_length"), hidden / heads.max(1))?;
        let rope_dim = self.md_usize_or(&key("rope.dimension_count"), head_dim)?;
        if rope_dim != head_dim {
            return Err(self.err(format!("rope over {rope_dim} of {head_dim} head dims")));
        }
        if let Ok(kind) = self.md_str(&key("rope.scaling.type"))
            && kind != "none"
        {
            return Err(self.err(format!("rope scaling {kind:?} is not supported")));
        }
        let embd = self.tensor_dims("token_embd.weight")?;
        let names = &self.content.tensor_infos;
        Ok(ModelConfigLiteral {
            model_type: "llama".into(),
            vocab_size: embd[0],
            hidden_size: hidden,
            num_hidden_layers: self.md_usize(&key("block_count"))?,
            num_attention_heads: heads,
            num_key_value_heads: Some(kv_heads),
            head_dim: Some(head_dim),
            intermediate_size: self.md_usize(&key("feed_forward_length"))?,
            max_position_embeddings: self.md_usize(&key("context_length"))?,
            rope_theta: Some(self.md_f64_or(&key("rope.freq_base"), 10000.0)?),
            rms_norm_eps: Some(self.md_f64(&key("attention.layer_norm_rms_epsilon"))?),
            tie_word_embeddings: Some(!names.contains_key("output.weight")),
            hidden_act: Some("silu".into()),
            attention_bias: Some(names.contains_key("blk.0.attn_q.bias")),
            mlp_bias: Some(names.contains_key("blk.0.ffn_up.bias")),
            ..Default::default()
        })
    }

    /// Every tensor, dequantized to f32 and renamed to Hugging Face's `LlamaForCausalLM`
    /// names, with the query/key rows put back in Hugging Face order.
    pub fn hf_tensors(
        &self,
        cfg: &ModelConfig,
        device: &Device,
    ) -> Result<HashMap<String, Tensor>> {
        let mut reader = open_reader(&self.path)?;
        let mut out = HashMap::with_capacity(self.content.tensor_infos.len());
        for name in self.content.tensor_infos.keys() {
            let hf =
                hf_name(name).ok_or_else(|| self.err(format!("unexpected tensor {name:?}")))?;
            let q = self
                .content
                .tensor(&mut reader, name, device)
                .map_err(|e| gguf_err(&self.path, e))?;
            let mut t = q.dequantize(device)?.to_dtype(DType::F32)?;
            if hf.contains(".q_proj.") {
                t = unpermute_rope_rows(&t, cfg.num_heads)?;
            } else if hf.contains(".k_proj.") {
                t = unpermute_rope_rows(&t, cfg.num_kv_heads)?;
            }
            out.insert(hf, t);
        }
        Ok(out)
    }

    /// The byte-level BPE tokenizer stored in the metadata (`tokenizer.ggml.*`, model
    /// `"gpt2"`); pre-tokenizer `"smollm"` splits digits individually, as SmolLM2's
    /// `tokenizer.json` does.
    pub fn tokenizer(&self) -> Result<Tokenizer> {
        let model = self.md_str("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(self.err(format!("tokenizer model {model:?} is not supported")));
        }
        let tokens = self.md_strings("tokenizer.ggml.tokens")?;
        let merges = self
            .md_strings("tokenizer.ggml.merges")?
            .into_iter()
            .map(|m| match m.split_once(' ') {
                Some((a, b)) => Ok((a.to_string(), b.to_string())),
                None => Err(self.err(format!("merge {m:?} has no space"))),
            })
            .collect::<Result<Vec<_>>>()?;
        let vocab: Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let byte_level = ByteLevel::new(false, true, true);
        let pre: PreTokenizerWrapper = match self.md_str("tokenizer.ggml.pre").unwrap_or("gpt2") {
            "smollm" => Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into(),
            "gpt2" | "default" => byte_level.into(),
            other => return Err(self.err(format!("pre-tokenizer {other:?} is not supported"))),
        };
        let mut tk = Tokenizer::new(bpe);
        tk.with_pre_tokenizer(Some(pre));
        tk.with_decoder(Some(ByteLevelDecoder::default()));
        // Token type 3 is a control token in llama.cpp (`<|endoftext|>`, `<|im_start|>`, ...).
        if let Some(Value::Array(types)) = self.content.metadata.get("tokenizer.ggml.token_type") {
            let specials: Vec<AddedToken> = types
                .iter()
                .zip(&tokens)
                .filter(|(ty, _)| ty.to_i32().is_ok_and(|t| t == 3))
                .map(|(_, tok)| AddedToken::from(tok.clone(), true))
                .collect();
            tk.add_special_tokens(&specials);
        }
        Ok(tk)
    }

    fn tensor_dims(&self, name: &str) -> Result<Vec<usize>> {
        match self.content.tensor_infos.get(name) {
            Some(info) => Ok(info.shape.dims().to_vec()),
            None => Err(self.err(format!("missing tensor {name:?}"))),
        }
    }

    fn md(&self, key: &str) -> Result<&Value> {
        self.content
            .metadata
            .get(key)
            .ok_or_else(|| self.err(format!("missing metadata {key:?}")))
    }

    fn md_str(&self, key: &str) -> Result<&str> {
        match self.md(key)? {
            Value::String(s) => Ok(s),
            v => Err(self.err(format!("{key}: expected a string, found {v:?}"))),
        }
    }

    fn md_strings(&self, key: &str) -> Result<Vec<String>> {
        let Value::Array(items) = self.md(key)? else {
            return Err(self.err(format!("{key}: expected an array")));
        };
        items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(self.err(format!("{key}: expected strings"))),
            })
            .collect()
    }

    fn md_usize(&self, key: &str) -> Result<usize> {
        let v = self.md(key)?;
        let n: Option<i128> = match *v {
            Value::U8(x) => Some(x.into()),
            Value::I8(x) => Some(x.into()),
            Value::U16(x) => Some(x.into()),
            Value::I16(x) => Some(x.into()),
            Value::U32(x) => Some(x.into()),
            Value::I32(x) => Some(x.into()),
            Value::U64(x) => Some(x.into()),
            Value::I64(x) => Some(x.into()),
            _ => None,
        };
        n.and_then(|n| usize::try_from(n).ok()).ok_or_else(|| {
            self.err(format!(
                "{key}: expected a non-negative integer, found {v:?}"
            ))
        })
    }

    fn md_usize_or(&self, key: &str, default: usize) -> Result<usize> {
        match self.content.metadata.contains_key(key) {
            true => self.md_usize(key),
            false => Ok(default),
        }
    }

    fn md_f64(&self, key: &str) -> Result<f64> {
        match *self.md(key)? {
            Value::F32(x) => Ok(x.into()),
            Value::F64(x) => Ok(x),
            ref v => Err(self.err(format!("{key}: expected a float, found {v:?}"))),
        }
    }

    fn md_f64_or(&self, key: &str, default: f64) -> Result<f64> {
        match self.content.metadata.contains_key(key) {
            true => self.md_f64(key),
            false => Ok(default),
        }
    }

    fn err(&self, msg: String) -> Error {
        Error::Gguf {
            path: self.path.clone(),
            msg,
        }
    }
}

impl Model {
    /// Loads a llama-architecture GGUF file, every tensor dequantized to f32. The attention
    /// normalization is softmax, as the checkpoint was trained.
    pub fn from_gguf(path: impl AsRef<Path>, device: &Device) -> Result<(Self, ModelConfig)> {
        let file = GgufFile::open(path)?;
        let cfg = file.config_literal()?.try_build()?;
        let tensors = file.hf_tensors(&cfg, device)?;
        let model = Model::load(VarBuilder::from_tensors(tensors, DType::F32, device), &cfg)?;
        Ok((model, cfg))
    }
}

/// The Hugging Face name of a GGUF llama tensor, `None` for tensors we do not map.
pub fn hf_name(gguf: &str) -> Option<String> {
    match gguf {
        "token_embd.weight" => return Some("model.embed_tokens.weight".into()),
        "output_norm.weight" => return Some("model.norm.weight".into()),
        "output.weight" => return Some("lm_head.weight".into()),
        _ => {}
    }
    let (layer, rest) = gguf.strip_prefix("blk.")?.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (base, suffix) = rest.rsplit_once('.')?;
    if suffix != "weight" && suffix != "bias" {
        return None;
    }
    let hf = match base {
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{suffix}"))
}

/// Undoes llama.cpp's `permute`: GGUF stores the rows of a query/key projection (weight or
/// bias) as `hf.reshape(heads, 2, hd/2, ..).swapaxes(1, 2)`; this returns `hf`.
pub fn unpermute_rope_rows(w: &Tensor, heads: usize) -> Result<Tensor> {
    let dims = w.dims().to_vec();
    if dims.is_empty() || heads == 0 || !dims[0].is_multiple_of(2 * heads) {
        return Err(candle_core::Error::Msg(format!(
            "rope rows: shape {dims:?} does not split into {heads} heads of even width"
        ))
        .into());
    }
    let rest: usize = dims[1..].iter().product();
    let head_dim = dims[0] / heads;
    let w = w
        .reshape((heads, head_dim / 2, 2, rest))? // (H, hd/2, 2, R): GGUF order
        .transpose(1, 2)? // (H, 2, hd/2, R): Hugging Face order
        .contiguous()?;
    Ok(w.reshape(dims)?)
}

fn open_reader(path: &Path) -> Result<BufReader<File>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    Ok(BufReader::new(file))
}

fn gguf_err(path: &Path, e: candle_core::Error) -> Error {
    Error::Gguf {
        path: path.to_path_buf(),
        msg: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_hugging_face() {
        assert_eq!(
            hf_name("blk.12.attn_output.weight").as_deref(),
            Some("model.layers.12.self_attn.o_proj.weight")
        );
        assert_eq!(
            hf_name("blk.0.attn_q.bias").as_deref(),
            Some("model.layers.0.self_attn.q_proj.bias")
        );
        assert_eq!(
            hf_name("token_embd.weight").as_deref(),
            Some("model.embed_tokens.weight")
        );
        assert_eq!(hf_name("rope_freqs.weight"), None);
        assert_eq!(hf_name("blk.x.attn_q.weight"), None);
    }

    #[test]
    fn unpermute_inverts_llama_cpp_permute() {
        // One head of width 4, one input column: HF rows [a0, a1, b0, b1] (rotary pairs
        // (a_i, b_i)) are stored by llama.cpp as [a0, b0, a1, b1].
        let dev = Device::Cpu;
        let gguf = Tensor::new(&[[0f32], [2.], [1.], [3.]], &dev).unwrap();
        let hf = unpermute_rope_rows(&gguf, 1).unwrap();
        assert_eq!(
            hf.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            [0., 1., 2., 3.]
        );
        let bias = Tensor::new(&[0f32, 2., 1., 3., 4., 6., 5., 7.], &dev).unwrap();
        let hf = unpermute_rope_rows(&bias, 2).unwrap();
        assert_eq!(
            hf.to_vec1::<f32>().unwrap(),
            [0., 1., 2., 3., 4., 5., 6., 7.]
        );
        assert!(unpermute_rope_rows(&bias, 3).is_err());
    }
}
