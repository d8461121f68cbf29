"""Mixture-of-experts routing: each chosen expert runs once per step on all the tokens that chose
it, unchosen ones not at all, and a batch gives the tokens each request gives alone; the C router
and one token's C block against torch."""
from __future__ import annotations

import math

import pytest
import torch
from gguf import GGMLQuantizationType
from gguf.quants import dequantize, quantize

from corral import SamplingParams, kernels
from corral.kernels import ops
from corral.loader.quantized import QuantizedWeight
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
    """Decode at batch 1 runs the whole block in one C call (routing, gate and up together, the
    downs each on its own input); it gives bitwise what routing the same token and running the
    grouped path gives, and a batch of requests decodes as each does alone."""
    llm = make_llm(arch, "Q8_0", keep_quantized=True)
    block = next(m for m in llm.engine.runner.model.modules() if isinstance(m, SparseMoeBlock))
    assert block._quantized_experts() and block.c_plan() is not None
    x = torch.randn(1, block.gate.in_features, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        weights, chosen = _route(block, x)
        grouped = block._grouped(x, chosen, weights)
        if block.moe.shared_expert_size:
            grouped += torch.sigmoid(block.shared_expert_gate(x)) * block.shared_expert(x)
        assert torch.equal(block(x), grouped)
    prompts = [{"prompt_token_ids": list(range(3 + i, 3 + i + n))} for i, n in enumerate([5, 17])]
    together = [o.outputs[0].token_ids for o in llm.generate(prompts, GREEDY)]
    assert together == [llm.generate([p], GREEDY)[0].outputs[0].token_ids for p in prompts]


def _route(block: SparseMoeBlock, x: torch.Tensor, plan=None) -> tuple[torch.Tensor, torch.Tensor]:
    weights = torch.empty(x.shape[0], block.moe.top_k)
    chosen = torch.empty(x.shape[0], block.moe.top_k, dtype=torch.int64)
    ops._ext.moe_route(ops._BEST, plan or block.c_plan(), x.data_ptr(), x.shape[0], weights.data_ptr(),
                       chosen.data_ptr(), 1)
    return weights, chosen


@pytest.mark.parametrize("arch", ["mixtral", "qwen3_moe", "qwen2_moe"])
def test_c_routing_is_the_router_softmax_top_k(make_llm, arch):
    """The C router (moe.c) against torch's softmax and top-k: the same experts in the same
    (descending) order, weights to float rounding, renormalised as the family says; a router kept
    in GGUF blocks gives the choice of its dequantized weights."""
    block = next(m for m in make_llm(arch, "hf").engine.runner.model.modules() if isinstance(m, SparseMoeBlock))
    x = torch.randn(64, block.gate.in_features, generator=torch.Generator().manual_seed(1))
    probs = torch.softmax(block.gate(x).float(), dim=-1)
    want_w, want_ids = torch.topk(probs, block.moe.top_k, dim=-1)
    if block.moe.normalize_top_k:
        want_w = want_w / want_w.sum(dim=-1, keepdim=True)
    weights, chosen = _route(block, x)
    assert torch.equal(chosen, want_ids)
    torch.testing.assert_close(weights, want_w, rtol=1e-5, atol=1e-6)
    if block.moe.normalize_top_k:
        torch.testing.assert_close(weights.sum(-1), torch.ones(64))

    # the same router in Q8_0 blocks: routing of its dequantized weights (the kernel rounds x too)
    q = quantize(block.gate.weight.numpy(), GGMLQuantizationType.Q8_0)
    packed = kernels.pack(QuantizedWeight("Q8_0", tuple(block.gate.weight.shape), q))
    moe = block.moe
    plan = ops._ext.moe_plan(0, (packed.type_id, packed.addr, packed.row_stride, packed.shape[0]), moe.num_experts,
                             block.gate.in_features, moe.expert_size, moe.top_k, moe.normalize_top_k, None)
    dense = torch.from_numpy(dequantize(q, GGMLQuantizationType.Q8_0)).reshape(block.gate.weight.shape)
    want_q, want_q_ids = torch.topk(torch.softmax(x @ dense.T, dim=-1), moe.top_k, dim=-1)
    weights_q, chosen_q = _route(block, x, plan)
    assert (chosen_q == want_q_ids).float().mean() > 0.95  # near-ties may swap under x's rounding
    with pytest.raises(ValueError, match="not all kept in blocks"):
        ops._ext.moe_token(ops._BEST, plan, x.data_ptr(), torch.empty_like(x).data_ptr(), 1)


def test_more_experts_a_token_than_the_c_block_runs_stay_in_torch(make_llm):
    """A file may ask for more experts a token than moe.c's block takes (MOE_MAX_TOP_K): the block
    then routes and runs in torch, and still answers, rather than failing at its first step."""
    from dataclasses import replace

    llm = make_llm("qwen3_moe", "Q8_0", keep_quantized=True)
    block = next(m for m in llm.engine.runner.model.modules() if isinstance(m, SparseMoeBlock))
    limit = ops._ext.MOE_MAX_TOP_K
    with pytest.raises(ValueError, match="bad mixture"):
        ops._ext.moe_plan(block.gate.weight.data_ptr(), None, limit + 1, block.gate.in_features, 8, limit + 1, True,
                          None)
    block.moe = replace(block.moe, top_k=limit + 1)
    block._plan = None
    assert block.c_plan() is None
    block.moe = replace(block.moe, top_k=block.moe.num_experts)  # what torch can run here: every expert
    x = torch.randn(1, block.gate.in_features, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        assert torch.isfinite(block(x)).all()


def test_c_routing_handles_ties_and_odd_sizes():
    """Equal logits go to the lower expert first; hidden sizes off the 16-wide dot's stride."""
    for hidden in (1, 17, 33):
        router = torch.zeros(6, hidden)
        router[4] = 1.0  # expert 4 wins for a positive x, 0..3 and 5 tie below it
        plan = ops._ext.moe_plan(router.data_ptr(), None, 6, hidden, 8, 3, True, None)
        x = torch.ones(2, hidden)
        weights = torch.empty(2, 3)
        chosen = torch.empty(2, 3, dtype=torch.int64)
        ops._ext.moe_route(ops._BEST, plan, x.data_ptr(), 2, weights.data_ptr(), chosen.data_ptr(), 1)
        assert chosen.tolist() == [[4, 0, 1]] * 2
        p_top = math.exp(hidden) / (math.exp(hidden) + 5)
        p_rest = 1 / (math.exp(hidden) + 5)
        total = p_top + 2 * p_rest
        torch.testing.assert_close(weights[0], torch.tensor([p_top / total, p_rest / total, p_rest / total]))
    with pytest.raises(ValueError, match="bad mixture"):
        ops._ext.moe_plan(router.data_ptr(), None, 6, hidden, 8, 7, True, None)


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
