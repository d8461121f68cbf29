"""The fused small ops (corral.kernels.ops) against the unfused computations they replace, in
float64: on every kernel set this CPU runs and on the torch path taken without the extension.

Bounds: float32 rounding of one pass over a row, relative to the row's scale (a few 1e-7);
1e-5 leaves room for the sum of squares over a few thousand values.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import corral.kernels.ops as ops
from corral import kernels
from corral.layers.rotary import RotaryEmbedding

PATHS = ["torch", *kernels.isa_levels()] if ops.is_available() else ["torch"]
TOL = 1e-5


@pytest.fixture(params=PATHS)
def path(request, monkeypatch) -> str | None:
    """The kernel set to pass as `isa`, or None with the extension hidden (the torch path)."""
    if request.param == "torch":
        monkeypatch.setattr(ops, "_ext", None)
        return None
    return request.param


@pytest.fixture(autouse=True)
def two_threads():
    """The larger cases split rows over threads (from 65536 values) whatever OMP_NUM_THREADS says."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _close(actual: torch.Tensor, expected: torch.Tensor, tol: float = TOL) -> bool:
    scale = expected.abs().max().item() or 1.0
    return (actual.double() - expected).abs().max().item() <= tol * scale


def _ref_rms_norm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    x = x.double()
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w.double()


def _ref_rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Hugging Face's apply_rotary_pos_emb in float64: x (T, H, D), cos/sin (T, D)."""
    half = x.shape[-1] // 2
    x, cos, sin = x.double(), cos.double()[:, None], sin.double()[:, None]
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


SHAPES = [(1, 896), (3, 37), (5, 7), (2, 3, 4864), (300, 896)]  # the last runs over threads


@pytest.mark.parametrize("shape", SHAPES)
def test_rms_norm(path, shape) -> None:
    torch.manual_seed(0)
    x, w = torch.randn(shape) * 3, torch.randn(shape[-1])
    assert _close(ops.rms_norm(x, w, 1e-6, isa=path), _ref_rms_norm(x, w, 1e-6))
    out = x.clone()
    assert ops.rms_norm(out, w, 1e-5, out=out, isa=path) is out  # in place
    assert _close(out, _ref_rms_norm(x, w, 1e-5))


@pytest.mark.parametrize("shape", SHAPES)
def test_add_rms_norm_updates_the_residual(path, shape) -> None:
    torch.manual_seed(1)
    x, residual, w = torch.randn(shape), torch.randn(shape) * 10, torch.randn(shape[-1])
    total = residual + x  # float32, as the unfused residual add computes it
    r = residual.clone()
    y = ops.add_rms_norm(x, r, w, 1e-6, isa=path)
    assert torch.equal(r, total)
    assert _close(y, _ref_rms_norm(total, w, 1e-6))
    x2, r2 = x.clone(), residual.clone()
    assert ops.add_rms_norm(x2, r2, w, 1e-6, out=x2, isa=path) is x2  # the layer's way: x is dead after
    assert torch.equal(r2, total) and _close(x2, _ref_rms_norm(total, w, 1e-6))


def _rope_tables(kind: str, head_dim: int, positions: torch.Tensor):
    scaling = {
        "default": None,
        "linear": {"rope_type": "linear", "factor": 4.0},
        "llama3": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 64},
        "yarn": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64},  # cos^2 + sin^2 != 1
    }[kind]
    return RotaryEmbedding(head_dim, 1024, 10000.0, scaling).tables(positions)


@pytest.mark.parametrize("kind", ["default", "linear", "llama3", "yarn"])
@pytest.mark.parametrize("t,hq,hk,d", [(1, 14, 2, 64), (3, 3, 1, 6), (7, 5, 5, 34), (300, 8, 2, 128)])
def test_rope_against_rotate_half(path, kind, t, hq, hk, d) -> None:
    torch.manual_seed(2)
    positions = torch.randint(0, 1024, (t,))
    cos, sin = _rope_tables(kind, d, positions)
    q, k, v = torch.randn(t, hq, d), torch.randn(t, hk, d), torch.randn(t, hk, d)
    q2, k2, v2 = q.clone(), k.clone(), v.clone()
    ops.bias_norm_rope_(q2, k2, v2, cos, sin, isa=path)
    assert _close(q2, _ref_rotate(q, cos, sin)) and _close(k2, _ref_rotate(k, cos, sin))
    assert torch.equal(v2, v)  # no bias: v is left alone


