"""Write random-weight models of real shapes for benchmarks: a Hugging Face folder, then GGUF
files of the requested types from the same weights.

    python benchmarks/make_models.py --shape qwen2.5-0.5b --types F16 Q8_0 Q4_0 Q4_K_M --out /tmp/corral-bench
    python benchmarks/make_models.py --shape qwen3-30b-a3b --layers 6 --types Q8_0 Q4_K_M

Random weights time exactly like trained ones: the work per token depends only on the shapes.
`--layers` keeps every other dimension real and sets the layer count (Qwen3-30B-A3B's 48 layers
of 128 experts are 61 GB in bf16; a few layers time like a slice of it). The folder and files are
named with the count when it is not the model's own (`qwen3-30b-a3b-6l`).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHAPES = {
    # Qwen2.5-0.5B: hidden 896, 24 layers, 14 heads, 2 KV heads, vocab 151936, tied embeddings.
    "qwen2.5-0.5b": dict(
        arch="Qwen2ForCausalLM", style="qwen2", vocab_size=151936, hidden_size=896, intermediate_size=4864,
        num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True,
        rope_theta=1000000.0, max_position_embeddings=32768, rms_norm_eps=1e-6,
    ),
    # Llama-3.2-1B: hidden 2048, 16 layers, 32/8 heads, vocab 128256, tied, llama3 rope scaling.
    "llama-3.2-1b": dict(
        arch="LlamaForCausalLM", style="llama3", vocab_size=128256, hidden_size=2048, intermediate_size=8192,
        num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=True,
        rope_theta=500000.0, max_position_embeddings=131072, rms_norm_eps=1e-5,
        rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 8192},
    ),
    # Gemma-3-1B (text): hidden 1152, 26 layers (five sliding-window of 512, then one global),
    # 4 heads of 256, 1 KV head, vocab 262144, tied, GELU-tanh, local/global rope bases 10k/1M.
    "gemma-3-1b": dict(
        arch="Gemma3ForCausalLM", config="Gemma3TextConfig", style="llama3", vocab_size=262144,
        hidden_size=1152, intermediate_size=6912, num_hidden_layers=26, num_attention_heads=4,
        num_key_value_heads=1, head_dim=256, sliding_window=512, query_pre_attn_scalar=256,
        tie_word_embeddings=True, max_position_embeddings=32768, rms_norm_eps=1e-6,
        rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
                         "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}},
    ),
    # Qwen3-30B-A3B: hidden 2048, 48 layers (use --layers), 32 heads of 128, 4 KV heads, every
    # layer a router over 128 experts of FFN 768, 8 used per token (renormalised), vocab 151936.
    "qwen3-30b-a3b": dict(
        arch="Qwen3MoeForCausalLM", config="Qwen3MoeConfig", style="qwen2", vocab_size=151936,
        hidden_size=2048, intermediate_size=6144, moe_intermediate_size=768, num_experts=128,
        num_experts_per_tok=8, norm_topk_prob=True, num_hidden_layers=48, num_attention_heads=32,
        num_key_value_heads=4, head_dim=128, tie_word_embeddings=False, max_position_embeddings=40960,
        rms_norm_eps=1e-6, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
    ),
}


def model_name(shape: str, layers: int | None) -> str:
    """The folder/file stem: the shape, plus `-{layers}l` when the layer count is not the model's."""
    return shape if layers in (None, SHAPES[shape]["num_hidden_layers"]) else f"{shape}-{layers}l"


