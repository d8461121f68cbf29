"""Write random-weight models of real shapes for benchmarks: a Hugging Face folder, then GGUF
files of the requested types from the same weights.

    python benchmarks/make_models.py --shape qwen2.5-0.5b --types F16 Q8_0 Q4_0 Q4_K_M --out /tmp/corral-bench

Random weights time exactly like trained ones: the work per token depends only on the shapes.
"""
from __future__ import annotations

import argparse
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
}


def write_hf(shape: str, out: Path) -> Path:
    import transformers

    from tests.fixtures.tokenizers import write_bpe_tokenizer

    spec = dict(SHAPES[shape])
    arch, style = spec.pop("arch"), spec.pop("style")
    folder = out / shape
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="qwen2.5-0.5b")
    parser.add_argument("--types", nargs="+", default=["Q8_0", "Q4_0", "Q4_K_M"])
    parser.add_argument("--out", type=Path, default=Path("/tmp/corral-bench"))
    args = parser.parse_args()
    from corral.loader.gguf_export import export_gguf

    folder = write_hf(args.shape, args.out)
    print(folder)
    for t in args.types:
        path = args.out / f"{args.shape}-{t.lower()}.gguf"
        if not path.exists():
            export_gguf(folder, path, t)
        print(path, f"{path.stat().st_size / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