@pytest.mark.parametrize("t,hq,hk,d", [(1, 14, 2, 64), (2, 4, 2, 128), (5, 3, 1, 10), (300, 8, 2, 64)])
@pytest.mark.parametrize("bias,qk_norm", [(True, False), (False, True), (True, True)])
def test_bias_and_qk_norm_before_rope(path, t, hq, hk, d, bias, qk_norm) -> None:
    torch.manual_seed(3)
    cos, sin = _rope_tables("default", d, torch.arange(100, 100 + t))
    q, k, v = torch.randn(t, hq, d), torch.randn(t, hk, d), torch.randn(t, hk, d)
    bq, bk, bv = (torch.randn(h * d) if bias else None for h in (hq, hk, hk))
    nq, nk = (torch.randn(d) if qk_norm else None for _ in range(2))
    q2, k2, v2 = q.clone(), k.clone(), v.clone()
    ops.bias_norm_rope_(q2, k2, v2, cos, sin, q_bias=bq, k_bias=bk, v_bias=bv, q_norm=nq, k_norm=nk, eps=1e-6,
                        isa=path)

    def expected(x, b, n):  # Qwen2 adds the bias in the projection, Qwen3 norms each head, then rotary
        x = x.double() + (b.double().view(x.shape[1], d) if b is not None else 0)
        return _ref_rotate(_ref_rms_norm(x, n, 1e-6) if n is not None else x, cos, sin)

    assert _close(q2, expected(q, bq, nq)) and _close(k2, expected(k, bk, nk))
    assert _close(v2, v.double() + (bv.double().view(hk, d) if bias else 0))


@pytest.mark.parametrize("n", [1, 7, 16, 4864, 3 * 4864, 40_000, 100_003])  # from 32768 values: over threads
def test_silu_mul(path, n) -> None:
    torch.manual_seed(4)
    gate = torch.randn(n) * 8
    gate[:4] = torch.tensor([-200.0, 200.0, 0.0, -90.0])[: min(4, n)]  # tails where exp over/underflows
    up = torch.randn(n)
    expected = F.silu(gate.double()) * up.double()
    for out in (None, gate.clone()):  # out may be gate itself
        g = gate if out is None else out
        y = ops.silu_mul(g, up, out=out, isa=path)
        err = (y.double() - expected).abs()
        assert (err <= 1e-6 * expected.abs() + 1e-30).all()


@pytest.mark.parametrize("n", [1, 7, 16, 4864, 40_000, 100_003])
def test_gelu_tanh_mul(path, n) -> None:
    """GELU's tanh form as Gemma's MLP uses it (transformers' gelu_pytorch_tanh). The reference is
    its identity x sigmoid(2u), u = sqrt(2 / pi) (x + 0.044715 x^3), in float64: 0.5 x (1 + tanh(u))
    cancels where tanh(u) nears -1, even in float64. Bound: float32 roundings of 2u, relative, and
    for the torch path (float32 tanh, with that cancellation) also 1e-7 |x up|."""
    torch.manual_seed(6)
    gate = torch.randn(n) * 4
    gate[:5] = torch.tensor([-200.0, 200.0, 0.0, -9.0, 12.0])[: min(5, n)]
    up = torch.randn(n)
    g64 = gate.double()
    two_u = 2 * np.sqrt(2 / np.pi) * (g64 + 0.044715 * g64**3)
    expected = g64 * torch.sigmoid(two_u) * up.double()
    ordinary = g64.abs() < 3  # where torch's own float64 form is exact enough to compare with too
    assert not ordinary.any() or _close(expected[ordinary], F.gelu(g64[ordinary], approximate="tanh") * up.double()[ordinary], 1e-12)
    for out in (None, gate.clone()):
        g = gate if out is None else out
        y = ops.gelu_tanh_mul(g, up, out=out, isa=path)
        err = (y.double() - expected).abs()
        bound = 1e-6 * expected.abs() * (1 + two_u.abs()) + (1e-7 if path is None else 0) * (g64 * up.double()).abs()
        assert (err <= bound + 1e-30).all(), float((err / (bound + 1e-30)).max())


