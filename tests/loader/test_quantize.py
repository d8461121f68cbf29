"""Our quantizers write blocks the reference dequantizer (gguf-py) decodes close to the input."""
import gguf
import numpy as np
import pytest

from corral.errors import UnsupportedModelError
from corral.loader.quantize import WRITABLE_TYPES, quantize

# Relative RMS error bound on unit-normal data per type (llama.cpp's own are somewhat lower
# for K-quants, whose scale search we do not copy).
MAX_REL_RMS = {
    "F16": 1e-3, "BF16": 5e-3, "Q8_0": 0.01, "Q5_0": 0.06, "Q5_1": 0.06, "Q4_0": 0.11, "Q4_1": 0.1,
    "Q6_K": 0.03, "Q5_K": 0.06, "Q4_K": 0.1, "Q3_K": 0.2, "Q2_K": 0.4,
}


@pytest.mark.parametrize("type_name", sorted(MAX_REL_RMS))
def test_round_trip_through_reference_dequantizer(type_name):
    x = np.random.default_rng(1).normal(0, 1, size=(5, 512)).astype(np.float32)
    blocks = quantize(x, type_name)
    back = gguf.quants.dequantize(blocks, gguf.GGMLQuantizationType[type_name]).reshape(x.shape)
    rel_rms = np.sqrt(np.mean((back - x) ** 2)) / x.std()
    assert rel_rms < MAX_REL_RMS[type_name]


@pytest.mark.parametrize("type_name", ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"])
def test_k_quants_handle_zero_and_constant_blocks(type_name):
    x = np.zeros((3, 256), np.float32)
    x[1] = 0.5
    x[2, :128] = -2.0
    back = gguf.quants.dequantize(quantize(x, type_name), gguf.GGMLQuantizationType[type_name])
    assert np.all(np.isfinite(back))
    np.testing.assert_allclose(back.reshape(x.shape), x, atol=0.05 * 2.0)


def test_row_must_be_whole_blocks():
    with pytest.raises(ValueError, match="block size"):
        quantize(np.zeros((2, 64), np.float32), "Q4_K")


def test_every_listed_writable_type_is_written():
    assert set(WRITABLE_TYPES) == set(MAX_REL_RMS) | {"F32"}


@pytest.mark.parametrize("type_name", ["IQ4_XS", "IQ4_NL", "IQ2_XXS", "TQ1_0", "Q8_K"])
def test_readable_but_unwritable_type_is_refused_with_the_writable_list(type_name):
    with pytest.raises(UnsupportedModelError, match=f"cannot write type {type_name}; use one of F32, .*Q6_K$") as err:
        quantize(np.zeros((2, 256), np.float32), type_name)
    assert "IQ" not in str(err.value).split("use one of")[1]
