"""GGML's grid i-quants (IQ1_S/IQ1_M, IQ2_XXS/XS/S, IQ3_XXS/S) and ternary types (TQ1_0, TQ2_0)
to float32 torch tensors, vectorized over all blocks at once.

Same contract as the decoders in dequant.py: a (N, type_size) uint8 tensor of blocks in,
(N, 256) float32 out. The grid i-quants store, per group of 4 or 8 values, an index into a fixed
table of value patterns (the "grid"), plus sign bits and small per-group scales. The tables are
format data that the `gguf` package ships with its reference decoders; they are taken from there
once, on first use.
"""
from __future__ import annotations

from functools import cache

import numpy as np
import torch

Tensor = torch.Tensor


@cache
def _grid(type_name: str) -> Tensor:
    """(n_patterns, values_per_pattern) float32: the value patterns of `type_name`'s grid."""
    import gguf.quants

    cls = getattr(gguf.quants, type_name)
    cls.init_grid()
    return torch.from_numpy(np.array(cls.grid, dtype=np.float32).reshape(cls.grid_shape))


@cache
def _sign_patterns() -> Tensor:
    """(128, 8) float32 of +-1: the 8 signs a 7-bit sign index stands for (the eighth sign makes
    the count of minus signs even), as ggml's ksigns_iq2xs table lists them."""
    index = torch.arange(128)
    bits = (index.unsqueeze(1) >> torch.arange(7)) & 1  # (128, 7)
    parity = bits.sum(1, keepdim=True) & 1  # (128, 1)
    return 1.0 - 2.0 * torch.cat([bits, parity], dim=1).float()


def _f16(b: Tensor) -> Tensor:
    """(N, 2) uint8 -> (N, 1) float32."""
    return b.contiguous().view(torch.float16).float()


def _u16(b: Tensor) -> Tensor:
    """(N, 2k) uint8 -> (N, k) int32 of little-endian uint16 values."""
    b = b.to(torch.int32)
    return b[:, 0::2] | (b[:, 1::2] << 8)


def _u32(b: Tensor) -> Tensor:
    """(N, 4k) uint8 -> (N, k) int64 of little-endian uint32 values."""
    b = b.to(torch.int64)
    return b[:, 0::4] | (b[:, 1::4] << 8) | (b[:, 2::4] << 16) | (b[:, 3::4] << 24)


def _bit_signs(b: Tensor) -> Tensor:
    """(N, k) uint8 -> (N, 8k) float32 +-1: bit j of byte i is the sign of value 8i + j."""
    bits = (b.unsqueeze(-1) >> torch.arange(8, dtype=torch.uint8)) & 1
    return (1.0 - 2.0 * bits.float()).reshape(b.shape[0], -1)


def _nibble_scales(b: Tensor) -> Tensor:
    """(N, k) uint8 -> (N, 2k) float32: the low then high nibble of each byte."""
    return torch.stack([b & 0x0F, b >> 4], dim=-1).reshape(b.shape[0], -1).float()


def _deq_iq2_xxs(b: Tensor) -> Tensor:
    # d: f16 | 8 sub-blocks of 32 values, each 8 bytes: 4 grid indices (u8, 8 values each), then a
    # u32 holding four 7-bit sign indices and a 4-bit scale; x = d * (0.5 + s) / 4 * grid * sign
    n = b.shape[0]
    q = b[:, 2:].reshape(n * 8, 8)
    aux = _u32(q[:, 4:]).view(n, 8)  # (N, 8)
    db = _f16(b[:, :2]) * (0.5 + (aux >> 28).float()) * 0.25  # (N, 8)
    signs = _sign_patterns()[(aux.unsqueeze(-1) >> torch.tensor([0, 7, 14, 21])) & 127]  # (N, 8, 4, 8)
    grid = _grid("IQ2_XXS")[q[:, :4].long()].view(n, 8, 4, 8)
    return (db.view(n, 8, 1, 1) * grid * signs).view(n, 256)


