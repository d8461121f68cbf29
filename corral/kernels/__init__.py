"""Hot CPU kernels behind a small API, each with a reference implementation.

Quantized matmul (`qmatmul`) multiplies float32 activations by weights kept in their GGUF blocks.
Paged decode attention (`paged_decode_attention`) attends one query token per sequence over K/V
read in place from the paged cache. `is_available()` is False when the C extension was not built;
callers then use dense weights and torch attention.
"""
from corral.kernels.attention import paged_decode_attention, reference_paged_decode_attention
from corral.kernels.qmatmul import (
    SUPPORTED_TYPES,
    PackedWeight,
    float_activations_fast,
    is_available,
    isa_levels,
    pack,
    qmatmul,
    qmatmul_each,
    qmatmul_many,
    reference_qmatmul,
)

__all__ = [
    "SUPPORTED_TYPES",
    "PackedWeight",
    "float_activations_fast",
    "is_available",
    "isa_levels",
    "pack",
    "paged_decode_attention",
    "qmatmul",
    "qmatmul_each",
    "qmatmul_many",
    "reference_paged_decode_attention",
    "reference_qmatmul",
]
