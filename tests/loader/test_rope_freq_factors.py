"""GGUF `rope_freqs` tensors: standard Llama 3.1 parameters are recognised, any other divisors are
applied as they are (llama.cpp divides each rotary frequency by its factor)."""
import numpy as np
import pytest
import torch

from corral.errors import UnsupportedModelError
from corral.layers.rotary import RotaryEmbedding, inverse_frequencies
from corral.loader.rope_llama3 import llama3_freq_factors, llama3_scaling_from_factors

HEAD_DIM, THETA = 64, 500000.0


def test_standard_factors_map_back_to_the_llama3_formula():
    std = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
           "original_max_position_embeddings": 8192}
    scaling = llama3_scaling_from_factors(llama3_freq_factors(std, HEAD_DIM, THETA), HEAD_DIM, THETA)
    assert "freq_factors" not in scaling
    got, _ = inverse_frequencies(HEAD_DIM, THETA, scaling)
    want, _ = inverse_frequencies(HEAD_DIM, THETA, std)
    torch.testing.assert_close(got, want)


def test_nonstandard_factors_divide_the_frequencies():
    factors = np.linspace(1.0, 6.0, HEAD_DIM // 2).astype(np.float32)
    scaling = llama3_scaling_from_factors(factors, HEAD_DIM, THETA)
    assert "freq_factors" in scaling
    inv, attn = inverse_frequencies(HEAD_DIM, THETA, scaling)
    base = 1.0 / (THETA ** (torch.arange(0, HEAD_DIM, 2, dtype=torch.float64) / HEAD_DIM))
    torch.testing.assert_close(inv, base / torch.tensor(factors, dtype=torch.float64))
    assert attn == 1.0
    rope = RotaryEmbedding(HEAD_DIM, 16, THETA, scaling)
    pos = 11
    angle = pos * (base / torch.tensor(factors, dtype=torch.float64))
    torch.testing.assert_close(rope.cos[pos, : HEAD_DIM // 2].double(), angle.cos(), atol=1e-6, rtol=0)


def test_wrong_number_of_factors_is_a_clear_error():
    with pytest.raises(UnsupportedModelError, match="rope frequency factors"):
        inverse_frequencies(HEAD_DIM, THETA, {"rope_type": "llama3", "factor": 8.0, "freq_factors": [1.0] * 8})