def _deq_iq2_xs(b: Tensor) -> Tensor:
    # d: f16 | qs: 32 u16 (low 9 bits grid index, high 7 a sign index; 8 values each) |
    # scales: 8 bytes, one nibble per 16 values; x = d * (0.5 + s) / 4 * grid * sign
    n = b.shape[0]
    qs = _u16(b[:, 2:66])  # (N, 32)
    db = _f16(b[:, :2]) * (0.5 + _nibble_scales(b[:, 66:74])) * 0.25  # (N, 16)
    signs = _sign_patterns()[qs >> 9].view(n, 16, 2, 8)
    grid = _grid("IQ2_XS")[(qs & 511).long()].view(n, 16, 2, 8)
    return (db.view(n, 16, 1, 1) * grid * signs).view(n, 256)


def _deq_iq2_s(b: Tensor) -> Tensor:
    # d: f16 | qs: 32 low bytes of 10-bit grid indices | signs: 32 bytes, one bit per value |
    # qh: 8 bytes, 2 high index bits per group | scales: 8 bytes, one nibble per 16 values
    n = b.shape[0]
    high = (b[:, 66:74].unsqueeze(-1) >> torch.tensor([0, 2, 4, 6], dtype=torch.uint8)) & 3  # (N, 8, 4)
    index = b[:, 2:34].long() | (high.reshape(n, 32).long() << 8)  # (N, 32)
    db = _f16(b[:, :2]) * (0.5 + _nibble_scales(b[:, 74:82])) * 0.25  # (N, 16)
    grid = _grid("IQ2_S")[index].view(n, 16, 2, 8)
    signs = _bit_signs(b[:, 34:66]).view(n, 16, 2, 8)
    return (db.view(n, 16, 1, 1) * grid * signs).view(n, 256)


def _deq_iq3_xxs(b: Tensor) -> Tensor:
    # d: f16 | qs: 64 grid indices (u8, 4 values each) | 8 u32, one per 32 values: four 7-bit
    # sign indices (8 values each) and a 4-bit scale; x = d * (0.5 + s) / 2 * grid * sign
    n = b.shape[0]
    aux = _u32(b[:, 66:98])  # (N, 8)
    db = _f16(b[:, :2]) * (0.5 + (aux >> 28).float()) * 0.5  # (N, 8)
    signs = _sign_patterns()[(aux.unsqueeze(-1) >> torch.tensor([0, 7, 14, 21])) & 127]  # (N, 8, 4, 8)
    grid = _grid("IQ3_XXS")[b[:, 2:66].long()].view(n, 8, 4, 8)
    return (db.view(n, 8, 1, 1) * grid * signs).view(n, 256)


def _deq_iq3_s(b: Tensor) -> Tensor:
    # d: f16 | qs: 64 low bytes of 9-bit grid indices (4 values each) | qh: 8 bytes, the high bit
    # of index 8i + j at bit j of byte i | signs: 32 bytes, one bit per value | scales: 4 bytes,
    # one nibble per 32 values; x = d * (1 + 2 s) * grid * sign
    n = b.shape[0]
    high = (b[:, 66:74].unsqueeze(-1) >> torch.arange(8, dtype=torch.uint8)) & 1  # (N, 8, 8)
    index = b[:, 2:66].long() | (high.reshape(n, 64).long() << 8)
    db = _f16(b[:, :2]) * (1.0 + 2.0 * _nibble_scales(b[:, 106:110]))  # (N, 8)
    grid = _grid("IQ3_S")[index].view(n, 8, 4, 8)
    signs = _bit_signs(b[:, 74:106]).view(n, 8, 4, 8)
    return (db.view(n, 8, 1, 1) * grid * signs).view(n, 256)


_IQ1_DELTA = 0.125


def _deq_iq1_s(b: Tensor) -> Tensor:
    # d: f16 | qs: 32 low bytes of 11-bit grid indices (8 values of -1/0/1 each) | qh: 8 u16, one
    # per 32 values: 3 high index bits for each of its 4 groups (bits 0-11), a 3-bit scale (12-14)
    # and the sign of the shift (15); x = d * (2 s + 1) * (grid +- 1/8)
    n = b.shape[0]
    qh = _u16(b[:, 34:50])  # (N, 8)
    dl = _f16(b[:, :2]) * (2 * ((qh >> 12) & 7) + 1).float()  # (N, 8)
    delta = torch.where((qh & 0x8000) == 0, _IQ1_DELTA, -_IQ1_DELTA)  # (N, 8)
    high = (qh.unsqueeze(-1) >> torch.tensor([0, 3, 6, 9])) & 7  # (N, 8, 4)
    index = b[:, 2:34].long() | (high.reshape(n, 32).long() << 8)
    grid = _grid("IQ1_S")[index].view(n, 8, 4, 8)
    return (dl.view(n, 8, 1, 1) * (grid + delta.view(n, 8, 1, 1))).view(n, 256)


