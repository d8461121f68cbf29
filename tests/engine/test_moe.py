"""Mixture-of-experts routing: each chosen expert runs once per step on all the tokens that chose
it, unchosen ones not at all, and a batch gives the tokens each request gives alone."""
from __future__ import annotations

import pytest
import torch

from corral import SamplingParams
from corral.models.moe_model import SparseMoeBlock

GREEDY = SamplingParams(temperature=0, max_tokens=8, ignore_eos=True)


def test_each_chosen_expert_runs_once_per_step_on_its_tokens(make_llm, monkeypatch):
    llm = make_llm("qwen3_moe", "hf")
    block = next(m for m in llm.engine.runner.model.modules() if isinstance(m, SparseMoeBlock))
    calls: list[tuple[int, int]] = []
    for e, expert in enumerate(block.experts):
        forward = expert.forward
        monkeypatch.setattr(expert, "forward", lambda x, e=e, f=forward: calls.append((e, x.shape[0])) or f(x))
    x = torch.randn(40, block.gate.in_features)
    with torch.inference_mode():
        chosen = torch.topk(block.gate(x), block.moe.top_k, dim=-1).indices
        out = block(x)
    assert out.shape == x.shape
    want = {e: int((chosen == e).sum()) for e in chosen.unique().tolist()}
    assert sorted(e for e, _ in calls) == sorted(want)  # once each, only the chosen
    assert dict(calls) == want  # each on every (token, slot) routed to it


def test_batch_equals_each_alone(make_llm):
    llm = make_llm("qwen2_moe", "hf")
    prompts = [{"prompt_token_ids": list(range(3 + i, 3 + i + n))} for i, n in enumerate([5, 23, 12])]
    together = [o.outputs[0].token_ids for o in llm.generate(prompts, GREEDY)]
    alone = [llm.generate([p], GREEDY)[0].outputs[0].token_ids for p in prompts]
    assert together == alone


@pytest.mark.parametrize("arch", ["mixtral", "qwen2_moe", "qwen3_moe"])
def test_quantized_gguf_experts_stay_quantized(make_llm, arch):
    """llama.cpp stacks a layer's experts in one 3-D tensor; each expert gets its own slice of the
    file's blocks for the kernels, and the routers stay float32 as llama.cpp writes them."""
    model = make_llm(arch, "Q8_0", keep_quantized=True).engine.runner.model
    block = next(m for m in model.modules() if isinstance(m, SparseMoeBlock))
    linears = [linear for expert in block.experts for linear in expert.parts]
    if block.moe.shared_expert_size:  # Qwen2-MoE's shared expert, and its gate
        shared = block.shared_expert
        linears += [shared.gate_proj, shared.up_proj, shared.down_proj]
        assert block.shared_expert_gate.weight.dtype == torch.float32
    for linear in linears:
        assert linear.weight is None and linear.packed is not None
    assert block.gate.weight is not None and block.gate.weight.dtype == torch.float32


@pytest.mark.parametrize("arch", ["mixtral", "qwen2_moe", "qwen3_moe"])
def test_one_token_through_quantized_experts_is_the_grouped_result(make_llm, arch):
    """Decode at batch 1 runs the chosen experts in two kernel calls (gate and up together, the
    downs each on its own input); it gives bitwise what the grouped path gives, and a batch of
    requests decodes as each does alone."""
    llm = make_llm(arch, "Q8_0", keep_quantized=True)
    block = next(m for m in llm.engine.runner.model.modules() if isinstance(m, SparseMoeBlock))
    assert block._quantized_experts()
    x = torch.randn(1, block.gate.in_features, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        probs = torch.softmax(block.gate(x), dim=-1)
        weights, chosen = torch.topk(probs, block.moe.top_k, dim=-1)
        if block.moe.normalize_top_k:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        assert torch.equal(block._one_token(x, chosen[0].tolist(), weights[0]), block._grouped(x, chosen, weights))
    prompts = [{"prompt_token_ids": list(range(3 + i, 3 + i + n))} for i, n in enumerate([5, 17])]
    together = [o.outputs[0].token_ids for o in llm.generate(prompts, GREEDY)]
    assert together == [llm.generate([p], GREEDY)[0].outputs[0].token_ids for p in prompts]


def test_chunked_prefill_and_prefix_cache_give_transformers_tokens(make_llm, tiny_models):
    """Mixtral in 16-token chunks, batched with a short prompt, then again from the prefix cache."""
    import transformers
    from fixtures.tiny_models import reference_kwargs

    from engine_helpers import hf_greedy

    path = tiny_models("mixtral", "hf")
    reference = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float64, **reference_kwargs(path))
    prompts = [list(range(3, 43)), [7, 5, 9, 11]]
    expected = [hf_greedy(reference, p, GREEDY.max_tokens) for p in prompts]
    llm = make_llm("mixtral", "hf", max_num_batched_tokens=16, max_num_seqs=4)
    together = llm.generate([{"prompt_token_ids": p} for p in prompts], GREEDY)
    assert [o.outputs[0].token_ids for o in together] == expected
    again = llm.generate([{"prompt_token_ids": prompts[0]}], GREEDY)[0]
    assert again.num_cached_tokens == 32 and again.outputs[0].token_ids == expected[0]


@pytest.mark.parametrize("keep_quantized", [False, True], ids=["dequantized", "kernels"])
def test_mixtral_gguf_with_one_tensor_per_expert(make_llm, tiny_models, gguf_reference, tmp_path, keep_quantized):
    """Early Mixtral GGUF files hold each expert as its own tensor (blk.N.ffn_gate.E.weight); they
    load as the stacked ones do, and give transformers' logits."""
    from corral import LLM
    from engine_helpers import rel_error
    from fixtures.legacy_gguf import split_stacked_experts

    legacy = split_stacked_experts(tiny_models("mixtral", "Q8_0"), tmp_path / "mixtral-legacy.gguf")
    ids = list(range(3, 43))
    with torch.no_grad():
        expected = gguf_reference("mixtral", "Q8_0")(torch.tensor([ids])).logits[0]
    got = LLM(str(legacy), keep_quantized=keep_quantized, max_model_len=256,
              kv_cache_memory=8 << 20).engine.prompt_logits(ids)
    stacked = make_llm("mixtral", "Q8_0", keep_quantized=keep_quantized).engine.prompt_logits(ids)
    assert torch.equal(got, stacked)
    if not keep_quantized:
        assert rel_error(got, expected) <= 1e-4
