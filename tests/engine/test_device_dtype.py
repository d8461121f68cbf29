"""--device and --dtype: names resolve (auto is the CPU here), the whole model moves with `.to()`
and `move_model` (tied weights stay one tensor), and a bfloat16/float16 run on the CPU through the
device-generic path (torch attention, dense weights) stays close to float32."""
from __future__ import annotations

import pytest
import torch

from corral import SamplingParams
from corral.engine import device as dev
from corral.errors import ValidationError
from engine_helpers import rel_error

PROMPT_IDS = list(range(3, 43))


def test_names_resolve_and_bad_ones_are_refused(monkeypatch):
    assert dev.resolve_device("auto") == torch.device("cpu" if not torch.cuda.is_available() else "cuda")
    assert dev.resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert dev.resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16
    for bad in ("gpu0", "tpu"):
        with pytest.raises(ValidationError, match="device"):
            dev.resolve_device(bad)
    with pytest.raises(ValidationError, match="dtype"):
        dev.resolve_dtype("int8", torch.device("cpu"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValidationError, match="no CUDA device"):
        dev.resolve_device("cuda")


def test_kv_budget_keeps_the_device_under_its_utilization(monkeypatch):
    gib = 1 << 30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (60 * gib, 80 * gib))  # 20 GiB in use
    budget = dev.kv_cache_budget_on_device(torch.device("cuda"), 0.9)
    assert budget == 72 * gib - 20 * gib - 2 * gib  # less the activation margin
    assert dev.kv_cache_budget_on_device(torch.device("cuda"), 0.2) == 0


def test_the_model_moves_as_a_whole(make_llm):
    model = make_llm("qwen2", "hf").engine.loaded.model  # tied embedding and output head
    assert model.lm_head.weight is model.model.embed_tokens.weight
    dev.move_model(model, torch.device("cpu"), torch.bfloat16)
    assert model.lm_head.weight is model.model.embed_tokens.weight  # still one tensor
    assert model.model.norm.weight.dtype == torch.bfloat16
    assert all(t.dtype == torch.bfloat16 for t in model.buffers() if t.is_floating_point())
    model.to(torch.float64)  # registered: .to() reaches every weight, and reads see the new tensors
    assert len(list(model.buffers())) > 10
    assert all(t.dtype == torch.float64 for t in model.buffers() if t.is_floating_point())
    assert model.model.layers[0].self_attn.q_proj.weight.dtype == torch.float64


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("fmt", ["hf", "Q8_0"])
def test_half_precision_on_the_cpu_is_close_to_float32(dtype, fmt, make_llm):
    """The device-generic path end to end on the CPU: torch attention, weights in the compute
    dtype (GGUF blocks dequantized to it), the KV cache in it too."""
    full = make_llm("llama", fmt, keep_quantized=False)
    half = make_llm("llama", fmt, device="cpu", dtype=dtype, attention_backend="torch")
    engine = half.engine
    assert (engine.dtype, engine.kv_cache_dtype) == (getattr(torch, dtype),) * 2
    assert all(getattr(m, "packed", None) is None for m in engine.loaded.model.modules())
    assert engine.loaded.model.model.layers[1].mlp.down_proj.weight.dtype == getattr(torch, dtype)
    assert "device cpu  dtype " + dtype in engine.placement()
    assert rel_error(engine.prompt_logits(PROMPT_IDS), full.engine.prompt_logits(PROMPT_IDS)) <= 3e-2
    params = SamplingParams(temperature=0, max_tokens=4, ignore_eos=True)
    prompt = {"prompt_token_ids": PROMPT_IDS}
    assert half.generate([prompt], params)[0].outputs[0].token_ids[:2] == \
        full.generate([prompt], params)[0].outputs[0].token_ids[:2]