@pytest.mark.parametrize("v", [1, 15, 64, 65, 1000, 151_936])  # 16 rows of the last run over threads
def test_argmax_rows(path, v) -> None:
    g = torch.Generator().manual_seed(v)
    x = torch.randn(16, v, generator=g)
    x[1] = 0.0  # all tied: the first
    x[2, v // 2] = x[2].max() + 1
    x[2, -1] = x[2, v // 2]  # tied maxima: the first of them
    x[3] = float("-inf")
    x[4, v // 3] = float("nan")  # a NaN wins, as in numpy
    x[5, -1] = float("inf")
    x[6, v - 1] = float("nan")
    x[6, 0] = float("inf")
    expected = torch.from_numpy(x.numpy().argmax(axis=-1))
    got = ops.argmax_rows(x, isa=path)
    assert got.dtype == torch.int64 and torch.equal(got, expected)
    assert got[1] == 0 and got[2] == v // 2 and got[3] == 0 and got[4] == v // 3 and got[5] == v - 1


def test_argmax_rows_rejects_empty_rows() -> None:
    with pytest.raises(ValueError, match="V >= 1"):
        ops.argmax_rows(torch.empty(3, 0))


def test_other_dtypes_and_strided_views_take_the_torch_path() -> None:
    torch.manual_seed(5)
    x, w = torch.randn(4, 64, dtype=torch.bfloat16), torch.randn(64)
    y = ops.rms_norm(x, w, 1e-6)
    assert y.dtype == torch.bfloat16 and _close(y, _ref_rms_norm(x, w, 1e-6), 1e-2)
    q = torch.randn(3, 8, 2, 16).transpose(1, 2)[:, 0]  # (T, H, D) = (3, 8, 16), not contiguous
    k = torch.randn(3, 2, 16)
    cos, sin = _rope_tables("default", 16, torch.tensor([1, 5, 9]))
    q0 = q.clone()
    ops.bias_norm_rope_(q, k.clone(), None, cos, sin)
    assert _close(q, _ref_rotate(q0, cos, sin))
    gate = torch.randn(6, 10)[:, ::2]  # strided
    assert _close(ops.silu_mul(gate, torch.ones(6, 5)), F.silu(gate.double()))


def test_shape_errors_are_value_errors() -> None:
    w = torch.ones(8)
    with pytest.raises(ValueError):
        ops.rms_norm(torch.ones(2, 7), w, 1e-6)
    with pytest.raises(ValueError):
        ops.rms_norm(torch.ones(2, 8), w, 1e-6, out=torch.empty(3, 8))
    with pytest.raises(ValueError):
        ops.rms_norm(torch.ones(2, 8), torch.tensor(1.0), 1e-6)
    with pytest.raises(ValueError):
        ops.add_rms_norm(torch.ones(2, 8), torch.ones(1, 8), w, 1e-6)
    cos, sin = torch.ones(2, 8), torch.zeros(2, 8)
    q, k = torch.ones(2, 4, 8), torch.ones(2, 2, 8)
    with pytest.raises(ValueError):
        ops.bias_norm_rope_(q, torch.ones(3, 2, 8), None, cos, sin)
    with pytest.raises(ValueError):
        ops.bias_norm_rope_(q, k, None, cos, sin, q_bias=torch.ones(16))
    with pytest.raises(ValueError):
        ops.bias_norm_rope_(q, k, None, cos, sin, k_norm=torch.ones(4))
    with pytest.raises(ValueError):
        ops.bias_norm_rope_(q, k, None, cos, None)
    with pytest.raises(ValueError):
        ops.bias_norm_rope_(torch.ones(2, 4, 7), torch.ones(2, 2, 7), None, torch.ones(2, 7), torch.ones(2, 7))
    with pytest.raises(ValueError):
        ops.silu_mul(torch.ones(4), torch.ones(5))
    with pytest.raises(ValueError):
        ops.gelu_tanh_mul(torch.ones(4), torch.ones(4), out=torch.ones(5))
    if ops.is_available():
        with pytest.raises(ValueError, match="does not run"):
            ops.rms_norm(torch.ones(2, 8), w, 1e-6, isa="sse9")


@pytest.mark.skipif(not ops.is_available(), reason="kernels not built")
@pytest.mark.parametrize("type_name", sorted(kernels.SUPPORTED_TYPES))
def test_dequantize_rows_is_exact(type_name) -> None:
    from corral.kernels.random_blocks import random_blocks
    from corral.loader.quantized import QuantizedWeight
    from tests.kernels.kernel_bounds import dense_weight

    n, k = 40, 512
    qw = QuantizedWeight(type_name, (n, k), random_blocks(type_name, n, k, np.random.default_rng(6)))
    ids = torch.tensor([0, 39, 7, 7, 21])
    rows = ops.dequantize_rows(kernels.pack(qw), ids)
    assert rows.shape == (5, k) and rows.dtype == torch.float32
    assert torch.equal(rows.double(), dense_weight(qw)[ids])
    with pytest.raises(ValueError, match="row ids"):
        ops.dequantize_rows(kernels.pack(qw), torch.tensor([3, 40]))
    with pytest.raises(ValueError, match="int64"):
        ops.dequantize_rows(kernels.pack(qw), torch.tensor([3], dtype=torch.int32))


@pytest.mark.parametrize("with_ops", [True, False])
def test_quantized_embedding_lookup(monkeypatch, with_ops) -> None:
    from corral.kernels.random_blocks import random_blocks
    from corral.layers.embedding import Embedding
    from corral.loader.quantized import QuantizedWeight
    from tests.kernels.kernel_bounds import dense_weight

    if not with_ops:
        monkeypatch.setattr(ops, "_ext", None)
    qw = QuantizedWeight("Q4_0", (50, 64), random_blocks("Q4_0", 50, 64, np.random.default_rng(7)))
    emb = Embedding(50, 64)
    emb.load_param("weight", qw, keep_quantized=True)
    assert (emb.packed is not None) == ops.is_available()
    ids = torch.tensor([3, 49, 0])
    assert torch.equal(emb(ids).double(), dense_weight(qw)[ids])