def write_hf(shape: str, out: Path, layers: int | None = None) -> Path:
    if "config" in SHAPES[shape]:
        return write_hf_sharded(shape, out, layers)
    import transformers

    from tests.fixtures.tokenizers import write_bpe_tokenizer

    spec = dict(SHAPES[shape])
    arch, style = spec.pop("arch"), spec.pop("style")
    if layers is not None:
        spec["num_hidden_layers"] = layers
    folder = out / model_name(shape, layers)
    if (folder / "config.json").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    write_bpe_tokenizer(folder, vocab_size=spec["vocab_size"], style=style)
    config_cls = transformers.Qwen2Config if arch == "Qwen2ForCausalLM" else transformers.LlamaConfig
    config = config_cls(**spec, torch_dtype="bfloat16")
    torch.manual_seed(0)
    with torch.device("cpu"):
        model = getattr(transformers, arch)(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    return folder


def write_hf_sharded(shape: str, out: Path, layers: int | None = None) -> Path:
    """A bf16 folder with one safetensors shard per layer, written as checkpoints store it (experts
    one by one), with no model in memory: only one layer's tensors exist at a time (a Qwen3-MoE
    layer is 1.2 GB). Weights ~ N(0, 0.02); norms 1 (Gemma: 0, its norms scale by 1 + w) plus noise."""
    import transformers
    from safetensors.torch import save_file

    from tests.fixtures.tokenizers import write_bpe_tokenizer

    spec = dict(SHAPES[shape])
    arch, config_name, style = spec.pop("arch"), spec.pop("config"), spec.pop("style")
    if layers is not None:
        spec["num_hidden_layers"] = layers
    folder = out / model_name(shape, layers)
    if (folder / "config.json").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    write_bpe_tokenizer(folder, vocab_size=spec["vocab_size"], style=style)
    config = getattr(transformers, config_name)(**spec, dtype="bfloat16")
    config.architectures = [arch]
    with torch.device("meta"):
        meta_model = transformers.AutoModelForCausalLM.from_config(config)
    shapes = {k: tuple(v.shape) for k, v in meta_model.state_dict().items()}
    if config.tie_word_embeddings:
        shapes.pop("lm_head.weight", None)
    gen = torch.Generator().manual_seed(0)
    neutral_norm = 0.0 if "Gemma" in arch else 1.0

    def rand(shape: tuple[int, ...], name: str) -> torch.Tensor:
        if name.endswith("norm.weight"):
            return (neutral_norm + 0.1 * torch.randn(shape, generator=gen)).to(torch.bfloat16)
        return (0.02 * torch.randn(shape, generator=gen, dtype=torch.bfloat16))

    def stored(name: str, shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        """transformers holds experts fused; checkpoints store them one by one."""
        prefix, _, last = name.rpartition(".experts.")
        if not prefix:
            return {name: shape}
        n, rows, cols = shape
        parts = (("gate_proj", rows // 2), ("up_proj", rows // 2)) if last == "gate_up_proj" else (("down_proj", rows),)
        return {f"{prefix}.experts.{e}.{p}.weight": (r, cols) for e in range(n) for p, r in parts}

    groups: dict[str, dict[str, tuple[int, ...]]] = {}  # shard -> tensor name -> shape
    for name, shape_ in shapes.items():
        layer = name.split(".")[2] if name.startswith("model.layers.") else None
        shard = f"model-layer{int(layer):03d}.safetensors" if layer is not None else "model-rest.safetensors"
        groups.setdefault(shard, {}).update(stored(name, shape_))
    weight_map, total = {}, 0
    for shard, tensors in sorted(groups.items()):
        data = {name: rand(shape_, name) for name, shape_ in tensors.items()}
        save_file(data, str(folder / shard), metadata={"format": "pt"})
        total += sum(t.numel() * 2 for t in data.values())
        weight_map.update(dict.fromkeys(data, shard))
        del data
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=1))
    config.save_pretrained(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="qwen2.5-0.5b")
    parser.add_argument("--types", nargs="+", default=["Q8_0", "Q4_0", "Q4_K_M"])
    parser.add_argument("--out", type=Path, default=Path("/tmp/corral-bench"))
    parser.add_argument("--layers", type=int, help="layer count (default: the model's own)")
    args = parser.parse_args()
    from corral.loader.gguf_export import export_gguf

    folder = write_hf(args.shape, args.out, args.layers)
    print(folder)
    for t in args.types:
        path = args.out / f"{model_name(args.shape, args.layers)}-{t.lower()}.gguf"
        if not path.exists():
            export_gguf(folder, path, t)
        print(path, f"{path.stat().st_size / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
