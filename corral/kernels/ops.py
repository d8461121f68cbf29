"""Small fused ops of a decoder layer: RMSNorm (with the residual add), the q/k/v epilogue (bias,
per-head norm, rotary), SiLU(gate) * up and GELU-tanh(gate) * up; the token embedding's lookup of quantized rows; and
greedy sampling's argmax over the logits.

At one token a decode step spends more time dispatching small torch ops than computing them, and
each op re-reads its inputs from caches the weight stream keeps evicting. Each op here is one
pass in C (`_qmatmul` extension, ops.c) for contiguous CPU float32 tensors; anything else (no
extension, GPU, bfloat16, strided views) runs the same math in torch, which is also what these
functions compute: the C path differs from it only by float rounding.

Shape errors raise ValueError. `isa` picks a kernel set from `corral.kernels.isa_levels()` (tests).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from corral.kernels.qmatmul import isa_level

if TYPE_CHECKING:
    from corral.kernels.qmatmul import PackedWeight

try:
    from corral.kernels import _qmatmul as _ext
except ImportError:  # not built: the torch path serves
    _ext = None
if _ext is not None and not hasattr(_ext, "gelu_tanh_mul"):  # an extension built before these ops
    _ext = None

_BEST = _ext.best_level() if _ext is not None else 0
_F32 = torch.float32


def is_available() -> bool:
    """True when the C versions run (for contiguous CPU float32 tensors)."""
    return _ext is not None


def _c_ok(*tensors: torch.Tensor | None) -> bool:
    if _ext is None:
        return False
    for t in tensors:
        if t is not None and (t.dtype is not _F32 or not t.is_cpu or not t.is_contiguous()):
            return False
    return True


def _level(isa: str | None) -> int:
    return _BEST if isa is None else isa_level(isa)


def _check_norm(x: torch.Tensor, weight: torch.Tensor, out: torch.Tensor | None) -> int:
    if weight.dim() != 1 or x.dim() == 0 or weight.shape[0] == 0 or x.shape[-1] != weight.shape[0]:
        raise ValueError(f"x (..., D) and a weight (D,) are needed, got x {tuple(x.shape)}, "
                         f"weight {tuple(weight.shape)}")
    d = weight.shape[0]
    if out is not None and out.shape != x.shape:
        raise ValueError(f"out must have x's shape {tuple(x.shape)}, got {tuple(out.shape)}")
    return d


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float, out: torch.Tensor | None = None, *,
             isa: str | None = None) -> torch.Tensor:
    """x / sqrt(mean(x^2, -1) + eps) * weight over the last dim, computed in float32 and returned in
    x's dtype. x: (..., D), weight: (D,). Written into `out` (x's shape; may be x) when given."""
    d = _check_norm(x, weight, out)
    if _c_ok(x, weight, out):
        if out is None:
            out = x.new_empty(x.shape)  # x is CPU float32 here; cheaper than torch.empty
        _ext.rms_norm(_level(isa), x.data_ptr(), 0, weight.data_ptr(), eps, x.numel() // d, d, out.data_ptr(),
                      torch.get_num_threads())
        return out
    y = _torch_rms_norm(x, weight, eps)
    return y if out is None else out.copy_(y)


def add_rms_norm(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float,
                 out: torch.Tensor | None = None, *, isa: str | None = None) -> torch.Tensor:
    """residual += x (in place), then rms_norm(residual): the residual stream's add fused with the
    next layer's norm. Returns the normed (..., D) tensor, in `out` when given (out may be x, not
    residual). x and residual have the same shape."""
    d = _check_norm(x, weight, out)
    if residual.shape != x.shape:
        raise ValueError(f"residual must have x's shape {tuple(x.shape)}, got {tuple(residual.shape)}")
    if _c_ok(x, residual, weight, out):
        if out is None:
            out = x.new_empty(x.shape)
        _ext.rms_norm(_level(isa), x.data_ptr(), residual.data_ptr(), weight.data_ptr(), eps, x.numel() // d, d,
                      out.data_ptr(), torch.get_num_threads())
        return out
    residual.add_(x)
    y = _torch_rms_norm(residual, weight, eps)
    return y if out is None else out.copy_(y)


def bias_norm_rope_(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor | None,
    cos: torch.Tensor | None,
    sin: torch.Tensor | None,
    *,
    q_bias: torch.Tensor | None = None,
    k_bias: torch.Tensor | None = None,
    v_bias: torch.Tensor | None = None,
    q_norm: torch.Tensor | None = None,
    k_norm: torch.Tensor | None = None,
    eps: float = 1e-6,
    isa: str | None = None,
) -> None:
    """The attention projections' epilogue, in place: q, k, v += their biases (H * D,); q and k
    RMSNormed per head by q_norm / k_norm (D,) (Qwen3); then q and k rotated by the half-split
    (rotate_half) rotary embedding with cos, sin (T, D). None skips a part (cos None: no rotary).

    q: (T, Hq, D), k and v: (T, Hk, D). Rotary needs an even D.
    """
    if q.dim() != 3 or k.dim() != 3:
        raise ValueError(f"q (T, Hq, D) and k (T, Hk, D) are needed, got {tuple(q.shape)} and {tuple(k.shape)}")
    t, hq, d = q.shape
    tk, hk, dk = k.shape
    if tk != t or dk != d or (v is not None and v.shape != k.shape):
        raise ValueError(f"q (T, Hq, D), k and v (T, Hk, D) are needed, got {tuple(q.shape)}, {tuple(k.shape)}"
                         + (f" and {tuple(v.shape)}" if v is not None else ""))
    if ((q_bias is not None and q_bias.shape != (hq * d,)) or (k_bias is not None and k_bias.shape != (hk * d,))
            or (v_bias is not None and (v is None or v_bias.shape != (hk * d,)))):
        raise ValueError(f"biases must be (H * D,): ({hq * d},) for q, ({hk * d},) for k and v; got "
                         f"{[None if b is None else tuple(b.shape) for b in (q_bias, k_bias, v_bias)]}")
    if (q_norm is not None and q_norm.shape != (d,)) or (k_norm is not None and k_norm.shape != (d,)):
        raise ValueError(f"q_norm and k_norm must be ({d},)")
    if (cos is not None or sin is not None) and (
            cos is None or sin is None or cos.shape != (t, d) or sin.shape != (t, d) or d % 2):
        raise ValueError(f"cos and sin go together, each ({t}, {d}) with an even head size")
    if _c_ok(q, k, v, cos, sin, q_bias, k_bias, v_bias, q_norm, k_norm):
        jobs = [(q.data_ptr(), hq, _addr(q_bias), _addr(q_norm), True),
                (k.data_ptr(), hk, _addr(k_bias), _addr(k_norm), True)]
        if v_bias is not None:
            jobs.append((v.data_ptr(), hk, v_bias.data_ptr(), 0, False))
        _ext.heads_epilogue(_level(isa), jobs, t, d, eps, _addr(cos), _addr(sin), torch.get_num_threads())
        return
    for x, b, w in ((q, q_bias, q_norm), (k, k_bias, k_norm)):
        if b is not None:
            x.add_(b.view(-1, d).to(x.dtype))
        if w is not None:
            x.copy_(_torch_rms_norm(x, w, eps))
        if cos is not None:
            c, s = cos[:, None, :].to(x.dtype), sin[:, None, :].to(x.dtype)  # (T, 1, D)
            x.copy_(x * c + _rotate_half(x) * s)
    if v_bias is not None:
        v.add_(v_bias.view(hk, d).to(v.dtype))


def silu_mul(gate: torch.Tensor, up: torch.Tensor, out: torch.Tensor | None = None, *,
             isa: str | None = None) -> torch.Tensor:
    """silu(gate) * up = gate / (1 + exp(-gate)) * up, the SwiGLU core; into `out` (may be gate
    or up) when given. gate, up and out have one shape."""
    return _act_mul("silu_mul", F.silu, gate, up, out, isa)


def gelu_tanh_mul(gate: torch.Tensor, up: torch.Tensor, out: torch.Tensor | None = None, *,
                  isa: str | None = None) -> torch.Tensor:
    """gelu(gate, approximate="tanh") * up, the GeGLU core of Gemma; as silu_mul otherwise. The C
    path computes 0.5 x (1 + tanh(u)) as x / (1 + exp(-2u))."""
    return _act_mul("gelu_tanh_mul", lambda x: F.gelu(x, approximate="tanh"), gate, up, out, isa)


def _act_mul(name: str, act, gate: torch.Tensor, up: torch.Tensor, out: torch.Tensor | None,
             isa: str | None) -> torch.Tensor:
    if up.shape != gate.shape or (out is not None and out.shape != gate.shape):
        raise ValueError(f"gate, up (and out) need one shape, got {tuple(gate.shape)}, {tuple(up.shape)}"
                         + (f", {tuple(out.shape)}" if out is not None else ""))
    if _c_ok(gate, up, out):
        if out is None:
            out = gate.new_empty(gate.shape)
        getattr(_ext, name)(_level(isa), gate.data_ptr(), up.data_ptr(), gate.numel(), out.data_ptr(),
                            torch.get_num_threads())
        return out
    if out is None:
        return act(gate) * up
    return torch.mul(act(gate), up, out=out)


def argmax_rows(x: torch.Tensor, *, isa: str | None = None) -> torch.Tensor:
    """(N, V) -> (N,) int64: the index of the first maximum of each row, or of its first NaN when it
    has one (numpy's rule; torch's argmax does not promise the first of equal maxima). Rows are
    split over threads when there are many values."""
    if x.dim() != 2 or x.shape[1] == 0:
        raise ValueError(f"argmax_rows needs (N, V) with V >= 1, got {tuple(x.shape)}")
    if _c_ok(x):
        out = torch.empty(x.shape[0], dtype=torch.int64)
        _ext.argmax_rows(_level(isa), x.data_ptr(), x.shape[0], x.shape[1], out.data_ptr(), torch.get_num_threads())
        return out
    if x.is_cpu and x.dtype is _F32:
        return torch.from_numpy(np.asarray(x.contiguous().numpy().argmax(axis=-1), dtype=np.int64))
    return x.argmax(dim=-1)


def dequantize_rows(w: PackedWeight, ids: torch.Tensor) -> torch.Tensor:
    """Rows `ids` (T,) int64 of a quantized weight (N, K) as float32 (T, K), exactly as the GGUF
    blocks define them: an embedding lookup that never dequantizes the whole table. Needs the
    extension (RuntimeError without it); ValueError for ids outside [0, N)."""
    if _ext is None:
        raise RuntimeError("corral's kernels are not built; dequantize the rows with corral.loader.dequant")
    if ids.dim() != 1 or ids.dtype != torch.int64 or not ids.is_cpu:
        raise ValueError(f"ids must be a 1-D CPU int64 tensor, got {ids.dtype} {tuple(ids.shape)}")
    if w.layout != "gguf":
        raise ValueError(f"row lookup needs a weight in its GGUF layout, got one packed as {w.layout!r}")
    ids = ids.contiguous()
    n, k = w.shape
    out = torch.empty((ids.shape[0], k), dtype=_F32)
    _ext.dequant_rows(w.type_id, w.addr, w.row_stride, n, ids.data_ptr(), ids.shape[0], k, out.data_ptr())
    return out


def _addr(t: torch.Tensor | None) -> int:
    return 0 if t is None else t.data_ptr()


def _torch_rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    if x.dtype == torch.float32:
        return F.rms_norm(x, (x.shape[-1],), weight.float(), eps)
    x32 = x.float()
    x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return (weight.float() * x32).to(x.dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)
