"""Decode batches through DecodeGraphs' static, padded inputs. Without a GPU the captured graph is
stood in for by a step that runs the model eagerly on the same static tensors (what a replay
computes), with the triton backend (interpreted) whose decode reads only those tensors, so this
checks the padding and copying: the tokens equal an eager run's."""
from __future__ import annotations

import os

import pytest
import torch

from corral import SamplingParams
from corral.engine.cuda_graphs import DecodeGraphs, capture_sizes


def test_capture_sizes_cover_every_batch_up_to_the_maximum():
    assert capture_sizes(1) == [1]
    assert capture_sizes(40) == [1, 2, 4, 8, 16, 32, 40]
    assert capture_sizes(64)[-2:] == [48, 64]


class EagerStandIn:
    """What replaying a captured decode step computes: the model on the static inputs."""

    def __init__(self, graphs: DecodeGraphs, size: int):
        self.graphs, self.size = graphs, size

    def replay(self) -> None:
        out = self.graphs.model(self.graphs._batch(self.size))
        self.graphs.outputs[self.size] = out


def test_padded_static_decode_steps_give_the_eager_tokens(make_llm):
    pytest.importorskip("triton", reason="Triton is not installed (it comes with the test extra)")
    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("the interpreted stand-in runs on the CPU; real graphs: tests/engine/test_gpu_engine.py")
    params = SamplingParams(temperature=0, max_tokens=4, ignore_eos=True)
    prompts = [{"prompt_token_ids": list(range(3 + i, 20 + 3 * i))} for i in range(3)]  # a batch of 3: padded to 4
    eager_llm = make_llm("qwen2", "hf", attention_backend="torch")
    eager = [o.outputs[0].token_ids for o in eager_llm.generate(prompts, params)]
    llm = make_llm("qwen2", "hf", attention_backend="triton", device="cpu", max_num_seqs=5)
    engine, runner = llm.engine, llm.engine.runner
    graphs = DecodeGraphs(runner.model, runner.kv_caches, runner.backend, engine.args.block_size, 5,
                          engine.max_model_len, None, torch.device("cpu"))
    graphs.graphs = {n: EagerStandIn(graphs, n) for n in graphs.sizes}
    calls = []
    run = graphs.run
    graphs.run = lambda batch: calls.append(batch.attn.num_seqs) or run(batch)
    runner.graphs = graphs
    assert [o.outputs[0].token_ids for o in llm.generate(prompts, params)] == eager
    assert calls and set(calls) == {3}  # every decode step of the batch, none of the prompts