def _deq_iq1_m(b: Tensor) -> Tensor:
    # qs: 32 low bytes of 11-bit grid indices | qh: 16 bytes, one nibble per group (3 high index
    # bits, then the sign of the shift) | scales: 4 u16, three 3-bit scales each per 16 values in
    # bits 0-11; the block's f16 d is the four top nibbles. x = d * (2 s + 1) * (grid +- 1/8)
    n = b.shape[0]
    sc = _u16(b[:, 48:56])  # (N, 4)
    d_bits = ((sc >> 12) << torch.tensor([0, 4, 8, 12])).sum(1, keepdim=True)  # (N, 1): disjoint bits
    d = (d_bits - ((d_bits >> 15) << 16)).to(torch.int16).view(torch.float16).float()  # (N, 1)
    sub = (sc.unsqueeze(-1) >> torch.tensor([0, 3, 6, 9])) & 7  # (N, 4, 4): 16 scales
    dl = d * (2 * sub.reshape(n, 16) + 1).float()  # (N, 16)
    nib = (b[:, 32:48].unsqueeze(-1) >> torch.tensor([0, 4], dtype=torch.uint8)).reshape(n, 32)  # (N, 32)
    index = b[:, :32].long() | ((nib & 7).long() << 8)
    delta = torch.where((nib & 8) == 0, _IQ1_DELTA, -_IQ1_DELTA)  # (N, 32)
    grid = _grid("IQ1_M")[index].view(n, 16, 2, 8)
    return (dl.view(n, 16, 1, 1) * (grid + delta.view(n, 16, 2, 1))).view(n, 256)


def _deq_tq1_0(b: Tensor) -> Tensor:
    # qs: 48 bytes, 5 ternary digits each | qh: 4 bytes, 4 digits each | d: f16. Digit p of a byte
    # is the top "trit" of (byte * 3^p mod 256) * 3 / 256; values are d * (trit - 1). Bytes 0-31
    # give values 32p + l, bytes 32-47 values 160 + 16p + l, the qh bytes values 240 + 4p + l.
    n = b.shape[0]
    q = b.to(torch.int32)
    pow5 = torch.tensor([1, 3, 9, 27, 81], dtype=torch.int32)
    digits = torch.cat([
        (q[:, :32].unsqueeze(1) * pow5.view(1, 5, 1)).reshape(n, 160),
        (q[:, 32:48].unsqueeze(1) * pow5.view(1, 5, 1)).reshape(n, 80),
        (q[:, 48:52].unsqueeze(1) * pow5[:4].view(1, 4, 1)).reshape(n, 16),
    ], dim=1) & 0xFF
    trits = ((digits * 3) >> 8) - 1
    return _f16(b[:, 52:54]) * trits.float()


def _deq_tq2_0(b: Tensor) -> Tensor:
    # qs: 64 bytes of four 2-bit values (value 128h + 32j + l at bits 2j of byte 32h + l) | d: f16
    n = b.shape[0]
    q = (b[:, :64].reshape(n, 2, 1, 32) >> torch.tensor([0, 2, 4, 6], dtype=torch.uint8).view(1, 1, 4, 1)) & 3
    return _f16(b[:, 64:66]) * (q.reshape(n, 256).float() - 1.0)


GRID_DECODERS = {
    "IQ2_XXS": _deq_iq2_xxs,
    "IQ2_XS": _deq_iq2_xs,
    "IQ2_S": _deq_iq2_s,
    "IQ3_XXS": _deq_iq3_xxs,
    "IQ3_S": _deq_iq3_s,
    "IQ1_S": _deq_iq1_s,
    "IQ1_M": _deq_iq1_m,
    "TQ1_0": _deq_tq1_0,
    "TQ2_0": _deq_tq2_0,
}
