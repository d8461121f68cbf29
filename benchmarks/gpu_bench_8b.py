"""Decode speed of a random-weight Llama-3.1-8B-shaped model in bfloat16 on one CUDA GPU.

    python benchmarks/gpu_bench_8b.py [--bandwidth-tbs 4.8] [--concurrency 64 256] [--enforce-eager]

The weights are made on the GPU (no 16 GB file to write or read); the folder under --out holds
only config.json and a tokenizer of the model's vocabulary. Prints, for batch 1 (input 512,
output 128), decode tokens/s against the bandwidth limit (bandwidth / bytes read per token: every
weight once, plus the KV cache of the average position), then output tokens/s with 64 and 256
requests in flight (input 512, output 128). Random weights time exactly like trained ones.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LLAMA_31_8B = dict(
    architectures=["LlamaForCausalLM"], model_type="llama", vocab_size=128256, hidden_size=4096,
    intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
    head_dim=128, tie_word_embeddings=False, rope_theta=500000.0, max_position_embeddings=131072,
    rms_norm_eps=1e-5, hidden_act="silu", bos_token_id=128000, eos_token_id=128001,
    rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                  "original_max_position_embeddings": 8192},
)


def model_folder(out: Path) -> Path:
    from tests.fixtures.tokenizers import write_bpe_tokenizer

    folder = out / "llama-3.1-8b-shape"
    if not (folder / "config.json").exists():
        folder.mkdir(parents=True, exist_ok=True)
        write_bpe_tokenizer(folder, vocab_size=LLAMA_31_8B["vocab_size"], style="llama3")
        (folder / "config.json").write_text(json.dumps(LLAMA_31_8B))
    return folder


def random_model(folder: Path, max_len: int, device: torch.device, dtype: torch.dtype):
    """LoadedModel with random weights made in place on `device`."""
    from corral.engine.loading import LoadedModel, weights_bytes
    from corral.layers.embedding import Embedding
    from corral.layers.linear import Linear
    from corral.layers.norm import RMSNorm
    from corral.loader.hf_config import config_from_hf
    from corral.models.registry import model_class
    from corral.tokenizer import IncrementalDetokenizer, Tokenizer

    cfg = config_from_hf(json.loads((folder / "config.json").read_text()))
    model = model_class(cfg.architecture, str(folder))(cfg, max_positions=max_len)
    gen = torch.Generator(device=device).manual_seed(0)
    for module in model.modules():
        if isinstance(module, Linear):
            shape = (module.out_features, module.in_features)
        elif isinstance(module, Embedding):
            shape = (module.num_embeddings, module.dim)
        elif isinstance(module, RMSNorm):
            module.weight = torch.ones_like(module.weight, device=device, dtype=dtype)
            continue
        else:
            continue
        module.weight = torch.randn(shape, generator=gen, device=device, dtype=dtype).mul_(0.02)
    model.to(device)  # rotary tables
    model.eval()
    tokenizer = Tokenizer.from_hf_dir(folder)
    return LoadedModel(
        name=str(folder), path=folder, model=model, tokenizer=tokenizer, config=cfg, max_model_len=max_len,
        weights_bytes=weights_bytes(model), load_seconds=0.0, format="hf", device=device, dtype=dtype,
        make_detokenizer=lambda skip: IncrementalDetokenizer(tokenizer, skip_special_tokens=skip),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("/tmp/corral-gpu"))
    parser.add_argument("--bandwidth-tbs", type=float, default=4.8, help="the GPU's memory bandwidth (H200: 4.8)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--input-len", type=int, default=512)
    parser.add_argument("--output-len", type=int, default=128)
    parser.add_argument("--enforce-eager", action="store_true")
    parser.add_argument("--attention-backend", default="triton")
    parser.add_argument("--device", default="cuda", help="cuda; cpu only to try the script on a small --shape")
    args = parser.parse_args()
    from corral.engine.benchmark import run_benchmark
    from corral.engine.engine_args import EngineArgs
    from corral.engine.llm_engine import LLMEngine

    device, dtype = torch.device(args.device), torch.bfloat16
    folder = model_folder(args.out)
    max_len = args.input_len + args.output_len + 16
    top = max(args.concurrency)
    start = time.perf_counter()
    loaded = random_model(folder, max_len, device, dtype)
    engine = LLMEngine(EngineArgs(
        model=str(folder), device=args.device, dtype="bfloat16", attention_backend=args.attention_backend,
        max_model_len=max_len, max_num_seqs=top, max_num_batched_tokens=max(8192, top),
        enable_prefix_caching=False, enforce_eager=args.enforce_eager,
    ), loaded=loaded)
    print(f"{engine.placement()}  weights {loaded.weights_bytes / 1e9:.2f} GB  KV cache "
          f"{engine.kv_cache_bytes / 1e9:.1f} GB  ready in {time.perf_counter() - start:.0f} s", flush=True)

    run_benchmark(engine, min(top, 8), args.input_len, 4)  # warm-up: Triton compiles, allocator grows
    one = run_benchmark(engine, 1, args.input_len, args.output_len)
    decode_tok_s = 1e3 / one.tpot_ms[0]
    cfg = loaded.config
    kv_per_position = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * cfg.head_dim * 2  # bf16 K and V
    bytes_per_token = loaded.weights_bytes + kv_per_position * (args.input_len + args.output_len / 2)
    limit = args.bandwidth_tbs * 1e12 / bytes_per_token
    print(f"batch 1: decode {decode_tok_s:.1f} tok/s (TPOT {one.tpot_ms[0]:.2f} ms), bandwidth limit "
          f"{limit:.1f} tok/s at {args.bandwidth_tbs} TB/s over {bytes_per_token / 1e9:.2f} GB/token: "
          f"{100 * decode_tok_s / limit:.1f}% (target 85%)  TTFT {one.ttft_ms[0]:.1f} ms", flush=True)
    for c in args.concurrency:
        r = run_benchmark(engine, c, args.input_len, args.output_len)
        print(f"concurrency {c}: output {r.output_tok_s:.0f} tok/s  prefill {r.prefill_tok_s:.0f} tok/s  "
              f"TTFT mean/p99 {r.ttft_ms[0]:.0f}/{r.ttft_ms[2]:.0f} ms  TPOT mean {r.tpot_ms[0]:.1f} ms"
              + ("  (target 6000 at 256)" if c == 256 else ""), flush=True)


if __name__ == "__main__":
    main()
