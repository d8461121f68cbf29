"""The model configuration every architecture is built from, whatever file it came from.

Field names and meanings follow Hugging Face `config.json` so a folder's config maps one to one;
GGUF metadata (`{arch}.embedding_length`, ...) is translated into the same fields.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelConfig:
    architecture: str  # HF class name: "LlamaForCausalLM", "Qwen2ForCausalLM", ...
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    max_position_embeddings: int = 4096
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    # HF rope_scaling dict as found in config.json ({"rope_type": "llama3", "factor": 8.0, ...}).
    rope_scaling: dict[str, Any] | None = None
    tie_word_embeddings: bool = False
    attention_bias: bool = False  # q/k/v projections carry a bias (Qwen2)
    qk_norm: bool = False  # RMSNorm on q and k per head before rotary (Qwen3)
    sliding_window: int | None = None
    # Leading dims of each head that rotate (partial rotary: Phi-4-mini's 96 of 128); None: all.
    rotary_dim: int | None = None
    hidden_act: str = "silu"
    bos_token_id: int | None = None
    eos_token_ids: tuple[int, ...] = ()
    torch_dtype: str = "float32"  # dtype the weights are stored in
    model_type: str = "llama"  # HF model_type: "llama", "mistral", "qwen2", "qwen3"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def q_size(self) -> int:
        return self.num_attention_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        return self.num_key_value_heads * self.head_dim
