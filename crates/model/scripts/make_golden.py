#!/usr/bin/env python3
"""Golden vectors for psf-model's forward pass, from Hugging Face transformers (an
independent implementation). Run by hand, not in CI:

    python3 -m venv /tmp/golden-venv
    /tmp/golden-venv/bin/pip install torch transformers safetensors
    /tmp/golden-venv/bin/python crates/model/scripts/make_golden.py

For each tiny random model it writes crates/model/tests/vectors/<name>/ with
config.json + model.safetensors (save_pretrained, Hugging Face tensor names) and
io.safetensors (input_ids int64 (B, T), logits float32 (B, T, V)). Seeds are fixed.
"""
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, LlamaConfig, LlamaForCausalLM

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "vectors")
BATCH, SEQ = 2, 16

COMMON = dict(vocab_size=128, hidden_size=32, num_hidden_layers=2, max_position_embeddings=64)

MODELS = {
    # Partial rotary (25 % of head_dim 16 = 4 dims) with parallel residual.
    "neox_parallel": (GPTNeoXConfig, GPTNeoXForCausalLM, dict(
        num_attention_heads=2, intermediate_size=64, rotary_pct=0.25, rotary_emb_base=10000,
        use_parallel_residual=True, layer_norm_eps=1e-5, hidden_act="gelu",
        tie_word_embeddings=False)),
    # Half rotary, sequential residual, tanh GELU.
    "neox_sequential": (GPTNeoXConfig, GPTNeoXForCausalLM, dict(
        num_attention_heads=4, intermediate_size=96, rotary_pct=0.5, rotary_emb_base=500,
        use_parallel_residual=False, layer_norm_eps=1e-5, hidden_act="gelu_new",
        tie_word_embeddings=False)),
    # Grouped-query attention: 4 query heads share 2 key/value heads.
    "llama_gqa": (LlamaConfig, LlamaForCausalLM, dict(
        num_attention_heads=4, num_key_value_heads=2, intermediate_size=80, rope_theta=10000.0,
        rms_norm_eps=1e-5, hidden_act="silu", tie_word_embeddings=False)),
    # Multi-query attention and a tied output head.
    "llama_tied_mqa": (LlamaConfig, LlamaForCausalLM, dict(
        num_attention_heads=4, num_key_value_heads=1, intermediate_size=64, rope_theta=1000.0,
        rms_norm_eps=1e-6, hidden_act="silu", tie_word_embeddings=True)),
}


def randomize(model, seed):
    """Larger-than-default random weights so every term of the forward pass matters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen) * 0.15
            if name.endswith("weight") and p.dim() == 1:  # norm gains around 1
                noise = noise + 1.0
            p.copy_(noise)


def main():
    torch.manual_seed(0)
    for i, (name, (cfg_cls, model_cls, extra)) in enumerate(MODELS.items()):
        cfg = cfg_cls(**COMMON, **extra)
        model = model_cls(cfg).eval()
        model.config._attn_implementation = "eager"
        randomize(model, seed=1000 + i)
        gen = torch.Generator().manual_seed(2000 + i)
        ids = torch.randint(0, cfg.vocab_size, (BATCH, SEQ), generator=gen)
        with torch.no_grad():
            logits = model(input_ids=ids).logits.float()
        out = os.path.join(OUT, name)
        os.makedirs(out, exist_ok=True)
        model.save_pretrained(out, safe_serialization=True)
        os.remove(os.path.join(out, "generation_config.json"))
        save_file({"input_ids": ids.contiguous(), "logits": logits.contiguous()},
                  os.path.join(out, "io.safetensors"))
        print(f"{name}: logits std {logits.std():.3f}, saved to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
