"""BERT-family encoders for embeddings and reranking: BERT, XLM-RoBERTa and nomic-bert.

Plain torch, float32, one forward over a padded batch with a key-padding mask. Weights are held
under llama.cpp's GGUF tensor names (`token_embd`, `blk.{i}.attn_q`, ...); `hf_name_to_gguf`
maps a Hugging Face checkpoint's names onto them, so both formats load through `load_weights`.

Variants (`EncoderConfig.family`):
- "bert": learned absolute positions, token types, post-LayerNorm blocks, GELU (erf) MLP;
- "xlm-roberta": the same blocks; positions start after the padding id in the HF checkpoint, whose
  first `position_offset` rows are dropped on load (llama.cpp's converter does the same);
- "nomic-bert": no position table but NeoX rotary on q and k, a fused qkv projection without
  biases, and a SwiGLU MLP (`ffn_up` * silu(`ffn_gate`)), still post-LayerNorm.
A classification head (`cls`: dense + tanh on the first token, `cls.output`: to the labels) is
BERT's pooler + classifier and RoBERTa's classifier alike; `score` runs it for rerankers. llama.cpp's
converter drops BERT's pooler, so a BERT reranker GGUF has only `cls.output`: then the first token's
state goes straight to it, as llama.cpp computes it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from corral.errors import ModelFileError, UnsupportedModelError
from corral.models.neox_rotary import apply_rotary, rotary_tables


@dataclass(frozen=True)
class EncoderConfig:
    family: str  # "bert", "xlm-roberta" or "nomic-bert"
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_positions: int  # usable positions (after the XLM-R offset)
    layer_norm_eps: float = 1e-12
    rope_theta: float = 1000.0  # nomic-bert only
    pad_token_id: int = 0

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


_HF_LAYER = {
    "attention.self.query": "attn_q", "attention.self.key": "attn_k", "attention.self.value": "attn_v",
    "attention.output.dense": "attn_output", "attention.output.LayerNorm": "attn_output_norm",
    "intermediate.dense": "ffn_up", "output.dense": "ffn_down", "output.LayerNorm": "layer_output_norm",
    # nomic-bert's remote code
    "attn.Wqkv": "attn_qkv", "attn.out_proj": "attn_output", "mlp.fc11": "ffn_up", "mlp.fc12": "ffn_gate",
    "mlp.fc2": "ffn_down", "norm1": "attn_output_norm", "norm2": "layer_output_norm",
}
_HF_GLOBAL = {
    "embeddings.word_embeddings": "token_embd", "embeddings.position_embeddings": "position_embd",
    "embeddings.token_type_embeddings": "token_types", "embeddings.LayerNorm": "token_embd_norm",
    "emb_ln": "token_embd_norm", "pooler.dense": "cls", "classifier.dense": "cls",
    "classifier.out_proj": "cls.output", "classifier": "cls.output",
}
_LAYER_RE = re.compile(r"^encoder\.(?:layer|layers)\.(\d+)\.(.+)\.(weight|bias)$")
_PREFIXES = ("bert.", "roberta.", "model.")


def hf_name_to_gguf(name: str) -> str | None:
    """"bert.encoder.layer.0.attention.self.query.weight" -> "blk.0.attn_q.weight"; None if unused."""
    for prefix in _PREFIXES:
        if name.startswith(prefix) and not name.startswith("encoder.layer"):
            name = name[len(prefix):]
            break
    m = _LAYER_RE.match(name)
    if m:
        stem = _HF_LAYER.get(m.group(2))
        return None if stem is None else f"blk.{m.group(1)}.{stem}.{m.group(3)}"
    stem, _, suffix = name.rpartition(".")
    g = _HF_GLOBAL.get(stem)
    return None if g is None or suffix not in ("weight", "bias") else f"{g}.{suffix}"


# nomic-bert config.json (its remote code's keys) -> what corral's nomic-bert block computes
_NOMIC_FIXED = {"rotary_emb_fraction": 1.0, "rotary_emb_interleaved": False, "prenorm": False,
                "parallel_block": False, "use_rms_norm": False, "activation_function": "swiglu"}


def nomic_config_from_hf(config: dict, source: str) -> EncoderConfig:
    """EncoderConfig of a nomic-bert folder (nomic-embed-text): `n_embd`, `n_layer`, `n_head`,
    `n_inner`, `rotary_emb_base`; the context is `max_trained_positions` (as llama.cpp takes it),
    else `n_positions`. Raises UnsupportedModelError for variants the block does not compute."""
    for key, want in _NOMIC_FIXED.items():
        if key in config and config[key] != want:
            raise UnsupportedModelError(source, f"nomic-bert with {key}={config[key]!r} is not supported "
                                                f"(corral runs {key}={want!r})")

    def number(key: str, kind=int, default=None):
        value = config.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1 << 31:
            raise ModelFileError(source, f"config.json has no positive number {key!r}; re-download it")
        return kind(value)

    positions = "max_trained_positions" if config.get("max_trained_positions") else "n_positions"
    return EncoderConfig(
        family="nomic-bert", vocab_size=number("vocab_size"), hidden_size=number("n_embd"),
        num_layers=number("n_layer"), num_heads=number("n_head"),
        intermediate_size=number("n_inner", default=4 * number("n_embd")), max_positions=number(positions),
        layer_norm_eps=number("layer_norm_epsilon", float, 1e-12), rope_theta=number("rotary_emb_base", float, 1000.0),
    )


class BertEncoder(torch.nn.Module):
    """Token ids -> hidden states (and classifier scores). Weights are plain tensors in `w`."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.w: dict[str, torch.Tensor] = {}

    def load_weights(self, weights: dict[str, torch.Tensor], source: str) -> None:
        """`weights` under GGUF names, float32; raises ModelFileError naming a missing tensor."""
        self.w = weights
        need = ["token_embd.weight", "token_embd_norm.weight"]
        for i in range(self.cfg.num_layers):
            proj = ["attn_qkv"] if self.cfg.family == "nomic-bert" else ["attn_q", "attn_k", "attn_v"]
            mlp = ["ffn_up", "ffn_gate", "ffn_down"] if self.cfg.family == "nomic-bert" else ["ffn_up", "ffn_down"]
            need += [f"blk.{i}.{s}.weight" for s in (*proj, "attn_output", "attn_output_norm", *mlp, "layer_output_norm")]
        if self.cfg.family != "nomic-bert":
            need.append("position_embd.weight")
        missing = [n for n in need if n not in weights]
        if missing:
            raise ModelFileError(source, f"the model has no tensor {missing[0]!r} ({len(missing)} missing); "
                                         "is it really a BERT-family encoder?")

    @property
    def has_classifier(self) -> bool:
        return "cls.output.weight" in self.w

    def _linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(x, self.w[name + ".weight"], self.w.get(name + ".bias"))

    def _norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], self.w[name + ".weight"], self.w.get(name + ".bias"),
                            self.cfg.layer_norm_eps)

    @torch.inference_mode()
    def forward(self, ids: torch.Tensor, mask: torch.Tensor, token_types: torch.Tensor | None = None) -> torch.Tensor:
        """ids, mask: (B, T) int64 / bool (True on real tokens, padding on the right) -> (B, T, H)."""
        cfg, w = self.cfg, self.w
        B, T = ids.shape
        x = F.embedding(ids, w["token_embd.weight"])  # (B, T, H)
        if "token_types.weight" in w:
            types = token_types if token_types is not None else torch.zeros_like(ids)
            x = x + F.embedding(types, w["token_types.weight"])
        if cfg.family != "nomic-bert":
            x = x + w["position_embd.weight"][:T]
        x = self._norm(x, "token_embd_norm")
        rope = rotary_tables(T, cfg.head_dim, cfg.rope_theta) if cfg.family == "nomic-bert" else None
        # (B, 1, 1, T): keys a query may see; none when nothing is padded (SDPA's fused kernels then apply)
        attn_mask = None if bool(mask.all()) else mask[:, None, None, :]
        for i in range(cfg.num_layers):
            p = f"blk.{i}."
            if cfg.family == "nomic-bert":
                q, k, v = self._linear(x, p + "attn_qkv").split(cfg.hidden_size, dim=-1)
            else:
                q, k, v = (self._linear(x, p + s) for s in ("attn_q", "attn_k", "attn_v"))
            q, k, v = (t.view(B, T, cfg.num_heads, cfg.head_dim).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hd)
            if rope is not None:
                q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
            a = a.transpose(1, 2).reshape(B, T, cfg.hidden_size)
            x = self._norm(x + self._linear(a, p + "attn_output"), p + "attn_output_norm")
            if cfg.family == "nomic-bert":
                h = self._linear(x, p + "ffn_up") * F.silu(self._linear(x, p + "ffn_gate"))
            else:
                h = F.gelu(self._linear(x, p + "ffn_up"))
            x = self._norm(x + self._linear(h, p + "ffn_down"), p + "layer_output_norm")
        return x

    def score(self, hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, H) -> (B, num_labels): the classification head on the first token (a dense layer
        with tanh first when the model has one: RoBERTa's head, BERT's pooler). `mask` is unused:
        the first token is never padding."""
        first = hidden[:, 0]
        if "cls.weight" in self.w:
            first = torch.tanh(self._linear(first, "cls"))
        return self._linear(first, "cls.output")

