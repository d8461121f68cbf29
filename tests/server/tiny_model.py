"""A tiny random-weight Llama written as a Hugging Face folder, for the real-server tests.

Uses the shared tiny-model fixture when `tests.fixtures.tiny_models` provides one; otherwise
writes config.json, model.safetensors (HF weight names) and a BPE tokenizer trained on the spot.
"""
from __future__ import annotations

import json
from pathlib import Path

HIDDEN, LAYERS, HEADS, KV_HEADS, INTERMEDIATE, VOCAB = 64, 2, 4, 2, 128, 400
CONTEXT = 512


def write_tiny_llama(dir: Path, seed: int = 0) -> Path:
    import torch
    from safetensors.torch import save_file

    from tests.fixtures.tokenizers import write_bpe_tokenizer

    dir.mkdir(parents=True, exist_ok=True)
    write_bpe_tokenizer(dir, vocab_size=VOCAB, style="llama3")
    tokenizer = json.loads((dir / "tokenizer.json").read_text())
    specials = {t["content"]: t["id"] for t in tokenizer["added_tokens"]}
    head_dim = HIDDEN // HEADS
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS, "head_dim": head_dim, "vocab_size": VOCAB,
        "max_position_embeddings": CONTEXT, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "tie_word_embeddings": False, "hidden_act": "silu", "torch_dtype": "float32",
        "bos_token_id": specials["<|begin_of_text|>"], "eos_token_id": specials["<|eot_id|>"],
    }
    (dir / "config.json").write_text(json.dumps(config, indent=1))
    g = torch.Generator().manual_seed(seed)

    def w(*shape: int, scale: float = 0.5) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * scale / shape[-1] ** 0.5

    weights = {"model.embed_tokens.weight": w(VOCAB, HIDDEN, scale=1.0 * HIDDEN ** 0.5),
               "model.norm.weight": torch.ones(HIDDEN), "lm_head.weight": w(VOCAB, HIDDEN, scale=4.0)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        weights.update({
            p + "input_layernorm.weight": torch.ones(HIDDEN),
            p + "post_attention_layernorm.weight": torch.ones(HIDDEN),
            p + "self_attn.q_proj.weight": w(HEADS * head_dim, HIDDEN),
            p + "self_attn.k_proj.weight": w(KV_HEADS * head_dim, HIDDEN),
            p + "self_attn.v_proj.weight": w(KV_HEADS * head_dim, HIDDEN),
            p + "self_attn.o_proj.weight": w(HIDDEN, HEADS * head_dim),
            p + "mlp.gate_proj.weight": w(INTERMEDIATE, HIDDEN),
            p + "mlp.up_proj.weight": w(INTERMEDIATE, HIDDEN),
            p + "mlp.down_proj.weight": w(HIDDEN, INTERMEDIATE),
        })
    save_file({k: v.contiguous() for k, v in weights.items()}, str(dir / "model.safetensors"))
    return dir
