"""Paged attention (the decode kernel, and the torch backend's decode and prefill paths) against float64.

The kernel computes in float32 with an online softmax and its own exp (within 2 ulp), so it stays
within 1e-5 of the float64 result relative to the output's largest magnitude (measured: ~3e-7).
"""
from __future__ import annotations

import pytest
import torch

from corral import kernels
from corral.kernels import attention
from corral.layers.attention import AttentionMetadata
from corral.layers.attention import torch_paged
from corral.layers.attention.torch_paged import TorchPagedAttention

pytestmark = pytest.mark.skipif(not attention.is_available(), reason="kernels not built")

ISAS = kernels.isa_levels() if kernels.is_available() else ()
LENGTHS = [1, 2, 15, 16, 17, 33, 64, 100]  # 1, block multiples and not, several tiles of 32
BOUND = 1e-5


def paged_case(hq: int, hk: int, d: int, block_size: int, lens: list[int], seed: int = 0, spare: int = 7):
    """q (B, Hq, D), a cache with `spare` more blocks than the sequences need, and block tables
    that scatter each sequence's blocks through it in shuffled order (padded with 0)."""
    gen = torch.Generator().manual_seed(seed)
    need = [-(-n // block_size) for n in lens]
    num_blocks = sum(need) + spare
    kv = torch.randn(2, num_blocks, block_size, hk, d, generator=gen)
    ids = torch.randperm(num_blocks, generator=gen)
    tables = torch.zeros(len(lens), max(need), dtype=torch.int64)
    start = 0
    for i, k in enumerate(need):
        tables[i, :k] = ids[start : start + k]
        start += k
    q = torch.randn(len(lens), hq, d, generator=gen)
    return q, kv, tables, torch.tensor(lens, dtype=torch.int64)


def assert_close_to_reference(out: torch.Tensor, ref: torch.Tensor) -> None:
    assert out.dtype == torch.float32 and out.shape == ref.shape
    err = (out.double() - ref).abs().max().item() / ref.abs().max().item()
    assert err <= BOUND, f"relative error {err:.2e}"


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("block_size", [1, 16, 32])
@pytest.mark.parametrize("d", [64, 128])
@pytest.mark.parametrize("hq,hk", [(4, 4), (8, 4), (14, 2)])  # GQA ratios 1, 2, 7
def test_matches_float64_reference(hq: int, hk: int, d: int, block_size: int, isa: str) -> None:
    q, kv, tables, lens = paged_case(hq, hk, d, block_size, LENGTHS, seed=hq + d + block_size)
    out = kernels.paged_decode_attention(q, kv, tables, lens, d**-0.5, isa=isa)
    assert_close_to_reference(out, kernels.reference_paged_decode_attention(q, kv, tables, lens, d**-0.5))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("hq,hk,d", [(14, 2, 64), (8, 4, 128), (9, 1, 64), (6, 2, 72), (4, 2, 12)])
def test_float16_cache(hq: int, hk: int, d: int, isa: str) -> None:
    """A float16 cache is read as float32: against float64 on the same (float16) values, the same
    bound holds, for every kernel set and the head dims that fall back to narrower ones."""
    q, kv, tables, lens = paged_case(hq, hk, d, 16, LENGTHS, seed=d + hq)
    kv16 = kv.half()
    out = kernels.paged_decode_attention(q, kv16, tables, lens, d**-0.5, 7, isa=isa)
    assert_close_to_reference(out, kernels.reference_paged_decode_attention(q, kv16, tables, lens, d**-0.5, 7))
    out = kernels.paged_decode_attention(q, kv16, tables, lens, d**-0.5, isa=isa)
    ref = kernels.reference_paged_decode_attention(q, kv16, tables, lens, d**-0.5)
    assert_close_to_reference(out, ref)
    # and within float16's rounding of the float32 cache's result
    full = kernels.reference_paged_decode_attention(q, kv, tables, lens, d**-0.5)
    assert (ref - full).abs().max().item() <= 4e-3 * full.abs().max().item()


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("window", [1, 5, 16, 40, 1000])
def test_sliding_window(window: int, isa: str) -> None:
    q, kv, tables, lens = paged_case(14, 2, 64, 16, LENGTHS, seed=window)
    out = kernels.paged_decode_attention(q, kv, tables, lens, 0.125, window, isa=isa)
    assert_close_to_reference(out, kernels.reference_paged_decode_attention(q, kv, tables, lens, 0.125, window))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("softcap,window,half", [(50.0, None, False), (1.0, None, True), (4.0, 5, False)])
def test_soft_capped_scores(softcap: float, window: int | None, half: bool, isa: str) -> None:
    """Gemma 2's cap * tanh(score / cap): large scores (q scaled up) so a small cap bends most of them."""
    q, kv, tables, lens = paged_case(12, 3, 64, 16, LENGTHS, seed=11)
    q = q * 8
    kv = kv.half() if half else kv
    out = kernels.paged_decode_attention(q, kv, tables, lens, 0.125, window, softcap=softcap, isa=isa)
    ref = kernels.reference_paged_decode_attention(q, kv, tables, lens, 0.125, window, softcap=softcap)
    assert_close_to_reference(out, ref)
    uncapped = kernels.reference_paged_decode_attention(q, kv, tables, lens, 0.125, window)
    assert (uncapped - ref).abs().max() > 100 * BOUND * ref.abs().max()  # the cap changes the result


def test_window_skips_blocks_it_does_not_reach() -> None:
    """Blocks entirely before the window are not read, so they may hold anything (here NaN)."""
    q, kv, tables, lens = paged_case(4, 2, 64, 16, [100], seed=3)
    stale = tables[0, :3]  # positions 0..47, all before the window of the last 40 (60..99)
    kv[:, stale] = float("nan")
    out = kernels.paged_decode_attention(q, kv, tables, lens, 0.125, 40)
    assert_close_to_reference(out, kernels.reference_paged_decode_attention(q, kv, tables, lens, 0.125, 40))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("hq,hk,d", [(9, 1, 64), (32, 2, 64), (40, 8, 48), (6, 2, 72), (3, 1, 40), (4, 2, 12)])
def test_large_groups_and_odd_head_dims(hq: int, hk: int, d: int, isa: str) -> None:
    """Groups of more than 8 heads (several head chunks, a partial last one) and head dims the
    wider kernels do not take (they fall back to narrower ones or plain C)."""
    q, kv, tables, lens = paged_case(hq, hk, d, 16, LENGTHS, seed=d)
    out = kernels.paged_decode_attention(q, kv, tables, lens, d**-0.5, isa=isa)
    assert_close_to_reference(out, kernels.reference_paged_decode_attention(q, kv, tables, lens, d**-0.5))


def test_large_scores_stay_finite() -> None:
    """Scores in the hundreds: the running max keeps every exp in range."""
    q, kv, tables, lens = paged_case(14, 2, 64, 16, LENGTHS, seed=5)
    out = kernels.paged_decode_attention(q * 40, kv, tables, lens, 0.125)
    assert torch.isfinite(out).all()
    assert_close_to_reference(out, kernels.reference_paged_decode_attention(q * 40, kv, tables, lens, 0.125))


def test_threads_give_identical_results() -> None:
    """Each (sequence, KV head) is computed by one thread in a fixed order: bitwise equal."""
    q, kv, tables, lens = paged_case(14, 2, 64, 16, LENGTHS * 3, seed=1)
    one = kernels.paged_decode_attention(q, kv, tables, lens, 0.125, num_threads=1)
    for threads in (2, 3, 7):
        assert torch.equal(kernels.paged_decode_attention(q, kv, tables, lens, 0.125, num_threads=threads), one)


def test_out_int32_lengths_and_empty_batch() -> None:
    q, kv, tables, lens = paged_case(8, 2, 64, 16, [5, 40], seed=2)
    out = torch.full_like(q, float("nan"))
    got = kernels.paged_decode_attention(q, kv, tables, lens.to(torch.int32), 0.125, out=out)
    assert got is out
    assert_close_to_reference(out, kernels.reference_paged_decode_attention(q, kv, tables, lens, 0.125))
    empty = kernels.paged_decode_attention(q[:0], kv, tables[:0], lens[:0], 0.125)
    assert empty.shape == (0, 8, 64)


def _bad_calls():
    q, kv, tables, lens = paged_case(8, 2, 64, 16, [5, 40], seed=4)
    num_blocks = kv.shape[1]
    yield "q float64", dict(q=q.double())
    yield "q not contiguous", dict(q=q.transpose(1, 2).contiguous().transpose(1, 2))
    yield "q 2-D", dict(q=q[0])
    yield "kv 4-D", dict(kv=kv[0])
    yield "kv head dim", dict(kv=kv[..., :32].contiguous())
    yield "kv bfloat16", dict(kv=kv.bfloat16())
    yield "heads not a multiple", dict(q=torch.randn(2, 7, 64))
    yield "no KV heads", dict(kv=kv[:, :, :, :0].contiguous())
    yield "no blocks", dict(kv=kv[:, :0].contiguous())
    yield "tables int32", dict(tables=tables.int())
    yield "tables rows", dict(tables=tables[:1])
    yield "lens shape", dict(lens=lens[:1])
    yield "lens float", dict(lens=lens.float())
    yield "length 0", dict(lens=torch.tensor([0, 40]))
    yield "length past the table", dict(lens=torch.tensor([5, tables.shape[1] * 16 + 1]))
    bad = tables.clone()
    bad[1, 1] = num_blocks
    yield "block id past the cache", dict(tables=bad)
    bad = tables.clone()
    bad[0, 0] = -1
    yield "negative block id", dict(tables=bad)
    yield "window 0", dict(window=0)
    yield "softcap 0", dict(softcap=0.0)
    yield "softcap negative", dict(softcap=-30.0)
    yield "softcap infinite", dict(softcap=float("inf"))
    yield "softcap NaN", dict(softcap=float("nan"))
    yield "out shape", dict(out=torch.empty(2, 8, 32))
    yield "isa", dict(isa="sse9")


@pytest.mark.parametrize("name,change", list(_bad_calls()), ids=[n for n, _ in _bad_calls()])
def test_bad_arguments_raise_value_error(name: str, change: dict) -> None:
    q, kv, tables, lens = paged_case(8, 2, 64, 16, [5, 40], seed=4)
    args = dict(q=q, kv=kv, tables=tables, lens=lens, window=None, out=None, isa=None, softcap=None) | change
    with pytest.raises(ValueError):
        kernels.paged_decode_attention(
            args["q"], args["kv"], args["tables"], args["lens"], 0.125, args["window"], out=args["out"], isa=args["isa"],
            softcap=args["softcap"],
        )


def test_unused_table_entries_are_not_checked() -> None:
    """Padding past a sequence's last block (the model runner pads with 0) is never read."""
    q, kv, tables, lens = paged_case(8, 2, 64, 16, [5, 40], seed=6)
    tables[0, 1:] = 10**9
    out = kernels.paged_decode_attention(q, kv, tables, lens, 0.125)
    assert_close_to_reference(out, kernels.reference_paged_decode_attention(q, kv, tables, lens, 0.125))


def _decode_metadata(tables: torch.Tensor, lens: list[int], block_size: int, window: int | None,
                     softcap: float | None = None) -> AttentionMetadata:
    slots = [int(tables[i, (n - 1) // block_size]) * block_size + (n - 1) % block_size for i, n in enumerate(lens)]
    return AttentionMetadata(
        block_size=block_size,
        slot_mapping=torch.tensor(slots),
        block_tables=tables,
        query_start_loc=list(range(len(lens) + 1)),
        context_lens=[n - 1 for n in lens],
        seq_lens=lens,
        seq_lens_tensor=torch.tensor(lens),
        all_decode=True,
        sliding_window=window,
        logit_softcap=softcap,
    )


@pytest.mark.parametrize("use_kernel", [True, False], ids=["kernel", "gathered"])
@pytest.mark.parametrize("lens,window,softcap", [(LENGTHS, None, None), ([37] * 4, None, None), (LENGTHS, 16, None),
                                                 ([20, 20], 30, None), (LENGTHS, 16, 0.5)])
def test_backend_decode_paths(lens: list[int], window: int | None, softcap: float | None, use_kernel: bool) -> None:
    """The torch backend's decode step, with the kernel and with gathered K/V (ragged lengths, equal
    lengths where no mask is built, a window, soft-capped scores): the new token's K/V are written,
    then attended."""
    hq, hk, d, bs = 14, 2, 64, 16
    q, kv, tables, _ = paged_case(hq, hk, d, bs, lens, seed=len(lens))
    gen = torch.Generator().manual_seed(9)
    k_new, v_new = torch.randn(len(lens), hk, d, generator=gen), torch.randn(len(lens), hk, d, generator=gen)
    meta = _decode_metadata(tables, lens, bs, window, softcap)
    backend = TorchPagedAttention(use_kernel=use_kernel)
    out = backend.forward(q, k_new, v_new, kv, meta, d**-0.5)
    assert (meta.decode_slots is None) == use_kernel  # the kernel needs no gathered slot table
    for i, n in enumerate(lens):  # the new K/V went to each sequence's last position
        block, offset = int(tables[i, (n - 1) // bs]), (n - 1) % bs
        assert torch.equal(kv[0, block, offset], k_new[i]) and torch.equal(kv[1, block, offset], v_new[i])
    ref = kernels.reference_paged_decode_attention(q, kv, tables, meta.seq_lens_tensor, d**-0.5, window, softcap)
    assert_close_to_reference(out, ref)


@pytest.mark.parametrize("route", ["kernel", "sdpa", "both"])
@pytest.mark.parametrize("window,softcap", [(None, None), (12, None), (12, 0.5)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_backend_prefill_reads_what_the_cache_holds(dtype: torch.dtype, window: int | None, softcap: float | None,
                                                    route: str, monkeypatch) -> None:
    """Mixed prefill chunks: a whole prompt (on SDPA its K/V are taken from the step, rounded as the
    cache stores them), a later chunk over cached positions, and a decode token, against float64
    over the cache's contents after the step's writes. Through the kernel (each query a decode
    query), through SDPA (torch's soft-capped scores when capped), or both: the 37-position prompt
    past the kernel's length limit."""
    hq, hk, d, bs = 14, 2, 64, 16
    ctx, lens = [0, 20, 9], [37, 30, 10]  # chunks of 37, 10 and 1 tokens
    if route == "both":
        monkeypatch.setattr(torch_paged, "PREFILL_KERNEL_MAX_LEN", 32)
    _, kv, tables, _ = paged_case(hq, hk, d, bs, lens, seed=3)
    kv = kv.to(dtype)
    gen = torch.Generator().manual_seed(4)
    n = sum(s - c for c, s in zip(ctx, lens))
    q, k, v = (torch.randn(n, h, d, generator=gen) for h in (hq, hk, hk))
    slots, starts = [], [0]
    for i, (c, s) in enumerate(zip(ctx, lens)):
        slots += [int(tables[i, p // bs]) * bs + p % bs for p in range(c, s)]
        starts.append(starts[-1] + s - c)
    meta = AttentionMetadata(block_size=bs, slot_mapping=torch.tensor(slots), block_tables=tables,
                             query_start_loc=starts, context_lens=ctx, seq_lens=lens,
                             seq_lens_tensor=torch.tensor(lens), all_decode=False, sliding_window=window,
                             logit_softcap=softcap)
    backend = TorchPagedAttention(use_kernel=route != "sdpa")
    expected_route = {"kernel": [0, 1, 2], "sdpa": [], "both": [1, 2]}[route]
    assert backend._kernel_sequences(q, kv, meta) == expected_route
    out = backend.forward(q, k, v, kv, meta, d**-0.5)
    for i, (c, s) in enumerate(zip(ctx, lens)):
        rows = [int(tables[i, p // bs]) * bs + p % bs for p in range(s)]
        keys = kv[0].reshape(-1, hk, d)[rows].double().repeat_interleave(hq // hk, dim=1)  # (S, Hq, D)
        values = kv[1].reshape(-1, hk, d)[rows].double().repeat_interleave(hq // hk, dim=1)
        qs = q[starts[i]:starts[i + 1]].double()  # (n, Hq, D)
        scores = torch.einsum("nhd,shd->hns", qs, keys) * d**-0.5
        if softcap:
            scores = torch.tanh(scores / softcap) * softcap
        k_pos, q_pos = torch.arange(s)[None, :], torch.arange(c, s)[:, None]
        seen = (k_pos <= q_pos) & ((k_pos > q_pos - window) if window else True)  # (n, S)
        probs = torch.softmax(scores.masked_fill(~seen, float("-inf")), dim=-1)
        ref = torch.einsum("hns,shd->nhd", probs, values)
        assert_close_to_reference(out[starts[i]:starts[i + 1]], ref)


def _bit_patterns(n: int, gen: torch.Generator) -> torch.Tensor:
    """float32 values across every float16 regime: random bit patterns of magnitudes from 2^-27
    to 2^17 (zeros, subnormals, normals, overflow), exact ties between two halves, and specials."""
    exps = torch.randint(100, 144, (n,), generator=gen)  # biased float32 exponents
    mant = torch.randint(0, 1 << 23, (n,), generator=gen)
    mant[: n // 4] = (mant[: n // 4] & ~0x1FFF) | 0x1000  # halfway between two normal halves
    sign = torch.randint(0, 2, (n,), generator=gen) << 31
    x = ((sign | (exps << 23) | mant).to(torch.int32)).view(torch.float32)
    special = torch.tensor([0.0, -0.0, 65504.0, 65519.9, 65520.0, -70000.0, float("inf"), float("-inf"),
                            2.0**-24, 2.0**-25, 1.5 * 2.0**-25, 2.0**-14, 6.1e-5])
    x[: special.numel()] = special
    return x


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_kernel_writes_new_keys_and_values_as_index_copy_does(dtype: torch.dtype, isa: str) -> None:
    hq, hk, d, bs, lens = 8, 2, 64, 16, [5, 17, 40, 1]
    q, kv, tables, seq_lens = paged_case(hq, hk, d, bs, lens, seed=11)
    kv = kv.to(dtype)
    gen = torch.Generator().manual_seed(12)
    k_new = _bit_patterns(len(lens) * hk * d, gen).view(len(lens), hk, d)
    v_new = torch.randn(len(lens), hk, d, generator=gen)
    slots = torch.tensor([int(tables[i, (n - 1) // bs]) * bs + (n - 1) % bs for i, n in enumerate(lens)])
    expected = kv.clone()
    expected[0].view(-1, hk, d).index_copy_(0, slots, k_new.to(dtype))
    expected[1].view(-1, hk, d).index_copy_(0, slots, v_new.to(dtype))
    kernels.paged_decode_attention(q, kv, tables, seq_lens, 0.125, new_kv=(k_new, v_new, slots), isa=isa)
    assert torch.equal(kv.view(torch.uint8), expected.view(torch.uint8))  # bit for bit, signed zeros too
    # Written before they are read: the new positions count in the result.
    k_new = torch.randn(len(lens), hk, d, generator=gen)
    out = kernels.paged_decode_attention(q, kv, tables, seq_lens, 0.125, new_kv=(k_new, v_new, slots), isa=isa)
    assert torch.equal(kv[0].view(-1, hk, d)[slots], k_new.to(dtype))
    assert_close_to_reference(out, kernels.reference_paged_decode_attention(q, kv, tables, seq_lens, 0.125))


def test_kernel_refuses_a_slot_outside_the_cache_before_writing() -> None:
    q, kv, tables, seq_lens = paged_case(8, 2, 64, 16, [5, 9], seed=13)
    before = kv.clone()
    new = torch.ones(2, 2, 64)
    for bad in (-1, kv.shape[1] * kv.shape[2]):
        with pytest.raises(ValueError, match=r"slots\[1\]"):
            kernels.paged_decode_attention(q, kv, tables, seq_lens, 0.125, new_kv=(new, new, torch.tensor([3, bad])))
    assert torch.equal(kv, before)
    with pytest.raises(ValueError, match="new keys"):
        kernels.paged_decode_attention(q, kv, tables, seq_lens, 0.125, new_kv=(new[:1], new, torch.tensor([3, 4])))
