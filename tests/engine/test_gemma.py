"""Gemma 2 and 3 past their sliding window: batching, chunked prefill, the prefix cache and the
torch decode path give transformers' greedy tokens.

The fixture models have a 12-token window (Gemma 2: every other layer; Gemma 3: five layers in
six) and the prompts here run to 45 tokens plus 10 generated, so every path attends across the
window's edge: single requests, a batch of ragged ones, prompts split into 16-token chunks (their
queries see cached keys some of which fall out of the window), a prompt whose first 32 tokens come
from the prefix cache, and decode steps without the C kernel. Both go through the kernel where it
runs (Gemma 2's soft-capped scores included) and through torch without it.
"""
from __future__ import annotations

import pytest
import torch
import transformers

from corral import SamplingParams
from engine_helpers import hf_greedy

GREEDY = SamplingParams(temperature=0, max_tokens=10, ignore_eos=True)
PROMPTS = [list(range(3, 48)), [5, 9, 11, 4, 7], [(i * 7) % 300 + 3 for i in range(30)]]


@pytest.fixture(scope="module", params=["gemma2", "gemma3"])
def arch_and_expected(request, tiny_models):
    arch = request.param
    reference = transformers.AutoModelForCausalLM.from_pretrained(
        tiny_models(arch, "hf"), dtype=torch.float64, attn_implementation="eager"
    )
    return arch, [hf_greedy(reference, p, GREEDY.max_tokens) for p in PROMPTS]


def tokens(outputs):
    return [o.outputs[0].token_ids for o in outputs]


def test_batched_and_single_requests_match_transformers(make_llm, arch_and_expected):
    arch, expected = arch_and_expected
    llm = make_llm(arch, "hf")
    prompts = [{"prompt_token_ids": p} for p in PROMPTS]
    assert tokens(llm.generate(prompts, GREEDY)) == expected
    assert [tokens(llm.generate([p], GREEDY))[0] for p in prompts] == expected


def test_chunked_prefill_and_gathered_decode_match_transformers(make_llm, arch_and_expected, monkeypatch):
    from corral.kernels import attention as kernel

    arch, expected = arch_and_expected
    llm = make_llm(arch, "hf", max_num_batched_tokens=16, max_num_seqs=4)
    prompts = [{"prompt_token_ids": p} for p in PROMPTS]
    capped = []
    run = kernel.paged_decode_attention
    monkeypatch.setattr(kernel, "paged_decode_attention", lambda *a, **k: capped.append(k.get("softcap")) or run(*a, **k))
    assert tokens(llm.generate(prompts, GREEDY)) == expected
    if kernel.is_available():  # decode steps took the kernel, soft-capped for Gemma 2
        assert capped and set(capped) == ({1.0} if arch == "gemma2" else {None})
    llm.engine.runner.backend.use_kernel = False
    assert tokens(llm.generate(prompts, GREEDY)) == expected


def test_prefix_cache_hit_past_the_window_matches_transformers(make_llm, arch_and_expected):
    arch, expected = arch_and_expected
    llm = make_llm(arch, "hf")
    first = llm.generate([{"prompt_token_ids": PROMPTS[0][:40] + [5, 6]}], GREEDY)[0]
    assert first.num_cached_tokens == 0
    again = llm.generate([{"prompt_token_ids": PROMPTS[0]}], GREEDY)[0]
    assert again.num_cached_tokens == 32  # two 16-token blocks, past the 12-token window
    assert again.outputs[0].token_ids == expected[0]


def test_multimodal_gemma3_checkpoint_runs_its_text_model(tiny_models, tmp_path):
    """Gemma3ForConditionalGeneration (the 4B and larger checkpoints): settings under text_config,
    weights under language_model, a vision tower corral skips. Text logits equal transformers'."""
    import shutil

    from corral import LLM
    from engine_helpers import rel_error

    text_dir = tiny_models("gemma3", "hf")
    text = transformers.AutoConfig.from_pretrained(text_dir)
    vision = transformers.SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                             num_attention_heads=2, image_size=28, patch_size=14)
    config = transformers.Gemma3Config(text_config=text.to_dict(), vision_config=vision.to_dict(), mm_tokens_per_image=4)
    config.architectures = ["Gemma3ForConditionalGeneration"]
    model = transformers.Gemma3ForConditionalGeneration(config).eval()
    text_model = transformers.AutoModelForCausalLM.from_pretrained(text_dir)
    model.model.language_model.load_state_dict(text_model.model.state_dict())
    model.save_pretrained(tmp_path)
    for f in text_dir.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens")):
            shutil.copy(f, tmp_path / f.name)
    ids = list(range(3, 43))
    with torch.no_grad():
        expected = model.double()(torch.tensor([ids])).logits[0]
    llm = LLM(str(tmp_path), max_model_len=128, kv_cache_memory=8 << 20)
    assert rel_error(llm.engine.prompt_logits(ids), expected) <= 1e-4
