"""Decode steps of the Llama family run their layers in one C call (corral/models/llama_decode.py):
the same kernels in the same order as the Python layers, so greedy tokens and their logprobs are
bitwise what the Python layers give, for every kept-quantized type, biases (Qwen2), q/k norms
(Qwen3), a sliding window (Mistral), float32 activations, and batches of sequences of different
lengths, mixture-of-experts layers at one token, Gemma 2 and 3; steps it does not take (prompts,
other families) still go through Python."""
from __future__ import annotations

import pytest

from corral import SamplingParams, kernels
from corral.models import llama_decode
from corral.models.llama_decode import FusedDecode

pytestmark = pytest.mark.skipif(not kernels.is_available(), reason="quantized kernels not built")

PROMPTS = [[5, 17, 33, 9, 41, 12, 7], list(range(20, 60)), [88, 3]]


def _generate(llm, fused: bool):
    model = llm.engine.runner.model
    model.fused_decode = None if fused else False
    params = SamplingParams(temperature=0, max_tokens=6, logprobs=3, ignore_eos=True)
    outs = llm.generate([{"prompt_token_ids": p} for p in PROMPTS], params)
    return [(o.outputs[0].token_ids, [{t: lp.logprob for t, lp in d.items()} for d in o.outputs[0].logprobs])
            for o in outs]


def _count_fused(monkeypatch) -> list[int]:
    taken = [0]
    run = FusedDecode.run

    def counting(self, batch):
        out = run(self, batch)
        taken[0] += out is not None
        return out

    monkeypatch.setattr(llama_decode.FusedDecode, "run", counting)
    return taken


@pytest.mark.parametrize("arch,fmt", [("llama", "Q4_0"), ("qwen2", "Q8_0"), ("qwen3", "Q4_K_M"),
                                      ("mistral", "Q4_1"), ("llama32", "Q6_K"),
                                      # Gemma 2: soft-capped scores, alternating windows; Gemma 3: q/k norms,
                                      # a local rotary table for the sliding layers; both: norms after
                                      # attention and MLP, GELU, scaled embeddings (windows of 12 tokens)
                                      ("gemma2", "Q8_0"), ("gemma3", "Q4_K_M"), ("gemma3", "Q8_0")])
def test_fused_decode_gives_the_python_layers_tokens_and_logprobs(arch, fmt, make_llm, monkeypatch):
    llm = make_llm(arch, fmt, keep_quantized=True)
    taken = _count_fused(monkeypatch)
    fused = _generate(llm, fused=True)
    assert taken[0] >= 5  # the decode steps went through C (the prompts did not)
    assert llm.engine.runner.model.fused_decode.head is not None  # the output projection too
    python = _generate(llm, fused=False)
    assert fused == python


def test_fused_decode_with_float_activations(make_llm, monkeypatch):
    import corral.store.default_model as default_model

    if not kernels.float_activations_fast():
        pytest.skip("float-activation kernels need AVX-512 here")
    monkeypatch.setattr(default_model, "prefers_float_activations", lambda path: True)
    llm = make_llm("llama", "Q4_1")
    assert all(p.float_activations for p in [llm.engine.runner.model.model.layers[0].mlp.down_proj.packed])
    taken = _count_fused(monkeypatch)
    fused = _generate(llm, fused=True)
    assert taken[0] >= 5
    assert fused == _generate(llm, fused=False)


@pytest.mark.parametrize("arch,fmt", [("mixtral", "Q8_0"), ("qwen3_moe", "Q4_K_M")])
def test_fused_decode_runs_mixture_layers_at_one_token(arch, fmt, make_llm, monkeypatch):
    """Sparse layers join the loop through the C block their Python layer calls: one sequence's
    steps go through C, bitwise as from Python; a batch's steps (tokens grouped by expert) stay
    in Python and (Q8_0) still give each sequence's own tokens."""
    # each run computes its whole prompt (a cached prefix would leave one prompt token to a
    # one-token step, whose experts run as a decode token's do rather than grouped)
    llm = make_llm(arch, fmt, keep_quantized=True, enable_prefix_caching=False)
    taken = _count_fused(monkeypatch)
    params = SamplingParams(temperature=0, max_tokens=6, logprobs=3, ignore_eos=True)

    def alone(fused: bool):
        llm.engine.runner.model.fused_decode = None if fused else False
        outs = [llm.generate([{"prompt_token_ids": p}], params)[0].outputs[0] for p in PROMPTS]
        return [(o.token_ids, [{t: lp.logprob for t, lp in d.items()} for d in o.logprobs]) for o in outs]

    fused = alone(True)
    assert taken[0] >= 15 and llm.engine.runner.model.fused_decode._sparse
    assert fused == alone(False)
    taken[0] = 0
    batch = llm.generate([{"prompt_token_ids": p} for p in PROMPTS], params)
    assert taken[0] == 0
    if fmt == "Q8_0":  # K-quant kernels round a few-row matmul unlike a one-row one: near-ties may flip
        assert [o.outputs[0].token_ids for o in batch] == [tokens for tokens, _ in fused]


def test_models_the_loop_does_not_run_keep_their_python_layers(make_llm):
    # dense weights (an HF folder): the projections are not kept quantized
    assert not FusedDecode.supported(make_llm("llama", "hf").engine.runner.model.model)
    # Qwen2-MoE's shared expert is not in the C block
    assert not FusedDecode.supported(make_llm("qwen2_moe", "Q8_0", keep_quantized=True).engine.runner.model.model)


def test_fused_decode_honours_a_sliding_window(make_llm, monkeypatch):
    # every step's metadata says: attend the last 5 positions (as a windowed Mistral's would)
    llm = make_llm("mistral", "Q8_0", keep_quantized=True)
    runner = llm.engine.runner
    prepare = runner._prepare

    def windowed(*args, **kwargs):
        batch = prepare(*args, **kwargs)
        batch.attn.sliding_window = 5
        return batch

    monkeypatch.setattr(runner, "_prepare", windowed)
    taken = _count_fused(monkeypatch)
    fused = _generate(llm, fused=True)
    assert taken[0] >= 5
    assert fused == _generate(llm, fused=False)
    monkeypatch.setattr(runner, "_prepare", prepare)
    assert _generate(llm, fused=True) != fused  # the window changed the answers
