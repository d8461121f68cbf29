"""Hot CPU kernels behind a small API, each with a reference implementation.

Quantized matmul (`qmatmul`) multiplies float32 activations by weights kept in their GGUF blocks.
`is_available()` is False when the C extension was not built; callers then use dense weights.
"""
from corral.kernels.qmatmul import (
    SUPPORTED_TYPES,
    PackedWeight,
    is_available,
    isa_levels,
    pack,
    qmatmul,
    qmatmul_many,
    reference_qmatmul,
)

__all__ = [
    "SUPPORTED_TYPES",
    "PackedWeight",
    "is_available",
    "isa_levels",
    "pack",
    "qmatmul",
    "qmatmul_many",
    "reference_qmatmul",
]
