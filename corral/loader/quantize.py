"""float32 matrices to GGML blocks, for writing GGUF files (test fixtures and `export_gguf`).

The legacy types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) and BF16 use gguf-py's quantizers, which match
ggml's reference ones. gguf-py has none for the K-quants, so they are here: a plain
"range of each sub-block, then quantize the sub-block scales" fit, vectorized over all blocks.
It is simpler than llama.cpp's (no error-minimizing scale search, so slightly less accurate) but
writes valid blocks that any GGUF reader decodes the same way.
"""
from __future__ import annotations

import numpy as np

from corral.errors import UnsupportedModelError
from corral.loader.ggml_types import BLOCK_GEOMETRY, QK_K

# The types `quantize` writes: corral reads more (the i-quants, the ternary types), but writing
# those needs llama.cpp's grid searches, which neither corral nor gguf-py has.
_GGUF_PY_TYPES = ("BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0")
_K_QUANT_TYPES = ("Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K")
WRITABLE_TYPES = ("F32", "F16", *_GGUF_PY_TYPES, *_K_QUANT_TYPES)


def quantize(values: np.ndarray, type_name: str) -> np.ndarray:
    """Encode `values` (..., n) as `type_name`.

    Returns float32 for F32, float16 for F16, and uint8 of shape (..., bytes_per_row) for every
    other type, as `gguf.GGUFWriter.add_tensor(..., raw_dtype=...)` takes it.
    n must be a multiple of the type's block size (32, or 256 for K-quants). Raises
    UnsupportedModelError for a type not in WRITABLE_TYPES.
    """
    if type_name not in WRITABLE_TYPES:
        raise UnsupportedModelError("<quantize>", f"cannot write type {type_name}; use one of {', '.join(WRITABLE_TYPES)}")
    values = np.ascontiguousarray(values, dtype=np.float32)
    if type_name == "F32":
        return values
    if type_name == "F16":
        return values.astype(np.float16)
    block_size, type_size = BLOCK_GEOMETRY[type_name]
    if values.shape[-1] % block_size:
        raise ValueError(f"row length {values.shape[-1]} is not a multiple of the {type_name} block size {block_size}")
    if type_name in _K_QUANTIZERS:
        blocks = _K_QUANTIZERS[type_name](values.reshape(-1, QK_K))  # (n_blocks, type_size)
        return blocks.reshape(*values.shape[:-1], values.shape[-1] // block_size * type_size)
    import gguf

    return gguf.quants.quantize(values, gguf.GGMLQuantizationType[type_name])


def _f16(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,) float32 -> ((N, 2) uint8 bytes, (N, 1) float32 value after fp16 rounding)."""
    h = x.astype(np.float16)
    return h.reshape(-1, 1).view(np.uint8), h.astype(np.float32).reshape(-1, 1)


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b with 0 where b == 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b == 0, 0.0, a / b).astype(np.float32)


def _fit_scale_min(x: np.ndarray, qmax: int, smax: int):
    """Asymmetric fit of sub-blocks x (N, S, L): x ~ d*sc*q - dmin*m, q in [0, qmax], sc, m in [0, smax].

    Returns (d bytes, dmin bytes, sc (N, S), m (N, S), q (N, S, L)) as uint8 arrays.
    """
    lo = np.minimum(x.min(axis=-1), 0.0)  # (N, S)
    scale = (x.max(axis=-1) - lo) / qmax  # (N, S)
    d_bytes, d = _f16(scale.max(axis=-1) / smax)
    dmin_bytes, dmin = _f16((-lo).max(axis=-1) / smax)
    sc = np.clip(np.rint(_div(scale, d)), 0, smax)
    m = np.clip(np.rint(_div(-lo, dmin)), 0, smax)
    step = (d * sc)[..., None]  # (N, S, 1)
    offset = (dmin * m)[..., None]
    q = np.clip(np.rint(_div(x + offset, step)), 0, qmax)
    return d_bytes, dmin_bytes, sc.astype(np.uint8), m.astype(np.uint8), q.astype(np.uint8)


def _fit_symmetric(x: np.ndarray, qmin: int, qmax: int, smax: int):
    """Symmetric fit of sub-blocks x (N, S, L): x ~ d*sc*q, q in [qmin, qmax], sc in [-smax, smax].

    As in ggml, the value of largest magnitude maps to qmin (qmin = -qmax - 1), using the extra
    negative level; its sign goes into the sub-block scale. Returns (d bytes, sc (N, S), q (N, S, L)).
    """
    i = np.abs(x).argmax(axis=-1)[..., None]  # (N, S, 1)
    scale = np.take_along_axis(x, i, axis=-1)[..., 0] / qmin  # (N, S), signed
    d_bytes, d = _f16(np.abs(scale).max(axis=-1) / smax)
    sc = np.clip(np.rint(_div(scale, d)), -smax, smax)
    q = np.clip(np.rint(_div(x, (d * sc)[..., None])), qmin, qmax)
    return d_bytes, sc.astype(np.int32), q.astype(np.int32)


def _pack_crumbs(q: np.ndarray) -> np.ndarray:
    """(N, 256) values 0..3 -> (N, 64): value 128h + 32j + l at bits 2j of byte 32h + l."""
    q = q.reshape(-1, 2, 4, 32).astype(np.uint8)
    return (q[:, :, 0] | (q[:, :, 1] << 2) | (q[:, :, 2] << 4) | (q[:, :, 3] << 6)).reshape(-1, 64)


def _pack_bits(bits: np.ndarray) -> np.ndarray:
    """(N, 8, 32) values 0..1 -> (N, 32): bits[:, k, l] at bit k of byte l."""
    shifts = np.arange(8, dtype=np.uint8).reshape(1, 8, 1)
    return np.bitwise_or.reduce(bits.astype(np.uint8) << shifts, axis=1)


def _pack_nibble_pairs(q: np.ndarray) -> np.ndarray:
    """(N, 8, 32) values 0..15 -> (N, 128): sub-block 2i low nibbles, 2i+1 high nibbles of bytes 32i.."""
    q = q.reshape(-1, 4, 2, 32).astype(np.uint8)
    return (q[:, :, 0] | (q[:, :, 1] << 4)).reshape(-1, 128)


def _pack_k4_scales(sc: np.ndarray, m: np.ndarray) -> np.ndarray:
    """sc, m (N, 8) values 0..63 -> (N, 12), the Q4_K/Q5_K packing (inverse of dequant._k4_scales_mins)."""
    a = (sc[:, :4] & 0x3F) | ((sc[:, 4:] >> 4) << 6)
    b = (m[:, :4] & 0x3F) | ((m[:, 4:] >> 4) << 6)
    c = (sc[:, 4:] & 0x0F) | ((m[:, 4:] & 0x0F) << 4)
    return np.concatenate([a, b, c], axis=1).astype(np.uint8)


def _q2_k(x: np.ndarray) -> np.ndarray:
    # scales u8[16] | qs u8[64] | d f16 | dmin f16
    d, dmin, sc, m, q = _fit_scale_min(x.reshape(-1, 16, 16), qmax=3, smax=15)
    return np.concatenate([sc | (m << 4), _pack_crumbs(q), d, dmin], axis=1)


def _q3_k(x: np.ndarray) -> np.ndarray:
    # hmask u8[32] | qs u8[64] | scales 12 bytes (6-bit, +32) | d f16
    d, sc, q = _fit_symmetric(x.reshape(-1, 16, 16), qmin=-4, qmax=3, smax=31)
    u = (q + 4).reshape(-1, 256)  # 0..7: bit 2 goes to hmask, bits 0-1 to qs
    s = (sc + 32).astype(np.uint8)  # (N, 16)
    low = (s[:, :8] & 0x0F) | ((s[:, 8:] & 0x0F) << 4)
    hi = (s >> 4).reshape(-1, 4, 4)  # [:, k, j] is scale 4k + j: bits 2k of byte 8 + j
    high = hi[:, 0] | (hi[:, 1] << 2) | (hi[:, 2] << 4) | (hi[:, 3] << 6)
    hmask = _pack_bits((u >> 2).reshape(-1, 8, 32))  # value 32k + l at bit k of byte l
    return np.concatenate([hmask, _pack_crumbs(u & 3), low, high, d], axis=1)


def _q4_k(x: np.ndarray) -> np.ndarray:
    # d f16 | dmin f16 | scales 12 bytes | qs u8[128]
    d, dmin, sc, m, q = _fit_scale_min(x.reshape(-1, 8, 32), qmax=15, smax=63)
    return np.concatenate([d, dmin, _pack_k4_scales(sc, m), _pack_nibble_pairs(q)], axis=1)


def _q5_k(x: np.ndarray) -> np.ndarray:
    # d f16 | dmin f16 | scales 12 bytes | qh u8[32] | qs u8[128]
    d, dmin, sc, m, q = _fit_scale_min(x.reshape(-1, 8, 32), qmax=31, smax=63)
    qh = _pack_bits(q >> 4)  # sub-block s at bit s of byte l
    return np.concatenate([d, dmin, _pack_k4_scales(sc, m), qh, _pack_nibble_pairs(q & 0x0F)], axis=1)


def _q6_k(x: np.ndarray) -> np.ndarray:
    # ql u8[128] | qh u8[64] | scales i8[16] | d f16
    d, sc, q = _fit_symmetric(x.reshape(-1, 16, 16), qmin=-32, qmax=31, smax=127)
    u = (q + 32).astype(np.uint8).reshape(-1, 2, 4, 32)  # [:, h, g, l] is value 128h + 32g + l
    lo, hi = u & 0x0F, u >> 4
    ql = np.concatenate([lo[:, :, 0] | (lo[:, :, 2] << 4), lo[:, :, 1] | (lo[:, :, 3] << 4)], axis=2)  # (N, 2, 64)
    qh = hi[:, :, 0] | (hi[:, :, 1] << 2) | (hi[:, :, 2] << 4) | (hi[:, :, 3] << 6)  # (N, 2, 32)
    scales = sc.astype(np.int8).view(np.uint8)
    return np.concatenate([ql.reshape(-1, 128), qh.reshape(-1, 64), scales, d], axis=1)


_K_QUANTIZERS = dict(zip(_K_QUANT_TYPES, (_q2_k, _q3_k, _q4_k, _q5_k, _q6_k)))
