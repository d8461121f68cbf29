"""Quantized matmul over GGUF blocks: out(T, N) = x(T, K) @ W(N, K)^T, W never dequantized.

The C extension `_qmatmul` (built by setup.py from csrc/) does the work; this module checks
arguments and hands it raw addresses. `reference_qmatmul` is the float64 ground truth tests use.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

if TYPE_CHECKING:
    from corral.loader.quantized import QuantizedWeight

try:
    from corral.kernels import _qmatmul as _ext
except ImportError:  # not built (no C compiler at install time): callers use dense weights
    _ext = None

# GGML type name -> (type id in GGUF files, values per block, bytes per block)
_TYPES: dict[str, tuple[int, int, int]] = {
    "Q4_0": (2, 32, 18),
    "Q4_1": (3, 32, 20),
    "Q5_0": (6, 32, 22),
    "Q5_1": (7, 32, 24),
    "Q8_0": (8, 32, 34),
    "Q2_K": (10, 256, 84),
    "Q3_K": (11, 256, 110),
    "Q4_K": (12, 256, 144),
    "Q5_K": (13, 256, 176),
    "Q6_K": (14, 256, 210),
    "IQ4_NL": (20, 32, 18),
    "IQ4_XS": (23, 256, 136),
}

SUPPORTED_TYPES: frozenset[str] = frozenset(_TYPES)
_X16_TYPE_ID = 16  # QT_Q4_0_X16 in csrc/qtypes.h: Q4_0 in groups of 16 rows, made by pack(repack=True)

_LEVELS = ("scalar", "avx2", "avxvnni", "avx512vnni")
_BEST = _ext.best_level() if _ext is not None else 0


def is_available() -> bool:
    """True when the compiled kernels can be used in this process."""
    return _ext is not None


def isa_levels() -> tuple[str, ...]:
    """Kernel sets this CPU can run, slowest first; the last one is the default."""
    if _ext is None:
        return ()
    return tuple(name for i, name in enumerate(_LEVELS) if _ext.level_supported(i))


@dataclass(frozen=True)
class PackedWeight:
    """A quantized weight ready for `qmatmul`: the GGUF bytes themselves (no copy), or, with
    `pack(..., repack=True)` for Q4_0 on CPUs with AVX-512, a copy of them rearranged in groups
    of 16 rows (`layout == "x16"`, the same bytes per value).

    `data` is uint8 (N, row_stride-or-more) whose rows hold K / block_size blocks each (for "x16",
    each 16 consecutive rows of it hold one group); keeping it here keeps the memory map (and so
    the address handed to C) alive.
    """

    type_name: str
    shape: tuple[int, int]  # (N, K) = (out_features, in_features)
    data: np.ndarray
    type_id: int
    row_stride: int  # bytes between the starts of consecutive rows
    layout: str = "gguf"  # or "x16": Q4_0 in groups of 16 rows, for the AVX-512 kernels
    # True: matmuls keep the activations in float32 (`pack(..., float_activations=True)`)
    float_activations: bool = False
    addr: int = field(init=False, repr=False, compare=False)  # of data[0, 0]; numpy's lookup costs ~2 us

    def __post_init__(self) -> None:
        object.__setattr__(self, "addr", self.data.ctypes.data)

    @property
    def nbytes(self) -> int:
        n, k = self.shape
        _, block, size = _TYPES[self.type_name]
        return n * (k // block) * size


def float_activations_fast() -> bool:
    """True when this CPU has the SIMD kernels for float32 activations (AVX-512); elsewhere they
    run portable C, slower than a dense float32 matmul."""
    return _ext is not None and _BEST == _LEVELS.index("avx512vnni")


def pack(qw: QuantizedWeight, repack: bool = False, float_activations: bool = False) -> PackedWeight:
    """Wrap a QuantizedWeight for the kernels. Raises ValueError for an unsupported type or bytes
    that do not match the shape. Rows must be contiguous within themselves (they are in GGUF).

    With `float_activations`, matmuls of the weight never round the activations: each group of
    rows is unpacked to its exact float32 values in a small buffer and dotted in float32 (what a
    dense matmul of the dequantized weight gives, up to summation order), instead of the int8
    activations of llama.cpp's kernels; slower per token, for models whose answers depend on it.

    With `repack`, a Q4_0 weight of a multiple of 16 rows is copied into groups of 16 rows where
    the CPU has AVX-512 VNNI: its matmuls then read the weight straight from the groups, 8 tokens
    at a time, with no unpacking pass (docs/benchmarks.md: 1.3-1.5x at 16 tokens, 1.1-1.2x at one
    token from DRAM and at 512). Other weights, and every weight on other CPUs, are wrapped as
    they are; other kernel sets (`isa=`) run "x16" weights through their tiles."""
    if qw.type_name not in _TYPES:
        raise ValueError(f"no quantized kernel for {qw.type_name}; supported: {sorted(SUPPORTED_TYPES)}")
    type_id, block, size = _TYPES[qw.type_name]
    n, k = (int(d) for d in qw.shape)
    if k % block != 0:
        raise ValueError(f"{qw.type_name} rows need a multiple of {block} values, got {k}")
    data = qw.data
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[0] != n or data.shape[1] != k // block * size:
        raise ValueError(
            f"{qw.type_name} weight {qw.shape} needs uint8 data of shape {(n, k // block * size)}, "
            f"got {data.dtype} {data.shape}"
        )
    if data.strides[1] != 1 or data.strides[0] < data.shape[1]:
        data = np.ascontiguousarray(data)
    if float_activations:
        return PackedWeight(qw.type_name, (n, k), data, type_id, int(data.strides[0]), float_activations=True)
    if repack and qw.type_name == "Q4_0" and n % 16 == 0 and _BEST == _LEVELS.index("avx512vnni"):
        grouped = np.empty((n, k // block * size), dtype=np.uint8)
        _ext.repack_q4_0_x16(data.ctypes.data, int(data.strides[0]), n, k, grouped.ctypes.data)
        return PackedWeight(qw.type_name, (n, k), grouped, _X16_TYPE_ID, k // block * size, "x16")
    return PackedWeight(qw.type_name, (n, k), data, type_id, int(data.strides[0]))


def qmatmul(
    x: torch.Tensor,
    w: PackedWeight,
    out: torch.Tensor | None = None,
    *,
    num_threads: int | None = None,
    isa: str | None = None,
) -> torch.Tensor:
    """out(T, N) float32 = x(T, K) float32 @ W^T, computed from W's quantized blocks.

    x must be a CPU float32 tensor (made contiguous if it is not). The activation is quantized to
    int8 per block of 32 (or 256 for K-quants with few tokens) like llama.cpp does, so results
    differ from a float matmul by about 1/254 of |x| * |w| per dot product; a weight packed with
    `float_activations` keeps x in float32. `num_threads` defaults
    to torch.get_num_threads(); `isa` picks a kernel set from `isa_levels()` (default: the best).
    """
    if _ext is None:
        raise RuntimeError("corral's quantized kernels are not built; use a dense weight instead")
    n, k = w.shape
    if x.dim() != 2 or x.shape[1] != k:
        raise ValueError(f"x must be (T, {k}), got {tuple(x.shape)}")
    if x.dtype != torch.float32 or not x.is_cpu:
        raise ValueError(f"x must be a CPU float32 tensor, got {x.dtype} on {x.device}")
    x = x.contiguous()
    t = x.shape[0]
    if out is None:
        out = x.new_empty((t, n))  # x is CPU float32 here; new_empty is ~1 us cheaper than torch.empty
    elif out.shape != (t, n) or out.dtype != torch.float32 or not out.is_contiguous():
        raise ValueError(f"out must be a contiguous float32 ({t}, {n}) tensor")
    if t == 0:
        return out
    level = _BEST if isa is None else isa_level(isa)
    threads = num_threads if num_threads is not None else torch.get_num_threads()
    if w.float_activations:
        _ext.qmatmul_float(level, [(w.type_id, w.addr, w.row_stride, n, out.data_ptr())], k, x.data_ptr(), t, threads)
    else:
        _ext.qmatmul(level, w.type_id, w.addr, w.row_stride, n, k, x.data_ptr(), t, out.data_ptr(), threads)
    return out


def qmatmul_many(
    x: torch.Tensor,
    weights: Sequence[PackedWeight],
    *,
    out: Sequence[torch.Tensor] | None = None,
    num_threads: int | None = None,
    isa: str | None = None,
) -> list[torch.Tensor]:
    """[x @ W^T for W in weights], each (T, N_i) float32 and bitwise what `qmatmul(x, W)` gives.

    For weights that read the same input (q/k/v, gate/up): x is quantized once and, for few tokens,
    all rows of all weights share one parallel region. Weights may differ in type and row count
    but must all have K = x.shape[1] columns. `out` gives one contiguous CPU float32 tensor per
    weight to write into, of any shape with T * N_i elements (e.g. (T, heads, head_dim)); they are
    what is returned then.
    """
    if _ext is None:
        raise RuntimeError("corral's quantized kernels are not built; use a dense weight instead")
    if x.dim() != 2:
        raise ValueError(f"x must be (T, K), got {tuple(x.shape)}")
    if x.dtype != torch.float32 or not x.is_cpu:
        raise ValueError(f"x must be a CPU float32 tensor, got {x.dtype} on {x.device}")
    t, k = x.shape
    for w in weights:
        if w.shape[1] != k:
            raise ValueError(f"every weight needs K = {k} columns, got a {w.type_name} weight of shape {w.shape}")
    x = x.contiguous()
    if out is None:
        outs = [x.new_empty((t, w.shape[0])) for w in weights]
    else:
        outs = list(out)
        if len(outs) != len(weights) or any(
            o.dtype != torch.float32 or not o.is_cpu or not o.is_contiguous() or o.numel() != t * w.shape[0]
            for w, o in zip(weights, outs)
        ):
            raise ValueError(f"out must be {len(weights)} contiguous CPU float32 tensors of T * N elements, "
                             f"N = {[w.shape[0] for w in weights]}, T = {t}")
    if t == 0 or not weights:
        return outs
    level = _BEST if isa is None else isa_level(isa)
    threads = num_threads if num_threads is not None else torch.get_num_threads()
    jobs = [(w.type_id, w.addr, w.row_stride, w.shape[0], o.data_ptr()) for w, o in zip(weights, outs)]
    exact = [job for job, w in zip(jobs, weights) if w.float_activations]
    if exact:
        _ext.qmatmul_float(level, exact, k, x.data_ptr(), t, threads)
    if len(exact) < len(jobs):
        _ext.qmatmul_many(level, [job for job, w in zip(jobs, weights) if not w.float_activations],
                          k, x.data_ptr(), t, threads)
    return outs


def qmatmul_each(xs: Sequence[torch.Tensor], weights: Sequence[PackedWeight], *,
                 num_threads: int | None = None, isa: str | None = None) -> list[torch.Tensor]:
    """[x @ W^T for x, W in zip(xs, weights)], each (T, N_i) float32 and bitwise what `qmatmul(x, W)`
    gives: a mixture's experts each on its own activations, in one parallel region where the
    kernels allow (few tokens). Every x must be a CPU float32 (T, K) tensor of the same T and K."""
    if _ext is None:
        raise RuntimeError("corral's quantized kernels are not built; use a dense weight instead")
    if len(xs) != len(weights):
        raise ValueError(f"{len(xs)} inputs for {len(weights)} weights")
    if not weights:
        return []
    t, k = xs[0].shape if xs[0].dim() == 2 else (None, None)
    for x, w in zip(xs, weights):
        if x.dim() != 2 or tuple(x.shape) != (t, k) or w.shape[1] != k:
            raise ValueError(f"every x must be ({t}, K) with K = {k} columns of its weight, got {tuple(x.shape)} "
                             f"for a weight of shape {w.shape}")
        if x.dtype != torch.float32 or not x.is_cpu:
            raise ValueError(f"x must be a CPU float32 tensor, got {x.dtype} on {x.device}")
    if any(w.float_activations for w in weights):
        return [qmatmul(x, w, num_threads=num_threads, isa=isa) for x, w in zip(xs, weights)]
    xs = [x.contiguous() for x in xs]
    outs = [xs[0].new_empty((t, w.shape[0])) for w in weights]
    if t == 0:
        return outs
    level = _BEST if isa is None else isa_level(isa)
    threads = num_threads if num_threads is not None else torch.get_num_threads()
    jobs = [(w.type_id, w.addr, w.row_stride, w.shape[0], o.data_ptr(), x.data_ptr())
            for w, o, x in zip(weights, outs, xs)]
    _ext.qmatmul_each(level, jobs, k, t, threads)
    return outs


def row_dot_max_tokens(type_name: str, isa: str | None = None) -> int:
    """Most tokens (rows of x) a call takes through row dots, which read each weight block once and
    dot it with every token's activation; more go through tiles of 16 tokens. 0: tiles only."""
    level = _BEST if isa is None else isa_level(isa)
    return _ext.row_dot_max_tokens(level, _TYPES[type_name][0])


def isa_level(isa: str) -> int:
    """The C extension's level number of a kernel set from `isa_levels()`."""
    levels = isa_levels()
    if isa not in levels:
        raise ValueError(f"kernel set {isa!r} does not run on this CPU; available: {list(levels)}")
    return _LEVELS.index(isa)



def reference_qmatmul(x: torch.Tensor, qw: QuantizedWeight) -> torch.Tensor:
    """float64 (T, N): x in float64 times W dequantized by gguf-py, also in float64."""
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize

    dense = dequantize(np.ascontiguousarray(qw.data), GGMLQuantizationType[qw.type_name])
    w = torch.from_numpy(np.asarray(dense, dtype=np.float64).reshape(qw.shape))
    return x.to(torch.float64) @ w.T
