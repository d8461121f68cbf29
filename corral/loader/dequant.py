"""GGML blocks to float32 torch tensors, vectorized over all blocks at once.

Each `_deq_*` takes the blocks of one tensor as a (n_blocks, type_size) uint8 tensor and returns
(n_blocks, block_size) float32. The byte layouts follow ggml-quants.c; every fp16 field is
little-endian. No Python loop runs per block or per row.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from math import prod

import numpy as np
import torch

from corral.errors import ModelFileError, UnsupportedModelError
from corral.loader.dequant_grids import GRID_DECODERS
from corral.loader.ggml_types import BLOCK_GEOMETRY, QK_K, SUPPORTED_TYPES

Tensor = torch.Tensor

_CHUNK_VALUES = 1 << 20


def dequantize(
    type_name: str,
    raw: np.ndarray,
    shape: Sequence[int],
    *,
    name: str = "tensor",
    path: str = "<memory>",
) -> Tensor:
    """Decode `raw` (the tensor's bytes, uint8 or any typed view of them) into float32 of `shape`.

    `shape` is in numpy order (rows first); its last dim must be a multiple of the block size.
    F32 data that is writable comes back as a view of `raw` (no copy); everything else is new.
    Raises UnsupportedModelError for a type not in SUPPORTED_TYPES and ModelFileError when the
    byte count does not match the shape. `name` and `path` only go into error messages.
    """
    if type_name not in BLOCK_GEOMETRY:
        raise UnsupportedModelError(
            path,
            f"tensor {name!r} has type {type_name}, which corral cannot read; "
            f"supported types: {', '.join(SUPPORTED_TYPES)}. Use a file quantized to one of them.",
        )
    shape = tuple(int(d) for d in shape)
    block_size, type_size = BLOCK_GEOMETRY[type_name]
    n = prod(shape)
    if shape and shape[-1] % block_size != 0:
        raise ModelFileError(
            path, f"tensor {name!r}: row length {shape[-1]} is not a multiple of the {type_name} block size {block_size}"
        )
    flat = np.ascontiguousarray(raw).reshape(-1).view(np.uint8)
    if flat.size != n // block_size * type_size:
        raise ModelFileError(
            path, f"tensor {name!r}: {flat.size} bytes of data, expected {n // block_size * type_size} for {type_name} {shape}"
        )
    if not flat.flags.writeable and type_name == "F32":
        flat = flat.copy()  # a caller may write to F32 weights; never hand out a read-only buffer
    with warnings.catch_warnings():
        # Read-only memmaps are only read from here: every decoder below allocates its output.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        data = torch.from_numpy(flat)
    if type_name == "F32":
        return data.view(torch.float32).view(shape)
    if type_name == "F16":
        return data.view(torch.float16).float().view(shape)
    if type_name == "BF16":
        return data.view(torch.bfloat16).float().view(shape)
    blocks = data.view(-1, type_size)
    decode = _DECODERS[type_name]
    out = torch.empty(blocks.shape[0], block_size, dtype=torch.float32)
    # Chunks keep the temporaries of one step in cache; a whole-tensor pass per op is several
    # times slower on large embeddings. The loop runs per chunk of ~1M values, not per block.
    step = max(1, _CHUNK_VALUES // block_size)
    for start in range(0, blocks.shape[0], step):
        out[start : start + step] = decode(blocks[start : start + step])
    return out.view(shape)


def _f16(b: Tensor) -> Tensor:
    """(N, 2) uint8 -> (N, 1) float32."""
    return b.contiguous().view(torch.float16).float()


def _bits(b: Tensor) -> Tensor:
    """(N, k) uint8 -> (N, 8, k): bit j of every byte at [:, j, :]."""
    shifts = torch.arange(8, dtype=torch.uint8).view(1, 8, 1)
    return (b.unsqueeze(1) >> shifts) & 1


def _crumbs(b: Tensor) -> Tensor:
    """(N, k) uint8 -> (N, 4, k): the 2-bit field at bits 2j..2j+1 of every byte at [:, j, :]."""
    shifts = torch.tensor([0, 2, 4, 6], dtype=torch.uint8).view(1, 4, 1)
    return (b.unsqueeze(1) >> shifts) & 3


def _nibbles(qs: Tensor) -> Tensor:
    """(N, 16) uint8 -> (N, 32): low nibbles are values 0..15, high nibbles values 16..31."""
    return torch.cat([qs & 0x0F, qs >> 4], dim=-1)


def _deq_q8_0(b: Tensor) -> Tensor:
    # d: f16 | qs: int8[32]
    return b[:, 2:].view(torch.int8).float() * _f16(b[:, :2])


def _deq_q4_0(b: Tensor) -> Tensor:
    # d: f16 | qs: 16 bytes of nibbles; x = d * (q - 8)
    return (_nibbles(b[:, 2:]).float() - 8.0) * _f16(b[:, :2])


def _deq_q4_1(b: Tensor) -> Tensor:
    # d: f16 | m: f16 | qs: 16 bytes of nibbles; x = d * q + m
    return _nibbles(b[:, 4:]).float() * _f16(b[:, :2]) + _f16(b[:, 2:4])


def _five_bit(qh: Tensor, qs: Tensor) -> Tensor:
    """qh (N, 4) holds bit 4 of value j at bit j (little-endian u32); qs (N, 16) the low nibbles."""
    high = _bits(qh).transpose(1, 2).reshape(-1, 32)  # (N, 32): value j = byte j//8, bit j%8
    return _nibbles(qs) | (high << 4)


def _deq_q5_0(b: Tensor) -> Tensor:
    # d: f16 | qh: u32 | qs: 16 bytes; x = d * (q - 16)
    return (_five_bit(b[:, 2:6], b[:, 6:]).float() - 16.0) * _f16(b[:, :2])


def _deq_q5_1(b: Tensor) -> Tensor:
    # d: f16 | m: f16 | qh: u32 | qs: 16 bytes; x = d * q + m
    return _five_bit(b[:, 4:8], b[:, 8:]).float() * _f16(b[:, :2]) + _f16(b[:, 2:4])


def _deq_q2_k(b: Tensor) -> Tensor:
    # scales: u8[16] (low nibble scale, high nibble min) | qs: u8[64] | d: f16 | dmin: f16
    n = b.shape[0]
    scales = b[:, :16]
    d, dmin = _f16(b[:, 80:82]), _f16(b[:, 82:84])
    # value 128*h + 32*j + l sits at bits 2j of qs[32*h + l]
    q = _crumbs(b[:, 16:80].reshape(n * 2, 32)).view(n, 16, 16).float()
    dl = (d * (scales & 0x0F).float()).view(n, 16, 1)
    ml = (dmin * (scales >> 4).float()).view(n, 16, 1)
    return (dl * q - ml).view(n, 256)


def _q3_k_scales(s: Tensor) -> Tensor:
    """(N, 12) packed 6-bit scales -> (N, 16) signed scales.

    Scale i: low 4 bits from byte i % 8 (nibble i // 8), high 2 bits from byte 8 + i % 4
    (bits 2 * (i // 4)); stored with +32 offset.
    """
    low = torch.cat([s[:, :8] & 0x0F, s[:, :8] >> 4], dim=-1)  # (N, 16)
    high = _crumbs(s[:, 8:12]).reshape(-1, 16)  # (N, 16): index 4 * (i // 4) + i % 4 = i
    return (low | (high << 4)).float() - 32.0


def _deq_q3_k(b: Tensor) -> Tensor:
    # hmask: u8[32] | qs: u8[64] | scales: 12 bytes | d: f16; x = d * sc * (q2 - (hbit ? 0 : 4))
    n = b.shape[0]
    low = _crumbs(b[:, 32:96].reshape(n * 2, 32)).view(n, 256)  # value 128h+32j+l at bits 2j of qs[32h+l]
    high = _bits(b[:, :32]).reshape(n, 256)  # value 32k + l at bit k of hmask[l]
    q = low.float() - 4.0 * (1 - high).float()
    dl = (_f16(b[:, 108:110]) * _q3_k_scales(b[:, 96:108])).view(n, 16, 1)
    return (dl * q.view(n, 16, 16)).view(n, 256)


def _k4_scales_mins(s: Tensor) -> tuple[Tensor, Tensor]:
    """(N, 12) packed 6-bit scales and mins of Q4_K/Q5_K -> two (N, 8) float tensors.

    Bytes 0-3: scales 0-3 (low 6 bits), bytes 4-7: mins 0-3 (low 6 bits); bytes 8-11 hold the
    low 4 bits of scales 4-7 (low nibble) and mins 4-7 (high nibble), whose top 2 bits are the
    top bits of bytes 0-3 (scales) and 4-7 (mins).
    """
    a, m, c = s[:, 0:4], s[:, 4:8], s[:, 8:12]
    sc = torch.cat([a & 0x3F, (c & 0x0F) | ((a >> 6) << 4)], dim=-1)
    mn = torch.cat([m & 0x3F, (c >> 4) | ((m >> 6) << 4)], dim=-1)
    return sc.float(), mn.float()


def _k4_values(qs: Tensor) -> Tensor:
    """(N, 128) -> (N, 8, 32): sub-block 2i is the low nibbles of qs[32i:32i+32], 2i+1 the high."""
    q = qs.reshape(-1, 4, 32)
    return torch.stack([q & 0x0F, q >> 4], dim=2).view(-1, 8, 32)


def _deq_q4_k(b: Tensor) -> Tensor:
    # d: f16 | dmin: f16 | scales: 12 bytes | qs: u8[128]; x = d * sc * q - dmin * m
    n = b.shape[0]
    sc, mn = _k4_scales_mins(b[:, 4:16])
    q = _k4_values(b[:, 16:144]).float()
    return ((_f16(b[:, :2]) * sc).unsqueeze(-1) * q - (_f16(b[:, 2:4]) * mn).unsqueeze(-1)).view(n, 256)


def _deq_q5_k(b: Tensor) -> Tensor:
    # d: f16 | dmin: f16 | scales: 12 bytes | qh: u8[32] | qs: u8[128]; bit 4 of sub-block s at bit s of qh[l]
    n = b.shape[0]
    sc, mn = _k4_scales_mins(b[:, 4:16])
    q = (_k4_values(b[:, 48:176]) | (_bits(b[:, 16:48]) << 4)).float()
    return ((_f16(b[:, :2]) * sc).unsqueeze(-1) * q - (_f16(b[:, 2:4]) * mn).unsqueeze(-1)).view(n, 256)


def _deq_q6_k(b: Tensor) -> Tensor:
    # ql: u8[128] | qh: u8[64] | scales: i8[16] | d: f16; x = d * sc * (q - 32)
    n = b.shape[0]
    # Per 128-value half h: values 32g + l, g = 0..3, take low nibbles of ql[64h + l], ql[64h + 32 + l]
    # (g = 0, 1) then high nibbles of the same bytes (g = 2, 3), and bits 2g of qh[32h + l].
    ql = b[:, :128].reshape(n, 2, 2, 32)
    low = torch.cat([ql & 0x0F, ql >> 4], dim=2)  # (N, 2, 4, 32)
    high = _crumbs(b[:, 128:192].reshape(n * 2, 32)).view(n, 2, 4, 32)
    q = ((low | (high << 4)).float() - 32.0).view(n, 16, 16)
    dl = (_f16(b[:, 208:210]) * b[:, 192:208].view(torch.int8).float()).view(n, 16, 1)
    return (dl * q).view(n, 256)


# IQ4_NL and IQ4_XS map each 4-bit index through this non-linear table (ggml-common.h kvalues_iq4nl).
_IQ4_VALUES = torch.tensor([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113],
                           dtype=torch.float32)


def _deq_iq4_nl(b: Tensor) -> Tensor:
    # d: f16 | qs: 16 bytes of nibbles; x = d * table[q]
    return _IQ4_VALUES[_nibbles(b[:, 2:]).long()] * _f16(b[:, :2])


def _deq_iq4_xs(b: Tensor) -> Tensor:
    # d: f16 | scales_h: u16 (2 high bits of each 6-bit sub-block scale) | scales_l: 4 bytes
    # (low nibbles) | qs: 8 sub-blocks of 16 bytes of nibbles; x = d * (scale - 32) * table[q]
    n = b.shape[0]
    d = _f16(b[:, :2])  # (N, 1)
    high = b[:, 2:4].contiguous().view(torch.int16).to(torch.int32) & 0xFFFF  # (N, 1)
    low = b[:, 4:8]  # (N, 4)
    low = torch.stack([low & 0x0F, low >> 4], dim=-1).reshape(n, 8).to(torch.int32)  # (N, 8) sub-block order
    shifts = torch.arange(0, 16, 2, dtype=torch.int32)  # (8,)
    scales = (low | (((high >> shifts) & 3) << 4)).float() - 32.0  # (N, 8)
    q = _nibbles(b[:, 8:].reshape(n * 8, 16)).long()  # (N*8, 32)
    return (_IQ4_VALUES[q].view(n, 8, 32) * (d * scales).unsqueeze(-1)).view(n, QK_K)


_DECODERS = {
    "Q8_0": _deq_q8_0,
    "Q4_0": _deq_q4_0,
    "Q4_1": _deq_q4_1,
    "Q5_0": _deq_q5_0,
    "Q5_1": _deq_q5_1,
    "Q2_K": _deq_q2_k,
    "Q3_K": _deq_q3_k,
    "Q4_K": _deq_q4_k,
    "Q5_K": _deq_q5_k,
    "Q6_K": _deq_q6_k,
    "IQ4_NL": _deq_iq4_nl,
    "IQ4_XS": _deq_iq4_xs,
    **GRID_DECODERS,
}
