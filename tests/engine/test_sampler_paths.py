"""The sampler's two ways of doing each step (host-side fast paths on CPU, tensor paths for other
devices) give the same tokens, and on CUDA a step reads nothing back from the device."""
from __future__ import annotations

import pytest
import torch

from corral.layers.sampler import SamplingBatch, sample

VOCAB = 101


def _batch(device, generators_seed: int, flags: bool) -> SamplingBatch:
    def col(values, dtype=torch.float32):
        return torch.tensor(values, dtype=dtype, device=device)

    gens = []
    for i in range(4):
        g = torch.Generator()
        g.manual_seed(generators_seed + i)
        gens.append(g if i != 1 else None)
    words = (VOCAB + 31) // 32
    allow_even = torch.zeros(words, dtype=torch.int32)
    for t in range(0, VOCAB, 2):
        allow_even[t // 32] |= torch.tensor(1 << (t % 32), dtype=torch.int64).to(torch.int32)
    allow_few = torch.zeros(words, dtype=torch.int32)
    allow_few[0] = 0b1011000  # tokens 3, 4 and 6
    return SamplingBatch(
        temperature=col([1.0, 0.0, 0.7, 1.3]),
        top_k=col([0, 0, 5, 0], torch.long),
        top_p=col([1.0, 1.0, 1.0, 0.8]),
        min_p=col([0.05, 0.0, 0.0, 0.0]),
        generators=gens,
        suppress_token_ids=[[7, 9], [], [], [0]],
        max_logprobs=2,
        sampled_rows=[0, 2, 3],
        token_bitmasks=[(1, allow_few), (2, allow_even)],
        any_min_p=True if flags else None,
        any_top_k_or_p=True if flags else None,
    )


def _logits(device):
    torch.manual_seed(0)
    return (torch.randn(4, VOCAB) * 3).to(device)


def test_tensor_paths_give_the_tokens_of_the_host_paths():
    fast = sample(_logits("cpu"), _batch("cpu", 5, flags=True))
    # A non-contiguous logits tensor sends the masks through the tensor path; no flags, so the
    # filters read their switches off the tensors.
    wide = torch.zeros(4, VOCAB * 2)
    wide[:, ::2] = _logits("cpu")
    slow = sample(wide[:, ::2], _batch("cpu", 5, flags=False))
    assert fast.token_ids.tolist() == slow.token_ids.tolist()
    ids = fast.token_ids.tolist()
    assert ids[1] in (3, 4, 6) and ids[2] % 2 == 0 and ids[0] not in (7, 9) and ids[3] != 0
    assert torch.allclose(fast.top_logprobs, slow.top_logprobs)


def test_results_cross_to_the_host_as_one_tensor():
    from corral.engine.model_runner import _host_results

    out = sample(_logits("cpu"), _batch("cpu", 5, flags=True))
    ids, logprobs, ranks, top_ids, top_lp = _host_results(out)
    assert ids == out.token_ids.tolist() and ranks == out.ranks.tolist()
    assert logprobs == out.logprobs.tolist() and top_ids == out.top_ids.tolist()
    assert top_lp == out.top_logprobs.tolist()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_cuda_step_never_waits_for_the_device():
    host = sample(_logits("cpu"), _batch("cpu", 5, flags=True))
    logits = _logits("cuda")
    batch = _batch("cuda", 5, flags=True)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = sample(logits, batch)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert out.token_ids.tolist() == host.token_ids.tolist()


def test_top_k_and_top_p_over_candidates_keep_what_a_full_sort_keeps(monkeypatch):
    """On the CPU the filters look at the most likely tokens first and sort the whole vocabulary
    only when a nucleus reaches past them; either way the same tokens survive, with the same
    probabilities, including nuclei wider than the candidates and min-p before them."""
    from corral.layers import sampler

    gen = torch.Generator().manual_seed(0)
    for _ in range(60):
        m, vocab = 3, int(torch.randint(300, 3000, (1,), generator=gen))
        logits = torch.randn(m, vocab, generator=gen) * float(torch.rand(1, generator=gen) * 6 + 0.05)
        top_k = torch.randint(0, 400, (m,), generator=gen) * (torch.rand(m, generator=gen) < 0.5)
        top_p = torch.where(torch.rand(m, generator=gen) < 0.7, torch.rand(m, generator=gen) * 0.99 + 0.01,
                            torch.ones(m))
        min_p = torch.where(torch.rand(m, generator=gen) < 0.3, torch.rand(m, generator=gen) * 0.2, torch.zeros(m))
        fast = sampler._filter(logits.clone(), top_k, top_p, min_p)
        monkeypatch.setattr(sampler, "CANDIDATES", 10**9)  # every row through the full sort
        full = sampler._filter(logits.clone(), top_k, top_p, min_p)
        monkeypatch.undo()
        assert torch.equal(fast, full)
